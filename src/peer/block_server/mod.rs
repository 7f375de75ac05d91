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
/// for at most 64 active connections, 512 more waiting for their first
/// request (no thread), 16 from any one address, 4 s from accept to the
/// first whole request.
pub const ADMISSION: Limits = Limits {
    handlers: 64,
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
