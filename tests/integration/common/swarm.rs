//! A test swarm (a tracker and the peers a test starts) and helpers to
//! read what peers print: shared by the peer and swarm tests.

use super::*;
use p2pshare::net::conn::Conn;
use p2pshare::wire::{TrackerReply, TrackerRequest, MAX_FRAME};
use std::fs;
use std::path::Path;

pub const WAIT: Duration = Duration::from_secs(60);

/// A test swarm: one tracker plus the peers a test starts.
pub struct Swarm {
    pub dir: tempfile::TempDir,
    pub tracker: TrackerProc,
}

impl Swarm {
    pub fn new() -> Swarm {
        let dir = temp_dir();
        let tracker = TrackerProc::start(&dir.path().join("tracker"));
        Swarm { dir, tracker }
    }

    pub fn path(&self, sub: &str) -> std::path::PathBuf {
        self.dir.path().join(sub)
    }

    /// Puts `data` in `<id>/files/<name>`.
    pub fn give(&self, id: &str, name: &str, data: &[u8]) {
        let files = self.path(id).join("files");
        fs::create_dir_all(&files).unwrap();
        fs::write(files.join(name), data).unwrap();
    }

    /// Starts `peer <id> PORT TRACKER --dir <id> --serve` and `extra` on a
    /// free port, logged to `log` in the swarm's directory.
    pub fn start(&self, id: &str, extra: &[&str], log: &str) -> PeerProc {
        self.start_on(id, free_port(), extra, log)
    }

    /// `start` on the given port.
    pub fn start_on(&self, id: &str, port: u16, extra: &[&str], log: &str) -> PeerProc {
        let port = port.to_string();
        let dir = self.path(id);
        let tracker = self.tracker.addr();
        let mut args = vec![
            id,
            &port,
            &tracker,
            "--dir",
            dir.to_str().unwrap(),
            "--serve",
        ];
        args.extend_from_slice(extra);
        PeerProc::spawn_logged(&args, &self.path(log))
    }

    /// Starts `peer <id> --serve` and waits until the tracker lists it as
    /// a holder of `name`.
    pub fn serve(&self, id: &str, name: &str, extra: &[&str]) -> PeerProc {
        let p = self.start(id, extra, &format!("{id}.log"));
        let tracker_addr = self.tracker.addr();
        wait_until(WAIT, &format!("{id} to register {name}"), || {
            holders(&tracker_addr, name).iter().any(|h| h == id)
        });
        p
    }

    /// Starts `G` fetching `f.bin` through its shell, capped at `limit` so
    /// the test can act mid-download, and waits until `G/<ready>` exists.
    pub fn slow_get(&self, limit: &str, ready: &str) -> PeerProc {
        let port = free_port().to_string();
        let gdir = self.path("G");
        let tracker = self.tracker.addr();
        let g = PeerProc::spawn(
            &[
                "G",
                &port,
                &tracker,
                "--dir",
                gdir.to_str().unwrap(),
                "--download-limit",
                limit,
            ],
            Some("get f.bin\n"),
        );
        let ready = gdir.join(ready);
        wait_until(WAIT, &format!("{} to appear", ready.display()), || {
            ready.exists()
        });
        g
    }

    /// Runs a peer with `commands` on stdin until it exits.
    pub fn shell(&self, id: &str, commands: &str, extra: &[&str]) -> std::process::Output {
        let port = free_port().to_string();
        let dir = self.path(id);
        let tracker = self.tracker.addr();
        let mut args = vec![id, &port, &tracker, "--dir", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        PeerProc::spawn(&args, Some(commands)).wait(WAIT)
    }
}

/// Ids of the holders the tracker lists for `name`.
pub fn holders(tracker: &str, name: &str) -> Vec<String> {
    let Ok(mut conn) = Conn::connect(tracker, MAX_FRAME) else {
        return vec![];
    };
    match conn.call::<TrackerReply>(&TrackerRequest::WhoHas {
        name: name.into(),
        md5: None,
        site: None,
    }) {
        Ok(TrackerReply::Holders { holders, .. }) => {
            holders.into_iter().map(|h| h.peer_id).collect()
        }
        _ => vec![],
    }
}

pub fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `from` lines of a `get`, as (peer id, blocks).
pub fn sources(stdout: &str) -> Vec<(String, u64)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("from "))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let id = parts.next().unwrap().to_string();
            let blocks = parts
                .next()
                .unwrap()
                .strip_prefix("blocks=")
                .unwrap()
                .parse()
                .unwrap();
            (id, blocks)
        })
        .collect()
}

pub fn done_line<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("done {name} ")))
        .unwrap_or_else(|| panic!("no done line in:\n{stdout}"))
}

pub fn files_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
