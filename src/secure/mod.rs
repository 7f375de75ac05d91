//! The swarm secret (`--secret-file`): reading it, the keys derived from
//! it, and the two layers it keys, each a vetted construction from a
//! well-kept crate with nothing home-made below the crate's API:
//! - `channel`: TCP, a Noise NNpsk0 handshake (`snow`), then every byte in
//!   AES-256-GCM transport messages;
//! - `seal`: UDP, each datagram sealed with XChaCha20-Poly1305 under a
//!   random nonce, with a timestamp and a replay guard.
//!
//! One swarm per process: the binaries install the secret once at start,
//! before any socket opens, and every dial, accept and datagram consults
//! `swarm()`. Without a secret nothing here runs and the wire is the open
//! protocol, byte for byte.

pub mod channel;
pub mod seal;
pub mod strength;

use crate::error::{Error, Result};
use hkdf::Hkdf;
use sha2::Sha256;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// The shortest secret accepted, in bytes (after trimming whitespace): 32
/// raw random bytes; a secret in hex or base64 needs more (`strength`).
pub const MIN_SECRET_BYTES: usize = 32;
/// How to make a good secret, for every message about a bad one.
pub const HOW_TO_MAKE: &str = "make one with: openssl rand -hex 32 > FILE; chmod 600 FILE";
/// The longest: a secret file is a key, not a document.
pub const MAX_SECRET_BYTES: usize = 4096;

/// Keys derived from the swarm secret, one per use, so no key serves two
/// constructions, nor two kinds of datagram.
pub struct Keys {
    psk: [u8; 32],
    tracker: seal::Sealer,
    search: seal::Sealer,
}

impl Keys {
    /// HKDF-SHA256 (RFC 5869) of the secret, a fixed salt, and one `info`
    /// label per key.
    pub fn derive(secret: &[u8]) -> Keys {
        let hk = Hkdf::<Sha256>::new(Some(b"p2pshare swarm secret v1"), secret);
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit: cannot fail.
        let key = |info: &[u8]| {
            let mut k = [0u8; 32];
            hk.expand(info, &mut k).expect("32-byte okm");
            k
        };
        Keys {
            psk: key(b"tcp noise psk"),
            tracker: seal::Sealer::new(&key(b"udp tracker datagram key")),
            search: seal::Sealer::new(&key(b"udp search datagram key")),
        }
    }

    pub fn psk(&self) -> &[u8; 32] {
        &self.psk
    }

    /// The key that seals and opens datagrams for `purpose`.
    pub fn sealer(&self, purpose: seal::Purpose) -> &seal::Sealer {
        match purpose {
            seal::Purpose::ToTracker | seal::Purpose::FromTracker => &self.tracker,
            seal::Purpose::Search => &self.search,
        }
    }
}

/// A secret file that was read: the keys, and a warning to show when the
/// file is readable by others.
pub struct SecretFile {
    pub keys: Keys,
    pub warning: Option<String>,
}

/// Reads and checks `path`: the secret is its contents with surrounding
/// whitespace trimmed (so `openssl rand -hex 32 > FILE` works as is).
pub fn load(path: &Path) -> Result<SecretFile> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the secret file {shown}: {e} (make one with: openssl rand -hex 32 > {shown}; chmod 600 {shown})"
        ))
    })?;
    if !meta.is_file() {
        return Err(Error::Usage(format!(
            "the secret file {shown} is not a regular file"
        )));
    }
    if meta.len() > MAX_SECRET_BYTES as u64 + 64 {
        return Err(Error::Usage(format!(
            "the secret file {shown} holds {} bytes; a secret is at most {MAX_SECRET_BYTES}",
            meta.len()
        )));
    }
    if writable_by_others(&meta) {
        return Err(Error::Usage(format!(
            "the secret file {shown} can be changed by other users (mode {:o}); anyone who can \
             write it can swap the swarm's secret for their own: chmod 600 {shown}",
            mode(&meta) & 0o777
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Usage(format!("cannot read the secret file {shown}: {e}")))?;
    let secret =
        check(&bytes).map_err(|why| Error::Usage(format!("the secret file {shown} {why}")))?;
    Ok(SecretFile {
        keys: Keys::derive(secret),
        warning: loose_permissions(&meta).then(|| {
            format!(
                "the secret file {shown} is readable by other users (mode {:o}): chmod 600 {shown}",
                mode(&meta) & 0o777
            )
        }),
    })
}

/// The secret in a file's bytes, or why it is refused.
pub fn check(bytes: &[u8]) -> std::result::Result<&[u8], String> {
    let secret = bytes.trim_ascii();
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "holds a secret of {} bytes; the minimum is {MIN_SECRET_BYTES} random bytes \
             ({HOW_TO_MAKE})",
            secret.len()
        ));
    }
    if secret.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "holds {} bytes; a secret is at most {MAX_SECRET_BYTES}",
            secret.len()
        ));
    }
    match strength::check(secret) {
        Ok(()) => Ok(secret),
        Err(strength::Weak::Short { bits }) => Err(format!(
            "holds a secret worth at most {bits} bits, spelled as it is; a secret must be worth \
             32 random bytes (256 bits: 64 hex digits, 44 base64 characters or 32 raw bytes; \
             {HOW_TO_MAKE})"
        )),
        Err(strength::Weak::Patterned) => Err(format!(
            "holds a secret that is not random (too few distinct characters, or a piece \
             repeated); one captured handshake lets anyone test guesses of it offline \
             ({HOW_TO_MAKE})"
        )),
    }
}

fn mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode()
}

/// Group or other may read it.
fn loose_permissions(meta: &std::fs::Metadata) -> bool {
    mode(meta) & 0o044 != 0
}

/// Group or other may write it.
fn writable_by_others(meta: &std::fs::Metadata) -> bool {
    mode(meta) & 0o022 != 0
}

/// Reads the secret file at start-up and makes it this process's swarm
/// secret; a file readable by others is used, with a warning on stderr.
pub fn start(path: &Path) -> Result<()> {
    let loaded = load(path)?;
    if let Some(w) = loaded.warning {
        // The log may be filtered (RUST_LOG=error): then a plain line.
        if log::log_enabled!(log::Level::Warn) {
            log::warn!("{w}");
        } else {
            eprintln!("warning: {w}");
        }
    }
    install(loaded.keys);
    Ok(())
}

static SWARM: OnceLock<Keys> = OnceLock::new();

static HANDSHAKES_SEEN: OnceLock<Mutex<seal::ReplayGuard>> = OnceLock::new();

/// The handshake message 1s this process took within the window (see
/// `channel`): one cache for every listener, so a message 1 replayed to
/// another of the process's ports is refused too; since `started_ms`, so
/// one made before this process started is refused.
pub fn handshakes_seen() -> &'static Mutex<seal::ReplayGuard> {
    HANDSHAKES_SEEN.get_or_init(|| Mutex::new(seal::ReplayGuard::since(started_ms())))
}

/// Makes `keys` this process's swarm secret. Called once at start-up,
/// before any socket; a second call is ignored (there is one swarm).
/// Its time is the process's start for `started_ms`.
pub fn install(keys: Keys) {
    let _ = STARTED_MS.set(seal::unix_ms());
    let _ = SWARM.set(keys);
}

static STARTED_MS: OnceLock<u64> = OnceLock::new();

/// When this process installed its secret, before any socket opened
/// (Unix ms; 0 when none was). Every receiver of sealed bytes refuses
/// what was stamped before: its replay memory starts then.
pub fn started_ms() -> u64 {
    STARTED_MS.get().copied().unwrap_or(0)
}

/// The swarm secret's keys, or `None` in an open swarm.
pub fn swarm() -> Option<&'static Keys> {
    SWARM.get()
}

/// What sealing adds to a datagram in this swarm (0 when open): receive
/// buffers and size checks grow by it.
pub fn datagram_overhead() -> usize {
    swarm().map_or(0, |_| seal::OVERHEAD)
}

/// What to send for `datagram`: itself in an open swarm, sealed for
/// `purpose` (into `scratch`) under a secret.
pub fn outgoing<'a>(
    purpose: seal::Purpose,
    datagram: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> &'a [u8] {
    match swarm() {
        None => datagram,
        Some(keys) => {
            keys.sealer(purpose).seal(purpose, datagram, scratch);
            scratch
        }
    }
}

/// The datagram inside what arrived: itself in an open swarm; under a
/// secret, opened into `scratch`, or `None` (drop it, answer nothing) when
/// it is not sealed with our secret for `purpose`, is stale or a replay.
pub fn incoming<'a>(
    purpose: seal::Purpose,
    received: &'a [u8],
    guard: &mut seal::ReplayGuard,
    scratch: &'a mut Vec<u8>,
) -> Option<&'a [u8]> {
    let Some(keys) = swarm() else {
        return Some(received);
    };
    match keys
        .sealer(purpose)
        .open(purpose, received, guard, seal::unix_ms(), scratch)
    {
        Ok(()) => Some(scratch),
        Err(why) => {
            log::debug!("dropped a datagram: {why:?}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with `openssl rand -hex 32`.
    const HEX: &str = "4288876ea7071f87840fd47e8d4f3621f1b8e62ac0949b25177a1c5f6b5e8f82";

    #[test]
    fn secrets_are_trimmed_and_checked_for_length() {
        let hex64 = HEX;
        assert_eq!(
            check(format!("  {hex64}\n").as_bytes()).unwrap(),
            hex64.as_bytes()
        );
        let short = check(b"0123456789abcdef0123456789abcde\n").unwrap_err();
        assert!(
            short.contains("31 bytes") && short.contains("minimum is 32"),
            "{short}"
        );
        assert!(check(&vec![b'x'; MAX_SECRET_BYTES + 1]).is_err());
        let weak = check(&[b'a'; 32]).unwrap_err();
        assert!(
            weak.contains("128 bits") && weak.contains("openssl rand -hex 32"),
            "{weak}"
        );
        let weak = check(&[b'a'; 64]).unwrap_err();
        assert!(
            weak.contains("not random") && weak.contains("openssl rand -hex 32"),
            "{weak}"
        );
    }

    #[test]
    fn each_use_gets_its_own_key_and_each_secret_its_own_keys() {
        let a = Keys::derive(&[1u8; 32]);
        let b = Keys::derive(&[2u8; 32]);
        assert_ne!(a.psk(), b.psk());
        assert_eq!(a.psk(), Keys::derive(&[1u8; 32]).psk());
        // The search key does not open what the tracker key sealed.
        let mut sealed = Vec::new();
        let p = seal::Purpose::Search;
        a.sealer(seal::Purpose::ToTracker)
            .seal(p, b"x", &mut sealed);
        assert!(a.sealer(p).open_into(p, &sealed, &mut Vec::new()).is_err());
        a.sealer(p).seal(p, b"x", &mut sealed);
        assert!(a.sealer(p).open_into(p, &sealed, &mut Vec::new()).is_ok());
    }

    #[test]
    fn a_file_others_can_read_warns_and_one_they_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, HEX).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(&path).unwrap().warning.is_none());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = load(&path).unwrap().warning.unwrap();
        assert!(
            w.contains("readable by other users") && w.contains("chmod 600"),
            "{w}"
        );
        for writable in [0o620, 0o602, 0o666] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(writable)).unwrap();
            let e = load(&path).err().unwrap().to_string();
            assert!(
                e.contains("can be changed by other users") && e.contains("chmod 600"),
                "{e}"
            );
        }
        let missing = load(&dir.path().join("nope")).err().unwrap().to_string();
        assert!(missing.contains("cannot read the secret file"), "{missing}");
    }
}
