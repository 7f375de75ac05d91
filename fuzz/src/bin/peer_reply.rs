//! A block server's answers (`wire::peer_msg::PeerReply`): what a
//! downloader decodes, piece sets (the `get_have` field codec) included.

use p2pshare::bitfield::Bitfield;
use p2pshare::record::FileRecord;
use p2pshare::wire::{frame, Decode, Encode, PeerReply, MAX_FRAME};
use p2pshare_fuzz::typed_body;

/// `message_round_trip`, written out: a BLOCK borrows its data from the
/// buffer it was decoded from, so the second decode borrows another one.
fn check(data: &[u8]) {
    let Some((&ty, body)) = data.split_first() else {
        return;
    };
    let Ok(first) = PeerReply::decode(ty, body) else {
        return;
    };
    let mut buf = Vec::new();
    first.encode(&mut buf);
    let (ty2, body2, used) = frame::parse(&buf, MAX_FRAME).unwrap().unwrap();
    assert_eq!(used, buf.len());
    assert_eq!(first, PeerReply::decode(ty2, body2).unwrap());
}

fn seeds() -> Vec<Vec<u8>> {
    let set = |len: u32, step: u32| {
        let mut b = Bitfield::new(len);
        (0..len).step_by(step as usize).for_each(|i| {
            b.set(i);
        });
        b
    };
    [
        PeerReply::Opened {
            handle: 1,
            have: Bitfield::full(40),
        },
        PeerReply::Opened {
            handle: 2,
            have: Bitfield::new(40),
        },
        // Many short runs (sent as a bitmap) and a few long ones (as runs).
        PeerReply::Have {
            handle: 1,
            have: set(100, 3),
        },
        PeerReply::Have {
            handle: 1,
            have: Bitfield::from_runs(1000, &[(0, 300), (600, 100)]).unwrap(),
        },
        PeerReply::Block {
            handle: 1,
            block: 2,
            data: &[5; 64],
        },
        PeerReply::Pong { nonce: 4 },
        PeerReply::Record {
            record: Box::new(FileRecord::from_bytes("a.bin", &[7; 10_000])),
        },
        PeerReply::Ok,
        PeerReply::Error {
            code: 2,
            message: "no such file".into(),
        },
    ]
    .iter()
    .map(typed_body)
    .collect()
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
