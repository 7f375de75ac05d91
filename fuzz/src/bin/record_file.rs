//! A file record in its stored form (`wire::record_file`, checked by
//! `record::FileRecord::validate`): what the tracker reads back from
//! `records/` and a peer from its record cache, and the body of every
//! RECORD. A record that decodes must round-trip, and its piece geometry
//! must hold together, since downloads index blocks and pieces by it. A
//! version 1 record (MD5 piece hashes) is recognised, never decoded as a
//! current one.

use p2pshare::bitfield::Bitfield;
use p2pshare::record::{blocks_held, piece_count_for, FileRecord};
use p2pshare::wire::record_file::{self, Stored};

fn check(data: &[u8]) {
    let r = match record_file::decode(data) {
        Ok(Stored::Current(r)) => r,
        Ok(Stored::Legacy(l)) => {
            assert_eq!(
                data.get(5),
                Some(&0),
                "version 1 starts with a name length < 256"
            );
            assert!(record_file::decode_current(data).is_err());
            assert!(!l.name.is_empty());
            return;
        }
        Err(_) => return,
    };
    let mut bytes = Vec::new();
    record_file::encode(&r, &mut bytes);
    assert_eq!(bytes, data, "a record has one stored form");
    assert_eq!(record_file::decode_current(&bytes).unwrap(), r);
    geometry(&r);
    // A folder's manifest: no path that could leave the tree, and its
    // files make up the payload.
    if let Some(m) = &r.folder {
        assert_eq!(m.total_size(), r.size);
        for e in m.entries() {
            assert!(p2pshare::manifest::check_path(e.path()).is_ok(), "{e:?}");
        }
    }
}

/// Pieces tile the file, blocks tile the pieces.
fn geometry(r: &FileRecord) {
    let pieces = r.piece_count();
    assert_eq!(pieces, piece_count_for(r.size));
    let mut bytes = 0;
    let mut blocks = 0;
    for p in 0..pieces {
        assert!(r.piece_len(p) > 0);
        assert_eq!(r.first_block(p), blocks);
        assert_eq!(r.piece_of_block(r.first_block(p)), p);
        bytes += r.piece_len(p);
        blocks += r.piece_blocks(p);
    }
    assert_eq!(bytes, r.size);
    assert_eq!(blocks, r.block_count());
    let full = Bitfield::full(pieces);
    assert_eq!(r.blocks_in(&full), u64::from(r.block_count()));
    assert_eq!(blocks_held(r.size, &full), u64::from(r.block_count()));
    if let Some(last) = r.block_count().checked_sub(1) {
        assert!(r.block_len(last) > 0);
    }
}

/// A folder's record (docs/REFERENCE.md, Folders): a file, an empty file, a folder
/// inside and an empty one.
fn folder() -> FileRecord {
    use p2pshare::manifest::{Manifest, TreeNode};
    use p2pshare::record::md5_of;
    let mut r = FileRecord::from_bytes("tree", b"hello");
    let file = |path: &str, data: &[u8]| TreeNode::File {
        path: path.into(),
        size: data.len() as u64,
        md5: md5_of(data),
    };
    let dir = |path: &str| TreeNode::Dir { path: path.into() };
    let m = Manifest::new(vec![
        file("a", b"hello"),
        dir("d"),
        file("d/e", b""),
        dir("empty"),
    ])
    .expect("a valid manifest");
    r.folder = Some(Box::new(m));
    r
}

fn seeds() -> Vec<Vec<u8>> {
    [
        FileRecord::from_bytes("a.bin", &[7; 10_000]),
        FileRecord::from_bytes("empty", b""),
        FileRecord::from_bytes("naïve b.txt", b"hello"),
        folder(),
    ]
    .iter()
    .flat_map(|r| {
        let mut out = Vec::new();
        record_file::encode(r, &mut out);
        [out, record_file::encode_legacy(r)]
    })
    .collect()
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
