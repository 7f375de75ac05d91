//! The HTML pages: Home, Upload, Download, About, an error page, and the
//! saving of a shared file (`/files/NAME`).

use super::PeerUi;
use crate::names::check_file_name;
use crate::peer::downloads::State;
use crate::peer::files::store::SharedFile;
use crate::peer::Peer;
use crate::units::{hex, percent};
use crate::web::escape::{attachment, html, human_bytes, json_num, percent_decode, percent_encode};
use crate::web::http::{self, Body, Response};
use crate::web::{render, Page};
use std::fmt::Write as _;
use std::io::{self, Read};
use std::sync::Arc;

const NAV: [(&str, &str); 4] = [
    ("/", "Home"),
    ("/upload", "Upload"),
    ("/download", "Download"),
    ("/about", "About"),
];

impl PeerUi {
    /// `GET /files/NAME`: the shared file itself, read through the handle
    /// the store holds (no path is resolved), as an attachment.
    pub(super) fn save(&self, encoded: &str) -> Response {
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

    pub(super) fn error_page(&self, status: u16, message: &str) -> Response {
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

    pub(super) fn home(&self) -> Response {
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

    pub(super) fn upload_page(&self) -> Response {
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
            cap = super::MAX_UPLOAD >> 30,
        );
        self.page("Upload", "/upload", "upload", main)
    }

    pub(super) fn download_page(&self) -> Response {
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
        let active = self.peer.progress();
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
                        bar(p.map_or(0.0, |p| p.fraction()))
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

    pub(super) fn about(&self) -> Response {
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
        crate::web::TOKEN_PARAM,
        crate::web::form_token(),
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
    let active = peer.progress();
    if active.is_empty() {
        out.push_str("<tr class=\"empty\"><td colspan=\"4\">None right now.</td></tr>\n");
    }
    for p in active {
        let _ = writeln!(
            out,
            "<tr><td class=\"name\">{}</td><td>{}</td><td class=\"num\">{:.1}</td>\
             <td class=\"num\">{}</td></tr>",
            html(&p.name),
            bar(p.fraction()),
            p.mbps(),
            p.sources
        );
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
