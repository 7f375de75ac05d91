//! Files from the browser (or curl): `POST /api/upload`, the body
//! streamed to disk in `partial/` (never whole in memory), then shared
//! like the shell's `share`, moved rather than copied.

use super::{name_param, to_http, PeerUi};
use crate::fsutil::RemoveOnDrop;
use crate::names::check_file_name;
use crate::units::hex;
use crate::web::escape::{json_str, query_param};
use crate::web::http::{self, Head, HttpError, HttpRequest, Response};
use log::info;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

/// The largest file taken from a browser. Bigger files are shared by
/// copying them into `files/` or with the shell's `share`.
pub const MAX_UPLOAD: u64 = 16 << 30;

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
    pub(super) fn upload(&self, req: &mut HttpRequest<'_>) -> Result<Response, HttpError> {
        refuse_form(&req.head)?;
        let content_type = req.head.header("content-type").unwrap_or("").to_string();
        let form = match crate::web::multipart::boundary(&content_type) {
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
        let mut part = crate::web::multipart::file_part(reader, &boundary)
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
        req: &HttpRequest<'_>,
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
        let status = if super::is_disk_full(&e) { 507 } else { 500 };
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

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
}
