//! BACnet/IP inspection in the pipeline, on crafted UDP datagrams: discovery and its
//! answers both ways, reads that pass, writes and device management refused with their
//! reasons, objects, properties and networks, the device's own requests judged with
//! the roles swapped, segmented requests, BBMD functions, malformed datagrams,
//! monitor mode, and no allocation on the way.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::Arc;

use gk_dataplane::testing::{FrameBuilder, Harness};
use gk_dataplane::{Event, EventSink, EventVerdict, Now, Outcome, Pipeline, Port, Reason};
use gk_inspect::bacnet::{
    Body, Carrier, ConfirmedService, Encoder, NpciRepr, ObjectId, ObjectType, PropertyId, Repr,
    Segment, Service, UnconfirmedService,
};
use gk_inspect::Op;

const HMI_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x21];
const ENG_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x31];
const INTRUDER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x66];
const PLC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const BROADCAST_MAC: [u8; 6] = [0xff; 6];
const PLC: &str = "10.10.0.10";
const HMI: &str = "10.10.0.21";
const ENG: &str = "10.10.0.31";
const INTRUDER: &str = "10.10.0.66";
const LAN_BROADCAST: &str = "10.10.0.255";
const PORT: u16 = 47808;

fn policy(mode: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "bacnet"
mode = "{mode}"
[hosts.plc]
ip = "{PLC}"
[hosts.hmi]
ip = "{HMI}"
[hosts.eng]
ip = "{ENG}"
[hosts.lan-broadcast]
ip = "{LAN_BROADCAST}"

[[rule]]
name = "hmi-reads"
from = "hmi"
to = "plc"
proto = "bacnet"
action = "allow"
[rule.bacnet]
preset = "read-only"
networks = [0, 5]

[[rule]]
name = "hmi-discovers"
from = "hmi"
to = "lan-broadcast"
proto = "bacnet"
action = "allow"
[rule.bacnet]
services = ["who-is", "who-has"]

[[rule]]
name = "eng-setpoints"
from = "eng"
to = "plc"
proto = "bacnet"
action = "allow"
log = true
[rule.bacnet]
services = ["write-property", "write-property-multiple"]
objects = ["analog-value:1-10"]
properties = ["present-value"]

[[rule]]
name = "eng-no-restarts"
from = "eng"
to = "plc"
proto = "bacnet"
action = "deny"
[rule.bacnet]
services = ["reinitialize-device", "device-communication-control"]

[[rule]]
name = "eng-reads"
from = "eng"
to = "plc"
proto = "bacnet"
action = "alert"
[rule.bacnet]
preset = "read-only"

[[rule]]
name = "plc-reports"
from = "plc"
to = ["hmi", "eng"]
proto = "bacnet"
action = "allow"
[rule.bacnet]
services = ["i-am", "i-have", "confirmed-cov-notification", "unconfirmed-cov-notification"]
"#
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn av(i: u32) -> ObjectId {
    ObjectId::new(ObjectType::AnalogValue.into(), i).unwrap()
}

fn device(i: u32) -> ObjectId {
    ObjectId::new(ObjectType::Device.into(), i).unwrap()
}

fn emit(repr: Repr<'_>) -> Vec<u8> {
    let mut out = [0u8; 1500];
    let n = repr.emit(&mut out).unwrap();
    out[..n].to_vec()
}

fn confirmed(invoke_id: u8, service: ConfirmedService, data: &[u8]) -> Vec<u8> {
    emit(Repr::unicast(Body::Confirmed {
        invoke_id,
        service: service.into(),
        segment: None,
        data,
    }))
}

fn unconfirmed(service: UnconfirmedService, data: &[u8]) -> Vec<u8> {
    emit(Repr::unicast(Body::Unconfirmed {
        service: service.into(),
        data,
    }))
}

fn params(f: impl FnOnce(&mut Encoder<'_>)) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut e = Encoder::new(&mut buf);
    f(&mut e);
    let n = e.finish().unwrap();
    buf[..n].to_vec()
}

fn read_property(invoke_id: u8, o: ObjectId, p: PropertyId) -> Vec<u8> {
    let data = params(|e| {
        e.read_property(o, p, None);
    });
    confirmed(invoke_id, ConfirmedService::ReadProperty, &data)
}

fn write_property(invoke_id: u8, o: ObjectId, p: PropertyId) -> Vec<u8> {
    let data = params(|e| {
        e.write_property(o, p, &[0x44, 0x41, 0xa8, 0, 0], Some(8));
    });
    confirmed(invoke_id, ConfirmedService::WriteProperty, &data)
}

fn who_is() -> Vec<u8> {
    unconfirmed(UnconfirmedService::WhoIs, &[])
}

fn i_am() -> Vec<u8> {
    let data = params(|e| {
        e.i_am(device(1234), 1476, 3, 15);
    });
    unconfirmed(UnconfirmedService::IAm, &data)
}

/// UDP from a host to the PLC (plant to asset), and back.
struct Udp {
    h: Harness,
}

impl Udp {
    fn new(mode: &str) -> Udp {
        Udp {
            h: Harness::new(&policy(mode)),
        }
    }

    fn send_to_plc(&mut self, (mac, from): ([u8; 6], &str), payload: &[u8]) -> Outcome {
        let f = FrameBuilder::new(mac, PLC_MAC).udp(ip(from), PORT, ip(PLC), PORT, payload);
        self.h.send(&f, Port::Plant)
    }

    fn send_from_plc(&mut self, (mac, to): ([u8; 6], &str), payload: &[u8]) -> Outcome {
        let f = FrameBuilder::new(PLC_MAC, mac).udp(ip(PLC), PORT, ip(to), PORT, payload);
        self.h.send(&f, Port::Asset)
    }

    fn rule(&self, out: &Outcome) -> Option<String> {
        self.h.rule_name(out.rule)
    }
}

const HMI_HOST: ([u8; 6], &str) = (HMI_MAC, HMI);
const ENG_HOST: ([u8; 6], &str) = (ENG_MAC, ENG);

fn bacnet_op(op: Option<Op>) -> gk_inspect::bacnet::Op {
    match op {
        Some(Op::Bacnet(op)) => op,
        other => panic!("expected a BACnet operation, got {other:?}"),
    }
}

fn one_event(h: &mut Harness) -> Event {
    let mut e = h.events();
    assert_eq!(e.len(), 1, "{e:?}");
    e.remove(0)
}

#[test]
fn discovery_and_reads_pass_both_ways() {
    let mut u = Udp::new("enforce");
    // The first datagram opens the conversation and is judged.
    let out = u.send_to_plc(HMI_HOST, &who_is());
    assert!(out.forward, "{out:?}");
    let op = bacnet_op(out.op);
    assert_eq!(
        op.service(),
        Some(Service::Unconfirmed(UnconfirmedService::WhoIs))
    );
    // The I-Am is a request from the device: judged from plc to hmi (plc-reports).
    assert!(u.send_from_plc(HMI_HOST, &i_am()).forward);
    let out = u.send_to_plc(HMI_HOST, &read_property(1, av(1), PropertyId::PresentValue));
    assert!(out.forward);
    assert_eq!(out.reason, Reason::Flow);
    assert_eq!(bacnet_op(out.op).object(), Some(av(1)));
    // The answer is not a request: checked for shape only.
    let ack = emit(Repr::unicast(Body::ComplexAck {
        invoke_id: 1,
        service: 12,
        segment: None,
        data: &params(|e| {
            e.object(Some(0), av(1))
                .property(Some(1), PropertyId::PresentValue)
                .opening(3)
                .real(None, 21.0)
                .closing(3);
        }),
    }));
    assert!(u.send_from_plc(HMI_HOST, &ack).forward);
    assert!(u.h.events().is_empty(), "nothing logs");
    assert!(u.h.injected().is_empty(), "UDP: nothing is ever built");
}

#[test]
fn a_broadcast_who_is_and_the_unicast_i_am_that_answers_it() {
    let mut u = Udp::new("enforce");
    let f = FrameBuilder::new(HMI_MAC, BROADCAST_MAC).udp(
        ip(HMI),
        PORT,
        ip(LAN_BROADCAST),
        PORT,
        &emit(Repr::Npdu {
            carrier: Carrier::OriginalBroadcast,
            npci: NpciRepr::default(),
            body: Body::Unconfirmed {
                service: 8,
                data: &[],
            },
        }),
    );
    let out = u.h.send(&f, Port::Plant);
    assert!(out.forward);
    assert_eq!(u.rule(&out).as_deref(), Some("hmi-discovers"));
    // The I-Am comes from the PLC's own address: a conversation of its own.
    let out = u.send_from_plc(HMI_HOST, &i_am());
    assert!(out.forward, "{out:?}");
    assert_eq!(u.rule(&out).as_deref(), Some("plc-reports"));
    // Only discovery goes to the broadcast address.
    let f = FrameBuilder::new(HMI_MAC, BROADCAST_MAC).udp(
        ip(HMI),
        PORT,
        ip(LAN_BROADCAST),
        PORT,
        &write_property(1, av(1), PropertyId::PresentValue),
    );
    let out = u.h.send(&f, Port::Plant);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
}

#[test]
fn a_denied_write_is_dropped_and_reported_and_the_conversation_goes_on() {
    let mut u = Udp::new("enforce");
    assert!(u.send_to_plc(HMI_HOST, &who_is()).forward);
    let out = u.send_to_plc(
        HMI_HOST,
        &write_property(7, av(1), PropertyId::PresentValue),
    );
    assert!(!out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::Deny, Reason::Function)
    );
    assert_eq!(u.rule(&out).as_deref(), Some("hmi-reads"));
    let e = one_event(&mut u.h);
    assert_eq!(
        (e.verdict, e.reason),
        (EventVerdict::Deny, Reason::Function)
    );
    let op = bacnet_op(e.op);
    assert_eq!(
        op.service(),
        Some(Service::Confirmed(ConfirmedService::WriteProperty))
    );
    assert_eq!((op.invoke_id(), op.object()), (Some(7), Some(av(1))));
    assert_eq!(op.property(), Some(PropertyId::PresentValue));
    assert!(u.h.injected().is_empty(), "no reset on UDP");
    // The conversation is not ended by a denied datagram.
    assert!(
        u.send_to_plc(HMI_HOST, &read_property(8, av(1), PropertyId::PresentValue))
            .forward
    );
    // Device management is refused as well.
    let dcc = confirmed(
        9,
        ConfirmedService::DeviceCommunicationControl,
        &params(|e| {
            e.enumerated(Some(1), 1);
        }),
    );
    let out = u.send_to_plc(HMI_HOST, &dcc);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    assert!(format!("{}", out.op.unwrap()).contains("enable_disable=disable"));
}

#[test]
fn objects_properties_and_explicit_denies_give_their_reasons() {
    let mut u = Udp::new("enforce");
    // eng-setpoints (log = true) takes a write of analog-value 5's present value.
    let out = u.send_to_plc(
        ENG_HOST,
        &write_property(1, av(5), PropertyId::PresentValue),
    );
    assert!(out.forward);
    let e = one_event(&mut u.h);
    assert_eq!((e.verdict, e.reason), (EventVerdict::Allow, Reason::Rule));
    assert_eq!(u.h.rule_name(e.rule).as_deref(), Some("eng-setpoints"));
    // Outside its objects, or its properties: the object reason, from eng-setpoints.
    let out = u.send_to_plc(
        ENG_HOST,
        &write_property(2, av(11), PropertyId::PresentValue),
    );
    assert_eq!((out.forward, out.reason), (false, Reason::Object));
    assert_eq!(u.rule(&out).as_deref(), Some("eng-setpoints"));
    let out = u.send_to_plc(
        ENG_HOST,
        &write_property(3, av(5), PropertyId::OutOfService),
    );
    assert_eq!((out.forward, out.reason), (false, Reason::Object));
    // A write-property-multiple with one object outside is refused whole.
    let wpm = params(|e| {
        e.write_access(av(2), &[(PropertyId::PresentValue, &[0x44, 0, 0, 0, 0])]);
        e.write_access(
            ObjectId::new(ObjectType::BinaryOutput.into(), 1).unwrap(),
            &[(PropertyId::PresentValue, &[0x91, 0x01])],
        );
    });
    let out = u.send_to_plc(
        ENG_HOST,
        &confirmed(4, ConfirmedService::WritePropertyMultiple, &wpm),
    );
    assert_eq!((out.forward, out.reason), (false, Reason::Object));
    u.h.events();
    // reinitialize-device meets the deny rule.
    let reinit = confirmed(
        5,
        ConfirmedService::ReinitializeDevice,
        &params(|e| {
            e.enumerated(Some(0), 0).character_string(Some(1), "secret");
        }),
    );
    let out = u.send_to_plc(ENG_HOST, &reinit);
    assert_eq!((out.forward, out.reason), (false, Reason::DenyRule));
    assert_eq!(u.rule(&out).as_deref(), Some("eng-no-restarts"));
    let op = bacnet_op(out.op);
    assert_eq!(
        op.reinitialized_state(),
        Some(gk_inspect::bacnet::ReinitializedState::Coldstart)
    );
    // A read falls through to eng-reads (alert).
    let out = u.send_to_plc(ENG_HOST, &read_property(6, av(40), PropertyId::ObjectName));
    assert!(out.forward);
    let e = u.h.events();
    assert_eq!(e.last().map(|e| e.verdict), Some(EventVerdict::Alert));
}

#[test]
fn the_device_s_own_requests_are_judged_with_the_roles_swapped() {
    let mut u = Udp::new("enforce");
    assert!(
        u.send_to_plc(HMI_HOST, &read_property(1, av(1), PropertyId::PresentValue))
            .forward
    );
    // A COV notification from the device to the HMI is in plc-reports.
    let cov = unconfirmed(
        UnconfirmedService::UnconfirmedCovNotification,
        &params(|e| {
            e.unsigned(Some(0), 1)
                .object(Some(1), device(1234))
                .object(Some(2), av(1))
                .unsigned(Some(3), 0)
                .opening(4)
                .property(Some(0), PropertyId::PresentValue)
                .opening(2)
                .real(None, 1.5)
                .closing(2)
                .closing(4);
        }),
    );
    assert!(u.send_from_plc(HMI_HOST, &cov).forward);
    // A write from the device to the HMI is not.
    let out = u.send_from_plc(
        HMI_HOST,
        &write_property(1, av(1), PropertyId::PresentValue),
    );
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    assert_eq!(u.rule(&out).as_deref(), Some("plc-reports"));
    // The device's answers need no rule.
    let simple_ack = emit(Repr::unicast(Body::SimpleAck {
        invoke_id: 1,
        service: 15,
    }));
    assert!(u.send_from_plc(HMI_HOST, &simple_ack).forward);
}

#[test]
fn routed_requests_are_limited_to_their_networks() {
    let mut u = Udp::new("enforce");
    let data = params(|e| {
        e.read_property(av(1), PropertyId::PresentValue, None);
    });
    let routed = |dnet| {
        emit(Repr::Npdu {
            carrier: Carrier::OriginalUnicast,
            npci: NpciRepr {
                expecting_reply: true,
                destination: Some((dnet, &[0x07], 255)),
                ..NpciRepr::default()
            },
            body: Body::Confirmed {
                invoke_id: 1,
                service: 12,
                segment: None,
                data: &data,
            },
        })
    };
    assert!(u.send_to_plc(HMI_HOST, &routed(5)).forward);
    let out = u.send_to_plc(HMI_HOST, &routed(9));
    assert_eq!((out.forward, out.reason), (false, Reason::Address));
    assert_eq!(bacnet_op(out.op).dnet(), Some(9));
}

#[test]
fn segmented_requests_are_judged_segment_by_segment() {
    let mut u = Udp::new("enforce");
    let wpm = params(|e| {
        e.write_access(
            av(3),
            &[(PropertyId::PresentValue, &[0x44, 0x41, 0xa8, 0, 0])],
        );
        e.write_access(
            av(4),
            &[(PropertyId::PresentValue, &[0x44, 0x41, 0xb0, 0, 0])],
        );
    });
    let (first, second) = wpm.split_at(16);
    let segment = |sequence, more_follows, data| {
        emit(Repr::unicast(Body::Confirmed {
            invoke_id: 3,
            service: 16,
            segment: Some(Segment {
                sequence,
                window: 2,
                more_follows,
            }),
            data,
        }))
    };
    // The first names analog-value 3, inside eng-setpoints' objects: it passes.
    let out = u.send_to_plc(ENG_HOST, &segment(0, true, first));
    assert!(out.forward, "{out:?}");
    // The second cannot be decoded alone: outside a rule that restricts objects.
    let out = u.send_to_plc(ENG_HOST, &segment(1, false, second));
    assert_eq!((out.forward, out.reason), (false, Reason::Object));
    // The device acknowledges segments; those are answers.
    let seg_ack = emit(Repr::unicast(Body::SegmentAck {
        invoke_id: 3,
        sequence: 0,
        window: 2,
        nak: false,
        server: true,
    }));
    assert!(u.send_from_plc(ENG_HOST, &seg_ack).forward);
}

#[test]
fn bbmd_functions_need_their_own_names() {
    let mut u = Udp::new("enforce");
    assert!(u.send_to_plc(HMI_HOST, &who_is()).forward);
    let register = [0x81, 0x05, 0x00, 0x06, 0x01, 0x2c];
    let out = u.send_to_plc(HMI_HOST, &register);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    assert!(format!("{}", out.op.unwrap()).contains("bvlc=register-foreign-device"));
    let write_bdt = [
        0x81, 0x01, 0x00, 0x0e, 10, 10, 0, 66, 0xba, 0xc0, 255, 255, 255, 255,
    ];
    assert_eq!(u.send_to_plc(HMI_HOST, &write_bdt).reason, Reason::Function);
    // Reading the broadcast distribution table is a read.
    assert!(u.send_to_plc(HMI_HOST, &[0x81, 0x02, 0x00, 0x04]).forward);
    // A BVLC-Result from the PLC is an answer.
    assert!(
        u.send_from_plc(HMI_HOST, &[0x81, 0x00, 0x00, 0x06, 0x00, 0x30])
            .forward
    );
}

#[test]
fn malformed_datagrams_are_denied_with_the_parser_s_reason() {
    let mut u = Udp::new("enforce");
    // The very first datagram of a conversation.
    let mut bad = who_is();
    bad[3] += 1; // BVLC length
    let out = u.send_to_plc(HMI_HOST, &bad);
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    assert_eq!(out.detail, Some("BVLC length disagrees with the datagram"));
    let e = one_event(&mut u.h);
    assert_eq!(e.detail, Some("BVLC length disagrees with the datagram"));
    // A read-property whose object identifier is 3 bytes long.
    let mut rp = read_property(1, av(1), PropertyId::PresentValue);
    let at = rp.len() - 7; // the context tag 0 header
    rp[at] = 0x0b;
    rp.remove(at + 1);
    let n = rp.len() as u16;
    rp[2..4].copy_from_slice(&n.to_be_bytes());
    let out = u.send_to_plc(HMI_HOST, &rp);
    assert_eq!(out.detail, Some("object identifier is not 4 bytes"));
    // Not BACnet at all, on the BACnet port.
    let out = u.send_to_plc(HMI_HOST, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    // A malformed answer from the device.
    let out = u.send_from_plc(
        HMI_HOST,
        &[0x81, 0x0a, 0x00, 0x0a, 0x01, 0x00, 0x20, 0x01, 0x0f, 0x00],
    );
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    // The conversation still serves well-formed requests.
    assert!(u.send_to_plc(HMI_HOST, &who_is()).forward);
}

#[test]
fn strangers_are_refused() {
    let mut u = Udp::new("enforce");
    let out = u.send_to_plc((INTRUDER_MAC, INTRUDER), &who_is());
    assert_eq!((out.forward, out.reason), (false, Reason::NoRule));
    let out = u.send_to_plc(
        (INTRUDER_MAC, INTRUDER),
        &write_property(1, av(1), PropertyId::PresentValue),
    );
    assert_eq!((out.forward, out.reason), (false, Reason::NoRule));
}

#[test]
fn monitor_mode_forwards_and_reports_what_enforce_would_deny() {
    let mut u = Udp::new("monitor");
    let out = u.send_to_plc(
        HMI_HOST,
        &write_property(1, av(1), PropertyId::PresentValue),
    );
    assert!(out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::Function)
    );
    let e = one_event(&mut u.h);
    assert_eq!(e.verdict, EventVerdict::WouldDeny);
    assert_eq!(bacnet_op(e.op).object(), Some(av(1)));
    let mut bad = who_is();
    bad[0] = 0x82;
    let out = u.send_to_plc(HMI_HOST, &bad);
    assert!(out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::Malformed)
    );
    assert!(
        u.send_to_plc(HMI_HOST, &read_property(2, av(1), PropertyId::PresentValue))
            .forward
    );
}

struct Counting;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only adds a thread-local counter, which
// does not allocate (const-initialised Cells).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts events without keeping them (the daemon's queue holds fixed-size records).
struct CountingSink(u32);

impl EventSink for CountingSink {
    fn offer(&mut self, _event: &Event) -> bool {
        self.0 += 1;
        true
    }
}

#[test]
fn judging_bacnet_allocates_nothing() {
    let (policy, _) = gk_policy::Policy::from_toml(&policy("enforce"), "t.toml").unwrap();
    let mut p = Pipeline::new(Arc::new(policy), CountingSink(0));
    let wpm = params(|e| {
        e.write_access(av(2), &[(PropertyId::PresentValue, &[0x44, 0, 0, 0, 0])]);
        e.write_access(av(12), &[(PropertyId::PresentValue, &[0x44, 0, 0, 0, 0])]);
    });
    let mut bad = who_is();
    bad[3] += 1;
    let frames: Vec<(Vec<u8>, Port)> = [
        (HMI_HOST, who_is(), true),
        (HMI_HOST, i_am(), false),
        (
            HMI_HOST,
            read_property(1, av(1), PropertyId::PresentValue),
            true,
        ),
        (
            HMI_HOST,
            write_property(2, av(1), PropertyId::PresentValue),
            true,
        ),
        (
            ENG_HOST,
            write_property(3, av(5), PropertyId::PresentValue),
            true,
        ),
        (
            ENG_HOST,
            write_property(4, av(50), PropertyId::PresentValue),
            true,
        ),
        (
            ENG_HOST,
            confirmed(5, ConfirmedService::WritePropertyMultiple, &wpm),
            true,
        ),
        (ENG_HOST, bad, true),
    ]
    .into_iter()
    .map(|((mac, host), payload, to_plc)| {
        if to_plc {
            let f = FrameBuilder::new(mac, PLC_MAC).udp(ip(host), PORT, ip(PLC), PORT, &payload);
            (f, Port::Plant)
        } else {
            let f = FrameBuilder::new(PLC_MAC, mac).udp(ip(PLC), PORT, ip(host), PORT, &payload);
            (f, Port::Asset)
        }
    })
    .collect();
    let mut forwarded = Vec::with_capacity(2 * frames.len());
    for round in 0..2u64 {
        WATCHING.with(|w| w.set(true));
        for (i, (frame, port)) in frames.iter().enumerate() {
            let now = Now {
                mono_ns: 1_000_000_000 + (round * 100 + i as u64) * 1_000_000,
                wall_ns: 1_700_000_000_000_000_000,
            };
            forwarded.push(p.process(frame, *port, now).forward);
        }
        WATCHING.with(|w| w.set(false));
    }
    assert_eq!(
        ALLOCATIONS.with(Cell::get),
        0,
        "allocations on the packet path"
    );
    let expected = [true, true, true, false, true, false, false, false];
    assert_eq!(&forwarded[..8], &expected);
    assert_eq!(&forwarded[8..], &expected);
}
