//! The peer's terminal front end, beside the web UI (`web::peer_ui`) and
//! like it above `peer`: the shell (one command per line from stdin, run
//! one after another), the live progress line (`progress_view`), and
//! `bench` and `stress` (`bench`).

pub mod bench;
pub mod progress_view;

use crate::console::{say, say_err, say_partial, Console};
use crate::error::{Error, Result};
use crate::peer::downloads::{self, Completion, Origin};
use crate::peer::get::GetReport;
use crate::peer::session::rotation::Health;
use crate::peer::session::trackers::Trackers;
use crate::peer::Peer;
use crate::units::hex;
use progress_view::{status_line, LiveBar};
use std::fmt::Write as _;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub const HELP: &str = "commands:
  get <file>              download a file into files/, verify it, share it
  whohas <file>           which peers hold the file, and how much of it
  myfiles                 the local files, each with size and MD5
  files                   every file the swarm knows of
  share <path>            copy a file or a folder into files/ and announce it
                          (new content under a name you own: its next version)
  handover <item> <peer>  make another peer id the owner of an item you own
  status                  downloads in progress, with progress bars, those
                          waiting their turn, and how the last ones ended
  follow <pattern>        keep every item whose name matches in files/ at
                          its current version (* any run, ? one character,
                          [a-z] a class); kept across restarts
  unfollow <pattern>      stop following it (what it fetched stays)
  following               the follow patterns
  bench <file> [runs]     download it runs times (default 5) into a scratch
                          place, append times to download_times.csv,
                          print mean/min/max
  stress <file> [threads] that many simultaneous verified downloads
                          (default 8); print ok/failed and the throughput
  help                    this list
  exit                    leave the tracker and quit";

/// What one command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Get(String),
    WhoHas(String),
    MyFiles,
    Files,
    Share(String),
    Handover(String, String),
    Status,
    Follow(String),
    Unfollow(String),
    Following,
    Bench(String, u32),
    Stress(String, u32),
    Exit,
}

/// Parses a line; `Ok(None)` for a blank line or a comment. File names may
/// contain spaces: the rest of the line is the argument.
pub fn parse(line: &str) -> Result<Option<Command>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (word, rest) = match line.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (line, ""),
    };
    let arg = |what: &str| {
        if rest.is_empty() {
            Err(Error::Usage(format!(
                "{word} needs {what}: {word} <{what}>"
            )))
        } else {
            Ok(rest.to_string())
        }
    };
    let none = |c: Command| {
        if rest.is_empty() {
            Ok(c)
        } else {
            Err(Error::Usage(format!("{word} takes no arguments")))
        }
    };
    let cmd = match word {
        "help" | "?" => none(Command::Help)?,
        "get" => Command::Get(arg("file")?),
        "whohas" => Command::WhoHas(arg("file")?),
        "myfiles" => none(Command::MyFiles)?,
        "files" => none(Command::Files)?,
        "share" => Command::Share(arg("path")?),
        "handover" => {
            let both = arg("item> <peer")?;
            match both.rsplit_once(char::is_whitespace) {
                Some((item, to)) => Command::Handover(item.trim().to_string(), to.to_string()),
                None => {
                    return Err(Error::Usage(
                        "handover needs an item and a peer id: handover <item> <peer>".into(),
                    ))
                }
            }
        }
        "status" => none(Command::Status)?,
        "follow" => Command::Follow(arg("pattern")?),
        "unfollow" => Command::Unfollow(arg("pattern")?),
        "following" => none(Command::Following)?,
        "bench" => {
            let (name, runs) = bench::split_count(&arg("file")?)?;
            Command::Bench(name, runs.unwrap_or(bench::DEFAULT_RUNS))
        }
        "stress" => {
            let (name, threads) = bench::split_count(&arg("file")?)?;
            Command::Stress(name, threads.unwrap_or(bench::DEFAULT_THREADS))
        }
        "exit" | "quit" => none(Command::Exit)?,
        other => {
            return Err(Error::Usage(format!(
                "unknown command {other:?}; `help` lists the commands"
            )));
        }
    };
    Ok(Some(cmd))
}

/// Runs commands from stdin until `exit` or EOF; returns the exit status.
/// On a terminal (stdin and stdout) a `get` runs in the background and
/// the prompt comes back at once (`console`); otherwise commands run one
/// after another, as the contract says for scripts.
pub fn run(peer: &Arc<Peer>) -> i32 {
    let interactive = io::stdin().is_terminal();
    let console = if interactive { Console::start() } else { None };
    let mut background = Background::new(peer, console);
    let mut failed = false;
    // Not locked with a console, which reads stdin itself.
    let mut input = console.is_none().then(|| io::stdin().lock());
    let mut raw = Vec::new();
    loop {
        let line = match (console, input.as_mut()) {
            (Some(c), _) => match c.read_line() {
                Some(l) => l.into_bytes(),
                None => break,
            },
            (None, None) => break,
            (None, Some(input)) => {
                if interactive {
                    say_partial(format_args!("> "));
                }
                raw.clear();
                match input.read_until(b'\n', &mut raw) {
                    Ok(0) => break,
                    Ok(_) => std::mem::take(&mut raw),
                    Err(e) => {
                        say_err(format_args!("error: cannot read commands: {e}"));
                        failed = true;
                        break;
                    }
                }
            }
        };
        let result = std::str::from_utf8(&line)
            .map_err(|_| Error::Usage("a command line that is not UTF-8 was skipped".into()))
            .and_then(parse)
            .and_then(|cmd| match cmd {
                None => Ok(true),
                Some(Command::Exit) => Ok(false),
                Some(Command::Get(name)) if console.is_some() => {
                    background.get(name);
                    Ok(true)
                }
                Some(cmd) => execute(peer, cmd).map(|out| {
                    if !out.is_empty() {
                        say(&out);
                    }
                    true
                }),
            });
        match result {
            Ok(true) => {}
            Ok(false) => break,
            // Ctrl-C: the signal handler saves and exits; nothing failed.
            Err(Error::Cancelled) => {}
            Err(e) => {
                failed = true;
                say_err(format_args!("error: {e}"));
            }
        }
    }
    background.finish();
    Console::restore();
    if failed && !interactive {
        1
    } else {
        0
    }
}

/// The `get`s typed on a terminal (background downloads, run by
/// `peer::downloads` like every other), and the prompt line's progress (`[big.bin 45.0%] > `) while any runs.
struct Background {
    peer: Arc<Peer>,
    console: Option<&'static Console>,
    gets: Vec<Completion>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn new(peer: &Arc<Peer>, console: Option<&'static Console>) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = console.and_then(|c| {
            let (peer, stop) = (peer.clone(), stop.clone());
            std::thread::Builder::new()
                .name("prompt-status".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        c.set_status(prompt_status(&peer));
                        std::thread::sleep(PROMPT_EVERY);
                    }
                })
                .ok()
        });
        Background {
            peer: peer.clone(),
            console,
            gets: Vec::new(),
            stop,
            ticker,
        }
    }

    /// Starts `get name` through the peer's background downloads; its
    /// lines are printed above the prompt when done.
    fn get(&mut self, name: String) {
        self.gets.retain(|t| !t.is_finished());
        let started = downloads::get(&self.peer, &name, Origin::Shell, say_outcome);
        match started {
            Ok(completion) => self.gets.push(completion),
            Err(e) => say_err(format_args!("error: {e}")),
        }
    }

    /// At `exit` or EOF: downloads still running stop and keep their
    /// blocks (as at Ctrl-C), saying so.
    fn finish(mut self) {
        if self.gets.iter().any(|t| !t.is_finished()) {
            for line in self.peer.shutdown() {
                say(&line);
            }
        }
        for t in self.gets.drain(..) {
            t.wait();
        }
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Some(c) = self.console {
            c.set_status(String::new());
        }
    }
}

/// Prints how a background `get` ended (a terminal's, or `--get`): the
/// contract's `done` lines, or an `error:` line; nothing for one stopped
/// by shutdown, which says what it kept by itself.
pub fn say_outcome(result: &Result<GetReport>) {
    match result {
        Ok(report) => say(report),
        Err(Error::Cancelled) => {}
        Err(e) => say_err(format_args!("error: {e}")),
    }
}

/// How often the prompt's progress is brought up to date.
const PROMPT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// `[a.bin 45.0%] [b.iso 3.1%] ` for the downloads in progress, or nothing.
fn prompt_status(peer: &Peer) -> String {
    peer.progress()
        .iter()
        .map(|p| format!("[{} {:.1}%] ", p.name, p.percent()))
        .collect()
}

/// Runs one command; returns what it prints.
fn execute(peer: &Arc<Peer>, cmd: Command) -> Result<String> {
    let mut out = String::new();
    match cmd {
        Command::Help => out.push_str(HELP),
        Command::Get(name) => {
            // The bar is erased before the contract's lines are printed.
            let live = LiveBar::start(peer, &name);
            let report = peer.get(&name);
            live.finish();
            let _ = write!(out, "{}", report?);
        }
        Command::WhoHas(name) => {
            crate::names::check_file_name(&name)?;
            let found = crate::peer::session::lookup::who_has(peer, &name)?;
            // Peers that joined the download but have no piece yet hold
            // nothing (an empty file has no pieces to have).
            let holders: Vec<_> = found
                .holders
                .into_iter()
                .filter(|h| h.blocks > 0 || found.size == 0)
                .collect();
            if holders.is_empty() {
                let _ = writeln!(out, "no peer holds {name} right now");
            }
            let total = found.size.div_ceil(crate::record::BLOCK_SIZE as u64);
            for h in holders {
                let have = h.blocks.min(total);
                let addr = crate::net::addrs::join_host_port(&h.host, h.port);
                let _ = write!(out, "{} {addr} {have}/{total}", h.peer_id);
                // The tracker names sites to a peer with --site only.
                if !h.site.is_empty() {
                    let _ = write!(out, " site={}", h.site);
                }
                let _ = writeln!(out);
            }
        }
        Command::MyFiles => {
            let records = peer.records();
            if records.is_empty() {
                out.push_str("no files");
            }
            for r in records {
                out.push_str(&item_lines(&r));
            }
        }
        Command::Files => {
            let files = peer.swarm_files()?;
            if files.is_empty() {
                out.push_str("no files in the swarm");
            }
            for f in files {
                // The tracker keeps a record after its last holder left
                // (it may come back): say so rather than let `get` fail.
                let orphan = if f.holders == 0 { " (no holder)" } else { "" };
                let _ = writeln!(
                    out,
                    "{} {} {} holders={} seeders={} version={}{}{}{}{orphan}",
                    f.display_name(),
                    f.size,
                    hex(&f.md5),
                    f.holders,
                    f.seeders,
                    f.version,
                    f.folder.map(|n| format!(" files={n}")).unwrap_or_default(),
                    if f.owner.is_empty() {
                        String::new()
                    } else {
                        format!(" owner={}", f.owner)
                    },
                    if f.older > 0 {
                        format!(" older={}", f.older)
                    } else {
                        String::new()
                    }
                );
            }
        }
        Command::Handover(item, to) => {
            let record = peer.handover(&item, &to)?;
            let _ = write!(
                out,
                "{} is owned by {to} from version {} on; only {to} publishes its next versions",
                record.display_name(),
                record.version
            );
        }
        Command::Share(path) => {
            let path = expand_home(&path, std::env::var_os("HOME").as_deref());
            let (record, note) = peer.share(&path)?;
            let _ = write!(out, "shared {}", item_lines(&record));
            if let Some(note) = note {
                let _ = writeln!(out, "note: {note}");
            }
        }
        Command::Status => out.push_str(&status(peer)),
        Command::Follow(pattern) => {
            if peer.following().follow(&pattern)? {
                let _ = write!(out, "following {pattern}");
            } else {
                let _ = write!(out, "already following {pattern}");
            }
        }
        Command::Unfollow(pattern) => {
            peer.following().unfollow(&pattern)?;
            let _ = write!(
                out,
                "no longer following {pattern} (what it fetched stays in files/)"
            );
        }
        Command::Following => {
            let patterns = peer.following().patterns();
            if patterns.is_empty() {
                out.push_str("not following anything");
            }
            for p in patterns {
                let _ = writeln!(out, "{p}");
            }
        }
        Command::Bench(name, runs) => {
            let report = bench::bench(peer, &name, runs, |run| {
                let mut stdout = io::stdout().lock();
                let _ = writeln!(stdout, "{run}");
                let _ = stdout.flush();
            })?;
            let _ = write!(out, "{report}");
        }
        Command::Stress(name, threads) => {
            let report = bench::stress(peer, &name, threads)?;
            if let Some(e) = report.failure() {
                say(&report);
                return Err(e);
            }
            let _ = write!(out, "{report}");
        }
        Command::Exit => {}
    }
    Ok(out.trim_end().to_string())
}

/// `status`: a line per download in progress (any kind), then those
/// waiting their turn, then how the last background downloads ended.
fn status(peer: &Peer) -> String {
    let mut out = String::new();
    let active = peer.progress();
    let waiting = peer.downloads().waiting();
    let paused = peer.paused();
    if active.is_empty() && waiting.is_empty() && paused.is_empty() {
        let _ = writeln!(out, "no downloads in progress");
    }
    for p in active {
        let _ = writeln!(out, "{}", status_line(&p));
    }
    for (name, origin) in waiting {
        let _ = writeln!(out, "{name} waiting its turn ({})", origin.label());
    }
    for p in paused {
        let _ = writeln!(out, "{}", p.line());
    }
    out.push_str(&tracker_lines(peer.trackers(), Instant::now()));
    let recent = peer.downloads().recent();
    if !recent.is_empty() {
        let _ = writeln!(out, "recent background downloads, newest first:");
    }
    for o in recent {
        let _ = writeln!(
            out,
            "  {} ago ({}) {}",
            ago(o.at.elapsed().as_secs()),
            o.origin.label(),
            o.line()
        );
    }
    out
}

/// One line per tracker: answering, or failing since when.
fn tracker_lines(trackers: &Trackers, now: Instant) -> String {
    let mut out = String::new();
    for (addr, health) in trackers.health() {
        let state = match health {
            Health::Unknown => "not reached yet".to_string(),
            Health::Answering(_) => "answering".to_string(),
            Health::Failing {
                since, retry_at, ..
            } => {
                let since = ago(now.saturating_duration_since(since).as_secs());
                match retry_at.checked_duration_since(now) {
                    Some(wait) if !wait.is_zero() => format!(
                        "failing since {since} ago (asked first again in {})",
                        ago(wait.as_secs().max(1))
                    ),
                    _ => format!("failing since {since} ago"),
                }
            }
        };
        let _ = writeln!(out, "tracker {addr}: {state}");
    }
    out
}

/// `42 s`, `3 min`, `2 h`.
fn ago(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        _ => format!("{} h", secs / 3600),
    }
}

/// `<name> <bytes> <md5>` for a file. For a folder, `<name>/ <bytes>
/// <md5> files=<n>` (the MD5 of its files one after another), then one
/// indented line per file, `  <name>/<path> <bytes> <md5>`.
fn item_lines(r: &crate::record::FileRecord) -> String {
    let mut out = format!("{} {} {}", r.display_name(), r.size, hex(&r.md5));
    let Some(m) = &r.folder else {
        out.push('\n');
        return out;
    };
    let _ = writeln!(out, " files={}", m.file_count());
    for s in m.spans() {
        let _ = writeln!(out, "  {}/{} {} {}", r.name, s.path, s.size, hex(&s.md5));
    }
    out
}

/// `~` and `~/...` as a shell would read them (the shell's commands are
/// not run by one): under `home`. Anything else, `~user` included, is
/// taken as written.
fn expand_home(path: &str, home: Option<&std::ffi::OsStr>) -> PathBuf {
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(home)) => PathBuf::from(home),
        (Some(rest), Some(home)) if rest.starts_with('/') => {
            PathBuf::from(home).join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_is_home() {
        let home = Some(std::ffi::OsStr::new("/home/ann"));
        let e = |p| expand_home(p, home);
        assert_eq!(e("~/big.iso"), PathBuf::from("/home/ann/big.iso"));
        assert_eq!(e("~"), PathBuf::from("/home/ann"));
        assert_eq!(e("~//a/b"), PathBuf::from("/home/ann/a/b"));
        assert_eq!(e("~bob/x"), PathBuf::from("~bob/x"));
        assert_eq!(e("a/~/x"), PathBuf::from("a/~/x"));
        assert_eq!(e("/tmp/x"), PathBuf::from("/tmp/x"));
        assert_eq!(expand_home("~/x", None), PathBuf::from("~/x"));
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse("get a.txt").unwrap(),
            Some(Command::Get("a.txt".into()))
        );
        assert_eq!(
            parse("  get   my file.iso ").unwrap(),
            Some(Command::Get("my file.iso".into()))
        );
        assert_eq!(parse("myfiles").unwrap(), Some(Command::MyFiles));
        assert_eq!(parse("exit").unwrap(), Some(Command::Exit));
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# comment").unwrap(), None);
        assert!(parse("get").is_err());
        assert!(parse("myfiles extra").is_err());
        assert!(parse("frobnicate").is_err());
        assert_eq!(
            parse("bench big.iso").unwrap(),
            Some(Command::Bench("big.iso".into(), 5))
        );
        assert_eq!(
            parse("bench my file 2 3").unwrap(),
            Some(Command::Bench("my file 2".into(), 3))
        );
        assert_eq!(
            parse("stress big.iso").unwrap(),
            Some(Command::Stress("big.iso".into(), 8))
        );
        assert_eq!(
            parse("stress big.iso 20").unwrap(),
            Some(Command::Stress("big.iso".into(), 20))
        );
        assert!(parse("bench").is_err());
        assert!(parse("stress").is_err());
        assert_eq!(
            parse("follow logs-*").unwrap(),
            Some(Command::Follow("logs-*".into()))
        );
        assert_eq!(
            parse("unfollow my logs*").unwrap(),
            Some(Command::Unfollow("my logs*".into()))
        );
        assert_eq!(parse("following").unwrap(), Some(Command::Following));
        assert!(parse("follow").is_err());
        assert!(parse("unfollow").is_err());
        assert!(parse("following x").is_err());
        assert!(HELP.contains("follow <pattern>") && HELP.contains("following"));
    }

    #[test]
    fn ages_read_in_the_right_unit() {
        assert_eq!(ago(0), "0 s");
        assert_eq!(ago(119), "119 s");
        assert_eq!(ago(120), "2 min");
        assert_eq!(ago(7200), "2 h");
    }
}
