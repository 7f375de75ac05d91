//! File records on disk, so a restart loses none: `DIR/records/<name>.rec`
//! holds the record in its stored form (`wire::record_file`: the RECORD frame).
//! Writes are atomic and synced (`fsutil::write_durably`). At start every
//! `.rec` is decoded and validated; a bad one is logged and skipped, never
//! deleted. A version 1 record (MD5 piece hashes) cannot be upgraded here,
//! for that needs the file's data: it is loaded as a `LegacyRecord`, which
//! keeps its name for the same content until a holder publishes the file
//! again (peers do so by themselves, §5.2), and then overwritten.
//!
//! A name too long for `<name>.rec.tmp` to fit the 255-byte limit of a
//! file name goes to `DIR/records/long/<md5 of the name>.rec` instead.

use crate::error::{Error, Result};
use crate::fsutil::write_durably;
use crate::record::{md5_of, FileRecord, LegacyRecord};
use crate::units::hex;
use crate::wire::record_file::{self, Stored};
use log::{debug, warn};
use std::fs;
use std::path::{Path, PathBuf};

const EXT: &str = ".rec";
const TMP_EXT: &str = ".rec.tmp";
/// Longest name stored as `<name>.rec`: its `.rec.tmp` must fit 255 bytes.
const MAX_PLAIN_NAME: usize = 255 - TMP_EXT.len();

pub struct RecordStore {
    dir: PathBuf,
}

impl RecordStore {
    /// Opens (creating it if needed) the record store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<RecordStore> {
        let dir = data_dir.join("records");
        fs::create_dir_all(&dir).map_err(|e| Error::Io {
            context: format!("cannot use the data directory {}", data_dir.display()),
            source: std::io::Error::new(e.kind(), format!("{e}; choose another with --data")),
        })?;
        Ok(RecordStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the record named `name` lives.
    pub fn path_of(&self, name: &str) -> PathBuf {
        if name.len() <= MAX_PLAIN_NAME {
            self.dir.join(format!("{name}{EXT}"))
        } else {
            self.dir
                .join("long")
                .join(format!("{}{EXT}", hex(&md5_of(name.as_bytes()))))
        }
    }

    /// Writes one record atomically: a crash leaves the old file or the new
    /// one, never half of one.
    pub fn save(&self, record: &FileRecord) -> Result<()> {
        let path = self.path_of(&record.name);
        let mut bytes = Vec::new();
        record_file::encode(record, &mut bytes);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            write_durably(&path, &bytes)
        };
        write().map_err(|e| {
            Error::io(
                format!("saving the record of {} to {}", record.name, path.display()),
                e,
            )
        })
    }

    /// Deletes the record named `name`, if there is one.
    pub fn remove(&self, name: &str) -> Result<()> {
        let path = self.path_of(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
                format!("deleting the record of {name} ({})", path.display()),
                e,
            )),
            _ => Ok(()),
        }
    }

    /// Every valid record on disk, sorted by name, and apart from them the
    /// version 1 records to upgrade. Bad files are logged and skipped.
    pub fn load(&self) -> Loaded {
        let mut out = Vec::new();
        self.load_dir(&self.dir, false, &mut out);
        let long = self.dir.join("long");
        if long.is_dir() {
            self.load_dir(&long, true, &mut out);
        }
        out.sort_by(|a, b| a.name().cmp(b.name()));
        let mut loaded = Loaded::default();
        for stored in out {
            match stored {
                Stored::Current(r) => loaded.records.push(r),
                Stored::Legacy(l) => loaded.legacy.push(l),
            }
        }
        loaded
    }

    fn load_dir(&self, dir: &Path, hashed: bool, out: &mut Vec<Stored>) {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                warn!(
                    "cannot read {}: {e}; no records loaded from it",
                    dir.display()
                );
                return;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
                warn!("skipping {}: not a UTF-8 file name", path.display());
                continue;
            };
            if file_name.ends_with(TMP_EXT) {
                debug!("ignoring leftover {}", path.display());
                continue;
            }
            let Some(stem) = file_name.strip_suffix(EXT) else {
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let stored = fs::read(&path)
                .map_err(|e| Error::io("reading it", e))
                .and_then(|bytes| decode_stored(stem, hashed, &bytes));
            match stored {
                Ok(r) => {
                    if let Stored::Legacy(l) = &r {
                        warn_legacy(&path, l);
                    }
                    out.push(r)
                }
                Err(e) => warn!("skipping {}: {e}", path.display()),
            }
        }
    }
}

/// What `load` found.
#[derive(Debug, Default, PartialEq)]
pub struct Loaded {
    pub records: Vec<FileRecord>,
    /// Version 1 records: names kept for their content until re-published.
    pub legacy: Vec<LegacyRecord>,
}

/// Tells the operator what happens to a version 1 record and what to do.
fn warn_legacy(path: &Path, l: &LegacyRecord) {
    warn!(
        "{} is a version 1 record (MD5 piece hashes) of {:?}, which this tracker no longer \
         serves and cannot upgrade without the file: {:?} stays reserved for the same content \
         (md5 {}, {} bytes) and is served again once a holder publishes it, which peers do \
         by themselves when they next announce; delete the file to free the name",
        path.display(),
        l.name,
        l.name,
        hex(&l.md5),
        l.size
    );
}

/// The record in the bytes of `<stem>.rec` (under `long/` when `hashed`),
/// as the loader takes it: one valid record whose name is the one the
/// file is named after. Everything a tracker trusts from its disk passes
/// here (and is fuzzed: `fuzz/src/bin/persist.rs`).
/// A version 1 record (MD5 piece hashes) comes back as `Stored::Legacy`.
pub fn decode_stored(stem: &str, hashed: bool, bytes: &[u8]) -> Result<Stored> {
    let r = record_file::decode(bytes)?;
    let name = r.name();
    let expected = if hashed {
        hex(&md5_of(name.as_bytes()))
    } else {
        name.to_string()
    };
    if stem != expected {
        let home = if name.len() <= MAX_PLAIN_NAME {
            format!("{name}{EXT}")
        } else {
            format!("long/{}{EXT}", hex(&md5_of(name.as_bytes())))
        };
        return Err(Error::protocol(format!(
            "it holds the record of {name:?}, which belongs in {home}"
        )));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Encode, TrackerReply};

    #[test]
    fn round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let store = RecordStore::open(&tmp.path().join("data")).unwrap();
        let a = FileRecord::from_bytes("a.bin", &[1; 10_000]);
        let b = FileRecord::from_bytes("naïve b.txt", b"hello");
        let e = FileRecord::from_bytes("empty", b"");
        let long = FileRecord::from_bytes(&"L".repeat(255), b"long name");
        for r in [&b, &a, &e, &long] {
            store.save(r).unwrap();
        }
        store.save(&a).unwrap(); // overwriting is fine
        assert!(store.dir().join("a.bin.rec").is_file());
        assert!(!store.dir().join("a.bin.rec.tmp").exists());
        assert!(store
            .path_of(&long.name)
            .starts_with(store.dir().join("long")));
        let again = RecordStore::open(&tmp.path().join("data")).unwrap();
        assert_eq!(again.load().records, vec![long, a, e, b]);
    }

    #[test]
    fn bad_files_are_skipped_not_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let store = RecordStore::open(tmp.path()).unwrap();
        let good = FileRecord::from_bytes("good", b"good data");
        store.save(&good).unwrap();
        let dir = store.dir().to_path_buf();

        // Garbage, a truncated record, a non-RECORD frame, a record under
        // the wrong file name, a leftover temp file, an invalid record.
        fs::write(dir.join("garbage.rec"), b"\xff\xff\xff\xff junk").unwrap();
        let mut bytes = Vec::new();
        TrackerReply::Record {
            record: FileRecord::from_bytes("trunc", &[5; 9000]),
        }
        .encode(&mut bytes);
        fs::write(dir.join("trunc.rec"), &bytes[..bytes.len() - 3]).unwrap();
        let mut ok = Vec::new();
        TrackerReply::Ok.encode(&mut ok);
        fs::write(dir.join("ok.rec"), &ok).unwrap();
        fs::copy(dir.join("good.rec"), dir.join("other.rec")).unwrap();
        fs::write(dir.join("x.rec.tmp"), b"half").unwrap();
        let mut bad = FileRecord::from_bytes("bad", &[1; 5000]);
        bad.piece_hashes.pop();
        let mut bytes = Vec::new();
        TrackerReply::Record { record: bad }.encode(&mut bytes);
        fs::write(dir.join("bad.rec"), &bytes).unwrap();
        fs::create_dir(dir.join("long")).unwrap();
        fs::write(dir.join("long").join("nothex.rec"), &ok).unwrap();

        assert_eq!(store.load().records, vec![good]);
        assert!(store.load().legacy.is_empty());
        for f in [
            "garbage.rec",
            "trunc.rec",
            "ok.rec",
            "other.rec",
            "x.rec.tmp",
            "bad.rec",
        ] {
            assert!(dir.join(f).exists(), "{f} kept");
        }
    }

    #[test]
    fn unusable_data_dir_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        let e = RecordStore::open(&file)
            .err()
            .expect("a file is not a directory");
        assert!(
            e.to_string().contains("cannot use the data directory"),
            "{e}"
        );
    }
}
