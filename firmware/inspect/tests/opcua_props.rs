//! OPC UA properties: parse ∘ emit gives back what was emitted (HEL, ACK, ERR, OPN,
//! MSG requests and responses in every NodeId encoding); a conversation reads the same
//! however TCP cuts it; a long message is judged the same on its first bytes; bytes of
//! an encrypted channel never name a service; damaged conversations never panic.

use gk_inspect::opcua::{
    self, Body, Buffers, ChunkRepr, ChunkType, MessageType, NodeId, NodeIdEncoding, OpenBody,
    OpenRepr, RequestType, SecurityMode, Service,
};
use gk_inspect::stream::{StreamDir, MIN_BUFFER};
use gk_inspect::{Dir, Message, Op, Protocol};
use proptest::prelude::*;

const NONE: &str = "http://opcfoundation.org/UA/SecurityPolicy#None";
const SHA256: &str = "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256";

fn hello(url: &str) -> Vec<u8> {
    let mut out = vec![0u8; 8192];
    let n = opcua::emit_hello(&mut out, &Buffers::TYPICAL, url).unwrap();
    out.truncate(n);
    out
}

fn open(policy: &str, mode: SecurityMode) -> Vec<u8> {
    let cipher = [0x77u8; 256];
    let body = if policy == NONE {
        OpenBody::Request {
            request_type: RequestType::Issue,
            mode,
            nonce: None,
            lifetime: 60_000,
        }
    } else {
        OpenBody::Encrypted(&cipher)
    };
    let mut out = vec![0u8; 1024];
    let n = opcua::emit_open(
        &mut out,
        &OpenRepr {
            channel: 0,
            policy_uri: policy,
            certificate: None,
            thumbprint: None,
            sequence: 1,
            request_id: 1,
            body,
        },
    )
    .unwrap();
    out.truncate(n);
    out
}

fn chunk(chunk: ChunkType, request_id: u32, body: Body<'_>) -> Vec<u8> {
    let mut out = vec![0u8; 80_000];
    let n = opcua::emit_chunk(
        &mut out,
        &ChunkRepr {
            message: MessageType::Message,
            chunk,
            channel: 9,
            token: 2,
            sequence: request_id.wrapping_add(1),
            request_id,
            body,
        },
    )
    .unwrap();
    out.truncate(n);
    out
}

fn encoding() -> impl Strategy<Value = NodeIdEncoding> {
    prop_oneof![
        Just(NodeIdEncoding::Shortest),
        Just(NodeIdEncoding::FourByte),
        Just(NodeIdEncoding::Numeric),
    ]
}

/// A service request id: named (not the secure channel's own) or any number.
fn service_id() -> impl Strategy<Value = u32> {
    let named: Vec<u32> = Service::NAMES
        .iter()
        .map(|&(_, v)| v)
        .filter(|&v| !Service::from(v).is_secure_channel())
        .collect();
    prop_oneof![
        3 => proptest::sample::select(named),
        1 => any::<u32>().prop_filter("not a secure channel or response id", |&v| {
            Service::of_response(v).is_none()
                && v != opcua::SERVICE_FAULT
                && !Service::from(v).is_secure_channel()
        }),
    ]
}

/// Runs `messages` (client side) through one session, each whole.
fn session_ops(messages: &[Vec<u8>]) -> Vec<Result<Op, &'static str>> {
    let mut s = opcua::Session::default();
    messages
        .iter()
        .map(|m| match s.message(m, m.len(), Dir::Request, &mut []) {
            Some(Ok(msg)) => Ok(msg.op()),
            Some(Err(e)) => Err(e.what),
            None => Err("nothing"),
        })
        .collect()
}

/// Feeds `bytes` as one direction of a stream, cut at `cuts`.
fn stream_ops(bytes: &[u8], cuts: &[usize]) -> Vec<Result<Op, &'static str>> {
    let mut buf = vec![0u8; MIN_BUFFER];
    let mut s = StreamDir::default();
    let mut seen = Vec::new();
    let mut at = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    for p in points {
        if p < at {
            continue;
        }
        s.feed(
            Protocol::OpcUa,
            &mut buf,
            &bytes[at..p],
            Dir::Request,
            &mut |m| seen.push(m.map(|m| m.op()).map_err(|e| e.what)),
        );
        at = p;
    }
    seen
}

fn client_conversation(requests: &[(u32, NodeIdEncoding, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut v = vec![hello("opc.tcp://plc:4840"), open(NONE, SecurityMode::None)];
    for (i, (id, encoding, params)) in requests.iter().enumerate() {
        v.push(chunk(
            ChunkType::Final,
            i as u32 + 2,
            Body::Request {
                type_id: *id,
                encoding: *encoding,
                handle: i as u32,
                params,
            },
        ));
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hello_ack_and_error_round_trip(
        version in any::<u32>(), rx in any::<u32>(), tx in any::<u32>(),
        max_message in any::<u32>(), max_chunks in any::<u32>(),
        url in "[ -~]{0,300}", code in any::<u32>(), reason in "\\PC{0,100}",
    ) {
        let b = Buffers { protocol_version: version, receive_buffer: rx, send_buffer: tx, max_message, max_chunks };
        let mut out = vec![0u8; 8192];
        let n = opcua::emit_hello(&mut out, &b, &url).unwrap();
        let m = opcua::parse(&out[..n], n, Dir::Request).unwrap();
        prop_assert_eq!(m.buffers(), Some(b));
        prop_assert_eq!(m.endpoint_url(), Some(url.as_str()));
        let n = opcua::emit_acknowledge(&mut out, &b).unwrap();
        prop_assert_eq!(n, 28);
        prop_assert_eq!(opcua::parse(&out[..n], n, Dir::Response).unwrap().buffers(), Some(b));
        let n = opcua::emit_error(&mut out, code, &reason).unwrap();
        let m = opcua::parse(&out[..n], n, Dir::Response).unwrap();
        prop_assert_eq!((m.status(), m.text()), (Some(code), Some(reason.as_str())));
    }

    #[test]
    fn open_secure_channel_round_trips(
        renew in any::<bool>(), mode in 0u32..6, lifetime in any::<u32>(),
        nonce in proptest::collection::vec(any::<u8>(), 0..64), channel in any::<u32>(),
        sequence in any::<u32>(), request_id in any::<u32>(),
    ) {
        let request_type = if renew { RequestType::Renew } else { RequestType::Issue };
        let mut out = vec![0u8; 1024];
        let n = opcua::emit_open(&mut out, &OpenRepr {
            channel, policy_uri: NONE, certificate: None, thumbprint: None, sequence, request_id,
            body: OpenBody::Request { request_type, mode: SecurityMode::from(mode), nonce: Some(&nonce), lifetime },
        }).unwrap();
        let m = opcua::parse(&out[..n], n, Dir::Request).unwrap();
        prop_assert!(m.is_request());
        prop_assert_eq!(m.secure_channel_id(), Some(channel));
        prop_assert_eq!((m.sequence_number(), m.request_id()), (Some(sequence), Some(request_id)));
        prop_assert_eq!(m.request_type(), Some(request_type));
        prop_assert_eq!(m.security_mode(), Some(SecurityMode::from(mode)));
        prop_assert_eq!(m.service(), Some(Service::OpenSecureChannel));
    }

    #[test]
    fn requests_round_trip_in_every_encoding(
        id in service_id(), encoding in encoding(), handle in any::<u32>(),
        params in proptest::collection::vec(any::<u8>(), 0..200),
        request_id in 2u32..u32::MAX,
    ) {
        let mut s = opcua::Session::default();
        for m in [hello("opc.tcp://plc"), open(NONE, SecurityMode::None)] {
            s.message(&m, m.len(), Dir::Request, &mut []).unwrap().unwrap();
        }
        let b = chunk(ChunkType::Final, request_id, Body::Request { type_id: id, encoding, handle, params: &params });
        let Some(Ok(Message::OpcUa(m))) = s.message(&b, b.len(), Dir::Request, &mut []) else {
            return Err(TestCaseError::fail("not parsed"));
        };
        prop_assert!(m.is_request());
        prop_assert_eq!(m.type_id(), Some(NodeId::Numeric { ns: 0, id }));
        prop_assert_eq!(m.service(), Service::of_request(id));
        prop_assert_eq!(m.request_id(), Some(request_id));
        prop_assert_eq!(m.secure_channel_id(), Some(9));
        prop_assert!(!m.is_opaque());
    }

    #[test]
    fn responses_round_trip_and_are_not_requests(
        pick in proptest::sample::select(Service::NAMES.to_vec()), status in any::<u32>(),
    ) {
        let service = Service::from(pick.1);
        prop_assume!(!service.is_secure_channel());
        let mut s = opcua::Session::default();
        let mut out = vec![0u8; 64];
        let n = opcua::emit_acknowledge(&mut out, &Buffers::TYPICAL).unwrap();
        s.message(&out[..n], n, Dir::Response, &mut []).unwrap().unwrap();
        let mut out = vec![0u8; 1024];
        let n = opcua::emit_open(&mut out, &OpenRepr {
            channel: 9, policy_uri: NONE, certificate: None, thumbprint: None, sequence: 1, request_id: 1,
            body: OpenBody::Response { channel: 9, token: 2, lifetime: 1000, nonce: None },
        }).unwrap();
        s.message(&out[..n], n, Dir::Response, &mut []).unwrap().unwrap();
        let b = chunk(ChunkType::Final, 5, Body::Response {
            type_id: service.response_id().unwrap(), handle: 5, status, params: &[],
        });
        let Some(Ok(Message::OpcUa(m))) = s.message(&b, b.len(), Dir::Response, &mut []) else {
            return Err(TestCaseError::fail("not parsed"));
        };
        prop_assert!(!m.is_request());
        prop_assert_eq!(m.service(), Some(service));
        prop_assert_eq!(m.status(), Some(status));
    }

    #[test]
    fn a_conversation_reads_the_same_however_tcp_cuts_it(
        requests in proptest::collection::vec(
            (service_id(), encoding(), proptest::collection::vec(any::<u8>(), 0..1500)), 1..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let messages = client_conversation(&requests);
        let whole = session_ops(&messages);
        let bytes: Vec<u8> = messages.concat();
        let streamed = stream_ops(&bytes, &cuts);
        // Messages longer than the buffer are judged on their first MIN_BUFFER bytes:
        // what they are judged on is the same.
        prop_assert_eq!(whole.len(), streamed.len());
        for (w, s) in whole.iter().zip(&streamed) {
            prop_assert_eq!(w, s);
        }
    }

    #[test]
    fn encrypted_bodies_never_name_a_service(
        blocks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 16), 1..40),
        more in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 16..17), 1..8),
    ) {
        let mut s = opcua::Session::default();
        for m in [hello("opc.tcp://plc"), open(SHA256, SecurityMode::SignAndEncrypt)] {
            s.message(&m, m.len(), Dir::Request, &mut []).unwrap().unwrap();
        }
        // However the first chunk happens to read, no later ciphertext is parsed.
        let first: Vec<u8> = blocks.concat();
        let b = chunk(ChunkType::Final, 0, Body::Encrypted(&first));
        let _ = s.message(&b, b.len(), Dir::Request, &mut []);
        if s.security().and_then(|(_, m)| m) == Some(SecurityMode::SignAndEncrypt) {
            for cipher in &more {
                let b = chunk(ChunkType::Final, 0, Body::Encrypted(cipher));
                let Some(Ok(Message::OpcUa(m))) = s.message(&b, b.len(), Dir::Request, &mut []) else {
                    return Err(TestCaseError::fail("aligned ciphertext refused"));
                };
                prop_assert!(m.is_opaque());
                prop_assert_eq!(m.type_id(), None);
                prop_assert_eq!(m.service(), None);
            }
        }
    }

    #[test]
    fn damaged_conversations_never_panic(
        requests in proptest::collection::vec(
            (service_id(), encoding(), proptest::collection::vec(any::<u8>(), 0..300)), 1..4),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut bytes = client_conversation(&requests).concat();
        for (at, x) in flips {
            let i = at % bytes.len();
            bytes[i] ^= x;
        }
        for op in stream_ops(&bytes, &cuts).into_iter().flatten() {
            let _ = op.to_string();
        }
    }
}

#[test]
fn a_long_request_is_judged_on_its_first_bytes() {
    let params = vec![0x42u8; 50_000];
    let conv = client_conversation(&[(673, NodeIdEncoding::Shortest, params)]);
    let whole = session_ops(&conv);
    let Some(Ok(Op::OpcUa(last))) = whole.last() else {
        panic!("{whole:?}")
    };
    assert_eq!(last.type_id(), Some(NodeId::Numeric { ns: 0, id: 673 }));
    let streamed = stream_ops(&conv.concat(), &[100, 5000]);
    assert_eq!(streamed, whole);
}
