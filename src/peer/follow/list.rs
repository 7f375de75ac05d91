//! The follow patterns of a peer, kept across restarts in `<dir>/follow`:
//! one pattern per line, in the order they were added, rewritten whole
//! and atomically at every change.

use super::pattern::Pattern;
use crate::error::{Error, Result};
use crate::fsutil::write_atomically;
use log::warn;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The file in the peer's directory.
pub const FOLLOW_FILE: &str = "follow";

pub struct FollowList {
    path: PathBuf,
    /// What the follow thread and `following` read; replaced once the
    /// file says the same. Never held across the file's write.
    patterns: Mutex<Vec<Pattern>>,
    /// Set while a change is being written: changes go one at a time (a
    /// second one at that moment is refused, not queued), so no lock is
    /// needed across the write and the file ends with the last change.
    changing: AtomicBool,
}

impl FollowList {
    /// Reads `<dir>/follow` (none yet: no patterns) and adds `extra`, the
    /// `--follow` patterns, saving the file if they were new. A line that
    /// is not a valid pattern (edited by hand) is skipped with a warning.
    pub fn open(dir: &Path, extra: &[Pattern]) -> Result<FollowList> {
        let path = dir.join(FOLLOW_FILE);
        let mut patterns = Vec::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    match Pattern::parse(line) {
                        Ok(p) if !patterns.contains(&p) => patterns.push(p),
                        Ok(_) => {}
                        Err(e) => warn!("{}: skipping a line: {e}", path.display()),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        }
        let before = patterns.len();
        for p in extra {
            if !patterns.contains(p) {
                patterns.push(p.clone());
            }
        }
        let list = FollowList {
            path,
            patterns: Mutex::new(patterns.clone()),
            changing: AtomicBool::new(false),
        };
        if patterns.len() > before {
            list.save(&patterns)?;
        }
        Ok(list)
    }

    /// Adds a pattern; false if it was already followed.
    pub fn add(&self, pattern: Pattern) -> Result<bool> {
        self.change(|patterns| {
            if patterns.contains(&pattern) {
                return Ok(false);
            }
            patterns.push(pattern);
            Ok(true)
        })
    }

    /// Removes the pattern written as `text`; an error if it is not
    /// followed. What it fetched stays in `files/`.
    pub fn remove(&self, text: &str) -> Result<()> {
        self.change(|patterns| {
            let at = patterns
                .iter()
                .position(|p| p.as_str() == text)
                .ok_or_else(|| not_followed(text, patterns))?;
            patterns.remove(at);
            Ok(true)
        })
        .map(|_| ())
    }

    /// Applies `edit` to a copy of the patterns; if it changed them
    /// (true), writes the file, then makes the copy the list.
    fn change(&self, edit: impl FnOnce(&mut Vec<Pattern>) -> Result<bool>) -> Result<bool> {
        if self.changing.swap(true, Ordering::AcqRel) {
            return Err(Error::Conflict(
                "another change of the follow patterns is being saved; try again".into(),
            ));
        }
        let _done = ClearOnDrop(&self.changing);
        let mut next = self.patterns();
        if !edit(&mut next)? {
            return Ok(false);
        }
        self.save(&next)?;
        *self.lock() = next;
        Ok(true)
    }

    /// The patterns, in the order they were added.
    pub fn patterns(&self) -> Vec<Pattern> {
        self.lock().clone()
    }

    /// Whether any pattern matches `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.lock().iter().any(|p| p.matches(name))
    }

    fn save(&self, patterns: &[Pattern]) -> Result<()> {
        let mut text = String::new();
        for p in patterns {
            text.push_str(p.as_str());
            text.push('\n');
        }
        write_atomically(&self.path, text.as_bytes()).map_err(|e| {
            Error::io(
                format!("saving the follow patterns to {}", self.path.display()),
                e,
            )
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Pattern>> {
        self.patterns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ends a change however it ends.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// `unfollow` of a pattern that is not followed: the error, with what is.
fn not_followed(text: &str, patterns: &[Pattern]) -> Error {
    let known = if patterns.is_empty() {
        "not following anything".to_string()
    } else {
        let list: Vec<&str> = patterns.iter().map(Pattern::as_str).collect();
        format!("following {}", list.join(", "))
    };
    Error::NotFound(format!(
        "not following {text:?} ({known}); `following` lists the patterns"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Pattern {
        Pattern::parse(text).unwrap()
    }

    fn texts(list: &FollowList) -> Vec<String> {
        list.patterns().iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn patterns_survive_a_restart_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let list = FollowList::open(dir.path(), &[]).unwrap();
        assert!(texts(&list).is_empty());
        assert!(
            !dir.path().join(FOLLOW_FILE).exists(),
            "nothing to keep yet"
        );
        assert!(list.add(p("logs-*")).unwrap());
        assert!(list.add(p("*.iso")).unwrap());
        assert!(!list.add(p("logs-*")).unwrap(), "already followed");
        list.remove("logs-*").unwrap();
        assert!(list.add(p("logs-*")).unwrap());
        drop(list);
        let list = FollowList::open(dir.path(), &[]).unwrap();
        assert_eq!(texts(&list), ["*.iso", "logs-*"]);
        assert!(list.matches("logs-1") && list.matches("a.iso") && !list.matches("b"));
    }

    #[test]
    fn flags_are_added_to_the_saved_ones() {
        let dir = tempfile::tempdir().unwrap();
        FollowList::open(dir.path(), &[p("a*")]).unwrap();
        let list = FollowList::open(dir.path(), &[p("b*"), p("a*")]).unwrap();
        assert_eq!(texts(&list), ["a*", "b*"]);
        let saved = std::fs::read_to_string(dir.path().join(FOLLOW_FILE)).unwrap();
        assert_eq!(saved, "a*\nb*\n");
    }

    #[test]
    fn unfollowing_what_is_not_followed_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let list = FollowList::open(dir.path(), &[p("a*")]).unwrap();
        let e = list.remove("b*").unwrap_err().to_string();
        assert!(
            e.contains("not following \"b*\"") && e.contains("a*"),
            "{e}"
        );
        list.remove("a*").unwrap();
        let e = list.remove("a*").unwrap_err().to_string();
        assert!(e.contains("not following anything"), "{e}");
    }

    #[test]
    fn a_bad_line_written_by_hand_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FOLLOW_FILE), "ok*\n[broken\n\nok*\nv?\n").unwrap();
        let list = FollowList::open(dir.path(), &[]).unwrap();
        assert_eq!(texts(&list), ["ok*", "v?"]);
    }
}
