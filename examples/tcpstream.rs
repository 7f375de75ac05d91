//! One TCP stream for `make hosts CHECK=links`: what a single connection
//! carries over an emulated link, with nothing of the peer's own pacing in
//! it. `tcpstream sink PORT` takes one connection and reads it to the end;
//! `tcpstream send ADDR:PORT SECS` writes for SECS seconds. The sink prints
//! `tcpstream bytes=<n> secs=<s> MiBps=<r> steady_MiBps=<r>`, steady being
//! the rate after the first two seconds (slow start left out).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const STEADY_AFTER: Duration = Duration::from_secs(2);

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["sink", port] => sink(port),
        ["send", addr, secs] => match secs.parse() {
            Ok(secs) => send(addr, Duration::from_secs_f64(secs)),
            Err(_) => usage(),
        },
        _ => usage(),
    }
}

fn usage() -> io::Result<()> {
    eprintln!("error: usage: tcpstream sink PORT | tcpstream send ADDR:PORT SECS");
    std::process::exit(2);
}

fn sink(port: &str) -> io::Result<()> {
    let listener = TcpListener::bind(format!("0.0.0.0:{port}"))?;
    let (mut sock, _) = listener.accept()?;
    let mut buf = vec![0u8; 1 << 20];
    let t0 = Instant::now();
    let (mut total, mut at_steady) = (0u64, None);
    loop {
        let k = sock.read(&mut buf)?;
        if k == 0 {
            break;
        }
        total += k as u64;
        if at_steady.is_none() && t0.elapsed() >= STEADY_AFTER {
            at_steady = Some((Instant::now(), total));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let mib = |b: u64, s: f64| b as f64 / 1048576.0 / s;
    let steady = at_steady.map_or(0.0, |(t, b)| mib(total - b, t.elapsed().as_secs_f64()));
    println!(
        "tcpstream bytes={total} secs={secs:.3} MiBps={:.2} steady_MiBps={steady:.2}",
        mib(total, secs)
    );
    Ok(())
}

fn send(addr: &str, secs: Duration) -> io::Result<()> {
    let mut sock = TcpStream::connect(addr)?;
    let buf = vec![0u8; 1 << 16];
    let t0 = Instant::now();
    while t0.elapsed() < secs {
        sock.write_all(&buf)?;
    }
    Ok(())
}
