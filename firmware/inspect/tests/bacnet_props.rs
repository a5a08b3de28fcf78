//! BACnet/IP: parse ∘ emit round trips over generated datagrams, and the parser's
//! invariants on hostile input (truncation, bit flips, arbitrary bytes).

use gk_inspect::bacnet::{
    self, Body, BvlcFunction, Carrier, Encoder, NpciRepr, ObjectId, ObjectType, PropertyId, Repr,
    Segment, Service, Target,
};
use gk_inspect::Dir;
use proptest::prelude::*;

/// What a generated request names, to compare with what the parser finds.
#[derive(Debug, Clone)]
enum Request {
    ReadProperty(ObjectId, PropertyId, Option<u32>),
    WriteProperty(ObjectId, PropertyId, f32, Option<u8>),
    ReadMultiple(Vec<(ObjectId, Vec<PropertyId>)>),
    WriteMultiple(Vec<(ObjectId, Vec<PropertyId>)>),
    WhoIs(Option<(u32, u32)>),
    IAm(ObjectId),
}

impl Request {
    /// Service choice, confirmed or not, and the encoded parameters.
    fn encode(&self, out: &mut [u8]) -> (bool, u8, usize) {
        let mut e = Encoder::new(out);
        let (confirmed, service) = match self {
            Request::ReadProperty(o, p, i) => {
                e.read_property(*o, *p, *i);
                (true, 12)
            }
            Request::WriteProperty(o, p, v, prio) => {
                let mut value = [0u8; 5];
                let n = Encoder::new(&mut value).real(None, *v).finish().unwrap();
                e.write_property(*o, *p, &value[..n], *prio);
                (true, 15)
            }
            Request::ReadMultiple(specs) => {
                for (o, props) in specs {
                    e.read_access(*o, props);
                }
                (true, 14)
            }
            Request::WriteMultiple(specs) => {
                for (o, props) in specs {
                    let values: Vec<(PropertyId, &[u8])> =
                        props.iter().map(|p| (*p, &[0x91, 0x01][..])).collect();
                    e.write_access(*o, &values);
                }
                (true, 16)
            }
            Request::WhoIs(range) => {
                e.who_is(*range);
                (false, 8)
            }
            Request::IAm(device) => {
                e.i_am(*device, 1476, 3, 15);
                (false, 0)
            }
        };
        (confirmed, service, e.finish().expect("room"))
    }

    fn targets(&self) -> Vec<Target> {
        match self {
            Request::ReadProperty(o, p, _) | Request::WriteProperty(o, p, _, _) => {
                vec![Target::Object(*o), Target::Property(*p)]
            }
            Request::ReadMultiple(specs) | Request::WriteMultiple(specs) => specs
                .iter()
                .flat_map(|(o, props)| {
                    std::iter::once(Target::Object(*o))
                        .chain(props.iter().map(|p| Target::Property(*p)))
                })
                .collect(),
            Request::WhoIs(_) => vec![],
            Request::IAm(d) => vec![Target::Object(*d)],
        }
    }
}

fn object() -> impl Strategy<Value = ObjectId> {
    (0u16..=1023, 0u32..=bacnet::MAX_INSTANCE).prop_map(|(t, i)| ObjectId::new(t, i).unwrap())
}

fn property() -> impl Strategy<Value = PropertyId> {
    prop_oneof![0u32..600, 0u32..=bacnet::MAX_PROPERTY].prop_map(PropertyId::from)
}

fn specs() -> impl Strategy<Value = Vec<(ObjectId, Vec<PropertyId>)>> {
    proptest::collection::vec(
        (object(), proptest::collection::vec(property(), 1..4)),
        1..4,
    )
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (object(), property(), proptest::option::of(0u32..100_000))
            .prop_map(|(o, p, i)| Request::ReadProperty(o, p, i)),
        (
            object(),
            property(),
            any::<f32>(),
            proptest::option::of(1u8..=16)
        )
            .prop_map(|(o, p, v, prio)| Request::WriteProperty(o, p, v, prio)),
        specs().prop_map(Request::ReadMultiple),
        specs().prop_map(Request::WriteMultiple),
        proptest::option::of((0u32..=bacnet::MAX_INSTANCE, 0u32..=bacnet::MAX_INSTANCE))
            .prop_map(Request::WhoIs),
        (0u32..=bacnet::MAX_INSTANCE).prop_map(|i| Request::IAm(ObjectId::new(8, i).unwrap())),
    ]
}

fn carrier() -> impl Strategy<Value = Carrier> {
    prop_oneof![
        Just(Carrier::OriginalUnicast),
        Just(Carrier::OriginalBroadcast),
        Just(Carrier::DistributeBroadcast),
        any::<[u8; 6]>().prop_map(Carrier::Forwarded),
    ]
}

/// DNET (not 0), DADR, hop count; SNET (not 65535), SADR (not empty).
type Addressing = (Option<(u16, Vec<u8>, u8)>, Option<(u16, Vec<u8>)>);

fn addressing() -> impl Strategy<Value = Addressing> {
    (
        proptest::option::of((
            1u16..,
            proptest::collection::vec(any::<u8>(), 0..7),
            any::<u8>(),
        )),
        proptest::option::of((1u16..0xffff, proptest::collection::vec(any::<u8>(), 1..7))),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn requests_round_trip(
        req in request(),
        carrier in carrier(),
        (dest, src) in addressing(),
        priority in 0u8..4,
        invoke_id in any::<u8>(),
    ) {
        let mut data = [0u8; 512];
        let (confirmed, service, n) = req.encode(&mut data);
        let body = if confirmed {
            Body::Confirmed { invoke_id, service, segment: None, data: &data[..n] }
        } else {
            Body::Unconfirmed { service, data: &data[..n] }
        };
        let repr = Repr::Npdu {
            carrier,
            npci: NpciRepr {
                expecting_reply: confirmed,
                priority,
                destination: dest.as_ref().map(|(n, a, h)| (*n, &a[..], *h)),
                source: src.as_ref().map(|(n, a)| (*n, &a[..])),
            },
            body,
        };
        let mut out = [0u8; 1024];
        let len = repr.emit(&mut out).unwrap();
        let m = bacnet::parse(&out[..len], Dir::Request).unwrap();
        prop_assert!(m.is_request());
        let npci = m.npci().unwrap();
        prop_assert_eq!(npci.priority(), priority);
        prop_assert_eq!(npci.expecting_reply(), confirmed);
        prop_assert_eq!(npci.dnet(), dest.as_ref().map(|d| d.0));
        prop_assert_eq!(npci.hop_count(), dest.as_ref().map(|d| d.2));
        prop_assert_eq!(npci.dadr(), dest.as_ref().map_or(&[][..], |d| &d.1[..]));
        prop_assert_eq!(npci.snet(), src.as_ref().map(|s| s.0));
        prop_assert_eq!(npci.sadr(), src.as_ref().map_or(&[][..], |s| &s.1[..]));
        let expected_service = if confirmed {
            Service::Confirmed(service.into())
        } else {
            Service::Unconfirmed(service.into())
        };
        prop_assert_eq!(m.service(), Some(expected_service));
        prop_assert_eq!(m.invoke_id(), confirmed.then_some(invoke_id));
        prop_assert_eq!(m.service_data(), &data[..n]);
        prop_assert_eq!(m.targets().collect::<Vec<_>>(), req.targets());
        let op = m.op();
        let first_object = req.targets().into_iter().find_map(|t| match t {
            Target::Object(o) => Some(o),
            _ => None,
        });
        prop_assert_eq!(op.object(), first_object);
        prop_assert_eq!(op.service(), Some(expected_service));
    }

    #[test]
    fn answers_round_trip(invoke_id in any::<u8>(), service in any::<u8>(), class in 0u16..64, code in any::<u16>(), reason in any::<u8>(), seq in any::<u8>(), window in 1u8..=127) {
        let bodies = [
            Body::SimpleAck { invoke_id, service },
            Body::Error { invoke_id, service, class, code },
            Body::Reject { invoke_id, reason },
            Body::Abort { invoke_id, reason, server: true },
            Body::SegmentAck { invoke_id, sequence: seq, window, nak: false, server: true },
            Body::ComplexAck { invoke_id, service, segment: None, data: &[0x0c, 0, 0, 0, 1, 0x19, 0x55, 0x3e, 0x91, 0x00, 0x3f] },
        ];
        for body in bodies {
            let mut out = [0u8; 64];
            let len = Repr::unicast(body).emit(&mut out).unwrap();
            let m = bacnet::parse(&out[..len], Dir::Response).unwrap();
            prop_assert!(!m.is_request());
            prop_assert_eq!(m.invoke_id(), Some(invoke_id));
            let op = m.op();
            match body {
                Body::Error { .. } => prop_assert_eq!(op.error().map(|(c, e)| (u16::from(c), u16::from(e))), Some((class, code))),
                Body::Reject { .. } => prop_assert_eq!(op.reject_reason().map(u8::from), Some(reason)),
                Body::Abort { .. } => prop_assert_eq!(op.abort_reason().map(u8::from), Some(reason)),
                Body::SegmentAck { .. } => prop_assert_eq!(op.sequence_number(), Some(seq)),
                _ => prop_assert_eq!(op.service().map(|s| matches!(s, Service::Confirmed(c) if u8::from(c) == service)), Some(true)),
            }
        }
    }

    #[test]
    fn segments_round_trip(req in request(), cut in any::<prop::sample::Index>(), window in 1u8..=127) {
        let mut data = [0u8; 512];
        let (_, service, n) = req.encode(&mut data);
        let cut = cut.index(n + 1);
        let mut out = [0u8; 1024];
        for (sequence, part, more) in [(0u8, &data[..cut], true), (1, &data[cut..n], false)] {
            let repr = Repr::unicast(Body::Confirmed {
                invoke_id: 1,
                service,
                segment: Some(Segment { sequence, window, more_follows: more }),
                data: part,
            });
            let len = repr.emit(&mut out).unwrap();
            let m = bacnet::parse(&out[..len], Dir::Request).unwrap();
            prop_assert!(m.is_segmented());
            prop_assert_eq!(m.sequence_number(), Some(sequence));
            let found: Vec<Target> = m.targets().collect();
            if sequence == 0 {
                // What the first segment names is a prefix of what the request names.
                let all = Request::targets(&req);
                prop_assert!(found.len() <= all.len());
                prop_assert_eq!(&all[..found.len()], &found[..]);
            } else {
                // Every service here, as a confirmed one (8 is add-list-element, 0 is
                // acknowledge-alarm), names objects: a later segment cannot be judged.
                prop_assert_eq!(found, vec![Target::Undecoded]);
            }
        }
    }

    #[test]
    fn truncations_and_bit_flips_never_panic(req in request(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut data = [0u8; 512];
        let (confirmed, service, n) = req.encode(&mut data);
        let body = if confirmed {
            Body::Confirmed { invoke_id: 1, service, segment: None, data: &data[..n] }
        } else {
            Body::Unconfirmed { service, data: &data[..n] }
        };
        let mut out = [0u8; 1024];
        let len = Repr::unicast(body).emit(&mut out).unwrap();
        let bytes = &mut out[..len];
        for end in 0..len {
            prop_assert!(bacnet::parse(&bytes[..end], Dir::Request).is_err(), "the BVLC length says more");
        }
        let at = flip.index(len);
        bytes[at] ^= 1 << bit;
        if let Ok(m) = bacnet::parse(bytes, Dir::Request) {
            let _ = m.targets().count();
            let _ = format!("{}", gk_inspect::Op::Bacnet(m.op()));
        }
    }

    #[test]
    fn arbitrary_datagrams_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600), function in any::<u8>()) {
        // Behind a valid BVLC header, so that the parser gets past it.
        let mut bytes = vec![0x81, function];
        bytes.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        bytes.extend_from_slice(&body);
        for dir in [Dir::Request, Dir::Response] {
            if let Ok(m) = bacnet::parse(&bytes, dir) {
                let _ = m.is_request();
                let _ = m.targets().count();
                let _ = format!("{}", gk_inspect::Op::Bacnet(m.op()));
                prop_assert_eq!(m.bvlc_function(), BvlcFunction::from(function));
            }
        }
    }
}

#[test]
fn every_object_type_and_property_name_round_trips() {
    for &(name, v) in ObjectType::NAMES {
        assert_eq!(ObjectType::from_name(name).map(u16::from), Some(v));
        assert!(name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'));
    }
    for &(name, v) in PropertyId::NAMES {
        assert_eq!(
            PropertyId::from_name(name).map(u32::from),
            Some(v),
            "{name}"
        );
        assert!(name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'));
    }
}
