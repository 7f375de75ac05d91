//! What a peer decodes from the tracker's UDP port
//! (`wire::datagram::tracker::Reply`: CONNECTED, ANNOUNCED, REFUSED).
//! Round trip, and the rule that an answer is never larger than the
//! request it answers: re-encoded for a request of some length (64 bytes,
//! the smallest ANNOUNCE, up to the largest datagram), it must fit, losing
//! at most the unknown-file bitmap or the address of an ID_IN_USE.

use p2pshare::wire::datagram::tracker::{
    Announced, Refusal, Reply, MAX_TRACKER_DATAGRAM, MIN_ANNOUNCE_LEN,
};

fn check(data: &[u8]) {
    let Ok(first) = Reply::decode(data) else {
        return;
    };
    // Any request length will do; this one varies with the input.
    let span = MAX_TRACKER_DATAGRAM - MIN_ANNOUNCE_LEN + 1;
    let request_len = MIN_ANNOUNCE_LEN + data.len() * 31 % span;
    let mut bytes = Vec::new();
    first.encode(request_len, &mut bytes);
    assert!(bytes.len() <= request_len);
    let again = Reply::decode(&bytes).expect("re-decodes");
    match (&first, &again) {
        (Reply::Announced(a), Reply::Announced(b)) => {
            // The bitmap goes whole or not at all, and only when it names a file.
            assert!(b.unknown == a.unknown || b.unknown.is_empty());
            assert!(b.unknown.is_empty() || b.unknown.iter().any(|&u| u));
        }
        // The holder's address goes whole, or not at all when it would not fit.
        (Reply::InUse { at: a, .. }, Reply::InUse { at: b, .. }) => {
            assert!(b == a || b.is_empty());
        }
        _ => {}
    }
    assert_eq!(without_extras(again), without_extras(first));
}

/// The reply without what `encode` may leave out to fit the request.
fn without_extras(r: Reply) -> Reply {
    match r {
        Reply::Announced(a) => Reply::Announced(Announced {
            unknown: Vec::new(),
            ..a
        }),
        Reply::InUse { tx, .. } => Reply::InUse {
            tx,
            at: String::new(),
        },
        other => other,
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let announced = |source: &str, unknown: Vec<bool>| {
        Reply::Announced(Announced {
            tx: 7,
            session: 42,
            interval_secs: 3,
            peers: 10,
            source: source.parse().unwrap(),
            unknown,
        })
    };
    let replies = [
        Reply::Connected {
            tx: 5,
            cookie: 0x0102_0304_0506_0708,
        },
        Reply::Refused {
            tx: 5,
            reason: Refusal::BadCookie,
        },
        Reply::Refused {
            tx: 5,
            reason: Refusal::BadRequest,
        },
        Reply::InUse {
            tx: 5,
            at: "127.0.0.1:9000".into(),
        },
        announced("127.0.0.1", vec![]),
        announced(
            "::1",
            vec![false, true, false, false, true, true, false, false, true],
        ),
    ];
    replies
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            r.encode(MAX_TRACKER_DATAGRAM, &mut out);
            out
        })
        .collect()
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
