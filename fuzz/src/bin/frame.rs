//! Framing (`wire::frame`): `FrameReader` reading a byte stream that
//! arrives in odd-sized pieces with read timeouts in between (as a slow or
//! hostile sender makes it arrive) must yield exactly the frames that
//! `frame::parse` finds in the whole stream at once, and fail where it
//! fails.
//!
//! Input: one control byte (bits 0-2: largest read size - 1; bit 3: a
//! timeout before every third read; bit 7: a 64-byte frame limit instead
//! of the block server's), then the stream.

use p2pshare::wire::{frame, FrameReader, MAX_CONTROL_FRAME};
use p2pshare::Error;
use p2pshare_fuzz::Trickle;

fn check(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let max = if control & 0x80 != 0 {
        64
    } else {
        MAX_CONTROL_FRAME
    };
    let mut reader = FrameReader::new(Trickle::new(control, stream), max);
    let mut rest = stream;
    loop {
        let got = loop {
            match reader.read_frame() {
                Err(Error::Timeout(_)) => continue,
                other => break other.map(|f| f.map(|(ty, body)| (ty, body.to_vec()))),
            }
        };
        match frame::parse(rest, max) {
            Ok(Some((ty, body, used))) => {
                assert_eq!(
                    got.expect("reader fails where parse does not"),
                    Some((ty, body.to_vec()))
                );
                rest = &rest[used..];
            }
            Ok(None) if rest.is_empty() => {
                assert_eq!(got.expect("a clean end of stream"), None);
                return;
            }
            // A stream that ends inside a frame, or a bad header.
            Ok(None) | Err(_) => {
                assert!(got.is_err(), "reader accepts what parse refuses: {got:?}");
                return;
            }
        }
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let frame = |ty: u8, body: &[u8]| {
        let mut v = Vec::new();
        frame::write_header(&mut v, ty, body.len()).unwrap();
        v.extend_from_slice(body);
        v
    };
    let two = [
        frame(0x11, &[0, 0, 0, 1, 0, 0, 0, 5, 0, 64]),
        frame(0x07, b""),
    ]
    .concat();
    vec![
        [&[0x00][..], &two].concat(),
        [&[0x0b][..], &two].concat(),
        [&[0x87][..], &frame(0x12, &[1; 8])].concat(),
        [&[0x03][..], &frame(0x10, b"\x00\x05a.bin0123456789abcdef")].concat(),
    ]
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
