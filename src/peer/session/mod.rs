//! The peer's side of its trackers: the UDP session that keeps each
//! tracker told of what this peer holds (`announcer` is the rule,
//! `tracker_client` moves its datagrams and makes the one-shot TCP
//! queries), the trackers and their order (`trackers`, `rotation`), where
//! a file's record and holders come from (`lookup`, with tracker-less
//! search as the fallback), and what the peer says about its trackers'
//! health at start (`health`).

pub mod announcer;
pub mod health;
pub mod lookup;
pub mod rotation;
pub mod tracker_client;
pub mod trackers;
