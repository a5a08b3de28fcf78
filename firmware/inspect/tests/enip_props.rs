//! EtherNet/IP and CIP: what the builders in `enip::repr` write parses back to the same
//! values (requests with arbitrary paths, multiple service packets, unconnected sends,
//! connected messages, I/O packets); a message cut anywhere after its request path is
//! judged on the same request; and mutated messages never make the parsers panic.

use gk_inspect::enip::cip::{self, Logical, Segment};
use gk_inspect::enip::repr::{self, RequestRepr, SegmentRepr};
use gk_inspect::enip::{self, parse, parse_io, Cip};
use gk_inspect::{fuzzing, Dir, Framing, Protocol};
use proptest::prelude::*;

/// An owned path segment, for generating.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Port(u16, Vec<u8>),
    Class(u32),
    Instance(u32),
    Member(u32),
    Point(u32),
    Attribute(u32),
    Symbol(Vec<u8>),
    Data(Vec<u8>),
}

impl Seg {
    fn repr(&self) -> SegmentRepr<'_> {
        match self {
            Seg::Port(p, l) => SegmentRepr::Port { port: *p, link: l },
            Seg::Class(v) => SegmentRepr::Class(*v),
            Seg::Instance(v) => SegmentRepr::Instance(*v),
            Seg::Member(v) => SegmentRepr::Member(*v),
            Seg::Point(v) => SegmentRepr::ConnectionPoint(*v),
            Seg::Attribute(v) => SegmentRepr::Attribute(*v),
            Seg::Symbol(s) => SegmentRepr::Symbol(s),
            Seg::Data(d) => SegmentRepr::Data(d),
        }
    }

    fn of(s: Segment<'_>) -> Seg {
        match s {
            Segment::Port { port, link } => Seg::Port(port, link.to_vec()),
            Segment::Logical { kind, value } => match kind {
                Logical::Class => Seg::Class(value),
                Logical::Instance => Seg::Instance(value),
                Logical::Member => Seg::Member(value),
                Logical::ConnectionPoint => Seg::Point(value),
                Logical::Attribute => Seg::Attribute(value),
            },
            Segment::Symbol(s) => Seg::Symbol(s.to_vec()),
            Segment::Data(d) => Seg::Data(d.to_vec()),
            other => panic!("not built here: {other:?}"),
        }
    }
}

fn value() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..=0xff, 0x100u32..=0xffff, any::<u32>()]
}

fn segment() -> impl Strategy<Value = Seg> {
    prop_oneof![
        (1u16..=40, proptest::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(p, l)| Seg::Port(p, l)),
        // Not the connection manager: its services have structured data.
        value()
            .prop_filter("not class 6", |v| *v != 6)
            .prop_map(Seg::Class),
        value().prop_map(Seg::Instance),
        value().prop_map(Seg::Member),
        value().prop_map(Seg::Point),
        value().prop_map(Seg::Attribute),
        proptest::collection::vec(0x21u8..0x7f, 1..20).prop_map(Seg::Symbol),
        proptest::collection::vec(any::<u8>(), 0..4)
            .prop_map(|mut d| {
                d.truncate(d.len() & !1);
                d
            })
            .prop_map(Seg::Data),
    ]
}

/// A plain request: any service but the multiple service packet, any path, any data.
fn plain() -> impl Strategy<Value = (u8, Vec<Seg>, Vec<u8>)> {
    (
        (0u8..0x80).prop_filter("not a multiple service packet", |s| *s != 0x0a),
        proptest::collection::vec(segment(), 0..6),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
}

fn emit((service, path, data): &(u8, Vec<Seg>, Vec<u8>)) -> Vec<u8> {
    let segs: Vec<SegmentRepr<'_>> = path.iter().map(Seg::repr).collect();
    let mut out = [0u8; 1024];
    let n = RequestRepr {
        service: *service,
        path: &segs,
        data,
    }
    .emit(&mut out)
    .expect("fits");
    out[..n].to_vec()
}

fn rr(cip: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; cip.len() + 64];
    let n = repr::emit_send_rr_data(&mut out, 0x1234, cip).unwrap();
    out.truncate(n);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn requests_round_trip(req in plain()) {
        let bytes = rr(&emit(&req));
        prop_assert_eq!(enip::frame(&bytes), Framing::Length(bytes.len()));
        let m = parse(&bytes, bytes.len(), Dir::Request).unwrap();
        prop_assert!(m.is_request());
        prop_assert_eq!(m.session(), 0x1234);
        let r = m.cip_request().unwrap();
        prop_assert_eq!(r.service(), req.0);
        let segs: Vec<Seg> = r.path().segments().map(Seg::of).collect();
        prop_assert_eq!(&segs, &req.1);
        prop_assert_eq!(r.data(), &req.2[..]);
        // The first class in the path decides the scope of object-specific names.
        let first_class = req.1.iter().find_map(|s| match s { Seg::Class(c) => Some(*c), _ => None });
        prop_assert_eq!(r.target().class, first_class);
        let _ = format!("{}", gk_inspect::Op::Enip(m.op()));
    }

    #[test]
    fn embedded_requests_are_all_visited(reqs in proptest::collection::vec(plain(), 1..5), routed in any::<bool>()) {
        let inner: Vec<Vec<u8>> = reqs.iter().map(emit).collect();
        let refs: Vec<&[u8]> = inner.iter().map(Vec::as_slice).collect();
        let mut msp = [0u8; 2048];
        let n = repr::emit_multiple(&mut msp, &refs).unwrap();
        let mut cip = msp[..n].to_vec();
        if routed {
            let mut out = [0u8; 2048];
            let route = [SegmentRepr::Port { port: 1, link: &[0] }];
            let n = repr::emit_unconnected_send(&mut out, &cip, &route).unwrap();
            cip = out[..n].to_vec();
        }
        let bytes = rr(&cip);
        let m = parse(&bytes, bytes.len(), Dir::Request).unwrap();
        let mut seen = Vec::new();
        m.cip_request().unwrap().for_each::<()>(&mut |r| { seen.push(r.service()); Ok(()) }).unwrap();
        let mut want: Vec<u8> = Vec::new();
        if routed { want.push(0x52); }
        want.push(0x0a);
        want.extend(reqs.iter().map(|r| r.0));
        prop_assert_eq!(seen, want);
    }

    #[test]
    fn a_cut_message_is_judged_on_the_same_request(req in plain(), cut in 0usize..64) {
        let bytes = rr(&emit(&req));
        // The request header and path end here; anything from there on may be cut.
        let path_end = 40 + 2 + bytes[41] as usize * 2;
        let seen = (path_end + cut).min(bytes.len());
        let m = parse(&bytes[..seen], bytes.len(), Dir::Request).unwrap();
        let r = m.cip_request().unwrap();
        prop_assert_eq!(r.service(), req.0);
        prop_assert_eq!(r.target(), cip::parse_request(&bytes[40..], false).unwrap().target());
        prop_assert_eq!(m.is_cut(), seen < bytes.len());
    }

    #[test]
    fn connected_messages_round_trip(req in plain(), connection in any::<u32>(), sequence in any::<u16>()) {
        let cip = emit(&req);
        let mut out = vec![0u8; cip.len() + 64];
        let n = repr::emit_send_unit_data(&mut out, 7, connection, sequence, &cip).unwrap();
        let m = parse(&out[..n], n, Dir::Request).unwrap();
        prop_assert_eq!(m.connection(), Some(connection));
        prop_assert_eq!(m.sequence(), Some(sequence));
        prop_assert_eq!(m.cip_request().unwrap().service(), req.0);
        // The answer, from the target.
        let mut resp = [0u8; 64];
        let k = repr::emit_response(&mut resp, req.0, 0, &[], &[1, 2, 3]).unwrap();
        let n = repr::emit_send_unit_data(&mut out, 7, connection, sequence, &resp[..k]).unwrap();
        let m = parse(&out[..n], n, Dir::Response).unwrap();
        prop_assert!(!m.is_request());
        prop_assert!(matches!(m.cip(), Some(Cip::Response(r)) if r.service() == req.0 && r.data() == [1, 2, 3]));
    }

    #[test]
    fn io_packets_round_trip(connection in any::<u32>(), sequence in any::<u32>(), data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut out = vec![0u8; data.len() + 32];
        let n = repr::emit_io(&mut out, connection, sequence, &data).unwrap();
        let m = parse_io(&out[..n], Dir::Request).unwrap();
        prop_assert_eq!((m.connection(), m.sequence(), m.data()), (connection, Some(sequence), &data[..]));
        prop_assert!(m.is_request());
        // Any byte cut off the end is malformed, never a panic.
        prop_assert!(parse_io(&out[..n - 1], Dir::Request).is_err());
    }

    #[test]
    fn mutated_messages_never_panic(req in plain(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let mut bytes = rr(&emit(&req));
        for (at, v) in flips {
            let i = at % bytes.len();
            bytes[i] = v;
        }
        for dir in [Dir::Request, Dir::Response] {
            if let Ok(m) = parse(&bytes, bytes.len(), dir) {
                let _ = format!("{}", gk_inspect::Op::Enip(m.op()));
                if let Some(r) = m.cip_request() {
                    let _ = r.for_each::<()>(&mut |q| { let _ = q.object_path().target(); Ok(()) });
                }
            }
            let seen = 24 + cut % (bytes.len() - 23);
            let total = 24 + usize::from(u16::from_le_bytes([bytes[2], bytes[3]]));
            let _ = parse(&bytes[..seen.min(total).min(bytes.len())], total, dir);
            let _ = parse_io(&bytes, dir);
        }
        fuzzing::exercise(Protocol::Enip, &bytes);
        fuzzing::exercise(Protocol::EnipIo, &bytes);
    }
}
