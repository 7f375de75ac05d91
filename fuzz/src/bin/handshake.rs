//! The swarm secret's handshake (`secure::channel`): what a server with a
//! secret reads from anyone before authentication (message 1), and what a
//! client reads back (message 2). Never a panic; a message 1 that a holder
//! of the key did not make is refused.
//!
//! The ephemeral keys come from the OS, so a message 2 never decrypts
//! here: the target covers the length checks and the refusals.

use p2pshare::secure::channel::{respond, Initiator};
use p2pshare::secure::seal::ReplayGuard;
use std::sync::Mutex;

const PSK: [u8; 32] = [0x5a; 32];
/// Every message 1 is stamped and checked at this instant, so an input
/// means the same in every run.
const NOW: u64 = 1_800_000_000_000;

fn check(data: &[u8]) {
    let _ = respond(&PSK, data, &Mutex::new(ReplayGuard::new()), NOW);
    let (initiator, _) = Initiator::start(&PSK, NOW);
    assert!(
        initiator.finish(data).is_err(),
        "a message 2 for a fresh initiator"
    );
}

fn seeds() -> Vec<Vec<u8>> {
    let (_, msg1) = Initiator::start(&PSK, NOW);
    let (_, msg2) =
        respond(&PSK, &msg1, &Mutex::new(ReplayGuard::new()), NOW).expect("our own message 1");
    vec![msg1, msg2, vec![0; 56], vec![0; 48], vec![0; 47]]
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
