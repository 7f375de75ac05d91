//! The web UI: `peer --http PORT` (`peer_ui`) and `tracker --http PORT`
//! (`tracker_ui`). Pages are plain HTML rendered here, styled and made
//! live by a small stylesheet and script compiled into the binary, so the
//! UI works offline.
//!
//! Safe by default: bound to 127.0.0.1 unless `--http-bind` says
//! otherwise; a request whose Host header is not an IP literal, localhost
//! or a name given with `--http-host` is refused (DNS rebinding); a POST
//! from another origin, or with no proof that it comes from our own pages
//! (`check_origin`), is refused (CSRF); request heads and bodies are
//! bounded (`http`), uploads excepted, which stream to disk under their own
//! cap. Connections are admitted as the block server's are (`admission`):
//! a thread only once the request head is whole, each with read and write
//! timeouts.

pub mod admission;
pub mod escape;
pub mod http;
pub mod multipart;
pub mod peer_ui;
pub mod tracker_ui;

use crate::cli::HttpConfig;
use crate::error::{Error, Result};
use crate::net::conn::drain_and_close;
use crate::net::gate::{self, Ticket};
use escape::html;
use http::{Head, HttpError, HttpRequest, Method, Response};
use log::{debug, info, warn};
use std::io::{BufReader, BufWriter};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long one read of a request body may wait.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one write of a response may wait for the client.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// After refusing a body, how much of it is read and dropped so the
/// client gets the answer instead of a reset.
const MAX_DRAIN: u64 = 1 << 20;

/// One web application: turns a request into a response.
pub trait App: Send + Sync + 'static {
    fn handle(&self, req: &mut HttpRequest<'_>) -> Response;

    /// The largest body this request may carry; bigger ones get 413 before
    /// `handle` runs.
    fn body_limit(&self, _head: &Head) -> u64 {
        http::MAX_SMALL_BODY
    }
}

/// A bound, not yet serving, web UI listener.
pub struct WebServer {
    listener: TcpListener,
    addr: SocketAddr,
    hosts: Arc<Vec<String>>,
}

impl WebServer {
    /// Binds now, so a taken port is reported at start, before anything runs.
    pub fn bind(cfg: &HttpConfig) -> Result<WebServer> {
        let want = SocketAddr::new(cfg.bind, cfg.port);
        let listener = TcpListener::bind(want).map_err(|e| {
            Error::Usage(format!(
                "cannot listen for the web UI on {want}: {e} (pick another --http port)"
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io(format!("cannot listen on {want}"), e))?;
        Ok(WebServer {
            listener,
            addr,
            hosts: Arc::new(cfg.hosts.clone()),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The lines to print at start: where to point a browser, and a
    /// warning when the UI is open to other machines.
    pub fn banner(&self) -> Vec<String> {
        let mut lines: Vec<String> = crate::net::addrs::reachable_addrs(&self.addr)
            .into_iter()
            .map(|a| format!("web UI at http://{a}/"))
            .collect();
        if !self.addr.ip().is_loopback() {
            lines.push(
                "note: the web UI has no password: anyone who can reach this address can \
                 upload and fetch files; use --http-bind 127.0.0.1 to keep it local"
                    .into(),
            );
        }
        lines
    }

    /// Serves `app` on a thread of its own until the process ends.
    pub fn spawn(self, app: Arc<dyn App>) -> Result<()> {
        let WebServer {
            listener,
            addr,
            hosts,
        } = self;
        info!("web UI serving on {addr}");
        std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                let settings = gate::Settings {
                    what: "http",
                    limits: admission::ADMISSION,
                    max_frame: http::MAX_HEAD,
                };
                let opening = gate::Opening {
                    whole: Box::new(admission::head_whole),
                    refuse: refuse_busy,
                    late: refuse_late,
                };
                let counters = gate::Counters {
                    refused: refusals(),
                    // The gate logs it; the web UI has no counter for it.
                    panicked: Arc::new(|| {}),
                };
                gate::serve_opening(
                    listener,
                    settings,
                    opening,
                    move |s, ticket| serve_connection(s, &ticket, app.as_ref(), &hosts),
                    counters,
                )
            })
            .map(|_| ())
            .map_err(|e| Error::io("starting the web UI thread", e))
    }
}

/// Connections the web UI refused or evicted (one UI per process).
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Counts each refusal for `/metrics` and logs them at most once a minute:
/// one line per refused connection made 10,834 lines in 35 s under a
/// slow-loris.
fn refusals() -> Box<dyn Fn()> {
    let log = std::cell::RefCell::new(admission::RefusalLog::default());
    Box::new(move || {
        REFUSED.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = log.borrow_mut().note(Instant::now()) {
            warn!(
                "web UI: {n} connection{} refused or closed since the last such line: too many \
                 at once, or too slow to send a request (at most one line a minute; every one is \
                 counted in /metrics)",
                if n == 1 { "" } else { "s" }
            );
        }
    })
}

fn refuse_busy(stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(gate::REFUSAL_WRITE_TIMEOUT));
    let _ = Response::text(
        503,
        "too many connections to the web UI; try again\n".into(),
    )
    .write_to(&mut &stream, false);
}

/// A connection whose request head did not arrive in time: 408, as the
/// handler's own read would say.
fn refuse_late(stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(gate::REFUSAL_WRITE_TIMEOUT));
    let _ = http::head_timeout()
        .into_response(false)
        .write_to(&mut &stream, false);
}

/// One request, one response, then close. The gate hands the connection
/// over once its head has arrived (or the start deadline passed).
fn serve_connection(stream: TcpStream, ticket: &Ticket, app: &dyn App, hosts: &[String]) {
    ticket.busy();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(http::HEAD_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let (Ok(remote), Ok(read_half)) = (stream.peer_addr(), stream.try_clone()) else {
        return;
    };
    let mut reader = BufReader::with_capacity(64 << 10, read_half);
    let deadline = ticket.deadline();
    let head = match http::read_head(&mut reader, deadline)
        .and_then(|raw| raw.map(|r| http::parse_head(&r)).transpose())
    {
        Ok(Some(h)) => h,
        Ok(None) => return,
        Err(e) => {
            debug!("http {remote}: {} {}", e.status, e.message);
            let _ = e.into_response(false).write_to(&mut &stream, false);
            drain_and_close(&stream, &mut reader, MAX_DRAIN);
            return;
        }
    };
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let head_only = head.method == Method::Head;
    let json = head.path.starts_with("/api/") || head.wants_json();
    let (method, path) = (head.method, head.path.clone());
    let (response, unread) = match admit(&head, app, hosts) {
        Err(e) => (e.into_response(json), head.content_length),
        Ok(()) => {
            let mut interim = &stream;
            let mut req = HttpRequest::new(head, remote, &mut reader, &mut interim);
            let response = app.handle(&mut req);
            let unread = if req.body_withheld() { 0 } else { req.unread() };
            (response, unread)
        }
    };
    debug!("http {remote}: {method:?} {path} -> {}", response.status);
    let mut out = BufWriter::with_capacity(http::STREAM_CHUNK, &stream);
    if let Err(e) = response.write_to(&mut out, head_only) {
        debug!("http {remote}: sending the response: {e}");
    }
    drop(out);
    if unread > 0 {
        drain_and_close(&stream, &mut reader, unread.min(MAX_DRAIN));
    }
}

/// The checks every request passes before its route sees it.
fn admit(head: &Head, app: &dyn App, hosts: &[String]) -> std::result::Result<(), HttpError> {
    check_host(head.host(), hosts)?;
    check_origin(head, form_token())?;
    let limit = app.body_limit(head);
    if head.content_length > limit {
        return Err(HttpError::new(
            413,
            format!(
                "the request body of {} bytes is over the limit of {limit} bytes for {}",
                head.content_length, head.path
            ),
        ));
    }
    Ok(())
}

/// Accepts a Host header naming an IP literal (v4, or v6 in brackets),
/// `localhost`, or one of `allowed`, with any port. A DNS-rebinding page
/// reaches us under its own name, which is none of these, so it is
/// refused before any route runs (the fix Transmission adopted in 2018).
pub fn check_host(host: &str, allowed: &[String]) -> std::result::Result<(), HttpError> {
    if host_allowed(host, allowed) {
        return Ok(());
    }
    let shown: String = host.chars().take(100).collect();
    Err(HttpError::new(
        421,
        format!(
            "refused: this web UI does not answer to the host name {shown:?} (a protection \
             against DNS rebinding). Open it as http://127.0.0.1:PORT/ or \
             http://localhost:PORT/, or start it with --http-host NAME to allow a name."
        ),
    ))
}

fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        return ip.parse::<Ipv6Addr>().is_ok() && port_ok(after);
    } else {
        match host.split_once(':') {
            Some((name, port)) => {
                if !port_ok(&format!(":{port}")) {
                    return false;
                }
                name
            }
            None => host,
        }
    };
    if name.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost") || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// `""` or `:` followed by a port number.
fn port_ok(text: &str) -> bool {
    match text.strip_prefix(':') {
        None => text.is_empty(),
        Some(p) => {
            !p.is_empty()
                && p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok()
        }
    }
}

/// The header every change under `/api/` must carry, with any value. A
/// page of another site cannot send a custom header without a CORS
/// preflight, which this server never grants; a script adds it with
/// `curl -H 'X-Requested-With: p2pshare'`.
pub const API_HEADER: &str = "X-Requested-With";
/// The query parameter a form post carries: `form_token()`.
pub const TOKEN_PARAM: &str = "csrf";

static FORM_TOKEN: OnceLock<String> = OnceLock::new();

/// This process's form token: 128 random bits from the OS, in hex, made
/// on first use. Our pages carry it (in their forms' addresses and a
/// `<meta>` the script reads); another site cannot read our pages, so it
/// cannot learn it.
pub fn form_token() -> &'static str {
    FORM_TOKEN.get_or_init(|| {
        use chacha20poly1305::aead::rand_core::RngCore;
        let mut bytes = [0u8; 16];
        chacha20poly1305::aead::OsRng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// A request that changes something must come from our own pages:
/// - its Origin, when the browser sends one, must be this very host, and
///   a browser's `Sec-Fetch-Site: cross-site` is refused outright;
/// - under `/api/` it carries `API_HEADER`; elsewhere (a form's post) it
///   carries `token` as `?csrf=`. So a request that says nothing of where
///   it comes from (no Origin, no Sec-Fetch-Site: an old browser, a
///   plug-in) is refused too.
pub fn check_origin(head: &Head, token: &str) -> std::result::Result<(), HttpError> {
    // Other methods than these reach no route (405).
    if head.method != Method::Post {
        return Ok(());
    }
    let refuse = |what: String| {
        Err(HttpError::new(
            403,
            format!(
                "refused: {what}; this web UI only takes changes from its own pages (cross-site request forgery)"
            ),
        ))
    };
    if head.header("sec-fetch-site") == Some("cross-site") {
        return refuse("the browser says this request comes from another site".into());
    }
    if let Some(origin) = head.header("origin") {
        let expected = format!("http://{}", head.host());
        if !origin.eq_ignore_ascii_case(&expected) {
            let shown: String = origin.chars().take(100).collect();
            return refuse(format!(
                "the request comes from {shown:?}, not {expected:?}"
            ));
        }
    }
    if head.path.starts_with("/api/") {
        return match head.header(&API_HEADER.to_ascii_lowercase()) {
            Some(v) if !v.is_empty() => Ok(()),
            _ => refuse(format!(
                "a change under /api/ must carry the header {API_HEADER} (any value; with curl: \
                 -H '{API_HEADER}: p2pshare')"
            )),
        };
    }
    match escape::query_param(&head.query, TOKEN_PARAM) {
        Some(Some(t)) if same(t.as_bytes(), token.as_bytes()) => Ok(()),
        _ => refuse(format!(
            "a form must carry this page's token (?{TOKEN_PARAM}=); reload the page and try again"
        )),
    }
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The files under `/static/`, compiled in.
pub fn asset(name: &str) -> Option<Response> {
    let (content_type, bytes): (&str, &'static [u8]) = match name {
        "style.css" => (
            "text/css; charset=utf-8",
            include_bytes!("assets/style.css"),
        ),
        "peer.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("assets/peer.js"),
        ),
        "tracker.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("assets/tracker.js"),
        ),
        "icon.svg" => ("image/svg+xml", include_bytes!("assets/icon.svg")),
        _ => return None,
    };
    Some(
        Response::new(200, content_type, http::Body::Static(bytes))
            .header("Cache-Control", "no-cache"),
    )
}

/// What a page of either UI is made of; `render` wraps it in the shared
/// layout (head, navigation, footer).
pub struct Page<'a> {
    pub title: &'a str,
    /// Shown top left, e.g. `peer A`.
    pub brand: &'a str,
    /// `(href, label)` links of the navigation bar.
    pub nav: &'a [(&'a str, &'a str)],
    /// The href of the page shown, highlighted in the navigation.
    pub current: &'a str,
    /// `data-page` on `<body>`, which tells the script what to make live.
    pub kind: &'a str,
    /// The page's content, already escaped HTML.
    pub main: String,
    pub script: Option<&'a str>,
    /// Reload period for browsers without JavaScript.
    pub noscript_refresh: Option<u32>,
}

pub fn render(page: &Page<'_>) -> String {
    let nav: String = page
        .nav
        .iter()
        .map(|(href, label)| {
            let current = if *href == page.current {
                " aria-current=\"page\""
            } else {
                ""
            };
            format!("<a href=\"{}\"{current}>{}</a>", html(href), html(label))
        })
        .collect();
    let script = page
        .script
        .map(|s| format!("<script src=\"{}\" defer></script>", html(s)))
        .unwrap_or_default();
    let refresh = page
        .noscript_refresh
        .map(|s| format!("<noscript><meta http-equiv=\"refresh\" content=\"{s}\"></noscript>"))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<meta name=\"p2p-form-token\" content=\"{token}\">
<title>{title} · {brand}</title>
<link rel=\"stylesheet\" href=\"/static/style.css\">
<link rel=\"icon\" href=\"/static/icon.svg\" type=\"image/svg+xml\">
{refresh}{script}
</head>
<body data-page=\"{kind}\">
<header><span class=\"brand\">{brand}</span><nav>{nav}</nav></header>
<main>
{main}
</main>
<footer>p2pshare {version}</footer>
</body>
</html>
",
        title = html(page.title),
        brand = html(page.brand),
        kind = html(page.kind),
        main = page.main,
        version = env!("CARGO_PKG_VERSION"),
        token = form_token(),
    )
}

/// `200` with a `/metrics` page in the Prometheus text format: `text`,
/// the app's own, then the web UI's.
pub fn metrics_response(mut text: String) -> Response {
    text.push_str(&crate::metrics::render(&[crate::metrics::Sample::counter(
        "web_connections_refused_total",
        "Web UI connections refused or closed unserved (too many at once, or too slow to send a request).",
        REFUSED.load(Ordering::Relaxed),
    )]));
    Response::new(
        200,
        crate::metrics::CONTENT_TYPE,
        http::Body::Bytes(text.into()),
    )
    .header("Cache-Control", "no-store")
}

/// `405` naming the methods a route takes.
pub fn method_not_allowed(allow: &'static str) -> Response {
    Response::text(405, format!("this address takes {allow} only\n")).header("Allow", allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, extra: &str) -> Head {
        http::parse_head(
            format!("{method} /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n{extra}\r\n").as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn hosts_that_cannot_be_rebound_pass() {
        let none: Vec<String> = Vec::new();
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "192.168.1.10:80",
            "localhost",
            "LOCALHOST:1",
            "localhost.:8080",
            "[::1]",
            "[::1]:8080",
            "[fe80::1]:9",
        ] {
            assert!(check_host(ok, &none).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io:8080",
            "2130706433",
            "[::1",
            "[not-ip]:80",
            "::1",
            "localhost:",
            "localhost:99999",
            "localhost:80:80",
            "127.0.0.1:x",
        ] {
            let e = check_host(bad, &none).unwrap_err();
            assert_eq!(e.status, 421, "{bad}");
        }
        let allowed = vec!["p2p.lan".to_string()];
        assert!(check_host("P2P.lan:8080", &allowed).is_ok());
        assert!(check_host("p2p.lan.", &allowed).is_ok());
        assert!(check_host("other.lan", &allowed).is_err());
        let e = check_host("evil.example", &none).unwrap_err();
        assert!(e.message.contains("--http-host"), "{}", e.message);
    }

    fn post(path: &str, extra: &str) -> Head {
        http::parse_head(
            format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n{extra}\r\n").as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn changes_only_from_our_own_origin() {
        let api = "X-Requested-With: p2pshare\r\n";
        assert!(check_origin(&head("GET", "Origin: http://evil.example\r\n"), "t").is_ok());
        assert!(
            check_origin(&post("/api/fetch", api), "t").is_ok(),
            "curl -H"
        );
        assert!(check_origin(
            &post(
                "/api/fetch",
                &format!("{api}Origin: http://127.0.0.1:8080\r\n")
            ),
            "t"
        )
        .is_ok());
        assert!(check_origin(&post("/fetch?name=a&csrf=t0k", ""), "t0k").is_ok());
        for bad in [
            "Origin: http://evil.example\r\n",
            "Origin: null\r\n",
            "Origin: http://127.0.0.1:8081\r\n",
            "Origin: https://127.0.0.1:8080\r\n",
            "Sec-Fetch-Site: cross-site\r\n",
        ] {
            let e = check_origin(&post("/api/fetch", &format!("{api}{bad}")), "t").unwrap_err();
            assert_eq!(e.status, 403, "{bad}");
        }
    }

    /// Issue 22 item 16: a POST with neither Origin nor Sec-Fetch-Site
    /// passed.
    #[test]
    fn a_change_that_says_nothing_of_its_origin_is_refused() {
        let e = check_origin(&post("/api/fetch?name=a", ""), "t").unwrap_err();
        assert_eq!(e.status, 403);
        assert!(e.message.contains("X-Requested-With"), "{}", e.message);
        assert!(check_origin(&post("/api/upload", "X-Requested-With:\r\n"), "t").is_err());
        for form in [
            "/fetch?name=a",
            "/fetch?name=a&csrf=",
            "/fetch?name=a&csrf=t0j",
        ] {
            let e = check_origin(&post(form, ""), "t0k").unwrap_err();
            assert_eq!(e.status, 403, "{form}");
            assert!(e.message.contains("token"), "{}", e.message);
        }
        assert_eq!(form_token().len(), 32);
        assert_eq!(form_token(), form_token(), "one per process");
    }

    #[test]
    fn pages_escape_what_they_are_given() {
        let page = Page {
            title: "<t>",
            brand: "peer \"A\"",
            nav: &[("/", "Home"), ("/about", "About")],
            current: "/about",
            kind: "about",
            main: "<p>ok</p>".into(),
            script: Some("/static/peer.js"),
            noscript_refresh: Some(2),
        };
        let out = render(&page);
        assert!(out.contains("<title>&lt;t&gt; · peer &quot;A&quot;</title>"));
        assert!(out.contains("<a href=\"/about\" aria-current=\"page\">About</a>"));
        assert!(out.contains("<main>\n<p>ok</p>\n</main>"));
        assert!(out.contains("content=\"2\""));
        assert!(asset("style.css").is_some() && asset("../Cargo.toml").is_none());
    }
}
