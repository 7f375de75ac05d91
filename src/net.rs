//! Sockets: the framed connection (`conn`) and the Noise handshake that
//! opens it in a swarm with a secret (`handshake`); the gate that admits
//! a server's connections (`gate`, driving the pure `admission` rule);
//! this host's addresses (`addrs`); log lines said once (`once`); and
//! turns for large replies (`turns`).

pub mod addrs;
pub mod admission;
pub mod conn;
pub mod gate;
pub mod handshake;
pub mod once;
pub mod turns;
