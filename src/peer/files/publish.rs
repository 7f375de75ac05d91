//! Which version of a name a peer publishes for content it just hashed
//! (docs/REFERENCE.md, *Updating a fleet*). Pure: the swarm's current record and the
//! one this peer last had of the name in, the record to publish out.
//!
//! - The same bytes as a known record: that record, whole (its version
//!   and owner): the peer holds that version, nothing new is published.
//! - Other bytes: the version after the newest one known, owned by this
//!   peer. The tracker takes it from the owner (or for a name nobody
//!   owns, or that is abandoned) and refuses it from anyone else, so the
//!   check that matters is made once, where every peer's records meet.

use crate::error::{code, Error};
use crate::record::FileRecord;

/// `hashed` (version 1, no owner: fresh from the hasher) as the record
/// `me` publishes, given the swarm's current record of the name and the
/// one this peer last had.
pub fn assign(
    hashed: FileRecord,
    swarm: Option<&FileRecord>,
    previous: Option<&FileRecord>,
    me: &str,
) -> FileRecord {
    let known = [swarm, previous].into_iter().flatten();
    if let Some(same) = known.clone().find(|k| k.same_content(&hashed)) {
        return same.clone();
    }
    let next = known.map(|k| k.version + 1).max().unwrap_or(1);
    hashed.versioned(next, me)
}

/// How the tracker's refusal of a NEW_FILE is taken.
#[derive(Debug, PartialEq, Eq)]
pub enum PublishRefusal {
    /// Another peer owns the name: the content is not shared here.
    Conflict,
    /// The swarm has a newer version: this copy is an old one, kept as it
    /// is (a follower updates it), but not announced.
    Outdated,
    /// Anything else (the tracker is unreachable, a protocol error).
    Other,
}

/// What a failed publish means for the item.
pub fn refusal(e: &Error) -> PublishRefusal {
    match e {
        Error::Conflict(_) => PublishRefusal::Conflict,
        Error::Remote { code: c, .. } if *c == code::CONFLICT => PublishRefusal::Conflict,
        Error::Remote { code: c, .. } if *c == code::OUTDATED => PublishRefusal::Outdated,
        _ => PublishRefusal::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(data: &[u8]) -> FileRecord {
        FileRecord::from_bytes("f.bin", data)
    }

    #[test]
    fn new_content_is_version_1_of_its_publisher() {
        let r = assign(rec(b"one"), None, None, "A");
        assert_eq!((r.version, r.owner.as_str()), (1, "A"));
    }

    #[test]
    fn the_same_bytes_take_the_known_record_whole() {
        let swarm = rec(b"one").versioned(4, "A");
        let r = assign(rec(b"one"), Some(&swarm), None, "B");
        assert_eq!(r, swarm, "B holds version 4 of A's name");
        // A copy of an older version this peer had is that version.
        let old = rec(b"old").versioned(3, "A");
        let r = assign(rec(b"old"), Some(&swarm), Some(&old), "B");
        assert_eq!(r, old);
    }

    #[test]
    fn a_change_is_the_version_after_the_newest_known() {
        let swarm = rec(b"v4").versioned(4, "A");
        let mine = rec(b"v2").versioned(2, "A");
        let r = assign(rec(b"v5"), Some(&swarm), Some(&mine), "A");
        assert_eq!((r.version, r.owner.as_str()), (5, "A"));
        // The tracker lost the name (all holders withdrew): the peer's own
        // last record still counts, so versions never go back.
        let r = assign(rec(b"v3"), None, Some(&mine), "A");
        assert_eq!(r.version, 3);
        // Someone else's name: published as ours, for the tracker to
        // refuse (or to take, if the name is abandoned).
        let r = assign(rec(b"other"), Some(&swarm), None, "B");
        assert_eq!((r.version, r.owner.as_str()), (5, "B"));
    }

    #[test]
    fn refusals_are_told_apart() {
        let remote = |c| Error::Remote {
            code: c,
            message: String::new(),
        };
        assert_eq!(refusal(&remote(code::CONFLICT)), PublishRefusal::Conflict);
        assert_eq!(
            refusal(&Error::Conflict("x".into())),
            PublishRefusal::Conflict
        );
        assert_eq!(refusal(&remote(code::OUTDATED)), PublishRefusal::Outdated);
        assert_eq!(refusal(&Error::Timeout("t".into())), PublishRefusal::Other);
    }
}
