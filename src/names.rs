//! The naming rules. Every name that reaches a path is checked here first.

use crate::error::{Error, Result};

pub const MAX_NAME_BYTES: usize = 255;
pub const MAX_PEER_ID_BYTES: usize = 64;

/// A file name is a single plain path component: 1..=255 bytes, not `.`
/// nor `..`, no `/` or `\\`, no NUL or control characters, no white space
/// at either end. Two dots inside a name (`a..b.txt`) are fine: only a
/// whole `..` component climbs out of a folder. docs/REFERENCE.md lists the same
/// rules in users' words.
pub fn check_file_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::BadName {
            name: name.chars().take(80).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("a file name cannot be empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("a file name is at most 255 bytes");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("a file name cannot contain '/' or '\\'");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not file names");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("a file name cannot contain NUL or control characters");
    }
    if name.trim() != name {
        return bad("a file name cannot start or end with white space");
    }
    Ok(())
}

/// A peer id: ASCII letters and digits, `-` and `_`, 1..=64 bytes.
pub fn check_peer_id(id: &str) -> Result<()> {
    if id_like(id, MAX_PEER_ID_BYTES) {
        Ok(())
    } else {
        Err(Error::BadName {
            name: id.chars().take(80).collect(),
            reason: "a peer id is 1 to 64 ASCII letters (a-z, A-Z), digits (0-9), '-' or '_'",
        })
    }
}

/// 1..=`max` bytes of ASCII letters, digits, `-` and `_`: the alphabet of
/// peer ids and site names.
fn id_like(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Longest site name (`--site`), in bytes.
pub const MAX_SITE_BYTES: usize = 64;

/// A site name (`--site`): the same alphabet as a peer id, 1..=64 bytes.
pub fn check_site(site: &str) -> Result<()> {
    if id_like(site, MAX_SITE_BYTES) {
        Ok(())
    } else {
        Err(Error::BadName {
            name: site.chars().take(80).collect(),
            reason: "a site name is 1 to 64 letters, digits, '-' or '_'",
        })
    }
}

/// Longest advertised host, in bytes.
pub const MAX_HOST_BYTES: usize = 255;

/// An advertised host: empty, or something shaped like a host name or an
/// IP address (no spaces, slashes or control bytes). The rule for HELLO,
/// CHUNK_INFO and ANNOUNCE alike.
pub fn valid_host(host: &str) -> bool {
    host.len() <= MAX_HOST_BYTES
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]%".contains(&b))
}

/// Checks a `--http-host` value: a DNS name (letters, digits, `-`, `.`),
/// returned in lower case without a trailing dot.
pub fn parse_host_name(text: &str) -> std::result::Result<String, String> {
    let name = text.trim_end_matches('.').to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(name)
    } else {
        Err(format!(
            "--http-host takes a host name such as p2p.lan, not {text:?}"
        ))
    }
}

/// Orders names as people count: `P1 < P2 < P10` (runs of digits
/// compare as numbers, the rest byte by byte), for every list of peers.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    // `P01` and `P1` count the same: then plain order decides, so the
    // order stays total.
    natural_only(a.as_bytes(), b.as_bytes()).then_with(|| a.cmp(b))
}

fn natural_only(mut a: &[u8], mut b: &[u8]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    loop {
        let (x, y) = match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(&x), Some(&y)) => (x, y),
        };
        if x.is_ascii_digit() && y.is_ascii_digit() {
            let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
            let (na, nb) = (run(a), run(b));
            let zeros = |d: &[u8]| d.iter().take_while(|&&c| c == b'0').count();
            let (da, db) = (&a[zeros(&a[..na])..na], &b[zeros(&b[..nb])..nb]);
            // Without leading zeros, the longer number is the larger.
            let by_value = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
            if by_value != Ordering::Equal {
                return by_value;
            }
            (a, b) = (&a[na..], &b[nb..]);
        } else {
            if x != y {
                return x.cmp(&y);
            }
            (a, b) = (&a[1..], &b[1..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_sort_as_people_count() {
        let mut ids = vec![
            "P10", "P2", "P1", "B", "A10b", "A9z", "P01", "p3", "P10a", "x007",
        ];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            ids,
            ["A9z", "A10b", "B", "P01", "P1", "P2", "P10", "P10a", "p3", "x007"]
        );
        assert_eq!(natural_cmp("", ""), std::cmp::Ordering::Equal);
        assert_eq!(natural_cmp("9", "10"), std::cmp::Ordering::Less);
        assert_eq!(
            natural_cmp("99999999999999999999999", "100000000000000000000000"),
            std::cmp::Ordering::Less
        );
    }

    #[test]
    fn plain_names_pass() {
        for n in [
            "a",
            "file.txt",
            "big-file_2.iso",
            "naïve résumé.pdf",
            ".hidden",
            "a.b.c",
        ] {
            assert!(check_file_name(n).is_ok(), "{n}");
        }
        assert!(check_file_name(&"x".repeat(255)).is_ok());
        for n in ["a..b.txt", "..hidden", "ends..", "..."] {
            assert!(check_file_name(n).is_ok(), "two dots inside: {n}");
        }
    }

    #[test]
    fn bad_names_fail() {
        let long = "x".repeat(256);
        for n in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "nul\0",
            "tab\t",
            "nl\n",
            "\x1b[31m",
            " lead",
            "trail ",
            &long,
            "/abs",
        ] {
            assert!(check_file_name(n).is_err(), "{n:?}");
        }
    }

    #[test]
    fn hosts() {
        for h in ["", "10.0.0.1", "[::1]", "fe80::1%eth0", "nas-1.lan", "a_b"] {
            assert!(valid_host(h), "{h:?}");
        }
        for h in ["a b", "a/b", "a\nb", &"x".repeat(256)] {
            assert!(!valid_host(h), "{h:?}");
        }
    }

    #[test]
    fn host_names_for_the_allowlist() {
        assert_eq!(parse_host_name("P2P.Lan.").unwrap(), "p2p.lan");
        assert_eq!(parse_host_name("nas-1").unwrap(), "nas-1");
        for bad in ["", ".", "a..b", "a b", "a/b", "a:80", &"x".repeat(64)] {
            assert!(parse_host_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn peer_ids() {
        assert!(check_peer_id("A").is_ok());
        assert!(check_peer_id("peer-01_x").is_ok());
        for id in ["", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(check_peer_id(id).is_err(), "{id:?}");
        }
    }
}
