//! The pipeline's semantics on crafted frames: L2 checks, conversations, replies,
//! direction, TCP state, ICMP errors, monitor mode, flow-table exhaustion, events.

use std::net::IpAddr;
use std::sync::Arc;

use gk_dataplane::testing::{flags::*, FrameBuilder};
use gk_dataplane::{Event, EventVerdict, Now, Outcome, Pipeline, Port, Reason};
use gk_policy::Policy;

const HMI_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x21];
const INTRUDER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x66];
const PLC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const POLICY: &str = r#"
schema = 1
[gatekeeper]
name = "unit"
mode = "enforce"
[l2]
ethertypes = ["arp", "ipv4", "ipv6", "lldp"]
vlans = ["untagged", 10]
[flows]
capacity = 16
[events]
rate = 5
burst = 5
[hosts.plc]
ip = ["10.10.0.10", "fd00::10"]
mac = "02:00:00:00:00:10"
[hosts.hmi]
ip = ["10.10.0.21", "fd00::21"]
[[rule]]
name = "hmi-polls-plc"
from = "hmi"
to = "plc"
proto = "tcp"
ports = [502, "20000-20010"]
action = "allow"
log = true
[[rule]]
name = "no-telnet"
from = "any"
to = "plc"
proto = "tcp"
ports = [23]
action = "deny"
[[rule]]
name = "hmi-udp"
from = "hmi"
to = "plc"
proto = "udp"
ports = [2222]
action = "alert"
[[rule]]
name = "ping-plc"
from = "any"
to = "plc"
proto = "icmp"
icmp = ["echo-request"]
action = "allow"
[[rule]]
name = "ping6-plc"
from = "hmi"
to = "plc"
proto = "icmpv6"
icmp = ["echo-request"]
action = "allow"
"#;

struct Harness {
    pipeline: Pipeline<Vec<Event>>,
    t: u64,
}

impl Harness {
    fn new(policy: &str) -> Self {
        let (policy, _) = Policy::from_toml(policy, "unit.toml").expect("valid policy");
        Harness {
            pipeline: Pipeline::new(Arc::new(policy), Vec::new()),
            t: 1_000_000_000,
        }
    }

    fn send(&mut self, frame: &[u8], port: Port) -> Outcome {
        self.t += 1_000_000; // 1 ms between frames
        self.pipeline.process(
            frame,
            port,
            Now {
                mono_ns: self.t,
                wall_ns: 1_700_000_000_000_000_000,
            },
        )
    }

    fn advance(&mut self, seconds: u64) {
        self.t += seconds * 1_000_000_000;
    }

    fn events(&mut self) -> Vec<Event> {
        std::mem::take(self.pipeline.sink_mut())
    }
}

fn hmi() -> FrameBuilder {
    FrameBuilder::new(HMI_MAC, PLC_MAC)
}
fn plc() -> FrameBuilder {
    FrameBuilder::new(PLC_MAC, HMI_MAC)
}
fn intruder() -> FrameBuilder {
    FrameBuilder::new(INTRUDER_MAC, PLC_MAC)
}

#[test]
fn allowed_conversation_and_its_replies_pass() {
    let mut h = Harness::new(POLICY);
    let syn = hmi().tcp(ip("10.10.0.21"), 40000, ip("10.10.0.10"), 502, SYN, b"");
    let out = h.send(&syn, Port::Plant);
    assert!(out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::Allow, Reason::Rule)
    );
    let synack = plc().tcp(
        ip("10.10.0.10"),
        502,
        ip("10.10.0.21"),
        40000,
        SYN | ACK,
        b"",
    );
    let out = h.send(&synack, Port::Asset);
    assert_eq!((out.forward, out.reason), (true, Reason::Flow));
    let data = hmi().tcp(
        ip("10.10.0.21"),
        40000,
        ip("10.10.0.10"),
        502,
        ACK | PSH,
        b"hello",
    );
    assert_eq!(h.send(&data, Port::Plant).reason, Reason::Flow);
    // log = true: the new conversation was reported once, not every packet.
    let events = h.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].verdict, EventVerdict::Allow);
    assert_eq!(events[0].dport, Some(502));
    let c = h.pipeline.counters();
    assert_eq!(c.rules[0].flows.get(), 1);
    assert_eq!(c.rules[0].packets.get(), 3);
}

#[test]
fn unmatched_and_reverse_direction_are_denied() {
    let mut h = Harness::new(POLICY);
    let syn = intruder().tcp(ip("10.10.0.66"), 40000, ip("10.10.0.10"), 502, SYN, b"");
    let out = h.send(&syn, Port::Plant);
    assert_eq!(
        (out.forward, out.verdict, out.reason, out.rule),
        (false, EventVerdict::Deny, Reason::NoRule, None)
    );
    // The PLC may not open a connection to the HMI's port 502: rules are directional.
    let reverse = plc().tcp(ip("10.10.0.10"), 40001, ip("10.10.0.21"), 502, SYN, b"");
    assert_eq!(h.send(&reverse, Port::Asset).reason, Reason::NoRule);
    let events = h.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].port, Port::Plant);
    assert_eq!(events[0].src, Some(ip("10.10.0.66")));
    assert_eq!(events[1].port, Port::Asset);
    assert_eq!(h.pipeline.counters().no_rule.get(), 2);
}

#[test]
fn deny_rule_is_named() {
    let mut h = Harness::new(POLICY);
    let syn = hmi().tcp(ip("10.10.0.21"), 40000, ip("10.10.0.10"), 23, SYN, b"");
    let out = h.send(&syn, Port::Plant);
    assert!(!out.forward);
    assert_eq!(out.reason, Reason::DenyRule);
    assert_eq!(out.reason.code(), "rule");
    assert_eq!(
        h.pipeline.policy().rule(out.rule.unwrap()).name,
        "no-telnet"
    );
}

#[test]
fn tcp_needs_a_syn_to_open() {
    let mut h = Harness::new(POLICY);
    let ack = hmi().tcp(ip("10.10.0.21"), 40000, ip("10.10.0.10"), 502, ACK, b"x");
    let out = h.send(&ack, Port::Plant);
    assert_eq!((out.forward, out.reason), (false, Reason::TcpState));
    let synack = hmi().tcp(
        ip("10.10.0.21"),
        40000,
        ip("10.10.0.10"),
        502,
        SYN | ACK,
        b"",
    );
    assert_eq!(h.send(&synack, Port::Plant).reason, Reason::TcpState);
}

#[test]
fn replies_must_come_from_the_far_port() {
    let mut h = Harness::new(POLICY);
    let syn = hmi().tcp(ip("10.10.0.21"), 40000, ip("10.10.0.10"), 502, SYN, b"");
    assert!(h.send(&syn, Port::Plant).forward);
    // A "reply" injected on the plant side, where the initiator lives, is a spoof.
    let fake = plc().tcp(
        ip("10.10.0.10"),
        502,
        ip("10.10.0.21"),
        40000,
        SYN | ACK,
        b"",
    );
    let out = h.send(&fake, Port::Plant);
    assert_eq!((out.forward, out.reason), (false, Reason::SpoofedReply));
}

#[test]
fn finished_connection_times_out_and_port_reuse_is_judged_again() {
    let mut h = Harness::new(POLICY);
    let a = ip("10.10.0.21");
    let b = ip("10.10.0.10");
    assert!(
        h.send(&hmi().tcp(a, 40000, b, 502, SYN, b""), Port::Plant)
            .forward
    );
    assert!(
        h.send(&plc().tcp(b, 502, a, 40000, SYN | ACK, b""), Port::Asset)
            .forward
    );
    assert!(
        h.send(&hmi().tcp(a, 40000, b, 502, ACK, b""), Port::Plant)
            .forward
    );
    assert!(
        h.send(&plc().tcp(b, 502, a, 40000, RST, b""), Port::Asset)
            .forward
    );
    // After the RST, a new SYN on the same ports is a new conversation (judged by rule).
    let out = h.send(&hmi().tcp(a, 40000, b, 502, SYN, b""), Port::Plant);
    assert_eq!(out.reason, Reason::Rule);
    // An established conversation idle past the SYN timeout (30 s) is forgotten.
    h.advance(31);
    let out = h.send(&plc().tcp(b, 502, a, 40000, ACK, b""), Port::Asset);
    assert_eq!(out.reason, Reason::TcpState);
}

#[test]
fn udp_alert_rule_reports_and_allows_replies() {
    let mut h = Harness::new(POLICY);
    let out = h.send(
        &hmi().udp(ip("10.10.0.21"), 5000, ip("10.10.0.10"), 2222, b"io"),
        Port::Plant,
    );
    assert_eq!((out.forward, out.verdict), (true, EventVerdict::Alert));
    let out = h.send(
        &plc().udp(ip("10.10.0.10"), 2222, ip("10.10.0.21"), 5000, b"io"),
        Port::Asset,
    );
    assert_eq!((out.forward, out.reason), (true, Reason::Flow));
    let events = h.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].verdict, EventVerdict::Alert);
    // UDP idles out after 60 s: then the PLC's datagram opens nothing.
    h.advance(61);
    let out = h.send(
        &plc().udp(ip("10.10.0.10"), 2222, ip("10.10.0.21"), 5000, b"io"),
        Port::Asset,
    );
    assert_eq!(out.reason, Reason::NoRule);
}

#[test]
fn icmp_echo_and_related_errors() {
    let mut h = Harness::new(POLICY);
    let out = h.send(
        &intruder().icmp_echo(ip("10.10.0.66"), ip("10.10.0.10"), 8, 7),
        Port::Plant,
    );
    assert_eq!(out.reason, Reason::Rule);
    let out = h.send(
        &plc().icmp_echo(ip("10.10.0.10"), ip("10.10.0.66"), 0, 7),
        Port::Asset,
    );
    assert_eq!(out.reason, Reason::Flow);
    // An echo reply with another id belongs to no conversation.
    let out = h.send(
        &plc().icmp_echo(ip("10.10.0.10"), ip("10.10.0.66"), 0, 8),
        Port::Asset,
    );
    assert_eq!(out.reason, Reason::NoRule);

    // A port unreachable about an allowed UDP conversation passes back.
    let dgram = hmi().udp(ip("10.10.0.21"), 5001, ip("10.10.0.10"), 2222, b"x");
    assert!(h.send(&dgram, Port::Plant).forward);
    let err = plc().icmp_error(ip("10.10.0.10"), ip("10.10.0.21"), 3, 3, &dgram[14..]);
    assert_eq!(h.send(&err, Port::Asset).reason, Reason::Related);
    // The same error about a conversation that never existed is judged by the rules.
    let stray = hmi().udp(ip("10.10.0.21"), 5999, ip("10.10.0.10"), 2222, b"x");
    let err = plc().icmp_error(ip("10.10.0.10"), ip("10.10.0.21"), 3, 3, &stray[14..]);
    assert_eq!(h.send(&err, Port::Asset).reason, Reason::NoRule);
}

#[test]
fn ipv6_conversations() {
    let mut h = Harness::new(POLICY);
    let out = h.send(
        &hmi().icmp_echo(ip("fd00::21"), ip("fd00::10"), 128, 1),
        Port::Plant,
    );
    assert_eq!(out.reason, Reason::Rule);
    let out = h.send(
        &plc().icmp_echo(ip("fd00::10"), ip("fd00::21"), 129, 1),
        Port::Asset,
    );
    assert_eq!(out.reason, Reason::Flow);
    let out = h.send(
        &hmi().tcp(ip("fd00::21"), 1000, ip("fd00::10"), 20005, SYN, b""),
        Port::Plant,
    );
    assert_eq!(out.reason, Reason::Rule);
}

#[test]
fn l2_ethertypes_and_vlans() {
    let mut h = Harness::new(POLICY);
    let lldp = hmi().ethernet(0x88cc, &[0; 46]);
    assert_eq!(h.send(&lldp, Port::Plant).reason, Reason::L2);
    let goose = hmi().ethernet(0x88b8, &[0; 46]);
    let out = h.send(&goose, Port::Plant);
    assert_eq!((out.forward, out.reason), (false, Reason::Ethertype));

    let tagged = hmi().vlan(0x8100, 5, 10);
    let out = h.send(
        &tagged.tcp(ip("10.10.0.21"), 1, ip("10.10.0.10"), 502, SYN, b""),
        Port::Plant,
    );
    assert_eq!(out.reason, Reason::Rule);
    let other_vlan = hmi().vlan(0x8100, 0, 20);
    let out = h.send(
        &other_vlan.tcp(ip("10.10.0.21"), 1, ip("10.10.0.10"), 502, SYN, b""),
        Port::Plant,
    );
    assert_eq!((out.forward, out.reason), (false, Reason::Vlan));
    // Priority-tagged (VLAN 0) counts as untagged.
    let prio = hmi().vlan(0x8100, 6, 0);
    assert_eq!(
        h.send(
            &prio.tcp(ip("10.10.0.21"), 2, ip("10.10.0.10"), 502, SYN, b""),
            Port::Plant
        )
        .reason,
        Reason::Rule
    );
    // QinQ: the outer tag decides.
    let qinq = hmi().vlan(0x88a8, 0, 10).vlan(0x8100, 0, 99);
    assert_eq!(
        h.send(
            &qinq.tcp(ip("10.10.0.21"), 3, ip("10.10.0.10"), 502, SYN, b""),
            Port::Plant
        )
        .reason,
        Reason::Rule
    );
    // The same 5-tuple on VLAN 10 and untagged are two conversations.
    let untagged = h.send(
        &hmi().tcp(ip("10.10.0.21"), 1, ip("10.10.0.10"), 502, SYN, b""),
        Port::Plant,
    );
    assert_eq!(untagged.reason, Reason::Rule);
}

#[test]
fn mac_pins_stop_arp_and_ip_spoofing() {
    let mut h = Harness::new(POLICY);
    let plc_ip = "10.10.0.10".parse().unwrap();
    let honest = plc().arp(2, PLC_MAC, plc_ip, "10.10.0.21".parse().unwrap());
    assert_eq!(h.send(&honest, Port::Asset).reason, Reason::L2);
    let poison = intruder().arp(2, INTRUDER_MAC, plc_ip, "10.10.0.21".parse().unwrap());
    let out = h.send(&poison, Port::Plant);
    assert_eq!((out.forward, out.reason), (false, Reason::MacPin));
    // The sender-MAC field may lie too: the Ethernet source is checked as well.
    let lying = intruder().arp(2, PLC_MAC, plc_ip, "10.10.0.21".parse().unwrap());
    assert_eq!(h.send(&lying, Port::Plant).reason, Reason::MacPin);
    let spoofed_ip = intruder().udp(ip("10.10.0.10"), 2222, ip("10.10.0.21"), 5000, b"x");
    assert_eq!(h.send(&spoofed_ip, Port::Plant).reason, Reason::MacPin);
    // Unpinned hosts are not affected.
    let other = intruder().arp(1, INTRUDER_MAC, "10.10.0.66".parse().unwrap(), plc_ip);
    assert_eq!(h.send(&other, Port::Plant).reason, Reason::L2);
}

#[test]
fn malformed_and_fragments() {
    let mut h = Harness::new(POLICY);
    assert_eq!(h.send(&[0u8; 10], Port::Plant).reason, Reason::Malformed);
    let mut bad_ihl = hmi().tcp(ip("10.10.0.21"), 1, ip("10.10.0.10"), 502, SYN, b"");
    bad_ihl[14] = 0x4f; // IHL 15: header longer than the packet
    assert_eq!(h.send(&bad_ihl, Port::Plant).reason, Reason::Malformed);
    let mut fragment = hmi().udp(ip("10.10.0.21"), 5000, ip("10.10.0.10"), 2222, b"x");
    fragment[20] = 0x20; // MF set
    assert_eq!(h.send(&fragment, Port::Plant).reason, Reason::Fragment);
    let c = h.pipeline.counters();
    assert_eq!(c.dropped[Reason::Malformed as usize].get(), 2);
}

#[test]
fn monitor_mode_forwards_and_reports_once_per_conversation() {
    let mut h = Harness::new(&POLICY.replace("mode = \"enforce\"", "mode = \"monitor\""));
    let syn = intruder().tcp(ip("10.10.0.66"), 40000, ip("10.10.0.10"), 502, SYN, b"");
    let out = h.send(&syn, Port::Plant);
    assert_eq!(
        (out.forward, out.verdict, out.reason),
        (true, EventVerdict::WouldDeny, Reason::NoRule)
    );
    let reply = plc().tcp(
        ip("10.10.0.10"),
        502,
        ip("10.10.0.66"),
        40000,
        SYN | ACK,
        b"",
    );
    let out = h.send(&reply, Port::Asset);
    assert_eq!((out.forward, out.verdict), (true, EventVerdict::WouldDeny));
    let goose = hmi().ethernet(0x88b8, &[0; 46]);
    assert!(h.send(&goose, Port::Plant).forward);
    let events = h.events();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.verdict, e.reason))
            .collect::<Vec<_>>(),
        vec![
            (EventVerdict::WouldDeny, Reason::NoRule),
            (EventVerdict::WouldDeny, Reason::Ethertype),
        ]
    );
    assert_eq!(h.pipeline.counters().total_dropped(), 0);
}

#[test]
fn full_flow_table_refuses_new_flows_only() {
    let mut h = Harness::new(POLICY);
    for port in 0..16 {
        let out = h.send(
            &hmi().udp(ip("10.10.0.21"), 6000 + port, ip("10.10.0.10"), 2222, b""),
            Port::Plant,
        );
        assert_eq!(out.reason, Reason::Rule);
    }
    let out = h.send(
        &hmi().udp(ip("10.10.0.21"), 7000, ip("10.10.0.10"), 2222, b""),
        Port::Plant,
    );
    assert_eq!((out.forward, out.reason), (false, Reason::FlowTableFull));
    // Existing conversations keep working.
    let out = h.send(
        &plc().udp(ip("10.10.0.10"), 2222, ip("10.10.0.21"), 6003, b""),
        Port::Asset,
    );
    assert_eq!(out.reason, Reason::Flow);
    // Once they idle out, room comes back.
    h.advance(61);
    let out = h.send(
        &hmi().udp(ip("10.10.0.21"), 7000, ip("10.10.0.10"), 2222, b""),
        Port::Plant,
    );
    assert_eq!(out.reason, Reason::Rule);
}

#[test]
fn deny_events_are_rate_limited_with_a_suppressed_count() {
    let mut h = Harness::new(POLICY);
    for n in 0..100 {
        let syn = intruder().tcp(ip("10.10.0.66"), 30000 + n, ip("10.10.0.10"), 502, SYN, b"");
        assert!(!h.send(&syn, Port::Plant).forward);
    }
    // burst 5; at 1 ms per frame, 0.1 s brings 0 more tokens at 5/s (one at 200 ms).
    assert_eq!(h.events().len(), 5);
    h.advance(1);
    let syn = intruder().tcp(ip("10.10.0.66"), 1, ip("10.10.0.10"), 502, SYN, b"");
    h.send(&syn, Port::Plant);
    let events = h.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].suppressed, 95);
    assert_eq!(h.pipeline.counters().no_rule.get(), 101);
}
