//! The simulated tracker: the real `tracker::Catalogue` with the one file,
//! driven as the tracker's server drives it. A peer registers and announces
//! when it starts (`Held::Partial(0)`: taking part from the moment it
//! starts, whether it holds anything yet), announces `Complete` when its
//! download completes, and says goodbye when it leaves; WHO_HAS is
//! `Catalogue::holders`. Left out: the UDP exchange, the periodic
//! announces (completeness is known at once) and expiry (a peer is listed
//! while it is up).
//!
//! Node `n` is peer id `n` written with leading zeros, so the catalogue's
//! order by id is the order of the nodes. With sites, site `s` is named
//! `s<s>` and the asker's own site comes first, as `Catalogue::holders_for`
//! answers.

use super::NodeId;
use crate::record::FileRecord;
use crate::rng::Rng;
use crate::tracker::catalogue::Host;
use crate::tracker::Catalogue;
use crate::wire::datagram::tracker::{Entry, Held};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

pub struct SimTracker {
    catalogue: Catalogue,
    record: FileRecord,
    /// Each live node's session with the catalogue.
    sessions: HashMap<NodeId, u64>,
    /// Each node's site number (0: none).
    site: HashMap<NodeId, u16>,
    /// The catalogue's clock: it expires nobody here, so one instant does.
    now: Instant,
}

impl SimTracker {
    /// A tracker that knows `record` (as if published) and nobody yet.
    pub fn new(seed: u64, record: &FileRecord) -> SimTracker {
        let mut catalogue = Catalogue::with_rng(Rng::seeded(seed));
        catalogue.load_record(record.clone());
        SimTracker {
            catalogue,
            record: record.clone(),
            sessions: HashMap::new(),
            site: HashMap::new(),
            now: Instant::now(),
        }
    }

    /// A peer started (or came back), holding all of the file or not.
    pub fn join(&mut self, node: NodeId, complete: bool) {
        let id = peer_id(node);
        let host = Host::Ip(IpAddr::V4(Ipv4Addr::from(node as u32)));
        let site = site_name(self.site_of(node));
        let session = self.catalogue.register_at(&id, host, 1, &site, self.now);
        self.sessions.insert(node, session);
        let held = if complete {
            Held::Complete
        } else {
            Held::Partial(0)
        };
        self.announce(node, held);
    }

    /// The peer is in site `site` (0: none), as its REGISTER says; before
    /// it joins.
    pub fn set_site(&mut self, node: NodeId, site: u16) {
        self.site.insert(node, site);
    }

    pub fn site_of(&self, node: NodeId) -> u16 {
        self.site.get(&node).copied().unwrap_or(0)
    }

    pub fn set_complete(&mut self, node: NodeId) {
        self.announce(node, Held::Complete);
    }

    fn announce(&mut self, node: NodeId, held: Held) {
        let Some(&session) = self.sessions.get(&node) else {
            return;
        };
        let entry = Entry {
            name: &self.record.name,
            md5: self.record.md5,
            held,
        };
        let _ = self
            .catalogue
            .announce(&peer_id(node), session, &[entry], self.now);
    }

    /// The peer is gone.
    pub fn leave(&mut self, node: NodeId) {
        if let Some(session) = self.sessions.remove(&node) {
            self.catalogue.remove_peer(&peer_id(node), session);
        }
    }

    pub fn len(&self) -> usize {
        self.catalogue.peer_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// WHO_HAS: `Catalogue::holders` (the asker may be among them), sorted
    /// by id, with whether each is complete.
    pub fn who_has(&mut self) -> Vec<(NodeId, bool)> {
        self.who_has_for(0)
    }

    /// `who_has` for an asker in site `site` (0: none): its site first.
    pub fn who_has_for(&mut self, site: u16) -> Vec<(NodeId, bool)> {
        let name = (site != 0).then(|| site_name(site));
        let holders = self
            .catalogue
            .holders_for(&self.record.name, None, name.as_deref())
            .unwrap_or_default();
        holders
            .into_iter()
            .filter_map(|h| Some((h.peer_id.parse().ok()?, h.complete)))
            .collect()
    }
}

fn site_name(site: u16) -> String {
    if site == 0 {
        String::new()
    } else {
        format!("s{site}")
    }
}

fn peer_id(node: NodeId) -> String {
    format!("{node:010}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::MAX_HOLDERS;

    #[test]
    fn a_large_swarm_is_sampled_without_repeats() {
        let record = FileRecord::from_bytes("f", &[7u8; 10_000]);
        let mut t = SimTracker::new(1, &record);
        for id in 0..1000 {
            t.join(id, id == 0);
        }
        t.leave(500);
        let got = t.who_has();
        assert_eq!(got.len(), MAX_HOLDERS);
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "sorted, distinct");
        assert!(got.iter().all(|&(id, _)| id != 500));
        assert_eq!(t.len(), 999);
    }

    #[test]
    fn completeness_follows_the_announces() {
        let record = FileRecord::from_bytes("f", &[7u8; 10_000]);
        let mut t = SimTracker::new(1, &record);
        t.join(0, true);
        t.join(1, false);
        assert_eq!(t.who_has(), vec![(0, true), (1, false)]);
        t.set_complete(1);
        assert_eq!(t.who_has(), vec![(0, true), (1, true)]);
    }
}
