//! A file record as it is kept on disk (the tracker's `records/`, the
//! peer's record cache): the RECORD frame, the same bytes as on the wire,
//! and nothing after it.

use super::{frame, Decode, Encode, TrackerReply, MAX_FRAME};
use crate::error::{Error, Result};
use crate::record::FileRecord;

/// Appends the stored form of `record` to `out`.
pub fn encode(record: &FileRecord, out: &mut Vec<u8>) {
    TrackerReply::Record {
        record: record.clone(),
    }
    .encode(out);
}

/// The record in `bytes`, which must hold one RECORD frame and no more.
pub fn decode(bytes: &[u8]) -> Result<FileRecord> {
    let (ty, body, used) = frame::parse(bytes, MAX_FRAME)?
        .ok_or_else(|| Error::protocol("the file ends inside the record"))?;
    if used != bytes.len() {
        return Err(Error::protocol("trailing bytes after the record"));
    }
    match TrackerReply::decode(ty, body)? {
        TrackerReply::Record { record } => Ok(record),
        other => Err(Error::protocol(format!(
            "holds a {} message, not a RECORD",
            other.kind()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let r = FileRecord::from_bytes("a.txt", b"hello");
        let mut bytes = Vec::new();
        encode(&r, &mut bytes);
        assert_eq!(decode(&bytes).unwrap(), r);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        bytes.push(0);
        assert!(decode(&bytes).is_err());
    }
}
