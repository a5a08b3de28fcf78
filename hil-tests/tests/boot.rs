//! The image boots to READY and forwards: a new box (no bundle) runs the factory
//! default, monitor mode, and passes everything.

use std::time::{Duration, Instant};

use gk_hil::{require, Options, Vm, PLC};

/// Boots `board` to READY, then pings through it until the first answer; returns both
/// times (from QEMU's start).
fn boot_and_forward(test: &str, board: &str) -> Option<(Duration, Duration)> {
    let image = require(board)?;
    let vm = Vm::boot(test, &image, Options::default());
    let ready = vm.wait_console("GATEKEEPER READY", Duration::from_secs(180));
    let line = vm
        .console()
        .lines()
        .find(|l| l.contains("GATEKEEPER READY"))
        .unwrap_or_default()
        .to_string();
    assert!(line.ends_with(board), "{line:?} names the board");
    // The first frame through: the HMI pings the PLC until an answer comes back.
    let deadline = Instant::now() + gk_hil::scaled(Duration::from_secs(60));
    let forwarded = loop {
        if vm.plant.ping(PLC, 1) {
            break vm.uptime();
        }
        assert!(
            Instant::now() < deadline,
            "no ping answered through the box"
        );
    };
    // A new box says it runs the factory default.
    assert!(
        vm.console().contains("FACTORY DEFAULT"),
        "factory default on the console"
    );
    eprintln!(
        "{board}: boot to READY {:.1} s, to the first forwarded ping {:.1} s",
        ready.as_secs_f64(),
        forwarded.as_secs_f64()
    );
    Some((ready, forwarded))
}

#[test]
fn qemu_x86_64_boots_to_ready_and_forwards_in_factory_monitor_mode() {
    boot_and_forward("boot-x86_64", "qemu-x86_64");
}

#[test]
fn qemu_aarch64_boots_to_ready_and_forwards_in_factory_monitor_mode() {
    boot_and_forward("boot-aarch64", "qemu-aarch64");
}

/// The image of the small UEFI x86 boxes on a machine like theirs: AHCI disk, Intel igb
/// ports behind PCIe root ports (the board's real driver and PCI addresses), the
/// chipset's TCO watchdog.
#[test]
fn x86_64_generic_boots_on_igb_ports_and_forwards() {
    boot_and_forward("boot-x86_64-generic", "x86_64-generic");
}

/// The legacy-BIOS image (syslinux) under SeaBIOS, on the same kind of machine.
#[test]
fn x86_64_bios_boots_through_syslinux_and_forwards() {
    boot_and_forward("boot-x86_64-bios", "x86_64-bios");
}
