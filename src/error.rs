//! One error type for the whole crate. Every variant says what went wrong in
//! words a user can act on; `Display` is what ends up after `error: `.

use std::fmt;
use std::io;

#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A local I/O failure (disk, file system), with what we were doing.
    Io { context: String, source: io::Error },
    /// A network failure (connect, send, receive), with what we were doing:
    /// another peer may do better.
    Net { context: String, source: io::Error },
    /// A socket read or write did not complete in time.
    Timeout(String),
    /// The other side sent something that is not our protocol.
    Protocol(String),
    /// A frame announced a length above the limit for this connection.
    FrameTooLarge { len: usize, max: usize },
    /// A file name or peer id that breaks the naming rules.
    BadName { name: String, reason: &'static str },
    /// The named thing does not exist (file, record, holder).
    NotFound(String),
    /// The request contradicts existing state (same name, other content).
    Conflict(String),
    /// The other side answered with an error frame.
    Remote { code: u16, message: String },
    /// Data failed verification.
    Integrity(String),
    /// No holder could provide the data.
    NoSources(String),
    /// Bad command-line or shell input.
    Usage(String),
    /// A failure on this machine (disk full, permissions) that no other
    /// holder can fix.
    Local(String),
    /// The operation was stopped by shutdown.
    Cancelled,
    /// The swarm secret kept us from talking to `who` (an address, or
    /// "the tracker at ADDR").
    Secret { who: String, problem: SecretProblem },
    /// A handshake refused for its timestamp, on the server's side: the
    /// client's clock (or ours) is off by more than the swarm allows.
    Clock(String),
}

/// How a connection failed over the swarm secret (see docs/SECURITY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretProblem {
    /// The other side has another secret, or has one and we have none.
    Mismatch,
    /// We have a secret and the other side runs an open swarm.
    TheyAreOpen,
    /// The other side runs a closed swarm and we have no secret. Its words
    /// still say the secret does not match, as CONTRACT.md's Trust has
    /// every refusal for the secret say.
    WeHaveNone,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A local I/O failure (files, disk).
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A socket failure; a read or write timeout becomes `Timeout`.
    pub fn net(context: impl Into<String>, source: io::Error) -> Error {
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout(context.into()),
            _ => Error::Net {
                context: context.into(),
                source,
            },
        }
    }

    pub fn protocol(msg: impl Into<String>) -> Error {
        Error::Protocol(msg.into())
    }

    /// True when the failure is the peer's or the network's, so another
    /// holder may do better (as opposed to a local disk or usage problem).
    pub fn is_remote_fault(&self) -> bool {
        matches!(
            self,
            Error::Timeout(_)
                | Error::Protocol(_)
                | Error::FrameTooLarge { .. }
                | Error::Remote { .. }
                | Error::Integrity(_)
                | Error::Net { .. }
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } | Error::Net { context, source } => {
                write!(f, "{context}: {source}")
            }
            Error::Timeout(what) => write!(f, "timed out: {what}"),
            Error::Protocol(what) => write!(f, "protocol violation: {what}"),
            Error::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max}")
            }
            Error::BadName { name, reason } => {
                write!(
                    f,
                    "invalid name {:?}: {reason}",
                    name.escape_debug().to_string()
                )
            }
            Error::NotFound(what) => write!(f, "{what}"),
            Error::Conflict(what) => write!(f, "{what}"),
            Error::Remote { message, .. } => write!(f, "{message}"),
            Error::Integrity(what) => write!(f, "integrity check failed: {what}"),
            Error::NoSources(what) => write!(f, "{what}"),
            Error::Usage(what) => write!(f, "{what}"),
            Error::Local(what) => write!(f, "{what}"),
            Error::Cancelled => write!(f, "cancelled by shutdown"),
            Error::Secret {
                who,
                problem: SecretProblem::Mismatch,
            } => write!(
                f,
                "{who} refused us: the swarm secret does not match (check --secret-file)"
            ),
            Error::Secret {
                who,
                problem: SecretProblem::WeHaveNone,
            } => write!(
                f,
                "{who} runs a closed swarm and we have no secret, so the swarm secret does not match: start with --secret-file and the swarm's secret file"
            ),
            Error::Clock(what) => write!(f, "{what}"),
            Error::Secret {
                who,
                problem: SecretProblem::TheyAreOpen,
            } => write!(
                f,
                "{who} runs an open swarm (no secret) but we have --secret-file: refusing to talk in clear (give it the same --secret-file, or drop ours)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Net { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Error codes carried in ERROR frames, so the receiver can map them back.
pub mod code {
    pub const PROTOCOL: u16 = 1;
    pub const NOT_FOUND: u16 = 2;
    pub const CONFLICT: u16 = 3;
    pub const BAD_NAME: u16 = 4;
    pub const BUSY: u16 = 5;
    pub const UNKNOWN_PEER: u16 = 6;
    pub const INTERNAL: u16 = 7;
    /// The swarm has a secret and the client did not show it.
    pub const SECRET: u16 = 8;
    /// NEW_FILE for a version of a name no newer than its current one.
    pub const OUTDATED: u16 = 9;
    /// A handshake message 1 whose timestamp is missing or too far from
    /// the server's clock.
    pub const STALE: u16 = 10;
}

impl Error {
    /// The code to send when this error ends a request from the network.
    pub fn wire_code(&self) -> u16 {
        match self {
            Error::NotFound(_) => code::NOT_FOUND,
            Error::Conflict(_) => code::CONFLICT,
            Error::BadName { .. } => code::BAD_NAME,
            Error::Protocol(_) | Error::FrameTooLarge { .. } => code::PROTOCOL,
            Error::Remote { code, .. } => *code,
            Error::Secret { .. } => code::SECRET,
            Error::Clock(_) => code::STALE,
            _ => code::INTERNAL,
        }
    }
}
