//! gkctl as an operator runs it: exit codes, messages, and replay output.

mod common;

use common::*;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use gk_dataplane::testing::{flags::*, FrameBuilder};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gkctl-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const POLICY: &str = r#"schema = 1

[gatekeeper]
name = "replay-test"
mode = "enforce"

[hosts.plc]
ip = "10.10.0.10"
mac = "02:00:00:00:00:10"

[hosts.hmi]
ip = "10.10.0.21"

[[rule]]
name = "hmi-polls-plc"
from = "hmi"
to = "plc"
proto = "tcp"
ports = [502]
action = "allow"
"#;

#[test]
fn lint_accepts_every_example_policy() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = gkctl(&["lint", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
            assert!(text(&out.stdout).contains(": ok"), "{}", text(&out.stdout));
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} example policies found");
}

#[test]
fn lint_reports_errors_with_file_line_and_column() {
    let path = scratch("bad-host.toml");
    std::fs::write(&path, POLICY.replace("from = \"hmi\"", "from = \"hmi2\"")).unwrap();
    let out = gkctl(&["lint", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    // `from = "hmi2"` is line 16; the value starts at column 8.
    assert!(stderr.contains("bad-host.toml:16:8: error:"), "{stderr}");
    assert!(stderr.contains("unknown host \"hmi2\""), "{stderr}");

    let path = scratch("bad-key.toml");
    std::fs::write(
        &path,
        POLICY.replace("ports = [502]", "ports = [502]\ncolour = \"red\""),
    )
    .unwrap();
    let out = gkctl(&["lint", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad-key.toml:20:1: error: unknown field `colour`"),
        "{stderr}"
    );
}

#[test]
fn lint_reports_a_missing_file() {
    let out = gkctl(&["lint", "/nonexistent/policy.toml"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("/nonexistent/policy.toml"),
        "{}",
        text(&out.stderr)
    );
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let file = std::fs::File::create(path).unwrap();
    let mut writer = PcapWriter::with_header(file, PcapHeader::default()).unwrap();
    for (i, frame) in frames.iter().enumerate() {
        let ts = std::time::Duration::from_millis(1_700_000_000_000 + i as u64 * 10);
        writer
            .write_packet(&PcapPacket::new(ts, frame.len() as u32, frame))
            .unwrap();
    }
}

fn capture() -> PathBuf {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let hmi = FrameBuilder::new([2, 0, 0, 0, 0, 0x21], [2, 0, 0, 0, 0, 0x10]);
    let plc = FrameBuilder::new([2, 0, 0, 0, 0, 0x10], [2, 0, 0, 0, 0, 0x21]);
    let intruder = FrameBuilder::new([2, 0, 0, 0, 0, 0x66], [2, 0, 0, 0, 0, 0x10]);
    let frames = vec![
        hmi.tcp(ip("10.10.0.21"), 40000, ip("10.10.0.10"), 502, SYN, b""),
        plc.tcp(
            ip("10.10.0.10"),
            502,
            ip("10.10.0.21"),
            40000,
            SYN | ACK,
            b"",
        ),
        hmi.tcp(ip("10.10.0.21"), 40000, ip("10.10.0.10"), 502, ACK, b""),
        intruder.tcp(ip("10.10.0.66"), 40001, ip("10.10.0.10"), 502, SYN, b""),
        intruder.arp(
            2,
            [2, 0, 0, 0, 0, 0x66],
            "10.10.0.10".parse().unwrap(),
            "10.10.0.21".parse().unwrap(),
        ),
    ];
    let path = scratch("capture.pcap");
    write_pcap(&path, &frames);
    path
}

#[test]
fn replay_prints_a_verdict_per_packet_and_a_summary() {
    let policy = scratch("replay.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let out = gkctl(&[
        "replay",
        "--policy",
        policy.to_str().unwrap(),
        capture().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].contains("allow")
            && lines[0].contains("hmi-polls-plc")
            && lines[0].contains("rule"),
        "{stdout}"
    );
    // The reply was recognised as such: it came from the other side (MAC inference).
    assert!(
        lines[1].contains("asset") && lines[1].contains("flow"),
        "{stdout}"
    );
    assert!(
        lines[2].contains("plant") && lines[2].contains("flow"),
        "{stdout}"
    );
    assert!(
        lines[3].contains("deny")
            && lines[3].contains("no-rule")
            && lines[3].contains("10.10.0.66"),
        "{stdout}"
    );
    assert!(
        lines[4].contains("deny") && lines[4].contains("mac-pin") && lines[4].contains("arp"),
        "{stdout}"
    );
    assert!(stdout.contains("summary: 5 packets"), "{stdout}");
}

#[test]
fn replay_json_uses_the_event_schema() {
    let policy = scratch("replay-json.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let out = gkctl(&[
        "replay",
        "--json",
        "--policy",
        policy.to_str().unwrap(),
        capture().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let values: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(values.len(), 6, "5 packets and a summary");
    let first = &values[0];
    for field in [
        "time", "verdict", "rule", "reason", "port", "src", "dst", "proto", "sport", "dport",
    ] {
        assert!(first.get(field).is_some(), "missing {field}: {first}");
    }
    assert_eq!(first["rule"], "hmi-polls-plc");
    assert_eq!(first["sport"], 40000);
    assert_eq!(first["time"], "2023-11-14T22:13:20Z");
    assert_eq!(values[3]["verdict"], "deny");
    assert_eq!(values[3]["reason"], "no-rule");
    assert_eq!(values[5]["summary"]["packets"], 5);
}

#[test]
fn replay_refuses_what_is_not_a_capture() {
    let policy = scratch("replay-bad.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let junk = scratch("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file").unwrap();
    let out = gkctl(&[
        "replay",
        "--policy",
        policy.to_str().unwrap(),
        junk.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("junk.pcap"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn replay_shows_modbus_operations_and_resets() {
    let policy = scratch("replay-modbus.toml");
    std::fs::write(
        &policy,
        POLICY.replace(
            "proto = \"tcp\"\nports = [502]\naction = \"allow\"",
            "proto = \"modbus\"\naction = \"allow\"\n[rule.modbus]\npreset = \"read-only\"",
        ),
    )
    .unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let (h, p) = (ip("10.10.0.21"), ip("10.10.0.10"));
    let hmi = FrameBuilder::new([2, 0, 0, 0, 0, 0x21], [2, 0, 0, 0, 0, 0x10]);
    let plc = FrameBuilder::new([2, 0, 0, 0, 0, 0x10], [2, 0, 0, 0, 0, 0x21]);
    let read = [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2];
    let answer = [0, 1, 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2];
    let write = [0, 2, 0, 0, 0, 6, 1, 6, 0, 7, 0, 1];
    let frames = vec![
        hmi.tcp_seq(h, 40000, p, 502, 99, 0, SYN, b""),
        plc.tcp_seq(p, 502, h, 40000, 499, 100, SYN | ACK, b""),
        hmi.tcp_seq(h, 40000, p, 502, 100, 500, ACK | PSH, &read),
        plc.tcp_seq(p, 502, h, 40000, 500, 112, ACK | PSH, &answer),
        hmi.tcp_seq(h, 40000, p, 502, 112, 513, ACK | PSH, &write),
    ];
    let pcap = scratch("modbus.pcap");
    write_pcap(&pcap, &frames);
    let out = gkctl(&[
        "replay",
        "--policy",
        policy.to_str().unwrap(),
        pcap.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[2].contains("allow")
            && lines[2].contains("modbus function=read-holding-registers unit=1 address=0 count=2"),
        "{stdout}"
    );
    assert!(
        lines[4].contains("deny")
            && lines[4].contains("function ")
            && lines[4].contains("function=write-single-register")
            && lines[4].contains("(connection reset both ways)"),
        "{stdout}"
    );
    let out = gkctl(&[
        "replay",
        "--json",
        "--policy",
        policy.to_str().unwrap(),
        pcap.to_str().unwrap(),
    ]);
    let values: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(values[4]["reason"], "function");
    assert_eq!(
        values[4]["op"],
        serde_json::json!({"protocol": "modbus", "function": "write-single-register", "unit": 1, "address": 7, "count": 1})
    );
}
