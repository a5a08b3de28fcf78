//! Industrial-protocol inspection in the pipeline, on crafted TCP conversations:
//! per-message verdicts, reassembly across segments, several messages per segment,
//! resets towards both ends, monitor mode, malformed messages, out-of-order segments,
//! and the stream table's bound.

use std::net::IpAddr;

use gk_dataplane::testing::{flags::*, FrameBuilder, Harness, TcpConv};
use gk_dataplane::{Event, EventVerdict, Port, Reason};
use gk_inspect::modbus::{Function, RequestBody, RequestRepr, MAX_ADU};
use gk_inspect::Op;
use gk_packet::{dissect, L3, L4};

const HMI_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x21];
const ENG_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x31];
const PLC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PLC: &str = "10.10.0.10";
const HMI: &str = "10.10.0.21";
const ENG: &str = "10.10.0.31";

fn policy(mode: &str, extra: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "inspect"
mode = "{mode}"
[inspection]
streams = 16
buffer = 1024
[hosts.plc]
ip = "{PLC}"
[hosts.hmi]
ip = "{HMI}"
[hosts.eng]
ip = "{ENG}"
[[rule]]
name = "hmi-reads"
from = "hmi"
to = "plc"
proto = "modbus"
action = "allow"
[rule.modbus]
units = [1]
functions = ["read-holding-registers", "read-input-registers"]
addresses = ["0-999"]
[[rule]]
name = "eng-writes"
from = "eng"
to = "plc"
proto = "modbus"
action = "allow"
log = true
[rule.modbus]
units = [1]
functions = ["write-single-register", "write-multiple-registers"]
addresses = ["100-199"]
[[rule]]
name = "eng-no-diagnostics"
from = "eng"
to = "plc"
proto = "modbus"
action = "deny"
[rule.modbus]
functions = ["diagnostics"]
[[rule]]
name = "eng-reads"
from = "eng"
to = "plc"
proto = "modbus"
action = "alert"
[rule.modbus]
preset = "read-only"
{extra}
"#
    )
}

fn open(h: &mut Harness, client_mac: [u8; 6], client_ip: &str, sport: u16) -> TcpConv {
    TcpConv::open(h, (client_mac, client_ip, sport), (PLC_MAC, PLC, 502))
}

fn adu(tid: u16, unit: u8, body: RequestBody<'_>) -> Vec<u8> {
    let mut out = [0u8; MAX_ADU];
    let n = RequestRepr {
        transaction_id: tid,
        unit,
        body,
    }
    .emit(&mut out)
    .unwrap();
    out[..n].to_vec()
}

fn read(tid: u16, unit: u8, start: u16, count: u16) -> Vec<u8> {
    let function = Function::ReadHoldingRegisters;
    adu(
        tid,
        unit,
        RequestBody::Read {
            function,
            start,
            count,
        },
    )
}

fn write(tid: u16, address: u16) -> Vec<u8> {
    adu(tid, 1, RequestBody::WriteRegister { address, value: 7 })
}

fn modbus_op(e: &Event) -> gk_inspect::modbus::Op {
    match e.op {
        Some(Op::Modbus(op)) => op,
        other => panic!("expected a Modbus operation, got {other:?}"),
    }
}

#[test]
fn allowed_reads_and_their_answers_pass() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = open(&mut h, HMI_MAC, HMI, 40000);
    let out = c.client(&mut h, &read(1, 1, 0, 10));
    assert!(out.forward);
    assert_eq!(out.reason, Reason::Flow);
    assert!(matches!(out.op, Some(Op::Modbus(op)) if op.function == 3 && op.address == Some(0)));
    let answer = [0, 1, 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2];
    assert!(c.server(&mut h, &answer).forward, "the answer");
    assert!(h.events().is_empty(), "hmi-reads does not log");
    assert!(h.injected().is_empty());
}

#[test]
fn a_denied_write_is_dropped_reported_and_the_connection_reset_both_ways() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = open(&mut h, HMI_MAC, HMI, 40001);
    let seq = c.c_seq;
    let out = c.client(&mut h, &write(9, 120));
    assert!(!out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::Deny, Reason::Function)
    );
    let events = h.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.verdict, e.reason),
        (EventVerdict::Deny, Reason::Function)
    );
    let rule = e.rule.map(|r| h.pipeline.policy().rule(r).name.clone());
    assert_eq!(
        rule.as_deref(),
        Some("hmi-reads"),
        "the rule that could have allowed it"
    );
    let op = modbus_op(e);
    assert_eq!(
        (op.function, op.unit, op.address, op.count),
        (6, 1, Some(120), Some(1))
    );

    let injected = h.injected();
    assert_eq!(injected.len(), 2, "a reset each way");
    let (to_plc, to_hmi) = (&injected[0], &injected[1]);
    assert_eq!(to_plc.0, Port::Asset);
    assert_eq!(to_hmi.0, Port::Plant);
    let rst_fields = |frame: &[u8]| {
        let f = dissect(frame).unwrap();
        let L3::Ip(ip) = f.l3 else { panic!() };
        let L4::Tcp {
            seq,
            flags,
            dst_port,
            ..
        } = ip.l4
        else {
            panic!()
        };
        (ip.dst, dst_port, seq, flags & RST != 0)
    };
    let plc: IpAddr = PLC.parse().unwrap();
    assert_eq!(rst_fields(&to_plc.1), (plc, 502, seq, true));
    assert_eq!(rst_fields(&to_hmi.1), (c.client_ip, 40001, c.s_seq, true));

    // The conversation is gone: what follows is refused as not part of one.
    let out = c.client(&mut h, &read(10, 1, 0, 1));
    assert_eq!((out.forward, out.reason), (false, Reason::TcpState));
}

#[test]
fn addresses_units_and_explicit_denies_give_their_reasons() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = open(&mut h, HMI_MAC, HMI, 40002);
    assert_eq!(
        c.client(&mut h, &read(1, 1, 995, 10)).reason,
        Reason::Address
    );
    let mut c = open(&mut h, HMI_MAC, HMI, 40003);
    assert_eq!(c.client(&mut h, &read(1, 2, 0, 10)).reason, Reason::Unit);
    let mut c = open(&mut h, ENG_MAC, ENG, 40004);
    let diag = adu(1, 1, RequestBody::Diagnostics { sub: 0, data: 0 });
    let out = c.client(&mut h, &diag);
    assert_eq!(out.reason, Reason::DenyRule);
    let name = out.rule.map(|r| h.pipeline.policy().rule(r).name.clone());
    assert_eq!(name.as_deref(), Some("eng-no-diagnostics"));
}

#[test]
fn later_rules_judge_what_earlier_ones_do_not_take() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = open(&mut h, ENG_MAC, ENG, 40010);
    // eng-writes (log = true) takes a write inside 100-199 and reports it.
    let out = c.client(&mut h, &write(1, 150));
    assert!(out.forward);
    let e = h.events();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].verdict, e[0].reason),
        (EventVerdict::Allow, Reason::Rule)
    );
    // A read falls through eng-writes and eng-no-diagnostics to eng-reads (alert).
    assert!(c.client(&mut h, &read(2, 1, 5000, 10)).forward);
    let e = h.events();
    assert_eq!(e[0].verdict, EventVerdict::Alert);
    assert_eq!(modbus_op(&e[0]).address, Some(5000));
    // A write outside 100-199 is refused; the rule that came closest (eng-writes: unit and function fit) says why.
    let out = c.client(&mut h, &write(3, 250));
    assert_eq!((out.forward, out.reason), (false, Reason::Address));
    let name = out.rule.map(|r| h.pipeline.policy().rule(r).name.clone());
    assert_eq!(name.as_deref(), Some("eng-writes"));
}

#[test]
fn a_message_split_across_segments_is_judged_when_it_is_whole() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = open(&mut h, HMI_MAC, HMI, 40020);
    let w = write(5, 300);
    // The first part cannot do anything on its own: forwarded.
    assert!(c.client(&mut h, &w[..4]).forward);
    assert!(h.events().is_empty());
    let out = c.client(&mut h, &w[4..]);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    // And an allowed read split three ways passes whole.
    let mut c = open(&mut h, HMI_MAC, HMI, 40021);
    let r = read(6, 1, 10, 2);
    for part in [&r[..1], &r[1..9], &r[9..]] {
        assert!(c.client(&mut h, part).forward);
    }
    assert!(
        h.injected().len() == 2,
        "only the first conversation was reset"
    );
}

#[test]
fn several_messages_in_one_segment_are_judged_each() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = open(&mut h, HMI_MAC, HMI, 40030);
    let mut both = read(1, 1, 0, 1);
    both.extend(read(2, 1, 10, 1));
    assert!(c.client(&mut h, &both).forward);
    let mut mixed = read(3, 1, 0, 1);
    mixed.extend(write(4, 5));
    let out = c.client(&mut h, &mixed);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    assert!(matches!(out.op, Some(Op::Modbus(op)) if op.function == 6));
}

#[test]
fn malformed_messages_are_denied_with_the_parser_s_reason() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = open(&mut h, HMI_MAC, HMI, 40040);
    let mut bad = read(1, 1, 0, 1);
    bad[10..12].copy_from_slice(&[0, 0]); // quantity 0
    let out = c.client(&mut h, &bad);
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    let e = h.events();
    assert_eq!(e[0].detail, Some("register quantity out of range (1-125)"));
    // Bytes that are not Modbus at all lose the framing: also malformed.
    let mut c = open(&mut h, HMI_MAC, HMI, 40041);
    let out = c.client(&mut h, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(out.reason, Reason::Malformed);
    // A malformed answer from the server too.
    let mut c = open(&mut h, HMI_MAC, HMI, 40042);
    assert!(c.client(&mut h, &read(1, 1, 0, 1)).forward);
    let out = c.server(&mut h, &[0, 1, 0, 0, 0, 4, 1, 3, 9, 0]);
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
}

#[test]
fn out_of_order_segments_wait_for_the_bytes_before_them() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = open(&mut h, HMI_MAC, HMI, 40050);
    let (a, b) = (read(1, 1, 0, 1), write(2, 5));
    // `b` arrives before `a`: it cannot be judged yet, so it does not pass.
    let early = c.client_frame(c.c_seq + a.len() as u32, &b);
    let out = h.send(&early, Port::Plant);
    assert_eq!((out.forward, out.reason), (false, Reason::OutOfOrder));
    assert!(h.events().is_empty(), "counted, not reported");
    // `a` passes; a retransmission of `a` passes without being judged again.
    assert!(c.client(&mut h, &a).forward);
    let again = c.client_frame(c.c_seq - a.len() as u32, &a);
    assert!(h.send(&again, Port::Plant).forward);
    // Now `b` (retransmitted by the client) is in order and judged.
    assert_eq!(c.client(&mut h, &b).reason, Reason::Function);
}

#[test]
fn monitor_mode_forwards_and_reports_what_enforce_would_deny() {
    let mut h = Harness::new(&policy("monitor", ""));
    let mut c = open(&mut h, HMI_MAC, HMI, 40060);
    let out = c.client(&mut h, &write(1, 120));
    assert!(out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::Function)
    );
    let e = h.events();
    assert_eq!(e[0].verdict, EventVerdict::WouldDeny);
    assert_eq!(modbus_op(&e[0]).address, Some(120));
    assert!(h.injected().is_empty(), "monitor mode builds nothing");
    // The conversation goes on and is still judged.
    assert!(c.client(&mut h, &read(2, 1, 0, 1)).forward);
    let out = c.client(&mut h, &read(3, 7, 0, 1));
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::Unit)
    );
}

#[test]
fn the_stream_table_has_a_fixed_size_and_says_when_it_is_full() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut convs = Vec::new();
    for i in 0..16 {
        convs.push(open(&mut h, HMI_MAC, HMI, 41000 + i));
    }
    let plc: IpAddr = PLC.parse().unwrap();
    let syn = FrameBuilder::new(HMI_MAC, PLC_MAC).tcp_seq(
        HMI.parse().unwrap(),
        42000,
        plc,
        502,
        1,
        0,
        SYN,
        b"",
    );
    let out = h.send(&syn, Port::Plant);
    assert_eq!((out.forward, out.reason), (false, Reason::StreamTableFull));
    // The conversations already followed keep working.
    assert!(convs[3].client(&mut h, &read(1, 1, 0, 1)).forward);
    // A reset conversation gives its stream back.
    assert!(!convs[4].client(&mut h, &write(1, 1)).forward);
    let syn = FrameBuilder::new(HMI_MAC, PLC_MAC).tcp_seq(
        HMI.parse().unwrap(),
        42001,
        plc,
        502,
        1,
        0,
        SYN,
        b"",
    );
    assert!(h.send(&syn, Port::Plant).forward);
}

/// The TCP fields and payload of a frame.
fn tcp_of(frame: &[u8]) -> (u32, u32, u8, Vec<u8>) {
    let f = dissect(frame).unwrap();
    let L3::Ip(ip) = f.l3 else { panic!("not IP") };
    let L4::Tcp {
        seq,
        ack,
        flags,
        payload,
        ..
    } = ip.l4
    else {
        panic!("not TCP")
    };
    (seq, ack, flags, payload.to_vec())
}

#[test]
fn modbus_exception_answers_in_the_server_s_name_and_keeps_the_connection() {
    let extra = r#"
[[rule]]
name = "intruder-reads"
from = "any"
to = "plc"
proto = "modbus"
action = "allow"
on-deny = "modbus-exception"
[rule.modbus]
preset = "read-only"
addresses = ["0-99"]
"#;
    let mut h = Harness::new(&policy("enforce", extra));
    let intruder = [2, 0, 0, 0, 0, 0x66];
    let mut c = open(&mut h, intruder, "10.10.0.66", 40070);
    assert!(c.client(&mut h, &read(1, 1, 0, 1)).forward);
    let answer = [0, 1, 0, 0, 0, 5, 1, 3, 2, 0, 0];
    assert!(c.server(&mut h, &answer).forward);
    assert!(h.injected().is_empty());

    // A write: answered with "illegal function" by the gatekeeper, not forwarded.
    let w = write(2, 50);
    let (write_seq, server_next) = (c.c_seq, c.s_seq);
    let out = c.client(&mut h, &w);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    let injected = h.injected();
    assert_eq!(injected.len(), 1, "one answer, no reset");
    assert_eq!(injected[0].0, Port::Plant);
    let (seq, ack, flags, payload) = tcp_of(&injected[0].1);
    assert_eq!(
        payload,
        [0, 2, 0, 0, 0, 3, 1, 0x86, 1],
        "exception 1 to function 6"
    );
    assert_eq!((seq, ack), (server_next, write_seq + w.len() as u32));
    assert_eq!(flags & (ACK | PSH | RST), ACK | PSH);

    // A read outside the range: "illegal data address".
    let r = read(3, 1, 200, 1);
    let out = c.client(&mut h, &r);
    assert_eq!(out.reason, Reason::Address);
    let (seq, _, _, payload) = tcp_of(&h.injected()[0].1);
    assert_eq!(payload, [0, 3, 0, 0, 0, 3, 1, 0x83, 2]);
    assert_eq!(seq, server_next + 9, "after the first answer");

    // The conversation goes on: the server sees the client's numbers without the two
    // dropped requests, the client sees the server's after our two answers.
    let removed = (w.len() + r.len()) as u32;
    let (client_seq, client_ack) = (c.c_seq, c.s_seq + 18);
    let frame = c.client.tcp_seq(
        c.client_ip,
        c.sport,
        c.server_ip,
        502,
        client_seq,
        client_ack,
        ACK | PSH,
        &read(4, 1, 5, 1),
    );
    let out = h.send(&frame, Port::Plant);
    assert!(out.forward);
    let rw = out.rewrite.expect("renumbered");
    assert_eq!((rw.seq, rw.ack), (client_seq - removed, c.s_seq));
    let reply = c.server.tcp_seq(
        c.server_ip,
        502,
        c.client_ip,
        c.sport,
        c.s_seq,
        client_seq - removed + 12,
        ACK | PSH,
        &[0, 4, 0, 0, 0, 5, 1, 3, 2, 0, 5],
    );
    let out = h.send(&reply, Port::Asset);
    assert!(out.forward);
    let rw = out.rewrite.expect("renumbered");
    assert_eq!((rw.seq, rw.ack), (c.s_seq + 18, client_seq + 12));

    // The client sends the dropped read again (our answer got lost): answered again.
    let again = c.client.tcp_seq(
        c.client_ip,
        c.sport,
        c.server_ip,
        502,
        client_seq - r.len() as u32,
        client_ack,
        ACK | PSH,
        &r,
    );
    let out = h.send(&again, Port::Plant);
    assert!(!out.forward);
    let injected = h.injected();
    assert_eq!(injected.len(), 1);
    assert_eq!(tcp_of(&injected[0].1).3, [0, 3, 0, 0, 0, 3, 1, 0x83, 2]);

    // A request that cannot be answered alone ends the conversation: the reset towards
    // the PLC speaks in the PLC's numbers, the one towards the client in the client's.
    let next = client_seq + 12;
    let mut both = read(5, 1, 0, 1);
    both.extend(write(6, 5));
    let frame = c.client.tcp_seq(
        c.client_ip,
        c.sport,
        c.server_ip,
        502,
        next,
        client_ack + 11,
        ACK | PSH,
        &both,
    );
    assert!(!h.send(&frame, Port::Plant).forward);
    let injected = h.injected();
    let to_plc = injected
        .iter()
        .find(|(p, _)| *p == Port::Asset)
        .expect("a reset to the PLC");
    let to_client = injected
        .iter()
        .find(|(p, _)| *p == Port::Plant)
        .expect("a reset to the client");
    let (seq, ack, flags, _) = tcp_of(&to_plc.1);
    assert!(flags & RST != 0);
    assert_eq!((seq, ack), (next - removed, c.s_seq + 11));
    let (seq, ack, _, _) = tcp_of(&to_client.1);
    assert_eq!((seq, ack), (client_ack + 11, next + both.len() as u32));
}

#[test]
fn modbus_exception_falls_back_to_a_reset_when_the_segment_holds_more() {
    let extra = r#"
[[rule]]
name = "intruder-reads"
from = "any"
to = "plc"
proto = "modbus"
action = "allow"
on-deny = "modbus-exception"
[rule.modbus]
preset = "read-only"
"#;
    let mut h = Harness::new(&policy("enforce", extra));
    let mut c = open(&mut h, [2, 0, 0, 0, 0, 0x66], "10.10.0.66", 40080);
    let mut both = read(1, 1, 0, 1);
    both.extend(write(2, 5));
    assert!(!c.client(&mut h, &both).forward);
    let injected = h.injected();
    assert_eq!(injected.len(), 2, "a reset each way");
    assert!(injected.iter().all(|(_, f)| tcp_of(f).2 & RST != 0));
}
