use md5::{Digest, Md5};
use std::time::Instant;
fn main() {
    let buf = vec![7u8; 256 << 20];
    let t = Instant::now();
    let mut h = Md5::new();
    h.update(&buf);
    let _ = h.finalize();
    let s = t.elapsed().as_secs_f64();
    println!("whole: {:.0} MB/s", 256.0 * 1.048576 / s);
    let t = Instant::now();
    for c in buf.chunks(4096) {
        let _ = Md5::digest(c);
    }
    let s = t.elapsed().as_secs_f64();
    println!("4k blocks: {:.0} MB/s", 256.0 * 1.048576 / s);
}
