//! A download's resume state (`download::resume::decode_state`): what a
//! peer reads back from `partial/<file>.state`, which decides the pieces
//! it will not fetch again. Round trip: what decodes encodes and decodes
//! back the same.
//!
//! Input: two bytes that choose the file's size (times 61 bytes: up to
//! about 1,000 pieces, so each run stays cheap), then the state file.

use p2pshare::bitfield::Bitfield;
use p2pshare::download::resume::{decode_state, encode_state};
use p2pshare::fsutil::Stamp;
use p2pshare::record::{blocks_per_piece_for, piece_count_for, FileRecord, BLOCK_SIZE};

fn record(size: u64) -> FileRecord {
    FileRecord {
        name: "f.bin".into(),
        size,
        block_size: BLOCK_SIZE,
        blocks_per_piece: blocks_per_piece_for(size),
        md5: [0x5a; 16],
        piece_hashes: vec![Default::default(); piece_count_for(size) as usize],
        weak_sums: vec![0; piece_count_for(size) as usize],
        folder: None,
        version: 1,
        owner: String::new(),
    }
}

fn check(data: &[u8]) {
    let [hi, lo, state @ ..] = data else {
        return;
    };
    let r = record(u64::from(u16::from_be_bytes([*hi, *lo])) * 61);
    let Some((stamp, claimed)) = decode_state(state, &r) else {
        return;
    };
    assert_eq!(claimed.len(), r.piece_count());
    let again = encode_state(&r, stamp, &claimed);
    assert_eq!(decode_state(&again, &r), Some((stamp, claimed)));
}

fn seeds() -> Vec<Vec<u8>> {
    let stamp = Stamp {
        size: 61_000,
        mtime_ns: 1_700_000_000_123_456_789,
    };
    [0u16, 1, 1000, 65535]
        .iter()
        .map(|&sel| {
            let r = record(u64::from(sel) * 61);
            let mut have = Bitfield::new(r.piece_count());
            (0..r.piece_count()).step_by(3).for_each(|p| {
                have.set(p);
            });
            let mut seed = sel.to_be_bytes().to_vec();
            seed.extend(encode_state(&r, stamp, &have));
            seed
        })
        .collect()
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
