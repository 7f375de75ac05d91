//! The one-socket copy ceiling for `make bench` where socat is missing:
//! send a file over one loopback TCP connection into another file, no
//! framing, no hashing, 1 MiB reads and writes on both sides (no buffered
//! wrappers, whose extra copy made it slower than socat).
//! Usage: sockcopy <SRC> <DST>; prints `sockcopy bytes=<n> secs=<s> MBps=<r>`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst] = args.as_slice() else {
        eprintln!("error: usage: sockcopy <SRC> <DST>");
        std::process::exit(2);
    };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let dst = dst.clone();
    let receiver = std::thread::spawn(move || -> io::Result<u64> {
        let (mut sock, _) = listener.accept()?;
        let mut out = File::create(dst)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = sock.read(&mut buf)?;
            if k == 0 {
                return Ok(n);
            }
            out.write_all(&buf[..k])?;
            n += k as u64;
        }
    });
    let t0 = Instant::now();
    let mut sock = TcpStream::connect(addr)?;
    let mut file = File::open(src)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sock.write_all(&buf[..n])?;
    }
    drop(sock);
    let bytes = receiver
        .join()
        .map_err(|_| io::Error::other("receiver panicked"))??;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "sockcopy bytes={bytes} secs={secs:.3} MBps={:.1}",
        bytes as f64 / 1e6 / secs
    );
    Ok(())
}
