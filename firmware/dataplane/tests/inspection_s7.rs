//! S7comm and S7comm-plus inspection in the pipeline, on crafted TCP conversations to
//! port 102: the COTP connection, allowed reads and their answers, writes, addresses,
//! TSAPs and PI services outside the rule, an explicit deny, a whole download (with the
//! PLC's own jobs), presets, TCP segmentation and coalescing, COTP fragments, malformed
//! TPKTs and PDUs, S7comm-plus, and monitor mode.

use gk_dataplane::testing::{Harness, TcpConv};
use gk_dataplane::{Event, EventVerdict, Port, Reason};
use gk_inspect::s7::{
    self, emit_data, Area, BlockType, ConnectRepr, Group, ItemRepr, JobRepr, PduRepr, PlusOpcode,
    PlusRepr, PlusVersion, RequestRepr, Rosctr, TransportSize,
};
use gk_inspect::Op;

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
name = "inspect-s7"
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
proto = "s7"
action = "allow"
[rule.s7]
preset = "read-only"
areas = ["db", "flags"]
dbs = ["1-10"]
tsaps = ["0x0100-0x01ff"]
[[rule]]
name = "hmi-recipes"
from = "hmi"
to = "plc"
proto = "s7"
action = "allow"
log = true
[rule.s7]
functions = ["write-var"]
areas = ["db"]
dbs = [20]
[[rule]]
name = "eng-never-stops"
from = "eng"
to = "plc"
proto = "s7"
action = "deny"
[rule.s7]
functions = ["plc-stop"]
[[rule]]
name = "eng-programs"
from = "eng"
to = "plc"
proto = "s7"
action = "allow"
log = true
[rule.s7]
preset = "programming"
pi-services = ["insert", "delete"]
{extra}
"#
    )
}

fn open(h: &mut Harness, mac: [u8; 6], ip: &str, sport: u16) -> TcpConv {
    TcpConv::open(h, (mac, ip, sport), (PLC_MAC, PLC, 102))
}

fn job(pdu_ref: u16, request: RequestRepr<'_>) -> Vec<u8> {
    let mut out = [0u8; 4096];
    let n = JobRepr { pdu_ref, request }.emit(&mut out).unwrap();
    out[..n].to_vec()
}

fn raw(rosctr: Rosctr, pdu_ref: u16, params: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = [0u8; 4096];
    let n = PduRepr {
        rosctr,
        pdu_ref,
        error: (0, 0),
        params,
        data,
    }
    .emit_tpkt(&mut out)
    .unwrap();
    out[..n].to_vec()
}

fn connect(slot: u8) -> Vec<u8> {
    let mut out = [0u8; 64];
    let n = ConnectRepr {
        confirm: false,
        dst_ref: 0,
        src_ref: 1,
        tpdu_size: Some(10),
        calling: &[1, 0],
        called: &s7::tsap(1, 0, slot),
    }
    .emit(&mut out)
    .unwrap();
    out[..n].to_vec()
}

fn confirm() -> Vec<u8> {
    let mut out = [0u8; 64];
    let n = ConnectRepr {
        confirm: true,
        dst_ref: 1,
        src_ref: 1,
        tpdu_size: Some(10),
        calling: &[1, 0],
        called: &[1, 2],
    }
    .emit(&mut out)
    .unwrap();
    out[..n].to_vec()
}

fn setup() -> Vec<u8> {
    job(0, RequestRepr::Setup { pdu_size: 480 })
}

fn read(pdu_ref: u16, db: u16) -> Vec<u8> {
    job(
        pdu_ref,
        RequestRepr::ReadVar {
            items: &[ItemRepr::db_bytes(db, 0, 4)],
        },
    )
}

fn write(pdu_ref: u16, area: Area, db: u16, bytes: &[u8]) -> Vec<u8> {
    let item = ItemRepr {
        area,
        db,
        transport: TransportSize::Byte,
        count: bytes.len() as u16,
        start: 0,
        bit: 0,
    };
    job(
        pdu_ref,
        RequestRepr::WriteVar {
            items: &[(item, bytes)],
        },
    )
}

/// Opens the TCP conversation and the COTP connection, and negotiates.
fn connected(h: &mut Harness, mac: [u8; 6], ip: &str, sport: u16) -> TcpConv {
    let mut c = open(h, mac, ip, sport);
    assert!(c.client(h, &connect(2)).forward, "CR");
    assert!(c.server(h, &confirm()).forward, "CC");
    assert!(c.client(h, &setup()).forward, "setup");
    let ack = raw(Rosctr::AckData, 0, &[0xf0, 0, 0, 1, 0, 1, 0x01, 0xe0], &[]);
    assert!(c.server(h, &ack).forward, "setup ack");
    c
}

fn s7_op(e: &Event) -> s7::Op {
    match e.op {
        Some(Op::S7(op)) => op,
        other => panic!("expected an S7 operation, got {other:?}"),
    }
}

fn line(op: Option<Op>) -> String {
    op.map(|o| o.to_string()).unwrap_or_default()
}

#[test]
fn allowed_reads_and_their_answers_pass() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = connected(&mut h, HMI_MAC, HMI, 40000);
    let out = c.client(&mut h, &read(1, 5));
    assert!(out.forward);
    assert_eq!(out.reason, Reason::Flow);
    assert_eq!(
        line(out.op),
        "s7 rosctr=job function=read-var pdu_ref=1 items=1 area=db db=5 address=0 transport=byte count=4 tsap=258"
    );
    let answer = raw(
        Rosctr::AckData,
        1,
        &[0x04, 1],
        &[0xff, 4, 0, 32, 1, 2, 3, 4],
    );
    assert!(c.server(&mut h, &answer).forward, "the answer");
    // A read of the CPU state (SZL 0x0424) is in the preset too.
    let szl = job(
        2,
        RequestRepr::Userdata {
            group: Group::CpuFunctions,
            subfunction: 1,
            sequence: 0,
            payload: &[0x04, 0x24, 0, 0],
        },
    );
    assert!(c.client(&mut h, &szl).forward);
    assert!(h.events().is_empty(), "hmi-reads does not log");
    assert!(h.injected().is_empty());
}

#[test]
fn a_denied_write_is_dropped_reported_and_the_connection_reset_both_ways() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = connected(&mut h, HMI_MAC, HMI, 40001);
    let out = c.client(&mut h, &write(3, Area::Db, 5, &[1, 2]));
    assert!(!out.forward);
    // hmi-reads refuses the function; hmi-recipes gets further (its function) and
    // refuses the address: the reason is the address.
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::Deny, Reason::Address)
    );
    assert_eq!(h.rule_name(out.rule).as_deref(), Some("hmi-recipes"));
    let events = h.events();
    assert_eq!(events.len(), 1);
    let op = s7_op(&events[0]);
    assert_eq!(op.tsap, Some(0x0102));
    assert!(line(events[0].op).contains("function=write-var"));
    let injected = h.injected();
    assert_eq!(injected.len(), 2, "a reset each way");
    assert_eq!((injected[0].0, injected[1].0), (Port::Asset, Port::Plant));
    // The conversation is gone.
    let out = c.client(&mut h, &read(4, 1));
    assert_eq!((out.forward, out.reason), (false, Reason::TcpState));
}

#[test]
fn a_write_the_second_rule_takes_is_logged() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = connected(&mut h, HMI_MAC, HMI, 40002);
    assert!(c.client(&mut h, &write(3, Area::Db, 20, &[9])).forward);
    let events = h.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].verdict, events[0].reason),
        (EventVerdict::Allow, Reason::Rule)
    );
    assert_eq!(h.rule_name(events[0].rule).as_deref(), Some("hmi-recipes"));
    assert!(
        c.server(&mut h, &raw(Rosctr::AckData, 3, &[0x05, 1], &[0xff]))
            .forward
    );
}

#[test]
fn addresses_tsaps_functions_and_explicit_denies_give_their_reasons() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = connected(&mut h, HMI_MAC, HMI, 40010);
    assert_eq!(c.client(&mut h, &read(1, 11)).reason, Reason::Address);
    let mut c = connected(&mut h, HMI_MAC, HMI, 40011);
    let outputs = job(
        1,
        RequestRepr::ReadVar {
            items: &[ItemRepr {
                area: Area::Outputs,
                db: 0,
                transport: TransportSize::Byte,
                count: 1,
                start: 0,
                bit: 0,
            }],
        },
    );
    assert_eq!(c.client(&mut h, &outputs).reason, Reason::Address);
    let mut c = connected(&mut h, HMI_MAC, HMI, 40012);
    let stop = job(1, RequestRepr::PlcStop);
    assert_eq!(c.client(&mut h, &stop).reason, Reason::Function);
    // A connection to the TSAP of another CPU (connection type 0x10 is outside the
    // rule's 0x0100-0x01ff): the CR passes (link management), the setup is refused.
    let mut c = open(&mut h, HMI_MAC, HMI, 40013);
    let mut out = [0u8; 64];
    let n = ConnectRepr {
        confirm: false,
        dst_ref: 0,
        src_ref: 1,
        tpdu_size: None,
        calling: &[1, 0],
        called: &[0x10, 0x02],
    }
    .emit(&mut out)
    .unwrap();
    assert!(c.client(&mut h, &out[..n]).forward);
    assert!(c.server(&mut h, &confirm()).forward);
    let out = c.client(&mut h, &setup());
    // hmi-reads refuses the TSAP; hmi-recipes (no tsaps) the function: the reason is
    // the function, from the rule that got further.
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    // The engineering station may not stop the CPU: the deny rule says so.
    let mut c = connected(&mut h, ENG_MAC, ENG, 40014);
    let out = c.client(&mut h, &stop);
    assert_eq!((out.forward, out.reason), (false, Reason::DenyRule));
    assert_eq!(h.rule_name(out.rule).as_deref(), Some("eng-never-stops"));
    // Nor start it: plc-control is limited to insert and delete.
    let mut c = connected(&mut h, ENG_MAC, ENG, 40015);
    let start = job(
        1,
        RequestRepr::PlcControl {
            args: b"",
            service: b"P_PROGRAM",
        },
    );
    let out = c.client(&mut h, &start);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    assert!(line(out.op).contains("pi_service=start"));
}

#[test]
fn a_whole_download_passes_with_the_plc_s_own_jobs() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = connected(&mut h, ENG_MAC, ENG, 40020);
    let request = job(
        5,
        RequestRepr::RequestDownload {
            block: BlockType::Db,
            number: 7,
        },
    );
    assert!(c.client(&mut h, &request).forward);
    assert!(
        c.server(&mut h, &raw(Rosctr::AckData, 5, &[0x1a], &[]))
            .forward
    );
    // The PLC asks for the block, the client sends it in two parts, the PLC ends.
    let file = b"\x09_0A00007P";
    let mut pull = vec![0x1b, 0, 0, 0, 0, 0, 0, 0];
    pull.extend_from_slice(file);
    assert!(
        c.server(&mut h, &raw(Rosctr::Job, 0x100, &pull, &[]))
            .forward
    );
    let part = |more: u8| {
        raw(
            Rosctr::AckData,
            0x100,
            &[0x1b, more],
            &[0, 4, 0, 0xfb, 1, 2, 3, 4],
        )
    };
    assert!(c.client(&mut h, &part(1)).forward);
    assert!(
        c.server(&mut h, &raw(Rosctr::Job, 0x101, &pull, &[]))
            .forward
    );
    assert!(c.client(&mut h, &part(0)).forward);
    let mut ended = pull.clone();
    ended[0] = 0x1c;
    assert!(
        c.server(&mut h, &raw(Rosctr::Job, 0x102, &ended, &[]))
            .forward
    );
    assert!(
        c.client(&mut h, &raw(Rosctr::AckData, 0x102, &[0x1c], &[]))
            .forward
    );
    // And the block is activated.
    let insert = job(
        6,
        RequestRepr::PlcControl {
            args: b"\x01\x00\x30\x41\x30\x30\x30\x30\x37\x50",
            service: b"_INSE",
        },
    );
    assert!(c.client(&mut h, &insert).forward);
    let logged: Vec<String> = h.events().iter().map(|e| line(e.op)).collect();
    assert_eq!(logged.len(), 3, "{logged:?}");
    assert!(logged[0].contains("function=setup-communication"));
    assert!(logged[1].contains("function=request-download pdu_ref=5 block_type=db block=7"));
    assert!(logged[2].contains("pi_service=insert block_type=db block=7"));
    assert!(h.injected().is_empty());
}

#[test]
fn a_job_the_plc_sends_of_its_own_is_judged_with_the_roles_swapped() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = connected(&mut h, HMI_MAC, HMI, 40030);
    // The PLC reading the HMI: no rule lets the PLC initiate anything.
    let out = c.server(&mut h, &read(9, 1));
    assert!(!out.forward);
    assert_eq!(out.reason, Reason::NoRule);
}

#[test]
fn segmented_and_coalesced_messages() {
    let mut h = Harness::new(&policy("enforce", ""));
    let mut c = connected(&mut h, HMI_MAC, HMI, 40040);
    // A read split three ways passes whole.
    let r = read(1, 2);
    for part in [&r[..3], &r[3..12], &r[12..]] {
        assert!(c.client(&mut h, part).forward);
    }
    // A write split in two: the first part alone does nothing; the second completes it.
    let w = write(2, Area::Db, 3, &[1]);
    assert!(c.client(&mut h, &w[..20]).forward);
    let out = c.client(&mut h, &w[20..]);
    assert_eq!((out.forward, out.reason), (false, Reason::Address));
    // Setup, two reads and a stop in one segment: the stop is refused.
    let mut c = open(&mut h, HMI_MAC, HMI, 40041);
    let mut all = connect(2);
    assert!(c.client(&mut h, &all).forward);
    assert!(c.server(&mut h, &confirm()).forward);
    all = setup();
    all.extend(read(1, 1));
    all.extend(read(2, 4));
    assert!(c.client(&mut h, &all).forward);
    let mut mixed = read(3, 1);
    mixed.extend(job(4, RequestRepr::PlcStop));
    let out = c.client(&mut h, &mixed);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    assert!(line(out.op).contains("function=plc-stop"));
}

#[test]
fn cotp_fragments_are_judged_on_the_first() {
    let mut h = Harness::new(&policy("enforce", ""));
    let dt = |eot: bool, part: &[u8]| {
        let mut out = [0u8; 512];
        let n = emit_data(&mut out, eot, part).unwrap();
        out[..n].to_vec()
    };
    let pdu = |request: RequestRepr<'_>| {
        let mut out = [0u8; 512];
        let n = JobRepr {
            pdu_ref: 7,
            request,
        }
        .emit_pdu(&mut out)
        .unwrap();
        out[..n].to_vec()
    };
    let data = [5u8; 40];
    let item = ItemRepr::db_bytes(20, 0, 40);
    let allowed = pdu(RequestRepr::WriteVar {
        items: &[(item, &data)],
    });
    let mut c = connected(&mut h, HMI_MAC, HMI, 40050);
    assert!(c.client(&mut h, &dt(false, &allowed[..30])).forward);
    assert!(c.client(&mut h, &dt(false, &allowed[30..50])).forward);
    assert!(c.client(&mut h, &dt(true, &allowed[50..])).forward);
    assert!(c.client(&mut h, &read(8, 1)).forward, "the next PDU");
    let denied = pdu(RequestRepr::WriteVar {
        items: &[(ItemRepr::db_bytes(21, 0, 40), &data)],
    });
    let out = c.client(&mut h, &dt(false, &denied[..30]));
    assert_eq!((out.forward, out.reason), (false, Reason::Address));
    // A fragment that runs past its PDU is malformed.
    let mut c = connected(&mut h, HMI_MAC, HMI, 40051);
    assert!(c.client(&mut h, &dt(false, &allowed[..30])).forward);
    let mut tail = allowed[30..].to_vec();
    tail.push(0);
    let out = c.client(&mut h, &dt(true, &tail));
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    assert_eq!(out.detail, Some("COTP fragment runs past the S7 PDU"));
}

#[test]
fn malformed_messages_are_denied_with_the_parser_s_reason() {
    let mut h = Harness::new(&policy("enforce", ""));
    // Not a TPKT at all.
    let mut c = open(&mut h, HMI_MAC, HMI, 40060);
    let out = c.client(&mut h, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    assert_eq!(out.detail, Some("TPKT version is not 3"));
    assert_eq!(h.events()[0].detail, Some("TPKT version is not 3"));
    // An S7ANY address of the wrong length.
    let mut c = connected(&mut h, HMI_MAC, HMI, 40061);
    let bad = raw(
        Rosctr::Job,
        1,
        &[0x04, 1, 0x12, 9, 0x10, 2, 0, 4, 0, 1, 0x84, 0, 0],
        &[],
    );
    let out = c.client(&mut h, &bad);
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    assert_eq!(out.detail, Some("S7ANY address is not 10 bytes"));
    let e = h.events();
    assert_eq!(e[0].detail, Some("S7ANY address is not 10 bytes"));
    // A malformed answer from the PLC: two result bytes for one item.
    let mut c = connected(&mut h, HMI_MAC, HMI, 40062);
    assert!(c.client(&mut h, &read(1, 1)).forward);
    let out = c.server(&mut h, &raw(Rosctr::AckData, 1, &[0x05, 1], &[0xff, 0xff]));
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
}

#[test]
fn s7comm_plus_is_governed_as_a_whole() {
    let mut out = [0u8; 256];
    let n = PlusRepr {
        version: PlusVersion::V3,
        opcode: PlusOpcode::Request,
        function: 0x04ca,
        sequence: 1,
        body: &[0, 0, 0, 0],
        last: true,
    }
    .emit(&mut out)
    .unwrap();
    let plus = out[..n].to_vec();
    let extra = r#"
[[rule]]
name = "tia-portal"
from = "eng"
to = "plc"
proto = "s7"
action = "allow"
[rule.s7]
functions = ["s7comm-plus"]
"#;
    let mut h = Harness::new(&policy("enforce", extra));
    // The HMI's rules do not take it.
    let mut c = open(&mut h, HMI_MAC, HMI, 40070);
    assert!(c.client(&mut h, &connect(1)).forward);
    let out = c.client(&mut h, &plus);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    assert!(line(out.op).contains("s7comm_plus version=v3 opcode=request function=create-object"));
    // The engineering station's last rule does.
    let mut c = open(&mut h, ENG_MAC, ENG, 40071);
    assert!(c.client(&mut h, &connect(1)).forward);
    assert!(c.client(&mut h, &plus).forward);
}

#[test]
fn monitor_mode_forwards_and_reports_what_enforce_would_deny() {
    let mut h = Harness::new(&policy("monitor", ""));
    let mut c = connected(&mut h, HMI_MAC, HMI, 40080);
    let out = c.client(&mut h, &job(1, RequestRepr::PlcStop));
    assert!(out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::Function)
    );
    let e = h.events();
    assert_eq!(e[0].verdict, EventVerdict::WouldDeny);
    assert!(line(e[0].op).contains("function=plc-stop"));
    assert!(h.injected().is_empty(), "monitor mode builds nothing");
    // The conversation goes on and is still judged.
    assert!(c.client(&mut h, &read(2, 1)).forward);
    let out = c.client(&mut h, &read(3, 99));
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::Address)
    );
}
