//! Answers within a budget: nothing a peer sends back to the source of a
//! QUERY or a HELLO is larger than the datagram that asked, so a spoofed
//! source never draws more bytes than it spent (anti-amplification by
//! padding, as in QUIC). Askers pad (`QUERY_LEN`, `HELLO_LEN`); answerers
//! cut their answer to the length they received, or stay silent. Pure:
//! lengths in, bytes or nothing out.

use super::{put_chunk_info_head, ChunkInfo, Datagram};
use crate::bitfield::Bitfield;
use crate::digest::PieceHash;
use crate::record::FileRecord;
use crate::wire::codec::{put_u8, varint_len};
use crate::wire::message::{put_have, put_record, record_len};

impl ChunkInfo {
    /// The answer's bytes, at most `budget` of them (the length of the
    /// QUERY it answers). `record` goes inline only if it fits (else the
    /// asker fetches it over TCP with GET_RECORD). A piece set that does
    /// not fit is cut to its first runs that do: a truthful subset, and
    /// the asker learns the rest once connected. `None` when not even one
    /// piece fits. `self.record` is not used.
    pub fn encode_within(&self, record: &FileRecord, budget: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(budget.min(super::QUERY_LEN));
        put_chunk_info_head(&mut out, self);
        let head = out.len();
        put_have(&mut out, &self.have);
        // The record flag takes one byte after the piece set.
        let room = budget.saturating_sub(out.len() + 1);
        if record_fits(record, room) {
            put_u8(&mut out, 1);
            put_record(&mut out, record);
            return Some(out);
        }
        if out.len() < budget {
            put_u8(&mut out, 0);
            return Some(out);
        }
        out.truncate(head);
        let some = first_runs_within(&self.have, budget.checked_sub(head + 1)?)?;
        put_have(&mut out, &some);
        put_u8(&mut out, 0);
        (out.len() <= budget).then_some(out)
    }
}

/// Whether `record` encodes in at most `room` bytes; the hashes alone
/// decide most cases without measuring a folder's manifest.
fn record_fits(record: &FileRecord, room: usize) -> bool {
    let hashes = record.piece_hashes.len() * std::mem::size_of::<PieceHash>();
    hashes <= room && record_len(record) <= room
}

/// The pieces of `have`'s first runs whose piece set encodes in at most
/// `room` bytes; `None` when not even the first run fits.
fn first_runs_within(have: &Bitfield, room: usize) -> Option<Bitfield> {
    let runs = have.runs();
    // The piece count (4) and the tag (1), then the runs as GAPS varints.
    // `put_have` writes GAPS, or a bitmap of no more bytes than those
    // varints, which carries a 4-byte length: room for that too.
    let (mut used, mut end, mut n) = (4 + 1 + 4, 0, 0);
    for &(start, len) in &runs {
        used += varint_len(start - end) + varint_len(len - 1);
        if used + varint_len(n as u32 + 1) > room {
            break;
        }
        (end, n) = (start + len, n + 1);
    }
    let mut some = Bitfield::new(have.len());
    for &(start, len) in runs.get(..n).filter(|r| !r.is_empty())? {
        some.set_range(start, len);
    }
    Some(some)
}

/// Our HELLO in reply to one of `asked` bytes that asked for it (or that
/// proved itself and challenged us), if ours is no larger: a HELLO from a
/// spoofed source then draws no more than it cost. An honest asker pads
/// to `HELLO_LEN`, the largest HELLO, so it always gets its reply.
/// `challenge`: ours for it to echo (0 for none); `echo`: its own.
pub fn hello_reply(peer_id: &str, challenge: u64, echo: u64, asked: usize) -> Option<Vec<u8>> {
    let hello = Datagram::Hello {
        peer_id: peer_id.to_string(),
        want_reply: false,
        challenge,
        echo,
    };
    hello.encode().ok().filter(|b| b.len() <= asked)
}

#[cfg(test)]
mod tests {
    use super::super::{Query, HELLO_LEN, QUERY_LEN};
    use super::*;
    use crate::record::piece_count_for;

    /// A file of `pieces` 4 KiB pieces.
    fn record(name: &str, pieces: u32) -> FileRecord {
        FileRecord {
            name: name.into(),
            size: pieces as u64 * 4096,
            block_size: 4096,
            blocks_per_piece: 1,
            md5: [5; 16],
            piece_hashes: vec![[6; 32]; pieces as usize],
            weak_sums: vec![6; pieces as usize],
            folder: None,
            version: 1,
            owner: String::new(),
        }
    }

    fn answer(r: &FileRecord, have: Bitfield) -> ChunkInfo {
        ChunkInfo {
            query_id: 7,
            peer_id: "D".into(),
            host: String::new(),
            port: 9003,
            name: r.name.clone(),
            size: r.size,
            md5: r.md5,
            have,
            record: None,
        }
    }

    fn decoded(bytes: &[u8]) -> ChunkInfo {
        match Datagram::decode(bytes).unwrap() {
            Datagram::ChunkInfo(c) => c,
            other => panic!("{other:?}"),
        }
    }

    /// The length of the QUERY for `name` as askers send it, and unpadded.
    fn query_lens(name: &str) -> (usize, usize) {
        let q = Datagram::Query(Query {
            id: 7,
            ttl: 3,
            hops: 0,
            origin: None,
            name: name.into(),
        });
        let padded = q.encode_padded(QUERY_LEN).unwrap().len();
        (padded, q.encode().unwrap().len())
    }

    #[test]
    fn a_complete_holder_sends_its_record_only_when_it_fits() {
        let (budget, _) = query_lens("f.bin");
        assert_eq!(budget, QUERY_LEN);
        let small = record("f.bin", 4);
        let bytes = answer(&small, Bitfield::full(4))
            .encode_within(&small, budget)
            .unwrap();
        assert!(bytes.len() <= budget);
        assert_eq!(decoded(&bytes).record, Some(small));
        // The most pieces whose record still rides along, and one more.
        let inline = |pieces: u32| {
            let r = record("f.bin", pieces);
            let bytes = answer(&r, Bitfield::full(pieces))
                .encode_within(&r, budget)
                .unwrap();
            assert!(bytes.len() <= budget, "{pieces} pieces: {}", bytes.len());
            decoded(&bytes).record.is_some()
        };
        let most = (1..100).take_while(|p| inline(*p)).last().unwrap();
        assert!(!inline(most + 1));
        assert_eq!(most, 29, "files up to 116 KiB carry their record");
        // Without the record, a complete holder's answer is small: ALL.
        let big = record("f.bin", 65_536);
        let bytes = answer(&big, Bitfield::full(65_536))
            .encode_within(&big, budget)
            .unwrap();
        let got = decoded(&bytes);
        assert!(got.record.is_none() && got.have.is_full());
        assert!(bytes.len() < 100, "{} bytes", bytes.len());
    }

    #[test]
    fn a_partial_holder_sends_a_truthful_subset_that_fits() {
        let (budget, _) = query_lens("p.bin");
        let r = record("p.bin", 65_536);
        // Every third piece: 21,846 scattered pieces, a bitmap of 8 KiB.
        let mut have = Bitfield::new(65_536);
        for i in (0..65_536).step_by(3) {
            have.set(i);
        }
        let bytes = answer(&r, have.clone()).encode_within(&r, budget).unwrap();
        assert!(bytes.len() <= budget, "{} bytes", bytes.len());
        let got = decoded(&bytes);
        assert!(got.record.is_none());
        assert!(got.have.count() > 300, "{} pieces", got.have.count());
        assert!(got.have.count() < have.count());
        assert!(!got.have.any_and_not(&have), "only pieces it has");
        // The first pieces, none skipped: a prefix of its runs.
        let last = got.have.iter_ones().last().unwrap();
        assert_eq!(got.have.count(), last / 3 + 1);
        // A set that fits is sent whole.
        let mut few = Bitfield::new(65_536);
        few.set_range(100, 50);
        few.set(60_000);
        let got = decoded(&answer(&r, few.clone()).encode_within(&r, budget).unwrap());
        assert_eq!(got.have, few);
    }

    #[test]
    fn a_cut_set_that_goes_as_a_bitmap_still_fits() {
        // Every other piece of 8,744 to 8,768: whole, its bitmap is just
        // too long; cut, its bitmap is no longer than its gaps, so that is
        // what goes, 4 bytes of length more.
        for n in (8_736..8_784).step_by(8) {
            let r = record("f.bin", n);
            let mut have = Bitfield::new(n);
            for i in (0..n).step_by(2) {
                have.set(i);
            }
            let bytes = answer(&r, have.clone())
                .encode_within(&r, QUERY_LEN)
                .unwrap_or_else(|| panic!("{n} pieces: no answer"));
            assert!(bytes.len() <= QUERY_LEN);
            assert!(!decoded(&bytes).have.any_and_not(&have));
        }
    }

    #[test]
    fn long_names_hosts_and_peer_ids_shrink_the_answer_not_break_the_rule() {
        let name = "n".repeat(255);
        let (budget, _) = query_lens(&name);
        let r = record(&name, 20);
        let mut have = Bitfield::new(20);
        have.set_range(0, 5);
        have.set(9);
        let c = ChunkInfo {
            peer_id: "p".repeat(64),
            host: "h".repeat(255),
            ..answer(&r, have)
        };
        let bytes = c.encode_within(&r, budget).unwrap();
        assert!(bytes.len() <= budget);
        assert_eq!(decoded(&bytes).record, None, "the record no longer fits");
        // A budget too small for even one piece: no answer.
        for tight in 0..bytes.len() {
            if let Some(b) = c.encode_within(&r, tight) {
                assert!(b.len() <= tight);
                assert!(decoded(&b).have.count() >= 1);
            }
        }
        assert_eq!(c.encode_within(&r, 100), None);
    }

    #[test]
    fn an_unpadded_query_draws_no_answer() {
        // From an old or hostile sender: the query as small as it goes.
        for name in ["e", "f.bin", &"n".repeat(255)] {
            let (_, budget) = query_lens(name);
            let r = record(name, 1);
            for have in [Bitfield::full(1), Bitfield::new(1)] {
                let c = answer(&r, have);
                assert_eq!(c.encode_within(&r, budget), None, "{name}");
                // Even with its origin filled in by a neighbour (18 bytes).
                assert_eq!(c.encode_within(&r, budget + 18), None, "{name}");
            }
        }
    }

    #[test]
    fn an_empty_file_is_answered_whole() {
        let r = FileRecord::from_bytes("empty", b"");
        assert_eq!(piece_count_for(0), 0);
        let bytes = answer(&r, Bitfield::new(0))
            .encode_within(&r, QUERY_LEN)
            .unwrap();
        assert_eq!(decoded(&bytes).record, Some(r));
    }

    #[test]
    fn no_answer_is_larger_than_its_budget() {
        let r = record("x", 3000);
        let mut have = Bitfield::new(3000);
        for i in (0..3000).filter(|i| i % 7 < 3) {
            have.set(i);
        }
        for c in [answer(&r, have), answer(&r, Bitfield::full(3000))] {
            for budget in (0..QUERY_LEN + 200).step_by(7) {
                if let Some(b) = c.encode_within(&r, budget) {
                    assert!(b.len() <= budget, "{} > {budget}", b.len());
                }
            }
        }
    }

    #[test]
    fn a_hello_is_answered_only_by_a_hello_no_larger() {
        let asking = Datagram::Hello {
            peer_id: "B".into(),
            want_reply: true,
            challenge: 0,
            echo: 0,
        };
        let padded = asking.encode_padded(HELLO_LEN).unwrap();
        assert_eq!(padded.len(), HELLO_LEN);
        let longest = "p".repeat(64);
        let reply = hello_reply(&longest, u64::MAX, 1, padded.len()).unwrap();
        assert_eq!(reply.len(), HELLO_LEN, "the largest HELLO");
        // An unpadded HELLO (24 bytes) from "B" gets nothing from a peer
        // whose id is longer, a reply of its own size from one as short.
        let tiny = asking.encode().unwrap().len();
        assert_eq!(tiny, 24);
        assert_eq!(hello_reply("DD", 7, 9, tiny), None);
        assert_eq!(hello_reply("D", 7, 9, tiny).unwrap().len(), tiny);
    }

    #[test]
    fn a_forwarded_query_keeps_its_length() {
        let q = Query {
            id: 1,
            ttl: 3,
            hops: 0,
            origin: None,
            name: "f.bin".into(),
        };
        let sent = Datagram::Query(q.clone()).encode_padded(QUERY_LEN).unwrap();
        // The origin a neighbour fills in comes out of the padding.
        for origin in ["10.0.0.1:9000", "[2001:db8::1]:9000"] {
            let next = Query {
                ttl: 2,
                hops: 1,
                origin: Some(origin.parse().unwrap()),
                ..q.clone()
            };
            let fwd = Datagram::Query(next.clone())
                .encode_padded(sent.len())
                .unwrap();
            assert_eq!(fwd.len(), sent.len());
            assert_eq!(Datagram::decode(&fwd).unwrap(), Datagram::Query(next));
        }
        // An unpadded query has no room for an origin: not forwarded.
        let bare = Datagram::Query(q.clone()).encode().unwrap();
        let next = Query {
            origin: Some("10.0.0.1:9000".parse().unwrap()),
            ..q
        };
        assert_eq!(Datagram::Query(next).encode_padded(bare.len()), None);
    }
}
