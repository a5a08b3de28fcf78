//! A signed bundle on a USB stick is taken by the box and enforced against real peers:
//! a pymodbus client on the plant side, a pymodbus server on the asset side (reads pass,
//! writes are refused), ping, and a TCP port that must stay closed.

use std::time::{Duration, Instant};

use gk_hil::{make_stick, peer, python, require, scaled, signed_bundle, Side, Vm, PLC};

const POLICY: &str = r#"schema = 1
[gatekeeper]
name = "hil-modbus"
mode = "enforce"
[hosts.plc]
ip = "10.10.0.10"
[hosts.hmi]
ip = "10.10.0.21"
[[rule]]
name = "hmi-ping"
from = "hmi"
to = "plc"
proto = "icmp"
icmp = ["echo-request"]
action = "allow"
[[rule]]
name = "hmi-reads"
from = "hmi"
to = "plc"
proto = "modbus"
action = "allow"
[rule.modbus]
units = [1]
functions = ["read-holding-registers"]
addresses = ["0-199"]
[[health]]
name = "hmi-polls-plc"
from = "hmi"
to = "plc"
proto = "modbus"
within = 300
"#;

/// One pymodbus client connection doing `ops`: what the peer printed for each.
fn modbus_values(side: &Side, ops: &str) -> Vec<serde_json::Value> {
    let out = side.sh(&format!(
        "{} {} client {PLC} {ops} --timeout 3",
        python(),
        peer("modbus_peer.py").display()
    ));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// The `result` of each op.
fn modbus(side: &Side, ops: &str) -> Vec<String> {
    modbus_values(side, ops)
        .iter()
        .map(|v| v["result"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn a_bundle_on_usb_is_applied_and_enforced_against_real_peers() {
    bundle_on_usb("bundle-usb", "qemu-x86_64");
}

/// The same on the ARM64 image (TCG on ARM is slower; the scenario is the same).
#[test]
fn qemu_aarch64_applies_a_bundle_from_usb_and_enforces_it() {
    bundle_on_usb("bundle-usb-aarch64", "qemu-aarch64");
}

fn bundle_on_usb(test: &str, board: &str) {
    let Some(image) = require(board) else {
        return;
    };
    let mut vm = Vm::boot(test, &image, Default::default());
    vm.wait_console("GATEKEEPER READY", Duration::from_secs(180));
    let server_log = vm.dir.join("modbus-server.log");
    let server = format!(
        "exec {} {} server --port 502",
        python(),
        peer("modbus_peer.py").display()
    );
    let closed_log = vm.dir.join("port-8080.log");
    let children = [
        vm.asset.spawn(&server, &server_log),
        vm.asset.listen_tcp(8080, &closed_log),
    ];
    let deadline = Instant::now() + scaled(Duration::from_secs(30));
    while !std::fs::read_to_string(&server_log)
        .unwrap_or_default()
        .contains("ready")
    {
        assert!(
            Instant::now() < deadline,
            "the pymodbus server did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Factory default: everything passes, even the write and the port no policy allows.
    assert_eq!(modbus(&vm.plant, "read-hr:0:4 write-hr:10:7"), ["ok", "ok"]);
    assert!(
        vm.plant.tcp_connects(PLC, 8080),
        "factory default forwards everything"
    );

    let stick = vm.dir.join("stick.img");
    make_stick(
        &stick,
        &[(
            "site.gkb",
            &signed_bundle(1, POLICY, |meta| {
                meta.comment = Some("HIL test bundle".into());
                meta.policy_file = Some("hil-modbus.toml".into());
            }),
        )],
    );
    let plugged = Instant::now();
    vm.plug_stick("stick", &stick);
    let from = vm.console().len();
    vm.wait_console_from(from, "taken into the inbox", Duration::from_secs(60));
    vm.wait_console_from(from, "bundle serial 1 is in force", Duration::from_secs(60));
    let in_force = plugged.elapsed();
    // The health check confirms it once the HMI's polls are seen both ways.
    assert_eq!(
        modbus(&vm.plant, "read-hr:0:4 read-hr:100:10"),
        ["ok", "ok"]
    );
    vm.wait_console_from(from, "bundle confirmed", Duration::from_secs(60));

    // Enforced: reads pass, the write is refused (the connection is reset), ping passes,
    // the port no rule allows stays closed.
    assert_eq!(modbus(&vm.plant, "read-hr:0:4"), ["ok"]);
    let write = modbus(&vm.plant, "write-hr:10:99");
    assert_ne!(write, ["ok"], "the write must not reach the PLC: {write:?}");
    let read = modbus_values(&vm.plant, "read-hr:10:1");
    assert_eq!(
        read.first().map(|v| v["values"].clone()),
        Some(serde_json::json!([7])),
        "register 10 kept the value written before the bundle: {read:?}"
    );
    assert!(vm.plant.ping(PLC, 2), "ping is allowed");
    assert!(!vm.plant.tcp_connects(PLC, 8080), "TCP 8080 stays closed");
    eprintln!(
        "{board}: bundle on USB in force {:.1} s after plugging the stick",
        in_force.as_secs_f64()
    );
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}
