//! Sealed datagrams: with a swarm secret every UDP datagram (tracker
//! announces, search) travels inside this envelope, and one that does
//! not open is dropped unanswered.
//!
//! Layout: `"p2S"` (3 bytes, so an open receiver reads it as an unknown
//! version and drops it), a 24-byte random nonce, then the
//! XChaCha20-Poly1305 ciphertext of `timestamp (u64 BE, Unix ms) ||
//! datagram`, then its 16-byte tag. The timestamp and `ReplayGuard`
//! refuse a copy replayed later to the same socket.
//!
//! Each datagram is bound to its `Purpose`: the purpose has its own key
//! (`Keys::sealer`), and the associated data is the header, the purpose
//! and the direction (not sent: the receiver knows what it expects). So a
//! peer's announce does not open as a tracker's answer, nor a tracker's
//! answer at a search socket (issue 22 item 13).
//! Pure: the nonce and the clock come from the caller.

use chacha20poly1305::aead::{AeadCore, AeadInPlace, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::collections::{HashSet, VecDeque};

pub const HEADER: [u8; 3] = *b"p2S";
pub const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// A timestamp: u64 BE, Unix milliseconds (`unix_ms`).
const STAMP_LEN: usize = 8;
/// Bytes a sealed datagram adds to the one inside.
pub const OVERHEAD: usize = HEADER.len() + NONCE_LEN + STAMP_LEN + TAG_LEN;
/// How far a datagram's timestamp may be from the receiver's clock, in ms:
/// the swarm's clocks must agree this well.
pub const WINDOW_MS: u64 = 60_000;
/// Most nonces a guard remembers; past it the oldest go first (a window
/// shorter than `WINDOW_MS` under a flood of valid datagrams).
pub const MAX_REMEMBERED: usize = 1 << 18;

pub type Nonce = [u8; NONCE_LEN];

/// What a sealed datagram is for, and which way it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A peer's request to a tracker's UDP port (CONNECT, ANNOUNCE).
    ToTracker,
    /// A tracker's answer to a peer.
    FromTracker,
    /// Search between peers (HELLO, QUERY, CHUNK_INFO).
    Search,
}

impl Purpose {
    /// The associated data: the header, then the purpose's two bytes
    /// (docs/PROTOCOL.md §13.4).
    fn ad(self) -> [u8; 5] {
        let [p, d] = match self {
            Purpose::ToTracker => [1, 1],
            Purpose::FromTracker => [1, 2],
            Purpose::Search => [2, 0],
        };
        [HEADER[0], HEADER[1], HEADER[2], p, d]
    }
}

pub struct Sealer {
    aead: XChaCha20Poly1305,
}

/// Why a datagram was dropped (for the log; nobody is told).
#[derive(Debug, PartialEq, Eq)]
pub enum Dropped {
    NotSealed,
    Forged,
    Stale,
    Replayed,
    /// Stamped before the receiver started: its window of nonces does not
    /// reach back that far (a replay across a restart, or a sender's
    /// clock behind the receiver's).
    BeforeStart,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Sealer {
        Sealer {
            aead: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// A fresh random nonce (the OS's generator).
    pub fn nonce() -> Nonce {
        XChaCha20Poly1305::generate_nonce(&mut OsRng).into()
    }

    /// `datagram` sealed for `purpose` with `nonce` at `now_ms`, into `out`
    /// (cleared).
    pub fn seal_with(
        &self,
        purpose: Purpose,
        datagram: &[u8],
        nonce: &Nonce,
        now_ms: u64,
        out: &mut Vec<u8>,
    ) {
        out.clear();
        out.extend_from_slice(&HEADER);
        out.extend_from_slice(nonce);
        let body = out.len();
        out.extend_from_slice(&now_ms.to_be_bytes());
        out.extend_from_slice(datagram);
        let tag = self
            .aead
            .encrypt_in_place_detached(XNonce::from_slice(nonce), &purpose.ad(), &mut out[body..])
            // Only for a message over 256 GiB: not a datagram.
            .expect("datagram within the AEAD's length limit");
        out.extend_from_slice(&tag);
    }

    /// `datagram` sealed for `purpose` with a fresh nonce at the current
    /// time.
    pub fn seal(&self, purpose: Purpose, datagram: &[u8], out: &mut Vec<u8>) {
        self.seal_with(purpose, datagram, &Sealer::nonce(), unix_ms(), out)
    }

    /// Opens `sealed`, sealed for `purpose`, into `out` (cleared): the
    /// datagram inside, its nonce and timestamp. Checks nothing but
    /// authenticity: see `ReplayGuard`.
    pub fn open_into(
        &self,
        purpose: Purpose,
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(Nonce, u64), Dropped> {
        if sealed.len() < OVERHEAD || sealed[..HEADER.len()] != HEADER {
            return Err(Dropped::NotSealed);
        }
        let (head, rest) = sealed.split_at(HEADER.len() + NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce: Nonce = head[HEADER.len()..].try_into().expect("split at NONCE_LEN");
        out.clear();
        out.extend_from_slice(body);
        self.aead
            .decrypt_in_place_detached(XNonce::from_slice(&nonce), &purpose.ad(), out, tag.into())
            .map_err(|_| Dropped::Forged)?;
        let stamp = u64::from_be_bytes(out[..STAMP_LEN].try_into().expect("body >= 8 bytes"));
        out.drain(..STAMP_LEN);
        Ok((nonce, stamp))
    }

    /// Opens `sealed` into `out` and checks it against `guard` at `now_ms`.
    pub fn open(
        &self,
        purpose: Purpose,
        sealed: &[u8],
        guard: &mut ReplayGuard,
        now_ms: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), Dropped> {
        let (nonce, stamp) = self.open_into(purpose, sealed, out)?;
        guard.admit(nonce, stamp, now_ms)
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Refuses a datagram whose timestamp is outside the window and one whose
/// nonce was seen within it: a copy replayed later is not acted on twice.
/// Random nonces never repeat by chance (192 bits).
/// The nonces live in memory only, so a guard made `since` its process
/// started also refuses what was stamped before then: a copy captured
/// before a restart and replayed after it, which no guard remembers.
#[derive(Default)]
pub struct ReplayGuard {
    seen: HashSet<Nonce>,
    /// Nonces by arrival, with their timestamps, to forget them in order.
    order: VecDeque<(u64, Nonce)>,
    /// Nothing stamped before this (Unix ms) is taken.
    floor: u64,
}

impl ReplayGuard {
    /// A guard that takes any stamp within the window.
    pub fn new() -> ReplayGuard {
        ReplayGuard::default()
    }

    /// A guard that also refuses stamps before `start_ms`: made when its
    /// process starts, with the clock then.
    pub fn since(start_ms: u64) -> ReplayGuard {
        ReplayGuard {
            floor: start_ms,
            ..ReplayGuard::default()
        }
    }

    pub fn admit(&mut self, nonce: Nonce, stamp: u64, now_ms: u64) -> Result<(), Dropped> {
        if stamp.abs_diff(now_ms) > WINDOW_MS {
            return Err(Dropped::Stale);
        }
        if stamp < self.floor {
            return Err(Dropped::BeforeStart);
        }
        self.forget_before(now_ms.saturating_sub(WINDOW_MS));
        if !self.seen.insert(nonce) {
            return Err(Dropped::Replayed);
        }
        self.order.push_back((stamp, nonce));
        Ok(())
    }

    /// Forgets nonces stamped before `oldest` (a copy would be stale by
    /// now) and the oldest beyond `MAX_REMEMBERED`. Arrival order is close
    /// to stamp order; a nonce kept a little longer costs only memory.
    fn forget_before(&mut self, oldest: u64) {
        while let Some(&(stamp, nonce)) = self.order.front() {
            if stamp >= oldest && self.order.len() < MAX_REMEMBERED {
                break;
            }
            self.seen.remove(&nonce);
            self.order.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Sealed, the datagrams peers pad or budget still fit one packet at the
/// IPv6 minimum MTU (1,280 bytes less 48 of IPv6 and UDP headers): checked
/// when the crate builds.
const _: () = {
    use crate::wire::datagram::{search, tracker};
    const ONE_PACKET: usize = 1232;
    assert!(tracker::ANNOUNCE_BUDGET + OVERHEAD <= ONE_PACKET);
    assert!(search::QUERY_LEN + OVERHEAD <= ONE_PACKET);
    assert!(search::HELLO_LEN + OVERHEAD <= ONE_PACKET);
};

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;
    const P: Purpose = Purpose::Search;

    fn sealer(k: u8) -> Sealer {
        Sealer::new(&[k; 32])
    }

    #[test]
    fn seal_then_open_is_the_identity_and_costs_overhead() {
        let s = sealer(1);
        let mut sealed = Vec::new();
        s.seal_with(P, b"p2 hello", &[7; NONCE_LEN], NOW, &mut sealed);
        assert_eq!(sealed.len(), 8 + OVERHEAD);
        assert!(sealed.starts_with(b"p2S"));
        assert!(!sealed.windows(5).any(|w| w == b"hello"), "encrypted");
        let mut out = Vec::new();
        assert_eq!(s.open_into(P, &sealed, &mut out), Ok(([7; NONCE_LEN], NOW)));
        assert_eq!(out, b"p2 hello");
    }

    #[test]
    fn another_key_a_flipped_bit_or_a_plain_datagram_do_not_open() {
        let mut sealed = Vec::new();
        sealer(1).seal_with(P, b"announce", &[7; NONCE_LEN], NOW, &mut sealed);
        let mut out = Vec::new();
        assert_eq!(
            sealer(2).open_into(P, &sealed, &mut out),
            Err(Dropped::Forged)
        );
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(sealer(1).open_into(P, &bad, &mut out).is_err(), "byte {i}");
        }
        assert_eq!(
            sealer(1).open_into(P, b"p2\x01\x10plain", &mut out),
            Err(Dropped::NotSealed)
        );
        assert_eq!(
            sealer(1).open_into(P, &sealed[..OVERHEAD - 1], &mut out),
            Err(Dropped::NotSealed)
        );
    }

    #[test]
    fn replays_and_stale_stamps_are_refused() {
        let s = sealer(1);
        let mut guard = ReplayGuard::new();
        let (mut sealed, mut out) = (Vec::new(), Vec::new());
        s.seal_with(P, b"x", &[1; NONCE_LEN], NOW, &mut sealed);
        assert_eq!(s.open(P, &sealed, &mut guard, NOW + 5, &mut out), Ok(()));
        assert_eq!(
            s.open(P, &sealed, &mut guard, NOW + 10, &mut out),
            Err(Dropped::Replayed)
        );
        assert_eq!(
            s.open(P, &sealed, &mut guard, NOW + WINDOW_MS + 1, &mut out),
            Err(Dropped::Stale)
        );
        s.seal_with(P, b"x", &[2; NONCE_LEN], NOW - WINDOW_MS - 1, &mut sealed);
        assert_eq!(
            s.open(P, &sealed, &mut guard, NOW, &mut out),
            Err(Dropped::Stale)
        );
    }

    /// Issue 22 item 5: a sealed announce captured before a tracker's
    /// restart and replayed 35 s later, after it, was answered.
    #[test]
    fn a_guard_since_its_start_refuses_what_was_stamped_before() {
        let s = sealer(1);
        let (mut sealed, mut out) = (Vec::new(), Vec::new());
        s.seal_with(P, b"announce", &[3; NONCE_LEN], NOW - 35_000, &mut sealed);
        let mut restarted = ReplayGuard::since(NOW - 1);
        assert_eq!(
            s.open(P, &sealed, &mut restarted, NOW, &mut out),
            Err(Dropped::BeforeStart)
        );
        assert_eq!(
            s.open(P, &sealed, &mut ReplayGuard::new(), NOW, &mut out),
            Ok(()),
            "within the window, a guard with no start takes it"
        );
        s.seal_with(P, b"announce", &[4; NONCE_LEN], NOW - 1, &mut sealed);
        assert_eq!(s.open(P, &sealed, &mut restarted, NOW, &mut out), Ok(()));
    }

    #[test]
    fn the_guard_forgets_what_is_out_of_the_window() {
        let mut guard = ReplayGuard::new();
        for i in 0..100u8 {
            guard.admit([i; NONCE_LEN], NOW, NOW).unwrap();
        }
        assert_eq!(guard.len(), 100);
        guard
            .admit([200; NONCE_LEN], NOW + WINDOW_MS + 1, NOW + WINDOW_MS + 1)
            .unwrap();
        assert_eq!(guard.len(), 1, "the old ones are stale now, not remembered");
    }

    /// Issue 22 item 13: one key and one associated data served every
    /// purpose and direction. A datagram opens only as what it was sealed
    /// for.
    #[test]
    fn a_datagram_opens_only_for_its_purpose_and_direction() {
        let s = sealer(1);
        let all = [Purpose::ToTracker, Purpose::FromTracker, Purpose::Search];
        let (mut sealed, mut out) = (Vec::new(), Vec::new());
        for sent in all {
            s.seal_with(sent, b"x", &[5; NONCE_LEN], NOW, &mut sealed);
            for opened in all {
                let got = s.open_into(opened, &sealed, &mut out);
                assert_eq!(got.is_ok(), sent == opened, "{sent:?} opened as {opened:?}");
            }
        }
    }

    #[test]
    fn fresh_nonces_differ() {
        assert_ne!(Sealer::nonce(), Sealer::nonce());
    }
}
