//! A downloader's requests to a block server (`wire::peer_msg::PeerRequest`):
//! what every seeder decodes from anyone who connects to its block port.

use p2pshare::wire::PeerRequest;
use p2pshare_fuzz::{message_round_trip, typed_body};

fn check(data: &[u8]) {
    message_round_trip::<PeerRequest>(data);
}

fn seeds() -> Vec<Vec<u8>> {
    [
        PeerRequest::Open {
            name: "a.bin".into(),
            md5: [9; 16],
        },
        PeerRequest::Request {
            handle: 1,
            block: 5,
            count: 64,
        },
        PeerRequest::Cancel {
            handle: 1,
            block: 5,
            count: 1,
        },
        PeerRequest::Ping { nonce: 3 },
        PeerRequest::GetRecord {
            name: "a.bin".into(),
        },
        PeerRequest::Bye,
    ]
    .iter()
    .map(typed_body)
    .collect()
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
