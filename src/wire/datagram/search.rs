//! The UDP datagrams of tracker-less search (seed 002): HELLO, QUERY and
//! CHUNK_INFO. Sans-I/O like the rest of `wire`: a datagram is one byte
//! slice in, one `Vec<u8>` out. Every datagram starts with the 4-byte
//! header of `datagram` (magic `p2`, version, type); every length is
//! checked against the bytes left and a named limit before anything is
//! allocated, and the whole datagram against `MAX_DATAGRAM`. HELLO and
//! QUERY end in zero padding, which askers add so that an answer may be
//! as large (`budget`: nothing sent back is larger than what asked).
//! Layouts are in docs/PROTOCOL.md §11.

use super::{get_ip, open, put_header, put_ip, HEADER_LEN};
use crate::bitfield::Bitfield;
use crate::digest::Md5Digest;
use crate::error::{Error, Result};
use crate::names::{check_peer_id, MAX_HOST_BYTES, MAX_PEER_ID_BYTES};
use crate::record::{piece_count_for, FileRecord, MAX_FILE_SIZE};
use crate::wire::codec::{put_str, put_u16, put_u64, put_u8, Decoder};
use crate::wire::message::{get_have, get_name, get_record, put_have, put_record};
use std::net::SocketAddr;

/// The largest datagram sent or accepted: below the 65,507-byte UDP limit
/// with room to spare. Longer ones are dropped unread.
pub const MAX_DATAGRAM: usize = 60 * 1024;
/// What an asker pads every QUERY to, and the most a QUERY may be. A
/// holder's answer must fit in the QUERY that drew it (`budget`), so a
/// spoofed QUERY never draws more bytes than it cost: the asker pays for
/// the answer it wants, as QUIC pads its first packet. 1,152 bytes leave
/// room for any piece set of up to about 8,700 pieces (as a bitmap), or a
/// complete file's record of up to 32 pieces. Sealed under a swarm secret
/// (51 bytes more, §13.4) it is 1,203 bytes: one packet even at the IPv6
/// minimum MTU (1,280 less 48 bytes of IPv6 and UDP headers leaves
/// 1,232), with room to spare.
pub const QUERY_LEN: usize = 1152;
/// The largest HELLO (a 64-byte peer id), and what a HELLO asking for a
/// reply is padded to, so that our reply is never larger than it.
pub const HELLO_LEN: usize = HEADER_LEN + 1 + 8 + 8 + 2 + MAX_PEER_ID_BYTES;
/// The most hops a query travels, whatever its sender asked for.
pub const MAX_TTL: u8 = 16;

mod budget;
pub use budget::hello_reply;

pub mod dty {
    pub const HELLO: u8 = 0x01;
    pub const QUERY: u8 = 0x02;
    pub const CHUNK_INFO: u8 = 0x03;
}

/// HELLO flag bit 0: the receiver answers with a HELLO of its own.
const HELLO_WANT_REPLY: u8 = 0x01;
/// A query's origin family byte when it has none (else `put_ip`'s).
const ORIGIN_NONE: u8 = 0;

/// Who is looking for a file, how far the question may still travel, and
/// where the answers go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Random, chosen by the origin; a peer handles each id once.
    pub id: u64,
    /// Hops the query may still travel, 1 or more; each hop takes one.
    pub ttl: u8,
    /// Hops travelled so far (for logs).
    pub hops: u8,
    /// Where holders send CHUNK_INFO. `None` on the wire means "the address
    /// this datagram came from": the first neighbour fills it in.
    pub origin: Option<SocketAddr>,
    pub name: String,
}

/// A holder's answer to a query, sent straight to the query's origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    pub query_id: u64,
    pub peer_id: String,
    /// The host to dial for blocks (TCP); empty means the address this
    /// datagram came from.
    pub host: String,
    /// The TCP port of the holder's block server.
    pub port: u16,
    pub name: String,
    pub size: u64,
    pub md5: Md5Digest,
    /// The pieces the holder has; its length is the file's piece count.
    pub have: Bitfield,
    /// The file record, when it fits in the answer (`encode_within`).
    pub record: Option<FileRecord>,
}

// One datagram at a time is decoded, handled and dropped: the size of the
// CHUNK_INFO variant (its record inline) costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datagram {
    /// A neighbour says it is there (and may ask for a HELLO back). A
    /// peer learns a neighbour only from a HELLO that echoes a challenge
    /// it sent to that address moments ago (`search::challenge`), so a
    /// captured HELLO replayed from elsewhere teaches nothing.
    Hello {
        peer_id: String,
        want_reply: bool,
        /// Random, for the receiver to echo; 0 for none.
        challenge: u64,
        /// The challenge this HELLO answers; 0 for none.
        echo: u64,
    },
    Query(Query),
    ChunkInfo(ChunkInfo),
}

impl Datagram {
    pub fn kind(&self) -> &'static str {
        match self {
            Datagram::Hello { .. } => "HELLO",
            Datagram::Query(_) => "QUERY",
            Datagram::ChunkInfo(_) => "CHUNK_INFO",
        }
    }

    /// The datagram's bytes; an error if they would exceed `MAX_DATAGRAM`.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64);
        match self {
            Datagram::Hello {
                peer_id,
                want_reply,
                challenge,
                echo,
            } => {
                put_header(&mut out, dty::HELLO);
                put_u8(&mut out, if *want_reply { HELLO_WANT_REPLY } else { 0 });
                put_u64(&mut out, *challenge);
                put_u64(&mut out, *echo);
                put_str(&mut out, peer_id);
            }
            Datagram::Query(q) => {
                put_header(&mut out, dty::QUERY);
                put_u64(&mut out, q.id);
                put_u8(&mut out, q.ttl);
                put_u8(&mut out, q.hops);
                put_origin(&mut out, q.origin);
                put_str(&mut out, &q.name);
            }
            Datagram::ChunkInfo(c) => {
                put_chunk_info_head(&mut out, c);
                put_have(&mut out, &c.have);
                match &c.record {
                    None => put_u8(&mut out, 0),
                    Some(r) => {
                        put_u8(&mut out, 1);
                        put_record(&mut out, r);
                    }
                }
            }
        }
        checked_len(out, self.kind())
    }

    /// A HELLO or QUERY followed by zero bytes up to `len` in all (a HELLO
    /// to at most `HELLO_LEN`, a QUERY to at most `QUERY_LEN`). `None` when
    /// its fields alone take more than that, and for a CHUNK_INFO, which
    /// has no padding.
    pub fn encode_padded(&self, len: usize) -> Option<Vec<u8>> {
        let most = match self {
            Datagram::Hello { .. } => HELLO_LEN,
            Datagram::Query(_) => QUERY_LEN,
            Datagram::ChunkInfo(_) => return None,
        };
        let mut out = self.encode().ok()?;
        if out.len() > len.min(most) {
            return None;
        }
        out.resize(len.min(most), 0);
        Some(out)
    }

    /// Decodes and validates one datagram: header, lengths, names, the
    /// piece set against the size, the record against the answer it came in.
    pub fn decode(bytes: &[u8]) -> Result<Datagram> {
        let (ty, mut d) = open(bytes, MAX_DATAGRAM, "datagram")?;
        let padded = |most: usize, kind: &str| {
            if bytes.len() > most {
                return Err(Error::protocol(format!(
                    "a {kind} of {} bytes exceeds {most}",
                    bytes.len()
                )));
            }
            Ok(())
        };
        let datagram = match ty {
            dty::HELLO => {
                padded(HELLO_LEN, "HELLO")?;
                let flags = d.u8()?;
                if flags & !HELLO_WANT_REPLY != 0 {
                    return Err(Error::protocol(format!("HELLO flags 0x{flags:02x}")));
                }
                Datagram::Hello {
                    want_reply: flags & HELLO_WANT_REPLY != 0,
                    challenge: d.u64()?,
                    echo: d.u64()?,
                    peer_id: get_peer_id(&mut d)?,
                }
            }
            dty::QUERY => {
                padded(QUERY_LEN, "QUERY")?;
                let id = d.u64()?;
                let ttl = d.u8()?;
                if ttl == 0 {
                    return Err(Error::protocol("QUERY with TTL 0"));
                }
                Datagram::Query(Query {
                    id,
                    ttl,
                    hops: d.u8()?,
                    origin: get_origin(&mut d)?,
                    name: get_name(&mut d)?,
                })
            }
            dty::CHUNK_INFO => Datagram::ChunkInfo(get_chunk_info(&mut d)?),
            other => {
                return Err(Error::protocol(format!(
                    "unknown datagram type 0x{other:02x}"
                )))
            }
        };
        // HELLO and QUERY end in padding (the asker pays for the size of
        // the answer it may get); a CHUNK_INFO ends at its last field.
        match datagram {
            Datagram::ChunkInfo(_) => d.finish()?,
            _ => d.zero_padding()?,
        }
        Ok(datagram)
    }
}

/// The header and every CHUNK_INFO field before the piece set.
fn put_chunk_info_head(out: &mut Vec<u8>, c: &ChunkInfo) {
    put_header(out, dty::CHUNK_INFO);
    put_u64(out, c.query_id);
    put_str(out, &c.peer_id);
    put_str(out, &c.host);
    put_u16(out, c.port);
    put_str(out, &c.name);
    put_u64(out, c.size);
    out.extend_from_slice(&c.md5);
}

fn checked_len(out: Vec<u8>, kind: &str) -> Result<Vec<u8>> {
    if out.len() > MAX_DATAGRAM {
        return Err(Error::protocol(format!(
            "a {kind} of {} bytes exceeds the datagram limit of {MAX_DATAGRAM}",
            out.len()
        )));
    }
    Ok(out)
}

fn get_peer_id(d: &mut Decoder<'_>) -> Result<String> {
    let id = d.str(MAX_PEER_ID_BYTES)?;
    check_peer_id(id)?;
    Ok(id.to_string())
}

fn put_origin(out: &mut Vec<u8>, origin: Option<SocketAddr>) {
    match origin {
        None => put_u8(out, ORIGIN_NONE),
        Some(a) => {
            put_ip(out, a.ip());
            put_u16(out, a.port());
        }
    }
}

fn get_origin(d: &mut Decoder<'_>) -> Result<Option<SocketAddr>> {
    if d.peek_u8() == Some(ORIGIN_NONE) {
        d.u8()?;
        return Ok(None);
    }
    let ip = get_ip(d)?;
    let port = d.u16()?;
    if port == 0 {
        return Err(Error::protocol("origin port 0"));
    }
    Ok(Some(SocketAddr::new(ip, port)))
}

fn get_chunk_info(d: &mut Decoder<'_>) -> Result<ChunkInfo> {
    let query_id = d.u64()?;
    let peer_id = get_peer_id(d)?;
    let host = d.str(MAX_HOST_BYTES)?.to_string();
    if !crate::names::valid_host(&host) {
        return Err(Error::protocol(
            "CHUNK_INFO host is not a host name or address",
        ));
    }
    let port = d.u16()?;
    if port == 0 {
        return Err(Error::protocol("CHUNK_INFO port 0"));
    }
    let name = get_name(d)?;
    let size = d.u64()?;
    if size > MAX_FILE_SIZE {
        return Err(Error::protocol(format!("CHUNK_INFO size {size}")));
    }
    let md5 = d.array()?;
    let have = get_have(d)?;
    if have.len() != piece_count_for(size) {
        return Err(Error::protocol(format!(
            "CHUNK_INFO piece set of {} for a file of {} pieces",
            have.len(),
            piece_count_for(size)
        )));
    }
    let record = match d.u8()? {
        0 => None,
        1 => {
            let r = get_record(d)?;
            if r.name != name || r.size != size || r.md5 != md5 {
                return Err(Error::protocol(
                    "CHUNK_INFO record does not match its name, size and MD5",
                ));
            }
            Some(r)
        }
        other => return Err(Error::protocol(format!("CHUNK_INFO record flag {other}"))),
    };
    Ok(ChunkInfo {
        query_id,
        peer_id,
        host,
        port,
        name,
        size,
        md5,
        have,
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::datagram::VERSION;
    use std::net::{IpAddr, Ipv4Addr};

    fn info(record: Option<FileRecord>) -> ChunkInfo {
        let r = FileRecord::from_bytes("a.bin", &[7u8; 10_000]);
        let mut have = Bitfield::new(3);
        have.set(0);
        have.set(2);
        ChunkInfo {
            query_id: 0x0102_0304_0506_0708,
            peer_id: "D".into(),
            host: "".into(),
            port: 9003,
            name: r.name.clone(),
            size: r.size,
            md5: r.md5,
            have,
            record,
        }
    }

    fn samples() -> Vec<Datagram> {
        let full = FileRecord::from_bytes("a.bin", &[7u8; 10_000]);
        vec![
            Datagram::Hello {
                peer_id: "B".into(),
                want_reply: true,
                challenge: 0,
                echo: 0,
            },
            Datagram::Hello {
                peer_id: "peer_2-x".into(),
                want_reply: false,
                challenge: 0,
                echo: 0,
            },
            Datagram::Query(Query {
                id: 42,
                ttl: 3,
                hops: 0,
                origin: None,
                name: "a.bin".into(),
            }),
            Datagram::Query(Query {
                id: u64::MAX,
                ttl: 16,
                hops: 5,
                origin: Some("10.0.0.7:9000".parse().unwrap()),
                name: "my file.iso".into(),
            }),
            Datagram::Query(Query {
                id: 1,
                ttl: 1,
                hops: 2,
                origin: Some("[2001:db8::1]:9000".parse().unwrap()),
                name: "x".into(),
            }),
            Datagram::ChunkInfo(info(None)),
            Datagram::ChunkInfo(info(Some(full))),
            Datagram::ChunkInfo(ChunkInfo {
                host: "holder.example.org".into(),
                ..info(None)
            }),
        ]
    }

    #[test]
    fn every_datagram_round_trips() {
        for d in samples() {
            let bytes = d.encode().unwrap();
            assert!(bytes.len() <= MAX_DATAGRAM);
            assert_eq!(Datagram::decode(&bytes).unwrap(), d, "{}", d.kind());
        }
    }

    /// The examples in docs/PROTOCOL.md §11, byte for byte.
    #[test]
    fn the_documented_examples() {
        let hex = |d: Datagram, len: usize| crate::units::hex(&d.encode_padded(len).unwrap());
        let zeros = |n: usize| "00".repeat(n);
        let hello = |peer_id: &str, want_reply: bool| Datagram::Hello {
            peer_id: peer_id.into(),
            want_reply,
            challenge: 0x0102_0304_0506_0708,
            echo: 0,
        };
        assert_eq!(
            hex(hello("B", true), HELLO_LEN),
            "703201010101020304050607080000000000000000000142".to_string() + &zeros(63)
        );
        let reply = hello_reply("D", 0x1112_1314_1516_1718, 0x0102_0304_0506_0708, HELLO_LEN);
        assert_eq!(
            crate::units::hex(&reply.unwrap()),
            "703201010011121314151617180102030405060708000144"
        );
        let mut q = Query {
            id: 0x1122_3344_5566_7788,
            ttl: 3,
            hops: 0,
            origin: None,
            name: "d.bin".into(),
        };
        assert_eq!(
            hex(Datagram::Query(q.clone()), QUERY_LEN),
            "7032010211223344556677880300000005642e62696e".to_string() + &zeros(1130)
        );
        (q.ttl, q.hops, q.origin) = (2, 1, Some("192.168.1.10:9000".parse().unwrap()));
        assert_eq!(
            hex(Datagram::Query(q), QUERY_LEN),
            "7032010211223344556677880201".to_string()
                + "04c0a8010a2328"
                + "0005642e62696e"
                + &zeros(1124)
        );
        let r = FileRecord::from_bytes("e", b"hello");
        let answer = ChunkInfo {
            query_id: 0x1122_3344_5566_7788,
            peer_id: "D".into(),
            host: String::new(),
            port: 9003,
            name: "e".into(),
            size: 5,
            md5: r.md5,
            have: Bitfield::full(1),
            record: None,
        };
        let md5 = "5d41402abc4b2a76b9719d911017c592";
        let expected = [
            "70320103",         // magic, version, CHUNK_INFO
            "1122334455667788", // query id
            "000144",           // peer id "D"
            "0000",             // host: empty, use the source address
            "232b",             // port 9003
            "000165",           // name "e"
            "0000000000000005", // size 5
            md5,                // md5
            "0000000101",       // piece set: 1 piece, ALL
            "01",               // the record follows
            "03",               // record: version 3
            "00",               // kind: a file
            "000165",           // name "e"
            "0000000000000005", // size 5
            "00001000",         // block size 4096
            "00000001",         // 1 block per piece
            md5,                // md5
            "00000001",         // version 1 of the name
            "0000",             // owner: none
            "00000001",         // 1 piece
            // the SHA-256 of piece 0 ("hello")
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "06270214", // its weak sum: a = 0x214, b = 0x627
        ]
        .concat();
        let got = crate::units::hex(&answer.encode_within(&r, QUERY_LEN).unwrap());
        assert_eq!(got, expected);
        assert_eq!(got.len() / 2, 135);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for d in samples() {
            let bytes = d.encode().unwrap();
            for cut in 0..bytes.len() {
                assert!(
                    Datagram::decode(&bytes[..cut]).is_err(),
                    "{} cut at {cut}",
                    d.kind()
                );
            }
        }
    }

    #[test]
    fn bad_datagrams_are_errors() {
        let good = Datagram::Query(Query {
            id: 1,
            ttl: 3,
            hops: 0,
            origin: None,
            name: "a".into(),
        })
        .encode()
        .unwrap();
        let mutate = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            Datagram::decode(&b)
        };
        assert!(mutate(0, b'x').is_err(), "magic");
        assert!(mutate(2, 2).is_err(), "version");
        assert!(mutate(3, 0x7f).is_err(), "type");
        assert!(mutate(12, 0).is_err(), "TTL 0");
        assert!(mutate(14, 5).is_err(), "address family");
        let mut long = good.clone();
        long.push(1);
        assert!(Datagram::decode(&long).is_err(), "non-zero padding");
        assert!(Datagram::decode(&vec![0; MAX_DATAGRAM + 1]).is_err());
        let mut padded = good.clone();
        padded.resize(QUERY_LEN + 1, 0);
        assert!(Datagram::decode(&padded).is_err(), "a QUERY over QUERY_LEN");
        let mut hello = Datagram::Hello {
            peer_id: "B".into(),
            want_reply: true,
            challenge: 0,
            echo: 0,
        }
        .encode()
        .unwrap();
        hello.resize(HELLO_LEN + 1, 0);
        assert!(Datagram::decode(&hello).is_err(), "a HELLO over HELLO_LEN");
        let mut answer = Datagram::ChunkInfo(info(None)).encode().unwrap();
        answer.push(0);
        assert!(Datagram::decode(&answer).is_err(), "a padded CHUNK_INFO");
        // A path in the name, a bad peer id, a bad host.
        let q = |name: &str| {
            Datagram::Query(Query {
                id: 1,
                ttl: 3,
                hops: 0,
                origin: None,
                name: name.into(),
            })
            .encode()
            .unwrap()
        };
        assert!(Datagram::decode(&q("../etc/passwd")).is_err());
        let hello = Datagram::Hello {
            peer_id: "bad id".into(),
            want_reply: false,
            challenge: 0,
            echo: 0,
        };
        assert!(Datagram::decode(&hello.encode().unwrap()).is_err());
        let bad_host = Datagram::ChunkInfo(ChunkInfo {
            host: "evil host/..".into(),
            ..info(None)
        });
        assert!(Datagram::decode(&bad_host.encode().unwrap()).is_err());
    }

    #[test]
    fn an_answer_must_agree_with_itself() {
        let mut wrong_len = info(None);
        wrong_len.have = Bitfield::full(4);
        let b = Datagram::ChunkInfo(wrong_len).encode().unwrap();
        assert!(
            Datagram::decode(&b).is_err(),
            "piece set of the wrong length"
        );
        let mut other = FileRecord::from_bytes("a.bin", &[8u8; 10_000]);
        let b = Datagram::ChunkInfo(info(Some(other.clone())))
            .encode()
            .unwrap();
        assert!(Datagram::decode(&b).is_err(), "record with another MD5");
        other.name = "b.bin".into();
        let b = Datagram::ChunkInfo(info(Some(other))).encode().unwrap();
        assert!(Datagram::decode(&b).is_err(), "record with another name");
    }

    #[test]
    fn padding_is_zeros_up_to_the_end_and_changes_nothing_else() {
        for d in samples() {
            let plain = d.encode().unwrap();
            let Some(padded) = d.encode_padded(QUERY_LEN) else {
                assert_eq!(d.kind(), "CHUNK_INFO", "only answers are never padded");
                continue;
            };
            let most = if d.kind() == "HELLO" {
                HELLO_LEN
            } else {
                QUERY_LEN
            };
            assert_eq!(padded.len(), most);
            assert_eq!(padded[..plain.len()], plain[..]);
            // Cut anywhere in the padding, it is the same datagram.
            for len in [plain.len(), plain.len() + 1, most] {
                assert_eq!(Datagram::decode(&padded[..len]).unwrap(), d);
            }
            assert_eq!(d.encode_padded(plain.len() - 1), None, "too short");
        }
    }

    #[test]
    fn a_large_record_is_left_out_and_fetched_over_tcp() {
        let small = FileRecord::from_bytes("a.bin", &[7u8; 10_000]);
        let with = info(None).encode_within(&small, QUERY_LEN).unwrap();
        assert_eq!(
            with,
            Datagram::ChunkInfo(info(Some(small.clone())))
                .encode()
                .unwrap()
        );
        // 1,000 pieces: 32 KB of hashes, over the budget.
        let data = vec![1u8; 1000 * 4096];
        let big = FileRecord::from_bytes("big.bin", &data);
        let answer = ChunkInfo {
            name: big.name.clone(),
            size: big.size,
            md5: big.md5,
            have: Bitfield::full(big.piece_count()),
            ..info(None)
        };
        let bytes = answer.encode_within(&big, QUERY_LEN).unwrap();
        assert!(bytes.len() <= QUERY_LEN);
        assert_eq!(
            Datagram::decode(&bytes).unwrap(),
            Datagram::ChunkInfo(answer)
        );
    }

    #[test]
    fn the_largest_piece_set_still_fits() {
        // 65,536 pieces, every other one: BITS, 8 KiB.
        let size = crate::record::MAX_FILE_SIZE;
        let mut have = Bitfield::new(piece_count_for(size));
        for i in (0..have.len()).step_by(2) {
            have.set(i);
        }
        let c = ChunkInfo {
            name: "n".repeat(255),
            size,
            host: "h".repeat(255),
            have,
            ..info(None)
        };
        let bytes = Datagram::ChunkInfo(c.clone()).encode().unwrap();
        assert_eq!(Datagram::decode(&bytes).unwrap(), Datagram::ChunkInfo(c));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
                let _ = Datagram::decode(&bytes);
            }

            #[test]
            fn arbitrary_bodies_after_a_valid_header_never_panic(ty in 0u8..5, body in proptest::collection::vec(any::<u8>(), 0..700)) {
                let mut bytes = vec![b'p', b'2', VERSION, ty];
                bytes.extend_from_slice(&body);
                let _ = Datagram::decode(&bytes);
            }

            #[test]
            fn queries_round_trip(id in any::<u64>(), ttl in 1u8.., hops in any::<u8>(),
                                  v4 in any::<[u8; 4]>(), port in 1u16.., which in 0u8..3,
                                  name in "[a-zA-Z0-9 ._-]{1,40}") {
                prop_assume!(crate::names::check_file_name(&name).is_ok());
                let origin = match which {
                    0 => None,
                    1 => Some(SocketAddr::new(IpAddr::from(v4), port)),
                    _ => Some(SocketAddr::new(IpAddr::from(Ipv4Addr::from(v4).to_ipv6_mapped()), port)),
                };
                let d = Datagram::Query(Query { id, ttl, hops, origin, name });
                prop_assert_eq!(Datagram::decode(&d.encode().unwrap()).unwrap(), d.clone());
                let padded = d.encode_padded(QUERY_LEN).unwrap();
                prop_assert_eq!(padded.len(), QUERY_LEN);
                prop_assert_eq!(Datagram::decode(&padded).unwrap(), d);
            }

            #[test]
            fn answers_round_trip(size in 0u64..3_000_000, seeds in proptest::collection::vec(any::<u32>(), 0..100),
                                  id in any::<u64>(), port in 1u16..) {
                let pieces = piece_count_for(size);
                let mut have = Bitfield::new(pieces);
                if pieces > 0 {
                    for s in seeds { have.set(s % pieces); }
                }
                let c = ChunkInfo { query_id: id, port, size, have, ..info(None) };
                let d = Datagram::ChunkInfo(c);
                prop_assert_eq!(Datagram::decode(&d.encode().unwrap()).unwrap(), d);
            }
        }
    }
}
