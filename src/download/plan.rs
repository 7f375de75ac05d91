//! The piece plan of one download: which pieces are still needed, which
//! are in flight and with how many holders, which are done. Pure logic,
//! behind the download's mutex; workers claim from it and report back.
//!
//! A piece moves NEEDED -> REQUESTED (claimed by one worker) -> DONE, or
//! back to NEEDED when its worker releases it (holder gone, stalled, bad
//! data). In the endgame, when nothing is NEEDED, an idle worker may claim
//! a REQUESTED piece a second time; whichever copy verifies first wins.

use crate::bitfield::Bitfield;

/// How many workers may hold the same piece in the endgame.
const ENDGAME_COPIES: u8 = 2;

pub struct Plan {
    /// Pieces no worker holds and nobody has delivered.
    needed: Bitfield,
    done: Bitfield,
    /// Workers holding each piece in flight.
    claims: Vec<u8>,
}

impl Plan {
    pub fn new(pieces: u32, already: &Bitfield) -> Plan {
        let mut needed = Bitfield::full(pieces);
        for p in already.iter_ones() {
            needed.clear(p);
        }
        Plan {
            needed,
            done: already.clone(),
            claims: vec![0; pieces as usize],
        }
    }

    pub fn pieces(&self) -> u32 {
        self.done.len()
    }

    pub fn is_complete(&self) -> bool {
        self.done.is_full()
    }

    pub fn done(&self) -> &Bitfield {
        &self.done
    }

    pub fn is_done(&self, piece: u32) -> bool {
        self.done.get(piece)
    }

    /// Claims up to `max` pieces that `have` holds, scanning from `cursor`
    /// (wrapping) so each worker works its own region and runs stay
    /// contiguous. Falls back to the endgame when nothing is needed.
    pub fn claim(&mut self, have: &Bitfield, cursor: u32, max: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let n = self.pieces();
        if n == 0 || max == 0 {
            return out;
        }
        let start = cursor % n;
        let mut at = start;
        let mut wrapped = false;
        while out.len() < max {
            let next = match self.needed.next(at, true) {
                Some(p) if wrapped && p >= start => None,
                other => other,
            };
            match next {
                Some(p) => {
                    if have.get(p) {
                        self.needed.clear(p);
                        self.claims[p as usize] += 1;
                        out.push(p);
                    }
                    at = p + 1;
                }
                None if !wrapped && start > 0 => {
                    wrapped = true;
                    at = 0;
                }
                None => break,
            }
        }
        out
    }

    /// Endgame: pieces already in flight elsewhere that `have` holds and
    /// this worker (`mine`) is not fetching, fewest copies first.
    pub fn claim_endgame(
        &mut self,
        have: &Bitfield,
        mine: &dyn Fn(u32) -> bool,
        max: usize,
    ) -> Vec<u32> {
        if self.needed.count() > 0 {
            return Vec::new();
        }
        let mut candidates: Vec<u32> = (0..self.pieces())
            .filter(|&p| {
                !self.done.get(p)
                    && self.claims[p as usize] > 0
                    && self.claims[p as usize] < ENDGAME_COPIES
                    && have.get(p)
                    && !mine(p)
            })
            .collect();
        candidates.sort_by_key(|&p| self.claims[p as usize]);
        candidates.truncate(max);
        for &p in &candidates {
            self.claims[p as usize] += 1;
        }
        candidates
    }

    /// A worker gives a piece back unfinished; it is needed again unless
    /// another worker still has it in flight or it is done.
    pub fn release(&mut self, piece: u32) {
        let c = &mut self.claims[piece as usize];
        *c = c.saturating_sub(1);
        if *c == 0 && !self.done.get(piece) {
            self.needed.set(piece);
        }
    }

    /// A verified copy was written; returns false if another copy won.
    pub fn complete(&mut self, piece: u32) -> bool {
        let c = &mut self.claims[piece as usize];
        *c = c.saturating_sub(1);
        if self.done.get(piece) {
            return false;
        }
        self.needed.clear(piece);
        self.done.set(piece)
    }

    /// True when a holder of `have` has some piece still missing here.
    pub fn wants_any(&self, have: &Bitfield) -> bool {
        have.any_and_not(&self.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_exclusive_and_contiguous() {
        let mut plan = Plan::new(100, &Bitfield::new(100));
        let all = Bitfield::full(100);
        let a = plan.claim(&all, 0, 10);
        assert_eq!(a, (0..10).collect::<Vec<_>>());
        let b = plan.claim(&all, 50, 10);
        assert_eq!(b, (50..60).collect::<Vec<_>>());
        // A worker whose cursor points into claimed ground skips ahead.
        let c = plan.claim(&all, 5, 3);
        assert_eq!(c, vec![10, 11, 12]);
    }

    #[test]
    fn claims_wrap_and_respect_holdings() {
        let mut plan = Plan::new(10, &Bitfield::new(10));
        let mut have = Bitfield::new(10);
        for p in [1, 3, 8] {
            have.set(p);
        }
        assert_eq!(plan.claim(&have, 5, 10), vec![8, 1, 3]);
        assert!(plan.claim(&have, 0, 10).is_empty());
    }

    #[test]
    fn release_and_complete() {
        let mut plan = Plan::new(4, &Bitfield::new(4));
        let all = Bitfield::full(4);
        let got = plan.claim(&all, 0, 4);
        assert_eq!(got.len(), 4);
        plan.release(2);
        assert_eq!(plan.claim(&all, 0, 4), vec![2]);
        for p in 0..4 {
            assert!(plan.complete(p));
        }
        assert!(plan.is_complete());
        assert!(!plan.complete(1), "a second copy never counts twice");
    }

    #[test]
    fn resumed_plan_skips_done_pieces() {
        let mut already = Bitfield::new(6);
        already.set_range(0, 4);
        let mut plan = Plan::new(6, &already);
        assert_eq!(plan.claim(&Bitfield::full(6), 0, 10), vec![4, 5]);
    }

    #[test]
    fn endgame_duplicates_in_flight_pieces_once() {
        let mut plan = Plan::new(3, &Bitfield::new(3));
        let all = Bitfield::full(3);
        let slow = plan.claim(&all, 0, 3);
        assert_eq!(slow.len(), 3);
        let none_mine = |_p: u32| false;
        let dup = plan.claim_endgame(&all, &none_mine, 10);
        assert_eq!(dup.len(), 3);
        assert!(
            plan.claim_endgame(&all, &none_mine, 10).is_empty(),
            "two copies at most"
        );
        // The fast copy wins; the slow one's completion is discarded.
        assert!(plan.complete(0));
        assert!(!plan.complete(0));
        // A released duplicate does not make a done piece needed again.
        plan.release(1);
        assert!(plan.claim(&all, 0, 3).is_empty());
        plan.release(1);
        assert_eq!(plan.claim(&all, 0, 3), vec![1]);
    }

    #[test]
    fn a_holder_is_wanted_only_for_missing_pieces() {
        let mut plan = Plan::new(4, &Bitfield::new(4));
        let mut h = Bitfield::new(4);
        h.set(0);
        assert!(plan.wants_any(&h));
        assert_eq!(plan.claim(&h, 0, 4), vec![0]);
        assert!(plan.wants_any(&h), "in flight is not done");
        plan.complete(0);
        assert!(!plan.wants_any(&h));
    }
}
