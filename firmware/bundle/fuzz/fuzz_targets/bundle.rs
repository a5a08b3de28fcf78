//! Arbitrary bytes offered as a bundle: verification against a fixed trust store (two
//! keys, threshold 1, a context that binds device and site), the unverified reader
//! (which goes on into the body parser), and cosigning. None may panic, and nothing the
//! fuzzer makes may verify (it holds no trusted secret key) unless it is one of the
//! seeds it was given.
#![no_main]

use std::sync::OnceLock;

use gk_bundle::format;
use gk_bundle::keys::SecretKey;
use gk_bundle::trust::TrustStore;
use gk_bundle::verify::{verify, Context};
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
    let ctx = Context {
        ratchet: 3,
        time_floor: None,
        now: None,
        device_id: Some("plc-7".into()),
        site: Some("press-line".into()),
    };
    if let Ok(v) = verify(data, trust(), &ctx) {
        // Only a correctly signed body can get here: its parts must be consistent.
        assert!(v.metadata.serial > 3);
        assert_eq!(v.digest, gk_bundle::sha256(data));
        assert_eq!(format::read_unverified(data).unwrap().1, v.policy_text);
    }
    if let Ok(u) = format::inspect(data) {
        assert!(u.policy_line > 3);
        assert!(!u.signatures.is_empty());
        assert!(data.ends_with(u.policy_text.as_bytes()));
    }
    // Cosigning never panics, and a cosigned bundle has the same body.
    if let Ok(signed) = format::cosign(data, &key(9)) {
        let before = format::parse_envelope(data).unwrap();
        let after = format::parse_envelope(&signed).unwrap();
        assert_eq!(before.body, after.body);
        assert_eq!(after.signatures.len(), before.signatures.len() + 1);
    }
});
