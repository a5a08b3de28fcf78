//! Swapping the policy under live conversations: what carries on, what is revoked (and
//! reset), what monitor mode does, counters that carry over, health-check counters.

use std::net::IpAddr;
use std::sync::Arc;

use gk_dataplane::testing::{flags::*, FrameBuilder, Harness, TcpConv};
use gk_dataplane::{EventVerdict, Port, Reason};
use gk_packet::{dissect, L3, L4};
use gk_policy::Policy;

const HMI_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x21];
const PLC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];

fn policy(mode: &str, rules: &str) -> Arc<Policy> {
    let text = format!(
        r#"
schema = 1
[gatekeeper]
name = "swap"
mode = "{mode}"
[hosts.plc]
ip = "10.10.0.10"
[hosts.hmi]
ip = "10.10.0.21"
{rules}
"#
    );
    let (p, warnings) = Policy::from_toml(&text, "swap.toml").unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    Arc::new(p)
}

const TCP_502: &str = r#"
[[rule]]
name = "hmi-502"
from = "hmi"
to = "plc"
proto = "tcp"
ports = [502]
action = "allow"
[[rule]]
name = "hmi-udp"
from = "hmi"
to = "plc"
proto = "udp"
ports = [2222]
action = "allow"
"#;

const MODBUS_RW: &str = r#"
[[rule]]
name = "hmi-modbus"
from = "hmi"
to = "plc"
proto = "modbus"
action = "allow"
[rule.modbus]
preset = "read-write"
"#;

const MODBUS_RO: &str = r#"
[[rule]]
name = "hmi-modbus"
from = "hmi"
to = "plc"
proto = "modbus"
action = "allow"
[rule.modbus]
preset = "read-only"
"#;

fn open(h: &mut Harness, sport: u16) -> TcpConv {
    TcpConv::open(
        h,
        (HMI_MAC, "10.10.0.21", sport),
        (PLC_MAC, "10.10.0.10", 502),
    )
}

fn harness(p: &Arc<Policy>) -> Harness {
    let mut h = Harness::new("schema = 1\n[gatekeeper]\nname = \"x\"\nmode = \"enforce\"\n");
    h.pipeline.swap_policy(p.clone());
    h
}

fn write_register(tid: u8) -> Vec<u8> {
    vec![0, tid, 0, 0, 0, 6, 1, 6, 0, 1, 0, 7]
}

fn read_registers(tid: u8) -> Vec<u8> {
    vec![0, tid, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2]
}

fn is_reset(frame: &[u8]) -> bool {
    let f = dissect(frame).unwrap();
    let L3::Ip(ip) = f.l3 else { return false };
    matches!(ip.l4, L4::Tcp { flags, .. } if flags & RST != 0)
}

#[test]
fn conversations_the_new_policy_allows_carry_on() {
    let mut h = harness(&policy("enforce", TCP_502));
    let mut c = open(&mut h, 40000);
    assert!(c.client(&mut h, b"data").forward);
    let before = h
        .pipeline
        .counters()
        .rule(gk_policy::RuleId(0))
        .packets
        .get();
    // The same rule, now second behind another one: same name, new id.
    let report = h.pipeline.swap_policy(policy(
        "enforce",
        &format!("[[rule]]\nname = \"ping\"\nfrom = \"any\"\nto = \"plc\"\nproto = \"icmp\"\naction = \"allow\"\n{TCP_502}"),
    ));
    assert_eq!((report.kept, report.revoked), (1, 0));
    assert!(c.client(&mut h, b"more").forward);
    assert!(c.server(&mut h, b"answer").forward);
    let after = h.pipeline.counters().rule(gk_policy::RuleId(1));
    assert_eq!(
        after.packets.get(),
        before + 2,
        "counters carry over by rule name"
    );
    assert_eq!(h.pipeline.counters().swaps.get(), 2);
}

#[test]
fn conversations_it_no_longer_allows_are_refused_and_reset() {
    let mut h = harness(&policy("enforce", TCP_502));
    let mut c = open(&mut h, 40001);
    let plc: IpAddr = "10.10.0.10".parse().unwrap();
    let udp = FrameBuilder::new(HMI_MAC, PLC_MAC).udp(
        "10.10.0.21".parse().unwrap(),
        5000,
        plc,
        2222,
        b"io",
    );
    assert!(h.send(&udp, Port::Plant).forward);
    h.events();
    let report = h.pipeline.swap_policy(policy("enforce", ""));
    assert_eq!((report.kept, report.revoked), (0, 2));
    let out = c.server(&mut h, b"late answer");
    assert_eq!((out.forward, out.reason), (false, Reason::NoRule));
    assert_eq!(out.detail, Some("no longer allowed by the policy in force"));
    let injected = h.injected();
    assert_eq!(injected.len(), 2, "a reset each way");
    assert!(injected.iter().all(|(_, f)| is_reset(f)));
    let e = h.events();
    assert_eq!(
        (e[0].verdict, e[0].reason),
        (EventVerdict::Deny, Reason::NoRule)
    );
    // Gone: what follows is not part of any conversation.
    assert_eq!(c.client(&mut h, b"x").reason, Reason::TcpState);
    // The datagram conversation is refused too (no reset for UDP), then judged anew.
    let out = h.send(&udp, Port::Plant);
    assert_eq!((out.forward, out.reason), (false, Reason::NoRule));
    assert!(h.injected().is_empty());
}

#[test]
fn inspected_conversations_follow_the_new_rules_message_by_message() {
    let mut h = harness(&policy("enforce", MODBUS_RW));
    let mut c = open(&mut h, 40002);
    assert!(c.client(&mut h, &write_register(1)).forward);
    let report = h.pipeline.swap_policy(policy("enforce", MODBUS_RO));
    assert_eq!((report.kept, report.revoked), (1, 0));
    // The stream is still followed: a read passes, a write is now refused.
    assert!(c.client(&mut h, &read_registers(2)).forward);
    let out = c.client(&mut h, &write_register(3));
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
}

#[test]
fn a_conversation_that_becomes_inspected_starts_again() {
    let mut h = harness(&policy("enforce", TCP_502));
    let mut c = open(&mut h, 40003);
    assert!(c.client(&mut h, &write_register(1)).forward);
    let report = h.pipeline.swap_policy(policy("enforce", MODBUS_RO));
    assert_eq!(
        report.revoked, 1,
        "its byte stream cannot be followed from the middle"
    );
    let out = c.client(&mut h, &read_registers(2));
    assert!(!out.forward);
    assert_eq!(h.injected().len(), 2);
    // A new connection is inspected from its first byte.
    let mut c = open(&mut h, 40004);
    assert!(c.client(&mut h, &read_registers(3)).forward);
    assert_eq!(
        c.client(&mut h, &write_register(4)).reason,
        Reason::Function
    );
}

#[test]
fn monitor_mode_revokes_nothing_and_reports() {
    let mut h = harness(&policy("monitor", TCP_502));
    let mut c = open(&mut h, 40005);
    let report = h.pipeline.swap_policy(policy("monitor", ""));
    assert_eq!(report.revoked, 0);
    let out = c.client(&mut h, b"still flowing");
    assert!(out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::NoRule)
    );
    assert!(h.injected().is_empty());
}

#[test]
fn a_smaller_flow_table_keeps_what_fits() {
    let mut h = harness(&policy("enforce", TCP_502));
    for port in 0..40 {
        open(&mut h, 41000 + port);
    }
    let report = h.pipeline.swap_policy(policy(
        "enforce",
        &format!("[flows]\ncapacity = 16\n{TCP_502}"),
    ));
    assert_eq!(report.kept, 16);
    assert_eq!(report.dropped_for_room, 24);
    assert_eq!(h.pipeline.counters().flow_capacity.get(), 16);
}

#[test]
fn health_checks_count_what_they_watch() {
    let health = r#"
[[health]]
name = "hmi-polls-plc"
from = "hmi"
to = "plc"
proto = "tcp"
ports = [502]
within = 30
"#;
    let mut h = harness(&policy("enforce", &format!("{TCP_502}{health}")));
    let mut c = open(&mut h, 40010);
    c.client(&mut h, b"poll");
    c.server(&mut h, b"answer");
    let hc = &h.pipeline.counters().health[0];
    // The SYN opened it; the ACK and the poll went forward; the SYN+ACK and the answer back.
    assert_eq!(
        (hc.forward.get(), hc.reverse.get(), hc.refused.get()),
        (3, 2, 0)
    );
    // A policy that cuts the watched traffic: its refusals are counted.
    h.pipeline.swap_policy(policy("enforce", health));
    let out = c.client(&mut h, b"poll");
    assert!(!out.forward);
    let hc = &h.pipeline.counters().health[0];
    assert_eq!((hc.forward.get(), hc.refused.get()), (0, 1));
    let syn = FrameBuilder::new(HMI_MAC, PLC_MAC).tcp(
        "10.10.0.21".parse().unwrap(),
        40011,
        "10.10.0.10".parse().unwrap(),
        502,
        SYN,
        b"",
    );
    assert!(!h.send(&syn, Port::Plant).forward);
    assert_eq!(h.pipeline.counters().health[0].refused.get(), 2);
}
