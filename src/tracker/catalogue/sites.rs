//! Sites (`peer --site`): the names peers gave, kept once each as a small
//! number per peer, and the WHO_HAS sample that puts the asker's own site
//! first. Pure: the catalogue passes the members and their sites in.

use crate::rng::Rng;
use std::collections::HashMap;

/// Distinct site names kept; a peer naming one more counts as of no
/// site (a bounded table whatever peers send).
pub const MAX_SITES: usize = 4096;
/// Up to this many members a WHO_HAS looks at every one for its site;
/// past it, at a random sample of this many (the answer stays O(1) in a
/// swarm of a million, and the own site still comes first within it).
pub const SCAN_LIMIT: usize = 4096;

/// Site numbers: 0 is "no site", 1.. the names in the order first seen.
#[derive(Default)]
pub struct Sites {
    names: Vec<Box<str>>,
    by_name: HashMap<Box<str>, u16>,
}

impl Sites {
    /// The number of `site` (0 for "", or once the table is full).
    pub fn intern(&mut self, site: &str) -> u16 {
        if site.is_empty() {
            return 0;
        }
        if let Some(&n) = self.by_name.get(site) {
            return n;
        }
        if self.names.len() >= MAX_SITES {
            return 0;
        }
        self.names.push(site.into());
        let n = self.names.len() as u16;
        self.by_name.insert(site.into(), n);
        n
    }

    /// The number of a known site, without adding it (0: unknown).
    pub fn lookup(&self, site: &str) -> u16 {
        self.by_name.get(site).copied().unwrap_or(0)
    }

    /// The name of site `n` ("" for 0).
    pub fn name(&self, n: u16) -> &str {
        match n {
            0 => "",
            n => self.names.get(n as usize - 1).map_or("", |s| s),
        }
    }
}

/// Up to `k` of `members`, those of site `asker` first: every one of them
/// when they are at most `k`, the rest filled from other sites, each part
/// sampled at random. `asker` 0 (no site): a plain random sample.
pub fn site_first(
    members: &[u32],
    site_of: impl Fn(u32) -> u16,
    asker: u16,
    k: usize,
    rng: &mut Rng,
) -> Vec<u32> {
    if asker == 0 {
        return rng.sample(members, k);
    }
    let pool = if members.len() > SCAN_LIMIT {
        rng.sample(members, SCAN_LIMIT)
    } else {
        members.to_vec()
    };
    let (own, others): (Vec<u32>, Vec<u32>) = pool.into_iter().partition(|&m| site_of(m) == asker);
    let mut out = rng.sample(&own, k);
    let room = k - out.len();
    out.extend(rng.sample(&others, room));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_once_and_bounded() {
        let mut s = Sites::default();
        assert_eq!(s.intern(""), 0);
        assert_eq!(s.intern("lab"), 1);
        assert_eq!(s.intern("cloud"), 2);
        assert_eq!(s.intern("lab"), 1);
        assert_eq!((s.name(1), s.name(0), s.lookup("x")), ("lab", "", 0));
        for i in 0..MAX_SITES {
            s.intern(&format!("s{i}"));
        }
        assert_eq!(s.intern("one-too-many"), 0, "a full table gives no site");
    }

    #[test]
    fn the_askers_site_comes_first_and_whole() {
        // 200 members, site = member % 10 + 1: 20 in each site.
        let members: Vec<u32> = (0..200).collect();
        let site_of = |m: u32| (m % 10 + 1) as u16;
        let mut rng = Rng::seeded(1);
        let got = site_first(&members, site_of, 3, 64, &mut rng);
        assert_eq!(got.len(), 64);
        let own: Vec<u32> = got.iter().copied().filter(|&m| site_of(m) == 3).collect();
        assert_eq!(own.len(), 20, "every holder of the own site");
        assert!(got[..20].iter().all(|&m| site_of(m) == 3), "and first");
    }

    #[test]
    fn a_large_own_site_fills_the_answer_alone() {
        let members: Vec<u32> = (0..1000).collect();
        let got = site_first(
            &members,
            |m| if m < 900 { 1 } else { 2 },
            1,
            64,
            &mut Rng::seeded(2),
        );
        assert_eq!(got.len(), 64);
        assert!(got.iter().all(|&m| m < 900));
    }

    #[test]
    fn no_site_is_a_plain_sample() {
        let members: Vec<u32> = (0..10).collect();
        let got = site_first(&members, |_| 1, 0, 64, &mut Rng::seeded(3));
        assert_eq!(got, members);
    }

    #[test]
    fn a_huge_swarm_is_sampled_before_it_is_split() {
        let members: Vec<u32> = (0..1_000_000).collect();
        // One peer in ten is of site 2: about 409 in the scanned sample,
        // enough to fill the answer.
        let got = site_first(
            &members,
            |m| (m % 10 == 0) as u16 + 1,
            2,
            64,
            &mut Rng::seeded(4),
        );
        assert_eq!(got.len(), 64);
        assert!(got.iter().all(|&m| m % 10 == 0));
    }
}
