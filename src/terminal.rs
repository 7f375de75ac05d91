//! What the live views (a `get`'s progress line, the tracker's dashboard)
//! share about the terminal they draw on.

/// Erases from the cursor to the end of the line.
pub const CLEAR_LINE: &str = "\x1b[K";

/// The size when neither the terminal nor the environment says.
pub const DEFAULT_SIZE: (usize, usize) = (80, 24);
/// `COLUMNS` narrower than this is ignored (a stale or bogus value).
const MIN_ENV_COLUMNS: usize = 20;

/// The screen as (columns, lines): asked of the terminal on stdout
/// (`TIOCGWINSZ`), else `$COLUMNS` / `$LINES` (which shells set but rarely
/// export), else 80x24, each dimension on its own. Asked afresh on every
/// call, so a resized window is followed.
pub fn screen_size() -> (usize, usize) {
    pick_size(
        stdout_winsize(),
        std::env::var("COLUMNS").ok().as_deref(),
        std::env::var("LINES").ok().as_deref(),
    )
}

/// Terminal width, as `screen_size` finds it.
pub fn screen_width() -> usize {
    screen_size().0
}

/// The terminal's answer wins when it gives a dimension (a fresh
/// pseudo-terminal says 0x0), then the variables, then the default.
fn pick_size(
    terminal: Option<(u16, u16)>,
    columns: Option<&str>,
    lines: Option<&str>,
) -> (usize, usize) {
    let (t_cols, t_rows) = terminal.unwrap_or((0, 0));
    let env = |v: Option<&str>, min: usize| {
        v.and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n >= min)
    };
    let cols = Some(usize::from(t_cols))
        .filter(|&c| c > 0)
        .or_else(|| env(columns, MIN_ENV_COLUMNS))
        .unwrap_or(DEFAULT_SIZE.0);
    let rows = Some(usize::from(t_rows))
        .filter(|&r| r > 0)
        .or_else(|| env(lines, 1))
        .unwrap_or(DEFAULT_SIZE.1);
    (cols, rows)
}

/// (columns, rows) of the terminal on stdout, or None when stdout is not
/// a terminal.
fn stdout_winsize() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which
    // points at a live, writable `winsize` of ours; on a descriptor that
    // is not a terminal it fails with ENOTTY and writes nothing.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some((ws.ws_col, ws.ws_row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminal_then_the_environment_then_80x24() {
        assert_eq!(
            pick_size(Some((132, 43)), Some("100"), Some("50")),
            (132, 43)
        );
        // A fresh pty says 0x0: the variables decide.
        assert_eq!(pick_size(Some((0, 0)), Some("100"), Some("50")), (100, 50));
        assert_eq!(pick_size(None, Some(" 100 "), None), (100, 24));
        assert_eq!(pick_size(None, None, Some("12")), (80, 12));
        assert_eq!(pick_size(None, None, None), DEFAULT_SIZE);
        // Each dimension on its own.
        assert_eq!(pick_size(Some((90, 0)), None, Some("30")), (90, 30));
        // Nonsense is ignored.
        assert_eq!(pick_size(None, Some("5"), Some("0")), (80, 24));
        assert_eq!(pick_size(None, Some("wide"), Some("-3")), (80, 24));
    }

    #[test]
    fn asking_a_non_terminal_is_harmless() {
        // Under the test harness stdout may or may not be a terminal;
        // either way the answer is a usable size.
        let (w, h) = screen_size();
        assert!(w > 0 && h > 0);
        assert_eq!(screen_width(), w);
    }
}
