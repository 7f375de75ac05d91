//! The tracker's state, with no sockets and no disk: the file records, the
//! live peers, and which pieces each peer holds. Every operation that
//! depends on time takes `now`, so expiry is tested with made-up instants.
//!
//! Sessions: a REGISTER gives a peer a fresh session id. Messages carry the
//! (peer id, session) pair; a stale pair (the peer expired, or registered
//! again elsewhere) is refused with `UNKNOWN_PEER` so the peer registers
//! again. "Live" peers are the ones in the map: `expire` (called every
//! second by the reaper) removes the silent ones.

use crate::bitfield::Bitfield;
use crate::error::{code, Error, Result};
use crate::record::FileRecord;
use crate::rng::Rng;
use crate::units::hex;
use crate::wire::message::MAX_HOLDERS;
use crate::wire::{FileHave, FileSummary, Holder, PEER_EXPIRY};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

struct PeerEntry {
    host: String,
    port: u16,
    last_seen: Instant,
    session: u64,
    /// File name -> pieces held. Only files of the catalogue, with a
    /// bitfield as long as the record's piece count.
    holdings: HashMap<String, Bitfield>,
}

/// One peer as the dashboard shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerView {
    pub peer_id: String,
    /// `host:port` where other peers dial it.
    pub addr: String,
    /// Sorted by file name.
    pub files: Vec<FileProgress>,
}

/// How much of one file a peer holds.
#[derive(Clone, Debug, PartialEq)]
pub struct FileProgress {
    pub name: String,
    /// Bytes held / file size, in 0.0..=1.0 (1.0 for an empty file).
    pub fraction: f64,
    /// Holds every piece.
    pub complete: bool,
}

/// A copy of what the dashboard draws, taken under the lock and drawn
/// without it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub files: Vec<FileSummary>,
    /// Sorted by peer id.
    pub peers: Vec<PeerView>,
}

pub struct Catalogue {
    files: BTreeMap<String, Arc<FileRecord>>,
    peers: HashMap<String, PeerEntry>,
    next_session: u64,
    rng: Rng,
}

impl Default for Catalogue {
    fn default() -> Self {
        Catalogue::new()
    }
}

/// A peer holds a file when it has at least one piece of it; an empty file
/// (no pieces) is held by whoever has it listed.
fn holds(have: &Bitfield) -> bool {
    have.is_empty() || have.count() > 0
}

impl Catalogue {
    pub fn new() -> Catalogue {
        Catalogue::with_rng(Rng::new())
    }

    /// A catalogue whose random holder samples are reproducible.
    pub fn with_rng(rng: Rng) -> Catalogue {
        Catalogue {
            files: BTreeMap::new(),
            peers: HashMap::new(),
            next_session: 1,
            rng,
        }
    }

    /// Adds a record read back from disk. False when the name is taken.
    pub fn load_record(&mut self, record: FileRecord) -> bool {
        if self.files.contains_key(&record.name) {
            return false;
        }
        self.files.insert(record.name.clone(), Arc::new(record));
        true
    }

    /// Starts a session for `peer_id`. Registering again replaces the old
    /// entry (last wins): a fresh session id, the old holdings dropped.
    pub fn register(&mut self, peer_id: &str, host: &str, port: u16, now: Instant) -> u64 {
        let session = self.next_session;
        self.next_session += 1;
        self.peers.insert(
            peer_id.to_string(),
            PeerEntry {
                host: host.to_string(),
                port,
                last_seen: now,
                session,
                holdings: HashMap::new(),
            },
        );
        session
    }

    fn entry(&mut self, peer_id: &str, session: u64) -> Result<&mut PeerEntry> {
        match self.peers.get_mut(peer_id) {
            Some(e) if e.session == session => Ok(e),
            _ => Err(unknown_peer(peer_id)),
        }
    }

    /// Refreshes the peer's last-seen time: any message of a live session.
    pub fn touch(&mut self, peer_id: &str, session: u64, now: Instant) -> Result<()> {
        self.entry(peer_id, session)?.last_seen = now;
        Ok(())
    }

    /// A peer shares a file (NEW_FILE). Ok(true) when the record is new
    /// (the caller persists it), Ok(false) when an identical one is known.
    /// Either way the sender holds every piece.
    pub fn add_file(
        &mut self,
        peer_id: &str,
        session: u64,
        record: FileRecord,
        now: Instant,
    ) -> Result<bool> {
        self.touch(peer_id, session, now)?;
        let pieces = record.piece_count();
        let name = record.name.clone();
        let added = match self.files.get(&name) {
            Some(known) if known.md5 != record.md5 || known.size != record.size => {
                return Err(Error::Conflict(format!(
                    "{name} is already shared with different content (md5 {}, {} bytes); \
                     rename your file",
                    hex(&known.md5),
                    known.size
                )));
            }
            Some(known) if **known != record => {
                return Err(Error::Conflict(format!(
                    "{name} is already shared with the same md5 but different piece \
                     hashes; rename your file"
                )));
            }
            Some(_) => false,
            None => {
                self.files.insert(name.clone(), Arc::new(record));
                true
            }
        };
        self.entry(peer_id, session)?
            .holdings
            .insert(name, Bitfield::full(pieces));
        Ok(added)
    }

    /// Updates the peer's holdings with `files`: each entry replaces what
    /// the peer held of that file; files not named keep what they had (a
    /// peer sends only what changed). An entry with a piece set of length 0
    /// for a file that has pieces withdraws the file (a download given up).
    /// Entries naming an unknown file, another md5, or a set of another
    /// length are ignored.
    pub fn announce(
        &mut self,
        peer_id: &str,
        session: u64,
        files: &[FileHave],
        now: Instant,
    ) -> Result<()> {
        let catalogue = &self.files;
        let entry = match self.peers.get_mut(peer_id) {
            Some(e) if e.session == session => e,
            _ => return Err(unknown_peer(peer_id)),
        };
        entry.last_seen = now;
        for f in files {
            let Some(r) = catalogue.get(&f.name).filter(|r| r.md5 == f.md5) else {
                continue;
            };
            if f.have.len() == r.piece_count() {
                entry.holdings.insert(f.name.clone(), f.have.clone());
            } else if f.have.is_empty() {
                entry.holdings.remove(&f.name);
            }
        }
        Ok(())
    }

    /// Ends a session. Only the current session may: an old connection of
    /// a peer that registered again must not remove the newer entry.
    pub fn remove_peer(&mut self, peer_id: &str, session: u64) -> bool {
        match self.peers.get(peer_id) {
            Some(e) if e.session == session => {
                self.peers.remove(peer_id);
                true
            }
            _ => false,
        }
    }

    /// Forgets the peers silent for more than `PEER_EXPIRY`; their ids.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let mut gone: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.last_seen) > PEER_EXPIRY)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.peers.remove(id);
        }
        gone.sort();
        gone
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Every file, sorted by name, with how many live peers hold it.
    pub fn list_files(&self) -> Vec<FileSummary> {
        let mut counts: HashMap<&str, (u32, u32)> = HashMap::new();
        for e in self.peers.values() {
            for (name, have) in &e.holdings {
                if holds(have) {
                    let c = counts.entry(name.as_str()).or_default();
                    c.0 += 1;
                    c.1 += u32::from(have.is_full());
                }
            }
        }
        self.files
            .values()
            .map(|r| {
                let (holders, seeders) = counts.get(r.name.as_str()).copied().unwrap_or_default();
                FileSummary {
                    name: r.name.clone(),
                    size: r.size,
                    md5: r.md5,
                    holders,
                    seeders,
                }
            })
            .collect()
    }

    pub fn record(&self, name: &str) -> Option<Arc<FileRecord>> {
        self.files.get(name).cloned()
    }

    /// The live peers taking part in `name`, sorted by id: holders of some
    /// or all of it, and peers that started downloading it (they will have
    /// pieces to trade soon). A random sample of `MAX_HOLDERS` when there
    /// are more.
    pub fn holders(&mut self, name: &str) -> Result<Vec<Holder>> {
        if !self.files.contains_key(name) {
            return Err(not_found(name));
        }
        let mut out: Vec<Holder> = self
            .peers
            .iter()
            .filter_map(|(id, e)| {
                let have = e.holdings.get(name)?;
                Some(Holder {
                    peer_id: id.clone(),
                    host: e.host.clone(),
                    port: e.port,
                    have: have.clone(),
                })
            })
            .collect();
        if out.len() > MAX_HOLDERS {
            self.rng.shuffle(&mut out);
            out.truncate(MAX_HOLDERS);
        }
        out.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        Ok(out)
    }

    /// What the dashboard shows.
    pub fn snapshot(&self) -> Snapshot {
        let mut peers: Vec<PeerView> = self
            .peers
            .iter()
            .map(|(id, e)| {
                let mut files: Vec<FileProgress> = e
                    .holdings
                    .iter()
                    .filter_map(|(name, have)| {
                        let r = self.files.get(name)?;
                        let fraction = if r.size == 0 {
                            1.0
                        } else {
                            // Whole blocks, minus what the short last block lacks.
                            let held = r.blocks_in(have) * r.block_size as u64;
                            let short = r.block_count() as u64 * r.block_size as u64 - r.size;
                            let last_held = have.get(r.piece_count().saturating_sub(1));
                            let held = if last_held {
                                held.saturating_sub(short)
                            } else {
                                held
                            };
                            held as f64 / r.size as f64
                        };
                        Some(FileProgress {
                            name: name.clone(),
                            fraction: fraction.clamp(0.0, 1.0),
                            complete: have.is_full(),
                        })
                    })
                    .collect();
                files.sort_by(|a, b| a.name.cmp(&b.name));
                PeerView {
                    peer_id: id.clone(),
                    addr: crate::net::join_host_port(&e.host, e.port),
                    files,
                }
            })
            .collect();
        peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        Snapshot {
            files: self.list_files(),
            peers,
        }
    }
}

/// The error for a message of a session the catalogue does not know.
fn unknown_peer(peer_id: &str) -> Error {
    Error::Remote {
        code: code::UNKNOWN_PEER,
        message: format!(
            "peer {peer_id} is not registered (it expired or registered again elsewhere); \
             register again"
        ),
    }
}

/// The error for a file name the catalogue does not know.
pub fn not_found(name: &str) -> Error {
    Error::NotFound(format!(
        "no file named {name} in the swarm; `files` lists what is shared"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn have(name: &str, r: &FileRecord, pieces: &[u32]) -> FileHave {
        let mut b = Bitfield::new(r.piece_count());
        for &p in pieces {
            b.set(p);
        }
        FileHave {
            name: name.into(),
            md5: r.md5,
            have: b,
        }
    }

    fn remote_code(e: Error) -> u16 {
        match e {
            Error::Remote { code, .. } => code,
            other => panic!("expected a remote error, got {other:?}"),
        }
    }

    #[test]
    fn register_add_and_find_holders() {
        let t0 = Instant::now();
        let mut c = Catalogue::new();
        let s = c.register("A", "10.0.0.1", 7000, t0);
        let r = FileRecord::from_bytes("a.bin", &[7; 10_000]);
        assert!(c.add_file("A", s, r.clone(), t0).unwrap());
        assert!(
            !c.add_file("A", s, r.clone(), t0).unwrap(),
            "identical again"
        );
        let h = c.holders("a.bin").unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(
            (h[0].peer_id.as_str(), h[0].host.as_str(), h[0].port),
            ("A", "10.0.0.1", 7000)
        );
        assert!(h[0].have.is_full() && h[0].have.len() == 3);
        assert_eq!(*c.record("a.bin").unwrap(), r);
        let list = c.list_files();
        assert_eq!(list.len(), 1);
        assert_eq!(
            (list[0].holders, list[0].seeders, list[0].size),
            (1, 1, 10_000)
        );
        assert!(matches!(c.holders("nope"), Err(Error::NotFound(_))));
        assert!(c.record("nope").is_none());
    }

    #[test]
    fn same_name_other_content_conflicts_and_first_stays() {
        let t0 = Instant::now();
        let mut c = Catalogue::new();
        let a = c.register("A", "h", 1, t0);
        let b = c.register("B", "h", 2, t0);
        let first = FileRecord::from_bytes("x", b"first");
        c.add_file("A", a, first.clone(), t0).unwrap();
        let e = c
            .add_file("B", b, FileRecord::from_bytes("x", b"second"), t0)
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)));
        assert_eq!(e.wire_code(), code::CONFLICT);
        let text = e.to_string();
        assert!(
            text.contains("already shared") && text.contains(&hex(&first.md5)),
            "{text}"
        );
        assert_eq!(*c.record("x").unwrap(), first);
        // B holds nothing of it.
        let h = c.holders("x").unwrap();
        assert_eq!(
            h.iter().map(|h| h.peer_id.as_str()).collect::<Vec<_>>(),
            ["A"]
        );
        // Same md5 and size but forged piece hashes: refused too.
        let mut forged = first.clone();
        forged.piece_hashes[0] = [0; 16];
        assert!(matches!(
            c.add_file("B", b, forged, t0),
            Err(Error::Conflict(_))
        ));
    }

    #[test]
    fn announce_updates_holdings_and_ignores_bad_entries() {
        let t0 = Instant::now();
        let mut c = Catalogue::new();
        let a = c.register("A", "h", 1, t0);
        let b = c.register("B", "h", 2, t0);
        let r = FileRecord::from_bytes("f", &[1; 5 * 4096]);
        let other = FileRecord::from_bytes("g", &[2; 4096]);
        c.add_file("A", a, r.clone(), t0).unwrap();
        c.add_file("A", a, other.clone(), t0).unwrap();

        let mut wrong_md5 = have("f", &r, &[0]);
        wrong_md5.md5 = [0; 16];
        let mut wrong_len = have("f", &r, &[0]);
        wrong_len.have = Bitfield::full(9);
        let unknown = FileHave {
            name: "zzz".into(),
            md5: [1; 16],
            have: Bitfield::full(1),
        };
        c.announce("B", b, &[wrong_md5, wrong_len, unknown], t0)
            .unwrap();
        assert_eq!(c.holders("f").unwrap().len(), 1, "only A");

        c.announce("B", b, &[have("f", &r, &[1, 2])], t0).unwrap();
        let h = c.holders("f").unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].peer_id, "B");
        assert_eq!(h[1].have.iter_ones().collect::<Vec<_>>(), [1, 2]);
        let f = &c.list_files()[0];
        assert_eq!((f.name.as_str(), f.holders, f.seeders), ("f", 2, 1));

        // A zero-piece set: downloading, listed for others to connect
        // to, but not counted as holding.
        c.announce("B", b, &[have("f", &r, &[])], t0).unwrap();
        assert_eq!(c.holders("f").unwrap().len(), 2);
        assert_eq!(c.list_files()[0].holders, 1);

        // A set of length 0 withdraws the file.
        let mut gone = have("f", &r, &[]);
        gone.have = Bitfield::new(0);
        c.announce("B", b, &[gone], t0).unwrap();
        assert_eq!(c.holders("f").unwrap().len(), 1);

        // An announce without g leaves g as it was: only changes are sent.
        c.announce("A", a, &[have("f", &r, &[0, 1, 2, 3, 4])], t0)
            .unwrap();
        assert_eq!(c.holders("g").unwrap().len(), 1);
        assert_eq!(c.list_files()[1].holders, 1);
    }

    #[test]
    fn stale_sessions_are_refused_and_last_registration_wins() {
        let t0 = Instant::now();
        let mut c = Catalogue::new();
        let old = c.register("A", "h", 1, t0);
        let r = FileRecord::from_bytes("f", b"data");
        c.add_file("A", old, r.clone(), t0).unwrap();
        let new = c.register("A", "h2", 2, t0);
        assert_ne!(old, new);
        assert!(c.holders("f").unwrap().is_empty(), "old holdings dropped");
        assert_eq!(
            remote_code(c.announce("A", old, &[], t0).unwrap_err()),
            code::UNKNOWN_PEER
        );
        let e = c.add_file("A", old, r.clone(), t0).unwrap_err();
        assert_eq!(e.wire_code(), code::UNKNOWN_PEER);
        assert!(c.touch("A", old, t0).is_err());
        assert!(c.touch("nobody", 1, t0).is_err());
        assert_eq!(
            remote_code(c.announce("nobody", 5, &[], t0).unwrap_err()),
            code::UNKNOWN_PEER
        );
        // The old connection closing does not remove the new registration.
        assert!(!c.remove_peer("A", old));
        assert_eq!(c.peer_count(), 1);
        c.add_file("A", new, r, t0).unwrap();
        let h = c.holders("f").unwrap();
        assert_eq!((h[0].host.as_str(), h[0].port), ("h2", 2));
        assert!(c.remove_peer("A", new));
        assert_eq!(c.peer_count(), 0);
        assert!(c.holders("f").unwrap().is_empty());
        assert_eq!(c.file_count(), 1, "records outlive their holders");
    }

    #[test]
    fn silent_peers_expire_after_three_intervals() {
        let t0 = Instant::now();
        let mut c = Catalogue::new();
        let a = c.register("A", "h", 1, t0);
        let b = c.register("B", "h", 2, t0);
        let r = FileRecord::from_bytes("f", b"x");
        c.add_file("A", a, r.clone(), t0).unwrap();
        c.add_file("B", b, r.clone(), t0).unwrap();
        // B keeps announcing, A goes silent.
        for s in [3, 6, 9, 12] {
            let now = t0 + Duration::from_secs(s);
            c.announce("B", b, &[have("f", &r, &[0])], now).unwrap();
        }
        assert!(
            c.expire(t0 + PEER_EXPIRY).is_empty(),
            "exactly 9 s is not yet"
        );
        let gone = c.expire(t0 + PEER_EXPIRY + Duration::from_millis(1));
        assert_eq!(gone, ["A"]);
        let h = c.holders("f").unwrap();
        assert_eq!(
            h.iter().map(|h| h.peer_id.as_str()).collect::<Vec<_>>(),
            ["B"]
        );
        assert_eq!(
            remote_code(c.announce("A", a, &[], t0 + PEER_EXPIRY * 2).unwrap_err()),
            code::UNKNOWN_PEER
        );
        // Queries count as life too.
        let now = t0 + Duration::from_secs(20);
        c.touch("B", b, now).unwrap();
        assert!(c.expire(now + PEER_EXPIRY).is_empty());
        assert_eq!(c.expire(now + PEER_EXPIRY * 2), ["B"]);
        // An instant before last_seen (clock confusion) does not expire.
        let d = c.register("D", "h", 3, now);
        assert!(c.expire(t0).is_empty());
        assert!(c.remove_peer("D", d));
    }

    #[test]
    fn empty_file_is_held_by_whoever_has_it() {
        let t0 = Instant::now();
        let mut c = Catalogue::new();
        let a = c.register("A", "h", 1, t0);
        let b = c.register("B", "h", 2, t0);
        let r = FileRecord::from_bytes("empty", b"");
        assert_eq!(r.piece_count(), 0);
        c.add_file("A", a, r.clone(), t0).unwrap();
        c.announce("B", b, &[have("empty", &r, &[])], t0).unwrap();
        let h = c.holders("empty").unwrap();
        assert_eq!(h.len(), 2);
        let f = &c.list_files()[0];
        assert_eq!((f.holders, f.seeders), (2, 2));
        let snap = c.snapshot();
        assert_eq!(snap.peers[0].files[0].fraction, 1.0);
        assert!(snap.peers[0].files[0].complete);
    }

    #[test]
    fn many_holders_are_sampled() {
        let t0 = Instant::now();
        let mut c = Catalogue::with_rng(Rng::seeded(7));
        let r = FileRecord::from_bytes("f", b"abc");
        let n = MAX_HOLDERS + 20;
        for i in 0..n {
            let id = format!("p{i:03}");
            let s = c.register(&id, "h", 1000 + i as u16, t0);
            c.add_file(&id, s, r.clone(), t0).unwrap();
        }
        let first = c.holders("f").unwrap();
        assert_eq!(first.len(), MAX_HOLDERS);
        let mut ids: Vec<&str> = first.iter().map(|h| h.peer_id.as_str()).collect();
        ids.dedup();
        assert_eq!(ids.len(), MAX_HOLDERS, "no duplicates");
        let samples: Vec<Vec<Holder>> = (0..10).map(|_| c.holders("f").unwrap()).collect();
        assert!(samples.iter().any(|s| *s != first), "sample varies");
        assert_eq!(c.list_files()[0].holders as usize, n);
    }

    #[test]
    fn snapshot_reports_progress() {
        let t0 = Instant::now();
        let mut c = Catalogue::new();
        let a = c.register("A", "10.0.0.1", 7000, t0);
        let b = c.register("B", "::1", 7001, t0);
        // 4 pieces, the last one 100 bytes: 3*4096+100 bytes.
        let data = vec![3u8; 3 * 4096 + 100];
        let r = FileRecord::from_bytes("f", &data);
        c.add_file("A", a, r.clone(), t0).unwrap();
        c.announce("B", b, &[have("f", &r, &[0, 3])], t0).unwrap();
        let snap = c.snapshot();
        assert_eq!(snap.files.len(), 1);
        assert_eq!(snap.peers.len(), 2);
        assert_eq!(snap.peers[0].addr, "10.0.0.1:7000");
        assert_eq!(snap.peers[1].addr, "[::1]:7001");
        assert_eq!(snap.peers[0].files[0].fraction, 1.0);
        assert!(snap.peers[0].files[0].complete);
        let f = &snap.peers[1].files[0];
        assert!(!f.complete);
        assert!(
            (f.fraction - 4196.0 / data.len() as f64).abs() < 1e-9,
            "{}",
            f.fraction
        );
    }

    #[test]
    fn loaded_records_have_no_holders() {
        let mut c = Catalogue::new();
        let r = FileRecord::from_bytes("f", b"abc");
        assert!(c.load_record(r.clone()));
        assert!(!c.load_record(r));
        assert_eq!(c.list_files()[0].holders, 0);
        assert!(c.holders("f").unwrap().is_empty());
    }
}
