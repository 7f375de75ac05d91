//! A shared folder on disk: listing it into a manifest, hashing it,
//! reading its payload at an offset (what the block server serves), and
//! writing a downloaded payload back out as a tree.
//!
//! **Symlinks are never followed.** Listing a folder leaves every symlink
//! out (with a warning), and every file is opened one component at a time
//! from the folder's own handle with `O_NOFOLLOW` (`open_beneath`), so a
//! link put inside a shared folder afterwards, or a folder swapped for a
//! link, makes the read fail instead of leaving the tree. The writer
//! checks every path again and creates every file and folder anew
//! (`O_EXCL`), under a folder it has just created itself.

use crate::error::{Error, Result};
use crate::fsutil::{is_foreign_hard_link, Stamp};
use crate::manifest::{check_path, Manifest, TreeNode, MAX_DEPTH, MAX_ENTRIES};
use crate::names::check_file_name;
use crate::record::{hash_path, md5_of, FileRecord};
use log::warn;
use md5::{Digest, Md5};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::UNIX_EPOCH;

/// One entry found while listing a folder.
struct Found {
    path: String,
    /// None for a folder.
    size: Option<u64>,
    mtime_ns: u128,
}

/// Every folder and regular file under `root`, paths relative to it and
/// sorted (so each folder comes before its content). Symlinks and other
/// special files are left out. A name that is not UTF-8 or breaks the
/// name rules is an error naming its path: the tree could not be rebuilt
/// as it is. A hard link owned by another user is left out as well
/// (`fsutil::foreign_hard_link`). What is left out is logged only when
/// `say` is set: the watcher fingerprints every folder twice a second,
/// and the warning belongs to the listing that shares it, once.
fn walk(root: &Path, say: bool) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), 0usize)];
    while let Some((rel, depth)) = stack.pop() {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let entries =
            fs::read_dir(&dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
            let name = entry.file_name().into_string().map_err(|n| {
                Error::Usage(format!(
                    "{}: the name {n:?} is not UTF-8; rename it",
                    dir.display()
                ))
            })?;
            check_file_name(&name).map_err(|e| {
                Error::Usage(format!(
                    "{}: {e}; rename it, or move it out of the folder",
                    dir.join(&name).display()
                ))
            })?;
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            // DirEntry::metadata does not follow a symlink.
            let meta = entry
                .metadata()
                .map_err(|e| Error::io(format!("reading {}", entry.path().display()), e))?;
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            if meta.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    return Err(Error::Usage(format!(
                        "{}: more than {MAX_DEPTH} folders deep",
                        root.display()
                    )));
                }
                stack.push((path.clone(), depth + 1));
                out.push(Found {
                    path,
                    size: None,
                    mtime_ns,
                });
            } else if meta.is_file() && is_foreign_hard_link(&meta) {
                if say {
                    warn!(
                        "{}: a hard link to a file of another user: left out",
                        entry.path().display()
                    );
                }
            } else if meta.is_file() {
                out.push(Found {
                    path,
                    size: Some(meta.len()),
                    mtime_ns,
                });
            } else if say {
                warn!(
                    "{}: not a regular file nor a folder (a symlink?): left out",
                    entry.path().display()
                );
            }
            if out.len() > MAX_ENTRIES {
                return Err(Error::Usage(format!(
                    "{} holds more than {MAX_ENTRIES} files and folders",
                    root.display()
                )));
            }
        }
    }
    out.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    for f in &out {
        check_path(&f.path).map_err(|e| Error::Usage(e.to_string()))?;
    }
    Ok(out)
}

/// The watcher's stamp of a folder: its payload's size, and a digest of
/// every path, kind, size and mtime in it (a folder's own mtime left
/// out, so moving the whole folder does not count as a change). None if
/// it cannot be listed.
pub fn fingerprint(root: &Path) -> Option<Stamp> {
    let found = walk(root, false).ok()?;
    let mut h = Md5::new();
    let mut size = 0;
    for f in &found {
        h.update(f.path.as_bytes());
        h.update([0]);
        match f.size {
            None => h.update(b"d"),
            Some(n) => {
                size += n;
                h.update(n.to_be_bytes());
                h.update(f.mtime_ns.to_be_bytes());
            }
        }
    }
    let digest: [u8; 16] = h.finalize().into();
    Some(Stamp {
        size,
        mtime_ns: u128::from_be_bytes(digest),
    })
}

/// Hashes the folder at `root` into the record of an item called `name`.
pub fn record_of_folder(name: &str, root: &Path) -> Result<FileRecord> {
    check_file_name(name)?;
    let found = walk(root, true)?;
    let mut entries: Vec<TreeNode> = found
        .iter()
        .map(|f| match f.size {
            None => TreeNode::Dir {
                path: f.path.clone(),
            },
            Some(size) => TreeNode::File {
                path: f.path.clone(),
                size,
                md5: [0; 16],
            },
        })
        .collect();
    let draft = Manifest::new(entries.clone()).map_err(|e| Error::Usage(e.to_string()))?;
    let size = draft.total_size();
    let sizes: Vec<u64> = draft.spans().iter().map(|s| s.size).collect();
    let dir = open_dir(root)?;
    let mut reader = TreeReader::new(&dir, &draft);
    let mut hashed = hash_path(&mut reader, size, &sizes, root, "changed")?;
    let mut md5s = std::mem::take(&mut hashed.parts).into_iter();
    for e in &mut entries {
        if let TreeNode::File { md5, .. } = e {
            *md5 = md5s.next().unwrap_or_default();
        }
    }
    let record = FileRecord::hashed(name, size, hashed, Some(Manifest::new(entries)?));
    // Every record travels in one frame (NEW_FILE, RECORD).
    let mut encoded = Vec::new();
    crate::wire::record_file::encode(&record, &mut encoded);
    if encoded.len() > crate::wire::MAX_FRAME {
        return Err(Error::Usage(format!(
            "{}: its list of files and folders is too long for one record \
             ({} bytes, at most {}); share it in parts",
            root.display(),
            encoded.len(),
            crate::wire::MAX_FRAME
        )));
    }
    Ok(record)
}

/// Opens the folder itself (not through a symlink).
pub fn open_dir(root: &Path) -> Result<File> {
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(root)
        .map_err(|e| Error::io(format!("opening the folder {}", root.display()), e))?;
    Ok(dir)
}

/// Opens `rel` (checked with `check_path`) under the folder `dir`, one
/// component at a time, never through a symlink.
pub fn open_beneath(dir: &File, rel: &str) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    check_path(rel).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let parts: Vec<&str> = rel.split('/').collect();
    let mut held: Option<OwnedFd> = None;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let flags = libc::O_RDONLY
            | libc::O_NOFOLLOW
            | libc::O_CLOEXEC
            | if last { 0 } else { libc::O_DIRECTORY };
        let c = CString::new(part.as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
        let at = held.as_ref().map_or(dir.as_raw_fd(), |f| f.as_raw_fd());
        // SAFETY: `at` is an open directory descriptor we hold, `c` a
        // NUL-terminated string; the result is checked before use.
        let fd = unsafe { libc::openat(at, c.as_ptr(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by openat and is owned by no one.
        held = Some(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let file = File::from(held.expect("a checked path has a component"));
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{rel} is not a regular file"),
        ));
    }
    Ok(file)
}

/// The payload of a folder as one stream: its files in manifest order.
struct TreeReader<'a> {
    dir: &'a File,
    spans: Vec<(String, u64)>,
    next: usize,
    current: Option<io::Take<File>>,
}

impl<'a> TreeReader<'a> {
    fn new(dir: &'a File, m: &Manifest) -> TreeReader<'a> {
        TreeReader {
            dir,
            spans: m
                .spans()
                .iter()
                .map(|s| (s.path.to_string(), s.size))
                .collect(),
            next: 0,
            current: None,
        }
    }
}

impl Read for TreeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(f) = &mut self.current {
                let n = f.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                if f.limit() > 0 {
                    // Shorter than listed: it changed meanwhile.
                    return Ok(0);
                }
                self.current = None;
            }
            let Some((path, size)) = self.spans.get(self.next) else {
                return Ok(0);
            };
            self.next += 1;
            // A byte past the listed size shows a file that grew.
            self.current = Some(open_beneath(self.dir, path)?.take(*size));
        }
    }
}

/// A complete folder being served: read at an offset of its payload.
pub struct Tree {
    dir: File,
    /// (path, payload offset, size) of each non-empty file.
    spans: Vec<(String, u64, u64)>,
}

impl Tree {
    pub fn open(root: &Path, m: &Manifest) -> Result<Tree> {
        Ok(Tree {
            dir: open_dir(root)?,
            spans: m
                .spans()
                .iter()
                .filter(|s| s.size > 0)
                .map(|s| (s.path.to_string(), s.offset, s.size))
                .collect(),
        })
    }

    /// Fills `buf` from the payload at `offset`, across files as needed.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        let mut i = self.spans.partition_point(|s| s.1 + s.2 <= offset);
        while !buf.is_empty() {
            let Some((path, start, size)) = self.spans.get(i) else {
                return Err(io::ErrorKind::UnexpectedEof.into());
            };
            let within = offset - start;
            let n = (size - within).min(buf.len() as u64) as usize;
            let file = open_beneath(&self.dir, path)?;
            file.read_exact_at(&mut buf[..n], within)?;
            buf = &mut buf[n..];
            offset += n as u64;
            i += 1;
        }
        Ok(())
    }
}

/// Copies the folder `src` to `dest` (which must not exist): its folders
/// and regular files, symlinks left out, every file read beneath `src`.
/// On error what was copied is removed.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    let found = walk(src, true)?;
    let dir = open_dir(src)?;
    fs::create_dir(dest).map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
    let copied = (|| -> Result<()> {
        for f in &found {
            let to = dest.join(&f.path);
            let ctx = || {
                format!(
                    "copying {} to {}",
                    src.join(&f.path).display(),
                    to.display()
                )
            };
            match f.size {
                None => fs::create_dir(&to).map_err(|e| Error::io(ctx(), e))?,
                Some(_) => {
                    let mut from = open_beneath(&dir, &f.path).map_err(|e| Error::io(ctx(), e))?;
                    let mut out = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&to)
                        .map_err(|e| Error::io(ctx(), e))?;
                    io::copy(&mut from, &mut out).map_err(|e| Error::io(ctx(), e))?;
                }
            }
        }
        Ok(())
    })();
    if copied.is_err() {
        let _ = fs::remove_dir_all(dest);
    }
    copied
}

/// Writes the verified payload in `part` out as the tree `m` describes,
/// into `dest`, which must not exist (it is created here). Every path is
/// checked again, every file's MD5 against the manifest. On any error
/// what was written is removed.
pub fn assemble(part: &File, m: &Manifest, dest: &Path) -> Result<()> {
    m.validate()?;
    fs::create_dir(dest).map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
    let written = write_tree(part, m, dest);
    if written.is_err() {
        let _ = fs::remove_dir_all(dest);
    }
    written
}

fn write_tree(part: &File, m: &Manifest, dest: &Path) -> Result<()> {
    let ctx = |p: &Path| format!("writing {}", p.display());
    let mut offset = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for e in m.entries() {
        // validate() checked this; the writer does not rely on it.
        check_path(e.path())?;
        let path = dest.join(e.path());
        match e {
            TreeNode::Dir { .. } => fs::create_dir(&path).map_err(|e| Error::io(ctx(&path), e))?,
            TreeNode::File { size, md5, .. } => {
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|e| Error::io(ctx(&path), e))?;
                let mut h = Md5::new();
                let mut left = *size;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    part.read_exact_at(&mut buf[..n], offset)
                        .map_err(|e| Error::io("reading the downloaded folder", e))?;
                    h.update(&buf[..n]);
                    io::Write::write_all(&mut out, &buf[..n])
                        .map_err(|e| Error::io(ctx(&path), e))?;
                    offset += n as u64;
                    left -= n as u64;
                }
                let got: [u8; 16] = h.finalize().into();
                if got != *md5 && !(*size == 0 && *md5 == md5_of(b"")) {
                    return Err(Error::Integrity(format!(
                        "{}: its bytes do not match the folder's manifest",
                        e.path()
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_tree(root: &Path) {
        fs::create_dir_all(root.join("docs/sub")).unwrap();
        fs::create_dir_all(root.join("empty dir")).unwrap();
        fs::write(root.join("a.txt"), b"hello").unwrap();
        fs::write(root.join("docs/empty"), b"").unwrap();
        fs::write(root.join("docs/sub/z.bin"), vec![7u8; 10_000]).unwrap();
    }

    fn payload() -> Vec<u8> {
        [b"hello".as_slice(), &[], &vec![7u8; 10_000]].concat()
    }

    #[test]
    fn a_folder_hashes_reads_and_writes_back_identically() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("tree");
        make_tree(&root);
        std::os::unix::fs::symlink("/etc/passwd", root.join("docs/link")).unwrap();
        let r = record_of_folder("tree", &root).unwrap();
        r.validate().unwrap();
        let data = payload();
        assert_eq!(r.size, data.len() as u64);
        assert_eq!(r.md5, md5_of(&data));
        assert_eq!(
            r.piece_hashes,
            FileRecord::from_bytes("tree", &data).piece_hashes
        );
        let m = r.folder.as_ref().unwrap();
        let paths: Vec<&str> = m.entries().iter().map(TreeNode::path).collect();
        assert_eq!(
            paths,
            [
                "a.txt",
                "docs",
                "docs/empty",
                "docs/sub",
                "docs/sub/z.bin",
                "empty dir"
            ],
            "the symlink is left out"
        );
        let spans = m.spans();
        assert_eq!(spans[0].md5, md5_of(b"hello"));
        assert_eq!(spans[1].md5, md5_of(b""));
        assert_eq!(spans[2].md5, md5_of(&[7u8; 10_000]));

        // Served: any slice across the files.
        let tree = Tree::open(&root, m).unwrap();
        let mut buf = vec![0u8; 100];
        tree.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, data[..100]);
        let mut buf = vec![0u8; 4096];
        tree.read_exact_at(&mut buf, 4096).unwrap();
        assert_eq!(buf, data[4096..8192]);
        let mut tail = vec![0u8; 10];
        assert!(tree
            .read_exact_at(&mut tail, data.len() as u64 - 5)
            .is_err());

        // Written back from the payload: the same tree.
        let part_path = tmp.path().join("p");
        fs::write(&part_path, &data).unwrap();
        let out = tmp.path().join("out");
        assemble(&File::open(&part_path).unwrap(), m, &out).unwrap();
        assert_eq!(fs::read(out.join("a.txt")).unwrap(), b"hello");
        assert_eq!(fs::read(out.join("docs/empty")).unwrap(), b"");
        assert!(out.join("empty dir").is_dir());
        assert_eq!(record_of_folder("tree", &out).unwrap(), r);
        assert_eq!(fingerprint(&out).unwrap().size, data.len() as u64);
    }

    #[test]
    fn the_writer_refuses_a_hostile_manifest_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let part_path = tmp.path().join("p");
        fs::write(&part_path, b"evil!").unwrap();
        let part = File::open(&part_path).unwrap();
        let evil = |path: &str| TreeNode::File {
            path: path.into(),
            size: 5,
            md5: md5_of(b"evil!"),
        };
        for m in [
            Manifest::unchecked(vec![evil("../escaped")]),
            Manifest::unchecked(vec![evil("/tmp/escaped")]),
            Manifest::unchecked(vec![evil("a/../../escaped")]),
        ] {
            let out = tmp.path().join("out");
            assert!(assemble(&part, &m, &out).is_err(), "{m:?}");
            assert!(!out.exists());
            assert!(!tmp.path().join("escaped").exists());
        }
        // A file whose bytes are not the manifest's.
        let liar = Manifest::unchecked(vec![TreeNode::File {
            path: "x".into(),
            size: 5,
            md5: [0; 16],
        }]);
        assert!(assemble(&part, &liar, &tmp.path().join("out")).is_err());
        assert!(!tmp.path().join("out").exists());
    }

    #[test]
    fn reads_never_follow_a_symlink_out_of_the_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("tree");
        make_tree(&root);
        let r = record_of_folder("tree", &root).unwrap();
        let tree = Tree::open(&root, r.folder.as_ref().unwrap()).unwrap();
        // A folder of the tree swapped for a link elsewhere, then a file.
        let outside = tmp.path().join("outside/sub");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("z.bin"), vec![9u8; 10_000]).unwrap();
        fs::rename(root.join("docs"), tmp.path().join("docs-moved")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), root.join("docs")).unwrap();
        let mut buf = vec![0u8; 100];
        assert!(tree.read_exact_at(&mut buf, 10).is_err());
        fs::remove_file(root.join("docs")).unwrap();
        fs::create_dir_all(root.join("docs/sub")).unwrap();
        std::os::unix::fs::symlink(outside.join("z.bin"), root.join("docs/sub/z.bin")).unwrap();
        assert!(tree.read_exact_at(&mut buf, 10).is_err());
        assert!(open_beneath(&open_dir(&root).unwrap(), "docs/sub/z.bin").is_err());
    }
}
