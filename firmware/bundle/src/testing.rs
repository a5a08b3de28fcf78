//! Fixtures for the unit tests: fixed keys, a sample policy, bundles built here.

use time::macros::datetime;
use time::OffsetDateTime;

use crate::format::{self, Metadata};
use crate::keys::SecretKey;
use crate::trust::TrustStore;
use crate::verify::Context;

/// A key from a fixed seed (tests must be reproducible).
pub(crate) fn key(n: u8) -> SecretKey {
    SecretKey {
        name: format!("test-key-{n}"),
        key: ed25519_dalek::SigningKey::from_bytes(&[n; 32]),
    }
}

pub(crate) fn store(keys: &[u8], threshold: usize) -> TrustStore {
    TrustStore::new(keys.iter().map(|&n| key(n).public()).collect(), threshold).unwrap()
}

pub(crate) const CREATED: OffsetDateTime = datetime!(2026-11-22 06:00:00 UTC);

pub(crate) const POLICY: &str = "schema = 1\n\n[gatekeeper]\nname = \"press-line-3\"\nmode = \"monitor\"\n\n[hosts.plc]\nip = \"10.10.0.10\"\n";

pub(crate) fn metadata(serial: u64) -> Metadata {
    Metadata {
        serial,
        created: CREATED,
        expires: Some(datetime!(2027-01-31 00:00:00 UTC)),
        devices: vec!["plc-7".into(), "plc-8".into()],
        site: Some("press-line".into()),
        comment: Some("quarterly review \"Q4\"\nsecond line".into()),
        confirm_window: Some(std::time::Duration::from_secs(600)),
        policy_file: Some("press-line.toml".into()),
    }
}

/// A bundle with `metadata(serial)`, signed by each of `signers` in order.
pub(crate) fn bundle(serial: u64, signers: &[u8]) -> Vec<u8> {
    let mut b = format::try_build(&metadata(serial), POLICY, &key(signers[0])).unwrap();
    for &n in &signers[1..] {
        b = format::cosign(&b, &key(n)).unwrap();
    }
    b
}

/// What a box bound to plc-7 at press-line knows, with ratchet 0, on 2026-12-01.
pub(crate) fn context() -> Context {
    Context {
        ratchet: 0,
        time_floor: Some(datetime!(2026-11-01 00:00:00 UTC)),
        now: Some(datetime!(2026-12-01 00:00:00 UTC)),
        device_id: Some("plc-7".into()),
        site: Some("press-line".into()),
    }
}

/// A bundle with `body` as its signed body, signed (correctly) by `signers`.
pub(crate) fn with_body(body: &[u8], signers: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let message = format::signed_message(body);
    let mut out = format!("{}\n", format::MAGIC).into_bytes();
    for &n in signers {
        let k = key(n);
        let sig = k.key.sign(&message);
        out.extend_from_slice(
            format!(
                "signature ed25519 {} {}\n",
                k.id(),
                base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(format!("{}\n", format::SIGNED_LINE).as_bytes());
    out.extend_from_slice(body);
    out
}
