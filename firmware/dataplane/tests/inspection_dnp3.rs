//! DNP3 inspection in the pipeline, on crafted TCP conversations: requests allowed and
//! denied for each reason, presets, link-layer frames, responses and unsolicited
//! responses, fragments across link frames and link frames across TCP segments, several
//! frames in one segment, malformed frames and transport faults, monitor mode.

use gk_dataplane::testing::{Harness, TcpConv};
use gk_dataplane::{Event, EventVerdict, Outcome, Port, Reason};
use gk_inspect::dnp3::{self, Function, HeaderRepr, LinkRepr, Range, RequestRepr, ResponseRepr};
use gk_inspect::Op;

const HMI_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x21];
const ENG_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x31];
const PLC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PLC: &str = "10.10.0.10";
const HMI: &str = "10.10.0.21";
const ENG: &str = "10.10.0.31";

/// Link addresses: the outstation (the PLC) and the masters.
const OUTSTATION: u16 = 10;
const MASTER: u16 = 1;

fn policy(mode: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "inspect-dnp3"
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
name = "hmi-monitors"
from = "hmi"
to = "plc"
proto = "dnp3"
action = "allow"
[rule.dnp3]
outstations = [{OUTSTATION}]
masters = [{MASTER}]
preset = "read-only"
[[rule]]
name = "eng-controls"
from = "eng"
to = "plc"
proto = "dnp3"
action = "allow"
log = true
[rule.dnp3]
outstations = [{OUTSTATION}]
functions = ["select", "operate", "direct-operate"]
objects = ["g12v1"]
indices = ["0-3"]
[[rule]]
name = "eng-no-restart"
from = "eng"
to = "plc"
proto = "dnp3"
action = "deny"
[rule.dnp3]
functions = ["cold-restart", "warm-restart"]
[[rule]]
name = "eng-monitors"
from = "eng"
to = "plc"
proto = "dnp3"
action = "alert"
[rule.dnp3]
preset = "read-only"
"#
    )
}

fn open(h: &mut Harness, mac: [u8; 6], ip: &str, sport: u16) -> TcpConv {
    TcpConv::open(h, (mac, ip, sport), (PLC_MAC, PLC, 20000))
}

/// The link frames of a request fragment from `master` to `outstation`.
fn frames_to(outstation: u16, master: u16, fragment: &[u8], segment: usize) -> Vec<u8> {
    let mut out = vec![0u8; 8192];
    let n = LinkRepr::from_master(outstation, master)
        .emit_fragment(0, fragment, segment, &mut out)
        .unwrap();
    out.truncate(n);
    out
}

fn frames(fragment: &[u8]) -> Vec<u8> {
    frames_to(OUTSTATION, MASTER, fragment, 249)
}

fn request(function: Function, headers: &[HeaderRepr<'_>]) -> Vec<u8> {
    let mut out = vec![0u8; 2048];
    let n = RequestRepr {
        seq: 1,
        function,
        headers,
    }
    .emit(&mut out)
    .unwrap();
    out.truncate(n);
    out
}

/// Class 1, 2, 3 and 0 reads: an integrity poll.
fn integrity_poll() -> Vec<u8> {
    request(
        Function::Read,
        &[
            HeaderRepr::all(60, 2),
            HeaderRepr::all(60, 3),
            HeaderRepr::all(60, 4),
            HeaderRepr::all(60, 1),
        ],
    )
}

/// A CROB (g12v1, qualifier 0x28) on `index`: latch on, 100 ms.
fn crob(function: Function, variation: u8, index: u16) -> Vec<u8> {
    let mut objects = index.to_le_bytes().to_vec();
    objects.extend([0x03, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0]);
    request(
        function,
        &[HeaderRepr {
            group: 12,
            variation,
            qualifier: 0x28,
            range: Range::Count(1),
            objects: &objects,
        }],
    )
}

/// A write of `n` 8-byte octet strings (g110v8) from index 0.
fn write_strings(n: u32) -> Vec<u8> {
    let objects: Vec<u8> = (0..n * 8).map(|i| i as u8).collect();
    request(
        Function::Write,
        &[HeaderRepr {
            group: 110,
            variation: 8,
            qualifier: 0x01,
            range: Range::StartStop {
                start: 0,
                stop: n - 1,
            },
            objects: &objects,
        }],
    )
}

/// The outstation's answer: a response (or unsolicited response) with `objects`.
fn response(function: Function, control: u8, objects: &[u8]) -> Vec<u8> {
    let mut fragment = vec![0u8; 2048];
    let n = ResponseRepr {
        control,
        function,
        iin: [0, 0],
        objects,
    }
    .emit(&mut fragment)
    .unwrap();
    let mut out = vec![0u8; 8192];
    let m = LinkRepr::from_outstation(MASTER, OUTSTATION)
        .emit_fragment(0, &fragment[..n], 249, &mut out)
        .unwrap();
    out.truncate(m);
    out
}

/// A link-layer frame without user data.
fn link_frame(control: u8, destination: u16, source: u16) -> Vec<u8> {
    let mut out = vec![0u8; 16];
    let n = LinkRepr {
        control,
        destination,
        source,
    }
    .emit(&[], &mut out)
    .unwrap();
    out.truncate(n);
    out
}

fn dnp3_op(op: Option<Op>) -> dnp3::Op {
    match op {
        Some(Op::Dnp3(op)) => op,
        other => panic!("expected a DNP3 operation, got {other:?}"),
    }
}

fn verdict(out: &Outcome) -> (bool, EventVerdict, Reason) {
    (out.forward, out.verdict, out.reason)
}

fn rule_of(h: &Harness, e: &Event) -> Option<String> {
    h.rule_name(e.rule)
}

#[test]
fn an_integrity_poll_and_its_answers_pass() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40000);
    // The master's link status request, the outstation's link status.
    assert!(
        c.client(&mut h, &link_frame(0xc9, OUTSTATION, MASTER))
            .forward
    );
    assert!(
        c.server(&mut h, &link_frame(0x0b, MASTER, OUTSTATION))
            .forward
    );
    let out = c.client(&mut h, &frames(&integrity_poll()));
    assert!(out.forward);
    assert_eq!(out.reason, Reason::Flow);
    let op = dnp3_op(out.op);
    assert_eq!(
        (
            op.function,
            op.object,
            op.headers,
            op.destination,
            op.source
        ),
        (Some(1), Some((60, 2)), 4, OUTSTATION, MASTER)
    );
    // A response in two link frames (g30v1, indices 0-59: 300 bytes of values).
    let mut objects = vec![30, 1, 0x00, 0, 59];
    objects.extend((0..300).map(|i| i as u8));
    let answer = response(Function::Response, 0xc1, &objects);
    assert!(answer.len() > dnp3::MAX_LINK_FRAME);
    assert!(c.server(&mut h, &answer).forward);
    // An unsolicited response, and the master's confirm of it.
    let uns = response(
        Function::UnsolicitedResponse,
        0xf2,
        &[2, 1, 0x28, 1, 0, 4, 0, 0x81],
    );
    assert!(c.server(&mut h, &uns).forward);
    assert!(c.client(&mut h, &frames(&[0xd2, 0x00])).forward);
    // Time synchronisation and clearing the restart bit fit read-only.
    let time = request(
        Function::Write,
        &[HeaderRepr {
            group: 50,
            variation: 1,
            qualifier: 0x07,
            range: Range::Count(1),
            objects: &[1, 2, 3, 4, 5, 6],
        }],
    );
    assert!(
        c.client(&mut h, &frames(&request(Function::DelayMeasure, &[])))
            .forward
    );
    assert!(c.client(&mut h, &frames(&time)).forward);
    let clear = request(
        Function::Write,
        &[HeaderRepr {
            group: 80,
            variation: 1,
            qualifier: 0x00,
            range: Range::StartStop { start: 7, stop: 7 },
            objects: &[0],
        }],
    );
    assert!(c.client(&mut h, &frames(&clear)).forward);
    assert!(h.events().is_empty(), "hmi-monitors does not log");
    assert!(h.injected().is_empty());
}

#[test]
fn a_control_from_the_monitoring_master_is_refused_and_the_connection_reset() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40001);
    assert!(c.client(&mut h, &frames(&integrity_poll())).forward);
    let out = c.client(&mut h, &frames(&crob(Function::DirectOperate, 1, 2)));
    assert_eq!(verdict(&out), (false, EventVerdict::Deny, Reason::Function));
    let e = h.events();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].verdict, e[0].reason),
        (EventVerdict::Deny, Reason::Function)
    );
    assert_eq!(rule_of(&h, &e[0]).as_deref(), Some("hmi-monitors"));
    let op = dnp3_op(e[0].op);
    assert_eq!(
        (op.function, op.object, op.index, op.count),
        (Some(5), Some((12, 1)), Some(2), Some(1))
    );
    let injected = h.injected();
    assert_eq!(injected.len(), 2, "a reset each way");
    assert_eq!((injected[0].0, injected[1].0), (Port::Asset, Port::Plant));
    // The conversation is gone.
    let out = c.client(&mut h, &frames(&integrity_poll()));
    assert_eq!((out.forward, out.reason), (false, Reason::TcpState));
    // A cold restart and a write of anything but the time or IIN are refused too.
    let mut c = open(&mut h, HMI_MAC, HMI, 40002);
    let out = c.client(&mut h, &frames(&request(Function::ColdRestart, &[])));
    assert_eq!(out.reason, Reason::Function);
    let mut c = open(&mut h, HMI_MAC, HMI, 40003);
    let out = c.client(&mut h, &frames(&write_strings(2)));
    assert_eq!(out.reason, Reason::Object);
}

#[test]
fn link_addresses_objects_and_indices_give_their_reasons() {
    let mut h = Harness::new(&policy("enforce"));
    let poll = integrity_poll();
    let mut c = open(&mut h, HMI_MAC, HMI, 40010);
    let out = c.client(&mut h, &frames_to(11, MASTER, &poll, 249));
    assert_eq!(out.reason, Reason::Unit, "another outstation");
    let mut c = open(&mut h, HMI_MAC, HMI, 40011);
    let out = c.client(&mut h, &frames_to(OUTSTATION, 2, &poll, 249));
    assert_eq!(out.reason, Reason::Unit, "another master address");
    let mut c = open(&mut h, HMI_MAC, HMI, 40012);
    let out = c.client(&mut h, &frames_to(0xffff, MASTER, &poll, 249));
    assert_eq!(out.reason, Reason::Unit, "a broadcast");

    assert_eq!(h.events().len(), 3);

    // The engineering station may operate CROBs 0-3 (logged), nothing else.
    let mut c = open(&mut h, ENG_MAC, ENG, 40013);
    assert!(
        c.client(&mut h, &frames(&crob(Function::Select, 1, 3)))
            .forward
    );
    assert!(
        c.client(&mut h, &frames(&crob(Function::Operate, 1, 3)))
            .forward
    );
    let e = h.events();
    assert_eq!(e.len(), 2);
    assert_eq!(
        (e[0].verdict, e[0].reason),
        (EventVerdict::Allow, Reason::Rule)
    );
    assert_eq!(rule_of(&h, &e[1]).as_deref(), Some("eng-controls"));
    assert_eq!(dnp3_op(e[1].op).function, Some(4));
    let out = c.client(&mut h, &frames(&crob(Function::DirectOperate, 1, 9)));
    assert_eq!((out.forward, out.reason), (false, Reason::Address));
    assert_eq!(h.rule_name(out.rule).as_deref(), Some("eng-controls"));
    // A pattern control block (g12v2) is another object: the closest rule says so.
    let mut c = open(&mut h, ENG_MAC, ENG, 40014);
    let pcb = {
        let mut objects = vec![0x03, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0];
        objects.truncate(11);
        request(
            Function::DirectOperate,
            &[HeaderRepr {
                group: 12,
                variation: 2,
                qualifier: 0x07,
                range: Range::Count(1),
                objects: &objects,
            }],
        )
    };
    let out = c.client(&mut h, &frames(&pcb));
    assert_eq!((out.forward, out.reason), (false, Reason::Object));
    // An explicit deny rule takes restarts.
    let mut c = open(&mut h, ENG_MAC, ENG, 40015);
    let out = c.client(&mut h, &frames(&request(Function::WarmRestart, &[])));
    assert_eq!((out.forward, out.reason), (false, Reason::DenyRule));
    assert_eq!(h.rule_name(out.rule).as_deref(), Some("eng-no-restart"));
    // Reads fall through to eng-monitors, which alerts.
    let mut c = open(&mut h, ENG_MAC, ENG, 40016);
    h.events();
    assert!(c.client(&mut h, &frames(&integrity_poll())).forward);
    let e = h.events();
    assert_eq!(e[0].verdict, EventVerdict::Alert);
    assert_eq!(rule_of(&h, &e[0]).as_deref(), Some("eng-monitors"));
}

#[test]
fn fragments_across_frames_and_frames_across_segments_are_judged_when_whole() {
    let mut h = Harness::new(&policy("enforce"));
    // A write of 40 octet strings: one fragment in two link frames, sent in pieces of
    // 100 bytes. Everything before the last piece passes; the last is judged.
    let mut c = open(&mut h, HMI_MAC, HMI, 40020);
    let bytes = frames(&write_strings(40));
    assert!(bytes.len() > dnp3::MAX_LINK_FRAME);
    let pieces: Vec<&[u8]> = bytes.chunks(100).collect();
    for p in &pieces[..pieces.len() - 1] {
        let out = c.client(&mut h, p);
        assert!(out.forward, "a piece that finishes nothing");
        assert!(out.op.is_none());
    }
    let out = c.client(&mut h, pieces[pieces.len() - 1]);
    assert_eq!((out.forward, out.reason), (false, Reason::Object));
    assert_eq!(dnp3_op(out.op).object, Some((110, 8)));
    // An allowed poll in 3-byte transport segments and 7-byte TCP segments passes.
    let mut c = open(&mut h, HMI_MAC, HMI, 40021);
    let bytes = frames_to(OUTSTATION, MASTER, &integrity_poll(), 3);
    let mut last = None;
    for p in bytes.chunks(7) {
        let out = c.client(&mut h, p);
        assert!(out.forward);
        last = out.op.or(last);
    }
    assert_eq!(dnp3_op(last).headers, 4);
    assert_eq!(
        h.injected().len(),
        2,
        "only the first conversation was reset"
    );
}

#[test]
fn several_frames_in_one_segment_are_judged_each() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40030);
    let mut all = link_frame(0xc0, OUTSTATION, MASTER);
    all.extend(frames(&integrity_poll()));
    all.extend(frames(&integrity_poll()));
    assert!(c.client(&mut h, &all).forward);
    let mut mixed = frames(&integrity_poll());
    mixed.extend(frames(&crob(Function::DirectOperate, 1, 0)));
    mixed.extend(frames(&integrity_poll()));
    let out = c.client(&mut h, &mixed);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    assert_eq!(dnp3_op(out.op).function, Some(5));
}

#[test]
fn malformed_frames_and_transport_faults_are_denied_with_the_parser_s_reason() {
    let mut h = Harness::new(&policy("enforce"));
    let detail = |h: &mut Harness| h.events().first().and_then(|e| e.detail);

    let mut c = open(&mut h, HMI_MAC, HMI, 40040);
    let mut bad = frames(&integrity_poll());
    bad[12] ^= 0x01;
    let out = c.client(&mut h, &bad);
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    assert_eq!(detail(&mut h), Some("bad data block CRC"));

    let mut c = open(&mut h, HMI_MAC, HMI, 40041);
    let out = c.client(&mut h, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(out.reason, Reason::Malformed);
    assert_eq!(detail(&mut h), Some("no link start bytes (0x05 0x64)"));

    let mut c = open(&mut h, HMI_MAC, HMI, 40042);
    let mut bad = link_frame(0xc0, OUTSTATION, MASTER);
    bad[8] ^= 0xff;
    assert_eq!(c.client(&mut h, &bad).reason, Reason::Malformed);
    assert_eq!(detail(&mut h), Some("bad link header CRC"));

    // A transport segment out of sequence: the second of three, twice.
    let mut c = open(&mut h, HMI_MAC, HMI, 40043);
    let bytes = frames_to(OUTSTATION, MASTER, &write_strings(40), 120);
    let first = 10 + 121 + 2 * 121usize.div_ceil(16);
    let second = &bytes[first..2 * first];
    assert!(c.client(&mut h, &bytes[..first]).forward);
    assert!(c.client(&mut h, second).forward);
    let out = c.client(&mut h, second);
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    assert_eq!(detail(&mut h), Some("transport segment out of sequence"));

    // A new first segment in the middle of a fragment.
    let mut c = open(&mut h, HMI_MAC, HMI, 40047);
    assert!(c.client(&mut h, &bytes[..first]).forward);
    let out = c.client(&mut h, &bytes[..first]);
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    assert_eq!(
        detail(&mut h),
        Some("transport segment FIR inside a fragment")
    );

    // A request that is not one fragment, an object header that is cut short.
    let mut c = open(&mut h, HMI_MAC, HMI, 40044);
    let out = c.client(&mut h, &frames(&[0x81, 0x01, 60, 1, 0x06]));
    assert_eq!(out.reason, Reason::Malformed);
    assert_eq!(detail(&mut h), Some("request is not a single fragment"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40045);
    let out = c.client(&mut h, &frames(&[0xc1, 0x01, 60, 1]));
    assert_eq!(detail(&mut h), Some("object header truncated"));
    assert_eq!(out.reason, Reason::Malformed);

    // A malformed answer from the outstation.
    let mut c = open(&mut h, HMI_MAC, HMI, 40046);
    assert!(c.client(&mut h, &frames(&integrity_poll())).forward);
    let out = c.server(&mut h, &response(Function::Response, 0xc1, &[1, 2, 0x0a]));
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    assert_eq!(detail(&mut h), Some("reserved range specifier code"));
}

#[test]
fn a_request_from_the_outstation_side_is_judged_with_the_roles_swapped() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40050);
    // The outstation's own link management passes (keep-alives go both ways).
    assert!(
        c.server(&mut h, &link_frame(0x49, MASTER, OUTSTATION))
            .forward
    );
    assert!(
        c.client(&mut h, &link_frame(0x0b, OUTSTATION, MASTER))
            .forward
    );
    // A read sent by the PLC to the HMI: no rule lets the PLC be a master.
    let mut out = vec![0u8; 64];
    let n = LinkRepr::from_outstation(MASTER, OUTSTATION)
        .emit_fragment(0, &integrity_poll(), 249, &mut out)
        .unwrap();
    let out = c.server(&mut h, &out[..n]);
    assert_eq!((out.forward, out.reason), (false, Reason::NoRule));
}

#[test]
fn monitor_mode_forwards_and_reports_what_enforce_would_deny() {
    let mut h = Harness::new(&policy("monitor"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40060);
    let out = c.client(&mut h, &frames(&crob(Function::DirectOperate, 1, 0)));
    assert_eq!(
        verdict(&out),
        (true, EventVerdict::WouldDeny, Reason::Function)
    );
    let e = h.events();
    assert_eq!(e[0].verdict, EventVerdict::WouldDeny);
    assert_eq!(dnp3_op(e[0].op).object, Some((12, 1)));
    assert!(h.injected().is_empty(), "monitor mode builds nothing");
    // The conversation goes on and is still judged.
    assert!(c.client(&mut h, &frames(&integrity_poll())).forward);
    let out = c.client(&mut h, &frames_to(OUTSTATION, 7, &integrity_poll(), 249));
    assert_eq!(verdict(&out), (true, EventVerdict::WouldDeny, Reason::Unit));
    // A malformed frame is reported, not dropped.
    let mut bad = frames(&integrity_poll());
    bad[12] ^= 1;
    let out = c.client(&mut h, &bad);
    assert_eq!(
        verdict(&out),
        (true, EventVerdict::WouldDeny, Reason::Malformed)
    );
}

#[test]
fn presets_open_controls_and_restarts() {
    let text = |preset: &str| {
        format!(
            r#"
schema = 1
[gatekeeper]
name = "presets"
mode = "enforce"
[hosts.plc]
ip = "{PLC}"
[[rule]]
name = "any-master"
from = "any"
to = "plc"
proto = "dnp3"
action = "allow"
[rule.dnp3]
preset = "{preset}"
"#
        )
    };
    let cases: &[(&str, Function, bool)] = &[
        ("read-only", Function::Read, true),
        ("read-only", Function::DirectOperate, false),
        ("read-write", Function::DirectOperate, true),
        ("read-write", Function::ColdRestart, false),
        ("programming", Function::ColdRestart, true),
        ("programming", Function::Unknown(0x50), false),
        ("all", Function::Unknown(0x50), true),
    ];
    for (i, &(preset, function, allowed)) in cases.iter().enumerate() {
        let mut h = Harness::new(&text(preset));
        let mut c = open(&mut h, HMI_MAC, HMI, 41000 + i as u16);
        let fragment = match function {
            Function::DirectOperate => crob(function, 1, 0),
            Function::Read => integrity_poll(),
            f => request(f, &[]),
        };
        let out = c.client(&mut h, &frames(&fragment));
        assert_eq!(out.forward, allowed, "{preset} {function}");
    }
}
