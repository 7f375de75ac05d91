//! The tracker's TCP side: short query connections (FILE_LIST, RECORD,
//! WHO_HAS, NEW_FILE with its record of up to 1 MiB) served by a fixed
//! pool of threads, and the reaper that forgets silent peers. Peers no
//! longer hold a connection here: their sessions live in UDP announces
//! (`udp`), so no set of live peers can fill the pool.
//!
//! Fairness: at most `MAX_QUEUED` connections wait or are served at once,
//! at most `MAX_PER_IP` of them from one address; more get ERROR(BUSY)
//! at once and the client retries. A connection silent for
//! `QUERY_TIMEOUT` is closed, so a slow client holds a worker briefly.
//! The catalogue lock is held only for in-memory work: never while
//! reading, writing to a socket, or writing a record to disk.

use super::catalogue::{not_found, Catalogue};
use super::cookie::CookieJar;
use super::persist::Store;
use crate::error::Error;
use crate::metrics::tracker::{Swarm, TrackerMetrics};
use crate::net::{Conn, ConnLimit, ConnSlot};
use crate::wire::{Answer, FileSummary, TrackerReply, TrackerRequest, HEADER_LEN, MAX_FRAME};
use crossbeam_channel::{Receiver, TrySendError};
use log::{debug, error, info, warn};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Threads serving TCP queries.
pub const POOL_THREADS: usize = 16;
/// Connections waiting for or held by a pool thread; more get BUSY.
pub const MAX_QUEUED: usize = 256;
/// Of those, at most this many from one address: a lab behind one NAT
/// still gets its queries through, and one client cannot take the pool.
pub const MAX_PER_IP: usize = 32;
/// A query connection silent this long is closed.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the reaper looks through all the peers for silent ones,
/// and in how many turns (each holds the lock for a tenth of the scan).
pub const REAP_EVERY: Duration = Duration::from_secs(1);
const REAP_PARTS: u32 = 10;

/// What every tracker thread shares.
pub struct Shared {
    pub catalogue: Mutex<Catalogue>,
    pub store: Store,
    pub cookies: CookieJar,
    /// What `/metrics` reports.
    pub counters: TrackerMetrics,
    /// The cookies' clock: seconds since this instant.
    pub started: Instant,
}

impl Shared {
    pub fn new(catalogue: Catalogue, store: Store, cookies: CookieJar) -> Shared {
        Shared {
            catalogue: Mutex::new(catalogue),
            store,
            cookies,
            counters: TrackerMetrics::default(),
            started: Instant::now(),
        }
    }

    /// What the dashboards draw, taken under the lock, as often as they
    /// ask.
    pub fn summary_source(
        self: &Arc<Self>,
    ) -> impl Fn(usize) -> super::Summary + Send + Sync + 'static {
        let shared = self.clone();
        move |rows| shared.lock().summary(Instant::now(), rows)
    }

    /// The `/metrics` page: the counters and the swarm's size now.
    pub fn metrics_text(&self) -> String {
        let s = self.lock().summary(Instant::now(), 0);
        let swarm = Swarm {
            peers: s.peers,
            seeders: s.seeders,
            leechers: s.leechers,
            files: s.files,
        };
        crate::metrics::render(&self.counters.samples(swarm))
    }

    /// The catalogue. Its operations do not panic, but should one ever,
    /// the state is still usable: a poisoned lock is taken anyway.
    pub fn lock(&self) -> MutexGuard<'_, Catalogue> {
        self.catalogue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves `listener` forever: starts the pool, then accepts.
pub fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let (tx, rx) = crossbeam_channel::bounded::<(TcpStream, ConnSlot)>(MAX_QUEUED);
    for i in 0..POOL_THREADS {
        let (rx, shared) = (rx.clone(), shared.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("tracker-query-{i}"))
            .spawn(move || worker(&shared, rx));
        if let Err(e) = spawned {
            error!("cannot start a query thread: {e}");
        }
    }
    let limit = ConnLimit::new(MAX_QUEUED, MAX_PER_IP);
    for stream in crate::net::accepted(&listener, "tracker") {
        let ip = stream.peer_addr().ok().map(|a| a.ip().to_canonical());
        let refused = match limit.try_acquire(ip) {
            Some(slot) => match tx.try_send((stream, slot)) {
                Ok(()) => None,
                Err(TrySendError::Full((s, _)) | TrySendError::Disconnected((s, _))) => Some(s),
            },
            None => Some(stream),
        };
        if let Some(stream) = refused {
            shared.counters.connection_refused();
            debug!("tracker: query cap reached, refusing {ip:?}");
            crate::net::refuse_busy(stream);
        }
    }
}

fn worker(shared: &Shared, rx: Receiver<(TcpStream, ConnSlot)>) {
    for (stream, _slot) in rx {
        handle_connection(shared, stream);
    }
}

/// Every second, forgets the peers silent for three intervals.
pub fn spawn_reaper(shared: Arc<Shared>) {
    let spawned = std::thread::Builder::new()
        .name("tracker-reaper".into())
        .spawn(move || loop {
            std::thread::sleep(REAP_EVERY / REAP_PARTS);
            let gone = shared
                .lock()
                .expire_part(REAP_PARTS as usize, Instant::now());
            if gone.len() > 8 {
                info!(
                    "{} peers gone (silent for 3 announce intervals)",
                    gone.len()
                );
            } else {
                for id in gone {
                    info!("peer {id} gone (silent for 3 announce intervals)");
                }
            }
        });
    if let Err(e) = spawned {
        error!("cannot start the reaper thread, silent peers will not expire: {e}");
    }
}

/// Serves one query connection until it closes. Never panics on input.
pub fn handle_connection(shared: &Shared, stream: TcpStream) {
    let mut conn = match Conn::new(stream, MAX_FRAME, QUERY_TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            debug!("dropping a connection: {e}");
            return;
        }
    };
    let from = conn.peer_addr();
    loop {
        let (reply, close) = match conn.recv::<TrackerRequest>() {
            Ok(None) => break,
            Ok(Some(msg)) => {
                shared.counters.query();
                on_message(shared, msg)
            }
            // The whole frame was read: answer and carry on.
            Err(e @ Error::BadName { .. }) => (TrackerReply::error(&e), false),
            Err(Error::Timeout(_)) => break,
            Err(e @ (Error::Io { .. } | Error::Net { .. })) => {
                debug!("{from}: {e}");
                break;
            }
            Err(e) => {
                debug!("{from}: {e}; closing the connection");
                (protocol_error(&e.to_string()), true)
            }
        };
        if let Err(e) = conn.send(&reply) {
            debug!("{from}: {e}");
            break;
        }
        if close {
            conn.linger_close();
            break;
        }
    }
    conn.shutdown();
}

fn protocol_error(text: &str) -> TrackerReply {
    // Through `error`, which trims the text to what the wire allows.
    TrackerReply::error(&Error::protocol(text))
}

/// The answer to one query, and whether to close afterwards.
fn on_message(shared: &Shared, msg: TrackerRequest) -> (TrackerReply, bool) {
    match msg {
        TrackerRequest::NewFile { record } => {
            let name = record.name.clone();
            let (size, pieces) = (record.size, record.piece_count());
            let added = {
                let mut c = shared.lock();
                c.publish(record)
                    .map(|new| if new { c.record(&name) } else { None })
            };
            match added {
                Ok(Some(record)) => {
                    info!("new file {name} ({size} bytes, {pieces} pieces)");
                    // On disk before the OK: an acknowledged record
                    // survives a restart.
                    if let Err(e) = shared.store.save(&record) {
                        error!("{e}; {name} will be forgotten by a restart");
                    }
                    (TrackerReply::Ok, false)
                }
                Ok(None) => (TrackerReply::Ok, false),
                Err(e) => {
                    info!("refused {name}: {e}");
                    (TrackerReply::error(&e), false)
                }
            }
        }
        TrackerRequest::ListFiles => {
            let files = shared.lock().list_files();
            (
                TrackerReply::FileList {
                    files: fit_frame(files),
                },
                false,
            )
        }
        TrackerRequest::GetRecord { name } => {
            let record = shared.lock().record(&name);
            match record {
                Some(r) => (
                    TrackerReply::Record {
                        record: (*r).clone(),
                    },
                    false,
                ),
                None => (TrackerReply::error(&not_found(&name)), false),
            }
        }
        TrackerRequest::WhoHas { name } => {
            let holders = shared.lock().holders(&name);
            match holders {
                Ok(holders) => (TrackerReply::Holders { holders }, false),
                Err(e) => (TrackerReply::error(&e), false),
            }
        }
        TrackerRequest::Ping { nonce } => (TrackerReply::Pong { nonce }, false),
    }
}

/// Keeps the first summaries that fit one FILE_LIST frame.
fn fit_frame(mut files: Vec<FileSummary>) -> Vec<FileSummary> {
    let mut size = HEADER_LEN + 4;
    let max_files = crate::wire::message::MAX_FILES;
    let fit = files
        .iter()
        .take(max_files)
        .take_while(|f| {
            size += 2 + f.name.len() + 8 + 16 + 4 + 4;
            size <= MAX_FRAME
        })
        .count();
    if fit < files.len() {
        warn!(
            "FILE_LIST truncated to {fit} of {} files to fit one frame",
            files.len()
        );
        files.truncate(fit);
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::MAX_FILES;
    use crate::wire::Encode;

    #[test]
    fn file_lists_fit_a_frame() {
        let many: Vec<FileSummary> = (0..MAX_FILES + 10)
            .map(|i| FileSummary {
                name: format!("{i:0>200}"),
                size: 1,
                md5: [0; 16],
                holders: 0,
                seeders: 0,
            })
            .collect();
        let fitted = fit_frame(many);
        assert!(fitted.len() < MAX_FILES);
        let mut buf = Vec::new();
        TrackerReply::FileList { files: fitted }.encode(&mut buf);
        assert!(buf.len() - 4 <= MAX_FRAME);
        assert!(fit_frame(vec![]).is_empty());
    }
}
