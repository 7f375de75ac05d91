//! Where a file's record and holders come from. The tracker first; when it
//! cannot be reached or does not know the file, and this peer has
//! neighbours, a search flooded to them (`crate::search`). The download
//! that follows is the same either way: all holders in parallel, every
//! piece verified against the record.

use super::trackers::Trackers;
use crate::digest::Md5Digest;
use crate::download::Refresh;
use crate::error::{Error, Result};
use crate::net::addrs::join_host_port;
use crate::net::conn::Conn;
use crate::peer::Peer;
use crate::record::FileRecord;
use crate::search::choice::{choose, holders_of, Choice};
use crate::search::{Search, SearchHit};
use crate::units::hex;
use crate::wire::{Encode, Holder, PeerReply, PeerRequest, MAX_FRAME};
use log::{debug, info, warn};
use std::sync::Arc;

/// A file found for a download: its record, and where its holders come
/// from.
pub struct Located {
    pub record: Arc<FileRecord>,
    how: How,
}

enum How {
    /// The tracker knows the file. Its WHO_HAS answers; when it lists no
    /// usable holder, a search (if there are neighbours) makes up for it.
    Tracker {
        trackers: Arc<Trackers>,
        /// The holders the tracker gave with the record, if it did.
        first: Option<Vec<Holder>>,
        search: Option<Arc<Search>>,
        me: String,
        ttl: u8,
        /// `--site`: the tracker answers this site's holders first.
        site: Option<String>,
    },
    /// Found by a search: these holders first, then search again.
    Search {
        search: Arc<Search>,
        holders: Vec<Holder>,
        ttl: u8,
    },
}

/// What `whohas` prints: the holders of one version of a file.
pub struct HolderList {
    pub size: u64,
    pub holders: Vec<Holder>,
}

/// The record of `name`, for a download: from the tracker, or, when it
/// cannot be reached or does not know the file, from a search.
pub fn locate(peer: &Peer, name: &str) -> Result<Located> {
    let trackers = peer.trackers();
    let search = peer.searcher();
    let ttl = peer.config().ttl;
    let site = peer.config().site.as_deref();
    match trackers.fetch_record_and_holders(name, site) {
        Ok((record, first)) => Ok(Located {
            record: Arc::new(record),
            how: How::Tracker {
                trackers: trackers.clone(),
                first,
                search,
                me: peer.config().id.clone(),
                ttl,
                site: peer.config().site.clone(),
            },
        }),
        Err(e) => {
            let Some(search) = search.filter(|_| floodable(&e)) else {
                return Err(e);
            };
            info!("{name}: {e}; searching the neighbours");
            let answers = search.find(name, ttl);
            let choice = choose_or_explain(&search, answers, name, ttl, trackers, e)?;
            Ok(Located {
                record: Arc::new(record_of(&choice, name)?),
                how: How::Search {
                    holders: choice.holders(),
                    search,
                    ttl,
                },
            })
        }
    }
}

impl Located {
    /// The first holders to fetch from, and how to ask for more.
    pub fn holders(self) -> Result<(Vec<Holder>, Refresh)> {
        let (name, size, md5) = (self.record.name.clone(), self.record.size, self.record.md5);
        match self.how {
            How::Search {
                search,
                holders,
                ttl,
            } => {
                let refresh: Refresh =
                    Arc::new(move || Ok(holders_of(&search.find(&name, ttl), size, &md5)));
                Ok((holders, refresh))
            }
            How::Tracker {
                trackers,
                first,
                search: None,
                site,
                ..
            } => {
                // Always this version's holders: a download never mixes
                // versions, and finishes while the tracker keeps this one.
                // (The first list is the current version's, asked a moment
                // after the record on the same connection; a holder of a
                // version published in between refuses OPEN.)
                let ask = move || trackers.who_has_at(&name, Some(&md5), site.as_deref());
                let first = match first {
                    Some(h) => h,
                    None => ask()?,
                };
                Ok((first, Arc::new(ask)))
            }
            How::Tracker {
                trackers,
                first,
                search: Some(search),
                me,
                ttl,
                site,
            } => {
                // Its holders may be out of the tracker's reach (or it out
                // of ours) while neighbours know some.
                let first = first.filter(|h| h.iter().any(|h| usable(h, &me)));
                let ask = move || -> Result<Vec<Holder>> {
                    let site = site.as_deref();
                    let holders = match trackers.who_has_at(&name, Some(&md5), site) {
                        Ok(h) => h,
                        Err(e) if floodable(&e) => {
                            debug!("{name}: {e}; asking the neighbours");
                            Vec::new()
                        }
                        Err(e) => return Err(e),
                    };
                    if holders.iter().any(|h| usable(h, &me)) {
                        return Ok(holders);
                    }
                    Ok(holders_of(&search.find(&name, ttl), size, &md5))
                };
                let first = match first {
                    Some(h) => h,
                    None => ask()?,
                };
                Ok((first, Arc::new(ask)))
            }
        }
    }
}

/// The holders of `name`, for `whohas`.
pub fn who_has(peer: &Peer, name: &str) -> Result<HolderList> {
    let trackers = peer.trackers();
    let search = peer.searcher();
    let site = peer.config().site.as_deref();
    match trackers.fetch_record_and_holders(name, site) {
        Ok((record, first)) => {
            let asked = first.map_or_else(|| trackers.who_has_at(name, None, site), Ok);
            let mut holders = match (asked, &search) {
                (Ok(h), _) => h,
                (Err(e), Some(_)) if floodable(&e) => Vec::new(),
                (Err(e), _) => return Err(e),
            };
            if holders.is_empty() {
                if let Some(s) = search {
                    let answers = s.find_all(name, peer.config().ttl);
                    holders = holders_of(&answers, record.size, &record.md5);
                }
            }
            Ok(HolderList {
                size: record.size,
                holders,
            })
        }
        Err(e) => {
            let Some(search) = search.filter(|_| floodable(&e)) else {
                return Err(e);
            };
            info!("{name}: {e}; searching the neighbours");
            let answers = search.find_all(name, peer.config().ttl);
            let ttl = peer.config().ttl;
            let choice = choose_or_explain(&search, answers, name, ttl, trackers, e)?;
            Ok(HolderList {
                size: choice.size,
                holders: choice.holders(),
            })
        }
    }
}

/// The tracker's failures a search can make up for: it cannot be reached,
/// does not answer properly, or does not know the file.
fn floodable(e: &Error) -> bool {
    matches!(e, Error::NotFound(_) | Error::NoSources(_)) || e.is_remote_fault()
}

fn usable(h: &Holder, me: &str) -> bool {
    h.peer_id != me && h.blocks > 0
}

/// Picks the version of `name` most answering holders have.
/// `tracker_error` is why the tracker could not help, for the message when
/// no neighbour can either.
fn choose_or_explain(
    search: &Search,
    answers: Vec<SearchHit>,
    name: &str,
    ttl: u8,
    trackers: &Trackers,
    tracker_error: Error,
) -> Result<Choice> {
    let Some(choice) = choose(answers) else {
        let why = match tracker_error {
            Error::NotFound(_) => match trackers.addrs() {
                [one] => format!("the tracker at {one} does not know it"),
                all => format!("none of the trackers at {} knows it", all.join(", ")),
            },
            other => other.to_string(),
        };
        return Err(Error::NotFound(format!(
            "no tracker and no neighbour knows {name}: {why}, and no peer within {ttl} hops answered (neighbours: {}); raise --ttl to search further, or add a --neighbor nearer a holder",
            search.describe_neighbours()
        )));
    };
    if !choice.others.is_empty() {
        let others: Vec<String> = choice
            .others
            .iter()
            .map(|(size, md5, n)| format!("{n} with md5 {} ({size} bytes)", hex(md5)))
            .collect();
        warn!(
            "{name}: holders disagree; taking md5 {} ({} bytes), which {} of them have, over {}",
            hex(&choice.md5),
            choice.size,
            choice.answers.len(),
            others.join(", ")
        );
    }
    info!(
        "{name}: {} holders found by search: {}",
        choice.answers.len(),
        choice
            .answers
            .iter()
            .map(|a| a.info.peer_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(choice)
}

/// The record of the chosen version: carried in the answers if it was
/// small enough, else fetched over TCP (GET_RECORD) from the holders in
/// turn, and checked against what they advertised.
fn record_of(choice: &Choice, name: &str) -> Result<FileRecord> {
    if let Some(r) = choice.inline_record() {
        return Ok(r);
    }
    let mut last = None;
    for h in choice.holders() {
        let addr = join_host_port(&h.host, h.port);
        match fetch_record_from(&addr, name, choice.size, &choice.md5) {
            Ok(r) => return Ok(r),
            Err(e) => {
                info!("{name}: record from {} at {addr}: {e}", h.peer_id);
                last = Some(e);
            }
        }
    }
    Err(Error::NoSources(format!(
        "none of the {} holders of {name} found by search sent its record{}; try again",
        choice.answers.len(),
        last.map(|e| format!(" (last: {e})")).unwrap_or_default()
    )))
}

fn fetch_record_from(addr: &str, name: &str, size: u64, md5: &Md5Digest) -> Result<FileRecord> {
    // A record can be 1 MiB: read it with the tracker-sized frame limit.
    let mut conn = Conn::connect(addr, MAX_FRAME)?;
    let record = match conn.call::<PeerReply>(&PeerRequest::GetRecord {
        name: name.to_string(),
    })? {
        PeerReply::Record { record } => *record,
        other => {
            return Err(Error::protocol(format!(
                "expected RECORD, got {}",
                other.kind()
            )))
        }
    };
    conn.shutdown();
    if record.name != name || record.size != size || record.md5 != *md5 {
        return Err(Error::Integrity(format!(
            "the record it sent is not the {name} ({size} bytes, md5 {}) it advertised",
            hex(md5)
        )));
    }
    Ok(record)
}
