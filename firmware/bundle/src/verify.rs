//! Verification, in this order (the first failure is the refusal):
//!
//! 1. size: at most [`MAX_BUNDLE_SIZE`] bytes (`too-large`);
//! 2. the envelope: magic, signature lines, `--- signed ---` (`malformed`);
//! 3. every signature by a trusted key, with `verify_strict` over
//!    `SIGNING_PREFIX ‖ body` — before a byte of the body is parsed. A bad one is
//!    `bad-signature`; signatures by keys the store does not hold are ignored;
//! 4. distinct trusted signers ≥ the threshold (`unknown-key` when no trusted key
//!    signed at all, `too-few-signatures` otherwise);
//! 5. the body: the `[bundle]` table and the policy text (`malformed`);
//! 6. serial above the ratchet (`rollback`);
//! 7. not expired at the later of the time floor and the clock (`expired`);
//! 8. device binding (`wrong-device`), then site binding (`wrong-site`).
//!
//! `created` alone never refuses a bundle (a box's clock may be wrong either way); the
//! daemon raises its time floor from the bundles it accepts.

use std::fmt;

use time::OffsetDateTime;

use crate::format::{self, Metadata, MAX_BUNDLE_SIZE};
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

impl Context {
    /// The time expiry is judged against: the later of the time floor and the clock.
    pub fn reference_time(&self) -> Option<OffsetDateTime> {
        match (self.time_floor, self.now) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
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

impl Verified {
    /// The digest in hex (the name of the bundle in the state directory and the audit log).
    pub fn digest_hex(&self) -> String {
        crate::hex(&self.digest)
    }

    /// Key ids of the signers, in hex.
    pub fn signer_ids(&self) -> Vec<String> {
        self.signers.iter().map(|k| k.id.to_string()).collect()
    }
}

/// Why a bundle is refused. `code()` is stable (audit log, events).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Malformed(String),
    #[error("the bundle is {size} bytes; at most {max} are accepted")]
    TooLarge { size: usize, max: usize },
    #[error(
        "bad signature by trusted key {0}: the bundle was changed after it was signed, or \
         the signature is corrupt"
    )]
    BadSignature(KeyId),
    #[error(
        "signed by {have} trusted key{}; this box requires {need} distinct trusted signers",
        if *.have == 1 { "" } else { "s" }
    )]
    TooFewSignatures { have: usize, need: usize },
    #[error("serial {serial} is not above {ratchet}, the highest serial this box has accepted")]
    Rollback { serial: u64, ratchet: u64 },
    #[error("the bundle expired at {expires}")]
    Expired { expires: String },
    #[error("made for device{} {}, but this box is {}",
        if .bundle.len() == 1 { "" } else { "s" }, List(.bundle), Who(.device, "device id"))]
    WrongDevice {
        bundle: Vec<String>,
        device: Option<String>,
    },
    #[error("made for site {bundle:?}, but this box is {}", Who(.site, "site"))]
    WrongSite {
        bundle: String,
        site: Option<String>,
    },
    /// Signed only by keys the trust store does not hold.
    #[error("signed only by key{} this box does not trust: {}",
        if .keys.len() == 1 { "" } else { "s" }, List(.keys))]
    UnknownKey { keys: Vec<KeyId> },
    /// The signatures and metadata check out, but the policy inside does not compile
    /// (found by whoever compiles it: the daemon, `gkctl verify`).
    #[error("the policy does not compile: {0}")]
    InvalidPolicy(String),
}

struct List<'a, T>(&'a [T]);

impl<T: fmt::Display> fmt::Display for List<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

struct Who<'a>(&'a Option<String>, &'static str);

impl fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:?}"),
            None => write!(f, "not given a {}", self.1),
        }
    }
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
            Refusal::UnknownKey { .. } => "unknown-key",
            Refusal::InvalidPolicy(_) => "invalid-policy",
        }
    }

    /// Every code `code()` can return, for documentation and tests.
    pub const CODES: [&'static str; 10] = [
        "malformed",
        "too-large",
        "bad-signature",
        "too-few-signatures",
        "rollback",
        "expired",
        "wrong-device",
        "wrong-site",
        "unknown-key",
        "invalid-policy",
    ];
}

/// Checks the signatures only (steps 1–4): the trusted keys that signed.
pub fn check_signatures(bytes: &[u8], trust: &TrustStore) -> Result<Vec<PublicKey>, Refusal> {
    signatures(bytes, trust).map(|(signers, _)| signers)
}

fn signatures<'a>(
    bytes: &'a [u8],
    trust: &TrustStore,
) -> Result<(Vec<PublicKey>, format::Envelope<'a>), Refusal> {
    if bytes.len() > MAX_BUNDLE_SIZE {
        return Err(Refusal::TooLarge {
            size: bytes.len(),
            max: MAX_BUNDLE_SIZE,
        });
    }
    let envelope = format::parse_envelope(bytes).map_err(|m| Refusal::Malformed(m.0))?;
    let message = format::signed_message(envelope.body);
    let mut signers: Vec<PublicKey> = Vec::new();
    let mut untrusted = Vec::new();
    for line in &envelope.signatures {
        match trust.find(&line.key_id) {
            None => untrusted.push(line.key_id),
            Some(key) => {
                key.key
                    .verify_strict(&message, &line.signature)
                    .map_err(|_| Refusal::BadSignature(key.id))?;
                if !signers.iter().any(|s| s.key == key.key) {
                    signers.push(key.clone());
                }
            }
        }
    }
    if signers.is_empty() && !untrusted.is_empty() {
        return Err(Refusal::UnknownKey { keys: untrusted });
    }
    if signers.len() < trust.required() {
        return Err(Refusal::TooFewSignatures {
            have: signers.len(),
            need: trust.required(),
        });
    }
    Ok((signers, envelope))
}

/// Signatures first (over the raw bytes, before anything is parsed), then the
/// metadata against `ctx`.
pub fn verify(bytes: &[u8], trust: &TrustStore, ctx: &Context) -> Result<Verified, Refusal> {
    let (signers, envelope) = signatures(bytes, trust)?;
    let body = format::parse_body(envelope.body, envelope.body_line)
        .map_err(|m| Refusal::Malformed(m.0))?;
    let metadata = body.metadata;
    if metadata.serial <= ctx.ratchet {
        return Err(Refusal::Rollback {
            serial: metadata.serial,
            ratchet: ctx.ratchet,
        });
    }
    if let (Some(expires), Some(reference)) = (metadata.expires, ctx.reference_time()) {
        if expires <= reference {
            return Err(Refusal::Expired {
                expires: crate::rfc3339(expires),
            });
        }
    }
    if !metadata.devices.is_empty()
        && !ctx
            .device_id
            .as_ref()
            .is_some_and(|d| metadata.devices.contains(d))
    {
        return Err(Refusal::WrongDevice {
            bundle: metadata.devices,
            device: ctx.device_id.clone(),
        });
    }
    if let Some(site) = &metadata.site {
        if ctx.site.as_ref() != Some(site) {
            return Err(Refusal::WrongSite {
                bundle: site.clone(),
                site: ctx.site.clone(),
            });
        }
    }
    Ok(Verified {
        metadata,
        policy_text: body.policy_text,
        signers,
        digest: crate::sha256(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{cosign, MAX_BUNDLE_SIZE};
    use crate::testing::*;
    use time::macros::datetime;

    fn code(r: Result<Verified, Refusal>) -> &'static str {
        match r {
            Ok(v) => panic!("accepted serial {}", v.metadata.serial),
            Err(e) => e.code(),
        }
    }

    #[test]
    fn a_good_bundle_verifies() {
        let b = bundle(7, &[1]);
        let v = verify(&b, &store(&[1], 1), &context()).unwrap();
        assert_eq!(v.metadata, metadata(7));
        assert_eq!(v.policy_text, POLICY);
        assert_eq!(v.signers, vec![key(1).public()]);
        assert_eq!(v.digest, crate::sha256(&b));
        assert_eq!(v.digest_hex().len(), 64);
        assert_eq!(v.signer_ids(), vec![key(1).id().to_string()]);
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        // Threshold 2: both signatures must count, so that a change to either signature
        // line is seen (with threshold 1, a damaged line merely loses its signer).
        let b = bundle(7, &[1, 2]);
        let trust = store(&[1, 2], 2);
        let envelope = crate::format::parse_envelope(&b).unwrap();
        let body_at = envelope.body_offset;
        let sig_lines = (envelope.signatures[0].line, envelope.signatures[1].line);
        assert_eq!(sig_lines, (2, 3));
        let line_of = |i: usize| b[..i].iter().filter(|&&c| c == b'\n').count() + 1;
        for i in 0..b.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = b.clone();
                t[i] ^= bit;
                let r = verify(&t, &trust, &context());
                assert!(
                    r.is_err(),
                    "byte {i} ^ {bit:#x} accepted: {:?}",
                    String::from_utf8_lossy(&t[..body_at])
                );
                let c = code(r.clone());
                if i >= body_at {
                    assert_eq!(c, "bad-signature", "byte {i} ^ {bit:#x}: {r:?}");
                } else {
                    let line = line_of(i);
                    let allowed: &[&str] = if line == 2 || line == 3 {
                        // key id → another (untrusted) id, or not hex; signature → bad or
                        // not canonical base64; the separator → malformed.
                        &["malformed", "bad-signature", "too-few-signatures"]
                    } else {
                        &["malformed"]
                    };
                    assert!(
                        allowed.contains(&c),
                        "byte {i} (line {line}) ^ {bit:#x}: {r:?}"
                    );
                }
            }
        }
        // A signature changed by one byte, re-encoded as valid base64: a bad signature.
        for which in 0..2 {
            for pos in [0usize, 31, 32, 63] {
                let mut sig = envelope.signatures[which].signature.to_bytes();
                sig[pos] ^= 1;
                let text = String::from_utf8(b.clone()).unwrap();
                let old = base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    envelope.signatures[which].signature.to_bytes(),
                );
                let new = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sig);
                let t = text.replace(&old, &new);
                let r = verify(t.as_bytes(), &trust, &context());
                assert_eq!(
                    r.unwrap_err(),
                    Refusal::BadSignature(envelope.signatures[which].key_id)
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let b = bundle(7, &[1]);
        let trust = store(&[1], 1);
        let body_at = crate::format::parse_envelope(&b).unwrap().body_offset;
        for len in 0..b.len() {
            let c = code(verify(&b[..len], &trust, &context()));
            let expect = if len > body_at {
                "bad-signature"
            } else {
                "malformed"
            };
            assert_eq!(c, expect, "truncated to {len} bytes");
        }
        // And anything appended is in the signed body: refused too.
        let mut longer = b.clone();
        longer.push(b'\n');
        assert_eq!(code(verify(&longer, &trust, &context())), "bad-signature");
    }

    #[test]
    fn garbage_and_huge_files_are_refused() {
        let trust = store(&[1], 1);
        for garbage in [
            &b""[..],
            b"\0\0\0\0",
            b"\n\n\n",
            b"gatekeeper-bundle 1\n",
            b"gatekeeper-bundle 1\n--- signed ---\n",
            POLICY.as_bytes(),
            &[0xff; 300],
        ] {
            assert_eq!(code(verify(garbage, &trust, &context())), "malformed");
        }
        let huge = vec![b'#'; MAX_BUNDLE_SIZE + 1];
        assert_eq!(
            verify(&huge, &trust, &context()).unwrap_err(),
            Refusal::TooLarge {
                size: MAX_BUNDLE_SIZE + 1,
                max: MAX_BUNDLE_SIZE
            }
        );
        // A real bundle just over the limit, and one exactly at it.
        let base = bundle(7, &[1]).len();
        let pad = |n: usize| format!("{POLICY}#{}\n", "x".repeat(n));
        let fill = MAX_BUNDLE_SIZE - base - 2;
        let exact = crate::format::build(&metadata(7), &pad(fill), &key(1));
        assert_eq!(exact.len(), MAX_BUNDLE_SIZE);
        assert!(verify(&exact, &trust, &context()).is_ok());
        let over = crate::format::build(&metadata(7), &pad(fill + 1), &key(1));
        assert_eq!(code(verify(&over, &trust, &context())), "too-large");
    }

    #[test]
    fn wrong_and_untrusted_keys() {
        let b = bundle(7, &[9]);
        let r = verify(&b, &store(&[1], 1), &context()).unwrap_err();
        assert_eq!(
            r,
            Refusal::UnknownKey {
                keys: vec![key(9).id()]
            }
        );
        assert!(r.to_string().contains(&key(9).id().to_string()), "{r}");
        let b = bundle(7, &[8, 9]);
        let r = verify(&b, &store(&[1], 1), &context()).unwrap_err();
        assert_eq!(
            r,
            Refusal::UnknownKey {
                keys: vec![key(8).id(), key(9).id()]
            }
        );
        // An untrusted signature next to a trusted one is ignored.
        let b = bundle(7, &[9, 1]);
        let v = verify(&b, &store(&[1], 1), &context()).unwrap();
        assert_eq!(v.signers, vec![key(1).public()]);
        // An untrusted signature does not count towards the threshold.
        let r = verify(&bundle(7, &[1, 9]), &store(&[1, 2], 2), &context()).unwrap_err();
        assert_eq!(r, Refusal::TooFewSignatures { have: 1, need: 2 });
        assert_eq!(
            r.to_string(),
            "signed by 1 trusted key; this box requires 2 distinct trusted signers"
        );
        // A bad signature by a trusted key refuses, even when others meet the threshold.
        let good = bundle(7, &[1, 2]);
        let other = bundle(8, &[2]);
        let text = String::from_utf8(good).unwrap();
        let line2 = |t: &str| {
            t.lines()
                .find(|l| l.contains(&key(2).id().to_string()))
                .unwrap()
                .to_string()
        };
        let forged = text.replace(&line2(&text), &line2(std::str::from_utf8(&other).unwrap()));
        let r = verify(forged.as_bytes(), &store(&[1, 2], 1), &context()).unwrap_err();
        assert_eq!(r, Refusal::BadSignature(key(2).id()));
        assert!(r.to_string().contains(&key(2).id().to_string()));
    }

    #[test]
    fn k_of_n() {
        for n in 1..=3u8 {
            let keys: Vec<u8> = (1..=n).collect();
            for k in 1..=n as usize {
                let trust = store(&keys, k);
                for signed in 1..=n as usize {
                    let b = bundle(7, &keys[..signed]);
                    let r = verify(&b, &trust, &context());
                    if signed >= k {
                        assert_eq!(
                            r.unwrap().signers.len(),
                            signed,
                            "{k} of {n}, {signed} signed"
                        );
                    } else {
                        assert_eq!(
                            r.unwrap_err(),
                            Refusal::TooFewSignatures {
                                have: signed,
                                need: k
                            },
                            "{k} of {n}, {signed} signed"
                        );
                    }
                }
            }
        }
        // Two signatures by the same key are one too many: malformed, and cosign refuses.
        let one = bundle(7, &[1]);
        assert!(cosign(&one, &key(1)).is_err());
        let text = String::from_utf8(one).unwrap();
        let line = text.lines().nth(1).unwrap();
        let twice = text.replacen(line, &format!("{line}\n{line}"), 1);
        let r = verify(twice.as_bytes(), &store(&[1, 2], 2), &context()).unwrap_err();
        assert_eq!(r.code(), "malformed");
        assert!(r.to_string().contains("already signed on line 2"), "{r}");
        // The same key in the store twice (two files) is one key: threshold 2 impossible.
        assert!(TrustStore::new(vec![key(1).public(), key(1).public()], 2).is_err());
        // A store built by hand with threshold 0 still needs one signature.
        let zero = TrustStore {
            keys: vec![key(1).public()],
            threshold: 0,
        };
        assert_eq!(
            code(verify(&bundle(7, &[9]), &zero, &context())),
            "unknown-key"
        );
    }

    #[test]
    fn serial_must_be_above_the_ratchet() {
        let trust = store(&[1], 1);
        let ctx = Context {
            ratchet: 7,
            ..context()
        };
        for (serial, expect) in [(6, Some("rollback")), (7, Some("rollback")), (8, None)] {
            let r = verify(&bundle(serial, &[1]), &trust, &ctx);
            assert_eq!(
                r.as_ref().err().map(Refusal::code),
                expect,
                "serial {serial}"
            );
        }
        let r = verify(&bundle(7, &[1]), &trust, &ctx).unwrap_err();
        assert_eq!(
            r.to_string(),
            "serial 7 is not above 7, the highest serial this box has accepted"
        );
    }

    #[test]
    fn expiry_against_the_later_of_floor_and_clock() {
        let trust = store(&[1], 1);
        let b = bundle(7, &[1]); // expires 2027-01-31T00:00:00Z
        let before = datetime!(2027-01-30 23:59:59 UTC);
        let at = datetime!(2027-01-31 00:00:00 UTC);
        let after = datetime!(2027-02-01 00:00:00 UTC);
        let cases = [
            (None, None, true),
            (Some(before), None, true),
            (None, Some(before), true),
            (Some(before), Some(before), true),
            (Some(at), None, false),
            (None, Some(at), false),
            (Some(after), Some(before), false), // the floor wins over a clock set back
            (Some(before), Some(after), false), // the clock wins over an old floor
        ];
        for (floor, now, ok) in cases {
            let ctx = Context {
                time_floor: floor,
                now,
                ..context()
            };
            let r = verify(&b, &trust, &ctx);
            assert_eq!(r.is_ok(), ok, "floor {floor:?} now {now:?}: {r:?}");
            if !ok {
                assert_eq!(
                    r.unwrap_err(),
                    Refusal::Expired {
                        expires: "2027-01-31T00:00:00Z".into()
                    }
                );
            }
        }
        // `created` in the future of the box's clock is not a refusal.
        let ctx = Context {
            time_floor: None,
            now: Some(datetime!(2020-01-01 00:00:00 UTC)),
            ..context()
        };
        assert!(verify(&b, &trust, &ctx).is_ok());
    }

    #[test]
    fn device_and_site_bindings() {
        let trust = store(&[1], 1);
        let b = bundle(7, &[1]); // devices plc-7, plc-8; site press-line
        for (device, site, expect) in [
            (Some("plc-7"), Some("press-line"), None),
            (Some("plc-8"), Some("press-line"), None),
            (Some("plc-9"), Some("press-line"), Some("wrong-device")),
            (None, Some("press-line"), Some("wrong-device")),
            (Some("PLC-7"), Some("press-line"), Some("wrong-device")),
            (Some("plc-7"), Some("paint-shop"), Some("wrong-site")),
            (Some("plc-7"), None, Some("wrong-site")),
        ] {
            let ctx = Context {
                device_id: device.map(String::from),
                site: site.map(String::from),
                ..context()
            };
            let r = verify(&b, &trust, &ctx);
            assert_eq!(
                r.as_ref().err().map(Refusal::code),
                expect,
                "{device:?} {site:?}"
            );
        }
        let ctx = Context {
            device_id: Some("plc-9".into()),
            ..context()
        };
        assert_eq!(
            verify(&b, &trust, &ctx).unwrap_err().to_string(),
            "made for devices plc-7, plc-8, but this box is \"plc-9\""
        );
        let ctx = Context {
            device_id: None,
            ..context()
        };
        assert_eq!(
            verify(&b, &trust, &ctx).unwrap_err().to_string(),
            "made for devices plc-7, plc-8, but this box is not given a device id"
        );
        let ctx = Context {
            site: Some("paint-shop".into()),
            ..context()
        };
        assert_eq!(
            verify(&b, &trust, &ctx).unwrap_err().to_string(),
            "made for site \"press-line\", but this box is \"paint-shop\""
        );
        // Unbound bundles are for any box.
        let m = crate::format::Metadata::new(7, CREATED);
        let b = crate::format::try_build(&m, POLICY, &key(1)).unwrap();
        assert!(verify(&b, &trust, &Context::default()).is_ok());
    }

    #[test]
    fn crlf_and_bom() {
        let trust = store(&[1], 1);
        let b = bundle(7, &[1]);
        let crlf: Vec<u8> = String::from_utf8(b.clone())
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes();
        let r = verify(&crlf, &trust, &context()).unwrap_err();
        assert_eq!(r.code(), "malformed");
        assert!(r.to_string().contains("line 1 ends with CR LF"), "{r}");
        let bom = [b"\xef\xbb\xbf".as_slice(), &b].concat();
        assert!(verify(&bom, &trust, &context())
            .unwrap_err()
            .to_string()
            .contains("byte-order mark"));
        // A policy written with CRLF is signed and carried as it is.
        let policy = POLICY.replace('\n', "\r\n");
        let b = crate::format::try_build(&metadata(7), &policy, &key(1)).unwrap();
        let v = verify(&b, &trust, &context()).unwrap();
        assert_eq!(v.policy_text, policy);
        // A BOM at the start of the policy is carried too (the policy compiler judges it).
        let policy = format!("\u{feff}{POLICY}");
        let b = crate::format::try_build(&metadata(7), &policy, &key(1)).unwrap();
        assert_eq!(verify(&b, &trust, &context()).unwrap().policy_text, policy);
    }

    #[test]
    fn a_bad_body_is_refused_only_after_its_signature_checks() {
        // A signed body that does not parse: malformed. The same body with a bad
        // signature: bad-signature (the body was never parsed).
        let body = b"[bundle]\nserial = 0\n--- policy ---\n";
        let trust = store(&[1], 1);
        assert_eq!(
            code(verify(&with_body(body, &[1]), &trust, &context())),
            "malformed"
        );
        let mut forged = with_body(body, &[1]);
        let n = forged.len();
        forged[n - 2] ^= 1;
        assert_eq!(code(verify(&forged, &trust, &context())), "bad-signature");
    }

    #[test]
    fn codes_are_listed() {
        let all = [
            Refusal::Malformed(String::new()),
            Refusal::TooLarge { size: 0, max: 0 },
            Refusal::BadSignature(key(1).id()),
            Refusal::TooFewSignatures { have: 0, need: 1 },
            Refusal::Rollback {
                serial: 0,
                ratchet: 0,
            },
            Refusal::Expired {
                expires: String::new(),
            },
            Refusal::WrongDevice {
                bundle: vec![],
                device: None,
            },
            Refusal::WrongSite {
                bundle: String::new(),
                site: None,
            },
            Refusal::UnknownKey { keys: vec![] },
            Refusal::InvalidPolicy(String::new()),
        ];
        let codes: Vec<&str> = all.iter().map(Refusal::code).collect();
        assert_eq!(codes, Refusal::CODES);
    }
}
