//! The bundle verbs as an operator runs them: keygen → sign → verify → cosign → verify
//! with a threshold of 2 → show → refusals, and audit over a state directory.

mod common;

use common::*;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use gk_bundle::format::{self, Metadata};
use gk_bundle::state::{AuditEntry, Pending, StateDir};
use gk_bundle::time::OffsetDateTime;

/// 2026-11-22T06:00:00Z plus `seconds`.
fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_327_200 + seconds).unwrap()
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("gkctl-bundles")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

const POLICY: &str = r#"schema = 1

[gatekeeper]
name = "bundle-test"
mode = "enforce"

[hosts.plc]
ip = "10.10.0.10"
mac = "02:00:00:00:00:10"

[hosts.hmi]
ip = "10.10.0.21"

[[rule]]
name = "hmi-polls-plc"
from = "hmi"
to = "plc"
proto = "tcp"
ports = [502]
action = "allow"
"#;

/// keygen alice, bob, carol in DIR/keys; a trust store DIR/trust with alice and bob.
fn keys_and_trust(dir: &Path) -> (PathBuf, PathBuf) {
    let keys = dir.join("keys");
    for name in ["alice", "bob", "carol"] {
        let (stdout, _) = run(&["keygen", "--out", p(&keys), "--name", name], 0);
        assert!(stdout.contains(&format!("{name}.key")), "{stdout}");
        assert!(stdout.contains("key id "), "{stdout}");
    }
    let trust = dir.join("trust");
    fs::create_dir_all(&trust).unwrap();
    for name in ["alice", "bob"] {
        fs::copy(
            keys.join(format!("{name}.pub")),
            trust.join(format!("{name}.pub")),
        )
        .unwrap();
    }
    (keys, trust)
}

fn key_id(keys: &Path, name: &str) -> String {
    gk_bundle::keys::read_public(&keys.join(format!("{name}.pub")))
        .unwrap()
        .id
        .to_string()
}

#[test]
fn the_whole_flow() {
    let dir = scratch("flow");
    let (keys, trust) = keys_and_trust(&dir);
    let secret = keys.join("alice.key");
    assert_eq!(
        fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // keygen never overwrites a key.
    let before = fs::read(&secret).unwrap();
    let (_, stderr) = run(&["keygen", "--out", p(&keys), "--name", "alice"], 2);
    assert!(stderr.contains("alice.key: already exists"), "{stderr}");
    assert_eq!(fs::read(&secret).unwrap(), before);

    let policy = dir.join("press-line.toml");
    fs::write(&policy, POLICY).unwrap();
    let bundle = dir.join("press-line-7.gkb");
    let (stdout, _) = run(
        &[
            "sign",
            "--key",
            p(&secret),
            "--serial",
            "7",
            "--expires",
            "2099-01-31T00:00:00Z",
            "--device",
            "plc-7",
            "--device",
            "plc-8",
            "--site",
            "press-line",
            "--comment",
            "first bundle",
            "--confirm-window",
            "300",
            p(&policy),
            "-o",
            p(&bundle),
        ],
        0,
    );
    assert!(stdout.contains("serial 7"), "{stdout}");
    assert!(
        stdout.contains(&format!("key {} (alice)", key_id(&keys, "alice"))),
        "{stdout}"
    );
    let bytes = fs::read(&bundle).unwrap();
    assert!(bytes.starts_with(b"gatekeeper-bundle 1\nsignature ed25519 "));
    assert!(
        bytes.ends_with(POLICY.as_bytes()),
        "the policy is carried byte for byte"
    );

    // One signature, threshold 1: ok (bindings not given are not judged, and it says so).
    let (stdout, _) = run(&["verify", "--trust", p(&trust), p(&bundle)], 0);
    assert!(stdout.contains(": ok: serial 7"), "{stdout}");
    assert!(stdout.contains("device binding not judged"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    run(
        &[
            "verify",
            "--trust",
            p(&trust),
            "--device-id",
            "plc-8",
            "--site",
            "press-line",
            p(&bundle),
        ],
        0,
    );

    // Threshold 2: one signature is too few.
    fs::write(trust.join("trust.toml"), "threshold = 2\n").unwrap();
    let (_, stderr) = run(&["verify", "--trust", p(&trust), p(&bundle)], 1);
    assert!(
        stderr
            .contains("refused (too-few-signatures): signed by 1 trusted key; this box requires 2"),
        "{stderr}"
    );
    assert!(stderr.contains("(alice): trusted, valid"), "{stderr}");

    // Bob cosigns: two of two.
    let (stdout, _) = run(
        &["cosign", "--key", p(&keys.join("bob.key")), p(&bundle)],
        0,
    );
    assert!(stdout.contains("2 signatures now"), "{stdout}");
    let (stdout, _) = run(&["verify", "--trust", p(&trust), p(&bundle)], 0);
    assert!(
        stdout.contains("signed by 2 trusted keys of 2 required"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(alice)") && stdout.contains("(bob)"),
        "{stdout}"
    );
    let cosigned = fs::read(&bundle).unwrap();
    assert_eq!(
        format::parse_envelope(&cosigned).unwrap().body,
        format::parse_envelope(&bytes).unwrap().body,
        "cosign does not touch the body"
    );
    // Twice by the same key: refused, file untouched.
    let (_, stderr) = run(
        &["cosign", "--key", p(&keys.join("bob.key")), p(&bundle)],
        1,
    );
    assert!(stderr.contains("already signed by key"), "{stderr}");
    assert_eq!(fs::read(&bundle).unwrap(), cosigned);

    // show: metadata, signers, the policy's summary and rules.
    let (stdout, _) = run(&["show", p(&bundle)], 0);
    for expect in [
        "serial          7",
        "expires         2099-01-31T00:00:00Z",
        "devices         plc-7, plc-8",
        "site            press-line",
        "confirm window  300 s",
        "policy file     press-line.toml",
        "comment         first bundle",
        "NOT checked",
        "policy \"bundle-test\", mode enforce",
        "1. hmi-polls-plc: hmi -> plc tcp 502 allow",
    ] {
        assert!(stdout.contains(expect), "{expect:?} in {stdout}");
    }
    let (stdout, _) = run(&["show", "--trust", p(&trust), p(&bundle)], 0);
    assert!(
        stdout.contains("enough: 2 trusted of 2 required"),
        "{stdout}"
    );
    assert!(stdout.contains("(bob): trusted, valid"), "{stdout}");

    // The box's checks, one by one.
    let refused = |extra: &[&str], code: &str, expect: &str| {
        let mut args = vec!["verify", "--trust", p(&trust)];
        args.extend_from_slice(extra);
        args.push(p(&bundle));
        let (_, stderr) = run(&args, 1);
        assert!(stderr.contains(&format!("refused ({code}): ")), "{stderr}");
        assert!(stderr.contains(expect), "{expect:?} in {stderr}");
    };
    refused(&["--ratchet", "7"], "rollback", "serial 7 is not above 7");
    refused(
        &["--now", "2099-02-01T00:00:00Z"],
        "expired",
        "expired at 2099-01-31T00:00:00Z",
    );
    refused(
        &["--device-id", "plc-9"],
        "wrong-device",
        "made for devices plc-7, plc-8, but this box is \"plc-9\"",
    );
    refused(
        &["--site", "paint-shop"],
        "wrong-site",
        "made for site \"press-line\"",
    );

    // A tampered copy: one byte of the policy changed.
    let tampered = dir.join("tampered.gkb");
    let mut t = cosigned.clone();
    let at = t.len() - 3;
    t[at] ^= 0x01;
    fs::write(&tampered, &t).unwrap();
    let (_, stderr) = run(&["verify", "--trust", p(&trust), p(&tampered)], 1);
    assert!(
        stderr.contains(&format!(
            "refused (bad-signature): bad signature by trusted key {} (alice)",
            key_id(&keys, "alice")
        )),
        "{stderr}"
    );
    let (stdout, _) = run(&["show", "--trust", p(&trust), p(&tampered)], 1);
    assert!(stdout.contains("trusted, INVALID"), "{stdout}");

    // Signed by a key the box does not trust.
    let foreign = dir.join("foreign.gkb");
    run(
        &[
            "sign",
            "--key",
            p(&keys.join("carol.key")),
            "--serial",
            "8",
            p(&policy),
            "-o",
            p(&foreign),
        ],
        0,
    );
    let (_, stderr) = run(&["verify", "--trust", p(&trust), p(&foreign)], 1);
    assert!(
        stderr.contains(&format!(
            "refused (unknown-key): signed only by key this box does not trust: {}",
            key_id(&keys, "carol")
        )),
        "{stderr}"
    );

    // Truncated, garbage, CRLF-converted, huge.
    let bad = |name: &str, bytes: &[u8], code: &str, expect: &str| {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        let (_, stderr) = run(&["verify", "--trust", p(&trust), p(&path)], 1);
        assert!(
            stderr.contains(&format!("refused ({code})")),
            "{name}: {stderr}"
        );
        assert!(stderr.contains(expect), "{name}: {expect:?} in {stderr}");
    };
    bad(
        "truncated.gkb",
        &cosigned[..100],
        "malformed",
        "inside the signature lines",
    );
    bad(
        "short-body.gkb",
        &cosigned[..cosigned.len() - 10],
        "bad-signature",
        "(alice)",
    );
    bad(
        "garbage.gkb",
        b"\x7fELF\x02\x01\x01",
        "malformed",
        "not a gatekeeper bundle",
    );
    bad(
        "policy.gkb",
        POLICY.as_bytes(),
        "malformed",
        "looks like a policy file",
    );
    bad(
        "crlf.gkb",
        text(&cosigned).replace('\n', "\r\n").as_bytes(),
        "malformed",
        "line 1 ends with CR LF",
    );
    bad(
        "huge.gkb",
        &vec![b'#'; format::MAX_BUNDLE_SIZE + 1],
        "too-large",
        "1048577 bytes; at most 1048576",
    );
    let (_, stderr) = run(&["show", p(&dir.join("garbage.gkb"))], 1);
    assert!(stderr.contains("not a gatekeeper bundle"), "{stderr}");
    let (_, stderr) = run(
        &["verify", "--trust", p(&trust), p(&dir.join("missing.gkb"))],
        2,
    );
    assert!(stderr.contains("cannot open"), "{stderr}");
}

#[test]
fn sign_refuses_a_bad_policy_with_its_line_numbers() {
    let dir = scratch("bad-policy");
    let (keys, _) = keys_and_trust(&dir);
    let policy = dir.join("bad-host.toml");
    fs::write(&policy, POLICY.replace("from = \"hmi\"", "from = \"hmi2\"")).unwrap();
    let out = dir.join("bad.gkb");
    let (_, stderr) = run(
        &[
            "sign",
            "--key",
            p(&keys.join("alice.key")),
            "--serial",
            "1",
            p(&policy),
            "-o",
            p(&out),
        ],
        1,
    );
    assert!(stderr.contains("bad-host.toml:16:8: error:"), "{stderr}");
    assert!(stderr.contains("unknown host \"hmi2\""), "{stderr}");
    assert!(stderr.contains("nothing signed"), "{stderr}");
    assert!(!out.exists(), "nothing is written");
    assert!(
        fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp")),
        "no temporary file left"
    );
}

#[test]
fn sign_does_not_overwrite_without_force() {
    let dir = scratch("overwrite");
    let (keys, trust) = keys_and_trust(&dir);
    let policy = dir.join("p.toml");
    fs::write(&policy, POLICY).unwrap();
    let out = dir.join("b.gkb");
    let alice = keys.join("alice.key");
    let sign = |serial: &str, force: bool, code: i32| {
        let mut args = vec![
            "sign",
            "--key",
            p(&alice),
            "--serial",
            serial,
            p(&policy),
            "-o",
            p(&out),
        ];
        if force {
            args.push("--force");
        }
        run(&args, code)
    };
    sign("1", false, 0);
    let first = fs::read(&out).unwrap();
    let (_, stderr) = sign("2", false, 2);
    assert!(
        stderr.contains("exists; refusing to overwrite it (pass --force"),
        "{stderr}"
    );
    assert_eq!(fs::read(&out).unwrap(), first);
    sign("2", true, 0);
    let (stdout, _) = run(&["verify", "--trust", p(&trust), p(&out)], 0);
    assert!(stdout.contains("serial 2"), "{stdout}");
    // The policy itself is never the output.
    let (_, stderr) = run(
        &[
            "sign",
            "--key",
            p(&keys.join("alice.key")),
            "--serial",
            "3",
            "--force",
            p(&policy),
            "-o",
            p(&policy),
        ],
        2,
    );
    assert!(stderr.contains("is the policy itself"), "{stderr}");
    assert_eq!(fs::read_to_string(&policy).unwrap(), POLICY);
    // Arguments that would make a bundle every box refuses.
    for (flag, value, expect) in [
        ("--expires", "2001-01-01T00:00:00Z", "in the past"),
        ("--expires", "next week", "not an RFC 3339 date-time"),
        ("--confirm-window", "0", "confirm-window"),
        ("--device", "", "empty device id"),
    ] {
        let (_, stderr) = run(
            &[
                "sign",
                "--key",
                p(&keys.join("alice.key")),
                "--serial",
                "9",
                flag,
                value,
                p(&policy),
                "-o",
                p(&dir.join("x.gkb")),
            ],
            2,
        );
        assert!(stderr.contains(expect), "{flag} {value}: {stderr}");
    }
    let (_, stderr) = run(
        &[
            "sign",
            "--key",
            p(&keys.join("alice.key")),
            "--serial",
            "0",
            p(&policy),
            "-o",
            p(&dir.join("x.gkb")),
        ],
        2,
    );
    assert!(
        stderr.contains("serial = 0: serials start at 1"),
        "{stderr}"
    );
    assert!(!dir.join("x.gkb").exists());
}

#[test]
fn a_bundle_whose_policy_does_not_compile_is_refused() {
    let dir = scratch("invalid-policy");
    let (keys, trust) = keys_and_trust(&dir);
    // gkctl sign would refuse this policy; build the bundle with the library instead.
    let key = gk_bundle::keys::read_secret(&keys.join("alice.key")).unwrap();
    let bad = POLICY.replace("from = \"hmi\"", "from = \"hmi2\"");
    let bytes = format::try_build(&Metadata::new(3, at(0)), &bad, &key).unwrap();
    let bundle = dir.join("b.gkb");
    fs::write(&bundle, &bytes).unwrap();
    let policy_line = format::inspect(&bytes).unwrap().policy_line;
    let (_, stderr) = run(&["verify", "--trust", p(&trust), p(&bundle)], 1);
    assert!(stderr.contains("refused (invalid-policy)"), "{stderr}");
    // The diagnostic names the line of the bundle file (the policy's line 16).
    let expect = format!("{}:{}:8: error:", bundle.display(), policy_line + 15);
    assert!(stderr.contains(&expect), "{expect:?} in {stderr}");
    let (_, stderr) = run(&["show", p(&bundle)], 1);
    assert!(stderr.contains(&expect), "{stderr}");
    let (_, stderr) = run(
        &["cosign", "--key", p(&keys.join("bob.key")), p(&bundle)],
        1,
    );
    assert!(stderr.contains("not cosigned"), "{stderr}");
    assert_eq!(fs::read(&bundle).unwrap(), bytes);
}

#[test]
fn the_test_only_keys_sign_and_verify() {
    let dir = scratch("test-only");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/keys");
    let policy = dir.join("p.toml");
    fs::write(&policy, POLICY).unwrap();
    let bundle = dir.join("b.gkb");
    // A checkout leaves the key readable by others: a warning, not a failure.
    let key = dir.join("test-only-signer-1.key");
    fs::copy(config.join("test-only-signer-1.key"), &key).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let (_, stderr) = run(
        &[
            "sign",
            "--key",
            p(&key),
            "--serial",
            "1",
            p(&policy),
            "-o",
            p(&bundle),
        ],
        0,
    );
    assert!(
        stderr.contains("warning") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    // config/keys as a trust store (the README and the .key files are ignored).
    let (stdout, _) = run(&["verify", "--trust", p(&config), p(&bundle)], 0);
    assert!(stdout.contains("(test-only-signer-1)"), "{stdout}");
}

fn entry(second: i64, outcome: &str, serial: Option<u64>, reason: Option<&str>) -> AuditEntry {
    AuditEntry {
        time: at(second),
        digest: Some("ab".repeat(32)),
        serial,
        signers: vec!["06e5a652738c5f12".into()],
        source: "inbox".into(),
        outcome: outcome.into(),
        reason: reason.map(String::from),
    }
}

#[test]
fn audit_prints_the_log_and_verifies_its_chain() {
    let dir = scratch("audit");
    let state_dir = dir.join("state");
    // Held open while gkctl reads the log, as gatekeeperd would hold it. (Opened once:
    // reopening right after a drop can race with another test's fork, whose child
    // shares the lock until it execs.)
    let state = StateDir::open(&state_dir).unwrap();
    {
        state
            .audit_append(&entry(0, "started", None, None))
            .unwrap();
        state
            .set_pending(&Pending {
                bytes: b"not a real bundle".to_vec(),
                deadline: 1_800_000_000,
                source: "control".into(),
            })
            .unwrap();
        state
            .audit_append(&entry(1, "pending", Some(7), None))
            .unwrap();
        state
            .audit_append(&entry(
                2,
                "refused",
                Some(6),
                Some("rollback: serial 6 is not above 7"),
            ))
            .unwrap();
    }
    let (stdout, _) = run(&["audit", "--state", p(&state_dir)], 0);
    assert!(stdout.contains("2026-11-22T06:00:01Z  pending"), "{stdout}");
    assert!(stdout.contains("serial 7"), "{stdout}");
    assert!(
        stdout.contains("rollback: serial 6 is not above 7"),
        "{stdout}"
    );
    assert!(stdout.contains("chain intact: 3 entries"), "{stdout}");

    // Tamper with line 2: the chain breaks at line 3, which gkctl names.
    let log = state_dir.join("audit.jsonl");
    let original = fs::read_to_string(&log).unwrap();
    fs::write(&log, original.replacen("\"pending\"", "\"confirmed\"", 1)).unwrap();
    let (_, stderr) = run(&["audit", "--state", p(&state_dir)], 1);
    assert!(
        stderr.contains("audit.jsonl:3: chain BROKEN: prev is"),
        "{stderr}"
    );
    assert!(stderr.contains("line 2 was changed"), "{stderr}");

    // Remove the last line: the manifest's head catches it.
    let lines: Vec<&str> = original.lines().collect();
    fs::write(&log, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let (_, stderr) = run(&["audit", "--state", p(&state_dir)], 1);
    assert!(
        stderr.contains("the log ends after 2 entries, but state.toml records 3"),
        "{stderr}"
    );

    let (_, stderr) = run(&["audit", "--state", p(&dir.join("nowhere"))], 2);
    assert!(
        stderr.contains("not a gatekeeper state directory"),
        "{stderr}"
    );
}

#[test]
fn help_texts_say_what_happens() {
    let (stdout, _) = run(&["sign", "--help"], 0);
    assert!(stdout.contains("linted first"), "{stdout}");
    assert!(stdout.contains("--force"), "{stdout}");
    assert!(stdout.contains("Exit status"), "{stdout}");
    let (stdout, _) = run(&["verify", "--help"], 0);
    assert!(stdout.contains("too-few-signatures"), "{stdout}");
    let (stdout, _) = run(&["keygen", "--help"], 0);
    assert!(stdout.contains("NAME.key"), "{stdout}");
}
