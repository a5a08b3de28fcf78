//! Byte fixtures: conversations captured from real peers (the `asyncua` 2.1.0 client
//! and server from PyPI, through a logging TCP relay on the loopback): with the policy
//! None whole (HEL, ACK, OPN, CreateSession, ActivateSession, Read, Write, Browse,
//! CloseSession, CLO), over Basic256Sha256 signed and encrypted in part; the encoding
//! examples of OPC 10000-6 5.2.2.9; and messages built with `emit` for what the
//! captures do not show (chunks, aborts, errors).

use super::*;
use std::vec::Vec;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// client
const HEL: &str = concat!(
    "48454c463d00000000000000ffffff7fffffff7f00000000000000001d0000006f70632e7463703a2f2f3132372e302e",
    "302e313a34383430312f676b2f",
);
/// server
const ACK: &str = "41434b461c00000000000000ffff0000ffff00000000400641060000";
/// client
const OPN_REQ: &str = concat!(
    "4f504e4684000000000000002f000000687474703a2f2f6f7063666f756e646174696f6e2e6f72672f55412f53656375",
    "72697479506f6c696379234e6f6e65ffffffffffffffff01000000010000000100be010000caa0506ecf81dd01010000",
    "0000000000ffffffffe80300000000000000000000000000010000000000000080ee3600",
);
/// server
const OPN_RESP: &str = concat!(
    "4f504e4687000000060000002f000000687474703a2f2f6f7063666f756e646174696f6e2e6f72672f55412f53656375",
    "72697479506f6c696379234e6f6e65ffffffffffffffff01000000010000000100c1014c14516ecf81dd010100000000",
    "000000000000000000000000000000060000000d000000e813516ecf81dd0180ee360000000000",
);
/// client
const CREATE_SESSION_REQ: &str = concat!(
    "4d53474631010000060000000d00000002000000020000000100cd010000c67b516ecf81dd010200000000000000ffff",
    "ffffa00f00000000002700000075726e3a6578616d706c652e6f72673a467265654f706355613a6f706375612d617379",
    "6e63696f1e00000075726e3a667265656f706375612e6769746875622e696f3a636c69656e7402180000005075726520",
    "507974686f6e204173796e6320436c69656e7401000000ffffffffffffffff00000000ffffffff1d0000006f70632e74",
    "63703a2f2f3132372e302e302e313a34383430312f676b2f210000005075726520507974686f6e204173796e6320436c",
    "69656e742053657373696f6e3120000000e7d8125a3e140aa14a3559c24831ab1c83bafaaa066c6e7cf0a38a1276cdb5",
    "01ffffffff0000000040774b4100000000",
);
/// server
const CREATE_SESSION_RESP: &str = concat!(
    "4d53474650020000060000000d00000002000000020000000100d0015ed9516ecf81dd01020000000000000000000000",
    "00000000000b0100e90300000000804f2241200000004650530729264ff937c482a7e108352a4e2bb538356844d9f6f4",
    "1c8b20b45ff100000000010000001d0000006f70632e7463703a2f2f3132372e302e302e313a34383430312f676b2f1b",
    "00000075726e3a667265656f706375613a707974686f6e3a7365727665722500000075726e3a667265656f706375612e",
    "6769746875622e696f3a707974686f6e3a7365727665720217000000467265654f7063556120507974686f6e20536572",
    "76657202000000ffffffffffffffff010000001d0000006f70632e7463703a2f2f3132372e302e302e313a3438343031",
    "2f676b2fffffffff010000002f000000687474703a2f2f6f7063666f756e646174696f6e2e6f72672f55412f53656375",
    "72697479506f6c696379234e6f6e650200000009000000616e6f6e796d6f757300000000ffffffffffffffff2f000000",
    "687474703a2f2f6f7063666f756e646174696f6e2e6f72672f55412f5365637572697479506f6c696379234e6f6e6508",
    "000000757365726e616d6501000000ffffffffffffffff2f000000687474703a2f2f6f7063666f756e646174696f6e2e",
    "6f72672f55412f5365637572697479506f6c696379234e6f6e6541000000687474703a2f2f6f7063666f756e64617469",
    "6f6e2e6f72672f55412d50726f66696c652f5472616e73706f72742f75617463702d756173632d756162696e61727900",
    "00000000000000000000000000000100",
);
/// client
const ACTIVATE_REQ: &str = concat!(
    "4d534746a0000000060000000d00000003000000030000000100d3010100e903086a536ecf81dd010300000000000000",
    "ffffffffa00f000000000031000000687474703a2f2f7777772e77332e6f72672f323030312f30342f786d6c64736967",
    "2d6d6f7265237273612d73686132353600000000000000000100000002000000656e01004101010d0000000900000061",
    "6e6f6e796d6f7573ffffffffffffffff",
);
/// server
const ACTIVATE_RESP: &str = concat!(
    "4d53474660000000060000000d00000003000000030000000100d60110ad536ecf81dd01030000000000000000000000",
    "000000002000000088aedf1496bccc50d5909358de4bda6b0cc6a89904562bedeec6199c6e5cd84d0000000000000000",
);
/// client
const READ_REQ: &str = concat!(
    "4d5347465d000000060000000d0000000400000004000000010077020100e9032e66546ecf81dd010400000000000000",
    "ffffffffa00f000000000000000000000000000000000001000000010202000d000000ffffffff0000ffffffff",
);
/// server
const READ_RESP: &str = concat!(
    "4d5347465a000000060000000d000000040000000400000001007a023eb5546ecf81dd01040000000000000000000000",
    "00000000010000000f0b000000000000294000000000b2ec4e6ecf81dd010ced4e6ecf81dd0100000000",
);
/// client
const WRITE_REQ: &str = concat!(
    "4d53474661000000060000000d00000005000000050000000100a1020100e903820c556ecf81dd010500000000000000",
    "ffffffffa00f000000000001000000010202000d000000ffffffff070b0000000000002a4000000000a20a556ecf81dd",
    "01",
);
/// server
const WRITE_RESP: &str = concat!(
    "4d53474640000000060000000d00000005000000050000000100a4025e3f556ecf81dd01050000000000000000000000",
    "00000000010000000000000000000000",
);
/// client
const BROWSE_REQ: &str = concat!(
    "4d53474662000000060000000d000000060000000600000001000f020100e903b461556ecf81dd010600000000000000",
    "ffffffffa00f000000000000000000000000000000000000000000000001000000005500000000002101000000003f00",
    "0000",
);
/// server
const BROWSE_RESP: &str = concat!(
    "4d53474601010000060000000d0000000600000006000000010012029e3a566ecf81dd01060000000000000000000000",
    "000000000100000000000000ffffffff040000000200002300000001020000ab7c00000000090000004c6f636174696f",
    "6e7302090000004c6f636174696f6e73010000000200003d0000000200002300000001020000cd080000000006000000",
    "536572766572020600000053657276657201000000020000d40700000200002300000001020000ae5b00000000070000",
    "00416c69617365730207000000416c696173657301000000020000a05b000000230101020100020003000000506c6302",
    "03000000506c6301000000003a00000000",
);
/// client
const CLOSE_SESSION_REQ: &str = concat!(
    "4d5347463c000000060000000d00000007000000070000000100d9010100e9039c91566ecf81dd010700000000000000",
    "ffffffffa00f000000000001",
);
/// server
const CLOSE_SESSION_RESP: &str = concat!(
    "4d53474634000000060000000d00000007000000070000000100dc016ea6566ecf81dd01070000000000000000000000",
    "00000000",
);
/// client
const CLO: &str = concat!(
    "434c4f463b000000060000000d00000008000000080000000100c4010100e9033ab7566ecf81dd010800000000000000",
    "ffffffffe8030000000000",
);

// The same client and server over Basic256Sha256 (client certificate made by asyncua's
// `setup_self_signed_certificate`), signed only, then signed and encrypted.
/// Basic256Sha256, Sign: the first 160 bytes of the client's OPN (1684 bytes).
const SIGN_OPN_HEAD: &str = concat!(
    "4f504e46940600000000000039000000687474703a2f2f6f7063666f756e646174696f6e2e6f72672f55412f53656375",
    "72697479506f6c6963792342617369633235365368613235362f0400003082042b30820313a00302010202140d3131c9",
    "bed2ff651241046e87565c4b0a1396bc300d06092a864886f70d01010b0500304a3120301e06035504030c1775726e3a",
    "676174656b65657065723a746573743a",
);
const SIGN_OPN_LEN: usize = 1684;
/// Its CreateSession request: the first 300 bytes (1392).
const SIGN_CREATE_SESSION_HEAD: &str = concat!(
    "4d53474670050000090000000d00000002000000020000000100cd010000d251bf2bd181dd010200000000000000ffff",
    "ffffa00f00000000001700000075726e3a676174656b65657065723a746573743a686d691e00000075726e3a66726565",
    "6f706375612e6769746875622e696f3a636c69656e7402180000005075726520507974686f6e204173796e6320436c69",
    "656e7401000000ffffffffffffffff00000000ffffffff1d0000006f70632e7463703a2f2f3132372e302e302e313a34",
    "383431312f676b2f210000005075726520507974686f6e204173796e6320436c69656e742053657373696f6e31200000",
    "009ef858a02224b4e492361b43bfa4d38759e10c6f2dd1df8fd6ab28947952a91b2f0400003082042b30820313a00302",
    "010202140d3131c9bed2ff65",
);
const SIGN_CREATE_SESSION_LEN: usize = 1392;
/// A Read request, signed (plain text, then a 32-byte HMAC-SHA256).
const SIGN_READ: &str = concat!(
    "4d5347467d000000090000000d0000000400000004000000010077020100ec03b268c32bd181dd010400000000000000",
    "ffffffffa00f0000000000000000000000000000000000010000000100cf080d000000ffffffff0000ffffffff4aac94",
    "c7f119f753bbdd5dd21c16a6f7c146305d6f82f67635fdec68689f4d13",
);
/// A Write request, signed.
const SIGN_WRITE: &str = concat!(
    "4d53474681000000090000000d00000009000000090000000100a1020100ec03803ac92bd181dd010900000000000000",
    "ffffffffa00f000000000001000000010202000d000000ffffffff070b0000000000004540000000000e39c92bd181dd",
    "01b3bc35a4e67432aa605aaa42f7b58144097042f733032d2099efb80a6ba7d95b",
);
/// A Call request, signed.
const SIGN_CALL: &str = concat!(
    "4d5347466b000000090000000d0000000b0000000b0000000100c8020100ec037a9dcb2bd181dd010b00000000000000",
    "ffffffffa00f000000000001000000010201000102030000000000c9ed2bab19bed9c4b10be7eb87359ea2e1a48d13a8",
    "0332fc454cd2a1ff032476",
);
/// The CLO, signed.
const SIGN_CLO: &str = concat!(
    "434c4f465b000000090000000d0000000d0000000d0000000100c4010100ec03c478ce2bd181dd010d00000000000000",
    "ffffffffe80300000000005232cdbf9d601588632b030a4315dd3a1d1108036fa141240eb13b2418a8cf71",
);
/// Basic256Sha256, SignAndEncrypt: the first 160 bytes of the client's OPN (1684).
const ENCRYPT_OPN_HEAD: &str = concat!(
    "4f504e46940600000000000039000000687474703a2f2f6f7063666f756e646174696f6e2e6f72672f55412f53656375",
    "72697479506f6c6963792342617369633235365368613235362f0400003082042b30820313a00302010202140d3131c9",
    "bed2ff651241046e87565c4b0a1396bc300d06092a864886f70d01010b0500304a3120301e06035504030c1775726e3a",
    "676174656b65657065723a746573743a",
);
const ENCRYPT_OPN_LEN: usize = 1684;
/// Its first MSG (CreateSession, encrypted): the first 300 bytes (1424).
const ENCRYPT_FIRST_HEAD: &str = concat!(
    "4d534746900500000a0000000d0000001ca445da1649b17b9c47d48e58f2e683b38d4258a73767855f40d409fef62508",
    "abc771e73910290bb642cdbba1c96cd7c5af9dff06af8278ab702e06681a9eda0d3abf8dd57685621f4571d2792c54bb",
    "683f1471a73b775495207dc7dc078db5d4c559d82fbe45b8731ee030a608927fe33e5d2098b6cbdc430a32bb246a5a6e",
    "817a6348c38291c77d77c7f449dad7babc4dff853e0667ae0cd2a6ede46013650695cd85a481a1667d25922a95941559",
    "feb77f9fa410b423578f4ed6bee8109b5e630b3ea87eb49234ce7d6e7356c37345f9d61332d2344287e63158d92508e1",
    "10f54c9326f0aa5b10919c5fd4ade004c5ecb1b6e9db2d161ad0b7f69102cc105ad5347f51da742f119b7b8b690f925f",
    "0a4598048b55f498d15db877",
);
const ENCRYPT_FIRST_LEN: usize = 1424;
/// The Write request, encrypted.
const ENCRYPT_WRITE: &str = concat!(
    "4d534746900000000a0000000d000000701c408ff870b85f52c049da069eafd1a2e9d5b7e732aef24d8c7af7e50079f3",
    "0623da0b21bf3675d4ba5a469b0fd3e7c24ce9c0137a8e4bd4eb9ed58e4594a473232b4a129ddd6f7c0d062de6712f08",
    "cb2a3af14b24b7ca6e1d3ee493be58c231821afbe706c526ffabc863658e66c4f0fcc81bbed4a34b3f5768bf9a040854",
);
/// The CLO, encrypted.
const ENCRYPT_CLO: &str = concat!(
    "434c4f46700000000a0000000d0000006157a3919ee3ee2375ab2a9cc570393d58d528fa72f41bc66933dcccfaddf2e5",
    "713411f661f676e69c8afe337b6dcbba2eb7456b6637eb78fbc14d108b461cf2867f271fa671b3c1f7062f478606939e",
    "bf20e5596eb3e8943c63599fc65fb47b",
);

const NONE_URI: &str = "http://opcfoundation.org/UA/SecurityPolicy#None";
const SHA256_URI: &str = "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256";

/// Both directions of one connection, each with its own session, as the stream runs
/// them.
#[derive(Default)]
struct Conn {
    client: Session,
    server: Session,
}

impl Conn {
    fn client(&mut self, bytes: &[u8]) -> Result<Op, &'static str> {
        self.client
            .next(bytes, bytes.len(), Dir::Request)
            .map(|m| m.op())
            .map_err(|e| e.what)
    }

    fn server(&mut self, bytes: &[u8]) -> Result<Op, &'static str> {
        self.server
            .next(bytes, bytes.len(), Dir::Response)
            .map(|m| m.op())
            .map_err(|e| e.what)
    }

    fn client_msg(&mut self, bytes: &[u8]) -> Message<'static> {
        let leaked: &'static [u8] = Vec::leak(bytes.to_vec());
        self.client
            .next(leaked, leaked.len(), Dir::Request)
            .unwrap()
    }

    /// HEL/ACK and an OPN exchange with `policy` (plain bodies for None).
    fn open(policy: &str) -> Conn {
        let mut c = Conn::default();
        c.client(&hello()).unwrap();
        c.server(&ack()).unwrap();
        c.client(&open_request(policy, 1)).unwrap();
        c.server(&open_response(policy)).unwrap();
        c
    }
}

fn hello() -> Vec<u8> {
    let mut out = [0u8; 256];
    let n = emit_hello(&mut out, &Buffers::TYPICAL, "opc.tcp://10.10.0.10:4840").unwrap();
    out[..n].to_vec()
}

fn ack() -> Vec<u8> {
    let mut out = [0u8; 64];
    let n = emit_acknowledge(&mut out, &Buffers::TYPICAL).unwrap();
    out[..n].to_vec()
}

/// An OPN request: plain for None, 256 bytes of "ciphertext" otherwise.
fn open_request(policy: &str, mode: u32) -> Vec<u8> {
    let cipher = [0x5au8; 256];
    let body = if policy == NONE_URI {
        OpenBody::Request {
            request_type: RequestType::Issue,
            mode: SecurityMode::from(mode),
            nonce: Some(&[]),
            lifetime: 3_600_000,
        }
    } else {
        OpenBody::Encrypted(&cipher)
    };
    let cert = [0x30u8; 40];
    let secured = policy != NONE_URI;
    let r = OpenRepr {
        channel: 0,
        policy_uri: policy,
        certificate: secured.then_some(&cert[..]),
        thumbprint: secured.then_some(&cert[..20]),
        sequence: 1,
        request_id: 1,
        body,
    };
    let mut out = [0u8; 1024];
    let n = emit_open(&mut out, &r).unwrap();
    out[..n].to_vec()
}

fn open_response(policy: &str) -> Vec<u8> {
    let cipher = [0xa5u8; 256];
    let body = if policy == NONE_URI {
        OpenBody::Response {
            channel: 6,
            token: 13,
            lifetime: 3_600_000,
            nonce: Some(&[]),
        }
    } else {
        OpenBody::Encrypted(&cipher)
    };
    let r = OpenRepr {
        channel: 6,
        policy_uri: policy,
        certificate: None,
        thumbprint: None,
        sequence: 1,
        request_id: 1,
        body,
    };
    let mut out = [0u8; 1024];
    let n = emit_open(&mut out, &r).unwrap();
    out[..n].to_vec()
}

fn chunk(message: MessageType, chunk: ChunkType, request_id: u32, body: Body<'_>) -> Vec<u8> {
    let mut out = std::vec![0u8; 70_000];
    let n = emit_chunk(
        &mut out,
        &ChunkRepr {
            message,
            chunk,
            channel: 6,
            token: 13,
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
        MessageType::Message,
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
        MessageType::Message,
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

fn encrypted(message: MessageType, len: usize) -> Vec<u8> {
    let cipher: Vec<u8> = (0..len).map(|i| (i * 151 + 7) as u8).collect();
    chunk(message, ChunkType::Final, 0, Body::Encrypted(&cipher))
}

fn service_of(op: &Op) -> Option<u32> {
    op.type_id().and_then(NodeId::ns0)
}

#[test]
fn framing_from_the_header() {
    assert_eq!(frame(b"HEL"), Framing::NeedMore(8));
    assert_eq!(frame(&hex(ACK)), Framing::Length(28));
    assert_eq!(frame(&hex(HEL)[..8]), Framing::Length(61));
    let bad = |b: &[u8]| match frame(b) {
        Framing::Invalid(e) => e.what,
        other => panic!("{other:?}"),
    };
    assert_eq!(bad(b"GET / HTTP/1.0\r\n"), "unknown message type");
    assert_eq!(
        bad(&[b'A', b'C', b'K', b'F', 27, 0, 0, 0]),
        "message size below its type's minimum"
    );
    assert_eq!(
        bad(&[b'M', b'S', b'G', b'F', 0, 0, 0, 2]),
        "message size above 16 MiB"
    );
    assert_eq!(
        frame(&[b'M', b'S', b'G', b'C', 0, 0, 0, 1]),
        Framing::Length(MAX_CHUNK)
    );
}

#[test]
fn a_captured_asyncua_conversation_reads_as_it_happened() {
    let mut c = Conn::default();
    let hel = hex(HEL);
    let m = parse(&hel, hel.len(), Dir::Request).unwrap();
    assert_eq!(m.endpoint_url(), Some("opc.tcp://127.0.0.1:48401/gk/"));
    assert_eq!(m.buffers().unwrap().receive_buffer, 0x7fff_ffff);
    assert!(!m.is_request());
    c.client(&hel).unwrap();
    let ack = c.server(&hex(ACK)).unwrap();
    assert_eq!(ack.message(), MessageType::Acknowledge);

    let opn = hex(OPN_REQ);
    let m = c.client_msg(&opn);
    assert!(m.is_request());
    assert_eq!(m.security_policy(), Some(SecurityPolicy::None));
    assert_eq!(m.security_policy_uri(), Some(NONE_URI));
    assert_eq!(m.security_mode(), Some(SecurityMode::None));
    assert_eq!(m.request_type(), Some(RequestType::Issue));
    assert_eq!(m.service(), Some(Service::OpenSecureChannel));
    assert_eq!((m.sequence_number(), m.request_id()), (Some(1), Some(1)));
    let op = c.server(&hex(OPN_RESP)).unwrap();
    assert!(op.is_response());
    assert_eq!(op.status(), Some(0));
    assert_eq!(
        c.client.security(),
        Some((SecurityPolicy::None, Some(SecurityMode::None)))
    );
    assert_eq!(
        c.server.security(),
        Some((SecurityPolicy::None, Some(SecurityMode::None)))
    );

    let exchanges = [
        (
            CREATE_SESSION_REQ,
            CREATE_SESSION_RESP,
            Service::CreateSession,
        ),
        (ACTIVATE_REQ, ACTIVATE_RESP, Service::ActivateSession),
        (READ_REQ, READ_RESP, Service::Read),
        (WRITE_REQ, WRITE_RESP, Service::Write),
        (BROWSE_REQ, BROWSE_RESP, Service::Browse),
        (CLOSE_SESSION_REQ, CLOSE_SESSION_RESP, Service::CloseSession),
    ];
    for (req, resp, service) in exchanges {
        let m = c.client_msg(&hex(req));
        assert!(m.is_request(), "{service}");
        assert_eq!(m.service(), Some(service));
        assert_eq!(m.secure_channel_id(), Some(6));
        assert!(!m.is_opaque());
        let op = c.server(&hex(resp)).unwrap();
        assert_eq!(service_of(&op), service.response_id(), "{service}");
        assert_eq!(op.status(), Some(0));
    }
    let m = c.client_msg(&hex(CLO));
    assert!(m.is_request());
    assert_eq!(m.service(), Some(Service::CloseSecureChannel));
    assert!(c.client.is_idle() && c.server.is_idle());
}

#[test]
fn op_display() {
    let mut c = Conn::default();
    c.client(&hex(HEL)).unwrap();
    c.client(&hex(OPN_REQ)).unwrap();
    let op = c.client(&hex(WRITE_REQ)).unwrap();
    assert_eq!(
        std::format!("{}", crate::Op::OpcUa(op)),
        "opcua message=msg channel=6 security_policy=none security_mode=none service=write"
    );
    let op = c.client(&hex(OPN_REQ)).unwrap();
    assert_eq!(
        std::format!("{}", crate::Op::OpcUa(op)),
        "opcua message=opn channel=0 security_policy=none security_mode=none request_type=issue service=open-secure-channel"
    );
    let mut s = Session::default();
    let resp = hex(READ_RESP);
    s.next(&hex(ACK), 28, Dir::Response).unwrap();
    s.next(&hex(OPN_RESP), hex(OPN_RESP).len(), Dir::Response)
        .unwrap();
    let op = s.next(&resp, resp.len(), Dir::Response).unwrap().op();
    assert_eq!(
        std::format!("{}", crate::Op::OpcUa(op)),
        "opcua message=msg channel=6 security_policy=none security_mode=none service=read response status=0x00000000"
    );
}

#[test]
fn connection_messages_are_exact() {
    let mut out = [0u8; 8192];
    // ERR with the code of Bad_TcpEndpointUrlInvalid (OPC 10000-6, 7.1.5).
    let n = emit_error(&mut out, 0x8083_0000, "no such endpoint").unwrap();
    let m = parse(&out[..n], n, Dir::Response).unwrap();
    assert_eq!(
        (m.status(), m.text()),
        (Some(0x8083_0000), Some("no such endpoint"))
    );
    let n = emit_reverse_hello(&mut out, "urn:plc", "opc.tcp://10.10.0.10:4840").unwrap();
    let m = parse(&out[..n], n, Dir::Request).unwrap();
    assert!(m.is_request(), "a server's ReverseHello is judged");
    assert_eq!(m.endpoint_url(), Some("opc.tcp://10.10.0.10:4840"));

    let what = |b: &[u8], dir| parse(b, b.len(), dir).map(|_| ()).unwrap_err().what;
    let mut hel = hex(HEL);
    hel.push(0);
    hel[4] += 1;
    assert_eq!(what(&hel, Dir::Request), "bytes after the HEL endpoint URL");
    let mut hel = hex(HEL);
    hel[3] = b'C';
    assert_eq!(
        what(&hel, Dir::Request),
        "chunk type of a message other than MSG is not F"
    );
    let mut hel = hex(HEL);
    hel[3] = b'X';
    assert_eq!(what(&hel, Dir::Request), "unknown chunk type");
    let mut hel = hex(HEL);
    hel[4] -= 1;
    assert_eq!(
        what(&hel, Dir::Request),
        "message size disagrees with its length"
    );
    let mut hel = hex(HEL);
    let last = hel.len() - 1;
    hel[last] = 0xff;
    assert_eq!(what(&hel, Dir::Request), "string is not UTF-8");
    let long = "x".repeat(4097);
    let n = emit_hello(&mut out, &Buffers::TYPICAL, &long).unwrap();
    assert_eq!(
        what(&out[..n], Dir::Request),
        "endpoint URL longer than 4096 bytes"
    );
    let mut ack = hex(ACK);
    ack.extend([0, 0, 0, 0]);
    ack[4] = 32;
    assert_eq!(what(&ack, Dir::Response), "ACK is not 28 bytes");
}

#[test]
fn the_order_of_a_connection_is_kept() {
    let mut c = Conn::default();
    assert_eq!(
        c.client(&hex(OPN_REQ)),
        Err("stream does not start with HEL")
    );
    let mut c = Conn::default();
    c.client(&hex(HEL)).unwrap();
    assert_eq!(c.client(&hex(HEL)), Err("second HEL"));
    assert_eq!(c.client(&hex(ACK)), Err("ACK from the client"));
    assert_eq!(
        c.client(&hex(READ_REQ)),
        Err("MSG before OpenSecureChannel")
    );
    assert_eq!(c.client(&hex(CLO)), Err("CLO before OpenSecureChannel"));
    assert_eq!(c.server(&hex(OPN_RESP)), Err("OPN before ACK"));
    let mut c = Conn::default();
    assert_eq!(
        c.server(&hex(HEL)).map(|o| o.is_response()),
        Ok(false),
        "reverse connect"
    );
    let mut c = Conn::default();
    c.server(&hex(ACK)).unwrap();
    assert_eq!(c.server(&hex(ACK)), Err("second ACK"));
    assert_eq!(c.server(&hex(CLO)), Err("CLO from the server"));
    let mut out = [0u8; 128];
    let n = emit_reverse_hello(&mut out, "urn:plc", "opc.tcp://plc").unwrap();
    let mut c = Conn::default();
    assert_eq!(c.server(&out[..n]), Err("RHE from the TCP responder"));
    // Reverse connect: the TCP initiator is the server; its answers are not requests.
    let mut c = Conn::default();
    assert!(c.client(&out[..n]).unwrap().is_response());
    assert_eq!(c.client(&out[..n]), Err("RHE after the first message"));
    c.client(&hex(ACK)).unwrap();
    let op = c.client(&hex(OPN_RESP)).unwrap();
    assert!(op.is_response());
}

#[test]
fn plain_open_secure_channel_is_checked_whole() {
    let mut opn = hex(OPN_REQ);
    let what = |b: &[u8], dir| parse(b, b.len(), dir).map(|_| ()).unwrap_err().what;
    opn.push(0);
    opn[4] += 1;
    assert_eq!(
        what(&opn, Dir::Request),
        "bytes after OpenSecureChannelRequest"
    );
    // The response's type id in a request.
    assert_eq!(
        what(&hex(OPN_RESP), Dir::Request),
        "OPN does not carry OpenSecureChannel"
    );
    // No policy URI (a null String).
    let mut out = [0u8; 512];
    let n = emit_open(
        &mut out,
        &OpenRepr {
            channel: 0,
            policy_uri: "",
            certificate: None,
            thumbprint: None,
            sequence: 1,
            request_id: 1,
            body: OpenBody::Encrypted(&[0; 64]),
        },
    )
    .unwrap();
    assert_eq!(
        what(&out[..n], Dir::Request),
        "OPN without a security policy URI"
    );
    let long = std::format!("{POLICY_URI_PREFIX}{}", "A".repeat(220));
    let n = emit_open(
        &mut out,
        &OpenRepr {
            channel: 0,
            policy_uri: &long,
            certificate: None,
            thumbprint: None,
            sequence: 1,
            request_id: 1,
            body: OpenBody::Encrypted(&[0; 64]),
        },
    )
    .unwrap();
    assert_eq!(
        what(&out[..n], Dir::Request),
        "security policy URI longer than 255 bytes"
    );
    // A ServiceFault in answer to an OPN.
    let n = emit_open(
        &mut out,
        &OpenRepr {
            channel: 0,
            policy_uri: NONE_URI,
            certificate: None,
            thumbprint: None,
            sequence: 1,
            request_id: 1,
            body: OpenBody::Fault {
                status: 0x8055_0000,
            },
        },
    )
    .unwrap();
    let m = parse(&out[..n], n, Dir::Response).unwrap();
    assert_eq!(m.status(), Some(0x8055_0000));
    // A requested mode of a plain OPN is whatever it says (the policy judges it).
    let opn = open_request(NONE_URI, 3);
    let m = parse(&opn, opn.len(), Dir::Request).unwrap();
    assert_eq!(m.security_mode(), Some(SecurityMode::SignAndEncrypt));
}

#[test]
fn services_in_any_numeric_encoding_are_the_same_service() {
    let mut c = Conn::open(NONE_URI);
    for encoding in [NodeIdEncoding::FourByte, NodeIdEncoding::Numeric] {
        let b = chunk(
            MessageType::Message,
            ChunkType::Final,
            3,
            Body::Request {
                type_id: Service::Write.into(),
                encoding,
                handle: 3,
                params: &[0; 8],
            },
        );
        let m = c.client_msg(&b);
        assert_eq!(m.service(), Some(Service::Write));
        assert!(m.is_request());
    }
    // A two-byte NodeId (below 256) names no service: data, judged by number.
    let b = request(Service::from(200), 4, &[]);
    let m = c.client_msg(&b);
    assert_eq!(m.type_id(), Some(NodeId::Numeric { ns: 0, id: 200 }));
    assert!(m.is_request() && m.service().is_none());
    // A response type from the client is not a request.
    let b = response(Service::Read, 5);
    assert!(!c.client_msg(&b).is_request());
    // The secure channel's own services do not travel in MSG.
    let b = request(Service::OpenSecureChannel, 6, &[]);
    assert_eq!(c.client(&b), Err("secure channel service in a MSG"));
    // Nor does a CLO carry anything else.
    let b = chunk(
        MessageType::Close,
        ChunkType::Final,
        7,
        Body::Request {
            type_id: Service::Write.into(),
            encoding: NodeIdEncoding::Shortest,
            handle: 7,
            params: &[],
        },
    );
    assert_eq!(
        c.client(&b),
        Err("CLO does not carry CloseSecureChannelRequest")
    );
    let mut bad = request(Service::Read, 8, &[]);
    bad[24] = 0x80; // ExpandedNodeId flag on the type id
    assert_eq!(c.client(&bad), Err("bad NodeId encoding"));
    let short = request(Service::Read, 9, &[]);
    let cut = &short[..short.len() - 2];
    let mut cut = cut.to_vec();
    cut[4] -= 2;
    assert_eq!(c.client(&cut), Err("request header truncated"));
}

#[test]
fn a_long_message_is_judged_on_its_first_bytes() {
    let mut c = Conn::open(NONE_URI);
    let big = request(Service::Write, 3, &[7u8; 60_000]);
    let leaked: &'static [u8] = Vec::leak(big.clone());
    let m = c
        .client
        .next(&leaked[..1024], big.len(), Dir::Request)
        .unwrap();
    assert_eq!(m.service(), Some(Service::Write));
    assert_eq!(m.total_len(), big.len());
    // Even a prefix that ends inside the request header.
    let m = parse(&big[..30], big.len(), Dir::Request).unwrap();
    assert_eq!(m.service(), Some(Service::Write));
}

#[test]
fn chunks_of_one_message_follow_each_other() {
    let mut c = Conn::open(NONE_URI);
    let first = chunk(
        MessageType::Message,
        ChunkType::Intermediate,
        3,
        Body::Request {
            type_id: Service::Write.into(),
            encoding: NodeIdEncoding::Shortest,
            handle: 3,
            params: &[1; 100],
        },
    );
    let m = c.client_msg(&first);
    assert!(m.is_request() && m.service() == Some(Service::Write));
    assert!(!c.client.is_idle());
    // A later chunk carries the body's continuation: not judged again.
    let middle = chunk(
        MessageType::Message,
        ChunkType::Intermediate,
        3,
        Body::Raw(&[2; 50]),
    );
    let m = c.client_msg(&middle);
    assert!(m.is_continuation() && !m.is_request());
    assert_eq!(m.service(), Some(Service::Write));
    // A chunk of another request before this one ends.
    let other = chunk(MessageType::Message, ChunkType::Final, 4, Body::Raw(&[]));
    assert_eq!(
        c.client(&other),
        Err("chunk of another message before the last one ended")
    );
    let last = chunk(
        MessageType::Message,
        ChunkType::Final,
        3,
        Body::Raw(&[3; 10]),
    );
    let op = c.client(&last).unwrap();
    assert!(op.is_continuation());
    assert!(c.client.is_idle());
    // The next chunk starts a message: read as one.
    assert_eq!(
        c.client(&request(Service::Read, 5, &[]))
            .map(|o| service_of(&o)),
        Ok(Some(631))
    );
    // An abort ends a chunked message.
    c.client(&first).unwrap();
    let abort = chunk(
        MessageType::Message,
        ChunkType::Abort,
        3,
        Body::Abort {
            code: 0x8008_0000,
            reason: "encoding limits",
        },
    );
    let op = c.client(&abort).unwrap();
    assert_eq!(
        (op.chunk(), op.status()),
        (ChunkType::Abort, Some(0x8008_0000))
    );
    assert!(c.client.is_idle());
}

#[test]
fn a_signed_channel_shows_its_services() {
    let mut c = Conn::open(SHA256_URI);
    let opn = open_request(SHA256_URI, 2);
    let m = c.client_msg(&opn);
    assert!(m.is_opaque() && m.is_request());
    assert_eq!(m.security_policy(), Some(SecurityPolicy::Basic256Sha256));
    assert_eq!(
        m.security_mode(),
        None,
        "the OPN of a secured channel is encrypted"
    );
    assert_eq!(
        c.client.security(),
        Some((SecurityPolicy::Basic256Sha256, None))
    );
    // Signed only: plain text, followed by a signature (32 bytes for this policy).
    let mut params = std::vec![0u8; 12];
    params.extend([0xee; 32]);
    let m = c.client_msg(&request(Service::CreateSession, 2, &params));
    assert_eq!(m.security_mode(), Some(SecurityMode::Sign));
    assert_eq!(m.service(), Some(Service::CreateSession));
    assert_eq!(
        c.client.security(),
        Some((SecurityPolicy::Basic256Sha256, Some(SecurityMode::Sign)))
    );
    let m = c.client_msg(&request(Service::Write, 3, &params));
    assert_eq!(m.service(), Some(Service::Write));
    // Once signed only, always plain: bytes that are not are malformed.
    assert_eq!(
        c.client(&encrypted(MessageType::Message, 64)),
        Err("bad NodeId encoding")
    );
    // A renewal keeps what the channel showed.
    c.client(&opn).unwrap();
    assert_eq!(
        c.client.security(),
        Some((SecurityPolicy::Basic256Sha256, Some(SecurityMode::Sign)))
    );
    // The server's answers show it on their side.
    let mut s = Session::default();
    let ack = ack();
    s.next(&ack, ack.len(), Dir::Response).unwrap();
    let resp = open_response(SHA256_URI);
    s.next(&resp, resp.len(), Dir::Response).unwrap();
    let r = response(Service::CreateSession, 2);
    let m = s.next(&r, r.len(), Dir::Response).unwrap();
    assert_eq!(m.security_mode(), Some(SecurityMode::Sign));
    assert!(!m.is_request());
}

#[test]
fn an_encrypted_channel_is_opaque_and_never_guessed() {
    let mut c = Conn::open(SHA256_URI);
    let b = encrypted(MessageType::Message, 256);
    let m = c.client_msg(&b);
    assert!(m.is_opaque() && m.is_request());
    assert_eq!(m.service(), None);
    assert_eq!(m.security_mode(), Some(SecurityMode::SignAndEncrypt));
    // Later chunks stay opaque even when they would read as plain text.
    let plain = request(Service::Read, 4, &[0; 4]);
    let mut aligned = plain.clone();
    aligned.resize(SYMMETRIC_HEADER_LEN + 16 * aligned.len().div_ceil(16), 0);
    let size = aligned.len() as u32;
    aligned[4..8].copy_from_slice(&size.to_le_bytes());
    let m = c.client_msg(&aligned);
    assert!(m.is_opaque() && m.service().is_none());
    // Not whole AES blocks: not what this policy sends.
    assert_eq!(
        c.client(&encrypted(MessageType::Message, 250)),
        Err("encrypted chunk is not a whole number of cipher blocks")
    );
    // CLO: known by its type even when opaque.
    let m = c.client_msg(&encrypted(MessageType::Close, 64));
    assert!(m.is_opaque() && m.is_request());
    assert_eq!(m.service(), Some(Service::CloseSecureChannel));
    // The first chunk of a channel that is neither plain nor whole blocks.
    let mut c = Conn::open(SHA256_URI);
    assert_eq!(
        c.client(&encrypted(MessageType::Message, 100)),
        Err("chunk is neither plain nor whole cipher blocks")
    );
    // From the server, opaque answers are not requests.
    let mut s = Session::default();
    let ack = ack();
    s.next(&ack, ack.len(), Dir::Response).unwrap();
    let resp = open_response(SHA256_URI);
    s.next(&resp, resp.len(), Dir::Response).unwrap();
    let b = encrypted(MessageType::Message, 128);
    let m = s.next(&b, b.len(), Dir::Response).unwrap();
    assert!(m.is_opaque() && !m.is_request());
}

#[test]
fn without_a_stream_the_body_decides() {
    let plain = request(Service::Browse, 3, &[]);
    let m = parse(&plain, plain.len(), Dir::Request).unwrap();
    assert_eq!(m.service(), Some(Service::Browse));
    assert_eq!((m.security_policy(), m.security_mode()), (None, None));
    let b = encrypted(MessageType::Message, 100);
    let m = parse(&b, b.len(), Dir::Request).unwrap();
    assert!(m.is_opaque() && m.is_request());
}

#[test]
fn nothing_panics_on_cut_or_flipped_bytes() {
    let all: Vec<Vec<u8>> = [
        HEL,
        ACK,
        OPN_REQ,
        OPN_RESP,
        CREATE_SESSION_REQ,
        CREATE_SESSION_RESP,
        ACTIVATE_REQ,
        BROWSE_RESP,
        CLO,
    ]
    .iter()
    .map(|h| hex(h))
    .collect();
    for b in &all {
        for cut in 0..b.len() {
            for dir in [Dir::Request, Dir::Response] {
                let _ = parse(&b[..cut], b.len(), dir);
                let _ = parse(&b[..cut], cut, dir);
            }
        }
        for i in 0..b.len() {
            let mut f = b.clone();
            f[i] ^= 0xff;
            for dir in [Dir::Request, Dir::Response] {
                if let Ok(m) = parse(&f, f.len(), dir) {
                    let _ = std::format!("{}", crate::Op::OpcUa(m.op()));
                }
            }
        }
    }
}

/// The captured secured conversations, client side: the mode shows at the first MSG.
#[test]
fn captured_secured_channels_show_their_mode_at_the_first_message() {
    let run = |s: &mut Session, head: &str, total: usize| {
        let b = hex(head);
        s.next(Vec::leak(b), total, Dir::Request).map(|m| m.op())
    };
    let mut s = Session::default();
    run(&mut s, HEL, hex(HEL).len()).unwrap();
    let op = run(&mut s, SIGN_OPN_HEAD, SIGN_OPN_LEN).unwrap();
    assert_eq!(op.policy(), Some(SecurityPolicy::Basic256Sha256));
    assert!(op.is_opaque() && op.mode().is_none());
    let op = run(&mut s, SIGN_CREATE_SESSION_HEAD, SIGN_CREATE_SESSION_LEN).unwrap();
    assert_eq!(op.mode(), Some(SecurityMode::Sign));
    assert_eq!(service_of(&op), Some(461));
    for (fixture, service) in [(SIGN_READ, 631), (SIGN_WRITE, 673), (SIGN_CALL, 712)] {
        let op = run(&mut s, fixture, hex(fixture).len()).unwrap();
        assert_eq!(service_of(&op), Some(service));
        assert!(!op.is_opaque());
    }
    let op = run(&mut s, SIGN_CLO, hex(SIGN_CLO).len()).unwrap();
    assert_eq!((op.message(), op.is_opaque()), (MessageType::Close, false));

    let mut s = Session::default();
    run(&mut s, HEL, hex(HEL).len()).unwrap();
    run(&mut s, ENCRYPT_OPN_HEAD, ENCRYPT_OPN_LEN).unwrap();
    let op = run(&mut s, ENCRYPT_FIRST_HEAD, ENCRYPT_FIRST_LEN).unwrap();
    assert_eq!(op.mode(), Some(SecurityMode::SignAndEncrypt));
    assert!(op.is_opaque() && op.type_id().is_none());
    let op = run(&mut s, ENCRYPT_WRITE, hex(ENCRYPT_WRITE).len()).unwrap();
    assert!(
        op.is_opaque() && op.type_id().is_none(),
        "a write nobody can see"
    );
    let op = run(&mut s, ENCRYPT_CLO, hex(ENCRYPT_CLO).len()).unwrap();
    assert_eq!((op.message(), op.is_opaque()), (MessageType::Close, true));
    // Without the stream's memory, the encrypted write is still not a service.
    let w = hex(ENCRYPT_WRITE);
    let m = parse(&w, w.len(), Dir::Request).unwrap();
    assert!(m.is_opaque() && m.service().is_none());
}
