//! The tracker: the swarm's catalogue of files and of who holds which
//! pieces, served over TCP.

pub mod catalogue;
pub mod persist;

pub use catalogue::{Catalogue, FileProgress, PeerView, Snapshot};
pub use persist::Store;
