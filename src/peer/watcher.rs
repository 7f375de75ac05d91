//! The `watch` thread: lists `files/` about once a second (std only, no
//! inotify: polling costs one `read_dir` and a `stat` per item, and works
//! on every file system, network mounts included), hands the listing to
//! the pure `Watch`, and carries out its actions through the `Peer`.
//!
//! Symlinks are not followed: a link in `files/` is not listed, so it is
//! never shared (as at start-up).

use super::watch::{Action, Listing, Watch};
use super::Peer;
use crate::fsutil::Stamp;
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
    let mut watch = Watch::new(SETTLE, RETRY);
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
            carry_out(&peer, &mut watch, &listing, action);
        }
    }
}

fn carry_out(peer: &Peer, watch: &mut Watch, listing: &Listing, action: Action) {
    match action {
        Action::Withdraw(name) => {
            peer.withdraw(&name);
            info!("{name} left files/ or is changing: withdrawn");
        }
        Action::Share(name) | Action::Rehash(name) => match peer.share_found(&name) {
            Ok(record) => info!(
                "sharing {name} from files/ ({} bytes, md5 {})",
                record.size,
                crate::units::hex(&record.md5)
            ),
            Err(e) => {
                warn!("not sharing {name} from files/: {e}");
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
