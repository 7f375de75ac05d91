//! The swarm secret's encrypted stream (`secure::channel::SealedReader`):
//! what every connection reads after the handshake, from a party that may
//! have the secret and be hostile, or be a forger on the path. The stream
//! arrives in odd-sized pieces with timeouts between; reading never
//! panics, ends, and hands out no byte of a message that fails its tag.
//!
//! Input: one control byte (bits 0-2: largest read size - 1; bit 3: a
//! timeout before every third read), then the stream. The channel's keys
//! come from one handshake per process, made with keys the fuzzer never
//! sees, so a message never authenticates here: the target covers the
//! length prefixes, the buffer moves and the refusals; the unit tests
//! cover the messages that do. One channel serves every input because a
//! message that fails its tag leaves the receiving nonce where it was,
//! so each input meets the same state (and the key exchange, which had
//! held this target to 1,500 inputs a second, is out of the loop).

use p2pshare::secure::channel::{respond, Initiator, SealedReader, Shared};
use p2pshare::secure::seal::ReplayGuard;
use p2pshare_fuzz::Trickle;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, OnceLock};

const PSK: [u8; 32] = [0x77; 32];

fn check(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let trickle = Trickle::new(control, stream);
    let mut reader = SealedReader::new(trickle, Arc::clone(channel()), &[]);
    let mut buf = [0u8; 4096];
    // Every read consumes input or fails: bounded by the input's length.
    for _ in 0..=3 * stream.len() + 3 {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => panic!("a byte of a message that cannot authenticate"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
    panic!("no end after {} reads", 3 * stream.len() + 3);
}

/// The initiator's receiving half of one handshake made at start-up.
fn channel() -> &'static Shared {
    static CHANNEL: OnceLock<Shared> = OnceLock::new();
    CHANNEL.get_or_init(|| {
        let now = 1_800_000_000_000;
        let (initiator, msg1) = Initiator::start(&PSK, now);
        let seen = Mutex::new(ReplayGuard::new());
        let (_, msg2) = respond(&PSK, &msg1, &seen, now).expect("our own message 1");
        initiator.finish(&msg2).expect("our own message 2")
    })
}

fn seeds() -> Vec<Vec<u8>> {
    let mut one = vec![0x0b, 0x00, 0x20];
    one.extend_from_slice(&[1; 32]);
    vec![
        one,
        vec![0x00, 0xff, 0xff, 0x01],
        vec![0x07, 0x00, 0x00],
        vec![0x03],
    ]
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
