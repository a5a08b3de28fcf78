//! OPC UA binary through the pipeline, on crafted TCP conversations: services judged on
//! plain bodies, the security policy judged on the OPN, signed and encrypted channels,
//! presets and deny rules, messages split over segments, several in one segment, longer
//! than the stream buffer, chunked, malformed, and monitor mode.

use gk_dataplane::testing::{Harness, TcpConv};
use gk_dataplane::{EventVerdict, Outcome, Reason};
use gk_inspect::opcua::{
    self, Body, Buffers, ChunkRepr, ChunkType, MessageType, NodeIdEncoding, OpenBody, OpenRepr,
    RequestType, SecurityMode, SecurityPolicy, Service,
};
use gk_inspect::Op;

const PLC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const HMI_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x21];
const ENG_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x31];
const SCADA_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x41];
const PLC: &str = "10.10.0.10";
const HMI: &str = "10.10.0.21";
const ENG: &str = "10.10.0.31";
const SCADA: &str = "10.10.0.41";

const NONE: &str = "http://opcfoundation.org/UA/SecurityPolicy#None";
const SHA256: &str = "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256";

fn policy(mode: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "opcua"
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
[hosts.scada]
ip = "{SCADA}"
[[rule]]
name = "hmi-reads"
from = "hmi"
to = "plc"
proto = "opcua"
action = "allow"
[rule.opcua]
preset = "read-only"
[[rule]]
name = "eng-writes-signed"
from = "eng"
to = "plc"
proto = "opcua"
action = "allow"
log = true
[rule.opcua]
preset = "read-write"
security-policies = ["basic256sha256", "aes256-sha256-rsapss"]
security-modes = ["sign", "sign-and-encrypt"]
[[rule]]
name = "scada-no-node-management"
from = "scada"
to = "plc"
proto = "opcua"
action = "deny"
[rule.opcua]
services = ["node-management"]
[[rule]]
name = "scada-anything-else"
from = "scada"
to = "plc"
proto = "opcua"
action = "alert"
"#
    )
}

fn open(h: &mut Harness, mac: [u8; 6], ip: &str, sport: u16) -> TcpConv {
    TcpConv::open(h, (mac, ip, sport), (PLC_MAC, PLC, 4840))
}

fn hello() -> Vec<u8> {
    let mut out = [0u8; 128];
    let n = opcua::emit_hello(&mut out, &Buffers::TYPICAL, "opc.tcp://10.10.0.10:4840").unwrap();
    out[..n].to_vec()
}

fn ack() -> Vec<u8> {
    let mut out = [0u8; 64];
    let n = opcua::emit_acknowledge(&mut out, &Buffers::TYPICAL).unwrap();
    out[..n].to_vec()
}

/// An OPN: plain with the policy None, 256 bytes of ciphertext otherwise (as a secured
/// channel's OPN always is).
fn opn(policy: &str, server: bool) -> Vec<u8> {
    let cipher = [0x3cu8; 256];
    let cert = [0x30u8; 64];
    let plain = policy == NONE;
    let body = match (plain, server) {
        (false, _) => OpenBody::Encrypted(&cipher),
        (true, false) => OpenBody::Request {
            request_type: RequestType::Issue,
            mode: SecurityMode::None,
            nonce: None,
            lifetime: 3_600_000,
        },
        (true, true) => OpenBody::Response {
            channel: 7,
            token: 1,
            lifetime: 3_600_000,
            nonce: None,
        },
    };
    let mut out = [0u8; 1024];
    let n = opcua::emit_open(
        &mut out,
        &OpenRepr {
            channel: if server { 7 } else { 0 },
            policy_uri: policy,
            certificate: (!plain).then_some(&cert[..]),
            thumbprint: (!plain).then_some(&cert[..20]),
            sequence: 1,
            request_id: 1,
            body,
        },
    )
    .unwrap();
    out[..n].to_vec()
}

fn chunk(chunk: ChunkType, request_id: u32, body: Body<'_>) -> Vec<u8> {
    let mut out = vec![0u8; 70_000];
    let n = opcua::emit_chunk(
        &mut out,
        &ChunkRepr {
            message: MessageType::Message,
            chunk,
            channel: 7,
            token: 1,
            sequence: request_id + 1,
            request_id,
            body,
        },
    )
    .unwrap();
    out.truncate(n);
    out
}

fn request(service: Service, request_id: u32, params: &[u8]) -> Vec<u8> {
    chunk(
        ChunkType::Final,
        request_id,
        Body::Request {
            type_id: service.into(),
            encoding: NodeIdEncoding::Shortest,
            handle: request_id,
            params,
        },
    )
}

fn response(service: Service, request_id: u32) -> Vec<u8> {
    chunk(
        ChunkType::Final,
        request_id,
        Body::Response {
            type_id: service.response_id().unwrap(),
            handle: request_id,
            status: 0,
            params: &[0, 0, 0, 0],
        },
    )
}

/// A chunk whose body is ciphertext (a whole number of AES blocks).
fn encrypted(blocks: usize) -> Vec<u8> {
    let cipher: Vec<u8> = (0..16 * blocks).map(|i| (i * 151 + 7) as u8).collect();
    chunk(ChunkType::Final, 0, Body::Encrypted(&cipher))
}

/// HEL/ACK and an OPN exchange with `policy`; every step must pass.
fn handshake(h: &mut Harness, c: &mut TcpConv, policy: &str) {
    assert!(c.client(h, &hello()).forward, "HEL");
    assert!(c.server(h, &ack()).forward, "ACK");
    let out = c.client(h, &opn(policy, false));
    assert!(out.forward, "OPN: {out:?}");
    assert!(c.server(h, &opn(policy, true)).forward, "OPN response");
}

fn opcua_op(out: &Outcome) -> opcua::Op {
    match out.op {
        Some(Op::OpcUa(op)) => op,
        ref other => panic!("expected an OPC UA operation, got {other:?}"),
    }
}

fn service(op: &opcua::Op) -> Option<u32> {
    op.type_id().and_then(opcua::NodeId::ns0)
}

#[test]
fn a_read_only_client_browses_and_reads() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40000);
    handshake(&mut h, &mut c, NONE);
    for (i, s) in [
        Service::GetEndpoints,
        Service::CreateSession,
        Service::ActivateSession,
        Service::Browse,
        Service::Read,
        Service::CreateSubscription,
        Service::Publish,
    ]
    .into_iter()
    .enumerate()
    {
        let id = 2 + i as u32;
        let out = c.client(&mut h, &request(s, id, &[0; 12]));
        assert!(out.forward, "{s}: {out:?}");
        assert_eq!(out.reason, Reason::Flow);
        let op = opcua_op(&out);
        assert_eq!(service(&op), Some(u32::from(s)));
        assert_eq!(op.policy(), Some(SecurityPolicy::None));
        assert!(c.server(&mut h, &response(s, id)).forward, "{s} response");
    }
    assert!(h.events().is_empty(), "hmi-reads does not log");
    assert!(h.injected().is_empty());
}

#[test]
fn a_write_under_read_only_is_dropped_reported_and_reset() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40001);
    handshake(&mut h, &mut c, NONE);
    let out = c.client(&mut h, &request(Service::Write, 2, &[0; 20]));
    assert!(!out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::Deny, Reason::Function)
    );
    let e = h.events();
    assert_eq!(e.len(), 1);
    assert_eq!(h.rule_name(e[0].rule).as_deref(), Some("hmi-reads"));
    let op = match e[0].op {
        Some(Op::OpcUa(op)) => op,
        other => panic!("{other:?}"),
    };
    assert_eq!(service(&op), Some(673));
    assert_eq!(
        Op::OpcUa(op).to_string(),
        "opcua message=msg channel=7 security_policy=none security_mode=none service=write"
    );
    assert_eq!(h.injected().len(), 2, "a reset each way");
    // The conversation is gone.
    let out = c.client(&mut h, &request(Service::Read, 3, &[]));
    assert_eq!((out.forward, out.reason), (false, Reason::TcpState));
}

#[test]
fn a_rule_that_wants_signed_channels_refuses_the_none_channel_at_its_open() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, ENG_MAC, ENG, 40010);
    assert!(c.client(&mut h, &hello()).forward);
    assert!(c.server(&mut h, &ack()).forward);
    let out = c.client(&mut h, &opn(NONE, false));
    assert!(!out.forward);
    assert_eq!(out.reason, Reason::Security);
    assert_eq!(h.rule_name(out.rule).as_deref(), Some("eng-writes-signed"));
    let op = opcua_op(&out);
    assert_eq!(op.message(), MessageType::Open);
    assert_eq!(op.policy(), Some(SecurityPolicy::None));
    assert_eq!(h.injected().len(), 2);
    // The same engineer over Basic256Sha256, signed only: services can be seen.
    let mut c = open(&mut h, ENG_MAC, ENG, 40011);
    handshake(&mut h, &mut c, SHA256);
    let mut signed = vec![0u8; 16];
    signed.extend([0xee; 32]); // the HMAC-SHA256 signature after the body
    let out = c.client(&mut h, &request(Service::CreateSession, 2, &signed));
    assert!(out.forward);
    let op = opcua_op(&out);
    assert_eq!(op.mode(), Some(SecurityMode::Sign));
    let out = c.client(&mut h, &request(Service::Write, 3, &signed));
    assert!(out.forward, "read-write takes writes");
    let e = h.events();
    let allowed: Vec<_> = e
        .iter()
        .filter(|e| e.verdict == EventVerdict::Allow)
        .collect();
    assert_eq!(
        allowed.len(),
        3,
        "log = true: the OPN, CreateSession and Write"
    );
    let out = c.client(&mut h, &request(Service::AddNodes, 4, &signed));
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
}

#[test]
fn an_encrypted_channel_is_opaque_to_a_rule_that_limits_services() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, ENG_MAC, ENG, 40020);
    handshake(&mut h, &mut c, SHA256);
    let out = c.client(&mut h, &encrypted(16));
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    let op = opcua_op(&out);
    assert!(op.is_opaque());
    assert_eq!(op.mode(), Some(SecurityMode::SignAndEncrypt));
    assert_eq!(op.type_id(), None, "never guessed");
    // A rule without services takes it (alert: allowed and reported).
    let mut c = open(&mut h, SCADA_MAC, SCADA, 40021);
    handshake(&mut h, &mut c, SHA256);
    h.events();
    let out = c.client(&mut h, &encrypted(16));
    assert!(out.forward);
    let e = h.events();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].verdict, EventVerdict::Alert);
    assert_eq!(
        h.rule_name(e[0].rule).as_deref(),
        Some("scada-anything-else")
    );
    // The server's encrypted answers are not judged.
    assert!(c.server(&mut h, &encrypted(8)).forward);
}

#[test]
fn a_deny_rule_takes_only_what_it_lists() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, SCADA_MAC, SCADA, 40030);
    handshake(&mut h, &mut c, NONE);
    // The OPN is not node management: scada-anything-else took it (alert).
    let e = h.events();
    assert!(e.iter().all(|e| e.verdict == EventVerdict::Alert));
    assert!(c.client(&mut h, &request(Service::Write, 2, &[])).forward);
    let out = c.client(&mut h, &request(Service::DeleteNodes, 3, &[0; 8]));
    assert_eq!((out.forward, out.reason), (false, Reason::DenyRule));
    assert_eq!(
        h.rule_name(out.rule).as_deref(),
        Some("scada-no-node-management")
    );
}

#[test]
fn messages_split_coalesced_longer_than_the_buffer_and_chunked() {
    let mut h = Harness::new(&policy("enforce"));
    // Split over three segments: judged when whole.
    let mut c = open(&mut h, HMI_MAC, HMI, 40040);
    handshake(&mut h, &mut c, NONE);
    let w = request(Service::Write, 2, &[1; 40]);
    assert!(c.client(&mut h, &w[..5]).forward);
    assert!(c.client(&mut h, &w[5..30]).forward);
    assert_eq!(c.client(&mut h, &w[30..]).reason, Reason::Function);
    // Two requests in one segment: each judged.
    let mut c = open(&mut h, HMI_MAC, HMI, 40041);
    handshake(&mut h, &mut c, NONE);
    let mut both = request(Service::Read, 2, &[]);
    both.extend(request(Service::Browse, 3, &[]));
    assert!(c.client(&mut h, &both).forward);
    let mut mixed = request(Service::Read, 4, &[]);
    mixed.extend(request(Service::Call, 5, &[]));
    let out = c.client(&mut h, &mixed);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    assert_eq!(service(&opcua_op(&out)), Some(712));
    // Longer than the 1024-byte buffer: judged on its first bytes.
    let mut c = open(&mut h, HMI_MAC, HMI, 40042);
    handshake(&mut h, &mut c, NONE);
    let big_read = request(Service::Read, 2, &[0; 3000]);
    for part in big_read.chunks(700) {
        assert!(c.client(&mut h, part).forward);
    }
    let big_write = request(Service::Write, 3, &[0; 3000]);
    assert!(
        c.client(&mut h, &big_write[..700]).forward,
        "not judged yet"
    );
    let out = c.client(&mut h, &big_write[700..1400]);
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    // Chunked: the first chunk carries the service; later ones are not judged again.
    let mut c = open(&mut h, HMI_MAC, HMI, 40043);
    handshake(&mut h, &mut c, NONE);
    let first = chunk(
        ChunkType::Intermediate,
        2,
        Body::Request {
            type_id: Service::Read.into(),
            encoding: NodeIdEncoding::Numeric,
            handle: 2,
            params: &[0; 100],
        },
    );
    assert!(c.client(&mut h, &first).forward);
    assert!(
        c.client(&mut h, &chunk(ChunkType::Final, 2, Body::Raw(&[0; 50])))
            .forward
    );
    let first = chunk(
        ChunkType::Intermediate,
        3,
        Body::Request {
            type_id: Service::Write.into(),
            encoding: NodeIdEncoding::FourByte,
            handle: 3,
            params: &[0; 100],
        },
    );
    assert_eq!(c.client(&mut h, &first).reason, Reason::Function);
}

#[test]
fn malformed_messages_are_denied_with_the_parser_s_reason() {
    let mut h = Harness::new(&policy("enforce"));
    let mut c = open(&mut h, HMI_MAC, HMI, 40050);
    let out = c.client(&mut h, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
    assert_eq!(h.events()[0].detail, Some("unknown message type"));
    // A MSG before any OPN.
    let mut c = open(&mut h, HMI_MAC, HMI, 40051);
    assert!(c.client(&mut h, &hello()).forward);
    let out = c.client(&mut h, &request(Service::Read, 2, &[]));
    assert_eq!(out.reason, Reason::Malformed);
    assert_eq!(h.events()[0].detail, Some("MSG before OpenSecureChannel"));
    // A request header that runs past the message.
    let mut c = open(&mut h, HMI_MAC, HMI, 40052);
    handshake(&mut h, &mut c, NONE);
    let mut cut = request(Service::Read, 2, &[]);
    cut.truncate(cut.len() - 2);
    let size = cut.len() as u32;
    cut[4..8].copy_from_slice(&size.to_le_bytes());
    let out = c.client(&mut h, &cut);
    assert_eq!(out.reason, Reason::Malformed);
    assert_eq!(h.events()[0].detail, Some("request header truncated"));
    // A malformed answer from the server.
    let mut c = open(&mut h, HMI_MAC, HMI, 40053);
    assert!(c.client(&mut h, &hello()).forward);
    let mut bad_ack = ack();
    bad_ack[3] = b'C';
    let out = c.server(&mut h, &bad_ack);
    assert_eq!((out.forward, out.reason), (false, Reason::Malformed));
}

#[test]
fn monitor_mode_forwards_and_reports_what_enforce_would_deny() {
    let mut h = Harness::new(&policy("monitor"));
    let mut c = open(&mut h, ENG_MAC, ENG, 40060);
    assert!(c.client(&mut h, &hello()).forward);
    assert!(c.server(&mut h, &ack()).forward);
    let out = c.client(&mut h, &opn(NONE, false));
    assert!(out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::Security)
    );
    assert!(c.server(&mut h, &opn(NONE, true)).forward);
    // The conversation goes on and is still judged, on the channel it opened.
    let out = c.client(&mut h, &request(Service::Read, 2, &[]));
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::Security)
    );
    let mut c = open(&mut h, HMI_MAC, HMI, 40061);
    handshake(&mut h, &mut c, NONE);
    h.events();
    let out = c.client(&mut h, &request(Service::Write, 2, &[]));
    assert!(out.forward);
    assert_eq!(
        (out.verdict, out.reason),
        (EventVerdict::WouldDeny, Reason::Function)
    );
    assert!(c.client(&mut h, &request(Service::Read, 3, &[])).forward);
    assert!(h.injected().is_empty(), "monitor mode builds nothing");
}

#[test]
fn the_example_policy_means_what_it_says() {
    let text = include_str!("../../../config/examples/opcua.toml");
    let mut h = Harness::new(text);
    let hmi = "10.10.0.21";
    // Discovery on a None channel: open, GetEndpoints, close; nothing else.
    let mut c = open(&mut h, HMI_MAC, hmi, 41000);
    handshake(&mut h, &mut c, NONE);
    let out = c.client(&mut h, &request(Service::GetEndpoints, 2, &[]));
    assert!(out.forward);
    let out = c.client(&mut h, &request(Service::CreateSession, 3, &[]));
    assert_eq!((out.forward, out.reason), (false, Reason::Security));
    assert_eq!(h.rule_name(out.rule).as_deref(), Some("hmi-operates"));
    // Signed: the HMI writes; it adds no nodes.
    let mut c = open(&mut h, HMI_MAC, hmi, 41001);
    handshake(&mut h, &mut c, SHA256);
    let sig = [0xee; 32];
    assert!(
        c.client(&mut h, &request(Service::CreateSession, 2, &sig))
            .forward
    );
    assert!(c.client(&mut h, &request(Service::Write, 3, &sig)).forward);
    let out = c.client(&mut h, &request(Service::AddNodes, 4, &sig));
    assert_eq!((out.forward, out.reason), (false, Reason::Function));
    // Encrypted: not for the HMI (the mode shows at the first message).
    let mut c = open(&mut h, HMI_MAC, hmi, 41002);
    handshake(&mut h, &mut c, SHA256);
    let out = c.client(&mut h, &encrypted(16));
    assert!(!out.forward);
    // The engineering laptop: encrypted, anything, reported.
    let mut c = open(&mut h, ENG_MAC, "10.10.0.31", 41003);
    handshake(&mut h, &mut c, SHA256);
    h.events();
    assert!(c.client(&mut h, &encrypted(16)).forward);
    assert_eq!(h.events()[0].verdict, EventVerdict::Alert);
}
