//! The image boots to READY and forwards: a new box (no bundle) runs the factory
//! default, monitor mode, and passes everything.

use std::time::{Duration, Instant};

use gk_dataplane::testing::FrameBuilder;
use gk_hil::{require, require_image, Network, Options, Vm, HMI, PLC};

const HMI_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x21];
const PLC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];

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
    vm.plant.ping_until_answered(PLC, Duration::from_secs(60));
    let forwarded = vm.uptime();
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

/// Without root: the NICs on Unix datagram sockets (`-netdev dgram`), the test itself on
/// both wires. A new box forwards every frame unchanged, both ways, and in order.
#[test]
fn qemu_x86_64_forwards_between_datagram_sockets_without_root() {
    let Some(image) = require_image("qemu-x86_64") else {
        return;
    };
    let opts = Options {
        network: Network::Sockets,
        ..Options::default()
    };
    let mut vm = Vm::boot("boot-x86_64-sockets", &image, opts);
    let ready = vm.wait_console("GATEKEEPER READY", Duration::from_secs(180));
    let hmi = FrameBuilder::new(HMI_MAC, PLC_MAC);
    let plc = FrameBuilder::new(PLC_MAC, HMI_MAC);
    let (hmi_ip, plc_ip) = (HMI.parse().unwrap(), PLC.parse().unwrap());
    let frame = |n: u32, from_plant: bool| {
        let payload = format!("gk-hil rootless frame {n}");
        if from_plant {
            hmi.udp(hmi_ip, 40000, plc_ip, 2222, payload.as_bytes())
        } else {
            plc.udp(plc_ip, 2222, hmi_ip, 40000, payload.as_bytes())
        }
    };
    let is_ours = |f: &[u8]| {
        f.windows(b"gk-hil rootless".len())
            .any(|w| w == b"gk-hil rootless")
    };
    // The first frame through: the factory default starts forwarding a moment after
    // READY at the latest, so offer it until one arrives.
    let deadline = Instant::now() + gk_hil::scaled(Duration::from_secs(60));
    let forwarded = loop {
        vm.wire("plant").send(&frame(0, true));
        if vm
            .wire("asset")
            .recv_matching(Duration::from_secs(1), is_ours)
            .is_some()
        {
            break vm.uptime();
        }
        assert!(Instant::now() < deadline, "no frame came through the box");
    };
    // Drain duplicates of frame 0 that were still on their way.
    while vm
        .wire("asset")
        .recv_matching(Duration::from_millis(500), is_ours)
        .is_some()
    {}
    for (from_plant, (tx, rx)) in [(true, ("plant", "asset")), (false, ("asset", "plant"))] {
        for n in 1..=100 {
            let sent = frame(n, from_plant);
            vm.wire(tx).send(&sent);
            let got = vm
                .wire(rx)
                .recv_matching(gk_hil::scaled(Duration::from_secs(5)), is_ours)
                .unwrap_or_else(|| panic!("frame {n} from {tx} did not come out on {rx}"));
            assert_eq!(got, sent, "frame {n} from {tx} forwarded unchanged");
        }
    }
    // It reports what a policy would refuse: the events file (synced every second) on
    // the data partition names the frames' conversation.
    std::thread::sleep(Duration::from_secs(2));
    let data = vm.data_after_power_cut(&vm.dir.join("data-after"));
    let events = std::fs::read_to_string(data.join("events.jsonl")).unwrap_or_default();
    let reported = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|e| e["verdict"] == "would-deny" && e["dst"] == PLC && e["dport"] == 2222);
    assert!(
        reported,
        "a would-deny event for the HMI's UDP frames; events:\n{events}"
    );
    eprintln!(
        "qemu-x86_64 on datagram sockets: boot to READY {:.1} s, to the first forwarded frame {:.1} s; 200 of 200 frames forwarded unchanged",
        ready.as_secs_f64(),
        forwarded.as_secs_f64()
    );
}
