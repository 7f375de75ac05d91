//! The peer's shell: one command per line from stdin, run one after another.

use super::Peer;
use crate::error::{Error, Result};
use crate::units::{hex, mbps};
use std::fmt::Write as _;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub const HELP: &str = "commands:
  get <file>              download a file into files/, verify it, share it
  whohas <file>           which peers hold the file, and how much of it
  myfiles                 the local files, each with size and MD5
  files                   every file the swarm knows of
  share <path>            copy a file into files/ and announce it
  status                  downloads in progress
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
    Status,
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
        "status" => none(Command::Status)?,
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
pub fn run(peer: &Arc<Peer>) -> i32 {
    let interactive = io::stdin().is_terminal();
    let mut failed = false;
    let mut input = io::stdin().lock();
    let mut raw = Vec::new();
    loop {
        if interactive {
            print!("> ");
            let _ = io::stdout().flush();
        }
        raw.clear();
        match input.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: cannot read commands: {e}");
                failed = true;
                break;
            }
        }
        let result = std::str::from_utf8(&raw)
            .map_err(|_| Error::Usage("a command line that is not UTF-8 was skipped".into()))
            .and_then(parse)
            .and_then(|cmd| match cmd {
                None => Ok(true),
                Some(Command::Exit) => Ok(false),
                Some(cmd) => execute(peer, cmd).map(|out| {
                    if !out.is_empty() {
                        println!("{out}");
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
                eprintln!("error: {e}");
            }
        }
    }
    if failed && !interactive {
        1
    } else {
        0
    }
}

/// Runs one command; returns what it prints.
fn execute(peer: &Arc<Peer>, cmd: Command) -> Result<String> {
    let mut out = String::new();
    let tracker = &peer.config.tracker;
    match cmd {
        Command::Help => out.push_str(HELP),
        Command::Get(name) => {
            let report = peer.get(&name)?;
            let _ = write!(out, "{report}");
        }
        Command::WhoHas(name) => {
            crate::names::check_file_name(&name)?;
            let found = super::lookup::who_has(peer, &name)?;
            // Peers that joined the download but have no piece yet hold
            // nothing (an empty file has no pieces to have).
            let holders: Vec<_> = found
                .holders
                .into_iter()
                .filter(|h| h.have.count() > 0 || found.size == 0)
                .collect();
            if holders.is_empty() {
                let _ = writeln!(out, "no peer holds {name} right now");
            }
            let total = found.size.div_ceil(crate::record::BLOCK_SIZE as u64);
            for h in holders {
                let have = if h.have.len() == crate::record::piece_count_for(found.size) {
                    crate::record::blocks_held(found.size, &h.have)
                } else {
                    0
                };
                let addr = crate::net::join_host_port(&h.host, h.port);
                let _ = writeln!(out, "{} {addr} {have}/{total}", h.peer_id);
            }
        }
        Command::MyFiles => {
            for r in peer.store.records() {
                let _ = writeln!(out, "{} {} {}", r.name, r.size, hex(&r.md5));
            }
        }
        Command::Files => {
            for f in super::tracker_client::list_files(tracker)? {
                let _ = writeln!(
                    out,
                    "{} {} {} holders={} seeders={}",
                    f.name,
                    f.size,
                    hex(&f.md5),
                    f.holders,
                    f.seeders
                );
            }
        }
        Command::Share(path) => {
            let (record, note) = peer.share(Path::new(&path))?;
            let _ = writeln!(
                out,
                "shared {} {} {}",
                record.name,
                record.size,
                hex(&record.md5)
            );
            if let Some(note) = note {
                let _ = writeln!(out, "note: {note}");
            }
        }
        Command::Status => {
            let active = peer.active();
            if active.is_empty() {
                let _ = writeln!(out, "no downloads in progress");
            }
            for p in active {
                let done = p.done_blocks.load(Ordering::Relaxed);
                let frac = if p.total_blocks == 0 {
                    1.0
                } else {
                    done as f64 / p.total_blocks as f64
                };
                let secs = p.started.elapsed().as_secs_f64();
                let _ = writeln!(
                    out,
                    "{} [{}] {:5.1}% {:.1} MB/s from {} peers",
                    p.name,
                    bar(frac, 30),
                    frac * 100.0,
                    mbps(done * 4096, secs),
                    p.sources.load(Ordering::Relaxed)
                );
            }
        }
        Command::Exit => {}
    }
    Ok(out.trim_end().to_string())
}

/// A text progress bar `width` characters wide.
pub fn bar(frac: f64, width: usize) -> String {
    let filled = ((frac.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!("{}{}", "#".repeat(filled), ".".repeat(width - filled))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn bars() {
        assert_eq!(bar(0.5, 10), "#####.....");
        assert_eq!(bar(2.0, 4), "####");
    }
}
