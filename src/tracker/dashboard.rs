//! `--dashboard`: the swarm at a glance, at any size. From a `Summary`:
//! a header (uptime, peers, seeders, leechers, files, the swarm's rate,
//! announces per second, the interval), a completion histogram of the
//! downloads in progress, per-item totals (the current version, how many
//! peers hold it, are updating, are on an older version), then as many
//! peer rows as the screen has lines left (the slowest downloads first),
//! with a last line saying how many peers were left out. Never more lines
//! than the screen has, never a line wider than it: a thousand peers fill
//! one screen, as ten do.
//!
//! `render` is pure (tested); `spawn` redraws it on stdout: on a terminal
//! in place about once a second (cursor home, each line cleared, never
//! scrolling), at the size the terminal reports each time; to a file or a
//! pipe as plain `PLAIN_SIZE` frames without escape sequences, one each
//! time the swarm changes, at most one every `PLAIN_PERIOD`, so a log
//! grows with events, not with time.

use super::summary::{FileTotals, Summary, HISTOGRAM_BUCKETS};
use crate::terminal::{screen_size, CLEAR_LINE};
use crate::units::count_of;
use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Redraw period on a terminal, and how often a change is looked for
/// otherwise.
pub const TERMINAL_PERIOD: Duration = Duration::from_secs(1);
/// Least time between two plain frames when stdout is a file or a pipe.
pub const PLAIN_PERIOD: Duration = Duration::from_secs(5);
/// (columns, lines) of a plain frame: a file or a pipe has no screen.
pub const PLAIN_SIZE: (usize, usize) = (80, 40);
/// Cursor to the top left: the frame overwrites the last one.
const HOME: &str = "\x1b[H";
const CLEAR_BELOW: &str = "\x1b[J";
const MAX_PEER_COL: usize = 20;
const MIN_PEER_COL: usize = 6;
const MAX_FILE_COL: usize = 32;
const MIN_FILE_COL: usize = 8;
const MAX_OWNER_COL: usize = 12;
/// Below this the bar gives way to the optional columns' removal first.
const MIN_BAR: usize = 10;
const MAX_BAR: usize = 40;
/// Between the items of the header.
const SEP: &str = "   ";
/// From a screen this tall on, a blank line parts the sections.
const ROOMY: usize = 20;
const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Where the dashboards get their `Summary`: called with the most peer
/// rows they can show, under whatever lock it needs, and rendered after.
/// Any `Fn(usize) -> Summary` is one.
pub trait SummarySource: Send + 'static {
    fn summary(&self, max_rows: usize) -> Summary;
}

impl<F: Fn(usize) -> Summary + Send + 'static> SummarySource for F {
    fn summary(&self, max_rows: usize) -> Summary {
        self(max_rows)
    }
}

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

/// `3s`, `12m`, `5h`, `2d`: how long ago, in one short word.
pub fn format_ago(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=99 => format!("{s}s"),
        100..=5999 => format!("{}m", s / 60),
        6000..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Bytes per second for people, powers of 10 like every MB/s we print:
/// `12.3 MB/s`, `512 kB/s`, `0 B/s`.
pub fn format_rate(bps: f64) -> String {
    let bps = if bps.is_finite() { bps.max(0.0) } else { 0.0 };
    if bps >= 999_950_000.0 {
        format!("{:.2} GB/s", bps / 1e9)
    } else if bps >= 99_995_000.0 {
        format!("{:.0} MB/s", bps / 1e6)
    } else if bps >= 999_950.0 {
        format!("{:.1} MB/s", bps / 1e6)
    } else if bps >= 999.5 {
        format!("{:.0} kB/s", bps / 1e3)
    } else {
        format!("{bps:.0} B/s")
    }
}

/// `734.0 MB`: sizes like the web page's.
fn format_size(n: u64) -> String {
    crate::units::human_bytes(n)
}

/// `text` cut to `width` characters (with `…`), padded to `width`.
fn column(text: &str, width: usize) -> String {
    pad(text, width, false)
}

/// `text` right-aligned in `width`, cut if longer.
fn right(text: &str, width: usize) -> String {
    pad(text, width, true)
}

fn pad(text: &str, width: usize, to_the_right: bool) -> String {
    let n = text.chars().count();
    if n > width {
        return fit(text, width);
    }
    let spaces = " ".repeat(width - n);
    if to_the_right {
        spaces + text
    } else {
        text.to_string() + &spaces
    }
}

/// `line` cut to at most `width` characters, the last one `…` when cut.
fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut s: String = line.chars().take(width - 1).collect();
    s.push('…');
    s
}

/// `[#####.....]` for `fraction` of `width` cells.
pub fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).floor() as usize).min(width);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// One percentage, never showing 100.0% for an incomplete file.
fn percent(fraction: f64, complete: bool) -> String {
    format!("{:5.1}%", crate::units::percent(fraction, complete))
}

/// The dashboard as text, at most `height` lines of at most `width`
/// characters (no line feed after the last line).
pub fn render(s: &Summary, uptime: Duration, width: usize, height: usize) -> String {
    let lines = frame(s, uptime, width.max(1), height.max(1));
    let lines: Vec<String> = lines.iter().map(|l| fit(l, width)).collect();
    lines.join("\n")
}

/// The frame's lines, laid out to `height`; `render` cuts them to `width`.
fn frame(s: &Summary, uptime: Duration, width: usize, height: usize) -> Vec<String> {
    let mut out = header(s, uptime, width);
    out.truncate(height);
    let gap = usize::from(height >= ROOMY);
    let left = |out: &Vec<String>| height.saturating_sub(out.len());
    // The peer table's least: its column header and one row.
    let peer_min = 2 + gap;

    let hist = histogram(&s.histogram, width);
    if !hist.is_empty() && left(&out) >= gap + hist.len() + peer_min {
        out.extend(std::iter::repeat_n(String::new(), gap));
        out.extend(hist);
    }

    if !s.file_totals.is_empty() && left(&out) >= gap + 2 + peer_min {
        // A third of what is left, at least its header and one row (and
        // the "more" line when cut), so the peers still get most.
        let room = left(&out) - gap - peer_min;
        let budget = (left(&out) / 3).max(3).min(room);
        out.extend(std::iter::repeat_n(String::new(), gap));
        out.extend(files_block(&s.file_totals, width, budget));
    }

    let room = left(&out).saturating_sub(gap);
    if room > 0 {
        out.extend(std::iter::repeat_n(String::new(), gap));
        out.extend(peers_block(s, width, room));
    }
    out
}

/// Uptime and the swarm's numbers: on one line when it fits, else the
/// peers on one and the traffic on the next, each wrapped at `width`.
fn header(s: &Summary, uptime: Duration, width: usize) -> Vec<String> {
    let first = vec![
        "p2pshare tracker".to_string(),
        format!("up {}", format_uptime(uptime)),
        format!("peers {}", s.peers),
        format!("files {}", s.files),
    ];
    let announces = s.announces_per_s.max(0.0);
    let second = vec![
        format!("seeders {}", s.seeders),
        format!("leechers {}", s.leechers),
        format!("swarm {}", format_rate(s.rate_bps)),
        if announces < 9.95 {
            format!("announces {announces:.1}/s")
        } else {
            format!("announces {announces:.0}/s")
        },
        format!("interval {}s", s.interval.as_secs()),
    ];
    let one: Vec<String> = first.iter().chain(&second).cloned().collect();
    if one.join(SEP).chars().count() <= width {
        return vec![one.join(SEP)];
    }
    let mut lines = flow(&first, width);
    lines.extend(flow(&second, width));
    lines
}

/// `items` joined by `SEP` into lines no wider than `width` (an item too
/// wide on its own is cut).
fn flow(items: &[String], width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for item in items {
        let item = fit(item, width);
        if line.is_empty() {
            line = item;
        } else if line.chars().count() + SEP.len() + item.chars().count() <= width {
            line.push_str(SEP);
            line.push_str(&item);
        } else {
            lines.push(std::mem::replace(&mut line, item));
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Two lines: the buckets' lower bounds, then a level and a count under
/// each. One line when nothing downloads; none on a screen too narrow.
fn histogram(h: &[u32; HISTOGRAM_BUCKETS], width: usize) -> Vec<String> {
    if h.iter().all(|&n| n == 0) {
        return vec!["no downloads in progress".into()];
    }
    // The labels only where the cells keep room for "█ 1000" (an
    // 80-column terminal is drawn 79 wide).
    let label_w = if width >= 9 + 7 * HISTOGRAM_BUCKETS {
        9
    } else {
        0
    };
    let cell = (width.saturating_sub(label_w) / HISTOGRAM_BUCKETS).min(8);
    if cell < 3 {
        return vec![];
    }
    let max = h.iter().copied().max().unwrap_or(1).max(1);
    let mut bounds = column(if label_w > 0 { "% done" } else { "" }, label_w);
    let mut counts = column(if label_w > 0 { "downloads" } else { "" }, label_w);
    for (i, &n) in h.iter().enumerate() {
        bounds.push_str(&right(&format!("{}%", i * 10), cell));
        let shown = if n == 0 {
            "0".to_string()
        } else {
            // Ceiling: a single download still shows a sliver.
            let level = ((n as u64 * LEVELS.len() as u64).div_ceil(max as u64)) as usize;
            let glyph = LEVELS[level.clamp(1, LEVELS.len()) - 1];
            // A space before each cell keeps neighbours apart.
            // The count matters more than the level.
            let room = cell - 1;
            let count = n.to_string();
            if count.len() + 2 <= room {
                format!("{glyph} {count}")
            } else if count.len() < room {
                format!("{glyph}{count}")
            } else if count.len() == room {
                count
            } else {
                format!("{glyph}{}", compact_count(n, room - 1))
            }
        };
        counts.push_str(&right(&shown, cell));
    }
    vec![bounds, counts]
}

/// `n` in at most `width` characters (at least 1): `1234`, else `12k`,
/// else `99+`, `9+` or `+`.
fn compact_count(n: u32, width: usize) -> String {
    let plain = n.to_string();
    let thousands = format!("{}k", n / 1000);
    if plain.len() <= width {
        plain
    } else if n >= 1000 && thousands.len() <= width {
        thousands
    } else {
        format!("{}+", "9".repeat(width.saturating_sub(1)))
    }
}

/// How the columns of a table fit `width`: the name columns (shrunk
/// towards their minimum only when nothing else gives), the fixed
/// columns, then a bar and the optional columns, dropped from the last
/// while the bar would be narrower than `MIN_BAR`.
struct Layout {
    names: Vec<usize>,
    bar: usize,
    /// How many of the optional columns are kept.
    optional: usize,
}

fn layout(width: usize, names: &[(usize, usize)], fixed: usize, optional: &[usize]) -> Layout {
    let mut widths: Vec<usize> = names.iter().map(|&(w, _)| w).collect();
    let mut keep = optional.len();
    loop {
        let used = widths.iter().map(|w| w + 1).sum::<usize>()
            + fixed
            + optional[..keep].iter().map(|w| w + 1).sum::<usize>()
            + 2;
        let bar = width.saturating_sub(used);
        if bar >= MIN_BAR {
            return Layout {
                names: widths,
                bar: bar.min(MAX_BAR),
                optional: keep,
            };
        }
        if keep > 0 {
            keep -= 1;
            continue;
        }
        // The widest name column above its minimum gives a character.
        let widest = widths
            .iter()
            .enumerate()
            .filter(|&(i, &w)| w > names[i].1)
            .max_by_key(|&(_, &w)| w)
            .map(|(i, _)| i);
        match widest {
            Some(i) => widths[i] -= 1,
            None => {
                return Layout {
                    names: widths,
                    bar,
                    optional: 0,
                }
            }
        }
    }
}

/// A bar of `width` cells, or nothing when there is no room for one.
fn maybe_bar(fraction: f64, width: usize) -> String {
    if width == 0 {
        String::new()
    } else {
        format!(" {}", bar(fraction, width))
    }
}

/// The per-item totals in at most `budget` lines (at least 2): a column
/// header, one row per item, and "… and N more files" when cut. A row is
/// the fleet at a glance: the current version, how many peers hold it
/// complete, how many are still fetching it (updating), how many are on an
/// older version; then the updating peers' mean completion, its rate and
/// the owner, while they fit.
fn files_block(files: &[FileTotals], width: usize, budget: usize) -> Vec<String> {
    let name_w = files
        .iter()
        .map(|f| f.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, MAX_FILE_COL);
    let owner_w = files
        .iter()
        .map(|f| f.owner.chars().count())
        .max()
        .unwrap_or(0)
        .clamp("owner".len(), MAX_OWNER_COL);
    // version, size, current, updating, older (each with its space before)
    const VERSION: usize = 5;
    const SIZE: usize = 9;
    const CURRENT: usize = 7;
    const UPDATING: usize = 8;
    const OLDER: usize = 6;
    let fixed = 1 + VERSION + 1 + SIZE + 1 + CURRENT + 1 + UPDATING + 1 + OLDER;
    // percent, rate, owner
    let l = layout(width, &[(name_w, MIN_FILE_COL)], fixed, &[6, 10, owner_w]);
    let name_w = l.names[0];
    let bar_w = l.bar;
    let mut head = format!(
        "{} {} {} {} {} {}",
        column("file", name_w),
        right("ver", VERSION),
        right("size", SIZE),
        right("current", CURRENT),
        right("updating", UPDATING),
        right("older", OLDER)
    );
    if bar_w > 0 {
        head.push_str(&format!(" {}", column("mean done", bar_w + 2)));
    }
    if l.optional >= 1 {
        head.push_str(&format!(" {}", right("%", 6)));
    }
    if l.optional >= 2 {
        head.push_str(&format!(" {}", right("rate", 10)));
    }
    if l.optional >= 3 {
        head.push_str(&format!(" {}", column("owner", owner_w)));
    }
    let mut out = vec![head.trim_end().to_string()];
    let room = budget.saturating_sub(1);
    let shown = if files.len() <= room {
        files.len()
    } else {
        room.saturating_sub(1)
    };
    for f in &files[..shown] {
        let mut line = format!(
            "{} {} {} {} {} {}{}",
            column(&f.name, name_w),
            right(&format!("v{}", f.version), VERSION),
            right(&format_size(f.size), SIZE),
            right(&f.seeders.to_string(), CURRENT),
            right(&f.leechers.to_string(), UPDATING),
            right(&f.older.to_string(), OLDER),
            // No bar when nothing downloads it: an empty one would say 0%.
            if f.leechers == 0 && bar_w > 0 {
                " ".repeat(bar_w + 3)
            } else {
                maybe_bar(f.mean_fraction, bar_w)
            }
        );
        if l.optional >= 1 {
            let pct = if f.leechers == 0 {
                "-".to_string()
            } else {
                percent(f.mean_fraction, false)
            };
            line.push_str(&format!(" {}", right(&pct, 6)));
        }
        if l.optional >= 2 {
            line.push_str(&format!(" {}", right(&format_rate(f.rate_bps), 10)));
        }
        if l.optional >= 3 {
            let owner = if f.owner.is_empty() { "-" } else { &f.owner };
            line.push_str(&format!(" {}", column(owner, owner_w)));
        }
        out.push(line.trim_end().to_string());
    }
    if shown < files.len() {
        out.push(format!("… and {} more files", files.len() - shown));
    }
    out
}

/// The peer rows in at most `room` lines: a column header, the rows that
/// fit, and "… and N more peers" for the peers not shown at all.
fn peers_block(s: &Summary, width: usize, room: usize) -> Vec<String> {
    if s.rows.is_empty() {
        return if s.peers == 0 {
            vec!["no peers registered".into()]
        } else {
            vec![format!("… {} peers", s.peers)]
        };
    }
    if room < 2 {
        return vec![format!("… {} peers", s.peers)];
    }
    let mut shown = s.rows.len().min(room - 1);
    if left_out(s, shown) != (0, 0) {
        shown = s.rows.len().min(room - 2);
    }
    let rows = &s.rows[..shown];
    let peer_w = rows
        .iter()
        .map(|r| r.peer_id.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, MAX_PEER_COL);
    let file_w = rows
        .iter()
        .map(|r| r.file.chars().count())
        .max()
        .unwrap_or(0)
        .clamp("(no files)".len(), MAX_FILE_COL);
    // percent (always), then rate and seen while they fit
    let l = layout(
        width,
        &[(peer_w, MIN_PEER_COL), (file_w, MIN_FILE_COL)],
        6 + 1,
        &[10, 4],
    );
    let (peer_w, file_w, bar_w) = (l.names[0], l.names[1], l.bar);
    let mut head = format!("{} {}", column("peer", peer_w), column("file", file_w));
    if bar_w > 0 {
        head.push_str(&format!(" {}", column("progress", bar_w + 2)));
    }
    head.push_str(&format!(" {}", right("%", 6)));
    if l.optional >= 1 {
        head.push_str(&format!(" {}", right("rate", 10)));
    }
    if l.optional >= 2 {
        head.push_str(&format!(" {}", right("seen", 4)));
    }
    let mut out = vec![head.trim_end().to_string()];
    for r in rows {
        let peer = column(&r.peer_id, peer_w);
        let mut line = if r.file.is_empty() {
            // Its address where the bar and the percentage would be.
            let tail_w = if bar_w > 0 { bar_w + 3 } else { 0 } + 6;
            format!(
                "{peer} {} {}",
                column("(no files)", file_w),
                column(&r.addr, tail_w)
            )
        } else {
            format!(
                "{peer} {}{} {}",
                column(&r.file, file_w),
                maybe_bar(r.fraction, bar_w),
                percent(r.fraction, r.complete)
            )
        };
        if l.optional >= 1 {
            let rate = if r.complete {
                "seeding".to_string()
            } else if r.file.is_empty() {
                String::new()
            } else {
                format_rate(r.rate_bps)
            };
            line.push_str(&format!(" {}", right(&rate, 10)));
        }
        if l.optional >= 2 {
            line.push_str(&format!(" {}", right(&format_ago(r.seen_ago), 4)));
        }
        out.push(line);
    }
    match left_out(s, shown) {
        (0, 0) => {}
        (0, rows) => out.push(format!("… and {}", count_of(rows, "more row", "more rows"))),
        (peers, _) => out.push(format!(
            "… and {}",
            count_of(peers, "more peer", "more peers")
        )),
    }
    out
}

/// What showing only the first `shown` rows leaves out: (the peers with
/// no row shown, the rows not shown). A peer has a row per file.
pub fn left_out(s: &Summary, shown: usize) -> (usize, usize) {
    let shown = shown.min(s.rows.len());
    let ids: HashSet<&str> = s.rows[..shown].iter().map(|r| r.peer_id.as_str()).collect();
    (s.peers.saturating_sub(ids.len()), s.rows.len() - shown)
}

/// A frame for a terminal: drawn over the last one from the top left,
/// each line cleared to its end, and whatever the last frame had below
/// cleared too, so nothing flickers. No line feed after the last line: a
/// frame as tall as the screen does not scroll it.
pub fn in_place(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str(HOME);
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(line);
        out.push_str(CLEAR_LINE);
    }
    out.push_str(CLEAR_BELOW);
    out
}

/// Whether two summaries show the same swarm: the same peers, files and
/// progress. Rates and ages, which move every second, are left out, so a
/// plain log gets a frame per event rather than per tick.
pub fn same_swarm(a: &Summary, b: &Summary) -> bool {
    type Item = (String, u64, u32, String, [u32; 3], u64);
    let files = |s: &Summary| -> Vec<Item> {
        s.file_totals
            .iter()
            .map(|f| {
                let mean = (f.mean_fraction * 1000.0) as u64;
                let peers = [f.seeders, f.leechers, f.older];
                (
                    f.name.clone(),
                    f.size,
                    f.version,
                    f.owner.clone(),
                    peers,
                    mean,
                )
            })
            .collect()
    };
    let rows = |s: &Summary| -> Vec<(String, String, String, u64, bool)> {
        s.rows
            .iter()
            .map(|r| {
                let done = (r.fraction * 1000.0) as u64;
                (
                    r.peer_id.clone(),
                    r.addr.clone(),
                    r.file.clone(),
                    done,
                    r.complete,
                )
            })
            .collect()
    };
    (a.peers, a.seeders, a.leechers, a.files, a.histogram)
        == (b.peers, b.seeders, b.leechers, b.files, b.histogram)
        && files(a) == files(b)
        && rows(a) == rows(b)
}

/// Starts the thread that redraws the dashboard until stdout fails.
/// `source` is asked for as many peer rows as the screen has lines.
pub fn spawn(source: impl SummarySource, started: Instant) {
    let spawned = std::thread::Builder::new()
        .name("tracker-dashboard".into())
        .spawn(move || {
            let terminal = std::io::stdout().is_terminal();
            // What the last plain frame showed, and when.
            let mut shown: Option<(Summary, Instant)> = None;
            loop {
                let frame = if terminal {
                    // One column short of the edge: a line that fills the
                    // last column leaves the cursor waiting to wrap, where
                    // erasing to the end of the line eats that column.
                    let (w, h) = screen_size();
                    let s = source.summary(h);
                    Some(in_place(&render(
                        &s,
                        started.elapsed(),
                        w.saturating_sub(1).max(1),
                        h,
                    )))
                } else {
                    let (w, h) = PLAIN_SIZE;
                    let s = source.summary(h);
                    let due = match &shown {
                        None => true,
                        Some((last, at)) => !same_swarm(last, &s) && at.elapsed() >= PLAIN_PERIOD,
                    };
                    let frame = due.then(|| render(&s, started.elapsed(), w, h));
                    if due {
                        shown = Some((s, Instant::now()));
                    }
                    frame
                };
                if let Some(frame) = frame {
                    let mut out = std::io::stdout().lock();
                    let written = if terminal {
                        write!(out, "{frame}")
                    } else {
                        writeln!(out, "{frame}\n")
                    };
                    if written.and_then(|_| out.flush()).is_err() {
                        log::warn!("dashboard stopped: stdout is closed");
                        return;
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
mod tests;
