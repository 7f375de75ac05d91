//! Follow patterns: a glob on item names. `*` is any run of characters
//! (none included), `?` one character, `[abc]` and `[a-z]` one character of
//! a class; everything else stands for itself. Names are plain names (no
//! `/`), so a pattern has none either, and `*` has no path to stop at.
//! Pure: parsed and checked once, matched in O(name × pattern) at worst.

use crate::error::{Error, Result};
use crate::names::MAX_NAME_BYTES;
use std::fmt;

/// A checked glob, with the text it was written as (what `following`
/// prints and `<dir>/follow` keeps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    AnyOne,
    AnyRun,
    /// Inclusive ranges; `[abc]` is three ranges of one character.
    Class(Vec<(char, char)>),
}

impl Pattern {
    /// Checks and compiles `text`: non-empty, at most 255 bytes, no `/`
    /// and no control character (a pattern is one line of `<dir>/follow`),
    /// every `[` closed by a `]`, ranges in order.
    pub fn parse(text: &str) -> Result<Pattern> {
        let bad = |why: String| Err(Error::Usage(format!("bad follow pattern {text:?}: {why}")));
        if text.is_empty() {
            return bad("it is empty (use '*' to follow everything)".into());
        }
        if text.len() > MAX_NAME_BYTES {
            return bad(format!("it is longer than {MAX_NAME_BYTES} bytes"));
        }
        if text.contains('/') {
            return bad("item names have no '/', so a pattern cannot have one either".into());
        }
        if text.chars().any(char::is_control) {
            return bad("it contains a control character".into());
        }
        let mut tokens = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => Token::AnyRun,
                '?' => Token::AnyOne,
                '[' => match class(&mut chars) {
                    Ok(ranges) => Token::Class(ranges),
                    Err(why) => return bad(why),
                },
                c => Token::Char(c),
            };
            // `**` matches what `*` does: one is enough to backtrack over.
            if token == Token::AnyRun && tokens.last() == Some(&Token::AnyRun) {
                continue;
            }
            tokens.push(token);
        }
        Ok(Pattern {
            text: text.to_string(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the whole of `name` matches. The usual glob walk: on a
    /// mismatch, go back to the last `*` and let it take one more
    /// character; the last `*` is the only one worth retrying.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let (mut t, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match self.tokens.get(t) {
                Some(Token::AnyRun) => {
                    star = Some((t, n));
                    t += 1;
                }
                Some(tok) if tok.takes(name[n]) => {
                    t += 1;
                    n += 1;
                }
                _ => match star {
                    Some((st, sn)) => {
                        t = st + 1;
                        n = sn + 1;
                        star = Some((st, sn + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[t..].iter().all(|tok| *tok == Token::AnyRun)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Token {
    /// Whether this one-character token takes `c`.
    fn takes(&self, c: char) -> bool {
        match self {
            Token::Char(x) => *x == c,
            Token::AnyOne => true,
            Token::Class(ranges) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)),
            Token::AnyRun => false,
        }
    }
}

/// The rest of a class after its `[`, up to and with its `]`. A `]` right
/// after the `[` is a member (so `[]]` is a class of one `]`), and so is a
/// `-` first or last. A leading `!` or `^` is refused rather than read
/// as a member: in a shell it negates, and a follower that silently
/// fetched the opposite set would be worse than an error.
fn class(chars: &mut std::str::Chars<'_>) -> std::result::Result<Vec<(char, char)>, String> {
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let Some(c) = chars.next() else {
            return Err("a '[' is not closed by a ']' (write [[] for a '[' itself)".into());
        };
        match c {
            ']' if !first => return Ok(ranges),
            '!' | '^' if first => {
                return Err(format!(
                    "[{c}...] (a negated class) is not supported; list the characters wanted"
                ))
            }
            lo => {
                let mut ahead = chars.clone();
                let hi = match (ahead.next(), ahead.next()) {
                    (Some('-'), Some(hi)) if hi != ']' => {
                        chars.next();
                        chars.next();
                        hi
                    }
                    _ => lo,
                };
                if hi < lo {
                    return Err(format!("the range {lo}-{hi} is backwards; write {hi}-{lo}"));
                }
                ranges.push((lo, hi));
            }
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(name)
    }

    #[test]
    fn a_star_alone_follows_everything() {
        for name in ["a", "logs-1.txt", "x y", "é.bin", "[weird]"] {
            assert!(m("*", name), "{name}");
        }
    }

    #[test]
    fn a_star_is_any_run_including_none() {
        assert!(m("logs-*", "logs-"));
        assert!(m("logs-*", "logs-2024.tar"));
        assert!(!m("logs-*", "old-logs-1"));
        assert!(!m("logs-*", "logs"));
        assert!(m("*.iso", "debian.iso"));
        assert!(!m("*.iso", "debian.iso.part"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "a-b-b-c-c"));
        assert!(!m("a*b*c", "a-b-b-c-d"));
        assert!(m("**x", "yyx"));
    }

    #[test]
    fn a_question_mark_is_one_character_not_one_byte() {
        assert!(m("v?.img", "v2.img"));
        assert!(m("v?.img", "vé.img"));
        assert!(!m("v?.img", "v.img"));
        assert!(!m("v?.img", "v10.img"));
    }

    #[test]
    fn classes_take_listed_characters_and_ranges() {
        assert!(m("disk[abc]", "diskb"));
        assert!(!m("disk[abc]", "diskd"));
        assert!(m("v[0-9][0-9]", "v42"));
        assert!(!m("v[0-9][0-9]", "v4x"));
        assert!(m("[a-cx-z]", "y"));
        assert!(!m("[a-cx-z]", "m"));
        assert!(m("[-a]", "-"));
        assert!(m("[a-]", "-"));
        assert!(m("[]]", "]"));
        assert!(m("[[]x", "[x"));
    }

    #[test]
    fn everything_else_is_literal() {
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "axb"));
        assert!(m("x+(1)", "x+(1)"));
        assert!(m("]", "]"));
        assert!(!m("logs", "Logs"), "case matters, as in names");
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        for (bad, says) in [
            ("", "empty"),
            ("a/b", "'/'"),
            ("a\nb", "control"),
            ("[abc", "not closed"),
            ("[!a]", "negated"),
            ("[z-a]", "backwards"),
        ] {
            let e = Pattern::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
            assert!(e.starts_with("bad follow pattern"), "{e}");
        }
        assert!(Pattern::parse(&"a".repeat(255)).is_ok());
        let e = Pattern::parse(&"a".repeat(256)).unwrap_err().to_string();
        assert!(e.contains("255 bytes"), "{e}");
    }

    #[test]
    fn the_text_is_kept_as_written() {
        let p = Pattern::parse("logs-**").unwrap();
        assert_eq!(p.as_str(), "logs-**");
        assert_eq!(p.to_string(), "logs-**");
    }

    #[test]
    fn many_stars_do_not_blow_up() {
        let p = Pattern::parse(&"a*".repeat(60)).unwrap();
        assert!(!p.matches(&"a".repeat(59)));
        assert!(p.matches(&"a".repeat(200)));
    }
}
