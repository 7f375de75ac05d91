//! The field decoder every message and datagram is built on
//! (`wire::codec::Decoder`), driven by the input itself: each op byte
//! picks a field to read from the bytes after the ops. Whatever the
//! lengths say, a read never panics, never goes past the end, and a
//! count never promises more items than the bytes left can hold.
//!
//! Input: the number of op bytes, the ops, then the bytes to decode.

use p2pshare::wire::codec::{put_bytes, put_str, put_u16, put_u32, put_u64, put_u8, Decoder};

fn check(data: &[u8]) {
    let [n, rest @ ..] = data else {
        return;
    };
    let Some((ops, bytes)) = rest.split_at_checked(*n as usize) else {
        return;
    };
    let mut d = Decoder::new(bytes);
    let mut out = Vec::new();
    for &op in ops {
        let before = d.remaining();
        let limit = usize::from(op >> 3) * 37;
        let ok = match op & 7 {
            0 => d.u8().map(|v| put_u8(&mut out, v)).is_ok(),
            1 => d.u16().map(|v| put_u16(&mut out, v)).is_ok(),
            2 => d.u32().map(|v| put_u32(&mut out, v)).is_ok(),
            3 => d.u64().map(|v| put_u64(&mut out, v)).is_ok(),
            4 => d.str(limit).map(|s| put_str(&mut out, s)).is_ok(),
            5 => d.bytes(limit).map(|b| put_bytes(&mut out, b)).is_ok(),
            6 => match d.count(usize::from(op >> 3), 1000) {
                Ok(c) => {
                    assert!(c * usize::from(op >> 3).max(1) <= d.remaining());
                    put_u32(&mut out, c as u32);
                    true
                }
                Err(_) => false,
            },
            _ => d.take(limit).map(|b| out.extend_from_slice(b)).is_ok(),
        };
        if !ok {
            // A refused field consumes nothing the caller could misread.
            assert!(d.remaining() <= before);
            return;
        }
        assert!(d.remaining() <= before);
    }
    // What was read, written back with the same codec, is what was there.
    assert_eq!(out, &bytes[..bytes.len() - d.remaining()]);
    assert_eq!(d.finish().is_ok(), d.remaining() == 0);
}

fn seeds() -> Vec<Vec<u8>> {
    let mut fields = Vec::new();
    put_u8(&mut fields, 1);
    put_u16(&mut fields, 2);
    put_u32(&mut fields, 3);
    put_u64(&mut fields, 4);
    put_str(&mut fields, "a.bin");
    put_bytes(&mut fields, b"bits");
    put_u32(&mut fields, 2);
    let ops = [0u8, 1, 2, 3, 4 | 8, 5 | 8, 6 | 16];
    let mut seed = vec![ops.len() as u8];
    seed.extend_from_slice(&ops);
    seed.extend_from_slice(&fields);
    vec![seed]
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
