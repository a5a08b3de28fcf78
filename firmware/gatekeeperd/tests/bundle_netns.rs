//! gatekeeperd in production mode between real stacks: signed bundles offered through
//! the control socket and the inbox, pending and confirmed, reverted (window, health
//! check, restart), refused for every reason, swapped under traffic without loss, and
//! a state directory that survives SIGKILL at any point of an apply.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use gk_bundle::format::{self, Metadata};
use gk_bundle::keys::{self, SecretKey};
use serde_json::{json, Value};
use time::OffsetDateTime;

/// A policy: the HMI may ping the PLC, and (with `modbus`) open TCP 502; `extra` is
/// appended (health checks).
fn policy(name: &str, modbus: bool, extra: &str) -> String {
    let tcp = if modbus {
        "[[rule]]\nname = \"hmi-502\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\nports = [502]\naction = \"allow\"\n"
    } else {
        ""
    };
    format!(
        r#"schema = 1
[gatekeeper]
name = "{name}"
mode = "enforce"
[hosts.plc]
ip = "{PLC}"
mac = "{PLC_MAC}"
[hosts.hmi]
ip = "{HMI}"
[[rule]]
name = "hmi-ping"
from = "hmi"
to = "plc"
proto = "icmp"
icmp = ["echo-request"]
action = "allow"
{tcp}{extra}"#
    )
}

/// One gatekeeper box under test: its namespaces, its trust store (one signer), its
/// state directory, inbox and control socket.
struct Box_ {
    net: Net,
    trust: PathBuf,
    state: PathBuf,
    inbox: PathBuf,
    socket: PathBuf,
    signer: SecretKey,
}

impl Box_ {
    fn new(test: &str) -> Box_ {
        let net = Net::new(test);
        let dir = net.dir.clone();
        let (keys_dir, trust, state, inbox) = (
            dir.join("keys"),
            dir.join("trust"),
            dir.join("state"),
            dir.join("inbox"),
        );
        for d in [&keys_dir, &trust, &state, &inbox] {
            std::fs::create_dir_all(d).unwrap();
        }
        let signer = keys::generate("ops-1");
        let (_, public) = keys::write_pair(&keys_dir, &signer).unwrap();
        std::fs::copy(&public, trust.join("ops-1.pub")).unwrap();
        Box_ {
            socket: dir.join("control.sock"),
            net,
            trust,
            state,
            inbox,
            signer,
        }
    }

    fn start(&mut self, extra: &[&str]) {
        let (t, s, i, c) = (
            self.trust.to_string_lossy().into_owned(),
            self.state.to_string_lossy().into_owned(),
            self.inbox.to_string_lossy().into_owned(),
            self.socket.to_string_lossy().into_owned(),
        );
        let mut args = vec![
            "--trust",
            &t,
            "--state",
            &s,
            "--inbox",
            &i,
            "--control",
            &c,
            "--device-id",
            "box-17",
        ];
        args.extend_from_slice(extra);
        self.net.start_daemon_args(&args);
        wait_until(Duration::from_secs(10), || self.socket.exists());
    }

    fn bundle(&self, serial: u64, text: &str) -> Vec<u8> {
        self.bundle_with(serial, text, |_| {})
    }

    fn bundle_with(&self, serial: u64, text: &str, edit: impl FnOnce(&mut Metadata)) -> Vec<u8> {
        let mut m = Metadata {
            serial,
            created: OffsetDateTime::now_utc(),
            expires: None,
            devices: vec![],
            site: None,
            comment: Some(format!("test bundle {serial}")),
            confirm_window: None,
            policy_file: Some("policy.toml".into()),
        };
        edit(&mut m);
        format::build(&m, text, &self.signer)
    }

    fn ask(&self, request: Value) -> Value {
        let mut s = UnixStream::connect(&self.socket).expect("control socket");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        writeln!(s, "{request}").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("answer {line:?}"))
    }

    fn apply(&self, bytes: &[u8]) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.ask(json!({"command": "apply", "bundle": b64, "name": "test.gkb"}))
    }

    fn confirm(&self) -> Value {
        self.ask(json!({"command": "confirm"}))
    }

    /// Applies a bundle of `text` with `serial` and confirms it (both must succeed).
    fn apply_confirmed(&self, serial: u64, text: &str) {
        let answer = self.apply(&self.bundle(serial, text));
        assert_eq!(answer["code"], "pending", "{answer}");
        let answer = self.confirm();
        assert_eq!(answer["code"], "confirmed", "{answer}");
    }

    fn status(&self) -> Value {
        self.ask(json!({"command": "status"}))["status"].clone()
    }

    /// The serial of the bundle in force (confirmed), if any.
    fn current(&self) -> Option<u64> {
        self.status()["current"]["serial"].as_u64()
    }

    fn pending(&self) -> Option<u64> {
        self.status()["pending"]["bundle"]["serial"].as_u64()
    }

    /// Drops a bundle into the inbox and waits until the daemon has judged it.
    fn drop_in(&self, name: &str, bytes: &[u8]) -> Value {
        let path = self.inbox.join(name);
        let tmp = self.inbox.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        self.net.wait_event(&format!("{name} judged"), |e| {
            e["event"] == "bundle" && e["file"] == name
        })
    }

    fn audit(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.state.join("audit.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn traffic_ok(net: &Net) -> (bool, bool) {
    (net.ping("hmi", PLC), net.tcp("hmi", PLC, 502, 2000).is_ok())
}

#[test]
fn a_bundle_is_applied_confirmed_and_survives_a_restart() {
    if !require_root() {
        return;
    }
    let mut b = Box_::new("bundle-apply");
    b.net.echo_server("plc", "tcp", 502);
    b.start(&[]);
    // No bundle yet: fail-closed (the default) forwards nothing, and says so.
    assert_eq!(traffic_ok(&b.net), (false, false));
    assert_eq!(b.status()["failure_mode"], "fail-closed");
    assert!(b.net.daemon_log().contains("NO VALID BUNDLE: fail-closed"));

    let answer = b.apply(&b.bundle(1, &policy("serial-1", true, "")));
    assert_eq!(answer["code"], "pending", "{answer}");
    assert_eq!(b.pending(), Some(1));
    assert_eq!(traffic_ok(&b.net), (true, true), "in force while pending");
    let answer = b.confirm();
    assert_eq!(answer["code"], "confirmed", "{answer}");
    assert_eq!((b.current(), b.pending()), (Some(1), None));
    let st = b.status();
    assert_eq!(st["ratchet"], 1);
    assert_eq!(st["current"]["signers"][0]["name"], "ops-1");
    assert_eq!(st["policy"], "serial-1");

    // A restart keeps it.
    b.net.stop_daemon();
    b.start(&[]);
    assert_eq!(b.current(), Some(1));
    assert_eq!(traffic_ok(&b.net), (true, true));
    let outcomes: Vec<String> = b
        .audit()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap().to_string())
        .collect();
    assert!(
        outcomes.windows(2).any(|w| w == ["pending", "confirmed"]),
        "{outcomes:?}"
    );
    let e = b.net.wait_event("confirmed event", |e| {
        e["event"] == "bundle" && e["outcome"] == "confirmed"
    });
    assert_eq!(e["serial"], 1);
}

#[test]
fn refused_bundles_leave_the_running_policy_untouched() {
    if !require_root() {
        return;
    }
    let mut b = Box_::new("bundle-refused");
    b.net.echo_server("plc", "tcp", 502);
    b.start(&[]);
    b.apply_confirmed(5, &policy("serial-5", true, ""));

    let good = b.bundle(6, &policy("serial-6", false, ""));
    let mut tampered = good.clone();
    let at = tampered.len() - 20;
    tampered[at] ^= 0x20;
    let stranger = keys::generate("stranger");
    let by_stranger = format::build(
        &gk_bundle::format::read_unverified(&good).unwrap().0,
        &policy("stranger", false, ""),
        &stranger,
    );
    let past = OffsetDateTime::now_utc() - time::Duration::days(1);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("tampered.gkb", tampered, "bad-signature"),
        ("stranger.gkb", by_stranger, "unknown-key"),
        (
            "older.gkb",
            b.bundle(4, &policy("old", false, "")),
            "rollback",
        ),
        (
            "same-serial.gkb",
            b.bundle(5, &policy("same", false, "")),
            "rollback",
        ),
        (
            "expired.gkb",
            b.bundle_with(7, &policy("expired", false, ""), |m| {
                m.created = past - time::Duration::days(1);
                m.expires = Some(past);
            }),
            "expired",
        ),
        (
            "other-box.gkb",
            b.bundle_with(8, &policy("other", false, ""), |m| {
                m.devices = vec!["box-99".into()]
            }),
            "wrong-device",
        ),
        ("truncated.gkb", good[..good.len() / 2].to_vec(), ""),
        (
            "garbage.gkb",
            b"this is not a bundle at all\n".repeat(10),
            "",
        ),
        ("huge.gkb", vec![b'x'; 2 << 20], ""),
        (
            "bad-policy.gkb",
            b.bundle(
                9,
                &policy(
                    "bad",
                    false,
                    "[[rule]]\nname = \"x\"\nfrom = \"nobody\"\nto = \"plc\"\naction = \"allow\"\n",
                ),
            ),
            "invalid-policy",
        ),
    ];
    for (name, bytes, code) in &cases {
        let e = b.drop_in(name, bytes);
        assert_eq!(e["outcome"], "refused", "{name}: {e}");
        let reason = e["reason"].as_str().unwrap();
        assert!(reason.starts_with(code), "{name}: {reason}");
    }
    // Still serial 5, still the same traffic.
    assert_eq!((b.current(), b.pending()), (Some(5), None));
    assert_eq!(traffic_ok(&b.net), (true, true));
    let refused = b
        .audit()
        .iter()
        .filter(|e| e["outcome"] == "refused")
        .count();
    assert_eq!(refused, cases.len(), "every refusal is in the audit log");
    let log = b.net.daemon_log();
    assert!(log.contains("bundle refused"), "{log}");
}

#[test]
fn an_unconfirmed_bundle_reverts_when_its_window_ends() {
    if !require_root() {
        return;
    }
    let mut b = Box_::new("bundle-window");
    b.net.echo_server("plc", "tcp", 502);
    b.start(&["--confirm-window", "4"]);
    b.apply_confirmed(1, &policy("open", true, ""));
    // Serial 2 cuts TCP 502; nobody confirms it.
    assert_eq!(
        b.apply(&b.bundle(2, &policy("cut", false, "")))["code"],
        "pending"
    );
    assert_eq!(traffic_ok(&b.net), (true, false));
    wait_until(Duration::from_secs(15), || b.pending().is_none());
    assert_eq!(b.current(), Some(1));
    assert_eq!(traffic_ok(&b.net), (true, true), "serial 1 is back");
    let e = b.net.wait_event("reverted", |e| e["outcome"] == "reverted");
    assert!(e["reason"].as_str().unwrap().contains("window"), "{e}");
    // The ratchet did not move: the same bundle can be offered again.
    assert_eq!(b.status()["ratchet"], 1);
    assert_eq!(
        b.apply(&b.bundle(2, &policy("cut", false, "")))["code"],
        "pending"
    );
}

#[test]
fn health_checks_confirm_a_good_bundle_and_revert_one_that_cuts_traffic() {
    if !require_root() {
        return;
    }
    let check = "[[health]]\nname = \"hmi-polls-plc\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\nports = [502]\nwithin = 20\n";
    let mut b = Box_::new("bundle-health");
    b.net.echo_server("plc", "tcp", 502);
    b.start(&[]);
    assert_eq!(
        b.apply(&b.bundle(1, &policy("good", true, check)))["code"],
        "pending"
    );
    // The HMI's traffic flows both ways: confirmed without an operator.
    net_tcp_until(&b.net, || b.pending().is_none());
    assert_eq!(b.current(), Some(1));
    let e = b
        .net
        .wait_event("confirmed by health", |e| e["outcome"] == "confirmed");
    assert!(e["reason"].as_str().unwrap().contains("health"), "{e}");

    // A bundle that cuts the watched traffic: the first refused connection reverts it.
    assert_eq!(
        b.apply(&b.bundle(2, &policy("cutting", false, check)))["code"],
        "pending"
    );
    let started = Instant::now();
    let _ = b.net.tcp("hmi", PLC, 502, 100);
    wait_until(Duration::from_secs(10), || b.pending().is_none());
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(b.current(), Some(1));
    let e = b
        .net
        .wait_event("reverted by health", |e| e["outcome"] == "reverted");
    assert!(
        e["reason"].as_str().unwrap().contains("hmi-polls-plc"),
        "{e}"
    );
    assert_eq!(traffic_ok(&b.net), (true, true));
}

/// Runs TCP exchanges until `done` (the health check needs traffic to watch).
fn net_tcp_until(net: &Net, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        let _ = net.tcp("hmi", PLC, 502, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_restart_while_pending_brings_the_previous_bundle_back() {
    if !require_root() {
        return;
    }
    let mut b = Box_::new("bundle-restart");
    b.net.echo_server("plc", "tcp", 502);
    b.start(&[]);
    b.apply_confirmed(1, &policy("open", true, ""));
    assert_eq!(
        b.apply(&b.bundle(2, &policy("cut", false, "")))["code"],
        "pending"
    );
    b.net.kill_daemon();
    b.start(&[]);
    assert_eq!((b.current(), b.pending()), (Some(1), None));
    assert_eq!(traffic_ok(&b.net), (true, true));
    let reverted = b
        .audit()
        .into_iter()
        .find(|e| e["outcome"] == "reverted")
        .expect("audited");
    assert_eq!(reverted["reason"], "restart while pending");
}

#[test]
fn fail_open_forwards_everything_and_says_so() {
    if !require_root() {
        return;
    }
    let mut b = Box_::new("bundle-fail-open");
    b.net.echo_server("plc", "tcp", 502);
    b.start(&["--on-failure", "fail-open"]);
    assert_eq!(traffic_ok(&b.net), (true, true));
    assert_eq!(b.status()["failure_mode"], "fail-open");
    assert!(b
        .net
        .daemon_log()
        .contains("FAIL-OPEN, FORWARDING EVERYTHING UNFILTERED"));
    b.net.wait_event("failure-mode event", |e| {
        e["event"] == "failure-mode" && e["mode"] == "fail-open"
    });
}

#[test]
fn a_new_box_monitors_everything_until_its_first_bundle_is_confirmed() {
    if !require_root() {
        return;
    }
    let mut b = Box_::new("bundle-factory");
    b.net.echo_server("plc", "tcp", 502);
    b.net.echo_server("plc", "tcp", 8080);
    let ready = b.net.dir.join("ready");
    let ready_arg = ready.to_string_lossy().into_owned();
    b.start(&[
        "--factory-monitor",
        "--ready-file",
        &ready_arg,
        "--confirm-window",
        "3",
    ]);
    wait_until(Duration::from_secs(10), || ready.exists());
    assert!(std::fs::read_to_string(&ready)
        .unwrap()
        .starts_with("gatekeeperd "));
    // Factory default: everything passes (even a port no policy would allow), and the
    // box says it is monitoring.
    assert_eq!(traffic_ok(&b.net), (true, true));
    assert_eq!(b.net.tcp("hmi", PLC, 8080, 1000), Ok(()));
    let st = b.status();
    assert_eq!(
        (&st["factory_default"], &st["failure_mode"], &st["mode"]),
        (&json!(true), &Value::Null, &json!("monitor")),
        "{st}"
    );
    assert!(b.net.daemon_log().contains("FACTORY DEFAULT"));
    b.net.wait_event("factory-default event", |e| {
        e["event"] == "failure-mode" && e["mode"] == "factory-default"
    });
    b.net
        .wait_event("what a policy would refuse is reported", |e| {
            e["verdict"] == "would-deny"
        });

    // An unconfirmed first bundle that reverts brings the factory default back.
    assert_eq!(
        b.apply(&b.bundle(1, &policy("first", true, "")))["code"],
        "pending"
    );
    assert!(b.net.tcp("hmi", PLC, 8080, 1000).is_err());
    wait_until(Duration::from_secs(20), || b.pending().is_none());
    assert_eq!(b.status()["factory_default"], true);
    assert_eq!(b.net.tcp("hmi", PLC, 8080, 1000), Ok(()));

    // Once a bundle is confirmed, the box is no longer new: losing the bundle (here its
    // signer leaves the trust store) is a failure, and fail-closed applies.
    b.apply_confirmed(2, &policy("second", true, ""));
    assert_eq!(b.status()["factory_default"], false);
    assert!(b.net.tcp("hmi", PLC, 8080, 1000).is_err());
    let (code, _) = b.net.stop_daemon();
    assert_eq!(code, 0);
    assert!(!ready.exists(), "the ready file goes away with the daemon");
    std::fs::remove_file(b.trust.join("ops-1.pub")).unwrap();
    let elsewhere = b.net.dir.join("other-keys");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let (_, other) = keys::write_pair(&elsewhere, &keys::generate("other")).unwrap();
    std::fs::copy(other, b.trust.join("other.pub")).unwrap();
    b.start(&["--factory-monitor", "--ready-file", &ready_arg]);
    let st = b.status();
    assert_eq!(
        (&st["factory_default"], &st["failure_mode"]),
        (&json!(false), &json!("fail-closed")),
        "{st}"
    );
    assert_eq!(traffic_ok(&b.net), (false, false));
}

#[test]
fn swaps_under_traffic_lose_nothing() {
    if !require_root() {
        return;
    }
    let mut b = Box_::new("bundle-hitless");
    b.net.echo_server("plc", "tcp", 502);
    b.start(&[]);
    b.apply_confirmed(1, &policy("base", true, ""));
    // A counted UDP stream (allowed by every bundle below) and a long TCP transfer run
    // while ten bundles are applied and confirmed one after the other.
    let udp_rule = "[[rule]]\nname = \"hmi-udp\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"udp\"\nports = [9999]\naction = \"allow\"\n";
    b.apply_confirmed(2, &policy("with-udp", true, udp_rule));
    let count = b.net.dir.join("udp-count");
    b.net.spawn(
        "plc",
        &format!(
            "python3 -c \"import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET,33,8<<20); s.bind(('0.0.0.0',9999)); s.recv(100); n=1; s.settimeout(5)\n\
try:\n    while True:\n        s.recv(100); n+=1\nexcept socket.timeout:\n    pass\nopen(sys.argv[1],'w').write(str(n))\" {}",
            count.display()
        ),
    );
    b.net.wait_listening("plc", "udp", 9999);
    let backlog_drops_before = softnet_drops();
    let sent = 20_000;
    b.net.spawn(
        "hmi",
        &format!(
            "python3 -c \"import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
for i in range({sent}):\n    s.sendto(b'x'*64, ('{PLC}',9999))\n    time.sleep(0.0002) if i % 10 == 0 else None\""
        ),
    );
    let tcp = std::thread::scope(|scope| {
        let net = &b.net;
        let bulk = scope.spawn(move || net.tcp("hmi", PLC, 502, 20_000_000));
        for serial in 3..13 {
            let extra = format!("{udp_rule}# revision {serial}\n");
            let answer =
                b.apply(&b.bundle(serial, &policy(&format!("rev-{serial}"), true, &extra)));
            assert_eq!(answer["code"], "pending", "{answer}");
            assert_eq!(b.confirm()["code"], "confirmed");
        }
        bulk.join().unwrap()
    });
    assert_eq!(tcp, Ok(()), "the TCP transfer survived ten swaps intact");
    wait_until(Duration::from_secs(60), || count.exists());
    let received: u64 = std::fs::read_to_string(&count)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(b.current(), Some(12));
    let st = b.status();
    let run = &st["running"];
    // The gatekeeper itself refused nothing of the test's conversations (the namespaces'
    // own IGMP reports are refused as they should be) and sent every frame it forwarded ...
    assert_eq!(run["flows"]["revoked"], 0, "{run}");
    assert_eq!(
        run["events"]["suppressed"], 0,
        "every refusal is in the log: {run}"
    );
    let refused_test_traffic = std::fs::read_to_string(b.net.events_path())
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["verdict"] == "deny" && (e["dst"] == PLC || e["src"] == PLC))
        .count();
    assert_eq!(refused_test_traffic, 0, "nothing refused across ten swaps");
    for port in ["plant", "asset"] {
        assert_eq!(run[port]["tx_errors"], 0, "{port}: {run}");
    }
    // ... so a datagram can only be missing where the kernel says it dropped one: the
    // ports' receive rings or a CPU's backlog, both full when this 2-core machine is
    // busy (the TCP transfer shares them). Nothing else may explain a loss.
    let ring_drops = run["plant"]["kernel_drops"].as_u64().unwrap()
        + run["asset"]["kernel_drops"].as_u64().unwrap();
    let backlog_drops = softnet_drops() - backlog_drops_before;
    assert!(
        received + ring_drops + backlog_drops >= sent,
        "{} datagrams lost, the kernel dropped {ring_drops} at the rings and {backlog_drops} \
         in backlogs: {run}",
        sent - received
    );
    if received < sent {
        eprintln!(
            "note: {} of {sent} datagrams lost to a busy machine (ring drops {ring_drops}, \
             backlog drops {backlog_drops}); the gatekeeper dropped none",
            sent - received
        );
    }
}

/// Packets the kernel dropped because a CPU's input backlog was full, over all CPUs
/// (`/proc/net/softnet_stat`, second column; the count is machine-wide).
fn softnet_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|h| u64::from_str_radix(h, 16).unwrap())
        .sum()
}

#[test]
fn sigkill_at_any_point_of_an_apply_leaves_a_usable_state() {
    if !require_root() {
        return;
    }
    let mut b = Box_::new("bundle-sigkill");
    b.start(&[]);
    b.apply_confirmed(1, &policy("first", true, ""));
    let mut confirmed = 1;
    for round in 0..12u64 {
        let serial = 10 + round;
        let bytes = b.bundle(serial, &policy(&format!("s{serial}"), round % 2 == 0, ""));
        // Apply and confirm from another thread, and kill the daemon somewhere in it.
        let delay = Duration::from_millis((round * 37) % 400);
        let socket = b.socket.clone();
        let applier = std::thread::spawn(move || {
            let answer = raw_ask(
                &socket,
                json!({"command": "apply", "bundle": base64::engine::general_purpose::STANDARD.encode(&bytes)}),
            );
            if answer.get("code").and_then(Value::as_str) == Some("pending") {
                raw_ask(&socket, json!({"command": "confirm"}));
            }
        });
        std::thread::sleep(delay);
        b.net.kill_daemon();
        let _ = applier.join();
        b.start(&[]);
        // Either the new bundle was confirmed before the kill, or the old one runs.
        let current = b.current().expect("a bundle in force after every kill");
        assert!(
            current == confirmed || current == serial,
            "round {round}: {current}"
        );
        confirmed = current;
        assert_eq!(
            b.pending(),
            None,
            "round {round}: a pending bundle never survives a restart"
        );
        let report = gk_bundle::state::audit_verify(&b.state)
            .unwrap_or_else(|e| panic!("round {round}: audit log unreadable: {e}"));
        assert!(
            report.is_intact(),
            "round {round}: audit chain broken: {report:?}"
        );
        assert!(report.entries > 0);
    }
}

/// A request on a fresh connection; an empty object when the daemon is gone.
fn raw_ask(socket: &Path, request: Value) -> Value {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return json!({});
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if writeln!(s, "{request}").is_err() {
        return json!({});
    }
    let mut line = String::new();
    let _ = BufReader::new(s).read_line(&mut line);
    serde_json::from_str(&line).unwrap_or(json!({}))
}

/// `link-propagation` comes and goes with the bundle: a bundle that asks for it while the
/// plant link is already down takes the asset port down (and status says so); the next
/// bundle, without it, brings the asset port back although the plant link is still down.
#[test]
fn link_propagation_follows_the_bundle_in_force() {
    if !require_root() {
        return;
    }
    let mut b = Box_::new("bundle-linkprop");
    b.start(&[]);
    let plc_carrier = |b: &Box_| {
        b.net
            .sh("plc", "cat /sys/class/net/eth0/carrier")
            .trim()
            .to_string()
    };
    b.net.sh("sw", "ip link set uplink down");
    // Past the ports' start-up settling time (5 s), so that nothing waits for it below.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(plc_carrier(&b), "1", "fail-closed does not propagate");

    let on = policy("linkprop-on", false, "").replacen(
        "mode = \"enforce\"",
        "mode = \"enforce\"\nlink-propagation = true",
        1,
    );
    assert_eq!(b.apply(&b.bundle(1, &on))["code"], "pending");
    wait_until(Duration::from_secs(5), || plc_carrier(&b) == "0");
    assert_eq!(
        b.status()["running"]["asset"]["held_down"],
        true,
        "{}",
        b.status()
    );
    assert_eq!(b.confirm()["code"], "confirmed");

    assert_eq!(
        b.apply(&b.bundle(2, &policy("linkprop-off", false, "")))["code"],
        "pending"
    );
    wait_until(Duration::from_secs(5), || plc_carrier(&b) == "1");
    assert_eq!(b.status()["running"]["asset"]["held_down"], false);
    let (code, stderr) = b.net.stop_daemon();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("link propagation is off: bringing up the other port"),
        "{stderr}"
    );
}
