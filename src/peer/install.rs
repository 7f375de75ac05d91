//! Putting an item into `files/`, in one place. A finished download
//! (`adopt`), a `share` or a web upload (`share_scratch`) all end in
//! `install`: what is not verified yet is verified (a folder's tree
//! against its manifest), the item moves into `files/` in one rename over
//! the version there, is served from then on, and is announced. New
//! content is published first (`publish_new`, NEW_FILE), so a name the
//! tracker refuses leaves `files/` untouched. An item found in `files/`
//! itself (`share_found`, the watcher's) is published the same way and
//! served where it is.

use super::files::watcher;
use super::Peer;
use crate::error::{Error, Result};
use crate::fsutil::RemoveOnDrop;
use crate::manifest::Manifest;
use crate::names::check_file_name;
use crate::record::FileRecord;
use log::{info, warn};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A verified item in `partial/` (the file system of `files/`), ready
/// for `install`.
pub(super) enum Staged<'a> {
    /// A finished download's partial file: the file itself, or a folder's
    /// payload (its files end to end), whose tree is written out first.
    Downloaded(&'a Path),
    /// A file or a folder's tree written by `share` or an upload, hashed
    /// into its record: moved as it is.
    Written(&'a Path),
}

impl Peer {
    /// The one install step: verifies what is not yet verified, moves the
    /// item into `files/<name>` in one step (over the version there, which
    /// is served until then), serves it, and announces it.
    pub(super) fn install(&self, staged: Staged<'_>, record: Arc<FileRecord>) -> Result<()> {
        let dest = self.files_dir().join(&record.name);
        match (staged, &record.folder) {
            (Staged::Downloaded(part), Some(manifest)) => {
                let tree = assemble(part, &record.name, manifest)?;
                self.swap_in(&tree, &dest, record.clone())?;
                let _ = fs::remove_file(part);
            }
            (Staged::Downloaded(item) | Staged::Written(item), _) => {
                self.swap_in(item, &dest, record.clone())?
            }
        }
        // Now in the store: the session announces it at once.
        self.session.announce_now();
        Ok(())
    }

    /// Publishes the record of new content (NEW_FILE) before it is served:
    /// a name that other content holds is refused here, with nothing
    /// moved. A tracker that cannot be reached only delays the publishing
    /// (the session publishes when it answers): the note says so.
    fn publish_new(&self, record: &Arc<FileRecord>) -> Result<Option<String>> {
        match self.session.new_file_wait(
            &self.trackers,
            &self.config.id,
            record.clone(),
            Duration::from_secs(10),
        ) {
            Ok(()) => Ok(None),
            Err(Error::NoSources(msg)) | Err(Error::Timeout(msg)) => Ok(Some(msg)),
            Err(e) => Err(e),
        }
    }

    /// Installs a verified download from its partial file `part`, unless
    /// something else took `files/<name>` meanwhile.
    pub(super) fn adopt(&self, part: &Path, record: Arc<FileRecord>) -> Result<()> {
        let dest = self.files_dir().join(&record.name);
        let held = self.store.get(&record.name).is_some();
        if !held && dest.symlink_metadata().is_ok() {
            return Err(Error::Conflict(format!(
                "{} appeared while downloading; the verified copy stays at {}",
                dest.display(),
                part.display()
            )));
        }
        self.install(Staged::Downloaded(part), record)
    }

    /// Copies a file or a folder into `files/` and announces it. The
    /// tracker is asked first, so a name clash leaves `files/` untouched.
    /// An item already in `files/` is shared where it is.
    pub fn share(&self, path: &Path) -> Result<(Arc<FileRecord>, Option<String>)> {
        let cannot = |why: String| Error::Usage(format!("cannot share {}: {why}", path.display()));
        let meta = fs::metadata(path).map_err(|e| cannot(e.to_string()))?;
        if !meta.is_file() && !meta.is_dir() {
            return Err(cannot("not a regular file nor a folder".into()));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| cannot("the name is not UTF-8".into()))?;
        if self.is_in_files(path) {
            return self.share_in_place(name);
        }
        if meta.is_dir() {
            let tmp = self.scratch_path(name, "share-tree")?;
            let _ = fs::remove_dir_all(&tmp);
            crate::tree::copy_tree(path, &tmp)?;
            return self.share_scratch(name, &tmp);
        }
        let tmp = self.scratch_path(name, "share")?;
        let _cleanup = RemoveOnDrop(&tmp);
        fs::copy(path, &tmp).map_err(|e| Error::io(format!("copying {}", path.display()), e))?;
        self.share_scratch(name, &tmp)
    }

    /// `partial/<name>.<suffix>`, the directory created if missing: where a
    /// file is written before it is moved into `files/` (same file system,
    /// so the move is an atomic rename).
    pub fn scratch_path(&self, name: &str, suffix: &str) -> Result<PathBuf> {
        check_file_name(name)?;
        let tmp_dir = self.partial_dir();
        fs::create_dir_all(&tmp_dir)
            .map_err(|e| Error::io(format!("creating {}", tmp_dir.display()), e))?;
        Ok(crate::layout::local_file(&tmp_dir, name, suffix))
    }

    /// Shares a file or a folder already written at `tmp` (from
    /// `scratch_path`) under `name`: hashes it, publishes it, then moves
    /// it into `files/` instead of copying. New content under a name this
    /// peer shares already is the name's next version: it replaces the
    /// item in one step once the tracker has taken it (only the owner's
    /// is). `tmp` is gone afterwards, shared or not.
    pub fn share_scratch(
        &self,
        name: &str,
        tmp: &Path,
    ) -> Result<(Arc<FileRecord>, Option<String>)> {
        let _cleanup = RemoveOnDrop(tmp);
        let _cleanup_tree = crate::fsutil::RemoveTreeOnDrop(tmp);
        check_file_name(name)?;
        let folder = tmp.symlink_metadata().is_ok_and(|m| m.is_dir());
        // The record describes the copy we will serve, whatever happens to
        // the source meanwhile.
        let hashed = if folder {
            crate::tree::record_of_folder(name, tmp)?
        } else {
            FileRecord::from_file(name, tmp)?
        };
        let existing = self.store.get(name);
        if let Some(f) = existing.as_ref().filter(|f| f.record.same_content(&hashed)) {
            return Ok((f.record.clone(), Some("already shared".into())));
        }
        if existing.is_none() && self.files_dir().join(name).symlink_metadata().is_ok() {
            // Copied in and not picked up by the watcher yet: the same
            // bytes are simply shared where they are.
            let (found, note) = self.share_in_place(name)?;
            if !found.same_content(&hashed) {
                return Err(Error::Conflict(format!(
                    "files/{name} already holds different content that is not shared yet; \
                     rename one of them"
                )));
            }
            return Ok((found, note));
        }
        self.refuse_if_followed(name, "share")?;
        let record = Arc::new(self.versioned(hashed, self.store.last_record(name).as_ref()));
        let note = self.publish_new(&record)?;
        self.install(Staged::Written(tmp), record.clone())?;
        if existing.is_some() {
            info!("{name}: published version {}", record.version);
        }
        Ok((record, note))
    }

    /// Whether `path` is an item directly inside `files/` (by its real
    /// location, so `./peers/A/files/x` and an absolute path both count).
    fn is_in_files(&self, path: &Path) -> bool {
        let (Ok(real), Ok(files)) = (path.canonicalize(), self.files_dir().canonicalize()) else {
            return false;
        };
        real.parent() == Some(files.as_path())
    }

    /// Shares `files/<name>` where it is: already shared, or hashed,
    /// published and shared now.
    fn share_in_place(&self, name: &str) -> Result<(Arc<FileRecord>, Option<String>)> {
        let stamp = watcher::stamp_of(&self.files_dir().join(name));
        match self.store.get(name) {
            Some(f) if Some(f.stamp) == stamp => {
                Ok((f.record.clone(), Some("already shared".into())))
            }
            _ => {
                let record = self.share_found(name)?;
                Ok((record, None))
            }
        }
    }

    /// Shares an item the watcher found in `files/` (or `share` named
    /// there): hashes it (or takes its cached record), publishes the
    /// record, and serves it where it is. A tracker that cannot be reached
    /// only delays the publishing; a name another peer owns is refused and
    /// the item is not served, nor is an old version of the name.
    pub(crate) fn share_found(&self, name: &str) -> Result<Arc<FileRecord>> {
        let found = self
            .store
            .prepare(name, &|r, previous| self.versioned(r, previous))?;
        let record = found.record.clone();
        if self.follows(name) {
            let swarm = self.trackers.fetch_record(name).ok();
            if !swarm.as_ref().is_some_and(|r| r.same_content(&record)) {
                drop(found);
                return Err(self.keep_local_edit(name, swarm.is_some()));
            }
        }
        if let Some(msg) = self.publish_new(&record)? {
            warn!("{name}: {msg}");
        }
        self.store.insert_prepared(found);
        self.session.announce_now();
        Ok(record)
    }

    /// Moves a verified item from `new` (in `partial/`, the same file
    /// system) into `files/` in one step, over the version there if any,
    /// and serves it from then on. The old version is served until then.
    fn swap_in(&self, new: &Path, dest: &Path, record: Arc<FileRecord>) -> Result<()> {
        let _swapping = self.swap_lock();
        crate::fsutil::replace(new, dest)
            .map_err(|e| Error::io(format!("moving into {}", dest.display()), e))?;
        self.serve_at(dest, record)
    }

    /// Serves the item at `dest` (in `files/`) under `record` from now on,
    /// in place of what the store held under its name. The caller holds
    /// `swap_lock`.
    pub(super) fn serve_at(&self, dest: &Path, record: Arc<FileRecord>) -> Result<()> {
        if record.folder.is_some() {
            self.store.insert_folder(record, dest)
        } else {
            let file = File::open(dest)
                .map_err(|e| Error::io(format!("opening {}", dest.display()), e))?;
            self.store.insert(record, file);
            Ok(())
        }
    }
}

/// Writes a verified folder payload out as its tree beside it
/// (`partial/<name>.tree`, the same file system, so the tree then moves
/// into `files/` with one rename and appears complete or not at all),
/// each file checked against `manifest`. Returns where the tree is.
fn assemble(part: &Path, name: &str, manifest: &Manifest) -> Result<PathBuf> {
    let dir = part.parent().unwrap_or(Path::new("."));
    let tree = crate::layout::local_file(dir, name, "tree");
    // A leftover of an assembly that was interrupted: ours to redo.
    let _ = fs::remove_dir_all(&tree);
    let payload =
        File::open(part).map_err(|e| Error::io(format!("opening {}", part.display()), e))?;
    if let Err(e) = crate::tree::assemble(&payload, manifest, &tree) {
        if matches!(e, Error::Integrity(_)) {
            // The payload matched the record's MD5 but not its manifest:
            // the record lies; nothing to resume.
            let _ = fs::remove_file(part);
        }
        return Err(e);
    }
    Ok(tree)
}
