//! S7comm through gatekeeperd between real peers: the Snap7 server (python-snap7's
//! native library) on the PLC, the Snap7 client on the HMI and on an engineering
//! station, and a plain socket for hand-built TPKTs. Reads pass; writes outside the
//! rule's data blocks, plc-stop, setting the clock (the read-only preset), a TSAP
//! outside the rule, S7comm-plus and malformed bytes are refused with a reset; the
//! server's own log shows what reached the PLC, and the events name the operation.

mod common;

use common::*;
use serde_json::Value;

fn policy(mode: &str, extra: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "s7-netns"
mode = "{mode}"
[events]
rate = 50
burst = 50
[hosts.plc]
ip = "{PLC}"
mac = "{PLC_MAC}"
[hosts.hmi]
ip = "{HMI}"
[hosts.eng]
ip = "{INTRUDER}"
[[rule]]
name = "hmi-reads"
from = "hmi"
to = "plc"
proto = "s7"
action = "allow"
[rule.s7]
preset = "read-only"
areas = ["db", "flags"]
dbs = ["1-10"]
tsaps = ["0x0102"]
[[rule]]
name = "hmi-recipes"
from = "hmi"
to = "plc"
proto = "s7"
action = "allow"
log = true
[rule.s7]
functions = ["write-var"]
areas = ["db"]
dbs = [20]
tsaps = ["0x0102"]
{extra}
"#
    )
}

/// The engineering station (the intruder's address): programming, but no stop and
/// only the insert and delete PI services.
const ENG_RULES: &str = r#"
[[rule]]
name = "eng-never-stops"
from = "eng"
to = "plc"
proto = "s7"
action = "deny"
[rule.s7]
functions = ["plc-stop"]
[[rule]]
name = "eng-programs"
from = "eng"
to = "plc"
proto = "s7"
action = "allow"
log = true
[rule.s7]
preset = "programming"
pi-services = ["insert", "delete"]
"#;

/// Starts the Snap7 server on the PLC (port 102) and waits until it listens.
fn s7_server(net: &mut Net) {
    let script = peer_script("s7_peer.py");
    net.spawn("plc", &format!("{} -u {script} server", python()));
    net.wait_listening("plc", "tcp", 102);
}

/// What the Snap7 server logged so far (its events: every request it received).
fn server_log(net: &Net) -> String {
    std::fs::read_to_string(net.dir.join("plc-bg0.log")).unwrap_or_default()
}

/// Runs the peer script in `role`; one JSON value per operation.
fn peer(net: &Net, role: &str, args: &str) -> Vec<Value> {
    peer_json(net, role, "s7_peer.py", args)
}

#[test]
fn snap7_reads_pass_writes_stops_and_clock_changes_are_refused() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("s7-enforce");
    s7_server(&mut net);
    net.start_daemon(&policy("enforce", ""), &[]);

    // The read-only preset: DB and flag reads, the CPU state (SZL 0x0424), a SZL, the
    // block list, the clock; and the recipe write to DB 20 that the second rule allows.
    let r = peer(
        &net,
        "hmi",
        &format!(
            "client {PLC} db-read:1:0:4 mb-read:0:2 cpu-state szl:0x11 list-blocks get-clock db-write:20:0:0a0b db-read:5:10:2"
        ),
    );
    assert_eq!(
        results(&r),
        ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"],
        "{r:?}"
    );
    assert_eq!(r[1]["values"], serde_json::json!([0, 1, 2, 3]));
    assert_eq!(r[3]["values"], "S7CpuStatusRun");
    assert_eq!(r[8]["values"], serde_json::json!([10, 11]));
    let e = net.wait_event("the recipe write was logged", |e| {
        e["rule"] == "hmi-recipes" && e["verdict"] == "allow"
    });
    assert_eq!(e["op"]["protocol"], "s7");
    assert_eq!(e["op"]["function"], "write-var");
    assert_eq!(e["op"]["area"], "db");
    assert_eq!(e["op"]["db"], 20);
    assert_eq!(e["op"]["count"], 2);
    assert_eq!(e["op"]["tsap"], 0x0102);

    // A write to DB 1: refused, the connection reset; the next request has no
    // connection left.
    let r = peer(
        &net,
        "hmi",
        &format!("client {PLC} db-write:1:0:ff db-read:1:0:1"),
    );
    assert_eq!(results(&r), ["ok", "failed", "failed"], "{r:?}");
    // What Snap7 tells its user: "ISO : An error occurred during recv TCP : Connection
    // reset by peer" — or, when the reset lands while Snap7 is between its poll and its
    // read, "Connection timed out"; then the next send finds the socket reset (EPIPE,
    // "Other Socket error (32)"), which a connection that was merely stalled would not.
    let (first, next) = (
        r[1]["error"].as_str().unwrap(),
        r[2]["error"].as_str().unwrap(),
    );
    assert!(
        first.contains("Connection reset by peer")
            || (first.contains("Connection timed out")
                && (next.contains("(32)") || next.contains("reset"))),
        "{r:?}"
    );
    let e = net.wait_event("the write to DB 1 was denied", |e| {
        e["verdict"] == "deny" && e["op"]["function"] == "write-var"
    });
    assert_eq!(e["reason"], "address");
    assert_eq!(e["rule"], "hmi-recipes", "the rule that got furthest");
    assert_eq!(e["op"]["db"], 1);

    // Stopping the CPU and setting its clock are outside the read-only preset; a DB
    // outside 1-10 is outside the rule's data blocks.
    // (Snap7's plc_stop reports success whatever the answer, and its CPU state read
    // says "unknown" rather than fail: a DB read after them shows the connection is
    // gone.)
    for (op, function, reason) in [
        ("plc-stop", "plc-stop", "function"),
        ("set-clock", "set-clock", "function"),
        ("db-read:11:0:1", "read-var", "address"),
    ] {
        let r = peer(&net, "hmi", &format!("client {PLC} {op} db-read:1:0:1"));
        assert_eq!(results(&r)[2], "failed", "{op}: {r:?}");
        let e = net.wait_event(&format!("{op} denied"), |e| {
            e["verdict"] == "deny" && e["op"]["function"] == function
        });
        assert_eq!(e["reason"], reason, "{op}: {e}");
    }
    let e = net.wait_event("set-clock's group", |e| e["op"]["function"] == "set-clock");
    assert_eq!(e["op"]["group"], "time-functions");
    assert_eq!(e["op"]["rosctr"], "userdata");

    // None of it reached the PLC: DB 1 is unchanged, the CPU runs, the server's log
    // shows no write to DB 1, no stop and no clock change.
    let r = peer(
        &net,
        "hmi",
        &format!("client {PLC} db-read:1:0:1 cpu-state"),
    );
    assert_eq!(results(&r), ["ok", "ok", "ok"], "{r:?}");
    assert_eq!(r[1]["values"], serde_json::json!([0]));
    assert_eq!(r[2]["values"], "S7CpuStatusRun");
    let log = server_log(&net);
    assert!(log.contains("Write request, Area : DB20"), "{log}");
    assert!(!log.contains("Write request, Area : DB1,"), "{log}");
    assert!(!log.contains("STOP"), "{log}");
    assert!(!log.contains("clock write"), "{log}");
    assert!(!log.contains("DB11"), "{log}");

    // A connection to another slot (TSAP 0x0103): the connection request passes, the
    // setup communication is refused, the client cannot connect.
    let r = peer(&net, "hmi", &format!("client {PLC} --slot 3"));
    assert_eq!(results(&r), ["failed"], "{r:?}");
    let e = net.wait_event("the other TSAP was denied", |e| e["reason"] == "unit");
    assert_eq!(e["op"]["function"], "setup-communication");
    assert_eq!(e["op"]["tsap"], 0x0103);

    // The counters on exit name the reasons.
    let (code, stderr) = net.stop_daemon();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("function"), "{stderr}");
}

#[test]
fn the_engineering_station_programs_but_does_not_stop_or_compress() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("s7-programming");
    s7_server(&mut net);
    net.start_daemon(&policy("enforce", ENG_RULES), &[]);
    // An upload reaches the PLC, which refuses it itself (Snap7's protection level);
    // a block delete (_DELE) passes; compressing (_GARB) is not among the PI services.
    let r = peer(
        &net,
        "intr",
        &format!("client {PLC} upload:1 delete:7 compress"),
    );
    assert_eq!(results(&r), ["ok", "failed", "ok", "failed"], "{r:?}");
    assert!(
        r[1]["error"].as_str().unwrap().contains("protection level"),
        "the PLC's own refusal: {r:?}"
    );
    let e = net.wait_event("compress denied", |e| {
        e["verdict"] == "deny" && e["op"]["pi_service"] == "compress"
    });
    assert_eq!(e["reason"], "function");
    assert_eq!(e["op"]["function"], "plc-control");
    assert_eq!(e["op"]["pi_service"], "compress");
    let e = net.wait_event("delete logged", |e| e["op"]["pi_service"] == "delete");
    assert_eq!(
        (&e["verdict"], &e["rule"]),
        (&"allow".into(), &"eng-programs".into())
    );
    assert_eq!(e["op"]["block_type"], "db");
    assert_eq!(e["op"]["block"], 7);
    // The explicit deny rule stops the stop.
    let r = peer(
        &net,
        "intr",
        &format!("client {PLC} plc-stop db-read:1:0:1"),
    );
    assert_eq!(results(&r), ["ok", "ok", "failed"], "{r:?}");
    let e = net.wait_event("stop denied by rule", |e| {
        e["verdict"] == "deny" && e["reason"] == "rule"
    });
    assert_eq!(e["rule"], "eng-never-stops");
    let log = server_log(&net);
    assert!(log.contains("Block upload requested"), "{log}");
    assert!(log.contains("Block Insert or Delete"), "{log}");
    assert!(!log.contains("Memory compress"), "{log}");
    assert!(!log.contains("STOP"), "{log}");
}

#[test]
fn hand_built_frames_s7comm_plus_malformed_segmented_and_coalesced() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("s7-raw");
    s7_server(&mut net);
    net.start_daemon(&policy("enforce", ""), &[]);
    let read = "0300001f02f080320100000100000e00000401120a10020004000184000000";
    // Connection request, setup, a read: the Snap7 server answers each.
    let r = peer(&net, "hmi", &format!("raw {PLC} cr setup {read}"));
    assert_eq!(results(&r), ["answer", "answer", "answer"], "{r:?}");
    assert!(r[2]["answer"].as_str().unwrap().ends_with("00010203"));
    // The same read in two TCP segments (a pause between): judged whole, answered.
    let split = format!("{}/{}", &read[..20], &read[20..]);
    let r = peer(&net, "hmi", &format!("raw {PLC} cr setup {split}"));
    assert_eq!(results(&r), ["answer", "answer", "answer"], "{r:?}");
    // A read and a stop in one segment: the segment is dropped, the connection reset.
    let stop = "0300002102f0803201000011000010000029000000000009505f50524f4752414d";
    let r = peer(&net, "hmi", &format!("raw {PLC} cr setup {read}{stop}"));
    assert_eq!(results(&r), ["answer", "answer", "reset"], "{r:?}");
    net.wait_event("the coalesced stop", |e| e["op"]["function"] == "plc-stop");
    // S7comm-plus (a V3 CreateObject request, as TIA Portal opens a session): no rule
    // allows it.
    let plus = format!(
        "0300003902f080 7203002a 20{} 31 0000 04ca 0000 0001 72030000",
        "00".repeat(32)
    )
    .replace(' ', "");
    let r = peer(&net, "hmi", &format!("raw {PLC} cr {plus}"));
    assert_eq!(results(&r), ["answer", "reset"], "{r:?}");
    let e = net.wait_event("S7comm-plus denied", |e| e["op"]["s7comm_plus"] == true);
    assert_eq!(e["reason"], "function");
    assert_eq!(e["op"]["version"], "v3");
    assert_eq!(e["op"]["opcode"], "request");
    assert_eq!(e["op"]["function"], "create-object");
    // Not a TPKT at all, and an S7ANY address of nine bytes.
    let r = peer(
        &net,
        "hmi",
        &format!("raw {PLC} 474554202f20485454502f312e300d0a0d0a"),
    );
    assert_eq!(results(&r), ["reset"], "{r:?}");
    let e = net.wait_event("garbage is malformed", |e| {
        e["detail"] == "TPKT version is not 3"
    });
    assert_eq!(e["reason"], "malformed");
    let bad = "0300001e02f080320100000100000d000004011209100200040001840000";
    let r = peer(&net, "hmi", &format!("raw {PLC} cr setup {bad}"));
    assert_eq!(results(&r), ["answer", "answer", "reset"], "{r:?}");
    let e = net.wait_event("the bad address", |e| {
        e["detail"] == "S7ANY address is not 10 bytes"
    });
    assert_eq!(e["reason"], "malformed");
    assert_eq!(e["rule"], "hmi-reads");
}

#[test]
fn monitor_mode_lets_the_stop_through_and_says_so() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("s7-monitor");
    s7_server(&mut net);
    net.start_daemon(&policy("monitor", ""), &[]);
    let r = peer(&net, "hmi", &format!("client {PLC} plc-stop cpu-state"));
    assert_eq!(results(&r), ["ok", "ok", "ok"], "{r:?}");
    assert_eq!(r[2]["values"], "S7CpuStatusStop");
    let e = net.wait_event("the stop would have been denied", |e| {
        e["verdict"] == "would-deny" && e["op"]["function"] == "plc-stop"
    });
    assert_eq!(e["reason"], "function");
    assert_eq!(e["op"]["function"], "plc-stop");
    assert!(server_log(&net).contains("CPU Control request : STOP"));
}
