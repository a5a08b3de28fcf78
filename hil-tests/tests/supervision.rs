//! The init keeps the box honest: a killed gatekeeperd is restarted, a crash loop ends in
//! the board's failure mode (fail-closed on the QEMU boards: nothing passes), and a hung
//! init is reset by the hardware watchdog. The faults are caused through the test image's
//! hooks: files under `gk-test/` on a USB stick.

use std::time::{Duration, Instant};

use gk_hil::{make_stick, require, scaled, Image, Vm, HMI, PLC};

const BOOT: Duration = Duration::from_secs(180);

/// Boots `out/qemu-x86_64`, waits for READY, plugs a stick holding the test hooks
/// `hooks`; returns the VM and the console offset before the plug.
fn boot_and_hook(test: &str, hooks: &[&str]) -> Option<(Vm, usize)> {
    let image = require("qemu-x86_64")?;
    boot_image_and_hook(test, &image, hooks)
}

fn boot_image_and_hook(test: &str, image: &Image, hooks: &[&str]) -> Option<(Vm, usize)> {
    let mut vm = Vm::boot(test, image, Default::default());
    vm.wait_console("GATEKEEPER READY", BOOT);
    assert!(vm.plant.ping(PLC, 2), "the factory default forwards");
    let files: Vec<(String, Vec<u8>)> = hooks
        .iter()
        .map(|h| (format!("gk-test/{h}"), Vec::new()))
        .collect();
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let stick = vm.dir.join("hooks.img");
    make_stick(&stick, &files);
    let from = vm.console().len();
    vm.plug_stick("hooks", &stick);
    Some((vm, from))
}

#[test]
fn a_killed_daemon_is_restarted_and_forwards_again() {
    let Some((vm, from)) = boot_and_hook("kill-daemon", &["kill-daemon"]) else {
        return;
    };
    let (_, at) = vm.wait_console_from(from, "SIGKILL to gatekeeperd", Duration::from_secs(60));
    let killed = Instant::now();
    let (_, at) = vm.wait_console_from(at, "restarting in", Duration::from_secs(30));
    vm.wait_console_from(at, "GATEKEEPER READY", Duration::from_secs(60));
    let back = killed.elapsed();
    assert!(vm.plant.ping(PLC, 2), "forwarding again after the restart");
    eprintln!(
        "gatekeeperd killed: READY again {:.1} s later",
        back.as_secs_f64()
    );
}

#[test]
fn a_crash_loop_ends_fail_closed_and_nothing_passes() {
    let Some((vm, from)) = boot_and_hook("crash-loop", &["crash-loop"]) else {
        return;
    };
    let (_, at) = vm.wait_console_from(
        from,
        "next starts of gatekeeperd fail",
        Duration::from_secs(60),
    );
    let started = Instant::now();
    let (_, at) = vm.wait_console_from(at, "a crash loop", Duration::from_secs(120));
    let (_, at) = vm.wait_console_from(
        at,
        "GATEKEEPER FAIL-CLOSED: FORWARDING NOTHING",
        Duration::from_secs(60),
    );
    let failed = started.elapsed();
    // Both ports are down: nothing passes, in either direction, and it stays that way.
    assert!(
        !vm.plant.ping(PLC, 3),
        "fail-closed: the plant side reaches nothing"
    );
    assert!(!vm.asset.ping(HMI, 3), "nor the asset side");
    vm.wait_console_from(
        at,
        "GATEKEEPER FAIL-CLOSED: FORWARDING NOTHING",
        Duration::from_secs(30),
    );
    let console = vm.console();
    assert!(
        !console[at..].contains("gatekeeperd started"),
        "no more restarts once fail-closed"
    );
    eprintln!(
        "crash loop: fail-closed {:.1} s after the first sabotaged start",
        failed.as_secs_f64()
    );
}

#[test]
fn a_hung_init_is_reset_by_the_watchdog_and_comes_back() {
    let Some((vm, from)) = boot_and_hook("watchdog", &["hang"]) else {
        return;
    };
    let (_, at) =
        vm.wait_console_from(from, "no more watchdog keepalives", Duration::from_secs(60));
    let hung = Instant::now();
    // The i6300esb resets the machine: the firmware and stage 1 run again.
    let (_, at) = vm.wait_console_from(at, "stage 1: gatekeeper", scaled(Duration::from_secs(120)));
    let reset = hung.elapsed();
    vm.wait_console_from(at, "GATEKEEPER READY", BOOT);
    let back = hung.elapsed();
    assert!(vm.plant.ping(PLC, 2), "forwarding again after the reset");
    eprintln!(
        "watchdog: reset {:.1} s after the keepalives stopped (timeout 30 s), READY again after {:.1} s",
        reset.as_secs_f64(),
        back.as_secs_f64()
    );
}

/// The same image built `--on-failure fail-open` (a site that must keep the plant
/// running): a crash loop ends with everything forwarded unfiltered, and the console
/// says so, again and again.
#[test]
fn a_crash_loop_on_a_fail_open_box_forwards_everything_and_says_so() {
    let Some(base) = require("qemu-x86_64") else {
        return;
    };
    let image = Image {
        board: base.board.clone(),
        dir: base
            .dir
            .parent()
            .expect("out/")
            .join("hil-failopen")
            .join(&base.board),
    };
    assert!(
        image.disk().exists(),
        "no {}: run `make hil` (it builds the fail-open variant)",
        image.disk().display()
    );
    let Some((vm, from)) = boot_image_and_hook("crash-loop-fail-open", &image, &["crash-loop"])
    else {
        return;
    };
    let (_, at) = vm.wait_console_from(from, "a crash loop", Duration::from_secs(120));
    let (_, at) = vm.wait_console_from(
        at,
        "GATEKEEPER FAIL-OPEN: FORWARDING UNFILTERED",
        Duration::from_secs(90),
    );
    // Unfiltered: what no policy allows passes, both ways.
    let mut listener = vm.asset.listen_tcp(8080, &vm.dir.join("listen-8080.log"));
    std::thread::sleep(Duration::from_secs(1));
    assert!(vm.plant.ping(PLC, 2), "fail-open forwards the plant side");
    assert!(vm.asset.ping(HMI, 2), "and the asset side");
    let connects = vm
        .plant
        .sh(&format!(
            "python3 -c \"import socket; socket.create_connection(('{PLC}', 8080), timeout=3).close()\""
        ))
        .status
        .success();
    assert!(connects, "any TCP port passes");
    // Said again, not once.
    vm.wait_console_from(
        at,
        "GATEKEEPER FAIL-OPEN: FORWARDING UNFILTERED",
        Duration::from_secs(30),
    );
    let _ = listener.kill();
    let _ = listener.wait();
}
