//! The tracker: the swarm's catalogue of files and of who holds which
//! pieces, served over TCP.

pub mod catalogue;

pub use catalogue::{Catalogue, FileProgress, PeerView, Snapshot};
