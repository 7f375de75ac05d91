//! Sealed datagrams (`secure::seal`): what a tracker or a peer with a
//! swarm secret opens from any UDP source before it parses anything.
//! Never a panic; what opens, sealed again with its own nonce and stamp,
//! is the same bytes; the replay guard takes a nonce once.

use p2pshare::secure::seal::{Purpose, ReplayGuard, Sealer, NONCE_LEN};

const KEY: [u8; 32] = [0x3c; 32];
const NOW: u64 = 1_800_000_000_000;
const P: Purpose = Purpose::ToTracker;

fn check(data: &[u8]) {
    let sealer = Sealer::new(&KEY);
    let mut out = Vec::new();
    let Ok((nonce, stamp)) = sealer.open_into(P, data, &mut out) else {
        return;
    };
    let mut again = Vec::new();
    sealer.seal_with(P, &out, &nonce, stamp, &mut again);
    assert_eq!(again, data);
    let mut guard = ReplayGuard::new();
    assert!(guard.admit(nonce, stamp, stamp).is_ok());
    assert!(guard.admit(nonce, stamp, stamp).is_err(), "a replay");
}

fn seeds() -> Vec<Vec<u8>> {
    let sealer = Sealer::new(&KEY);
    let mut seeds = Vec::new();
    for (i, inner) in [&b""[..], b"p2\x01\x10\x00\x00\x00\x07", &[9u8; 300]]
        .iter()
        .enumerate()
    {
        let mut out = Vec::new();
        sealer.seal_with(P, inner, &[i as u8; NONCE_LEN], NOW, &mut out);
        seeds.push(out);
    }
    seeds.push(b"p2S".to_vec());
    seeds
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
