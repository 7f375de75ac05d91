//! The Noise handshake that opens every TCP connection in a swarm with a
//! secret (docs/PROTOCOL.md §13.2): the dialling side sends message 1,
//! the accepting side answers message 2 or an ERROR saying why not. Both
//! work on whole frames through `Frames`, so nothing here owns a socket;
//! `conn::Conn` implements it and, once the handshake is over, moves its
//! stream onto the sealed channel this returns.

use crate::error::{code, Error, Result, SecretProblem};
use crate::secure::{self, channel};
use crate::wire::codec::Decoder;
use crate::wire::message::{get_error, put_error, ty};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a client waits for the server's handshake message.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the handshake needs of a connection not yet sealed: whole frames
/// out and in, and a way to close it.
pub trait Frames {
    /// Who is at the other end, for errors and logs.
    fn peer(&self) -> SocketAddr;
    /// Sends one frame now.
    fn send_frame(&mut self, ty: u8, body: &[u8]) -> Result<()>;
    /// The next whole frame, by `deadline` (the socket's read timeout may
    /// be shorter: a server polls). `max`: a lower limit than the
    /// connection's own for this frame's length.
    fn recv_frame_by(&mut self, deadline: Instant, max: Option<usize>) -> Result<(u8, &[u8])>;
    /// Closes at once.
    fn close(&self);
    /// Closes once the other side has had time to read what was sent
    /// (an ERROR frame).
    fn close_after_sent(&mut self);
}

/// The dialling side: message 1, then the answer: message 2 that
/// decrypts (the channel is up), one that does not or an ERROR with code
/// SECRET (another secret), an ERROR with code PROTOCOL (an open server
/// that took our handshake for an unknown message); an ERROR with code
/// STALE (our clock, as the server sees it) says who refused; any other
/// ERROR (BUSY: the server is full) is itself.
pub fn initiate(conn: &mut impl Frames, psk: &[u8; 32], who: &str) -> Result<channel::Shared> {
    let (init, msg1) = channel::Initiator::start(psk, secure::seal::unix_ms());
    conn.send_frame(ty::HANDSHAKE, &msg1)?;
    let (got, body) = conn.recv_frame_by(Instant::now() + HANDSHAKE_TIMEOUT, None)?;
    let problem = match got {
        ty::HANDSHAKE => match init.finish(body) {
            Ok(noise) => return Ok(noise),
            Err(channel::Mismatch) => SecretProblem::Mismatch,
        },
        ty::ERROR => {
            let (code, message) = get_error(&mut Decoder::new(body))?;
            match code {
                code::SECRET => SecretProblem::Mismatch,
                // The server's word on our clock (or version).
                code::STALE => {
                    return Err(Error::Remote {
                        code,
                        message: format!("{who} refused our handshake: {message}"),
                    })
                }
                // An open server's answer to an unknown message type.
                code::PROTOCOL => SecretProblem::TheyAreOpen,
                // BUSY and the like: before the handshake, as ever.
                _ => return Err(Error::Remote { code, message }),
            }
        }
        other => {
            return Err(Error::protocol(format!(
                "{who} answered the handshake with message type 0x{other:02x}"
            )))
        }
    };
    conn.close();
    Err(Error::Secret {
        who: who.to_string(),
        problem,
    })
}

/// The accepting side: the first frame, read by `deadline`, must be a
/// fresh message 1 made with our secret. Anything else (another secret,
/// none, a plain request) gets an ERROR with code SECRET, which tells
/// the client only that the secret does not match; a stale timestamp an
/// ERROR with code STALE naming the skew; a replay nothing. Then the
/// connection closes.
pub fn respond(
    conn: &mut impl Frames,
    psk: &[u8; 32],
    deadline: Instant,
) -> Result<channel::Shared> {
    // Nothing larger than a handshake message is read before it.
    let answer = match conn.recv_frame_by(deadline, Some(1 + channel::MAX_HANDSHAKE)) {
        Ok((ty::HANDSHAKE, body)) => channel::respond(
            psk,
            body,
            secure::handshakes_seen(),
            secure::seal::unix_ms(),
        ),
        Ok(_) => Err(channel::HandshakeRefused::Mismatch),
        // A plain request too large for a handshake: refused alike.
        Err(Error::FrameTooLarge { .. }) => Err(channel::HandshakeRefused::Mismatch),
        Err(e) => return Err(e),
    };
    match answer {
        Ok((noise, msg2)) => {
            conn.send_frame(ty::HANDSHAKE, &msg2)?;
            Ok(noise)
        }
        Err(why) => Err(refuse(conn, why)),
    }
}

/// Tells the client why its message 1 was refused (a replay is told
/// nothing), closes, and says it for the log.
fn refuse(conn: &mut impl Frames, why: channel::HandshakeRefused) -> Error {
    let peer = conn.peer();
    let Some((code, told)) = told(why) else {
        conn.close();
        return Error::protocol(format!(
            "{peer} replayed a handshake already taken: refused unanswered"
        ));
    };
    let mut body = Vec::new();
    let ty = put_error(&mut body, code, &told);
    let _ = conn.send_frame(ty, &body);
    conn.close_after_sent();
    if code == code::STALE {
        // Its clock (or ours): the server's log says so by name.
        return Error::Clock(format!("{peer}: refused at the handshake: {told}"));
    }
    Error::protocol(format!("{peer} refused at the handshake: {told}"))
}

/// The ERROR code and text a refused client is told; `None` for a
/// replay, which is told nothing.
fn told(why: channel::HandshakeRefused) -> Option<(u16, String)> {
    let window_s = secure::seal::WINDOW_MS / 1000;
    Some(match why {
        channel::HandshakeRefused::Replayed => return None,
        channel::HandshakeRefused::Mismatch => (
            code::SECRET,
            "the swarm secret does not match: this swarm needs --secret-file with its secret"
                .to_string(),
        ),
        channel::HandshakeRefused::Unstamped => (
            code::STALE,
            "the handshake carries no timestamp: the client runs an older p2pshare (update it)"
                .to_string(),
        ),
        channel::HandshakeRefused::BeforeStart => (
            code::STALE,
            "the handshake is stamped before the server started: a replay, or a clock behind the server's (try again in a few seconds; check the clock on both machines, e.g. timedatectl)"
                .to_string(),
        ),
        channel::HandshakeRefused::Stale { skew_ms } => (
            code::STALE,
            format!(
                "the handshake's timestamp is {} s {} the server's clock; the swarm's clocks must agree within {window_s} s (check the clock on both machines, e.g. timedatectl)",
                (skew_ms.unsigned_abs() + 500) / 1000,
                if skew_ms > 0 { "ahead of" } else { "behind" },
            ),
        ),
    })
}

/// An ERROR with code SECRET after the handshake's place, from a server
/// whose swarm has a secret that we (an open client) did not show: it
/// needs one, which is not the same as having the wrong one.
pub fn refusal(peer: SocketAddr, e: Error) -> Error {
    match e {
        Error::Remote {
            code: code::SECRET, ..
        } => Error::Secret {
            who: peer.to_string(),
            problem: SecretProblem::WeHaveNone,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::error_frame;
    use crate::wire::HEADER_LEN;

    /// A connection with its answers written in advance: what the
    /// handshake sends and how it closes are kept for the test to read.
    #[derive(Default)]
    struct Script {
        incoming: Vec<(u8, Vec<u8>)>,
        current: Vec<u8>,
        sent: Vec<(u8, Vec<u8>)>,
        lingered: bool,
    }

    impl Frames for Script {
        fn peer(&self) -> SocketAddr {
            "192.0.2.1:9000".parse().unwrap()
        }
        fn send_frame(&mut self, ty: u8, body: &[u8]) -> Result<()> {
            self.sent.push((ty, body.to_vec()));
            Ok(())
        }
        fn recv_frame_by(&mut self, _: Instant, max: Option<usize>) -> Result<(u8, &[u8])> {
            let (ty, body) = self.incoming.remove(0);
            if max.is_some_and(|m| 1 + body.len() > m) {
                return Err(Error::FrameTooLarge {
                    len: 1 + body.len(),
                    max: max.unwrap_or(0),
                });
            }
            self.current = body;
            Ok((ty, &self.current))
        }
        fn close(&self) {}
        fn close_after_sent(&mut self) {
            self.lingered = true;
        }
    }

    impl Script {
        fn answering(ty: u8, body: Vec<u8>) -> Script {
            Script {
                incoming: vec![(ty, body)],
                ..Script::default()
            }
        }
    }

    #[test]
    fn a_plain_request_is_told_the_secret_does_not_match_then_closed() {
        for body in [vec![0; 10], vec![0; 4000]] {
            let mut conn = Script::answering(ty::PING, body);
            let got = respond(&mut conn, &[1; 32], Instant::now());
            assert!(matches!(got, Err(Error::Protocol(_))));
            let (ty, body) = &conn.sent[0];
            let (code, _) = get_error(&mut Decoder::new(body)).unwrap();
            assert_eq!((*ty, code), (ty::ERROR, code::SECRET));
            assert!(conn.lingered, "the ERROR is left time to arrive");
        }
    }

    #[test]
    fn the_answer_to_message_1_tells_each_failure_apart() {
        let error = |code: u16| {
            let frame = error_frame(code, "no");
            (ty::ERROR, frame[HEADER_LEN..].to_vec())
        };
        let problem = |(ty, body): (u8, Vec<u8>)| {
            let mut conn = Script::answering(ty, body);
            let got = initiate(&mut conn, &[1; 32], "the server");
            assert_eq!(conn.sent[0].0, ty::HANDSHAKE, "message 1 first");
            got.map(|_| ()).map_err(|e| match e {
                Error::Secret { problem, .. } => Ok(problem),
                Error::Remote { code, .. } => Err(code),
                other => panic!("{other}"),
            })
        };
        assert_eq!(
            problem(error(code::SECRET)),
            Err(Ok(SecretProblem::Mismatch))
        );
        assert_eq!(
            problem(error(code::PROTOCOL)),
            Err(Ok(SecretProblem::TheyAreOpen))
        );
        assert_eq!(problem(error(code::BUSY)), Err(Err(code::BUSY)));
        assert_eq!(problem(error(code::STALE)), Err(Err(code::STALE)));
        assert_eq!(
            problem((ty::HANDSHAKE, vec![7; 48])),
            Err(Ok(SecretProblem::Mismatch)),
            "a message 2 made with another secret"
        );
    }
}
