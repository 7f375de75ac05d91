//! Downloads left unfinished by an earlier run (Ctrl-C, a crash, a full
//! disk): their resume states in `partial/`, listed at start and by
//! `status` with how far each got, so a user knows a `get` resumes them.

use crate::download::resume::state_progress;
use crate::units::{fraction, percent};
use std::path::Path;

/// One paused download.
#[derive(Debug, Clone, PartialEq)]
pub struct Paused {
    /// The item's name (for a name too long for a suffix, the stem its
    /// files are kept under).
    pub name: String,
    /// Of its pieces, the share verified on disk, 0 to 99.9.
    pub percent: f64,
}

impl Paused {
    /// `big.bin: 45.0 % verified and kept; run `get big.bin` to resume`,
    /// the words a Ctrl-C says.
    pub fn line(&self) -> String {
        format!(
            "{}: {:.1} % verified and kept; run `get {}` to resume",
            self.name, self.percent, self.name
        )
    }
}

/// The downloads with a resume state in `partial_dir` and at least one
/// verified piece, by name.
pub fn list(partial_dir: &Path) -> Vec<Paused> {
    let Ok(dir) = std::fs::read_dir(partial_dir) else {
        return Vec::new();
    };
    let mut out: Vec<Paused> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let name = name.strip_suffix(".state")?.to_string();
            let (have, pieces) = state_progress(&std::fs::read(e.path()).ok()?)?;
            (have > 0).then(|| Paused {
                name,
                percent: percent(fraction(u64::from(have), u64::from(pieces)), false),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitfield::Bitfield;
    use crate::download::resume::encode_state;
    use crate::fsutil::Stamp;
    use crate::record::FileRecord;

    #[test]
    fn states_with_verified_pieces_are_listed_with_their_share() {
        let dir = tempfile::tempdir().unwrap();
        let record = FileRecord::from_bytes("b.bin", &vec![3u8; 5 << 20]);
        let pieces = record.piece_count();
        let stamp = Stamp {
            size: 0,
            mtime_ns: 0,
        };
        let mut have = Bitfield::new(pieces);
        have.set_range(0, pieces / 4);
        std::fs::write(
            dir.path().join("b.bin.state"),
            encode_state(&record, stamp, &have),
        )
        .unwrap();
        let none = Bitfield::new(pieces);
        std::fs::write(
            dir.path().join("a.bin.state"),
            encode_state(&record, stamp, &none),
        )
        .unwrap();
        std::fs::write(dir.path().join("c.bin.state"), b"damaged").unwrap();
        std::fs::write(dir.path().join("b.bin.part"), b"").unwrap();
        let got = list(dir.path());
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].name, "b.bin");
        let want = 100.0 * f64::from(pieces / 4) / f64::from(pieces);
        assert!((got[0].percent - want).abs() < 0.1, "{got:?}");
        assert!(got[0]
            .line()
            .ends_with("% verified and kept; run `get b.bin` to resume"));
        assert!(list(&dir.path().join("none")).is_empty());
    }
}
