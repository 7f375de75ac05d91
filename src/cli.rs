//! The command-line parsing both binaries share, by hand (the card allows
//! no CLI crate): flags as `--x value` or `--x=value`, repeated flags,
//! `-h`/`--help`, and errors as the text that follows `error: `. Arguments
//! arrive as `OsString`s, so one that is not UTF-8 is an error, never a
//! panic. Also the web UI's three flags, which both binaries take.

use crate::names::parse_host_name;
use std::ffi::{OsStr, OsString};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::ffi::OsStrExt;

/// One argument, as `Parser::next_arg` sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Arg {
    /// `-h` or `--help`.
    Help,
    /// `--name` or `--name=value` (the value is taken with `Parser::value`).
    Flag(String),
    /// Anything else (`-` included).
    Positional(String),
}

/// Walks the arguments after the program name.
pub struct Parser {
    args: std::vec::IntoIter<OsString>,
    /// The flag last returned, and its `=value` if it had one and it has
    /// not been taken yet.
    flag: String,
    inline: Option<OsString>,
}

impl Parser {
    pub fn new(args: impl IntoIterator<Item = OsString>) -> Parser {
        Parser {
            args: args.into_iter().collect::<Vec<_>>().into_iter(),
            flag: String::new(),
            inline: None,
        }
    }

    /// The next argument, or `None` at the end. A `--flag=value` whose
    /// value the caller did not take is an error (`--serve=yes`).
    pub fn next_arg(&mut self) -> Result<Option<Arg>, String> {
        if self.inline.take().is_some() {
            return Err(format!("{} takes no value", self.flag));
        }
        let Some(arg) = self.args.next() else {
            return Ok(None);
        };
        let bytes = arg.as_bytes();
        if bytes.starts_with(b"--") {
            if let Some(eq) = bytes.iter().position(|&b| b == b'=') {
                self.flag = utf8(OsStr::from_bytes(&bytes[..eq]))?;
                self.inline = Some(OsStr::from_bytes(&bytes[eq + 1..]).to_owned());
                return Ok(Some(Arg::Flag(self.flag.clone())));
            }
        }
        let text = utf8(&arg)?;
        Ok(Some(match text.as_str() {
            "-h" | "--help" => Arg::Help,
            s if s.starts_with('-') && s.len() > 1 => {
                self.flag = text.clone();
                Arg::Flag(text)
            }
            _ => Arg::Positional(text),
        }))
    }

    /// The value of the flag `next_arg` just returned: after its `=`, or the
    /// next argument.
    pub fn os_value(&mut self) -> Result<OsString, String> {
        self.inline
            .take()
            .or_else(|| self.args.next())
            .ok_or_else(|| format!("{} needs a value", self.flag))
    }

    /// `os_value`, which must be UTF-8.
    pub fn value(&mut self) -> Result<String, String> {
        let v = self.os_value()?;
        v.into_string()
            .map_err(|v| format!("{} takes UTF-8 text, not {v:?}", self.flag))
    }

    /// `value`, parsed; `expects` says what it should have been.
    pub fn parsed<T: std::str::FromStr>(&mut self, expects: &str) -> Result<T, String> {
        let v = self.value()?;
        v.trim()
            .parse()
            .map_err(|_| format!("{} expects {expects}, got {v:?}", self.flag))
    }
}

fn utf8(arg: &OsStr) -> Result<String, String> {
    arg.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("the argument {arg:?} is not valid UTF-8"))
}

/// Where a web UI listens unless `--http-bind` says otherwise: this
/// machine only.
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `--http PORT [--http-bind ADDR] [--http-host NAME]...`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// 0 picks a free port (printed at start).
    pub port: u16,
    pub bind: IpAddr,
    /// Host names accepted besides IP literals and `localhost`, lower case.
    pub hosts: Vec<String>,
}

impl HttpConfig {
    pub fn on_port(port: u16) -> HttpConfig {
        HttpConfig {
            port,
            bind: DEFAULT_BIND,
            hosts: Vec::new(),
        }
    }
}

/// Collects the web UI's flags while a binary parses its arguments.
#[derive(Default, Debug)]
pub struct HttpFlags {
    port: Option<u16>,
    bind: Option<IpAddr>,
    hosts: Vec<String>,
}

impl HttpFlags {
    /// Takes `flag` and its value if it is one of the three; `Ok(false)`
    /// if it is not.
    pub fn take(&mut self, flag: &str, p: &mut Parser) -> Result<bool, String> {
        match flag {
            "--http" => self.port = Some(p.parsed("a port number from 0 to 65535")?),
            "--http-bind" => {
                self.bind = Some(p.parsed("an IP address such as 127.0.0.1")?);
            }
            "--http-host" => self.hosts.push(parse_host_name(&p.value()?)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The web UI's settings if `--http` asked for one; an error if
    /// `--http-bind` or `--http-host` came without it.
    pub fn finish(self) -> Result<Option<HttpConfig>, String> {
        match self.port {
            Some(port) => Ok(Some(HttpConfig {
                port,
                bind: self.bind.unwrap_or(DEFAULT_BIND),
                hosts: self.hosts,
            })),
            None if self.bind.is_some() || !self.hosts.is_empty() => {
                Err("--http-bind and --http-host need --http PORT".into())
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn parser(args: &[&str]) -> Parser {
        Parser::new(args.iter().map(OsString::from))
    }

    #[test]
    fn flags_values_and_positionals() {
        let mut p = parser(&["A", "--x", "1", "--y=2", "-", "--z", "-h", "--help"]);
        assert_eq!(p.next_arg(), Ok(Some(Arg::Positional("A".into()))));
        assert_eq!(p.next_arg(), Ok(Some(Arg::Flag("--x".into()))));
        assert_eq!(p.value().as_deref(), Ok("1"));
        assert_eq!(p.next_arg(), Ok(Some(Arg::Flag("--y".into()))));
        assert_eq!(p.parsed::<u8>("a number"), Ok(2));
        assert_eq!(p.next_arg(), Ok(Some(Arg::Positional("-".into()))));
        assert_eq!(p.next_arg(), Ok(Some(Arg::Flag("--z".into()))));
        assert_eq!(p.next_arg(), Ok(Some(Arg::Help)));
        assert_eq!(p.next_arg(), Ok(Some(Arg::Help)));
        assert_eq!(p.next_arg(), Ok(None));
    }

    #[test]
    fn mistakes() {
        let mut p = parser(&["--x"]);
        p.next_arg().unwrap();
        assert_eq!(p.value().unwrap_err(), "--x needs a value");
        let mut p = parser(&["--serve=yes"]);
        p.next_arg().unwrap();
        assert_eq!(p.next_arg().unwrap_err(), "--serve takes no value");
        let mut p = parser(&["--n", "x"]);
        p.next_arg().unwrap();
        let e = p.parsed::<u8>("a number").unwrap_err();
        assert_eq!(e, "--n expects a number, got \"x\"");
    }

    #[test]
    fn non_utf8_is_an_error_not_a_panic() {
        let bad = || OsString::from_vec(vec![b'a', 0xff, b'b']);
        let e = Parser::new([bad()]).next_arg().unwrap_err();
        assert!(e.contains("not valid UTF-8"), "{e}");
        let mut p = Parser::new([OsString::from("--dir"), bad()]);
        p.next_arg().unwrap();
        assert_eq!(p.os_value(), Ok(bad()), "a path may be any bytes");
        let mut p = Parser::new([OsString::from("--get"), bad()]);
        p.next_arg().unwrap();
        assert!(p.value().unwrap_err().contains("UTF-8"));
        let mut inline = b"--data=".to_vec();
        inline.push(0xff);
        let mut p = Parser::new([OsString::from_vec(inline)]);
        assert_eq!(p.next_arg(), Ok(Some(Arg::Flag("--data".into()))));
        assert_eq!(p.os_value(), Ok(OsString::from_vec(vec![0xff])));
    }

    #[test]
    fn web_flags() {
        let take_all = |args: &[&str]| -> Result<Option<HttpConfig>, String> {
            let mut p = parser(args);
            let mut h = HttpFlags::default();
            while let Some(Arg::Flag(f)) = p.next_arg()? {
                assert!(h.take(&f, &mut p)?, "{f}");
            }
            h.finish()
        };
        assert_eq!(take_all(&[]), Ok(None));
        assert_eq!(
            take_all(&["--http", "80"]),
            Ok(Some(HttpConfig::on_port(80)))
        );
        let h = take_all(&["--http-host=A.lan", "--http=0", "--http-bind", "::"]);
        let h = h.unwrap().unwrap();
        assert_eq!((h.port, h.bind.to_string()), (0, "::".into()));
        assert_eq!(h.hosts, vec!["a.lan"]);
        assert!(take_all(&["--http-bind", "::"])
            .unwrap_err()
            .contains("need --http"));
        assert!(take_all(&["--http", "x"])
            .unwrap_err()
            .contains("0 to 65535"));
    }
}
