//! The bundle lifecycle on the real image: bad bundles on a USB stick are refused and the
//! policy in force stays; the policy survives a reboot (a reset: no clean shutdown) and
//! the audit log's chain is intact, read off the data partition afterwards.

use std::time::Duration;

use gk_bundle::format::Metadata;
use gk_hil::{make_stick, require, signed_bundle, Vm, PLC};
use serde_json::json;
use time::OffsetDateTime;

const BOOT: Duration = Duration::from_secs(180);

/// Ping and TCP 502 from the HMI are allowed; TCP 8080 is not.
const POLICY: &str = r#"schema = 1
[gatekeeper]
name = "hil-lifecycle"
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
name = "hmi-502"
from = "hmi"
to = "plc"
proto = "tcp"
ports = [502]
action = "allow"
"#;

fn bundle(serial: u64, edit: impl FnOnce(&mut Metadata)) -> Vec<u8> {
    signed_bundle(serial, POLICY, |meta| {
        meta.confirm_window = Some(Duration::from_secs(900));
        edit(meta);
    })
}

/// Whether a TCP connection from the HMI to the PLC's `port` is accepted.
fn connects(vm: &Vm, port: u16) -> bool {
    vm.plant.tcp_connects(PLC, port)
}

/// What the policy in force lets through: (ping, TCP 502, TCP 8080).
fn enforced(vm: &Vm) -> (bool, bool, bool) {
    (vm.plant.ping(PLC, 2), connects(vm, 502), connects(vm, 8080))
}

#[test]
fn bad_bundles_on_usb_are_refused_and_the_policy_survives_a_reset_with_its_audit_log() {
    let Some(image) = require("qemu-x86_64") else {
        return;
    };
    let mut vm = Vm::boot("lifecycle", &image, Default::default());
    vm.wait_console("GATEKEEPER READY", BOOT);
    let listeners = [502u16, 8080].map(|port| {
        vm.asset
            .listen_tcp(port, &vm.dir.join(format!("listen-{port}.log")))
    });
    std::thread::sleep(Duration::from_secs(1));

    // A good bundle on a stick, confirmed by its health check (the box has no shell for
    // `gkctl confirm`).
    let policy = format!(
        "{POLICY}[[health]]\nname = \"hmi-502\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\nports = [502]\nwithin = 300\n"
    );
    let good = signed_bundle(5, &policy, |meta| meta.comment = Some("good".into()));
    let stick = vm.dir.join("good.img");
    make_stick(&stick, &[("good.gkb", &good)]);
    let from = vm.console().len();
    vm.plug_stick("good", &stick);
    vm.wait_console_from(from, "bundle serial 5 is in force", BOOT);
    assert!(connects(&vm, 502), "the health check's traffic");
    vm.wait_console_from(from, "bundle confirmed", Duration::from_secs(60));
    vm.unplug_stick("good");
    assert_eq!(enforced(&vm), (true, true, false), "serial 5 in force");

    // Four bad bundles on one stick.
    let mut tampered = bundle(6, |_| {});
    let at = tampered.len() - 5;
    tampered[at] ^= 0x01;
    let older = bundle(3, |_| {});
    let wrong_device = bundle(7, |m| m.devices = vec!["some-other-box".into()]);
    let expired = bundle(8, |m| {
        m.created = OffsetDateTime::now_utc() - Duration::from_secs(2 * 86_400);
        m.expires = Some(OffsetDateTime::now_utc() - Duration::from_secs(86_400));
    });
    let stick = vm.dir.join("bad.img");
    make_stick(
        &stick,
        &[
            ("tampered.gkb", &tampered),
            ("older.gkb", &older),
            ("wrong-device.gkb", &wrong_device),
            ("expired.gkb", &expired),
        ],
    );
    let from = vm.console().len();
    vm.plug_stick("bad", &stick);
    for (file, code) in [
        ("tampered.gkb", "bad-signature"),
        ("older.gkb", "rollback"),
        ("wrong-device.gkb", "wrong-device"),
        ("expired.gkb", "expired"),
    ] {
        let (_, at) = vm.wait_console_from(from, &format!("({file})"), Duration::from_secs(60));
        let console = vm.console();
        let line_end = console[at..].find('\n').map_or(console.len(), |i| at + i);
        let line_start = console[..at].rfind('\n').map_or(0, |i| i + 1);
        let line = &console[line_start..line_end];
        assert!(
            line.contains(&format!("bundle refused ({code})")),
            "{file}: {line}"
        );
    }
    assert_eq!(
        enforced(&vm),
        (true, true, false),
        "serial 5 stays in force"
    );

    // A reset (no clean shutdown): the box comes back with serial 5.
    let from = vm.console().len();
    vm.qmp("system_reset", json!({}));
    vm.wait_console_from(from, "GATEKEEPER READY", BOOT);
    let after = &vm.console()[from..];
    assert!(
        after.contains("the bundle in force") && after.contains("serial=5"),
        "serial 5 restored from the data partition:\n{after}"
    );
    assert!(!after.contains("FACTORY DEFAULT"), "not a new box any more");
    assert_eq!(
        enforced(&vm),
        (true, true, false),
        "serial 5 enforced after the reset"
    );
    for mut l in listeners {
        let _ = l.kill();
        let _ = l.wait();
    }

    // The audit log, read off the disk, verifies and tells the whole story.
    let state = vm
        .data_after_power_cut(&vm.dir.join("data-after"))
        .join("state");
    let report = gk_bundle::state::audit_verify(&state).expect("the audit log");
    assert!(report.is_intact(), "the audit chain is intact: {report:?}");
    let entries: Vec<_> = report.valid_entries().collect();
    let confirmed = |outcome: &str| {
        entries
            .iter()
            .any(|e| e.serial == Some(5) && e.outcome == outcome)
    };
    assert!(
        confirmed("pending") && confirmed("confirmed"),
        "{entries:?}"
    );
    // Every refusal is audited with its reason (serials are not recorded for refusals).
    let refusals: Vec<&str> = entries
        .iter()
        .filter(|e| e.outcome == "refused")
        .filter_map(|e| e.reason.as_deref())
        .collect();
    for code in ["bad-signature", "rollback", "wrong-device", "expired"] {
        assert!(
            refusals.iter().any(|r| r.starts_with(code)),
            "{code} audited: {refusals:?}"
        );
    }
}

#[test]
fn a_power_cut_during_an_apply_leaves_the_old_or_the_new_bundle_never_nothing() {
    let Some(image) = require("qemu-x86_64") else {
        return;
    };
    let mut vm = Vm::boot("power-cut", &image, Default::default());
    vm.wait_console("GATEKEEPER READY", BOOT);
    let listeners = [502u16, 8080].map(|port| {
        vm.asset
            .listen_tcp(port, &vm.dir.join(format!("listen-{port}.log")))
    });
    std::thread::sleep(Duration::from_secs(1));
    let health = "[[health]]\nname = \"hmi-502\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\nports = [502]\nwithin = 300\n";
    // The old policy allows TCP 502; the new ones 502 and 8080: what passes tells them
    // apart, and neither is "nothing" (fail-closed) or "everything" (factory default).
    let old = signed_bundle(5, &format!("{POLICY}{health}"), |_| {});
    let stick = vm.dir.join("old.img");
    make_stick(&stick, &[("old.gkb", &old)]);
    let from = vm.console().len();
    vm.plug_stick("old", &stick);
    vm.wait_console_from(from, "bundle serial 5 is in force", BOOT);
    assert!(connects(&vm, 502));
    vm.wait_console_from(from, "bundle confirmed", Duration::from_secs(60));
    vm.unplug_stick("old");
    let old_policy = (true, true, false);
    let new_policy = (true, true, true);
    assert_eq!(enforced(&vm), old_policy);

    let mut outcomes = Vec::new();
    // Cut the power at different moments of the apply: as the stick is read, while the
    // bundle is verified and stored, and once it is pending.
    for (round, delay_ms) in [0u64, 300, 1200].into_iter().enumerate() {
        let serial = 6 + round as u64;
        let new_text = format!(
            "{}[[rule]]\nname = \"hmi-8080\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\nports = [8080]\naction = \"allow\"\n{health}",
            POLICY.replace("hil-lifecycle", &format!("hil-new-{serial}"))
        );
        let bundle = signed_bundle(serial, &new_text, |_| {});
        let stick = vm.dir.join(format!("new-{serial}.img"));
        make_stick(&stick, &[(&format!("new-{serial}.gkb"), &bundle)]);
        let from = vm.console().len();
        let id = format!("new{serial}");
        vm.plug_stick(&id, &stick);
        vm.wait_console_from(from, " inserted (", Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(delay_ms));
        vm.unplug_stick(&id);
        vm.qmp("system_reset", serde_json::json!({}));
        let (_, at) = vm.wait_console_from(from, "stage 1: gatekeeper", BOOT);
        vm.wait_console_from(at, "GATEKEEPER READY", BOOT);
        let after = enforced(&vm);
        assert!(
            after == old_policy || after == new_policy,
            "round {round} (cut {delay_ms} ms after the stick was seen): (ping, 502, 8080) = {after:?}: neither the old nor the new bundle"
        );
        assert!(
            !vm.console()[at..].contains("FACTORY DEFAULT"),
            "round {round}: the box forgot its bundles"
        );
        outcomes.push((delay_ms, if after == old_policy { "old" } else { "new" }));
    }
    for mut l in listeners {
        let _ = l.kill();
        let _ = l.wait();
    }
    // The audit log survived all three cuts.
    let state = vm
        .data_after_power_cut(&vm.dir.join("data-after"))
        .join("state");
    let report = gk_bundle::state::audit_verify(&state).expect("the audit log");
    assert!(report.is_intact(), "the audit chain is intact: {report:?}");
    eprintln!("power cuts during an apply, (delay, bundle in force after): {outcomes:?}");
}
