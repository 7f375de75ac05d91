//! A seeder's schedule for one complete file, shared by all its block
//! server connections: which pieces it has handed out, and to whom.
//!
//! The seeder's upload is what a swarm waits for, and every piece it sends
//! twice is time lost. So while more than one downloader has the file
//! open, a new connection is not told "I have everything": it is offered
//! a few pieces that no other connection has been offered (OPENED with
//! those only), and more by HAVE as it asks for them, in the spirit of
//! BEP 16 super-seeding but with no slow start: enough are offered at
//! once to keep its pipeline full. Leechers trade the pieces among
//! themselves. When no fresh piece is left for a connection, it is told
//! the rest (HAVE of everything): from then on it asks the seeder only for
//! pieces no connected leecher can give (see `plan::claim`).
//!
//! Fresh pieces go out round by round from the front of the file (a
//! random place inside each round), so the downloaders' verified prefix,
//! which their whole-file MD5 follows, trails the seeder by a round or
//! two: offered from anywhere, it stayed short until the last piece and
//! every leecher then hashed the whole file at once.
//!
//! Pure state: the block server machines reach it through a mutex held
//! for the call.

use crate::bitfield::Bitfield;
use crate::peak_rate::PeakRate;
use crate::rng::Rng;
use std::time::{Duration, Instant};

/// Blocks offered and not yet asked for, per connection, at most...
pub const OFFER_BLOCKS: u32 = 32;
/// ...and at least this many...
pub const MIN_OFFER_BLOCKS: u32 = 1;
/// ...sharing about this many among all the connections. What the seeder
/// has offered and not yet sent is what a leecher told "everything" later
/// would take a second copy of, and what waits longest on the seeder's
/// link: a downloader asks for offers only as its pipeline there drains,
/// so offers beyond the pipelines only pile up (the simulator showed
/// fresh pieces running out at 11 s of 16 with 1,000 offered and unsent).
pub const OFFERED_BLOCKS: u32 = 64;
/// Fresh pieces are offered a round at a time, from the front of the
/// file: each round is this fraction of the file's pieces (8 MiB of a
/// 128 MiB file), offered from random places inside it (`fresh_order`).
/// The simulator at N=8 (128 MiB): 32 rounds 1.024-1.027 x T*, 16 rounds
/// 1.021-1.025; the MD5 left after the last piece is a round or two.
pub const ROUNDS: u32 = 16;
/// A far downloader is offered what it takes in a round trip times
/// this: the HAVE of an offer waits behind the blocks already queued to
/// it, and the rate is measured with the offers it had (room to grow)...
pub const RTT_HEADROOM: f64 = 3.0;
/// ...up to this many blocks (1 MiB), for a round trip of at most
/// `FAR_RTT`: a PONG also waits on a busy link, and the hundreds sharing
/// a seeder of 1 MiB/s in the simulator measured round trips of 0.2 s
/// and more (N=300: up to 200 ms, 1.203 and 1.239 x T* for seeds 1 and
/// 2 against 1.196 and 1.227; up to 100 ms, the same as without).
pub const FAR_OFFER_BLOCKS: u32 = 256;
pub const FAR_RTT: Duration = Duration::from_millis(100);
/// How often a seeder's sending rates are measured, in seconds.
pub const RATE_EVERY: f64 = 0.25;

pub struct Seeding {
    pieces: u32,
    /// Offered to some connection (or sent): not fresh any more.
    offered: Bitfield,
    /// Times each piece was sent, whole or in part.
    sent: Vec<u16>,
    /// Connections that have the file open.
    open: u32,
    rng: Rng,
    /// The pieces new in this version (`prefer`): offered first.
    hot: Option<Bitfield>,
    /// Pieces sent a second, by all its connections.
    rate: PeakRate,
}

impl Seeding {
    pub fn new(pieces: u32, seed: u64) -> Seeding {
        Seeding {
            pieces,
            offered: Bitfield::new(pieces),
            sent: vec![0; pieces as usize],
            open: 0,
            rng: Rng::seeded(seed),
            hot: None,
            rate: PeakRate::default(),
        }
    }

    /// Offers `hot` first: the pieces new in this version of the item.
    /// Peers updating from the last version need those and only those,
    /// so offered first they are spread over the updating peers, each
    /// getting different ones to trade (random offers would mostly be of
    /// pieces they already hold, and never asked for).
    pub fn prefer(&mut self, hot: Bitfield) {
        if hot.len() == self.pieces && hot.count() > 0 {
            self.hot = Some(hot);
        }
    }

    /// A connection opens the file: what to tell it it has. The first one
    /// alone is told everything (a one-to-one transfer goes at full
    /// speed); later ones get offers while others are open. While new
    /// pieces of a version are still fresh the first one gets offers too:
    /// the peers updating arrive within moments of each other, and the
    /// first, told everything, would take a copy of every new piece that
    /// the later ones are then offered again (the owner sent 2 x the
    /// change in `make update-bench`).
    pub fn open(&mut self, blocks_per_piece: u32) -> Bitfield {
        self.open += 1;
        if self.open == 1 && !self.new_pieces_fresh() {
            return Bitfield::full(self.pieces);
        }
        let mut told = Bitfield::new(self.pieces);
        let want = self.offer_size(blocks_per_piece);
        self.offer(&mut told, want);
        told
    }

    /// Pieces to keep offered to each connection, for the connections
    /// open now.
    pub fn offer_size(&self, blocks_per_piece: u32) -> u32 {
        let blocks = (OFFERED_BLOCKS / self.open.max(1)).clamp(MIN_OFFER_BLOCKS, OFFER_BLOCKS);
        (blocks / blocks_per_piece.max(1)).max(1)
    }

    /// `offer_size` for a downloader `rtt` away that was sent `rate`
    /// pieces a second: at least what it takes in a round trip, with
    /// headroom to grow, up to its share of the seeder's rate. A
    /// downloader 40 ms away asks for an offer a round trip after it
    /// goes out, so offers of `offer_size` alone (tuned on loopback, 8
    /// blocks each at N=8) let each one take 8 blocks per round trip,
    /// 0.8 MiB/s: at `make hosts N=8 RTT=40ms` the seeder's link was 74 %
    /// used, the downloader told everything took 59 % of it and the
    /// others waited for its copies. Near ones keep `offer_size`, and so
    /// do the hundreds that share a slow seeder, which ask for an offer
    /// only as their pipelines here drain (measuring that delay instead
    /// of the round trip offered them more, and the simulator at N=300
    /// went from 1.196 to 1.204 x T*, 1.164 to 1.173 copies).
    pub fn offer_size_for(
        &mut self,
        blocks_per_piece: u32,
        rtt: Duration,
        rate: f64,
        now: Instant,
    ) -> u32 {
        let fair = self.rate.measure(now, RATE_EVERY) / self.open.max(1) as f64;
        let share = fair.min(rate) * rtt.min(FAR_RTT).as_secs_f64() * RTT_HEADROOM;
        let most = (FAR_OFFER_BLOCKS / blocks_per_piece.max(1)).max(1);
        self.offer_size(blocks_per_piece)
            .max((share as u32).min(most))
    }

    /// A connection closed. If it was given offers, `(told, asked)`: the
    /// pieces it was offered and never asked for are fresh again, for the
    /// others.
    pub fn close(&mut self, offers: Option<(&Bitfield, &Bitfield)>) {
        self.open = self.open.saturating_sub(1);
        let Some((told, asked)) = offers else {
            return;
        };
        for p in told.minus(asked).iter_ones() {
            if self.sent[p as usize] == 0 {
                self.offered.clear(p);
            }
        }
    }

    /// Adds up to `want` fresh pieces to `told`, from a random place; the
    /// new ones. When none is left, everything not yet told: the
    /// connection sees a complete holder from then on.
    pub fn offer(&mut self, told: &mut Bitfield, want: u32) -> Bitfield {
        self.offer_from(told, want, false)
    }

    /// `offer` to a connection that asked for nothing it was offered for a
    /// while (`serve::STALE_OFFERS`): it may need new pieces that were
    /// offered to others first, so those come next, least sent first. A
    /// peer that updates needs every new piece, and must get them from us
    /// if nobody else gives them.
    pub fn offer_stale(&mut self, told: &mut Bitfield, want: u32) -> Bitfield {
        self.offer_from(told, want, true)
    }

    fn offer_from(&mut self, told: &mut Bitfield, want: u32, stale: bool) -> Bitfield {
        let mut new = Bitfield::new(self.pieces);
        if self.pieces == 0 || told.is_full() {
            return new;
        }
        if self.open <= 1 && self.hot.is_some() && !self.new_pieces_fresh() {
            // Alone, and the new pieces all handed out: as `open` does
            // for the first connection, everything at full speed.
            let rest = Bitfield::full(self.pieces).minus(told);
            *told = Bitfield::full(self.pieces);
            return rest;
        }
        let start = self.rng.below(self.pieces as u64) as u32;
        let mut got = 0;
        if let Some(hot) = &self.hot {
            let ones = || hot.iter_ones();
            let order: Vec<u32> = ones()
                .filter(|&p| p >= start)
                .chain(ones().filter(|&p| p < start))
                .filter(|&p| !told.get(p))
                .collect();
            // Fresh new pieces first, each to one connection; to a stale
            // one, then the new pieces it was not told yet, least sent
            // first (`offer_stale`).
            let (fresh, mut seen): (Vec<u32>, Vec<u32>) =
                order.into_iter().partition(|&p| !self.offered.get(p));
            seen.sort_by_key(|&p| self.sent[p as usize]);
            if !stale {
                seen.clear();
            }
            for p in fresh.into_iter().chain(seen) {
                if got >= want {
                    break;
                }
                self.offered.set(p);
                told.set(p);
                new.set(p);
                got += 1;
            }
        }
        for (from, to) in self.fresh_order() {
            let mut at = from;
            while got < want {
                match self.offered.next(at, false) {
                    Some(p) if p < to => {
                        self.offered.set(p);
                        told.set(p);
                        new.set(p);
                        got += 1;
                        at = p + 1;
                    }
                    _ => break,
                }
            }
        }
        if got < want {
            // No fresh piece left: the ones sent fewest times, that this
            // connection was not offered yet; as before the offers run
            // from a random place, so connections get different ones.
            let least = (0..self.pieces)
                .filter(|&p| !told.get(p))
                .map(|p| self.sent[p as usize])
                .min();
            if let Some(least) = least {
                let order = (start..self.pieces).chain(0..start);
                for p in order {
                    if got >= want {
                        break;
                    }
                    if !told.get(p) && self.sent[p as usize] == least {
                        told.set(p);
                        new.set(p);
                        got += 1;
                    }
                }
            }
        }
        new
    }

    /// The order in which to look for fresh pieces to offer, as ranges:
    /// from a random place in the first round (`ROUNDS`) that still has a
    /// fresh piece to that round's end, then the rest of the round, then
    /// the rounds after it (the ones before have nothing fresh). A round
    /// is all offered before the next begins. Downloaders hash
    /// the whole file in order as its verified prefix grows, and a swarm
    /// gets each piece first from the seeder: offered from anywhere in
    /// the file, the prefix stays short until the very end and every
    /// leecher then hashes the whole file at once, after its last piece
    /// (1.5 s of 8 leechers on 2 cores at 128 MiB). Round by round, the
    /// prefix follows the seeder a round or two behind. Random inside a
    /// round, so that two seeders, which do not see each other's offers,
    /// rarely send the same piece at the same time.
    fn fresh_order(&mut self) -> [(u32, u32); 3] {
        let Some(first) = self.offered.next(0, false) else {
            return [(0, 0); 3];
        };
        let round = self.pieces.div_ceil(ROUNDS);
        let begin = first / round * round;
        let end = (begin + round).min(self.pieces);
        let start = begin + self.rng.below((end - begin) as u64) as u32;
        [(start, end), (begin, start), (end, self.pieces)]
    }

    /// `count` blocks of piece `p` went out.
    pub fn sent(&mut self, piece: u32) {
        self.offered.set(piece);
        self.rate.add(1);
        let s = &mut self.sent[piece as usize];
        *s = s.saturating_add(1);
    }

    /// Copies of the file sent so far, counted in pieces.
    pub fn copies(&self) -> f64 {
        if self.pieces == 0 {
            return 0.0;
        }
        self.sent.iter().map(|&s| s as u64).sum::<u64>() as f64 / self.pieces as f64
    }

    /// Some piece new in this version is not yet offered to anyone.
    pub fn new_pieces_fresh(&self) -> bool {
        self.hot
            .as_ref()
            .is_some_and(|hot| hot.any_and_not(&self.offered))
    }

    /// Connections that have the file open.
    pub fn open_count(&self) -> u32 {
        self.open
    }

    /// Pieces not yet offered to anyone.
    pub fn fresh(&self) -> u32 {
        self.pieces - self.offered.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_alone_gets_everything_later_ones_disjoint_offers() {
        let mut s = Seeding::new(100, 1);
        assert!(s.open(1).is_full());
        let a = s.open(1);
        let b = s.open(1);
        // Two and then three connections share OFFERED_BLOCKS.
        let (na, nb) = (OFFER_BLOCKS.min(OFFERED_BLOCKS / 2), OFFERED_BLOCKS / 3);
        assert_eq!((a.count(), b.count()), (na, nb));
        assert_eq!(a.minus(&b).count(), na, "disjoint");
        assert_eq!(s.fresh(), 100 - na - nb);
        // Many connections share about a second of upload between them.
        for _ in 0..60 {
            s.open += 1;
        }
        assert_eq!(s.offer_size(1), MIN_OFFER_BLOCKS);
        assert_eq!(s.offer_size(16), 1);
    }

    #[test]
    fn fresh_pieces_first_then_the_least_sent() {
        let mut s = Seeding::new(20, 2);
        s.open(1);
        let (mut a, mut b) = (Bitfield::new(20), Bitfield::new(20));
        s.offer(&mut a, 8);
        s.offer(&mut b, 8);
        assert_eq!((a.count(), b.count()), (8, 8));
        let fresh_left: Vec<u32> = (0..20).filter(|&p| !a.get(p) && !b.get(p)).collect();
        // B takes and is sent what it was offered.
        for p in b.iter_ones() {
            s.sent(p);
        }
        let more = s.offer(&mut a, 8);
        assert_eq!(more.count(), 8);
        assert!(fresh_left.iter().all(|&p| more.get(p)), "the 4 fresh first");
        // Then, with no fresh piece left, pieces sent once (B's).
        assert_eq!(more.iter_ones().filter(|&p| b.get(p)).count(), 4);
        assert!(a.is_full() || a.count() == 16);
        // A piece sent fewer times goes before one sent more.
        let c = s.open(1);
        let twice = c.iter_ones().next().unwrap_or(0);
        s.sent(twice);
        s.sent(twice);
        let mut d = Bitfield::new(20);
        let next = s.offer(&mut d, 19);
        assert!(
            !next.get(twice) || next.count() == 20,
            "the piece sent most goes last"
        );
        // Offers go on until the connection has been offered every piece.
        for _ in 0..10 {
            s.offer(&mut b, 8);
        }
        assert!(b.is_full());
        assert_eq!(s.offer(&mut b, 8).count(), 0);
    }

    #[test]
    fn the_pieces_new_in_a_version_are_offered_first_and_spread() {
        let mut s = Seeding::new(1000, 4);
        let mut hot = Bitfield::new(1000);
        for p in [3, 200, 201, 202, 555, 556, 900, 999] {
            hot.set(p);
        }
        s.prefer(hot.clone());
        // Eight blocks a piece: offers of 32 blocks are 4 pieces.
        let mut a = s.open(8);
        let mut b = s.open(8);
        assert_eq!(a.count(), 4, "even the first is offered, not told all");
        assert_eq!(a.minus(&hot).count(), 0, "only new pieces");
        assert_eq!(b.minus(&hot).count(), 0);
        assert_eq!(a.minus(&b).count(), 4, "different ones");
        // Every new piece reaches every connection in the end (each may
        // need them all), those sent least first, once it is stale; then
        // the rest.
        s.sent(b.iter_ones().next().unwrap());
        let cold = s.offer(&mut a.clone(), 4);
        assert_eq!(cold.iter_ones().filter(|&p| hot.get(p)).count(), 0);
        let more = s.offer_stale(&mut a, 4);
        assert_eq!(more.minus(&hot).count(), 0);
        assert!(a.count() == 8 && hot.minus(&a).count() == 0);
        let rest = s.offer_stale(&mut a, 4);
        assert_eq!(rest.count(), 4);
        assert_eq!(rest.iter_ones().filter(|&p| hot.get(p)).count(), 0);
        // Alone once the new pieces are all out: everything, at full speed.
        s.close(Some((&b, &b)));
        assert!(s.offer(&mut b, 4).count() > 0 && b.is_full());
        s.close(Some((&a, &a)));
        assert!(s.open(8).is_full());
    }

    #[test]
    fn fresh_pieces_go_out_round_by_round_from_random_places_in_each() {
        // A round is offered whole before the next begins, whatever the
        // offers' sizes, so the downloaders' verified prefix follows the
        // seeder.
        let mut s = Seeding::new(320, 6);
        let round = 320 / ROUNDS;
        s.open(1);
        let mut conns: Vec<Bitfield> = (0..3).map(|_| s.open(1)).collect();
        let mut firsts = Vec::new();
        for i in 0..200 {
            let new = s.offer(&mut conns[i % 3], 1 + (i as u32 * 7) % 13);
            firsts.extend(new.iter_ones().next());
            let offered = &s.offered;
            let highest = offered.iter_ones().last().unwrap_or(0);
            let whole = highest / round * round;
            assert_eq!(
                offered.next(0, false).map_or(whole, |p| p.min(whole)),
                whole
            );
        }
        assert_eq!(s.fresh(), 0);
        // Inside a round, from a random place: not in file order.
        assert!(firsts.windows(2).any(|w| w[1] < w[0]));
        // Two seeders of one file start in the same round at different
        // places, so they rarely send the same piece at once.
        let first_offer = |seed| {
            let mut s = Seeding::new(320_000, seed);
            s.open(1);
            s.open(1).iter_ones().next().unwrap()
        };
        let (a, b) = (first_offer(1), first_offer(2));
        assert!(
            a < 320_000 / ROUNDS && b < 320_000 / ROUNDS && a != b,
            "{a} {b}"
        );
    }

    #[test]
    fn pieces_offered_to_a_closed_connection_come_back() {
        let mut s = Seeding::new(10, 3);
        s.open(1);
        let told = s.open(1);
        let mut asked = Bitfield::new(10);
        let first = told.iter_ones().next().unwrap();
        asked.set(first);
        s.sent(first);
        s.close(Some((&told, &asked)));
        assert_eq!(told.count(), 10);
        assert_eq!(s.fresh(), 9, "all but the one sent");
        assert!((s.copies() - 0.1).abs() < 1e-9);
    }
}
