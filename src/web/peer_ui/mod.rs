//! `peer --http PORT`: the pages of seed 000's requesting peer. Home (my
//! files with size and MD5, downloads in progress), Upload (a file from the
//! browser is streamed into `partial/`, hashed, moved into `files/` and
//! announced), Download (every file the swarm knows: fetch, watch, save),
//! About. `/api/progress` feeds the live bars.
//!
//! A fetch is a background download (`peer::downloads`, with `--get`, a
//! terminal's `get` and following: one cap, one record of outcomes); the
//! Download page and `/api/progress` show where each name stands.
//!
//! `routes` is the one table of addresses; `pages` renders the HTML,
//! `api` the JSON, `upload` takes files from the browser.

mod api;
mod pages;
mod routes;
mod upload;

use upload::MAX_UPLOAD;

use super::escape::query_param;
use super::http::{self, Head, HttpError, HttpRequest, Method, Response};
use super::{asset, method_not_allowed, App};
use crate::error::{code, Error};
use crate::names::check_file_name;
use crate::peer::Peer;
use routes::Route;
use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};

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

impl App for PeerUi {
    fn handle(&self, req: &mut HttpRequest<'_>) -> Response {
        let path = req.head.path.clone();
        let Some((methods, route)) = routes::route(&path) else {
            return self.error_page(404, &format!("nothing at {path}"));
        };
        if !methods.admit(req.head.method) {
            return method_not_allowed(methods.allow());
        }
        match route {
            Route::Home => self.home(),
            Route::UploadPage => self.upload_page(),
            Route::DownloadPage => self.download_page(),
            Route::About => self.about(),
            Route::Progress => self.progress_json(),
            Route::Files => self.files_json(),
            Route::Metrics => super::metrics_response(self.peer.metrics_text()),
            Route::Upload => self.upload(req).unwrap_or_else(|e| e.into_response(true)),
            Route::FetchApi => match self.start_fetch(&req.head) {
                Ok(name) => api::fetch_started(&name),
                Err(e) => e.into_response(true),
            },
            Route::FetchForm => match self.start_fetch(&req.head) {
                Ok(_) => Response::see_other("/download"),
                Err(e) => self.error_page(e.status, &e.message),
            },
            Route::Save(name) => self.save(name),
            Route::Static(file) => {
                asset(file).unwrap_or_else(|| self.error_page(404, "no such asset"))
            }
        }
    }

    fn body_limit(&self, head: &Head) -> u64 {
        match routes::route(&head.path) {
            Some((_, Route::Upload)) if head.method == Method::Post => MAX_UPLOAD,
            _ => http::MAX_SMALL_BODY,
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

pub(super) fn is_disk_full(e: &io::Error) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
