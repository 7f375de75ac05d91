//! The tracker's UDP exchange (seed 001), in the manner of BEP 15: a peer
//! first asks for a connection id (CONNECT), a cookie the tracker derives
//! from the peer's address and the time without keeping any state, then
//! sends ANNOUNCEs that carry it. Registration, the periodic announce of
//! what changed, and goodbye are all ANNOUNCEs, told apart by flags.
//!
//! Sans-I/O like the rest of `wire`: one datagram is one byte slice, with
//! the header of `datagram` (magic `p2`, version, type). Every request is
//! at least as long as any answer to it (CONNECT and ANNOUNCE are
//! padded), so a spoofed source never draws more bytes than it sent.
//! Layouts are in docs/PROTOCOL.md §12.

use super::{get_ip, open, put_header, put_ip, HEADER_LEN};
use crate::digest::Md5Digest;
use crate::error::{Error, Result};
use crate::names::{check_file_name, check_peer_id, MAX_HOST_BYTES, MAX_PEER_ID_BYTES};
use crate::wire::codec::{put_u16, put_u32, put_u64, put_u8, Decoder};
use std::net::IpAddr;
use std::time::Duration;
/// A CONNECT is exactly this long: padding makes it as long as its answer.
pub const CONNECT_LEN: usize = 16;
/// An ANNOUNCE is padded to at least this, the longest answer's fixed part
/// (an IPv6 source) with room for its unknown-file bitmap.
pub const MIN_ANNOUNCE_LEN: usize = 64;
/// What a peer puts in one ANNOUNCE: one packet at the IPv6 minimum MTU
/// (1,280 less 48 bytes of IPv6 and UDP headers leaves 1,232) even when
/// sealed under a swarm secret, which adds 51 bytes (`secure::seal::
/// OVERHEAD`), so a datagram is never fragmented.
pub const ANNOUNCE_BUDGET: usize = 1232 - 51;
/// The largest datagram the tracker reads; longer ones are dropped unread.
pub const MAX_TRACKER_DATAGRAM: usize = 2048;
/// The smallest entry of an ANNOUNCE: a one-byte name (with its length
/// byte), the MD5 and the state.
pub const MIN_ENTRY_LEN: usize = 2 + 16 + 1;
/// Entries in one ANNOUNCE.
pub const MAX_ENTRIES: usize = MAX_TRACKER_DATAGRAM / MIN_ENTRY_LEN;
/// When a peer asks for a fresh connection id: well inside the shortest
/// life the tracker gives one (`tracker::cookie::WINDOW_SECS`, 60 s).
pub const COOKIE_REFRESH: Duration = Duration::from_secs(50);

pub mod ty {
    pub const CONNECT: u8 = 0x10;
    pub const ANNOUNCE: u8 = 0x11;
    pub const CONNECTED: u8 = 0x90;
    pub const ANNOUNCED: u8 = 0x91;
    pub const REFUSED: u8 = 0x9f;
}

/// ANNOUNCE flag: start a session (the peer id, port and host are taken
/// from this datagram; a previous session of the same id ends).
pub const FLAG_REGISTER: u8 = 0x01;
/// ANNOUNCE flag: end the session.
pub const FLAG_BYE: u8 = 0x02;
/// ANNOUNCE flag: a `site` follows `advertise` (`peer --site`; read with
/// REGISTER, where the session takes it).
pub const FLAG_SITE: u8 = 0x04;

const STATE_GONE: u8 = 0;
const STATE_PARTIAL: u8 = 1;
const STATE_COMPLETE: u8 = 2;

/// How much of a file a peer holds, as it tells the tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// It no longer takes part (a download given up, a file removed).
    Gone,
    /// Downloading, with this many verified blocks (0: just joined).
    Partial(u32),
    /// Every block: a seeder of the file.
    Complete,
}

/// One file in an ANNOUNCE: it replaces what the tracker knew of the
/// sender and that file. Files not named keep what they had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub md5: Md5Digest,
    pub held: Held,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce<'a> {
    /// Chosen by the peer; the answer carries it back.
    pub tx: u32,
    /// The connection id from CONNECTED.
    pub cookie: u64,
    /// The session from an earlier ANNOUNCED; ignored with `FLAG_REGISTER`.
    pub session: u64,
    pub flags: u8,
    /// Where the peer serves blocks (TCP).
    pub port: u16,
    pub peer_id: &'a str,
    /// The host other peers dial; empty means the datagram's source.
    pub advertise: &'a str,
    /// The peer's site (`--site`), sent with `FLAG_SITE` only; empty: none.
    pub site: &'a str,
    pub entries: Vec<Entry<'a>>,
}

/// What a peer sends the tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Connect { tx: u32 },
    Announce(Announce<'a>),
}

/// Why the tracker did not act on a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The connection id is forged or expired: CONNECT again.
    BadCookie,
    /// The session is not (or no longer) known: register again.
    UnknownSession,
    /// The ANNOUNCE breaks the rules (a bad peer id or host).
    BadRequest,
}

impl Refusal {
    fn code(self) -> u8 {
        match self {
            Refusal::BadCookie => 1,
            Refusal::UnknownSession => 2,
            Refusal::BadRequest => 3,
        }
    }

    fn from_code(c: u8) -> Result<Refusal> {
        match c {
            1 => Ok(Refusal::BadCookie),
            2 => Ok(Refusal::UnknownSession),
            3 => Ok(Refusal::BadRequest),
            other => Err(Error::protocol(format!("REFUSED reason {other}"))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announced {
    pub tx: u32,
    /// The session this peer announces under from now on.
    pub session: u64,
    /// Seconds until the next announce is due.
    pub interval_secs: u16,
    /// Live peers in the swarm.
    pub peers: u32,
    /// The address the tracker saw the datagram come from.
    pub source: IpAddr,
    /// For each entry of the request, in order: the tracker has no record
    /// of that file (the peer sends NEW_FILE, then announces it again).
    /// Empty when none is unknown.
    pub unknown: Vec<bool>,
}

/// What the tracker answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Connected {
        tx: u32,
        cookie: u64,
    },
    Announced(Announced),
    Refused {
        tx: u32,
        reason: Refusal,
    },
    /// REFUSED ID_IN_USE: another live peer holds this peer id; `at` is
    /// where it is dialled (`host:port`; empty if it did not fit).
    InUse {
        tx: u32,
        at: String,
    },
}

/// The REFUSED reason that carries an address after it.
const ID_IN_USE: u8 = 4;

/// A `u8`-length string; callers keep it within 255 bytes.
fn put_short_str(out: &mut Vec<u8>, s: &str) {
    debug_assert!(s.len() <= 255);
    put_u8(out, s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn get_short_str<'a>(d: &mut Decoder<'a>, max: usize) -> Result<&'a str> {
    let n = d.u8()? as usize;
    if n > max {
        return Err(Error::protocol(format!("string of {n} bytes, limit {max}")));
    }
    std::str::from_utf8(d.take(n)?).map_err(|_| Error::protocol("string is not UTF-8"))
}

/// Checks size, magic and version; the type byte and the body.
fn split_header(bytes: &[u8]) -> Result<(u8, Decoder<'_>)> {
    open(bytes, MAX_TRACKER_DATAGRAM, "tracker datagram")
}

impl Entry<'_> {
    /// Bytes this entry takes in an ANNOUNCE.
    pub fn encoded_len(&self) -> usize {
        1 + self.name.len()
            + 16
            + 1
            + if matches!(self.held, Held::Partial(_)) {
                4
            } else {
                0
            }
    }
}

impl<'a> Announce<'a> {
    /// Bytes of everything but the entries (and the padding).
    pub fn fixed_len(peer_id: &str, advertise: &str, site: &str) -> usize {
        let site = if site.is_empty() { 0 } else { 1 + site.len() };
        HEADER_LEN + 4 + 8 + 8 + 1 + 2 + 1 + peer_id.len() + 1 + advertise.len() + site + 2
    }
}

impl<'a> Request<'a> {
    /// Appends the datagram to `out` (cleared first).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Request::Connect { tx } => {
                put_header(out, ty::CONNECT);
                put_u32(out, *tx);
                out.resize(CONNECT_LEN, 0);
            }
            Request::Announce(a) => {
                put_header(out, ty::ANNOUNCE);
                put_u32(out, a.tx);
                put_u64(out, a.cookie);
                put_u64(out, a.session);
                put_u8(out, a.flags);
                put_u16(out, a.port);
                put_short_str(out, a.peer_id);
                put_short_str(out, a.advertise);
                if a.flags & FLAG_SITE != 0 {
                    put_short_str(out, a.site);
                }
                put_u16(out, a.entries.len() as u16);
                for e in &a.entries {
                    put_short_str(out, e.name);
                    out.extend_from_slice(&e.md5);
                    match e.held {
                        Held::Gone => put_u8(out, STATE_GONE),
                        Held::Partial(blocks) => {
                            put_u8(out, STATE_PARTIAL);
                            put_u32(out, blocks);
                        }
                        Held::Complete => put_u8(out, STATE_COMPLETE),
                    }
                }
                if out.len() < MIN_ANNOUNCE_LEN {
                    out.resize(MIN_ANNOUNCE_LEN, 0);
                }
            }
        }
    }

    /// Decodes one request, checking every length, name and the padding.
    /// Borrowed from `bytes`: nothing is allocated but the entry list.
    pub fn decode(bytes: &'a [u8]) -> Result<Request<'a>> {
        let (t, mut d) = split_header(bytes)?;
        match t {
            ty::CONNECT => {
                if bytes.len() != CONNECT_LEN {
                    return Err(Error::protocol(format!(
                        "CONNECT of {} bytes (must be {CONNECT_LEN})",
                        bytes.len()
                    )));
                }
                let tx = d.u32()?;
                d.zero_padding()?;
                Ok(Request::Connect { tx })
            }
            ty::ANNOUNCE => {
                if bytes.len() < MIN_ANNOUNCE_LEN {
                    return Err(Error::protocol(format!(
                        "ANNOUNCE of {} bytes (at least {MIN_ANNOUNCE_LEN})",
                        bytes.len()
                    )));
                }
                let a = decode_announce(&mut d)?;
                d.zero_padding()?;
                Ok(Request::Announce(a))
            }
            other => Err(Error::protocol(format!(
                "unknown tracker request type 0x{other:02x}"
            ))),
        }
    }

    /// Gives an encoded request (`bytes`, from `encode`) another
    /// transaction id: every request carries it first after the header.
    pub fn set_tx(bytes: &mut [u8], tx: u32) {
        bytes[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&tx.to_be_bytes());
    }

    /// The transaction id and connection id of something shaped like an
    /// ANNOUNCE (header, type and length) whose body may not decode: so
    /// a peer that proved its address is told why it is ignored.
    pub fn announce_prefix(bytes: &[u8]) -> Option<(u32, u64)> {
        let (t, mut d) = split_header(bytes).ok()?;
        if t != ty::ANNOUNCE || bytes.len() < MIN_ANNOUNCE_LEN {
            return None;
        }
        Some((d.u32().ok()?, d.u64().ok()?))
    }
}

fn decode_announce<'a>(d: &mut Decoder<'a>) -> Result<Announce<'a>> {
    let tx = d.u32()?;
    let cookie = d.u64()?;
    let session = d.u64()?;
    let flags = d.u8()?;
    if flags & !(FLAG_REGISTER | FLAG_BYE | FLAG_SITE) != 0 {
        return Err(Error::protocol(format!("ANNOUNCE flags 0x{flags:02x}")));
    }
    let port = d.u16()?;
    let peer_id = get_short_str(d, MAX_PEER_ID_BYTES)?;
    check_peer_id(peer_id)?;
    let advertise = get_short_str(d, MAX_HOST_BYTES)?;
    if !crate::names::valid_host(advertise) {
        return Err(Error::protocol(
            "advertised host is not a host name or IP address",
        ));
    }
    let site = if flags & FLAG_SITE != 0 {
        let site = get_short_str(d, crate::names::MAX_SITE_BYTES)?;
        crate::names::check_site(site)?;
        site
    } else {
        ""
    };
    let n = d.u16()? as usize;
    // Each entry takes at least MIN_ENTRY_LEN: no count sizes an allocation
    // beyond the datagram.
    if n > MAX_ENTRIES || n * MIN_ENTRY_LEN > d.remaining() {
        return Err(Error::protocol(format!(
            "{n} entries do not fit the datagram"
        )));
    }
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let name = get_short_str(d, crate::names::MAX_NAME_BYTES)?;
        check_file_name(name)?;
        let md5 = d.array()?;
        let held = match d.u8()? {
            STATE_GONE => Held::Gone,
            STATE_PARTIAL => Held::Partial(d.u32()?),
            STATE_COMPLETE => Held::Complete,
            other => return Err(Error::protocol(format!("entry state {other}"))),
        };
        entries.push(Entry { name, md5, held });
    }
    Ok(Announce {
        tx,
        cookie,
        session,
        flags,
        port,
        peer_id,
        advertise,
        site,
        entries,
    })
}

impl Reply {
    /// Appends the answer to `out` (cleared first), never longer than
    /// `request_len`: an unknown-file bitmap that would not fit is left
    /// out (the peer learns of those files at its next announce).
    pub fn encode(&self, request_len: usize, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Reply::Connected { tx, cookie } => {
                put_header(out, ty::CONNECTED);
                put_u32(out, *tx);
                put_u64(out, *cookie);
            }
            Reply::Refused { tx, reason } => {
                put_header(out, ty::REFUSED);
                put_u32(out, *tx);
                put_u8(out, reason.code());
            }
            Reply::InUse { tx, at } => {
                put_header(out, ty::REFUSED);
                put_u32(out, *tx);
                put_u8(out, ID_IN_USE);
                // Never longer than the request (an ANNOUNCE has at least
                // 64 bytes, room for any IP address and port).
                let room = request_len.saturating_sub(out.len() + 1).min(255);
                put_short_str(out, if at.len() <= room { at } else { "" });
            }
            Reply::Announced(a) => {
                put_header(out, ty::ANNOUNCED);
                put_u32(out, a.tx);
                put_u64(out, a.session);
                put_u16(out, a.interval_secs);
                put_u32(out, a.peers);
                put_ip(out, a.source);
                let bitmap = a.unknown.len().div_ceil(8);
                if a.unknown.iter().any(|&u| u) && out.len() + 2 + bitmap <= request_len {
                    put_u16(out, a.unknown.len() as u16);
                    let start = out.len();
                    out.resize(start + bitmap, 0);
                    for (i, _) in a.unknown.iter().enumerate().filter(|(_, &u)| u) {
                        out[start + i / 8] |= 0x80 >> (i % 8);
                    }
                } else {
                    put_u16(out, 0);
                }
            }
        }
        debug_assert!(out.len() <= request_len.max(CONNECT_LEN));
    }

    pub fn decode(bytes: &[u8]) -> Result<Reply> {
        let (t, mut d) = split_header(bytes)?;
        let reply = match t {
            ty::CONNECTED => Reply::Connected {
                tx: d.u32()?,
                cookie: d.u64()?,
            },
            ty::REFUSED => {
                let tx = d.u32()?;
                match d.u8()? {
                    ID_IN_USE => {
                        let at = get_short_str(&mut d, 255)?;
                        // Shown to the user: printable ASCII only.
                        if !at.bytes().all(|b| b.is_ascii_graphic()) {
                            return Err(Error::protocol("ID_IN_USE address is not printable"));
                        }
                        Reply::InUse {
                            tx,
                            at: at.to_string(),
                        }
                    }
                    code => Reply::Refused {
                        tx,
                        reason: Refusal::from_code(code)?,
                    },
                }
            }
            ty::ANNOUNCED => {
                let tx = d.u32()?;
                let session = d.u64()?;
                let interval_secs = d.u16()?;
                let peers = d.u32()?;
                let source = get_ip(&mut d)?;
                let n = d.u16()? as usize;
                let bits = d.take(n.div_ceil(8))?;
                let unknown = (0..n)
                    .map(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0)
                    .collect();
                Reply::Announced(Announced {
                    tx,
                    session,
                    interval_secs,
                    peers,
                    source,
                    unknown,
                })
            }
            other => {
                return Err(Error::protocol(format!(
                    "unknown tracker reply type 0x{other:02x}"
                )))
            }
        };
        d.finish()?;
        Ok(reply)
    }

    pub fn tx(&self) -> u32 {
        match self {
            Reply::Connected { tx, .. } | Reply::Refused { tx, .. } | Reply::InUse { tx, .. } => {
                *tx
            }
            Reply::Announced(a) => a.tx,
        }
    }
}

/// Splits `entries` into groups that each fit one ANNOUNCE of at most
/// `ANNOUNCE_BUDGET` bytes beside a fixed part of `fixed` bytes. Always
/// at least one group (an empty one is the keep-alive).
pub fn batches<'a>(fixed: usize, entries: Vec<Entry<'a>>) -> Vec<Vec<Entry<'a>>> {
    let mut out = vec![Vec::new()];
    let mut size = fixed;
    for e in entries {
        let cost = e.encoded_len();
        let last = out.last_mut().expect("never empty");
        if !last.is_empty() && size + cost > ANNOUNCE_BUDGET {
            out.push(Vec::new());
            size = fixed;
        }
        size += cost;
        out.last_mut().expect("never empty").push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::datagram::VERSION;
    use proptest::prelude::*;

    fn announce(entries: Vec<Entry<'static>>) -> Announce<'static> {
        Announce {
            tx: 7,
            cookie: 0x0102_0304_0506_0708,
            session: 42,
            flags: FLAG_REGISTER,
            port: 9000,
            peer_id: "A-1",
            advertise: "",
            site: "",
            entries,
        }
    }

    fn entry(name: &'static str, held: Held) -> Entry<'static> {
        Entry {
            name,
            md5: [9; 16],
            held,
        }
    }

    #[test]
    fn requests_round_trip_and_are_padded() {
        let mut buf = Vec::new();
        let c = Request::Connect { tx: 99 };
        c.encode(&mut buf);
        assert_eq!(buf.len(), CONNECT_LEN);
        assert_eq!(Request::decode(&buf).unwrap(), c);

        let a = Request::Announce(announce(vec![
            entry("a.bin", Held::Complete),
            entry("b.iso", Held::Partial(12345)),
            entry("c", Held::Gone),
        ]));
        a.encode(&mut buf);
        assert_eq!(Request::decode(&buf).unwrap(), a);
        let empty = Request::Announce(announce(vec![]));
        empty.encode(&mut buf);
        assert_eq!(buf.len(), MIN_ANNOUNCE_LEN);
        assert_eq!(Request::decode(&buf).unwrap(), empty);
    }

    #[test]
    fn a_request_given_another_tx_decodes_with_it() {
        let mut buf = Vec::new();
        for r in [
            Request::Connect { tx: 1 },
            Request::Announce(announce(vec![entry("a.bin", Held::Complete)])),
        ] {
            r.encode(&mut buf);
            Request::set_tx(&mut buf, 0x0a0b_0c0d);
            let again = match Request::decode(&buf).unwrap() {
                Request::Connect { tx } => tx,
                Request::Announce(a) => a.tx,
            };
            assert_eq!(again, 0x0a0b_0c0d);
        }
    }

    #[test]
    fn bad_requests_are_refused() {
        let mut buf = Vec::new();
        Request::Announce(announce(vec![entry("ok", Held::Complete)])).encode(&mut buf);
        // Too short: an unpadded announce could draw a longer answer.
        assert!(Request::decode(&buf[..MIN_ANNOUNCE_LEN - 1]).is_err());
        // Non-zero padding, other magic or version, unknown type.
        let mut b = buf.clone();
        *b.last_mut().unwrap() = 1;
        assert!(Request::decode(&b).is_err());
        for (i, v) in [(0, b'x'), (2, 2), (3, 0x55)] {
            let mut b = buf.clone();
            b[i] = v;
            assert!(Request::decode(&b).is_err(), "byte {i}");
        }
        // A bad file name or peer id inside.
        let mut b = Vec::new();
        Request::Announce(announce(vec![entry("../x", Held::Complete)])).encode(&mut b);
        assert!(Request::decode(&b).is_err());
        let mut bad_id = announce(vec![]);
        bad_id.peer_id = "a b";
        Request::Announce(bad_id).encode(&mut b);
        assert!(Request::decode(&b).is_err());
        let mut bad_host = announce(vec![]);
        bad_host.advertise = "evil host";
        Request::Announce(bad_host).encode(&mut b);
        assert!(Request::decode(&b).is_err());
        // A CONNECT of the wrong length, an oversized datagram.
        let mut c = Vec::new();
        Request::Connect { tx: 1 }.encode(&mut c);
        c.push(0);
        assert!(Request::decode(&c).is_err());
        assert!(Request::decode(&vec![0; MAX_TRACKER_DATAGRAM + 1]).is_err());
    }

    #[test]
    fn replies_round_trip_and_never_outgrow_the_request() {
        let mut out = Vec::new();
        for r in [
            Reply::Connected { tx: 1, cookie: 77 },
            Reply::Refused {
                tx: 2,
                reason: Refusal::UnknownSession,
            },
        ] {
            r.encode(CONNECT_LEN, &mut out);
            assert!(out.len() <= CONNECT_LEN);
            assert_eq!(Reply::decode(&out).unwrap(), r);
        }
        let mut a = Announced {
            tx: 3,
            session: 5,
            interval_secs: 3,
            peers: 100_000,
            source: "::ffff:10.0.0.1".parse().unwrap(),
            unknown: vec![false, true, false, false, false, false, false, false, true],
        };
        let r = Reply::Announced(a.clone());
        r.encode(MIN_ANNOUNCE_LEN, &mut out);
        assert!(out.len() <= MIN_ANNOUNCE_LEN);
        assert_eq!(Reply::decode(&out).unwrap(), r);
        // No room: the bitmap is dropped, never the limit exceeded.
        a.unknown = vec![true; 400];
        Reply::Announced(a.clone()).encode(MIN_ANNOUNCE_LEN, &mut out);
        assert!(out.len() <= MIN_ANNOUNCE_LEN);
        match Reply::decode(&out).unwrap() {
            Reply::Announced(got) => assert!(got.unknown.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batches_fit_the_budget() {
        let names: Vec<String> = (0..300).map(|i| format!("{i:0>200}")).collect();
        let names: Vec<&'static str> = names
            .into_iter()
            .map(|n| &*Box::leak(n.into_boxed_str()))
            .collect();
        let entries: Vec<Entry<'static>> =
            names.iter().map(|n| entry(n, Held::Partial(1))).collect();
        let fixed = Announce::fixed_len("A-1", "", "");
        let groups = batches(fixed, entries);
        assert!(groups.len() > 1);
        let mut buf = Vec::new();
        let mut total = 0;
        for g in groups {
            total += g.len();
            let mut a = announce(g);
            a.flags = 0;
            Request::Announce(a).encode(&mut buf);
            assert!(buf.len() <= ANNOUNCE_BUDGET, "{}", buf.len());
        }
        assert_eq!(total, 300);
        assert_eq!(batches(fixed, vec![]).len(), 1, "a keep-alive");
    }

    /// The worked examples of docs/PROTOCOL.md §12, byte for byte.
    #[test]
    fn protocol_md_examples() {
        let hex = |b: &[u8]| crate::units::hex(b);
        let md5 = |first: u8| -> Md5Digest { std::array::from_fn(|i| first + i as u8) };
        let cookie = 0x1122_3344_5566_7788;
        let mut req = Vec::new();
        let mut out = Vec::new();

        // Example 1: CONNECT and CONNECTED.
        Request::Connect { tx: 0x0a0b_0c0d }.encode(&mut req);
        assert_eq!(hex(&req), "703201100a0b0c0d0000000000000000");
        Reply::Connected {
            tx: 0x0a0b_0c0d,
            cookie,
        }
        .encode(req.len(), &mut out);
        assert_eq!(hex(&out), "703201900a0b0c0d1122334455667788");

        // Example 2: REGISTER with a download in progress and a file the
        // tracker has no record of; the answer flags the second entry.
        let register = Request::Announce(Announce {
            tx: 2,
            cookie,
            session: 0,
            flags: FLAG_REGISTER,
            port: 9000,
            peer_id: "A",
            advertise: "",
            site: "",
            entries: vec![
                Entry {
                    name: "a.bin",
                    md5: md5(0x00),
                    held: Held::Partial(12),
                },
                Entry {
                    name: "b.bin",
                    md5: md5(0x10),
                    held: Held::Complete,
                },
            ],
        });
        register.encode(&mut req);
        let expected = [
            "70320111",                         // magic, version, ANNOUNCE
            "00000002",                         // tx
            "1122334455667788",                 // cookie
            "0000000000000000",                 // session: none yet
            "01",                               // flags: REGISTER
            "2328",                             // port 9000
            "0141",                             // peer id "A"
            "00",                               // advertise: none
            "0002",                             // 2 entries
            "05612e62696e",                     // "a.bin"
            "000102030405060708090a0b0c0d0e0f", // md5
            "01",                               // Partial
            "0000000c",                         // 12 blocks
            "05622e62696e",                     // "b.bin"
            "101112131415161718191a1b1c1d1e1f", // md5
            "02",                               // Complete
        ]
        .concat();
        assert_eq!(hex(&req), expected);
        assert_eq!(req.len(), 82);
        assert_eq!(Request::decode(&req).unwrap(), register);
        let answer = Reply::Announced(Announced {
            tx: 2,
            session: 7,
            interval_secs: 3,
            peers: 2,
            source: "192.168.1.10".parse().unwrap(),
            unknown: vec![false, true],
        });
        answer.encode(req.len(), &mut out);
        assert_eq!(
            hex(&out),
            "70320191000000020000000000000007000300000002".to_string() + "04c0a8010a" + "000240"
        );
        assert_eq!(out.len(), 30);
        assert_eq!(Reply::decode(&out).unwrap(), answer);

        // Example 3: the keep-alive, padded to 64 bytes, and its answer.
        let mut keep_alive = Announce {
            tx: 3,
            cookie,
            session: 7,
            flags: 0,
            port: 9000,
            peer_id: "A",
            advertise: "",
            site: "",
            entries: vec![],
        };
        Request::Announce(keep_alive.clone()).encode(&mut req);
        let head = "7032011100000003112233445566778800000000000000070023280141000000";
        assert_eq!(hex(&req), head.to_string() + &"00".repeat(32));
        Reply::Announced(Announced {
            tx: 3,
            session: 7,
            interval_secs: 3,
            peers: 2,
            source: "192.168.1.10".parse().unwrap(),
            unknown: vec![],
        })
        .encode(req.len(), &mut out);
        assert_eq!(
            hex(&out),
            "7032019100000003000000000000000700030000000204c0a8010a0000"
        );
        assert_eq!(out.len(), 29);

        // Example 4: the same keep-alive after the tracker restarted.
        Reply::Refused {
            tx: 3,
            reason: Refusal::BadCookie,
        }
        .encode(req.len(), &mut out);
        assert_eq!(hex(&out), "7032019f0000000301");

        // Example 5: goodbye, and its answer (interval 0, one peer left).
        keep_alive.tx = 4;
        keep_alive.flags = FLAG_BYE;
        Request::Announce(keep_alive).encode(&mut req);
        let head = "7032011100000004112233445566778800000000000000070223280141000000";
        assert_eq!(hex(&req), head.to_string() + &"00".repeat(32));
        Reply::Announced(Announced {
            tx: 4,
            session: 7,
            interval_secs: 0,
            peers: 1,
            source: "192.168.1.10".parse().unwrap(),
            unknown: vec![],
        })
        .encode(req.len(), &mut out);
        assert_eq!(
            hex(&out),
            "7032019100000004000000000000000700000000000104c0a8010a0000"
        );
    }

    fn held() -> impl Strategy<Value = Held> {
        prop_oneof![
            Just(Held::Gone),
            Just(Held::Complete),
            any::<u32>().prop_map(Held::Partial)
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2100)) {
            let _ = Request::decode(&bytes);
            let _ = Reply::decode(&bytes);
            // With a valid header too, so the bodies are reached.
            for t in [ty::CONNECT, ty::ANNOUNCE, ty::CONNECTED, ty::ANNOUNCED, ty::REFUSED] {
                let mut b = vec![b'p', b'2', VERSION, t];
                b.extend_from_slice(&bytes);
                let _ = Request::decode(&b);
                let _ = Reply::decode(&b);
            }
        }

        #[test]
        fn announces_round_trip(
            tx in any::<u32>(), cookie in any::<u64>(), session in any::<u64>(),
            flags in 0u8..4, port in any::<u16>(),
            held in proptest::collection::vec(held(), 0..40),
        ) {
            let names: Vec<String> = (0..held.len()).map(|i| format!("file-{i}.bin")).collect();
            let entries = held.iter().zip(&names).map(|(h, n)| Entry {
                name: n, md5: [7; 16], held: *h,
            }).collect();
            let a = Request::Announce(Announce {
                tx, cookie, session, flags, port, peer_id: "peer_7",
                advertise: "10.0.0.9", site: "", entries,
            });
            let mut buf = Vec::new();
            a.encode(&mut buf);
            prop_assert_eq!(Request::decode(&buf).unwrap(), a);
        }

        #[test]
        fn answers_round_trip_within_the_request(
            tx in any::<u32>(), session in any::<u64>(), interval in any::<u16>(),
            peers in any::<u32>(), v6 in any::<bool>(),
            unknown in proptest::collection::vec(any::<bool>(), 0..60),
        ) {
            let source = if v6 { "2001:db8::1".parse().unwrap() } else { "10.1.2.3".parse().unwrap() };
            // The request that named as many entries was at least this long.
            let request_len = MIN_ANNOUNCE_LEN.max(Announce::fixed_len("A", "", "") + 19 * unknown.len());
            let r = Reply::Announced(Announced {
                tx, session, interval_secs: interval, peers, source, unknown: unknown.clone(),
            });
            let mut out = Vec::new();
            r.encode(request_len, &mut out);
            prop_assert!(out.len() <= request_len);
            let back = Reply::decode(&out).unwrap();
            let expect_unknown = if unknown.iter().any(|&u| u) { unknown } else { vec![] };
            prop_assert_eq!(back, Reply::Announced(Announced {
                tx, session, interval_secs: interval, peers, source, unknown: expect_unknown,
            }));
        }
    }

    #[test]
    fn id_in_use_carries_the_address_within_the_request_size() {
        let reply = Reply::InUse {
            tx: 7,
            at: "[2001:db8::1]:65535".into(),
        };
        let mut out = Vec::new();
        reply.encode(MIN_ANNOUNCE_LEN, &mut out);
        assert_eq!(out.len(), 9 + 1 + 19);
        assert_eq!(&out[8..10], &[4, 19]);
        assert_eq!(Reply::decode(&out).unwrap(), reply);
        // Too long for the request: sent without the address.
        let long = Reply::InUse {
            tx: 7,
            at: "h".repeat(200),
        };
        long.encode(MIN_ANNOUNCE_LEN, &mut out);
        assert!(out.len() <= MIN_ANNOUNCE_LEN);
        assert_eq!(
            Reply::decode(&out).unwrap(),
            Reply::InUse {
                tx: 7,
                at: String::new()
            }
        );
        // An address with a control character is not shown to anyone.
        let mut bad = Vec::new();
        Reply::InUse {
            tx: 7,
            at: "a\x1b[2J".into(),
        }
        .encode(MIN_ANNOUNCE_LEN, &mut bad);
        assert!(Reply::decode(&bad).is_err());
    }
}

#[cfg(test)]
mod site_example {
    use super::*;

    /// PROTOCOL.md §12.5 Example 6, byte for byte, and back.
    #[test]
    fn a_register_with_a_site_is_as_documented() {
        let req = Request::Announce(Announce {
            tx: 5,
            cookie: 0x1122_3344_5566_7788,
            session: 0,
            flags: FLAG_REGISTER | FLAG_SITE,
            port: 9000,
            peer_id: "A",
            advertise: "",
            site: "lab",
            entries: vec![],
        });
        let mut out = Vec::new();
        req.encode(&mut out);
        let mut want = crate::units::hex(&[0x70, 0x32, 1, 0x11, 0, 0, 0, 5]);
        want += "11223344556677880000000000000000";
        want += "05232801410003";
        want += "6c61620000";
        want += &"00".repeat(28);
        assert_eq!(crate::units::hex(&out), want);
        assert_eq!(Request::decode(&out).unwrap(), req);
        // A bad site makes the datagram invalid.
        let mut bad = out.clone();
        bad[31] = b'/';
        assert!(Request::decode(&bad).is_err());
    }
}
