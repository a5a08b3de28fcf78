//! Signed policy bundles.
//!
//! PLACEHOLDER SKELETON: these are the names and signatures the daemon and gkctl use;
//! the bodies land with issue 4 (see `config/BUNDLE.md`).
//!
//! - [`keys`]: Ed25519 key pairs, their files, key ids.
//! - [`trust`]: the trust store (a directory of `*.pub`, optional `trust.toml` with the
//!   number of distinct signatures required).
//! - [`format`]: the bundle file: signatures over the exact bytes of the signed body,
//!   checked before anything in the body is parsed; building and cosigning.
//! - [`verify`]: signatures (k of n), then metadata: serial above the ratchet, not
//!   expired, made for this device/site.
//! - [`state`]: the state directory: bundles, the ratchet and time floor, the pending
//!   apply, the hash-chained audit log; every write crash-safe.

use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;

pub mod keys {
    use super::*;

    /// The first 8 bytes of SHA-256 of the public key, shown as 16 hex digits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct KeyId(pub [u8; 8]);

    impl std::fmt::Display for KeyId {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            for b in self.0 {
                write!(f, "{b:02x}")?;
            }
            Ok(())
        }
    }

    /// A trusted (or to be trusted) public key.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct PublicKey {
        pub name: String,
        pub id: KeyId,
        pub key: ed25519_dalek::VerifyingKey,
    }

    /// A signing key; its file is secret.
    #[derive(Debug)]
    pub struct SecretKey {
        pub name: String,
        pub key: ed25519_dalek::SigningKey,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {what}")]
    pub struct KeyError {
        pub path: PathBuf,
        pub what: String,
    }

    impl SecretKey {
        pub fn public(&self) -> PublicKey {
            let key = self.key.verifying_key();
            PublicKey {
                name: self.name.clone(),
                id: KeyId([0; 8]),
                key,
            }
        }
    }

    pub fn generate(name: &str) -> SecretKey {
        SecretKey {
            name: name.to_string(),
            key: ed25519_dalek::SigningKey::from_bytes(&[0; 32]),
        }
    }

    /// Writes DIR/NAME.key (mode 0600) and DIR/NAME.pub; refuses to overwrite.
    pub fn write_pair(dir: &Path, _key: &SecretKey) -> Result<(PathBuf, PathBuf), KeyError> {
        Err(KeyError {
            path: dir.to_path_buf(),
            what: "not implemented yet".into(),
        })
    }

    pub fn read_secret(path: &Path) -> Result<SecretKey, KeyError> {
        Err(KeyError {
            path: path.to_path_buf(),
            what: "not implemented yet".into(),
        })
    }

    pub fn read_public(path: &Path) -> Result<PublicKey, KeyError> {
        Err(KeyError {
            path: path.to_path_buf(),
            what: "not implemented yet".into(),
        })
    }
}

pub mod trust {
    use super::*;
    use crate::keys::PublicKey;

    /// The keys a box trusts, and how many distinct ones must sign a bundle.
    #[derive(Clone, Debug)]
    pub struct TrustStore {
        pub keys: Vec<PublicKey>,
        pub threshold: usize,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("trust store {path}: {what}")]
    pub struct TrustError {
        pub path: PathBuf,
        pub what: String,
    }

    impl TrustStore {
        pub fn load(dir: &Path) -> Result<TrustStore, TrustError> {
            Err(TrustError {
                path: dir.to_path_buf(),
                what: "not implemented yet".into(),
            })
        }
    }
}

pub mod format {
    use super::*;

    /// What a bundle says about itself (the `[bundle]` table of the signed body).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Metadata {
        pub serial: u64,
        pub created: OffsetDateTime,
        pub expires: Option<OffsetDateTime>,
        /// Device ids the bundle is for; empty: any.
        pub devices: Vec<String>,
        pub site: Option<String>,
        pub comment: Option<String>,
        /// How long a new bundle stays pending before it is confirmed or reverted.
        pub confirm_window: Option<Duration>,
        /// The policy file's name when it was signed (for people).
        pub policy_file: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("malformed bundle: {0}")]
    pub struct Malformed(pub String);

    /// A new bundle carrying `policy_text` exactly, signed by `key`.
    pub fn build(_metadata: &Metadata, _policy_text: &str, _key: &keys::SecretKey) -> Vec<u8> {
        Vec::new()
    }

    /// The bundle with one more signature (by `key`).
    pub fn cosign(_bundle: &[u8], _key: &keys::SecretKey) -> Result<Vec<u8>, Malformed> {
        Err(Malformed("not implemented yet".into()))
    }

    /// Metadata and policy text WITHOUT checking any signature (for `show` and `diff`).
    pub fn read_unverified(_bundle: &[u8]) -> Result<(Metadata, String), Malformed> {
        Err(Malformed("not implemented yet".into()))
    }
}

pub mod verify {
    use super::*;
    use crate::format::Metadata;
    use crate::keys::{KeyId, PublicKey};
    use crate::trust::TrustStore;

    /// What the box knows when a bundle is offered.
    #[derive(Clone, Debug, Default)]
    pub struct Context {
        /// The highest serial accepted so far: a bundle must be above it.
        pub ratchet: u64,
        /// The newest `created` seen: expiry is judged against the later of this and `now`.
        pub time_floor: Option<OffsetDateTime>,
        /// The box's clock, when it is trusted enough to use.
        pub now: Option<OffsetDateTime>,
        pub device_id: Option<String>,
        pub site: Option<String>,
    }

    /// A bundle whose signatures, serial, expiry and binding all check out.
    #[derive(Clone, Debug)]
    pub struct Verified {
        pub metadata: Metadata,
        pub policy_text: String,
        pub signers: Vec<PublicKey>,
        /// SHA-256 of the whole bundle file.
        pub digest: [u8; 32],
    }

    /// Why a bundle is refused. `code()` is stable (audit log, events).
    #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
    pub enum Refusal {
        #[error("{0}")]
        Malformed(String),
        #[error("bundle is {size} bytes; at most {max} are accepted")]
        TooLarge { size: usize, max: usize },
        #[error("bad signature by trusted key {0}")]
        BadSignature(KeyId),
        #[error("signed by {have} trusted key(s); {need} needed")]
        TooFewSignatures { have: usize, need: usize },
        #[error("serial {serial} is not above {ratchet}, the highest accepted")]
        Rollback { serial: u64, ratchet: u64 },
        #[error("expired at {expires}")]
        Expired { expires: String },
        #[error("made for device(s) {bundle:?}, this is {device:?}")]
        WrongDevice {
            bundle: Vec<String>,
            device: Option<String>,
        },
        #[error("made for site {bundle:?}, this is {site:?}")]
        WrongSite {
            bundle: String,
            site: Option<String>,
        },
    }

    impl Refusal {
        pub fn code(&self) -> &'static str {
            match self {
                Refusal::Malformed(_) => "malformed",
                Refusal::TooLarge { .. } => "too-large",
                Refusal::BadSignature(_) => "bad-signature",
                Refusal::TooFewSignatures { .. } => "too-few-signatures",
                Refusal::Rollback { .. } => "rollback",
                Refusal::Expired { .. } => "expired",
                Refusal::WrongDevice { .. } => "wrong-device",
                Refusal::WrongSite { .. } => "wrong-site",
            }
        }
    }

    /// Signatures first (over the raw bytes, before anything is parsed), then the
    /// metadata against `ctx`.
    pub fn verify(_bytes: &[u8], _trust: &TrustStore, _ctx: &Context) -> Result<Verified, Refusal> {
        Err(Refusal::Malformed("not implemented yet".into()))
    }
}

pub mod state {
    use super::*;

    /// The state directory's error: which file, what went wrong.
    #[derive(Debug, thiserror::Error)]
    #[error("state {path}: {what}")]
    pub struct StateError {
        pub path: PathBuf,
        pub what: String,
    }

    /// The anti-rollback ratchet and the time floor, kept across restarts.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Ratchet {
        pub serial: u64,
        pub time_floor: Option<OffsetDateTime>,
    }

    /// A bundle applied but not confirmed yet.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Pending {
        pub bytes: Vec<u8>,
        /// Unix time (seconds) at which it reverts unless confirmed.
        pub deadline: i64,
        /// Where it came from (`inbox`, `control`, `bundle`).
        pub source: String,
    }

    /// One line of the audit log, as written.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct AuditEntry {
        pub time: OffsetDateTime,
        /// Hex SHA-256 of the bundle file, when there is one.
        pub digest: Option<String>,
        pub serial: Option<u64>,
        /// Key ids (hex) of the trusted keys that signed.
        pub signers: Vec<String>,
        pub source: String,
        /// accepted, pending, confirmed, reverted, refused, started, …
        pub outcome: String,
        pub reason: Option<String>,
    }

    #[derive(Debug)]
    pub struct StateDir {
        pub dir: PathBuf,
    }

    impl StateDir {
        pub fn open(dir: &Path) -> Result<StateDir, StateError> {
            Err(StateError {
                path: dir.to_path_buf(),
                what: "not implemented yet".into(),
            })
        }
        pub fn ratchet(&self) -> Result<Ratchet, StateError> {
            Ok(Ratchet::default())
        }
        /// The bundle in force (confirmed), if any.
        pub fn current(&self) -> Result<Option<Vec<u8>>, StateError> {
            Ok(None)
        }
        pub fn pending(&self) -> Result<Option<Pending>, StateError> {
            Ok(None)
        }
        /// Makes `pending` the pending bundle (replacing any other pending one).
        pub fn set_pending(&self, _pending: &Pending) -> Result<(), StateError> {
            Ok(())
        }
        /// The pending bundle becomes the current one; the ratchet moves up to its
        /// serial and the time floor to its `created`. One atomic step.
        pub fn confirm(&self, _serial: u64, _created: OffsetDateTime) -> Result<(), StateError> {
            Ok(())
        }
        /// Forgets the pending bundle; the current one stays.
        pub fn revert(&self) -> Result<(), StateError> {
            Ok(())
        }
        /// Raises the time floor (a bundle's `created` was seen) without a new bundle.
        pub fn raise_time_floor(&self, _seen: OffsetDateTime) -> Result<(), StateError> {
            Ok(())
        }
        pub fn audit_append(&self, _entry: &AuditEntry) -> Result<(), StateError> {
            Ok(())
        }
    }
}
