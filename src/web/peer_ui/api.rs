//! The JSON the pages' script reads (`/api/progress`, `/api/files`) and
//! the fetches the Download page and `/api/fetch` start.

use super::{name_param, to_http, PeerUi};
use crate::peer::downloads::{self, Origin, State};
use crate::units::hex;
use crate::web::escape::{human_bytes, json_num, json_str};
use crate::web::http::{Head, HttpError, Response};
use log::info;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `202` for a fetch that `/api/fetch` started (or queued).
pub(super) fn fetch_started(name: &str) -> Response {
    Response::json(
        202,
        format!("{{\"name\":{},\"state\":\"running\"}}", json_str(name)),
    )
}

impl PeerUi {
    /// Starts `Peer::get(name)` as a background download (it may wait
    /// its turn); returns the name.
    pub(super) fn start_fetch(&self, head: &Head) -> Result<String, HttpError> {
        let name = name_param(head)?;
        let n = name.clone();
        downloads::get(&self.peer, &name, Origin::Web, move |result| match result {
            Ok(report) => info!("web UI fetch: {report}"),
            Err(e) => info!("web UI fetch of {n} failed: {e}"),
        })
        .map_err(to_http)?;
        Ok(name)
    }

    /// Where each background download stands (this page's fetches,
    /// `--get`, a terminal's `get`, following).
    pub(super) fn fetch_states(&self) -> BTreeMap<String, State> {
        self.peer.downloads().states()
    }

    /// `{"connected", "file_count", "active": [...], "fetches": [...]}`:
    /// downloads in progress (any kind) and the background downloads
    /// (this page's fetches, `--get`, following, ...), with their outcome;
    /// one waiting its turn is `running` at 0.
    pub(super) fn progress_json(&self) -> Response {
        let active = self.peer.progress();
        let mut out = format!(
            "{{\"connected\":{},\"file_count\":{},\"active\":[",
            self.peer.is_connected(),
            self.peer.records().len()
        );
        for (i, p) in active.iter().enumerate() {
            let _ = write!(
                out,
                "{}{{\"name\":{},\"done_blocks\":{},\"total_blocks\":{},\"fraction\":{},\
                 \"mbps\":{},\"sources\":{}}}",
                if i > 0 { "," } else { "" },
                json_str(&p.name),
                p.done_blocks,
                p.total_blocks,
                json_num(p.fraction()),
                json_num(p.mbps()),
                p.sources
            );
        }
        out.push_str("],\"fetches\":[");
        for (i, (name, state)) in self.fetch_states().iter().enumerate() {
            let (state, frac, message) = match state {
                State::Running | State::Waiting => {
                    let frac = active
                        .iter()
                        .find(|p| &p.name == name)
                        .map_or(0.0, |p| p.fraction());
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
    pub(super) fn files_json(&self) -> Response {
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
