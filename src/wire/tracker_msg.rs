//! The tracker protocol over TCP: the queries a client sends the tracker
//! (`TrackerRequest`) and the tracker's answers (`TrackerReply`). Peers'
//! sessions are UDP datagrams (`datagram::tracker`); these are the short
//! query connections. Layouts in docs/PROTOCOL.md §5.

use super::codec::{put_str, put_u64, Decoder};
use super::message::{
    error_parts, get_error, get_files, get_holders, get_name, get_owner, get_record, get_site,
    put_error, put_files, put_holders, put_record, ty, unexpected, Answer, Decode, Encode,
};
use super::{FileSummary, Holder};
use crate::digest::Md5Digest;
use crate::error::{Error, Result};
use crate::record::FileRecord;

/// What a client asks the tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackerRequest {
    /// Publish a record (answered OK, or ERROR 3 for a name taken by
    /// other content). `publisher`: the peer id that sends it (empty: no
    /// peer, a tool); only the name's owner publishes its next version.
    NewFile {
        publisher: String,
        record: FileRecord,
    },
    ListFiles,
    GetRecord {
        name: String,
    },
    /// Who holds `name`: its current version, or with `md5` that version
    /// while the tracker keeps it (a download under way when the next
    /// version appeared).
    /// With `site` (WHO_HAS_AT), holders of that site come first and
    /// the answer names each holder's site (HOLDERS_AT).
    WhoHas {
        name: String,
        md5: Option<Md5Digest>,
        site: Option<String>,
    },
    Ping {
        nonce: u64,
    },
}

/// What the tracker answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackerReply {
    Ok,
    FileList {
        files: Vec<FileSummary>,
    },
    Record {
        record: FileRecord,
    },
    /// HOLDERS, or with `sited` HOLDERS_AT (the answer to WHO_HAS_AT).
    Holders {
        holders: Vec<Holder>,
        sited: bool,
    },
    Pong {
        nonce: u64,
    },
    Error {
        code: u16,
        message: String,
    },
}

impl Encode for TrackerRequest {
    fn kind(&self) -> &'static str {
        match self {
            TrackerRequest::NewFile { .. } => "NEW_FILE",
            TrackerRequest::ListFiles => "LIST_FILES",
            TrackerRequest::GetRecord { .. } => "GET_RECORD",
            TrackerRequest::WhoHas { .. } => "WHO_HAS",
            TrackerRequest::Ping { .. } => "PING",
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> u8 {
        match self {
            TrackerRequest::NewFile { publisher, record } => {
                put_str(out, publisher);
                put_record(out, record);
                ty::NEW_FILE
            }
            TrackerRequest::ListFiles => ty::LIST_FILES,
            TrackerRequest::GetRecord { name } => {
                put_str(out, name);
                ty::GET_RECORD
            }
            TrackerRequest::WhoHas { name, md5, site } => {
                put_str(out, name);
                if let Some(s) = site {
                    put_str(out, s);
                }
                if let Some(m) = md5 {
                    out.extend_from_slice(m);
                }
                if site.is_some() {
                    ty::WHO_HAS_AT
                } else {
                    ty::WHO_HAS
                }
            }
            TrackerRequest::Ping { nonce } => {
                put_u64(out, *nonce);
                ty::PING
            }
        }
    }
}

impl Decode<'_> for TrackerRequest {
    fn decode(t: u8, body: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(body);
        let msg = match t {
            ty::NEW_FILE => TrackerRequest::NewFile {
                publisher: get_owner(&mut d)?,
                record: get_record(&mut d)?,
            },
            ty::LIST_FILES => TrackerRequest::ListFiles,
            ty::GET_RECORD => TrackerRequest::GetRecord {
                name: get_name(&mut d)?,
            },
            ty::WHO_HAS | ty::WHO_HAS_AT => TrackerRequest::WhoHas {
                name: get_name(&mut d)?,
                site: if t == ty::WHO_HAS_AT {
                    Some(get_site(&mut d, false)?)
                } else {
                    None
                },
                md5: if d.remaining() > 0 {
                    Some(d.array()?)
                } else {
                    None
                },
            },
            ty::PING => TrackerRequest::Ping { nonce: d.u64()? },
            other => {
                return Err(unexpected(
                    other,
                    "a tracker (it takes NEW_FILE, LIST_FILES, GET_RECORD, WHO_HAS and PING; peers announce over UDP)",
                ))
            }
        };
        d.finish()?;
        Ok(msg)
    }
}

impl Encode for TrackerReply {
    fn kind(&self) -> &'static str {
        match self {
            TrackerReply::Ok => "OK",
            TrackerReply::FileList { .. } => "FILE_LIST",
            TrackerReply::Record { .. } => "RECORD",
            TrackerReply::Holders { .. } => "HOLDERS",
            TrackerReply::Pong { .. } => "PONG",
            TrackerReply::Error { .. } => "ERROR",
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> u8 {
        match self {
            TrackerReply::Ok => ty::OK,
            TrackerReply::FileList { files } => {
                put_files(out, files);
                ty::FILE_LIST
            }
            TrackerReply::Record { record } => {
                put_record(out, record);
                ty::RECORD
            }
            TrackerReply::Holders { holders, sited } => {
                put_holders(out, holders, *sited);
                if *sited {
                    ty::HOLDERS_AT
                } else {
                    ty::HOLDERS
                }
            }
            TrackerReply::Pong { nonce } => {
                put_u64(out, *nonce);
                ty::PONG
            }
            TrackerReply::Error { code, message } => put_error(out, *code, message),
        }
    }
}

impl Decode<'_> for TrackerReply {
    fn decode(t: u8, body: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(body);
        let msg = match t {
            ty::OK => TrackerReply::Ok,
            ty::FILE_LIST => TrackerReply::FileList {
                files: get_files(&mut d)?,
            },
            ty::RECORD => TrackerReply::Record {
                record: get_record(&mut d)?,
            },
            ty::HOLDERS | ty::HOLDERS_AT => TrackerReply::Holders {
                holders: get_holders(&mut d, t == ty::HOLDERS_AT)?,
                sited: t == ty::HOLDERS_AT,
            },
            ty::PONG => TrackerReply::Pong { nonce: d.u64()? },
            ty::ERROR => {
                let (code, message) = get_error(&mut d)?;
                TrackerReply::Error { code, message }
            }
            other => return Err(unexpected(other, "a tracker's client")),
        };
        d.finish()?;
        Ok(msg)
    }
}

impl Answer for TrackerReply {
    fn into_result(self) -> Result<Self> {
        match self {
            TrackerReply::Error { code, message } => Err(Error::Remote { code, message }),
            m => Ok(m),
        }
    }

    fn error(e: &Error) -> Self {
        let (code, message) = error_parts(e);
        TrackerReply::Error { code, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::tests::{record, round_trip, truncations};
    use proptest::prelude::*;

    fn requests() -> Vec<TrackerRequest> {
        vec![
            TrackerRequest::NewFile {
                publisher: "A".into(),
                record: record(),
            },
            TrackerRequest::NewFile {
                publisher: String::new(),
                record: crate::wire::message::tests::folder_record().versioned(3, "peer-7"),
            },
            TrackerRequest::ListFiles,
            TrackerRequest::GetRecord {
                name: "a.bin".into(),
            },
            TrackerRequest::WhoHas {
                name: "a.bin".into(),
                md5: None,
                site: None,
            },
            TrackerRequest::WhoHas {
                name: "a.bin".into(),
                md5: Some([7; 16]),
                site: None,
            },
            TrackerRequest::WhoHas {
                name: "a.bin".into(),
                md5: None,
                site: Some("lab-2".into()),
            },
            TrackerRequest::WhoHas {
                name: "a.bin".into(),
                md5: Some([7; 16]),
                site: Some("dc_1".into()),
            },
            TrackerRequest::Ping { nonce: 7 },
        ]
    }

    fn replies() -> Vec<TrackerReply> {
        vec![
            TrackerReply::Ok,
            TrackerReply::FileList {
                files: vec![
                    FileSummary {
                        name: "a".into(),
                        size: 5,
                        md5: [0; 16],
                        holders: 2,
                        seeders: 1,
                        folder: None,
                        version: 1,
                        owner: String::new(),
                        older: 0,
                    },
                    FileSummary {
                        name: "photos".into(),
                        size: 7,
                        md5: [1; 16],
                        holders: 1,
                        seeders: 1,
                        folder: Some(3),
                        version: 12,
                        owner: "owner-1".into(),
                        older: 5,
                    },
                ],
            },
            TrackerReply::Record { record: record() },
            TrackerReply::Record {
                record: crate::wire::message::tests::folder_record(),
            },
            TrackerReply::Holders {
                holders: vec![
                    Holder {
                        peer_id: "B".into(),
                        host: "127.0.0.1".into(),
                        port: 1,
                        blocks: 20,
                        complete: false,
                        site: String::new(),
                    },
                    Holder {
                        peer_id: "C".into(),
                        host: "seed.lan".into(),
                        port: 2,
                        blocks: 40,
                        complete: true,
                        site: String::new(),
                    },
                ],
                sited: false,
            },
            TrackerReply::Holders {
                holders: vec![
                    Holder {
                        peer_id: "B".into(),
                        host: "10.1.0.2".into(),
                        port: 1,
                        blocks: 20,
                        complete: false,
                        site: "lab".into(),
                    },
                    Holder {
                        peer_id: "C".into(),
                        host: "seed.lan".into(),
                        port: 2,
                        blocks: 40,
                        complete: true,
                        site: String::new(),
                    },
                ],
                sited: true,
            },
            TrackerReply::Pong { nonce: 7 },
            TrackerReply::Error {
                code: 2,
                message: "no such file".into(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in requests() {
            assert_eq!(round_trip(&m), m, "{}", m.kind());
        }
        for m in replies() {
            assert_eq!(round_trip(&m), m, "{}", m.kind());
        }
        truncations(&requests());
        truncations(&replies());
    }

    #[test]
    fn each_side_takes_only_its_own_messages() {
        // An answer sent to the tracker, a peer-protocol request, junk.
        for t in [
            ty::OK,
            ty::HOLDERS,
            ty::OPEN,
            ty::REQUEST,
            ty::BYE,
            0x01,
            0x42,
        ] {
            assert!(TrackerRequest::decode(t, b"").is_err(), "0x{t:02x}");
        }
        for t in [ty::NEW_FILE, ty::LIST_FILES, ty::BLOCK, ty::OPENED] {
            assert!(TrackerReply::decode(t, b"").is_err(), "0x{t:02x}");
        }
        assert!(
            TrackerReply::decode(ty::OK, b"x").is_err(),
            "trailing bytes"
        );
        let mut b = Vec::new();
        put_str(&mut b, "../etc/passwd");
        assert!(TrackerRequest::decode(ty::GET_RECORD, &b).is_err());
        let mut bad = record();
        bad.piece_hashes.pop();
        let mut buf = Vec::new();
        TrackerReply::Record { record: bad }.encode(&mut buf);
        assert!(TrackerReply::decode(ty::RECORD, &buf[5..]).is_err());
        let e = TrackerReply::error(&Error::NotFound("x".repeat(5000)));
        let TrackerReply::Error { code, message } = &e else {
            unreachable!()
        };
        assert_eq!((*code, message.len()), (2, 1024));
        assert!(matches!(
            e.into_result(),
            Err(Error::Remote { code: 2, .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(t in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = TrackerRequest::decode(t, &body);
            let _ = TrackerReply::decode(t, &body);
        }
    }
}

#[cfg(test)]
mod site_bytes {
    use super::*;

    /// The HOLDERS_AT example of PROTOCOL.md §5.2, byte for byte.
    #[test]
    fn holders_at_is_as_documented() {
        let m = TrackerReply::Holders {
            holders: vec![Holder {
                peer_id: "B".into(),
                host: "10.1.0.2".into(),
                port: 9000,
                blocks: 40,
                complete: true,
                site: "lab".into(),
            }],
            sited: true,
        };
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(
            crate::units::hex(&out),
            "00000022880000000100014200083130\
             2e312e302e32232800000000000000280100036c6162"
        );
    }
}
