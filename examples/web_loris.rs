//! A slow-loris against a web UI (tools/web_loris.sh, `make web-loris`):
//! CONNS connections from this host that each send one byte of a request
//! head that never ends, every second, reconnecting when the server closes
//! one; meanwhile LOADS page loads (`GET /`) spread over SECS, each given
//! LOAD_TIMEOUT. Prints one line:
//!   web-loris conns=<n> secs=<s> loads=<l> served=<k> reconnects=<r>
//!
//! Usage: web_loris --addr HOST:PORT [--conns 300] [--secs 20] [--loads 20]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one page load may take before it counts as not served.
const LOAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Between two bytes of one trickling connection.
const TRICKLE: Duration = Duration::from_secs(1);
/// The head the tricklers send, a byte at a time, and never finish.
const HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

struct Args {
    addr: SocketAddr,
    conns: usize,
    secs: u64,
    loads: u32,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        addr: "127.0.0.1:0".parse().expect("literal"),
        conns: 300,
        secs: 20,
        loads: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--addr" => a.addr = value.parse().map_err(|e| bad(&e))?,
            "--conns" => a.conns = value.parse().map_err(|e| bad(&e))?,
            "--secs" => a.secs = value.parse().map_err(|e| bad(&e))?,
            "--loads" => a.loads = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.addr.port() == 0 {
        return Err("say where the web UI is: --addr HOST:PORT".into());
    }
    Ok(a)
}

/// One trickling connection: how far into `HEAD` (then `a`s) it is.
struct Slow {
    stream: Option<TcpStream>,
    sent: usize,
}

impl Slow {
    fn connect(addr: SocketAddr) -> Slow {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok();
        if let Some(s) = &stream {
            let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
        }
        Slow { stream, sent: 0 }
    }

    /// Sends the next byte; false when the server has closed it.
    fn trickle(&mut self) -> bool {
        let Some(s) = &mut self.stream else {
            return false;
        };
        let byte = HEAD.get(self.sent).copied().unwrap_or(b'a');
        self.sent += 1;
        s.write_all(&[byte]).is_ok()
    }
}

/// Keeps `n` connections trickling until `stop`; counts reconnections.
fn trickle_all(addr: SocketAddr, n: usize, stop: &AtomicBool, reconnects: &AtomicU64) {
    let mut slow: Vec<Slow> = (0..n).map(|_| Slow::connect(addr)).collect();
    while !stop.load(Relaxed) {
        let round = Instant::now();
        for s in &mut slow {
            if !s.trickle() {
                *s = Slow::connect(addr);
                reconnects.fetch_add(1, Relaxed);
            }
        }
        std::thread::sleep(TRICKLE.saturating_sub(round.elapsed()));
    }
}

/// One `GET /`: whether a 200 came back within `LOAD_TIMEOUT`.
fn load(addr: SocketAddr) -> bool {
    let start = Instant::now();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, LOAD_TIMEOUT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(LOAD_TIMEOUT));
    let _ = s.set_write_timeout(Some(LOAD_TIMEOUT));
    let req = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 16 << 10];
    while start.elapsed() < LOAD_TIMEOUT {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => return false,
        }
    }
    got.starts_with(b"HTTP/1.1 200") && start.elapsed() < LOAD_TIMEOUT
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let reconnects = Arc::new(AtomicU64::new(0));
    // Two threads share the crowd, so one slow connect does not stall all.
    let halves = [a.conns / 2, a.conns - a.conns / 2];
    let crowd: Vec<_> = halves
        .into_iter()
        .map(|n| {
            let (stop, reconnects) = (stop.clone(), reconnects.clone());
            let addr = a.addr;
            std::thread::spawn(move || trickle_all(addr, n, &stop, &reconnects))
        })
        .collect();
    // Let the crowd gather before the first load.
    std::thread::sleep(Duration::from_secs(2));
    let start = Instant::now();
    let every = Duration::from_secs(a.secs) / a.loads.max(1);
    let mut served = 0;
    for i in 0..a.loads {
        if let Some(wait) = (every * i).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        if load(a.addr) {
            served += 1;
        }
    }
    if let Some(rest) = Duration::from_secs(a.secs).checked_sub(start.elapsed()) {
        std::thread::sleep(rest);
    }
    stop.store(true, Relaxed);
    for t in crowd {
        let _ = t.join();
    }
    println!(
        "web-loris conns={} secs={} loads={} served={served} reconnects={}",
        a.conns,
        a.secs,
        a.loads,
        reconnects.load(Relaxed)
    );
}
