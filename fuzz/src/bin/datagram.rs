//! The search datagrams (`wire::datagram`: HELLO, QUERY, CHUNK_INFO): what
//! every peer with search on decodes from any UDP source. Round trip:
//! decode -> encode -> decode gives the same datagram, and the encoding
//! is never larger than the datagram it came from would allow.

use p2pshare::bitfield::Bitfield;
use p2pshare::record::FileRecord;
use p2pshare::wire::datagram::{ChunkInfo, Datagram, Query, MAX_DATAGRAM};

fn check(data: &[u8]) {
    let Ok(first) = Datagram::decode(data) else {
        return;
    };
    let bytes = first.encode().expect("a decoded datagram encodes");
    assert!(bytes.len() <= MAX_DATAGRAM);
    assert_eq!(Datagram::decode(&bytes).expect("re-decodes"), first);
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
    [
        Datagram::Hello {
            peer_id: "A-1".into(),
            want_reply: true,
        },
        query(None),
        query(Some("127.0.0.1:7000")),
        query(Some("[::1]:7000")),
        Datagram::ChunkInfo(info(None, "")),
        Datagram::ChunkInfo(info(Some(matching), "127.0.0.2")),
    ]
    .iter()
    .map(|d| d.encode().unwrap())
    .collect()
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
