//! The block server: other peers fetch blocks here. `machine` is one
//! connection as a pure state machine (`Serve`), `driver` the thread that
//! runs it over TCP and reads the blocks from disk, `seeding` the
//! schedule a seeder shares between its connections.

pub mod driver;
pub mod machine;
pub mod seeding;

use super::Peer;
use crate::net::admission::Limits;
use crate::net::gate;
use std::net::TcpListener;
use std::sync::Arc;

/// How the block server admits connections (`net::admission`): threads
/// for at most 32 active connections, 512 more waiting for their first
/// request (no thread), 16 from any one address, 4 s from accept to the
/// first whole request.
///
/// 32 handlers, not 64, so a holder serves at most 32 downloaders at
/// once (idle ones are closed for newcomers, who find other holders).
/// Its upload queue is the sum of its downloaders' pipelines (at least
/// `fetch::MIN_WINDOW` blocks each), and every hop a piece makes through
/// a swarm waits that long: 64 x 2 blocks at 1 MiB/s is half a second.
/// The simulator (16 MiB, 1 MiB/s, seed 1): N=1000 1.254 -> 1.147 x T*
/// (seeder 1.222 -> 1.056 copies), N=300 1.196 -> 1.089, N=100 1.088 ->
/// 1.080; N=48 1.047 -> 1.052 (docs/PERFORMANCE.md). 24 or 16 were worse
/// (N=300: 1.135, 1.443), 40 and 48 in between.
pub const ADMISSION: Limits = Limits {
    handlers: 32,
    lobby: 512,
    per_ip: 16,
    start: gate::FIRST_FRAME_WITHIN,
};

/// Serves blocks on `listener` until the process ends: the gate admits
/// each connection, `driver::handle` serves it.
pub(super) fn serve(peer: Arc<Peer>, listener: TcpListener) {
    let settings = gate::Settings {
        what: "server",
        limits: ADMISSION,
        max_frame: crate::wire::MAX_CONTROL_FRAME,
    };
    let (refused, panicked) = (peer.metrics.clone(), peer.metrics.clone());
    gate::serve(
        listener,
        settings,
        move |s, ticket| driver::handle(&peer, s, &ticket),
        gate::Counters {
            refused: Box::new(move || refused.refused()),
            panicked: Arc::new(move || panicked.handler_panicked()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::admission::{Admission, Decision};
    use std::net::IpAddr;
    use std::time::Instant;

    #[test]
    fn a_holder_serves_32_downloaders_at_once_and_closes_an_idle_one_for_the_next() {
        let t = Instant::now();
        let mut gate = Admission::new(ADMISSION);
        let mut ids = Vec::new();
        let handlers = ADMISSION.handlers as u32;
        for n in 0..=handlers {
            let Some(Decision::Admit(id)) = gate.accept(IpAddr::from(n.to_be_bytes()), t).pop()
            else {
                panic!("admitted to the lobby");
            };
            let handed = gate.ready(id, t);
            ids.push(id);
            if n < handlers {
                assert_eq!(handed, [Decision::Hand(id)]);
                gate.busy(id, t);
            } else {
                assert!(handed.is_empty(), "the 33rd waits: all 32 are busy");
            }
        }
        assert_eq!(gate.threads(), 32);
        // One downloader waits for pieces: its slot goes to the newcomer.
        gate.idle(ids[5], true, t);
        let d = gate.tick(t);
        assert_eq!(d, [Decision::Evict(ids[5])]);
        gate.closed(ids[5]);
        assert_eq!(gate.tick(t), [Decision::Hand(ids[32])]);
    }
}
