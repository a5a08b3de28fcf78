//! EtherNet/IP and CIP inspection in the pipeline, on crafted conversations: explicit
//! messages over TCP 44818 (unconnected through Unconnected Send, connected class 3 over
//! SendUnitData), discovery over UDP 44818, implicit I/O on UDP 2222; per-request
//! verdicts with each violation kind, presets, multiple service packets, reassembly
//! across segments and several messages per segment, long messages judged on their
//! first bytes, malformed messages, monitor mode.

use gk_dataplane::testing::{FrameBuilder, Harness, TcpConv};
use gk_dataplane::{Event, EventVerdict, Port, Reason};
use gk_inspect::enip::repr::{self, ForwardOpenRepr, ParamsRepr, RequestRepr, SegmentRepr};
use gk_inspect::enip::Command;
use gk_inspect::Op;

const HMI_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x21];
const ENG_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x31];
const PLC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PLC: &str = "10.10.0.10";
const HMI: &str = "10.10.0.21";
const ENG: &str = "10.10.0.31";

fn policy(mode: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "inspect-enip"
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
proto = "enip"
action = "allow"
[rule.enip]
preset = "read-only"
classes = ["identity", "symbol", "tcp-ip-interface"]
tags = ["Setpoint*", "Level"]
[[rule]]
name = "eng-writes"
from = "eng"
to = "plc"
proto = "enip"
action = "allow"
log = true
[rule.enip]
preset = "read-write"
tags = ["Setpoint*"]
[[rule]]
name = "eng-no-stop"
from = "eng"
to = "plc"
proto = "enip"
action = "deny"
[rule.enip]
services = ["stop", "reset"]
[[rule]]
name = "eng-reads"
from = "eng"
to = "plc"
proto = "enip"
action = "alert"
[rule.enip]
preset = "read-only"
[[rule]]
name = "scanner-outputs"
from = "hmi"
to = "plc"
proto = "enip-io"
action = "allow"
[rule.enip-io]
preset = "read-only"
[[rule]]
name = "plc-inputs"
from = "plc"
to = "hmi"
proto = "enip-io"
action = "allow"
[rule.enip-io]
sizes = ["0-64"]
"#
    )
}

fn open(h: &mut Harness, client_mac: [u8; 6], client_ip: &str, sport: u16) -> TcpConv {
    TcpConv::open(h, (client_mac, client_ip, sport), (PLC_MAC, PLC, 44818))
}

fn request(service: u8, path: &[SegmentRepr<'_>], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; data.len() + 600];
    let n = RequestRepr {
        service,
        path,
        data,
    }
    .emit(&mut out)
    .unwrap();
    out.truncate(n);
    out
}

const SESSION: u32 = 0x8765_4321;

fn rr(cip: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; cip.len() + 64];
    let n = repr::emit_send_rr_data(&mut out, SESSION, cip).unwrap();
    out.truncate(n);
    out
}

/// `cip` through an Unconnected Send to backplane slot 0, as Logix clients send it.
fn routed(cip: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; cip.len() + 64];
    let route = [SegmentRepr::Port {
        port: 1,
        link: &[0],
    }];
    let n = repr::emit_unconnected_send(&mut out, cip, &route).unwrap();
    rr(&out[..n])
}

fn read_tag(name: &str) -> Vec<u8> {
    let path = [SegmentRepr::Symbol(name.as_bytes()), SegmentRepr::Member(0)];
    request(0x4c, &path, &[1, 0])
}

fn write_tag(name: &str, element: u32) -> Vec<u8> {
    let path = [
        SegmentRepr::Symbol(name.as_bytes()),
        SegmentRepr::Member(element),
    ];
    request(0x4d, &path, &[0xc3, 0x00, 0x01, 0x00, 0x07, 0x00])
}

fn get_single(class: u32, instance: u32, attribute: u32) -> Vec<u8> {
    let path = [
        SegmentRepr::Class(class),
        SegmentRepr::Instance(instance),
        SegmentRepr::Attribute(attribute),
    ];
    request(0x0e, &path, &[])
}

fn register() -> Vec<u8> {
    let mut out = [0u8; 32];
    let n = repr::emit_register_session(&mut out, 0).unwrap();
    out[..n].to_vec()
}

/// The target's answer to `service`: success, `data`.
fn answer(service: u8, data: &[u8]) -> Vec<u8> {
    let mut cip = vec![0u8; data.len() + 8];
    let n = repr::emit_response(&mut cip, service, 0, &[], data).unwrap();
    rr(&cip[..n])
}

fn enip_op(e: &Event) -> gk_inspect::enip::Op {
    match e.op {
        Some(Op::Enip(op)) => op,
        other => panic!("expected an EtherNet/IP operation, got {other:?}"),
    }
}

#[test]
fn allowed_reads_and_their_answers_pass() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40000);
    assert!(c.client(&mut h, &register()).forward);
    let mut registered = register();
    registered[4..8].copy_from_slice(&SESSION.to_le_bytes());
    assert!(c.server(&mut h, &registered).forward);
    let out = c.client(&mut h, &routed(&read_tag("Setpoint")));
    assert!(out.forward);
    assert_eq!(out.reason, Reason::Flow);
    let op = match out.op {
        Some(Op::Enip(op)) => op,
        other => panic!("{other:?}"),
    };
    let cip = op.cip.unwrap();
    assert_eq!((cip.service, cip.routed), (0x4c, true));
    assert_eq!(cip.tag.as_str(), "Setpoint[0]");
    assert!(c.server(&mut h, &answer(0x4c, &[0xc3, 0, 7, 0])).forward);
    assert!(c.client(&mut h, &rr(&get_single(1, 1, 7))).forward);
    assert!(c.client(&mut h, &routed(&get_single(0xf5, 1, 5))).forward);
    assert!(h.events().is_empty(), "hmi-reads does not log");
    assert!(h.injected().is_empty());
}

#[test]
fn a_denied_write_is_dropped_reported_and_the_connection_reset_both_ways() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40001);
    assert!(c.client(&mut h, &register()).forward);
    let out = c.client(&mut h, &routed(&write_tag("Setpoint", 1)));
    assert!(!out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::Deny, Reason::Function)
    );
    let events = h.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(h.rule_name(e.rule).as_deref(), Some("hmi-reads"));
    let op = enip_op(e);
    assert_eq!(op.command, u16::from(Command::SendRrData));
    assert_eq!(op.session, SESSION);
    let cip = op.cip.unwrap();
    assert_eq!((cip.service, cip.tag.as_str()), (0x4d, "Setpoint[1]"));
    assert_eq!(
        format!("{}", e.op.unwrap()),
        format!(
            "enip command=send-rr-data session={SESSION} service=write-tag tag=Setpoint[1] routed"
        )
    );
    let injected = h.injected();
    assert_eq!(injected.len(), 2, "a reset each way");
    assert_eq!((injected[0].0, injected[1].0), (Port::Asset, Port::Plant));
    // The conversation is gone.
    let out = c.client(&mut h, &rr(&get_single(1, 1, 7)));
    assert_eq!((out.forward, out.reason), (false, Reason::TcpState));
}

#[test]
fn objects_tags_and_explicit_denies_give_their_reasons() {
    let mut h = Harness::new(&policy("enforce"));
    // The assembly object is not in hmi-reads' classes.
    let mut c = open(&mut h, HMI_MAC, HMI, 40002);
    assert_eq!(
        c.client(&mut h, &routed(&get_single(4, 100, 3))).reason,
        Reason::Object
    );
    // A tag outside hmi-reads' patterns.
    let mut c = open(&mut h, HMI_MAC, HMI, 40003);
    assert_eq!(
        c.client(&mut h, &routed(&read_tag("Recipe"))).reason,
        Reason::Address
    );
    // eng-no-stop takes a stop and denies it.
    let mut c = open(&mut h, ENG_MAC, ENG, 40004);
    let stop = request(
        0x07,
        &[SegmentRepr::Class(0x8e), SegmentRepr::Instance(1)],
        &[],
    );
    let out = c.client(&mut h, &rr(&stop));
    assert_eq!(out.reason, Reason::DenyRule);
    assert_eq!(h.rule_name(out.rule).as_deref(), Some("eng-no-stop"));
}

#[test]
fn later_rules_judge_what_earlier_ones_do_not_take() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, ENG_MAC, ENG, 40010);
    // eng-writes (log = true) takes a write of Setpoint and reports it.
    assert!(c.client(&mut h, &routed(&write_tag("Setpoint", 2))).forward);
    let e = h.events();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].verdict, e[0].reason),
        (EventVerdict::Allow, Reason::Rule)
    );
    assert_eq!(enip_op(&e[0]).cip.unwrap().service, 0x4d);
    // A read of another tag falls through to eng-reads (alert).
    assert!(c.client(&mut h, &routed(&read_tag("Recipe"))).forward);
    let e = h.events();
    assert_eq!(e[0].verdict, EventVerdict::Alert);
    assert_eq!(h.rule_name(e[0].rule).as_deref(), Some("eng-reads"));
    // A write of another tag: eng-writes came closest (the service fits, the tag not).
    let out = c.client(&mut h, &routed(&write_tag("Recipe", 0)));
    assert_eq!((out.forward, out.reason), (false, Reason::Address));
    assert_eq!(h.rule_name(out.rule).as_deref(), Some("eng-writes"));
}

#[test]
fn every_request_of_a_multiple_service_packet_must_be_allowed() {
    let mut h = Harness::new(&policy("enforce"));
    let (a, b, w) = (
        read_tag("Setpoint"),
        read_tag("Level"),
        write_tag("Setpoint", 0),
    );
    let mut msp = [0u8; 256];
    let mut c = open(&mut h, HMI_MAC, HMI, 40020);
    let n = repr::emit_multiple(&mut msp, &[&a, &b]).unwrap();
    let out = c.client(&mut h, &routed(&msp[..n]));
    assert!(out.forward);
    let n = repr::emit_multiple(&mut msp, &[&a, &w, &b]).unwrap();
    let out = c.client(&mut h, &routed(&msp[..n]));
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    let cip = match out.op {
        Some(Op::Enip(op)) => op.cip.unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!((cip.service, cip.requests), (0x0a, Some(3)));
}

#[test]
fn class_3_connections_and_connected_requests() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40030);
    let forward_open = |transport: u8, path: &[SegmentRepr<'_>]| {
        let mut out = [0u8; 256];
        let p = ParamsRepr {
            rpi: 2_000_000,
            size: 500,
            kind: 2,
        };
        let n = ForwardOpenRepr {
            large: false,
            o_t_connection: 0,
            t_o_connection: 0x1111,
            serial: 7,
            vendor: 0x1009,
            originator_serial: 0x42,
            o_t: p,
            t_o: p,
            transport,
            path,
        }
        .emit(&mut out)
        .unwrap();
        rr(&out[..n])
    };
    let to_router = [
        SegmentRepr::Port {
            port: 1,
            link: &[0],
        },
        SegmentRepr::Class(2),
        SegmentRepr::Instance(1),
    ];
    let out = c.client(&mut h, &forward_open(0xa3, &to_router));
    assert!(out.forward, "a class 3 connection is read-only");
    let cip = match out.op {
        Some(Op::Enip(op)) => op.cip.unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!((cip.service, cip.transport_class), (0x54, Some(3)));
    // Requests on the connection are judged like unconnected ones.
    let send = |cip: &[u8], seq: u16| {
        let mut out = vec![0u8; cip.len() + 64];
        let n = repr::emit_send_unit_data(&mut out, SESSION, 0x2222, seq, cip).unwrap();
        out.truncate(n);
        out
    };
    let out = c.client(&mut h, &send(&read_tag("Level"), 1));
    assert!(out.forward);
    assert!(matches!(out.op, Some(Op::Enip(op)) if op.connection == Some(0x2222)));
    let out = c.client(&mut h, &send(&write_tag("Setpoint", 0), 2));
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    // An I/O connection (transport class 1) to an assembly is not read-only.
    let mut c = open(&mut h, HMI_MAC, HMI, 40031);
    let io = [
        SegmentRepr::Class(4),
        SegmentRepr::Instance(1),
        SegmentRepr::ConnectionPoint(100),
        SegmentRepr::ConnectionPoint(150),
    ];
    let out = c.client(&mut h, &forward_open(0x01, &io));
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
}

#[test]
fn messages_split_across_segments_and_several_in_one() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40040);
    let r = routed(&read_tag("Setpoint"));
    for part in [&r[..3], &r[3..30], &r[30..]] {
        assert!(c.client(&mut h, part).forward);
    }
    let mut both = rr(&get_single(1, 1, 1));
    both.extend(routed(&read_tag("Level")));
    assert!(c.client(&mut h, &both).forward);
    // A write split in two: the first part passes, the message is judged when whole.
    let w = routed(&write_tag("Setpoint", 0));
    assert!(c.client(&mut h, &w[..50]).forward);
    assert!(h.events().is_empty());
    let out = c.client(&mut h, &w[50..]);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    // A read and a write in one segment: the segment is refused.
    let mut c = open(&mut h, HMI_MAC, HMI, 40041);
    let mut mixed = routed(&read_tag("Level"));
    mixed.extend(routed(&write_tag("Setpoint", 0)));
    let out = c.client(&mut h, &mixed);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    assert!(matches!(out.op, Some(Op::Enip(op)) if op.cip.unwrap().service == 0x4d));
}

#[test]
fn a_message_longer_than_the_buffer_is_judged_on_its_first_bytes() {
    let mut h = Harness::new(&policy("enforce"));
    // A write of 1500 INTs (3000 bytes of data) to a tag, far longer than the 1024-byte
    // stream buffer: the service and tag are at the front.
    let mut data = vec![0xc3, 0x00, 0xdc, 0x05];
    data.extend(std::iter::repeat_n(0x11, 3000));
    let big = request(0x4d, &[SegmentRepr::Symbol(b"SetpointTable")], &data);
    let msg = routed(&big);
    let mut c = open(&mut h, ENG_MAC, ENG, 40050);
    for chunk in msg.chunks(1400) {
        assert!(c.client(&mut h, chunk).forward, "eng may write Setpoint*");
    }
    assert!(c.client(&mut h, &routed(&read_tag("Setpoint"))).forward);
    let mut c = open(&mut h, HMI_MAC, HMI, 40051);
    let out = c.client(&mut h, &msg[..1400]);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
}

#[test]
fn malformed_messages_are_denied_with_the_parser_s_reason() {
    let mut h = Harness::new(&policy("enforce"));
    // A connected address item where SendRRData has a null one.
    let mut c = open(&mut h, HMI_MAC, HMI, 40060);
    let mut worse = rr(&get_single(1, 1, 7));
    worse[32] = 0xa1; // a connected address item in SendRRData
    let out = c.client(&mut h, &worse);
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    let e = h.events();
    assert_eq!(
        e[0].detail,
        Some("send-rr-data without a null address item")
    );
    // Bytes that are not EtherNet/IP lose the framing.
    let mut c = open(&mut h, HMI_MAC, HMI, 40061);
    let out = c.client(&mut h, b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n");
    assert_eq!(out.reason, Reason::Malformed);
    assert_eq!(h.events()[0].detail, Some("options are not 0"));
    // A malformed answer from the server.
    let mut c = open(&mut h, HMI_MAC, HMI, 40062);
    assert!(c.client(&mut h, &rr(&get_single(1, 1, 7))).forward);
    let mut reply = answer(0x0e, &[]);
    reply[43] = 4; // four additional status words that are not there
    let out = c.server(&mut h, &reply);
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    assert_eq!(h.events()[0].detail, Some("additional status truncated"));
}

#[test]
fn monitor_mode_forwards_and_reports_what_enforce_would_deny() {
    let mut h = Harness::new(&policy("monitor"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40070);
    let out = c.client(&mut h, &routed(&write_tag("Setpoint", 3)));
    assert!(out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::Function)
    );
    let e = h.events();
    assert_eq!(e[0].verdict, EventVerdict::WouldDeny);
    assert_eq!(enip_op(&e[0]).cip.unwrap().tag.as_str(), "Setpoint[3]");
    assert!(h.injected().is_empty(), "monitor mode builds nothing");
    // The conversation goes on and is still judged.
    assert!(c.client(&mut h, &routed(&read_tag("Level"))).forward);
    let out = c.client(&mut h, &routed(&get_single(4, 1, 3)));
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::Object)
    );
}

#[test]
fn discovery_over_udp() {
    let mut h = Harness::new(&policy("enforce"));
    let (hmi, plc) = (HMI.parse().unwrap(), PLC.parse().unwrap());
    let mut out = [0u8; 64];
    let n = repr::emit_encapsulation(&mut out, Command::ListIdentity, 0, 0, &[]).unwrap();
    let ask = FrameBuilder::new(HMI_MAC, PLC_MAC).udp(hmi, 50000, plc, 44818, &out[..n]);
    assert!(h.send(&ask, Port::Plant).forward);
    // The identity reply (CPF with one identity item), as cpppo 5.2 sends it.
    let mut item = vec![0x01, 0x00, 0x0c, 0x00, 0x04, 0x00];
    item.extend_from_slice(&[1, 0, 0, 0]);
    let n = repr::emit_encapsulation(&mut out, Command::ListIdentity, 0, 0, &item).unwrap();
    let reply = FrameBuilder::new(PLC_MAC, HMI_MAC).udp(plc, 44818, hmi, 50000, &out[..n]);
    assert!(h.send(&reply, Port::Asset).forward);
    // A command read-only does not take, from the intruder's point of view: the hmi.
    let n = repr::emit_encapsulation(&mut out, Command::IndicateStatus, 0, 0, &[]).unwrap();
    let odd = FrameBuilder::new(HMI_MAC, PLC_MAC).udp(hmi, 50001, plc, 44818, &out[..n]);
    let o = h.send(&odd, Port::Plant);
    assert_eq!((o.forward, o.reason), (false, Reason::Function));
    // A datagram whose header length disagrees with its size.
    let n = repr::emit_encapsulation(&mut out, Command::ListIdentity, 0, 0, &[]).unwrap();
    let mut short = out[..n].to_vec();
    short[2] = 4;
    let bad = FrameBuilder::new(HMI_MAC, PLC_MAC).udp(hmi, 50002, plc, 44818, &short);
    assert_eq!(h.send(&bad, Port::Plant).reason, Reason::Malformed);
}

#[test]
fn implicit_io_each_way() {
    let mut h = Harness::new(&policy("enforce"));
    let (hmi, plc) = (HMI.parse().unwrap(), PLC.parse().unwrap());
    let io = |conn: u32, seq: u32, data: &[u8]| {
        let mut out = vec![0u8; data.len() + 32];
        let n = repr::emit_io(&mut out, conn, seq, data).unwrap();
        out.truncate(n);
        out
    };
    let o_t =
        |payload: &[u8]| FrameBuilder::new(HMI_MAC, PLC_MAC).udp(hmi, 2222, plc, 2222, payload);
    let t_o =
        |payload: &[u8]| FrameBuilder::new(PLC_MAC, HMI_MAC).udp(plc, 2222, hmi, 2222, payload);
    // The scanner's heartbeat (a class 1 sequence count, no data) passes.
    let out = h.send(&o_t(&io(0x10, 1, &[1, 0])), Port::Plant);
    assert!(out.forward);
    assert!(matches!(out.op, Some(Op::EnipIo(op)) if op.connection == 0x10 && op.size == 2));
    // The PLC's inputs come back under plc-inputs (judged as its own sending).
    assert!(
        h.send(&t_o(&io(0x20, 1, &[1, 0, 0xaa, 0x55])), Port::Asset)
            .forward
    );
    let out = h.send(&t_o(&io(0x20, 2, &[0; 100])), Port::Asset);
    assert_eq!((out.forward, out.reason), (false, Reason::Object));
    // Output data from the scanner is not read-only.
    let out = h.send(
        &o_t(&io(0x10, 2, &[2, 0, 1, 0, 0, 0, 0xff, 0xff])),
        Port::Plant,
    );
    assert_eq!((out.forward, out.reason), (false, Reason::Object));
    let e = h.events();
    assert_eq!(
        h.rule_name(e.last().unwrap().rule).as_deref(),
        Some("scanner-outputs")
    );
    // Not a CPF at all.
    let out = h.send(&o_t(&[0x01, 0x00, 0x02]), Port::Plant);
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
}
