//! Small file-system helpers shared by the peer's store and the download's
//! resume state.

use std::fs::{self, File, Metadata};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Size and modification time: what says a file is unchanged since.
#[derive(PartialEq, Eq, Debug, Clone, Copy)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: u128,
}

impl Stamp {
    pub const LEN: usize = 24;

    pub fn of(meta: &Metadata) -> Stamp {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Stamp {
            size: meta.len(),
            mtime_ns,
        }
    }

    /// The stamp of an open file; a zero stamp if it cannot be read, which
    /// matches nothing real and so is never trusted.
    pub fn of_file(file: &File) -> Stamp {
        file.metadata().map(|m| Stamp::of(&m)).unwrap_or(Stamp {
            size: 0,
            mtime_ns: 0,
        })
    }

    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..8].copy_from_slice(&self.size.to_be_bytes());
        b[8..].copy_from_slice(&self.mtime_ns.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; Self::LEN]) -> Stamp {
        let mut size = [0u8; 8];
        size.copy_from_slice(&b[..8]);
        let mut t = [0u8; 16];
        t.copy_from_slice(&b[8..]);
        Stamp {
            size: u64::from_be_bytes(size),
            mtime_ns: u128::from_be_bytes(t),
        }
    }
}

/// Writes a small file so that readers see the old or the new content,
/// never a torn one: temp file (`<path>.tmp`) in the same directory, then
/// rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_via_tmp(path, bytes, false)
}

/// `write_atomically`, and on disk when it returns: the data and the
/// rename are synced, so a crash leaves the old file or the new one.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_via_tmp(path, bytes, true)
}

fn write_via_tmp(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if sync {
            // Make the rename itself durable.
            if let Some(Ok(dir)) = path.parent().map(File::open) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    };
    let written = write();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Copies `len` bytes of `from` at `from_off` into `to` at `to_off` inside
/// the kernel (`copy_file_range`): no trip through user space, and a file
/// system with reflinks (btrfs, XFS) shares the blocks instead of copying
/// them. `Ok(false)` when `from` ends first. An error also when the kernel
/// cannot copy between these two (another file system, an old kernel):
/// the caller then reads and writes itself.
#[cfg(target_os = "linux")]
pub fn copy_range(
    from: &File,
    from_off: u64,
    to: &File,
    to_off: u64,
    len: u64,
) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    let (mut off_in, mut off_out) = (from_off as libc::loff_t, to_off as libc::loff_t);
    let mut left = len;
    while left > 0 {
        let chunk = left.min(1 << 30) as usize;
        // SAFETY: both descriptors stay open (borrowed `File`s) and the
        // offsets are locals the kernel advances.
        let n = unsafe {
            libc::copy_file_range(
                from.as_raw_fd(),
                &mut off_in,
                to.as_raw_fd(),
                &mut off_out,
                chunk,
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(false);
        }
        left -= n as u64;
    }
    Ok(true)
}

/// Elsewhere there is no `copy_file_range`: the caller reads and writes.
#[cfg(not(target_os = "linux"))]
pub fn copy_range(_: &File, _: u64, _: &File, _: u64, _: u64) -> std::io::Result<bool> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Puts `new` (a file or a folder) at `dest` in one step, whatever `dest`
/// is now (nothing, a file or a folder): a reader sees the old item or the
/// new one, whole, and never a missing one. A file over a file is one
/// rename; anything else (a folder, whose rename cannot replace a
/// non-empty folder) is swapped with `renameat2(RENAME_EXCHANGE)` and the
/// old item, left at `new`'s path, is removed. Both on one file system.
pub fn replace(new: &Path, dest: &Path) -> std::io::Result<()> {
    let new_is_dir = new.symlink_metadata()?.is_dir();
    match dest.symlink_metadata() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::rename(new, dest),
        Err(e) => Err(e),
        Ok(m) if !m.is_dir() && !new_is_dir => fs::rename(new, dest),
        Ok(m) => {
            exchange(new, dest)?;
            // `new` now names the old item. The swap is done: failing to
            // delete the old one leaves a leftover, not a failed swap.
            let removed = if m.is_dir() {
                fs::remove_dir_all(new)
            } else {
                fs::remove_file(new)
            };
            if let Err(e) = removed {
                log::warn!(
                    "the replaced {} is left at {}: {e}",
                    dest.display(),
                    new.display()
                );
            }
            Ok(())
        }
    }
}

/// Swaps two paths atomically (Linux's `renameat2` with `RENAME_EXCHANGE`).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in a path"))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: two valid NUL-terminated paths, relative to the cwd.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Removes a scratch file however the function that made it ends (after a
/// successful rename there is nothing left to remove).
pub struct RemoveOnDrop<'a>(pub &'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
    }
}

/// `RemoveOnDrop` for a scratch folder and what it holds.
pub struct RemoveTreeOnDrop<'a>(pub &'a Path);

impl Drop for RemoveTreeOnDrop<'_> {
    fn drop(&mut self) {
        if self.0.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            let _ = fs::remove_dir_all(self.0);
        }
    }
}

/// An exclusive lock on a directory: `flock` on a lock file in it, which
/// holds our pid. The kernel drops the lock when the process ends, however
/// it ends, so a crash never leaves a stale lock behind.
pub struct DirLock {
    // Held open: closing it releases the lock.
    _file: File,
}

/// Why `DirLock::take` failed.
pub enum LockError {
    /// Another process holds it; its pid, if it wrote one.
    Held(Option<u32>),
    Io(std::io::Error),
}

impl DirLock {
    /// Takes the lock on `path` (created if missing) without waiting.
    pub fn take(path: &Path) -> Result<DirLock, LockError> {
        use std::os::fd::AsRawFd;
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(LockError::Io)?;
        // SAFETY: flock takes a descriptor we own, open for the call.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(LockError::Io(e));
            }
            let pid = fs::read_to_string(path)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            return Err(LockError::Held(pid));
        }
        // Ours now: say who holds it, for the next one who tries.
        file.set_len(0).map_err(LockError::Io)?;
        writeln!(file, "{}", std::process::id()).map_err(LockError::Io)?;
        Ok(DirLock { _file: file })
    }
}

/// Bytes an unprivileged process may still write on the file system that
/// holds `path` (statvfs: available blocks times the fragment size).
pub fn free_space(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL in the path"))?;
    // SAFETY: statvfs writes only into the struct we pass, and reads a
    // NUL-terminated path that lives through the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::useless_conversion)] // the field types differ by platform
    Ok(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

/// Whether a file is a hard link we refuse to share: one with more than
/// one name whose owner is not this process's user. Someone who may write
/// into `files/` but not read a file elsewhere could otherwise link it in
/// and have us serve it; our own user's links are its own business.
pub fn foreign_hard_link(links: u64, owner: u32, me: u32) -> bool {
    links > 1 && owner != me
}

/// `foreign_hard_link` for a file's metadata, against our effective user.
pub fn is_foreign_hard_link(meta: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no failure mode and touches no memory of ours.
    let me = unsafe { libc::geteuid() };
    meta.is_file() && foreign_hard_link(meta.nlink(), meta.uid(), me)
}

#[cfg(test)]
mod replace_tests {
    use super::*;

    #[test]
    fn replace_swaps_files_and_folders_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let (new, dest) = (dir.path().join("new"), dir.path().join("dest"));
        // Onto nothing, a file over a file.
        fs::write(&new, b"1").unwrap();
        replace(&new, &dest).unwrap();
        fs::write(&new, b"2").unwrap();
        replace(&new, &dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"2");
        assert!(!new.exists());
        // A folder over a file, a folder over a folder, a file over a folder.
        fs::create_dir(&new).unwrap();
        fs::write(new.join("a"), b"3").unwrap();
        replace(&new, &dest).unwrap();
        assert_eq!(fs::read(dest.join("a")).unwrap(), b"3");
        fs::create_dir(&new).unwrap();
        fs::write(new.join("b"), b"4").unwrap();
        replace(&new, &dest).unwrap();
        assert_eq!(fs::read(dest.join("b")).unwrap(), b"4");
        assert!(!dest.join("a").exists() && !new.exists());
        fs::write(&new, b"5").unwrap();
        replace(&new, &dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"5");
        assert!(!new.exists());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_hard_link_owned_by_someone_else_is_refused() {
        assert!(!foreign_hard_link(1, 1000, 1000), "a single name");
        assert!(!foreign_hard_link(1, 0, 1000), "a single name, not ours");
        assert!(!foreign_hard_link(3, 1000, 1000), "our own links");
        assert!(
            foreign_hard_link(2, 0, 1000),
            "a second name of root's file"
        );
    }

    #[test]
    fn free_space_is_read_and_a_missing_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(dir.path()).unwrap() > 0);
        assert!(free_space(&dir.path().join("nope")).is_err());
    }

    #[test]
    fn a_dir_lock_is_held_once_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let held = DirLock::take(&p).ok().expect("free at first");
        match DirLock::take(&p) {
            Err(LockError::Held(pid)) => assert_eq!(pid, Some(std::process::id())),
            _ => panic!("taken twice"),
        }
        drop(held);
        assert!(DirLock::take(&p).is_ok(), "released on drop");
    }

    #[test]
    fn stamps_round_trip_and_see_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomically(&p, b"one").unwrap();
        let a = Stamp::of(&fs::metadata(&p).unwrap());
        assert_eq!(Stamp::from_bytes(&a.to_bytes()), a);
        write_durably(&p, b"four").unwrap();
        assert_ne!(Stamp::of_file(&File::open(&p).unwrap()), a);
        assert!(!dir.path().join("f.tmp").exists());
    }
}
