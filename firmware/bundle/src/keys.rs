//! Ed25519 key pairs, their files and key ids.
//!
//! Files (one line each, `\n`-terminated; see `config/BUNDLE.md`):
//!
//! - `NAME.pub`: `ed25519 <base64 of the 32-byte public key> <NAME>`
//! - `NAME.key`: `ed25519-secret <base64 of the 32-byte secret seed> <NAME>`, mode 0600.
//!
//! A key's id is the first 8 bytes of SHA-256 of its 32 public-key bytes, shown as 16
//! lowercase hex digits; signature lines in a bundle name their key by it.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;

use crate::fsutil;

/// The algorithm word of a public-key file.
pub const PUBLIC_TAG: &str = "ed25519";
/// The first word of a secret-key file.
pub const SECRET_TAG: &str = "ed25519-secret";
/// Longest key name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// The ids of the published test-only keys in `config/keys/` (their secret halves are
/// public: a box that trusts one of them is not protected). See
/// [`crate::trust::TrustStore::test_only_keys`].
pub const TEST_ONLY_KEY_IDS: [&str; 3] =
    ["06e5a652738c5f12", "a5124cd93b67b897", "65faa14b73d2a6fe"];

/// The prefix of the names of test-only keys.
pub const TEST_ONLY_PREFIX: &str = "test-only-";

/// The first 8 bytes of SHA-256 of the public key, shown as 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The id of a public key.
    pub fn of(key: &ed25519_dalek::VerifyingKey) -> KeyId {
        let digest = crate::sha256(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for KeyId {
    type Err = String;
    /// Exactly 16 lowercase hex digits.
    fn from_str(s: &str) -> Result<KeyId, String> {
        crate::unhex::<8>(s)
            .map(KeyId)
            .ok_or_else(|| format!("{s:?} is not a key id (16 lowercase hex digits)"))
    }
}

/// A trusted (or to be trusted) public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub name: String,
    pub id: KeyId,
    pub key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    pub fn new(name: &str, key: ed25519_dalek::VerifyingKey) -> PublicKey {
        PublicKey {
            name: name.to_string(),
            id: KeyId::of(&key),
            key,
        }
    }

    /// Whether this is one of the published test-only keys (by id, or by a name that
    /// starts with `test-only-`).
    pub fn is_test_only(&self) -> bool {
        self.name.starts_with(TEST_ONLY_PREFIX)
            || TEST_ONLY_KEY_IDS.contains(&self.id.to_string().as_str())
    }

    /// The `NAME.pub` file's contents.
    pub fn to_file_text(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.key.as_bytes());
        format!("{PUBLIC_TAG} {b64} {}\n", self.name)
    }

    /// Parses a `NAME.pub` file's contents; `Err` says what is wrong.
    pub fn from_file_text(text: &str) -> Result<PublicKey, String> {
        let (name, bytes) = parse_key_line(text, PUBLIC_TAG, "public key")?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| "the 32 bytes are not a valid Ed25519 public key".to_string())?;
        if key.is_weak() {
            return Err("the key is a weak (small-order) Ed25519 point; refused".into());
        }
        Ok(PublicKey::new(&name, key))
    }
}

/// A signing key; its file is secret.
#[derive(Debug)]
pub struct SecretKey {
    pub name: String,
    pub key: ed25519_dalek::SigningKey,
}

/// What is wrong with a key file, and which file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what}", path = .path.display())]
pub struct KeyError {
    pub path: PathBuf,
    pub what: String,
}

impl SecretKey {
    pub fn public(&self) -> PublicKey {
        PublicKey::new(&self.name, self.key.verifying_key())
    }

    pub fn id(&self) -> KeyId {
        KeyId::of(&self.key.verifying_key())
    }

    /// The `NAME.key` file's contents (secret).
    pub fn to_file_text(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.key.as_bytes());
        format!("{SECRET_TAG} {b64} {}\n", self.name)
    }

    /// Parses a `NAME.key` file's contents; `Err` says what is wrong.
    pub fn from_file_text(text: &str) -> Result<SecretKey, String> {
        let (name, mut seed) = parse_key_line(text, SECRET_TAG, "secret key")?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        seed.fill(0);
        std::hint::black_box(&seed);
        Ok(SecretKey { name, key })
    }
}

/// A fresh key pair from the operating system's CSPRNG.
pub fn generate(name: &str) -> SecretKey {
    SecretKey {
        name: name.to_string(),
        key: ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng),
    }
}

/// Whether `name` can name a key (and its two files): 1 to 64 of `A-Z a-z 0-9 . _ -`,
/// not starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "a key name must be 1 to {MAX_NAME_LEN} characters, not {}",
            name.len()
        ));
    }
    if name.starts_with(['.', '-']) {
        return Err(format!("key name {name:?} must not start with '.' or '-'"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "key name {name:?} contains {c:?}; use letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// `<tag> <base64 of 32 bytes> <name>` with one optional final `\n` (or `\r\n`).
fn parse_key_line(text: &str, tag: &str, what: &str) -> Result<(String, [u8; 32]), String> {
    let line = text
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(text);
    if line.contains('\n') {
        return Err(format!(
            "a {what} file holds exactly one line; this one has more"
        ));
    }
    let words: Vec<&str> = line.split(' ').collect();
    let other = if tag == PUBLIC_TAG {
        SECRET_TAG
    } else {
        PUBLIC_TAG
    };
    match words.first() {
        Some(&w) if w == tag => {}
        Some(&w) if w == other && tag == PUBLIC_TAG => {
            return Err(
                "this is a SECRET key file, not a public key: never copy it to a \
                        trust store"
                    .into(),
            )
        }
        Some(&w) if w == other => {
            return Err("this is a public key file; signing needs the secret NAME.key".into())
        }
        _ => {
            return Err(format!(
                "not a gatekeeper {what} file (expected a line `{tag} <base64> <name>`, \
                 found {})",
                crate::excerpt(line.as_bytes(), 40)
            ))
        }
    }
    if words.len() != 3 {
        return Err(format!(
            "expected `{tag} <base64> <name>` separated by single spaces, found {} words",
            words.len()
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(words[1])
        .map_err(|e| format!("the key is not valid base64 ({e})"))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("the key is {} bytes; Ed25519 keys are 32", b.len()))?;
    check_name(words[2])?;
    Ok((words[2].to_string(), bytes))
}

/// Writes DIR/NAME.key (mode 0600) and DIR/NAME.pub; refuses to overwrite.
pub fn write_pair(dir: &Path, key: &SecretKey) -> Result<(PathBuf, PathBuf), KeyError> {
    let err = |path: &Path, what: String| KeyError {
        path: path.to_path_buf(),
        what,
    };
    check_name(&key.name).map_err(|w| err(dir, w))?;
    fs::create_dir_all(dir).map_err(|e| err(dir, format!("cannot create the directory: {e}")))?;
    let secret = dir.join(format!("{}.key", key.name));
    let public = dir.join(format!("{}.pub", key.name));
    for path in [&secret, &public] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(err(
                path,
                "already exists; refusing to overwrite a key (choose another --name or \
                 --out, or remove it yourself)"
                    .into(),
            ));
        }
    }
    fsutil::write_new(&secret, key.to_file_text().as_bytes(), 0o600)
        .map_err(|e| err(&secret, format!("cannot write: {e}")))?;
    // Whatever the umask did, the secret is for its owner only.
    if let Err(e) = fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)) {
        let _ = fs::remove_file(&secret);
        return Err(err(
            &secret,
            format!("cannot make it private (chmod 600), so it was not kept: {e}"),
        ));
    }
    if let Err(e) = fsutil::write_new(&public, key.public().to_file_text().as_bytes(), 0o644) {
        let _ = fs::remove_file(&secret);
        return Err(err(&public, format!("cannot write: {e}")));
    }
    Ok((secret, public))
}

/// Reads a secret key file (permissions are not judged; see [`read_secret_checked`]).
pub fn read_secret(path: &Path) -> Result<SecretKey, KeyError> {
    read_secret_checked(path).map(|(key, _)| key)
}

/// Reads a secret key file, and returns a warning when the file can be read by its
/// group or by others (it should be mode 0600).
pub fn read_secret_checked(path: &Path) -> Result<(SecretKey, Option<String>), KeyError> {
    let err = |what: String| KeyError {
        path: path.to_path_buf(),
        what,
    };
    let meta = fs::metadata(path).map_err(|e| err(format!("cannot read the secret key: {e}")))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    if meta.len() > 1024 {
        return Err(err(format!(
            "{} bytes is far too long for a secret key file",
            meta.len()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    let warning = (mode & 0o077 != 0).then(|| {
        format!(
            "{}: the secret key is readable by others (mode {mode:04o}); run chmod 600 on it",
            path.display()
        )
    });
    let bytes = fs::read(path).map_err(|e| err(format!("cannot read the secret key: {e}")))?;
    let parsed = match std::str::from_utf8(&bytes) {
        Ok(text) => SecretKey::from_file_text(text),
        Err(_) => Err("not a gatekeeper secret key file (not text)".into()),
    };
    let mut bytes = bytes;
    bytes.fill(0);
    std::hint::black_box(&bytes);
    parsed.map(|key| (key, warning)).map_err(err)
}

/// Reads a public key file (`NAME.pub`).
pub fn read_public(path: &Path) -> Result<PublicKey, KeyError> {
    let err = |what: String| KeyError {
        path: path.to_path_buf(),
        what,
    };
    let meta = fs::metadata(path).map_err(|e| err(format!("cannot read the public key: {e}")))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    if meta.len() > 1024 {
        return Err(err(format!(
            "{} bytes is far too long for a public key file",
            meta.len()
        )));
    }
    let bytes = fs::read(path).map_err(|e| err(format!("cannot read the public key: {e}")))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| err("not a gatekeeper public key file (not text)".into()))?;
    PublicKey::from_file_text(text).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gk-bundle-keys-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn key_id_is_the_start_of_sha256_of_the_public_key() {
        let key = generate("a");
        let digest = crate::sha256(key.key.verifying_key().as_bytes());
        assert_eq!(key.id().0, digest[..8]);
        assert_eq!(key.public().id, key.id());
        assert_eq!(key.id().to_string(), crate::hex(&digest[..8]));
        assert_eq!(key.id().to_string().parse::<KeyId>(), Ok(key.id()));
        assert!("ABCDEF0123456789".parse::<KeyId>().is_err());
    }

    #[test]
    fn generate_is_random() {
        assert_ne!(generate("a").key.to_bytes(), generate("a").key.to_bytes());
    }

    #[test]
    fn pair_files_round_trip_with_private_secret() {
        let dir = scratch("pair");
        let key = generate("signer-1");
        let (secret, public) = write_pair(&dir, &key).unwrap();
        assert_eq!(secret, dir.join("signer-1.key"));
        assert_eq!(public, dir.join("signer-1.pub"));
        let mode = fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (back, warning) = read_secret_checked(&secret).unwrap();
        assert!(warning.is_none());
        assert_eq!(back.key.to_bytes(), key.key.to_bytes());
        assert_eq!(back.name, "signer-1");
        let pubkey = read_public(&public).unwrap();
        assert_eq!(pubkey, key.public());
        let text = fs::read_to_string(&public).unwrap();
        assert!(
            text.starts_with("ed25519 ") && text.ends_with(" signer-1\n"),
            "{text}"
        );

        // Refuses to overwrite either file.
        let again = write_pair(&dir, &generate("signer-1")).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        assert_eq!(read_public(&public).unwrap(), key.public());

        // A readable secret is read, with a warning.
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
        let (_, warning) = read_secret_checked(&secret).unwrap();
        assert!(warning.unwrap().contains("chmod 600"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_key_files_say_what_is_wrong() {
        let dir = scratch("bad");
        fs::create_dir_all(&dir).unwrap();
        let key = generate("k");
        let cases: Vec<(&str, String, &str)> = vec![
            ("empty.pub", String::new(), "not a gatekeeper public key"),
            ("secret.pub", key.to_file_text(), "SECRET key"),
            (
                "two.pub",
                format!(
                    "{}{}",
                    key.public().to_file_text(),
                    key.public().to_file_text()
                ),
                "exactly one line",
            ),
            ("b64.pub", "ed25519 !!!! k\n".into(), "not valid base64"),
            ("short.pub", "ed25519 AAAA k\n".into(), "3 bytes"),
            ("words.pub", "ed25519 AAAA\n".into(), "2 words"),
            (
                "name.pub",
                key.public().to_file_text().replace(" k\n", " a/b\n"),
                "contains '/'",
            ),
            (
                "weak.pub",
                format!(
                    "ed25519 {} k\n",
                    base64::engine::general_purpose::STANDARD.encode([0u8; 32])
                ),
                "",
            ),
        ];
        for (file, text, expect) in cases {
            let path = dir.join(file);
            fs::write(&path, &text).unwrap();
            let e = read_public(&path).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with(&path.display().to_string()), "{msg}");
            assert!(msg.contains(expect), "{file}: {msg}");
        }
        // The all-zero point is small-order (or not a point): refused either way.
        let path = dir.join("pub-as-secret.key");
        fs::write(&path, key.public().to_file_text()).unwrap();
        let e = read_secret(&path).unwrap_err().to_string();
        assert!(e.contains("public key file"), "{e}");
        let e = read_secret(&dir.join("missing.key"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.key: cannot read"), "{e}");
        fs::write(dir.join("bin.key"), [0xff, 0xfe]).unwrap();
        assert!(read_secret(&dir.join("bin.key")).is_err());
        // CRLF and a missing final newline are fine for a public key.
        fs::write(
            dir.join("crlf.pub"),
            key.public().to_file_text().replace('\n', "\r\n"),
        )
        .unwrap();
        assert_eq!(read_public(&dir.join("crlf.pub")).unwrap(), key.public());
        fs::write(dir.join("nonl.pub"), key.public().to_file_text().trim_end()).unwrap();
        assert_eq!(read_public(&dir.join("nonl.pub")).unwrap(), key.public());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_published_test_keys_are_known() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/keys");
        for (n, id) in TEST_ONLY_KEY_IDS.iter().enumerate() {
            let name = format!("test-only-signer-{}", n + 1);
            let public = read_public(&dir.join(format!("{name}.pub"))).unwrap();
            assert_eq!(public.id.to_string(), *id);
            assert_eq!(public.name, name);
            assert!(public.is_test_only());
            let secret = read_secret(&dir.join(format!("{name}.key"))).unwrap();
            assert_eq!(secret.public(), public);
            // Renamed, it is still known by its id.
            assert!(PublicKey::new("production", public.key).is_test_only());
        }
        assert!(!generate("production").public().is_test_only());
    }

    #[test]
    fn names_are_checked() {
        for ok in ["signer", "test-only-signer-1", "a.b_c"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "-x", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(write_pair(&scratch("n"), &generate("../evil")).is_err());
    }
}
