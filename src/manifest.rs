//! A folder shared as one item: its manifest, the list of what the tree
//! holds. The item's payload is the concatenation of its files in
//! manifest order, so blocks, pieces, swarming and resume work as for a
//! single file; the manifest says how to cut the payload back into a
//! tree. Pure: the checks every manifest from the network passes before
//! any path is built (`validate`), nothing that touches the disk
//! (`tree` does that).
//!
//! A path is relative, its components joined by `/`, and every component
//! follows the file name rules (`names::check_file_name`): no `..`, no
//! empty component, no `\`, no control characters, so no path can leave
//! the tree. Entries come in strictly increasing byte order of their
//! paths, each after the folder that holds it, and a folder is listed
//! even when it is not empty, so the tree is rebuilt exactly, empty
//! folders and empty files included. There is no symlink entry: a
//! symlink is never shared.

use crate::digest::Md5Digest;
use crate::error::{Error, Result};
use crate::names::check_file_name;
use std::collections::HashSet;

/// Longest path in a manifest, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Most folders deep a path may go.
pub const MAX_DEPTH: usize = 64;
/// Most entries (files and folders) in one manifest.
pub const MAX_ENTRIES: usize = 65_536;
/// Most bytes all the files may add up to: a record's largest payload
/// (`record::MAX_FILE_SIZE`; not named here, `record` builds on this
/// module).
pub const MAX_TOTAL_SIZE: u64 = 1 << 40;

/// One path of a folder's tree: a directory, or a file with its size and MD5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeNode {
    /// A folder (empty or not).
    Dir { path: String },
    /// A file: its bytes are the next `size` bytes of the payload.
    File {
        path: String,
        size: u64,
        md5: Md5Digest,
    },
}

impl TreeNode {
    pub fn path(&self) -> &str {
        match self {
            TreeNode::Dir { path } | TreeNode::File { path, .. } => path,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Manifest {
    entries: Vec<TreeNode>,
}

/// A file of the tree and where its bytes lie in the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span<'a> {
    pub path: &'a str,
    pub offset: u64,
    pub size: u64,
    pub md5: Md5Digest,
}

impl Manifest {
    /// A manifest of `entries`, which must pass `validate`.
    pub fn new(entries: Vec<TreeNode>) -> Result<Manifest> {
        let m = Manifest { entries };
        m.validate()?;
        Ok(m)
    }

    /// A manifest that has not been checked: only for tests of the code
    /// that must refuse a bad one anyway (the tree writer).
    #[doc(hidden)]
    pub fn unchecked(entries: Vec<TreeNode>) -> Manifest {
        Manifest { entries }
    }

    pub fn entries(&self) -> &[TreeNode] {
        &self.entries
    }

    /// The files in payload order, with their offsets.
    pub fn spans(&self) -> Vec<Span<'_>> {
        let mut offset = 0;
        let mut out = Vec::new();
        for e in &self.entries {
            if let TreeNode::File { path, size, md5 } = e {
                out.push(Span {
                    path,
                    offset,
                    size: *size,
                    md5: *md5,
                });
                offset += size;
            }
        }
        out
    }

    /// The payload's size: every file's size added up.
    pub fn total_size(&self) -> u64 {
        self.spans().iter().map(|s| s.size).sum()
    }

    pub fn file_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e, TreeNode::File { .. }))
            .count()
    }

    /// Every rule: paths (`check_path`), order, each entry's folder
    /// listed before it as a folder, no duplicates, the limits.
    pub fn validate(&self) -> Result<()> {
        if self.entries.len() > MAX_ENTRIES {
            return Err(bad("", "more than 65,536 entries"));
        }
        let mut dirs: HashSet<&str> = HashSet::new();
        let mut last: Option<&str> = None;
        let mut total = 0u64;
        for e in &self.entries {
            let path = e.path();
            check_path(path)?;
            if last.is_some_and(|l| l.as_bytes() >= path.as_bytes()) {
                return Err(bad(path, "entries out of order or listed twice"));
            }
            if let Some((parent, _)) = path.rsplit_once('/') {
                if !dirs.contains(parent) {
                    return Err(bad(path, "its folder is not listed before it"));
                }
            }
            match e {
                TreeNode::Dir { path } => {
                    dirs.insert(path);
                }
                TreeNode::File { size, .. } => {
                    total = total
                        .checked_add(*size)
                        .filter(|t| *t <= MAX_TOTAL_SIZE)
                        .ok_or_else(|| bad(path, "the files add up to more than 1 TiB"))?;
                }
            }
            last = Some(path);
        }
        Ok(())
    }
}

/// A relative path of a tree: 1 to `MAX_DEPTH` components joined by `/`,
/// each a plain file name, at most `MAX_PATH_BYTES` in all. So no
/// absolute path, no `..`, no empty or `.` component.
pub fn check_path(path: &str) -> Result<()> {
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return Err(bad(path, "a path is 1 to 4096 bytes"));
    }
    let mut depth = 0;
    for part in path.split('/') {
        depth += 1;
        if depth > MAX_DEPTH {
            return Err(bad(path, "more than 64 folders deep"));
        }
        check_file_name(part).map_err(|e| bad(path, &e.to_string()))?;
    }
    Ok(())
}

fn bad(path: &str, why: &str) -> Error {
    Error::protocol(format!(
        "folder manifest: {:?}: {why}",
        path.chars().take(80).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(p: &str) -> TreeNode {
        TreeNode::Dir { path: p.into() }
    }
    fn file(p: &str, size: u64) -> TreeNode {
        TreeNode::File {
            path: p.into(),
            size,
            md5: [0; 16],
        }
    }

    #[test]
    fn a_tree_with_nested_and_empty_folders_and_empty_files() {
        let m = Manifest::new(vec![
            file("a.txt", 5),
            dir("docs"),
            file("docs/empty", 0),
            dir("docs/sub"),
            file("docs/sub/z", 7),
            dir("empty dir"),
        ])
        .unwrap();
        assert_eq!(m.total_size(), 12);
        assert_eq!(m.file_count(), 3);
        let spans = m.spans();
        assert_eq!(
            spans.iter().map(|s| (s.path, s.offset)).collect::<Vec<_>>(),
            [("a.txt", 0), ("docs/empty", 5), ("docs/sub/z", 5)]
        );
        Manifest::new(vec![]).unwrap();
    }

    #[test]
    fn hostile_paths_are_refused() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            "a//b",
            "a/",
            "./a",
            "a\\b",
            "nul\0",
            "a/\x1b[2J",
            " lead",
        ] {
            assert!(check_path(p).is_err(), "{p:?}");
            assert!(Manifest::new(vec![file(p, 1)]).is_err(), "{p:?}");
        }
        let deep = vec!["d"; 65].join("/");
        assert!(check_path(&deep).is_err());
        assert!(check_path(&"x/".repeat(2100)).is_err());
    }

    #[test]
    fn order_parents_and_duplicates_are_checked() {
        // A file whose folder is not listed, or listed as a file.
        assert!(Manifest::new(vec![file("d/x", 1)]).is_err());
        assert!(Manifest::new(vec![file("d", 1), file("d/x", 1)]).is_err());
        // Out of order, twice.
        assert!(Manifest::new(vec![file("b", 1), file("a", 1)]).is_err());
        assert!(Manifest::new(vec![file("a", 1), file("a", 1)]).is_err());
        assert!(Manifest::new(vec![dir("a"), dir("a")]).is_err());
        // A folder after its content.
        assert!(Manifest::new(vec![file("a/x", 1), dir("a")]).is_err());
        // Sizes that overflow.
        assert!(Manifest::new(vec![file("a", u64::MAX), file("b", 2)]).is_err());
    }
}
