//! Property tests: dissect is total over arbitrary and mutated frames, its slices stay inside
//! the frame (and out of the padding), and the Reprs round-trip.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use gk_packet::icmp::{self, Family};
use gk_packet::{arp, dissect, ethernet, ipv4, ipv6, tcp, udp, vlan};
use gk_packet::{EtherType, Fragment, IpProtocol, MacAddr, L3, L4};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum L4Spec {
    Tcp(u16, u16, u32, u32, u8, Vec<u8>),
    Udp(u16, u16, Vec<u8>),
    Echo(u16, Vec<u8>),
    /// A protocol number this crate does not dissect further.
    Other(u8, Vec<u8>),
}

#[derive(Debug, Clone)]
enum L3Spec {
    Arp(arp::Repr),
    V4(Ipv4Addr, Ipv4Addr, L4Spec),
    /// Addresses, extension headers (IPv6 next-header values), transport.
    V6(Ipv6Addr, Ipv6Addr, Vec<u8>, L4Spec),
    Other(u16, Vec<u8>),
}

#[derive(Debug, Clone)]
struct Spec {
    tags: Vec<vlan::Repr>,
    outer_tpid: EtherType,
    l3: L3Spec,
    padding: usize,
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..64)
}

fn l4() -> impl Strategy<Value = L4Spec> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            payload()
        )
            .prop_map(|(s, d, seq, ack, f, p)| L4Spec::Tcp(s, d, seq, ack, f, p)),
        (any::<u16>(), any::<u16>(), payload()).prop_map(|(s, d, p)| L4Spec::Udp(s, d, p)),
        (any::<u16>(), payload()).prop_map(|(id, p)| L4Spec::Echo(id, p)),
        (
            prop::sample::select(vec![2u8, 47, 89, 103, 112, 132, 200]),
            payload()
        )
            .prop_map(|(n, p)| L4Spec::Other(n, p)),
    ]
}

fn ext_headers() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        proptest::collection::vec(prop::sample::select(vec![43u8, 60]), 0..3),
    )
        .prop_map(|(hbh, rest)| hbh.then_some(0).into_iter().chain(rest).collect())
}

fn l3() -> impl Strategy<Value = L3Spec> {
    let mac = any::<[u8; 6]>().prop_map(MacAddr);
    let v4 = any::<[u8; 4]>().prop_map(Ipv4Addr::from);
    let v6 = any::<[u8; 16]>().prop_map(Ipv6Addr::from);
    prop_oneof![
        (any::<u16>(), mac.clone(), v4.clone(), mac, v4.clone()).prop_map(
            |(op, sm, si, tm, ti)| {
                L3Spec::Arp(arp::Repr {
                    operation: op.into(),
                    sender_mac: sm,
                    sender_ip: si,
                    target_mac: tm,
                    target_ip: ti,
                })
            }
        ),
        (v4.clone(), v4, l4()).prop_map(|(s, d, l4)| L3Spec::V4(s, d, l4)),
        (v6.clone(), v6, ext_headers(), l4()).prop_map(|(s, d, e, l4)| L3Spec::V6(s, d, e, l4)),
        (
            prop::sample::select(vec![0x88ccu16, 0x8892, 0x88b8, 0x88f7, 0x1234]),
            payload()
        )
            .prop_map(|(t, p)| L3Spec::Other(t, p)),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    let tag = (0u8..8, any::<bool>(), 0u16..4096).prop_map(|(pcp, dei, vid)| vlan::Repr {
        pcp,
        dei,
        vid,
        ethertype: EtherType::Vlan,
    });
    (
        proptest::collection::vec(tag, 0..=2),
        prop::sample::select(vec![EtherType::Vlan, EtherType::QinQ]),
        l3(),
        0usize..32,
    )
        .prop_map(|(tags, outer_tpid, l3, padding)| Spec {
            tags,
            outer_tpid,
            l3,
            padding,
        })
}

fn emit_l4(family: Family, src: IpAddr, dst: IpAddr, spec: &L4Spec) -> (IpProtocol, Vec<u8>) {
    match spec {
        L4Spec::Tcp(sp, dp, seq, ack, flags, payload) => {
            let repr = tcp::Repr {
                src_port: *sp,
                dst_port: *dp,
                seq_number: *seq,
                ack_number: *ack,
                flags: *flags,
                window_len: 1024,
                payload,
            };
            let mut bytes = vec![0; repr.buffer_len()];
            repr.emit(&mut tcp::Packet::new_unchecked(&mut bytes[..]), src, dst);
            (IpProtocol::Tcp, bytes)
        }
        L4Spec::Udp(sp, dp, payload) => {
            let repr = udp::Repr {
                src_port: *sp,
                dst_port: *dp,
                payload,
            };
            let mut bytes = vec![0; repr.buffer_len()];
            repr.emit(&mut udp::Packet::new_unchecked(&mut bytes[..]), src, dst);
            (IpProtocol::Udp, bytes)
        }
        L4Spec::Echo(id, payload) => {
            let (protocol, msg_type) = match family {
                Family::V4 => (IpProtocol::Icmp, 8),
                Family::V6 => (IpProtocol::Icmpv6, 128),
            };
            let mut bytes = vec![0; icmp::HEADER_LEN];
            bytes.extend_from_slice(payload);
            let mut packet = icmp::Packet::new_unchecked(&mut bytes[..]);
            packet.set_msg_type(msg_type);
            packet.set_echo_ident(*id);
            packet.fill_checksum(family, src, dst);
            (protocol, bytes)
        }
        L4Spec::Other(n, payload) => (IpProtocol::from(*n), payload.clone()),
    }
}

/// Builds the frame that `spec` describes, padding included.
fn build(spec: &Spec) -> Vec<u8> {
    let (ethertype, l3) = match &spec.l3 {
        L3Spec::Arp(repr) => {
            let mut bytes = vec![0; repr.buffer_len()];
            repr.emit(&mut arp::Packet::new_unchecked(&mut bytes[..]));
            (EtherType::Arp, bytes)
        }
        L3Spec::V4(s, d, l4) => {
            let (protocol, l4) = emit_l4(Family::V4, (*s).into(), (*d).into(), l4);
            let repr = ipv4::Repr {
                src_addr: *s,
                dst_addr: *d,
                protocol,
                payload_len: l4.len() as u16,
                ttl: 64,
                ident: 1,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
            };
            let mut bytes = vec![0; repr.buffer_len()];
            repr.emit(&mut ipv4::Packet::new_unchecked(&mut bytes[..]));
            bytes.extend_from_slice(&l4);
            (EtherType::Ipv4, bytes)
        }
        L3Spec::V6(s, d, ext, l4) => {
            let (protocol, l4) = emit_l4(Family::V6, (*s).into(), (*d).into(), l4);
            let mut payload = Vec::new();
            for (i, _) in ext.iter().enumerate() {
                let next = ext.get(i + 1).copied().unwrap_or(protocol.into());
                payload.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
            }
            payload.extend_from_slice(&l4);
            let repr = ipv6::Repr {
                src_addr: *s,
                dst_addr: *d,
                next_header: ext.first().copied().map_or(protocol, IpProtocol::from),
                payload_len: payload.len() as u16,
                hop_limit: 64,
            };
            let mut bytes = vec![0; repr.buffer_len()];
            repr.emit(&mut ipv6::Packet::new_unchecked(&mut bytes[..]));
            bytes.extend_from_slice(&payload);
            (EtherType::Ipv6, bytes)
        }
        L3Spec::Other(t, payload) => (EtherType::from(*t), payload.clone()),
    };
    let mut frame = vec![0; ethernet::HEADER_LEN];
    ethernet::Repr {
        dst_addr: MacAddr([2, 0, 0, 0, 0, 2]),
        src_addr: MacAddr([2, 0, 0, 0, 0, 1]),
        ethertype: if spec.tags.is_empty() {
            ethertype
        } else {
            spec.outer_tpid
        },
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]));
    for (i, tag) in spec.tags.iter().enumerate() {
        let inner = if i + 1 == spec.tags.len() {
            ethertype
        } else {
            EtherType::Vlan
        };
        let mut bytes = [0; vlan::HEADER_LEN];
        vlan::Repr {
            ethertype: inner,
            ..*tag
        }
        .emit(&mut vlan::Packet::new_unchecked(&mut bytes[..]));
        frame.extend_from_slice(&bytes);
    }
    frame.extend_from_slice(&l3);
    frame.resize(frame.len() + spec.padding, 0);
    frame
}

/// Whether `part` lies within `whole[..end]`.
fn within(whole: &[u8], end: usize, part: &[u8]) -> bool {
    let start = whole.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    at >= start && at + part.len() <= start + end
}

/// Dissects without panicking and checks that every slice handed out lies in `frame[..end]`.
fn check_slices(frame: &[u8], end: usize) -> Result<(), TestCaseError> {
    if let Ok(dissected) = dissect(frame) {
        match dissected.l3 {
            L3::Other(p) => prop_assert!(within(frame, frame.len(), p)),
            L3::Ip(ip) => match ip.l4 {
                L4::Tcp { payload, .. } | L4::Udp { payload, .. } | L4::Other(payload) => {
                    prop_assert!(within(frame, end, payload))
                }
                L4::Icmp { .. } | L4::Fragment => {}
            },
            L3::Arp(_) => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_slices(&bytes, bytes.len())?;
    }

    /// Arbitrary bytes behind a plausible header, so that the deeper parsers get exercised.
    #[test]
    fn arbitrary_ip_payloads_never_panic(
        ethertype in prop::sample::select(vec![0x0800u16, 0x86dd, 0x8100, 0x88a8, 0x0806]),
        version in prop::sample::select(vec![0x45u8, 0x46, 0x60]),
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut frame = vec![0; 12];
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.push(version);
        frame.extend_from_slice(&bytes);
        check_slices(&frame, frame.len())?;
    }

    #[test]
    fn valid_frames_dissect_as_built(spec in spec()) {
        let frame = build(&spec);
        let dissected = dissect(&frame).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(dissected.vlan_count(), spec.tags.len());
        for (got, want) in dissected.vlans.iter().zip(&spec.tags) {
            let got = got.unwrap();
            prop_assert_eq!((got.pcp, got.dei, got.vid), (want.pcp, want.dei, want.vid));
        }
        check_slices(&frame, frame.len() - spec.padding)?;
        let l4_spec = match (&spec.l3, dissected.l3) {
            (L3Spec::Arp(repr), L3::Arp(info)) => {
                prop_assert_eq!(info.sender_ip, repr.sender_ip);
                prop_assert_eq!(info.target_mac, repr.target_mac);
                return Ok(());
            }
            (L3Spec::Other(_, payload), L3::Other(got)) => {
                prop_assert_eq!(&got[..payload.len()], &payload[..]);
                return Ok(());
            }
            (L3Spec::V4(s, d, l4), L3::Ip(ip)) => {
                prop_assert_eq!((ip.src, ip.dst), (IpAddr::from(*s), IpAddr::from(*d)));
                (l4, ip)
            }
            (L3Spec::V6(s, d, _, l4), L3::Ip(ip)) => {
                prop_assert_eq!((ip.src, ip.dst), (IpAddr::from(*s), IpAddr::from(*d)));
                (l4, ip)
            }
            (_, l3) => return Err(TestCaseError::fail(format!("wrong L3 {l3:?}"))),
        };
        let (l4, ip) = l4_spec;
        prop_assert_eq!(ip.fragment, Fragment::None);
        match (l4, ip.l4) {
            (L4Spec::Tcp(sp, dp, seq, ack, flags, p), L4::Tcp { src_port, dst_port, seq: s, ack: a, flags: f, payload, .. }) => {
                prop_assert_eq!((*sp, *dp, *seq, *ack, *flags), (src_port, dst_port, s, a, f));
                prop_assert_eq!(payload, &p[..]);
            }
            (L4Spec::Udp(sp, dp, p), L4::Udp { src_port, dst_port, payload }) => {
                prop_assert_eq!((*sp, *dp), (src_port, dst_port));
                prop_assert_eq!(payload, &p[..]);
            }
            (L4Spec::Echo(id, _), L4::Icmp { echo_id, embedded, .. }) => {
                prop_assert_eq!(echo_id, Some(*id));
                prop_assert_eq!(embedded, None);
            }
            (L4Spec::Other(n, p), L4::Other(payload)) => {
                prop_assert_eq!(ip.protocol, IpProtocol::from(*n));
                prop_assert_eq!(payload, &p[..]);
            }
            (_, got) => return Err(TestCaseError::fail(format!("wrong L4 {got:?}"))),
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        spec in spec(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut frame = build(&spec);
        for (at, value) in edits {
            let i = at.index(frame.len());
            frame[i] = value;
        }
        if truncate {
            frame.truncate(cut.index(frame.len() + 1));
        }
        check_slices(&frame, frame.len())?;
    }

    #[test]
    fn ipv4_repr_round_trips(
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), protocol in any::<u8>(),
        payload_len in 0u16..1500, ttl in any::<u8>(), ident in any::<u16>(),
        dont_frag in any::<bool>(), more_frags in any::<bool>(), offset in 0u16..8192,
    ) {
        let repr = ipv4::Repr {
            src_addr: src.into(),
            dst_addr: dst.into(),
            protocol: protocol.into(),
            payload_len,
            ttl,
            ident,
            dont_frag,
            more_frags,
            frag_offset: offset * 8,
        };
        let mut bytes = vec![0; repr.buffer_len() + usize::from(payload_len)];
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut bytes[..]));
        let packet = ipv4::Packet::new_checked(&bytes[..]).unwrap();
        prop_assert!(packet.verify_checksum());
        prop_assert_eq!(ipv4::Repr::parse(&packet), Ok(repr));
    }

    #[test]
    fn ipv6_repr_round_trips(
        src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), next in any::<u8>(),
        payload_len in 0u16..1500, hop_limit in any::<u8>(),
    ) {
        let repr = ipv6::Repr {
            src_addr: src.into(),
            dst_addr: dst.into(),
            next_header: next.into(),
            payload_len,
            hop_limit,
        };
        let mut bytes = vec![0; repr.buffer_len() + usize::from(payload_len)];
        repr.emit(&mut ipv6::Packet::new_unchecked(&mut bytes[..]));
        prop_assert_eq!(ipv6::Repr::parse(&ipv6::Packet::new_checked(&bytes[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn tcp_repr_round_trips(
        ports in any::<(u16, u16)>(), seq in any::<u32>(), ack in any::<u32>(),
        flags in any::<u8>(), window_len in any::<u16>(), payload in payload(),
        v6 in any::<bool>(), addrs in any::<([u8; 16], [u8; 16])>(),
    ) {
        let (src, dst) = addresses(v6, addrs);
        let repr = tcp::Repr {
            src_port: ports.0,
            dst_port: ports.1,
            seq_number: seq,
            ack_number: ack,
            flags,
            window_len,
            payload: &payload,
        };
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut tcp::Packet::new_unchecked(&mut bytes[..]), src, dst);
        let packet = tcp::Packet::new_checked(&bytes[..]).unwrap();
        prop_assert!(packet.verify_checksum(src, dst));
        prop_assert_eq!(tcp::Repr::parse(&packet), Ok(repr));
    }

    #[test]
    fn udp_repr_round_trips(
        ports in any::<(u16, u16)>(), payload in payload(),
        v6 in any::<bool>(), addrs in any::<([u8; 16], [u8; 16])>(),
    ) {
        let (src, dst) = addresses(v6, addrs);
        let repr = udp::Repr { src_port: ports.0, dst_port: ports.1, payload: &payload };
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut udp::Packet::new_unchecked(&mut bytes[..]), src, dst);
        let packet = udp::Packet::new_checked(&bytes[..]).unwrap();
        prop_assert!(packet.verify_checksum(src, dst));
        prop_assert_ne!(packet.checksum(), 0);
        prop_assert_eq!(udp::Repr::parse(&packet), Ok(repr));
    }

    #[test]
    fn mac_text_round_trips(octets in any::<[u8; 6]>()) {
        let mac = MacAddr(octets);
        prop_assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac));
    }
}

fn addresses(v6: bool, (a, b): ([u8; 16], [u8; 16])) -> (IpAddr, IpAddr) {
    if v6 {
        (Ipv6Addr::from(a).into(), Ipv6Addr::from(b).into())
    } else {
        let v4 = |x: [u8; 16]| Ipv4Addr::new(x[0], x[1], x[2], x[3]).into();
        (v4(a), v4(b))
    }
}
