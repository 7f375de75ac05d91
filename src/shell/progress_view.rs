//! How a download in progress looks: the `status` line and, on a terminal,
//! the line `get` redraws in place. The formatting is pure (tested);
//! `LiveBar` is the thread that redraws. Nothing here writes an escape
//! sequence or a carriage return unless stdout is a terminal, so piped
//! output keeps the contract's plain lines.

use crate::download::progress::Snapshot;
use crate::peer::Peer;
use crate::terminal::{screen_width, CLEAR_LINE};
use crossbeam_channel::{RecvTimeoutError, Sender};
use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Redraws per second of the live line: 5.
pub const REDRAW_EVERY: Duration = Duration::from_millis(200);
/// The live rate is measured over this much recent time, so it follows
/// changes but does not jump with every batch of blocks.
pub const RATE_WINDOW: Duration = Duration::from_secs(3);
const STATUS_BAR: usize = 30;
const MIN_LIVE_BAR: usize = 10;
const MAX_LIVE_BAR: usize = 40;

/// A text progress bar `width` characters wide, `#` for done, `.` for not.
pub fn bar(frac: f64, width: usize) -> String {
    let filled = ((frac.clamp(0.0, 1.0)) * width as f64).floor() as usize;
    format!("{}{}", "#".repeat(filled), ".".repeat(width - filled))
}

/// `0:07`, `12:34`, `1:02:03`; `--:--` when unknown or beyond 100 hours.
pub fn format_eta(secs: f64) -> String {
    if !secs.is_finite() || !(0.0..360_000.0).contains(&secs) {
        return "--:--".into();
    }
    let s = secs.ceil() as u64;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// `57.3%`, never `100.0%` before the last block.
fn percent_text(s: &Snapshot) -> String {
    format!("{:5.1}%", s.percent())
}

/// The `status` line: name, bar, percent, MB/s, ETA, sources, at the
/// download's rate since it began (`Snapshot::rate`).
pub fn status_line(v: &Snapshot) -> String {
    let rate = v.rate();
    format!(
        "{} [{}] {} {:.1} MB/s ETA {} from {} peer{}",
        v.name,
        bar(v.fraction(), STATUS_BAR),
        percent_text(v),
        rate / 1e6,
        format_eta(v.eta(rate)),
        v.sources,
        if v.sources == 1 { "" } else { "s" }
    )
}

/// The live line, at most `width - 1` characters so it never wraps (a
/// wrapped line cannot be redrawn with `\r`). The name gives way first.
/// `rate` is in bytes per second (the live line's is over the last few
/// seconds: `RateMeter` fed with `Snapshot::fetched_bytes`).
pub fn live_line(v: &Snapshot, rate: f64, width: usize) -> String {
    let tail = format!(
        " {} {:7.1} MB/s  ETA {}  peers {}",
        percent_text(v),
        rate / 1e6,
        format_eta(v.eta(rate)),
        v.sources
    );
    let room = width.saturating_sub(1);
    let name_w = v.name.chars().count().min(room / 3);
    let bar_w = room
        .saturating_sub(name_w + 3 + tail.chars().count())
        .clamp(MIN_LIVE_BAR, MAX_LIVE_BAR);
    let name: String = if v.name.chars().count() > name_w {
        let mut n: String = v.name.chars().take(name_w.saturating_sub(1)).collect();
        n.push('…');
        n
    } else {
        v.name.clone()
    };
    let line = format!("{name} [{}]{tail}", bar(v.fraction(), bar_w));
    line.chars().take(room).collect()
}

/// Bytes per second over the last `window`, from samples of a growing
/// byte count: the live line follows changes where `Snapshot::rate`
/// averages since the start. Fed with `Snapshot::fetched_bytes`, so it
/// counts what `rate` counts.
pub struct RateMeter {
    window: Duration,
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    pub fn new(window: Duration) -> RateMeter {
        RateMeter {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Records `bytes` done at `now`; returns the rate over the window.
    pub fn update(&mut self, now: Instant, bytes: u64) -> f64 {
        self.samples.push_back((now, bytes));
        // Keep one sample at or before the window's start, as its baseline.
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= self.window {
            self.samples.pop_front();
        }
        let (t0, b0) = self.samples[0];
        let secs = now.duration_since(t0).as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            bytes.saturating_sub(b0) as f64 / secs
        }
    }
}

/// Redraws one download's live line on stdout while it runs. Inert when
/// stdout is not a terminal.
pub struct LiveBar {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LiveBar {
    /// Starts redrawing the download registered under `key`, once it has
    /// started (the tracker lookups come first).
    pub fn start(peer: &Arc<Peer>, key: &str) -> LiveBar {
        if !std::io::stdout().is_terminal() {
            return LiveBar {
                stop: None,
                thread: None,
            };
        }
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let (peer, key) = (peer.clone(), key.to_string());
        let thread = std::thread::Builder::new()
            .name("progress-bar".into())
            .spawn(move || {
                let mut meter = RateMeter::new(RATE_WINDOW);
                let mut drawn = false;
                let (mut said_resumed, mut said_reused) = (false, false);
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(REDRAW_EVERY) {
                    let Some(p) = peer.progress_of(&key) else {
                        continue;
                    };
                    let rate = meter.update(Instant::now(), p.fetched_bytes());
                    let mut out = std::io::stdout().lock();
                    // Once each: what was there before this run fetched.
                    let mut say_once =
                        |said: &mut bool, blocks: u64, pct: f64, what: &str, how: &str| {
                            if blocks > 0 && !*said {
                                let _ =
                                    writeln!(out, "\r{CLEAR_LINE}{what} {key}: {pct:.1} % {how}");
                                *said = true;
                            }
                        };
                    say_once(
                        &mut said_resumed,
                        p.resumed_blocks,
                        p.resumed_percent(),
                        "resuming",
                        "already verified",
                    );
                    say_once(
                        &mut said_reused,
                        p.reused_blocks,
                        p.reused_percent(),
                        "reusing",
                        "found in local files",
                    );
                    let _ = write!(out, "\r{}{CLEAR_LINE}", live_line(&p, rate, screen_width()));
                    let _ = out.flush();
                    drawn = true;
                }
                if drawn {
                    let mut out = std::io::stdout().lock();
                    let _ = write!(out, "\r{CLEAR_LINE}");
                    let _ = out.flush();
                }
            })
            .ok();
        LiveBar {
            stop: Some(stop),
            thread,
        }
    }

    /// Stops redrawing and erases the line, before the result is printed.
    pub fn finish(mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LiveBar {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `done` of `total` blocks from 3 peers, fetched in `secs`.
    fn fetched(done: u64, total: u64, secs: f64) -> Snapshot {
        Snapshot {
            name: "movie.bin".into(),
            done_blocks: done,
            resumed_blocks: 0,
            reused_blocks: 0,
            total_blocks: total,
            sources: 3,
            elapsed: Duration::from_secs_f64(secs),
        }
    }

    fn view(done: u64, total: u64) -> Snapshot {
        fetched(done, total, 1.0)
    }

    #[test]
    fn bars_and_etas() {
        assert_eq!(bar(0.5, 10), "#####.....");
        assert_eq!(bar(0.99, 10), "#########.");
        assert_eq!(bar(2.0, 4), "####");
        assert_eq!(bar(-1.0, 4), "....");
        assert_eq!(format_eta(0.0), "0:00");
        assert_eq!(format_eta(6.2), "0:07");
        assert_eq!(format_eta(754.0), "12:34");
        assert_eq!(format_eta(3723.0), "1:02:03");
        assert_eq!(format_eta(f64::INFINITY), "--:--");
        assert_eq!(format_eta(f64::NAN), "--:--");
        assert_eq!(format_eta(1e9), "--:--");
    }

    #[test]
    fn status_lines() {
        // 1000 of 2000 blocks fetched in a second, 4.096 MB/s: one second left.
        let line = status_line(&view(1000, 2000));
        assert_eq!(
            line,
            format!(
                "movie.bin [{}{}]  50.0% 4.1 MB/s ETA 0:01 from 3 peers",
                "#".repeat(15),
                ".".repeat(15)
            )
        );
        assert!(status_line(&fetched(1999, 2000, 0.0)).contains(" 99.9% 0.0 MB/s ETA --:--"));
        assert!(status_line(&fetched(2000, 2000, 0.0)).contains("100.0%"));
        assert!(status_line(&fetched(0, 0, 0.0)).contains("100.0%"));
        let one = Snapshot {
            sources: 1,
            ..view(0, 2)
        };
        assert!(status_line(&one).ends_with(" from 1 peer"));
    }

    /// A resumed download's blocks found on disk are not a speed: the
    /// `status` line shows what this run fetched, not what it found.
    #[test]
    fn a_resumed_download_shows_only_what_this_run_fetched() {
        let resumed = Snapshot {
            resumed_blocks: 1000,
            ..view(1000, 2000)
        };
        assert!(
            status_line(&resumed).contains(" 50.0% 0.0 MB/s ETA --:--"),
            "{}",
            status_line(&resumed)
        );
        let then_fetched = Snapshot {
            resumed_blocks: 1000,
            ..view(1500, 2000)
        };
        assert!(status_line(&then_fetched).contains(" 75.0% 2.0 MB/s ETA 0:01"));
    }

    #[test]
    fn live_lines_fit_the_screen() {
        let line = live_line(&view(500, 2000), 10e6, 80);
        assert!(line.starts_with("movie.bin ["), "{line}");
        assert!(
            line.ends_with("]  25.0%    10.0 MB/s  ETA 0:01  peers 3"),
            "{line}"
        );
        assert!(line.chars().count() <= 79, "{line}");
        assert!(!line.contains('\r') && !line.contains('\x1b'));
        let long = Snapshot {
            name: "n".repeat(200),
            ..view(1, 2)
        };
        for width in [20, 40, 80, 200] {
            let line = live_line(&long, 1e6, width);
            assert!(line.chars().count() < width, "{width}: {line}");
        }
        assert!(live_line(&long, 1e6, 80).contains('…'));
    }

    #[test]
    fn rate_over_the_window() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(Duration::from_secs(2));
        assert_eq!(m.update(t0, 1000), 0.0);
        assert_eq!(m.update(t0 + Duration::from_secs(1), 3000), 2000.0);
        assert_eq!(m.update(t0 + Duration::from_secs(2), 5000), 2000.0);
        // The start falls out of the window: the rate follows the change.
        assert_eq!(m.update(t0 + Duration::from_secs(3), 5000), 1000.0);
        assert_eq!(m.update(t0 + Duration::from_secs(4), 5000), 0.0);
    }
}
