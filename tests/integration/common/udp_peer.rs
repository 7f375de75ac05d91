//! A peer's side of the tracker's UDP exchange, by hand: for tests that
//! need many registered peers, or datagrams no real peer would send.

use p2pshare::record::FileRecord;
use p2pshare::wire::datagram::tracker::{
    Announce, Announced, Entry, Held, Refusal, Reply, Request, FLAG_BYE, FLAG_REGISTER,
};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

pub struct UdpPeer {
    pub socket: UdpSocket,
    pub id: String,
    pub port: u16,
    pub cookie: u64,
    pub session: u64,
    tx: u32,
}

/// An entry for `r` held as `held`.
pub fn entry(r: &FileRecord, held: Held) -> Entry<'_> {
    Entry {
        name: &r.name,
        md5: r.md5,
        held,
    }
}

impl UdpPeer {
    /// A socket on `local_ip` (any port) talking to the tracker at `tracker`.
    pub fn new(local_ip: &str, tracker: &str, id: &str, port: u16) -> UdpPeer {
        let socket = UdpSocket::bind((local_ip, 0)).expect("binding a UDP socket");
        let addr: SocketAddr = tracker.parse().expect("a tracker address");
        socket.connect(addr).expect("connecting the UDP socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        UdpPeer {
            socket,
            id: id.into(),
            port,
            cookie: 0,
            session: 0,
            tx: 0,
        }
    }

    /// Sends `bytes` and waits for the answer with the same transaction
    /// id, sending again on silence; `None` after 10 silent tries.
    pub fn exchange_raw(&self, bytes: &[u8]) -> Option<(Reply, usize)> {
        let tx = u32::from_be_bytes(bytes[4..8].try_into().unwrap());
        let mut buf = [0u8; 4096];
        for _ in 0..10 {
            self.socket.send(bytes).ok()?;
            while let Ok(n) = self.socket.recv(&mut buf) {
                if let Ok(r) = Reply::decode(&buf[..n]) {
                    if r.tx() == tx {
                        return Some((r, n));
                    }
                }
            }
        }
        None
    }

    pub fn exchange(&mut self, req: &Request<'_>) -> Reply {
        let mut bytes = Vec::new();
        req.encode(&mut bytes);
        let (reply, n) = self
            .exchange_raw(&bytes)
            .expect("the tracker did not answer");
        assert!(
            n <= bytes.len(),
            "an answer of {n} bytes to {} bytes",
            bytes.len()
        );
        reply
    }

    pub fn next_tx(&mut self) -> u32 {
        self.tx += 1;
        self.tx
    }

    pub fn connect(&mut self) {
        let tx = self.next_tx();
        match self.exchange(&Request::Connect { tx }) {
            Reply::Connected { cookie, .. } => self.cookie = cookie,
            other => panic!("CONNECT answered {other:?}"),
        }
    }

    pub fn announce_with(
        &mut self,
        flags: u8,
        entries: Vec<Entry<'_>>,
    ) -> Result<Announced, Refusal> {
        let tx = self.next_tx();
        let (id, port, cookie, session) = (self.id.clone(), self.port, self.cookie, self.session);
        let req = Request::Announce(Announce {
            tx,
            cookie,
            session,
            flags,
            port,
            peer_id: &id,
            advertise: "",
            site: "",
            entries,
        });
        match self.exchange(&req) {
            Reply::Announced(a) => {
                self.session = a.session;
                Ok(a)
            }
            Reply::Refused { reason, .. } => Err(reason),
            other => panic!("ANNOUNCE answered {other:?}"),
        }
    }

    /// CONNECT, then REGISTER with `entries`.
    pub fn register(&mut self, entries: Vec<Entry<'_>>) -> Announced {
        self.connect();
        self.announce_with(FLAG_REGISTER, entries)
            .expect("REGISTER refused")
    }

    pub fn announce(&mut self, entries: Vec<Entry<'_>>) -> Result<Announced, Refusal> {
        self.announce_with(0, entries)
    }

    pub fn bye(&mut self) -> Result<Announced, Refusal> {
        self.announce_with(FLAG_BYE, vec![])
    }
}

impl UdpPeer {
    /// One round of what a real peer does, never panicking: announce, and
    /// on a refusal connect or register again as told. True when the
    /// tracker holds a session for this peer afterwards.
    pub fn keep_alive(&mut self, entries: &[Entry<'_>]) -> bool {
        for _ in 0..3 {
            let tx = self.next_tx();
            let registered = self.session != 0;
            let (id, port) = (self.id.clone(), self.port);
            let req = Request::Announce(Announce {
                tx,
                cookie: self.cookie,
                session: self.session,
                flags: if registered { 0 } else { FLAG_REGISTER },
                port,
                peer_id: &id,
                advertise: "",
                site: "",
                entries: if registered { vec![] } else { entries.to_vec() },
            });
            let mut bytes = Vec::new();
            req.encode(&mut bytes);
            match self.exchange_raw(&bytes) {
                None => return false,
                Some((Reply::Announced(a), _)) => {
                    self.session = a.session;
                    return true;
                }
                Some((
                    Reply::Refused {
                        reason: Refusal::BadCookie,
                        ..
                    },
                    _,
                )) => {
                    let tx = self.next_tx();
                    let mut c = Vec::new();
                    Request::Connect { tx }.encode(&mut c);
                    match self.exchange_raw(&c) {
                        Some((Reply::Connected { cookie, .. }, _)) => self.cookie = cookie,
                        _ => return false,
                    }
                }
                Some((Reply::Refused { .. }, _)) => self.session = 0,
                Some(_) => return false,
            }
        }
        false
    }
}
