//! The watcher (the `watch` thread): lists `files/` about once a second (std only, no
//! inotify: polling costs one `read_dir` and a `stat` per item, and works
//! on every file system, network mounts included), hands the listing to
//! the pure `changes::Changes`, and carries out its actions through the `Peer`.
//!
//! Symlinks are not followed: a link in `files/` is not listed, so it is
//! never shared (as at start-up).

use super::changes::{Changes, Listing, WatchAction};
use crate::fsutil::Stamp;
use crate::peer::Peer;
use log::{debug, info, warn};
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often `files/` is listed: twice a second, so an owner's change
/// reaches its followers about a second after the last byte is written
/// (a listing costs a `stat` per item, and per file of a shared folder).
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long an item must stay unchanged before it is shared: two
/// listings a poll apart.
pub const SETTLE: Duration = POLL_EVERY;
/// How long an item whose sharing failed waits before another try (it is
/// tried again at once if it changes).
pub const RETRY: Duration = Duration::from_secs(30);

/// The items of `dir` as the watcher sees them: every regular file and
/// folder whose name is UTF-8, with its stamp (a folder's is the
/// fingerprint of its whole tree). Symlinks and anything else are left
/// out.
pub fn list(dir: &Path) -> std::io::Result<Listing> {
    let mut out = Listing::new();
    for entry in fs::read_dir(dir)?.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(stamp) = stamp_of(&entry.path()) {
            out.insert(name, stamp);
        }
    }
    Ok(out)
}

/// The thread's body: until the peer shuts down.
pub fn run(peer: Arc<Peer>) {
    let mut watch = Changes::new(SETTLE, RETRY);
    let mut warned = Warned::default();
    let dir = peer.files_dir().to_path_buf();
    while !peer.is_cancelled() {
        std::thread::sleep(POLL_EVERY);
        // The listing and the store seen together: never in the middle of
        // a swap of ours.
        let _swapping = peer.swap_lock();
        let listing = match list(&dir) {
            Ok(l) => l,
            Err(e) => {
                debug!("watch: cannot list {}: {e}", dir.display());
                continue;
            }
        };
        let now = Instant::now();
        for action in watch.step(&listing, &peer.store.stamps(), now) {
            if peer.is_cancelled() {
                return;
            }
            carry_out(&peer, &mut watch, &mut warned, &listing, action);
        }
    }
}

/// The last refusal logged for each item: an item refused for good (a bad
/// name inside a folder, another user's hard link) is tried again every
/// `RETRY`, and said again only when the reason changes.
#[derive(Default)]
struct Warned(std::collections::HashMap<String, String>);

impl Warned {
    /// Whether `why` is news for `name` (and remembers it).
    fn is_new(&mut self, name: &str, why: &str) -> bool {
        if self.0.get(name).is_some_and(|w| w == why) {
            return false;
        }
        // Bounded: a folder of endless bad names cannot grow it forever.
        if self.0.len() >= 4096 {
            self.0.clear();
        }
        self.0.insert(name.to_string(), why.to_string());
        true
    }

    fn clear(&mut self, name: &str) {
        self.0.remove(name);
    }
}

fn carry_out(
    peer: &Peer,
    watch: &mut Changes,
    warned: &mut Warned,
    listing: &Listing,
    action: WatchAction,
) {
    match action {
        WatchAction::Withdraw(name) => {
            peer.withdraw(&name);
            info!("{name} left files/ or is changing: withdrawn");
        }
        WatchAction::Share(name) | WatchAction::Rehash(name) => match peer.share_found(&name) {
            Ok(record) => {
                warned.clear(&name);
                info!(
                    "sharing {name} from files/ ({} bytes, md5 {})",
                    record.size,
                    crate::units::hex(&record.md5)
                )
            }
            Err(e) => {
                let why = e.to_string();
                if warned.is_new(&name, &why) {
                    warn!("not sharing {name} from files/: {why}");
                } else {
                    debug!("still not sharing {name} from files/: {why}");
                }
                if let Some(&stamp) = listing.get(&name) {
                    watch.failed(&name, stamp, Instant::now());
                }
            }
        },
    }
}

/// The stamp the watcher lists for the item at `path` (None: not a
/// regular file nor a folder, or gone). A folder that cannot be listed
/// (a name that breaks the rules, say) gets a stamp of its own too, so
/// sharing it is tried, fails with the reason, and is logged.
pub fn stamp_of(path: &Path) -> Option<Stamp> {
    let m = path.symlink_metadata().ok()?;
    if m.is_dir() {
        return Some(crate::tree::fingerprint(path).unwrap_or(Stamp {
            size: u64::MAX,
            mtime_ns: Stamp::of(&m).mtime_ns,
        }));
    }
    m.is_file().then(|| Stamp::of(&m))
}

#[cfg(test)]
mod tests {
    use super::Warned;

    #[test]
    fn a_refusal_is_said_once_until_its_reason_changes() {
        let mut w = Warned::default();
        assert!(w.is_new("a", "bad name"));
        assert!(!w.is_new("a", "bad name"), "the same again: quiet");
        assert!(w.is_new("b", "bad name"), "another item");
        assert!(w.is_new("a", "hard link"), "another reason");
        w.clear("a");
        assert!(w.is_new("a", "hard link"), "shared in between: said again");
    }
}
