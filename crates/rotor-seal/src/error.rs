//! The one error type of this crate.
//!
//! WHY one enum: every store and the CLI need to tell "no key", "wrong key"
//! and "tampered row" apart to print the right fix, and none of the variants
//! may carry secret material. Each variant therefore holds only key *ids*,
//! paths, modes and static reasons — never plaintext, key bytes, or the text
//! of a rejected key.

use std::path::PathBuf;

use crate::KeyId;

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading a master key or sealing,
/// opening or rewrapping a value.
///
/// `#[non_exhaustive]` so new failure modes (e.g. a second algorithm) can be
/// added without breaking the stores that match on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No configured source provided a master key. `tried` lists each source
    /// and why it was skipped, so the operator sees what rotor looked at.
    #[error(
        "no master key found (tried: {tried}); set ROTOR_MASTER_KEY, or pass --key-file FILE \
         (a file with mode 0600 holding a key from `rotor master-key generate`), \
         or supply a passphrase"
    )]
    NoMasterKey {
        /// Human-readable list of the sources tried, e.g.
        /// `ROTOR_MASTER_KEY (unset), key file /etc/rotor/master.key (not found)`.
        tried: String,
    },

    /// A key was found but is not in the `rotor-mk-v1:` format. The input is
    /// never echoed: it may be a real key with a typo.
    #[error(
        "master key from {origin} is malformed: {reason} (expected `rotor-mk-v1:` followed by base64 of 32 bytes)"
    )]
    BadKeyEncoding {
        /// Where the key came from (`ROTOR_MASTER_KEY`, `key file PATH`, ...).
        origin: String,
        /// What is wrong, without quoting the input.
        reason: &'static str,
    },

    /// The key file can be read by group or others (or has special bits).
    #[error("refusing key file {path}: its mode is {mode:04o}, which lets other users read it; run `chmod 600 {path}`", path = path.display())]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
    },

    /// The key file path does not name a regular file (directory, FIFO, device...).
    #[error("refusing key file {path}: it is not a regular file", path = path.display())]
    KeyFileNotRegular {
        /// The offending path.
        path: PathBuf,
    },

    /// `write_key_file` never overwrites: an existing key may be the only copy.
    #[error("refusing to overwrite {path}: it already exists (move it away first if you really mean to replace that key)", path = path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// An I/O error while reading or writing a key file.
    #[error("key file {path}: {source}", path = path.display())]
    KeyFileIo {
        /// The key file (or its temporary sibling / directory).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An empty passphrase would make the "derived" key guessable at once.
    #[error("the master key passphrase is empty")]
    EmptyPassphrase,

    /// Argon2id rejected the parameters (or failed); the reason never includes
    /// the passphrase.
    #[error("cannot derive the master key from the passphrase: {reason}")]
    Kdf {
        /// Argon2's description of the problem.
        reason: String,
    },

    /// The record was sealed under a different master key than the one in use
    /// (detected by key id before any decryption is attempted).
    #[error(
        "wrong master key: the data was sealed under master key id {expected_key_id}, \
         but the key in use has id {got_key_id}"
    )]
    WrongMasterKey {
        /// Id of the key that sealed the data.
        expected_key_id: KeyId,
        /// Id of the key that was supplied.
        got_key_id: KeyId,
    },

    /// Authentication failed: the ciphertext or wrapped key was edited, or the
    /// record was copied onto another secret/version row (the associated data
    /// no longer matches). Deliberately carries no detail.
    #[error(
        "sealed value failed authentication: it was modified, or it belongs to a different \
         secret or version (copied between rows)"
    )]
    Tampered,

    /// The record is structurally invalid (wrong lengths, unknown format
    /// version or algorithm) and could not even be tried.
    #[error("malformed sealed record: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },

    /// The crypto library failed for a reason other than authentication
    /// (e.g. the system RNG). Should not happen in practice.
    #[error("cryptographic operation failed: {what}")]
    Crypto {
        /// Which operation failed.
        what: &'static str,
    },
}
