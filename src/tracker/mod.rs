//! The tracker: the swarm's catalogue of files and of who takes part in
//! each. Peers register, announce and leave over UDP (`udp`); short
//! queries and new records come over TCP (`server`).
//!
//! `catalogue` is the pure state, `cookie` the UDP connection ids,
//! `persist` keeps file records on disk, `summary` is what the dashboards
//! draw. Threads: the TCP accept loop (the caller's), a fixed pool of
//! query threads, one UDP thread, the reaper, and optionally the
//! dashboard; they share one `Mutex<Catalogue>` held only for in-memory
//! work.

pub mod catalogue;
pub mod cookie;
pub mod dashboard;
pub mod persist;
pub mod server;
pub mod summary;
pub mod udp;

pub use catalogue::Catalogue;
pub use persist::RecordStore;
pub use server::TrackerState;
pub use summary::{FileTotals, PeerRow, Summary};

use crate::error::{Error, Result};
use crate::net::addrs::reachable_addrs;
use crate::wire::DEFAULT_TRACKER_PORT;
use cookie::CookieJar;
use log::info;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Where the tracker keeps its records unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "data/tracker";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub port: u16,
    pub bind: IpAddr,
    pub data: PathBuf,
    pub dashboard: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: DEFAULT_TRACKER_PORT,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            data: PathBuf::from(DEFAULT_DATA_DIR),
            dashboard: false,
        }
    }
}

/// A tracker with its records loaded and its socket bound, not yet serving.
pub struct Tracker {
    listener: TcpListener,
    udp: UdpSocket,
    addr: SocketAddr,
    shared: Arc<TrackerState>,
    dashboard: bool,
    started: Instant,
}

impl Tracker {
    /// Loads the records under `config.data` and binds the listening socket.
    pub fn start(config: &Config) -> Result<Tracker> {
        let store = RecordStore::open(&config.data)?;
        let mut catalogue = Catalogue::new();
        catalogue.hold_names_until(Instant::now() + catalogue::ABANDON_GRACE);
        let on_disk = store.load();
        let loaded = on_disk.records.len();
        for r in on_disk.records {
            catalogue.load_record(r);
        }
        for l in on_disk.legacy {
            catalogue.load_legacy(l);
        }
        info!(
            "loaded {loaded} file records from {}{}",
            store.dir().display(),
            match catalogue.legacy_count() {
                0 => String::new(),
                n => format!(
                    "; {n} records of an older p2pshare wait for a holder to publish them again"
                ),
            }
        );
        let want = SocketAddr::new(config.bind, config.port);
        let listener = TcpListener::bind(want).map_err(|e| Error::Io {
            context: format!("cannot listen on {want}"),
            source: io::Error::new(
                e.kind(),
                format!("{e} (is another tracker running? try --port)"),
            ),
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io(format!("cannot listen on {want}"), e))?;
        // UDP on the same port number as TCP (0 asked for any: the one TCP got).
        let udp = UdpSocket::bind(addr).map_err(|e| Error::Io {
            context: format!("cannot listen for UDP on {addr}"),
            source: io::Error::new(
                e.kind(),
                format!(
                    "{e} (is another program using UDP port {}? try --port)",
                    addr.port()
                ),
            ),
        })?;
        let cookies = CookieJar::new()
            .map_err(|e| Error::io("cannot read random bytes for connection ids", e))?;
        Ok(Tracker {
            listener,
            udp,
            addr,
            shared: Arc::new(TrackerState::new(catalogue, store, cookies)),
            dashboard: config.dashboard,
            started: Instant::now(),
        })
    }

    /// The bound address (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shared(&self) -> &Arc<TrackerState> {
        &self.shared
    }

    /// When the tracker started (the dashboards' uptime).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The lines printed at start: where it listens, then each address it
    /// can be reached on.
    pub fn banner(&self) -> Vec<String> {
        let mut lines = vec![format!("tracker listening on {} (TCP and UDP)", self.addr)];
        for a in reachable_addrs(&self.addr) {
            lines.push(format!("reachable at {a}"));
        }
        lines
    }

    /// Serves until the process ends.
    pub fn serve(self) {
        info!("tracker serving on {}", self.addr);
        if let Err(e) = udp::spawn(self.udp, self.shared.clone()) {
            log::error!("cannot start the UDP thread, peers cannot announce: {e}");
        }
        server::spawn_reaper(self.shared.clone());
        if self.dashboard {
            dashboard::spawn(self.shared.summary_source(), self.started);
        }
        server::serve(self.listener, self.shared);
    }
}

/// Starts a tracker, prints its banner on stdout, and serves forever.
pub fn run(config: Config) -> Result<()> {
    let tracker = Tracker::start(&config)?;
    let mut out = io::stdout().lock();
    for line in tracker.banner() {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
    drop(out);
    tracker.serve();
    Ok(())
}
