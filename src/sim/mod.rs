//! A discrete-event simulator for swarms: the peers' protocol machines run
//! unchanged over a modelled network in simulated time. No sockets, no
//! threads, no wall clock: one run is a pure function of its nodes, its
//! [`Config`] and their seeds.
//!
//! - [`SimNode`] is what a simulated peer implements: it is told of
//!   connections, whole frames, a send queue that drained, a closed
//!   connection and its timers, and acts through [`Cx`].
//! - [`Sim`] owns the nodes and the network and runs the event loop.
//! - The network model (see `net.rs` for the details):
//!   - each node has an upload link of a fixed rate (bytes/s, or none),
//!     shared between its connections by deficit round robin, one whole
//!     frame at a time; control frames (`Cx::send_control`: requests,
//!     answers, HAVEs) take no time on it, as the real peer's upload
//!     limit paces only the blocks it serves (`Config::pace_control`
//!     paces them too);
//!   - a frame reaches the other side one one-way latency after it has
//!     left the sender's link, then passes the receiver's download link
//!     if it has one (FIFO, no cap by default);
//!   - frames on one connection arrive in order; a node's `writable` fires
//!     when a connection's queue falls below the low-water mark;
//!   - `connect` completes after one RTT (the other side is told after
//!     half of one); `close` is graceful (what is queued still goes, then
//!     the other side is told); a node that leaves is gone at once: its
//!     queues and the frames in flight on its connections are dropped and
//!     the other sides are told after the latency.
//!   - nodes may be in sites (`Sim::add_at`): a frame from one site to
//!     another then also passes that direction's WAN link
//!     (`Config::wan`, one FIFO shared by every connection crossing it),
//!     between the sender's link and the latency; `Sim::wan_bytes`
//!     counts what crossed.
//! - [`CopyStore`] holds one node's copy of a file against the original
//!   without a copy of the bytes, so a thousand 16 MiB copies fit.
//! - [`peer::SimPeer`] is a peer made of the real machines (see `peer.rs`),
//!   and [`tracker::SimTracker`] the tracker it asks who takes part.
//!
//! Using it: `Sim::new(Config { rtt, .. })`, then `sim.add(node,
//! Caps::upload(rate))` for each node (ids 0, 1, ...), `sim.start_at(id,
//! t)` (the dialled first), then `sim.step()` until done (it names the node
//! it called, so a harness checks only that one), with `run_until`,
//! `leave` and `rejoin` for churn; `sim.node(id)` and `sim.stats(id)`
//! afterwards.
//!
//! Calibration (`make calibrate`, docs/SIMULATOR.md): against `make swarm`
//! at N=8 (128 MiB, 10 MiB/s) the simulated ratio to T* hardly moves with
//! the network's parameters: 1.023-1.033 for a low-water mark from 1 byte
//! to 1 MiB and an RTT from 0.1 to 10 ms (the RTTs the real leechers
//! measure on a loaded two-core machine are 0.07-3.6 ms). The defaults
//! stay: RTT 0.1 ms, a low-water mark of 256 KiB, a quantum of one block.
//! Reality's 1.17-1.18 then was mostly what the simulator leaves out on
//! purpose: CPU (nine processes hashing on two cores), above all the
//! whole-file MD5 after the last piece (56-127 MiB of a 128 MiB file
//! left to hash while the seeder offered pieces from anywhere; since it
//! offers them from the front, 0-27 MiB, and reality is at 1.05). A
//! leecher's start costs 56-112 ms, not the 0.6 s once thought.
//!
//! What the model leaves out, knowingly: TCP's slow start and congestion
//! control (a link is busy at its full rate or idle); packets (a frame
//! holds its link for `len / rate` in one piece, so a 1 MiB frame delays
//! the sender's other connections by that long, where TCP would
//! interleave them); a token bucket's burst (`--upload-limit` lets 100 ms
//! of traffic through at once after an idle spell); loss.

mod conn_map;
mod frame;
mod net;
pub mod peer;
mod prefetch;
mod queue;
mod run;
pub mod sites;
mod store;
#[cfg(test)]
mod tests;
mod time;
pub mod tracker;

pub use net::{Cx, NodeStats};
pub use run::{Sim, Stepped};
pub use store::CopyStore;
pub use time::{transmit_time, SimTime};

use prefetch::prefetch;

use std::time::Duration;

/// A node of the simulation, numbered from 0 in the order they were added.
pub type NodeId = usize;

/// One connection. Both ends name it by the same id, never reused in a run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u32);

/// A simulated peer. Every call is at `cx.now()`; a node acts only through
/// `cx` and never sees another node.
pub trait SimNode {
    /// The node (re)joins the swarm: at its start time, and again after
    /// [`Sim::rejoin`].
    fn start(&mut self, cx: &mut Cx);
    /// A connection is up: one RTT after this node's `cx.connect` (then
    /// `outgoing`), or when another node's connect reached it.
    fn connected(&mut self, cx: &mut Cx, conn: ConnId, peer: NodeId, outgoing: bool);
    /// One whole frame, the bytes exactly as the other side sent them.
    fn frame(&mut self, cx: &mut Cx, conn: ConnId, bytes: &[u8]);
    /// The connection's send queue fell below the low-water mark after
    /// having been at or above it.
    fn writable(&mut self, cx: &mut Cx, conn: ConnId);
    /// The other side closed the connection or left, or (for a connection
    /// this node opened) nobody was there to accept it. Not called for a
    /// connection this node closed itself.
    fn closed(&mut self, cx: &mut Cx, conn: ConnId);
    /// A timer set with `cx.timer(at, token)` is due. Timers cannot be
    /// cancelled: a node ignores the tokens it no longer wants.
    fn timer(&mut self, cx: &mut Cx, token: u64);
    /// The node left the swarm ([`Sim::leave`]), like a process killed:
    /// its connections and timers are gone without further calls. It
    /// keeps only what a restarted peer would find on its disk.
    fn left(&mut self);
    /// A hint: the next event is on `conn`, whose end here is tagged `tag`
    /// (`Cx::tag`) and was opened here (`outgoing`) or not. The node may
    /// ask the memory system for what that event will read; it changes
    /// nothing.
    fn prefetch(&self, _conn: ConnId, _tag: u32, _outgoing: bool) {}
}

/// A node's links, in bytes per second; `None` is uncapped.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    pub up: Option<u64>,
    pub down: Option<u64>,
}

impl Caps {
    /// An upload cap and no download cap, as `make swarm` sets them.
    pub fn upload(rate: u64) -> Caps {
        Caps {
            up: Some(rate),
            down: None,
        }
    }
}

/// Default low-water mark: about a loopback socket's send buffer.
pub const LOW_WATER: usize = 256 << 10;
/// Default deficit-round-robin quantum: one 4 KiB block and its header, so
/// the connections of a busy link take turns block by block.
pub const QUANTUM: usize = (4 << 10) + 128;

/// The network's parameters other than each node's [`Caps`].
pub struct Config {
    /// Round-trip time between any two nodes unless `latency` says
    /// otherwise. Default 0.1 ms, about loopback's.
    pub rtt: Duration,
    /// `writable` fires when a queue falls below this many bytes (at
    /// least 1: 1 means "when it is empty").
    pub low_water: usize,
    /// Bytes a connection may send per turn of its node's upload link.
    pub quantum: usize,
    /// One-way latency from the first node to the second, when it is not
    /// `rtt / 2` for every pair. Asked once per connection.
    pub latency: Option<Box<dyn Fn(NodeId, NodeId) -> Duration>>,
    /// The link between two sites (`Sim::add_at`), in bytes per second
    /// each way: every frame from one site to another passes it after the
    /// sender's upload link (one FIFO per direction). `None`: uncapped.
    pub wan: Option<u64>,
    /// Frames sent with `Cx::send_control` take their time on the upload
    /// link like any other (the model before they were let through).
    pub pace_control: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            rtt: Duration::from_micros(100),
            low_water: LOW_WATER,
            quantum: QUANTUM,
            latency: None,
            wan: None,
            pace_control: false,
        }
    }
}
