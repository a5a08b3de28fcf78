//! OPC UA through gatekeeperd between real peers: the asyncua server (PyPI) on the PLC
//! with endpoints None, Basic256Sha256 Sign and Basic256Sha256 SignAndEncrypt, the
//! asyncua client and a plain-socket client of hand-built frames on the plant side.
//! Browsing and reading pass; a write under `read-only` is refused with a reset and the
//! client sees its connection fail; a signed channel shows its services, an encrypted
//! one is opaque; a rule that wants encrypted channels refuses the None channel at its
//! OPN and the signed one at its first message; malformed frames are refused; monitor
//! mode lets everything through and says what enforce would have refused.

mod common;

use common::*;
use serde_json::Value;

const URL: &str = "opc.tcp://10.10.0.10:4840/gk/";

fn policy(mode: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "opcua-netns"
mode = "{mode}"
[events]
rate = 100
burst = 100
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
proto = "opcua"
action = "allow"
[rule.opcua]
preset = "read-only"
[[rule]]
name = "eng-encrypted-only"
from = "eng"
to = "plc"
proto = "opcua"
action = "allow"
log = true
[rule.opcua]
security-policies = ["basic256sha256"]
security-modes = ["sign-and-encrypt"]
"#
    )
}

/// Starts the asyncua server on the PLC (port 4840) and waits until it listens.
fn opcua_server(net: &mut Net) {
    let script = peer_script("opcua_peer.py");
    let certs = net.dir.join("certs");
    net.spawn(
        "plc",
        &format!(
            "{} -u {script} server {PLC} 4840 {}",
            python(),
            certs.display()
        ),
    );
    net.wait_listening("plc", "tcp", 4840);
}

/// Runs the peer script in `role`; one line per step.
fn peer(net: &Net, role: &str, args: &str) -> Vec<String> {
    let script = peer_script("opcua_peer.py");
    let out = net.try_sh(role, &format!("{} {script} {args}", python()));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        !lines.is_empty(),
        "peer {args}: no output; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines
}

/// The asyncua client in `role` with `security` (none, sign, encrypt), doing `steps`.
fn client(net: &Net, role: &str, security: &str, steps: &str) -> Vec<String> {
    let certs = net.dir.join(format!("certs-{role}-{security}"));
    std::fs::create_dir_all(&certs).unwrap();
    // The client reads the server's certificate next to its own.
    std::fs::copy(
        net.dir.join("certs/server-cert.der"),
        certs.join("server-cert.der"),
    )
    .unwrap();
    peer(
        net,
        role,
        &format!("client {URL} {security} {} {steps}", certs.display()),
    )
}

/// The first two words of each line: "read ok", "write error".
fn starts(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

fn denied(net: &Net, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    net.wait_event(what, |e| e["verdict"] == "deny" && pred(e))
}

#[test]
fn asyncua_reads_pass_writes_are_reset_and_security_is_enforced() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("opcua-enforce");
    opcua_server(&mut net);
    net.start_daemon(&policy("enforce"), &[]);

    // Policy None: the HMI browses and reads; its write is refused and reset.
    let r = client(&net, "hmi", "none", "browse read write read");
    assert_eq!(
        starts(&r),
        ["connect ok", "browse ok", "read ok", "write error"],
        "{r:?}"
    );
    assert_eq!(r[2], "read ok 12.5");
    let e = denied(&net, "the write", |e| e["op"]["service"] == "write");
    assert_eq!(e["reason"], "function");
    assert_eq!(e["rule"], "hmi-reads");
    assert_eq!(e["op"]["protocol"], "opcua");
    assert_eq!(e["op"]["message"], "msg");
    assert_eq!(e["op"]["security_policy"], "none");
    assert_eq!(e["op"]["security_mode"], "none");
    assert_eq!(e["dport"], 4840);

    // Signed only: the services can still be seen, and judged.
    let r = client(&net, "hmi", "sign", "browse read write");
    assert_eq!(
        starts(&r),
        ["connect ok", "browse ok", "read ok", "write error"],
        "{r:?}"
    );
    let e = denied(&net, "the signed write", |e| {
        e["op"]["service"] == "write" && e["op"]["security_mode"] == "sign"
    });
    assert_eq!(e["op"]["security_policy"], "basic256sha256");
    assert_eq!(e["reason"], "function");

    // Signed and encrypted: nothing can be seen; a rule that limits services refuses
    // the first opaque request (CreateSession), and the session never opens.
    let r = client(&net, "hmi", "encrypt", "read");
    assert_eq!(starts(&r), ["connect error"], "{r:?}");
    let e = denied(&net, "the opaque request", |e| e["op"]["opaque"] == true);
    assert_eq!(e["reason"], "function");
    assert_eq!(e["op"]["security_mode"], "sign-and-encrypt");
    assert!(e["op"].get("service").is_none(), "never guessed: {e}");

    // A rule that wants encrypted channels: the None channel is refused at its OPN …
    let r = client(&net, "intr", "none", "read");
    assert_eq!(starts(&r), ["connect error"], "{r:?}");
    let e = denied(&net, "the None OPN", |e| e["op"]["message"] == "opn");
    assert_eq!(e["reason"], "security");
    assert_eq!(e["rule"], "eng-encrypted-only");
    assert_eq!(e["op"]["security_policy"], "none");
    assert_eq!(e["op"]["service"], "open-secure-channel");
    // … a signed channel at its first message, where the mode shows …
    let r = client(&net, "intr", "sign", "read");
    assert_eq!(starts(&r), ["connect error"], "{r:?}");
    let e = denied(&net, "the signed CreateSession", |e| {
        e["op"]["security_mode"] == "sign" && e["src"] == INTRUDER
    });
    assert_eq!(e["reason"], "security");
    assert_eq!(e["op"]["service"], "create-session");
    // … and an encrypted channel does everything (the rule limits no service).
    let r = client(&net, "intr", "encrypt", "browse read write call");
    assert_eq!(
        starts(&r),
        ["connect ok", "browse ok", "read ok", "write ok", "call ok"],
        "{r:?}"
    );
    let e = net.wait_event("the encrypted channel logged", |e| {
        e["verdict"] == "allow" && e["rule"] == "eng-encrypted-only" && e["op"]["opaque"] == true
    });
    assert_eq!(e["op"]["security_policy"], "basic256sha256");
}

#[test]
fn hand_built_frames_segments_and_malformed_input() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("opcua-raw");
    opcua_server(&mut net);
    net.start_daemon(&policy("enforce"), &[]);
    let raw = |steps: &str| peer(&net, "hmi", &format!("raw {PLC} 4840 {steps}"));

    // A HEL in two segments, then an OPN: answered; HEL and OPN in one segment too.
    assert_eq!(raw("hello-split open"), ["hello-split ok", "open ok"]);
    assert_eq!(raw("hello-open"), ["hello-open ok"]);
    // What the server itself would let pass (it waits, or takes the bad URL) is reset.
    assert_eq!(raw("garbage"), ["garbage reset"]);
    let e = denied(&net, "garbage", |e| e["reason"] == "malformed");
    assert_eq!(e["detail"], "unknown message type");
    assert_eq!(raw("msg-first"), ["msg-first reset"]);
    denied(&net, "a MSG before OPN", |e| {
        e["detail"] == "MSG before OpenSecureChannel"
    });
    assert_eq!(raw("bad-url"), ["bad-url reset"]);
    denied(&net, "a URL that is not UTF-8", |e| {
        e["detail"] == "string is not UTF-8"
    });
    // The intruder's rule takes no None channel: its hand-built OPN is refused.
    let r = peer(&net, "intr", &format!("raw {PLC} 4840 hello open"));
    assert_eq!(r, ["hello ok", "open reset"]);
}

#[test]
fn monitor_mode_forwards_and_reports_what_enforce_would_refuse() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("opcua-monitor");
    opcua_server(&mut net);
    net.start_daemon(&policy("monitor"), &[]);
    let r = client(&net, "hmi", "none", "read write call read");
    assert_eq!(
        starts(&r),
        ["connect ok", "read ok", "write ok", "call ok", "read ok"],
        "{r:?}"
    );
    assert_eq!(r[4], "read ok 42.0", "the write happened");
    for service in ["write", "call"] {
        let e = net.wait_event(service, |e| {
            e["verdict"] == "would-deny" && e["op"]["service"] == service
        });
        assert_eq!(e["reason"], "function");
        assert_eq!(e["rule"], "hmi-reads");
    }
    let r = client(&net, "intr", "none", "read");
    assert_eq!(starts(&r), ["connect ok", "read ok"], "{r:?}");
    let e = net.wait_event("the None channel", |e| {
        e["verdict"] == "would-deny" && e["reason"] == "security"
    });
    assert_eq!(e["op"]["message"], "opn");
}
