//! Just enough W3C WebDriver to drive Debian's chromium through
//! chromedriver: start both, open pages, find and click elements, type a
//! file path into a file input, run a script, take a screenshot. The
//! session and chromedriver are ended when the `Browser` is dropped.

use crate::common::http;
use crate::common::{free_port, wait_until};
use base64::Engine as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The key W3C WebDriver uses for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium flags: headless, no sandbox (we run as root in CI), and
/// nothing that phones home, which this closed network would refuse.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-quic",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// Where a program is: `$ENV_VAR`, else the first of `names` on PATH or
/// in /usr/bin.
fn find_program(env_var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .collect();
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// chromium and chromedriver, or a failure that says how to get them: the
/// browser test must never pass by skipping.
pub fn find_browser() -> (PathBuf, PathBuf) {
    let chromium = find_program(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let driver = find_program("CHROMEDRIVER", &["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => (c, d),
        (c, d) => panic!(
            "the browser test needs chromium and chromedriver, and {} missing: install them \
             with `apt-get install -y chromium chromium-driver` (Debian), or run .ci/run, \
             which does; CHROMIUM and CHROMEDRIVER may point at other binaries",
            match (c, d) {
                (None, None) => "both are",
                (None, _) => "chromium is",
                _ => "chromedriver is",
            }
        ),
    }
}

pub struct Browser {
    driver: Option<Child>,
    base: String,
    session: String,
    log: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless chromium session
    /// with its profile in `profile_dir`.
    pub fn start(chromium: &Path, chromedriver: &Path, profile_dir: &Path) -> Browser {
        let port = free_port();
        let log = profile_dir.with_extension("chromedriver.log");
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        let mut browser = Browser {
            driver: Some(driver),
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            log,
        };
        wait_until(Duration::from_secs(60), "chromedriver to be ready", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && browser.call("GET", "/status", None)["ready"] == json!(true)
        });
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile_dir.display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let answer = browser.call("POST", "/session", Some(caps));
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {answer}"))
            .to_string();
        browser
    }

    /// One WebDriver command; its `value`, or a panic with the driver's
    /// error and log.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers = [("Content-Type", "application/json; charset=utf-8")];
        let r = http::request(&self.base, method, path, &headers, body.as_bytes());
        let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
            panic!(
                "chromedriver answered {} with non-JSON ({e}): {}",
                r.status,
                r.text()
            )
        });
        if r.status != 200 {
            panic!(
                "WebDriver {method} {path} failed with {}: {}\n--- chromedriver log tail\n{}",
                r.status,
                v["value"],
                self.log_tail()
            );
        }
        v["value"].clone()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Loads `url` and waits for the page's load event.
    pub fn open(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({"url": url})));
    }

    /// The first element matching a CSS selector.
    pub fn find(&self, css: &str) -> String {
        let v = self.session_call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element id in {v}"))
            .to_string()
    }

    pub fn click(&self, element: &str) {
        self.session_call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    /// Types `text` into an element; for a file input, the path to choose.
    pub fn send_keys(&self, element: &str, text: &str) {
        self.session_call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Opens a new tab and returns its handle (without switching to it).
    pub fn new_tab(&self) -> String {
        let v = self.session_call("POST", "/window/new", Some(json!({"type": "tab"})));
        v["handle"].as_str().expect("a window handle").to_string()
    }

    pub fn current_tab(&self) -> String {
        self.session_call("GET", "/window", None)
            .as_str()
            .expect("a window handle")
            .to_string()
    }

    pub fn switch_to(&self, handle: &str) {
        self.session_call("POST", "/window", Some(json!({"handle": handle})));
    }

    /// Saves a PNG of the visible page.
    pub fn screenshot(&self, path: &Path) {
        let v = self.session_call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 screenshot"))
            .expect("decoding the screenshot");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("creating the screenshot directory");
        }
        std::fs::write(path, png).expect("writing the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Ends chromium. Best effort and panic-free (this may run while
            // a failed test unwinds); the driver is killed anyway.
            let auth = http::authority(&self.base).to_string();
            if let Ok(mut s) = std::net::TcpStream::connect(auth.as_str()) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                let req = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: {auth}\r\nConnection: close\r\n\r\n",
                    self.session
                );
                let _ = std::io::Write::write_all(&mut s, req.as_bytes());
                let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
            }
        }
        if let Some(mut d) = self.driver.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}
