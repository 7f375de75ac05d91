//! What the live views (a `get`'s progress line, the tracker's dashboard)
//! share about the terminal they draw on.

/// Erases from the cursor to the end of the line.
pub const CLEAR_LINE: &str = "\x1b[K";

/// Terminal width from `COLUMNS`, else 80 (narrower than 20 is ignored).
pub fn screen_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|&w: &usize| w >= 20)
        .unwrap_or(80)
}
