//! The network: connections, each node's upload link, latency, the
//! optional download link, and the event queue. It never calls a node:
//! [`Net::handle`] turns an event into at most one [`Call`], which
//! `run.rs` makes.
//!
//! A frame's life: `Cx::send` appends it to its end's queue (`queued`
//! counts it until it has left the link). The node's upload link takes the
//! connections with something queued in turn (deficit round robin, a
//! quantum of bytes per turn) and puts one whole frame on the wire at a
//! time, taking `len / rate`; the frame then travels the pair's one-way
//! latency, waits for the receiver's download link if it has one (one FIFO
//! per node), and is handed to the receiver. A frame sent with
//! `Cx::send_control` takes no link time (the real peer's upload limit
//! paces only blocks): it goes on the wire at once when nothing of its
//! connection is ahead of it, else as soon as what is ahead has left.
//! Every step keeps the order of one connection's frames, and the queue
//! breaks ties in time by the order events were scheduled, so a run is
//! deterministic.

use super::frame::Frame;
use super::queue::Queue;
use super::time::{transmit_time, SimTime};
use super::{prefetch, Caps, Config, ConnId, NodeId};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// What a node has sent and received, counted when a frame leaves its
/// upload link and when one is handed to it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    pub sent_bytes: u64,
    pub sent_frames: u64,
    pub recv_bytes: u64,
    pub recv_frames: u64,
}

// Events are moved at every push and pop: keep them to a cache line.
const _: () = assert!(std::mem::size_of::<Ev>() <= 64);

pub(super) enum Ev {
    /// The node joins (again): ignored if it left since this was scheduled.
    Start { node: NodeId, epoch: u32 },
    /// The acceptor is told of the connection (SYN arrived).
    Accept { conn: ConnId },
    /// The initiator is told, one RTT after its connect.
    Established { conn: ConnId },
    /// Nobody to accept: the initiator is told the connection closed.
    Refused { conn: ConnId },
    /// The node's upload link has put this frame on the wire.
    Sent {
        node: NodeId,
        epoch: u32,
        conn: ConnId,
        side: usize,
        frame: Frame,
    },
    /// A frame (or, `None`, the close) reached end `to`'s host, `node`
    /// (named here for `prefetch_next`).
    Wire {
        conn: ConnId,
        to: usize,
        node: u32,
        frame: Option<Frame>,
    },
    /// Frames sent on one connection in one instant that reach end `to`'s
    /// host together: `Wire` for each in turn, as one event (see
    /// `Net::depart`).
    Bundle {
        conn: ConnId,
        to: usize,
        node: u32,
        frames: Vec<Frame>,
    },
    /// ... and passed its download link.
    Deliver {
        conn: ConnId,
        to: usize,
        frame: Option<Frame>,
    },
    Timer {
        node: NodeId,
        epoch: u32,
        token: u64,
    },
}

/// A call on a node that an event leads to.
pub(super) enum Call {
    Start(NodeId),
    Connected {
        node: NodeId,
        conn: ConnId,
        peer: NodeId,
        outgoing: bool,
    },
    Frame {
        node: NodeId,
        conn: ConnId,
        frame: Frame,
    },
    Writable(NodeId, ConnId),
    Closed(NodeId, ConnId),
    Timer(NodeId, u64),
}

/// One direction's state: the sending node's end of a connection.
#[derive(Default)]
struct End {
    /// The node holds this end: it may send and is told of events.
    open: bool,
    /// May transmit: the acceptor once told, the initiator once established.
    ready: bool,
    /// Frames not yet on the wire (the one on the link is in its event).
    q: VecDeque<Frame>,
    /// Bytes in `q` plus the frame on the link.
    queued: usize,
    /// `queued` reached the low-water mark; `writable` is owed.
    above: bool,
    /// In its link's round robin.
    active: bool,
    deficit: usize,
    /// One of its frames is on the link now.
    sending: bool,
    /// Closed by its node: the close follows the queue.
    fin: bool,
}

impl End {
    /// Nothing queued goes out any more: the frames go, and the queue's
    /// buffer with them (a run keeps every connection it made, millions
    /// at 10,000 nodes).
    fn discard(&mut self) {
        self.q = VecDeque::new();
        self.queued = 0;
    }
}

/// What most calls read of a connection (which end is a node's, its tag,
/// the latency) comes first, in one cache line: at 10,000 nodes nearly
/// every first touch of a connection missed the cache, and its ends'
/// nodes were 90 bytes apart.
#[repr(C, align(64))]
struct Conn {
    /// The node of each end.
    nodes: [NodeId; 2],
    /// Kept here for each end's node (`Cx::tag`): where it keeps its
    /// state for the connection.
    tags: [u32; 2],
    /// One-way latency from end i to the other.
    one_way: [Duration; 2],
    /// An end left: nothing more is delivered but the news of it.
    aborted: bool,
    ends: [End; 2],
}

#[derive(Default)]
struct Host {
    caps: Caps,
    site: usize,
    up: bool,
    epoch: u32,
    /// Ends of this node with frames queued, in turn.
    ring: VecDeque<(ConnId, usize)>,
    busy: bool,
    /// When its download link is next free.
    down_free: SimTime,
    /// Every connection it has had since it last joined.
    conns: Vec<ConnId>,
    stats: NodeStats,
}

pub struct Net {
    now: SimTime,
    events: u64,
    queue: Queue<Ev>,
    conns: Vec<Conn>,
    hosts: Vec<Host>,
    cfg: Config,
    /// Per (from site, to site): when its WAN link is next free, and the
    /// bytes that crossed it.
    wan: std::collections::HashMap<(usize, usize), (SimTime, u64)>,
    /// Buffers of frames handed to their receivers, for the next frames:
    /// a run sends tens of millions, most of a few bytes or one block.
    /// Two pools, small and large, so a small frame waiting on a link does
    /// not hold a block's buffer.
    pool: [Vec<Vec<u8>>; 2],
    /// Emptied `Ev::Bundle` vectors, for the next.
    bundles: Vec<Vec<Frame>>,
}

/// Frame buffers kept for reuse per pool, at most; the largest capacity
/// of the small ones, and of any kept.
const POOL: usize = 1 << 15;
const SMALL: usize = 256;
const POOL_CAPACITY: usize = 16 << 10;

impl Net {
    pub(super) fn new(mut cfg: Config) -> Net {
        cfg.low_water = cfg.low_water.max(1);
        cfg.quantum = cfg.quantum.max(1);
        Net {
            now: SimTime::ZERO,
            events: 0,
            queue: Queue::new(),
            conns: Vec::new(),
            hosts: Vec::new(),
            cfg,
            wan: std::collections::HashMap::new(),
            pool: [Vec::new(), Vec::new()],
            bundles: Vec::new(),
        }
    }

    /// An empty buffer for a frame of about `len` bytes, reused when one
    /// is at hand.
    pub(super) fn buffer(&mut self, len: usize) -> Vec<u8> {
        let mut b = self.pool[usize::from(len > SMALL)]
            .pop()
            .unwrap_or_default();
        b.reserve(len);
        b
    }

    /// The bytes of a frame handed over: a BLOCK waiting as a run of the
    /// file is encoded now, into a buffer at hand.
    pub(super) fn bytes(&mut self, frame: Frame) -> Vec<u8> {
        if frame.is_encoded() {
            return frame.into_bytes(Vec::new());
        }
        let buf = self.buffer(frame.len());
        frame.into_bytes(buf)
    }

    /// A frame's buffer its receiver is done with.
    pub(super) fn recycle(&mut self, mut frame: Vec<u8>) {
        let pool = &mut self.pool[usize::from(frame.capacity() > SMALL)];
        if pool.len() < POOL && frame.capacity() <= POOL_CAPACITY {
            frame.clear();
            pool.push(frame);
        }
    }

    pub(super) fn add_host(&mut self, caps: Caps, site: usize) -> NodeId {
        self.hosts.push(Host {
            caps,
            site,
            ..Host::default()
        });
        self.hosts.len() - 1
    }

    pub(super) fn wan_bytes(&self, from: usize, to: usize) -> u64 {
        self.wan.get(&(from, to)).map_or(0, |w| w.1)
    }

    /// When `len` bytes that leave end `side` of `conn` now have passed
    /// the WAN link between the two sites, if they are in two (else now).
    /// The link is a FIFO: a connection's frames keep their order.
    fn cross(&mut self, conn: ConnId, side: usize, len: usize) -> SimTime {
        let c = &self.conns[conn.0 as usize];
        let from = self.hosts[c.nodes[side]].site;
        let to = self.hosts[c.nodes[1 - side]].site;
        if from == to {
            return self.now;
        }
        let rate = self.cfg.wan;
        let link = self.wan.entry((from, to)).or_insert((SimTime::ZERO, 0));
        let done = self.now.max(link.0) + transmit_time(len, rate);
        *link = (done, link.1 + len as u64);
        done
    }

    pub(super) fn now(&self) -> SimTime {
        self.now
    }

    pub(super) fn set_now(&mut self, t: SimTime) {
        self.now = self.now.max(t);
    }

    pub(super) fn events(&self) -> u64 {
        self.events
    }

    pub(super) fn stats(&self, node: NodeId) -> NodeStats {
        self.hosts[node].stats
    }

    /// Bytes queued on the node's upload link, over all its connections.
    pub(super) fn backlog(&self, node: NodeId) -> usize {
        self.hosts[node]
            .ring
            .iter()
            .map(|&(conn, side)| self.conn(conn).ends[side].queued)
            .sum()
    }

    pub(super) fn is_up(&self, node: NodeId) -> bool {
        self.hosts[node].up
    }

    pub(super) fn next_at(&self) -> Option<SimTime> {
        self.queue.peek_at()
    }

    fn push(&mut self, at: SimTime, ev: Ev) {
        self.queue.push(self.now, at, ev);
    }

    pub(super) fn pop(&mut self) -> Option<(SimTime, Ev)> {
        let (at, ev) = self.queue.pop()?;
        self.now = self.now.max(at);
        self.events += 1;
        Some((at, ev))
    }

    /// Asks the memory system for what the next event will read first
    /// (its connection and its host), while this one is handled: at ten
    /// thousand nodes each of those first touches missed the cache.
    /// Returns the node the next event is for, when it names one.
    pub(super) fn prefetch_next(&self) -> Option<NodeId> {
        let (conn, node) = match self.queue.peek()? {
            Ev::Wire {
                conn, node, frame, ..
            } => {
                if let Some(f) = frame {
                    f.prefetch();
                }
                (Some(*conn), Some(*node as NodeId))
            }
            Ev::Bundle { conn, node, .. } => (Some(*conn), Some(*node as NodeId)),
            Ev::Deliver { conn, .. } => (Some(*conn), None),
            Ev::Sent { node, conn, .. } => (Some(*conn), Some(*node)),
            Ev::Timer { node, .. } => (None, Some(*node)),
            _ => return None,
        };
        if let Some(c) = conn.and_then(|c| self.conns.get(c.0 as usize)) {
            prefetch(c, std::mem::size_of::<Conn>());
        }
        if let Some(h) = node.and_then(|n| self.hosts.get(n)) {
            prefetch(h, std::mem::size_of::<Host>());
        }
        node
    }

    /// The node the next event is for, the connection and which end is
    /// the node's, when the event names them (read after `prefetch_next`
    /// had the connection fetched).
    pub(super) fn next_end(&self) -> Option<(NodeId, ConnId, usize)> {
        match *self.queue.peek()? {
            Ev::Wire { conn, to, node, .. } | Ev::Bundle { conn, to, node, .. } => {
                Some((node as NodeId, conn, to))
            }
            Ev::Sent {
                node, conn, side, ..
            } => Some((node, conn, side)),
            _ => None,
        }
    }

    /// The tag of end `side` of `conn` (see `Cx::tag`).
    pub(super) fn end_tag(&self, conn: ConnId, side: usize) -> u32 {
        self.conns.get(conn.0 as usize).map_or(0, |c| c.tags[side])
    }

    pub(super) fn schedule_start(&mut self, node: NodeId, at: SimTime) {
        let epoch = self.hosts[node].epoch;
        self.push(at.max(self.now), Ev::Start { node, epoch });
    }

    /// The node leaves now: its queues go, its connections are aborted and
    /// their other ends hear of it after the latency; its pending events
    /// (timers, the frame on its link) are void.
    pub(super) fn leave(&mut self, node: NodeId) {
        let host = &mut self.hosts[node];
        host.up = false;
        host.epoch += 1;
        host.busy = false;
        host.ring.clear();
        host.down_free = SimTime::ZERO;
        let conns = std::mem::take(&mut host.conns);
        for conn in conns {
            let now = self.now;
            let c = &mut self.conns[conn.0 as usize];
            if c.aborted {
                continue;
            }
            c.aborted = true;
            for side in 0..2 {
                if c.nodes[side] != node {
                    continue;
                }
                c.ends[side] = End::default();
                c.tags[side] = 0;
                let node = c.nodes[1 - side] as u32;
                let other = &mut c.ends[1 - side];
                if other.open {
                    let at = now + c.one_way[side];
                    self.push(
                        at,
                        Ev::Wire {
                            conn,
                            to: 1 - side,
                            node,
                            frame: None,
                        },
                    );
                } else {
                    // It closed already (or was never told): nobody to tell.
                    other.discard();
                    other.fin = false;
                }
                break;
            }
        }
    }

    pub(super) fn start(&mut self, node: NodeId, epoch: u32) -> Option<Call> {
        let host = &mut self.hosts[node];
        if host.epoch != epoch {
            return None;
        }
        host.up = true;
        Some(Call::Start(node))
    }

    fn conn(&self, conn: ConnId) -> &Conn {
        &self.conns[conn.0 as usize]
    }

    fn conn_mut(&mut self, conn: ConnId) -> &mut Conn {
        &mut self.conns[conn.0 as usize]
    }

    /// Which end of `conn` is `node`'s, if any.
    fn side(&self, node: NodeId, conn: ConnId) -> Option<usize> {
        let c = self.conns.get(conn.0 as usize)?;
        (0..2).find(|&s| c.nodes[s] == node)
    }

    pub(super) fn connect(&mut self, from: NodeId, to: NodeId) -> ConnId {
        let conn = ConnId(u32::try_from(self.conns.len()).expect("fewer than 2^32 connections"));
        let (ab, ba) = match &self.cfg.latency {
            Some(f) => (f(from, to), f(to, from)),
            None => {
                let half = self.cfg.rtt / 2;
                (half, self.cfg.rtt - half)
            }
        };
        let mut c = Conn {
            nodes: [from, to],
            tags: [0; 2],
            one_way: [ab, ba],
            aborted: false,
            ends: [
                End {
                    open: true,
                    ..End::default()
                },
                End::default(),
            ],
        };
        let now = self.now;
        self.hosts[from].conns.push(conn);
        if to == from || to >= self.hosts.len() || !self.hosts[to].up {
            c.aborted = true;
            self.conns.push(c);
            self.push(now + ab + ba, Ev::Refused { conn });
            return conn;
        }
        self.hosts[to].conns.push(conn);
        self.conns.push(c);
        self.push(now + ab, Ev::Accept { conn });
        self.push(now + ab + ba, Ev::Established { conn });
        conn
    }

    pub(super) fn accept(&mut self, conn: ConnId) -> Option<Call> {
        let c = self.conn_mut(conn);
        if c.aborted {
            return None;
        }
        let e = &mut c.ends[1];
        e.open = true;
        e.ready = true;
        let (node, peer) = (c.nodes[1], c.nodes[0]);
        Some(Call::Connected {
            node,
            conn,
            peer,
            outgoing: false,
        })
    }

    pub(super) fn established(&mut self, conn: ConnId) -> Option<Call> {
        let c = self.conn_mut(conn);
        if c.aborted || !c.ends[0].open {
            return None;
        }
        c.ends[0].ready = true;
        let (node, peer) = (c.nodes[0], c.nodes[1]);
        self.release(conn, 0);
        self.activate(conn, 0);
        Some(Call::Connected {
            node,
            conn,
            peer,
            outgoing: true,
        })
    }

    pub(super) fn refused(&mut self, conn: ConnId) -> Option<Call> {
        let c = self.conn_mut(conn);
        let (node, e) = (c.nodes[0], &mut c.ends[0]);
        if !e.open {
            return None;
        }
        e.open = false;
        e.discard();
        Some(Call::Closed(node, conn))
    }

    pub(super) fn send(&mut self, node: NodeId, conn: ConnId, frame: Frame) {
        let Some(side) = self.side(node, conn) else {
            debug_assert!(false, "node {node} sent on {conn:?}, not its own");
            return;
        };
        let low_water = self.cfg.low_water;
        let frame = match frame {
            Frame::Control(b) if self.cfg.pace_control => Frame::Bytes(b),
            f => f,
        };
        let e = &mut self.conn_mut(conn).ends[side];
        if !e.open {
            // Closed by this node, or by the other side in the same
            // instant: the frame goes nowhere, as on a dead socket.
            return;
        }
        if !frame.paced() && e.ready && !e.sending && e.q.is_empty() {
            // Nothing of this connection ahead of it: it leaves now.
            return self.depart(conn, side, frame);
        }
        e.queued += frame.len();
        e.q.push_back(frame);
        if e.queued >= low_water {
            e.above = true;
        }
        self.activate(conn, side);
    }

    /// Sends the frames at the head of the end's queue that take no time
    /// on the link (`Frame::paced`): what was ahead of them has left.
    fn release(&mut self, conn: ConnId, side: usize) {
        loop {
            let e = &mut self.conns[conn.0 as usize].ends[side];
            if !e.ready || e.sending || e.q.front().is_none_or(Frame::paced) {
                return;
            }
            let Some(frame) = e.q.pop_front() else {
                return;
            };
            e.queued = e.queued.saturating_sub(frame.len());
            self.depart(conn, side, frame);
        }
    }

    /// The frame leaves end `side`'s host now: counted, and on its way
    /// to the other end (after the WAN link, if it crosses one).
    fn depart(&mut self, conn: ConnId, side: usize, frame: Frame) {
        let len = frame.len();
        let c = &self.conns[conn.0 as usize];
        let (node, aborted, one_way) = (c.nodes[side], c.aborted, c.one_way[side]);
        let receiver = c.nodes[1 - side] as u32;
        let stats = &mut self.hosts[node].stats;
        stats.sent_bytes += len as u64;
        stats.sent_frames += 1;
        if !aborted {
            let at = self.cross(conn, side, len).max(self.now) + one_way;
            let to = 1 - side;
            if let Err(frame) = self.fold(at, conn, to, frame) {
                let frame = Some(frame);
                let node = receiver;
                self.push(
                    at,
                    Ev::Wire {
                        conn,
                        to,
                        node,
                        frame,
                    },
                );
            }
        }
    }

    /// Joins the frame to the event pushed just before, if that carries
    /// frames of the same connection end arriving at the same instant
    /// (a worker's requests, a server's answers, what a block released):
    /// they would come out one after the other anyway, and one event
    /// hands them over in turn. The frame back if not.
    fn fold(&mut self, at: SimTime, conn: ConnId, to: usize, frame: Frame) -> Result<(), Frame> {
        let Some(ev) = self.queue.last_mut(at) else {
            return Err(frame);
        };
        match ev {
            Ev::Bundle {
                conn: c,
                to: t,
                frames,
                ..
            } if *c == conn && *t == to => {
                frames.push(frame);
                Ok(())
            }
            Ev::Wire {
                conn: c,
                to: t,
                node,
                frame: first @ Some(_),
            } if *c == conn && *t == to => {
                let mut frames = self.bundles.pop().unwrap_or_default();
                frames.extend(first.take());
                frames.push(frame);
                let node = *node;
                *ev = Ev::Bundle {
                    conn,
                    to,
                    node,
                    frames,
                };
                Ok(())
            }
            _ => Err(frame),
        }
    }

    /// A bundle's emptied vector, for the next.
    pub(super) fn recycle_bundle(&mut self, frames: Vec<Frame>) {
        if self.bundles.len() < POOL {
            self.bundles.push(frames);
        }
    }

    fn tag(&self, node: NodeId, conn: ConnId) -> Option<u32> {
        let s = self.side(node, conn)?;
        Some(self.conn(conn).tags[s])
    }

    fn set_tag(&mut self, node: NodeId, conn: ConnId, tag: u32) {
        if let Some(s) = self.side(node, conn) {
            self.conn_mut(conn).tags[s] = tag;
        }
    }

    pub(super) fn queued(&self, node: NodeId, conn: ConnId) -> usize {
        match self.side(node, conn) {
            Some(s) => self.conn(conn).ends[s].queued,
            None => 0,
        }
    }

    pub(super) fn peer(&self, node: NodeId, conn: ConnId) -> Option<NodeId> {
        let s = self.side(node, conn)?;
        Some(self.conn(conn).nodes[1 - s])
    }

    /// Graceful: what is queued still goes, then the other side is told.
    /// Before the connection is established, the queue is dropped.
    pub(super) fn close(&mut self, node: NodeId, conn: ConnId) {
        let Some(side) = self.side(node, conn) else {
            return;
        };
        let e = &mut self.conn_mut(conn).ends[side];
        if !e.open {
            return;
        }
        e.open = false;
        e.fin = true;
        if !e.ready {
            e.discard();
        }
        self.try_fin(conn, side);
    }

    fn try_fin(&mut self, conn: ConnId, side: usize) {
        let now = self.now;
        let c = self.conn_mut(conn);
        let e = &mut c.ends[side];
        if !e.fin || !e.q.is_empty() || e.sending {
            return;
        }
        e.fin = false;
        // Nothing more goes this way (the queue is empty, its buffer not).
        e.discard();
        if c.aborted {
            return;
        }
        let (one_way, node) = (c.one_way[side], c.nodes[1 - side] as u32);
        // After the frames before it on the WAN link, if it crosses one.
        let at = self.cross(conn, side, 0).max(now) + one_way;
        self.push(
            at,
            Ev::Wire {
                conn,
                to: 1 - side,
                node,
                frame: None,
            },
        );
    }

    pub(super) fn timer(&mut self, node: NodeId, at: SimTime, token: u64) {
        let epoch = self.hosts[node].epoch;
        self.push(at.max(self.now), Ev::Timer { node, epoch, token });
    }

    pub(super) fn timer_due(&mut self, node: NodeId, epoch: u32, token: u64) -> Option<Call> {
        let h = &self.hosts[node];
        (h.up && h.epoch == epoch).then_some(Call::Timer(node, token))
    }

    /// Puts the end in its link's round robin if it has something to send.
    fn activate(&mut self, conn: ConnId, side: usize) {
        let quantum = self.cfg.quantum;
        let c = &mut self.conns[conn.0 as usize];
        let (node, e) = (c.nodes[side], &mut c.ends[side]);
        if e.active || !e.ready || e.q.is_empty() {
            return;
        }
        e.active = true;
        e.deficit = quantum;
        let host = &mut self.hosts[node];
        host.ring.push_back((conn, side));
        if !host.busy {
            self.start_next(node);
        }
    }

    /// Deficit round robin: the end at the front sends while its deficit
    /// covers its next frame, then goes to the back with one more quantum.
    fn start_next(&mut self, node: NodeId) {
        let quantum = self.cfg.quantum;
        let now = self.now;
        loop {
            let host = &mut self.hosts[node];
            let Some(&(conn, side)) = host.ring.front() else {
                host.busy = false;
                return;
            };
            let e = &mut self.conns[conn.0 as usize].ends[side];
            let Some(len) = e.q.front().map(Frame::len) else {
                e.active = false;
                e.deficit = 0;
                host.ring.pop_front();
                continue;
            };
            if !e.q.front().is_some_and(Frame::paced) {
                // Takes no link time: it goes now, with what is behind it.
                self.release(conn, side);
                continue;
            }
            if e.deficit < len {
                e.deficit += quantum;
                host.ring.rotate_left(1);
                continue;
            }
            e.deficit -= len;
            e.sending = true;
            let Some(frame) = e.q.pop_front() else {
                continue;
            };
            host.busy = true;
            let (epoch, rate) = (host.epoch, host.caps.up);
            let at = now + transmit_time(len, rate);
            self.push(
                at,
                Ev::Sent {
                    node,
                    epoch,
                    conn,
                    side,
                    frame,
                },
            );
            return;
        }
    }

    /// The link finished a frame: it travels, the link takes the next, and
    /// the sender may be owed `writable`.
    pub(super) fn sent(
        &mut self,
        node: NodeId,
        epoch: u32,
        conn: ConnId,
        side: usize,
        frame: Frame,
    ) -> Option<Call> {
        if self.hosts[node].epoch != epoch {
            return None;
        }
        let low_water = self.cfg.low_water;
        let e = &mut self.conns[conn.0 as usize].ends[side];
        e.sending = false;
        e.queued = e.queued.saturating_sub(frame.len());
        self.depart(conn, side, frame);
        // What waited behind it and takes no link time leaves with it.
        self.release(conn, side);
        let e = &mut self.conns[conn.0 as usize].ends[side];
        let owed = e.above && e.queued < low_water;
        if e.queued < low_water {
            e.above = false;
        }
        let call = (owed && e.open).then_some(Call::Writable(node, conn));
        self.try_fin(conn, side);
        self.start_next(node);
        call
    }

    /// At the receiver's host: through its download link, if it has one.
    pub(super) fn wire(&mut self, conn: ConnId, to: usize, frame: Option<Frame>) -> Option<Call> {
        let c = self.conn(conn);
        if frame.is_some() && c.aborted {
            return None;
        }
        let node = c.nodes[to];
        let host = &mut self.hosts[node];
        let Some(rate) = host.caps.down else {
            return self.deliver(conn, to, frame);
        };
        let len = frame.as_ref().map_or(0, Frame::len);
        let start = self.now.max(host.down_free);
        let done = start + transmit_time(len, Some(rate));
        host.down_free = done;
        self.push(done, Ev::Deliver { conn, to, frame });
        None
    }

    pub(super) fn deliver(
        &mut self,
        conn: ConnId,
        to: usize,
        frame: Option<Frame>,
    ) -> Option<Call> {
        let c = &mut self.conns[conn.0 as usize];
        let (aborted, node) = (c.aborted, c.nodes[to]);
        let e = &mut c.ends[to];
        if !e.open {
            return None;
        }
        match frame {
            Some(frame) => {
                if aborted {
                    return None;
                }
                let stats = &mut self.hosts[node].stats;
                stats.recv_bytes += frame.len() as u64;
                stats.recv_frames += 1;
                Some(Call::Frame { node, conn, frame })
            }
            None => {
                // The other side is gone: what this end had queued for it
                // will never be read.
                e.open = false;
                e.fin = false;
                e.discard();
                Some(Call::Closed(node, conn))
            }
        }
    }
}

/// A node's handle on the network during one of its calls.
pub struct Cx<'a> {
    pub(super) net: &'a mut Net,
    pub(super) me: NodeId,
}

impl Cx<'_> {
    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    pub fn now(&self) -> SimTime {
        self.net.now
    }

    /// Opens a connection: `connected(.., outgoing = true)` after one RTT,
    /// or `closed` then if `to` is not up (or is this node).
    pub fn connect(&mut self, to: NodeId) -> ConnId {
        self.net.connect(self.me, to)
    }

    /// An empty buffer to encode a frame of about `len` bytes into (a
    /// used one when at hand: `send` it, and the network reuses it once
    /// delivered).
    pub fn buffer(&mut self, len: usize) -> Vec<u8> {
        self.net.buffer(len)
    }

    /// Queues one frame. Frames sent before the connection is established
    /// wait for it; frames sent on a closed connection go nowhere.
    pub fn send(&mut self, conn: ConnId, frame: Vec<u8>) {
        self.net.send(self.me, conn, Frame::Bytes(frame));
    }

    /// Queues a frame that takes no time on the upload link: the real
    /// peer's upload limit paces only the blocks it serves, and requests,
    /// answers and HAVEs go out unpaced. It still keeps its place among
    /// the connection's frames: it leaves at once when nothing of this
    /// connection is ahead of it, else right behind what is.
    pub fn send_control(&mut self, conn: ConnId, frame: Vec<u8>) {
        self.net.send(self.me, conn, Frame::Control(frame));
    }

    /// Queues BLOCK `block` on `handle` with the data `buf[at..at + len]`,
    /// as `send` would queue `write_block`'s frame: the receiver gets the
    /// same bytes, encoded as it is handed over (see `sim::frame`).
    pub fn send_block(
        &mut self,
        conn: ConnId,
        handle: u32,
        block: u32,
        buf: &Arc<[u8]>,
        at: usize,
        len: usize,
    ) {
        let frame = Frame::Block {
            handle,
            block,
            at: u32::try_from(at).expect("files under 4 GiB"),
            len: u32::try_from(len).expect("blocks under 4 GiB"),
            buf: buf.clone(),
        };
        self.net.send(self.me, conn, frame);
    }

    /// Bytes sent on `conn` that have not yet left this node's link.
    pub fn queued(&self, conn: ConnId) -> usize {
        self.net.queued(self.me, conn)
    }

    /// Closes gracefully: what is queued still goes, then the other side
    /// gets `closed`. This node hears nothing more of `conn`.
    pub fn close(&mut self, conn: ConnId) {
        self.net.close(self.me, conn);
    }

    /// `timer(token)` at `at` (or now, if `at` has passed).
    pub fn timer(&mut self, at: SimTime, token: u64) {
        self.net.timer(self.me, at, token);
    }

    /// This node opened `conn` (it is the connection's initiator).
    pub fn opened(&self, conn: ConnId) -> bool {
        self.net.side(self.me, conn) == Some(0)
    }

    /// The number this node keeps on its end of `conn` (0 until set),
    /// read with the end's other state: no search for its machine
    /// (`sim::conn_map`). `None` if the end is not this node's.
    pub fn tag(&self, conn: ConnId) -> Option<u32> {
        self.net.tag(self.me, conn)
    }

    pub fn set_tag(&mut self, conn: ConnId, tag: u32) {
        self.net.set_tag(self.me, conn, tag);
    }

    /// The node at the other end of `conn`.
    pub fn peer(&self, conn: ConnId) -> Option<NodeId> {
        self.net.peer(self.me, conn)
    }

    /// The low-water mark below which `writable` fires.
    pub fn low_water(&self) -> usize {
        self.net.cfg.low_water
    }
}
