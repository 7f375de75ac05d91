//! A file record as it is kept on disk (the tracker's `records/`, the
//! peer's record cache): the RECORD frame, the same bytes as on the wire,
//! and nothing after it. Decoding also recognises a version 1 record (MD5
//! piece hashes, written before records had a version) and a version 2
//! record (no item version, owner nor weak sums) so its owner can upgrade
//! it; such a record is never used to verify anything.

use super::codec::Decoder;
use super::message::{get_legacy_record, is_legacy_record, put_record, ty};
use super::{frame, Decode, Encode, TrackerReply, MAX_FRAME};
use crate::error::{Error, Result};
use crate::record::{FileRecord, LegacyRecord};

/// What a stored record file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// A record of the current version.
    Current(FileRecord),
    /// A version 1 record: name, size and MD5 only, to be upgraded.
    Legacy(LegacyRecord),
}

impl Stored {
    pub fn name(&self) -> &str {
        match self {
            Stored::Current(r) => &r.name,
            Stored::Legacy(l) => &l.name,
        }
    }
}

/// Appends the stored form of `record` to `out`.
/// The frame is written from the record where it is: a clone of it into
/// a `TrackerReply` first (2.3 MiB for 65,536 pieces) was a millisecond
/// at the end of every download, whose record is cached then.
pub fn encode(record: &FileRecord, out: &mut Vec<u8>) {
    out.reserve(record.piece_hashes.len() * (32 + 4) + 512);
    frame::put_frame(out, |body| {
        put_record(body, record);
        ty::RECORD
    });
}

/// The record in `bytes`, which must hold one RECORD frame and no more.
pub fn decode(bytes: &[u8]) -> Result<Stored> {
    let (ty, body, used) = frame::parse(bytes, MAX_FRAME)?
        .ok_or_else(|| Error::protocol("the file ends inside the record"))?;
    if used != bytes.len() {
        return Err(Error::protocol("trailing bytes after the record"));
    }
    if ty == ty::RECORD && is_legacy_record(body) {
        let mut d = Decoder::new(body);
        let legacy = get_legacy_record(&mut d)?;
        d.finish()?;
        return Ok(Stored::Legacy(legacy));
    }
    match TrackerReply::decode(ty, body)? {
        TrackerReply::Record { record } => Ok(Stored::Current(record)),
        other => Err(Error::protocol(format!(
            "holds a {} message, not a RECORD",
            other.kind()
        ))),
    }
}

/// Only a record of the current version; a version 1 record is an error
/// that says so.
pub fn decode_current(bytes: &[u8]) -> Result<FileRecord> {
    match decode(bytes)? {
        Stored::Current(r) => Ok(r),
        Stored::Legacy(_) => Err(Error::protocol(
            "a version 1 or 2 record (no item version nor owner), from an older p2pshare",
        )),
    }
}

/// The stored form of a version 1 record (MD5 piece hashes), as older
/// versions wrote it: for tests of the upgrade paths and fuzz seeds. Its
/// piece hashes are the first 16 bytes of `r`'s, not MD5s: nothing reads
/// them.
pub fn encode_legacy(r: &FileRecord) -> Vec<u8> {
    encode_older(r, false)
}

/// The stored form of a version 2 record (SHA-256 pieces, but no item
/// version, owner nor weak sums), as the previous release wrote it: for
/// tests of the upgrade paths and fuzz seeds.
pub fn encode_v2(r: &FileRecord) -> Vec<u8> {
    encode_older(r, true)
}

/// A version 1 (`v2` false) or version 2 record frame of `r`.
fn encode_older(r: &FileRecord, v2: bool) -> Vec<u8> {
    use super::codec::{put_str, put_u32, put_u64, put_u8};
    let mut body = Vec::new();
    if v2 {
        put_u8(&mut body, 2);
        put_u8(&mut body, u8::from(r.folder.is_some()));
    }
    put_str(&mut body, &r.name);
    put_u64(&mut body, r.size);
    put_u32(&mut body, r.block_size);
    put_u32(&mut body, r.blocks_per_piece);
    body.extend_from_slice(&r.md5);
    put_u32(&mut body, r.piece_hashes.len() as u32);
    let hash_len = if v2 { 32 } else { 16 };
    for h in &r.piece_hashes {
        body.extend_from_slice(&h[..hash_len]);
    }
    if let (true, Some(m)) = (v2, &r.folder) {
        super::message::put_manifest(&mut body, m);
    }
    let mut out = Vec::new();
    frame::write_header(&mut out, ty::RECORD, body.len()).expect("write to a Vec");
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_form_is_the_record_frame_of_the_wire() {
        let r = FileRecord::from_bytes("a.txt", &[7u8; 20_000]);
        let mut stored = Vec::new();
        encode(&r, &mut stored);
        let mut wire = Vec::new();
        TrackerReply::Record { record: r }.encode(&mut wire);
        assert_eq!(stored, wire);
    }

    #[test]
    fn round_trip_and_strictness() {
        let r = FileRecord::from_bytes("a.txt", b"hello");
        let mut bytes = Vec::new();
        encode(&r, &mut bytes);
        assert_eq!(decode(&bytes).unwrap(), Stored::Current(r.clone()));
        assert_eq!(decode_current(&bytes).unwrap(), r);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        bytes.push(0);
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn a_version_1_record_is_recognised_not_used() {
        let r = FileRecord::from_bytes("old.bin", &[7; 10_000]);
        let mut bytes = encode_legacy(&r);
        let legacy = LegacyRecord {
            name: r.name.clone(),
            size: r.size,
            md5: r.md5,
        };
        assert_eq!(decode(&bytes).unwrap(), Stored::Legacy(legacy.clone()));
        assert!(legacy.matches(&r));
        let e = decode_current(&bytes).unwrap_err();
        assert!(e.to_string().contains("version 1"), "{e}");
        // Over the wire a version 1 record is refused with the reason.
        let (_, body, _) = frame::parse(&bytes, MAX_FRAME).unwrap().unwrap();
        let e = TrackerReply::decode(ty::RECORD, body).unwrap_err();
        assert!(e.to_string().contains("version 1"), "{e}");
        // Its geometry is checked like a current record's.
        bytes.truncate(bytes.len() - 16);
        let len = (bytes.len() - 4) as u32;
        bytes[..4].copy_from_slice(&len.to_be_bytes());
        let body_start = 5;
        bytes[body_start + 2 + 7 + 8 + 8 + 16 + 3] -= 1; // one hash fewer
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn the_empty_record_example_of_protocol_md() {
        let r = FileRecord::from_bytes("e", b"").versioned(1, "A");
        let mut bytes = Vec::new();
        encode(&r, &mut bytes);
        let want = "00000031 85 03 00 000165 0000000000000000 00001000 00000001 \
                    d41d8cd98f00b204e9800998ecf8427e 00000001 000141 00000000"
            .replace(' ', "");
        assert_eq!(crate::units::hex(&bytes), want);
    }

    #[test]
    fn a_version_2_record_is_recognised_not_used() {
        let r = FileRecord::from_bytes("old.bin", &[7; 10_000]);
        let legacy = LegacyRecord {
            name: r.name.clone(),
            size: r.size,
            md5: r.md5,
        };
        let bytes = encode_v2(&r);
        assert_eq!(decode(&bytes).unwrap(), Stored::Legacy(legacy.clone()));
        let e = decode_current(&bytes).unwrap_err();
        assert!(e.to_string().contains("version 1"), "{e}");
        let (_, body, _) = frame::parse(&bytes, MAX_FRAME).unwrap().unwrap();
        let e = TrackerReply::decode(ty::RECORD, body).unwrap_err();
        assert!(e.to_string().contains("version 2"), "{e}");
        // A folder's too, its manifest skipped.
        let f = crate::wire::message::tests::folder_record();
        match decode(&encode_v2(&f)).unwrap() {
            Stored::Legacy(l) => assert_eq!((l.name, l.md5), (f.name.clone(), f.md5)),
            other => panic!("{other:?}"),
        }
        // Cut anywhere, it is an error, never a panic.
        for cut in 5..bytes.len() {
            let mut b = bytes[..cut].to_vec();
            let len = (b.len() - 4) as u32;
            b[..4].copy_from_slice(&len.to_be_bytes());
            assert!(decode(&b).is_err(), "{cut}");
        }
    }

    #[test]
    fn unknown_version_or_kind_is_refused() {
        let r = FileRecord::from_bytes("a.txt", b"hello");
        let mut bytes = Vec::new();
        encode(&r, &mut bytes);
        let mut v4 = bytes.clone();
        v4[5] = 4;
        let e = decode(&v4).unwrap_err();
        assert!(e.to_string().contains("version 4"), "{e}");
        let mut kind = bytes;
        kind[6] = 2;
        let e = decode(&kind).unwrap_err();
        assert!(e.to_string().contains("kind 2"), "{e}");
    }
}
