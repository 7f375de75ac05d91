//! A simulated peer that runs the real machines: `download::fetch::Fetch`
//! per outgoing connection over one `download::plan::Plan`, and
//! `peer::block_server::machine::Serve` per incoming connection over a `MemFile` (with the
//! seeder's `peer::block_server::seeding::Seeding` once the file is complete). Real
//! frames go over the simulated connections, encoded and decoded by
//! `wire`. What this file adds is only the drivers, and they mirror the
//! threads of the real peer:
//!
//! - `drive` / `perform` / `end_fetch` mirror `download::worker` (`drive`,
//!   `perform`, `run`): poll, carry out the actions, wait for a reply (at
//!   most `worker::POLL`) or, with nothing to request, for the plan to
//!   change (at most `WORK_WAIT`; a released piece wakes them, and a write
//!   that completes the plan or comes with every piece claimed);
//!   verified runs are handed out before each wait. A `Write` goes into
//!   the node's `CopyStore`, which checks every byte against the original.
//! - `add_holders` / `end_fetch` / the refresh timer drive the
//!   coordinator's own rules, `download::holders::Holders`: a Fetch per
//!   holder it picks from the tracker's WHO_HAS answer (`sim::tracker`,
//!   the real `Catalogue`), the plan told of a swarm when it says so, an
//!   exit's verdict counted, the next refresh when `refresh_every` says.
//!   When the plan completes, every Fetch stops, as the workers do when
//!   the download ends.
//!   With a site (`in_site`), as the coordinator with `Job::site`: holders
//!   of other sites get `Fetch::set_remote`, and the plan this peer's
//!   share of what the site fetches from outside (`plan::site_share` over
//!   the connected downloaders of its site).
//! - `serve_step` / the tick mirror `peer::block_server::driver`: requests are taken as
//!   they arrive, then the machine's `tick`, its replies, and one slice of
//!   at most 16 BLOCK frames; the next slice when the connection's queue
//!   falls below the low-water mark (see `sim::Config::low_water`). A
//!   connection with nothing pending is ticked on the 100 ms `TICK` when
//!   the tick can give it something (see `tick`): new pieces here since
//!   it last looked, or waiting for `HAVE_EVERY`, a seeder's offers, the
//!   idle timeout.
//! - `accept` / `apply` / `report` drive the block server's admission
//!   gate, `net::admission::Admission`, as `net::gate` does: a new
//!   connection waits in the lobby until its first frame, is handed a
//!   handler or waits for one; the gate's evictions and BUSY refusals are
//!   carried out, and it is told when a handler waits for its client or
//!   works for it.
//! - A leecher serves its verified pieces while downloading (a partial
//!   `MemFile` whose version and piece set change with every write, as
//!   `share_partial`); once complete, new OPENs get a complete `MemFile`
//!   with its own `Seeding` (as the store does after a finished download)
//!   and connections already open keep theirs.
//! - Leaving is a killed process: connections and timers vanish (Fetch
//!   machines are abandoned, Serve machines closed, for the books), the
//!   copy's verified pieces stay "on disk", and a rejoin resumes from them
//!   with a new plan, as `resume` does.

use super::conn_map::ConnMap;
use super::tracker::SimTracker;
use super::{ConnId, CopyStore, Cx, NodeId, SimNode, SimTime};
use crate::bitfield::Bitfield;
use crate::download::fetch::{Action, Fetch, PieceCheck, Wait};
use crate::download::holders::{Holders, Verdict};
use crate::download::plan::{site_share, Plan};
use crate::download::worker::POLL;
use crate::download::WORK_WAIT;
use crate::error::{code, Error};
// Hash maps (of keys the simulator numbers itself) only where the order
// of iteration decides nothing.
use crate::int_hash::IntMap;
use crate::net::admission::{Admission, Decision, GateId};
use crate::peer::block_server::driver::TICK;
use crate::peer::block_server::machine::{Held, Library, MemFile, Serve};
use crate::peer::block_server::seeding::Seeding;
use crate::peer::block_server::ADMISSION;
use crate::record::FileRecord;
use crate::rng::Rng;
use crate::wire::message::write_block;
use crate::wire::{frame, Answer, Decode, Encode, PeerReply, PeerRequest, MAX_CONTROL_FRAME};
use crate::wire::{HEADER_LEN, MAX_FRAME};
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Timer tokens: the server tick, the refresh, a wake-up of the workers
/// waiting for work, and the workers' timer (their waits' deadlines).
const T_TICK: u64 = 1;
const T_REFRESH: u64 = 2;
const T_NOTIFY: u64 = 3;
const T_WAKE: u64 = 4;

/// What a run can report about one peer.
#[derive(Clone, Debug, Default)]
pub struct PeerStats {
    /// Blocks written first here, by the node they came from (a hash
    /// map: a tree's levels missed the cache at every write).
    pub from: IntMap<NodeId, u64>,
    /// BLOCK frames received, counted or not (endgame copies, late blocks).
    pub blocks_received: u64,
    /// BLOCK frames this node's servers queued.
    pub blocks_served: u64,
    /// Blocks whose bytes differed from the original's when written.
    pub bad_writes: u64,
    /// Connections that ended in an error other than BUSY, and BUSY ones.
    pub fetch_errors: u64,
    pub busy: u64,
    /// Connections refused here with BUSY.
    pub refused: u64,
    /// Idle connections closed here to make room for a new one.
    pub evicted: u64,
    /// Bytes of the messages sent, by kind (BLOCKs not included), in the
    /// order the kinds were first sent (a dozen: a scan costs less than a
    /// tree of strings at every frame).
    pub sent_by_kind: Vec<(&'static str, u64)>,
}

struct Fetching {
    peer: NodeId,
    fetch: Fetch,
}

/// When a worker polls again, and whether it waits for work (not a
/// reply): kept beside the other workers' (`ConnMap`'s companion), as the
/// wake-up timer reads every worker's.
#[derive(Clone, Copy, Default)]
struct Wake {
    at: SimTime,
    for_work: bool,
}

/// One download: the coordinator's state and its workers.
struct Download {
    plan: RefCell<Plan>,
    fetches: ConnMap<Fetching, Wake>,
    /// The coordinator's rules: whom to start, retry or ban.
    holders: Holders<NodeId>,
    /// Connected downloaders of this peer's site (with a site).
    siblings: std::collections::BTreeSet<NodeId>,
    /// A worker wrote, released a piece or ended: wake those waiting.
    notify_armed: bool,
    /// Workers waiting for work (`Wake::for_work`).
    waiting: usize,
    /// The workers' one wake-up timer, at the earliest `wake` when armed
    /// (a timer each, moved at every reply, fired four times a second
    /// per connection for nothing: a fifth of all events).
    wake_armed: Option<SimTime>,
    complete: bool,
}

pub struct SimPeer {
    record: Arc<FileRecord>,
    tracker: Rc<RefCell<SimTracker>>,
    me: Option<NodeId>,
    rng: Rng,
    base: Instant,
    copy: CopyStore,
    /// The verified pieces: what a restarted peer finds on its disk.
    verified: Bitfield,
    /// What the block server serves: the file being downloaded, and the
    /// complete file once there is one.
    partial: Option<MemFile>,
    complete: Option<MemFile>,
    serving: ConnMap<Handler, Looked>,
    /// The block server's admission gate (`net::admission`), the
    /// connections it knows by its ids, and the frames of those waiting
    /// in its lobby for a handler.
    gate: Admission,
    gated: IntMap<ConnId, GateId>,
    by_gate: IntMap<GateId, ConnId>,
    lobby: IntMap<ConnId, Vec<Vec<u8>>>,
    dl: Option<Download>,
    done_at: Option<SimTime>,
    stats: PeerStats,
    /// For a peer that started with the whole file (the seeder): how
    /// often each piece left in a slice. Empty for the others: counted
    /// for every peer, it was a 16 KiB array apiece, a cache miss per
    /// slice at ten thousand peers, and read for the seeder only.
    served_pieces: Vec<u32>,
    /// Its site (`peer --site`), 0: none.
    site: u16,
    /// Its Fetches' piece check: the bytes against the original's.
    check: PieceCheck,
    /// Connections to visit in a tick or wake-up, kept for the next.
    scratch: Vec<ConnId>,
}

/// One handled connection: its machine.
struct Handler {
    m: Serve<MemFile>,
    /// Its id at the gate (as in `gated`, without a lookup per request).
    gate: GateId,
}

/// What the tick reads of a handled connection, kept beside the others'
/// (`ConnMap`'s companion): reading each machine at every tick missed
/// the cache once or twice per connection at ten thousand nodes.
#[derive(Clone, Copy, Default)]
struct Looked {
    /// The version of the file being downloaded here when it last
    /// looked (see `tick`).
    seen: u64,
    /// As of its machine's last call: nothing pending, and until when
    /// `Serve::quiet` holds, if it does.
    idle: bool,
    quiet_until: Option<Instant>,
    /// `Serve::held`: when its tick would do nothing even with new pieces.
    held: Option<Held>,
}

/// The block server's view of this peer's one file.
struct Lib<'a> {
    file: Option<&'a MemFile>,
}

impl Library for Lib<'_> {
    type File = MemFile;
    fn find(&self, name: &str) -> Option<MemFile> {
        self.file.filter(|f| f.record.name == name).cloned()
    }
    fn id(&self) -> &str {
        "simulated peer"
    }
}

impl SimPeer {
    /// A peer holding the whole file.
    pub fn seeder(
        original: Arc<[u8]>,
        record: Arc<FileRecord>,
        tracker: Rc<RefCell<SimTracker>>,
        seed: u64,
    ) -> SimPeer {
        let copy = CopyStore::full(original, record.block_size as usize);
        let verified = Bitfield::full(record.piece_count());
        SimPeer::new(copy, verified, record, tracker, seed)
    }

    /// A peer that downloads the file.
    pub fn leecher(
        original: Arc<[u8]>,
        record: Arc<FileRecord>,
        tracker: Rc<RefCell<SimTracker>>,
        seed: u64,
    ) -> SimPeer {
        let copy = CopyStore::empty(original, record.block_size as usize);
        let verified = Bitfield::new(record.piece_count());
        SimPeer::new(copy, verified, record, tracker, seed)
    }

    fn new(
        copy: CopyStore,
        verified: Bitfield,
        record: Arc<FileRecord>,
        tracker: Rc<RefCell<SimTracker>>,
        seed: u64,
    ) -> SimPeer {
        let pieces = record.piece_count() as usize;
        let served_pieces = if verified.is_full() {
            vec![0; pieces]
        } else {
            Vec::new()
        };
        let (original, r) = (copy.original().clone(), record.clone());
        let check: PieceCheck = Arc::new(move |i, bytes| {
            let at = r.piece_offset(i) as usize;
            original.get(at..at + r.piece_len(i) as usize) == Some(bytes)
        });
        SimPeer {
            check,
            scratch: Vec::new(),
            record,
            tracker,
            me: None,
            rng: Rng::seeded(seed),
            base: Instant::now(),
            copy,
            verified,
            partial: None,
            complete: None,
            serving: ConnMap::default(),
            gate: Admission::new(ADMISSION),
            gated: IntMap::default(),
            by_gate: IntMap::default(),
            lobby: IntMap::default(),
            dl: None,
            done_at: None,
            stats: PeerStats::default(),
            served_pieces,
            site: 0,
        }
    }

    /// The peer is in site `site` (from 1), as with `--site`.
    pub fn in_site(mut self, site: u16) -> SimPeer {
        self.site = site;
        self
    }

    pub fn is_complete(&self) -> bool {
        self.verified.is_full()
    }

    /// When its download completed (`None` for a seeder, or not yet).
    pub fn done_at(&self) -> Option<SimTime> {
        self.done_at
    }

    pub fn copy(&self) -> &CopyStore {
        &self.copy
    }

    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }

    /// How many times each piece went out in a slice from this node, if
    /// it started with the whole file (else empty).
    pub fn served_pieces(&self) -> &[u32] {
        &self.served_pieces
    }

    /// Copies of the file its current `Seeding` schedule counted as sent.
    pub fn seeding_copies(&self) -> Option<f64> {
        let s = self.complete.as_ref()?.seeding.as_ref()?;
        Some(s.lock().unwrap_or_else(|e| e.into_inner()).copies())
    }

    /// One line on where its download stands, for a run that did not end.
    pub fn describe(&self) -> String {
        let Some(dl) = &self.dl else {
            return format!(
                "{} of {} pieces, no download",
                self.verified.count(),
                self.verified.len()
            );
        };
        let waiting = dl.fetches.iter_hot().filter(|(_, w)| w.for_work).count();
        // `useful` borrows the plan itself: count before borrowing it here.
        let full = dl
            .fetches
            .values()
            .filter(|f| f.fetch.useful(&dl.plan))
            .count();
        let plan = dl.plan.borrow();
        format!(
            "{} of {} pieces, {} connections ({} waiting for work, {} useful), {} attempts used",
            plan.done().count(),
            plan.pieces(),
            dl.fetches.len(),
            waiting,
            full,
            dl.holders.attempts()
        )
    }

    fn instant(&self, t: SimTime) -> Instant {
        self.base + t.since_start()
    }

    fn complete_file(&mut self) -> MemFile {
        let seeding = Seeding::new(self.record.piece_count(), self.rng.next_u64());
        MemFile {
            record: self.record.clone(),
            partial: None,
            seeding: Some(Arc::new(Mutex::new(seeding))),
        }
    }

    // ---- the block server (peer::block_server::driver)

    /// A connection arrived: the gate admits it to its lobby (perhaps
    /// evicting another), or refuses it with BUSY.
    fn accept(&mut self, cx: &mut Cx, conn: ConnId, from: NodeId) {
        let ip = IpAddr::V4(Ipv4Addr::from(from as u32));
        let decisions = self.gate.accept(ip, self.instant(cx.now()));
        self.apply(cx, decisions, Some(conn));
    }

    /// Carries out the gate's decisions, as `net::gate` does; `new` is the
    /// connection `Admit` or `Refuse` is about.
    fn apply(&mut self, cx: &mut Cx, decisions: Vec<Decision>, mut new: Option<ConnId>) {
        for d in decisions {
            match d {
                Decision::Admit(id) => {
                    if let Some(conn) = new.take() {
                        self.gated.insert(conn, id);
                        self.by_gate.insert(id, conn);
                        self.lobby.insert(conn, Vec::new());
                    }
                }
                Decision::Refuse => {
                    if let Some(conn) = new.take() {
                        self.stats.refused += 1;
                        self.refuse(cx, conn);
                    }
                }
                Decision::Evict(id) => self.evict(cx, id),
                Decision::Hand(id) => self.hand(cx, id),
            }
        }
    }

    fn refuse(&mut self, cx: &mut Cx, conn: ConnId) {
        let busy = PeerReply::Error {
            code: code::BUSY,
            message: "server busy: too many connections, try again later".into(),
        };
        send(cx, &mut self.stats, conn, &busy);
        cx.close(conn);
    }

    /// Out of the lobby with BUSY, or off its handler: closed at once (a
    /// shut-down socket ends its handler), and the slot it leaves goes to
    /// a connection waiting for one.
    fn evict(&mut self, cx: &mut Cx, id: GateId) {
        let Some(&conn) = self.by_gate.get(&id) else {
            return;
        };
        if self.lobby.remove(&conn).is_some() {
            self.forget(conn);
            self.stats.refused += 1;
            return self.refuse(cx, conn);
        }
        self.stats.evicted += 1;
        self.end_serve(cx, conn, None);
        let decisions = self.gate.tick(self.instant(cx.now()));
        self.apply(cx, decisions, None);
    }

    /// A handler takes the connection: its machine starts with the
    /// frames that waited in the lobby.
    fn hand(&mut self, cx: &mut Cx, id: GateId) {
        let Some(&conn) = self.by_gate.get(&id) else {
            return;
        };
        let frames = self.lobby.remove(&conn).unwrap_or_default();
        let h = Handler {
            m: Serve::new(self.instant(cx.now())),
            gate: id,
        };
        self.serving.insert(cx, conn, h);
        let version = self.version();
        if let Some((_, l)) = self.serving.get_with_hot(cx, conn) {
            l.seen = version;
        }
        self.look(cx, conn);
        for bytes in frames {
            self.on_request(cx, conn, &bytes);
        }
    }

    /// Notes what the tick reads of the connection's machine (`Looked`):
    /// after every call on it (`report` follows each).
    fn look(&mut self, cx: &Cx, conn: ConnId) {
        if let Some((h, l)) = self.serving.get_with_hot(cx, conn) {
            l.idle = h.m.pending() == 0;
            l.quiet_until = h.m.quiet_until();
            l.held = h.m.held();
        }
    }

    /// The gate is told the connection is gone.
    fn forget(&mut self, conn: ConnId) {
        if let Some(id) = self.gated.remove(&conn) {
            self.by_gate.remove(&id);
            self.gate.closed(id);
        }
    }

    /// A frame on a connection still in the lobby: the first one makes it
    /// ready for a handler.
    fn in_lobby(&mut self, cx: &mut Cx, conn: ConnId, bytes: &[u8]) {
        let Some(frames) = self.lobby.get_mut(&conn) else {
            return;
        };
        frames.push(bytes.to_vec());
        if frames.len() == 1 {
            let id = self.gated[&conn];
            let decisions = self.gate.ready(id, self.instant(cx.now()));
            self.apply(cx, decisions, None);
        }
    }

    /// Tells the gate whether the handler waits for its client (and may be
    /// evicted for a newcomer) or works for it, as `peer::block_server::driver` does.
    fn report(&mut self, cx: &mut Cx, conn: ConnId) {
        self.look(cx, conn);
        let Some(Handler { m, gate: id, .. }) = self.serving.get(cx, conn) else {
            return;
        };
        let id = *id;
        let now = self.instant(cx.now());
        // The real handler says so after `flush`, with its blocks in the
        // socket's buffer, not yet sent: a queue below the low-water mark
        // here. (Waiting for an empty queue instead gave 1.36 x T* at
        // N=1000: ready connections waited out the gate's start deadline.)
        if m.pending() == 0 && cx.queued(conn) < cx.low_water() {
            self.gate.idle(id, m.has_open(), now);
        } else {
            self.gate.busy(id, now);
        }
    }

    fn on_request(&mut self, cx: &mut Cx, conn: ConnId, bytes: &[u8]) {
        let now = self.instant(cx.now());
        let lib = Lib {
            file: self.complete.as_ref().or(self.partial.as_ref()),
        };
        let Some(Handler { m, gate, .. }) = self.serving.get_mut(cx, conn) else {
            return;
        };
        let gate = *gate;
        let req = decode::<PeerRequest>(bytes, MAX_CONTROL_FRAME);
        if let Err(e) = req.and_then(|r| m.on_request(r, now, &lib)) {
            self.end_serve(cx, conn, Some(e));
            return;
        }
        self.gate.busy(gate, now);
        if cx.queued(conn) < cx.low_water() {
            self.serve_step(cx, conn);
        }
        self.report(cx, conn);
    }

    /// One turn of the server's loop: tick, answers, then a slice of
    /// blocks while the queue is below the low-water mark.
    fn serve_step(&mut self, cx: &mut Cx, conn: ConnId) {
        let now = self.instant(cx.now());
        let version = self.version();
        loop {
            let Some((Handler { m, .. }, looked)) = self.serving.get_with_hot(cx, conn) else {
                return;
            };
            looked.seen = version;
            if let Err(e) = m.tick(now) {
                return self.end_serve(cx, conn, Some(e));
            }
            for reply in m.replies() {
                send(cx, &mut self.stats, conn, &reply);
            }
            if m.closing() {
                return self.end_serve(cx, conn, None);
            }
            if cx.queued(conn) >= cx.low_water() {
                return;
            }
            let slice = match m.next_slice() {
                Ok(Some(s)) => s,
                Ok(None) => return,
                Err(e) => return self.end_serve(cx, conn, Some(e)),
            };
            for block in slice.block..slice.block + slice.count {
                if let Some((at, len)) = self.copy.original_run(block) {
                    // Encoded as it is handed over (`sim::frame`).
                    cx.send_block(conn, slice.handle, block, self.copy.original(), at, len);
                } else {
                    let Some(data) = self.copy.read(block) else {
                        let e = Error::protocol(format!("block {block} is not held here"));
                        return self.end_serve(cx, conn, Some(e));
                    };
                    let mut frame = cx.buffer(HEADER_LEN + 8 + data.len());
                    let _ = write_block(&mut frame, slice.handle, block, data);
                    cx.send(conn, frame);
                }
                self.stats.blocks_served += 1;
            }
            let r = &self.record;
            for p in r.piece_of_block(slice.block)..=r.piece_of_block(slice.block + slice.count - 1)
            {
                if let Some(n) = self.served_pieces.get_mut(p as usize) {
                    *n += 1;
                }
            }
        }
    }

    /// The connection is over: an ERROR first if it broke a rule.
    fn end_serve(&mut self, cx: &mut Cx, conn: ConnId, e: Option<Error>) {
        if let Some(mut h) = self.serving.remove(conn) {
            h.m.close();
        }
        self.forget(conn);
        if let Some(e) = e.filter(|e| !matches!(e, Error::Timeout(_))) {
            send(cx, &mut self.stats, conn, &PeerReply::error(&e));
        }
        cx.close(conn);
    }

    /// `peer::block_server::driver`'s read timeout for the connections
    /// with nothing pending, and the gate's turn. Only the connections the
    /// tick can give something are stepped: those whose file being
    /// downloaded here has new pieces since they last looked, and those
    /// `Serve::quiet` does not vouch for (a seeder's offers, new pieces
    /// waiting for `HAVE_EVERY`, the idle timeout), unless `Serve::held`
    /// says their new pieces still wait. The others would send nothing
    /// and tell the gate what it knows.
    fn tick(&mut self, cx: &mut Cx) {
        let now = self.instant(cx.now());
        let (version, verified) = self.version_and_count();
        let mut idle = std::mem::take(&mut self.scratch);
        debug_assert!(self.serving.iter().all(|(c, h)| {
            let l = self.serving.hot(cx, c).unwrap_or_default();
            l.idle == (h.m.pending() == 0)
                && l.quiet_until == h.m.quiet_until()
                && l.held == h.m.held()
        }));
        idle.extend(
            self.serving
                .iter_hot()
                .filter(|(_, l)| {
                    l.idle
                        && (l.seen != version || l.quiet_until.is_none_or(|u| now > u))
                        && !l.held.is_some_and(|h| h.holds(now, verified))
                })
                .map(|(c, _)| c),
        );
        for &conn in &idle {
            self.serve_step(cx, conn);
            self.report(cx, conn);
        }
        idle.clear();
        self.scratch = idle;
        // With nobody in its lobby the gate has no deadline to enforce
        // and nobody to hand a thread.
        if !self.lobby.is_empty() {
            let decisions = self.gate.tick(now);
            self.apply(cx, decisions, None);
        }
        cx.timer(cx.now() + TICK, T_TICK);
    }

    /// The version of the file being downloaded here (its verified
    /// pieces changed when it changed); 0 without a download.
    fn version(&self) -> u64 {
        self.version_and_count().0
    }

    /// `version`, and how many pieces of that file are verified (what
    /// `Served::verified` says).
    fn version_and_count(&self) -> (u64, u32) {
        let part = self.partial.as_ref().and_then(|m| m.partial.as_ref());
        part.map_or((0, 0), |p| {
            let g = p.lock().unwrap_or_else(|e| e.into_inner());
            (g.0, g.1.count())
        })
    }

    // ---- the coordinator (download/mod.rs)

    fn start_download(&mut self, cx: &mut Cx) {
        let r = &self.record;
        let plan = Plan::new(r.piece_count(), r.blocks_per_piece, &self.verified);
        self.partial = Some(MemFile {
            record: r.clone(),
            partial: Some(Arc::new(Mutex::new((0, self.verified.clone())))),
            seeding: None,
        });
        self.dl = Some(Download {
            plan: RefCell::new(plan),
            fetches: ConnMap::default(),
            holders: Holders::new(self.instant(cx.now())),
            siblings: std::collections::BTreeSet::new(),
            notify_armed: false,
            waiting: 0,
            wake_armed: None,
            complete: false,
        });
        self.refresh(cx);
    }

    /// Asks the tracker who takes part and connects to the new ones; sets
    /// the next refresh.
    fn refresh(&mut self, cx: &mut Cx) {
        let holders = self.tracker.borrow_mut().who_has_for(self.site);
        self.add_holders(cx, holders);
        let Some(dl) = &self.dl else {
            return;
        };
        let due = dl.holders.refresh_every(self.instant(cx.now()));
        cx.timer(cx.now() + due, T_REFRESH);
    }

    fn add_holders(&mut self, cx: &mut Cx, answer: Vec<(NodeId, bool)>) {
        let pieces = self.record.piece_count();
        let now = self.instant(cx.now());
        let me = cx.me();
        let tracker = self.tracker.borrow();
        let site = self.site;
        let remote = |peer: NodeId| site != 0 && tracker.site_of(peer) != site;
        let Some(dl) = &mut self.dl else {
            return;
        };
        let offer = dl.holders.offer(&answer, &me, pieces);
        if offer.swarm {
            dl.plan.borrow_mut().set_swarm();
        }
        let mut started = Vec::new();
        for start in offer.start {
            let peer = start.holder;
            let complete = answer.iter().any(|&(h, c)| h == peer && c);
            let conn = cx.connect(peer);
            let mut fetch = Fetch::new(self.record.clone(), start.cursor, self.rng.next_u64(), now);
            fetch.check_pieces_with(self.check.clone());
            if complete && offer.sampled {
                fetch.spare_as_seeder();
            }
            if remote(peer) {
                fetch.set_remote(now);
            } else if site != 0 && !complete {
                dl.siblings.insert(peer);
            }
            dl.fetches.insert(
                cx,
                conn,
                Fetching {
                    peer: start.holder,
                    fetch,
                },
            );
            if let Some((_, w)) = dl.fetches.get_with_hot(cx, conn) {
                w.at = cx.now();
            }
            started.push(conn);
        }
        drop(tracker);
        self.share_out(me);
        for conn in started {
            // The OPEN goes out at once; it waits for the connection.
            self.perform(cx, conn);
        }
    }

    /// `Coordinator::share_out`: this peer's share of what its site
    /// fetches from outside.
    fn share_out(&mut self, me: NodeId) {
        let Some(dl) = &mut self.dl else {
            return;
        };
        if self.site != 0 {
            let siblings: Vec<NodeId> = dl.siblings.iter().copied().collect();
            let (rank, size) = site_share(&me, &siblings);
            dl.plan.borrow_mut().set_site_share(rank, size);
        }
    }

    /// A worker ended (`worker::run`'s end, then the coordinator's reap).
    fn end_fetch(&mut self, cx: &mut Cx, conn: ConnId, result: Result<(), Error>) {
        let Some(dl) = &mut self.dl else {
            return;
        };
        let Some(f) = dl.fetches.get_mut(cx, conn) else {
            return;
        };
        f.fetch.abandon(&dl.plan);
        self.perform(cx, conn);
        let Some(dl) = &mut self.dl else {
            return;
        };
        let for_work = dl.fetches.hot(cx, conn).is_some_and(|w| w.for_work);
        let Some(f) = dl.fetches.remove(conn) else {
            return;
        };
        dl.waiting -= usize::from(for_work);
        cx.close(conn);
        let verdict = dl.holders.exited(&f.peer, &result);
        if dl.siblings.remove(&f.peer) {
            self.share_out(cx.me());
        }
        self.notify(cx);
        match verdict {
            Verdict::Done => {}
            Verdict::Busy => self.stats.busy += 1,
            Verdict::Banned | Verdict::Dropped | Verdict::Fatal => self.stats.fetch_errors += 1,
        }
    }

    /// Wakes the workers waiting for work (`Shared::notify`), once per
    /// instant, if any waits.
    fn notify(&mut self, cx: &mut Cx) {
        if let Some(dl) = &mut self.dl {
            if !dl.notify_armed && dl.waiting > 0 {
                dl.notify_armed = true;
                cx.timer(cx.now(), T_NOTIFY);
            }
        }
    }

    // ---- the workers (download::worker)

    /// `worker::drive`'s loop, from one event to the next wait.
    fn drive(&mut self, cx: &mut Cx, conn: ConnId) {
        let now = self.instant(cx.now());
        let Some(dl) = &mut self.dl else {
            return;
        };
        let Some(f) = dl.fetches.get_mut(cx, conn) else {
            return;
        };
        let wait = match f.fetch.poll(now, &dl.plan) {
            Ok(w) => w,
            Err(e) => return self.end_fetch(cx, conn, Err(e)),
        };
        self.perform(cx, conn);
        let t = cx.now();
        // As the worker, the times in `Wait` are not used: it reads the
        // socket for up to `POLL`, or waits for work up to `WORK_WAIT`.
        // (A PING unanswered for longer than `PING_EVERY` makes `Reply`'s
        // time lie in the past: a driver that slept until then would spin.)
        let (wake, for_work) = match wait {
            Wait::Done => return self.end_fetch(cx, conn, Ok(())),
            Wait::Work(_) => (t + WORK_WAIT, true),
            Wait::Reply(_) => (t + POLL, false),
        };
        let Some(dl) = &mut self.dl else {
            return;
        };
        let Some((f, w)) = dl.fetches.get_with_hot(cx, conn) else {
            return;
        };
        if !for_work {
            // About to wait on the socket: hand out what is verified.
            f.fetch.flush();
        }
        if w.for_work != for_work {
            w.for_work = for_work;
            dl.waiting = if for_work {
                dl.waiting + 1
            } else {
                dl.waiting - 1
            };
        }
        w.at = wake.max(t);
        let wake = w.at;
        self.arm_wake(cx, wake);
        self.perform(cx, conn);
    }

    /// The workers' timer goes off at `at` at the latest.
    fn arm_wake(&mut self, cx: &mut Cx, at: SimTime) {
        let Some(dl) = &mut self.dl else {
            return;
        };
        if dl.wake_armed.is_none_or(|a| a > at) {
            dl.wake_armed = Some(at);
            cx.timer(at, T_WAKE);
        }
    }

    /// The workers' timer: those whose wait is over poll; it is set again
    /// for the earliest wait left. A timer that is no longer the earliest
    /// armed (one set earlier since) does nothing.
    fn on_wake(&mut self, cx: &mut Cx) {
        let now = cx.now();
        let Some(dl) = &mut self.dl else {
            return;
        };
        if dl.wake_armed != Some(now) {
            return;
        }
        dl.wake_armed = None;
        let mut due = std::mem::take(&mut self.scratch);
        due.extend(
            dl.fetches
                .iter_hot()
                .filter(|(_, w)| w.at <= now)
                .map(|(c, _)| c),
        );
        for &conn in &due {
            self.drive(cx, conn);
        }
        due.clear();
        self.scratch = due;
        let next = self
            .dl
            .as_ref()
            .and_then(|dl| dl.fetches.iter_hot().map(|(_, w)| w.at).min());
        if let Some(at) = next {
            self.arm_wake(cx, at.max(now));
        }
    }

    /// `worker::perform`: requests go out, verified runs are written into
    /// the copy (checked against the original) and shared.
    fn perform(&mut self, cx: &mut Cx, conn: ConnId) {
        let Some(dl) = &mut self.dl else {
            return;
        };
        let Some(f) = dl.fetches.get_mut(cx, conn) else {
            return;
        };
        let peer = f.peer;
        let mut wake = false;
        while let Some(a) = f.fetch.next_action() {
            match a {
                Action::Send(req) => send(cx, &mut self.stats, conn, &req),
                Action::Write { first, count, data } => {
                    let r = &self.record;
                    let base = r.piece_offset(first) as usize;
                    for p in first..first + count {
                        for b in r.first_block(p)..r.first_block(p) + r.piece_blocks(p) {
                            let at = b as usize * r.block_size as usize - base;
                            if !self.copy.write(b, &data[at..at + r.block_len(b)]) {
                                self.stats.bad_writes += 1;
                            }
                        }
                    }
                    let (won, complete) = f.fetch.written(first, count, true, &dl.plan);
                    *self.stats.from.entry(peer).or_insert(0) += won;
                    let plan = dl.plan.borrow();
                    let mut newly = false;
                    for p in first..first + count {
                        if plan.is_done(p) && !self.verified.get(p) {
                            self.verified.set(p);
                            newly = true;
                        }
                    }
                    drop(plan);
                    if newly {
                        if let Some(part) = self.partial.as_ref().and_then(|m| m.partial.as_ref()) {
                            // The shared set follows `verified` bit by bit
                            // (a copy of the whole set per write before).
                            let mut g = part.lock().unwrap_or_else(|e| e.into_inner());
                            g.0 += 1;
                            for p in first..first + count {
                                if self.verified.get(p) {
                                    g.1.set(p);
                                }
                            }
                        }
                    }
                    dl.complete |= complete;
                    // As `DownloadState::progress_made`.
                    wake |= complete || dl.plan.borrow().nothing_needed();
                }
                Action::Released => wake = true,
            }
        }
        if wake {
            self.notify(cx);
        }
    }

    /// The plan is complete: the workers stop, new OPENs get the complete
    /// file with its own seeding schedule.
    fn finish(&mut self, cx: &mut Cx) {
        let Some(dl) = &self.dl else {
            return;
        };
        let conns: Vec<ConnId> = dl.fetches.keys().collect();
        for conn in conns {
            self.end_fetch(cx, conn, Err(Error::Cancelled));
        }
        self.dl = None;
        self.done_at = Some(cx.now());
        self.complete = Some(self.complete_file());
        self.tracker.borrow_mut().set_complete(cx.me());
    }

    /// After any event: a download that completed is finished.
    fn settle(&mut self, cx: &mut Cx) {
        if self.dl.as_ref().is_some_and(|d| d.complete) {
            self.finish(cx);
        }
    }

    fn on_reply(&mut self, cx: &mut Cx, conn: ConnId, bytes: &[u8]) {
        let now = self.instant(cx.now());
        let Some(dl) = &mut self.dl else {
            return;
        };
        let Some(f) = dl.fetches.get_mut(cx, conn) else {
            return;
        };
        let result = frame::parse(bytes, MAX_FRAME).and_then(|parsed| {
            let (ty, body, _) = parsed.ok_or_else(|| Error::protocol("a torn frame"))?;
            let reply = PeerReply::decode(ty, body)?;
            if matches!(reply, PeerReply::Block { .. }) {
                self.stats.blocks_received += 1;
            }
            f.fetch.on_reply(reply, now, &dl.plan)
        });
        match result {
            Ok(()) => self.drive(cx, conn),
            Err(e) => self.end_fetch(cx, conn, Err(e)),
        }
    }
}

/// What a control frame's buffer is made room for.
const SMALL_FRAME: usize = 256;

/// Sends one message as a frame.
fn send(cx: &mut Cx, stats: &mut PeerStats, conn: ConnId, m: &impl Encode) {
    // Room for a HAVE of a few dozen runs: growing it was a realloc.
    let mut frame = cx.buffer(SMALL_FRAME);
    m.encode(&mut frame);
    let kind = m.kind();
    match stats.sent_by_kind.iter_mut().find(|(k, _)| *k == kind) {
        Some((_, bytes)) => *bytes += frame.len() as u64,
        None => stats.sent_by_kind.push((kind, frame.len() as u64)),
    }
    cx.send_control(conn, frame);
}

fn decode<'a, M: Decode<'a>>(bytes: &'a [u8], max: usize) -> Result<M, Error> {
    let (ty, body, _) = frame::parse(bytes, max)?.ok_or_else(|| Error::protocol("a torn frame"))?;
    M::decode(ty, body)
}

impl SimNode for SimPeer {
    fn start(&mut self, cx: &mut Cx) {
        self.me = Some(cx.me());
        let complete = self.verified.is_full();
        self.tracker.borrow_mut().set_site(cx.me(), self.site);
        self.tracker.borrow_mut().join(cx.me(), complete);
        if complete {
            self.complete = Some(self.complete_file());
        } else {
            self.start_download(cx);
        }
        cx.timer(cx.now() + TICK, T_TICK);
    }

    fn connected(&mut self, cx: &mut Cx, conn: ConnId, peer: NodeId, outgoing: bool) {
        if !outgoing {
            self.accept(cx, conn, peer);
        }
    }

    fn frame(&mut self, cx: &mut Cx, conn: ConnId, bytes: &[u8]) {
        // Most frames are replies to a download: no server map to search.
        if cx.opened(conn) {
            self.on_reply(cx, conn, bytes);
        } else if self.serving.get(cx, conn).is_some() {
            self.on_request(cx, conn, bytes);
        } else if self.lobby.contains_key(&conn) {
            self.in_lobby(cx, conn, bytes);
        }
        self.settle(cx);
    }

    fn writable(&mut self, cx: &mut Cx, conn: ConnId) {
        if self.serving.get(cx, conn).is_some() {
            self.serve_step(cx, conn);
            self.report(cx, conn);
        }
    }

    fn closed(&mut self, cx: &mut Cx, conn: ConnId) {
        if let Some(mut h) = self.serving.remove(conn) {
            h.m.close();
            self.forget(conn);
            return;
        }
        if self.lobby.remove(&conn).is_some() {
            self.forget(conn);
            return;
        }
        let e = Error::protocol("the holder closed the connection");
        self.end_fetch(cx, conn, Err(e));
        self.settle(cx);
    }

    fn timer(&mut self, cx: &mut Cx, token: u64) {
        match token {
            T_TICK => self.tick(cx),
            T_REFRESH => self.refresh(cx),
            T_NOTIFY => {
                let Some(dl) = &mut self.dl else {
                    return;
                };
                dl.notify_armed = false;
                let waiting: Vec<ConnId> = dl
                    .fetches
                    .iter_hot()
                    .filter(|(_, w)| w.for_work)
                    .map(|(c, _)| c)
                    .collect();
                for conn in waiting {
                    self.drive(cx, conn);
                }
            }
            T_WAKE => self.on_wake(cx),
            _ => {}
        }
        self.settle(cx);
    }

    fn prefetch(&self, _conn: ConnId, tag: u32, outgoing: bool) {
        if !outgoing {
            self.serving.prefetch(tag);
        } else if let Some(dl) = &self.dl {
            dl.fetches.prefetch(tag);
        }
    }

    fn left(&mut self) {
        if let Some(me) = self.me {
            self.tracker.borrow_mut().leave(me);
        }
        if let Some(dl) = &mut self.dl {
            for f in dl.fetches.values_mut() {
                f.fetch.abandon(&dl.plan);
                let _ = f.fetch.actions().count();
            }
        }
        for (_, mut h) in self.serving.drain() {
            h.m.close();
        }
        self.gate = Admission::new(ADMISSION);
        self.gated.clear();
        self.by_gate.clear();
        self.lobby.clear();
        self.dl = None;
        self.partial = None;
        self.complete = None;
    }
}
