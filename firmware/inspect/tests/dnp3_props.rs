//! DNP3: requests built from values come back the same through link frames, transport
//! segments of any size and TCP segments cut anywhere; any corrupted byte of a frame is
//! caught; arbitrary frames never panic the transport function.

use gk_inspect::dnp3::{
    self, Function, HeaderRepr, LinkRepr, Range, RequestRepr, Session, MAX_LINK_FRAME,
};
use gk_inspect::stream::{StreamDir, MIN_BUFFER};
use gk_inspect::{Dir, Framing, Message, Protocol};
use proptest::prelude::*;

/// (group, variation, bytes per object) of objects with a fixed size.
const FIXED: &[(u8, u8, usize)] = &[
    (12, 1, 11),
    (12, 2, 11),
    (41, 1, 5),
    (41, 2, 3),
    (41, 3, 5),
    (41, 4, 9),
    (50, 1, 6),
    (34, 1, 2),
    (34, 3, 4),
    (20, 1, 5),
    (30, 6, 9),
    (110, 5, 5),
];

/// One header of a request that carries values, with the bytes after it.
#[derive(Debug, Clone)]
struct Header {
    group: u8,
    variation: u8,
    qualifier: u8,
    range: Range,
    objects: Vec<u8>,
}

impl Header {
    fn repr(&self) -> HeaderRepr<'_> {
        HeaderRepr {
            group: self.group,
            variation: self.variation,
            qualifier: self.qualifier,
            range: self.range,
            objects: &self.objects,
        }
    }
}

fn value_header() -> impl Strategy<Value = Header> {
    let fixed = (
        0..FIXED.len(),
        prop_oneof![
            Just(0x00u8),
            Just(0x01),
            Just(0x07),
            Just(0x08),
            Just(0x17),
            Just(0x28)
        ],
        1u32..4,
        0u32..200,
        any::<u8>(),
    )
        .prop_map(|(i, qualifier, count, start, fill)| {
            let (group, variation, size) = FIXED[i];
            let (range, prefix) = match qualifier {
                0x00 | 0x01 => (
                    Range::StartStop {
                        start,
                        stop: start + count - 1,
                    },
                    0,
                ),
                0x07 | 0x08 => (Range::Count(count), 0),
                0x17 => (Range::Count(count), 1),
                _ => (Range::Count(count), 2),
            };
            let mut objects = Vec::new();
            for k in 0..count {
                let index = (start + k).to_le_bytes();
                objects.extend_from_slice(&index[..prefix]);
                objects.extend(std::iter::repeat_n(fill, size));
            }
            Header {
                group,
                variation,
                qualifier,
                range,
                objects,
            }
        });
    let free = (
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..4),
        1u8..8,
    )
        .prop_map(|(objects, variation)| {
            let mut bytes = Vec::new();
            for o in &objects {
                bytes.extend((o.len() as u16).to_le_bytes());
                bytes.extend(o);
            }
            Header {
                group: 70,
                variation,
                qualifier: 0x5b,
                range: Range::Count(objects.len() as u32),
                objects: bytes,
            }
        });
    prop_oneof![3 => fixed, 1 => free]
}

fn read_header() -> impl Strategy<Value = Header> {
    (any::<u8>(), any::<u8>(), 0u8..3, any::<u16>(), 0u16..300).prop_map(
        |(group, variation, kind, start, len)| {
            let (qualifier, range, objects) = match kind {
                0 => (0x06, Range::All, Vec::new()),
                1 => (
                    0x01,
                    Range::StartStop {
                        start: start.into(),
                        stop: u32::from(start) + u32::from(len),
                    },
                    Vec::new(),
                ),
                _ => {
                    let n = len % 8 + 1;
                    (
                        0x17,
                        Range::Count(n.into()),
                        (0..n)
                            .map(|i| (start as u8).wrapping_add(i as u8))
                            .collect(),
                    )
                }
            };
            // A 2-byte stop must fit.
            let range = match range {
                Range::StartStop { start, stop } if stop > 0xffff => {
                    Range::StartStop { start, stop: start }
                }
                r => r,
            };
            Header {
                group,
                variation,
                qualifier,
                range,
                objects,
            }
        },
    )
}

fn request() -> impl Strategy<Value = (Function, Vec<Header>)> {
    prop_oneof![
        (
            prop_oneof![
                Just(Function::Write),
                Just(Function::Select),
                Just(Function::Operate),
                Just(Function::DirectOperate),
                Just(Function::DirectOperateNoAck),
            ],
            prop::collection::vec(value_header(), 1..6)
        ),
        (
            prop_oneof![
                Just(Function::Read),
                Just(Function::ImmediateFreeze),
                Just(Function::AssignClass)
            ],
            prop::collection::vec(read_header(), 0..8)
        ),
    ]
}

/// One object header as walked: group, variation, qualifier, range, objects.
type Seen = (u8, u8, u8, Range, Vec<u8>);
/// One message out of the stream: its function and headers, or why it is malformed.
type Got = Result<(Option<u8>, Vec<Seen>), String>;

/// Feeds `bytes` through a stream cut at `cuts`; the messages' functions and headers.
fn through_stream(bytes: &[u8], cuts: &[usize]) -> Vec<Got> {
    let mut buf = vec![0u8; MIN_BUFFER + 1024];
    let mut s = StreamDir::default();
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = (cuts.get(i).copied().unwrap_or(97) % 300 + 1).min(rest.len());
        let (seg, tail) = rest.split_at(n);
        s.feed(Protocol::Dnp3, &mut buf, seg, Dir::Request, &mut |m| {
            out.push(match m {
                Ok(Message::Dnp3(m)) => Ok((
                    m.function().map(u8::from),
                    m.objects()
                        .map(|h| {
                            (
                                h.group,
                                h.variation,
                                h.qualifier,
                                h.range,
                                h.objects.to_vec(),
                            )
                        })
                        .collect(),
                )),
                Ok(_) => Err("another protocol".to_string()),
                Err(e) => Err(e.what.to_string()),
            })
        });
        rest = tail;
        i += 1;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn requests_round_trip_through_frames_and_segments(
        (function, headers) in request(),
        seq in 0u8..16,
        tseq in 0u8..64,
        segment in 1usize..=249,
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let reprs: Vec<HeaderRepr<'_>> = headers.iter().map(Header::repr).collect();
        let mut fragment = vec![0u8; 2048];
        let n = RequestRepr { seq, function, headers: &reprs }.emit(&mut fragment).unwrap();
        fragment.truncate(n);
        let mut bytes = vec![0u8; 8192];
        let link = LinkRepr::from_master(10, 1);
        let m = link.emit_fragment(tseq, &fragment, segment, &mut bytes).unwrap();
        bytes.truncate(m);
        let got = through_stream(&bytes, &cuts);
        let want: Vec<Seen> = headers
            .iter()
            .map(|h| (h.group, h.variation, h.qualifier, h.range, h.objects.clone()))
            .collect();
        prop_assert_eq!(got, vec![Ok((Some(u8::from(function)), want))]);
    }

    #[test]
    fn every_corrupted_byte_is_caught(
        data in prop::collection::vec(any::<u8>(), 1..=249),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut frame = vec![0u8; MAX_LINK_FRAME];
        let mut user = vec![0xc0u8]; // FIR, FIN, sequence 0
        user.extend(&data);
        let n = LinkRepr::from_master(3, 4).emit(&user, &mut frame).unwrap();
        frame.truncate(n);
        prop_assert_eq!(dnp3::frame(&frame), Framing::Length(n));
        let i = at.index(n);
        frame[i] ^= flip;
        let mut scratch = [0u8; 512];
        let caught = match dnp3::frame(&frame) {
            Framing::Invalid(_) => true,
            Framing::Length(len) if len != n => true,
            _ => matches!(
                Session::default().message(&frame, n, Dir::Request, &mut scratch),
                Some(Err(e)) if e.what == "bad data block CRC"
            ),
        };
        prop_assert!(caught, "byte {} flipped by {:#04x} went unnoticed", i, flip);
    }

    #[test]
    fn arbitrary_frames_never_panic_the_transport(
        frames in prop::collection::vec((any::<u8>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..=250)), 1..12),
        scratch_len in 0usize..600,
    ) {
        let mut s = Session::default();
        let mut scratch = vec![0u8; scratch_len];
        for (control, th, rest) in frames {
            let mut user = vec![th];
            user.extend(&rest);
            user.truncate(250);
            let mut frame = vec![0u8; MAX_LINK_FRAME];
            let n = LinkRepr { control, destination: 1, source: 2 }.emit(&user, &mut frame).unwrap();
            if let Some(Ok(m)) = s.message(&frame[..n], n, Dir::Request, &mut scratch) {
                let _ = (m.is_request(), m.op());
            }
        }
    }
}
