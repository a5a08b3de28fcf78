//! Arbitrary bytes offered as an image update (`*.gku`): the verifying header reader
//! against a fixed trust store (two keys, threshold 1), then the payload check; the
//! unverified reader; and the manifest signature check. None may panic, and nothing the
//! fuzzer makes may verify (it holds no trusted secret key) unless it starts with one
//! of the seeds it was given.
#![no_main]

use std::sync::OnceLock;

use gk_bundle::keys::SecretKey;
use gk_bundle::trust::TrustStore;
use gk_bundle::update;
use libfuzzer_sys::fuzz_target;

fn key(n: u8) -> SecretKey {
    SecretKey {
        name: format!("fuzz-{n}"),
        key: ed25519_dalek::SigningKey::from_bytes(&[n; 32]),
    }
}

fn trust() -> &'static TrustStore {
    static TRUST: OnceLock<TrustStore> = OnceLock::new();
    TRUST.get_or_init(|| TrustStore::new(vec![key(1).public(), key(2).public()], 1).unwrap())
}

fuzz_target!(|data: &[u8]| {
    // A small limit, so that the too-large path is reached too.
    let mut r = data;
    if let Ok((info, signers)) = update::read_header(&mut r, trust(), 4096) {
        // Only a correctly signed header gets here: it must be consistent.
        assert!(!signers.is_empty());
        assert!(info.check().is_ok());
        let consumed = data.len() - r.len();
        assert!(data[..consumed].ends_with(b"--- payload ---\n"));
        let _ = update::verify_payload(&mut r, &info);
    }
    let mut r = data;
    if let Ok(u) = update::read_header_unverified(&mut r, 4096) {
        assert_eq!(data.len() - r.len(), u.header_len);
        assert!(!u.claimed_signers.is_empty());
    }
    let split = data.len() / 2;
    let _ = update::verify_manifest(&data[..split], &data[split..], trust());
});
