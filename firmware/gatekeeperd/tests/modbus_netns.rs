//! Modbus/TCP through gatekeeperd between real peers: a pymodbus server on the PLC, the
//! pymodbus client and a raw-socket client on the plant side. Reads pass, writes and
//! units and addresses outside the policy are refused the way the policy says (a reset
//! both ways, or an exception in the server's name), and events name the operation.

mod common;

use common::*;
use serde_json::Value;

fn policy(mode: &str, extra: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "modbus-netns"
mode = "{mode}"
[events]
rate = 50
burst = 50
[hosts.plc]
ip = "{PLC}"
mac = "{PLC_MAC}"
[hosts.hmi]
ip = "{HMI}"
[hosts.intruder]
ip = "{INTRUDER}"
[[rule]]
name = "hmi-reads"
from = "hmi"
to = "plc"
proto = "modbus"
action = "allow"
[rule.modbus]
units = [1]
preset = "read-only"
addresses = ["0-99"]
[[rule]]
name = "hmi-setpoints"
from = "hmi"
to = "plc"
proto = "modbus"
action = "allow"
log = true
[rule.modbus]
units = [1]
functions = ["write-single-register", "write-multiple-registers"]
addresses = ["100-149"]
{extra}
"#
    )
}

/// Starts the pymodbus server on the PLC (port 502) and waits until it listens.
fn modbus_server(net: &mut Net) {
    let script = peer_script("modbus_peer.py");
    net.spawn(
        "plc",
        &format!("{} -u {script} server --port 502", python()),
    );
    net.wait_listening("plc", "tcp", 502);
}

/// Runs the peer script in `role`; one JSON value per operation.
fn peer(net: &Net, role: &str, args: &str) -> Vec<Value> {
    peer_json(net, role, "modbus_peer.py", args)
}

#[test]
fn pymodbus_reads_and_allowed_writes_pass_the_rest_is_reset() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("modbus-enforce");
    modbus_server(&mut net);
    net.start_daemon(&policy("enforce", ""), &[]);

    // The real client: reads of 0-99, a set-point write inside 100-149, read back.
    let r = peer(
        &net,
        "hmi",
        &format!("client {PLC} read-hr:0:10 write-hr:120:7 read-hr:120:1 read-coils:0:8"),
    );
    assert_eq!(results(&r), ["ok", "ok", "failed", "failed"], "{r:?}");
    assert_eq!(
        r[0]["values"],
        serde_json::json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    );
    // Reading 120 is outside hmi-reads' addresses: the connection was reset, so the
    // next request (a coil read) had no connection left either.
    let e = net.wait_event("the write was logged", |e| {
        e["rule"] == "hmi-setpoints" && e["verdict"] == "allow"
    });
    assert_eq!(e["op"]["function"], "write-single-register");
    assert_eq!(e["op"]["address"], 120);
    let e = net.wait_event("the read of 120 was denied", |e| {
        e["verdict"] == "deny"
            && e["op"]["address"] == 120
            && e["op"]["function"] == "read-holding-registers"
    });
    assert_eq!(e["reason"], "address");
    assert_eq!(e["rule"], "hmi-reads");
    assert_eq!(e["op"]["protocol"], "modbus");
    assert_eq!(e["op"]["unit"], 1);
    assert_eq!(e["op"]["count"], 1);

    // What the network did, seen by a plain socket: a write outside every rule's
    // addresses gets a reset; so do another unit and a coil write.
    for (op, reason) in [
        ("write-hr:10:1", "address"),
        ("read-hr:0:1@2", "unit"),
        ("write-coil:3:1", "function"),
    ] {
        let r = peer(&net, "hmi", &format!("raw {PLC} read-hr:0:1 {op}"));
        assert_eq!(results(&r), ["ok", "reset"], "{op}: {r:?}");
        net.wait_event(&format!("{op} denied for {reason}"), |e| {
            e["verdict"] == "deny" && e["reason"] == reason
        });
    }

    // The intruder has no rule at all: its connection never opens.
    let r = peer(&net, "intr", &format!("raw {PLC} read-hr:0:1 --timeout 1"));
    assert_eq!(results(&r), ["timeout"], "{r:?}");
}

#[test]
fn segmented_coalesced_and_malformed_requests() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("modbus-segments");
    modbus_server(&mut net);
    net.start_daemon(&policy("enforce", ""), &[]);

    // Each request in two segments with a pause between: judged whole, answered.
    let r = peer(
        &net,
        "hmi",
        &format!("raw {PLC} read-hr:0:2 read-hr:10:2 --split 5"),
    );
    assert_eq!(results(&r), ["ok", "ok"], "{r:?}");
    // A denied request in two segments: the first part passes (harmless on its own),
    // the second is dropped and the connection reset.
    let r = peer(&net, "hmi", &format!("raw {PLC} write-coil:1:1 --split 5"));
    assert_eq!(results(&r), ["reset"], "{r:?}");
    // Two requests in one segment, the second denied: the segment is dropped and reset.
    let r = peer(
        &net,
        "hmi",
        &format!("raw {PLC} read-hr:0:1 write-coil:1:1 --together"),
    );
    assert_eq!(results(&r)[0], "reset", "{r:?}");
    net.wait_event("the coalesced write was denied", |e| {
        e["verdict"] == "deny" && e["op"]["function"] == "write-single-coil"
    });
    // Bytes that are not Modbus at all.
    let r = peer(&net, "hmi", &format!("garbage {PLC}"));
    assert_eq!(results(&r), ["reset"], "{r:?}");
    let e = net.wait_event("garbage is malformed", |e| e["reason"] == "malformed");
    assert_eq!(e["detail"], "protocol id is not 0");
}

#[test]
fn modbus_exception_answers_and_the_connection_lives_on() {
    if !require_root() {
        return;
    }
    let extra = r#"
[[rule]]
name = "intruder-reads"
from = "intruder"
to = "plc"
proto = "modbus"
action = "allow"
on-deny = "modbus-exception"
[rule.modbus]
preset = "read-only"
addresses = ["0-49"]
"#;
    let mut net = Net::new("modbus-exception");
    modbus_server(&mut net);
    net.start_daemon(&policy("enforce", extra), &[]);

    // The real pymodbus client sees Modbus exceptions and keeps its connection: reads
    // before and after the refused requests work.
    let r = peer(
        &net,
        "intr",
        &format!(
            "client {PLC} read-hr:0:3 write-hr:5:1 read-hr:60:1 read-hr:40:2 write-hrs:1:1,2 read-hr:1:1"
        ),
    );
    assert_eq!(
        results(&r),
        ["ok", "exception", "exception", "ok", "exception", "ok"],
        "{r:?}"
    );
    assert_eq!(r[1]["code"], 1, "illegal function");
    assert_eq!(r[2]["code"], 2, "illegal data address");
    assert_eq!(r[3]["values"], serde_json::json!([40, 41]));
    assert_eq!(
        r[5]["values"],
        serde_json::json!([1]),
        "the write never reached the PLC"
    );

    // Bulk reads after the exceptions still flow both ways (renumbered segments).
    let many: Vec<String> = (0..40).map(|i| format!("read-hr:{}:10", i % 40)).collect();
    let r = peer(
        &net,
        "intr",
        &format!("client {PLC} write-hr:3:3 {}", many.join(" ")),
    );
    assert_eq!(r.len(), 41);
    assert_eq!(r[0]["result"], "exception");
    assert!(r[1..].iter().all(|v| v["result"] == "ok"), "{r:?}");
    let e = net.wait_event("the refused write is reported", |e| {
        e["rule"] == "intruder-reads" && e["op"]["function"] == "write-single-register"
    });
    assert_eq!(e["reason"], "function");
}

#[test]
fn monitor_mode_forwards_writes_and_reports_them() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("modbus-monitor");
    modbus_server(&mut net);
    net.start_daemon(&policy("monitor", ""), &[]);
    let r = peer(
        &net,
        "hmi",
        &format!("client {PLC} write-hr:10:42 read-hr:10:1 write-coil:2:1"),
    );
    assert_eq!(results(&r), ["ok", "ok", "ok"], "{r:?}");
    assert_eq!(r[1]["values"], serde_json::json!([42]));
    let e = net.wait_event("would-deny the write", |e| {
        e["verdict"] == "would-deny"
            && e["op"]["address"] == 10
            && e["op"]["function"] == "write-single-register"
    });
    assert_eq!(e["reason"], "address");
    assert_eq!(e["rule"], "hmi-setpoints");
    net.wait_event("would-deny the coil", |e| {
        e["verdict"] == "would-deny" && e["op"]["function"] == "write-single-coil"
    });
}
