//! The follow patterns of a peer, kept across restarts in `<dir>/follow`:
//! one pattern per line, in the order they were added, rewritten whole
//! and atomically at every change.

use super::pattern::Pattern;
use crate::error::{Error, Result};
use crate::fsutil::write_atomically;
use log::warn;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The file in the peer's directory.
pub const FOLLOW_FILE: &str = "follow";

pub struct FollowList {
    path: PathBuf,
    /// Held while the file is rewritten (a few hundred bytes): the file's
    /// order of writes is then the order of the changes.
    patterns: Mutex<Vec<Pattern>>,
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
        let list = FollowList {
            path,
            patterns: Mutex::new(patterns),
        };
        let mut patterns = list.lock();
        let before = patterns.len();
        for p in extra {
            if !patterns.contains(p) {
                patterns.push(p.clone());
            }
        }
        if patterns.len() > before {
            list.save(&patterns)?;
        }
        drop(patterns);
        Ok(list)
    }

    /// Adds a pattern; false if it was already followed.
    pub fn add(&self, pattern: Pattern) -> Result<bool> {
        let mut patterns = self.lock();
        if patterns.contains(&pattern) {
            return Ok(false);
        }
        patterns.push(pattern);
        if let Err(e) = self.save(&patterns) {
            patterns.pop();
            return Err(e);
        }
        Ok(true)
    }

    /// Removes the pattern written as `text`; an error if it is not
    /// followed. What it fetched stays in `files/`.
    pub fn remove(&self, text: &str) -> Result<()> {
        let mut patterns = self.lock();
        let Some(at) = patterns.iter().position(|p| p.as_str() == text) else {
            let known = if patterns.is_empty() {
                "not following anything".to_string()
            } else {
                let list: Vec<&str> = patterns.iter().map(Pattern::as_str).collect();
                format!("following {}", list.join(", "))
            };
            return Err(Error::NotFound(format!(
                "not following {text:?} ({known}); `following` lists the patterns"
            )));
        };
        let removed = patterns.remove(at);
        if let Err(e) = self.save(&patterns) {
            patterns.insert(at, removed);
            return Err(e);
        }
        Ok(())
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
