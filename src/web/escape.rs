//! Text that crosses into HTML, JSON, URLs and headers, escaped for each.
//! Pure functions: everything a user or a remote side controls (file names,
//! peer ids, error messages) goes through one of these before it is sent.

use std::fmt::Write as _;

/// `text` safe between HTML tags and inside a double- or single-quoted
/// attribute.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as a JSON string literal, quotes included. `<`, `>` and `&` are
/// escaped too, so the JSON stays inert even if something renders it as
/// HTML; U+2028/2029 because some JavaScript parsers take them as newlines.
pub fn json_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number for a ratio or rate: finite, three decimals.
pub fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "0".into()
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so the
/// result fits a path segment, a query value or `filename*=`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as in a
/// form's query). `None` for a broken escape or bytes that are not UTF-8.
pub fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The first value of `key` in a query string (`a=1&b=2`), decoded.
/// `None` when absent; `Some(None)` when present but badly encoded.
pub fn query_param(query: &str, key: &str) -> Option<Option<String>> {
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true).as_deref() == Some(key)).then(|| percent_decode(v, true))
        })
        .next()
}

/// A `Content-Disposition` value that makes a browser save the response
/// under `name`: an ASCII fallback for old clients and the exact UTF-8
/// name in `filename*` (RFC 6266). Never contains CR, LF or a quote
/// inside the quoted part.
pub fn attachment(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        percent_encode(name)
    )
}

pub use crate::units::human_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup_and_quotes() {
        assert_eq!(
            html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(html("naïve résumé.pdf"), "naïve résumé.pdf");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("plain"), r#""plain""#);
        assert_eq!(json_str("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json_str("l1\nl2\t\r"), r#""l1\nl2\t\r""#);
        assert_eq!(json_str("\u{1}\u{1f}\u{7f}"), r#""\u0001\u001f\u007f""#);
        assert_eq!(
            json_str("</script><!--&"),
            r#""\u003c/script\u003e\u003c!--\u0026""#
        );
        assert_eq!(json_str("\u{2028}"), r#""\u2028""#);
        assert_eq!(json_str("é😀"), "\"é😀\"");
        assert_eq!(json_num(f64::NAN), "0");
        assert_eq!(json_num(0.5), "0.500");
    }

    #[test]
    fn percent_round_trip() {
        for s in ["a b.txt", "naïve/résumé?&=#%+", "", "~-._"] {
            let enc = percent_encode(s);
            assert!(enc.bytes().all(|b| b.is_ascii_graphic()), "{enc}");
            assert_eq!(percent_decode(&enc, false).as_deref(), Some(s));
            assert_eq!(percent_decode(&enc, true).as_deref(), Some(s));
        }
        assert_eq!(percent_decode("a+b", true).as_deref(), Some("a b"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        for bad in ["%", "%4", "%zz", "%ff%fe", "%C3"] {
            assert_eq!(percent_decode(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn query_params() {
        let q = "name=my%20file.txt&x=1&name=second&bad=%zz&flag";
        assert_eq!(query_param(q, "name"), Some(Some("my file.txt".into())));
        assert_eq!(query_param(q, "x"), Some(Some("1".into())));
        assert_eq!(query_param(q, "flag"), Some(Some(String::new())));
        assert_eq!(query_param(q, "bad"), Some(None));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(query_param("", "name"), None);
    }

    #[test]
    fn attachment_headers_are_safe() {
        assert_eq!(
            attachment("a.txt"),
            "attachment; filename=\"a.txt\"; filename*=UTF-8''a.txt"
        );
        let h = attachment("x\"y\\z é\r\n.bin");
        assert!(!h.contains('\r') && !h.contains('\n'), "{h}");
        assert!(
            h.starts_with("attachment; filename=\"x_y_z ___.bin\""),
            "{h}"
        );
        assert!(
            h.ends_with("filename*=UTF-8''x%22y%5Cz%20%C3%A9%0D%0A.bin"),
            "{h}"
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1500), "1.5 kB");
        assert_eq!(human_bytes(734_003_200), "734.0 MB");
        assert_eq!(human_bytes(999_999), "1.0 MB");
        assert_eq!(human_bytes(u64::MAX), "18446.7 PB");
    }
}
