//! The integration tests, in one binary as ripgrep's are: the real `tracker`
//! and `peer` on loopback, one module per area, `common` the harness they
//! share. One binary links the crate once, where a binary per file linked
//! it once each. Tests run as threads of this one process, so none may
//! change what the process shares (its environment, current directory, or
//! a fixed port): a child gets its settings through its `Command`.
//!
//! One area: `cargo test --test integration swarm::`; one test: name it.

mod common;

mod bench;
mod browser;
mod fleet;
mod folders;
mod follow;
mod hostile;
mod metrics;
mod newcomer;
mod peer;
mod search;
mod secret;
mod service;
mod sites;
mod swarm;
mod terminal;
mod tracker;
mod trackers;
mod trips;
mod versions;
mod watch;
mod web;
mod web_guard;
