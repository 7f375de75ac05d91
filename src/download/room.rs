//! Room on disk for a download, checked once its partial file is open and
//! before anything is fetched: what is still to be written (the file's
//! size less what its partial file already holds) plus room to save the
//! resume state must be free where the partial file lives (`statvfs`). A
//! short disk fetches nothing and says what is needed and what is free.
//!
//! Tests cannot fill a disk at will: a debug build (what `cargo test`
//! runs) reads the free space from `P2PSHARE_TEST_FREE_BYTES` when it is
//! set (as the follower's check does). A release build never looks at it.

use crate::error::{Error, Result};
use crate::fsutil::free_space;
use crate::units::human_bytes;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Debug builds only: the free space to assume, in bytes.
pub const TEST_FREE_BYTES_ENV: &str = "P2PSHARE_TEST_FREE_BYTES";

/// Kept free beyond the data: two copies of the state (the new one is
/// written beside the old) and the file system's own bookkeeping.
pub fn state_room(state_len: u64) -> u64 {
    2 * state_len + (64 << 10)
}

/// Whether `dir`'s file system has room for the rest of `name`, `size`
/// bytes of which `part` already holds some, and `state_len` bytes of
/// state.
pub fn check(dir: &Path, name: &str, size: u64, part: &File, state_len: u64) -> Result<()> {
    // Allocated bytes, not the length: the partial file is sparse.
    let held = part.metadata().map_or(0, |m| m.blocks() * 512);
    let free = free_bytes(dir)?;
    enough(name, size.saturating_sub(held), state_len, free, dir)
}

/// The free space where `dir` lives (or, in a debug build, what
/// `P2PSHARE_TEST_FREE_BYTES` says): the one reading both this check and
/// the follower's use.
pub fn free_bytes(dir: &Path) -> Result<u64> {
    if cfg!(debug_assertions) {
        if let Some(n) = std::env::var(TEST_FREE_BYTES_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
        {
            return Ok(n);
        }
    }
    free_space(dir)
        .map_err(|e| Error::io(format!("reading the free space of {}", dir.display()), e))
}

/// The rule itself: `to_write` plus the state's room must fit in `free`.
fn enough(name: &str, to_write: u64, state_len: u64, free: u64, dir: &Path) -> Result<()> {
    let need = to_write.saturating_add(state_room(state_len));
    if free >= need {
        return Ok(());
    }
    Err(Error::Local(format!(
        "not enough free disk space for {name}: it needs {} ({} still to fetch, plus {} for its \
         state) and {} has {} free; nothing was fetched. Free some space, or give --dir a larger disk",
        human_bytes(need),
        human_bytes(to_write),
        human_bytes(state_room(state_len)),
        dir.display(),
        human_bytes(free)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_of_the_file_and_room_for_its_state_must_fit() {
        let dir = Path::new("/d/partial");
        let room = state_room(100);
        assert!(enough("a", 1000, 100, 1000 + room, dir).is_ok());
        let e = enough("f.bin", 100_000_000, 100, 30_000_000, dir)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "not enough free disk space for f.bin: it needs 100.1 MB (100.0 MB still to fetch"
            ),
            "{e}"
        );
        assert!(
            e.contains("/d/partial has 30.0 MB free; nothing was fetched"),
            "{e}"
        );
        // What the partial file holds already is not needed again.
        assert!(enough("a", 0, 100, room, dir).is_ok());
    }
}
