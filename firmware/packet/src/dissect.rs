//! One pass over a frame: Ethernet, up to two VLAN tags, then ARP or IPv4/IPv6, then TCP,
//! UDP or ICMP. The result borrows the payloads from the frame and allocates nothing.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr};

use crate::icmp::Family;
use crate::{arp, ethernet, icmp, ipv4, ipv6, tcp, udp, vlan};
use crate::{EtherType, IpProtocol, MacAddr};

/// How many 802.1Q / 802.1ad tags a frame may carry (QinQ); more is [`Malformed::TooManyVlanTags`].
pub const MAX_VLAN_TAGS: usize = 2;

/// Why a frame could not be dissected. Every variant is a distinct drop reason detail;
/// the pipeline reports all of them under the stable reason code `malformed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Shorter than an Ethernet header.
    EthernetTruncated,
    /// A VLAN tag header was cut short.
    VlanTruncated,
    /// More than [`MAX_VLAN_TAGS`] tags.
    TooManyVlanTags,
    /// ARP for Ethernet/IPv4 shorter than 28 bytes, or with other hardware/protocol sizes.
    Arp,
    /// IPv4 header: version, IHL, total length or a truncated header.
    Ipv4Header,
    /// IPv6 header or an extension header chain that is truncated or too long.
    Ipv6Header,
    /// TCP header truncated or data offset out of range.
    TcpHeader,
    /// UDP header truncated or its length field inconsistent.
    UdpHeader,
    /// ICMP / ICMPv6 header truncated.
    IcmpHeader,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Malformed::EthernetTruncated => "truncated Ethernet header",
            Malformed::VlanTruncated => "truncated VLAN tag",
            Malformed::TooManyVlanTags => "too many VLAN tags",
            Malformed::Arp => "malformed or non-Ethernet/IPv4 ARP",
            Malformed::Ipv4Header => "malformed IPv4 header",
            Malformed::Ipv6Header => "malformed IPv6 header or extension-header chain",
            Malformed::TcpHeader => "malformed TCP header",
            Malformed::UdpHeader => "malformed UDP header",
            Malformed::IcmpHeader => "truncated ICMP header",
        })
    }
}

impl core::error::Error for Malformed {}

/// One 802.1Q (TPID 0x8100) or 802.1ad (TPID 0x88a8) tag, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    pub tpid: u16,
    /// Priority code point, 0..=7.
    pub pcp: u8,
    pub dei: bool,
    /// VLAN id, 0..=4095 (0 means priority-tagged).
    pub vid: u16,
}

/// The summary of one Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    /// Tags in wire order, outermost first; `vlan_count` of them are valid.
    pub vlans: [Option<VlanTag>; MAX_VLAN_TAGS],
    /// The ethertype after all tags (the one that says what the payload is).
    pub ethertype: EtherType,
    pub l3: L3<'a>,
}

impl Frame<'_> {
    /// The outermost tag, if the frame is tagged.
    pub fn outer_vlan(&self) -> Option<VlanTag> {
        self.vlans[0]
    }

    /// How many tags the frame carries.
    pub fn vlan_count(&self) -> usize {
        self.vlans.iter().take_while(|tag| tag.is_some()).count()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3<'a> {
    Arp(ArpInfo),
    Ip(IpInfo<'a>),
    /// Any other ethertype (LLDP, PROFINET, GOOSE, PTP, …): the payload after the tags.
    Other(&'a [u8]),
}

/// ARP for Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpInfo {
    /// 1 = request, 2 = reply; others kept as data.
    pub operation: u16,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

/// Where a packet sits in an IP fragment train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragment {
    /// Not fragmented.
    None,
    /// Offset 0 with more fragments to come: carries the L4 header.
    First,
    /// A later fragment: no L4 header, `l4` is [`L4::Fragment`].
    Later,
}

/// IPv4 or IPv6, after the IPv6 extension-header chain has been walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpInfo<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The upper-layer protocol (after IPv6 extension headers).
    pub protocol: IpProtocol,
    pub fragment: Fragment,
    pub l4: L4<'a>,
}

/// The transport layer. Payloads are bounded by the IP length fields, never by the frame
/// (Ethernet padding is not payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4<'a> {
    Tcp {
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
        /// The 8 flag bits of byte 13 (CWR ECE URG ACK PSH RST SYN FIN).
        flags: u8,
        /// The options (between the fixed 20-byte header and the payload).
        options: &'a [u8],
        payload: &'a [u8],
    },
    Udp {
        src_port: u16,
        dst_port: u16,
        payload: &'a [u8],
    },
    /// ICMP (IPv4) or ICMPv6, told apart by [`IpInfo::protocol`].
    Icmp {
        icmp_type: u8,
        code: u8,
        /// For echo request/reply: the identifier (used like a port for flow tracking).
        echo_id: Option<u16>,
        /// For error messages (destination unreachable, time exceeded, parameter problem,
        /// packet too big): the invoking packet's header as far as it could be read.
        embedded: Option<Embedded>,
    },
    /// A non-first fragment: there is no transport header to read.
    Fragment,
    /// Any other protocol number: the raw payload.
    Other(&'a [u8]),
}

/// The 5-tuple of the packet quoted inside an ICMP error (ports are 0 when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedded {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: IpProtocol,
    pub src_port: u16,
    pub dst_port: u16,
}

/// TCP flag bits, for [`L4::Tcp::flags`].
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// Dissect one Ethernet frame (no FCS). Never panics, never allocates.
///
/// Checksums are not verified: end hosts drop bad ones themselves, and a bump in the wire
/// that did would only add a way to lose traffic.
pub fn dissect(frame: &[u8]) -> Result<Frame<'_>, Malformed> {
    let eth = ethernet::Frame::new_checked(frame)?;
    let mut ethertype = eth.ethertype();
    let mut payload = eth.payload();
    let mut vlans = [None; MAX_VLAN_TAGS];
    for slot in &mut vlans {
        if !is_tpid(ethertype) {
            break;
        }
        let tag = vlan::Packet::new_checked(payload)?;
        *slot = Some(VlanTag {
            tpid: ethertype.into(),
            pcp: tag.pcp(),
            dei: tag.dei(),
            vid: tag.vid(),
        });
        ethertype = tag.ethertype();
        payload = tag.payload();
    }
    if is_tpid(ethertype) {
        return Err(Malformed::TooManyVlanTags);
    }
    let l3 = match ethertype {
        EtherType::Arp => L3::Arp(arp_info(payload)?),
        EtherType::Ipv4 => L3::Ip(ipv4_info(payload)?),
        EtherType::Ipv6 => L3::Ip(ipv6_info(payload)?),
        _ => L3::Other(payload),
    };
    Ok(Frame {
        dst_mac: eth.dst_addr(),
        src_mac: eth.src_addr(),
        vlans,
        ethertype,
        l3,
    })
}

fn is_tpid(ethertype: EtherType) -> bool {
    matches!(ethertype, EtherType::Vlan | EtherType::QinQ)
}

fn arp_info(bytes: &[u8]) -> Result<ArpInfo, Malformed> {
    let arp = arp::Packet::new_checked(bytes)?;
    Ok(ArpInfo {
        operation: arp.operation().into(),
        sender_mac: arp.sender_hardware_addr(),
        sender_ip: arp.sender_protocol_addr(),
        target_mac: arp.target_hardware_addr(),
        target_ip: arp.target_protocol_addr(),
    })
}

fn ipv4_info(bytes: &[u8]) -> Result<IpInfo<'_>, Malformed> {
    let ip = ipv4::Packet::new_checked(bytes)?;
    let fragment = match (ip.more_frags(), ip.frag_offset()) {
        (false, 0) => Fragment::None,
        (true, 0) => Fragment::First,
        _ => Fragment::Later,
    };
    let protocol = ip.protocol();
    Ok(IpInfo {
        src: IpAddr::V4(ip.src_addr()),
        dst: IpAddr::V4(ip.dst_addr()),
        protocol,
        fragment,
        l4: transport(Family::V4, protocol, fragment, ip.payload())?,
    })
}

fn ipv6_info(bytes: &[u8]) -> Result<IpInfo<'_>, Malformed> {
    let ip = ipv6::Packet::new_checked(bytes)?;
    let upper = ip.upper_layer()?;
    let fragment = match upper.fragment {
        None => Fragment::None,
        Some(frag) if frag.offset != 0 => Fragment::Later,
        Some(frag) if frag.more => Fragment::First,
        // An atomic fragment (RFC 6946) holds the whole packet.
        Some(_) => Fragment::None,
    };
    let payload = ip
        .payload()
        .get(upper.offset..)
        .ok_or(Malformed::Ipv6Header)?;
    Ok(IpInfo {
        src: IpAddr::V6(ip.src_addr()),
        dst: IpAddr::V6(ip.dst_addr()),
        protocol: upper.protocol,
        fragment,
        l4: transport(Family::V6, upper.protocol, fragment, payload)?,
    })
}

/// Reads the transport header at the start of `payload` (already bounded by the IP length).
fn transport(
    family: Family,
    protocol: IpProtocol,
    fragment: Fragment,
    payload: &[u8],
) -> Result<L4<'_>, Malformed> {
    if fragment == Fragment::Later {
        return Ok(L4::Fragment);
    }
    Ok(match (protocol, family) {
        (IpProtocol::Tcp, _) => {
            let tcp = tcp::Packet::new_checked(payload)?;
            L4::Tcp {
                src_port: tcp.src_port(),
                dst_port: tcp.dst_port(),
                seq: tcp.seq_number(),
                ack: tcp.ack_number(),
                flags: tcp.flags(),
                options: tcp.options(),
                payload: tcp.payload(),
            }
        }
        (IpProtocol::Udp, _) => {
            let udp = if fragment == Fragment::First {
                udp::Packet::new_checked_first_fragment(payload)?
            } else {
                udp::Packet::new_checked(payload)?
            };
            L4::Udp {
                src_port: udp.src_port(),
                dst_port: udp.dst_port(),
                payload: udp.payload(),
            }
        }
        (IpProtocol::Icmp, Family::V4) | (IpProtocol::Icmpv6, Family::V6) => {
            let icmp = icmp::Packet::new_checked(payload)?;
            L4::Icmp {
                icmp_type: icmp.msg_type(),
                code: icmp.code(),
                echo_id: icmp.echo_id(family),
                embedded: icmp.embedded(family),
            }
        }
        _ => L4::Other(payload),
    })
}

#[cfg(test)]
mod test {
    use super::*;
    use core::net::Ipv6Addr;
    use std::vec::Vec;

    const HOST_A: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const HOST_B: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
    const MAC_A: MacAddr = MacAddr([0x00, 0x1b, 0x1b, 0x00, 0x00, 0x0a]);
    const MAC_B: MacAddr = MacAddr([0x00, 0x1b, 0x1b, 0x00, 0x00, 0x14]);

    /// Ethernet B <- A, IPv4 192.168.1.10 -> .20 (DF, TTL 64), TCP SYN 49152 -> 502 with MSS,
    /// SACK permitted and window scale options. Checksums computed independently.
    const TCP_SYN: [u8; 66] = [
        0x00, 0x1b, 0x1b, 0x00, 0x00, 0x14, 0x00, 0x1b, 0x1b, 0x00, 0x00, 0x0a, 0x08,
        0x00, // eth
        0x45, 0x00, 0x00, 0x34, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x9b, 0x0f, // IPv4
        192, 168, 1, 10, 192, 168, 1, 20, //
        0xc0, 0x00, 0x01, 0xf6, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, // TCP
        0x80, 0x02, 0xfa, 0xf0, 0xc6, 0x0e, 0x00, 0x00, //
        2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7, // options
    ];

    /// IPv4/UDP 1234 -> 53 "ping", padded to the 60-byte Ethernet minimum.
    const UDP_PADDED: [u8; 60] = [
        0x00, 0x1b, 0x1b, 0x00, 0x00, 0x14, 0x00, 0x1b, 0x1b, 0x00, 0x00, 0x0a, 0x08,
        0x00, // eth
        0x45, 0x00, 0x00, 0x20, 0x00, 0x07, 0x00, 0x00, 0x40, 0x11, 0xf7, 0x57, // IPv4
        192, 168, 1, 10, 192, 168, 1, 20, //
        0x04, 0xd2, 0x00, 0x35, 0x00, 0x0c, 0x98, 0x8f, b'p', b'i', b'n', b'g', // UDP
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
    ];

    /// IPv6 fe80::1 -> fe80::2, ICMPv6 echo request id 0x1234 seq 1 "abcd".
    const ICMPV6_ECHO: [u8; 66] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x02, 0x00, 0x1b, 0x1b, 0x00, 0x00, 0x0a, 0x86,
        0xdd, // eth
        0x60, 0x00, 0x00, 0x00, 0x00, 0x0c, 58, 64, // IPv6: payload 12, ICMPv6, hop limit 64
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        128, 0, 0xab, 0xb8, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd', // ICMPv6
    ];

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&MAC_B.0);
        bytes.extend_from_slice(&MAC_A.0);
        bytes.extend_from_slice(&ethertype.to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    fn ipv4(protocol: IpProtocol, more_frags: bool, offset: u16, l4: &[u8]) -> Vec<u8> {
        let mut bytes = std::vec![0; ipv4::HEADER_LEN];
        ipv4::Repr {
            src_addr: HOST_A,
            dst_addr: HOST_B,
            protocol,
            payload_len: l4.len() as u16,
            ttl: 64,
            ident: 7,
            dont_frag: false,
            more_frags,
            frag_offset: offset,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut bytes[..]));
        bytes.extend_from_slice(l4);
        bytes
    }

    fn ipv6(next: IpProtocol, payload: &[u8]) -> Vec<u8> {
        let mut bytes = std::vec![0; ipv6::HEADER_LEN];
        ipv6::Repr {
            src_addr: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            dst_addr: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2),
            next_header: next,
            payload_len: payload.len() as u16,
            hop_limit: 64,
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut bytes[..]));
        bytes.extend_from_slice(payload);
        bytes
    }

    fn ip_info(frame: &[u8]) -> IpInfo<'_> {
        match dissect(frame).unwrap().l3 {
            L3::Ip(ip) => ip,
            other => panic!("not IP: {other:?}"),
        }
    }

    #[test]
    fn arp_request() {
        let mut arp = std::vec![0, 1, 8, 0, 6, 4, 0, 1];
        arp.extend_from_slice(&MAC_A.0);
        arp.extend_from_slice(&HOST_A.octets());
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&HOST_B.octets());
        let mut frame = eth(0x0806, &arp);
        frame[..6].copy_from_slice(&MacAddr::BROADCAST.0);
        frame.resize(60, 0);
        let dissected = dissect(&frame).unwrap();
        assert_eq!(dissected.dst_mac, MacAddr::BROADCAST);
        assert_eq!(dissected.ethertype, EtherType::Arp);
        assert_eq!(dissected.vlan_count(), 0);
        assert_eq!(
            dissected.l3,
            L3::Arp(ArpInfo {
                operation: 1,
                sender_mac: MAC_A,
                sender_ip: HOST_A,
                target_mac: MacAddr([0; 6]),
                target_ip: HOST_B,
            })
        );
        assert_eq!(dissect(&frame[..14 + 27]), Err(Malformed::Arp));
        let mut ipv6_arp = frame.clone();
        ipv6_arp[16] = 0x86;
        assert_eq!(dissect(&ipv6_arp), Err(Malformed::Arp));
    }

    #[test]
    fn ipv4_tcp_syn() {
        let frame = dissect(&TCP_SYN).unwrap();
        assert_eq!((frame.dst_mac, frame.src_mac), (MAC_B, MAC_A));
        assert_eq!(frame.ethertype, EtherType::Ipv4);
        let L3::Ip(ip) = frame.l3 else {
            panic!("not IP")
        };
        assert_eq!((ip.src, ip.dst), (IpAddr::V4(HOST_A), IpAddr::V4(HOST_B)));
        assert_eq!(
            (ip.protocol, ip.fragment),
            (IpProtocol::Tcp, Fragment::None)
        );
        assert_eq!(
            ip.l4,
            L4::Tcp {
                src_port: 49152,
                dst_port: 502,
                seq: 0x1234_5678,
                ack: 0,
                flags: tcp_flags::SYN,
                options: &[2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7],
                payload: &[],
            }
        );
    }

    #[test]
    fn truncated_tcp_syn() {
        assert_eq!(dissect(&TCP_SYN[..13]), Err(Malformed::EthernetTruncated));
        assert_eq!(dissect(&TCP_SYN[..33]), Err(Malformed::Ipv4Header));
        // Cut anywhere in the segment: the total length no longer fits.
        assert_eq!(dissect(&TCP_SYN[..65]), Err(Malformed::Ipv4Header));
        // A consistent IPv4 packet whose TCP header is cut inside its options.
        let frame = eth(0x0800, &ipv4(IpProtocol::Tcp, false, 0, &TCP_SYN[34..60]));
        assert_eq!(dissect(&frame), Err(Malformed::TcpHeader));
        let frame = eth(0x0800, &ipv4(IpProtocol::Tcp, false, 0, &TCP_SYN[34..53]));
        assert_eq!(dissect(&frame), Err(Malformed::TcpHeader));
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let ip = ip_info(&UDP_PADDED);
        assert_eq!(
            ip.l4,
            L4::Udp {
                src_port: 1234,
                dst_port: 53,
                payload: b"ping",
            }
        );
    }

    #[test]
    fn malformed_udp() {
        let udp = &UDP_PADDED[34..46];
        let frame = eth(0x0800, &ipv4(IpProtocol::Udp, false, 0, &udp[..7]));
        assert_eq!(dissect(&frame), Err(Malformed::UdpHeader));
        // The UDP length (12) is larger than the IP payload (10).
        let frame = eth(0x0800, &ipv4(IpProtocol::Udp, false, 0, &udp[..10]));
        assert_eq!(dissect(&frame), Err(Malformed::UdpHeader));
    }

    #[test]
    fn ipv6_icmpv6_echo() {
        let frame = dissect(&ICMPV6_ECHO).unwrap();
        assert!(frame.dst_mac.is_multicast());
        let L3::Ip(ip) = frame.l3 else {
            panic!("not IP")
        };
        assert_eq!(ip.protocol, IpProtocol::Icmpv6);
        assert_eq!(
            ip.l4,
            L4::Icmp {
                icmp_type: 128,
                code: 0,
                echo_id: Some(0x1234),
                embedded: None,
            }
        );
        assert_eq!(dissect(&ICMPV6_ECHO[..14 + 39]), Err(Malformed::Ipv6Header));
        assert_eq!(dissect(&ICMPV6_ECHO[..65]), Err(Malformed::Ipv6Header));
        let short = eth(0x86dd, &ipv6(IpProtocol::Icmpv6, &ICMPV6_ECHO[54..61]));
        assert_eq!(dissect(&short), Err(Malformed::IcmpHeader));
    }

    #[test]
    fn icmp_family_must_match_ip_version() {
        let icmpv6_in_v4 = eth(0x0800, &ipv4(IpProtocol::Icmpv6, false, 0, &[128; 8]));
        assert_eq!(ip_info(&icmpv6_in_v4).l4, L4::Other(&[128; 8]));
        let icmp_in_v6 = eth(0x86dd, &ipv6(IpProtocol::Icmp, &[8; 8]));
        assert_eq!(ip_info(&icmp_in_v6).l4, L4::Other(&[8; 8]));
    }

    #[test]
    fn ipv6_hop_by_hop_and_first_fragment() {
        let mut payload = std::vec![
            44, 0, 5, 2, 0, 0, 1, 0, // hop-by-hop: router alert
            17, 0, 0x00, 0x01, 0, 0, 0, 9, // fragment: UDP, offset 0, M=1, id 9
            0x04, 0xd2, 0x00, 0x35, 0x05, 0xdc, 0x00,
            0x00, // UDP, length 1500 (whole datagram)
        ];
        payload.extend_from_slice(b"first");
        let frame = eth(0x86dd, &ipv6(IpProtocol::HopByHop, &payload));
        let ip = ip_info(&frame);
        assert_eq!(
            (ip.protocol, ip.fragment),
            (IpProtocol::Udp, Fragment::First)
        );
        assert_eq!(
            ip.l4,
            L4::Udp {
                src_port: 1234,
                dst_port: 53,
                payload: b"first",
            }
        );
        // The later fragment: no transport header.
        payload[10..12].copy_from_slice(&1448u16.to_be_bytes());
        let later = eth(0x86dd, &ipv6(IpProtocol::HopByHop, &payload));
        let ip = ip_info(&later);
        assert_eq!(
            (ip.protocol, ip.fragment, ip.l4),
            (IpProtocol::Udp, Fragment::Later, L4::Fragment)
        );
        // An atomic fragment is a whole packet.
        payload[10..12].copy_from_slice(&[0, 0]);
        payload[20..22].copy_from_slice(&13u16.to_be_bytes());
        let atomic = eth(0x86dd, &ipv6(IpProtocol::HopByHop, &payload));
        let ip = ip_info(&atomic);
        assert_eq!(ip.fragment, Fragment::None);
        // A chain cut inside the fragment header.
        let cut = eth(0x86dd, &ipv6(IpProtocol::HopByHop, &payload[..12]));
        assert_eq!(dissect(&cut), Err(Malformed::Ipv6Header));
    }

    #[test]
    fn ipv4_fragments() {
        // First fragment of a 1500-byte UDP datagram: length field beyond this fragment.
        let udp = [
            0x04, 0xd2, 0x00, 0x35, 0x05, 0xdc, 0x00, 0x00, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let first = eth(0x0800, &ipv4(IpProtocol::Udp, true, 0, &udp));
        let ip = ip_info(&first);
        assert_eq!(ip.fragment, Fragment::First);
        assert_eq!(
            ip.l4,
            L4::Udp {
                src_port: 1234,
                dst_port: 53,
                payload: &[1, 2, 3, 4, 5, 6, 7, 8],
            }
        );
        // A tiny first fragment that cannot hold the TCP header is malformed.
        let tiny = eth(0x0800, &ipv4(IpProtocol::Tcp, true, 0, &TCP_SYN[34..42]));
        assert_eq!(dissect(&tiny), Err(Malformed::TcpHeader));
        for (more, offset) in [(true, 8), (false, 1480)] {
            let later = eth(0x0800, &ipv4(IpProtocol::Tcp, more, offset, &[0xff; 3]));
            let ip = ip_info(&later);
            assert_eq!(
                (ip.protocol, ip.fragment, ip.l4),
                (IpProtocol::Tcp, Fragment::Later, L4::Fragment)
            );
        }
    }

    #[test]
    fn icmp_port_unreachable_quoting_udp() {
        // The router at .20 answers the UDP_PADDED datagram: IP header + 8 bytes quoted.
        let mut icmp = std::vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&UDP_PADDED[14..42]);
        let frame = eth(0x0800, &ipv4(IpProtocol::Icmp, false, 0, &icmp));
        let ip = ip_info(&frame);
        assert_eq!(
            ip.l4,
            L4::Icmp {
                icmp_type: 3,
                code: 3,
                echo_id: None,
                embedded: Some(Embedded {
                    src: IpAddr::V4(HOST_A),
                    dst: IpAddr::V4(HOST_B),
                    protocol: IpProtocol::Udp,
                    src_port: 1234,
                    dst_port: 53,
                }),
            }
        );
        // An unreadable quote leaves the error itself valid.
        let frame = eth(0x0800, &ipv4(IpProtocol::Icmp, false, 0, &icmp[..20]));
        assert!(matches!(
            ip_info(&frame).l4,
            L4::Icmp { embedded: None, .. }
        ));
        let frame = eth(0x0800, &ipv4(IpProtocol::Icmp, false, 0, &icmp[..7]));
        assert_eq!(dissect(&frame), Err(Malformed::IcmpHeader));
    }

    #[test]
    fn qinq_tagged_ipv4() {
        let mut tags = std::vec![0x00, 0x64, 0x81, 0x00, 0x60, 0x0a, 0x08, 0x00];
        tags.extend_from_slice(&UDP_PADDED[14..46]);
        let bytes = eth(0x88a8, &tags);
        let frame = dissect(&bytes).unwrap();
        assert_eq!(frame.vlan_count(), 2);
        assert_eq!(
            frame.vlans,
            [
                Some(VlanTag {
                    tpid: 0x88a8,
                    pcp: 0,
                    dei: false,
                    vid: 100
                }),
                Some(VlanTag {
                    tpid: 0x8100,
                    pcp: 3,
                    dei: false,
                    vid: 10
                }),
            ]
        );
        assert_eq!(frame.outer_vlan().map(|t| t.vid), Some(100));
        assert_eq!(frame.ethertype, EtherType::Ipv4);
        assert!(matches!(
            frame.l3,
            L3::Ip(IpInfo {
                l4: L4::Udp {
                    payload: b"ping",
                    ..
                },
                ..
            })
        ));
        assert_eq!(dissect(&bytes[..14 + 3]), Err(Malformed::VlanTruncated));
        assert_eq!(dissect(&bytes[..14 + 7]), Err(Malformed::VlanTruncated));
        let mut three = std::vec![0x00, 0x01, 0x81, 0x00];
        three.extend_from_slice(&tags);
        assert_eq!(
            dissect(&eth(0x88a8, &three)),
            Err(Malformed::TooManyVlanTags)
        );
    }

    #[test]
    fn other_ethertypes_are_data() {
        let bytes = eth(0x8892, &[0xfe, 0xfe, 0x05, 0x00]);
        let frame = dissect(&bytes).unwrap();
        assert_eq!(frame.ethertype, EtherType::Profinet);
        assert_eq!(frame.l3, L3::Other(&[0xfe, 0xfe, 0x05, 0x00]));
        let frame = eth(0x0800, &ipv4(IpProtocol::Gre, false, 0, &[1, 2]));
        assert_eq!(ip_info(&frame).l4, L4::Other(&[1, 2]));
    }
}
