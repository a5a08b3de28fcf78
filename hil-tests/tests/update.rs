//! Image updates from a USB stick (config/UPDATE.md): a good update is installed into
//! the inactive slot, booted on trial and kept once it reaches READY; an update that
//! never reaches READY is tried three times by systemd-boot's boot counting and the box
//! falls back to the slot it came from. Either way a stick left in is not taken again.
//!
//! The update is `out/hil-update/<board>/update.gku`: the same commit built with
//! `gk-image build --variant update` (`make hil` builds it), so that its version and
//! root hash differ from the installed image's. A second one,
//! `out/hil-update-aaa/<board>/update.gku` (`--variant aaa`), has a version that sorts
//! *below* `+update`: installed over it, it must still be the entry that boots
//! (systemd-boot orders our entries by the install counter in the file name, not by
//! version). Each test boots its own VM; run them one at a time (`make hil` does).

use std::fs;
use std::io::{BufReader, Cursor};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use gk_bundle::keys;
use gk_bundle::trust::TrustStore;
use gk_bundle::update::{self, UpdateInfo};
use gk_hil::{make_stick, repo, require, scaled, Image, Options, Vm};

const BOARD: &str = "qemu-x86_64";
/// One boot to READY takes about 20 s under TCG; generous for a busy machine.
const BOOT: Duration = Duration::from_secs(180);
/// How long a box that has settled must stay up (no further reboot).
const SETTLED: Duration = Duration::from_secs(30);
/// What the firmware prints on every boot (OVMF's boot manager, on the serial console).
const FIRMWARE_BOOT: &str = "BdsDxe: starting Boot";

/// The update built from this commit with `--variant update`, next to the image's `out/`.
fn update_file(image: &Image) -> PathBuf {
    variant_update_file(image, "update")
}

/// The update built from this commit with `--variant <variant>`:
/// `out/hil-update/<board>/` for `update`, `out/hil-update-<variant>/<board>/` for others.
fn variant_update_file(image: &Image, variant: &str) -> PathBuf {
    let dir = if variant == "update" {
        "hil-update".to_string()
    } else {
        format!("hil-update-{variant}")
    };
    let file = image
        .dir
        .parent()
        .expect("out/<board> has a parent")
        .join(&dir)
        .join(&image.board)
        .join("update.gku");
    assert!(
        file.is_file(),
        "no {}: run `make hil` (it builds out/{dir}/{} with `gk-image build --variant {variant}`)",
        file.display(),
        image.board
    );
    file
}

/// An update file, checked against the test trust store, and its two payload parts.
struct Update {
    info: UpdateInfo,
    uki: Vec<u8>,
    root: Vec<u8>,
}

fn read_update(bytes: &[u8]) -> Update {
    let trust = TrustStore::load(&repo().join("config/keys")).expect("config/keys");
    let mut r = BufReader::new(Cursor::new(bytes));
    let (info, _signers) =
        update::read_header(&mut r, &trust, update::MAX_HEADER).expect("a valid update header");
    let mut uki = Vec::new();
    update::copy_part(&mut r, &info.uki(), &mut uki).expect("the UKI");
    let mut root = Vec::new();
    update::copy_part(&mut r, &info.root(), &mut root).expect("the root image");
    update::check_end(&mut r).expect("nothing after the payload");
    Update { info, uki, root }
}

/// The installed image's version (its manifest's).
fn installed_version(image: &Image) -> String {
    image.manifest()["version"]
        .as_str()
        .expect("manifest.json has a version")
        .to_string()
}

/// The console line that contains byte `at` (an offset `wait_console_from` returned).
fn line_at(console: &str, at: usize) -> String {
    let at = at.min(console.len());
    let start = console[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = console[at..].find('\n').map_or(console.len(), |i| at + i);
    console[start..end].trim_end().to_string()
}

/// Waits `SETTLED` and checks that the box did not boot again after byte `from`.
fn stays_up(vm: &Vm, from: usize) {
    std::thread::sleep(scaled(SETTLED));
    let later = &vm.console()[from..];
    for sign in [
        FIRMWARE_BOOT,
        "stage 1: gatekeeper",
        "GATEKEEPER BOOT FAILED",
    ] {
        assert!(
            !later.contains(sign),
            "the box booted again ({sign:?} on the console after it settled):\n{later}"
        );
    }
}

/// The files in the ESP's `/EFI/Linux`, read from the VM's disk after the power is cut
/// (mtools at the ESP's offset from the manifest).
fn esp_ukis(vm: &mut Vm, image: &Image) -> Vec<String> {
    let (esp, _) = image.partition("gk-esp");
    let raw = vm.disk_after_power_cut();
    let out = Command::new("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-b")
        .arg("-i")
        .arg(format!("{}@@{esp}", raw.display()))
        .arg("::/EFI/Linux")
        .output()
        .expect("mdir");
    let _ = fs::remove_file(&raw);
    assert!(
        out.status.success(),
        "mdir: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().rsplit('/').next().map(str::to_string))
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    fs::write(vm.dir.join("esp-after.txt"), names.join("\n") + "\n").ok();
    names
}

/// Boots the image to READY on slot a and plugs a stick holding `gku` as `update.gku`.
/// Returns the VM, the console offset after READY and the time of the plug.
fn boot_and_plug(test: &str, image: &Image, gku: &[u8]) -> (Vm, usize, Instant) {
    let mut vm = Vm::boot(test, image, Options::default());
    let (ready, at) = vm.wait_console_from(0, "GATEKEEPER READY", BOOT);
    let console = vm.console();
    assert!(console.contains("stage 2: slot a"), "a new box runs slot a");
    let line = line_at(&console, at);
    assert!(
        line.contains(&installed_version(image)),
        "{line:?}: the installed version"
    );
    // The first READY marks the boot good; only then is an update taken.
    let (_, at) = vm.wait_console_from(at, "boot of slot a marked good", Duration::from_secs(30));
    let stick = vm.dir.join("stick.img");
    make_stick(&stick, &[("update.gku", gku)]);
    let plugged = Instant::now();
    vm.plug_stick("stick0", &stick);
    eprintln!(
        "{test}: READY on slot a {:.1} s after QEMU started; stick plugged",
        ready.as_secs_f64()
    );
    (vm, at, plugged)
}

/// Where a kept update's console got to, and when.
struct Kept {
    /// Just after "not taken: this box already runs it".
    at: usize,
    /// Just after the READY line of the new version.
    ready_at: usize,
    /// From the plug to "installed …; rebooting into it".
    installed: Duration,
    /// From the plug to READY.
    ready: Duration,
}

/// Follows the console from `at` (after the plug at `plugged`) through an update that is
/// kept: `version` is installed into `slot` as boot entry `entry` (`gatekeeper-2-b`)
/// with three tries, the box reboots into that slot, reaches READY with that version and
/// marks the boot good (`entry+2-1.efi` → `entry.efi`: systemd-boot counted the trial),
/// and the stick left in is not taken again.
fn follow_kept_update(
    vm: &Vm,
    at: usize,
    plugged: Instant,
    version: &str,
    slot: char,
    entry: &str,
) -> Kept {
    let (_, at) = vm.wait_console_from(
        at,
        &format!("update {version} for {BOARD}"),
        Duration::from_secs(60),
    );
    let line = line_at(&vm.console(), at);
    assert!(
        line.contains(&format!("installing into slot {slot}")),
        "{line:?}"
    );
    let (_, at) = vm.wait_console_from(
        at,
        &format!("boot entry {entry}+3.efi written (3 tries)"),
        Duration::from_secs(120),
    );
    let (_, at) = vm.wait_console_from(
        at,
        &format!("update {version} installed in slot {slot}; rebooting into it"),
        Duration::from_secs(120),
    );
    let installed = plugged.elapsed();
    let (_, at) = vm.wait_console_from(at, FIRMWARE_BOOT, Duration::from_secs(60));
    let (_, at) = vm.wait_console_from(at, "stage 2: slot", BOOT);
    let line = line_at(&vm.console(), at);
    assert!(
        line.contains(&format!("stage 2: slot {slot}")),
        "systemd-boot booted {line:?}: the entry installed last ({entry}+3.efi, version \
         {version}) must boot"
    );
    let (_, ready_at) =
        vm.wait_console_from(at, &format!("GATEKEEPER READY {version} {BOARD}"), BOOT);
    let ready = plugged.elapsed();
    let (_, at) = vm.wait_console_from(
        ready_at,
        &format!("boot of slot {slot} marked good: {entry}+2-1.efi -> {entry}.efi"),
        Duration::from_secs(30),
    );
    let (_, at) = vm.wait_console_from(
        at,
        "not taken: this box already runs it",
        Duration::from_secs(60),
    );
    Kept {
        at,
        ready_at,
        installed,
        ready,
    }
}

/// Waits `SETTLED` after a kept update and checks that READY came once.
fn settles(vm: &Vm, kept: &Kept) {
    stays_up(vm, kept.at);
    assert_eq!(
        vm.console()[kept.ready_at..]
            .matches("GATEKEEPER READY")
            .count(),
        0,
        "READY once after the update"
    );
}

#[test]
fn an_update_on_usb_installs_into_slot_b_and_is_kept_once_it_reaches_ready() {
    let Some(image) = require(BOARD) else {
        return;
    };
    let test = "update-kept";
    let gku = fs::read(update_file(&image)).expect("update.gku");
    let new = read_update(&gku).info;
    let old = installed_version(&image);
    assert!(
        new.version.ends_with("+update") && new.version != old,
        "the update ({}) is the installed image ({old}) built as variant `update`",
        new.version
    );

    let (mut vm, at, plugged) = boot_and_plug(test, &image, &gku);
    let kept = follow_kept_update(&vm, at, plugged, &new.version, 'b', "gatekeeper-2-b");
    settles(&vm, &kept);
    let console = vm.console();
    assert_eq!(
        console.matches(FIRMWARE_BOOT).count(),
        2,
        "two boots: slot a, then slot b"
    );
    assert_eq!(
        esp_ukis(&mut vm, &image),
        ["gatekeeper-1-a.efi", "gatekeeper-2-b.efi"],
        "both slots' entries, slot b's marked good"
    );
    eprintln!(
        "{test}: plug -> installed and rebooting {:.1} s, plug -> READY {} on slot b {:.1} s",
        kept.installed.as_secs_f64(),
        new.version,
        kept.ready.as_secs_f64()
    );
}

/// The update, with one hex digit of the UKI's `gk.verity=` changed (same length: the
/// PE checksum is not checked without secure boot), re-signed: validly signed, but no
/// slot verifies under that root hash, so stage 1 fails on every try.
fn broken_update(good: &Update) -> (Vec<u8>, String) {
    let needle = b"gk.verity=";
    let hits: Vec<usize> = good
        .uki
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i + needle.len())
        .collect();
    assert_eq!(hits.len(), 1, "one gk.verity= in the UKI's command line");
    let at = hits[0];
    let old_hash = String::from_utf8_lossy(&good.uki[at..at + 64]).into_owned();
    assert_eq!(
        old_hash, good.info.verity_root,
        "the UKI boots the header's root"
    );
    let mut uki = good.uki.clone();
    uki[at] = if uki[at] == b'0' { b'1' } else { b'0' };
    let bad_hash = String::from_utf8_lossy(&uki[at..at + 64]).into_owned();
    let (uki_len, uki_sha256) = update::measure(&mut Cursor::new(&uki)).expect("measure");
    let info = UpdateInfo {
        uki_len,
        uki_sha256,
        verity_root: bad_hash.clone(),
        ..good.info.clone()
    };
    let key = keys::read_secret(&repo().join("config/keys/test-only-signer-1.key"))
        .expect("config/keys/test-only-signer-1.key");
    let mut out = Vec::new();
    update::write_update(
        &mut out,
        &info,
        &mut Cursor::new(&uki),
        &mut Cursor::new(&good.root),
        &[&key],
    )
    .expect("write_update");
    (out, bad_hash)
}

#[test]
fn an_update_that_never_reaches_ready_falls_back_to_the_previous_slot() {
    let Some(image) = require(BOARD) else {
        return;
    };
    let test = "update-fallback";
    let good = read_update(&fs::read(update_file(&image)).expect("update.gku"));
    let (gku, bad_hash) = broken_update(&good);
    let old = installed_version(&image);

    let (mut vm, at, plugged) = boot_and_plug(test, &image, &gku);
    fs::write(vm.dir.join("broken.gku.verity"), &bad_hash).ok();
    let (_, at) = vm.wait_console_from(
        at,
        "installed in slot b; rebooting into it",
        Duration::from_secs(120),
    );
    let installed = plugged.elapsed();
    // Three tries of slot b, each failing in stage 1 and rebooting, then slot a again.
    let mut tries = Vec::new();
    let mut at = at;
    for n in 1..=3 {
        let (_, a) = vm.wait_console_from(at, FIRMWARE_BOOT, Duration::from_secs(120));
        let (_, a) = vm.wait_console_from(a, "stage 1: gatekeeper", BOOT);
        let (_, a) = vm.wait_console_from(
            a,
            &format!("GATEKEEPER BOOT FAILED: no root slot verifies against gk.verity={bad_hash}"),
            Duration::from_secs(120),
        );
        let (_, a) = vm.wait_console_from(
            a,
            "GATEKEEPER BOOT FAILED: rebooting in 10 s",
            Duration::from_secs(30),
        );
        tries.push(plugged.elapsed());
        eprintln!(
            "{test}: try {n} of slot b failed in stage 1, {:.1} s after the plug",
            plugged.elapsed().as_secs_f64()
        );
        at = a;
    }
    let (_, a) = vm.wait_console_from(at, FIRMWARE_BOOT, Duration::from_secs(120));
    let (_, a) = vm.wait_console_from(a, "stage 2: slot a", BOOT);
    let (_, a) = vm.wait_console_from(a, &format!("GATEKEEPER READY {old} {BOARD}"), BOOT);
    let back = plugged.elapsed();
    // Slot a's entry never had a counter: nothing to rename.
    let (_, a) = vm.wait_console_from(
        a,
        "boot of slot a marked good: nothing to do",
        Duration::from_secs(30),
    );
    // The stick is still in; the update it holds fell back and is not installed again.
    let (_, a) = vm.wait_console_from(
        a,
        "not taken: it was installed before and did not stay",
        Duration::from_secs(60),
    );
    stays_up(&vm, a);
    let boots = vm.console().matches(FIRMWARE_BOOT).count();
    assert_eq!(boots, 5, "slot a, three tries of slot b, slot a again");
    assert_eq!(
        esp_ukis(&mut vm, &image),
        ["gatekeeper-1-a.efi", "gatekeeper-2-b+0-3.efi"],
        "slot b's entry is left with no tries"
    );
    eprintln!(
        "{test}: plug -> installed {:.1} s; tries failed at {} s; plug -> READY on slot a again {:.1} s; {} boots after the plug",
        installed.as_secs_f64(),
        tries
            .iter()
            .map(|t| format!("{:.1}", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        back.as_secs_f64(),
        boots - 1
    );
}

/// systemd-boot 252 orders entries with tries left by os-release sort key and version
/// before the file name; the UKI's `.osrel` has neither (image/src/build.rs,
/// `os_release`), so the install counter decides. `…+aaa` is below `…+update` as a
/// version (`strverscmp`: `aaa` < `update`): with a version in the `.osrel`, the second
/// update would stay `+3`, untried, and slot b would boot again.
#[test]
fn an_update_whose_version_sorts_lower_is_still_tried_and_kept() {
    let Some(image) = require(BOARD) else {
        return;
    };
    let test = "update-lower-version";
    let first = fs::read(update_file(&image)).expect("update.gku (+update)");
    let second = fs::read(variant_update_file(&image, "aaa")).expect("update.gku (+aaa)");
    let v1 = read_update(&first).info.version;
    let v2 = read_update(&second).info.version;
    let old = installed_version(&image);
    assert!(
        v1 == format!("{old}+update") && v2 == format!("{old}+aaa"),
        "the updates ({v1}, {v2}) are the installed image ({old}) as variants update and aaa"
    );

    // 1. +update into slot b (install counter 2), kept.
    let (mut vm, at, plugged) = boot_and_plug(test, &image, &first);
    let kept = follow_kept_update(&vm, at, plugged, &v1, 'b', "gatekeeper-2-b");
    eprintln!(
        "{test}: plug -> READY {v1} on slot b {:.1} s",
        kept.ready.as_secs_f64()
    );

    // 2. +aaa, a lower version, into slot a (install counter 3): it must boot.
    vm.unplug_stick("stick0");
    // (The init tells sticks apart by insertion, so even a swap within its 2 s poll
    // would be read; the pause keeps the two sticks' console lines apart.)
    std::thread::sleep(scaled(Duration::from_secs(5)));
    let stick = vm.dir.join("stick-aaa.img");
    make_stick(&stick, &[("update.gku", &second)]);
    let plugged = Instant::now();
    vm.plug_stick("stick1", &stick);
    let kept = follow_kept_update(&vm, kept.at, plugged, &v2, 'a', "gatekeeper-3-a");
    settles(&vm, &kept);
    let console = vm.console();
    assert_eq!(
        console.matches(FIRMWARE_BOOT).count(),
        3,
        "three boots: slot a, slot b (+update), slot a (+aaa)"
    );
    assert_eq!(
        esp_ukis(&mut vm, &image),
        ["gatekeeper-2-b.efi", "gatekeeper-3-a.efi"],
        "slot b's entry and slot a's new one, marked good"
    );
    eprintln!(
        "{test}: second plug -> installed and rebooting {:.1} s, second plug -> READY {v2} on slot a {:.1} s",
        kept.installed.as_secs_f64(),
        kept.ready.as_secs_f64()
    );
}
