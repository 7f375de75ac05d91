//! STAND-IN PEER, to be replaced by the real download worker and block
//! server once they are state machines. It exists only to exercise the
//! network core and the harness (`examples/simulate.rs`); its protocol is
//! not the project's and nothing here is meant to be tuned.
//!
//! A seeder serves any block asked of it. A leecher dials the seeder at
//! once and `degree` random others at its first HAVE tick (so leechers
//! started together are up when dialled), tells each peer what it has (one bit set, then
//! batches of new blocks every `have_every`), keeps `window` requests in
//! flight on each connection, picking among what that peer has and nobody
//! was asked for the locally rarest of a few random candidates, and when
//! everything missing has been asked for, asks a second peer for the
//! stragglers and cancels the loser. Every peer serves the blocks it has,
//! a block frame at a time while its queue is below the low-water mark.
//!
//! Frames: `u32` big-endian length of what follows, a type byte, the body
//! (the shape of `wire::frame`). Types: `HAVE_SET` (a bit set), `HAVE`,
//! `REQUEST` and `CANCEL` (lists of `u32` block numbers), `BLOCK` (`u32`
//! number, then the bytes).

use super::{ConnId, CopyStore, Cx, Node, NodeId, SimTime};
use crate::bitfield::Bitfield;
use crate::rng::Rng;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

const HAVE_SET: u8 = 1;
const HAVE: u8 = 2;
const REQUEST: u8 = 3;
const CANCEL: u8 = 4;
const BLOCK: u8 = 5;
/// The timer that sends the batched HAVEs.
const TICK: u64 = 1;
/// Random starting points tried when picking a block.
const CANDIDATES: usize = 6;

#[derive(Copy, Clone, Debug)]
pub struct ToyConfig {
    /// Requests in flight per connection to a leecher.
    pub window: usize,
    /// Requests in flight to the seeder: it serves every leecher, so a
    /// deep window there only queues duplicates.
    pub seeder_window: usize,
    /// Leechers each leecher dials besides the seeder.
    pub degree: usize,
    /// How often new blocks are announced.
    pub have_every: Duration,
}

impl Default for ToyConfig {
    fn default() -> ToyConfig {
        ToyConfig {
            window: 8,
            seeder_window: 1,
            degree: 10,
            have_every: Duration::from_millis(50),
        }
    }
}

struct Link {
    peer: NodeId,
    has: Bitfield,
    /// Our requests to it not yet answered.
    asked: Vec<u32>,
    /// Its requests to us not yet sent.
    serving: VecDeque<u32>,
}

pub struct Toy {
    cfg: ToyConfig,
    seeder: Option<NodeId>,
    /// Everyone a leecher may dial (the tracker's answer).
    directory: Arc<[NodeId]>,
    store: CopyStore,
    rng: Rng,
    links: BTreeMap<ConnId, Link>,
    /// Missing and asked of nobody.
    wanted: Bitfield,
    /// Missing and asked of exactly one peer: may be asked again at the end.
    once: Bitfield,
    /// How many peers are asked for each block.
    asks: Vec<u8>,
    /// How many connected peers have each block.
    avail: Vec<u16>,
    /// Blocks got since the last HAVE batch.
    fresh: Vec<u32>,
    ticking: bool,
    /// Dial the others at the next tick.
    dial_later: bool,
    served: u64,
    done_at: Option<SimTime>,
}

impl Toy {
    /// A seeder of `original`.
    pub fn seeder(original: Arc<[u8]>, block_size: usize, cfg: ToyConfig) -> Toy {
        Toy::new(
            CopyStore::full(original, block_size),
            None,
            Arc::from([]),
            cfg,
            1,
        )
    }

    /// A leecher that dials `seeder` and some of `directory`.
    pub fn leecher(
        original: Arc<[u8]>,
        block_size: usize,
        seeder: NodeId,
        directory: Arc<[NodeId]>,
        cfg: ToyConfig,
        seed: u64,
    ) -> Toy {
        let store = CopyStore::empty(original, block_size);
        Toy::new(store, Some(seeder), directory, cfg, seed)
    }

    fn new(
        store: CopyStore,
        seeder: Option<NodeId>,
        directory: Arc<[NodeId]>,
        cfg: ToyConfig,
        seed: u64,
    ) -> Toy {
        let n = store.blocks();
        let mut t = Toy {
            cfg,
            seeder,
            directory,
            store,
            rng: Rng::seeded(seed),
            links: BTreeMap::new(),
            wanted: Bitfield::new(n),
            once: Bitfield::new(n),
            asks: vec![0; n as usize],
            avail: vec![0; n as usize],
            fresh: Vec::new(),
            ticking: false,
            dial_later: false,
            served: 0,
            done_at: None,
        };
        t.reset_wants();
        t
    }

    pub fn store(&self) -> &CopyStore {
        &self.store
    }

    /// Block bytes this node has queued to send (payload, not headers);
    /// `Sim::stats` counts what actually left its link.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// When it had the whole file (`None` for the seeder and the unfinished).
    pub fn done_at(&self) -> Option<SimTime> {
        self.done_at
    }

    pub fn is_complete(&self) -> bool {
        self.store.is_complete()
    }

    fn reset_wants(&mut self) {
        let n = self.store.blocks();
        self.wanted = Bitfield::new(n);
        for i in 0..n {
            if !self.store.has(i) {
                self.wanted.set(i);
            }
        }
        self.once = Bitfield::new(n);
        self.asks.fill(0);
        self.avail.fill(0);
    }

    fn dial_one(&mut self, cx: &mut Cx) {
        if self.directory.len() > 1 {
            let to = self.directory[self.rng.below(self.directory.len() as u64) as usize];
            if to != cx.me() && self.links.values().all(|l| l.peer != to) {
                cx.connect(to);
            }
        }
    }

    fn pump(&mut self, cx: &mut Cx, conn: ConnId) {
        let low = cx.low_water();
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        while cx.queued(conn) < low {
            let Some(b) = link.serving.pop_front() else {
                break;
            };
            let Some(data) = self.store.read(b) else {
                continue;
            };
            let mut f = header(BLOCK, 4 + data.len());
            f.extend_from_slice(&b.to_be_bytes());
            f.extend_from_slice(data);
            self.served += data.len() as u64;
            cx.send(conn, f);
        }
    }

    /// A block to ask `link` for: the locally rarest of a few random
    /// candidates nobody was asked for, or at the end one asked only once.
    fn pick(
        rng: &mut Rng,
        wanted: &Bitfield,
        once: &Bitfield,
        avail: &[u16],
        link: &Link,
    ) -> Option<u32> {
        let endgame = wanted.count() == 0;
        let pool = if endgame { once } else { wanted };
        let n = pool.len();
        let mut best: Option<u32> = None;
        for _ in 0..CANDIDATES {
            let from = rng.below(n as u64) as u32;
            let Some(c) = pool
                .next_common(&link.has, from)
                .or_else(|| pool.next_common(&link.has, 0))
            else {
                break;
            };
            if endgame && link.asked.contains(&c) {
                continue;
            }
            if best.is_none_or(|b| avail[c as usize] < avail[b as usize]) {
                best = Some(c);
            }
        }
        best
    }

    fn fill(&mut self, cx: &mut Cx, conn: ConnId) {
        if self.store.is_complete() {
            return;
        }
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        let window = if Some(link.peer) == self.seeder {
            self.cfg.seeder_window
        } else {
            self.cfg.window
        };
        let mut batch = Vec::new();
        while link.asked.len() < window {
            let Some(b) = Toy::pick(&mut self.rng, &self.wanted, &self.once, &self.avail, link)
            else {
                break;
            };
            self.asks[b as usize] += 1;
            match self.asks[b as usize] {
                1 => {
                    self.wanted.clear(b);
                    self.once.set(b);
                }
                _ => self.once.clear(b),
            }
            link.asked.push(b);
            batch.push(b);
        }
        if !batch.is_empty() {
            cx.send(conn, list_frame(REQUEST, &batch));
        }
    }

    fn fill_all(&mut self, cx: &mut Cx) {
        let conns: Vec<ConnId> = self.links.keys().copied().collect();
        for c in conns {
            self.fill(cx, c);
        }
    }

    /// A request for `b` is over (answered elsewhere or the link went).
    fn release(&mut self, b: u32) {
        let a = &mut self.asks[b as usize];
        *a = a.saturating_sub(1);
        if self.store.has(b) {
            return;
        }
        match *a {
            0 => {
                self.once.clear(b);
                self.wanted.set(b);
            }
            1 => {
                self.once.set(b);
            }
            _ => {}
        }
    }

    fn got_block(&mut self, cx: &mut Cx, conn: ConnId, body: &[u8]) {
        let Some((b, data)) = split_u32(body) else {
            return;
        };
        if b >= self.store.blocks() {
            return;
        }
        if let Some(link) = self.links.get_mut(&conn) {
            if let Some(at) = link.asked.iter().position(|&x| x == b) {
                link.asked.swap_remove(at);
                self.asks[b as usize] = self.asks[b as usize].saturating_sub(1);
            }
        }
        if !self.store.has(b) {
            self.store.write(b, data);
            self.wanted.clear(b);
            self.once.clear(b);
            self.fresh.push(b);
            // The other peers asked for it: cancel.
            if self.asks[b as usize] > 0 {
                let others: Vec<ConnId> = self
                    .links
                    .iter_mut()
                    .filter_map(|(&c, l)| {
                        let at = l.asked.iter().position(|&x| x == b)?;
                        l.asked.swap_remove(at);
                        Some(c)
                    })
                    .collect();
                for c in others {
                    self.asks[b as usize] = self.asks[b as usize].saturating_sub(1);
                    cx.send(c, list_frame(CANCEL, &[b]));
                    self.fill(cx, c);
                }
            }
            if self.store.is_complete() && self.done_at.is_none() {
                self.done_at = Some(cx.now());
            }
        }
        self.fill(cx, conn);
    }
}

impl Node for Toy {
    fn start(&mut self, cx: &mut Cx) {
        let Some(seeder) = self.seeder else {
            return;
        };
        if !self.store.is_complete() {
            cx.connect(seeder);
        }
        self.dial_later = true;
        if !self.ticking {
            self.ticking = true;
            cx.timer(cx.now() + self.cfg.have_every, TICK);
        }
    }

    fn connected(&mut self, cx: &mut Cx, conn: ConnId, peer: NodeId, _outgoing: bool) {
        let n = self.store.blocks();
        self.links.insert(
            conn,
            Link {
                peer,
                has: Bitfield::new(n),
                asked: Vec::new(),
                serving: VecDeque::new(),
            },
        );
        let bits = self.store.written().to_bytes();
        let mut f = header(HAVE_SET, bits.len());
        f.extend_from_slice(&bits);
        cx.send(conn, f);
    }

    fn frame(&mut self, cx: &mut Cx, conn: ConnId, bytes: &[u8]) {
        let Some((ty, body)) = parse(bytes) else {
            return;
        };
        match ty {
            HAVE_SET | HAVE => {
                let Some(link) = self.links.get_mut(&conn) else {
                    return;
                };
                let new = |b: u32| {
                    if b < link.has.len() && link.has.set(b) {
                        self.avail[b as usize] += 1;
                    }
                };
                if ty == HAVE_SET {
                    if let Some(set) = Bitfield::from_bytes(self.store.blocks(), body) {
                        set.iter_ones().for_each(new);
                    }
                } else {
                    blocks(body).for_each(new);
                }
                self.fill(cx, conn);
            }
            REQUEST => {
                let Some(link) = self.links.get_mut(&conn) else {
                    return;
                };
                link.serving
                    .extend(blocks(body).filter(|&b| self.store.has(b)));
                self.pump(cx, conn);
            }
            CANCEL => {
                if let Some(link) = self.links.get_mut(&conn) {
                    for b in blocks(body) {
                        link.serving.retain(|&x| x != b);
                    }
                }
            }
            BLOCK => self.got_block(cx, conn, body),
            _ => {}
        }
    }

    fn writable(&mut self, cx: &mut Cx, conn: ConnId) {
        self.pump(cx, conn);
    }

    fn closed(&mut self, cx: &mut Cx, conn: ConnId) {
        let Some(link) = self.links.remove(&conn) else {
            // A dial nobody answered.
            if !self.store.is_complete() {
                self.dial_one(cx);
            }
            return;
        };
        for b in link.has.iter_ones() {
            self.avail[b as usize] -= 1;
        }
        for b in link.asked {
            self.release(b);
        }
        self.fill_all(cx);
    }

    fn timer(&mut self, cx: &mut Cx, token: u64) {
        if token != TICK {
            return;
        }
        if std::mem::take(&mut self.dial_later) {
            for _ in 0..self.cfg.degree {
                self.dial_one(cx);
            }
        }
        if !self.fresh.is_empty() {
            let fresh = std::mem::take(&mut self.fresh);
            let conns: Vec<ConnId> = self.links.keys().copied().collect();
            for c in conns {
                cx.send(c, list_frame(HAVE, &fresh));
            }
        }
        if self.store.is_complete() && !self.dial_later {
            self.ticking = false;
        } else {
            cx.timer(cx.now() + self.cfg.have_every, TICK);
        }
    }

    fn left(&mut self) {
        self.links.clear();
        self.fresh.clear();
        self.ticking = false;
        self.reset_wants();
    }
}

fn header(ty: u8, body_len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + body_len);
    f.extend_from_slice(&(body_len as u32 + 1).to_be_bytes());
    f.push(ty);
    f
}

fn list_frame(ty: u8, list: &[u32]) -> Vec<u8> {
    let mut f = header(ty, 4 * list.len());
    for b in list {
        f.extend_from_slice(&b.to_be_bytes());
    }
    f
}

fn parse(frame: &[u8]) -> Option<(u8, &[u8])> {
    let (len, rest) = split_u32(frame)?;
    let (&ty, body) = rest.split_first()?;
    (len as usize == rest.len()).then_some((ty, body))
}

fn split_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let (n, rest) = b.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*n), rest))
}

fn blocks(body: &[u8]) -> impl Iterator<Item = u32> + '_ {
    body.chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}
