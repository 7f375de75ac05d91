//! `--dashboard`: uptime, peers, files, and one progress bar per peer per
//! file, each from the pieces the peer announced against the file's piece
//! count. `render` is pure (tested); `spawn` redraws it on stdout: on a
//! terminal in place about once a second (cursor home, each line cleared,
//! never scrolling); to a file or a pipe as plain frames without escape
//! sequences, one each time the peers or their progress change, at most
//! one every `PLAIN_PERIOD`, so a log grows with events, not with time.

use super::catalogue::Snapshot;
use super::server::Shared;
use crate::terminal::{screen_width, CLEAR_LINE};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Redraw period on a terminal, and how often a change is looked for
/// otherwise.
pub const TERMINAL_PERIOD: Duration = Duration::from_secs(1);
/// Least time between two plain frames when stdout is a file or a pipe.
pub const PLAIN_PERIOD: Duration = Duration::from_secs(5);
/// Cursor to the top left: the frame overwrites the last one.
const HOME: &str = "\x1b[H";
const CLEAR_BELOW: &str = "\x1b[J";
const MAX_PEER_COL: usize = 20;
const MAX_FILE_COL: usize = 32;
const MIN_BAR: usize = 10;
const MAX_BAR: usize = 50;

/// `1:02:03`, or `2d 01:02:03` past a day.
pub fn format_uptime(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h}:{m:02}:{s:02}")
    }
}

/// `text` cut to `width` characters (with `…`), padded to `width`.
fn column(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        format!("{text}{}", " ".repeat(width - n))
    } else {
        let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// `[#####.....]` for `fraction` of `width` cells.
pub fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).floor() as usize).min(width);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// One percentage, never showing 100.0% for an incomplete file.
fn percent(fraction: f64, complete: bool) -> String {
    let p = fraction.clamp(0.0, 1.0) * 100.0;
    let p = if complete { 100.0 } else { p.min(99.9) };
    format!("{p:5.1}%")
}

/// The dashboard as text, for a screen `width` columns wide.
pub fn render(snap: &Snapshot, uptime: Duration, width: usize) -> String {
    format!(
        "p2pshare tracker   up {}   peers {}   files {}\n\n{}",
        format_uptime(uptime),
        snap.peers.len(),
        snap.files.len(),
        render_peers(snap, width)
    )
}

/// One line per peer per file: what changes when the swarm does.
fn render_peers(snap: &Snapshot, width: usize) -> String {
    let mut out = String::new();
    if snap.peers.is_empty() {
        out.push_str("no peers registered\n");
        return out;
    }
    let peer_w = snap
        .peers
        .iter()
        .map(|p| p.peer_id.chars().count())
        .max()
        .unwrap_or(0)
        .min(MAX_PEER_COL);
    let file_w = snap
        .peers
        .iter()
        .flat_map(|p| p.files.iter().map(|f| f.name.chars().count()))
        .max()
        .unwrap_or(0)
        .clamp("(no files)".len(), MAX_FILE_COL);
    // peer, space, file, space, [bar], space, right-aligned "100.0%"
    let fixed = peer_w + 1 + file_w + 1 + 2 + 1 + 6;
    let bar_w = width.saturating_sub(fixed).clamp(MIN_BAR, MAX_BAR);
    for p in &snap.peers {
        let peer = column(&p.peer_id, peer_w);
        if p.files.is_empty() {
            let _ = writeln!(out, "{peer} (no files)   {}", p.addr);
            continue;
        }
        for f in &p.files {
            let _ = writeln!(
                out,
                "{peer} {} {} {}",
                column(&f.name, file_w),
                bar(f.fraction, bar_w),
                percent(f.fraction, f.complete)
            );
        }
    }
    out
}

/// A frame for a terminal: drawn over the last one from the top left,
/// each line cleared to its end, and whatever the last frame had below
/// cleared too, so nothing scrolls and nothing flickers.
pub fn in_place(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str(HOME);
    for line in text.lines() {
        out.push_str(line);
        out.push_str(CLEAR_LINE);
        out.push('\n');
    }
    out.push_str(CLEAR_BELOW);
    out
}

/// Starts the thread that redraws the dashboard until stdout fails.
pub fn spawn(shared: Arc<Shared>, started: Instant) {
    let spawned = std::thread::Builder::new()
        .name("tracker-dashboard".into())
        .spawn(move || {
            let terminal = std::io::stdout().is_terminal();
            // What the last plain frame showed, and when.
            let mut shown: Option<(Snapshot, Instant)> = None;
            loop {
                let snap = shared.lock().snapshot();
                let frame = if terminal {
                    Some(in_place(&render(&snap, started.elapsed(), screen_width())))
                } else {
                    let due = match &shown {
                        None => true,
                        Some((last, at)) => *last != snap && at.elapsed() >= PLAIN_PERIOD,
                    };
                    due.then(|| render(&snap, started.elapsed(), screen_width()))
                };
                if let Some(frame) = frame {
                    let mut out = std::io::stdout().lock();
                    let written = if terminal {
                        write!(out, "{frame}")
                    } else {
                        writeln!(out, "{frame}")
                    };
                    if written.and_then(|_| out.flush()).is_err() {
                        log::warn!("dashboard stopped: stdout is closed");
                        return;
                    }
                    if !terminal {
                        shown = Some((snap, Instant::now()));
                    }
                }
                std::thread::sleep(TERMINAL_PERIOD);
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the dashboard thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::catalogue::{FileProgress, PeerView};
    use crate::wire::FileSummary;

    fn summary(name: &str) -> FileSummary {
        FileSummary {
            name: name.into(),
            size: 1,
            md5: [0; 16],
            holders: 1,
            seeders: 1,
        }
    }

    fn progress(name: &str, fraction: f64, complete: bool) -> FileProgress {
        FileProgress {
            name: name.into(),
            fraction,
            complete,
        }
    }

    #[test]
    fn bars_and_percentages() {
        let snap = Snapshot {
            files: vec![summary("movie.bin"), summary("a")],
            peers: vec![
                PeerView {
                    peer_id: "alice".into(),
                    addr: "10.0.0.1:7000".into(),
                    files: vec![
                        progress("a", 1.0, true),
                        progress("movie.bin", 0.573, false),
                    ],
                },
                PeerView {
                    peer_id: "bob".into(),
                    addr: "10.0.0.2:7000".into(),
                    files: vec![progress("movie.bin", 0.9999, false)],
                },
                PeerView {
                    peer_id: "carol".into(),
                    addr: "10.0.0.3:7000".into(),
                    files: vec![],
                },
            ],
        };
        let text = render(&snap, Duration::from_secs(3723), 80);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "p2pshare tracker   up 1:02:03   peers 3   files 2"
        );
        assert!(lines[2].starts_with("alice a "), "{text}");
        assert!(lines[2].ends_with("#] 100.0%"), "{text}");
        assert!(lines[3].starts_with("alice movie.bin"), "{text}");
        assert!(lines[3].contains("[#####"), "{text}");
        assert!(lines[3].ends_with(".]  57.3%"), "{text}");
        assert!(lines[4].starts_with("bob   movie.bin"), "{text}");
        assert!(
            lines[4].ends_with(".]  99.9%"),
            "almost is not done: {text}"
        );
        assert!(lines[5].contains("carol") && lines[5].contains("(no files)"));
        for l in &lines[2..5] {
            assert!(l.chars().count() <= 80, "{l:?}");
        }
        // The bar is half full at 50%.
        let b = bar(0.5, 10);
        assert_eq!(b, "[#####.....]");
        assert_eq!(bar(0.0, 4), "[....]");
        assert_eq!(bar(2.0, 4), "[####]");
    }

    #[test]
    fn empty_and_narrow() {
        let text = render(&Snapshot::default(), Duration::from_secs(5), 80);
        assert!(text.starts_with("p2pshare tracker   up 0:00:05   peers 0   files 0"));
        assert!(text.contains("no peers registered"));
        let snap = Snapshot {
            files: vec![],
            peers: vec![PeerView {
                peer_id: "p".repeat(40),
                addr: "h:1".into(),
                files: vec![progress(&"f".repeat(100), 0.25, false)],
            }],
        };
        let text = render(&snap, Duration::ZERO, 10);
        let line = text.lines().nth(2).unwrap();
        assert!(line.contains('…') && line.contains(" 25.0%"), "{line}");
        assert!(line.contains(&format!("[{}]", "#".repeat(2) + &".".repeat(8))));
        assert_eq!(format_uptime(Duration::from_secs(90_061)), "1d 01:01:01");
    }

    #[test]
    fn terminal_frames_overwrite_in_place() {
        let frame = in_place("a\nbb\n");
        assert_eq!(frame, "\x1b[Ha\x1b[K\nbb\x1b[K\n\x1b[J");
        let text = render(&Snapshot::default(), Duration::ZERO, 80);
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    }
}
