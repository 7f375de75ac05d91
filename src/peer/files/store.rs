//! The files a peer shares: everything in `<dir>/files/`, each with its
//! record, plus the downloads in progress, whose verified pieces are
//! served too. Records are cached in `<dir>/records/` keyed by size and
//! mtime so a restart does not hash unchanged files again.

use crate::bitfield::Bitfield;
use crate::digest::Md5Digest;
use crate::download::reassembler::Reassembler;
use crate::download::reuse::{Candidate, Payload};
use crate::error::{Error, Result};
use crate::fsutil::{write_atomically, Stamp};
use crate::names::check_file_name;
use crate::record::FileRecord;
use crate::tree::{fingerprint, Tree};
use crate::wire::record_file::{self, Stored};
use log::{info, warn};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Where a shared item's payload is read from.
pub enum Content {
    /// A file (or a download's partial file), open.
    File(File),
    /// A folder: its files one after another.
    Tree(Tree),
}

/// One shared item, open for positioned reads by any number of threads.
pub struct SharedFile {
    pub record: Arc<FileRecord>,
    content: Content,
    /// A download in progress: only its verified pieces may be served.
    pub partial: Option<Arc<Reassembler>>,
    /// A complete file: the seeder's schedule across its connections.
    pub seeding: Option<std::sync::Mutex<crate::peer::block_server::seeding::Seeding>>,
    /// A complete file: its size and mtime when it was shared, which the
    /// watcher compares with what `files/` holds now.
    pub stamp: Stamp,
}

impl SharedFile {
    /// `hot`: the pieces new in this version (see `Seeding::prefer`).
    fn complete(
        record: Arc<FileRecord>,
        content: Content,
        stamp: Stamp,
        hot: Option<Bitfield>,
    ) -> SharedFile {
        let mut seeding = crate::peer::block_server::seeding::Seeding::new(
            record.piece_count(),
            crate::rng::Rng::new().next_u64(),
        );
        if let Some(hot) = hot {
            seeding.prefer(hot);
        }
        SharedFile {
            record,
            content,
            partial: None,
            seeding: Some(std::sync::Mutex::new(seeding)),
            stamp,
        }
    }

    /// Fills `buf` from the payload at `offset`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match &self.content {
            Content::File(f) => f.read_exact_at(buf, offset),
            Content::Tree(t) => t.read_exact_at(buf, offset),
        }
    }

    /// Reads what there is of `buf`'s length at `offset` (0 at the end).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let n = (self.record.size.saturating_sub(offset)).min(buf.len() as u64) as usize;
        self.read_exact_at(&mut buf[..n], offset)?;
        Ok(n)
    }

    /// The pieces that may be served now.
    pub fn have(&self) -> Bitfield {
        match &self.partial {
            Some(r) => r.on_disk(),
            None => Bitfield::full(self.record.piece_count()),
        }
    }
}

/// A shared item's payload as a source of pieces for another download.
impl Payload for SharedFile {
    fn size(&self) -> u64 {
        self.record.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        SharedFile::read_exact_at(self, buf, offset)
    }

    fn file(&self) -> Option<&File> {
        match &self.content {
            Content::File(f) => Some(f),
            Content::Tree(_) => None,
        }
    }
}

/// Gives a freshly hashed record (version 1, no owner) the version this
/// peer publishes, from the record it last had of the name
/// (`peer::files::publish::assign`, with the swarm's record).
pub type Versioner<'a> = &'a dyn Fn(FileRecord, Option<&FileRecord>) -> FileRecord;

/// A file of `files/` hashed and opened, not yet shared.
pub struct Prepared {
    pub record: Arc<FileRecord>,
    content: Content,
    stamp: Stamp,
    /// The pieces new since the version this peer had before, if any.
    hot: Option<Bitfield>,
}

pub struct Store {
    files_dir: PathBuf,
    records_dir: PathBuf,
    files: RwLock<BTreeMap<String, Arc<SharedFile>>>,
    partials: RwLock<BTreeMap<String, Arc<SharedFile>>>,
}

impl Store {
    /// Creates the directories if missing; does not scan yet.
    pub fn open(dir: &Path) -> Result<Store> {
        let files_dir = dir.join("files");
        let records_dir = dir.join("records");
        for d in [&files_dir, &records_dir] {
            make_dir(d)?;
        }
        Ok(Store {
            files_dir,
            records_dir,
            files: RwLock::new(BTreeMap::new()),
            partials: RwLock::new(BTreeMap::new()),
        })
    }

    pub fn files_dir(&self) -> &Path {
        &self.files_dir
    }

    /// Builds (or loads from cache) the record of every regular file and
    /// folder in `files/`, not shared yet (the caller publishes them
    /// first). Items with names we would refuse are skipped with a warning.
    /// `assign`: the version a freshly hashed item gets (`Versioner`).
    pub fn scan(&self, assign: Versioner<'_>) -> Result<Vec<Prepared>> {
        let entries = fs::read_dir(&self.files_dir)
            .map_err(|e| Error::io(format!("listing {}", self.files_dir.display()), e))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                warn!(
                    "skipping a file whose name is not UTF-8 in {}",
                    self.files_dir.display()
                );
                continue;
            };
            if let Err(e) = check_file_name(&name) {
                warn!("skipping {name:?}: {e}");
                continue;
            }
            // symlink_metadata: a link out of files/ is not shared.
            match entry.path().symlink_metadata() {
                Ok(m) if m.is_file() || m.is_dir() => {}
                _ => continue,
            }
            match self.prepare(&name, assign) {
                Ok(p) => out.push(p),
                Err(e) => warn!("not sharing {name}: {e}"),
            }
        }
        Ok(out)
    }

    /// Opens `files/<name>` and takes its record from the cache or hashes
    /// it, without sharing it yet (the watcher publishes it first). A
    /// freshly hashed record gets its version from `assign`.
    pub fn prepare(&self, name: &str, assign: Versioner<'_>) -> Result<Prepared> {
        check_file_name(name)?;
        let path = self.files_dir.join(name);
        let meta = path
            .symlink_metadata()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if meta.file_type().is_symlink() {
            return Err(Error::Usage(format!(
                "{} is a symlink: symlinks are never shared",
                path.display()
            )));
        }
        if meta.is_dir() {
            return self.prepare_folder(name, &path, assign);
        }
        // O_NOFOLLOW: a symlink swapped in since the check is not opened.
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(Error::Usage(format!(
                "{} is not a regular file nor a folder",
                path.display()
            )));
        }
        if crate::fsutil::is_foreign_hard_link(&meta) {
            return Err(Error::Usage(format!(
                "{} is a hard link to a file of another user: not shared; \
                 copy it in instead (cp, or the share command)",
                path.display()
            )));
        }
        let stamp = Stamp::of(&meta);
        let entry = self.cache_entry(name);
        let (record, hot) = match fresh_record(name, &stamp, entry.as_ref()) {
            Some(r) if r.folder.is_none() => (r, None),
            _ => {
                info!("hashing {name} ({} bytes)", meta.len());
                let r = FileRecord::from_file(name, &path)?;
                // Changed while it was hashed: the record may mix both.
                if Stamp::of_file(&file) != stamp {
                    return Err(changed(&path));
                }
                self.version_and_cache(r, &stamp, previous_record(name, entry), assign)
            }
        };
        Ok(Prepared {
            record: Arc::new(record),
            content: Content::File(file),
            stamp,
            hot,
        })
    }

    /// `prepare` for a folder: its stamp is the fingerprint of its tree.
    fn prepare_folder(&self, name: &str, path: &Path, assign: Versioner<'_>) -> Result<Prepared> {
        let stamp = fingerprint(path).ok_or_else(|| changed(path))?;
        let entry = self.cache_entry(name);
        let (record, hot) = match fresh_record(name, &stamp, entry.as_ref()) {
            Some(r) if r.folder.is_some() => (r, None),
            _ => {
                info!("hashing the folder {name} ({} bytes)", stamp.size);
                let r = crate::tree::record_of_folder(name, path)?;
                if fingerprint(path) != Some(stamp) {
                    return Err(changed(path));
                }
                self.version_and_cache(r, &stamp, previous_record(name, entry), assign)
            }
        };
        let manifest = record.folder.as_ref().expect("a folder record");
        let content = Content::Tree(Tree::open(path, manifest)?);
        Ok(Prepared {
            record: Arc::new(record),
            content,
            stamp,
            hot,
        })
    }

    /// Shares what `prepare` found.
    pub fn insert_prepared(&self, p: Prepared) {
        let shared = Arc::new(SharedFile::complete(
            p.record.clone(),
            p.content,
            p.stamp,
            p.hot,
        ));
        write(&self.files).insert(p.record.name.clone(), shared);
    }

    /// Adds a file whose record is already known (a finished download).
    pub fn insert(&self, record: Arc<FileRecord>, file: File) {
        let stamp = Stamp::of_file(&file);
        let hot = self.remember(&record, &stamp);
        self.insert_prepared(Prepared {
            record,
            content: Content::File(file),
            stamp,
            hot,
        });
    }

    /// Adds a folder whose record is already known (a finished download,
    /// its tree just moved to `root`).
    pub fn insert_folder(&self, record: Arc<FileRecord>, root: &Path) -> Result<()> {
        let manifest = record
            .folder
            .as_ref()
            .ok_or_else(|| Error::Usage(format!("{} is not a folder", record.name)))?;
        let content = Content::Tree(Tree::open(root, manifest)?);
        let stamp = fingerprint(root).ok_or_else(|| changed(root))?;
        let hot = self.remember(&record, &stamp);
        self.insert_prepared(Prepared {
            record,
            content,
            stamp,
            hot,
        });
        Ok(())
    }

    /// Stops sharing a complete file (the watcher saw it go or change).
    pub fn remove(&self, name: &str) -> Option<Arc<SharedFile>> {
        write(&self.files).remove(name)
    }

    /// The complete files by name, with the stamp each was shared at.
    pub fn stamps(&self) -> BTreeMap<String, Stamp> {
        read(&self.files)
            .iter()
            .map(|(n, f)| (n.clone(), f.stamp))
            .collect()
    }

    /// Serves the verified pieces of a download in progress until
    /// `remove_partial` (or the finished file replaces it).
    pub fn add_partial(&self, reasm: Arc<Reassembler>) -> Result<()> {
        let file = reasm
            .file()
            .try_clone()
            .map_err(|e| Error::io("duplicating a file handle", e))?;
        let shared = Arc::new(SharedFile {
            record: reasm.record().clone(),
            content: Content::File(file),
            partial: Some(reasm),
            seeding: None,
            stamp: Stamp {
                size: 0,
                mtime_ns: 0,
            },
        });
        write(&self.partials).insert(shared.record.name.clone(), shared);
        Ok(())
    }

    pub fn remove_partial(&self, name: &str) {
        write(&self.partials).remove(name);
    }

    /// Downloads in progress, for the tracker's announces.
    pub fn partials(&self) -> Vec<Arc<SharedFile>> {
        read(&self.partials).values().cloned().collect()
    }

    /// A complete file, or else a download in progress, by name.
    pub fn servable(&self, name: &str) -> Option<Arc<SharedFile>> {
        self.get(name)
            .or_else(|| read(&self.partials).get(name).cloned())
    }

    /// The complete file or the download in progress of `name` whose MD5
    /// is `md5`: while it updates, a peer serves both versions.
    pub fn servable_version(&self, name: &str, md5: &Md5Digest) -> Option<Arc<SharedFile>> {
        let complete = self.get(name).filter(|f| f.record.md5 == *md5);
        complete.or_else(|| {
            read(&self.partials)
                .get(name)
                .filter(|f| f.record.md5 == *md5)
                .cloned()
        })
    }

    /// A complete file by name.
    pub fn get(&self, name: &str) -> Option<Arc<SharedFile>> {
        read(&self.files).get(name).cloned()
    }

    pub fn records(&self) -> Vec<Arc<FileRecord>> {
        read(&self.files)
            .values()
            .map(|f| f.record.clone())
            .collect()
    }

    /// Every complete item, as a local source of pieces for a download of
    /// `name` (`download::reuse`): its record is the index, and the item
    /// named `name` (the version being replaced) is also scanned for
    /// shifted content.
    pub fn reuse_candidates(&self, name: &str) -> Vec<Candidate> {
        read(&self.files)
            .values()
            .map(|f| Candidate {
                payload: f.clone(),
                record: Some(f.record.clone()),
                have: None,
                roll: f.record.name == name,
            })
            .collect()
    }

    fn cache_path(&self, name: &str) -> PathBuf {
        crate::layout::local_file(&self.records_dir, name, "rec")
    }

    /// The record this peer last had of `name` (of whatever content), for
    /// the version that follows it.
    pub fn last_record(&self, name: &str) -> Option<FileRecord> {
        previous_record(name, self.cache_entry(name))
    }

    /// The cache file of `name`, read and decoded once: the stamp of the
    /// bytes it was made for, and the record.
    fn cache_entry(&self, name: &str) -> Option<(Stamp, Stored)> {
        let bytes = fs::read(self.cache_path(name)).ok()?;
        let (head, rest) = bytes.split_first_chunk::<{ Stamp::LEN }>()?;
        Some((Stamp::from_bytes(head), record_file::decode(rest).ok()?))
    }

    /// A freshly hashed item's record as this peer publishes it (`assign`,
    /// from the record it had before), cached for `stamp`; with the pieces
    /// new since that record.
    fn version_and_cache(
        &self,
        hashed: FileRecord,
        stamp: &Stamp,
        previous: Option<FileRecord>,
        assign: Versioner<'_>,
    ) -> (FileRecord, Option<Bitfield>) {
        let record = assign(hashed, previous.as_ref());
        let hot = changed_pieces(&record, previous.as_ref());
        self.save_cache(&record, stamp);
        (record, hot)
    }

    /// Caches `record` (a download or a handover) for `stamp`; the pieces
    /// new since the record cached before.
    fn remember(&self, record: &FileRecord, stamp: &Stamp) -> Option<Bitfield> {
        let hot = changed_pieces(record, self.last_record(&record.name).as_ref());
        self.save_cache(record, stamp);
        hot
    }

    fn save_cache(&self, record: &FileRecord, stamp: &Stamp) {
        let mut bytes = stamp.to_bytes().to_vec();
        record_file::encode(record, &mut bytes);
        let path = self.cache_path(&record.name);
        if let Err(e) = write_atomically(&path, &bytes) {
            warn!("cannot cache the record of {}: {e}", record.name);
        }
    }
}

/// The record of a cache entry when it describes the bytes with `stamp`.
fn fresh_record(name: &str, stamp: &Stamp, entry: Option<&(Stamp, Stored)>) -> Option<FileRecord> {
    let (saved, stored) = entry?;
    if saved != stamp {
        return None;
    }
    let record = match stored {
        Stored::Current(r) => r,
        Stored::Legacy(_) => {
            // The file is here: hashing it again is the upgrade.
            info!("the cached record of {name} is of an older p2pshare; hashing the file again for the current record format");
            return None;
        }
    };
    (record.name == name && record.size == stamp.size).then(|| record.clone())
}

/// The record of a cache entry, whatever bytes it was made for.
fn previous_record(name: &str, entry: Option<(Stamp, Stored)>) -> Option<FileRecord> {
    match entry?.1 {
        Stored::Current(r) if r.name == name => Some(r),
        _ => None,
    }
}

/// The pieces of `record` whose bytes `previous` (the version this peer
/// had before) has nowhere: what peers updating from it will ask for.
/// None when there is no previous version or nothing changed.
fn changed_pieces(record: &FileRecord, previous: Option<&FileRecord>) -> Option<Bitfield> {
    let previous = previous.filter(|p| !p.same_content(record))?;
    let old: std::collections::HashSet<&[u8; 32]> = previous.piece_hashes.iter().collect();
    let mut hot = Bitfield::new(record.piece_count());
    for (i, h) in record.piece_hashes.iter().enumerate() {
        if !old.contains(h) {
            hot.set(i as u32);
        }
    }
    Some(hot)
}

fn changed(path: &Path) -> Error {
    Error::Integrity(format!(
        "{} changed while it was being hashed",
        path.display()
    ))
}

/// Creates a directory of the peer's, or says what to do about the
/// reason it cannot be.
fn make_dir(d: &Path) -> Result<()> {
    if let Ok(m) = d.symlink_metadata() {
        if m.file_type().is_symlink() && !d.exists() {
            let target = fs::read_link(d).unwrap_or_default();
            return Err(Error::Local(format!(
                "{} is a symlink to {}, which does not exist; create that folder, or remove the link",
                d.display(),
                target.display()
            )));
        }
        if !d.is_dir() {
            return Err(Error::Local(format!(
                "{} is not a folder; move it away, or give --dir another place",
                d.display()
            )));
        }
    }
    fs::create_dir_all(d)
        .map_err(|e| Error::Local(dir_advice(&format!("cannot create {}", d.display()), &e)))
}

/// What to say when `failed` (what could not be done in the peer's
/// directory) failed with `e`: the cause, and what to do about it.
pub fn dir_advice(failed: &str, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EROFS) => {
            format!("{failed}: the file system is read-only; give --dir a writable place")
        }
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "{failed}: permission denied; give --dir a folder this user may write to, or change its owner"
        ),
        Some(libc::ENOSPC) => format!("{failed}: the disk is full; free some space"),
        _ => format!("{failed}: {e}"),
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_hashes_once_and_skips_oddities() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::write(store.files_dir().join("a.txt"), b"hello").unwrap();
        fs::create_dir(store.files_dir().join("subdir")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", store.files_dir().join("link")).unwrap();
        let assign = |r: FileRecord, _: Option<&FileRecord>| r.versioned(1, "A");
        let scan = |s: &Store| -> Vec<Arc<FileRecord>> {
            s.scan(&assign)
                .unwrap()
                .into_iter()
                .map(|p| {
                    let r = p.record.clone();
                    s.insert_prepared(p);
                    r
                })
                .collect()
        };
        let mut recs = scan(&store);
        recs.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            recs.len(),
            2,
            "the file and the (empty) folder, not the link"
        );
        assert_eq!(recs[0].md5, crate::record::md5_of(b"hello"));
        assert_eq!(recs[1].name, "subdir");
        assert_eq!(recs[1].folder.as_ref().unwrap().entries(), []);
        assert!(store.get("a.txt").is_some());
        assert!(dir.path().join("records/a.txt.rec").exists());

        // A second store finds the cached record.
        let again = Store::open(dir.path()).unwrap();
        let stamp = Stamp::of(&fs::metadata(again.files_dir().join("a.txt")).unwrap());
        assert!(fresh_record("a.txt", &stamp, again.cache_entry("a.txt").as_ref()).is_some());

        // A changed file is hashed again, not trusted from the cache.
        fs::write(store.files_dir().join("a.txt"), b"changed!").unwrap();
        let stamp = Stamp::of(&fs::metadata(again.files_dir().join("a.txt")).unwrap());
        assert!(fresh_record("a.txt", &stamp, again.cache_entry("a.txt").as_ref()).is_none());
        let recs = scan(&again);
        let a = recs.iter().find(|r| r.name == "a.txt").unwrap();
        assert_eq!(a.md5, crate::record::md5_of(b"changed!"));
    }

    #[test]
    fn shared_files_and_folders_are_sources_of_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let piece = |i: u8| vec![i; crate::record::BLOCK_SIZE as usize];
        fs::write(
            store.files_dir().join("a.bin"),
            [piece(1), piece(2)].concat(),
        )
        .unwrap();
        fs::create_dir(store.files_dir().join("d")).unwrap();
        fs::write(store.files_dir().join("d/x"), [piece(3), piece(4)].concat()).unwrap();
        for p in store.scan(&|r, _| r).unwrap() {
            store.insert_prepared(p);
        }
        let mut found = store.reuse_candidates("a.bin");
        found.sort_by_key(|c| c.record.as_ref().unwrap().name.clone());
        let summary: Vec<_> = found
            .iter()
            .map(|c| {
                (
                    c.record.as_ref().unwrap().name.as_str(),
                    c.roll,
                    c.payload.file().is_some(),
                )
            })
            .collect();
        assert_eq!(summary, [("a.bin", true, true), ("d", false, false)]);

        // A new item made of a piece of each, from the file (copied by
        // the kernel) and from the folder's payload (read and written).
        let want = [piece(4), piece(1)].concat();
        let record = FileRecord::from_bytes("new", &want);
        let part =
            crate::download::reuse::tests::empty_part(&dir.path().join("part"), want.len() as u64);
        let mut have = Bitfield::new(2);
        let cancel = std::sync::atomic::AtomicBool::new(false);
        crate::download::reuse::fill(&record, &part, &mut have, &found, &cancel).unwrap();
        assert!(have.is_full());
        assert_eq!(fs::read(dir.path().join("part")).unwrap(), want);
    }
}
