//! IEC 60870-5-104 inspection in the pipeline, on crafted TCP conversations: link
//! management and monitoring data pass, commands are judged by type, common address,
//! cause and IOA, presets, commands in the reverse direction, reassembly across
//! segments and several APDUs per segment, malformed APDUs, monitor mode.
//!
//! The frames marked "lib60870" are byte for byte what c104 2.2 (lib60870-C) sent and
//! received on loopback: STARTDT, a general interrogation and its answers, a single
//! command and a clock synchronisation.

use gk_dataplane::testing::{Harness, TcpConv};
use gk_dataplane::{Event, EventVerdict, Port, Reason};
use gk_inspect::iec104::{self, ApduRepr, AsduRepr, Cause, ObjectsRepr, TypeId, UFunction};
use gk_inspect::Op;

const SCADA_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x21];
const ENG_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x31];
const SCADA: &str = "10.10.0.21";
const ENG: &str = "10.10.0.31";
const RTU_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const RTU: &str = "10.10.0.10";

fn policy(mode: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "iec104"
mode = "{mode}"
[inspection]
streams = 64
buffer = 1024
[hosts.rtu]
ip = "{RTU}"
[hosts.scada]
ip = "{SCADA}"
[hosts.eng]
ip = "{ENG}"
[[rule]]
name = "scada-reads"
from = "scada"
to = "rtu"
proto = "iec104"
action = "allow"
[rule.iec104]
common-addresses = [1]
preset = "read-only"
[[rule]]
name = "scada-breakers"
from = "scada"
to = "rtu"
proto = "iec104"
action = "allow"
log = true
[rule.iec104]
common-addresses = [1]
types = ["single-command", "double-command"]
causes = ["activation", "deactivation"]
ioas = ["5000-5099"]
[[rule]]
name = "eng-no-reset"
from = "eng"
to = "rtu"
proto = "iec104"
action = "deny"
[rule.iec104]
types = ["reset-process"]
[[rule]]
name = "eng-programs"
from = "eng"
to = "rtu"
proto = "iec104"
action = "alert"
[rule.iec104]
preset = "programming"
"#
    )
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

// lib60870: the controlling station's side.
const STARTDT_ACT: &str = "68 04 07 00 00 00";
const GI: &str = "68 0e 00 00 00 00 64 01 06 00 01 00 00 00 00 14";
const SC_5000: &str = "68 0e 02 00 08 00 2d 01 06 00 01 00 88 13 00 01";
// lib60870: the controlled station's side.
const STARTDT_CON: &str = "68 04 0b 00 00 00";
const GI_CON: &str = "68 0e 00 00 02 00 64 01 07 00 01 00 00 00 00 14";
const SP_100: &str = "68 0e 02 00 02 00 01 81 14 00 01 00 64 00 00 00";
const ME_200: &str = "68 12 04 00 02 00 0d 81 14 00 01 00 c8 00 00 00 00 2a 42 00";
const GI_TERM: &str = "68 0e 06 00 02 00 64 01 0a 00 01 00 00 00 00 14";
const SC_CON: &str = "68 0e 08 00 04 00 2d 01 07 00 01 00 88 13 00 01";
const SP_RETURN: &str = "68 0e 0a 00 06 00 01 01 0b 00 01 00 64 00 00 01";

fn open(h: &mut Harness, mac: [u8; 6], ip: &str, sport: u16) -> TcpConv {
    TcpConv::open(h, (mac, ip, sport), (RTU_MAC, RTU, 2404))
}

/// An I-frame with one object, from either side.
fn i_frame(send: u16, type_id: TypeId, cause: Cause, ca: u16, ioa: u32, element: &[u8]) -> Vec<u8> {
    let mut out = [0u8; iec104::MAX_APDU];
    let objects = [(ioa, element)];
    let n = ApduRepr::I {
        send,
        recv: 0,
        asdu: AsduRepr {
            type_id,
            cause,
            negative: false,
            test: false,
            originator: 0,
            common_address: ca,
            objects: ObjectsRepr::Each(&objects),
        },
    }
    .emit(&mut out)
    .unwrap();
    out[..n].to_vec()
}

fn single_command(send: u16, ioa: u32) -> Vec<u8> {
    i_frame(send, TypeId::CScNa1, Cause::Activation, 1, ioa, &[0x01])
}

fn u_frame(f: UFunction) -> Vec<u8> {
    let mut out = [0u8; 6];
    let n = ApduRepr::U(f).emit(&mut out).unwrap();
    out[..n].to_vec()
}

fn asdu_op(e: &Event) -> iec104::AsduOp {
    match e.op {
        Some(Op::Iec104(op)) => op.asdu.expect("an I-frame"),
        other => panic!("expected an IEC-104 operation, got {other:?}"),
    }
}

fn outcome_type(out: &gk_dataplane::Outcome) -> Option<u8> {
    match out.op {
        Some(Op::Iec104(op)) => op.asdu.map(|a| a.type_id),
        _ => None,
    }
}

#[test]
fn startdt_interrogation_and_monitoring_data_pass_unreported() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, SCADA_MAC, SCADA, 40000);
    let out = c.client(&mut h, &hex(STARTDT_ACT));
    assert!(out.forward);
    assert_eq!(out.op, None, "link management is not judged");
    assert!(c.server(&mut h, &hex(STARTDT_CON)).forward);
    let out = c.client(&mut h, &hex(GI));
    assert!(out.forward);
    assert_eq!(out.reason, Reason::Flow);
    assert_eq!(outcome_type(&out), Some(100));
    for answer in [GI_CON, SP_100, ME_200, GI_TERM] {
        assert!(c.server(&mut h, &hex(answer)).forward, "{answer}");
    }
    // The controlling station acknowledges with an S-frame; both test the link.
    assert!(c.client(&mut h, &hex("68 04 01 00 08 00")).forward);
    assert!(c.server(&mut h, &u_frame(UFunction::TestFrAct)).forward);
    assert!(c.client(&mut h, &u_frame(UFunction::TestFrCon)).forward);
    // A read of IOA 200 (cause request) is read-only too.
    let read = i_frame(1, TypeId::CRdNa1, Cause::Request, 1, 200, &[]);
    assert!(c.client(&mut h, &read).forward);
    assert!(h.events().is_empty(), "scada-reads does not log");
    assert!(h.injected().is_empty());
}

#[test]
fn an_allowed_command_is_logged_and_its_confirmation_flows_back() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, SCADA_MAC, SCADA, 40001);
    assert!(c.client(&mut h, &hex(STARTDT_ACT)).forward);
    assert!(c.server(&mut h, &hex(STARTDT_CON)).forward);
    assert!(c.client(&mut h, &hex(GI)).forward);
    // lib60870's command has N(S) = 1 after the interrogation.
    let out = c.client(&mut h, &hex(SC_5000));
    assert!(out.forward);
    let e = h.events();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].verdict, e[0].reason),
        (EventVerdict::Allow, Reason::Rule)
    );
    assert_eq!(h.rule_name(e[0].rule).as_deref(), Some("scada-breakers"));
    let op = asdu_op(&e[0]);
    assert_eq!(
        (op.type_id, op.cause, op.common_address, op.ioa, op.select),
        (45, 6, 1, Some(5000), Some(false))
    );
    assert_eq!(
        e[0].op.unwrap().to_string(),
        "iec104 frame=i type=c-sc-na-1 cause=activation common_address=1 ioa=5000 objects=1 \
         command=execute"
    );
    // The controlled station's answers, in its own send order.
    for answer in [GI_CON, SP_100, ME_200, GI_TERM, SC_CON, SP_RETURN] {
        assert!(c.server(&mut h, &hex(answer)).forward, "{answer}");
    }
    assert!(h.events().is_empty());
}

#[test]
fn a_command_outside_the_ioas_is_dropped_reported_and_reset_both_ways() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, SCADA_MAC, SCADA, 40002);
    assert!(c.client(&mut h, &hex(STARTDT_ACT)).forward);
    let out = c.client(&mut h, &single_command(0, 6000));
    assert_eq!(
        (out.forward, out.verdict, out.reason),
        (false, EventVerdict::Deny, Reason::Address)
    );
    let e = h.events();
    assert_eq!(e.len(), 1);
    assert_eq!(
        h.rule_name(e[0].rule).as_deref(),
        Some("scada-breakers"),
        "the rule that got furthest (type and cause fit)"
    );
    assert_eq!(asdu_op(&e[0]).ioa, Some(6000));
    let injected = h.injected();
    assert_eq!(injected.len(), 2, "a reset each way");
    assert_eq!((injected[0].0, injected[1].0), (Port::Asset, Port::Plant));
    // The conversation is gone.
    let out = c.client(&mut h, &hex(GI));
    assert_eq!((out.forward, out.reason), (false, Reason::TcpState));
}

#[test]
fn types_common_addresses_and_causes_give_their_reasons() {
    let mut h = Harness::new(&policy("enforce"));
    let cases: [(Vec<u8>, Reason); 6] = [
        // A setpoint: no scada rule allows the type.
        (
            i_frame(
                0,
                TypeId::CSeNc1,
                Cause::Activation,
                1,
                5000,
                &[0, 0, 0xc0, 0x3f, 0],
            ),
            Reason::Function,
        ),
        // Interrogation of station 2, and of every station (65535).
        (
            i_frame(0, TypeId::CIcNa1, Cause::Activation, 2, 0, &[20]),
            Reason::Unit,
        ),
        (
            i_frame(0, TypeId::CIcNa1, Cause::Activation, 0xffff, 0, &[20]),
            Reason::Unit,
        ),
        // A single command with a cause the rule does not list.
        (
            i_frame(0, TypeId::CScNa1, Cause::Spontaneous, 1, 5000, &[1]),
            Reason::Function,
        ),
        // Clock synchronisation is not read-only.
        (
            hex("68 14 00 00 00 00 67 01 06 00 01 00 00 00 00 92 10 02 14 01 0c 1a"),
            Reason::Function,
        ),
        // A type without a name here is data, and read-only does not allow it.
        (
            i_frame(0, TypeId::Unknown(200), Cause::Activation, 1, 1, &[1, 2]),
            Reason::Function,
        ),
    ];
    for (i, (frame, reason)) in cases.iter().enumerate() {
        let mut c = open(&mut h, SCADA_MAC, SCADA, 40100 + i as u16);
        let out = c.client(&mut h, frame);
        assert_eq!((out.forward, out.reason), (false, *reason), "case {i}");
        assert!(out.op.is_some(), "case {i}: the event names the operation");
    }
}

#[test]
fn presets_and_explicit_denies() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, ENG_MAC, ENG, 40200);
    // Reset process: taken by the deny rule first.
    let reset = i_frame(0, TypeId::CRpNa1, Cause::Activation, 1, 0, &[1]);
    let out = c.client(&mut h, &reset);
    assert_eq!((out.forward, out.reason), (false, Reason::DenyRule));
    assert_eq!(h.rule_name(out.rule).as_deref(), Some("eng-no-reset"));
    assert_eq!(h.events().len(), 1);
    // Parameter loading and a file call: programming, alerted.
    let mut c = open(&mut h, ENG_MAC, ENG, 40201);
    let param = i_frame(
        0,
        TypeId::PMeNc1,
        Cause::Activation,
        1,
        300,
        &[0, 0, 0x80, 0x3f, 1],
    );
    assert!(c.client(&mut h, &param).forward);
    let call = i_frame(1, TypeId::FScNa1, Cause::FileTransfer, 1, 1, &[1, 0, 0, 2]);
    assert!(c.client(&mut h, &call).forward);
    let e = h.events();
    assert_eq!(e.len(), 2);
    assert!(e.iter().all(|e| e.verdict == EventVerdict::Alert));
    assert_eq!(asdu_op(&e[0]).type_id, 112);
    assert_eq!(asdu_op(&e[1]).type_id, 122);
    // The engineering station's commands are programming too (it covers read-write).
    assert!(c.client(&mut h, &single_command(2, 9999)).forward);
    // Monitoring types in the control direction are judged, and only `all` has them.
    let data = i_frame(3, TypeId::MSpNa1, Cause::Spontaneous, 1, 100, &[1]);
    let out = c.client(&mut h, &data);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
}

#[test]
fn a_command_from_the_controlled_station_is_judged_with_the_roles_swapped() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, SCADA_MAC, SCADA, 40300);
    assert!(c.client(&mut h, &hex(STARTDT_ACT)).forward);
    assert!(c.server(&mut h, &hex(STARTDT_CON)).forward);
    // Monitoring data with any cause, confirmations: answers, not judged.
    let spont = i_frame(
        0,
        TypeId::MSpTb1,
        Cause::Spontaneous,
        1,
        100,
        &[1, 0, 0, 0, 0, 0, 0, 0],
    );
    assert!(c.server(&mut h, &spont).forward);
    let neg = i_frame(1, TypeId::CScNa1, Cause::UnknownIoa, 1, 6000, &[1]);
    assert!(c.server(&mut h, &neg).forward);
    assert!(h.events().is_empty());
    // A single command activation sent by the RTU: no rule lets the RTU command the
    // SCADA host.
    let out = c.server(&mut h, &single_command(2, 5000));
    assert_eq!((out.forward, out.reason), (false, Reason::NoRule));
    assert_eq!(
        h.events()[0].src.map(|a| a.to_string()).as_deref(),
        Some(RTU)
    );
}

#[test]
fn apdus_split_across_segments_and_several_in_one_segment() {
    let mut h = Harness::new(&policy("enforce"));
    // An interrogation cut at every place passes whole.
    let gi = hex(GI);
    for cut in 1..gi.len() {
        let mut c = open(&mut h, SCADA_MAC, SCADA, 41000 + cut as u16);
        assert!(c.client(&mut h, &gi[..cut]).forward, "first part at {cut}");
        let out = c.client(&mut h, &gi[cut..]);
        assert!(out.forward, "second part at {cut}");
        assert_eq!(outcome_type(&out), Some(100));
    }
    assert!(h.events().is_empty());
    // STARTDT, an interrogation and an allowed command in one segment.
    let mut c = open(&mut h, SCADA_MAC, SCADA, 41100);
    let mut all = hex(STARTDT_ACT);
    all.extend(hex(GI));
    all.extend(hex(SC_5000));
    assert!(c.client(&mut h, &all).forward);
    assert_eq!(h.events().len(), 1, "the logged command");
    // The monitoring answers coalesced.
    let mut answers = hex(GI_CON);
    for a in [SP_100, ME_200, GI_TERM] {
        answers.extend(hex(a));
    }
    assert!(c.server(&mut h, &answers).forward);
    // An allowed and a denied command in one segment: the segment is refused.
    let mut c = open(&mut h, SCADA_MAC, SCADA, 41101);
    let mut mixed = single_command(0, 5001);
    mixed.extend(single_command(1, 7000));
    let out = c.client(&mut h, &mixed);
    assert_eq!((out.forward, out.reason), (false, Reason::Address));
    let e = h.events();
    assert_eq!(e.len(), 2);
    assert_eq!(asdu_op(&e[1]).ioa, Some(7000));
    // A command split in the middle of its information object is judged when whole.
    let mut c = open(&mut h, SCADA_MAC, SCADA, 41102);
    let cmd = single_command(0, 6000);
    assert!(c.client(&mut h, &cmd[..13]).forward);
    assert_eq!(c.client(&mut h, &cmd[13..]).reason, Reason::Address);
}

#[test]
fn malformed_apdus_are_denied_with_the_parser_s_reason() {
    let mut h = Harness::new(&policy("enforce"));
    let cases: [(&[u8], &str); 5] = [
        (
            &[0x68, 4, 0x0f, 0, 0, 0],
            "U-frame does not set exactly one function bit",
        ),
        (b"GET / HTTP/1.0\r\n\r\n", "start byte is not 0x68"),
        (&[0x68, 2, 0, 0], "APDU length out of range (4-253)"),
        (
            &[0x68, 0x0d, 0, 0, 0, 0, 0x64, 1, 6, 0, 1, 0, 0, 0, 0],
            "ASDU length disagrees with its type and object count",
        ),
        (
            // A double command with the state 3 (not permitted).
            &[
                0x68, 0x0e, 0, 0, 0, 0, 0x2e, 1, 6, 0, 1, 0, 0x88, 0x13, 0, 3,
            ],
            "double command state not permitted (0 or 3)",
        ),
    ];
    for (i, (bytes, detail)) in cases.iter().enumerate() {
        let mut c = open(&mut h, SCADA_MAC, SCADA, 42000 + i as u16);
        let out = c.client(&mut h, bytes);
        assert_eq!(
            (out.forward, out.reason),
            (false, Reason::Malformed),
            "case {i}"
        );
        let e = h.events();
        assert_eq!(e[0].detail, Some(*detail), "case {i}");
        assert_eq!(h.injected().len(), 2, "case {i}: reset both ways");
    }
    // A replayed (or injected) I-frame breaks the send sequence.
    let mut c = open(&mut h, SCADA_MAC, SCADA, 42100);
    assert!(c.client(&mut h, &hex(GI)).forward);
    let out = c.client(&mut h, &hex(GI));
    assert_eq!(out.reason, Reason::Malformed);
    assert_eq!(
        h.events()[0].detail,
        Some("send sequence number out of order")
    );
    // A malformed answer from the controlled station.
    let mut c = open(&mut h, SCADA_MAC, SCADA, 42101);
    assert!(c.client(&mut h, &hex(GI)).forward);
    let bad = hex("68 0f 00 00 02 00 0d 01 14 00 01 00 c8 00 00 00 00");
    let out = c.server(&mut h, &bad);
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
}

#[test]
fn monitor_mode_forwards_and_reports_what_enforce_would_deny() {
    let mut h = Harness::new(&policy("monitor"));
    let mut c = open(&mut h, SCADA_MAC, SCADA, 43000);
    assert!(c.client(&mut h, &hex(STARTDT_ACT)).forward);
    let out = c.client(&mut h, &single_command(0, 6000));
    assert!(out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::Address)
    );
    let e = h.events();
    assert_eq!(e[0].verdict, EventVerdict::WouldDeny);
    assert!(h.injected().is_empty(), "monitor mode builds nothing");
    // The conversation goes on and is still judged, sequence numbers included.
    assert!(
        c.client(
            &mut h,
            &i_frame(1, TypeId::CIcNa1, Cause::Activation, 1, 0, &[20])
        )
        .forward
    );
    assert!(h.events().is_empty());
    let out = c.client(
        &mut h,
        &i_frame(2, TypeId::CIcNa1, Cause::Activation, 3, 0, &[20]),
    );
    assert_eq!(
        (out.forward, out.verdict, out.reason),
        (true, EventVerdict::WouldDeny, Reason::Unit)
    );
    let out = c.client(
        &mut h,
        &i_frame(9, TypeId::CIcNa1, Cause::Activation, 1, 0, &[20]),
    );
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::Malformed)
    );
    assert!(
        c.client(
            &mut h,
            &i_frame(10, TypeId::CIcNa1, Cause::Activation, 1, 0, &[20])
        )
        .forward
    );
    assert_eq!(h.events().len(), 2);
}
