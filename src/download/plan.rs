//! The piece plan of one download: which pieces are still needed, which
//! are in flight and with how many holders, which are done, and how many
//! connected holders have each piece. Pure logic, behind the download's
//! mutex; workers claim from it and report back.
//!
//! A piece moves NEEDED -> REQUESTED (claimed by one worker) -> DONE, or
//! back to NEEDED when its worker releases it (holder gone, stalled, bad
//! data). In the endgame, when nothing is NEEDED, an idle worker may claim
//! a REQUESTED piece a second time; whichever copy verifies first wins and
//! the other is cancelled.
//!
//! Picking: in a swarm the first few pieces are picked at random, so a
//! newcomer soon has something to trade; after that, rarest first: among the pieces the
//! holder has and we need, those the fewest connected holders have, and a
//! claim extends over the following pieces of the same rarity.
//!
//! Sites (`peer --site`): holders are local (of this peer's site) or
//! remote. What any connected local holder has is never asked of a remote
//! one; the rest is split among the site's downloaders in stripes
//! (`set_site_share`), each fetching from outside only its own stripes and
//! taking the others' from them once they have them. So a site pulls about
//! one copy of the file over the link between sites, whichever site the
//! seeder is in. Inside a site, the picking below is unchanged.
//!
//! Ties: in a swarm (some holder is itself downloading) they go to a
//! random place and runs are short, so peers fetching from the same seeder
//! at the same time rarely ask it for the same pieces: each copy the
//! seeder uploads twice is time the whole swarm waits. A seeder that told
//! us everything is asked for runs found backwards from a random place
//! (`claim_backwards`): it offers its fresh pieces to the others from the
//! front, and the first rarest piece after the traded ones is likely one
//! it has just sent to someone else. With complete
//! holders only, nobody else benefits from spread, so each worker goes on
//! in order from its cursor: long runs, large writes, and a hash prefix
//! that keeps up, so the whole-file MD5 is ready when the last piece lands.

use crate::bitfield::Bitfield;
use crate::rng::Rng;

/// How many workers may hold the same piece in the endgame.
const ENDGAME_COPIES: u8 = 2;
/// Pieces picked at random before rarest-first takes over.
pub const RANDOM_FIRST: u32 = 4;
/// Longest run, in blocks, claimed at a random place.
const SPREAD_RUN_BLOCKS: u32 = 16;
/// Pieces per stripe of a site's share-out (`set_site_share`): long enough
/// for a run of requests, short enough that every downloader's share is
/// spread over the file.
pub const SITE_STRIPE: u32 = 16;

/// This peer's share of what its site fetches from outside, for
/// `Plan::set_site_share`: `me`'s rank among `me` and the `siblings` (the
/// downloaders of its site it is connected to), ordered, and how many
/// they are. Every one of them orders the same peers the same way.
pub fn site_share<T: Ord>(me: &T, siblings: &[T]) -> (u32, u32) {
    let below = siblings.iter().filter(|s| *s < me).count();
    let others = siblings.iter().filter(|s| *s != me).count();
    (below as u32, others as u32 + 1)
}

pub struct Plan {
    /// Pieces no worker holds and nobody has delivered.
    needed: Bitfield,
    done: Bitfield,
    /// Workers holding each piece in flight.
    claims: Vec<u8>,
    /// Connected holders having each piece not done (`each_not_done`).
    avail: Vec<u16>,
    /// `by_avail[a]`: how many NEEDED pieces have availability `a`, so the
    /// rarest availability is known without scanning the pieces.
    by_avail: Vec<u32>,
    /// Longest run claimed at a random place, in pieces.
    spread_run: usize,
    /// Some holder is downloading too: break ties at random.
    swarm: bool,
    /// Connected holders that have every piece: of a piece's availability,
    /// this many are complete holders, the rest are downloading.
    complete_sources: u16,
    /// Connected holders of this peer's site having each piece, and the
    /// pieces at least one of them has.
    local_avail: Vec<u16>,
    local_has: Bitfield,
    /// Of `complete_sources`, those of this peer's site.
    local_complete: u16,
    /// A holder of another site was counted: the local counts above are
    /// kept apart from then on. Until then they equal the totals and are
    /// not kept (every holder is local without sites: counting each
    /// piece twice was a tenth of the simulator's time).
    apart: bool,
    /// Pieces another downloader of this site fetches from outside
    /// (`set_site_share`): never asked of a remote holder here.
    others_share: Bitfield,
}

impl Plan {
    pub fn new(pieces: u32, blocks_per_piece: u32, already: &Bitfield) -> Plan {
        let mut needed = Bitfield::full(pieces);
        for p in already.iter_ones() {
            needed.clear(p);
        }
        Plan {
            by_avail: vec![needed.count()],
            needed,
            done: already.clone(),
            claims: vec![0; pieces as usize],
            avail: vec![0; pieces as usize],
            spread_run: SPREAD_RUN_BLOCKS.div_ceil(blocks_per_piece.max(1)) as usize,
            swarm: false,
            complete_sources: 0,
            local_avail: Vec::new(),
            local_complete: 0,
            apart: false,
            local_has: Bitfield::new(0),
            others_share: Bitfield::new(pieces),
        }
    }

    /// This peer is number `rank` (from 0) of the `size` downloaders of
    /// its site (itself included, in an order they all agree on: their
    /// ids). Of the pieces no local holder has, it fetches from remote
    /// holders only those of stripes `rank`, `rank + size`, ...; the
    /// others come from the downloader whose stripes they are.
    pub fn set_site_share(&mut self, rank: u32, size: u32) {
        let size = size.max(1);
        let n = self.pieces();
        self.others_share = Bitfield::new(n);
        for p in 0..n {
            if (p / SITE_STRIPE) % size != rank % size {
                self.others_share.set(p);
            }
        }
    }

    /// Which of a remote holder's pieces `have` this peer may ask it for:
    /// none a local holder has, none of another downloader's share.
    pub fn remote_wanted(&self, have: &Bitfield) -> Bitfield {
        let wanted = have.minus(&self.done).minus(&self.others_share);
        if !self.apart {
            return wanted.minus(&self.held());
        }
        wanted.minus(&self.local_has)
    }

    /// The pieces some connected holder has, as counted: a piece done
    /// here may be among them (its count is no longer kept), which
    /// neither caller minds, as a done piece is never claimed.
    fn held(&self) -> Bitfield {
        let mut held = Bitfield::new(self.pieces());
        for p in (0..self.pieces()).filter(|&p| self.avail[p as usize] > 0) {
            held.set(p);
        }
        held
    }

    /// `add_source` for a holder of this peer's site (`local`) or not.
    pub fn add_source_at(&mut self, have: &Bitfield, local: bool) {
        self.keep_apart(local);
        self.count_source(have);
        if local && self.apart {
            self.local_complete += u16::from(have.is_full());
            self.shift_local(have, 1);
        }
    }

    /// `add_pieces` for a holder of this peer's site (`local`) or not.
    pub fn add_pieces_at(&mut self, new: &Bitfield, now_full: bool, local: bool) {
        self.keep_apart(local);
        self.count_pieces(new, now_full);
        if local && self.apart {
            self.local_complete += u16::from(now_full);
            self.shift_local(new, 1);
        }
    }

    /// `remove_source` for a holder of this peer's site (`local`) or not.
    pub fn remove_source_at(&mut self, have: &Bitfield, local: bool) {
        self.keep_apart(local);
        self.uncount_source(have);
        if local && self.apart {
            if have.is_full() {
                self.local_complete = self.local_complete.saturating_sub(1);
            }
            self.shift_local(have, -1);
        }
    }

    /// Before the first holder of another site is counted: the local
    /// counts start as the totals, which so far are all local.
    fn keep_apart(&mut self, local: bool) {
        if local || self.apart {
            return;
        }
        self.apart = true;
        self.local_avail.clone_from(&self.avail);
        self.local_complete = self.complete_sources;
        self.local_has = self.held();
    }

    /// For sparing a complete holder: how many holders that may be asked
    /// for `piece` instead have it, and how many of those are complete.
    /// A local holder's alternatives are the local holders only (a remote
    /// one is never asked for what the site has); a remote holder's, all.
    /// Without sites every holder is local: the same counts either way.
    fn sparing_counts(&self, piece: u32, local: bool) -> (u16, u16) {
        if local && self.apart {
            (self.local_avail[piece as usize], self.local_complete)
        } else {
            (self.avail[piece as usize], self.complete_sources)
        }
    }

    fn shift_local(&mut self, pieces: &Bitfield, by: i32) {
        self.each_not_done(pieces, |plan, p| {
            let a = &mut plan.local_avail[p as usize];
            *a = (*a as i32 + by).clamp(0, u16::MAX as i32) as u16;
            if *a == 0 {
                plan.local_has.clear(p);
            }
        });
        if by > 0 {
            // Every piece counted up is had: one union, not a bit each
            // (this runs over a whole holder's pieces as it connects).
            self.local_has.union_with(pieces);
        }
    }

    /// `claim_as` from a holder of another site: only what
    /// `remote_wanted` leaves of `have`.
    pub fn claim_remote(
        &mut self,
        have: &Bitfield,
        cursor: u32,
        max: usize,
        rng: &mut Rng,
        origin: bool,
    ) -> Vec<u32> {
        let wanted = self.remote_wanted(have);
        self.claim_among(have, &wanted, false, cursor, max, rng, origin)
    }

    /// `claim_endgame_as` from a holder of another site: only what
    /// `remote_wanted` leaves of `have`.
    pub fn claim_endgame_remote(
        &mut self,
        have: &Bitfield,
        mine: &dyn Fn(u32) -> bool,
        max: usize,
        origin: bool,
    ) -> Vec<u32> {
        let wanted = self.remote_wanted(have);
        self.endgame_among(have, &wanted, false, mine, max, origin)
    }

    /// `claim_as` (never as the origin) of the pieces in `wanted` only, a
    /// part of what the holder `have`s, from a holder of this peer's site
    /// (`local`) or not: a seeder spared for a while (`Fetch::set_seeder`).
    pub fn claim_within(
        &mut self,
        have: &Bitfield,
        wanted: &Bitfield,
        local: bool,
        max: usize,
        rng: &mut Rng,
    ) -> Vec<u32> {
        self.claim_among(have, wanted, local, 0, max, rng, false)
    }

    /// `claim_endgame_as` (never as the origin) of the pieces in `wanted`
    /// only, as `claim_within`.
    pub fn claim_endgame_within(
        &mut self,
        have: &Bitfield,
        wanted: &Bitfield,
        local: bool,
        mine: &dyn Fn(u32) -> bool,
        max: usize,
    ) -> Vec<u32> {
        self.endgame_among(have, wanted, local, mine, max, false)
    }

    /// The pieces not done here that no connected downloading holder has
    /// (counted as `sparing_counts` does for a holder `local` or not):
    /// what a complete holder is asked for in a swarm. Only the pieces
    /// not done are visited, a word at a time.
    pub fn only_complete_have(&self, local: bool) -> Bitfield {
        let mut only = Bitfield::new(self.pieces());
        let mut at = 0;
        while let Some(p) = self.done.next(at, false) {
            let (others, complete) = self.sparing_counts(p, local);
            if others <= complete {
                only.set(p);
            }
            at = p + 1;
        }
        only
    }

    /// From now on, break ties at random (a holder is downloading too).
    pub fn set_swarm(&mut self) {
        self.swarm = true;
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

    /// True when no piece is waiting to be claimed (all done or in flight).
    pub fn nothing_needed(&self) -> bool {
        self.needed.count() == 0
    }

    /// A holder of this peer's site connected: count what it has.
    pub fn add_source(&mut self, have: &Bitfield) {
        self.add_source_at(have, true);
    }

    /// `add_pieces` for a holder of this peer's site.
    pub fn add_pieces(&mut self, new: &Bitfield, now_full: bool) {
        self.add_pieces_at(new, now_full, true);
    }

    /// `remove_source` for a holder of this peer's site.
    pub fn remove_source(&mut self, have: &Bitfield) {
        self.remove_source_at(have, true);
    }

    /// A holder connected: count what it has.
    fn count_source(&mut self, have: &Bitfield) {
        if have.is_full() {
            self.complete_sources += 1;
        }
        self.each_not_done(have, |plan, p| plan.shift_avail(p, 1));
    }

    /// A connected holder's pieces grew by `new` (HAVE); `now_full` when
    /// it has every piece from now on.
    fn count_pieces(&mut self, new: &Bitfield, now_full: bool) {
        if now_full {
            self.complete_sources += 1;
        }
        self.each_not_done(new, |plan, p| plan.shift_avail(p, 1));
    }

    /// A holder left: its pieces are that much less available.
    fn uncount_source(&mut self, have: &Bitfield) {
        if have.is_full() {
            self.complete_sources = self.complete_sources.saturating_sub(1);
        }
        self.each_not_done(have, |plan, p| plan.shift_avail(p, -1));
    }

    /// Calls `f` for each piece of `pieces` not done, a word at a time.
    /// Availability is kept for those only: a done piece is never asked
    /// for again, and a holder that connects or leaves late in a download
    /// has mostly done pieces (250,000 such connections in a simulated
    /// swarm of 1,000).
    fn each_not_done(&mut self, pieces: &Bitfield, mut f: impl FnMut(&mut Plan, u32)) {
        for w in 0..(pieces.len() as usize).div_ceil(64) {
            let mut bits = pieces.word(w) & !self.done.word(w);
            while bits != 0 {
                let p = w as u32 * 64 + bits.trailing_zeros();
                bits &= bits - 1;
                f(self, p);
            }
        }
    }

    /// Connected holders having `piece`, while it is not done.
    pub fn availability(&self, piece: u32) -> u16 {
        self.avail[piece as usize]
    }

    fn shift_avail(&mut self, p: u32, by: i32) {
        let old = self.avail[p as usize];
        let new = (old as i32 + by).clamp(0, u16::MAX as i32) as u16;
        if self.needed.get(p) {
            self.unbucket(p);
            self.avail[p as usize] = new;
            self.bucket(p);
        } else {
            self.avail[p as usize] = new;
        }
    }

    fn bucket(&mut self, p: u32) {
        let a = self.avail[p as usize] as usize;
        if self.by_avail.len() <= a {
            self.by_avail.resize(a + 1, 0);
        }
        self.by_avail[a] += 1;
    }

    fn unbucket(&mut self, p: u32) {
        let a = self.avail[p as usize] as usize;
        self.by_avail[a] -= 1;
    }

    fn set_needed(&mut self, p: u32) {
        if self.needed.set(p) {
            self.bucket(p);
        }
    }

    fn clear_needed(&mut self, p: u32) {
        if self.needed.get(p) {
            self.needed.clear(p);
            self.unbucket(p);
        }
    }

    /// The lowest availability (at least 1) among needed pieces: no holder
    /// can offer anything rarer, so a scan may stop when it meets it.
    fn rarest_possible(&self) -> u16 {
        self.by_avail
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, &n)| n > 0)
            .map_or(1, |(a, _)| a as u16)
    }

    /// Claims up to `max` pieces that `have` holds: in a swarm, a random
    /// run while fewer than `RANDOM_FIRST` pieces are done; else the rarest, looking
    /// for ties from a random place (a swarm) or from `cursor` (wrapping).
    /// The run continues over following pieces of the same rarity. Empty
    /// when the holder has nothing needed (the caller may then try
    /// `claim_endgame`).
    pub fn claim(&mut self, have: &Bitfield, cursor: u32, max: usize, rng: &mut Rng) -> Vec<u32> {
        self.claim_as(have, cursor, max, rng, false)
    }

    /// `claim`, where `origin` says the holder is the item's owner and this
    /// download an update (it started from local pieces): followers that
    /// update together would each take the changed pieces from the owner;
    /// asked only for what no other connected holder has, the owner sends
    /// about one copy of the change and the followers trade the rest.
    pub fn claim_as(
        &mut self,
        have: &Bitfield,
        cursor: u32,
        max: usize,
        rng: &mut Rng,
        origin: bool,
    ) -> Vec<u32> {
        self.claim_among(have, have, true, cursor, max, rng, origin)
    }

    /// `claim_as` of the pieces in `wanted` (a part of what the holder
    /// `have`s), from a holder of this peer's site (`local`) or not.
    #[allow(clippy::too_many_arguments)]
    fn claim_among(
        &mut self,
        have: &Bitfield,
        wanted: &Bitfield,
        local: bool,
        cursor: u32,
        max: usize,
        rng: &mut Rng,
        origin: bool,
    ) -> Vec<u32> {
        let n = self.pieces();
        if n == 0 || max == 0 || self.needed.count() == 0 {
            return Vec::new();
        }
        // In a swarm a complete holder's upload is what every peer waits
        // for: ask it only for pieces no downloading holder has.
        let spare_seeder = self.swarm && have.is_full();
        let random = self.swarm && self.done.count() < RANDOM_FIRST && !spare_seeder && !origin;
        let spread = self.swarm;
        if spare_seeder && !origin {
            if let Some(run) = self.claim_backwards(wanted, local, max.min(self.spread_run), rng) {
                return run;
            }
        }
        let (start, max) = if spread {
            (rng.below(n as u64) as u32, max.min(self.spread_run))
        } else {
            (cursor % n, max)
        };
        let Some(first) = self.pick(wanted, start, random) else {
            return Vec::new();
        };
        let rarity = self.avail[first as usize];
        // Some downloading holder has even the rarest candidate: leave it
        // to them. (With only complete holders, everything is theirs.)
        let (others, complete) = self.sparing_counts(first, local);
        if (spare_seeder && others > complete) || (origin && others > 1) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut p = first;
        while out.len() < max
            && p < n
            && self.needed.get(p)
            && wanted.get(p)
            && (random || self.avail[p as usize] == rarity)
        {
            self.take(p);
            out.push(p);
            p += 1;
        }
        out
    }

    /// A needed piece goes to a worker.
    fn take(&mut self, p: u32) {
        self.clear_needed(p);
        self.claims[p as usize] += 1;
    }

    /// A run of the rarest pieces ending at one of them picked at random,
    /// from a complete holder in a swarm. A seeder offers its fresh pieces
    /// round by round from the front (`seeding`), so the first rarest
    /// piece after the pieces the swarm trades, where a look forward from
    /// a random place among them lands (40 % of the time with 40 % of the
    /// file traded), is mostly one it sent to another downloader moments
    /// ago, whose HAVE has not come yet: asked for it, it sends it twice
    /// (`make swarm N=8`: 1,250 of the seeder's 34,000 blocks, half a
    /// second of its link). A rarest piece picked at random is one of
    /// those only as often as they are among the rarest, and downloaders
    /// asking at the same moment stay apart however few the rarest are.
    /// (Looking backwards from a random place in the last eighth made
    /// every downloader converge on the same few when few were left: N=100
    /// with churn, the simulator, 1.31 -> 1.47 x T*, 1.38 copies.)
    /// None when no piece of `wanted` is as rare as any can be (the
    /// caller looks among rarer ones); empty when even those have a
    /// downloading holder (a forward look would find the same and spare
    /// the seeder too: not worth its scan of the file).
    fn claim_backwards(
        &mut self,
        wanted: &Bitfield,
        local: bool,
        max: usize,
        rng: &mut Rng,
    ) -> Option<Vec<u32>> {
        let floor = self.rarest_possible();
        let count = if wanted.is_full() {
            self.by_avail.get(floor as usize).copied().unwrap_or(0)
        } else {
            self.count_rarest(wanted, floor, u32::MAX).0
        };
        if count == 0 {
            return None;
        }
        let last = self
            .count_rarest(wanted, floor, rng.below(count as u64) as u32)
            .1?;
        let rarity = self.avail[last as usize];
        let (others, complete) = self.sparing_counts(last, local);
        if others > complete {
            return Some(Vec::new());
        }
        let mut first = last;
        while (last - first + 1) < max as u32
            && first > 0
            && self.needed.get(first - 1)
            && wanted.get(first - 1)
            && self.avail[(first - 1) as usize] == rarity
        {
            first -= 1;
        }
        let run: Vec<u32> = (first..=last).collect();
        for &p in &run {
            self.take(p);
        }
        Some(run)
    }

    /// Needed pieces of `wanted` exactly `floor` available, counted in
    /// order up to the one numbered `stop` (from 0): how many were
    /// counted, and that one if reached.
    fn count_rarest(&self, wanted: &Bitfield, floor: u16, stop: u32) -> (u32, Option<u32>) {
        let (mut count, mut at) = (0, 0);
        while let Some(p) = self.needed.next_common(wanted, at) {
            if self.avail[p as usize] == floor {
                if count == stop {
                    return (count, Some(p));
                }
                count += 1;
            }
            at = p + 1;
        }
        (count, None)
    }

    /// The first candidate from `start` (wrapping), or the rarest one.
    fn pick(&self, have: &Bitfield, start: u32, any: bool) -> Option<u32> {
        let floor = self.rarest_possible();
        let mut best: Option<(u16, u32)> = None;
        let mut scan = |from: u32, to: u32| -> bool {
            let mut at = from;
            while let Some(p) = self.needed.next_common(have, at).filter(|&p| p < to) {
                let a = self.avail[p as usize];
                if best.is_none_or(|(b, _)| a < b) {
                    best = Some((a, p));
                }
                if any || a <= floor {
                    return true;
                }
                at = p + 1;
            }
            false
        };
        if !scan(start, self.pieces()) {
            scan(0, start);
        }
        best.map(|(_, p)| p)
    }

    /// Endgame: pieces already in flight elsewhere that `have` holds and
    /// this worker (`mine`) is not fetching, fewest copies first. In a
    /// swarm a complete holder's upload is what every peer waits for, so
    /// it is asked for a second copy only of pieces no other downloading
    /// holder has.
    pub fn claim_endgame(
        &mut self,
        have: &Bitfield,
        mine: &dyn Fn(u32) -> bool,
        max: usize,
    ) -> Vec<u32> {
        self.claim_endgame_as(have, mine, max, false)
    }

    /// `claim_endgame`, sparing an `origin` (see `claim_as`) like a seeder.
    pub fn claim_endgame_as(
        &mut self,
        have: &Bitfield,
        mine: &dyn Fn(u32) -> bool,
        max: usize,
        origin: bool,
    ) -> Vec<u32> {
        self.endgame_among(have, have, true, mine, max, origin)
    }

    /// `claim_endgame_as` of the pieces in `wanted` (a part of `have`),
    /// from a holder of this peer's site (`local`) or not.
    fn endgame_among(
        &mut self,
        have: &Bitfield,
        wanted: &Bitfield,
        local: bool,
        mine: &dyn Fn(u32) -> bool,
        max: usize,
        origin: bool,
    ) -> Vec<u32> {
        if self.needed.count() > 0 {
            return Vec::new();
        }
        let mut candidates = Vec::new();
        let mut at = 0;
        let spare_seeder = (self.swarm && have.is_full()) || origin;
        // Only the few pieces not done are visited, a word at a time.
        while let Some(p) = self.done.next(at, false) {
            let c = self.claims[p as usize];
            let others_have = self.sparing_counts(p, local).0 > 2;
            if c > 0
                && c < ENDGAME_COPIES
                && wanted.get(p)
                && !mine(p)
                && !(spare_seeder && others_have)
            {
                candidates.push(p);
            }
            at = p + 1;
        }
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
            self.set_needed(piece);
        }
    }

    /// A verified copy was written; returns false if another copy won.
    pub fn complete(&mut self, piece: u32) -> bool {
        let c = &mut self.claims[piece as usize];
        *c = c.saturating_sub(1);
        if self.done.get(piece) {
            return false;
        }
        self.clear_needed(piece);
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

    fn rng() -> Rng {
        Rng::seeded(7)
    }

    /// A plan past its random first picks.
    pub(super) fn started(pieces: u32) -> Plan {
        let mut already = Bitfield::new(pieces);
        already.set_range(0, RANDOM_FIRST);
        Plan::new(pieces, 1, &already)
    }

    #[test]
    fn claims_are_exclusive_and_contiguous() {
        let mut plan = started(100);
        let all = Bitfield::full(100);
        plan.add_source(&all);
        let a = plan.claim(&all, 10, 10, &mut rng());
        assert_eq!(a, (10..20).collect::<Vec<_>>());
        let b = plan.claim(&all, 50, 10, &mut rng());
        assert_eq!(b, (50..60).collect::<Vec<_>>());
        // A worker whose cursor points into claimed ground skips ahead.
        let c = plan.claim(&all, 15, 3, &mut rng());
        assert_eq!(c, vec![20, 21, 22]);
    }

    #[test]
    fn claims_wrap_and_respect_holdings() {
        let mut plan = started(20);
        let mut have = Bitfield::new(20);
        for p in [5, 13, 18] {
            have.set(p);
        }
        plan.add_source(&have);
        let mut got = Vec::new();
        for _ in 0..3 {
            got.extend(plan.claim(&have, 15, 10, &mut rng()));
        }
        assert_eq!(got, vec![18, 5, 13]);
        assert!(plan.claim(&have, 0, 10, &mut rng()).is_empty());
    }

    #[test]
    fn rarest_pieces_go_first() {
        let mut plan = started(40);
        let seeder = Bitfield::full(40);
        let leecher = Bitfield::from_runs(40, &[(4, 26)]).unwrap();
        plan.add_source(&seeder);
        plan.add_source(&leecher);
        // From the seeder: pieces only it has (30..40), though the cursor
        // points at common ones.
        let got = plan.claim(&seeder, 10, 64, &mut rng());
        assert_eq!(got, (30..40).collect::<Vec<_>>());
        // Then the common ones, from the cursor on.
        assert_eq!(
            plan.claim(&seeder, 10, 5, &mut rng()),
            vec![10, 11, 12, 13, 14]
        );
        // The leecher left: what it had is as rare as anything.
        plan.remove_source(&leecher);
        assert_eq!(plan.availability(20), 1);
    }

    #[test]
    fn first_picks_are_random_and_spread() {
        let all = Bitfield::full(10_000);
        let mut starts = std::collections::HashSet::new();
        let mut r = rng();
        for _ in 0..8 {
            let mut plan = Plan::new(10_000, 1, &Bitfield::new(10_000));
            plan.set_swarm();
            plan.add_source(&all);
            let got = plan.claim(&all, 0, 4, &mut r);
            assert_eq!(got.len(), 4);
            assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "a run");
            starts.insert(got[0]);
        }
        assert!(starts.len() >= 7, "first picks should differ: {starts:?}");
    }

    #[test]
    fn a_swarm_spreads_short_runs() {
        let mut plan = Plan::new(10_000, 4, &Bitfield::new(10_000));
        plan.set_swarm();
        let all = Bitfield::full(10_000);
        plan.add_source(&all);
        let mut r = rng();
        let mut starts = Vec::new();
        for _ in 0..20 {
            let got = plan.claim(&all, 0, 64, &mut r);
            assert!(
                !got.is_empty() && got.len() <= 4,
                "16 blocks at most: {got:?}"
            );
            starts.push(got[0]);
        }
        starts.sort();
        starts.dedup();
        assert!(starts.len() >= 18, "random places: {starts:?}");
    }

    #[test]
    fn availability_tracks_needed_pieces_only() {
        let mut plan = started(8);
        let all = Bitfield::full(8);
        plan.add_source(&all);
        plan.add_source(&all);
        assert_eq!(plan.rarest_possible(), 2);
        let got = plan.claim(&all, 4, 4, &mut rng());
        assert_eq!(got, vec![4, 5, 6, 7]);
        assert!(plan.nothing_needed());
        plan.release(6);
        let one = Bitfield::from_runs(8, &[(6, 1)]).unwrap();
        plan.remove_source(&all);
        plan.add_source(&one);
        assert_eq!(plan.availability(6), 2);
        assert_eq!(plan.claim(&all, 0, 4, &mut rng()), vec![6]);
    }

    #[test]
    fn release_and_complete() {
        let mut plan = started(8);
        let all = Bitfield::full(8);
        assert_eq!(plan.claim(&all, 0, 4, &mut rng()), vec![4, 5, 6, 7]);
        plan.release(6);
        assert_eq!(plan.claim(&all, 0, 4, &mut rng()), vec![6]);
        for p in 4..8 {
            assert!(plan.complete(p));
        }
        assert!(plan.is_complete());
        assert!(!plan.complete(5), "a second copy never counts twice");
    }

    #[test]
    fn complete_holders_only_are_fetched_in_order_from_the_start() {
        let mut plan = Plan::new(100, 1, &Bitfield::new(100));
        let all = Bitfield::full(100);
        plan.add_source(&all);
        assert_eq!(
            plan.claim(&all, 0, 8, &mut rng()),
            (0..8).collect::<Vec<_>>()
        );
        assert_eq!(
            plan.claim(&all, 8, 8, &mut rng()),
            (8..16).collect::<Vec<_>>()
        );
    }

    #[test]
    fn resumed_plan_skips_done_pieces() {
        let mut already = Bitfield::new(6);
        already.set_range(0, 4);
        let mut plan = Plan::new(6, 1, &already);
        assert_eq!(
            plan.claim(&Bitfield::full(6), 0, 10, &mut rng()),
            vec![4, 5]
        );
    }

    #[test]
    fn endgame_duplicates_in_flight_pieces_once() {
        let mut plan = started(7);
        let all = Bitfield::full(7);
        let slow = plan.claim(&all, 0, 3, &mut rng());
        assert_eq!(slow, vec![4, 5, 6]);
        let none_mine = |_p: u32| false;
        let dup = plan.claim_endgame(&all, &none_mine, 10);
        assert_eq!(dup.len(), 3);
        assert!(
            plan.claim_endgame(&all, &none_mine, 10).is_empty(),
            "two copies at most"
        );
        // The fast copy wins; the slow one's completion is discarded.
        assert!(plan.complete(4));
        assert!(!plan.complete(4));
        // A released duplicate does not make a done piece needed again.
        plan.release(5);
        assert!(plan.claim(&all, 0, 3, &mut rng()).is_empty());
        plan.release(5);
        assert_eq!(plan.claim(&all, 0, 3, &mut rng()), vec![5]);
    }

    #[test]
    fn in_a_swarm_the_seeder_is_spared_endgame_copies_others_can_give() {
        let mut plan = started(6);
        plan.set_swarm();
        let seeder = Bitfield::full(6);
        let leecher = Bitfield::from_runs(6, &[(4, 2)]).unwrap();
        let other = Bitfield::from_runs(6, &[(5, 1)]).unwrap();
        for h in [&seeder, &leecher, &other] {
            plan.add_source(h);
        }
        let mut got = plan.claim(&leecher, 4, 2, &mut rng());
        got.extend(plan.claim(&leecher, 4, 2, &mut rng()));
        got.sort();
        assert_eq!(got, vec![4, 5]);
        let none_mine = |_p: u32| false;
        // Piece 5 is also at `other`: the seeder only doubles piece 4.
        assert_eq!(plan.claim_endgame(&seeder, &none_mine, 10), vec![4]);
        assert_eq!(plan.claim_endgame(&other, &none_mine, 10), vec![5]);
    }

    #[test]
    fn a_holder_is_wanted_only_for_missing_pieces() {
        let mut plan = started(8);
        let mut h = Bitfield::new(8);
        h.set(5);
        assert!(plan.wants_any(&h));
        assert_eq!(plan.claim(&h, 0, 4, &mut rng()), vec![5]);
        assert!(plan.wants_any(&h), "in flight is not done");
        plan.complete(5);
        assert!(!plan.wants_any(&h));
    }
}

#[cfg(test)]
mod spare_seeder_tests {
    use super::*;

    /// Everything `have` lets a worker claim, run after run.
    fn claim_all(p: &mut Plan, have: &Bitfield, rng: &mut Rng) -> Vec<u32> {
        let mut all = Vec::new();
        loop {
            let more = p.claim(have, 0, 64, rng);
            if more.is_empty() {
                return all;
            }
            all.extend(more);
        }
    }

    fn swarm_plan(pieces: u32) -> Plan {
        let mut p = Plan::new(pieces, 1, &Bitfield::new(pieces));
        p.set_swarm();
        // Past the random first picks.
        for i in 0..RANDOM_FIRST {
            p.clear_needed(i);
            p.done.set(i);
        }
        p
    }

    #[test]
    fn a_seeder_is_asked_only_for_what_no_downloading_holder_has() {
        let mut rng = Rng::seeded(3);
        let mut p = swarm_plan(20);
        let full = Bitfield::full(20);
        p.add_source(&full);
        let mut leecher = Bitfield::new(20);
        for i in 4..12 {
            leecher.set(i);
        }
        p.add_source(&leecher);
        let mut got = claim_all(&mut p, &full, &mut rng);
        got.sort();
        assert_eq!(
            got,
            (12..20).collect::<Vec<_>>(),
            "only what the leecher lacks"
        );
        // What the leecher has is left to it.
        assert_eq!(claim_all(&mut p, &leecher, &mut rng).len(), 8);
    }

    #[test]
    fn a_seeder_is_asked_for_runs_away_from_the_pieces_it_is_offering() {
        // The swarm trades pieces 0..4000 (a leecher has them); the seeder
        // is offering the next ones to the other downloaders, and a piece
        // just past 4000 is likely one it is sending someone else already.
        let mut rng = Rng::seeded(9);
        let full = Bitfield::full(10_000);
        let mut traded = Bitfield::new(10_000);
        traded.set_range(0, 4000);
        let fresh_plan = || {
            let mut p = swarm_plan(10_000);
            p.add_source(&full);
            p.add_source(&traded);
            p
        };
        // Many downloaders, each asking once, at the same moment.
        let (mut at_the_edge, mut ends) = (0, std::collections::HashSet::new());
        for _ in 0..400 {
            let run = fresh_plan().claim(&full, 0, 16, &mut rng);
            assert!(!run.is_empty() && run.len() <= 16);
            assert!(run.windows(2).all(|w| w[1] == w[0] + 1), "a run: {run:?}");
            assert!(
                run[0] >= 4000,
                "never what a downloading holder has: {run:?}"
            );
            at_the_edge += usize::from(run[0] < 4016);
            ends.insert(*run.last().unwrap());
        }
        // A forward look from a random place lands at 4000 whenever the
        // place is among the traded pieces: 40 % of the time.
        assert!(at_the_edge <= 4, "{at_the_edge} of 400 at the edge");
        assert!(ends.len() > 300, "downloaders asking at once stay apart");
        // One downloader asking until the seeder has nothing rarer left.
        let mut p = fresh_plan();
        while !p.claim(&full, 0, 16, &mut rng).is_empty() {}
        for piece in 4000..10_000 {
            assert!(!p.needed.get(piece), "piece {piece} left");
        }
        assert_eq!(p.needed.count(), 4000 - RANDOM_FIRST);
    }

    #[test]
    fn the_owner_of_an_update_is_asked_only_for_what_no_other_holder_has() {
        // An update: most pieces are here already (reused); pieces 30..40
        // changed. The owner (told "everything") and two followers, one a
        // complete holder of the new version already, one with 30..34.
        let mut rng = Rng::seeded(5);
        let mut here = Bitfield::full(40);
        for i in 30..40 {
            here.clear(i);
        }
        let mut p = Plan::new(40, 1, &here);
        p.set_swarm();
        let owner = Bitfield::full(40);
        let mut follower = here.clone();
        for i in 30..34 {
            follower.set(i);
        }
        p.add_source(&owner);
        p.add_source(&follower);
        let mut from_owner = Vec::new();
        loop {
            let got = p.claim_as(&owner, 0, 64, &mut rng, true);
            if got.is_empty() {
                break;
            }
            from_owner.extend(got);
        }
        from_owner.sort();
        assert_eq!(from_owner, (34..40).collect::<Vec<_>>());
        // Nor in the endgame, while another holder has the piece.
        assert!(p
            .claim_endgame_as(&owner, &|_| false, 16, true)
            .iter()
            .all(|&i| i >= 34));
        // The follower gives the rest; a second complete holder, the same.
        assert_eq!(claim_all(&mut p, &follower, &mut rng).len(), 4);
        assert_eq!(p.needed.count(), 0, "every piece claimed once");
    }

    #[test]
    fn with_only_complete_holders_nothing_is_spared() {
        // A leecher that came back after the others finished: every
        // holder it knows is complete, and it must still get the file.
        let mut rng = Rng::seeded(4);
        let mut p = swarm_plan(10);
        let full = Bitfield::full(10);
        p.add_source(&full);
        p.add_source(&full);
        assert_eq!(claim_all(&mut p, &full, &mut rng).len(), 6);
        // A downloading holder that becomes complete by HAVE counts as one.
        let mut q = swarm_plan(10);
        q.add_source(&full);
        let mut half = Bitfield::new(10);
        half.set_range(0, 5);
        q.add_source(&half);
        let mut rest = Bitfield::new(10);
        rest.set_range(5, 5);
        q.add_pieces(&rest, true);
        assert_eq!(claim_all(&mut q, &full, &mut rng).len(), 6);
        q.remove_source(&full);
        assert_eq!(q.complete_sources, 1);
    }
}

#[cfg(test)]
mod site_tests {
    use super::tests::started;
    use super::*;

    /// Everything a remote holder `have` lets a worker claim, run after run.
    fn claim_all_remote(p: &mut Plan, have: &Bitfield, rng: &mut Rng) -> Vec<u32> {
        let mut all = Vec::new();
        loop {
            let more = p.claim_remote(have, 0, 64, rng, false);
            if more.is_empty() {
                all.sort();
                return all;
            }
            all.extend(more);
        }
    }

    #[test]
    fn a_remote_holder_gives_only_what_no_local_holder_has() {
        let mut rng = Rng::seeded(1);
        let mut p = started(40);
        let remote_seeder = Bitfield::full(40);
        let local = Bitfield::from_runs(40, &[(4, 20)]).unwrap();
        p.add_source_at(&remote_seeder, false);
        p.add_source_at(&local, true);
        assert_eq!(
            claim_all_remote(&mut p, &remote_seeder, &mut rng),
            (24..40).collect::<Vec<_>>()
        );
        // The local holder gives its part, from the cursor on.
        assert_eq!(p.claim(&local, 4, 64, &mut rng).len(), 20);
        assert!(p.nothing_needed());
    }

    #[test]
    fn a_site_splits_what_it_fetches_from_outside_into_one_copy() {
        // Three downloaders of one site, the seeder in another: their
        // remote claims cover the file once, in stripes.
        let pieces = 200;
        let seeder = Bitfield::full(pieces);
        let mut seen = vec![0u32; pieces as usize];
        for rank in 0..3 {
            let mut p = Plan::new(pieces, 1, &Bitfield::new(pieces));
            p.set_site_share(rank, 3);
            p.add_source_at(&seeder, false);
            let got = claim_all_remote(&mut p, &seeder, &mut Rng::seeded(rank as u64));
            assert!(got.iter().all(|&i| (i / SITE_STRIPE) % 3 == rank));
            for i in got {
                seen[i as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "each piece once: {seen:?}");
    }

    #[test]
    fn another_downloaders_share_comes_from_it_once_it_has_it() {
        let mut rng = Rng::seeded(2);
        let pieces = 64;
        let mut p = Plan::new(pieces, 1, &Bitfield::new(pieces));
        p.set_swarm();
        p.set_site_share(0, 2);
        let seeder = Bitfield::full(pieces);
        p.add_source_at(&seeder, false);
        // Rank 1, local, has nothing yet: its stripes wait for it.
        let mut sibling = Bitfield::new(pieces);
        p.add_source_at(&sibling, true);
        let mine = claim_all_remote(&mut p, &seeder, &mut rng);
        assert_eq!(mine.len(), 32);
        assert!(mine.iter().all(|&i| (i / SITE_STRIPE).is_multiple_of(2)));
        // It fetched stripe 1 from outside: it gives it here.
        let got: Bitfield = Bitfield::from_runs(pieces, &[(16, 16)]).unwrap();
        p.add_pieces_at(&got, false, true);
        sibling.union_with(&got);
        assert_eq!(p.claim(&sibling, 16, 64, &mut rng).len(), 16);
    }

    #[test]
    fn local_holders_counted_before_the_first_remote_one_stay_local() {
        // Until a remote holder comes, the local counts are the totals;
        // the first one splits them off, with what was counted so far.
        let mut p = Plan::new(8, 1, &Bitfield::new(8));
        let mut a = Bitfield::new(8);
        a.set_range(0, 3);
        p.add_source_at(&a, true);
        p.add_source_at(&Bitfield::full(8), true);
        let mut b = Bitfield::new(8);
        b.set_range(2, 4);
        p.add_source_at(&b, false);
        assert_eq!(p.remote_wanted(&b).runs(), []);
        p.remove_source_at(&Bitfield::full(8), true);
        assert_eq!(p.remote_wanted(&b).runs(), [(3, 3)]);
        let mut c = Bitfield::new(8);
        c.set(7);
        p.add_pieces_at(&c, false, true);
        assert_eq!(p.remote_wanted(&Bitfield::full(8)).runs(), [(3, 4)]);
        p.remove_source_at(&a, true);
        assert_eq!(p.remote_wanted(&Bitfield::full(8)).runs(), [(0, 7)]);
        // A done piece is never wanted, from anyone.
        let mut rng = Rng::seeded(1);
        let got = p.claim(&Bitfield::full(8), 0, 1, &mut rng);
        p.complete(got[0]);
        assert!(!p.remote_wanted(&Bitfield::full(8)).get(got[0]));
    }

    #[test]
    fn a_lost_local_holder_leaves_its_pieces_to_the_outside_again() {
        let mut rng = Rng::seeded(3);
        let mut p = started(20);
        let seeder = Bitfield::full(20);
        let local = Bitfield::full(20);
        p.add_source_at(&seeder, false);
        p.add_source_at(&local, true);
        assert!(claim_all_remote(&mut p, &seeder, &mut rng).is_empty());
        assert!(p
            .claim_endgame_remote(&seeder, &|_| false, 16, false)
            .is_empty());
        p.remove_source_at(&local, true);
        assert_eq!(claim_all_remote(&mut p, &seeder, &mut rng).len(), 16);
    }

    #[test]
    fn a_local_seeder_is_not_spared_for_what_only_another_site_has() {
        // The seeder's site: a leecher of another site has pieces 4..20,
        // but it is never asked for what the site has (the seeder has it
        // all), so the seeder must give them.
        let mut rng = Rng::seeded(6);
        let mut p = started(20);
        p.set_swarm();
        let seeder = Bitfield::full(20);
        let remote = Bitfield::from_runs(20, &[(4, 16)]).unwrap();
        p.add_source_at(&seeder, true);
        p.add_source_at(&remote, false);
        assert!(claim_all_remote(&mut p, &remote, &mut rng).is_empty());
        let mut got = Vec::new();
        loop {
            let more = p.claim(&seeder, 0, 64, &mut rng);
            if more.is_empty() {
                break;
            }
            got.extend(more);
        }
        got.sort();
        assert_eq!(got, (4..20).collect::<Vec<_>>());
    }

    #[test]
    fn every_downloader_of_a_site_takes_its_own_rank() {
        assert_eq!(site_share(&"m", &["z", "a"]), (1, 3));
        assert_eq!(site_share(&"a", &["z", "m"]), (0, 3));
        assert_eq!(site_share(&"z", &["a", "m", "z"]), (2, 3), "itself once");
        assert_eq!(site_share(&"q", &[]), (0, 1));
    }

    #[test]
    fn without_a_site_every_holder_is_local_and_nothing_changes() {
        let mut rng = Rng::seeded(4);
        let mut p = started(20);
        let seeder = Bitfield::full(20);
        p.add_source_at(&seeder, true);
        assert_eq!(
            p.claim(&seeder, 4, 64, &mut rng),
            (4..20).collect::<Vec<_>>()
        );
    }
}
