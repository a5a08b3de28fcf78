//! `gkctl update-info` on update files made here with `gk_bundle::update`: the header
//! shown, the signature checked against a trust store, the board, the payload.

mod common;

use common::*;

use std::fs;
use std::path::{Path, PathBuf};

use gk_bundle::keys;
use gk_bundle::update::{self, UpdateInfo};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("gkctl-update-info")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn config_keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/keys")
}

/// An update for qemu-x86_64 signed by test-only-signer-1; returns (file, header length).
fn make_update(dir: &Path) -> (PathBuf, usize) {
    let key = keys::read_secret(&config_keys().join("test-only-signer-1.key")).unwrap();
    let uki = b"MZ a unified kernel image".to_vec();
    let root = vec![0x5au8; 3 * 4096];
    let info = UpdateInfo {
        version: "0.2.0+gabcdef0".into(),
        board: "qemu-x86_64".into(),
        created: gk_bundle::parse_rfc3339("2026-11-22T06:00:00Z").unwrap(),
        uki_len: uki.len() as u64,
        uki_sha256: gk_bundle::sha256(&uki),
        root_len: root.len() as u64,
        root_sha256: gk_bundle::sha256(&root),
        verity_root: "cd".repeat(32),
        verity_data_blocks: 2,
        verity_hash_offset: 8192,
        verity_salt: "0011".into(),
    };
    let mut out = Vec::new();
    update::write_update(&mut out, &info, &mut &uki[..], &mut &root[..], &[&key]).unwrap();
    let path = dir.join("update.gku");
    fs::write(&path, &out).unwrap();
    (path, out.len() - uki.len() - root.len())
}

#[test]
fn shows_and_checks_an_update() {
    let dir = scratch("good");
    let (gku, header) = make_update(&dir);
    let trust = config_keys();
    let out = run(
        &[
            "update-info",
            "--trust",
            p(&trust),
            "--board",
            "qemu-x86_64",
            "--check-payload",
            p(&gku),
        ],
        0,
    )
    .0;
    assert!(
        out.contains("version:   0.2.0+gabcdef0\nboard:     qemu-x86_64\n"),
        "{out}"
    );
    assert!(out.contains("hash tree at byte 8192, salt 0011"), "{out}");
    assert!(out.contains("signed by 1 trusted key of 1 required: 06e5a652738c5f12 (test-only-signer-1) — TEST-ONLY"), "{out}");
    assert!(
        out.contains("payload:   both parts match their SHA-256s"),
        "{out}"
    );

    // Without a trust store: shown, not verified.
    let out = run(&["update-info", p(&gku)], 0).0;
    assert!(
        out.contains("NOT VERIFIED (no --trust); claims 06e5a652738c5f12"),
        "{out}"
    );

    // Another board.
    let err = run(&["update-info", "--board", "nanopi-r4s", p(&gku)], 1).1;
    assert!(err.contains("refused (wrong-board)"), "{err}");

    // A payload byte changed: the header still verifies, the payload check does not.
    let mut bytes = fs::read(&gku).unwrap();
    bytes[header + 30] ^= 1;
    fs::write(&gku, &bytes).unwrap();
    run(&["update-info", "--trust", p(&trust), p(&gku)], 0);
    let err = run(
        &[
            "update-info",
            "--trust",
            p(&trust),
            "--check-payload",
            p(&gku),
        ],
        1,
    )
    .1;
    assert!(
        err.contains("refused (bad-digest): the payload's root part"),
        "{err}"
    );

    // A header byte changed: bad signature.
    bytes[header + 30] ^= 1;
    let at = header - 40;
    bytes[at] ^= 1;
    fs::write(&gku, &bytes).unwrap();
    let err = run(&["update-info", "--trust", p(&trust), p(&gku)], 1).1;
    assert!(err.contains("refused (bad-signature)"), "{err}");

    // Truncated in the payload.
    bytes[at] ^= 1;
    fs::write(&gku, &bytes[..bytes.len() - 1]).unwrap();
    let err = run(&["update-info", "--check-payload", p(&gku)], 1).1;
    assert!(err.contains("refused (truncated)"), "{err}");

    // Not an update.
    fs::write(&gku, "gatekeeper-bundle 1\n").unwrap();
    let err = run(&["update-info", p(&gku)], 1).1;
    assert!(
        err.contains("refused (malformed)") && err.contains("policy bundle"),
        "{err}"
    );
}
