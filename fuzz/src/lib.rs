//! What the fuzz targets in `src/bin/` share. A target is one file that
//! defines `check` (runs one input through a decoder and asserts what must
//! hold: no panic, and decode -> encode -> decode gives the same value)
//! and `seeds` (real messages for the starting corpus), and hands both to
//! [`main`]. `tools/fuzz.sh` lists the targets.

use p2pshare::wire::{frame, Decode, Encode, MAX_FRAME};
use std::fmt::Debug;
use std::io::{self, Read};
use std::path::Path;

/// The command line of every target:
/// - no argument: the AFL++ persistent loop (what `afl-fuzz` runs);
/// - `--seeds DIR`: writes the seed corpus into DIR;
/// - `--replay FILE...`: runs `check` on each file outside AFL, so a crash
///   is reproduced with a plain backtrace.
pub fn main(check: fn(&[u8]), seeds: fn() -> Vec<Vec<u8>>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => fuzz(check),
        Some("--seeds") if args.len() == 2 => write_seeds(Path::new(&args[1]), seeds()),
        Some("--replay") => {
            for file in &args[1..] {
                let data = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
                check(&data);
                println!("ok {file}");
            }
        }
        _ => {
            eprintln!("usage: TARGET [--seeds DIR | --replay FILE...]");
            std::process::exit(2);
        }
    }
}

/// `cargo afl build` sets `cfg(fuzzing)`. A plain `cargo build` (or
/// `cargo clippy`) leaves AFL's runtime out, so the targets still build and
/// replay without cargo-afl.
#[cfg(fuzzing)]
fn fuzz(check: fn(&[u8])) {
    afl::fuzz(true, check);
}

#[cfg(not(fuzzing))]
fn fuzz(_: fn(&[u8])) {
    eprintln!(
        "error: built without AFL++ (use `make fuzz`); --replay FILE... and --seeds DIR still work"
    );
    std::process::exit(2);
}

fn write_seeds(dir: &Path, seeds: Vec<Vec<u8>>) {
    std::fs::create_dir_all(dir).expect("creating the seed directory");
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:03}")), s).expect("writing a seed");
    }
}

/// A framed message as the targets feed it: the type byte, then the body.
/// The 4-byte length is left out so that mutating the body does not also
/// have to fix up the length (the `frame` target covers the length).
pub fn typed_body(m: &impl Encode) -> Vec<u8> {
    let mut buf = Vec::new();
    m.encode(&mut buf);
    buf.split_off(frame::HEADER_LEN - 1)
}

/// Decodes `data` (type byte, body) as `M`; if it decodes, encodes it as a
/// whole frame, finds the frame again and checks it decodes to the same
/// message. For messages that own their fields; `PeerReply` borrows its
/// block data and has its own copy of this in `peer_reply.rs`.
pub fn message_round_trip<M>(data: &[u8])
where
    M: Encode + for<'a> Decode<'a> + PartialEq + Debug,
{
    let Some((&ty, body)) = data.split_first() else {
        return;
    };
    let Ok(first) = M::decode(ty, body) else {
        return;
    };
    let mut buf = Vec::new();
    first.encode(&mut buf);
    let (ty2, body2, used) = frame::parse(&buf, MAX_FRAME)
        .expect("an encoded message is a valid frame")
        .expect("an encoded message is a whole frame");
    assert_eq!(used, buf.len());
    let again = M::decode(ty2, body2).expect("an encoded message decodes");
    assert_eq!(first, again);
}

/// Hands out `data` a few bytes at a time, with a timeout now and then,
/// as a slow or hostile sender makes a stream arrive. Built from a
/// target's control byte: bits 0-2 are the largest read size - 1, bit 3
/// a timeout (`WouldBlock`) before every third read.
pub struct Trickle<'a> {
    data: &'a [u8],
    largest: usize,
    stalls: bool,
    reads: usize,
}

impl<'a> Trickle<'a> {
    pub fn new(control: u8, data: &'a [u8]) -> Trickle<'a> {
        Trickle {
            data,
            largest: usize::from(control & 7) + 1,
            stalls: control & 8 != 0,
            reads: 0,
        }
    }
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        if self.stalls && self.reads.is_multiple_of(3) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = (self.reads % self.largest + 1)
            .min(buf.len())
            .min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}
