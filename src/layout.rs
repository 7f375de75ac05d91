//! Where a peer keeps its own bookkeeping files: the names of the partial
//! data (`.part`), the resume state (`.state`), the scratch copies and the
//! cached records (`records/<stem>.rec`). Every such path is built here.

use crate::record::md5_of;
use crate::units::hex;
use std::path::{Path, PathBuf};

/// The stem of a peer's own bookkeeping files for `name` (partial data,
/// resume state, cached record): the name itself, or for names too long to
/// take a suffix within the 255-byte limit, a digest of it.
pub fn local_stem(name: &str) -> String {
    const ROOM_FOR_SUFFIXES: usize = 240;
    if name.len() <= ROOM_FOR_SUFFIXES {
        name.to_string()
    } else {
        format!("long-{}", hex(&md5_of(name.as_bytes())))
    }
}

/// `<dir>/<stem of name>.<suffix>`.
pub fn local_file(dir: &Path, name: &str, suffix: &str) -> PathBuf {
    dir.join(format!("{}.{suffix}", local_stem(name)))
}

/// A download's two files in its partial directory.
pub struct Paths {
    /// The partial data, moved into `files/` once verified.
    pub part: PathBuf,
    /// The resume state (`download::resume`).
    pub state: PathBuf,
}

impl Paths {
    pub fn new(partial_dir: &Path, name: &str) -> Paths {
        Paths {
            part: local_file(partial_dir, name, "part"),
            state: local_file(partial_dir, name, "state"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_get_short_stems() {
        assert_eq!(local_stem("a.txt"), "a.txt");
        let long = "y".repeat(255);
        let stem = local_stem(&long);
        assert!(stem.len() + ".state.tmp".len() <= 255);
        assert_ne!(stem, local_stem(&"z".repeat(255)));
    }

    #[test]
    fn paths() {
        let p = Paths::new(Path::new("d"), "f.bin");
        assert_eq!(p.part, Path::new("d/f.bin.part"));
        assert_eq!(p.state, Path::new("d/f.bin.state"));
        assert_eq!(local_file(Path::new("r"), "f", "rec"), Path::new("r/f.rec"));
    }
}
