//! Connection ids for the UDP exchange, as in BEP 15: a keyed hash
//! (SipHash-2-4) of the source address and a time window, so the tracker
//! checks them with no state per peer. A datagram whose source was spoofed
//! never sees the CONNECTED answer, so it cannot carry a valid id; the key
//! is random per process, so a restart invalidates every id and peers
//! learn of the restart at their next announce.

use siphasher::sip::SipHasher24;
use std::hash::Hasher;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};

/// A window's length: an id is issued for the current window and accepted
/// in it and the next, so it lives 60 to 120 s. Peers ask for a new one
/// after `wire::datagram::tracker::COOKIE_REFRESH`, within the shortest life.
pub const WINDOW_SECS: u64 = 60;
const _: () = assert!(crate::wire::datagram::tracker::COOKIE_REFRESH.as_secs() < WINDOW_SECS);

pub struct CookieJar {
    k0: u64,
    k1: u64,
}

impl CookieJar {
    /// A jar with a key from the operating system's random source.
    pub fn new() -> std::io::Result<CookieJar> {
        let mut key = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        Ok(CookieJar::with_key(key))
    }

    pub fn with_key(key: [u8; 16]) -> CookieJar {
        let (a, b) = key.split_at(8);
        CookieJar {
            k0: u64::from_le_bytes(a.try_into().expect("8 bytes")),
            k1: u64::from_le_bytes(b.try_into().expect("8 bytes")),
        }
    }

    fn hash(&self, from: SocketAddr, window: u64) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        // IPv4 and its IPv6-mapped form are one source.
        let ip = match from.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        h.write(&ip.octets());
        h.write(&from.port().to_be_bytes());
        h.write(&window.to_be_bytes());
        h.finish()
    }

    /// The id for `from` at `now_secs` (seconds on any steady clock).
    pub fn issue(&self, from: SocketAddr, now_secs: u64) -> u64 {
        self.hash(from, now_secs / WINDOW_SECS)
    }

    /// Whether `cookie` was issued to `from` in this window or the last.
    pub fn check(&self, from: SocketAddr, cookie: u64, now_secs: u64) -> bool {
        let w = now_secs / WINDOW_SECS;
        cookie == self.hash(from, w) || (w > 0 && cookie == self.hash(from, w - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn valid_for_one_to_two_windows_then_expired() {
        let jar = CookieJar::with_key([3; 16]);
        let a = addr("127.0.0.1:5000");
        let t = 10 * WINDOW_SECS + 59;
        let c = jar.issue(a, t);
        assert!(jar.check(a, c, t));
        assert!(jar.check(a, c, t + 1), "next window");
        assert!(jar.check(a, c, t + WINDOW_SECS));
        assert!(!jar.check(a, c, t + WINDOW_SECS + 1), "expired");
        assert!(
            !jar.check(a, c, t - WINDOW_SECS),
            "not before it was issued"
        );
        // The mapped form of the same address is the same source.
        assert!(jar.check(addr("[::ffff:127.0.0.1]:5000"), c, t));
    }

    #[test]
    fn bound_to_the_address_and_the_key() {
        let jar = CookieJar::with_key([3; 16]);
        let t = 1000;
        let c = jar.issue(addr("127.0.0.1:5000"), t);
        assert!(!jar.check(addr("127.0.0.2:5000"), c, t));
        assert!(!jar.check(addr("127.0.0.1:5001"), c, t));
        let restarted = CookieJar::with_key([4; 16]);
        assert!(!restarted.check(addr("127.0.0.1:5000"), c, t));
        let random = CookieJar::new().unwrap();
        assert!(!random.check(addr("127.0.0.1:5000"), c, t));
    }

    proptest! {
        #[test]
        fn guesses_do_not_pass(guess in any::<u64>(), port in 1u16.., t in 0u64..1 << 40) {
            let jar = CookieJar::with_key([9; 16]);
            let a = SocketAddr::new("10.0.0.1".parse().unwrap(), port);
            // A guess passes only if it is the id (2^-64 per try).
            let ok = guess == jar.issue(a, t)
                || (t >= WINDOW_SECS && guess == jar.issue(a, t - WINDOW_SECS));
            prop_assert_eq!(jar.check(a, guess, t), ok);
        }
    }
}
