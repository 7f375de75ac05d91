//! The peer's command line, read with the parser both binaries share
//! (`crate::cli`).

use crate::cli::{Arg, HttpConfig, HttpFlags, Parser};
use crate::error::{Error, Result};
use crate::names::{check_file_name, check_peer_id};
use crate::peer::follow::Pattern;
use crate::units::parse_size;
use crate::wire::DEFAULT_TRACKER_PORT;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

pub const USAGE: &str =
    "usage: peer <ID> <PORT> <TRACKER_HOST>[:<TRACKER_PORT>] [--tracker HOST[:PORT]]...
            [--dir DIR] [--serve] [--get FILE]... [--follow PATTERN]...
            [--upload-limit RATE] [--download-limit RATE]
            [--neighbor HOST:PORT]... [--ttl N] [--http PORT] [--bind ADDR]
            [--advertise HOST[:PORT]] [--http-bind ADDR] [--http-host NAME]...
            [--secret-file FILE] [--site NAME]
PATTERN: a glob on item names (* any run, ? one character, [a-z] a class;
  quote it: '*' follows everything); matching items are fetched and kept at
  their current version, and the patterns are kept in DIR/follow
--tracker HOST[:PORT]: another tracker (port 8000 unless given); the peer
  announces and publishes to every tracker and asks the first that answers
RATE: bytes per second with an optional K, M or G suffix, binary and in any
  case: 500K = 500 KiB/s, 10M = 10m = 10MB = 10 MiB/s, 1G = 1 GiB/s
--http PORT: the web UI and /metrics (0 picks a free port), on 127.0.0.1 unless
  --http-bind says otherwise; --http-host allows a host name besides IPs and
  localhost
--site NAME: where this peer is (letters, digits, '-', '_'); holders of its
  own site are preferred, and other sites give only what it lacks
--secret-file FILE: the swarm's shared secret (make one with
  openssl rand -hex 32 > FILE; chmod 600 FILE); without it the swarm is open";

/// Most `--neighbor`s: every query is sent to each of them.
pub const MAX_NEIGHBORS: usize = 64;
/// Most `--tracker`s: every announce goes to each of them.
pub const MAX_TRACKERS: usize = 16;

#[derive(Debug, Clone)]
pub struct Config {
    pub id: String,
    pub port: u16,
    /// `host:port` of the tracker (the positional one).
    pub tracker: String,
    /// `host:port` of each `--tracker`, beside `tracker`.
    pub more_trackers: Vec<String>,
    pub dir: PathBuf,
    pub serve: bool,
    pub gets: Vec<String>,
    /// `--follow` patterns, added to those kept in `<dir>/follow`.
    pub follows: Vec<Pattern>,
    pub upload_limit: Option<u64>,
    pub download_limit: Option<u64>,
    pub neighbors: Vec<String>,
    pub ttl: u8,
    /// The web UI (`--http`, `--http-bind`, `--http-host`).
    pub http: Option<HttpConfig>,
    pub bind: IpAddr,
    /// Host (and optionally port) other peers should dial.
    pub advertise: Option<(String, Option<u16>)>,
    /// The swarm secret's file (`--secret-file`): read by the binary at
    /// start (`secure::start`).
    pub secret_file: Option<PathBuf>,
    /// `--site`: where this peer is (a building, a data centre).
    pub site: Option<String>,
}

impl Config {
    /// The web UI's settings, when `--http` asks for it.
    pub fn http_config(&self) -> Option<HttpConfig> {
        self.http.clone()
    }

    /// Every tracker, the positional one first, each once.
    pub fn trackers(&self) -> Vec<String> {
        let mut all = vec![self.tracker.clone()];
        for t in &self.more_trackers {
            if !all.contains(t) {
                all.push(t.clone());
            }
        }
        all
    }

    /// The port other peers should dial.
    pub fn advertised_port(&self) -> u16 {
        self.advertise
            .as_ref()
            .and_then(|a| a.1)
            .unwrap_or(self.port)
    }
}

/// Parses the arguments after the program name. `Err(Usage)` for anything
/// wrong (an argument that is not UTF-8 included); `Ok(None)` for `--help`.
pub fn parse<I>(args: I) -> Result<Option<Config>>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    parse_args(Parser::new(args.into_iter().map(Into::into))).map_err(Error::Usage)
}

fn parse_args(mut p: Parser) -> std::result::Result<Option<Config>, String> {
    let mut positional = Vec::new();
    let mut cfg = Config {
        id: String::new(),
        port: 0,
        tracker: String::new(),
        more_trackers: Vec::new(),
        dir: PathBuf::new(),
        serve: false,
        gets: Vec::new(),
        follows: Vec::new(),
        upload_limit: None,
        download_limit: None,
        neighbors: Vec::new(),
        ttl: 3,
        http: None,
        bind: IpAddr::from([0, 0, 0, 0]),
        advertise: None,
        secret_file: None,
        site: None,
    };
    let mut dir = None;
    let mut http = HttpFlags::default();
    while let Some(arg) = p.next_arg()? {
        let flag = match arg {
            Arg::Help => return Ok(None),
            Arg::Flag(flag) => flag,
            Arg::Positional(text) => {
                positional.push(text);
                continue;
            }
        };
        match flag.as_str() {
            "--serve" => cfg.serve = true,
            "--dir" => dir = Some(PathBuf::from(p.os_value()?)),
            "--get" => {
                let name = p.value()?;
                check_file_name(&name).map_err(usage)?;
                cfg.gets.push(name);
            }
            "--follow" => {
                let pattern = Pattern::parse(&p.value()?).map_err(usage)?;
                if !cfg.follows.contains(&pattern) {
                    cfg.follows.push(pattern);
                }
            }
            "--upload-limit" => cfg.upload_limit = Some(rate(&p.value()?).map_err(usage)?),
            "--download-limit" => cfg.download_limit = Some(rate(&p.value()?).map_err(usage)?),
            "--neighbor" => {
                let n = p.value()?;
                split_host_port(&n, None).map_err(usage)?;
                cfg.neighbors.push(n);
            }
            "--tracker" => {
                let v = p.value()?;
                let (host, tport) = split_host_port(&v, Some(())).map_err(usage)?;
                let t =
                    crate::net::addrs::join_host_port(&host, tport.unwrap_or(DEFAULT_TRACKER_PORT));
                cfg.more_trackers.push(t);
            }
            "--ttl" => {
                let v = p.value()?;
                cfg.ttl = v
                    .parse()
                    .ok()
                    .filter(|t| (1..=16).contains(t))
                    .ok_or_else(|| format!("--ttl takes a number from 1 to 16, not {v:?}"))?;
            }
            "--bind" => {
                let v = p.value()?;
                cfg.bind = v
                    .parse()
                    .map_err(|_| format!("--bind takes an IP address, not {v:?}"))?;
            }
            "--secret-file" => cfg.secret_file = Some(PathBuf::from(p.os_value()?)),
            "--site" => {
                let site = p.value()?;
                crate::names::check_site(&site).map_err(usage)?;
                cfg.site = Some(site);
            }
            "--advertise" => {
                let v = p.value()?;
                let (host, port) = split_host_port(&v, Some(())).map_err(usage)?;
                cfg.advertise = Some((host, port));
            }
            other => {
                if !http.take(other, &mut p)? {
                    return Err(format!("unknown option {other}"));
                }
            }
        }
    }
    let [id, port_text, tracker] = positional.as_slice() else {
        return Err(format!(
            "expected 3 arguments (ID PORT TRACKER_HOST), got {}",
            positional.len()
        ));
    };
    cfg.http = http.finish()?;
    if cfg.neighbors.len() > MAX_NEIGHBORS {
        return Err(format!(
            "at most {MAX_NEIGHBORS} --neighbor (each query goes to every one), not {}",
            cfg.neighbors.len()
        ));
    }
    if cfg.more_trackers.len() >= MAX_TRACKERS {
        return Err(format!(
            "at most {MAX_TRACKERS} trackers in all (each is told every announce), not {}",
            cfg.more_trackers.len() + 1
        ));
    }
    check_peer_id(id).map_err(usage)?;
    cfg.id = id.clone();
    cfg.port = port(port_text, "PORT").map_err(usage)?;
    let (host, tport) = split_host_port(tracker, Some(())).map_err(usage)?;
    cfg.tracker = crate::net::addrs::join_host_port(&host, tport.unwrap_or(DEFAULT_TRACKER_PORT));
    cfg.dir = dir.unwrap_or_else(|| PathBuf::from("peers").join(id));
    Ok(Some(cfg))
}

/// The text of an error, for `parse_args`' `String` errors.
fn usage(e: Error) -> String {
    e.to_string()
}

fn rate(text: &str) -> Result<u64> {
    let r = parse_size(text)?;
    if r == 0 {
        return Err(Error::Usage("a rate limit must be above 0".into()));
    }
    Ok(r)
}

fn port(text: &str, what: &str) -> Result<u16> {
    text.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
        Error::Usage(format!(
            "{what} must be a port number from 1 to 65535, not {text:?}"
        ))
    })
}

/// Splits `host[:port]` (`[v6]:port` too). With `optional_port` None the
/// port is required.
fn split_host_port(text: &str, optional_port: Option<()>) -> Result<(String, Option<u16>)> {
    let bad = || Error::Usage(format!("cannot read {text:?} as HOST:PORT"));
    let (host, port_text) = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        (h.to_string(), after.strip_prefix(':'))
    } else if text.matches(':').count() > 1 {
        (text.to_string(), None)
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (text.to_string(), None),
        }
    };
    if host.is_empty() || host.len() > 255 {
        return Err(bad());
    }
    let port = match port_text {
        Some(p) => Some(port(p, "the port")?),
        None if optional_port.is_some() => None,
        None => return Err(bad()),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn contract_examples() {
        let c = parse(args("A 9000 127.0.0.1")).unwrap().unwrap();
        assert_eq!(
            (c.id.as_str(), c.port, c.tracker.as_str()),
            ("A", 9000, "127.0.0.1:8000")
        );
        assert_eq!(c.dir, PathBuf::from("peers/A"));
        let c = parse(args(
            "B 9001 tracker.lan:7000 --dir /tmp/b --serve --get x --get y --upload-limit 500K --download-limit 1G --advertise 1.2.3.4:9999 --ttl 4 --neighbor 10.0.0.2:9000",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.tracker, "tracker.lan:7000");
        assert!(c.serve);
        assert_eq!(c.gets, vec!["x", "y"]);
        assert_eq!(c.upload_limit, Some(500 * 1024));
        assert_eq!(c.download_limit, Some(1 << 30));
        assert_eq!(c.advertised_port(), 9999);
        assert_eq!(c.ttl, 4);
        assert_eq!(c.neighbors, vec!["10.0.0.2:9000"]);
        assert_eq!(c.http_config(), None);
    }

    #[test]
    fn a_site_is_a_plain_name() {
        let c = parse(args("A 9000 t --site lab-2")).unwrap().unwrap();
        assert_eq!(c.site.as_deref(), Some("lab-2"));
        assert_eq!(parse(args("A 9000 t")).unwrap().unwrap().site, None);
        for bad in [
            "A 9000 t --site",
            "A 9000 t --site a/b",
            "A 9000 t --site=''",
        ] {
            assert!(parse(args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn more_trackers_take_the_default_port_and_come_after_the_positional_one() {
        let c = parse(args(
            "A 9000 t1:7000 --tracker t2 --tracker=[::1]:7001 --tracker t1:7000",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.trackers(), ["t1:7000", "t2:8000", "[::1]:7001"]);
        assert_eq!(
            parse(args("A 9000 t")).unwrap().unwrap().trackers(),
            ["t:8000"]
        );
        for bad in [
            "A 9000 t --tracker",
            "A 9000 t --tracker t2:0",
            "A 9000 t --tracker :1",
        ] {
            assert!(parse(args(bad)).is_err(), "{bad}");
        }
        let many = (0..MAX_TRACKERS)
            .map(|i| format!("--tracker t{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(parse(args(&format!("A 9000 t {many}"))).is_err());
    }

    #[test]
    fn follow_patterns_repeat_and_are_checked() {
        let c = parse(args(
            "A 9000 t --follow * --follow logs-* --follow=v[0-9] --follow *",
        ))
        .unwrap()
        .unwrap();
        let texts: Vec<&str> = c.follows.iter().map(Pattern::as_str).collect();
        assert_eq!(texts, ["*", "logs-*", "v[0-9]"], "a repeat is dropped");
        assert!(parse(args("A 9000 t")).unwrap().unwrap().follows.is_empty());
        match parse(args("A 9000 t --follow x/y")) {
            Err(Error::Usage(e)) => assert!(e.contains("bad follow pattern"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(USAGE.contains("[--follow PATTERN]..."));
    }

    #[test]
    fn web_ui_flags() {
        let c = parse(args("A 9000 t --http 8080")).unwrap().unwrap();
        let h = c.http_config().unwrap();
        assert_eq!((h.port, h.bind.to_string()), (8080, "127.0.0.1".into()));
        assert!(h.hosts.is_empty());
        let c = parse(args(
            "A 9000 t --http 0 --http-bind 0.0.0.0 --http-host NAS.lan --http-host p2p",
        ))
        .unwrap()
        .unwrap();
        let h = c.http_config().unwrap();
        assert_eq!((h.port, h.bind.to_string()), (0, "0.0.0.0".into()));
        assert_eq!(h.hosts, vec!["nas.lan", "p2p"]);
        for bad in [
            "A 9000 t --http",
            "A 9000 t --http 70000",
            "A 9000 t --http x",
            "A 9000 t --http 1 --http-bind localhost",
            "A 9000 t --http 1 --http-host a/b",
            "A 9000 t --http-bind 0.0.0.0",
            "A 9000 t --http-host nas.lan",
        ] {
            assert!(parse(args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn mistakes_are_usage_errors() {
        for bad in [
            "A 9000",
            "A 0 t",
            "A 70000 t",
            "bad/id 9000 t",
            "A 9000 t --frobnicate",
            "A 9000 t --get",
            "A 9000 t --get ../x",
            "A 9000 t --upload-limit fast",
            "A 9000 t:notaport",
            "A 9000 t --neighbor nohostport",
            "A 9000 t --ttl 0",
            "A 9000 t --follow",
            "A 9000 t --follow a/b",
            "A 9000 t --follow [abc",
        ] {
            assert!(parse(args(bad)).is_err(), "{bad}");
        }
        assert!(parse(args("--help")).unwrap().is_none());
        assert!(parse(args("A 9000 t --serve=yes")).is_err());
        let many = (0..=MAX_NEIGHBORS)
            .map(|i| format!("--neighbor 10.0.0.1:{}", 1000 + i))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(parse(args(&format!("A 9000 t {many}"))).is_err());
    }

    #[test]
    fn equals_values() {
        let c = parse(args("A 9000 t --dir=/tmp/a --get=x --ttl=5 --http=0"))
            .unwrap()
            .unwrap();
        assert_eq!(c.dir, PathBuf::from("/tmp/a"));
        assert_eq!((c.gets.clone(), c.ttl), (vec!["x".to_string()], 5));
        assert_eq!(c.http_config().map(|h| h.port), Some(0));
    }

    #[test]
    fn non_utf8_arguments_are_usage_errors_not_panics() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'A', 0xff]);
        for args in [
            vec![bad.clone(), "9000".into(), "t".into()],
            vec![
                "A".into(),
                "9000".into(),
                "t".into(),
                "--get".into(),
                bad.clone(),
            ],
        ] {
            match parse(args) {
                Err(Error::Usage(e)) => assert!(e.contains("UTF-8"), "{e}"),
                other => panic!("{other:?}"),
            }
        }
        // A directory may be any bytes.
        let c = parse(vec![
            "A".into(),
            "9000".into(),
            "t".into(),
            "--dir".into(),
            bad.clone(),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.dir.into_os_string(), bad);
    }
}
