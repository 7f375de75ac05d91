//! The naming rules. Every name that reaches a path is checked here first.

use crate::error::{Error, Result};

pub const MAX_NAME_BYTES: usize = 255;
pub const MAX_PEER_ID_BYTES: usize = 64;

/// A file name is a single plain path component: no separators, no `..`,
/// no NUL or control characters, 1..=255 bytes.
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
    if name.contains("..") {
        return bad("a file name cannot contain '..'");
    }
    if name == "." {
        return bad("'.' is not a file name");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("a file name cannot contain NUL or control characters");
    }
    if name.trim() != name {
        return bad("a file name cannot start or end with white space");
    }
    Ok(())
}

/// A peer id: letters, digits, `-` and `_`, 1..=64 bytes.
pub fn check_peer_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_PEER_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::BadName {
            name: id.chars().take(80).collect(),
            reason: "a peer id is 1 to 64 letters, digits, '-' or '_'",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "a..b",
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
    fn peer_ids() {
        assert!(check_peer_id("A").is_ok());
        assert!(check_peer_id("peer-01_x").is_ok());
        for id in ["", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(check_peer_id(id).is_err(), "{id:?}");
        }
    }
}
