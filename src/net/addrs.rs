//! Addresses: this host's interface addresses, read from /proc (std has
//! no interface listing), and `host:port` as a dialler writes it.

use std::net::SocketAddr;

/// The IPv4 addresses of this host's interfaces, read from the kernel's
/// routing table; loopback first.
fn local_ipv4_addrs() -> Vec<String> {
    let mut out = vec!["127.0.0.1".to_string()];
    if let Ok(text) = std::fs::read_to_string("/proc/net/fib_trie") {
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            if pair[1].contains("/32 host LOCAL") {
                if let Some(ip) = pair[0].split_whitespace().last() {
                    if !out.iter().any(|o| o == ip) {
                        out.push(ip.to_string());
                    }
                }
            }
        }
    }
    out
}

/// The addresses a listener bound to `bind` can be reached on.
pub fn reachable_addrs(bind: &SocketAddr) -> Vec<SocketAddr> {
    if bind.ip().is_unspecified() {
        local_ipv4_addrs()
            .iter()
            .filter_map(|ip| format!("{ip}:{}", bind.port()).parse().ok())
            .collect()
    } else {
        vec![*bind]
    }
}

/// `host:port`, with brackets around an IPv6 literal.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
