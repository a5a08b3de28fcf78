//! gatekeeperd refuses to start, with a clear message and a non-zero exit, when it
//! cannot do its job safely.

mod common;

use std::process::Command;

use common::*;

const GOOD: &str = r#"
schema = 1
[gatekeeper]
name = "startup"
mode = "enforce"
"#;

fn start(net: &Net, policy: &str, plant: &str, asset: &str) -> (i32, String) {
    let path = net.write_policy(policy);
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.ns("gk"),
            env!("CARGO_BIN_EXE_gatekeeperd"),
        ])
        .args(["--plant", plant, "--asset", asset, "--unsigned-policy"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn refuses_a_missing_interface() {
    if !require_root() {
        return;
    }
    let net = Net::new("missing-if");
    let (code, stderr) = start(&net, GOOD, "plant", "nosuch0");
    assert_ne!(code, 0);
    assert!(stderr.contains("nosuch0"), "{stderr}");
}

#[test]
fn refuses_ports_whose_mtus_differ() {
    if !require_root() {
        return;
    }
    let net = Net::new("mtu");
    net.sh("gk", "ip link set asset mtu 1400");
    let (code, stderr) = start(&net, GOOD, "plant", "asset");
    assert_ne!(code, 0);
    assert!(
        stderr.contains("MTU") && stderr.contains("1400") && stderr.contains("1500"),
        "{stderr}"
    );
}

#[test]
fn refuses_a_port_that_has_an_ip_address() {
    if !require_root() {
        return;
    }
    let net = Net::new("has-ip");
    net.sh("gk", "ip addr add 192.0.2.1/24 dev plant");
    let (code, stderr) = start(&net, GOOD, "plant", "asset");
    assert_ne!(code, 0);
    assert!(
        stderr.contains("plant") && stderr.contains("address"),
        "{stderr}"
    );
}

#[test]
fn refuses_a_bad_policy_with_its_line() {
    if !require_root() {
        return;
    }
    let net = Net::new("bad-policy");
    let bad = "schema = 1\n[gatekeeper]\nname = \"x\"\nmode = \"enforce\"\n\n[[rule]]\nname = \"r\"\nfrom = \"nobody\"\nto = \"any\"\naction = \"allow\"\n";
    let (code, stderr) = start(&net, bad, "plant", "asset");
    assert_ne!(code, 0);
    assert!(
        stderr.contains("policy.toml:8:"),
        "expected file:line of `from`: {stderr}"
    );
    assert!(stderr.contains("nobody"), "{stderr}");
    // The ports were left alone: no promiscuous mode, still able to carry IPv6.
    let flags = net.sh("gk", "cat /sys/class/net/plant/flags");
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 0x100, 0, "IFF_PROMISC left set");
}

#[test]
fn restores_the_ports_on_exit() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("restore");
    let before = net.sh(
        "gk",
        "cat /sys/class/net/plant/flags /proc/sys/net/ipv6/conf/plant/disable_ipv6",
    );
    net.start_daemon(GOOD, &[]);
    let during = net.sh(
        "gk",
        "cat /sys/class/net/plant/flags /proc/sys/net/ipv6/conf/plant/disable_ipv6",
    );
    assert_ne!(before, during, "the daemon changes the port while it runs");
    let (code, stderr) = net.stop_daemon();
    assert_eq!(code, 0, "{stderr}");
    let after = net.sh(
        "gk",
        "cat /sys/class/net/plant/flags /proc/sys/net/ipv6/conf/plant/disable_ipv6",
    );
    assert_eq!(before, after, "ports restored on exit");
}
