//! IEC 60870-5-104 through gatekeeperd between real peers: a c104 (lib60870-C)
//! controlled station on the PLC and the c104 controlling station on the HMI, plus a
//! plain TCP socket for malformed input. STARTDT, general interrogation, reads and an
//! allowed single command pass and their monitoring data flows back; a command outside
//! the allowed IOAs, a type the policy does not allow and another station are refused
//! (the client sees its connection reset, the RTU never sees the command); events name
//! the operation and the reason.

mod common;

use common::*;
use serde_json::Value;

fn policy(mode: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "iec104-netns"
mode = "{mode}"
[events]
rate = 50
burst = 50
[hosts.plc]
ip = "{PLC}"
mac = "{PLC_MAC}"
[hosts.hmi]
ip = "{HMI}"
[[rule]]
name = "scada-reads"
from = "hmi"
to = "plc"
proto = "iec104"
action = "allow"
[rule.iec104]
common-addresses = [1]
preset = "read-only"
[[rule]]
name = "scada-breaker"
from = "hmi"
to = "plc"
proto = "iec104"
action = "allow"
log = true
[rule.iec104]
common-addresses = [1]
types = ["single-command"]
causes = ["activation", "deactivation"]
ioas = ["5000-5099"]
"#
    )
}

/// Starts the c104 controlled station on the PLC (port 2404) and waits until it listens.
fn rtu(net: &mut Net) {
    let script = peer_script("iec104_server.py");
    net.spawn("plc", &format!("{} -u {script} 2404", python()));
    net.wait_listening("plc", "tcp", 2404);
}

/// What the RTU printed: one JSON value per command it received.
fn rtu_received(net: &Net) -> Vec<u64> {
    let log = std::fs::read_to_string(net.dir.join("plc-bg0.log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["received"].as_u64())
        .collect()
}

/// Runs the c104 client in `role` with `args` and returns its JSON lines.
fn client(net: &Net, role: &str, args: &str) -> Vec<Value> {
    let script = peer_script("iec104_client.py");
    let out = net.try_sh(
        role,
        &format!("IEC104_TRACE=1 {} {script} {args}", python()),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // The APDUs both ways, for the evidence directory.
    let trace = net.dir.join("client-trace.log");
    let mut all = std::fs::read(&trace).unwrap_or_default();
    all.extend_from_slice(format!("== {args}\n").as_bytes());
    all.extend_from_slice(&out.stderr);
    std::fs::write(&trace, all).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("client said {l:?}")))
        .collect();
    assert!(
        out.status.success() && !lines.is_empty(),
        "client {args}: {text}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines
}

/// The result of each step, by name.
fn step<'v>(lines: &'v [Value], name: &str) -> &'v Value {
    lines
        .iter()
        .find(|l| l["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {lines:#?}"))
}

fn closed_after_open(lines: &[Value]) -> bool {
    let states = lines.last().unwrap()["states"].as_array().unwrap();
    let open = states.iter().position(|s| s == "ConnectionState.OPEN");
    open.is_some_and(|i| {
        states[i..]
            .iter()
            .any(|s| s.as_str().unwrap().starts_with("ConnectionState.CLOSED"))
    })
}

#[test]
fn reads_and_allowed_commands_pass_others_are_refused() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("iec104");
    rtu(&mut net);
    net.start_daemon(&policy("enforce"), &[]);

    // STARTDT, general interrogation, a read and the breaker command: all pass, and the
    // monitoring data (interrogated, requested, return information) flows back.
    let ok = client(
        &net,
        "hmi",
        &format!("{PLC} 2404 gi read:200 cmd:5000 wait:100"),
    );
    for name in ["connect", "gi", "read:200", "cmd:5000", "wait:100"] {
        assert_eq!(step(&ok, name)["ok"], true, "{name}: {ok:#?}");
    }
    let seen = ok.last().unwrap()["seen"].as_array().unwrap();
    let has = |ioa: u64, cot: &str| {
        seen.iter()
            .any(|s| s["ioa"] == ioa && s["cot"].as_str() == Some(cot))
    };
    assert!(has(100, "Cot.INTERROGATED_BY_STATION"), "{seen:#?}");
    assert!(has(200, "Cot.INTERROGATED_BY_STATION"), "{seen:#?}");
    assert!(has(200, "Cot.REQUEST"), "{seen:#?}");
    assert!(has(100, "Cot.RETURN_INFO_REMOTE"), "{seen:#?}");
    assert!(!closed_after_open(&ok), "nothing was reset: {ok:#?}");
    let allowed = net.wait_event("the logged breaker command", |e| {
        e["rule"] == "scada-breaker" && e["verdict"] == "allow"
    });
    assert_eq!(allowed["op"]["protocol"], "iec104");
    assert_eq!(allowed["op"]["type"], "c-sc-na-1");
    assert_eq!(allowed["op"]["cause"], "activation");
    assert_eq!(allowed["op"]["ioa"], 5000);
    assert_eq!(allowed["op"]["command"], "execute");

    // A single command to IOA 6000: outside scada-breaker's IOAs. The client's
    // connection is reset; the RTU never sees the command.
    let refused = client(&net, "hmi", &format!("{PLC} 2404 gi cmd:6000"));
    assert_eq!(step(&refused, "gi")["ok"], true);
    assert_eq!(step(&refused, "cmd:6000")["ok"], false, "{refused:#?}");
    assert!(
        closed_after_open(&refused),
        "the client saw the reset: {refused:#?}"
    );
    let e = net.wait_event("the command to 6000 refused", |e| {
        e["verdict"] == "deny" && e["op"]["ioa"] == 6000
    });
    assert_eq!(e["reason"], "address");
    assert_eq!(e["rule"], "scada-breaker");
    assert_eq!(e["op"]["type"], "c-sc-na-1");
    assert_eq!(e["src"], HMI);
    assert_eq!(e["dport"], 2404);

    // A setpoint (a type no rule allows) and an interrogation of station 2.
    let setpoint = client(&net, "hmi", &format!("{PLC} 2404 setpoint:7000"));
    assert_eq!(step(&setpoint, "setpoint:7000")["ok"], false);
    let e = net.wait_event("the setpoint refused", |e| e["op"]["type"] == "c-se-nc-1");
    assert_eq!(
        (e["verdict"].as_str(), e["reason"].as_str()),
        (Some("deny"), Some("function"))
    );
    let station = client(&net, "hmi", &format!("{PLC} 2404 gi:2"));
    assert_eq!(step(&station, "gi:2")["ok"], false);
    let e = net.wait_event("station 2 refused", |e| e["op"]["common_address"] == 2);
    assert_eq!(e["reason"], "unit");
    assert_eq!(e["op"]["type"], "c-ic-na-1");
    // Clock synchronisation is not in read-only.
    let clock = client(&net, "hmi", &format!("{PLC} 2404 clock"));
    assert_eq!(step(&clock, "clock")["ok"], false);
    let e = net.wait_event("clock sync refused", |e| e["op"]["type"] == "c-cs-na-1");
    assert_eq!(e["reason"], "function");

    assert_eq!(
        rtu_received(&net),
        [5000],
        "only the allowed command reached the RTU"
    );
    let (code, stderr) = net.stop_daemon();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn malformed_apdus_are_refused_and_link_management_passes() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("iec104-malformed");
    rtu(&mut net);
    net.start_daemon(&policy("enforce"), &[]);
    let script = peer_script("iec104_client.py");
    let raw = |frames: &str| -> Vec<Value> {
        let out = net.sh(
            "hmi",
            &format!("{} {script} raw {PLC} 2404 {frames}", python()),
        );
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // STARTDT and TESTFR are answered by the real RTU. Then a U-frame with two function
    // bits (STARTDT act and con): lib60870 answers it as if it were STARTDT act; the
    // gatekeeper refuses it and resets the connection.
    let lines = raw("680407000000 680443000000 68040f000000");
    assert_eq!(lines[0]["got"], "68040b000000", "STARTDT con");
    assert_eq!(lines[1]["got"], "680483000000", "TESTFR con");
    let got = lines[2]["got"].as_str().unwrap();
    assert!(got == "reset" || got == "closed", "{lines:#?}");
    let e = net.wait_event("the bad U-frame", |e| e["reason"] == "malformed");
    assert_eq!(e["detail"], "U-frame does not set exactly one function bit");
    // An interrogation whose send sequence number is not the first (a replay or an
    // injection into another conversation).
    let lines = raw("680407000000 680e0a00000064010600010000000014");
    let got = lines[1]["got"].as_str().unwrap();
    assert!(got == "reset" || got == "closed", "{lines:#?}");
    net.wait_event("the out-of-order I-frame", |e| {
        e["detail"] == "send sequence number out of order"
    });
    // Bytes that are not IEC-104 at all.
    let lines = raw(&hex(b"GET / HTTP/1.0\r\n\r\n"));
    let got = lines[0]["got"].as_str().unwrap();
    assert!(got == "reset" || got == "closed", "{lines:#?}");
    net.wait_event("not IEC-104", |e| e["detail"] == "start byte is not 0x68");
    assert!(rtu_received(&net).is_empty());
}

#[test]
fn monitor_mode_forwards_the_command_and_reports_it() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("iec104-monitor");
    rtu(&mut net);
    net.start_daemon(&policy("monitor"), &[]);
    let lines = client(&net, "hmi", &format!("{PLC} 2404 gi cmd:6000"));
    assert_eq!(step(&lines, "cmd:6000")["ok"], true, "{lines:#?}");
    let e = net.wait_event("would-deny", |e| {
        e["verdict"] == "would-deny" && e["op"]["protocol"] == "iec104"
    });
    assert_eq!(e["reason"], "address");
    assert_eq!(e["op"]["ioa"], 6000);
    wait_until(std::time::Duration::from_secs(5), || {
        rtu_received(&net) == [6000]
    });
}
