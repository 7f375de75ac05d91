//! `peer --http PORT`: the pages of seed 000's requesting peer. Home (my
//! files with size and MD5, downloads in progress), Upload (a file from the
//! browser is streamed into `partial/`, hashed, moved into `files/` and
//! announced), Download (every file the swarm knows: fetch, watch, save),
//! About. `/api/progress` feeds the live bars.
//!
//! A fetch is a background download (`peer::downloads`, with `--get`, a
//! terminal's `get` and following: one cap, one record of outcomes); the
//! Download page and `/api/progress` show where each name stands.

use super::escape::{
    attachment, html, human_bytes, json_num, json_str, percent_decode, percent_encode, query_param,
};
use super::http::{self, Body, Head, HttpError, Method, Request, Response};
use super::{asset, method_not_allowed, render, App, Page};
use crate::error::{code, Error};
use crate::fsutil::RemoveOnDrop;
use crate::names::check_file_name;
use crate::peer::downloads::{self, Origin, State};
use crate::peer::files::store::SharedFile;
use crate::peer::Peer;
use crate::record::BLOCK_SIZE;
use crate::units::{fraction, hex, mbps, percent};
use log::info;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// The largest file taken from a browser. Bigger files are shared by
/// copying them into `files/` or with the shell's `share`.
pub const MAX_UPLOAD: u64 = 16 << 30;
const NAV: [(&str, &str); 4] = [
    ("/", "Home"),
    ("/upload", "Upload"),
    ("/download", "Download"),
    ("/about", "About"),
];

pub struct PeerUi {
    peer: Arc<Peer>,
    /// Names being uploaded: a second upload of one of them waits its turn.
    uploads: Mutex<HashSet<String>>,
}

impl PeerUi {
    pub fn new(peer: Arc<Peer>) -> Arc<PeerUi> {
        Arc::new(PeerUi {
            peer,
            uploads: Mutex::default(),
        })
    }
}

/// The methods each address takes; `None` for an unknown address.
fn allowed(path: &str) -> Option<&'static str> {
    match path {
        "/" | "/upload" | "/download" | "/about" | "/api/progress" | "/api/files" | "/metrics" => {
            Some("GET, HEAD")
        }
        "/api/upload" | "/api/fetch" | "/fetch" => Some("POST"),
        p if p.starts_with("/files/") || p.starts_with("/static/") => Some("GET, HEAD"),
        _ => None,
    }
}

impl App for PeerUi {
    fn handle(&self, req: &mut Request<'_>) -> Response {
        let path = req.head.path.clone();
        let method = req.head.method;
        let Some(allow) = allowed(&path) else {
            return self.error_page(404, &format!("nothing at {path}"));
        };
        let ok = match method {
            Method::Get | Method::Head => allow.starts_with("GET"),
            Method::Post => allow == "POST",
            Method::Other => false,
        };
        if !ok {
            return method_not_allowed(allow);
        }
        match path.as_str() {
            "/" => self.home(),
            "/upload" => self.upload_page(),
            "/download" => self.download_page(),
            "/about" => self.about(),
            "/api/progress" => self.progress_json(),
            "/api/files" => self.files_json(),
            "/metrics" => super::metrics_response(self.peer.metrics_text()),
            "/api/upload" => self.upload(req).unwrap_or_else(|e| e.into_response(true)),
            "/api/fetch" => match self.start_fetch(&req.head) {
                Ok(name) => Response::json(
                    202,
                    format!("{{\"name\":{},\"state\":\"running\"}}", json_str(&name)),
                ),
                Err(e) => e.into_response(true),
            },
            "/fetch" => match self.start_fetch(&req.head) {
                Ok(_) => Response::see_other("/download"),
                Err(e) => self.error_page(e.status, &e.message),
            },
            p => match (p.strip_prefix("/files/"), p.strip_prefix("/static/")) {
                (Some(name), _) => self.save(name),
                (_, Some(file)) => {
                    asset(file).unwrap_or_else(|| self.error_page(404, "no such asset"))
                }
                _ => self.error_page(404, &format!("nothing at {p}")),
            },
        }
    }

    fn body_limit(&self, head: &Head) -> u64 {
        if head.method == Method::Post && head.path == "/api/upload" {
            MAX_UPLOAD
        } else {
            http::MAX_SMALL_BODY
        }
    }
}

/// The HTTP status for a failure of the peer.
fn status_of(e: &Error) -> u16 {
    match e {
        Error::BadName { .. } | Error::Usage(_) => 400,
        Error::NotFound(_) => 404,
        Error::Conflict(_) => 409,
        Error::Remote { code: c, .. } => match *c {
            code::NOT_FOUND => 404,
            code::CONFLICT => 409,
            code::BAD_NAME => 400,
            _ => 502,
        },
        Error::Io { source, .. } if is_disk_full(source) => 507,
        Error::Io { .. } | Error::Local(_) => 500,
        Error::Cancelled => 503,
        _ => 502,
    }
}

fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

fn to_http(e: Error) -> HttpError {
    HttpError::new(status_of(&e), e.to_string())
}

/// `?name=` of a request, checked like every name before a path is built.
fn name_param(head: &Head) -> Result<String, HttpError> {
    let name = match query_param(&head.query, "name") {
        None => return Err(HttpError::new(400, "say which file: add ?name=FILE")),
        Some(None) => {
            return Err(HttpError::new(
                400,
                "the file name is not valid percent-encoded UTF-8",
            ))
        }
        Some(Some(n)) => n,
    };
    check_file_name(&name).map_err(to_http)?;
    Ok(name)
}

/// Removes a name from the uploads in progress when the upload ends.
struct UploadClaim<'a> {
    ui: &'a PeerUi,
    name: String,
}

impl Drop for UploadClaim<'_> {
    fn drop(&mut self) {
        self.ui
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

impl PeerUi {
    /// `POST /api/upload?name=NAME` with the file as the body: streamed
    /// into `partial/<name>.upload`, then shared like the shell's `share`
    /// but moved, not copied.
    /// A `multipart/form-data` body (`curl -F file=@x`) works too: the
    /// first part with a filename is stored, without the envelope, under
    /// `?name=` if given, else its filename.
    fn upload(&self, req: &mut Request<'_>) -> Result<Response, HttpError> {
        refuse_form(&req.head)?;
        let content_type = req.head.header("content-type").unwrap_or("").to_string();
        let form = match super::multipart::boundary(&content_type) {
            None => None,
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => return Err(HttpError::new(400, e)),
        };
        let Some(boundary) = form else {
            let name = name_param(&req.head)?;
            let len = req.head.content_length;
            let _claim = self.claim_upload(&name)?;
            let tmp = self.peer.scratch_path(&name, "upload").map_err(to_http)?;
            let cleanup = RemoveOnDrop(&tmp);
            receive(req, &tmp, len)?;
            return self.share_upload(req, &name, &tmp, cleanup);
        };
        let given = match query_param(&req.head.query, "name") {
            None => None,
            Some(_) => Some(name_param(&req.head)?),
        };
        let head = req.head.clone();
        let reader = std::io::BufReader::with_capacity(http::STREAM_CHUNK, &mut *req);
        let mut part = super::multipart::file_part(reader, &boundary)
            .map_err(|e| HttpError::new(400, format!("cannot read the form: {e}")))?;
        let name = given.unwrap_or(part.filename.clone());
        check_file_name(&name).map_err(to_http)?;
        let _claim = self.claim_upload(&name)?;
        let tmp = self.peer.scratch_path(&name, "upload").map_err(to_http)?;
        let cleanup = RemoveOnDrop(&tmp);
        // The part ends at its boundary, within the body's length.
        receive_upto(&mut part.body, &tmp, head.content_length)?;
        drop(part);
        self.share_upload(req, &name, &tmp, cleanup)
    }

    /// Hashes and shares an upload received into `tmp`.
    fn share_upload(
        &self,
        req: &Request<'_>,
        name: &str,
        tmp: &Path,
        cleanup: RemoveOnDrop<'_>,
    ) -> Result<Response, HttpError> {
        let (record, note) = self.peer.share_scratch(name, tmp).map_err(to_http)?;
        drop(cleanup);
        info!(
            "web UI: {} uploaded by {} ({} bytes)",
            record.name, req.remote, record.size
        );
        Ok(Response::json(
            200,
            format!(
                "{{\"name\":{},\"size\":{},\"md5\":\"{}\",\"note\":{}}}",
                json_str(&record.name),
                record.size,
                hex(&record.md5),
                json_str(note.as_deref().unwrap_or(""))
            ),
        ))
    }

    fn claim_upload(&self, name: &str) -> Result<UploadClaim<'_>, HttpError> {
        let mut uploads = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        if !uploads.insert(name.to_string()) {
            return Err(HttpError::new(
                409,
                format!("{name} is already being uploaded; wait for that upload to finish"),
            ));
        }
        Ok(UploadClaim {
            ui: self,
            name: name.to_string(),
        })
    }

    /// Starts `Peer::get(name)` as a background download (it may wait
    /// its turn); returns the name.
    fn start_fetch(&self, head: &Head) -> Result<String, HttpError> {
        let name = name_param(head)?;
        let n = name.clone();
        downloads::get(&self.peer, &name, Origin::Web, move |result| match result {
            Ok(report) => info!("web UI fetch: {report}"),
            Err(e) => info!("web UI fetch of {n} failed: {e}"),
        })
        .map_err(to_http)?;
        Ok(name)
    }

    /// `GET /files/NAME`: the shared file itself, read through the handle
    /// the store holds (no path is resolved), as an attachment.
    fn save(&self, encoded: &str) -> Response {
        let Some(name) = percent_decode(encoded, false) else {
            return self.error_page(400, "the file name is not valid percent-encoded UTF-8");
        };
        if let Err(e) = check_file_name(&name) {
            return self.error_page(400, &e.to_string());
        }
        let Some(shared) = self.peer.shared(&name) else {
            return self.error_page(404, &format!("{name} is not in this peer's files"));
        };
        if shared.record.folder.is_some() {
            return self.error_page(
                409,
                &format!("{name} is a folder: its files are in files/{name}/ on this peer"),
            );
        }
        let len = shared.record.size;
        Response::new(
            200,
            "application/octet-stream",
            Body::Stream {
                reader: Box::new(SharedReader {
                    file: shared,
                    pos: 0,
                }),
                len,
            },
        )
        .header("Content-Disposition", attachment(&name))
    }

    fn page(&self, title: &str, current: &str, kind: &str, main: String) -> Response {
        let brand = format!("p2pshare · peer {}", self.peer.config().id);
        Response::html(
            200,
            render(&Page {
                title,
                brand: &brand,
                nav: &NAV,
                current,
                kind,
                main,
                script: Some("/static/peer.js"),
                noscript_refresh: None,
            }),
        )
    }

    fn error_page(&self, status: u16, message: &str) -> Response {
        let main = format!(
            "<h1>{} {}</h1>\n<p class=\"error\">{}</p>\n<p><a href=\"/\">Back to Home</a></p>",
            status,
            http::reason(status),
            html(message)
        );
        let mut r = self.page(http::reason(status), "", "error", main);
        r.status = status;
        r
    }

    fn summary(&self) -> String {
        let c = self.peer.config();
        let connected = self.peer.is_connected();
        format!(
            "<p class=\"summary\">Peer <b>{}</b> serves blocks on {} · tracker {} \
             <span id=\"tracker-state\" class=\"{}\">{}</span></p>",
            html(&c.id),
            html(&self.peer.listen_addr().to_string()),
            html(&c.trackers().join(", ")),
            if connected { "ok" } else { "warn" },
            if connected {
                "connected"
            } else {
                "not connected"
            }
        )
    }

    fn home(&self) -> Response {
        let mut main = self.summary();
        main.push_str("<h1>Downloads in progress</h1>\n");
        main.push_str(&active_table(&self.peer));
        let records = self.peer.records();
        let total: u64 = records.iter().map(|r| r.size).sum();
        let _ = write!(
            main,
            "<h1>My files</h1>\n<p>{} in <code>{}</code>, {} in all.</p>\n",
            match records.len() {
                1 => "1 file".to_string(),
                n => format!("{n} files"),
            },
            html(&self.peer.files_dir().display().to_string()),
            human_bytes(total)
        );
        let _ = write!(
            main,
            "<table id=\"my-files\" data-count=\"{}\">\n<thead><tr><th>Name</th>\
             <th class=\"num\">Size</th><th>MD5</th><th></th></tr></thead>\n<tbody>\n",
            records.len()
        );
        if records.is_empty() {
            main.push_str(
                "<tr class=\"empty\"><td colspan=\"4\">No files yet: \
                 <a href=\"/upload\">upload one</a> or <a href=\"/download\">fetch one</a>.\
                 </td></tr>\n",
            );
        }
        for r in &records {
            let _ = writeln!(
                main,
                "<tr><td class=\"name\">{}</td><td class=\"num\" title=\"{} bytes\">{}</td>\
                 <td><code>{}</code></td><td>{}</td></tr>",
                html(&item_label(
                    &r.display_name(),
                    r.folder.as_ref().map(|m| m.file_count())
                )),
                r.size,
                human_bytes(r.size),
                hex(&r.md5),
                if r.folder.is_some() {
                    String::new()
                } else {
                    save_link(&r.name)
                }
            );
        }
        main.push_str("</tbody>\n</table>\n");
        self.page("Home", "/", "home", main)
    }

    fn upload_page(&self) -> Response {
        let main = format!(
            "<h1>Upload</h1>
<p>Choose files to share. Each is sent to this peer, hashed, put in
<code>{dir}</code> and announced to the tracker, so every peer can fetch it.
At most {cap} GiB per file; larger files can be copied into that directory
or shared with the peer's <code>share</code> command.</p>
<form id=\"upload-form\" class=\"card\">
<label for=\"file\">Files</label>
<input type=\"file\" id=\"file\" name=\"file\" multiple required>
<button type=\"submit\" id=\"upload-button\">Upload and share</button>
</form>
<noscript><p class=\"error\">Uploading from the browser needs JavaScript.</p></noscript>
<ul id=\"uploads\" class=\"uploads\"></ul>
",
            dir = html(&self.peer.files_dir().display().to_string()),
            cap = MAX_UPLOAD >> 30,
        );
        self.page("Upload", "/upload", "upload", main)
    }

    fn download_page(&self) -> Response {
        let tracker = &self.peer.config().tracker;
        let mut main = format!(
            "<h1>Download</h1>\n<p>Every file the swarm knows, from the tracker at {}. \
             Fetching takes blocks from every holder at once and checks each against its SHA-256. \
             <a href=\"/download\">Refresh the list</a></p>\n",
            html(tracker)
        );
        let files = match self.peer.swarm_files() {
            Ok(f) => f,
            Err(e) => {
                let _ = writeln!(
                    main,
                    "<p class=\"error\">Cannot list the swarm's files: {}. \
                     The list comes back when the tracker answers.</p>",
                    html(&e.to_string())
                );
                Vec::new()
            }
        };
        let fetches = self.fetch_states();
        let active = self.peer.active();
        main.push_str(
            "<table id=\"swarm\">\n<thead><tr><th>Name</th><th class=\"num\">Size</th>\
             <th>MD5</th><th class=\"num\">Holders</th><th>Status</th></tr></thead>\n<tbody>\n",
        );
        if files.is_empty() {
            main.push_str(
                "<tr class=\"empty\"><td colspan=\"5\">The swarm has no files yet.</td></tr>\n",
            );
        }
        for f in &files {
            let status = if self.peer.shared(&f.name).is_some() {
                format!(
                    "{} <span class=\"ok\">in my files</span>",
                    if f.folder.is_some() {
                        String::new()
                    } else {
                        save_link(&f.name)
                    }
                )
            } else {
                match fetches.get(&f.name) {
                    Some(State::Running | State::Waiting) => {
                        let p = active.iter().find(|p| p.name == f.name);
                        bar(p.map_or(0.0, |p| {
                            fraction(p.done_blocks.load(Ordering::Relaxed), p.total_blocks)
                        }))
                    }
                    Some(State::Failed(msg)) => format!(
                        "<span class=\"error\">{}</span> {}",
                        html(msg),
                        fetch_form(&f.name, "Retry")
                    ),
                    _ => fetch_form(&f.name, "Fetch"),
                }
            };
            let _ = writeln!(
                main,
                "<tr data-name=\"{}\"><td class=\"name\">{}</td>\
                 <td class=\"num\" title=\"{} bytes\">{}</td><td><code>{}</code></td>\
                 <td class=\"num\">{} ({} complete)</td><td class=\"status\">{status}</td></tr>",
                html(&f.name),
                html(&item_label(&f.display_name(), f.folder.map(|n| n as usize))),
                f.size,
                human_bytes(f.size),
                hex(&f.md5),
                f.holders,
                f.seeders
            );
        }
        main.push_str("</tbody>\n</table>\n");
        self.page("Download", "/download", "download", main)
    }

    fn about(&self) -> Response {
        let c = self.peer.config();
        let main = format!(
            "<h1>About</h1>
<p><b>p2pshare</b> {version} shares files peer to peer, in the BitTorrent
family. A <em>tracker</em> keeps a record of every shared file (our
<code>.torrent</code>: its name, size, 4&nbsp;KiB blocks, the MD5 of the
whole file and the SHA-256 of every piece) and knows which peers hold which pieces.
It never stores a file.</p>
<p>To fetch a file, a peer asks the tracker for the record and the holders,
connects to <em>all</em> of them at once and keeps each busy in proportion
to how fast it answers, so near peers give more blocks and far ones fewer.
Every piece is checked against its SHA-256 the moment it arrives; a bad one is
fetched again elsewhere. The finished file is checked against the whole-file
MD5 before it appears in <code>files/</code>, and from then on this peer
serves it to others too.</p>
<h2>This peer</h2>
<table class=\"facts\">
<tr><th>Peer id</th><td>{id}</td></tr>
<tr><th>Blocks served on</th><td>{listen}</td></tr>
<tr><th>Tracker</th><td>{tracker}</td></tr>
<tr><th>Directory</th><td><code>{dir}</code></td></tr>
<tr><th>Upload limit</th><td>{up}</td></tr>
<tr><th>Download limit</th><td>{down}</td></tr>
</table>
<h2>This web UI</h2>
<p>It is served by the peer itself, with no outside scripts or fonts, so it
works offline. It answers only to IP addresses, <code>localhost</code> and
names allowed with <code>--http-host</code>, and takes changes only from its
own pages.</p>
",
            version = env!("CARGO_PKG_VERSION"),
            id = html(&c.id),
            listen = html(&self.peer.listen_addr().to_string()),
            tracker = html(&c.tracker),
            dir = html(&c.dir.display().to_string()),
            up = rate(c.upload_limit),
            down = rate(c.download_limit),
        );
        self.page("About", "/about", "about", main)
    }

    /// Where each background download stands (this page's fetches,
    /// `--get`, a terminal's `get`, following).
    fn fetch_states(&self) -> BTreeMap<String, State> {
        self.peer.downloads().states()
    }

    /// `{"connected", "file_count", "active": [...], "fetches": [...]}`:
    /// downloads in progress (any kind) and the background downloads
    /// (this page's fetches, `--get`, following, ...), with their outcome;
    /// one waiting its turn is `running` at 0.
    fn progress_json(&self) -> Response {
        let active = self.peer.active();
        let mut out = format!(
            "{{\"connected\":{},\"file_count\":{},\"active\":[",
            self.peer.is_connected(),
            self.peer.records().len()
        );
        for (i, p) in active.iter().enumerate() {
            let done = p.done_blocks.load(Ordering::Relaxed);
            let secs = p.started.elapsed().as_secs_f64();
            let _ = write!(
                out,
                "{}{{\"name\":{},\"done_blocks\":{done},\"total_blocks\":{},\"fraction\":{},\
                 \"mbps\":{},\"sources\":{}}}",
                if i > 0 { "," } else { "" },
                json_str(&p.name),
                p.total_blocks,
                json_num(fraction(done, p.total_blocks)),
                json_num(mbps(done * u64::from(BLOCK_SIZE), secs)),
                p.sources.load(Ordering::Relaxed)
            );
        }
        out.push_str("],\"fetches\":[");
        for (i, (name, state)) in self.fetch_states().iter().enumerate() {
            let (state, frac, message) = match state {
                State::Running | State::Waiting => {
                    let frac = active.iter().find(|p| &p.name == name).map_or(0.0, |p| {
                        fraction(p.done_blocks.load(Ordering::Relaxed), p.total_blocks)
                    });
                    ("running", frac, String::new())
                }
                State::Done(done) => (
                    "done",
                    1.0,
                    format!("{} in {:.1} s", human_bytes(done.bytes), done.secs),
                ),
                State::Failed(m) => ("failed", 0.0, m.clone()),
            };
            let _ = write!(
                out,
                "{}{{\"name\":{},\"state\":\"{state}\",\"fraction\":{},\"message\":{}}}",
                if i > 0 { "," } else { "" },
                json_str(name),
                json_num(frac),
                json_str(&message)
            );
        }
        out.push_str("]}");
        Response::json(200, out)
    }

    /// `[{"name", "size", "md5"}, ...]`: the files this peer shares.
    fn files_json(&self) -> Response {
        let items: Vec<String> = self
            .peer
            .records()
            .iter()
            .map(|r| {
                format!(
                    "{{\"name\":{},\"size\":{},\"md5\":\"{}\"}}",
                    json_str(&r.name),
                    r.size,
                    hex(&r.md5)
                )
            })
            .collect();
        Response::json(200, format!("[{}]", items.join(",")))
    }
}

/// An upload is the file's bytes as the body, or a `multipart/form-data`
/// form. Another multipart type would be stored as the file, envelope and
/// all: refused with 415 and what works.
fn refuse_form(head: &Head) -> Result<(), HttpError> {
    let media = head
        .header("content-type")
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default();
    // Not application/x-www-form-urlencoded: curl --data-binary sends
    // the raw file under that type.
    if media.starts_with("multipart/") && media != "multipart/form-data" {
        return Err(HttpError::new(
            415,
            format!(
                "{media} is not accepted: send the file itself as the body \
                 (curl -H 'X-Requested-With: p2pshare' --data-binary @FILE 'http://HOST:PORT/api/upload?name=FILE') \
                 or a multipart/form-data form (curl -H 'X-Requested-With: p2pshare' -F file=@FILE http://HOST:PORT/api/upload)"
            ),
        ));
    }
    Ok(())
}

/// Copies exactly `len` body bytes into a new file at `path`, a buffer at
/// a time: an upload is never whole in memory.
fn receive(body: &mut impl Read, path: &Path, len: u64) -> Result<(), HttpError> {
    let got = receive_upto(body, path, len)?;
    if got < len {
        return Err(HttpError::new(
            400,
            format!("the upload stopped after {got} of {len} bytes"),
        ));
    }
    Ok(())
}

/// Copies `body` into a new file at `path` until it ends or `len` bytes
/// came; how many came.
fn receive_upto(body: &mut impl Read, path: &Path, len: u64) -> Result<u64, HttpError> {
    let disk = |what: &str, e: io::Error| {
        let status = if is_disk_full(&e) { 507 } else { 500 };
        HttpError::new(
            status,
            format!(
                "cannot {what} {}: {e}; the upload was not shared (free some space or check \
                 the peer's directory, then try again)",
                path.display()
            ),
        )
    };
    let file = File::create(path).map_err(|e| disk("create", e))?;
    let mut out = BufWriter::with_capacity(http::STREAM_CHUNK, file);
    let mut buf = vec![0u8; http::STREAM_CHUNK];
    let mut got = 0u64;
    while got < len {
        let want = buf
            .len()
            .min(usize::try_from(len - got).unwrap_or(usize::MAX));
        let n = match body.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let status = match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => 408,
                    _ => 400,
                };
                return Err(HttpError::new(
                    status,
                    format!("the upload stopped after {got} of {len} bytes: {e}"),
                ));
            }
        };
        out.write_all(&buf[..n]).map_err(|e| disk("write to", e))?;
        got += n as u64;
    }
    out.flush().map_err(|e| disk("write to", e))?;
    Ok(got)
}

/// Reads a shared file through the store's open handle.
struct SharedReader {
    file: Arc<SharedFile>,
    pos: u64,
}

impl Read for SharedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A name as the tables show it: a folder ends in `/` and says how many
/// files it holds.
fn item_label(display_name: &str, folder_files: Option<usize>) -> String {
    match folder_files {
        Some(1) => format!("{display_name} (1 file)"),
        Some(n) => format!("{display_name} ({n} files)"),
        None => display_name.to_string(),
    }
}

fn bar(frac: f64) -> String {
    format!(
        "<progress max=\"1\" value=\"{}\"></progress> <span class=\"pct\">{:.1}%</span>",
        json_num(frac),
        // `fraction` is 1.0 only when every block is in.
        percent(frac, frac >= 1.0)
    )
}

fn save_link(name: &str) -> String {
    format!(
        "<a class=\"save\" href=\"/files/{}\" download=\"{}\">Save</a>",
        percent_encode(name),
        html(name)
    )
}

fn fetch_form(name: &str, label: &str) -> String {
    format!(
        "<form class=\"fetch\" method=\"post\" action=\"/fetch?name={}&amp;{}={}\">\
         <button type=\"submit\">{label}</button></form>",
        percent_encode(name),
        super::TOKEN_PARAM,
        super::form_token(),
    )
}

fn rate(limit: Option<u64>) -> String {
    limit.map_or("none".into(), crate::units::limit_text)
}

/// The downloads in progress, with their bars; the script keeps it live.
fn active_table(peer: &Peer) -> String {
    let mut out = String::from(
        "<table id=\"active\">\n<thead><tr><th>Name</th><th>Progress</th>\
         <th class=\"num\">MB/s</th><th class=\"num\">Sources</th></tr></thead>\n<tbody>\n",
    );
    let active = peer.active();
    if active.is_empty() {
        out.push_str("<tr class=\"empty\"><td colspan=\"4\">None right now.</td></tr>\n");
    }
    for p in active {
        let done = p.done_blocks.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "<tr><td class=\"name\">{}</td><td>{}</td><td class=\"num\">{:.1}</td>\
             <td class=\"num\">{}</td></tr>",
            html(&p.name),
            bar(fraction(done, p.total_blocks)),
            mbps(
                done * u64::from(BLOCK_SIZE),
                p.started.elapsed().as_secs_f64()
            ),
            p.sources.load(Ordering::Relaxed)
        );
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn routes_and_methods() {
        assert_eq!(allowed("/"), Some("GET, HEAD"));
        assert_eq!(allowed("/api/upload"), Some("POST"));
        assert_eq!(allowed("/files/a.txt"), Some("GET, HEAD"));
        assert_eq!(allowed("/nope"), None);
    }

    #[test]
    fn names_come_from_the_query_checked() {
        let head = |q: &str| {
            http::parse_head(format!("POST /api/fetch?{q} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
                .unwrap()
        };
        assert_eq!(
            name_param(&head("name=my%20file.txt")).unwrap(),
            "my file.txt"
        );
        assert_eq!(name_param(&head("name=a+b")).unwrap(), "a b");
        for bad in [
            "",
            "name=",
            "name=..%2Fetc%2Fpasswd",
            "name=a%2Fb",
            "name=%2e%2e",
            "name=x%00",
            "name=%zz",
            "name=%ff",
        ] {
            let e = name_param(&head(bad)).unwrap_err();
            assert_eq!(e.status, 400, "{bad}: {}", e.message);
        }
    }

    #[test]
    fn uploads_are_copied_a_buffer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("up");
        let data: Vec<u8> = (0..3 * http::STREAM_CHUNK + 17).map(|i| i as u8).collect();
        receive(&mut Cursor::new(&data), &path, data.len() as u64).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);

        let e = receive(&mut Cursor::new(&data[..10]), &path, 20).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("after 10 of 20 bytes"), "{}", e.message);

        let missing = dir.path().join("no/such/dir/up");
        let e = receive(&mut Cursor::new(&data), &missing, 5).unwrap_err();
        assert_eq!(e.status, 500);
        assert!(e.message.contains("cannot create"), "{}", e.message);
    }

    #[test]
    fn errors_map_to_statuses() {
        assert_eq!(status_of(&Error::Conflict("x".into())), 409);
        assert_eq!(
            status_of(&Error::Remote {
                code: code::CONFLICT,
                message: "x".into()
            }),
            409
        );
        let full = io::Error::from(io::ErrorKind::StorageFull);
        assert_eq!(status_of(&Error::io("writing", full)), 507);
        assert_eq!(status_of(&Error::NoSources("x".into())), 502);
    }

    #[test]
    fn links_and_forms_encode_names() {
        let name = "a \"b\" <c>&.txt";
        let link = save_link(name);
        assert!(
            link.contains("href=\"/files/a%20%22b%22%20%3Cc%3E%26.txt\""),
            "{link}"
        );
        assert!(
            link.contains("download=\"a &quot;b&quot; &lt;c&gt;&amp;.txt\""),
            "{link}"
        );
        let form = fetch_form(name, "Fetch");
        assert!(form.contains("action=\"/fetch?name=a%20%22b%22%20%3Cc%3E%26.txt&amp;csrf="));
    }
}
