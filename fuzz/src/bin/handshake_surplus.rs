//! Message 1 of the swarm secret's handshake and what follows it in the
//! same read, as a server with a secret takes them (`net::handshake::
//! respond`, then `Conn::switch`): message 1 through a buffered reader of the server's
//! size, whatever else that buffer holds moved into the sealed reader as
//! the start of the stream, and the stream read to its end. Never a
//! panic, whatever the surplus's size (issue 22 item 12: a surplus over
//! the sealed reader's own buffer used to panic), and no byte handed out
//! of a stream that nobody holding the keys sealed.
//!
//! Input: one control byte (`Trickle`: how the rest of the stream
//! arrives), one repeat byte, then the tail: after message 1 comes the
//! tail `repeat + 1` times, so a few KiB of input fill the server's whole
//! read buffer. Message 1 is made once per process (a fresh one would
//! cost a key exchange per input) and each input gets a fresh seen-cache.

use p2pshare::net::conn::READ_BUFFER;
use p2pshare::secure::channel::{respond, Initiator, SealedReader, MAX_HANDSHAKE};
use p2pshare::secure::seal::ReplayGuard;
use p2pshare::wire::frame::write_header;
use p2pshare::wire::message::ty;
use p2pshare::wire::FrameReader;
use p2pshare_fuzz::Trickle;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Mutex, OnceLock};

const PSK: [u8; 32] = [0x6d; 32];
/// Message 1's stamp and the responder's clock: the same instant, so a
/// run of any length meets a fresh message 1.
const NOW: u64 = 1_800_000_000_000;

fn check(data: &[u8]) {
    let [control, repeat, tail @ ..] = data else {
        return;
    };
    let mut stream = message_1().to_vec();
    // Past twice the server's buffer, more tells nothing new.
    for _ in 0..=*repeat {
        if stream.len() > 2 * READ_BUFFER {
            break;
        }
        stream.extend_from_slice(tail);
    }
    let mut frames = FrameReader::new(
        BufReader::with_capacity(READ_BUFFER, &stream[..]),
        1 + MAX_HANDSHAKE,
    );
    assert!(frames.fill().expect("message 1 is whole"));
    let (got, body) = frames.take();
    assert_eq!(got, ty::HANDSHAKE);
    let seen = Mutex::new(ReplayGuard::new());
    let (noise, _) = respond(&PSK, body, &seen, NOW).expect("our own message 1");
    let buffered = frames.get_mut();
    let surplus = buffered.buffer().to_vec();
    buffered.consume(surplus.len());
    let rest: &[u8] = buffered.get_ref();
    assert_eq!(surplus.len() + rest.len(), stream.len() - message_1().len());
    let mut reader = SealedReader::new(Trickle::new(*control, rest), noise, &surplus);
    let mut buf = [0u8; 4096];
    let bound = 3 * rest.len() + 3;
    for _ in 0..=bound {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => panic!("a byte of a message that cannot authenticate"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
    panic!("no end after {bound} reads");
}

/// Message 1 as a frame: header, then the handshake message.
fn message_1() -> &'static [u8] {
    static MSG1: OnceLock<Vec<u8>> = OnceLock::new();
    MSG1.get_or_init(|| {
        let (_, msg1) = Initiator::start(&PSK, NOW);
        let mut frame = Vec::new();
        write_header(&mut frame, ty::HANDSHAKE, msg1.len()).expect("to a Vec");
        frame.extend_from_slice(&msg1);
        frame
    })
}

fn seeds() -> Vec<Vec<u8>> {
    vec![
        vec![0x07, 0x00],
        vec![0x0b, 0x00, 0x00, 0x20, 0xaa, 0xbb],
        // 250,000 bytes after message 1: the case.
        [vec![0x07, 249], vec![0x5c; 1000]].concat(),
        [vec![0x03, 255], vec![0xff; 4096]].concat(),
    ]
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
