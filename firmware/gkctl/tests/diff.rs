//! `gkctl diff` as a reviewer runs it: exit status (0 same traffic, 1 different, 2 bad
//! input), what the report says, and its JSON.

mod common;

use common::*;
use std::process::Output;

use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gkctl-diff-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A press line: HMIs read the PLC over Modbus, the engineering station writes a few
/// registers, HMIs and the station may ping, TCP 8080 for the HMI's web view.
const BASE: &str = r#"schema = 1

[gatekeeper]
name = "press-line-3"
mode = "enforce"

[l2]
ethertypes = ["arp", "ipv4"]

[hosts.plc]
ip = "10.10.0.10"
mac = "02:00:00:00:00:10"

[hosts.hmi]
ip = ["10.10.0.21", "10.10.0.22"]

[hosts.eng]
ip = "10.10.0.31"

[[rule]]
name = "hmi-reads"
from = "hmi"
to = "plc"
proto = "modbus"
action = "allow"
[rule.modbus]
units = [1]
functions = ["read-holding-registers"]
addresses = ["0-99"]

[[rule]]
name = "eng-writes"
from = "eng"
to = "plc"
proto = "modbus"
action = "alert"
[rule.modbus]
units = [1]
functions = ["write-single-register"]
addresses = ["100-199"]

[[rule]]
name = "hmi-web"
from = "hmi"
to = "plc"
proto = "tcp"
ports = [8080]
action = "allow"

[[rule]]
name = "ping-plc"
from = ["hmi", "eng"]
to = "plc"
proto = "icmp"
icmp = ["echo-request"]
action = "allow"
"#;

/// Writes two policies (the second is `BASE` with `edit` applied) and diffs them.
fn diff_with(name: &str, old: &str, new: &str, json: bool) -> Output {
    let a = scratch(&format!("{name}-old.toml"));
    let b = scratch(&format!("{name}-new.toml"));
    std::fs::write(&a, old).unwrap();
    std::fs::write(&b, new).unwrap();
    let mut args = vec!["diff", a.to_str().unwrap(), b.to_str().unwrap()];
    if json {
        args.push("--json");
    }
    gkctl(&args)
}

/// `BASE` with each (from, to) replacement made once; panics if one is not found.
fn edit(replacements: &[(&str, &str)]) -> String {
    let mut s = BASE.to_string();
    for (from, to) in replacements {
        assert!(s.contains(from), "{from:?} not in BASE");
        s = s.replacen(from, to, 1);
    }
    s
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap()
}

/// Runs the diff both as text and as JSON: the exit status agrees, every JSON line
/// parses, and the last one is the summary.
fn both(name: &str, old: &str, new: &str) -> (i32, String, Vec<serde_json::Value>) {
    let t = diff_with(name, old, new, false);
    let j = diff_with(name, old, new, true);
    assert_eq!(code(&t), code(&j), "{}", text(&t.stdout));
    let lines: Vec<serde_json::Value> = text(&j.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summary = &lines.last().expect("a summary")["summary"];
    assert_eq!(
        summary["same_traffic"].as_bool(),
        Some(code(&t) == 0),
        "{summary}"
    );
    (code(&t), text(&t.stdout), lines)
}

/// The traffic changes of a JSON report.
fn traffic(lines: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    lines.iter().filter(|l| l["section"] == "traffic").collect()
}

#[test]
fn identical_policies_and_cosmetic_changes_allow_the_same_traffic() {
    let (c, out, lines) = both("same", BASE, BASE);
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("allow exactly the same traffic"), "{out}");
    assert_eq!(lines.len(), 1, "only the summary: {lines:?}");

    // Hosts in another order, comments, a host list written as a one-element list, a
    // port written as a string, the ping rule's sources in another order.
    let cosmetic = edit(&[
        (
            "[hosts.plc]\nip = \"10.10.0.10\"\nmac = \"02:00:00:00:00:10\"\n\n",
            "# the engineering station first, now\n",
        ),
        (
            "[hosts.eng]\nip = \"10.10.0.31\"\n",
            "[hosts.eng]\nip = [\"10.10.0.31\"]   # one address\n\n\
             [hosts.plc]\nip = \"10.10.0.10\"\nmac = \"02:00:00:00:00:10\"\n",
        ),
        ("ports = [8080]", "ports = [\"8080\"]"),
        ("from = [\"hmi\", \"eng\"]", "from = [\"eng\", \"hmi\"]"),
    ]);
    let (c, out, _) = both("cosmetic", BASE, &cosmetic);
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("allow exactly the same traffic"), "{out}");
}

#[test]
fn a_widened_port_range_is_reported_as_new_traffic() {
    let new = edit(&[("ports = [8080]", "ports = [\"8080-8081\", 8443]")]);
    let (c, out, lines) = both("ports", BASE, &new);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("ALLOWS MORE"), "{out}");
    assert!(out.contains("+ from hmi to plc: tcp 8081,8443"), "{out}");
    assert!(
        out.contains("ports: now also 8081,8443 (was 8080)"),
        "{out}"
    );
    let t = traffic(&lines);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0]["effect"], "widens");
    assert_eq!(t[0]["from"], serde_json::json!(["hmi"]));
    assert_eq!(t[0]["to"], serde_json::json!(["plc"]));
    assert_eq!(t[0]["services"], serde_json::json!(["tcp 8081,8443"]));
    assert_eq!(t[0]["old"]["verdict"], "deny");
    assert_eq!(t[0]["new"]["rule"], "hmi-web");
}

#[test]
fn a_new_rule_and_a_removed_rule() {
    let vendor = "\n[[rule]]\nname = \"vendor-vpn\"\nfrom = \"any\"\nto = \"plc\"\nproto = \"tcp\"\nports = [\"8000-8010\"]\naction = \"allow\"\n";
    let added = format!("{BASE}{vendor}");
    let (c, out, lines) = both("added", BASE, &added);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("added    \"vendor-vpn\""),
        "the rule is listed: {out}"
    );
    assert!(
        out.contains("+ from any IPv4 address to plc: tcp 8000-8010"),
        "{out}"
    );
    assert!(lines
        .iter()
        .any(|l| l["change"] == "added" && l["rule"] == "vendor-vpn"));

    let removed = edit(&[(
        "[[rule]]\nname = \"hmi-web\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\nports = [8080]\naction = \"allow\"\n",
        "",
    )]);
    let (c, out, lines) = both("removed", BASE, &removed);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("allows less"), "{out}");
    assert!(out.contains("nothing is widened"), "{out}");
    assert!(out.contains("- from hmi to plc: tcp 8080"), "{out}");
    assert!(out.contains("removed  \"hmi-web\""), "{out}");
    let t = traffic(&lines);
    assert!(
        t.iter().all(|l| l["effect"] == "narrows") && !t.is_empty(),
        "{t:?}"
    );
}

#[test]
fn a_reordered_pair_matters_only_when_the_rules_overlap() {
    let deny = "[[rule]]\nname = \"no-hmi-ping\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"icmp\"\naction = \"deny\"\n\n";
    let ping = "[[rule]]\nname = \"ping-plc\"";
    // Deny after the ping rule: hmi pings pass; before it: they do not.
    let after = format!("{BASE}\n{}", deny.trim_end());
    let before = BASE.replacen(ping, &format!("{deny}{ping}"), 1);
    let (c, out, lines) = both("order-matters", &after, &before);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("- from hmi to plc: icmp echo-request"),
        "{out}"
    );
    assert!(
        out.contains("denied by rule \"no-hmi-ping\""),
        "the deciding rule is named: {out}"
    );
    assert!(out.contains("the order decides"), "{out}");
    assert!(lines
        .iter()
        .any(|l| l["change"] == "moved" && l["order_matters"] == true));

    // The web rule and the ping rule never match the same conversation.
    let web = "[[rule]]\nname = \"hmi-web\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\nports = [8080]\naction = \"allow\"\n\n";
    let swapped = BASE.replacen(web, "", 1) + "\n" + web.trim_end();
    let (c, out, lines) = both("order-free", BASE, &swapped);
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("moved"), "the move is still shown: {out}");
    assert!(out.contains("makes no difference"), "{out}");
    assert!(lines
        .iter()
        .any(|l| l["change"] == "moved" && l["order_matters"] == false));
}

#[test]
fn a_deny_rule_turned_into_allow_widens() {
    let deny = "\n[[rule]]\nname = \"no-telnet\"\nfrom = \"any\"\nto = \"plc\"\nproto = \"tcp\"\nports = [23]\naction = \"deny\"\n";
    let old = format!("{BASE}{deny}");
    let new = old.replace(
        "ports = [23]\naction = \"deny\"",
        "ports = [23]\naction = \"allow\"",
    );
    let (c, out, _) = both("deny-allow", &old, &new);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("+ from any IPv4 address to plc: tcp 23"),
        "{out}"
    );
    assert!(
        out.contains("before: denied by rule \"no-telnet\""),
        "{out}"
    );
    assert!(
        out.contains("now:    allowed by rule \"no-telnet\""),
        "{out}"
    );
    assert!(
        out.contains("action: deny -> allow (what it matched is now allowed)"),
        "{out}"
    );
}

#[test]
fn a_modbus_section_widened_and_narrowed() {
    let wider = edit(&[
        (
            "functions = [\"write-single-register\"]",
            "functions = [\"write-single-register\", \"write-multiple-registers\"]",
        ),
        ("addresses = [\"100-199\"]", "addresses = [\"100-299\"]"),
    ]);
    let (c, out, lines) = both("modbus-wider", BASE, &wider);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("+ from eng to plc: tcp 502, modbus requests:"),
        "{out}"
    );
    assert!(
        out.contains("units 1; functions write-single-register; addresses 200-299"),
        "{out}"
    );
    assert!(
        out.contains("units 1; functions write-multiple-registers; addresses 100-299"),
        "{out}"
    );
    assert!(
        out.contains("modbus functions: now also write-multiple-registers"),
        "{out}"
    );
    assert!(
        out.contains("modbus addresses: widened from 100-199 to 100-299"),
        "{out}"
    );
    let t = traffic(&lines);
    assert!(t
        .iter()
        .all(|l| l["effect"] == "widens" && l["protocol"] == "modbus"));

    let narrower = edit(&[("addresses = [\"0-99\"]", "addresses = [\"0-49\"]")]);
    let (c, out, lines) = both("modbus-narrower", BASE, &narrower);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("allows less"), "{out}");
    assert!(
        out.contains("units 1; functions read-holding-registers; addresses 50-99"),
        "{out}"
    );
    assert!(
        out.contains("before: allowed by rule \"hmi-reads\""),
        "{out}"
    );
    assert!(
        out.contains("now:    denied: no modbus rule takes them"),
        "{out}"
    );
    assert!(traffic(&lines).iter().all(|l| l["effect"] == "narrows"));
}

#[test]
fn inspection_dropped_is_a_widening() {
    // Modbus inspected, then plain TCP 502: any bytes pass now.
    let plain = edit(&[(
        "proto = \"modbus\"\naction = \"allow\"\n[rule.modbus]\nunits = [1]\nfunctions = [\"read-holding-registers\"]\naddresses = [\"0-99\"]\n",
        "proto = \"tcp\"\nports = [502]\naction = \"allow\"\n",
    )]);
    let (c, out, _) = both("uninspected", BASE, &plain);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("no longer inspected as modbus: any bytes pass"),
        "{out}"
    );
    assert!(out.contains("ALLOWS MORE"), "{out}");
}

#[test]
fn monitor_and_enforce() {
    let monitor = edit(&[("mode = \"enforce\"", "mode = \"monitor\"")]);
    let (c, out, lines) = both("to-monitor", BASE, &monitor);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("+ mode: enforce -> monitor"), "{out}");
    assert!(out.contains("enforces NOTHING"), "{out}");
    assert!(out.contains("ALLOWS MORE"), "{out}");
    assert!(lines
        .iter()
        .any(|l| l["change"] == "mode" && l["effect"] == "widens"));

    let (c, out, lines) = both("to-enforce", &monitor, BASE);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("- mode: monitor -> enforce"), "{out}");
    assert!(out.contains("allows less"), "{out}");
    assert!(lines
        .iter()
        .any(|l| l["change"] == "mode" && l["effect"] == "narrows"));
}

#[test]
fn a_removed_mac_pin_weakens_the_spoofing_guard() {
    let unpinned = edit(&[("mac = \"02:00:00:00:00:10\"\n", "")]);
    let (c, out, lines) = both("unpinned", BASE, &unpinned);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("+ MAC pin removed: plc was pinned to 02:00:00:00:00:10"),
        "{out}"
    );
    assert!(out.contains("spoofing guard"), "{out}");
    assert!(lines
        .iter()
        .any(|l| l["change"] == "mac-pin" && l["effect"] == "widens"));
    // And back: a pin added narrows.
    let (c, out, _) = both("pinned", &unpinned, BASE);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("- MAC pin added: plc"), "{out}");
}

#[test]
fn layer_2_changes() {
    let new = edit(&[(
        "ethertypes = [\"arp\", \"ipv4\"]",
        "ethertypes = [\"arp\", \"ipv4\", \"lldp\"]\nvlans = [10]",
    )]);
    let (c, out, _) = both("l2", BASE, &new);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("+ l2 ethertypes: now also allows lldp (0x88cc)"),
        "{out}"
    );
    assert!(out.contains("+ l2 vlans: now also allows 10"), "{out}");
    assert!(
        out.contains("- l2 vlans: no longer allows untagged"),
        "{out}"
    );
}

#[test]
fn health_checks_change_no_traffic_but_are_checked_against_the_policy() {
    let checks = "\n[[health]]\nname = \"hmi-polls\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"modbus\"\n\
        \n[[health]]\nname = \"eng-web\"\nfrom = \"eng\"\nto = \"plc\"\nproto = \"tcp\"\nports = [8080]\n";
    let new = format!("{BASE}{checks}");
    let (c, out, _) = both("health", BASE, &new);
    assert_eq!(c, 0, "{out}");
    assert!(
        out.contains("health check \"hmi-polls\" added: hmi -> plc modbus 502 within 60s"),
        "{out}"
    );
    assert!(
        out.contains("WARNING: health check \"eng-web\" watches conversations the new policy denies (from eng to plc)"),
        "{out}"
    );
    assert!(!out.contains("\"hmi-polls\" watches"), "{out}");
}

#[test]
fn a_bad_input_exits_2_with_its_diagnostics() {
    let bad = edit(&[("from = \"eng\"", "from = \"eng2\"")]);
    let out = diff_with("bad", BASE, &bad, false);
    assert_eq!(code(&out), 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("bad-new.toml:") && err.contains("unknown host \"eng2\""),
        "{err}"
    );
    assert!(err.contains("not a valid policy (1 error)"), "{err}");
    assert!(out.stdout.is_empty());

    // Both inputs are checked before giving up.
    let out = diff_with("bad2", &bad, "schema = 1\n[gatekeeper\n", false);
    assert_eq!(code(&out), 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("bad2-old.toml") && err.contains("bad2-new.toml"),
        "{err}"
    );

    let missing = scratch("does-not-exist.toml");
    let out = gkctl(&["diff", missing.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );

    // Not text, and a file that starts as a bundle but is not one.
    let binary = scratch("binary.toml");
    std::fs::write(&binary, [0xff, 0xfe, 0, 1]).unwrap();
    let good = scratch("good.toml");
    std::fs::write(&good, BASE).unwrap();
    let out = gkctl(&["diff", good.to_str().unwrap(), binary.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("not UTF-8"),
        "{}",
        text(&out.stderr)
    );
    let fake = scratch("fake.dat");
    std::fs::write(&fake, "gatekeeper-bundle 1\nnonsense\n").unwrap();
    let out = gkctl(&["diff", fake.to_str().unwrap(), good.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("not a readable bundle"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bundles_are_compared_by_the_policy_they_carry() {
    let dir = scratch("bundles");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let out = gkctl(&["keygen", "--out", &d("keys"), "--name", "test"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let wider = edit(&[("ports = [8080]", "ports = [8080, 8081]")]);
    std::fs::write(d("old.toml"), BASE).unwrap();
    std::fs::write(d("new.toml"), &wider).unwrap();
    for (policy, serial, bundle) in [("old.toml", "1", "old.gkb"), ("new.toml", "2", "new.gkb")] {
        let out = gkctl(&[
            "sign",
            "--key",
            &d("keys/test.key"),
            "--serial",
            serial,
            "--out",
            &d(bundle),
            &d(policy),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // A bundle against its own policy: the same traffic.
    let out = gkctl(&["diff", &d("old.gkb"), &d("old.toml")]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("bundle serial 1"));
    // Two bundles, and a bundle recognised by its first line whatever its name.
    std::fs::copy(d("new.gkb"), d("new.bundle")).unwrap();
    for new in ["new.gkb", "new.bundle"] {
        let out = gkctl(&["diff", &d("old.gkb"), &d(new)]);
        assert_eq!(code(&out), 1, "{}{}", text(&out.stdout), text(&out.stderr));
        let s = text(&out.stdout);
        assert!(s.contains("+ from hmi to plc: tcp 8081"), "{s}");
        assert!(s.contains("signatures not checked"), "{s}");
    }
}
