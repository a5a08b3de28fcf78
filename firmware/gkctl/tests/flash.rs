//! `gkctl flash` as a technician runs it, on a regular file standing for the stick: a
//! synthetic image with a known layout and its bmap, written, compared, and every
//! refusal (a damaged image, a bmap that is not the image's or was edited, a manifest
//! that is not signed, or not signed by the trust store, or does not cover the bmap; the
//! image itself as the target; no confirmation). The device checks on sysfs and the
//! mount table are unit tests (`src/flash/device.rs`); here a block device node with an
//! unassigned device number (nothing can be written through it) runs them from the
//! command line, with a fake sysfs and mount table.

mod common;

use common::*;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gk_bundle::keys;
use gk_bundle::update::sign_manifest;
use sha2::{Digest, Sha256};

const BLOCK: usize = 4096;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("gkctl-flash")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    gk_bundle::hex(bytes)
}

/// A 4 MiB + 1000 bytes image, sparse, with data where a disk image has it: a "GPT" in
/// blocks 0-1, a "file system" in blocks 256-300, one block at 700, and a short last
/// block. Returns its bytes.
fn make_image(path: &Path) -> Vec<u8> {
    let size = 4 * 1024 * 1024 + 1000;
    let mut image = vec![0u8; size];
    let mut fill = |from: usize, to: usize, seed: u8| {
        for (i, b) in image[from..to].iter_mut().enumerate() {
            *b = seed.wrapping_add((i % 251) as u8) | 1;
        }
    };
    fill(0, 2 * BLOCK, 1);
    fill(256 * BLOCK, 301 * BLOCK, 7);
    fill(700 * BLOCK, 700 * BLOCK + 10, 9);
    fill(size - 1000, size, 11);
    let f = fs::File::create(path).unwrap();
    f.set_len(size as u64).unwrap();
    // Write only the data, so that the file is sparse like a real image.
    for (from, to) in [
        (0, 2 * BLOCK),
        (256 * BLOCK, 301 * BLOCK),
        (700 * BLOCK, 701 * BLOCK),
        (size - 1000, size),
    ] {
        f.write_all_at(&image[from..to], from as u64).unwrap();
    }
    image
}

/// The bmap of `image`, as bmaptool writes it (every run of non-zero blocks one range),
/// with its file checksum.
fn make_bmap(image: &[u8]) -> String {
    let blocks = image.len().div_ceil(BLOCK);
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for b in 0..blocks {
        if image[b * BLOCK..((b + 1) * BLOCK).min(image.len())]
            .iter()
            .all(|&x| x == 0)
        {
            continue;
        }
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == b => *last = b,
            _ => runs.push((b, b)),
        }
    }
    let mapped: usize = runs.iter().map(|(a, b)| b - a + 1).sum();
    let mut ranges = String::new();
    for (a, b) in &runs {
        let sum = hex(&Sha256::digest(
            &image[a * BLOCK..((b + 1) * BLOCK).min(image.len())],
        ));
        let spec = if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        };
        ranges.push_str(&format!(
            "        <Range chksum=\"{sum}\"> {spec} </Range>\n"
        ));
    }
    seal(&format!(
        "<?xml version=\"1.0\" ?>\n<!-- made by the test -->\n<bmap version=\"2.0\">\n    \
         <ImageSize> {} </ImageSize>\n    <BlockSize> {BLOCK} </BlockSize>\n    \
         <BlocksCount> {blocks} </BlocksCount>\n    <MappedBlocksCount> {mapped} \
         </MappedBlocksCount>\n    <ChecksumType> sha256 </ChecksumType>\n    \
         <BmapFileChecksum> SUM </BmapFileChecksum>\n    <BlockMap>\n{ranges}    \
         </BlockMap>\n</bmap>\n",
        image.len()
    ))
}

/// `text` with SUM (or the old checksum) replaced by its correct file checksum.
fn seal(text: &str) -> String {
    let zero = text.replace("SUM", &"0".repeat(64));
    text.replace("SUM", &hex(&Sha256::digest(zero.as_bytes())))
}

fn reseal(text: &str) -> String {
    let start = text.find("<BmapFileChecksum> ").unwrap() + "<BmapFileChecksum> ".len();
    let old = &text[start..start + 64];
    seal(&text.replace(old, "SUM"))
}

/// An image directory: disk.img, disk.img.bmap; returns (dir, image bytes, bmap text).
fn image_dir(name: &str) -> (PathBuf, Vec<u8>, String) {
    let dir = scratch(name);
    let image = make_image(&dir.join("disk.img"));
    let bmap = make_bmap(&image);
    fs::write(dir.join("disk.img.bmap"), &bmap).unwrap();
    (dir, image, bmap)
}

fn config_keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/keys")
}

fn test_key(n: u8) -> keys::SecretKey {
    keys::read_secret(&config_keys().join(format!("test-only-signer-{n}.key"))).unwrap()
}

/// manifest.json listing the bmap's SHA-256 (as `make image` is asked to), and its
/// signature by `signers`.
fn write_manifest(dir: &Path, bmap: &str, signers: &[&keys::SecretKey]) -> Vec<u8> {
    let manifest = format!(
        "{{\"version\":\"0.1.0+g1a2b3c4\",\"board\":\"qemu-x86_64\",\"commit\":\"1a2b3c4\",\
         \"files\":{{\"disk.img.bmap\":{{\"sha256\":\"{}\"}}}}}}\n",
        hex(&Sha256::digest(bmap.as_bytes()))
    );
    fs::write(dir.join("manifest.json"), &manifest).unwrap();
    if !signers.is_empty() {
        let sig = sign_manifest(manifest.as_bytes(), signers).unwrap();
        fs::write(dir.join("manifest.json.sig"), sig).unwrap();
    }
    manifest.into_bytes()
}

#[test]
fn writes_only_the_mapped_blocks_and_verifies() {
    let (dir, image, _) = image_dir("good");
    let target = dir.join("stick.img");
    let (out, err) = run(&["flash", "--yes", p(&dir.join("disk.img")), p(&target)], 0);
    assert_eq!(fs::read(&target).unwrap(), image);
    assert!(
        out.contains("(no manifest; 4.0 MiB image, 193.0 KiB mapped in 4 ranges)"),
        "{out}"
    );
    assert!(
        out.contains("then read every one of its 4 ranges back: all match the bmap"),
        "{out}"
    );
    // Not a terminal: plain progress lines, for writing and for verifying.
    assert!(
        err.contains("gkctl flash: writing 100% (193.0 KiB of 193.0 KiB)"),
        "{err}"
    );
    assert!(err.contains("gkctl flash: verifying 100%"), "{err}");
    assert!(err.contains("s left"), "{err}");
    // Sparse: the holes were not written.
    let meta = fs::metadata(&target).unwrap();
    assert_eq!(meta.len(), image.len() as u64);
    assert!(
        meta.blocks() * 512 < 1024 * 1024,
        "{} blocks allocated",
        meta.blocks()
    );

    // Over an existing, larger file full of garbage: the result is the image exactly.
    fs::write(&target, vec![0xeeu8; 6 * 1024 * 1024]).unwrap();
    run(&["flash", "-y", p(&dir.join("disk.img")), p(&target)], 0);
    assert_eq!(fs::read(&target).unwrap(), image);

    // An explicit --bmap elsewhere works the same.
    fs::rename(dir.join("disk.img.bmap"), dir.join("other.bmap")).unwrap();
    let e = run(&["flash", "-y", p(&dir.join("disk.img")), p(&target)], 2).1;
    assert!(
        e.contains("cannot read the block map") && e.contains("--bmap"),
        "{e}"
    );
    let target2 = dir.join("stick2.img");
    run(
        &[
            "flash",
            "-y",
            "--bmap",
            p(&dir.join("other.bmap")),
            p(&dir.join("disk.img")),
            p(&target2),
        ],
        0,
    );
    assert_eq!(fs::read(&target2).unwrap(), image);
}

#[test]
fn a_damaged_image_range_is_detected() {
    let (dir, _, _) = image_dir("damaged");
    // One byte of the "file system" changes after the bmap was made.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("disk.img"))
        .unwrap();
    f.write_all_at(&[0], (280 * BLOCK + 5) as u64).unwrap();
    let target = dir.join("stick.img");
    let (_, err) = run(&["flash", "-y", p(&dir.join("disk.img")), p(&target)], 1);
    assert!(
        err.contains("refused: blocks 256-300 of")
            && err.contains("(bmap line 12) do not match their SHA-256"),
        "{err}"
    );
    assert!(err.contains("do not use it"), "{err}");
    // Data where the bmap says there is none is not written at all (not an error: the
    // bmap is the image's description), so a bmap that misses data is the builder's bug
    // and its signature the defence: see the manifest tests.
}

#[test]
fn a_wrong_bmap_is_refused_before_anything_is_written() {
    let (dir, _, bmap) = image_dir("badbmap");
    let img = dir.join("disk.img");
    let target = dir.join("stick.img");
    let bmap_path = dir.join("disk.img.bmap");

    // A range checksum edited by hand: the bmap's own checksum catches it.
    let first = bmap.find("chksum=\"").unwrap() + 8;
    let mut edited = bmap.clone();
    let c = if &bmap[first..first + 1] == "0" {
        "1"
    } else {
        "0"
    };
    edited.replace_range(first..first + 1, c);
    fs::write(&bmap_path, &edited).unwrap();
    let err = run(&["flash", "-y", p(&img), p(&target)], 1).1;
    assert!(
        err.contains("disk.img.bmap: line ")
            && err.contains("checksum does not match its contents"),
        "{err}"
    );
    assert!(!target.exists(), "nothing may be written");

    // The same edit, resealed: the range's checksum is now wrong, found while reading.
    fs::write(&bmap_path, reseal(&edited)).unwrap();
    let err = run(&["flash", "-y", p(&img), p(&target)], 1).1;
    assert!(
        err.contains("blocks 0-1 of") && err.contains("do not match their SHA-256"),
        "{err}"
    );

    // Another image's bmap (another size).
    let other = make_bmap(&vec![1u8; 3 * BLOCK]);
    fs::write(&bmap_path, other).unwrap();
    let err = run(&["flash", "-y", p(&img), p(&target)], 1).1;
    assert!(
        err.contains("is for an image of 12288 bytes") && err.contains("not its block map"),
        "{err}"
    );

    // Not a bmap at all.
    fs::write(&bmap_path, "hello").unwrap();
    let err = run(&["flash", "-y", p(&img), p(&target)], 1).1;
    assert!(err.contains("not valid XML"), "{err}");
}

#[test]
fn the_manifest_and_its_signature() {
    let (dir, image, bmap) = image_dir("manifest");
    let img = dir.join("disk.img");
    let target = dir.join("stick.img");
    let trust = config_keys();
    let k1 = test_key(1);
    let manifest = write_manifest(&dir, &bmap, &[&k1]);

    // Without --trust: shown, not verified.
    let out = run(&["flash", "-y", p(&img), p(&target)], 0).0;
    assert!(
        out.contains("manifest: version 0.1.0+g1a2b3c4, board qemu-x86_64, commit 1a2b3c4"),
        "{out}"
    );
    assert!(
        out.contains("manifest signature: not verified: no --trust"),
        "{out}"
    );
    assert!(
        out.contains("(gatekeeper 0.1.0+g1a2b3c4 for qemu-x86_64;"),
        "{out}"
    );
    assert!(out.contains("manifest lists this bmap's SHA-256"), "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("image: gatekeeper 0.1.0+g1a2b3c4 for qemu-x86_64"),
        "{out}"
    );

    // With --trust: verified, and said so at the end (the test keys are flagged).
    let out = run(
        &["flash", "-y", "--trust", p(&trust), p(&img), p(&target)],
        0,
    )
    .0;
    assert!(
        out.contains("manifest signature: ok, by 1 trusted key of 1 required: 06e5a652738c5f12 (test-only-signer-1) — TEST-ONLY keys"),
        "{out}"
    );
    assert_eq!(fs::read(&target).unwrap(), image);

    // A changed manifest: refused, nothing written.
    fs::remove_file(&target).unwrap();
    let mut changed = manifest.clone();
    let at = changed.windows(5).position(|w| w == b"0.1.0").unwrap();
    changed[at] = b'9';
    fs::write(dir.join("manifest.json"), &changed).unwrap();
    let (out, err) = run(
        &["flash", "-y", "--trust", p(&trust), p(&img), p(&target)],
        1,
    );
    assert!(out.contains("REFUSED (bad-signature)"), "{out}");
    assert!(
        err.contains("manifest.json.sig: bad signature by trusted key 06e5a652738c5f12"),
        "{err}"
    );
    assert!(!target.exists());

    // Signed by a key the store does not hold.
    let other = scratch("manifest-trust");
    let stranger = keys::generate("stranger");
    keys::write_pair(&other, &stranger).unwrap();
    write_manifest(&dir, &bmap, &[&k1]);
    let err = run(
        &["flash", "-y", "--trust", p(&other), p(&img), p(&target)],
        1,
    )
    .1;
    assert!(
        err.contains("signed only by key this box does not trust: 06e5a652738c5f12"),
        "{err}"
    );

    // Signed correctly, but for another build's bmap: the signature does not cover it.
    write_manifest(&dir, &make_bmap(&[1u8; 10]), &[&k1]);
    let err = run(
        &["flash", "-y", "--trust", p(&trust), p(&img), p(&target)],
        1,
    )
    .1;
    assert!(
        err.contains("does not list the SHA-256 of the bmap"),
        "{err}"
    );

    // No signature file, or no manifest at all, with --trust: refused.
    write_manifest(&dir, &bmap, &[]);
    fs::remove_file(dir.join("manifest.json.sig")).unwrap();
    let err = run(
        &["flash", "-y", "--trust", p(&trust), p(&img), p(&target)],
        1,
    )
    .1;
    assert!(
        err.contains("cannot read") && err.contains("manifest.json.sig"),
        "{err}"
    );
    fs::remove_file(dir.join("manifest.json")).unwrap();
    let err = run(
        &["flash", "-y", "--trust", p(&trust), p(&img), p(&target)],
        1,
    )
    .1;
    assert!(
        err.contains("there is no") && err.contains("manifest.json to verify"),
        "{err}"
    );
    assert!(!target.exists());

    // Two of three required, signed by two.
    let k2 = test_key(2);
    let store = scratch("manifest-2of3");
    for n in 1..=3 {
        let name = format!("test-only-signer-{n}.pub");
        fs::copy(trust.join(&name), store.join(&name)).unwrap();
    }
    fs::write(store.join("trust.toml"), "threshold = 2\n").unwrap();
    write_manifest(&dir, &bmap, &[&k1]);
    let err = run(
        &["flash", "-y", "--trust", p(&store), p(&img), p(&target)],
        1,
    )
    .1;
    assert!(err.contains("requires 2 distinct trusted signers"), "{err}");
    write_manifest(&dir, &bmap, &[&k1, &k2]);
    let out = run(
        &["flash", "-y", "--trust", p(&store), p(&img), p(&target)],
        0,
    )
    .0;
    assert!(out.contains("ok, by 2 trusted keys of 2 required"), "{out}");
}

/// Runs gkctl with `input` on its stdin.
fn run_with_stdin(args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gkctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn asks_before_writing_and_refuses_the_image_itself() {
    let (dir, image, _) = image_dir("confirm");
    let img = dir.join("disk.img");
    let target = dir.join("stick.img");
    for answer in ["", "no\n", "y\n", "YES please\n"] {
        let out = run_with_stdin(&["flash", p(&img), p(&target)], answer);
        assert_eq!(out.status.code(), Some(1), "{answer:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("Everything on") && err.contains("will be lost"),
            "{err}"
        );
        assert!(err.contains("not confirmed; nothing was written"), "{err}");
        assert!(!target.exists());
    }
    let out = run_with_stdin(&["flash", p(&img), p(&target)], "yes\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(fs::read(&target).unwrap(), image);

    let err = run(&["flash", "-y", p(&img), p(&img)], 1).1;
    assert!(err.contains("is the image itself"), "{err}");
    assert_eq!(fs::read(&img).unwrap(), image);
    let err = run(&["flash", "-y", p(&img), "/dev/null"], 1).1;
    assert!(
        err.contains("neither a block device nor a regular file"),
        "{err}"
    );
    let err = run(&["flash", "-y", p(&img), "/dev/sdzz9"], 1).1;
    assert!(err.contains("/dev/sdzz9 does not exist"), "{err}");
    let err = run(
        &["flash", "-y", p(&img), p(&dir.join("no/such/dir/x.img"))],
        2,
    )
    .1;
    assert!(err.contains("no such directory"), "{err}");
}

/// A block device node for major 240 (reserved for local/experimental use: no driver
/// here, so opening it fails with ENXIO and nothing can ever be written through it),
/// judged against a fake sysfs in which 240:0 is a USB stick, or an internal disk.
#[test]
fn block_device_refusals_from_the_command_line() {
    let (dir, _, _) = image_dir("blockdev");
    let node = dir.join("fake-sdx");
    let made = Command::new("mknod")
        .args([p(&node), "b", "240", "0"])
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("skipped: cannot mknod (not root?)");
        return;
    }
    let sys = dir.join("sys");
    let disk = |path: &str, removable: &str| {
        let _ = fs::remove_dir_all(&sys);
        let d = sys.join(path);
        fs::create_dir_all(d.join("sdx1")).unwrap();
        fs::write(d.join("dev"), "240:0\n").unwrap();
        fs::write(d.join("size"), "2097152\n").unwrap();
        fs::write(d.join("removable"), removable).unwrap();
        fs::write(d.join("sdx1/dev"), "240:1\n").unwrap();
        fs::write(d.join("sdx1/partition"), "1\n").unwrap();
        fs::create_dir_all(sys.join("dev/block")).unwrap();
        std::os::unix::fs::symlink(&d, sys.join("dev/block/240:0")).unwrap();
    };
    let mountinfo = dir.join("mountinfo");
    let img = dir.join("disk.img");
    let flash = |extra: &[&str], code: i32| {
        let mut args = vec![
            "flash",
            "-y",
            "--sysfs",
            p(&sys),
            "--mountinfo",
            p(&mountinfo),
        ];
        args.extend_from_slice(extra);
        args.push(p(&img));
        args.push(p(&node));
        run(&args, code).1
    };
    let usb =
        "devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host2/target2:0:0/2:0:0:0/block/sdx";
    disk(usb, "0\n");
    fs::write(&mountinfo, "27 1 8:2 / / rw - ext4 /dev/sda2 rw\n").unwrap();
    // Allowed: it gets as far as opening the node, which has no driver.
    let err = flash(&[], 2);
    assert!(
        err.contains("cannot open") && err.contains("fake-sdx"),
        "{err}"
    );
    // Mounted (a partition of it), even with --force.
    fs::write(
        &mountinfo,
        "27 1 8:2 / / rw - ext4 /dev/sda2 rw\n60 27 240:1 / /media/x rw - vfat /dev/sdx1 rw\n",
    )
    .unwrap();
    let err = flash(&["--force"], 1);
    assert!(
        err.contains("refused: /dev/sdx is mounted (sdx1 on /media/x)"),
        "{err}"
    );
    // The system disk, even with --force.
    fs::write(&mountinfo, "27 1 240:1 / / rw - ext4 /dev/sdx1 rw\n").unwrap();
    let err = flash(&["--force"], 1);
    assert!(
        err.contains("holds / (on sdx1)") && err.contains("system disk"),
        "{err}"
    );
    // An internal disk: refused, unless --force.
    disk(
        "devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sdx",
        "0\n",
    );
    fs::write(&mountinfo, "27 1 8:2 / / rw - ext4 /dev/sda2 rw\n").unwrap();
    let err = flash(&[], 1);
    assert!(err.contains("neither removable nor on USB"), "{err}");
    let err = flash(&["--force"], 2);
    assert!(err.contains("cannot open"), "{err}");
    // Too small (1 MiB for a 4 MiB image).
    disk(usb, "0\n");
    fs::write(sys.join(usb).join("size"), "2048\n").unwrap();
    let err = flash(&[], 1);
    assert!(err.contains("the image needs 4.0 MiB"), "{err}");
}
