//! Making one download out of the answers to a search: which version of the
//! file to take when holders disagree, which record to trust, and the
//! holders to fetch from. Pure: answers in, decisions out.

use super::node::SearchHit;
use crate::digest::Md5Digest;
use crate::record::FileRecord;
use crate::wire::Holder;

/// The version of a file most answers agree on.
#[derive(Debug)]
pub struct Choice {
    pub size: u64,
    pub md5: Md5Digest,
    /// The answers for that version, sorted by peer id.
    pub answers: Vec<SearchHit>,
    /// The other versions seen: (size, md5, how many holders), most held first.
    pub others: Vec<(u64, Md5Digest, usize)>,
}

/// Groups answers by (MD5, size) and takes the version most holders have;
/// a tie goes to the smaller MD5, so every peer decides the same way.
pub fn choose(answers: Vec<SearchHit>) -> Option<Choice> {
    let mut groups: Vec<(Md5Digest, u64, Vec<SearchHit>)> = Vec::new();
    for a in answers {
        match groups
            .iter_mut()
            .find(|g| g.0 == a.info.md5 && g.1 == a.info.size)
        {
            Some(g) => g.2.push(a),
            None => groups.push((a.info.md5, a.info.size, vec![a])),
        }
    }
    groups.sort_by(|x, y| {
        y.2.len()
            .cmp(&x.2.len())
            .then(x.0.cmp(&y.0))
            .then(x.1.cmp(&y.1))
    });
    let mut groups = groups.into_iter();
    let (md5, size, mut answers) = groups.next()?;
    answers.sort_by(|a, b| a.info.peer_id.cmp(&b.info.peer_id));
    Some(Choice {
        size,
        md5,
        answers,
        others: groups.map(|(m, s, a)| (s, m, a.len())).collect(),
    })
}

impl Choice {
    /// The record most of these answers carried inline, if any did (a tie
    /// goes to the one from the smallest peer id). A holder could lie about
    /// piece hashes; taking the majority keeps one liar from spoiling a
    /// download that honest holders could serve.
    pub fn inline_record(&self) -> Option<FileRecord> {
        let mut tally: Vec<(&FileRecord, usize)> = Vec::new();
        for r in self.answers.iter().filter_map(|a| a.info.record.as_ref()) {
            match tally.iter_mut().find(|(t, _)| *t == r) {
                Some(t) => t.1 += 1,
                None => tally.push((r, 1)),
            }
        }
        // Stable sort: among equals, the first (smallest peer id) stays first.
        tally.sort_by_key(|t| std::cmp::Reverse(t.1));
        tally.first().map(|(r, _)| (*r).clone())
    }

    /// Where to fetch blocks: every answer as a holder.
    pub fn holders(&self) -> Vec<Holder> {
        self.answers.iter().map(holder).collect()
    }
}

/// The holder an answer describes: its advertised host, or else the
/// address its answer came from (an IPv4-mapped address as plain IPv4,
/// as the tracker shows it).
pub fn holder(a: &SearchHit) -> Holder {
    Holder {
        peer_id: a.info.peer_id.clone(),
        host: if a.info.host.is_empty() {
            a.from.ip().to_canonical().to_string()
        } else {
            a.info.host.clone()
        },
        port: a.info.port,
        blocks: crate::record::blocks_held(a.info.size, &a.info.have),
        complete: a.info.have.is_full(),
        // A search answer does not say where its holder is.
        site: String::new(),
    }
}

/// The holders among `answers` of exactly this version of the file.
pub fn holders_of(answers: &[SearchHit], size: u64, md5: &Md5Digest) -> Vec<Holder> {
    answers
        .iter()
        .filter(|a| a.info.size == size && a.info.md5 == *md5)
        .map(holder)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitfield::Bitfield;
    use crate::wire::datagram::search::ChunkInfo;
    use std::net::SocketAddr;

    fn answer(peer: &str, data: &[u8], host: &str, inline: bool) -> SearchHit {
        let r = FileRecord::from_bytes("f", data);
        SearchHit {
            info: ChunkInfo {
                query_id: 1,
                peer_id: peer.into(),
                host: host.into(),
                port: 9000,
                name: "f".into(),
                size: r.size,
                md5: r.md5,
                have: Bitfield::full(r.piece_count()),
                record: inline.then_some(r),
            },
            from: SocketAddr::from(([10, 0, 0, 9], 9000)),
        }
    }

    #[test]
    fn the_version_most_holders_have_wins() {
        let c = choose(vec![
            answer("C", b"one", "", false),
            answer("A", b"two", "", false),
            answer("B", b"one", "", false),
        ])
        .unwrap();
        assert_eq!(c.md5, crate::record::md5_of(b"one"));
        let ids: Vec<_> = c.answers.iter().map(|a| a.info.peer_id.as_str()).collect();
        assert_eq!(ids, ["B", "C"]);
        assert_eq!(c.others, vec![(3, crate::record::md5_of(b"two"), 1)]);
        assert!(choose(Vec::new()).is_none());
    }

    #[test]
    fn a_tie_is_broken_the_same_way_whatever_the_order() {
        let (x, y) = (b"xxxx".as_slice(), b"yyyy".as_slice());
        let one = choose(vec![answer("A", x, "", false), answer("B", y, "", false)]).unwrap();
        let two = choose(vec![answer("B", y, "", false), answer("A", x, "", false)]).unwrap();
        assert_eq!(one.md5, two.md5);
        assert_eq!(
            one.md5,
            crate::record::md5_of(x).min(crate::record::md5_of(y))
        );
    }

    #[test]
    fn the_majority_record_is_taken() {
        let data = vec![5u8; 9000];
        let honest = FileRecord::from_bytes("f", &data);
        let mut liar = answer("A", &data, "", true);
        if let Some(r) = liar.info.record.as_mut() {
            r.piece_hashes[0] = [0; 32];
        }
        let c = choose(vec![
            liar,
            answer("B", &data, "", true),
            answer("C", &data, "", true),
            answer("D", &data, "", false),
        ])
        .unwrap();
        assert_eq!(c.inline_record(), Some(honest));
        let none = choose(vec![answer("D", &data, "", false)]).unwrap();
        assert_eq!(none.inline_record(), None);
    }

    #[test]
    fn holders_dial_the_advertised_host_or_the_source_address() {
        let c = choose(vec![
            answer("A", b"z", "", false),
            answer("B", b"z", "b.example.org", false),
        ])
        .unwrap();
        let h = c.holders();
        assert_eq!((h[0].host.as_str(), h[0].port), ("10.0.0.9", 9000));
        assert_eq!(h[1].host, "b.example.org");
        let all = vec![answer("A", b"z", "", false), answer("B", b"w", "", false)];
        let md5 = crate::record::md5_of(b"z");
        assert_eq!(holders_of(&all, 1, &md5).len(), 1);
        assert_eq!(holders_of(&all, 2, &md5).len(), 0, "another size");
    }
}
