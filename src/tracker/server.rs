//! The tracker's TCP side: short query connections (FILE_LIST, RECORD,
//! WHO_HAS, NEW_FILE with its record of up to 1 MiB) served by a fixed
//! pool of threads, and the reaper that forgets silent peers. Peers no
//! longer hold a connection here: their sessions live in UDP announces
//! (`udp`), so no set of live peers can fill the pool.
//!
//! Fairness: the gate (`net::gate`, `net::admission`) keeps connections
//! that have not sent a whole query yet in its lobby, without a thread,
//! for at most `ADMISSION.start`; a query gets one of at most
//! `ADMISSION.handlers` threads, evicting an idle connection if need be.
//! At most `ADMISSION.per_ip` connections come from one address; when
//! nothing of its own can make room, ERROR(BUSY) at once and the client
//! retries. A handled connection silent for `QUERY_TIMEOUT` is closed.
//! The catalogue lock is held only for in-memory work: never while
//! reading, writing to a socket, or writing a record to disk.

use super::catalogue::Catalogue;
use super::cookie::CookieJar;
use super::persist::RecordStore;
use crate::error::Error;
use crate::metrics::tracker::{Item, Swarm, TrackerMetrics, MAX_ITEMS};
use crate::net::admission::Limits;
use crate::net::conn::Conn;
use crate::net::gate::{self, Ticket};
use crate::net::once::{log_clock_refusal, OncePer};
use crate::net::turns::TurnGate;
use crate::wire::{Answer, FileSummary, TrackerReply, TrackerRequest, HEADER_LEN, MAX_FRAME};
use log::{debug, error, info, warn};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How the tracker admits query connections: 16 threads, 512 more
/// connections waiting for their first query (no thread), 32 from one
/// address (a lab behind one NAT still gets its queries through), 4 s
/// from accept to the first whole query.
pub const ADMISSION: Limits = Limits {
    handlers: 16,
    lobby: 512,
    per_ip: 32,
    start: gate::FIRST_FRAME_WITHIN,
};
/// A query connection silent this long is closed.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the reaper looks through all the peers for silent ones,
/// and in how many turns (each holds the lock for a tenth of the scan).
pub const REAP_EVERY: Duration = Duration::from_secs(1);
const REAP_PARTS: u32 = 10;

/// Records go out two at a time, in the order asked (`net::turns`: a
/// crowd starting together gets its first records after one record's
/// time instead of all of them at the end); a turn is held at most 2 s,
/// and nobody waits more than 5 s for one.
const RECORD_TURNS: usize = 2;
const RECORD_LEASE: Duration = Duration::from_secs(2);
const RECORD_PATIENCE: Duration = Duration::from_secs(5);

/// What every tracker thread shares.
pub struct TrackerState {
    pub catalogue: Mutex<Catalogue>,
    pub store: RecordStore,
    pub cookies: CookieJar,
    /// What `/metrics` reports.
    pub counters: TrackerMetrics,
    /// The cookies' clock: seconds since this instant.
    pub started: Instant,
    /// Addresses whose clock was named in the log already.
    clock_said: Mutex<OncePer<IpAddr>>,
    record_turns: TurnGate,
}

impl TrackerState {
    pub fn new(catalogue: Catalogue, store: RecordStore, cookies: CookieJar) -> TrackerState {
        TrackerState {
            catalogue: Mutex::new(catalogue),
            store,
            cookies,
            counters: TrackerMetrics::default(),
            started: Instant::now(),
            clock_said: Mutex::new(OncePer::default()),
            record_turns: TurnGate::new(RECORD_TURNS, RECORD_LEASE, RECORD_PATIENCE),
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

    /// The `/metrics` page: the counters, the swarm's size now, and per
    /// item (the first `MAX_ITEMS` by name) its version and peers.
    pub fn metrics_text(&self) -> String {
        let s = self.lock().summary(Instant::now(), 0);
        let swarm = Swarm {
            peers: s.peers,
            seeders: s.seeders,
            leechers: s.leechers,
            files: s.files,
        };
        let items: Vec<Item> = s
            .file_totals
            .into_iter()
            .take(MAX_ITEMS)
            .map(|f| Item {
                name: f.name,
                version: f.version,
                owner: f.owner,
                current: f.seeders,
                updating: f.leechers,
                older: f.older,
            })
            .collect();
        crate::metrics::render(&self.counters.samples(swarm, &items))
    }

    /// The catalogue. Its operations do not panic, but should one ever,
    /// the state is still usable: a poisoned lock is taken anyway.
    pub fn lock(&self) -> MutexGuard<'_, Catalogue> {
        self.catalogue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves `listener` forever.
pub fn serve(listener: TcpListener, shared: Arc<TrackerState>) {
    let settings = gate::Settings {
        what: "tracker",
        limits: ADMISSION,
        max_frame: MAX_FRAME,
    };
    let (refused, panicked) = (shared.clone(), shared.clone());
    gate::serve(
        listener,
        settings,
        move |stream, ticket| handle_connection(&shared, stream, &ticket),
        gate::Counters {
            refused: Box::new(move || refused.counters.connection_refused()),
            panicked: Arc::new(move || panicked.counters.handler_panicked()),
        },
    );
}

/// Every second, forgets the peers silent for three intervals.
pub fn spawn_reaper(shared: Arc<TrackerState>) {
    let spawned = std::thread::Builder::new()
        .name("tracker-reaper".into())
        .spawn(move || loop {
            std::thread::sleep(REAP_EVERY / REAP_PARTS);
            let (gone, withdrawn, promoted) = {
                let mut c = shared.lock();
                let gone = c.expire_part(REAP_PARTS as usize, Instant::now());
                (gone, c.take_withdrawn(), c.take_promoted())
            };
            forget_records(&shared, withdrawn);
            for r in promoted {
                info!(
                    "{} version {} withdrawn; version {} is current again",
                    r.name,
                    r.version + 1,
                    r.version
                );
                if let Err(e) = shared.store.save(&r) {
                    warn!("{e}");
                }
            }
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

/// Deletes from disk the records whose last holder withdrew them, so a
/// restart does not bring them back. One published again under the same
/// name since is kept (should a NEW_FILE slip in between the check and the
/// delete, its holders' next announce is told the name is unknown and they
/// publish it again).
fn forget_records(shared: &TrackerState, names: Vec<String>) {
    for name in names {
        if shared.lock().record(&name).is_some() {
            continue;
        }
        info!("{name} withdrawn by its last holder: record dropped");
        if let Err(e) = shared.store.remove(&name) {
            warn!("{e}");
        }
    }
}

/// Serves one query connection until it closes. Never panics on input.
pub fn handle_connection(shared: &TrackerState, stream: TcpStream, ticket: &Ticket) {
    let ip = stream.peer_addr().ok().map(|a| a.ip());
    let mut conn = match Conn::accept(stream, MAX_FRAME, QUERY_TIMEOUT, ticket.deadline()) {
        Ok(c) => c,
        Err(Error::Clock(what)) => return log_clock_refusal(&shared.clock_said, ip, &what),
        Err(e) => {
            debug!("dropping a connection: {e}");
            return;
        }
    };
    let from = conn.peer_addr();
    loop {
        ticket.idle(false);
        let got = conn.recv::<TrackerRequest>();
        ticket.busy();
        let (reply, close) = match got {
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
        if let Err(e) = send(shared, &mut conn, &reply) {
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

/// Sends `reply`; a record in its turn (`RECORD_TURNS`), held until the
/// record has left for the wire.
fn send(shared: &TrackerState, conn: &mut Conn, reply: &TrackerReply) -> crate::error::Result<()> {
    if !matches!(reply, TrackerReply::Record { .. }) {
        return conn.send(reply);
    }
    let turn = shared.record_turns.wait();
    conn.send(reply)?;
    conn.wait_sent(turn.until())
}

fn protocol_error(text: &str) -> TrackerReply {
    // Through `error`, which trims the text to what the wire allows.
    TrackerReply::error(&Error::protocol(text))
}

/// The answer to one query, and whether to close afterwards.
fn on_message(shared: &TrackerState, msg: TrackerRequest) -> (TrackerReply, bool) {
    match msg {
        TrackerRequest::NewFile { publisher, record } => {
            let name = record.name.clone();
            let (size, pieces, version) = (record.size, record.piece_count(), record.version);
            let added = {
                let mut c = shared.lock();
                c.publish(record, &publisher, Instant::now()).map(|new| {
                    if new {
                        c.record(&name)
                    } else {
                        None
                    }
                })
            };
            match added {
                Ok(Some(record)) => {
                    info!(
                        "new file {name} version {version} ({size} bytes, {pieces} pieces) from {}",
                        if publisher.is_empty() {
                            "a client"
                        } else {
                            &publisher
                        }
                    );
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
            let record = {
                let c = shared.lock();
                c.record(&name).ok_or_else(|| c.missing(&name))
            };
            match record {
                Ok(r) => (
                    TrackerReply::Record {
                        record: (*r).clone(),
                    },
                    false,
                ),
                Err(e) => (TrackerReply::error(&e), false),
            }
        }
        TrackerRequest::WhoHas { name, md5, site } => {
            let holders = shared
                .lock()
                .holders_for(&name, md5.as_ref(), site.as_deref());
            let sited = site.is_some();
            match holders {
                Ok(holders) => (TrackerReply::Holders { holders, sited }, false),
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
            size += crate::wire::message::file_entry_len(f);
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
                folder: Some(1),
                version: 1,
                owner: "o".repeat(64),
                older: 0,
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
