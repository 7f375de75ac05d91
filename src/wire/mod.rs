//! The wire protocol, apart from any socket: frames, a codec over byte
//! slices, the messages, and the datagrams (UDP: the tracker's and
//! search's). Everything here works on `Read`/`Write` or `&[u8]`, so it
//! is tested and fuzzed without a network. Every length read from the wire is checked against a named
//! limit before anything is allocated.

pub mod codec;
pub mod datagram;
pub mod frame;
pub mod message;
pub mod peer_msg;
pub mod record_file;
pub mod tracker_msg;

pub use frame::{FrameReader, HEADER_LEN, MAX_CONTROL_FRAME, MAX_FRAME};
pub use message::{Answer, Decode, Encode, FileSummary, Holder};
pub use peer_msg::{PeerReply, PeerRequest};
pub use tracker_msg::{TrackerReply, TrackerRequest};

use std::time::Duration;

/// How often a peer announces its holdings to the tracker.
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(3);
/// A peer silent for three intervals is forgotten.
pub const PEER_EXPIRY: Duration = Duration::from_secs(9);
/// The tracker's default port.
pub const DEFAULT_TRACKER_PORT: u16 = 8000;
