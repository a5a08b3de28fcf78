//! IEC 60870-5-104 properties: APDUs built by `ApduRepr::emit` parse back to the same
//! fields and objects; whatever is accepted has addresses inside the 24-bit space; a
//! stream cut anywhere gives the same messages as whole APDUs.

use gk_inspect::iec104::{
    self, ApduRepr, AsduRepr, Cause, Format, Layout, ObjectsRepr, TypeId, UFunction, MAX_APDU,
    MAX_IOA,
};
use gk_inspect::stream::{StreamDir, MIN_BUFFER};
use gk_inspect::{Dir, Message, Protocol};
use proptest::prelude::*;

/// A named type with a fixed element size, and a valid element for it.
fn fixed_type() -> impl Strategy<Value = (TypeId, u8)> {
    proptest::sample::select(
        TypeId::NAMES
            .iter()
            .map(|&(_, v)| TypeId::from(v))
            .filter_map(|t| match t.layout() {
                Layout::Fixed(size) => Some((t, size)),
                _ => None,
            })
            .collect::<Vec<_>>(),
    )
}

/// Element octets for `t`: random, with the command states that are permitted.
fn element(t: TypeId, mut bytes: Vec<u8>) -> Vec<u8> {
    if matches!(
        t,
        TypeId::CDcNa1 | TypeId::CDcTa1 | TypeId::CRcNa1 | TypeId::CRcTa1
    ) {
        bytes[0] = bytes[0] & !0x03 | (1 + (bytes[0] & 1));
    }
    bytes
}

#[derive(Debug, Clone)]
struct Case {
    type_id: TypeId,
    sequence: bool,
    objects: Vec<(u32, Vec<u8>)>,
    cause: u8,
    negative: bool,
    test: bool,
    originator: u8,
    common_address: u16,
    send: u16,
    recv: u16,
}

fn case() -> impl Strategy<Value = Case> {
    (
        fixed_type(),
        any::<bool>(),
        1usize..40,
        0u32..=MAX_IOA,
        proptest::collection::vec(any::<u8>(), 40 * 16),
        (0u8..64, any::<bool>(), any::<bool>(), any::<u8>()),
        (any::<u16>(), 0u16..0x8000, 0u16..0x8000),
        proptest::collection::vec(0u32..=MAX_IOA, 40),
    )
        .prop_map(
            |((type_id, size), sequence, n, first, pool, flags, ids, ioas)| {
                let single = type_id.single_object();
                let sequence = sequence && !single;
                let n = if single { 1 } else { n };
                let size = usize::from(size);
                let first = if sequence {
                    first.min(MAX_IOA - n as u32 + 1)
                } else {
                    first
                };
                let objects = (0..n)
                    .map(|i| {
                        let ioa = if sequence { first + i as u32 } else { ioas[i] };
                        let bytes = pool[i * 16..i * 16 + size].to_vec();
                        (ioa, element(type_id, bytes))
                    })
                    .collect();
                Case {
                    type_id,
                    sequence,
                    objects,
                    cause: flags.0,
                    negative: flags.1,
                    test: flags.2,
                    originator: flags.3,
                    common_address: ids.0,
                    send: ids.1,
                    recv: ids.2,
                }
            },
        )
}

fn emit(c: &Case, out: &mut [u8]) -> Option<usize> {
    let each: Vec<(u32, &[u8])> = c.objects.iter().map(|(a, e)| (*a, &e[..])).collect();
    let elements: Vec<u8> = c.objects.iter().flat_map(|(_, e)| e.clone()).collect();
    let objects = if c.sequence {
        ObjectsRepr::Sequence {
            ioa: c.objects[0].0,
            count: c.objects.len() as u8,
            elements: &elements,
        }
    } else {
        ObjectsRepr::Each(&each)
    };
    ApduRepr::I {
        send: c.send,
        recv: c.recv,
        asdu: AsduRepr {
            type_id: c.type_id,
            cause: Cause::from(c.cause),
            negative: c.negative,
            test: c.test,
            originator: c.originator,
            common_address: c.common_address,
            objects,
        },
    }
    .emit(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn emit_then_parse_gives_the_same_asdu(c in case()) {
        let mut out = [0u8; MAX_APDU];
        // Too many objects for 255 octets: emit refuses, nothing to check.
        let Some(n) = emit(&c, &mut out) else { return Ok(()) };
        let bytes = &out[..n];
        for dir in [Dir::Request, Dir::Response] {
            let apdu = iec104::parse(bytes, n, dir).unwrap();
            prop_assert_eq!(apdu.format(), Format::I { send: c.send, recv: c.recv });
            let a = apdu.asdu().unwrap();
            prop_assert_eq!(a.type_id(), c.type_id);
            prop_assert_eq!(a.sequence(), c.sequence);
            prop_assert_eq!(usize::from(a.count()), c.objects.len());
            prop_assert_eq!(a.cause_code(), c.cause);
            prop_assert_eq!((a.negative(), a.test()), (c.negative, c.test));
            prop_assert_eq!((a.originator(), a.common_address()), (c.originator, c.common_address));
            let objects: Vec<(u32, Vec<u8>)> =
                a.objects().unwrap().map(|o| (o.ioa, o.element.to_vec())).collect();
            prop_assert_eq!(&objects, &c.objects);
            let station = c.type_id.station_command() && c.objects[0].0 == 0;
            let addresses: Vec<(u32, u32)> = a.addresses().unwrap().collect();
            let covered: u32 = addresses.iter().map(|(lo, hi)| hi - lo + 1).sum();
            prop_assert_eq!(covered as usize, if station { 0 } else { c.objects.len() });
            prop_assert!(addresses.iter().all(|&(lo, hi)| lo <= hi && hi <= MAX_IOA));
            let _ = apdu.op().asdu.unwrap();
            prop_assert_eq!(apdu.is_request(), dir == Dir::Request
                || iec104::control_direction(u8::from(c.type_id))
                    && matches!(c.cause, 5 | 6 | 8));
        }
        // Every shorter prefix, and one octet more, is refused.
        for cut in 0..n {
            prop_assert!(iec104::parse(&bytes[..cut], cut, Dir::Request).is_err());
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        if n < MAX_APDU {
            longer[1] += 1;
            prop_assert!(iec104::parse(&longer, n + 1, Dir::Request).is_err());
        }
    }

    #[test]
    fn s_and_u_frames_round_trip(recv in 0u16..0x8000, f in 0usize..6) {
        let mut out = [0u8; 6];
        let n = ApduRepr::S { recv }.emit(&mut out).unwrap();
        let a = iec104::parse(&out[..n], n, Dir::Response).unwrap();
        prop_assert_eq!(a.format(), Format::S { recv });
        prop_assert!(!a.is_request() && a.asdu().is_none());
        let function = UFunction::from(UFunction::NAMES[f].1);
        let n = ApduRepr::U(function).emit(&mut out).unwrap();
        let a = iec104::parse(&out[..n], n, Dir::Request).unwrap();
        prop_assert_eq!(a.format(), Format::U(function));
        prop_assert!(!a.is_request());
    }

    #[test]
    fn accepted_apdus_have_24_bit_addresses(body in proptest::collection::vec(any::<u8>(), 6..249)) {
        // Arbitrary ASDU octets behind a good APCI: whatever parses has sane addresses.
        let mut bytes = vec![0x68, (body.len() + 4) as u8, 0, 0, 0, 0];
        bytes.extend_from_slice(&body);
        if let Ok(apdu) = iec104::parse(&bytes, bytes.len(), Dir::Request) {
            let a = apdu.asdu().unwrap();
            if let Some(addresses) = a.addresses() {
                for (lo, hi) in addresses {
                    prop_assert!(lo <= hi && hi <= MAX_IOA);
                }
            }
            if let Some(objects) = a.objects() {
                prop_assert_eq!(objects.count(), usize::from(a.count()));
            }
        }
    }

    #[test]
    fn a_stream_cut_anywhere_gives_the_same_messages(
        cases in proptest::collection::vec(case(), 1..6),
        cuts in proptest::collection::vec(1usize..40, 1..20),
    ) {
        // APDUs with consecutive send sequence numbers, as one stream.
        let mut stream = vec![0x68, 4, 0x07, 0, 0, 0];
        let mut expected = vec![(None, 0u8)];
        let mut send = 0;
        for mut c in cases {
            c.send = send;
            let mut out = [0u8; MAX_APDU];
            if let Some(n) = emit(&c, &mut out) {
                stream.extend_from_slice(&out[..n]);
                expected.push((Some(send), u8::from(c.type_id)));
                send += 1;
            }
        }
        let mut buf = [0u8; MIN_BUFFER];
        let mut s = StreamDir::default();
        let mut seen = Vec::new();
        let mut rest = &stream[..];
        let mut i = 0;
        while !rest.is_empty() {
            let (seg, tail) = rest.split_at(cuts[i % cuts.len()].min(rest.len()));
            s.feed(Protocol::Iec104, &mut buf, seg, Dir::Request, &mut |m| {
                seen.push(match m {
                    Ok(Message::Iec104(a)) => match a.format() {
                        Format::I { send, .. } => Ok((Some(send), a.asdu().unwrap().type_code())),
                        _ => Ok((None, 0)),
                    },
                    Ok(_) => Err("another protocol"),
                    Err(e) => Err(e.what),
                });
            });
            rest = tail;
            i += 1;
        }
        prop_assert!(s.at_boundary());
        prop_assert_eq!(seen, expected.into_iter().map(Ok).collect::<Vec<_>>());
    }
}
