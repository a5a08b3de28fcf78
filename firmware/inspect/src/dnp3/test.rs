//! Byte fixtures and the transport function.

use super::*;
use crate::stream::{StreamDir, MIN_BUFFER};
use std::vec::Vec;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// Link frames carrying `fragment` from master 1 to outstation 10, `segment` bytes a
/// segment.
fn frames(fragment: &[u8], segment: usize, seq: u8) -> Vec<u8> {
    let mut out = [0u8; 4096];
    let n = LinkRepr::from_master(10, 1)
        .emit_fragment(seq, fragment, segment, &mut out)
        .unwrap();
    out[..n].to_vec()
}

/// Splits a byte stream into its link frames.
fn split(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut v = Vec::new();
    while !bytes.is_empty() {
        let Framing::Length(n) = frame(bytes) else {
            panic!("{bytes:02x?}")
        };
        v.push(&bytes[..n]);
        bytes = &bytes[n..];
    }
    v
}

/// What one call of `Session::message` gave, in short.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Nothing,
    Link(LinkFunction),
    App(Function, u16),
    Bad(&'static str),
}

fn feed(s: &mut Session, scratch: &mut [u8], frame: &[u8]) -> Got {
    match s.message(frame, frame.len(), Dir::Request, scratch) {
        None => Got::Nothing,
        Some(Ok(crate::Message::Dnp3(m))) => match m.function() {
            Some(f) => Got::App(f, m.headers()),
            None => Got::Link(m.link_header().function()),
        },
        Some(Ok(_)) => panic!("another protocol"),
        Some(Err(e)) => Got::Bad(e.what),
    }
}

const POLL: [u8; 14] = [0xc0, 0x01, 60, 2, 6, 60, 3, 6, 60, 4, 6, 60, 1, 6];

#[test]
fn crc_of_published_frames() {
    // Link frames from the DNP3 quick reference card (DNP Users Group): reset link
    // states from master 1024 to outstation 1, the outstation's ACK, and the master's.
    for f in [
        "05 64 05 c0 01 00 00 04 e9 21",
        "05 64 05 00 00 04 01 00 19 a6",
        "05 64 05 80 01 00 00 04 53 11",
    ] {
        let f = hex(f);
        assert_eq!(crc(&f[..8]).to_le_bytes(), [f[8], f[9]], "{f:02x?}");
        assert_eq!(frame(&f), Framing::Length(10));
    }
    // The same card's response: the first 16-byte block of its user data and its CRC.
    let head = hex("05 64 53 73 00 04 01 00 03 fc");
    assert_eq!(frame(&head), Framing::Length(10 + 78 + 2 * 5));
    let block = hex("c1 e3 81 96 00 02 01 28 01 00 00 00 01 02 01 28");
    assert_eq!(crc(&block).to_le_bytes(), [0x05, 0x24]);
}

#[test]
fn framing_from_the_link_header() {
    let reset = hex("05 64 05 c0 01 00 00 04 e9 21");
    assert_eq!(frame(&[]), Framing::NeedMore(LINK_HEADER));
    assert_eq!(frame(&reset[..9]), Framing::NeedMore(LINK_HEADER));
    assert!(matches!(frame(&[0x05, 0x65]), Framing::Invalid(_)));
    assert!(matches!(frame(b"GET"), Framing::Invalid(_)));
    let mut bad = reset.clone();
    bad[9] ^= 1;
    assert_eq!(
        frame(&bad),
        Framing::Invalid(Malformed::new(P, "bad link header CRC"))
    );
    // Every length: 10 + n + 2 per started 16-byte block.
    for len in 5..=255u8 {
        let n = usize::from(len) - 5;
        assert_eq!(frame_len(len), 10 + n + 2 * n.div_ceil(16));
    }
    assert_eq!(frame_len(255), MAX_LINK_FRAME);
    let mut short = reset.clone();
    short[2] = 4;
    let c = crc(&short[..8]).to_le_bytes();
    short[8..10].copy_from_slice(&c);
    assert!(matches!(frame(&short), Framing::Invalid(_)));
}

#[test]
fn link_layer_frames_are_messages() {
    let mut s = Session::default();
    let mut scratch = [0u8; 512];
    let reset = hex("05 64 05 c0 01 00 00 04 e9 21");
    assert_eq!(
        feed(&mut s, &mut scratch, &reset),
        Got::Link(LinkFunction::ResetLinkStates)
    );
    let m = s
        .message(&reset, 10, Dir::Request, &mut scratch)
        .unwrap()
        .unwrap();
    assert!(!m.is_request(), "link management is not a request");
    let crate::Message::Dnp3(m) = m else { panic!() };
    assert_eq!((m.destination(), m.source()), (1, 1024));
    assert!(m.link_header().from_master() && m.link_header().primary());
    // A link status request with user data is malformed, and so is user data under
    // an unknown link function (no receiver should take it, none goes unjudged).
    let mut out = [0u8; 64];
    let n = LinkRepr {
        control: 0xc9,
        destination: 1,
        source: 2,
    }
    .emit(&[1, 2, 3], &mut out)
    .unwrap();
    assert_eq!(
        feed(&mut s, &mut scratch, &out[..n]),
        Got::Bad("user data in a link frame that carries none")
    );
    let n = LinkRepr {
        control: 0xc5,
        destination: 1,
        source: 2,
    }
    .emit(&[1, 2, 3], &mut out)
    .unwrap();
    assert_eq!(
        feed(&mut s, &mut scratch, &out[..n]),
        Got::Bad("user data in a link frame that carries none")
    );
    // Without data an unknown link function is a link frame like the others.
    let n = LinkRepr {
        control: 0xc5,
        destination: 1,
        source: 2,
    }
    .emit(&[], &mut out)
    .unwrap();
    assert_eq!(
        feed(&mut s, &mut scratch, &out[..n]),
        Got::Link(LinkFunction::Unknown(0x45))
    );
    // User data frames need a transport header.
    let n = LinkRepr::from_master(1, 2).emit(&[], &mut out).unwrap();
    assert_eq!(
        feed(&mut s, &mut scratch, &out[..n]),
        Got::Bad("user data frame without user data")
    );
}

#[test]
fn a_one_segment_request() {
    let f = frames(&POLL, 249, 0);
    assert_eq!(f.len(), 10 + 15 + 2);
    let mut s = Session::default();
    let mut scratch = [0u8; 512];
    assert_eq!(feed(&mut s, &mut scratch, &f), Got::App(Function::Read, 4));
    assert!(s.is_idle());
    let crate::Message::Dnp3(m) = s
        .message(&f, f.len(), Dir::Request, &mut scratch)
        .unwrap()
        .unwrap()
    else {
        panic!()
    };
    assert!(m.is_request());
    assert_eq!(m.fragment(), Some(&POLL[..]));
}

#[test]
fn bad_data_block_crcs_are_malformed_and_change_nothing() {
    let f = frames(&POLL, 249, 0);
    let mut bad = f.clone();
    bad[12] ^= 0x10;
    let mut s = Session::default();
    let mut scratch = [0u8; 512];
    assert_eq!(
        feed(&mut s, &mut scratch, &bad),
        Got::Bad("bad data block CRC")
    );
    assert_eq!(s, Session::default());
    assert_eq!(feed(&mut s, &mut scratch, &f), Got::App(Function::Read, 4));
    // A frame whose length disagrees with what arrived.
    assert_eq!(
        s.message(&f[..f.len() - 1], f.len(), Dir::Request, &mut scratch)
            .unwrap()
            .unwrap_err()
            .what,
        "truncated link frame"
    );
}

/// A write of 40 octet strings of 8 bytes (g110v8, indices 0-39): 2 + 5 + 320 bytes.
fn big_write() -> Vec<u8> {
    let mut f = std::vec![0xc0, 0x02, 110, 8, 0x00, 0, 39];
    f.extend((0..320).map(|i| i as u8));
    f
}

#[test]
fn segments_are_reassembled_in_order() {
    let w = big_write();
    let bytes = frames(&w, 100, 62);
    let parts = split(&bytes);
    assert_eq!(parts.len(), 4);
    let mut s = Session::default();
    let mut scratch = [0u8; 512];
    for p in &parts[..3] {
        assert_eq!(feed(&mut s, &mut scratch, p), Got::Nothing);
        assert!(!s.is_idle());
    }
    assert_eq!(
        feed(&mut s, &mut scratch, parts[3]),
        Got::App(Function::Write, 1)
    );
    assert!(s.is_idle());
    // The sequence wrapped from 63 to 0 on the way.
    assert_eq!(parts[2][LINK_HEADER] & 0x3f, 0);
}

#[test]
fn transport_faults() {
    let w = big_write();
    let bytes = frames(&w, 100, 5);
    let p = split(&bytes);
    let mut scratch = [0u8; 512];

    // A middle segment with nothing begun, and the rest of its fragment passed over.
    let mut s = Session::default();
    assert_eq!(
        feed(&mut s, &mut scratch, p[1]),
        Got::Bad("transport segment without a first segment")
    );
    assert_eq!(feed(&mut s, &mut scratch, p[2]), Got::Nothing);
    assert_eq!(feed(&mut s, &mut scratch, p[3]), Got::Nothing);
    assert!(s.is_idle());
    assert_eq!(feed(&mut s, &mut scratch, p[0]), Got::Nothing, "a new FIR");

    // Out of sequence: a segment skipped.
    let mut s = Session::default();
    feed(&mut s, &mut scratch, p[0]);
    assert_eq!(
        feed(&mut s, &mut scratch, p[2]),
        Got::Bad("transport segment out of sequence")
    );
    // ... or repeated.
    let mut s = Session::default();
    feed(&mut s, &mut scratch, p[0]);
    feed(&mut s, &mut scratch, p[1]);
    assert_eq!(
        feed(&mut s, &mut scratch, p[1]),
        Got::Bad("transport segment out of sequence")
    );

    // A FIR in the middle of a fragment: IEEE 1815 restarts, a sloppy receiver might
    // append; either way the gatekeeper would judge what the outstation does not see.
    let mut s = Session::default();
    feed(&mut s, &mut scratch, p[0]);
    feed(&mut s, &mut scratch, p[1]);
    assert_eq!(
        feed(&mut s, &mut scratch, p[0]),
        Got::Bad("transport segment FIR inside a fragment")
    );
    // The rest of the broken fragment is passed over; the next fragment is judged.
    assert_eq!(feed(&mut s, &mut scratch, p[1]), Got::Nothing);
    assert_eq!(feed(&mut s, &mut scratch, p[2]), Got::Nothing);
    assert_eq!(feed(&mut s, &mut scratch, p[3]), Got::Nothing);
    let poll = frames(&POLL, 249, 0);
    assert_eq!(
        feed(&mut s, &mut scratch, &poll),
        Got::App(Function::Read, 4)
    );

    // Another link's segment in the middle of a fragment.
    let other = {
        let mut out = [0u8; 1024];
        let n = LinkRepr::from_master(11, 1)
            .emit_fragment(5, &w, 100, &mut out)
            .unwrap();
        out[..n].to_vec()
    };
    let q = split(&other);
    let mut s = Session::default();
    feed(&mut s, &mut scratch, p[0]);
    assert_eq!(
        feed(&mut s, &mut scratch, q[1]),
        Got::Bad("transport segment from another link")
    );

    // A fragment too long for the buffer: said at the segment that overflows, and the
    // rest of the fragment is passed over.
    let mut s = Session::default();
    let mut small = [0u8; 250];
    assert_eq!(feed(&mut s, &mut small, p[0]), Got::Nothing);
    assert_eq!(feed(&mut s, &mut small, p[1]), Got::Nothing);
    assert_eq!(
        feed(&mut s, &mut small, p[2]),
        Got::Bad("application fragment longer than the reassembly buffer")
    );
    assert_eq!(feed(&mut s, &mut small, p[3]), Got::Nothing);
    assert!(s.is_idle());
}

#[test]
fn a_malformed_fragment_is_reported_at_its_last_segment() {
    let bytes = frames(&[0xc0, 0x01, 60], 1, 0);
    let p = split(&bytes);
    let mut s = Session::default();
    let mut scratch = [0u8; 64];
    assert_eq!(feed(&mut s, &mut scratch, p[0]), Got::Nothing);
    assert_eq!(feed(&mut s, &mut scratch, p[1]), Got::Nothing);
    assert_eq!(
        feed(&mut s, &mut scratch, p[2]),
        Got::Bad("object header truncated")
    );
    assert!(s.is_idle());
}

/// Feeds a byte stream in chunks through a real stream; (function, headers) or errors.
fn through_stream(chunks: &[&[u8]]) -> Vec<Result<(Option<u8>, u16), &'static str>> {
    let mut buf = [0u8; MIN_BUFFER];
    let mut st = StreamDir::default();
    let mut seen = Vec::new();
    for c in chunks {
        st.feed(Protocol::Dnp3, &mut buf, c, Dir::Request, &mut |m| {
            seen.push(match m {
                Ok(crate::Message::Dnp3(m)) => Ok((m.function().map(u8::from), m.headers())),
                Ok(_) => Err("another protocol"),
                Err(e) => Err(e.what),
            })
        });
    }
    seen
}

#[test]
fn the_stream_frames_and_reassembles_at_every_split() {
    let mut all = hex("05 64 05 c0 01 00 00 04 e9 21");
    all.extend(frames(&big_write(), 60, 0));
    all.extend(frames(&POLL, 249, 7));
    let want = [Ok((None, 0)), Ok((Some(2), 1)), Ok((Some(1), 4))];
    assert_eq!(through_stream(&[&all]), want);
    for i in (0..=all.len()).step_by(3) {
        for j in (i..=all.len()).step_by(11) {
            let got = through_stream(&[&all[..i], &all[i..j], &all[j..]]);
            assert_eq!(got, want, "split at {i} and {j}");
        }
    }
    let bytes: Vec<&[u8]> = all.chunks(1).collect();
    assert_eq!(through_stream(&bytes), want);
    // Garbage loses the framing once.
    let got = through_stream(&[b"\x05\x64\x05\xc0\x01\x00\x00\x04\x00\x00", &all]);
    assert_eq!(got, [Err("bad link header CRC")]);
}

#[test]
fn op_fields() {
    // Direct operate of CROB index 3 on outstation 10 from master 1.
    let f = [
        0xc3, 0x05, 12, 1, 0x28, 1, 0, 3, 0, 0x03, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let link = Link {
        control: 0xc4,
        destination: 10,
        source: 1,
    };
    let m = Message::application(link, Dir::Request, &f).unwrap();
    assert_eq!(
        std::format!("{}", crate::Op::Dnp3(m.op())),
        "dnp3 function=direct-operate destination=10 source=1 group=12 variation=1 index=3 count=1 headers=1"
    );
    let m = Message::application(link, Dir::Response, &[0xc0, 0x81, 0x80, 0x00]).unwrap();
    assert!(!m.is_request());
    assert_eq!(
        std::format!("{}", crate::Op::Dnp3(m.op())),
        "dnp3 function=response destination=10 source=1 iin=32768"
    );
    let reset = Message::link(link, Dir::Request);
    assert_eq!(
        std::format!("{}", crate::Op::Dnp3(reset.op())),
        "dnp3 link_function=unconfirmed-user-data destination=10 source=1"
    );
    let opaque =
        Message::application(link, Dir::Request, &[0xc0, 0x02, 200, 1, 0, 0, 0, 9]).unwrap();
    assert!(opaque.opaque());
    assert!(std::format!("{}", crate::Op::Dnp3(opaque.op())).ends_with("headers=1 opaque"));
    assert!(core::mem::size_of::<Op>() <= 32);
}

#[test]
fn emit_then_parse_requests() {
    // Index 3 (2 bytes), then the CROB: latch on, count 1, on 100 ms, off 0, status 0.
    let crob = [3, 0, 0x03, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0];
    let headers = [
        HeaderRepr {
            group: 12,
            variation: 1,
            qualifier: 0x28,
            range: Range::Count(1),
            objects: &crob,
        },
        HeaderRepr::all(60, 1),
    ];
    let mut out = [0u8; 64];
    let n = RequestRepr {
        seq: 3,
        function: Function::Select,
        headers: &headers,
    }
    .emit(&mut out)
    .unwrap();
    let link = Link {
        control: 0xc4,
        destination: 10,
        source: 1,
    };
    let m = Message::application(link, Dir::Request, &out[..n]).unwrap();
    let got: Vec<_> = m.objects().collect();
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].group, got[0].variation, got[0].range),
        (12, 1, Range::Count(1))
    );
    assert_eq!(got[0].objects, &crob);
    assert_eq!(got[0].first_index(), Some(3));
    assert_eq!(m.control().unwrap().seq(), 3);
}

/// One direction of a conversation between the opendnp3 master and outstation of
/// yadnp3 3.2.1.4 (captured on TCP; master 1, outstation 10), as the wire carried it.
const OPENDNP3_MASTER: &[&str] = &[
    // Startup: disable unsolicited (classes 1-3), clear the restart IIN, integrity poll,
    // enable unsolicited.
    "05 64 11 c4 0a 00 01 00 06 15 c0 c0 15 3c 02 06 3c 03 06 3c 04 06 1a 55",
    "05 64 0e c4 0a 00 01 00 25 29 c1 c1 02 50 01 00 07 07 00 ff 81",
    "05 64 14 c4 0a 00 01 00 8f ed c2 c2 01 3c 02 06 3c 03 06 3c 04 06 3c 01 06 5a f0",
    "05 64 11 c4 0a 00 01 00 06 15 c3 c3 14 3c 02 06 3c 03 06 3c 04 06 ba d5",
    // Direct operate CROB 3; select and operate CROB 2; direct operate analog output 1
    // (g41v1, 77); cold and warm restart.
    "05 64 1a c4 0a 00 01 00 8a 1c c5 c5 05 0c 01 28 01 00 03 00 03 01 64 00 00 00 2f 7a 64 00 00 00 00 00 5b",
    "05 64 1a c4 0a 00 01 00 8a 1c c6 c6 03 0c 01 28 01 00 02 00 03 01 64 00 00 00 a1 8e 64 00 00 00 00 00 5b",
    "05 64 1a c4 0a 00 01 00 8a 1c c7 c7 04 0c 01 28 01 00 02 00 03 01 64 00 00 00 e5 15 64 00 00 00 00 00 5b",
    "05 64 14 c4 0a 00 01 00 8f ed c8 c8 05 29 01 28 01 00 01 00 4d 00 00 00 00 18 b2",
    "05 64 08 c4 0a 00 01 00 fc 42 c9 c9 0d 3e 96",
    "05 64 08 c4 0a 00 01 00 fc 42 ca ca 0e bf 56",
];

/// The outstation's answers in the same capture: null responses (the first with IIN1.7
/// "device restart"), the echo of a CROB, the time delay (g52v1) after a restart.
const OPENDNP3_OUTSTATION: &[&str] = &[
    "05 64 0a 44 01 00 0a 00 6e 25 c0 c0 81 80 01 ed c5",
    "05 64 0a 44 01 00 0a 00 6e 25 c1 c1 81 00 00 72 09",
    "05 64 1c 44 01 00 0a 00 76 36 c7 c5 81 00 00 0c 01 28 01 00 03 00 03 01 64 00 1e d3 00 00 64 00 00 00 00 00 5b",
    "05 64 10 44 01 00 0a 00 c4 e1 cb c9 81 00 00 34 01 07 01 3c 00 89 99",
];

#[test]
fn a_conversation_captured_from_opendnp3() {
    let mut buf = [0u8; MIN_BUFFER];
    let mut st = StreamDir::default();
    let mut ops = Vec::new();
    for f in OPENDNP3_MASTER {
        st.feed(Protocol::Dnp3, &mut buf, &hex(f), Dir::Request, &mut |m| {
            let m = m.unwrap();
            assert!(m.is_request());
            ops.push(std::format!("{}", m.op()));
        });
    }
    let want = [
        "dnp3 function=disable-unsolicited destination=10 source=1 group=60 variation=2 headers=3",
        "dnp3 function=write destination=10 source=1 group=80 variation=1 index=7 count=1 headers=1",
        "dnp3 function=read destination=10 source=1 group=60 variation=2 headers=4",
        "dnp3 function=enable-unsolicited destination=10 source=1 group=60 variation=2 headers=3",
        "dnp3 function=direct-operate destination=10 source=1 group=12 variation=1 index=3 count=1 headers=1",
        "dnp3 function=select destination=10 source=1 group=12 variation=1 index=2 count=1 headers=1",
        "dnp3 function=operate destination=10 source=1 group=12 variation=1 index=2 count=1 headers=1",
        "dnp3 function=direct-operate destination=10 source=1 group=41 variation=1 index=1 count=1 headers=1",
        "dnp3 function=cold-restart destination=10 source=1",
        "dnp3 function=warm-restart destination=10 source=1",
    ];
    assert_eq!(ops, want);
    let mut st = StreamDir::default();
    let mut n = 0;
    for f in OPENDNP3_OUTSTATION {
        st.feed(Protocol::Dnp3, &mut buf, &hex(f), Dir::Response, &mut |m| {
            assert!(!m.unwrap().is_request());
            n += 1;
        });
    }
    assert_eq!(n, OPENDNP3_OUTSTATION.len());
}
