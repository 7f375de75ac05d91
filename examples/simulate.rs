//! `make simulate`: one seeder and N leechers in simulated time over
//! `p2pshare::sim`'s network model, every upload capped at LIMIT as in
//! `make swarm`; runs until every leecher has the whole file, checks every
//! copy against the original byte for byte and ends with
//!
//!   simulate peers=<n> size=<bytes> secs=<s> tstar=<s> ratio=<r> seeder_copies=<c>
//!
//! Usage: simulate [peers=N] [size=128M] [limit=10M] [rtt=0.1ms] [churn=0]
//!                 [away=5s|never] [seed=1] [seeder_limit=LIMIT]
//!                 [low_water=256K] [quantum=4224] [time_limit=SECS] [trace=1]
//!                 [control=free|paced]
//!
//! control=paced: requests, answers and HAVEs take their time on the
//! sender's upload link like the blocks (the model until they were let
//! through unpaced, as the real peer's upload limit lets them: see
//! docs/SIMULATOR.md).
//!
//! churn=F: a fraction F of the leechers (chosen at random) each leave once,
//! at a moment uniform in [0, T*), if they are still downloading then; each
//! comes back `away` later and resumes with the blocks it had verified
//! (`away=never`: it stays away and is not waited for).
//!
//! The peers are `sim::peer::SimPeer`: the real download machines
//! (`download::fetch`, `download::plan`) and block-server machines
//! (`peer::block_server::machine`, `peer::block_server::seeding`) over the simulated network, with a
//! simulated tracker (`sim::tracker`).

use p2pshare::record::FileRecord;
use p2pshare::rng::Rng;
use p2pshare::sim::peer::SimPeer;
use p2pshare::sim::tracker::SimTracker;
use p2pshare::sim::{Caps, Config, NodeId, Sim, SimTime};
use p2pshare::units::parse_size;
use std::cell::RefCell;
use std::process::exit;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Params {
    peers: usize,
    size: u64,
    limit: u64,
    seeder_limit: u64,
    rtt: Duration,
    churn: f64,
    away: Option<Duration>,
    seed: u64,
    low_water: usize,
    quantum: usize,
    time_limit: Option<f64>,
    trace: bool,
    pace_control: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}");
    eprintln!(
        "usage: simulate [peers=N] [size=128M] [limit=10M] [rtt=0.1ms] [churn=0] [away=5s|never] \
         [seed=1] [seeder_limit=LIMIT] [low_water=256K] [quantum=4224] [time_limit=SECS] [trace=1] \
         [control=free|paced]"
    );
    exit(2)
}

/// `0.1ms`, `100us`, `2s` or a bare number of seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let (num, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        (text, 1.0)
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v * scale))
}

fn parse_args() -> Params {
    let mut p = Params {
        peers: 8,
        size: 128 << 20,
        limit: 10 << 20,
        seeder_limit: 0,
        rtt: Duration::from_micros(100),
        churn: 0.0,
        away: Some(Duration::from_secs(5)),
        seed: 1,
        low_water: p2pshare::sim::LOW_WATER,
        quantum: p2pshare::sim::QUANTUM,
        time_limit: None,
        trace: false,
        pace_control: false,
    };
    for arg in std::env::args().skip(1) {
        let Some((k, v)) = arg.split_once('=') else {
            usage(&format!("arguments are key=value, got {arg:?}"));
        };
        fn bad<T>(k: &str, v: &str) -> T {
            usage(&format!("cannot read {k}={v:?}"))
        }
        let size = || parse_size(v).unwrap_or_else(|_| bad(k, v));
        match k {
            "peers" | "n" => p.peers = v.parse().unwrap_or_else(|_| bad(k, v)),
            "size" => p.size = size(),
            "limit" => p.limit = size(),
            "seeder_limit" => p.seeder_limit = size(),
            "low_water" => p.low_water = size() as usize,
            "quantum" => p.quantum = size() as usize,
            "rtt" => p.rtt = parse_duration(v).unwrap_or_else(|| bad(k, v)),
            "churn" => p.churn = v.parse().unwrap_or_else(|_| bad(k, v)),
            "away" if v == "never" => p.away = None,
            "away" => p.away = Some(parse_duration(v).unwrap_or_else(|| bad(k, v))),
            "seed" => p.seed = v.parse().unwrap_or_else(|_| bad(k, v)),
            "time_limit" => p.time_limit = Some(v.parse().unwrap_or_else(|_| bad(k, v))),
            "trace" => p.trace = v == "1",
            "control" => {
                p.pace_control = match v {
                    "paced" => true,
                    "free" => false,
                    _ => bad(k, v),
                }
            }
            _ => usage(&format!("unknown setting {k:?}")),
        }
    }
    if p.seeder_limit == 0 {
        p.seeder_limit = p.limit;
    }
    if p.peers == 0 || p.peers > 100_000 {
        usage("peers must be from 1 to 100000");
    }
    if p.size == 0 || p.size > 1 << 32 {
        usage("size must be above 0 and at most 4G");
    }
    if p.limit < 1024 || p.seeder_limit < 1024 {
        usage("limit must be at least 1K");
    }
    if !(0.0..=1.0).contains(&p.churn) {
        usage("churn is a fraction of the leechers, from 0 to 1");
    }
    p
}

/// The file: reproducible bytes from the seed.
fn original(size: u64, seed: u64) -> Arc<[u8]> {
    let mut rng = Rng::seeded(seed ^ 0x5eed_f11e);
    let mut v = Vec::with_capacity(size as usize + 8);
    while (v.len() as u64) < size {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(size as usize);
    v.into()
}

enum Churn {
    Leave(NodeId),
    Back(NodeId),
}

fn main() {
    let p = parse_args();
    let (n, f) = (p.peers, p.size as f64);
    let (us, u) = (p.seeder_limit as f64, p.limit as f64);
    let tstar = (f / us).max(n as f64 * f / (us + n as f64 * u));
    println!(
        "simulate: 1 seeder + {n} leechers, {} bytes, uploads {} B/s (seeder {} B/s), rtt {:?}, \
         churn {} (away {}), seed {}; low-water {} B, quantum {} B, control frames {}",
        p.size,
        p.limit,
        p.seeder_limit,
        p.rtt,
        p.churn,
        p.away.map_or("never".into(), |d| format!("{d:?}")),
        p.seed,
        p.low_water,
        p.quantum,
        if p.pace_control { "paced" } else { "free" }
    );

    let wall = Instant::now();
    let file = original(p.size, p.seed);
    let record = Arc::new(FileRecord::from_bytes("swarm.bin", &file));
    let tracker = Rc::new(RefCell::new(SimTracker::new(p.seed ^ 0x7ac4, &record)));
    let mut sim: Sim<SimPeer> = Sim::new(Config {
        rtt: p.rtt,
        low_water: p.low_water,
        quantum: p.quantum,
        pace_control: p.pace_control,
        ..Config::default()
    });
    let seeder = sim.add(
        SimPeer::seeder(file.clone(), record.clone(), tracker.clone(), p.seed),
        Caps::upload(p.seeder_limit),
    );
    for i in 1..=n {
        let seed = p.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64;
        let peer = SimPeer::leecher(file.clone(), record.clone(), tracker.clone(), seed);
        sim.add(peer, Caps::upload(p.limit));
    }
    // The seeder first: a dial to a node not yet up is refused.
    for i in 0..=n {
        sim.start_at(i, SimTime::ZERO);
    }
    run(sim, &p, tstar, seeder, wall);
}

/// Runs the swarm to the end, checks the copies and prints the figures.
/// Node 0 is the seeder, 1..=N the leechers.
fn run(mut sim: Sim<SimPeer>, p: &Params, tstar: f64, seeder: NodeId, wall: Instant) {
    let (n, f) = (p.peers, p.size as f64);
    let leechers: Vec<NodeId> = (1..=n).collect();

    // Churn: who leaves when, in time order.
    let mut rng = Rng::seeded(p.seed ^ 0xc4u64 << 56);
    let mut order = leechers;
    rng.shuffle(&mut order);
    let leaving = (p.churn * n as f64).round() as usize;
    let mut churn: Vec<(SimTime, Churn)> = order[..leaving]
        .iter()
        .map(|&id| {
            let at = SimTime::from_secs_f64(tstar * (rng.below(1_000_000) as f64 / 1e6));
            (at, Churn::Leave(id))
        })
        .collect();
    churn.sort_by_key(|c| std::cmp::Reverse(c.0));

    let limit = SimTime::from_secs_f64(p.time_limit.unwrap_or((10.0 * tstar).max(60.0)));
    let mut done = vec![false; n + 1];
    let mut times = Vec::with_capacity(n);
    let mut waiting = n;
    let mut last = SimTime::ZERO;
    let (mut left, mut gone) = (0usize, 0usize);
    let mut next_trace = SimTime::ZERO;
    let mut traced = (0u64, 0u64);
    while waiting > 0 {
        // The queue's head is looked for only when churn is due.
        let due = churn.last().map(|c| c.0);
        if let Some(t) = due.filter(|&t| sim.next_at().is_none_or(|e| t < e)) {
            sim.run_until(t);
            let Some((_, what)) = churn.pop() else { break };
            match what {
                Churn::Leave(id) if !done[id] => {
                    sim.leave(id);
                    left += 1;
                    match p.away {
                        Some(d) => {
                            let back = (t + d, Churn::Back(id));
                            let at = churn.partition_point(|c| c.0 > back.0);
                            churn.insert(at, back);
                        }
                        None => {
                            gone += 1;
                            waiting -= 1;
                        }
                    }
                }
                Churn::Leave(_) => {}
                Churn::Back(id) => sim.rejoin(id),
            }
            continue;
        }
        let Some(s) = sim.step() else {
            break;
        };
        if sim.events().is_multiple_of(20_000_000) {
            eprintln!(
                "... {} M events, {} simulated, {}/{n} done, {:.0} s of wall time",
                sim.events() / 1_000_000,
                s.at,
                n - waiting,
                wall.elapsed().as_secs_f64()
            );
        }
        if s.at > limit {
            break;
        }
        if p.trace && s.at >= next_trace {
            trace(&sim, seeder, n, s.at, &mut traced);
            next_trace += Duration::from_secs(1);
        }
        if let Some(id) = s.node.filter(|&id| id != seeder && !done[id]) {
            if sim.node(id).is_complete() {
                done[id] = true;
                waiting -= 1;
                last = s.at;
                times.push(s.at.as_secs_f64());
            }
        }
    }
    let secs_wall = wall.elapsed().as_secs_f64();

    if waiting > 0 {
        eprintln!(
            "error: {waiting} of {n} leechers did not finish within {:.1} simulated s \
             (10 x T* or 60 s, or time_limit=); {} events in {secs_wall:.2} s of wall time",
            limit.as_secs_f64(),
            sim.events()
        );
        for id in (1..=n).filter(|&id| !done[id] && sim.is_up(id)) {
            eprintln!("  leecher {id}: {}", sim.node(id).describe());
        }
        exit(1);
    }
    let mut verified = 0;
    // Those not done left for good.
    for id in (1..=n).filter(|&id| done[id]) {
        if !sim.node(id).copy().is_original() {
            eprintln!("error: leecher {id}'s copy differs from the original");
            exit(1);
        }
        verified += 1;
    }

    let secs = last.as_secs_f64();
    let ratio = secs / tstar;
    // What left the seeder's link, headers and control frames included.
    let copies = sim.stats(seeder).sent_bytes as f64 / f;
    let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!("all {verified} copies verified against the original, byte for byte");
    if left > 0 {
        println!("churn: {left} leechers left during their download, {gone} for good");
    }
    println!(
        "leechers done: first {:.3} s, median {:.3} s, last {:.3} s",
        pct(0.0),
        pct(0.5),
        pct(1.0)
    );
    println!("seeder sent {copies:.3} copies (every byte on its link, headers included)");
    report(&sim, seeder, n, f);
    println!(
        "{} events in {:.2} s of wall time ({:.2} M events/s)",
        sim.events(),
        secs_wall,
        sim.events() as f64 / secs_wall / 1e6
    );
    println!(
        "simulate peers={n} size={} secs={secs:.3} tstar={tstar:.3} ratio={ratio:.3} seeder_copies={copies:.3}",
        p.size
    );
}

/// What the machines did: how the seeder's upload was spent, what the
/// leechers received twice, what went wrong.
fn report(sim: &Sim<SimPeer>, seeder: NodeId, n: usize, f: f64) {
    let s = sim.node(seeder);
    let pieces = s.served_pieces();
    let mut by_times = [0usize; 5];
    for &t in pieces {
        by_times[(t as usize).min(4)] += 1;
    }
    let block = s.copy().block_size() as f64;
    let first: u64 = (1..=n)
        .map(|i| sim.node(i).stats().from.get(&seeder).copied().unwrap_or(0))
        .sum();
    println!(
        "seeder: {:.3} copies queued as BLOCK frames, {:.3} written first (make swarm's figure); \
         pieces sent 0/1/2/3/4+ times: {:?}",
        s.stats().blocks_served as f64 * block / f,
        first as f64 * block / f,
        by_times
    );
    let (mut recv, mut counted, mut busy, mut errors, mut refused, mut bad) = (0, 0, 0, 0, 0, 0);
    let mut evicted = 0;
    for i in 0..=n {
        let st = sim.node(i).stats();
        recv += st.blocks_received;
        counted += st.from.values().sum::<u64>();
        busy += st.busy;
        errors += st.fetch_errors;
        refused += st.refused;
        evicted += st.evicted;
        bad += st.bad_writes;
    }
    println!(
        "leechers: {recv} blocks received, {} not written first ({:.2} %); \
         {busy} BUSY answers ({refused} refusals), {evicted} idle connections closed for \
         new ones, {errors} connections ended in errors, {bad} blocks differed",
        recv - counted,
        100.0 * (recv - counted) as f64 / recv.max(1) as f64
    );
}

/// One line per simulated second (trace=1): what the seeder and the
/// average leecher uploaded in it, what waits on their links, how much of
/// the file the leechers hold (mean, least), and what the seeder sent more
/// than once and which messages cost how much so far.
fn trace(sim: &Sim<SimPeer>, seeder: NodeId, n: usize, at: SimTime, last: &mut (u64, u64)) {
    let seed = sim.stats(seeder).sent_bytes;
    let leech: u64 = (1..=n).map(|id| sim.stats(id).sent_bytes).sum();
    let held: Vec<u32> = (1..=n)
        .map(|id| sim.node(id).copy().written().count())
        .collect();
    let total = sim.node(seeder).copy().blocks().max(1) as f64;
    let mean = held.iter().map(|&h| h as f64).sum::<f64>() / n.max(1) as f64 / total;
    let min = held.iter().copied().min().unwrap_or(0) as f64 / total;
    let done = (1..=n).filter(|&id| sim.node(id).is_complete()).count();
    println!(
        "trace t={:.1} seeder_up_MiB={:.2} leecher_up_MiB={:.3} seeder_queue_KiB={} leecher_queue_KiB={} have_mean={:.3} have_min={:.3} done={done}",
        at.as_secs_f64(),
        (seed - last.0) as f64 / 1048576.0,
        (leech - last.1) as f64 / 1048576.0 / n.max(1) as f64,
        sim.backlog(seeder) / 1024,
        (1..=n).map(|id| sim.backlog(id)).sum::<usize>() / 1024 / n.max(1),
        mean,
        min
    );
    *last = (seed, leech);
    let served = sim.node(seeder).served_pieces();
    let dups: u32 = served.iter().map(|&x| x.saturating_sub(1)).sum();
    let unsent = served.iter().filter(|&&x| x == 0).count();
    let mut kinds = std::collections::BTreeMap::new();
    for id in 0..=n {
        for (k, b) in &sim.node(id).stats().sent_by_kind {
            *kinds.entry(*k).or_insert(0u64) += b;
        }
    }
    println!("  seeder: pieces sent again {dups}, never sent {unsent}; messages sent so far, bytes by kind: {kinds:?}");
}
