//! TCP queries to the tracker (`wire::tracker_msg::TrackerRequest`): what a
//! tracker decodes from anyone who connects. Also covers the record, name
//! and string field codecs of `wire::message`.

use p2pshare::record::FileRecord;
use p2pshare::wire::TrackerRequest;
use p2pshare_fuzz::{message_round_trip, typed_body};

fn check(data: &[u8]) {
    message_round_trip::<TrackerRequest>(data);
}

fn seeds() -> Vec<Vec<u8>> {
    let name = || "a.bin".to_string();
    [
        TrackerRequest::NewFile {
            publisher: String::new(),
            record: FileRecord::from_bytes("a.bin", &[7; 10_000]),
        },
        TrackerRequest::NewFile {
            publisher: String::new(),
            record: FileRecord::from_bytes("empty", b""),
        },
        TrackerRequest::ListFiles,
        TrackerRequest::GetRecord { name: name() },
        TrackerRequest::WhoHas {
            name: name(),
            md5: None,
            site: None,
        },
        TrackerRequest::WhoHas {
            name: name(),
            md5: Some([3; 16]),
            site: None,
        },
        TrackerRequest::WhoHas {
            name: name(),
            md5: Some([3; 16]),
            site: Some("lab-2".into()),
        },
        TrackerRequest::Ping { nonce: 7 },
    ]
    .iter()
    .map(typed_body)
    .collect()
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
