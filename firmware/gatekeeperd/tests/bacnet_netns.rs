//! BACnet/IP through gatekeeperd between real peers: a bacpypes3 device (instance 1234,
//! analog-value 1) on the PLC and the bacpypes3 client on the HMI, both on UDP 47808.
//! Discovery and reads pass, and so does the one write the policy names; other writes
//! and reinitialize-device never reach the device (UDP has nothing to reset: the client
//! retries and gives up); the device's I-Am is judged from the device's side; events
//! name the service, object and property; malformed datagrams and BBMD requests are
//! refused; monitor mode lets everything through and says what it would have refused.

mod common;

use common::*;
use serde_json::Value;

fn policy(mode: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "bacnet-netns"
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
name = "hmi-setpoint"
from = "hmi"
to = "plc"
proto = "bacnet"
action = "allow"
log = true
[rule.bacnet]
services = ["write-property"]
objects = ["analog-value:1"]
properties = ["present-value"]

[[rule]]
name = "hmi-reads"
from = "hmi"
to = "plc"
proto = "bacnet"
action = "allow"
[rule.bacnet]
preset = "read-only"

[[rule]]
name = "plc-announces"
from = "plc"
to = "hmi"
proto = "bacnet"
action = "allow"
[rule.bacnet]
services = ["i-am", "i-have"]
"#
    )
}

const DEVICE_LOG: &str = "plc-bg0.log";

/// Starts the bacpypes3 device on the PLC and waits until it listens on 47808.
fn device(net: &mut Net) {
    let script = peer_script("bacnet_device.py");
    net.spawn("plc", &format!("{} -u {script} {PLC}/24 1234", python()));
    net.wait_listening("plc", "udp", 47808);
}

/// One run of the bacpypes3 client in `role` (bound to `addr`:47808).
fn client(net: &Net, role: &str, addr: &str, command: &str) -> Value {
    let script = peer_script("bacnet_client.py");
    let out = net.try_sh(
        role,
        &format!("{} {script} {addr}/24 {PLC} {command}", python()),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    // The evidence: what each client run saw.
    let log = net.dir.join("clients.log");
    let before = std::fs::read_to_string(&log).unwrap_or_default();
    std::fs::write(&log, format!("{before}{role} {command}: {line}\n")).unwrap();
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "client {command}: said {text:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The requests the device received, as its log names them.
fn device_log(net: &Net) -> String {
    std::fs::read_to_string(net.dir.join(DEVICE_LOG)).unwrap_or_default()
}

/// What a client sees when its confirmed request is dropped: no answer at all (no
/// error, reject or abort from the device); after its retry, bacpypes3 aborts the
/// transaction itself with its local reason "no-response".
fn assert_no_answer(r: &Value, what: &str) {
    assert_eq!(r["ok"], false, "{what}: {r}");
    let error = r["error"].as_str().unwrap_or_default();
    assert_eq!(error, "AbortPDU: no-response", "{what}");
}

/// Sends raw datagrams from `role`'s port 47808 to the PLC's.
fn send_raw(net: &Net, role: &str, from: &str, datagrams: &[&[u8]]) {
    let hex: Vec<String> = datagrams.iter().map(|d| hex(d)).collect();
    let script = format!(
        "import socket,sys\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('{from}', 47808))\n\
         [s.sendto(bytes.fromhex(h), ('{PLC}', 47808)) for h in sys.argv[1:]]"
    );
    net.sh(role, &format!("python3 -c \"{script}\" {}", hex.join(" ")));
}

#[test]
fn bacpypes3_reads_pass_writes_and_restarts_are_refused() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("bacnet-enforce");
    device(&mut net);
    net.start_daemon(&policy("enforce"), &[]);

    // Discovery: a unicast Who-Is, and the device's I-Am judged from the device's side.
    let r = client(&net, "hmi", HMI, "who-is");
    assert_eq!(r["result"], serde_json::json!(["device,1234"]), "{r}");
    // A read (read-only preset), the named write, and the read that shows it landed.
    let r = client(&net, "hmi", HMI, "read analog-value,1 present-value");
    assert_eq!(r["result"], "21.5", "{r}");
    let r = client(&net, "hmi", HMI, "write analog-value,1 present-value 42");
    assert_eq!(r["result"], "written", "{r}");
    let e = net.wait_event("the write was logged", |e| {
        e["rule"] == "hmi-setpoint" && e["verdict"] == "allow"
    });
    assert_eq!(e["op"]["service"], "write-property");
    assert_eq!(e["op"]["object_type"], "analog-value");
    assert_eq!(e["op"]["instance"], 1);
    assert_eq!(e["op"]["property"], "present-value");
    let r = client(&net, "hmi", HMI, "read analog-value,1 present-value");
    assert_eq!(r["result"], "42.0", "{r}");

    // A write of another property: outside hmi-setpoint's properties. The datagram is
    // dropped; the client retries once and gives up.
    let r = client(
        &net,
        "hmi",
        HMI,
        "write analog-value,1 relinquish-default 0",
    );
    assert_no_answer(&r, "relinquish-default");
    let e = net.wait_event("the write was denied", |e| {
        e["verdict"] == "deny" && e["op"]["property"] == "relinquish-default"
    });
    assert_eq!(e["reason"], "object");
    assert_eq!(e["rule"], "hmi-setpoint");
    assert_eq!(e["op"]["protocol"], "bacnet");
    assert_eq!(e["op"]["apdu"], "confirmed-request");
    assert_eq!(e["proto"], "udp");
    assert_eq!(e["dport"], 47808);
    // The client sent it twice (its retry), and each was dropped.
    wait_until(std::time::Duration::from_secs(5), || {
        let denied =
            |e: &&Value| e["verdict"] == "deny" && e["op"]["property"] == "relinquish-default";
        net.events().iter().filter(denied).count() == 2
    });

    // ReinitializeDevice is in no rule: refused for its service.
    let r = client(&net, "hmi", HMI, "reinitialize warmstart");
    assert_no_answer(&r, "reinitialize-device");
    let e = net.wait_event("the restart was denied", |e| {
        e["verdict"] == "deny" && e["op"]["service"] == "reinitialize-device"
    });
    assert_eq!(e["reason"], "function");
    assert_eq!(e["op"]["state"], "warmstart");

    // The device saw the allowed requests and nothing else.
    let log = device_log(&net);
    let requests: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("request "))
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        requests,
        [
            "WhoIsRequest",
            "ReadPropertyRequest",
            "WritePropertyRequest",
            "ReadPropertyRequest"
        ],
        "{log}"
    );
    assert!(!log.contains("reinitialize"), "{log}");

    // A host without a rule gets nothing, not even an I-Am.
    let r = client(&net, "intr", INTRUDER, "who-is");
    assert_eq!(r["ok"], false, "{r}");
    net.wait_event("the intruder was refused", |e| {
        e["reason"] == "no-rule" && e["src"] == INTRUDER
    });
}

#[test]
fn malformed_datagrams_and_bbmd_requests_are_refused() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("bacnet-malformed");
    device(&mut net);
    net.start_daemon(&policy("enforce"), &[]);
    // Who-Is with a BVLC length one too long; a ReadProperty whose object identifier
    // is 3 bytes; a Register-Foreign-Device (a BBMD request no rule names); and a
    // well-formed Who-Is last, which passes.
    send_raw(
        &net,
        "hmi",
        HMI,
        &[
            &[0x81, 0x0b, 0x00, 0x09, 0x01, 0x00, 0x10, 0x08],
            &[
                0x81, 0x0a, 0x00, 0x10, 0x01, 0x04, 0x02, 0x44, 0x01, 0x0c, 0x0b, 0x80, 0x00, 0x01,
                0x19, 0x55,
            ],
            &[0x81, 0x05, 0x00, 0x06, 0x01, 0x2c],
            &[0x81, 0x0a, 0x00, 0x08, 0x01, 0x00, 0x10, 0x08],
        ],
    );
    let e = net.wait_event("the bad length was refused", |e| {
        e["reason"] == "malformed" && e["detail"] == "BVLC length disagrees with the datagram"
    });
    assert_eq!(e["verdict"], "deny");
    net.wait_event("the short object identifier was refused", |e| {
        e["reason"] == "malformed" && e["detail"] == "object identifier is not 4 bytes"
    });
    let e = net.wait_event("the registration was refused", |e| {
        e["reason"] == "function" && e["op"]["bvlc"] == "register-foreign-device"
    });
    assert_eq!(e["rule"], "hmi-setpoint");
    // Only the last Who-Is reached the device.
    wait_until(std::time::Duration::from_secs(5), || {
        device_log(&net).contains("request WhoIsRequest")
    });
    let log = device_log(&net);
    assert_eq!(log.matches("request ").count(), 1, "{log}");
}

#[test]
fn monitor_mode_forwards_and_reports_what_enforce_would_refuse() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("bacnet-monitor");
    device(&mut net);
    net.start_daemon(&policy("monitor"), &[]);
    let r = client(
        &net,
        "hmi",
        HMI,
        "write analog-value,1 relinquish-default 5",
    );
    assert_eq!(r["result"], "written", "{r}");
    let e = net.wait_event("the write would have been denied", |e| {
        e["verdict"] == "would-deny" && e["op"]["property"] == "relinquish-default"
    });
    assert_eq!(e["reason"], "object");
    let r = client(&net, "hmi", HMI, "reinitialize coldstart");
    assert_eq!(r["result"], "SimpleAckPDU", "{r}");
    net.wait_event("the restart would have been denied", |e| {
        e["verdict"] == "would-deny" && e["op"]["service"] == "reinitialize-device"
    });
    wait_until(std::time::Duration::from_secs(5), || {
        device_log(&net).contains("reinitialize coldstart")
    });
}
