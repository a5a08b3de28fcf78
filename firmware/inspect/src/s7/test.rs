//! Fixtures: TPKTs captured between the Snap7 1.4 client and server (python-snap7
//! 2.0.2, the library many HMIs and tools embed) on loopback, plus hand-built frames for
//! what its server refuses. Snap7 writes its PDU reference little-endian: the first
//! read is reference 0x0100 on the wire (256, as Wireshark shows it too).

use super::*;
use std::vec::Vec;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn req(s: &str) -> Result<Op, Malformed> {
    let b = hex(s);
    parse(&b, b.len(), Dir::Request).map(|m| m.op())
}

fn resp(s: &str) -> Result<Op, Malformed> {
    let b = hex(s);
    parse(&b, b.len(), Dir::Response).map(|m| m.op())
}

fn line(op: Op) -> std::string::String {
    std::format!("{}", crate::Op::S7(op))
}

/// Runs a session over TPKTs and returns (line, is_request) or the error per message.
fn session(dir: Dir, tpkts: &[Vec<u8>]) -> Vec<Result<(std::string::String, bool), &'static str>> {
    let mut s = Session::default();
    let mut out = Vec::new();
    for t in tpkts {
        if let Some(r) = s.message(t, t.len(), dir, &mut []) {
            out.push(match r {
                Ok(crate::Message::S7(m)) => Ok((line(m.op()), m.is_request())),
                Ok(_) => Err("other protocol"),
                Err(e) => Err(e.what),
            });
        }
    }
    out
}

const CR: &str = "0300001611e00000000100c0010ac1020100c2020102";
const CC: &str = "0300001611d00001000100c0010ac1020100c2020102";
const SETUP: &str = "0300001902f08032010000000000080000f0000001000101e0";
const SETUP_ACK: &str = "0300001b02f080320300000000000800000000f0000001000101e0";
const DB_READ: &str = "0300001f02f080320100000100000e00000401120a10020004000184000000";
const DB_READ_ACK: &str = "0300001d02f0803203000001000002000800000401ff04002000000000";
const DB_WRITE: &str = "0300002502f080320100000200000e00060501120a10020002000184000000000400100102";
const DB_WRITE_ACK: &str = "0300001602f0803203000002000002000100000501ff";
const MB_READ: &str = "0300001f02f080320100000400000e00000401120a10020001000083000018";
const MB_READ_ACK: &str = "0300001a02f0803203000004000002000500000401ff04000800";
const SZL: &str = "0300002102f080320700000500000800080001120411440100ff09000404240000";
const SZL_ACK: &str = "0300003d02f080320700000500000c0020000112081284010000000000ff09001c04240000001400015144ff0800000000000000002612011956280002";
const LIST_BLOCKS: &str = "0300001d02f0803207000007000008000400011204114301000a000000";
const BLOCK_INFO: &str =
    "0300002502f0803207000008000008000c0001120411430300ff0900083041303030303141";
const GET_CLOCK: &str = "0300001d02f0803207000009000008000400011204114701000a000000";
const SET_CLOCK: &str =
    "0300002702f080320700000a000008000e0001120411470200ff09000a00192612011956280003";
const PASSWORD: &str = "0300002502f080320700000b000008000c0001120411450100ff0900082630101720365543";
const START_UPLOAD: &str = "0300002302f080320100000d00001200001d00000000000000095f3041303030303141";
const UPLOAD_REFUSED: &str = "0300001302f080320200000d0000000000d241";
const DELETE: &str =
    "0300002b02f080320100000e00001a000028000000000000fd000a01003041303030303742055f44454c45";
const CONTROL_ACK: &str = "0300001402f080320300000e0000010000000028";
const COMPRESS: &str = "0300002102f080320100000f000010000028000000000000fd0000055f47415242";
const COPY_RAM_TO_ROM: &str =
    "0300002302f0803201000010000012000028000000000000fd00024550055f4d4f4455";
const PLC_STOP: &str = "0300002102f0803201000011000010000029000000000009505f50524f4752414d";
const HOT_START: &str =
    "0300002502f0803201000012000014000028000000000000fd000009505f50524f4752414d";
const COLD_START: &str =
    "0300002702f0803201000013000016000028000000000000fd0002432009505f50524f4752414d";

#[test]
fn framing_from_the_tpkt_header() {
    assert_eq!(frame(&[3, 0]), Framing::NeedMore(4));
    assert_eq!(frame(&[3, 0, 0, 0x16]), Framing::Length(22));
    assert!(matches!(frame(&[4, 0, 0, 0x16]), Framing::Invalid(_)));
    assert!(matches!(frame(&[3, 1, 0, 0x16]), Framing::Invalid(_)));
    assert!(matches!(frame(&[3, 0, 0, 6]), Framing::Invalid(_)));
    assert_eq!(frame(&[3, 0, 0xff, 0xff]), Framing::Length(65535));
    assert!(matches!(frame(b"GET /"), Framing::Invalid(_)));
}

#[test]
fn connection_request_and_confirm() {
    let op = req(CR).unwrap();
    assert_eq!(
        line(op),
        "s7 tpdu=connection-request calling_tsap=256 called_tsap=258 tpdu_size=1024"
    );
    let b = hex(CR);
    let m = parse(&b, b.len(), Dir::Request).unwrap();
    assert!(!m.is_request(), "link management is not judged");
    assert_eq!(m.tsap(), Tsap::Number(0x0102));
    assert!(resp(CC).is_ok());
    assert!(resp(CR).is_err(), "a CR from the responder");
    assert!(req(CC).is_err(), "a CC from the initiator");
    // Class 4, a bad TPDU size, a parameter past the header, user data after a CR.
    assert!(req("0300001611e00000000140c0010ac1020100c2020102").is_err());
    assert!(req("0300001611e00000000100c0010ec1020100c2020102").is_err());
    assert!(req("0300001611e00000000100c0010ac1020100c2030102").is_err());
    assert!(req("0300001711e00000000100c0010ac1020100c202010200").is_err());
    // A disconnect request (reason 0x80: normal).
    let mut out = [0u8; 16];
    let n = emit_disconnect(&mut out, 1, 2, 0x80).unwrap();
    let op = parse(&out[..n], n, Dir::Request).unwrap().op();
    assert_eq!(line(op), "s7 tpdu=disconnect-request");
}

#[test]
fn snap7_reads_and_writes() {
    assert_eq!(
        line(req(SETUP).unwrap()),
        "s7 rosctr=job function=setup-communication pdu_ref=0 pdu_size=480"
    );
    assert_eq!(
        line(resp(SETUP_ACK).unwrap()),
        "s7 rosctr=ack-data function=setup-communication pdu_ref=0 pdu_size=480 response"
    );
    assert_eq!(
        line(req(DB_READ).unwrap()),
        "s7 rosctr=job function=read-var pdu_ref=256 items=1 area=db db=1 address=0 transport=byte count=4"
    );
    assert!(resp(DB_READ_ACK).is_ok());
    let b = hex(DB_WRITE);
    let m = parse(&b, b.len(), Dir::Request).unwrap();
    assert!(m.is_request());
    assert_eq!(m.function(), Some(Function::WriteVar));
    let items: Vec<Item> = m.items().collect();
    assert_eq!(
        items,
        [Item::Any {
            area: Area::Db,
            db: 1,
            transport: TransportSize::Byte,
            count: 2,
            address: 0
        }]
    );
    assert!(resp(DB_WRITE_ACK).is_ok());
    assert_eq!(
        line(req(MB_READ).unwrap()),
        "s7 rosctr=job function=read-var pdu_ref=1024 items=1 area=flags address=3 transport=byte count=1"
    );
    assert!(resp(MB_READ_ACK).is_ok());
}

#[test]
fn snap7_userdata() {
    assert_eq!(
        line(req(SZL).unwrap()),
        "s7 rosctr=userdata type=request group=cpu-functions function=read-szl pdu_ref=1280 szl_id=1060 szl_index=0"
    );
    assert!(resp(SZL_ACK).is_ok());
    let b = hex(SZL_ACK);
    let m = parse(&b, b.len(), Dir::Response).unwrap();
    assert!(!m.is_request());
    assert_eq!(m.userdata().unwrap().kind, UserdataType::Response);
    for (s, group, function) in [
        (LIST_BLOCKS, "block-functions", "list-blocks"),
        (BLOCK_INFO, "block-functions", "get-block-info"),
        (GET_CLOCK, "time-functions", "read-clock"),
        (SET_CLOCK, "time-functions", "set-clock"),
        (PASSWORD, "security", "plc-password"),
    ] {
        let l = line(req(s).unwrap());
        assert!(
            l.contains(&std::format!("group={group} function={function}")),
            "{l}"
        );
    }
}

#[test]
fn snap7_block_and_control_functions() {
    assert_eq!(
        line(req(START_UPLOAD).unwrap()),
        "s7 rosctr=job function=start-upload pdu_ref=3328 block_type=db block=1"
    );
    assert_eq!(
        line(resp(UPLOAD_REFUSED).unwrap()),
        "s7 rosctr=ack pdu_ref=3328 error_class=210 error_code=65 response"
    );
    assert_eq!(
        line(req(DELETE).unwrap()),
        "s7 rosctr=job function=plc-control pdu_ref=3584 pi_service=delete block_type=db block=7"
    );
    assert!(resp(CONTROL_ACK).is_ok());
    for (s, service) in [
        (COMPRESS, PiService::Compress),
        (COPY_RAM_TO_ROM, PiService::CopyRamToRom),
        (HOT_START, PiService::Start),
        (COLD_START, PiService::Start),
        (PLC_STOP, PiService::Start),
    ] {
        let b = hex(s);
        let m = parse(&b, b.len(), Dir::Request).unwrap();
        assert_eq!(m.pi_service(), Some(service), "{s}");
    }
    let b = hex(PLC_STOP);
    let m = parse(&b, b.len(), Dir::Request).unwrap();
    assert_eq!(m.function(), Some(Function::PlcStop));
    assert_eq!(m.pi_service_name(), Some(&b"P_PROGRAM"[..]));
}

#[test]
fn emitted_requests_parse_back() {
    let mut out = [0u8; 512];
    let item = ItemRepr::db_bytes(7, 100, 3);
    let writes = [
        (item, &[1u8, 2, 3][..]),
        (ItemRepr::db_bytes(8, 0, 2), &[4, 5][..]),
    ];
    let cases: [(RequestRepr<'_>, &str); 6] = [
        (
            RequestRepr::WriteVar { items: &writes },
            "function=write-var pdu_ref=9 items=2 area=db db=7 address=100 transport=byte count=3",
        ),
        (
            RequestRepr::RequestDownload {
                block: BlockType::Fc,
                number: 12,
            },
            "function=request-download pdu_ref=9 block_type=fc block=12",
        ),
        (RequestRepr::Upload { id: 7 }, "function=upload pdu_ref=9"),
        (
            RequestRepr::EndUpload { id: 7 },
            "function=end-upload pdu_ref=9",
        ),
        (
            RequestRepr::PlcControl {
                args: b"\x01\x00\x30\x38\x30\x30\x30\x30\x31\x50",
                service: b"_INSE",
            },
            "function=plc-control pdu_ref=9 pi_service=insert block_type=ob block=1",
        ),
        (RequestRepr::PlcStop, "function=plc-stop pdu_ref=9"),
    ];
    for (request, expected) in cases {
        let n = JobRepr {
            pdu_ref: 9,
            request,
        }
        .emit(&mut out)
        .unwrap();
        assert_eq!(frame(&out[..n]), Framing::Length(n));
        let op = parse(&out[..n], n, Dir::Request).unwrap().op();
        assert!(line(op).contains(expected), "{} vs {expected}", line(op));
    }
}

#[test]
fn cyclic_subscriptions_expose_their_addresses() {
    // Reserved, 1 item, time base 1 s, interval 2, then an S7ANY item (12 bytes).
    let mut payload = std::vec![0, 1, 1, 2];
    payload.extend(hex("120a10020004000184000000"));
    let mut out = [0u8; 128];
    let n = JobRepr {
        pdu_ref: 3,
        request: RequestRepr::Userdata {
            group: Group::CyclicData,
            subfunction: 1,
            sequence: 0,
            payload: &payload,
        },
    }
    .emit(&mut out)
    .unwrap();
    let m = parse(&out[..n], n, Dir::Request).unwrap();
    assert_eq!(m.items().next().and_then(|i| i.db()), Some(1));
    assert!(line(m.op()).contains("function=cyclic-transfer"));
    // An item that does not fill its declared length is malformed.
    payload[1] = 2;
    let n = JobRepr {
        pdu_ref: 3,
        request: RequestRepr::Userdata {
            group: Group::CyclicData,
            subfunction: 1,
            sequence: 0,
            payload: &payload,
        },
    }
    .emit(&mut out)
    .unwrap();
    assert!(parse(&out[..n], n, Dir::Request).is_err());
}

#[test]
fn db_read_syntax_yields_each_area() {
    // Read-var, one item: 0x12, length 12, DB-read with two areas (4 bytes of DB 10 from
    // 20; 2 bytes of DB 11 from 0).
    let params = hex("0401120cb0020400 0a0014 02000b0000"
        .replace(' ', "")
        .as_str());
    let mut out = [0u8; 128];
    let n = PduRepr {
        rosctr: Rosctr::Job,
        pdu_ref: 1,
        error: (0, 0),
        params: &params,
        data: &[],
    }
    .emit_tpkt(&mut out)
    .unwrap();
    let m = parse(&out[..n], n, Dir::Request).unwrap();
    let items: Vec<Item> = m.items().collect();
    assert_eq!(
        items,
        [
            Item::DbRead {
                db: 10,
                start: 20,
                bytes: 4
            },
            Item::DbRead {
                db: 11,
                start: 0,
                bytes: 2
            }
        ]
    );
}

#[test]
fn malformed_pdus() {
    let cases: &[(&str, &str)] = &[
        // Lengths that disagree with the TPKT.
        (
            "0300001f02f080320100000100000f00000401120a10020004000184000000",
            "S7 lengths disagree with the TPKT length",
        ),
        // Protocol id other than 0x32/0x72.
        (
            "0300001f02f080330100000100000e00000401120a10020004000184000000",
            "not S7comm or S7comm-plus (protocol id)",
        ),
        // An S7ANY item of 9 bytes.
        (
            "0300001e02f080320100000100000d000004011209100200040001840000",
            "S7ANY address is not 10 bytes",
        ),
        // Two items announced, one sent.
        (
            "0300001f02f080320100000100000e00000402120a10020004000184000000",
            "address item truncated",
        ),
        // Not a variable specification.
        (
            "0300001f02f080320100000100000e00000401130a10020004000184000000",
            "address item is not a variable specification (0x12)",
        ),
        // Write data of 3 bytes for a 2-byte item.
        (
            "0300002602f080320100000200000e00070501120a1002000200018400000000040018010203",
            "write-var data length disagrees with its address item",
        ),
        // A job without parameters.
        (
            "0300001102f08032010000010000000000",
            "job without a function",
        ),
        // Setup communication of 6 parameter bytes.
        (
            "0300001702f08032010000000000060000f00000010001",
            "setup-communication parameters are not 8 bytes",
        ),
        // PI service name longer than the parameters.
        (
            "0300002102f0803201000011000010000029000000000019505f50524f4752414d",
            "PI service name length disagrees with the parameters",
        ),
        // Userdata head not 00 01 12.
        (
            "0300001d02f0803207000007000008000400011304114301000a000000",
            "userdata parameter head is not 00 01 12",
        ),
        // Userdata data length disagreeing with the header.
        (
            "0300002102f080320700000500000800080001120411440100ff09000504240000",
            "userdata data length disagrees with the header",
        ),
        // COTP data header of class 2 (length 3).
        ("0300000903f0800000", "COTP data header is not class 0"),
        // A DT carrying nothing.
        ("0300000702f080", "COTP data without user data"),
        // An expedited data TPDU (not in class 0).
        ("0300000902100000ff", "COTP TPDU type not used in class 0"),
    ];
    for (s, what) in cases {
        assert_eq!(req(s).map(|_| ()), Err(Malformed::new(P, what)), "{s}");
    }
    // An acknowledgement from the initiator, other than of the PLC's download jobs.
    assert_eq!(
        req(DB_WRITE_ACK).map(|_| ()),
        Err(Malformed::new(
            P,
            "acknowledgement from the initiator of a job it was not sent"
        ))
    );
}

#[test]
fn download_jobs_from_the_plc_belong_to_the_client_s_request() {
    // The PLC asks for the block of DB 7 (download-block), the client sends it.
    let params = hex("1b00000000000000095f3041303030303750");
    let mut out = [0u8; 128];
    let n = PduRepr {
        rosctr: Rosctr::Job,
        pdu_ref: 2,
        error: (0, 0),
        params: &params,
        data: &[],
    }
    .emit_tpkt(&mut out)
    .unwrap();
    let m = parse(&out[..n], n, Dir::Response).unwrap();
    assert!(!m.is_request(), "judged with the client's request-download");
    assert!(line(m.op()).contains("function=download-block"));
    let m = parse(&out[..n], n, Dir::Request).unwrap();
    assert!(m.is_request(), "from the client it is a request of its own");
    // The client's answer: 4 bytes of block, announced as such.
    let n = PduRepr {
        rosctr: Rosctr::AckData,
        pdu_ref: 2,
        error: (0, 0),
        params: &[0x1b, 0x00],
        data: &hex("000400fb01020304"),
    }
    .emit_tpkt(&mut out)
    .unwrap();
    let m = parse(&out[..n], n, Dir::Request).unwrap();
    assert!(!m.is_request());
    // A read-var job sent by the PLC is judged (with the roles swapped).
    let b = hex(DB_READ);
    assert!(parse(&b, b.len(), Dir::Response).unwrap().is_request());
}

#[test]
fn fragments_are_judged_on_the_first() {
    // A write-var PDU of 20 data bytes cut into three data TPDUs.
    let data = [7u8; 20];
    let items = [(ItemRepr::db_bytes(3, 0, 20), &data[..])];
    let mut pdu = [0u8; 128];
    let n = JobRepr {
        pdu_ref: 1,
        request: RequestRepr::WriteVar { items: &items },
    }
    .emit_pdu(&mut pdu)
    .unwrap();
    let pdu = &pdu[..n];
    let dt = |eot, part: &[u8]| {
        let mut out = [0u8; 128];
        let k = emit_data(&mut out, eot, part).unwrap();
        out[..k].to_vec()
    };
    let tpkts = [
        dt(false, &pdu[..30]),
        dt(false, &pdu[30..35]),
        dt(true, &pdu[35..]),
        hex(DB_READ),
    ];
    let seen = session(Dir::Request, &tpkts);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].as_ref().unwrap().0.contains("function=write-var"));
    assert!(seen[1].as_ref().unwrap().0.contains("function=read-var"));
    // A last fragment that ends early, and one that runs past the PDU.
    let short = [dt(false, &pdu[..30]), dt(true, &pdu[30..40]), hex(DB_READ)];
    let seen = session(Dir::Request, &short);
    assert_eq!(seen[1], Err("S7 PDU ends after its last COTP fragment"));
    assert!(seen[2].is_ok(), "the stream goes on");
    let mut long = pdu.to_vec();
    long.push(0);
    let seen = session(
        Dir::Request,
        &[dt(false, &long[..30]), dt(true, &long[30..])],
    );
    assert_eq!(seen[1], Err("COTP fragment runs past the S7 PDU"));
    // Parameters that do not fit in the first fragment.
    let seen = session(Dir::Request, &[dt(false, &pdu[..15]), dt(true, &pdu[15..])]);
    assert_eq!(seen, [Err("S7 parameters span COTP fragments")]);
    // Idle only between PDUs.
    let mut s = Session::default();
    let first = dt(false, &pdu[..30]);
    assert!(s
        .message(&first, first.len(), Dir::Request, &mut [])
        .is_some());
    assert!(!s.is_idle());
}

#[test]
fn the_session_stamps_requests_with_the_called_tsap() {
    let seen = session(Dir::Request, &[hex(CR), hex(SETUP), hex(DB_READ)]);
    assert!(!seen[0].as_ref().unwrap().1);
    let (setup, is_request) = seen[1].as_ref().unwrap();
    assert!(*is_request);
    assert!(setup.ends_with("tsap=258"), "{setup}");
    let mut s = Session::default();
    let cr = hex(CR);
    s.message(&cr, cr.len(), Dir::Request, &mut []);
    let b = hex(DB_READ);
    let Some(Ok(crate::Message::S7(m))) = s.message(&b, b.len(), Dir::Request, &mut []) else {
        panic!()
    };
    assert_eq!(m.tsap(), Tsap::Number(0x0102));
}

#[test]
fn s7comm_plus_is_recognised() {
    let mut out = [0u8; 256];
    let n = PlusRepr {
        version: PlusVersion::V3,
        opcode: PlusOpcode::Request,
        function: 0x054c,
        sequence: 4,
        body: &[0, 0, 0, 1, 0x34],
        last: true,
    }
    .emit(&mut out)
    .unwrap();
    let m = parse(&out[..n], n, Dir::Request).unwrap();
    assert!(m.is_request());
    assert_eq!(
        line(m.op()),
        "s7 s7comm_plus version=v3 opcode=request function=get-multi-variables"
    );
    assert!(!parse(&out[..n], n, Dir::Response).unwrap().is_request());
    // A message in two PDUs: the second has no opcode of its own.
    let first = PlusRepr {
        version: PlusVersion::V2,
        opcode: PlusOpcode::Request,
        function: 0x0542,
        sequence: 5,
        body: &[1, 2, 3],
        last: false,
    };
    let k = first.emit(&mut out).unwrap();
    let a = out[..k].to_vec();
    let mut b = std::vec![3, 0, 0, 0, 2, 0xf0, 0x80, 0x72, 2, 0, 2, 9, 9, 0x72, 2, 0, 0];
    b[3] = b.len() as u8;
    let seen = session(Dir::Request, &[a, b]);
    assert_eq!(seen.len(), 2);
    assert!(seen[0]
        .as_ref()
        .unwrap()
        .0
        .contains("function=set-multi-variables"));
    assert_eq!(seen[1].as_ref().unwrap().0, "s7 s7comm_plus version=v2");
    // A keep-alive, and a length that disagrees.
    assert!(req("0300000b02f08072ff0100").is_ok());
    assert!(req("0300000f02f0807202000509090972020000").is_err());
}

#[test]
fn a_prefix_is_judged_on_its_parameters() {
    // A write-var of 2000 bytes seen through a 1024-byte buffer.
    let data = [1u8; 2000];
    let items = [(ItemRepr::db_bytes(1, 0, 2000), &data[..])];
    let mut out = [0u8; 4096];
    let n = JobRepr {
        pdu_ref: 1,
        request: RequestRepr::WriteVar { items: &items },
    }
    .emit(&mut out)
    .unwrap();
    let m = parse(&out[..1024], n, Dir::Request).unwrap();
    assert!(line(m.op()).contains("count=2000"));
}

#[test]
fn op_is_small() {
    assert!(
        core::mem::size_of::<Op>() <= 40,
        "{}",
        core::mem::size_of::<Op>()
    );
}

#[test]
fn a_subscription_must_be_whole_in_its_first_fragment() {
    // The addresses of a cyclic subscription are in its data: cut after the
    // parameters, they could not be judged.
    let mut payload = std::vec![0, 1, 1, 2];
    payload.extend(hex("120a10020004000184000000"));
    let mut pdu = [0u8; 128];
    let n = JobRepr {
        pdu_ref: 3,
        request: RequestRepr::Userdata {
            group: Group::CyclicData,
            subfunction: 1,
            sequence: 0,
            payload: &payload,
        },
    }
    .emit_pdu(&mut pdu)
    .unwrap();
    let dt = |eot, part: &[u8]| {
        let mut out = [0u8; 128];
        let k = emit_data(&mut out, eot, part).unwrap();
        out[..k].to_vec()
    };
    let seen = session(
        Dir::Request,
        &[dt(false, &pdu[..20]), dt(true, &pdu[20..n])],
    );
    assert_eq!(
        seen,
        [Err("cyclic subscription not whole in its first fragment")]
    );
}
