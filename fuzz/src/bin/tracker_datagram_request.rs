//! What the tracker decodes from any UDP source
//! (`wire::datagram::tracker::Request`: CONNECT, ANNOUNCE), and the cheap
//! prefix read it does before that (`announce_prefix`), which must agree
//! with the full decode.

use p2pshare::wire::datagram::tracker::{Announce, Entry, Held, Request, FLAG_REGISTER, FLAG_SITE};

fn check(data: &[u8]) {
    let prefix = Request::announce_prefix(data);
    let Ok(first) = Request::decode(data) else {
        return;
    };
    if let Request::Announce(a) = &first {
        assert_eq!(prefix, Some((a.tx, a.cookie)));
    }
    let mut bytes = Vec::new();
    first.encode(&mut bytes);
    assert_eq!(Request::decode(&bytes).expect("re-decodes"), first);
}

fn seeds() -> Vec<Vec<u8>> {
    let entry = |name, held| Entry {
        name,
        md5: [9; 16],
        held,
    };
    let announce = |flags, advertise, entries| {
        Request::Announce(Announce {
            tx: 7,
            cookie: 0x0102_0304_0506_0708,
            session: 42,
            flags,
            port: 9000,
            peer_id: "A-1",
            advertise,
            site: if flags & FLAG_SITE != 0 { "lab-2" } else { "" },
            entries,
        })
    };
    let requests = [
        Request::Connect { tx: 5 },
        announce(FLAG_REGISTER, "", vec![]),
        announce(FLAG_REGISTER | FLAG_SITE, "", vec![]),
        announce(
            0,
            "127.0.0.1",
            vec![
                entry("a.bin", Held::Complete),
                entry("b.bin", Held::Partial(12)),
                entry("c.bin", Held::Gone),
            ],
        ),
    ];
    requests
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            r.encode(&mut out);
            out
        })
        .collect()
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
