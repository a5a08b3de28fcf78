//! ICMP (RFC 792) and ICMPv6 (RFC 4443). Both share the layout this view reads: type, code,
//! checksum, 4 bytes of type-specific header (the echo identifier and sequence number), then
//! the body, which for error messages quotes the invoking packet.

use core::net::IpAddr;

use crate::ip::checksum;
use crate::macros::enum_with_unknown;
use crate::{be_u16, ipv4, ipv6, set_be_u16, Embedded, IpProtocol, Malformed};

enum_with_unknown! {
    /// ICMP (IPv4) message types.
    pub enum Icmpv4Message(u8) {
        EchoReply = 0,
        DstUnreachable = 3,
        Redirect = 5,
        EchoRequest = 8,
        RouterAdvert = 9,
        RouterSolicit = 10,
        TimeExceeded = 11,
        ParamProblem = 12,
        Timestamp = 13,
        TimestampReply = 14,
    }
}

enum_with_unknown! {
    /// ICMPv6 message types.
    pub enum Icmpv6Message(u8) {
        DstUnreachable = 1,
        PktTooBig = 2,
        TimeExceeded = 3,
        ParamProblem = 4,
        EchoRequest = 128,
        EchoReply = 129,
        MldQuery = 130,
        MldReport = 131,
        MldDone = 132,
        RouterSolicit = 133,
        RouterAdvert = 134,
        NeighborSolicit = 135,
        NeighborAdvert = 136,
        Redirect = 137,
        MldV2Report = 143,
    }
}

/// Which ICMP: the type numbers and the checksum differ, the layout does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// ICMP under IPv4 (protocol 1).
    V4,
    /// ICMPv6 (next header 58).
    V6,
}

impl Family {
    /// Echo request and reply carry an identifier that works like a port.
    pub fn is_echo(self, msg_type: u8) -> bool {
        match self {
            Family::V4 => matches!(
                msg_type.into(),
                Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply
            ),
            Family::V6 => matches!(
                msg_type.into(),
                Icmpv6Message::EchoRequest | Icmpv6Message::EchoReply
            ),
        }
    }

    /// Error messages quote the packet that caused them (a redirect quotes it too).
    pub fn is_error(self, msg_type: u8) -> bool {
        match self {
            Family::V4 => matches!(
                msg_type.into(),
                Icmpv4Message::DstUnreachable
                    | Icmpv4Message::Redirect
                    | Icmpv4Message::TimeExceeded
                    | Icmpv4Message::ParamProblem
            ),
            Family::V6 => matches!(
                msg_type.into(),
                Icmpv6Message::DstUnreachable
                    | Icmpv6Message::PktTooBig
                    | Icmpv6Message::TimeExceeded
                    | Icmpv6Message::ParamProblem
            ),
        }
    }
}

mod field {
    use crate::{Field, Rest};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const BODY: Rest = 8..;
}

/// Length of the common header (type, code, checksum, 4 type-specific bytes).
pub const HEADER_LEN: usize = field::BODY.start;

/// A view of an ICMP or ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks: accessors may panic unless it came from [`Packet::new_checked`].
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Malformed> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The 8-byte header must fit.
    pub fn check_len(&self) -> Result<(), Malformed> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed::IcmpHeader);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The raw type; name it with [`Icmpv4Message`] or [`Icmpv6Message`].
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Bytes 4..6; an identifier only in echo messages.
    pub fn echo_ident(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }

    /// Bytes 6..8; a sequence number only in echo messages.
    pub fn echo_seq_no(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::ECHO_SEQNO])
    }

    /// The echo identifier, if this is an echo request or reply.
    pub fn echo_id(&self, family: Family) -> Option<u16> {
        family.is_echo(self.msg_type()).then(|| self.echo_ident())
    }

    /// For an error message, the invoking packet's addresses, protocol and ports as far as
    /// the quote goes; see [`parse_embedded`].
    pub fn embedded(&self, family: Family) -> Option<Embedded> {
        if !family.is_error(self.msg_type()) {
            return None;
        }
        parse_embedded(family, &self.buffer.as_ref()[field::BODY])
    }

    /// Whether the checksum is right. ICMP sums the message alone; ICMPv6 adds the IPv6
    /// pseudo-header.
    pub fn verify_checksum(&self, family: Family, src: IpAddr, dst: IpAddr) -> bool {
        sum(family, src, dst, self.buffer.as_ref()) == !0
    }
}

fn sum(family: Family, src: IpAddr, dst: IpAddr, data: &[u8]) -> u16 {
    match family {
        Family::V4 => checksum::data(data),
        Family::V6 => checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Icmpv6, data.len() as u32),
            checksum::data(data),
        ]),
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Everything after the 8-byte header.
    pub fn body(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::BODY]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    pub fn set_echo_ident(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::ECHO_IDENT], value);
    }

    pub fn set_echo_seq_no(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::ECHO_SEQNO], value);
    }

    /// Computes and writes the checksum over the whole buffer (the addresses only count for
    /// ICMPv6).
    pub fn fill_checksum(&mut self, family: Family, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let value = !sum(family, src, dst, self.buffer.as_ref());
        self.set_checksum(value);
    }

    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::BODY]
    }
}

/// Reads the packet quoted in an ICMP error leniently: the quote is usually cut short, so
/// only the IP header must be whole (its length fields are ignored). Returns `None` if that
/// header is unreadable or of the other family. Ports are read for TCP and UDP when their
/// first 4 bytes are quoted, and are 0 otherwise (and for a non-first fragment). An IPv6
/// extension-header chain that cannot be walked leaves the fixed header's next header as the
/// protocol.
pub fn parse_embedded(family: Family, quoted: &[u8]) -> Option<Embedded> {
    let (src, dst, protocol, l4) = match family {
        Family::V4 => {
            let ip = ipv4::Packet::new_unchecked(quoted);
            ip.check_header().ok()?;
            let l4 = (ip.frag_offset() == 0).then(|| &quoted[usize::from(ip.header_len())..]);
            (
                IpAddr::V4(ip.src_addr()),
                IpAddr::V4(ip.dst_addr()),
                ip.protocol(),
                l4,
            )
        }
        Family::V6 => {
            let ip = ipv6::Packet::new_unchecked(quoted);
            ip.check_header().ok()?;
            let rest = &quoted[ipv6::HEADER_LEN..];
            let (protocol, l4) = match ipv6::walk_ext_headers(ip.next_header(), rest) {
                Ok(up) => {
                    let first = up.fragment.is_none_or(|f| f.offset == 0);
                    (up.protocol, rest.get(up.offset..).filter(|_| first))
                }
                Err(_) => (ip.next_header(), None),
            };
            (
                IpAddr::V6(ip.src_addr()),
                IpAddr::V6(ip.dst_addr()),
                protocol,
                l4,
            )
        }
    };
    let ports = match (protocol, l4) {
        (IpProtocol::Tcp | IpProtocol::Udp, Some([a, b, c, d, ..])) => {
            (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))
        }
        _ => (0, 0),
    };
    Some(Embedded {
        src,
        dst,
        protocol,
        src_port: ports.0,
        dst_port: ports.1,
    })
}

#[cfg(test)]
mod test {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use std::vec::Vec;

    const V4_SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
    const V4_DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);

    /// Port unreachable from 192.168.1.20, quoting the IPv4/UDP datagram 192.168.1.10:1234 ->
    /// 192.168.1.20:53 it refused (IP header + 8 bytes, as RFC 792 asks).
    fn port_unreachable() -> Vec<u8> {
        let mut bytes = std::vec![3, 3, 0, 0, 0, 0, 0, 0]; // type 3 code 3, unused
        bytes.extend_from_slice(&[
            0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, 192, 168, 1,
            10, 192, 168, 1, 20,
        ]);
        bytes.extend_from_slice(&[0x04, 0xd2, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00]);
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        Packet::new_unchecked(&mut bytes[..]).fill_checksum(Family::V4, any, any);
        bytes
    }

    #[test]
    fn port_unreachable_quotes_udp() {
        let bytes = port_unreachable();
        let icmp = Packet::new_checked(&bytes[..]).unwrap();
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert!(icmp.verify_checksum(Family::V4, any, any));
        assert_eq!(icmp.msg_type(), u8::from(Icmpv4Message::DstUnreachable));
        assert_eq!(icmp.echo_id(Family::V4), None);
        assert_eq!(
            icmp.embedded(Family::V4),
            Some(Embedded {
                src: IpAddr::V4(V4_DST),
                dst: IpAddr::V4(V4_SRC),
                protocol: IpProtocol::Udp,
                src_port: 1234,
                dst_port: 53,
            })
        );
        // The quote of the other family is not read.
        assert_eq!(icmp.embedded(Family::V6), None);
    }

    #[test]
    fn short_quotes() {
        let bytes = port_unreachable();
        // Only 2 bytes of UDP quoted: no ports.
        let icmp = Packet::new_checked(&bytes[..30]).unwrap();
        let embedded = icmp.embedded(Family::V4).unwrap();
        assert_eq!((embedded.src_port, embedded.dst_port), (0, 0));
        assert_eq!(embedded.protocol, IpProtocol::Udp);
        // A quoted IP header cut short: nothing.
        let icmp = Packet::new_checked(&bytes[..27]).unwrap();
        assert_eq!(icmp.embedded(Family::V4), None);
        // A quoted non-first fragment has no ports.
        let mut later = bytes.clone();
        later[14..16].copy_from_slice(&[0x00, 0x10]);
        let embedded = Packet::new_checked(&later[..])
            .unwrap()
            .embedded(Family::V4);
        assert_eq!(embedded.map(|e| e.src_port), Some(0));
    }

    #[test]
    fn echo_v4() {
        let mut bytes = [8, 0, 0, 0, 0x12, 0x34, 0, 1, b'h', b'i'];
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        Packet::new_unchecked(&mut bytes[..]).fill_checksum(Family::V4, any, any);
        let icmp = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(icmp.echo_id(Family::V4), Some(0x1234));
        assert_eq!(icmp.echo_seq_no(), 1);
        assert_eq!(icmp.embedded(Family::V4), None);
        assert_eq!(icmp.body(), b"hi");
        // Type 8 is not an ICMPv6 echo.
        assert_eq!(icmp.echo_id(Family::V6), None);
        assert_eq!(Packet::new_checked(&bytes[..7]), Err(Malformed::IcmpHeader));
    }

    #[test]
    fn echo_v6_checksum_uses_pseudo_header() {
        let src = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));
        let dst = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2));
        let mut bytes = [128, 0, 0, 0, 0xab, 0xcd, 0, 7];
        Packet::new_unchecked(&mut bytes[..]).fill_checksum(Family::V6, src, dst);
        let icmp = Packet::new_checked(&bytes[..]).unwrap();
        assert!(icmp.verify_checksum(Family::V6, src, dst));
        assert!(!icmp.verify_checksum(Family::V6, src, src));
        assert!(!icmp.verify_checksum(Family::V4, src, dst));
        assert_eq!(icmp.echo_id(Family::V6), Some(0xabcd));
    }

    #[test]
    fn v6_packet_too_big_quotes_tcp_behind_ext_header() {
        let mut bytes = std::vec![2, 0, 0, 0, 0, 0, 0x05, 0x00]; // MTU 1280
        let mut quoted = std::vec![0u8; ipv6::HEADER_LEN];
        let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let dst = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
        ipv6::Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Ipv6Opts,
            payload_len: 1400, // the original length: the quote is shorter
            hop_limit: 64,
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut quoted[..]));
        quoted.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // destination options
        quoted.extend_from_slice(&[0x01, 0xbb, 0xc3, 0x50, 0, 0, 0, 0]); // TCP 443 -> 50000
        bytes.extend_from_slice(&quoted);
        let icmp = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            icmp.embedded(Family::V6),
            Some(Embedded {
                src: IpAddr::V6(src),
                dst: IpAddr::V6(dst),
                protocol: IpProtocol::Tcp,
                src_port: 443,
                dst_port: 50000,
            })
        );
        // Cut inside the extension header: protocol from the fixed header, no ports.
        let cut = Packet::new_checked(&bytes[..8 + 44]).unwrap();
        let embedded = cut.embedded(Family::V6).unwrap();
        assert_eq!(embedded.protocol, IpProtocol::Ipv6Opts);
        assert_eq!(embedded.src_port, 0);
    }
}
