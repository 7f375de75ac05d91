//! The partial file of one download. Workers write verified pieces at their
//! offsets (positioned writes need no lock); the mutex guards only the
//! bookkeeping: which pieces are on disk and how long the contiguous prefix
//! is. A hasher thread follows that prefix and feeds the whole-file MD5, so
//! the digest is ready when the last piece lands instead of costing one
//! more pass over the file.
//!
//! The MD5 is the slowest step of a download and runs on one thread, so the
//! hasher is spared every copy it can be: a written run that extends the
//! prefix is handed to it in memory (`fresh`), and only what it missed (a
//! hole filled out of order, or runs dropped while it lagged) is read back
//! from the page cache.
//!
//! The prefix grows only as fast as the pieces arrive in order. In a
//! swarm each piece comes first from the seeder, which offers its fresh
//! pieces a round at a time from the front of the file
//! (`peer::block_server::seeding`), so the prefix trails the seeder by a
//! round or two and little is left to hash when the last piece lands
//! (the debug line says how much, and how long it took).

use crate::bitfield::Bitfield;
use crate::digest::Md5Digest;
use crate::error::{Error, Result};
use crate::record::FileRecord;
use md5::{Digest, Md5};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

const HASH_CHUNK: usize = 1 << 20;
/// Written runs (up to 1 MiB each) waiting for the hasher in memory. Past
/// this it lags, and further runs are read back instead: memory stays
/// bounded whatever the download's speed.
const FRESH_RUNS: usize = 8;

pub struct Reassembler {
    file: File,
    record: std::sync::Arc<FileRecord>,
    state: Mutex<Written>,
    grew: Condvar,
    stop: AtomicBool,
    /// Bumped on every write, so the block server can tell cheaply when
    /// there are new pieces to announce (HAVE).
    version: AtomicU64,
    /// Runs that extended the prefix, in prefix order: (offset, bytes).
    fresh_tx: crossbeam_channel::Sender<(u64, Vec<u8>)>,
    fresh: crossbeam_channel::Receiver<(u64, Vec<u8>)>,
    /// Bytes the hasher has fed to the MD5 so far.
    hashed: AtomicU64,
}

struct Written {
    on_disk: Bitfield,
    /// Pieces 0..prefix are all on disk.
    prefix: u32,
    /// When the last piece landed, and the bytes the hasher had still to
    /// hash then: what the whole-file MD5 costs after the download.
    last: Option<(Instant, u64)>,
}

impl Reassembler {
    /// `on_disk`: pieces already verified in `file` (a resumed download).
    pub fn new(file: File, record: std::sync::Arc<FileRecord>, on_disk: Bitfield) -> Reassembler {
        let prefix = on_disk.next(0, false).unwrap_or(on_disk.len());
        let (fresh_tx, fresh) = crossbeam_channel::bounded(FRESH_RUNS);
        Reassembler {
            file,
            record,
            state: Mutex::new(Written {
                on_disk,
                prefix,
                last: None,
            }),
            grew: Condvar::new(),
            stop: AtomicBool::new(false),
            version: AtomicU64::new(0),
            fresh_tx,
            fresh,
            hashed: AtomicU64::new(0),
        }
    }

    pub fn record(&self) -> &std::sync::Arc<FileRecord> {
        &self.record
    }

    /// The partial file, for positioned reads of verified pieces.
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// True when every piece of `first..=last` is verified and on disk.
    pub fn holds(&self, first: u32, last: u32) -> bool {
        let st = self.lock();
        (first..=last).all(|p| st.on_disk.get(p))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Written> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `data`, the verified pieces `first..first+count`, at their
    /// offset, then records them. Returns the pieces newly recorded.
    pub fn write(&self, first: u32, count: u32, data: Vec<u8>) -> Result<()> {
        let offset = self.record.piece_offset(first);
        self.file.write_all_at(&data, offset).map_err(|e| {
            Error::io(
                format!("writing the partial file of {}", self.record.name),
                e,
            )
        })?;
        let mut st = self.lock();
        if offset == self.prefix_bytes(&st) {
            // Sent under the lock, before the prefix grows: the hasher
            // finds the run as soon as it sees the prefix, and runs queue
            // in prefix order. Full: the hasher reads it back later.
            let _ = self.fresh_tx.try_send((offset, data));
        }
        for p in first..first + count {
            st.on_disk.set(p);
        }
        let old = st.prefix;
        st.prefix = st
            .on_disk
            .next(st.prefix, false)
            .unwrap_or(st.on_disk.len());
        if st.prefix != old {
            self.grew.notify_all();
            if st.prefix == st.on_disk.len() {
                let left = self.record.size - self.hashed.load(Ordering::Acquire);
                st.last = Some((Instant::now(), left));
            }
        }
        drop(st);
        self.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    pub fn on_disk(&self) -> Bitfield {
        self.lock().on_disk.clone()
    }

    pub fn count(&self) -> u32 {
        self.lock().on_disk.count()
    }

    /// Stops the hasher (cancelled download).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.grew.notify_all();
    }

    fn prefix_bytes(&self, st: &Written) -> u64 {
        if st.prefix == st.on_disk.len() {
            self.record.size
        } else {
            self.record.piece_offset(st.prefix)
        }
    }

    /// Runs the whole-file MD5 over the prefix as it grows; returns the
    /// digest once every byte is hashed, or `Cancelled` after `stop`.
    pub fn hash_prefix(&self) -> Result<Md5Digest> {
        let mut md5 = Md5::new();
        let mut hashed = 0u64;
        let mut buf = Vec::new();
        while hashed < self.record.size {
            let ready = self.wait_beyond(hashed)?;
            while hashed < ready {
                match self.fresh.try_recv() {
                    Ok((offset, run)) => {
                        let end = offset + run.len() as u64;
                        if end <= hashed {
                            continue; // read back already
                        }
                        if offset > hashed {
                            self.read_back(&mut md5, &mut buf, hashed, offset)?;
                            hashed = offset;
                        }
                        md5.update(&run[(hashed - offset) as usize..]);
                        hashed = end;
                        self.hashed.store(hashed, Ordering::Release);
                    }
                    Err(_) => {
                        self.read_back(&mut md5, &mut buf, hashed, ready)?;
                        hashed = ready;
                    }
                }
            }
        }
        if let Some((at, left)) = self.lock().last {
            log::debug!(
                "{}: whole-file MD5 ready {:.1} ms after the last piece landed, {:.1} MiB left to hash then",
                self.record.name,
                at.elapsed().as_secs_f64() * 1000.0,
                left as f64 / 1048576.0
            );
        }
        Ok(md5.finalize().into())
    }

    /// Waits until the prefix reaches beyond `hashed`; returns its end.
    fn wait_beyond(&self, hashed: u64) -> Result<u64> {
        let mut st = self.lock();
        loop {
            if self.stop.load(Ordering::Acquire) {
                return Err(Error::Cancelled);
            }
            let ready = self.prefix_bytes(&st);
            if ready > hashed {
                return Ok(ready);
            }
            st = self
                .grew
                .wait_timeout(st, Duration::from_millis(200))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Hashes `from..to` of the written prefix, read back from the file.
    fn read_back(&self, md5: &mut Md5, buf: &mut Vec<u8>, from: u64, to: u64) -> Result<()> {
        buf.resize(HASH_CHUNK, 0);
        let mut at = from;
        while at < to {
            let n = (to - at).min(HASH_CHUNK as u64) as usize;
            self.file.read_exact_at(&mut buf[..n], at).map_err(|e| {
                Error::io(
                    format!("reading back the partial file of {}", self.record.name),
                    e,
                )
            })?;
            md5.update(&buf[..n]);
            at += n as u64;
            self.hashed.store(at, Ordering::Release);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A partial file of `len` bytes in a directory of its own, `p`.
    fn scratch(len: usize) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("p"))
            .unwrap();
        file.set_len(len as u64).unwrap();
        (dir, file)
    }

    #[test]
    fn out_of_order_writes_give_the_whole_file_digest() {
        let data: Vec<u8> = (0..50_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
            .collect();
        let record = Arc::new(FileRecord::from_bytes("t", &data));
        let (dir, file) = scratch(data.len());
        let r = Arc::new(Reassembler::new(
            file,
            record.clone(),
            Bitfield::new(record.piece_count()),
        ));
        let hasher = {
            let r = r.clone();
            std::thread::spawn(move || r.hash_prefix())
        };
        // Pieces land in a scrambled order, two at a time where adjacent.
        let order = [5u32, 11, 0, 3, 7, 1, 12, 2, 9, 4, 8, 6, 10];
        for &p in &order {
            let start = p as usize * 4096;
            let end = (start + 4096).min(data.len());
            r.write(p, 1, data[start..end].to_vec()).unwrap();
        }
        assert_eq!(hasher.join().unwrap().unwrap(), record.md5);
        assert!(r.on_disk().is_full());
        assert_eq!(std::fs::read(dir.path().join("p")).unwrap(), data);
    }

    #[test]
    fn runs_from_memory_and_read_back_give_the_same_digest() {
        // 20 pieces written in order before the hasher starts: the first
        // FRESH_RUNS wait in memory, the rest are read back; then one
        // hole filled out of order, with the pieces after it on disk.
        let data: Vec<u8> = (0..30 * 4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let record = Arc::new(FileRecord::from_bytes("m", &data));
        let (_dir, file) = scratch(data.len());
        let r = Arc::new(Reassembler::new(file, record.clone(), Bitfield::new(30)));
        let piece = |p: usize| data[p * 4096..(p + 1) * 4096].to_vec();
        for p in 0..20 {
            r.write(p as u32, 1, piece(p)).unwrap();
        }
        assert_eq!(r.fresh.len(), FRESH_RUNS);
        let hasher = {
            let r = r.clone();
            std::thread::spawn(move || r.hash_prefix())
        };
        for p in 21..30 {
            r.write(p as u32, 1, piece(p)).unwrap();
        }
        r.write(20, 1, piece(20)).unwrap();
        assert_eq!(hasher.join().unwrap().unwrap(), record.md5);
    }

    fn sample(len: u32, seed: u32) -> Vec<u8> {
        (0..len)
            .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 9) as u8)
            .collect()
    }

    /// Waits (without a deadline on the outcome) until the hasher has
    /// hashed `bytes`.
    fn hashed_up_to(r: &Reassembler, bytes: u64) {
        while r.hashed.load(Ordering::Acquire) < bytes {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn in_order_pieces_leave_only_the_last_to_hash_after_it() {
        let data = sample(10 * 4096 + 100, 1);
        let record = Arc::new(FileRecord::from_bytes("o", &data));
        let (_dir, file) = scratch(data.len());
        let r = Arc::new(Reassembler::new(file, record.clone(), Bitfield::new(11)));
        let hasher = {
            let r = r.clone();
            std::thread::spawn(move || r.hash_prefix())
        };
        for p in 0..10 {
            r.write(p, 1, data[p as usize * 4096..][..4096].to_vec())
                .unwrap();
            hashed_up_to(&r, (p as u64 + 1) * 4096);
        }
        r.write(10, 1, data[10 * 4096..].to_vec()).unwrap();
        assert_eq!(hasher.join().unwrap().unwrap(), record.md5);
        assert_eq!(r.lock().last.map(|(_, left)| left), Some(100));
    }

    #[test]
    fn a_resumed_download_hashes_the_pieces_on_disk_then_the_new_ones() {
        // Pieces 0, 1, 2, 5 and 6 were verified by an earlier run: the
        // hasher reads them back from the partial file, in order with the
        // pieces this run writes.
        let data = sample(9 * 4096, 2);
        let record = Arc::new(FileRecord::from_bytes("r", &data));
        let (_dir, file) = scratch(data.len());
        let mut on_disk = Bitfield::new(9);
        for p in [0u32, 1, 2, 5, 6] {
            let at = p as usize * 4096;
            file.write_all_at(&data[at..at + 4096], at as u64).unwrap();
            on_disk.set(p);
        }
        let r = Arc::new(Reassembler::new(file, record.clone(), on_disk));
        let hasher = {
            let r = r.clone();
            std::thread::spawn(move || r.hash_prefix())
        };
        hashed_up_to(&r, 3 * 4096);
        for p in [8u32, 4, 3, 7] {
            r.write(p, 1, data[p as usize * 4096..][..4096].to_vec())
                .unwrap();
        }
        assert_eq!(hasher.join().unwrap().unwrap(), record.md5);
    }

    #[test]
    fn a_piece_damaged_on_disk_after_it_was_verified_fails_the_digest() {
        // What the hasher reads back is what is on disk: a resumed piece
        // that rotted since its check makes the whole-file MD5 differ.
        let data = sample(4 * 4096, 3);
        let record = Arc::new(FileRecord::from_bytes("d", &data));
        let (_dir, file) = scratch(data.len());
        let mut rotten = data[4096..8192].to_vec();
        rotten[17] ^= 1;
        file.write_all_at(&data[..4096], 0).unwrap();
        file.write_all_at(&rotten, 4096).unwrap();
        let mut on_disk = Bitfield::new(4);
        on_disk.set_range(0, 2);
        let r = Reassembler::new(file, record.clone(), on_disk);
        r.write(2, 2, data[8192..].to_vec()).unwrap();
        assert_ne!(r.hash_prefix().unwrap(), record.md5);
    }

    #[test]
    fn stop_cancels_the_hasher() {
        let data = vec![1u8; 9000];
        let record = Arc::new(FileRecord::from_bytes("t", &data));
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("p")).unwrap();
        let r = Arc::new(Reassembler::new(file, record, Bitfield::new(3)));
        let h = {
            let r = r.clone();
            std::thread::spawn(move || r.hash_prefix())
        };
        r.stop();
        assert!(matches!(h.join().unwrap(), Err(Error::Cancelled)));
    }
}
