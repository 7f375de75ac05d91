//! The search datagrams (`wire::datagram::search`: HELLO, QUERY,
//! CHUNK_INFO): what every peer with search on decodes from any UDP
//! source. Round trip: decode -> encode -> decode gives the same
//! datagram, and the encoding is never larger than the datagram it came
//! from would allow. A HELLO or QUERY padded to the length it came with
//! is the same bytes again, and an answer cut to a budget never exceeds
//! it.

use p2pshare::bitfield::Bitfield;
use p2pshare::record::FileRecord;
use p2pshare::wire::datagram::search::{
    ChunkInfo, Datagram, Query, HELLO_LEN, MAX_DATAGRAM, QUERY_LEN,
};

fn check(data: &[u8]) {
    let Ok(first) = Datagram::decode(data) else {
        return;
    };
    let bytes = first.encode().expect("a decoded datagram encodes");
    assert!(bytes.len() <= MAX_DATAGRAM);
    assert_eq!(Datagram::decode(&bytes).expect("re-decodes"), first);
    match &first {
        Datagram::ChunkInfo(c) => {
            if let Some(r) = &c.record {
                let budget = data.len() % (QUERY_LEN + 1);
                if let Some(cut) = c.encode_within(r, budget) {
                    assert!(cut.len() <= budget);
                    assert!(Datagram::decode(&cut).is_ok());
                }
            }
        }
        _ => assert_eq!(first.encode_padded(data.len()).as_deref(), Some(data)),
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let record = FileRecord::from_bytes("a.bin", &[7; 10_000]);
    let mut have = Bitfield::new(3);
    have.set(0);
    have.set(2);
    let info = |record: Option<FileRecord>, host: &str| ChunkInfo {
        query_id: 0x0102_0304_0506_0708,
        peer_id: "D".into(),
        host: host.into(),
        port: 7001,
        name: "a.bin".into(),
        size: 10_000,
        md5: [9; 16],
        have: have.clone(),
        record,
    };
    let mut matching = record.clone();
    matching.md5 = [9; 16];
    let query = |origin: Option<&str>| {
        Datagram::Query(Query {
            id: 77,
            ttl: 3,
            hops: 1,
            origin: origin.map(|o| o.parse().unwrap()),
            name: "a.bin".into(),
        })
    };
    let hello = Datagram::Hello {
        peer_id: "A-1".into(),
        want_reply: true,
        challenge: 0,
        echo: 0,
    };
    let mut seeds: Vec<Vec<u8>> = [
        hello.clone(),
        query(None),
        query(Some("127.0.0.1:7000")),
        query(Some("[::1]:7000")),
        Datagram::ChunkInfo(info(None, "")),
        Datagram::ChunkInfo(info(Some(matching), "127.0.0.2")),
    ]
    .iter()
    .map(|d| d.encode().unwrap())
    .collect();
    // As peers send them: padded.
    seeds.push(hello.encode_padded(HELLO_LEN).unwrap());
    seeds.push(query(None).encode_padded(QUERY_LEN).unwrap());
    seeds
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
