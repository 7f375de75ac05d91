//! The network core against a scripted node whose log of calls the tests
//! read: times, fairness, writable, close, leaving, order, determinism.

use super::frame::Frame;
use super::peer::SimPeer;
use super::tracker::SimTracker;
use super::*;
use crate::record::FileRecord;
use crate::rng::Rng;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
enum Got {
    Start,
    Connected(ConnId, NodeId, bool),
    /// Connection, the frame's sequence number, its length.
    Frame(ConnId, u64, usize),
    Writable(ConnId),
    Closed(ConnId),
    Timer(u64),
}

/// Dials `dial` on start; on each connection it opened, sends `frames`
/// (sizes), numbered from 0 in their first 8 bytes, then closes if
/// `close`. With `refill`, it sends frames of that size whenever writable
/// until `frames.len()` more have gone.
#[derive(Default)]
struct Script {
    log: Vec<(SimTime, Got)>,
    dial: Vec<NodeId>,
    frames: Vec<usize>,
    close: bool,
    timers: Vec<(Duration, u64)>,
    refill: Option<usize>,
    sent: std::collections::BTreeMap<ConnId, u64>,
}

fn frame(seq: u64, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(8)];
    f[..8].copy_from_slice(&seq.to_be_bytes());
    f
}

impl SimNode for Script {
    fn start(&mut self, cx: &mut Cx) {
        self.log.push((cx.now(), Got::Start));
        for &to in &self.dial {
            cx.connect(to);
        }
        for &(d, token) in &self.timers {
            cx.timer(cx.now() + d, token);
        }
    }
    fn connected(&mut self, cx: &mut Cx, conn: ConnId, peer: NodeId, outgoing: bool) {
        self.log
            .push((cx.now(), Got::Connected(conn, peer, outgoing)));
        if outgoing {
            for (i, &len) in self.frames.iter().enumerate() {
                cx.send(conn, frame(i as u64, len));
            }
            self.sent.insert(conn, self.frames.len() as u64);
            if self.close {
                cx.close(conn);
            }
        }
    }
    fn frame(&mut self, cx: &mut Cx, conn: ConnId, bytes: &[u8]) {
        let seq = u64::from_be_bytes(bytes[..8].try_into().unwrap());
        self.log
            .push((cx.now(), Got::Frame(conn, seq, bytes.len())));
    }
    fn writable(&mut self, cx: &mut Cx, conn: ConnId) {
        self.log.push((cx.now(), Got::Writable(conn)));
        if let Some(len) = self.refill {
            let sent = self.sent.entry(conn).or_default();
            while cx.queued(conn) < cx.low_water() && *sent < 2 * self.frames.len() as u64 {
                cx.send(conn, frame(*sent, len));
                *sent += 1;
            }
        }
    }
    fn closed(&mut self, cx: &mut Cx, conn: ConnId) {
        self.log.push((cx.now(), Got::Closed(conn)));
    }
    fn timer(&mut self, cx: &mut Cx, token: u64) {
        self.log.push((cx.now(), Got::Timer(token)));
    }
    fn left(&mut self) {}
}

impl Script {
    fn frames_got(&self) -> Vec<(SimTime, ConnId, u64, usize)> {
        self.log
            .iter()
            .filter_map(|(t, g)| match g {
                Got::Frame(c, s, l) => Some((*t, *c, *s, *l)),
                _ => None,
            })
            .collect()
    }
    fn last_frame_at(&self) -> SimTime {
        self.frames_got().last().map(|f| f.0).unwrap()
    }
}

const MB: u64 = 1_000_000;

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn at(d: Duration) -> SimTime {
    SimTime::ZERO + d
}

/// A sender (node 0, capped at 1 MB/s) and `receivers` uncapped nodes.
fn pair(sender: Script, receivers: usize, cfg: Config) -> Sim<Script> {
    let mut sim = Sim::new(cfg);
    sim.add(sender, Caps::upload(MB));
    for _ in 0..receivers {
        sim.add(Script::default(), Caps::default());
    }
    // Receivers first: a dial to a node not yet up is refused.
    for n in (0..=receivers).rev() {
        sim.start_at(n, SimTime::ZERO);
    }
    sim
}

fn run(sim: &mut Sim<Script>) {
    while sim.step().is_some() {}
}

#[test]
fn a_transfer_at_a_cap_takes_its_size_over_the_cap_plus_the_latency() {
    let sender = Script {
        dial: vec![1],
        frames: vec![10_000; 100],
        ..Script::default()
    };
    let mut sim = pair(sender, 1, Config::default());
    run(&mut sim);
    let rtt = us(100);
    // Connected after one RTT, 1 MB at 1 MB/s, half an RTT to arrive.
    assert_eq!(
        sim.node(1).last_frame_at(),
        at(rtt + Duration::from_secs(1) + rtt / 2)
    );
    assert_eq!(sim.node(1).frames_got().len(), 100);
    assert_eq!(sim.stats(0).sent_bytes, 1_000_000);
    assert_eq!(sim.stats(1).recv_frames, 100);
    // The acceptor heard of the connection after half an RTT.
    assert_eq!(
        sim.node(1).log[1],
        (at(rtt / 2), Got::Connected(ConnId(0), 0, false))
    );
    assert_eq!(
        sim.node(0).log[1],
        (at(rtt), Got::Connected(ConnId(0), 1, true))
    );
}

#[test]
fn two_connections_share_a_link_fairly_by_bytes() {
    // One connection sends 1,000-byte frames, the other 4,000-byte ones:
    // per frame round robin would give the second four times the first.
    let sender = Script {
        dial: vec![1, 2],
        ..Script::default()
    };
    let mut sim = pair(sender, 2, Config::default());
    // Let both connect, then queue 400 kB on each by hand.
    sim.run_until(at(us(200)));
    {
        let net = &mut sim.net_for_tests();
        for i in 0..400 {
            net.send(0, ConnId(0), Frame::Bytes(frame(i, 1_000)));
        }
        for i in 0..100 {
            net.send(0, ConnId(1), Frame::Bytes(frame(i, 4_000)));
        }
    }
    sim.run_until(at(us(200) + Duration::from_millis(400)));
    let b: usize = sim.node(1).frames_got().iter().map(|f| f.3).sum();
    let c: usize = sim.node(2).frames_got().iter().map(|f| f.3).sum();
    // 400 ms at 1 MB/s: 400 kB between them, half each within a frame or two.
    assert!((b + c).abs_diff(400_000) <= 4_000, "{b} + {c}");
    assert!(b.abs_diff(c) <= 2 * QUANTUM, "{b} vs {c}");
    run(&mut sim);
    // Both finish together, at 800 kB / 1 MB/s after the start.
    let (tb, tc) = (sim.node(1).last_frame_at(), sim.node(2).last_frame_at());
    assert!(
        tb.max(tc) - tb.min(tc) <= Duration::from_millis(5),
        "{tb} {tc}"
    );
    assert_eq!(
        tb.max(tc),
        at(us(200) + Duration::from_millis(800) + us(50))
    );
}

/// Two connections from node 0 (1 MB/s): on one, 100 kB frames and a
/// control frame behind them; on the other a control frame alone, sent
/// while the link is busy.
fn control_behind_blocks(pace_control: bool) -> (Vec<(SimTime, u64)>, SimTime) {
    let sender = Script {
        dial: vec![1, 2],
        ..Script::default()
    };
    let cfg = Config {
        pace_control,
        ..Config::default()
    };
    let mut sim = pair(sender, 2, cfg);
    sim.run_until(at(us(200)));
    {
        let net = &mut sim.net_for_tests();
        net.send(0, ConnId(0), Frame::Bytes(frame(0, 100_000)));
        net.send(0, ConnId(0), Frame::Bytes(frame(1, 100_000)));
        net.send(0, ConnId(0), Frame::Control(frame(2, 1_000)));
        net.send(0, ConnId(1), Frame::Control(frame(0, 1_000)));
    }
    run(&mut sim);
    let on_first = sim
        .node(1)
        .frames_got()
        .iter()
        .map(|f| (f.0, f.2))
        .collect();
    (on_first, sim.node(2).last_frame_at())
}

#[test]
fn a_control_frame_takes_no_link_time_and_keeps_its_place() {
    let (first, alone) = control_behind_blocks(false);
    // Alone on its connection it leaves at once, though the link is busy.
    assert_eq!(alone, at(us(200) + us(50)));
    // Behind the blocks it leaves with the last, taking no time of its own.
    let block = Duration::from_millis(100);
    let done = at(us(200) + 2 * block + us(50));
    assert_eq!(
        first,
        vec![(at(us(200) + block + us(50)), 0), (done, 1), (done, 2)]
    );
    // Paced, both wait their turn on the link.
    let (first, alone) = control_behind_blocks(true);
    assert_eq!(alone, at(us(200) + block + us(1_000) + us(50)));
    assert_eq!(first[2].0, at(us(200) + 2 * block + 2 * us(1_000) + us(50)));
}

#[test]
fn writable_fires_when_the_queue_falls_below_the_low_water_mark() {
    let cfg = Config {
        low_water: 10_000,
        ..Config::default()
    };
    // 5 frames of 4,000 bytes: 20,000 queued; below 10,000 after the
    // third has left (8,000), 12 ms after the connection is up.
    let sender = Script {
        dial: vec![1, 2],
        frames: vec![4_000; 5],
        refill: Some(4_000),
        ..Script::default()
    };
    let mut sim = pair(sender, 2, cfg);
    run(&mut sim);
    let w: Vec<_> = sim
        .node(0)
        .log
        .iter()
        .filter(|(_, g)| matches!(g, Got::Writable(_)))
        .collect();
    assert!(!w.is_empty());
    // Both connections share the link: each frame takes 4 ms and they
    // alternate, so conn 0's third frame leaves at 4 + 8 + ... : 5 frames
    // of the link (conn0, conn1, conn0, conn1, conn0) = 20 ms.
    assert_eq!(
        w[0],
        &(
            at(us(100) + Duration::from_millis(20)),
            Got::Writable(ConnId(0))
        )
    );
    // The refill sent 5 more on each: 10 frames each arrived, in order.
    for r in [1, 2] {
        let seqs: Vec<u64> = sim.node(r).frames_got().iter().map(|f| f.2).collect();
        assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    }
    // A queue that never reached the mark owes nothing.
    let quiet = Script {
        dial: vec![1],
        frames: vec![4_000; 2],
        ..Script::default()
    };
    let mut sim = pair(
        quiet,
        1,
        Config {
            low_water: 10_000,
            ..Config::default()
        },
    );
    run(&mut sim);
    assert!(!sim
        .node(0)
        .log
        .iter()
        .any(|(_, g)| matches!(g, Got::Writable(_))));
}

#[test]
fn close_is_graceful_and_the_other_side_hears_after_the_last_frame() {
    let sender = Script {
        dial: vec![1],
        frames: vec![10_000; 3],
        close: true,
        ..Script::default()
    };
    let mut sim = pair(sender, 1, Config::default());
    run(&mut sim);
    let log = &sim.node(1).log;
    let n = log.len();
    assert_eq!(sim.node(1).frames_got().len(), 3);
    // 30 ms on the link from the RTT on, half an RTT to arrive; the close
    // follows the last frame at the same instant.
    assert_eq!(
        log[n - 1],
        (
            at(us(150) + Duration::from_millis(30)),
            Got::Closed(ConnId(0))
        )
    );
    assert!(matches!(log[n - 2].1, Got::Frame(_, 2, _)));
    // The closer hears nothing of its own close.
    assert!(!sim
        .node(0)
        .log
        .iter()
        .any(|(_, g)| matches!(g, Got::Closed(_))));
}

#[test]
fn a_node_that_leaves_drops_its_frames_in_flight_and_its_timers() {
    let cfg = Config {
        rtt: Duration::from_millis(20),
        ..Config::default()
    };
    let sender = Script {
        dial: vec![1],
        frames: vec![10_000; 100],
        timers: vec![(Duration::from_secs(5), 7), (Duration::from_millis(1), 8)],
        ..Script::default()
    };
    let mut sim = pair(sender, 1, cfg);
    // Connected at 20 ms; frame k leaves at 20 + 10(k+1) ms and arrives
    // 10 ms later. Leave at 105 ms: frames 0..7 have left (the 8th would
    // at 110), 0..6 have arrived, the 7th is in flight and is dropped.
    sim.run_until(at(Duration::from_millis(105)));
    sim.leave(0);
    assert!(!sim.is_up(0));
    run(&mut sim);
    let got = sim.node(1).frames_got();
    assert_eq!(got.len(), 7, "{got:?}");
    let log = &sim.node(1).log;
    assert_eq!(
        log.last().unwrap(),
        &(at(Duration::from_millis(115)), Got::Closed(ConnId(0)))
    );
    let timers: Vec<_> = sim
        .node(0)
        .log
        .iter()
        .filter(|(_, g)| matches!(g, Got::Timer(_)))
        .collect();
    assert_eq!(timers, vec![&(at(Duration::from_millis(1)), Got::Timer(8))]);
    // Back again: start is called and it dials anew.
    sim.rejoin(0);
    run(&mut sim);
    let starts = sim
        .node(0)
        .log
        .iter()
        .filter(|(_, g)| *g == Got::Start)
        .count();
    assert_eq!(starts, 2);
    assert_eq!(sim.node(1).frames_got().len(), 7 + 100);
}

#[test]
fn dialling_a_node_that_is_down_is_refused_after_one_rtt() {
    let mut sim = Sim::new(Config::default());
    sim.add(
        Script {
            dial: vec![1, 0, 9],
            ..Script::default()
        },
        Caps::default(),
    );
    sim.add(Script::default(), Caps::default());
    sim.start_at(0, SimTime::ZERO);
    run(&mut sim);
    let closed: Vec<_> = sim.node(0).log.iter().skip(1).cloned().collect();
    assert_eq!(
        closed,
        (0..3)
            .map(|c| (at(us(100)), Got::Closed(ConnId(c))))
            .collect::<Vec<_>>()
    );
}

#[test]
fn frames_of_one_connection_arrive_in_order_under_any_latency_and_caps() {
    let mut rng = Rng::seeded(5);
    let lat: Vec<u64> = (0..6).map(|_| 1 + rng.below(30_000)).collect();
    let cfg = Config {
        latency: Some(Box::new(move |a, b| us(lat[a] + lat[b]))),
        ..Config::default()
    };
    let mut sim = Sim::new(cfg);
    for i in 0..6 {
        let sizes: Vec<usize> = (0..50).map(|_| 8 + rng.below(9_000) as usize).collect();
        let caps = Caps {
            up: Some(200_000 + 100_000 * i as u64),
            down: (i % 2 == 0).then_some(300_000),
        };
        sim.add(
            Script {
                dial: (0..6).filter(|&j| j > i).collect(),
                frames: sizes,
                ..Script::default()
            },
            caps,
        );
    }
    for i in (0..6).rev() {
        sim.start_at(i, SimTime::ZERO);
    }
    run(&mut sim);
    for n in sim.nodes() {
        let mut next: std::collections::BTreeMap<ConnId, u64> = Default::default();
        for (_, c, seq, _) in n.frames_got() {
            let want = next.entry(c).or_default();
            assert_eq!(seq, *want, "{c:?}");
            *want += 1;
        }
    }
    let total: u64 = sim
        .nodes()
        .iter()
        .map(|n| n.frames_got().len() as u64)
        .sum();
    assert_eq!(total, 15 * 50);
}

#[test]
fn a_download_cap_is_shared_by_the_senders() {
    let mut sim = Sim::new(Config::default());
    sim.add(
        Script::default(),
        Caps {
            up: None,
            down: Some(MB),
        },
    );
    for _ in 0..2 {
        sim.add(
            Script {
                dial: vec![0],
                frames: vec![10_000; 50],
                ..Script::default()
            },
            Caps::upload(MB),
        );
    }
    for n in 0..3 {
        sim.start_at(n, SimTime::ZERO);
    }
    run(&mut sim);
    // 1 MB through a 1 MB/s download link: a second, not half of one.
    let t = sim.node(0).last_frame_at();
    assert_eq!(t, at(us(150) + Duration::from_millis(1010)), "{t}");
}

/// A swarm of real peers (`peer::SimPeer`): node 0 seeds `size` bytes to
/// `n` leechers, every upload at `cap`.
fn swarm(n: usize, size: usize, cap: u64, seed: u64) -> Sim<SimPeer> {
    let mut rng = Rng::seeded(seed);
    let original: Arc<[u8]> = (0..size).map(|_| rng.next_u64() as u8).collect();
    let record = Arc::new(FileRecord::from_bytes("f.bin", &original));
    let tracker = Rc::new(RefCell::new(SimTracker::new(seed, &record)));
    let mut sim = Sim::new(Config::default());
    let seeder = SimPeer::seeder(original.clone(), record.clone(), tracker.clone(), seed);
    sim.add(seeder, Caps::upload(cap));
    for i in 1..=n {
        let peer = SimPeer::leecher(
            original.clone(),
            record.clone(),
            tracker.clone(),
            seed ^ i as u64,
        );
        sim.add(peer, Caps::upload(cap));
    }
    for i in 0..=n {
        sim.start_at(i, SimTime::ZERO);
    }
    sim
}

/// Runs until every leecher but those `gone` is complete; when each was.
fn run_swarm(sim: &mut Sim<SimPeer>, gone: &[NodeId]) -> Vec<Option<SimTime>> {
    while let Some(s) = sim.step() {
        if s.at > at(Duration::from_secs(600)) {
            break;
        }
        if (1..sim.nodes().len()).all(|i| gone.contains(&i) || sim.node(i).is_complete()) {
            break;
        }
    }
    sim.nodes().iter().map(SimPeer::done_at).collect()
}

#[test]
fn a_swarm_of_real_peers_ends_with_every_copy_the_original() {
    let (n, size, cap) = (6, 8_000_000, 1_000_000);
    let mut sim = swarm(n, size, cap, 3);
    let done = run_swarm(&mut sim, &[]);
    for p in &sim.nodes()[1..] {
        assert!(p.copy().is_original());
        assert_eq!(p.stats().bad_writes, 0);
    }
    assert!(done[1..].iter().all(Option::is_some));
    // Nobody can beat the seeder's first copy: F / u_s.
    let last = done.iter().flatten().max().unwrap().as_secs_f64();
    let tstar = size as f64 / cap as f64;
    assert!(last > tstar && last < 1.5 * tstar, "{last} s, T* {tstar} s");
    // The seeder's schedule: about one copy, the leechers trade the rest.
    let copies = sim.stats(0).sent_bytes as f64 / size as f64;
    assert!((1.0..1.2).contains(&copies), "seeder sent {copies} copies");
    let from_others: u64 = (1..=n)
        .map(|i| {
            sim.node(i)
                .stats()
                .from
                .iter()
                .filter(|(&k, _)| k != 0)
                .map(|(_, v)| v)
                .sum::<u64>()
        })
        .sum();
    assert!(
        from_others > (n as u64 - 2) * (size as u64 / 4096),
        "{from_others} blocks traded"
    );
}

#[test]
fn a_run_is_the_same_for_the_same_seed() {
    let a = run_swarm(&mut swarm(5, 200_000, 500_000, 11), &[]);
    let b = run_swarm(&mut swarm(5, 200_000, 500_000, 11), &[]);
    let c = run_swarm(&mut swarm(5, 200_000, 500_000, 12), &[]);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn a_leecher_that_leaves_and_comes_back_resumes_and_finishes() {
    let mut sim = swarm(4, 800_000, 500_000, 21);
    sim.run_until(at(Duration::from_millis(800)));
    let had = sim.node(2).copy().written().count();
    assert!(had > 0 && !sim.node(2).is_complete(), "{had}");
    sim.leave(2);
    sim.run_until(at(Duration::from_millis(1300)));
    assert_eq!(
        sim.node(2).copy().written().count(),
        had,
        "nothing while away"
    );
    sim.rejoin(2);
    let done = run_swarm(&mut sim, &[]);
    assert!(done[1..].iter().all(Option::is_some));
    for p in &sim.nodes()[1..] {
        assert!(p.copy().is_original());
    }
    // It resumed: it did not fetch again what it had.
    let got: u64 = sim.node(2).stats().from.values().sum();
    assert!(got <= (800_000 / 4096 + 1) as u64, "{got} blocks written");
}

#[test]
fn a_leecher_that_leaves_for_good_does_not_stop_the_others() {
    let mut sim = swarm(5, 400_000, 500_000, 5);
    sim.run_until(at(Duration::from_millis(300)));
    sim.leave(3);
    run_swarm(&mut sim, &[3]);
    for i in [1, 2, 4, 5] {
        assert!(sim.node(i).copy().is_original(), "leecher {i}");
    }
    assert!(!sim.node(3).is_complete());
}

#[test]
fn a_full_server_makes_room_by_closing_an_idle_connection() {
    // More leechers than the seeder has handlers: every one still gets
    // its copy, and the seeder closed idle connections to let new ones in
    // rather than answering them all BUSY.
    let n = crate::peer::block_server::ADMISSION.handlers + 6;
    let mut sim = swarm(n, 400_000, 10_000_000, 5);
    let done = run_swarm(&mut sim, &[]);
    assert!(done[1..].iter().all(Option::is_some));
    assert!(sim.nodes()[1..].iter().all(|p| p.copy().is_original()));
    let seeder = sim.node(0).stats();
    assert!(seeder.evicted > 0, "{seeder:?}");
}

#[test]
fn with_sites_a_remote_site_pulls_about_one_copy_over_the_wan() {
    // 8 MiB, 8 leechers over two sites, LAN 10 MiB/s per peer, WAN 1 MiB/s
    // (`make sites`' proportions).
    let s = sites::SitesScenario {
        sites: 2,
        peers: 8,
        size: 8 << 20,
        lan: 10 << 20,
        wan: 1 << 20,
        aware: true,
        seed: 5,
    };
    let aware = sites::run(s);
    let blind = sites::run(sites::SitesScenario { aware: false, ..s });
    assert!(aware.secs.is_some() && blind.secs.is_some());
    assert!(aware.wan_copies < 1.3, "{aware:?}");
    assert!(blind.wan_copies > aware.wan_copies, "{blind:?}");
}

/// Node 0 NEAR and node 1 FAR both seed `size` bytes at `cap` (uncapped
/// when `None`); FAR is `far` one way from everyone, the rest are 50 µs
/// apart. Node 2 downloads. Returns (the far share of its blocks, when it
/// finished).
fn near_and_far(size: usize, cap: Option<u64>, far: Duration) -> (f64, f64) {
    let mut rng = Rng::seeded(5);
    let original: Arc<[u8]> = (0..size).map(|_| rng.next_u64() as u8).collect();
    let record = Arc::new(FileRecord::from_bytes("f.bin", &original));
    let tracker = Rc::new(RefCell::new(SimTracker::new(5, &record)));
    let mut sim = Sim::new(Config {
        latency: Some(Box::new(
            move |a, b| {
                if a == 1 || b == 1 {
                    far
                } else {
                    us(50)
                }
            },
        )),
        ..Config::default()
    });
    let caps = Caps {
        up: cap,
        down: None,
    };
    for (i, holder) in [true, true, false].into_iter().enumerate() {
        let (o, r, t) = (original.clone(), record.clone(), tracker.clone());
        let peer = if holder {
            SimPeer::seeder(o, r, t, i as u64)
        } else {
            SimPeer::leecher(o, r, t, i as u64)
        };
        sim.add(peer, caps);
    }
    sim.start_at(0, SimTime::ZERO);
    sim.start_at(1, SimTime::ZERO);
    sim.start_at(2, at(Duration::from_millis(100)));
    run_swarm(&mut sim, &[0, 1]);
    let from = &sim.node(2).stats().from;
    let far_blocks = from.get(&1).copied().unwrap_or(0) as f64;
    let all: u64 = from.values().sum();
    let done = sim.node(2).done_at().expect("the download finished");
    (far_blocks / all as f64, done.as_secs_f64() - 0.1)
}

// The latency-weighted download of the seeds: a far holder whose link is
// as fast as the near one carries its share once its window covers the
// bandwidth-delay product; an uncapped near holder leaves it little.
#[test]
fn a_far_holder_at_50_ms_carries_its_share_of_a_download_from_two_capped_holders() {
    let (size, cap) = (48 << 20, 8 << 20);
    let (share, secs) = near_and_far(size, Some(cap), Duration::from_millis(25));
    let ideal = size as f64 / (2 * cap) as f64;
    assert!(
        share >= 0.40,
        "the far holder carried {share:.3} in {secs:.3} s"
    );
    assert!(
        secs <= 1.2 * ideal,
        "{secs:.3} s against the ideal {ideal:.3} s"
    );
}

#[test]
fn a_far_holder_carries_little_when_the_near_one_is_uncapped() {
    let (share, _) = near_and_far(8 << 20, None, Duration::from_millis(25));
    assert!(share < 0.20, "the far holder carried {share:.3}");
}

/// Control frames sent in one call on one connection arrive together and
/// in order, handed over by one event (`Ev::Bundle`).
#[test]
fn control_frames_sent_together_arrive_in_order_as_one_event() {
    #[derive(Default)]
    struct Burst(Vec<(SimTime, u64)>);
    impl SimNode for Burst {
        fn start(&mut self, cx: &mut Cx) {
            if cx.me() == 0 {
                cx.connect(1);
            }
        }
        fn connected(&mut self, cx: &mut Cx, conn: ConnId, _: NodeId, outgoing: bool) {
            if outgoing {
                for i in 0..3 {
                    cx.send_control(conn, frame(i, 16));
                }
            }
        }
        fn frame(&mut self, cx: &mut Cx, _: ConnId, bytes: &[u8]) {
            let seq = u64::from_be_bytes(bytes[..8].try_into().unwrap());
            self.0.push((cx.now(), seq));
        }
        fn writable(&mut self, _: &mut Cx, _: ConnId) {}
        fn closed(&mut self, _: &mut Cx, _: ConnId) {}
        fn timer(&mut self, _: &mut Cx, _: u64) {}
        fn left(&mut self) {}
    }
    let mut sim = Sim::new(Config::default());
    for _ in 0..2 {
        sim.add(Burst::default(), Caps::upload(1 << 20));
    }
    sim.start_at(1, SimTime::ZERO);
    sim.start_at(0, SimTime::ZERO);
    while sim.step().is_some() {}
    let t = at(us(100) + us(50));
    assert_eq!(sim.node(1).0, [(t, 0), (t, 1), (t, 2)]);
    // Two starts, the accept, the connection established, the frames.
    assert_eq!(sim.events(), 5);
}
