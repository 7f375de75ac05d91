//! The resume state of a partial download: which pieces are verified on
//! disk, and the partial file's size and mtime when that was true. Written
//! atomically; on load, a partial file that changed since is re-verified
//! piece by piece instead of being trusted.

use crate::bitfield::Bitfield;
use crate::error::{Error, Result};
use crate::fsutil::{write_atomically, Stamp};
pub use crate::layout::Paths;
use crate::record::FileRecord;
use log::{info, warn};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;

const MAGIC: &[u8; 9] = b"P2PSTATE1";

pub fn save(paths: &Paths, record: &FileRecord, file: &File, on_disk: &Bitfield) -> Result<()> {
    let out = encode_state(record, Stamp::of_file(file), on_disk);
    write_atomically(&paths.state, &out)
        .map_err(|e| Error::io(format!("saving {}", paths.state.display()), e))
}

/// The bytes of a state file: magic, the record's MD5 and size, the
/// partial file's stamp, the piece count and the verified pieces' bitmap.
pub fn encode_state(record: &FileRecord, stamp: Stamp, on_disk: &Bitfield) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + on_disk.len() as usize / 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&record.md5);
    out.extend_from_slice(&record.size.to_be_bytes());
    out.extend_from_slice(&stamp.to_bytes());
    out.extend_from_slice(&on_disk.len().to_be_bytes());
    out.extend_from_slice(&on_disk.to_bytes());
    out
}

/// What a state file says for `record`: the partial file's stamp when it
/// was saved and the pieces verified then. `None` for the state of
/// another file or a damaged one (the download starts afresh). Pure, and
/// fuzzed (`fuzz/src/bin/resume_state.rs`): the file is on disk, where
/// anything may have happened to it.
pub fn decode_state(bytes: &[u8], record: &FileRecord) -> Option<(Stamp, Bitfield)> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = bytes.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    if take(9)? != MAGIC || take(16)? != record.md5 {
        return None;
    }
    let size = u64::from_be_bytes(take(8)?.try_into().ok()?);
    let saved = Stamp::from_bytes(take(Stamp::LEN)?.try_into().ok()?);
    let pieces = u32::from_be_bytes(take(4)?.try_into().ok()?);
    if size != record.size || pieces != record.piece_count() {
        return None;
    }
    let claimed = Bitfield::from_bytes(pieces, take((pieces as usize).div_ceil(8))?)?;
    Some((saved, claimed))
}

/// The whole-file MD5 a state file was saved for: which version of a name
/// the partial download beside it is.
pub fn state_md5(bytes: &[u8]) -> Option<crate::record::Md5Digest> {
    let rest = bytes.strip_prefix(MAGIC)?;
    rest.get(..16)?.try_into().ok()
}

/// Opens (or creates) the partial file and returns it with the pieces
/// already verified in it.
pub fn open(paths: &Paths, record: &FileRecord) -> Result<(File, Bitfield)> {
    let ctx = || format!("opening {}", paths.part.display());
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&paths.part)
        .map_err(|e| Error::io(ctx(), e))?;
    let pieces = record.piece_count();
    let on_disk = match load(paths, record, &file) {
        Some(b) => b,
        None => {
            // Fresh start: a sparse file of the final size. Truncated only
            // if something is there: on ext4 a truncate to 0, even of an
            // empty file, makes the last close start writing back every
            // dirty page (auto_da_alloc), which held the end of a 256 MiB
            // `get` for 75-190 ms.
            let len = file.metadata().map_err(|e| Error::io(ctx(), e))?.len();
            if len > 0 {
                file.set_len(0).map_err(|e| Error::io(ctx(), e))?;
            }
            Bitfield::new(pieces)
        }
    };
    file.set_len(record.size).map_err(|e| Error::io(ctx(), e))?;
    Ok((file, on_disk))
}

fn load(paths: &Paths, record: &FileRecord, file: &File) -> Option<Bitfield> {
    let bytes = fs::read(&paths.state).ok()?;
    let (saved, claimed) = decode_state(&bytes, record)?;
    if Stamp::of_file(file) == saved {
        info!(
            "resuming {}: {} of {} pieces already verified",
            record.name,
            claimed.count(),
            claimed.len()
        );
        return Some(claimed);
    }
    warn!(
        "{} changed since its state was saved; re-verifying its pieces",
        paths.part.display()
    );
    Some(reverify(record, file, &claimed))
}

/// Keeps only the claimed pieces whose bytes on disk still match.
pub fn reverify(record: &FileRecord, file: &File, claimed: &Bitfield) -> Bitfield {
    let mut ok = Bitfield::new(claimed.len());
    let mut buf = vec![0u8; record.piece_size() as usize];
    for p in claimed.iter_ones() {
        let n = record.piece_len(p) as usize;
        if file
            .read_exact_at(&mut buf[..n], record.piece_offset(p))
            .is_ok()
            && record.verify_piece(p, &buf[..n])
        {
            ok.set(p);
        }
    }
    ok
}

pub fn remove(paths: &Paths) {
    let _ = fs::remove_file(&paths.state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::md5_of;

    #[test]
    fn state_round_trip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..12288u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 9) as u8)
            .collect();
        let src = dir.path().join("src");
        fs::write(&src, &data).unwrap();
        let record = FileRecord::from_file("f", &src).unwrap();
        let paths = Paths::new(dir.path(), "f");

        let (file, on_disk) = open(&paths, &record).unwrap();
        assert_eq!(on_disk.count(), 0);
        file.write_all_at(&data[..8192], 0).unwrap();
        let mut have = Bitfield::new(3);
        have.set_range(0, 2);
        save(&paths, &record, &file, &have).unwrap();
        drop(file);

        let (file, on_disk) = open(&paths, &record).unwrap();
        assert_eq!(on_disk, have, "unchanged partial is trusted");

        // Corrupt piece 1 behind our back: only piece 0 survives.
        file.write_all_at(&[0xee; 10], 4096 + 5).unwrap();
        drop(file);
        let (_file, on_disk) = open(&paths, &record).unwrap();
        assert_eq!(on_disk.iter_ones().collect::<Vec<_>>(), vec![0]);
        assert_ne!(md5_of(&data), [0; 16]);
    }
}
