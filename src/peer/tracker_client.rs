//! The peer's side of the tracker protocol: a session thread that registers,
//! announces every 3 s and reconnects with backoff when the tracker goes
//! away, plus one-shot queries (each on its own short connection, so a slow
//! query never delays an announce).

use super::store::Store;
use super::Peer;
use crate::bitfield::Bitfield;
use crate::error::{code, Error, Result};
use crate::net::Conn;
use crate::record::{FileRecord, Md5Digest};
use crate::wire::message::MAX_FILES;
use crate::wire::{FileHave, FileSummary, Holder, Msg, ANNOUNCE_INTERVAL, MAX_FRAME};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{info, warn};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub enum Command {
    /// Tell the tracker about a new file; the answer goes back on the channel.
    NewFile(Arc<FileRecord>, Option<Sender<Result<()>>>),
    /// Leave the swarm; answered once the tracker has been told (or not).
    Bye(Sender<()>),
    /// Announce now rather than at the next interval (a download started).
    AnnounceNow,
    /// A download is about to start: tell the tracker we take part (no
    /// pieces yet) before asking who holds the file, so peers starting
    /// at the same moment find each other. Answered when done (or not).
    Joining(FileHave, Sender<()>),
}

/// The handle the rest of the peer uses to talk to the session thread.
pub struct Session {
    tx: Sender<Command>,
    pub connected: AtomicBool,
}

impl Session {
    pub fn new() -> (Session, Receiver<Command>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (
            Session {
                tx,
                connected: AtomicBool::new(false),
            },
            rx,
        )
    }

    /// Announces a new file without waiting.
    pub fn new_file(&self, record: Arc<FileRecord>) {
        let _ = self.tx.send(Command::NewFile(record, None));
    }

    /// Announces a new file and waits for the tracker's verdict.
    pub fn new_file_wait(&self, record: Arc<FileRecord>, timeout: Duration) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _ = self.tx.send(Command::NewFile(record, Some(tx)));
        rx.recv_timeout(timeout).unwrap_or_else(|_| {
            Err(Error::Timeout(
                "waiting for the tracker to accept the file".into(),
            ))
        })
    }

    /// Asks for an announce now, without waiting for it.
    pub fn announce_now(&self) {
        let _ = self.tx.send(Command::AnnounceNow);
    }

    /// Tells the tracker we start downloading `record`, waiting at most
    /// `timeout`; a missing tracker only means nobody learns of it yet.
    pub fn joining(&self, record: &FileRecord, timeout: Duration) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let cmd = Command::Joining(
            FileHave {
                name: record.name.clone(),
                md5: record.md5,
                have: Bitfield::new(record.piece_count()),
            },
            tx,
        );
        if self.tx.send(cmd).is_ok() {
            let _ = rx.recv_timeout(timeout);
        }
    }

    /// Says goodbye to the tracker, waiting at most `timeout`.
    pub fn bye(&self, timeout: Duration) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.tx.send(Command::Bye(tx)).is_ok() {
            let _ = rx.recv_timeout(timeout);
        }
    }
}

/// The session thread's body: runs until BYE or the channel closes.
pub fn run(peer: Arc<Peer>, rx: Receiver<Command>) {
    let mut backoff = Duration::from_secs(1);
    let mut warned = false;
    loop {
        let mut registered = false;
        match session(&peer, &rx, &mut registered) {
            Ok(()) => return,
            Err(e) => {
                peer.session.connected.store(false, Ordering::Release);
                if registered {
                    backoff = Duration::from_secs(1);
                    warned = false;
                }
                if !warned {
                    warn!(
                        "tracker {}: {e}; retrying in the background",
                        peer.config.tracker
                    );
                    warned = true;
                } else {
                    info!(
                        "tracker {}: {e}; retrying in {} s",
                        peer.config.tracker,
                        backoff.as_secs()
                    );
                }
            }
        }
        // Wait out the backoff, still answering commands.
        let until = Instant::now() + backoff;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(Command::NewFile(_, Some(reply))) => {
                    let _ = reply.send(Err(Error::NoSources(format!(
                        "the tracker at {} cannot be reached; the file is shared and will be announced when it returns",
                        peer.config.tracker
                    ))));
                }
                Ok(Command::NewFile(_, None)) | Ok(Command::AnnounceNow) => {}
                Ok(Command::Joining(_, reply)) => {
                    let _ = reply.send(());
                }
                Ok(Command::Bye(reply)) => {
                    let _ = reply.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn session(peer: &Arc<Peer>, rx: &Receiver<Command>, registered: &mut bool) -> Result<()> {
    let cfg = &peer.config;
    let mut conn = Conn::connect(&cfg.tracker, MAX_FRAME)?;
    let advertise = cfg
        .advertise
        .as_ref()
        .map(|a| a.0.clone())
        .unwrap_or_default();
    match conn.call(&Msg::Register {
        peer_id: cfg.id.clone(),
        port: cfg.advertised_port(),
        advertise,
    })? {
        Msg::Welcome { host } => info!(
            "registered with the tracker at {} as {} ({host}:{})",
            cfg.tracker,
            cfg.id,
            cfg.advertised_port()
        ),
        other => {
            return Err(Error::protocol(format!(
                "expected WELCOME, got {}",
                other.kind()
            )))
        }
    }
    *registered = true;
    for record in peer.store.records() {
        if let Err(e) = new_file(&mut conn, &record) {
            warn!("not announced: {e}");
            if !matches!(e, Error::Remote { .. }) {
                return Err(e);
            }
        }
    }
    peer.session.connected.store(true, Ordering::Release);
    // What this session told the tracker of the downloads in progress.
    let mut sent: Sent = HashMap::new();
    announce(peer, &mut conn, &mut sent)?;
    let mut next_announce = Instant::now() + ANNOUNCE_INTERVAL;
    loop {
        let wait = next_announce.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Command::NewFile(record, reply)) => {
                let result = new_file(&mut conn, &record);
                let transport_failed = result
                    .as_ref()
                    .is_err_and(|e| !matches!(e, Error::Remote { .. }));
                let summary = match &result {
                    Ok(()) => Ok(()),
                    Err(Error::Remote { message, .. }) => Err(Error::Conflict(message.clone())),
                    Err(e) => Err(Error::NoSources(format!(
                        "the tracker at {} did not answer ({e}); the file is shared and will be announced when it returns",
                        peer.config.tracker
                    ))),
                };
                match reply {
                    Some(reply) => {
                        let _ = reply.send(summary);
                    }
                    None => {
                        if let Err(e) = &result {
                            warn!("not announced: {e}");
                        }
                    }
                }
                if transport_failed {
                    return result;
                }
            }
            Ok(Command::Bye(reply)) => {
                let _ = conn.call(&Msg::Bye);
                let _ = reply.send(());
                return Ok(());
            }
            Ok(Command::Joining(entry, reply)) => {
                let result = if sent.contains_key(&entry.name) {
                    Ok(())
                } else {
                    sent.insert(entry.name.clone(), (entry.md5, entry.have.clone()));
                    announce_files(&mut conn, vec![entry])
                };
                let _ = reply.send(());
                result?;
            }
            Ok(Command::AnnounceNow) | Err(RecvTimeoutError::Timeout) => {
                announce(peer, &mut conn, &mut sent)?;
                next_announce = Instant::now() + ANNOUNCE_INTERVAL;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

fn new_file(conn: &mut Conn, record: &FileRecord) -> Result<()> {
    call_ok(
        conn,
        &Msg::NewFile {
            record: record.clone(),
        },
    )
}

/// Sends a request whose answer is OK.
fn call_ok(conn: &mut Conn, msg: &Msg<'_>) -> Result<()> {
    match conn.call(msg)? {
        Msg::Ok => Ok(()),
        other => Err(Error::protocol(format!(
            "expected OK, got {}",
            other.kind()
        ))),
    }
}

/// Tells the tracker what changed since the last announce: the pieces of
/// each download in progress whose set grew, and downloads that ended
/// without a file (a set of length 0). Complete files went as NEW_FILE.
/// Nothing changed still makes an (empty) announce: it keeps us alive.
fn announce(peer: &Peer, conn: &mut Conn, sent: &mut Sent) -> Result<()> {
    let changes = announce_changes(&peer.store, sent);
    for batch in batches(changes) {
        announce_files(conn, batch)?;
    }
    Ok(())
}

fn announce_files(conn: &mut Conn, files: Vec<FileHave>) -> Result<()> {
    call_ok(conn, &Msg::Announce { files })
}

/// Per download in progress: the md5 and piece set last announced.
type Sent = HashMap<String, (Md5Digest, Bitfield)>;

/// The entries to send, and `sent` updated as if they were.
fn announce_changes(store: &Store, sent: &mut Sent) -> Vec<FileHave> {
    let mut out = Vec::new();
    let mut live = HashSet::new();
    for p in store.partials() {
        let name = &p.record.name;
        if store.get(name).is_some() {
            continue;
        }
        live.insert(name.clone());
        let have = p.have();
        if sent.get(name).map(|s| &s.1) != Some(&have) {
            out.push(FileHave {
                name: name.clone(),
                md5: p.record.md5,
                have: have.clone(),
            });
            sent.insert(name.clone(), (p.record.md5, have));
        }
    }
    sent.retain(|name, (md5, _)| {
        let keep = live.contains(name);
        if !keep && store.get(name).is_none() {
            out.push(FileHave {
                name: name.clone(),
                md5: *md5,
                have: Bitfield::new(0),
            });
        }
        keep
    });
    out
}

/// Splits entries so each ANNOUNCE stays well under the frame limit.
fn batches(entries: Vec<FileHave>) -> Vec<Vec<FileHave>> {
    const BUDGET: usize = 512 << 10;
    let mut out = vec![Vec::new()];
    let mut size = 0;
    for e in entries {
        let cost = 32 + e.name.len() + e.have.len() as usize / 8;
        let last = out.last_mut().expect("never empty");
        if !last.is_empty() && (size + cost > BUDGET || last.len() >= MAX_FILES) {
            out.push(Vec::new());
            size = 0;
        }
        size += cost;
        out.last_mut().expect("never empty").push(e);
    }
    out
}

/// A one-shot exchange with the tracker on a fresh connection.
fn query<T>(tracker: &str, msg: &Msg<'_>, pick: impl FnOnce(Msg<'_>) -> Option<T>) -> Result<T> {
    let mut conn = Conn::connect(tracker, MAX_FRAME).map_err(|e| unreachable(tracker, e))?;
    let kind = msg.kind();
    match conn.call(msg) {
        Ok(m) => {
            let got = m.kind();
            pick(m).ok_or_else(|| Error::protocol(format!("unexpected {got} in answer to {kind}")))
        }
        Err(Error::Remote {
            code: code::NOT_FOUND,
            message,
        }) => Err(Error::NotFound(message)),
        Err(e) => Err(unreachable(tracker, e)),
    }
}

/// Turns a transport failure into what a user can act on.
fn unreachable(tracker: &str, e: Error) -> Error {
    match e {
        Error::Net { source, .. } => Error::NoSources(format!(
            "cannot reach the tracker at {tracker}: {source} (is it running? check the address and port)"
        )),
        Error::Timeout(_) => Error::NoSources(format!(
            "the tracker at {tracker} did not answer within {} s (is it running and reachable?)",
            crate::net::IO_TIMEOUT.as_secs()
        )),
        other => other,
    }
}

pub fn fetch_record(tracker: &str, name: &str) -> Result<FileRecord> {
    query(
        tracker,
        &Msg::GetRecord {
            name: name.to_string(),
        },
        |m| match m {
            Msg::Record { record } if record.name == name => Some(record),
            _ => None,
        },
    )
}

pub fn who_has(tracker: &str, name: &str) -> Result<Vec<Holder>> {
    query(
        tracker,
        &Msg::WhoHas {
            name: name.to_string(),
        },
        |m| match m {
            Msg::Holders { holders } => Some(holders),
            _ => None,
        },
    )
}

pub fn list_files(tracker: &str) -> Result<Vec<FileSummary>> {
    query(tracker, &Msg::ListFiles, |m| match m {
        Msg::FileList { files } => Some(files),
        _ => None,
    })
}
