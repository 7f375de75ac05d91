//! Room on disk for a follow download, checked before it starts: the
//! item's size plus a margin must be free on the file system of `files/`
//! (the partial copy is written beside it, and the old version stays until
//! the swap). A short disk fetches nothing and says so; the follower tries
//! again later.
//!
//! Tests cannot fill a disk: a debug build (what `cargo test` runs) reads
//! the free space from `P2PSHARE_TEST_FREE_BYTES` when it is set. A
//! release build never looks at it.

use crate::download::room::free_bytes;
use crate::error::{Error, Result};
use crate::units::human_bytes;
use std::path::Path;

/// Kept free beyond the item: for the state file, the record, and the
/// rest of the system.
pub const MARGIN: u64 = 16 << 20;

/// Whether `files_dir`'s file system has room for `size` bytes of `name`.
pub fn check(files_dir: &Path, name: &str, size: u64) -> Result<()> {
    let free = free_bytes(files_dir)?;
    enough(name, size, free, &files_dir.display().to_string())
}

/// The rule itself: `size` plus `MARGIN` must fit in `free`.
fn enough(name: &str, size: u64, free: u64, place: &str) -> Result<()> {
    let need = size.saturating_add(MARGIN);
    if free >= need {
        return Ok(());
    }
    Err(Error::Local(format!(
        "not enough free disk space for {name}: it needs {} ({} plus {} kept free) and {place} \
         has {} free; nothing was fetched. Free some space: the follower tries again by itself",
        human_bytes(need),
        human_bytes(size),
        human_bytes(MARGIN),
        human_bytes(free)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_item_and_the_margin_must_fit() {
        assert!(enough("a", 1000, 1000 + MARGIN, "files").is_ok());
        let e = enough("big.img", 1000, 999 + MARGIN, "/p/files").unwrap_err();
        assert!(matches!(e, Error::Local(_)));
        let e = e.to_string();
        assert!(
            e.starts_with("not enough free disk space for big.img"),
            "{e}"
        );
        assert!(
            e.contains("/p/files has") && e.contains("nothing was fetched"),
            "{e}"
        );
        assert!(
            enough("huge", u64::MAX, u64::MAX - 1, "f").is_err(),
            "no overflow"
        );
    }
}
