//! The UDP datagrams: the tracker's exchange (`tracker`, CONNECT and
//! ANNOUNCE) and tracker-less search (`search`, HELLO, QUERY and
//! CHUNK_INFO). What they share is here, written once: the 4-byte
//! header (magic `p2`, version, type) and how an IP address is written
//! (docs/PROTOCOL.md §11.3 and §12.1).

pub mod search;
pub mod tracker;

use super::codec::{put_u8, Decoder};
use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The first two bytes of every datagram: ASCII `p2`.
pub const MAGIC: [u8; 2] = *b"p2";
/// The datagram format version; anything else is dropped.
pub const VERSION: u8 = 1;
/// Magic (2), version (1), type (1).
pub const HEADER_LEN: usize = 4;

/// Address families: a family byte, then the address's 4 or 16 bytes.
const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

/// Appends the header of a datagram of type `ty`.
pub fn put_header(out: &mut Vec<u8>, ty: u8) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(ty);
}

/// Checks a datagram's head: at most `max` bytes, our magic and version,
/// and a type byte. The type, and a decoder over the body. `kind` names
/// the datagram in errors.
pub fn open<'a>(bytes: &'a [u8], max: usize, kind: &str) -> Result<(u8, Decoder<'a>)> {
    if bytes.len() > max {
        return Err(Error::protocol(format!(
            "{kind} of {} bytes exceeds {max}",
            bytes.len()
        )));
    }
    if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
        return Err(Error::protocol("not a p2pshare datagram"));
    }
    if bytes[2] != VERSION {
        return Err(Error::protocol(format!(
            "{kind} version {} (this side speaks {VERSION})",
            bytes[2]
        )));
    }
    Ok((bytes[3], Decoder::new(&bytes[HEADER_LEN..])))
}

/// Appends `ip`: its family (4 or 6), then its bytes.
pub fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            put_u8(out, FAMILY_V4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            put_u8(out, FAMILY_V6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

/// An address as `put_ip` writes it; any other family is an error.
pub fn get_ip(d: &mut Decoder<'_>) -> Result<IpAddr> {
    match d.u8()? {
        FAMILY_V4 => Ok(IpAddr::V4(Ipv4Addr::from(d.array::<4>()?))),
        FAMILY_V6 => Ok(IpAddr::V6(Ipv6Addr::from(d.array::<16>()?))),
        other => Err(Error::protocol(format!("address family {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_as_family_then_bytes() {
        for (ip, hex) in [
            ("192.168.1.10", "04c0a8010a"),
            ("2001:db8::1", "0620010db8000000000000000000000001"),
        ] {
            let mut out = Vec::new();
            put_ip(&mut out, ip.parse().unwrap());
            assert_eq!(crate::units::hex(&out), hex);
            let mut d = Decoder::new(&out);
            assert_eq!(get_ip(&mut d).unwrap(), ip.parse::<IpAddr>().unwrap());
            d.finish().unwrap();
        }
        for bad in [&[0u8, 1, 2, 3, 4][..], &[5, 1, 2, 3, 4], &[4, 1, 2, 3]] {
            assert!(get_ip(&mut Decoder::new(bad)).is_err());
        }
    }

    #[test]
    fn a_head_is_size_magic_version_and_type() {
        let mut out = Vec::new();
        put_header(&mut out, 0x11);
        out.push(9);
        assert_eq!(out, [0x70, 0x32, 1, 0x11, 9]);
        let (ty, mut body) = open(&out, 5, "test").unwrap();
        assert_eq!((ty, body.u8().unwrap()), (0x11, 9));
        assert!(open(&out, 4, "test").is_err(), "over the limit");
        assert!(open(&out[..3], 5, "test").is_err(), "no type");
        for (i, v) in [(0, b'x'), (1, b'x'), (2, 2)] {
            let mut b = out.clone();
            b[i] = v;
            assert!(open(&b, 5, "test").is_err(), "byte {i}");
        }
    }
}
