//! The tracker's TCP answers (`wire::tracker_msg::TrackerReply`): what a
//! peer decodes from a tracker, file lists and holder lists included.

use p2pshare::record::FileRecord;
use p2pshare::wire::{FileSummary, Holder, TrackerReply};
use p2pshare_fuzz::{message_round_trip, typed_body};

fn check(data: &[u8]) {
    message_round_trip::<TrackerReply>(data);
}

fn seeds() -> Vec<Vec<u8>> {
    let record = FileRecord::from_bytes("a.bin", &[7; 10_000]);
    let summary = FileSummary {
        name: "a.bin".into(),
        size: 10_000,
        md5: record.md5,
        holders: 3,
        seeders: 1,
        folder: None,
        version: 3,
        owner: "A".into(),
        older: 2,
    };
    let holder = |id: &str, host: &str, complete| Holder {
        peer_id: id.into(),
        host: host.into(),
        port: 6881,
        blocks: 2,
        complete,
        site: if complete {
            "lab".into()
        } else {
            String::new()
        },
    };
    [
        TrackerReply::Ok,
        TrackerReply::FileList {
            files: vec![
                summary.clone(),
                FileSummary {
                    name: "photos".into(),
                    folder: Some(3),
                    ..summary
                },
            ],
        },
        TrackerReply::Record { record },
        TrackerReply::Holders {
            holders: vec![holder("A", "127.0.0.1", false), holder("B", "", false)],
            sited: false,
        },
        TrackerReply::Holders {
            holders: vec![holder("A", "127.0.0.1", true), holder("B", "", false)],
            sited: true,
        },
        TrackerReply::Pong { nonce: 9 },
        TrackerReply::Error {
            code: 3,
            message: "name taken".into(),
        },
    ]
    .iter()
    .map(typed_body)
    .collect()
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
