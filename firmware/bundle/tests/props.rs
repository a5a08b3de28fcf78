//! Property tests: building then verifying gives back exactly what went in, whatever
//! the policy text and metadata; no byte string makes the parsers panic; no edit of a
//! signed bundle is accepted.

use std::time::Duration;

use gk_bundle::format::{self, Metadata};
use gk_bundle::keys::SecretKey;
use gk_bundle::time::OffsetDateTime;
use gk_bundle::trust::TrustStore;
use gk_bundle::verify::{verify, Context};
use proptest::prelude::*;

fn key(n: u8) -> SecretKey {
    SecretKey {
        name: format!("prop-{n}"),
        key: ed25519_dalek::SigningKey::from_bytes(&[n; 32]),
    }
}

const LAST_SECOND_OF_9999: i64 = 253_402_300_799;

fn instant() -> impl Strategy<Value = OffsetDateTime> {
    (0..LAST_SECOND_OF_9999 - 2_000_000_000, 0u32..1_000_000_000).prop_map(|(s, ns)| {
        OffsetDateTime::from_unix_timestamp(s).unwrap()
            + gk_bundle::time::Duration::nanoseconds(i64::from(ns))
    })
}

fn name() -> impl Strategy<Value = String> {
    "\\PC{1,24}"
}

fn metadata() -> impl Strategy<Value = Metadata> {
    (
        1..=i64::MAX as u64,
        instant(),
        proptest::option::of(1i64..1_000_000_000),
        proptest::collection::vec(name(), 0..4),
        proptest::option::of(name()),
        proptest::option::of("[\\PC\n\t]{0,80}"),
        proptest::option::of(1u64..=604_800),
        proptest::option::of(name()),
    )
        .prop_map(
            |(serial, created, lifetime, devices, site, comment, window, file)| Metadata {
                serial,
                created,
                expires: lifetime.map(|s| created + gk_bundle::time::Duration::seconds(s)),
                devices,
                site,
                comment,
                confirm_window: window.map(Duration::from_secs),
                policy_file: file,
            },
        )
}

/// Policy text that likes to contain the format's own markers.
fn policy_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("--- policy ---\n".to_string()),
            Just("--- signed ---\n".to_string()),
            Just("gatekeeper-bundle 1\n".to_string()),
            Just("\r\n".to_string()),
            Just("[bundle]\nserial = 1\n".to_string()),
            "\\PC{0,40}",
            any::<String>(),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

fn context_for(m: &Metadata) -> Context {
    Context {
        ratchet: m.serial - 1,
        time_floor: Some(m.created),
        now: None,
        device_id: m.devices.first().cloned(),
        site: m.site.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn build_then_verify_round_trips(m in metadata(), policy in policy_text()) {
        let bundle = format::try_build(&m, &policy, &key(1)).unwrap();
        let trust = TrustStore::new(vec![key(1).public(), key(2).public()], 1).unwrap();
        let v = verify(&bundle, &trust, &context_for(&m)).unwrap();
        prop_assert_eq!(&v.metadata, &m);
        prop_assert_eq!(&v.policy_text, &policy);
        prop_assert_eq!(v.digest, gk_bundle::sha256(&bundle));
        prop_assert_eq!(format::read_unverified(&bundle).unwrap(), (m.clone(), policy.clone()));
        // The policy is the file's tail, byte for byte.
        prop_assert!(bundle.ends_with(policy.as_bytes()));

        // Cosigned: the body is untouched and two of two verify.
        let two = format::cosign(&bundle, &key(2)).unwrap();
        prop_assert_eq!(
            format::parse_envelope(&two).unwrap().body,
            format::parse_envelope(&bundle).unwrap().body
        );
        let both = TrustStore::new(vec![key(1).public(), key(2).public()], 2).unwrap();
        prop_assert_eq!(verify(&two, &both, &context_for(&m)).unwrap().signers.len(), 2);
        prop_assert_eq!(verify(&bundle, &both, &context_for(&m)).unwrap_err().code(), "too-few-signatures");
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let trust = TrustStore::new(vec![key(1).public()], 1).unwrap();
        let _ = verify(&bytes, &trust, &Context::default());
        let _ = format::read_unverified(&bytes);
        let _ = format::cosign(&bytes, &key(1));
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_envelope_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..1024)) {
        // Past the envelope, into the body parser (read_unverified does not check the
        // signature): any body at all.
        let mut bytes = format::build(&Metadata::new(1, OffsetDateTime::UNIX_EPOCH), "", &key(1));
        let at = format::parse_envelope(&bytes).unwrap().body_offset;
        bytes.truncate(at);
        bytes.extend_from_slice(&tail);
        let _ = format::read_unverified(&bytes);
        let trust = TrustStore::new(vec![key(1).public()], 1).unwrap();
        prop_assert!(verify(&bytes, &trust, &Context::default()).is_err());
    }

    #[test]
    fn no_edit_of_a_signed_bundle_is_accepted(
        m in metadata(),
        policy in "\\PC{0,200}",
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..4),
    ) {
        let original = format::try_build(&m, &policy, &key(1)).unwrap();
        let mut bytes = original.clone();
        for (index, kind, byte) in edits {
            let i = index.index(bytes.len() + 1);
            match kind {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => bytes.push(byte),
            }
        }
        let trust = TrustStore::new(vec![key(1).public()], 1).unwrap();
        if verify(&bytes, &trust, &context_for(&m)).is_ok() {
            prop_assert_eq!(bytes, original);
        }
    }
}
