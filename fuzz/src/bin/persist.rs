//! The tracker's catalogue loader (`tracker::persist::decode_stored`, then
//! `Catalogue::load_record`): what a tracker accepts from the files in its
//! `records/` directory at start.
//!
//! Input: a flags byte (bit 0: the file is under `long/`), the length of
//! the file's stem, the stem, then the file's bytes.

use p2pshare::record::{md5_of, FileRecord};
use p2pshare::tracker::catalogue::Catalogue;
use p2pshare::tracker::persist::decode_stored;
use p2pshare::units::hex;
use p2pshare::wire::record_file;

fn check(data: &[u8]) {
    let [flags, stem_len, rest @ ..] = data else {
        return;
    };
    let Some((stem, bytes)) = rest.split_at_checked(*stem_len as usize) else {
        return;
    };
    let Ok(stem) = std::str::from_utf8(stem) else {
        return;
    };
    let hashed = flags & 1 != 0;
    let Ok(r) = decode_stored(stem, hashed, bytes) else {
        return;
    };
    let expected = if hashed {
        hex(&md5_of(r.name.as_bytes()))
    } else {
        r.name.clone()
    };
    assert_eq!(stem, expected);
    let mut catalogue = Catalogue::new();
    assert!(catalogue.load_record(r.clone()));
    assert!(!catalogue.load_record(r.clone()), "a name loads once");
    assert_eq!(catalogue.record(&r.name).as_deref(), Some(&r));
}

fn seeds() -> Vec<Vec<u8>> {
    let stored = |hashed: bool, r: &FileRecord| {
        let stem = if hashed {
            hex(&md5_of(r.name.as_bytes()))
        } else {
            r.name.clone()
        };
        let mut out = vec![u8::from(hashed), stem.len() as u8];
        out.extend_from_slice(stem.as_bytes());
        record_file::encode(r, &mut out);
        out
    };
    let a = FileRecord::from_bytes("a.bin", &[7; 10_000]);
    let long = FileRecord::from_bytes(&"L".repeat(255), b"long name");
    vec![stored(false, &a), stored(true, &long), stored(true, &a)]
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
