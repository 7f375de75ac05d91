//! p2pshare: a tracker and peers that move files in verified 4 KiB blocks.
//!
//! Layers, bottom up: `wire` (the protocol, no sockets), pure state
//! (`bitfield`, `record`, `download::plan`, `tracker::catalogue`), then the
//! networking (`net`, `peer`, `tracker`) that ties them to threads and
//! sockets, and the two front ends on top of the peer and the tracker,
//! the terminal's (`shell`) and the web UI (`web`); no
//! module cycle (`docs/ARCHITECTURE.md` §1 lists the order). That
//! document draws the threads.

pub mod bitfield;
pub mod cli;
pub mod console;
pub mod digest;
pub mod download;
pub mod error;
pub mod fsutil;
pub mod int_hash;
pub mod layout;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod net;
pub mod peak_rate;
pub mod peer;
pub mod ratelimit;
pub mod record;
pub mod rng;
pub mod rolling;
pub mod search;
pub mod secure;
pub mod shell;
pub mod sim;
pub mod terminal;
pub mod tracker;
pub mod tree;
pub mod units;
pub mod web;
pub mod wire;

pub use error::{Error, Result};
