//! The digests that name content, below every module that names it (a
//! folder's manifest, the record built on it, the wire, the peer): the
//! MD5 of a whole file or folder, which users compare with `md5sum`, and
//! the SHA-256 of one piece.

/// An MD5 digest: of a whole item, or of one file in a folder.
pub type Md5Digest = [u8; 16];
/// A piece's SHA-256.
pub type PieceHash = [u8; 32];
