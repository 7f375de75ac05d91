//! `tracker [--port 8000] [--bind 0.0.0.0] [--data DIR] [--dashboard] [--http PORT]
//! [--http-bind ADDR] [--http-host NAME]... [--secret-file FILE]`

use log::warn;
use p2pshare::cli::{Arg, HttpConfig, HttpFlags, Parser};
use p2pshare::console::say_err;
use p2pshare::tracker::{Config, Tracker, DEFAULT_DATA_DIR};
use p2pshare::web::{tracker_ui::TrackerUi, WebServer};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

/// With `--dashboard`, the log's file under `--data`.
const LOG_FILE: &str = "tracker.log";

const USAGE: &str =
    "usage: tracker [--port 8000] [--bind 0.0.0.0] [--data DIR] [--dashboard] [--http PORT]
               [--http-bind ADDR] [--http-host NAME]... [--secret-file FILE]";

fn help() -> String {
    format!(
        "{USAGE}

The p2pshare tracker: keeps the catalogue of shared files and of which peers
hold which blocks, and answers peers: announces over UDP, the rest over
TCP, on one port number.

options:
  --port PORT    TCP port to listen on (default 8000; 0 picks a free one)
  --bind ADDR    IP address to listen on (default 0.0.0.0, every interface)
  --data DIR     where file records are kept (default {DEFAULT_DATA_DIR}/)
  --dashboard    live view of peers and their progress on stdout; the log
                 then goes to {LOG_FILE} under --data instead of stderr
  --http PORT    the dashboard as a web page that refreshes itself, and
                 /metrics for Prometheus (0 picks a free port; the address
                 is printed at start)
  --http-bind ADDR
                 IP address of the web page (default 127.0.0.1, this machine only)
  --http-host NAME
                 a host name the web page answers to besides IP addresses and
                 localhost (repeatable; others are refused against DNS rebinding)
  --secret-file FILE
                 the swarm's shared secret: only peers with the same one take
                 part, and all traffic is encrypted (make one with
                 openssl rand -hex 32 > FILE; chmod 600 FILE). Without it the
                 swarm is open: anyone who reaches the port takes part
  -h, --help     this help

RUST_LOG=debug shows protocol detail on stderr."
    )
}

enum Command {
    Run(Config, Option<HttpConfig>, Option<PathBuf>),
    Help,
}

/// Parses the arguments after the program name. The error is the text
/// after `error: `.
fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut config = Config::default();
    let mut http = HttpFlags::default();
    let mut secret = None;
    let mut p = Parser::new(args);
    while let Some(arg) = p.next_arg()? {
        let flag = match arg {
            Arg::Help => return Ok(Command::Help),
            Arg::Flag(flag) => flag,
            Arg::Positional(other) => {
                return Err(format!(
                    "unexpected argument {other:?}: the tracker takes only options"
                ));
            }
        };
        match flag.as_str() {
            "--port" => config.port = p.parsed("a port number from 0 to 65535")?,
            "--bind" => config.bind = p.parsed("an IP address such as 0.0.0.0 or 127.0.0.1")?,
            "--data" => {
                let v = p.os_value()?;
                if v.is_empty() {
                    return Err("--data needs a directory".into());
                }
                config.data = PathBuf::from(v);
            }
            "--dashboard" => config.dashboard = true,
            "--secret-file" => secret = Some(PathBuf::from(p.os_value()?)),
            other => {
                if !http.take(other, &mut p)? {
                    return Err(format!("unknown option {other:?}"));
                }
            }
        }
    }
    Ok(Command::Run(config, http.finish()?, secret))
}

fn main() {
    let (config, http, secret) = match parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(c, h, s)) => (c, h, s),
        Ok(Command::Help) => {
            let _ = writeln!(std::io::stdout(), "{}", help());
            return;
        }
        Err(e) => {
            say_err(format_args!("error: {e}"));
            say_err(format_args!("{USAGE}"));
            std::process::exit(2);
        }
    };
    let log_file = match init_logging(&config) {
        Ok(f) => f,
        Err(e) => {
            say_err(format_args!("error: {e}"));
            std::process::exit(1);
        }
    };
    if let Some(path) = &secret {
        if let Err(e) = p2pshare::secure::start(path) {
            say_err(format_args!("error: {e}"));
            std::process::exit(2);
        }
    }
    let stopped = ctrlc::set_handler(|| {
        // Records are written before they are acknowledged: nothing to save.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "tracker stopped");
        let _ = out.flush();
        std::process::exit(0);
    });
    if let Err(e) = stopped {
        warn!("cannot catch Ctrl-C/SIGTERM ({e}); stopping will not print a message");
    }
    let tracker = match Tracker::start(&config) {
        Ok(t) => t,
        Err(e) => {
            say_err(format_args!("error: {e}"));
            std::process::exit(1);
        }
    };
    let mut banner = tracker.banner();
    if let Some(f) = log_file {
        banner.push(format!("logging to {}", f.display()));
    }
    if let Some(h) = http {
        match start_web(&tracker, &h) {
            Ok(lines) => banner.extend(lines),
            Err(e) => {
                say_err(format_args!("error: {e}"));
                std::process::exit(1);
            }
        }
    }
    {
        let mut out = std::io::stdout().lock();
        for line in banner {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
    tracker.serve();
}

/// Where the log goes: stderr, or with `--dashboard` (which owns the
/// screen) `tracker.log` under `--data`, appended; returns that file.
fn init_logging(config: &Config) -> p2pshare::Result<Option<PathBuf>> {
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    logger.format_timestamp_millis();
    if !config.dashboard {
        logger.target(env_logger::Target::Stderr).init();
        return Ok(None);
    }
    let path = config.data.join(LOG_FILE);
    std::fs::create_dir_all(&config.data)
        .map_err(|e| p2pshare::Error::io(format!("creating {}", config.data.display()), e))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| p2pshare::Error::io(format!("opening the log {}", path.display()), e))?;
    logger
        .target(env_logger::Target::Pipe(Box::new(file)))
        .init();
    Ok(Some(path))
}

/// Binds and starts the web dashboard; returns the lines to print.
fn start_web(tracker: &Tracker, cfg: &HttpConfig) -> p2pshare::Result<Vec<String>> {
    let server = WebServer::bind(cfg)?;
    let lines = server.banner();
    // Where peers can reach it, not the 0.0.0.0 it is bound to.
    let reach: Vec<String> = p2pshare::net::addrs::reachable_addrs(&tracker.local_addr())
        .iter()
        .map(|a| a.to_string())
        .collect();
    let shared = tracker.shared().clone();
    let ui = TrackerUi::new(
        tracker.shared().summary_source(),
        tracker.started(),
        reach.join(", "),
        move || shared.metrics_text(),
    );
    server.spawn(ui)?;
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        run_web(args).map(|(c, _)| c)
    }

    fn run_web(args: &[&str]) -> Result<(Config, Option<HttpConfig>), String> {
        match parse(args.iter().map(OsString::from))? {
            Command::Run(c, h, _) => Ok((c, h)),
            Command::Help => Err("help".into()),
        }
    }

    #[test]
    fn web_flags() {
        assert_eq!(run_web(&[]).unwrap().1, None);
        let h = run_web(&["--http", "8080"]).unwrap().1.unwrap();
        assert_eq!(h, HttpConfig::on_port(8080));
        assert_eq!(h.bind.to_string(), "127.0.0.1");
        let h = run_web(&["--http-host=Dash.lan", "--http=0", "--http-bind", "::"])
            .unwrap()
            .1
            .unwrap();
        assert_eq!((h.port, h.bind.to_string()), (0, "::".into()));
        assert_eq!(h.hosts, vec!["dash.lan"]);
    }

    #[test]
    fn defaults_and_flags() {
        assert_eq!(run(&[]).unwrap(), Config::default());
        let c = run(&[
            "--port",
            "9001",
            "--bind=127.0.0.1",
            "--data",
            "/tmp/x",
            "--dashboard",
        ])
        .unwrap();
        assert_eq!(c.port, 9001);
        assert_eq!(c.bind.to_string(), "127.0.0.1");
        assert_eq!(c.data, PathBuf::from("/tmp/x"));
        assert!(c.dashboard);
        assert_eq!(run(&["--port=0"]).unwrap().port, 0);
        assert_eq!(run(&["-h"]).unwrap_err(), "help");
        assert_eq!(run(&["--port", "1", "--help"]).unwrap_err(), "help");
    }

    #[test]
    fn bad_input() {
        for (args, needle) in [
            (&["--port"][..], "needs a value"),
            (&["--port", "70000"], "0 to 65535"),
            (&["--port", "x"], "0 to 65535"),
            (&["--bind", "localhost:1"], "IP address"),
            (&["--data", ""], "directory"),
            (&["--dashboard=yes"], "takes no value"),
            (&["--http"], "needs a value"),
            (&["--http", "x"], "0 to 65535"),
            (&["--http", "1", "--http-bind", "localhost"], "IP address"),
            (&["--http", "1", "--http-host", "a b"], "host name"),
            (&["--http-bind", "127.0.0.1"], "need --http"),
            (&["--nope"], "unknown option"),
            (&["extra"], "unexpected argument"),
        ] {
            let e = run(args).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }
}
