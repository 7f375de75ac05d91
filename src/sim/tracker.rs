//! The simulated tracker: the set of live participants of the one file,
//! and its WHO_HAS answer, as `tracker::catalogue::holders` gives it: every
//! participant (leechers from the moment they start, whether they hold
//! anything yet) when there are at most `MAX_HOLDERS`, else a random sample
//! of that many; sorted by id, each marked complete or not. Announces,
//! expiry and the UDP exchange are left out: a peer is listed while it is
//! up, and its completeness is known at once. With sites, the asker's own
//! site comes first, as `catalogue::sites::site_first` picks.

use super::NodeId;
use crate::rng::Rng;
use crate::tracker::catalogue::sites::site_first;
use crate::wire::message::MAX_HOLDERS;
use std::collections::HashMap;

pub struct Tracker {
    members: Vec<NodeId>,
    /// Where each node is in `members`, if it is one.
    at: HashMap<NodeId, usize>,
    complete: HashMap<NodeId, bool>,
    /// Each member's site number (0: none).
    site: HashMap<NodeId, u16>,
    rng: Rng,
}

impl Tracker {
    pub fn new(seed: u64) -> Tracker {
        Tracker {
            members: Vec::new(),
            at: HashMap::new(),
            complete: HashMap::new(),
            site: HashMap::new(),
            rng: Rng::seeded(seed),
        }
    }

    /// A peer started (or came back), holding all of the file or not.
    pub fn join(&mut self, node: NodeId, complete: bool) {
        if !self.at.contains_key(&node) {
            self.at.insert(node, self.members.len());
            self.members.push(node);
        }
        self.complete.insert(node, complete);
    }

    /// The peer is in site `site` (0: none), as its REGISTER says.
    pub fn set_site(&mut self, node: NodeId, site: u16) {
        self.site.insert(node, site);
    }

    pub fn site_of(&self, node: NodeId) -> u16 {
        self.site.get(&node).copied().unwrap_or(0)
    }

    pub fn set_complete(&mut self, node: NodeId) {
        self.complete.insert(node, true);
    }

    /// The peer is gone.
    pub fn leave(&mut self, node: NodeId) {
        let Some(i) = self.at.remove(&node) else {
            return;
        };
        self.members.swap_remove(i);
        if let Some(&moved) = self.members.get(i) {
            self.at.insert(moved, i);
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// WHO_HAS: up to `MAX_HOLDERS` participants (the asker may be among
    /// them), sorted by id, with whether each is complete.
    pub fn who_has(&mut self) -> Vec<(NodeId, bool)> {
        self.who_has_for(0)
    }

    /// `who_has` for an asker in site `site` (0: none): its site first.
    pub fn who_has_for(&mut self, site: u16) -> Vec<(NodeId, bool)> {
        // As the real tracker picks (`Catalogue::holders_for`).
        let members: Vec<u32> = self.members.iter().map(|&m| m as u32).collect();
        let of = |m: u32| self.site.get(&(m as usize)).copied().unwrap_or(0);
        let picked = site_first(&members, of, site, MAX_HOLDERS, &mut self.rng);
        let mut picked: Vec<NodeId> = picked.into_iter().map(|m| m as usize).collect();
        picked.sort_unstable_by_key(|&m| (site == 0 || self.site_of(m) != site, m));
        picked
            .into_iter()
            .map(|id| (id, self.complete.get(&id).copied().unwrap_or(false)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_swarm_is_sampled_without_repeats() {
        let mut t = Tracker::new(1);
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
}
