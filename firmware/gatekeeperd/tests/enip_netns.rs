//! EtherNet/IP through gatekeeperd between real peers that nobody here wrote: cpppo's
//! simulated Logix controller on the asset side (plc), cpppo's and pycomm3's clients on
//! the plant side (hmi). Reads pass, writes are refused with a reset that the client
//! sees, objects and tags outside the rule are refused with their reasons, malformed
//! encapsulation is refused, and every verdict is in the events with its operation.
//! Implicit I/O (UDP 2222) is sent as specification-built datagrams on plain sockets:
//! no PyPI peer speaks it.

mod common;

use common::*;
use serde_json::Value;

fn policy(mode: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "enip-netns"
mode = "{mode}"
[l2]
ethertypes = ["arp", "ipv4"]
[events]
rate = 200
burst = 200
[hosts.plc]
ip = "{PLC}"
mac = "{PLC_MAC}"
[hosts.hmi]
ip = "{HMI}"
[[rule]]
name = "hmi-reads"
from = "hmi"
to = "plc"
proto = "enip"
action = "allow"
log = true
[rule.enip]
preset = "read-only"
classes = ["identity", "symbol"]
tags = ["Setpoint*", "Level"]
[[rule]]
name = "hmi-heartbeats"
from = "hmi"
to = "plc"
proto = "enip-io"
action = "allow"
[rule.enip-io]
preset = "read-only"
"#
    )
}

/// Runs the peer script in `role` with `args` (each word quoted for the shell); one
/// JSON value per line it printed.
fn peer(net: &Net, role: &str, args: &str) -> Vec<Value> {
    let quoted: Vec<String> = args.split(' ').map(|a| format!("'{a}'")).collect();
    let script = format!(
        "{} {} {}",
        python(),
        peer_script("enip_peer.py"),
        quoted.join(" ")
    );
    let out = net.try_sh(role, &format!("timeout 30 {script}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn results(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l["result"].as_str().unwrap_or("?"))
        .collect()
}

fn start_plc(net: &mut Net) {
    let script = format!(
        "{} {} server 'Setpoint=INT[10]' 'Level=REAL' 'Recipe=DINT[4]'",
        python(),
        peer_script("enip_peer.py")
    );
    net.spawn("plc", &script);
    net.wait_listening("plc", "tcp", 44818);
}

#[test]
fn reads_pass_and_writes_objects_and_tags_outside_the_rule_are_refused() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("enip-enforce");
    start_plc(&mut net);
    net.start_daemon(&policy("enforce"), &[]);

    // Reading tags through Unconnected Send (cpppo's client), one at a time and packed
    // in a Multiple Service Packet.
    let lines = peer(&net, "hmi", &format!("tags {PLC} Setpoint[0-3] Level"));
    assert_eq!(results(&lines), ["ok", "ok"], "{lines:?}");
    assert_eq!(lines[0]["value"], serde_json::json!([0, 0, 0, 0]));
    let lines = peer(
        &net,
        "hmi",
        &format!("tags {PLC} --multiple Setpoint[0-3] Level"),
    );
    assert_eq!(results(&lines), ["ok", "ok"], "{lines:?}");
    let read = net.wait_event("an allowed tag read", |e| {
        e["verdict"] == "allow" && e["op"]["service"] == "read-tag"
    });
    assert_eq!(read["rule"], "hmi-reads");
    assert_eq!(read["op"]["protocol"], "enip");
    assert_eq!(read["op"]["command"], "send-rr-data");
    assert_eq!(read["op"]["tag"], "Setpoint[0]");
    assert_eq!(read["op"]["routed"], true);

    // Get_Attribute_Single of the identity's product name over a class 3 connection
    // (pycomm3: Large Forward Open, SendUnitData, Forward Close) and unconnected.
    let lines = peer(&net, "hmi", &format!("attr {PLC} 1 1 7"));
    assert_eq!(results(&lines), ["ok"], "{lines:?}");
    let lines = peer(&net, "hmi", &format!("attr {PLC} 1 1 7 --unconnected"));
    assert_eq!(results(&lines), ["ok"], "{lines:?}");
    let connected = net.wait_event("a connected request", |e| {
        e["op"]["command"] == "send-unit-data" && e["op"]["service"] == "get-attribute-single"
    });
    assert_eq!(connected["op"]["class"], "identity");
    assert_eq!(connected["op"]["attribute"], 7);
    assert!(connected["op"]["connection"].is_u64());
    net.wait_event("the class 3 forward open", |e| {
        e["op"]["service"] == "large-forward-open" && e["op"]["transport_class"] == 3
    });

    // Discovery over TCP (pycomm3) and UDP (cpppo).
    assert_eq!(
        results(&peer(&net, "hmi", &format!("identity {PLC}"))),
        ["ok"]
    );
    assert_eq!(
        results(&peer(&net, "hmi", &format!("identity-udp {PLC}"))),
        ["ok"]
    );
    net.wait_event("list identity over UDP", |e| {
        e["proto"] == "udp" && e["op"]["command"] == "list-identity"
    });

    // A write: the client sees the reset, the value stays, the event says why.
    let lines = peer(&net, "hmi", &format!("tags {PLC} Setpoint[1]=(INT)7"));
    assert_eq!(results(&lines), ["reset"], "{lines:?}");
    let denied = net.wait_event("the denied write", |e| {
        e["verdict"] == "deny" && e["op"]["service"] == "write-tag"
    });
    assert_eq!(denied["reason"], "function");
    assert_eq!(denied["rule"], "hmi-reads");
    assert_eq!(denied["op"]["service"], "write-tag");
    assert_eq!(denied["op"]["tag"], "Setpoint[1]");
    assert_eq!(denied["port"], "plant");
    let lines = peer(&net, "hmi", &format!("tags {PLC} Setpoint[1]"));
    assert_eq!(
        lines[0]["value"],
        serde_json::json!([0]),
        "the write never arrived"
    );

    // A write hidden in a Multiple Service Packet between two reads.
    let lines = peer(
        &net,
        "hmi",
        &format!("tags {PLC} --multiple Setpoint[0] Setpoint[2]=(INT)9 Level"),
    );
    assert!(results(&lines).iter().all(|r| *r == "reset"), "{lines:?}");
    net.wait_event("the denied packet", |e| {
        e["verdict"] == "deny" && e["op"]["service"] == "multiple-service-packet"
    });

    // An object outside `classes` (the assembly) and a tag outside `tags`.
    let lines = peer(&net, "hmi", &format!("attr {PLC} 4 1 3 --unconnected"));
    assert_eq!(results(&lines), ["reset"], "{lines:?}");
    let object = net.wait_event("the denied object", |e| e["reason"] == "object");
    assert_eq!(object["op"]["class"], "assembly");
    let lines = peer(&net, "hmi", &format!("tags {PLC} Recipe[0-1]"));
    assert_eq!(results(&lines), ["reset"], "{lines:?}");
    let address = net.wait_event("the denied tag", |e| e["reason"] == "address");
    assert_eq!(address["op"]["tag"], "Recipe[0]");

    // Malformed encapsulation: a RegisterSession with options set, then bytes that are
    // not EtherNet/IP at all.
    let bad = "65000400000000000000000000000000000000000100000001000000";
    let lines = peer(&net, "hmi", &format!("raw {PLC} {bad}"));
    assert_eq!(results(&lines), ["reset"], "{lines:?}");
    let malformed = net.wait_event("the malformed header", |e| e["reason"] == "malformed");
    assert_eq!(malformed["detail"], "options are not 0");
    let http = hex(b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n");
    assert_eq!(
        results(&peer(&net, "hmi", &format!("raw {PLC} {http}"))),
        ["reset"]
    );

    let (code, stderr) = net.stop_daemon();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("hmi-reads"), "{stderr}");
}

#[test]
fn monitor_mode_lets_a_write_through_and_reports_it() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("enip-monitor");
    start_plc(&mut net);
    net.start_daemon(&policy("monitor"), &[]);
    let lines = peer(
        &net,
        "hmi",
        &format!("tags {PLC} Setpoint[3]=(INT)5 Setpoint[3]"),
    );
    assert_eq!(results(&lines), ["ok", "ok"], "{lines:?}");
    assert_eq!(lines[1]["value"], serde_json::json!([5]));
    let e = net.wait_event("would-deny", |e| {
        e["verdict"] == "would-deny" && e["op"]["protocol"] == "enip"
    });
    assert_eq!(e["reason"], "function");
    assert_eq!(e["op"]["service"], "write-tag");
}

#[test]
fn io_heartbeats_pass_and_output_data_does_not() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("enip-io");
    let listen = format!(
        "{} {} io-listen --seconds 6",
        python(),
        peer_script("enip_peer.py")
    );
    net.spawn("plc", &listen);
    net.wait_listening("plc", "udp", 2222);
    net.start_daemon(&policy("enforce"), &[]);
    // Class 1 packets (Volume 2, 3-2.2): sequenced address item (connection 0x10,
    // sequence n), connected data item: a heartbeat holds only the 16-bit sequence
    // count; an output packet adds the run/idle header and data.
    let heartbeat = [
        "0200", "0280", "0800", "10000000", "01000000", "b100", "0200", "0100",
    ]
    .concat();
    let outputs = [
        "0200", "0280", "0800", "10000000", "02000000", "b100", "0a00", "0200", "01000000",
        "0102aabb",
    ]
    .concat();
    let sent = peer(
        &net,
        "hmi",
        &format!("io-send {PLC} {heartbeat} {outputs} {heartbeat}"),
    );
    assert_eq!(results(&sent), ["sent"]);
    let e = net.wait_event("the refused outputs", |e| e["reason"] == "object");
    assert_eq!(e["rule"], "hmi-heartbeats");
    assert_eq!(e["op"]["protocol"], "enip-io");
    assert_eq!(e["op"]["size"], 10);
    // What the plc received: the two heartbeats only.
    net.stop_background();
    let log = std::fs::read_to_string(net.dir.join("plc-bg0.log")).unwrap();
    let got: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v["result"] == "datagram")
        .collect();
    assert_eq!(got.len(), 2, "{log}");
    assert!(got
        .iter()
        .all(|v| v["hex"].as_str().unwrap().ends_with("0100")));
}
