//! The event loop: pops the earliest event, lets the network handle it and
//! makes the node call it leads to.

use super::frame::Frame;
use super::net::{Call, Ev, Net, NodeStats};
use super::{Caps, Config, ConnId, Cx, NodeId, SimNode, SimTime};

/// A swarm of nodes of one type (an enum, for several kinds) on one
/// network.
pub struct Sim<N> {
    net: Net,
    nodes: Vec<N>,
}

/// What one [`Sim::step`] did: the time of its event and the node it
/// called, if any (events for a node that left are dropped).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Stepped {
    pub at: SimTime,
    pub node: Option<NodeId>,
}

impl<N: SimNode> Sim<N> {
    pub fn new(cfg: Config) -> Sim<N> {
        Sim {
            net: Net::new(cfg),
            nodes: Vec::new(),
        }
    }

    /// Adds a node, not yet started (see [`Sim::start_at`]).
    pub fn add(&mut self, node: N, caps: Caps) -> NodeId {
        self.add_at(node, caps, 0)
    }

    /// `add` in `site`: frames between sites pass the WAN link
    /// (`Config::wan`).
    pub fn add_at(&mut self, node: N, caps: Caps, site: usize) -> NodeId {
        self.nodes.push(node);
        self.net.add_host(caps, site)
    }

    /// Bytes that crossed from site `from` to site `to`.
    pub fn wan_bytes(&self, from: usize, to: usize) -> u64 {
        self.net.wan_bytes(from, to)
    }

    /// The node's `start` is called at `at` (now, if that has passed).
    /// Nodes due at the same instant start in the order of these calls,
    /// and a dial reaching a node not yet started is refused: start the
    /// nodes that are dialled first.
    pub fn start_at(&mut self, node: NodeId, at: SimTime) {
        self.net.schedule_start(node, at);
    }

    /// The node leaves now (see [`SimNode::left`]); other nodes hear of it
    /// on each connection after its latency.
    pub fn leave(&mut self, node: NodeId) {
        if self.net.is_up(node) {
            self.net.leave(node);
            self.nodes[node].left();
        }
    }

    /// The node that left starts again now.
    pub fn rejoin(&mut self, node: NodeId) {
        if !self.net.is_up(node) {
            self.net.schedule_start(node, self.net.now());
        }
    }

    pub fn is_up(&self, node: NodeId) -> bool {
        self.net.is_up(node)
    }

    pub fn now(&self) -> SimTime {
        self.net.now()
    }

    /// When the next event is due, if there is one.
    pub fn next_at(&self) -> Option<SimTime> {
        self.net.next_at()
    }

    /// Events handled so far.
    pub fn events(&self) -> u64 {
        self.net.events()
    }

    pub fn node(&self, id: NodeId) -> &N {
        &self.nodes[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut N {
        &mut self.nodes[id]
    }

    pub fn nodes(&self) -> &[N] {
        &self.nodes
    }

    /// Bytes waiting on the node's upload link.
    pub fn backlog(&self, id: NodeId) -> usize {
        self.net.backlog(id)
    }

    pub fn stats(&self, id: NodeId) -> NodeStats {
        self.net.stats(id)
    }

    /// Handles the earliest event; `None` when there are none left.
    pub fn step(&mut self) -> Option<Stepped> {
        let (at, ev) = self.net.pop()?;
        if let Some(n) = self.net.prefetch_next() {
            if let Some(node) = self.nodes.get(n) {
                super::prefetch(node, std::mem::size_of::<N>().min(512));
            }
        }
        let call = match ev {
            Ev::Start { node, epoch } => self.net.start(node, epoch),
            Ev::Accept { conn } => self.net.accept(conn),
            Ev::Established { conn } => self.net.established(conn),
            Ev::Refused { conn } => self.net.refused(conn),
            Ev::Sent {
                node,
                epoch,
                conn,
                side,
                frame,
            } => self.net.sent(node, epoch, conn, side, frame),
            Ev::Wire {
                conn, to, frame, ..
            } => self.net.wire(conn, to, frame),
            Ev::Bundle {
                conn, to, frames, ..
            } => {
                let stepped = self.bundle(at, conn, to, frames);
                self.prefetch_deeper();
                return Some(stepped);
            }
            Ev::Deliver { conn, to, frame } => self.net.deliver(conn, to, frame),
            Ev::Timer { node, epoch, token } => self.net.timer_due(node, epoch, token),
        };
        let node = call.map(|c| self.call(c));
        self.prefetch_deeper();
        Some(Stepped { at, node })
    }

    /// The second half of `Net::prefetch_next`: with the next event's
    /// connection at hand, its node is told which of its states to fetch.
    fn prefetch_deeper(&self) {
        if let Some((n, conn, side)) = self.net.next_end() {
            if let Some(node) = self.nodes.get(n) {
                node.prefetch(conn, self.net.end_tag(conn, side), side == 0);
            }
        }
    }

    /// The frames of an `Ev::Bundle`, each as its own `Ev::Wire` would
    /// be handled.
    fn bundle(&mut self, at: SimTime, conn: ConnId, to: usize, mut frames: Vec<Frame>) -> Stepped {
        let mut node = None;
        for frame in frames.drain(..) {
            if let Some(call) = self.net.wire(conn, to, Some(frame)) {
                node = Some(self.call(call));
            }
        }
        self.net.recycle_bundle(frames);
        Stepped { at, node }
    }

    /// Handles every event due at or before `t`, then moves the clock to
    /// `t`.
    pub fn run_until(&mut self, t: SimTime) {
        while self.next_at().is_some_and(|at| at <= t) {
            self.step();
        }
        self.net.set_now(t);
    }

    #[cfg(test)]
    pub(super) fn net_for_tests(&mut self) -> &mut Net {
        &mut self.net
    }

    fn call(&mut self, call: Call) -> NodeId {
        let id = match &call {
            Call::Start(n) | Call::Writable(n, _) | Call::Closed(n, _) | Call::Timer(n, _) => *n,
            Call::Connected { node, .. } | Call::Frame { node, .. } => *node,
        };
        let node = &mut self.nodes[id];
        let cx = &mut Cx {
            net: &mut self.net,
            me: id,
        };
        match call {
            Call::Start(_) => node.start(cx),
            Call::Connected {
                conn,
                peer,
                outgoing,
                ..
            } => node.connected(cx, conn, peer, outgoing),
            Call::Frame { conn, frame, .. } => {
                let bytes = cx.net.bytes(frame);
                node.frame(cx, conn, &bytes);
                self.net.recycle(bytes);
            }
            Call::Writable(_, conn) => node.writable(cx, conn),
            Call::Closed(_, conn) => node.closed(cx, conn),
            Call::Timer(_, token) => node.timer(cx, token),
        }
        id
    }
}
