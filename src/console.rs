//! The peer's shell on a terminal: one line at the bottom, the prompt with
//! what the user is typing, and everything else printed above it. The
//! terminal's own line editing is switched off (no `ICANON`, no `ECHO`;
//! signals stay on, so Ctrl-C still works), so we know what has been
//! typed and can draw it again after a download's `done` line, a warning
//! or a progress update: background output never lands in the middle of a
//! half-typed command.
//!
//! Only when stdin and stdout are both terminals (`Console::start`);
//! otherwise nothing changes and the shell reads lines as before. The
//! line editing itself (`LineBuffer`) is pure and tested.

use std::io::{Read, Write};
use std::sync::{Mutex, OnceLock};

/// Erases the line the cursor is on, from its start.
const ERASE: &str = "\r\x1b[K";

/// The one console of the process, once started.
static CONSOLE: OnceLock<Console> = OnceLock::new();

pub struct Console {
    saved: libc::termios,
    line: Mutex<Line>,
}

/// What the bottom line shows.
struct Line {
    /// Before the prompt: downloads in progress (`[big.bin 45%] `).
    status: String,
    input: LineBuffer,
    /// False while a command's output is being printed: the prompt comes
    /// back when it is read again.
    shown: bool,
}

/// What a key did to the line being typed.
#[derive(Debug, PartialEq, Eq)]
pub enum Key {
    /// The line is finished (Enter).
    Line(String),
    /// Ctrl-D on an empty line.
    Eof,
    /// The line changed or nothing happened: draw it again.
    Edit,
}

/// The command being typed, byte by byte (UTF-8 arrives a byte at a time).
#[derive(Default, Debug)]
pub struct LineBuffer {
    bytes: Vec<u8>,
    /// Inside an escape sequence (arrow keys and the like), which is
    /// skipped: 1 after ESC, 2 after `ESC [`.
    escape: u8,
}

impl LineBuffer {
    /// Takes one byte from the keyboard.
    pub fn key(&mut self, b: u8) -> Key {
        if self.escape == 1 {
            self.escape = if b == b'[' || b == b'O' { 2 } else { 0 };
            return Key::Edit;
        }
        if self.escape == 2 {
            // Parameters and intermediates until the final byte.
            if (0x40..=0x7e).contains(&b) {
                self.escape = 0;
            }
            return Key::Edit;
        }
        match b {
            b'\r' | b'\n' => {
                let line = String::from_utf8_lossy(&self.bytes).into_owned();
                self.bytes.clear();
                return Key::Line(line);
            }
            0x04 if self.bytes.is_empty() => return Key::Eof,
            0x7f | 0x08 => self.pop_char(),
            // Ctrl-U: the whole line.
            0x15 => self.bytes.clear(),
            // Ctrl-W: the last word.
            0x17 => {
                while self.bytes.last() == Some(&b' ') {
                    self.bytes.pop();
                }
                while self.bytes.last().is_some_and(|&c| c != b' ') {
                    self.bytes.pop();
                }
            }
            0x1b => self.escape = 1,
            b if b >= 0x20 => self.bytes.push(b),
            // Other control characters (a tab, Ctrl-D mid-line) do nothing.
            _ => {}
        }
        Key::Edit
    }

    fn pop_char(&mut self) {
        // Back over UTF-8 continuation bytes to the start of the character.
        while let Some(b) = self.bytes.pop() {
            if b & 0xc0 != 0x80 {
                break;
            }
        }
    }

    /// What is typed so far, as it is shown.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

impl Console {
    /// Switches the terminal to key-at-a-time input when stdin and stdout
    /// are both terminals; `None` otherwise (or if it is already started).
    pub fn start() -> Option<&'static Console> {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
            return None;
        }
        // SAFETY: a zeroed termios is a valid value for tcgetattr to fill.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is open; `saved` is a live termios we own.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: as above; `raw` is a copy of a valid termios.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        let console = Console {
            saved,
            line: Mutex::new(Line {
                status: String::new(),
                input: LineBuffer::default(),
                shown: false,
            }),
        };
        CONSOLE.set(console).ok()?;
        CONSOLE.get()
    }

    /// The console, if one was started.
    pub fn get() -> Option<&'static Console> {
        CONSOLE.get()
    }

    /// Gives the terminal back as it was (before exiting: `exit` skips
    /// destructors).
    pub fn restore() {
        if let Some(c) = CONSOLE.get() {
            // SAFETY: fd 0 is open; `saved` came from tcgetattr.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &c.saved) };
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{ERASE}");
            let _ = out.flush();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads a line, drawing the prompt and echoing what is typed; `None`
    /// at Ctrl-D on an empty line or the end of input.
    pub fn read_line(&self) -> Option<String> {
        self.show();
        let mut stdin = std::io::stdin().lock();
        let mut byte = [0u8; 1];
        loop {
            match stdin.read(&mut byte) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
            let mut line = self.lock();
            match line.input.key(byte[0]) {
                Key::Line(text) => {
                    // The command stays on screen, as a terminal shows it.
                    let shown = format!("{}> {text}", line.status);
                    line.shown = false;
                    drop(line);
                    write_out(&format!("{ERASE}{shown}\n"));
                    return Some(text);
                }
                Key::Eof => {
                    line.shown = false;
                    write_out(ERASE);
                    return None;
                }
                Key::Edit => draw(&line),
            }
        }
    }

    /// Prints `text` (lines) above the prompt, then draws the prompt again
    /// if it was showing.
    pub fn print_above(&self, text: &str, to_stderr: bool) {
        let line = self.lock();
        let body = format!("{ERASE}{}\n", text.trim_end_matches('\n'));
        if to_stderr {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(body.as_bytes());
            let _ = err.flush();
        } else {
            write_out(&body);
        }
        if line.shown {
            draw(&line);
        }
    }

    /// Sets what the prompt line shows before `> ` (downloads in
    /// progress), and draws it.
    pub fn set_status(&self, status: String) {
        let mut line = self.lock();
        if line.status != status {
            line.status = status;
            if line.shown {
                draw(&line);
            }
        }
    }

    fn show(&self) {
        let mut line = self.lock();
        line.shown = true;
        draw(&line);
    }
}

/// The prompt line, cut to the screen's width from the left so the end of
/// what is typed stays in view (a wrapped line could not be redrawn).
fn draw(line: &Line) {
    let text = format!("{}> {}", line.status, line.input.text());
    let width = crate::terminal::screen_width().saturating_sub(1).max(10);
    let chars = text.chars().count();
    let shown: String = text.chars().skip(chars.saturating_sub(width)).collect();
    write_out(&format!("{ERASE}{shown}"));
}

fn write_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Writes `text` and a line feed to stdout, flushed (above the prompt
/// when a console runs). When stdout is
/// closed (`peer ... | head -1`) the process ends quietly, status 0, where
/// `println!` would panic on the broken pipe: nobody is left to read.
pub fn say(text: impl std::fmt::Display) {
    if let Some(c) = Console::get() {
        return c.print_above(&text.to_string(), false);
    }
    let mut out = std::io::stdout().lock();
    exit_if_gone(writeln!(out, "{text}").and_then(|()| out.flush()));
}

/// `say` without the line feed (a prompt).
pub fn say_partial(text: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    exit_if_gone(write!(out, "{text}").and_then(|()| out.flush()));
}

/// `say` on stderr (`error: ...` lines).
pub fn say_err(text: impl std::fmt::Display) {
    if let Some(c) = Console::get() {
        return c.print_above(&text.to_string(), true);
    }
    let mut err = std::io::stderr().lock();
    exit_if_gone(writeln!(err, "{text}"));
}

/// Ends the process on a broken pipe; other write errors (a full disk
/// under a redirect) are not worth dying for.
fn exit_if_gone(result: std::io::Result<()>) {
    if matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe) {
        std::process::exit(0);
    }
}

/// A log target that prints through the console when there is one (whole
/// lines, above the prompt), else to stderr.
pub struct LogSink {
    pending: Vec<u8>,
}

impl LogSink {
    pub fn new() -> LogSink {
        LogSink {
            pending: Vec::new(),
        }
    }
}

impl Default for LogSink {
    fn default() -> Self {
        LogSink::new()
    }
}

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            match Console::get() {
                Some(c) => c.print_above(&text, true),
                None => {
                    let _ = std::io::stderr().write_all(&line);
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(keys: &[u8]) -> (LineBuffer, Vec<Key>) {
        let mut l = LineBuffer::default();
        let out = keys.iter().map(|&b| l.key(b)).collect();
        (l, out)
    }

    #[test]
    fn typing_and_editing() {
        let (_, keys) = typed(b"status\r");
        assert_eq!(keys.last(), Some(&Key::Line("status".into())));
        let (l, _) = typed(b"gte\x7f\x7fet");
        assert_eq!(l.text(), "get");
        let (l, _) = typed(b"get a b\x17");
        assert_eq!(l.text(), "get a ");
        let (l, _) = typed(b"get a\x15who");
        assert_eq!(l.text(), "who");
        // Arrow keys are skipped, not typed.
        let (l, _) = typed(b"ab\x1b[Dc\x1bOA");
        assert_eq!(l.text(), "abc");
        // A character of several bytes is erased whole.
        let (l, _) = typed("né\x7f".as_bytes());
        assert_eq!(l.text(), "n");
        let (_, keys) = typed(b"\x04");
        assert_eq!(keys, [Key::Eof]);
        let (l, keys) = typed(b"a\x04");
        assert_eq!((l.text().as_str(), keys.last()), ("a", Some(&Key::Edit)));
        let (l, _) = typed(b"a\tb\x01");
        assert_eq!(l.text(), "ab");
    }
}
