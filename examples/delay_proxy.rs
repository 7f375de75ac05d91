//! A TCP proxy that makes a holder look far away, for `make nearfar`: every
//! byte is held for a fixed time in each direction, so the RTT through it
//! grows by twice that, while the bandwidth stays loopback's (the holder's
//! own --upload-limit is the cap). The same proxy the swarm tests use.
//! Usage: delay_proxy <TARGET_PORT> <ONE_WAY_MS>; prints `delay_proxy port=<p>`
//! and forwards connections to 127.0.0.1:TARGET_PORT until killed.

#[path = "../tests/integration/common/proxy.rs"]
mod proxy;

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [port, ms] => port.parse::<u16>().ok().zip(ms.parse::<u64>().ok()),
        _ => None,
    };
    let Some((target, ms)) = parsed else {
        eprintln!("error: usage: delay_proxy <TARGET_PORT> <ONE_WAY_MS>");
        std::process::exit(2);
    };
    let p = proxy::DelayProxy::start(target, Duration::from_millis(ms));
    println!("delay_proxy port={}", p.port);
    loop {
        std::thread::park();
    }
}
