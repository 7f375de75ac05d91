//! The sites scenario, as `make sites` runs it for real: one seeder in
//! site 1 and `peers` leechers spread over `sites` sites, each node's
//! upload capped at `lan`, the link between any two sites at `wan` each
//! way. With `aware` every peer has its site (`--site`); without, the
//! same network and peers that do not know it.

use super::peer::SimPeer;
use super::tracker::SimTracker;
use super::{Caps, Config, Sim, SimTime};
use crate::record::FileRecord;
use crate::rng::Rng;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct SitesScenario {
    pub sites: usize,
    pub peers: usize,
    pub size: usize,
    pub lan: u64,
    pub wan: u64,
    pub aware: bool,
    pub seed: u64,
}

#[derive(Clone, Debug)]
pub struct SitesOutcome {
    /// When the last leecher finished (None: not within the time limit).
    pub secs: Option<f64>,
    /// Copies of the file that crossed into each remote site: the largest.
    pub wan_copies: f64,
    /// The bound `make sites` divides by (see `bound`).
    pub bound: f64,
}

/// The site of leecher `i` (from 1): round robin over the sites, from 1.
pub fn site_of(i: usize, sites: usize) -> usize {
    (i - 1) % sites.max(1) + 1
}

/// One copy across the WAN, then the swarm inside a site: F/wan plus
/// F/lan, the swarm lower bound T* inside a site whose source uploads
/// at `lan` like each of its peers (max(F/u_s, nF/(u_s + n u)) = F/lan).
pub fn bound(size: usize, lan: u64, wan: u64, sites: usize) -> f64 {
    let inside = size as f64 / lan as f64;
    if sites <= 1 {
        return inside;
    }
    size as f64 / wan as f64 + inside
}

pub fn run(s: SitesScenario) -> SitesOutcome {
    let mut rng = Rng::seeded(s.seed);
    let original: Arc<[u8]> = (0..s.size).map(|_| rng.next_u64() as u8).collect();
    let record = Arc::new(FileRecord::from_bytes("f.bin", &original));
    let tracker = Rc::new(RefCell::new(SimTracker::new(s.seed, &record)));
    let cfg = Config {
        rtt: Duration::from_millis(1),
        wan: Some(s.wan),
        ..Config::default()
    };
    let mut sim = Sim::new(cfg);
    let known = |site: usize| if s.aware { site as u16 } else { 0 };
    let seeder = SimPeer::seeder(original.clone(), record.clone(), tracker.clone(), s.seed);
    sim.add_at(seeder.in_site(known(1)), Caps::upload(s.lan), 1);
    for i in 1..=s.peers {
        let site = site_of(i, s.sites);
        let peer = SimPeer::leecher(
            original.clone(),
            record.clone(),
            tracker.clone(),
            s.seed ^ i as u64,
        );
        sim.add_at(peer.in_site(known(site)), Caps::upload(s.lan), site);
    }
    for i in 0..=s.peers {
        sim.start_at(i, SimTime::ZERO);
    }
    let limit = SimTime::ZERO + Duration::from_secs(3600);
    while let Some(step) = sim.step() {
        if step.at > limit || (1..=s.peers).all(|i| sim.node(i).is_complete()) {
            break;
        }
    }
    let done: Option<Vec<SimTime>> = (1..=s.peers).map(|i| sim.node(i).done_at()).collect();
    let secs = done
        .and_then(|d| d.into_iter().max())
        .map(|t| t.as_secs_f64());
    let into = |to: usize| -> u64 {
        (1..=s.sites)
            .filter(|&f| f != to)
            .map(|f| sim.wan_bytes(f, to))
            .sum()
    };
    let wan_copies = (2..=s.sites)
        .map(|to| into(to) as f64 / s.size as f64)
        .fold(0.0, f64::max);
    SitesOutcome {
        secs,
        wan_copies,
        bound: bound(s.size, s.lan, s.wan, s.sites),
    }
}
