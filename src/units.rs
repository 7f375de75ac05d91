//! Human units: `500K`, `10M`, `1G` for rates and sizes; MB/s formatting.

use crate::error::{Error, Result};

/// Parses `123`, `500K`, `10M`, `1G` (binary multiples: KiB, MiB, GiB;
/// a trailing `B`, `iB` or `/s` is accepted, in any case: `10mb`,
/// `10MB`, `10m` and `10MiB/s` are all 10 MiB) into bytes.
pub fn parse_size(text: &str) -> Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let t = lower.as_str();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(t);
    let (digits, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(bad_size(text)),
            };
            (&t[..i], mult)
        }
        _ => (t, 1),
    };
    let value: f64 = digits.parse().map_err(|_| bad_size(text))?;
    if !value.is_finite() || value < 0.0 {
        return Err(bad_size(text));
    }
    let bytes = value * mult as f64;
    if bytes > u64::MAX as f64 / 2.0 {
        return Err(bad_size(text));
    }
    Ok(bytes.round() as u64)
}

fn bad_size(text: &str) -> Error {
    Error::Usage(format!(
        "cannot read {text:?} as a size: use a number with an optional K, M or G suffix (KiB, MiB, GiB), e.g. 500K or 10M"
    ))
}

/// Megabytes (10^6 bytes) per second, the unit of every MBps we print.
pub fn mbps(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        bytes as f64 / 1e6 / secs
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `done` of `total`, from 0 to 1; 1 for nothing to do, and 1 only when
/// `done` reaches `total`.
pub fn fraction(done: u64, total: u64) -> f64 {
    if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).clamp(0.0, 1.0)
    }
}

/// `fraction` as a percentage for people, never 100 until `complete`:
/// 1,999 of 2,000 blocks is 99.9 (one decimal would round it up to 100.0).
/// Every progress view, terminal or web, uses this.
pub fn percent(fraction: f64, complete: bool) -> f64 {
    if complete {
        100.0
    } else {
        (fraction.clamp(0.0, 1.0) * 100.0).min(99.9)
    }
}

/// Bytes for people: `999 B`, `1.5 kB`, `734.0 MB` (powers of 10, like
/// every MB/s the peer prints).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 999.95 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A rate limit as the user gave it (binary: `K`, `M`, `G` are KiB, MiB,
/// GiB) and, beside it, in the MB/s every rate display uses, so the two
/// never look alike with different meanings: `10 MiB/s (10.5 MB/s)`.
pub fn limit_text(bytes_per_sec: u64) -> String {
    let binary = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        .into_iter()
        .find(|&(unit, _)| bytes_per_sec >= unit)
        .map_or(format!("{bytes_per_sec} B/s"), |(unit, name)| {
            let v = bytes_per_sec as f64 / unit as f64;
            if v.fract() == 0.0 {
                format!("{v:.0} {name}/s")
            } else {
                format!("{v:.1} {name}/s")
            }
        });
    format!("{binary} ({:.1} MB/s)", bytes_per_sec as f64 / 1e6)
}

/// `n` and its noun, singular for 1: "1 more peer", "3 more peers".
pub fn count_of(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_100_percent_until_complete() {
        assert_eq!(percent(1999.0 / 2000.0, false), 99.9);
        assert_eq!(percent(1.0, false), 99.9);
        assert_eq!(percent(0.5, false), 50.0);
        assert_eq!(percent(-1.0, false), 0.0);
        assert_eq!(percent(0.2, true), 100.0);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500K").unwrap(), 500 * 1024);
        assert_eq!(parse_size("10M").unwrap(), 10 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5M").unwrap(), 3 << 19);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_size("2m/s").unwrap(), 2 << 20);
        for any_case in ["10mb", "10MB", "10m", "10Mb", "10mib", "10MiB/s", "10M/S"] {
            assert_eq!(parse_size(any_case).unwrap(), 10 << 20, "{any_case}");
        }
        assert_eq!(parse_size("500kb").unwrap(), 500 << 10);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        for bad in ["", "K", "10Q", "-1M", "abc", "nanM", "10bb"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hex_digits() {
        assert_eq!(hex(&[0, 0xab, 0x0f]), "00ab0f");
    }

    #[test]
    fn counts_take_the_singular_for_one() {
        assert_eq!(count_of(1, "more peer", "more peers"), "1 more peer");
        assert_eq!(count_of(0, "more peer", "more peers"), "0 more peers");
        assert_eq!(count_of(950, "more row", "more rows"), "950 more rows");
    }

    #[test]
    fn a_limit_shows_both_units() {
        assert_eq!(limit_text(10 << 20), "10 MiB/s (10.5 MB/s)");
        assert_eq!(limit_text(500 << 10), "500 KiB/s (0.5 MB/s)");
        assert_eq!(limit_text(1536 << 20), "1.5 GiB/s (1610.6 MB/s)");
        assert_eq!(limit_text(100), "100 B/s (0.0 MB/s)");
    }
}
