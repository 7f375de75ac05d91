//! The tracker's network side: one thread per connection, each turning
//! messages into catalogue operations and answers, and a reaper thread that
//! forgets silent peers.
//!
//! A connection may ask LIST_FILES, GET_RECORD and WHO_HAS at any time. A
//! session starts with REGISTER; NEW_FILE and ANNOUNCE need one. A session
//! ends with BYE, with the connection (EOF, error, 30 s of silence), or by
//! expiry. The catalogue lock is held only for in-memory work: never while
//! reading, writing to a socket, or writing a record to disk.

use super::catalogue::{not_found, Catalogue};
use super::persist::Store;
use crate::error::Error;
use crate::net::join_host_port;
use crate::net::{accept_loop, Conn, ConnLimit};
use crate::wire::{FileSummary, Msg, HEADER_LEN, MAX_FRAME};
use log::{debug, error, info};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most connections served at once; more get ERROR(BUSY).
pub const MAX_CONNECTIONS: usize = 1024;
/// Most from any one address: a whole lab of peers behind one NAT still fits.
pub const MAX_CONNECTIONS_PER_IP: usize = 256;
/// A connection silent this long is closed (registered peers announce
/// every 3 s, so only dead or idle ones hit it).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the reaper looks for silent peers.
pub const REAP_EVERY: Duration = Duration::from_secs(1);

/// What every connection thread shares.
pub struct Shared {
    pub catalogue: Mutex<Catalogue>,
    pub store: Store,
}

impl Shared {
    pub fn new(catalogue: Catalogue, store: Store) -> Shared {
        Shared {
            catalogue: Mutex::new(catalogue),
            store,
        }
    }

    /// The catalogue. Its operations do not panic, but should one ever,
    /// the state is still usable: a poisoned lock is taken anyway.
    pub fn lock(&self) -> MutexGuard<'_, Catalogue> {
        self.catalogue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves `listener` forever: starts the reaper, then accepts.
pub fn serve(listener: TcpListener, shared: Arc<Shared>) {
    spawn_reaper(shared.clone());
    let limit = ConnLimit::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP);
    accept_loop(listener, limit, "tracker", move |stream| {
        handle_connection(&shared, stream)
    });
}

/// Every second, forgets the peers silent for more than `PEER_EXPIRY`.
pub fn spawn_reaper(shared: Arc<Shared>) {
    let spawned = std::thread::Builder::new()
        .name("tracker-reaper".into())
        .spawn(move || loop {
            std::thread::sleep(REAP_EVERY);
            let gone = shared.lock().expire(Instant::now());
            for id in gone {
                info!("peer {id} gone (silent for 3 announce intervals)");
            }
        });
    if let Err(e) = spawned {
        error!("cannot start the reaper thread, silent peers will not expire: {e}");
    }
}

struct Session {
    peer_id: String,
    id: u64,
}

struct Handler<'a> {
    shared: &'a Shared,
    /// The connection's source address, the default host of a peer.
    source: IpAddr,
    session: Option<Session>,
}

/// Serves one connection until it closes. Never panics on input.
pub fn handle_connection(shared: &Shared, stream: TcpStream) {
    let mut conn = match Conn::new(stream, MAX_FRAME, READ_TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            debug!("dropping a connection: {e}");
            return;
        }
    };
    let from = conn.peer_addr();
    let source = match from.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let mut h = Handler {
        shared,
        source,
        session: None,
    };
    loop {
        let (reply, close) = match conn.recv() {
            Ok(None) => break,
            Ok(Some(msg)) => h.on_message(msg, Instant::now()),
            // The whole frame was read: answer and carry on.
            Err(e @ Error::BadName { .. }) => (Msg::error(&e), false),
            Err(Error::Timeout(_)) => {
                debug!("{from}: silent for {READ_TIMEOUT:?}, closing");
                break;
            }
            Err(e @ (Error::Io { .. } | Error::Net { .. })) => {
                debug!("{from}: {e}");
                break;
            }
            Err(e) => {
                debug!("{from}: {e}; closing the connection");
                let reply = protocol_error(&e.to_string());
                if conn.send(&reply).is_ok() {
                    conn.linger_close();
                }
                break;
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
    h.finish("connection closed");
}

fn protocol_error(text: &str) -> Msg<'static> {
    // Through Msg::error, which trims the text to what the wire allows.
    Msg::error(&Error::protocol(text))
}

/// An advertised host must look like a host name or an IP address.
fn valid_host(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-_:[]%".contains(&b))
}

impl Handler<'_> {
    /// The answer to one message, and whether to close afterwards.
    fn on_message(&mut self, msg: Msg<'_>, now: Instant) -> (Msg<'static>, bool) {
        let shared = self.shared;
        match msg {
            Msg::Register {
                peer_id,
                port,
                advertise,
            } => {
                if !valid_host(&advertise) {
                    let text = format!(
                        "advertised host {:?} is not a host name or IP address",
                        advertise.chars().take(80).collect::<String>()
                    );
                    return (protocol_error(&text), false);
                }
                let host = if advertise.is_empty() {
                    self.source.to_string()
                } else {
                    advertise
                };
                let session = {
                    let mut c = shared.lock();
                    if let Some(old) = self.session.take() {
                        c.remove_peer(&old.peer_id, old.id);
                    }
                    c.register(&peer_id, &host, port, now)
                };
                info!(
                    "peer {peer_id} registered at {}",
                    join_host_port(&host, port)
                );
                self.session = Some(Session {
                    peer_id,
                    id: session,
                });
                (Msg::Welcome { host }, false)
            }
            Msg::NewFile { record } => {
                let Some(s) = &self.session else {
                    return (protocol_error("register first"), false);
                };
                let name = record.name.clone();
                let (size, pieces) = (record.size, record.piece_count());
                let added = {
                    let mut c = shared.lock();
                    c.add_file(&s.peer_id, s.id, record, now).map(|new| {
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
                            "new file {name} ({size} bytes, {pieces} pieces) from {}",
                            s.peer_id
                        );
                        // On disk before the OK: an acknowledged record
                        // survives a restart.
                        if let Err(e) = shared.store.save(&record) {
                            error!("{e}; {name} will be forgotten by a restart");
                        }
                        (Msg::Ok, false)
                    }
                    Ok(None) => {
                        debug!("{} shares the known file {name}", s.peer_id);
                        (Msg::Ok, false)
                    }
                    Err(e) => {
                        info!("refused {name} from {}: {e}", s.peer_id);
                        (Msg::error(&e), false)
                    }
                }
            }
            Msg::Announce { files } => {
                let Some(s) = &self.session else {
                    return (protocol_error("register first"), false);
                };
                debug!("{} announces {} files", s.peer_id, files.len());
                match shared.lock().announce(&s.peer_id, s.id, &files, now) {
                    Ok(()) => (Msg::Ok, false),
                    Err(e) => (Msg::error(&e), false),
                }
            }
            Msg::Bye => {
                if let Some(s) = self.session.take() {
                    if shared.lock().remove_peer(&s.peer_id, s.id) {
                        info!("peer {} left", s.peer_id);
                    }
                }
                (Msg::Ok, true)
            }
            Msg::ListFiles => {
                self.touch(now);
                let files = shared.lock().list_files();
                (
                    Msg::FileList {
                        files: fit_frame(files),
                    },
                    false,
                )
            }
            Msg::GetRecord { name } => {
                self.touch(now);
                let record = shared.lock().record(&name);
                match record {
                    Some(r) => (
                        Msg::Record {
                            record: (*r).clone(),
                        },
                        false,
                    ),
                    None => (Msg::error(&not_found(&name)), false),
                }
            }
            Msg::WhoHas { name } => {
                self.touch(now);
                let holders = shared.lock().holders(&name);
                match holders {
                    Ok(holders) => (Msg::Holders { holders }, false),
                    Err(e) => (Msg::error(&e), false),
                }
            }
            Msg::Ping { nonce } => {
                self.touch(now);
                (Msg::Pong { nonce }, false)
            }
            other => {
                let text = format!(
                    "unexpected {} message: this is a tracker (try LIST_FILES, \
                     GET_RECORD, WHO_HAS or REGISTER)",
                    other.kind()
                );
                (protocol_error(&text), true)
            }
        }
    }

    /// Any message of a session shows the peer is alive.
    fn touch(&self, now: Instant) {
        if let Some(s) = &self.session {
            let _ = self.shared.lock().touch(&s.peer_id, s.id, now);
        }
    }

    /// The connection is over: its session, if still current, goes too.
    fn finish(&mut self, why: &str) {
        if let Some(s) = self.session.take() {
            if self.shared.lock().remove_peer(&s.peer_id, s.id) {
                info!("peer {} gone ({why})", s.peer_id);
            }
        }
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
        log::warn!(
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
        Msg::FileList { files: fitted }.encode(&mut buf);
        assert!(buf.len() - 4 <= MAX_FRAME);
        let few = fit_frame(vec![]);
        assert!(few.is_empty());
    }

    #[test]
    fn hosts() {
        for h in [
            "",
            "10.0.0.1",
            "example.org",
            "::1",
            "[fe80::1%eth0]",
            "my_host",
        ] {
            assert!(valid_host(h), "{h}");
        }
        for h in ["a b", "x/y", "evil\n", "é"] {
            assert!(!valid_host(h), "{h}");
        }
    }
}
