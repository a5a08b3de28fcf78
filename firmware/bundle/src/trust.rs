//! The trust store: the keys a box accepts signatures from, and how many distinct ones
//! a bundle needs.
//!
//! A directory holding one `NAME.pub` per key (any other file is ignored, so a
//! `README` can sit next to them) and an optional `trust.toml`:
//!
//! ```toml
//! threshold = 2   # distinct trusted signatures a bundle needs (default 1)
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::keys::{self, KeyId, PublicKey};

/// The name of the optional settings file in a trust store.
pub const TRUST_FILE: &str = "trust.toml";

/// The keys a box trusts, and how many distinct ones must sign a bundle.
#[derive(Clone, Debug)]
pub struct TrustStore {
    pub keys: Vec<PublicKey>,
    pub threshold: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("trust store {path}: {what}", path = .path.display())]
pub struct TrustError {
    /// The directory, or the file in it that is at fault.
    pub path: PathBuf,
    pub what: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    threshold: Option<i64>,
}

impl TrustStore {
    /// Reads every `*.pub` in `dir` (sorted by file name) and `trust.toml`.
    pub fn load(dir: &Path) -> Result<TrustStore, TrustError> {
        let err = |path: &Path, what: String| TrustError {
            path: path.to_path_buf(),
            what,
        };
        let entries =
            fs::read_dir(dir).map_err(|e| err(dir, format!("cannot read the directory: {e}")))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| err(dir, format!("cannot read the directory: {e}")))?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "pub")
                && !entry.file_name().to_string_lossy().starts_with('.')
            {
                files.push(path);
            }
        }
        files.sort();
        let mut keys: Vec<PublicKey> = Vec::new();
        for path in &files {
            let key = keys::read_public(path).map_err(|e| err(path, e.what))?;
            if keys.iter().any(|k| k.key == key.key) {
                continue; // the same key twice is one key
            }
            if let Some(other) = keys.iter().find(|k| k.id == key.id) {
                return Err(err(
                    path,
                    format!(
                        "key id {} is also the id of a different key ({}); cannot tell \
                         their signatures apart",
                        key.id, other.name
                    ),
                ));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(err(
                dir,
                "holds no *.pub key file; a box with no trusted key accepts no bundle".into(),
            ));
        }
        let file = dir.join(TRUST_FILE);
        let threshold = match fs::read(&file) {
            Ok(bytes) => {
                let text =
                    String::from_utf8(bytes).map_err(|_| err(&file, "not UTF-8 text".into()))?;
                let raw: RawTrust = toml::from_str(&text).map_err(|e| {
                    let (line, col) = e.span().map_or((1, 1), |s| crate::line_col(&text, s.start));
                    err(
                        &file,
                        format!("line {line}, column {col}: {}", e.message().trim_end()),
                    )
                })?;
                match raw.threshold {
                    None => 1,
                    Some(k) if k < 1 => {
                        return Err(err(
                            &file,
                            format!("threshold = {k}: at least 1 signature must be required"),
                        ))
                    }
                    Some(k) => usize::try_from(k).unwrap_or(usize::MAX),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
            Err(e) => return Err(err(&file, format!("cannot read: {e}"))),
        };
        TrustStore::new(keys, threshold).map_err(|what| err(&file, what))
    }

    /// A trust store from keys already in hand (tests, fuzzing): the threshold must be
    /// between 1 and the number of distinct keys.
    pub fn new(keys: Vec<PublicKey>, threshold: usize) -> Result<TrustStore, String> {
        let mut distinct: BTreeMap<KeyId, PublicKey> = BTreeMap::new();
        for key in keys {
            distinct.entry(key.id).or_insert(key);
        }
        let keys: Vec<PublicKey> = distinct.into_values().collect();
        if threshold == 0 {
            return Err("threshold = 0: at least 1 signature must be required".into());
        }
        if threshold > keys.len() {
            return Err(format!(
                "threshold = {threshold}, but the store holds only {} distinct key{}",
                keys.len(),
                if keys.len() == 1 { "" } else { "s" }
            ));
        }
        Ok(TrustStore { keys, threshold })
    }

    /// The trusted key with this id.
    pub fn find(&self, id: &KeyId) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.id == *id)
    }

    /// The published test-only keys this store trusts (see `config/keys/README.md`): a
    /// production box must trust none.
    pub fn test_only_keys(&self) -> Vec<&PublicKey> {
        self.keys.iter().filter(|k| k.is_test_only()).collect()
    }

    /// Distinct trusted signatures a bundle needs (never less than 1).
    pub fn required(&self) -> usize {
        self.threshold.max(1)
    }

    /// For people: "2 trusted keys of 1 required: <id> (<name>), …", with a warning when
    /// one of them is a published test-only key.
    pub fn describe_signers(&self, ids: &[KeyId]) -> String {
        let names: Vec<String> = ids
            .iter()
            .map(|id| match self.find(id) {
                Some(k) => format!("{id} ({})", k.name),
                None => id.to_string(),
            })
            .collect();
        let test_only = ids
            .iter()
            .filter_map(|id| self.find(id))
            .any(|k| k.is_test_only());
        format!(
            "{} trusted key{} of {} required: {}{}",
            ids.len(),
            if ids.len() == 1 { "" } else { "s" },
            self.required(),
            names.join(", "),
            if test_only {
                " — TEST-ONLY keys: not for production"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;

    fn store(name: &str, keys: &[&crate::keys::SecretKey], trust: Option<&str>) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gk-bundle-trust-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for k in keys {
            fs::write(
                dir.join(format!("{}.pub", k.name)),
                k.public().to_file_text(),
            )
            .unwrap();
        }
        if let Some(t) = trust {
            fs::write(dir.join(TRUST_FILE), t).unwrap();
        }
        dir
    }

    #[test]
    fn loads_keys_and_threshold() {
        let (a, b, c) = (generate("a"), generate("b"), generate("c"));
        let dir = store("ok", &[&a, &b, &c], Some("# two of three\nthreshold = 2\n"));
        fs::write(dir.join("README.md"), "not a key").unwrap();
        fs::write(dir.join("a.key"), a.to_file_text()).unwrap();
        // The same key under a second name counts once.
        fs::write(dir.join("a-copy.pub"), a.public().to_file_text()).unwrap();
        let loaded = TrustStore::load(&dir).unwrap();
        assert_eq!(loaded.keys.len(), 3);
        assert_eq!(loaded.threshold, 2);
        assert_eq!(loaded.find(&b.id()).unwrap().name, "b");
        fs::remove_dir_all(&dir).unwrap();

        let dir = store("default", &[&a], None);
        let loaded = TrustStore::load(&dir).unwrap();
        assert_eq!(loaded.threshold, 1);
        assert!(loaded.test_only_keys().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn describes_its_signers_for_people() {
        let (a, b) = (generate("ops-a"), generate("ops-b"));
        let dir = store("describe", &[&a, &b], Some("threshold = 2\n"));
        let loaded = TrustStore::load(&dir).unwrap();
        assert_eq!(
            loaded.describe_signers(&[a.id(), b.id()]),
            format!(
                "2 trusted keys of 2 required: {} (ops-a), {} (ops-b)",
                a.id(),
                b.id()
            )
        );
        assert_eq!(
            loaded.describe_signers(&[a.id()]),
            format!("1 trusted key of 2 required: {} (ops-a)", a.id())
        );
        fs::remove_dir_all(&dir).unwrap();
        let test_key = crate::keys::read_secret(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/keys/test-only-signer-1.key"),
        )
        .unwrap();
        let dir = store("describe-test", &[&test_key], None);
        let loaded = TrustStore::load(&dir).unwrap();
        assert!(loaded
            .describe_signers(&[test_key.id()])
            .ends_with(" — TEST-ONLY keys: not for production"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_bad_stores_clearly() {
        let (a, b) = (generate("a"), generate("b"));
        let cases: Vec<(&str, Vec<&crate::keys::SecretKey>, Option<&str>, &str)> = vec![
            ("empty", vec![], None, "holds no *.pub key file"),
            (
                "too-high",
                vec![&a, &b],
                Some("threshold = 3\n"),
                "threshold = 3, but the store holds only 2 distinct keys",
            ),
            ("zero", vec![&a], Some("threshold = 0\n"), "at least 1"),
            ("negative", vec![&a], Some("threshold = -1\n"), "at least 1"),
            (
                "unknown",
                vec![&a],
                Some("threshold = 1\nthreshhold = 2\n"),
                "trust.toml: line 2, column 1: unknown field `threshhold`",
            ),
            ("type", vec![&a], Some("threshold = \"two\"\n"), "line 1"),
            ("syntax", vec![&a], Some("threshold = \n"), "line 1"),
        ];
        for (name, keys, trust, expect) in cases {
            let dir = store(name, &keys, trust);
            let e = TrustStore::load(&dir).unwrap_err().to_string();
            assert!(e.contains(expect), "{name}: {e}");
            fs::remove_dir_all(&dir).unwrap();
        }
        let dir = store("badpub", &[&a], None);
        fs::write(dir.join("z.pub"), "garbage\n").unwrap();
        let e = TrustStore::load(&dir).unwrap_err().to_string();
        assert!(
            e.contains("z.pub") && e.contains("not a gatekeeper public key"),
            "{e}"
        );
        fs::remove_dir_all(&dir).unwrap();
        let e = TrustStore::load(Path::new("/nonexistent/trust"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/trust: cannot read the directory"),
            "{e}"
        );
    }

    #[test]
    fn the_test_only_keys_are_found_in_a_store() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/keys");
        let store = TrustStore::load(&dir).unwrap();
        assert_eq!(
            store.keys.len(),
            3,
            "the README and the .key files are ignored"
        );
        assert_eq!(store.test_only_keys().len(), 3);
    }

    #[test]
    fn new_dedups_and_checks() {
        let a = generate("a");
        let s = TrustStore::new(vec![a.public(), a.public()], 1).unwrap();
        assert_eq!(s.keys.len(), 1);
        assert!(TrustStore::new(vec![a.public(), a.public()], 2).is_err());
        assert!(TrustStore::new(vec![a.public()], 0).is_err());
    }
}
