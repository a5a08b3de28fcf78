//! DNP3 through gatekeeperd between real peers: the opendnp3 master (yadnp3) on the
//! HMI, the opendnp3 outstation on the PLC (link address 10, TCP 20000). Integrity polls
//! and class reads pass; controls and restarts outside the policy are refused with a
//! reset both ways (the master's channel closes and opens again, the outstation never
//! sees the command); link addresses, objects and point indices outside the policy,
//! the presets, malformed frames from a plain socket and monitor mode behave as
//! documented, and the events name the operation.

mod common;

use common::*;
use serde_json::Value;

const PEER: &str = "dnp3_peer.py";

fn policy(mode: &str, preset: &str) -> String {
    policy_with(mode, "", preset)
}

/// The policy with `first` (more rules) ahead of the HMI's main rule.
fn policy_with(mode: &str, first: &str, preset: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "dnp3-netns"
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
{first}
[[rule]]
name = "hmi-dnp3"
from = "hmi"
to = "plc"
proto = "dnp3"
action = "allow"
log = true
[rule.dnp3]
outstations = [10]
masters = [1]
preset = "{preset}"
"#
    )
}

/// Relays 0-3 by select-before-operate or direct operate, ahead of a read-only rule.
const BREAKERS: &str = r#"
[[rule]]
name = "hmi-breakers"
from = "hmi"
to = "plc"
proto = "dnp3"
action = "allow"
log = true
[rule.dnp3]
outstations = [10]
functions = ["select", "operate", "direct-operate"]
objects = ["g12v1"]
indices = ["0-3"]
"#;

/// Starts the opendnp3 outstation on the PLC and waits until it listens.
fn outstation(net: &mut Net) {
    net.spawn(
        "plc",
        &format!("{} -u {} outstation", python(), peer_script(PEER)),
    );
    net.wait_listening("plc", "tcp", 20000);
}

/// What the outstation carried out so far (its log, one JSON line per command).
fn carried_out(net: &Net) -> Vec<Value> {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&net.dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("plc-bg") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            seen.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
        }
    }
    seen
}

/// Runs the peer script in `role`; one JSON value per line it printed.
fn peer(net: &Net, role: &str, args: &str) -> Vec<Value> {
    peer_json(net, role, PEER, args)
}

/// The result of each operation (the channel line left out).
fn op_results(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .filter(|v| v["op"] != "channel")
        .map(|v| v["result"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// How often the master's channel opened.
fn opened(values: &[Value]) -> usize {
    values
        .iter()
        .find(|v| v["op"] == "channel")
        .and_then(|v| v["states"].as_array())
        .map_or(0, |s| s.iter().filter(|s| *s == "OPEN").count())
}

#[test]
fn opendnp3_polls_pass_controls_and_restarts_are_reset() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("dnp3-enforce");
    outstation(&mut net);
    net.start_daemon(&policy("enforce", "read-only"), &[]);

    let r = peer(
        &net,
        "hmi",
        &format!("master {PLC} integrity class1 operate:3 integrity cold-restart integrity"),
    );
    let got = op_results(&r);
    // The startup sequence (disable unsolicited, clear the restart bit, integrity
    // poll, enable unsolicited) is read-only, and so are the scans.
    assert_eq!(got[..3], ["success", "success", "success"], "{r:?}");
    assert_eq!(r[1]["binaries"][0], serde_json::json!([0, true]), "{r:?}");
    assert_eq!(r[1]["analogs"][0], serde_json::json!([0, 42.0]), "{r:?}");
    // The direct operate and the cold restart fail: the connection was reset. The
    // master opened its channel again each time and went on polling.
    assert_ne!(got[3], "success", "{r:?}");
    assert_eq!(got[4], "success", "{r:?}");
    assert_ne!(got[5], "success", "{r:?}");
    assert_eq!(got[6], "success", "{r:?}");
    assert!(
        opened(&r) >= 3,
        "the channel opened again after each reset: {r:?}"
    );
    let done = carried_out(&net);
    assert!(
        done.is_empty(),
        "the outstation carried out nothing: {done:?}"
    );

    let e = net.wait_event("the direct operate was denied", |e| {
        e["verdict"] == "deny" && e["op"]["function"] == "direct-operate"
    });
    assert_eq!(e["reason"], "function");
    assert_eq!(e["rule"], "hmi-dnp3");
    assert_eq!(e["op"]["protocol"], "dnp3");
    assert_eq!(e["op"]["destination"], 10);
    assert_eq!(e["op"]["source"], 1);
    assert_eq!(e["op"]["group"], 12);
    assert_eq!(e["op"]["variation"], 1);
    assert_eq!(e["op"]["index"], 3);
    assert_eq!(e["op"]["count"], 1);
    assert_eq!(e["dport"], 20000);
    let e = net.wait_event("the cold restart was denied", |e| {
        e["verdict"] == "deny" && e["op"]["function"] == "cold-restart"
    });
    assert_eq!(e["reason"], "function");
    // Allowed requests are logged (log = true) with what they asked for.
    let e = net.wait_event("an integrity poll was logged", |e| {
        e["verdict"] == "allow" && e["op"]["function"] == "read" && e["op"]["headers"] == 4
    });
    assert_eq!(e["op"]["group"], 60);

    // What the network does, seen by a plain socket: a poll is answered, a cold
    // restart is met with a reset.
    let r = peer(&net, "hmi", &format!("raw {PLC} poll restart"));
    assert_eq!(op_results(&r), ["answered", "reset"], "{r:?}");

    // The same master against another outstation address: every request is refused
    // for its link address, and nothing is ever answered.
    let r = peer(
        &net,
        "hmi",
        &format!("master {PLC} integrity --outstation 11 --timeout 1"),
    );
    assert!(op_results(&r).iter().all(|x| x != "success"), "{r:?}");
    let e = net.wait_event("outstation 11 was refused", |e| {
        e["verdict"] == "deny" && e["op"]["destination"] == 11
    });
    assert_eq!(e["reason"], "unit");

    // The intruder has no rule at all: its connection never opens.
    let r = peer(&net, "intr", &format!("raw {PLC} poll --timeout 1"));
    assert_eq!(op_results(&r), ["timeout"], "{r:?}");
}

/// What the outstation carried out, as (event, index).
fn commands(net: &Net) -> Vec<(String, Value)> {
    carried_out(net)
        .iter()
        .map(|v| {
            (
                v["event"].as_str().unwrap_or("?").to_string(),
                v["index"].clone(),
            )
        })
        .collect()
}

fn command(event: &str, index: u64) -> (String, Value) {
    (event.to_string(), Value::from(index))
}

#[test]
fn controls_by_object_and_index_presets_malformed_frames_and_monitor_mode() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("dnp3-controls");
    outstation(&mut net);
    net.start_daemon(&policy_with("enforce", BREAKERS, "read-only"), &[]);

    // Relays 0-3 may be operated; relay 9 is outside `indices`, an analog output block
    // (g41) outside `objects`: both refused by the rule that came closest.
    let r = peer(
        &net,
        "hmi",
        &format!("master {PLC} sbo:2 operate:1 operate:9 analog:1:77 integrity"),
    );
    let got = op_results(&r);
    assert_eq!(got[..3], ["success"; 3], "startup, sbo:2, operate:1: {r:?}");
    assert_ne!(got[3], "success", "operate:9: {r:?}");
    assert_ne!(got[4], "success", "analog:1:77: {r:?}");
    assert_eq!(got[5], "success", "{r:?}");
    assert_eq!(
        commands(&net),
        [
            command("select", 2),
            command("operate", 2),
            command("operate", 1)
        ],
        "the outstation carried out the allowed controls only"
    );
    let e = net.wait_event("the select was logged", |e| {
        e["verdict"] == "allow" && e["op"]["function"] == "select"
    });
    assert_eq!(e["rule"], "hmi-breakers");
    assert_eq!(
        (e["op"]["group"].clone(), e["op"]["index"].clone()),
        (12.into(), 2.into())
    );
    let e = net.wait_event("relay 9 was refused", |e| {
        e["verdict"] == "deny" && e["op"]["index"] == 9
    });
    assert_eq!(
        (e["reason"].clone(), e["rule"].clone()),
        ("address".into(), "hmi-breakers".into())
    );
    let e = net.wait_event("the analog output was refused", |e| {
        e["verdict"] == "deny" && e["op"]["group"] == 41
    });
    assert_eq!(e["reason"], "object");
    assert_eq!(e["op"]["function"], "direct-operate");

    // A plain socket with frames built from IEEE 1815: link management and a poll are
    // answered; a broken data block CRC and bytes that are not DNP3 are reset.
    let r = peer(&net, "hmi", &format!("raw {PLC} link-status poll bad-crc"));
    assert_eq!(op_results(&r), ["answered", "answered", "reset"], "{r:?}");
    assert_eq!(r[0]["link_function"], 0x0b, "link status: {r:?}");
    assert_eq!(r[1]["function"], 129, "a response: {r:?}");
    let e = net.wait_event("the broken CRC was malformed", |e| {
        e["reason"] == "malformed"
    });
    assert_eq!(e["detail"], "bad data block CRC");
    let r = peer(&net, "hmi", &format!("raw {PLC} garbage"));
    assert_eq!(op_results(&r), ["reset"], "{r:?}");
    net.wait_event("garbage lost the framing", |e| {
        e["reason"] == "malformed" && e["detail"] == "no link start bytes (0x05 0x64)"
    });

    // The read-write preset takes analog outputs too, not restarts.
    net.stop_daemon();
    net.start_daemon(&policy("enforce", "read-write"), &[]);
    let r = peer(
        &net,
        "hmi",
        &format!("master {PLC} analog:1:77 warm-restart integrity"),
    );
    let got = op_results(&r);
    assert_eq!(got[..2], ["success"; 2], "{r:?}");
    assert_ne!(got[2], "success", "the warm restart: {r:?}");
    assert_eq!(got[3], "success", "{r:?}");
    assert_eq!(commands(&net).last(), Some(&command("operate", 1)));
    let e = net.wait_event("the analog output was logged", |e| {
        e["verdict"] == "allow" && e["op"]["group"] == 41
    });
    assert_eq!(e["op"]["variation"], 1);
    net.wait_event("the warm restart was denied", |e| {
        e["verdict"] == "deny" && e["op"]["function"] == "warm-restart" && e["reason"] == "function"
    });
    assert!(!carried_out(&net)
        .iter()
        .any(|v| v["event"] == "warm-restart"));

    // Monitor mode: the read-only policy would refuse the restart; it is carried out
    // and reported.
    net.stop_daemon();
    net.start_daemon(&policy("monitor", "read-only"), &[]);
    let r = peer(&net, "hmi", &format!("master {PLC} cold-restart integrity"));
    assert_eq!(op_results(&r), ["success", "success", "success"], "{r:?}");
    assert_eq!(opened(&r), 1, "never reset: {r:?}");
    let e = net.wait_event("the restart would have been denied", |e| {
        e["verdict"] == "would-deny" && e["op"]["function"] == "cold-restart"
    });
    assert_eq!(e["reason"], "function");
    assert!(carried_out(&net)
        .iter()
        .any(|v| v["event"] == "cold-restart"));
}
