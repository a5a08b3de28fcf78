//! IPv6 fixed header (RFC 8200) and the walk over its extension-header chain.

use core::net::Ipv6Addr;

use crate::{be_u16, be_u32, ipv6_at, set_be_u16, set_be_u32, IpProtocol, Malformed};

mod field {
    use crate::{Field, Rest};

    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
    pub const PAYLOAD: Rest = 40..;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// The longest extension-header chain walked; a longer one is [`Malformed::Ipv6Header`].
/// Real traffic carries two or three; long chains only serve to hide the transport header.
pub const MAX_EXT_HEADERS: usize = 8;

/// A view of an IPv6 packet.
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

    /// [`Packet::check_header`], and the payload length must fit in the buffer. Bytes past it
    /// (Ethernet padding) are not part of the packet.
    pub fn check_len(&self) -> Result<(), Malformed> {
        self.check_header()?;
        if HEADER_LEN + usize::from(self.payload_len()) > self.buffer.as_ref().len() {
            return Err(Malformed::Ipv6Header);
        }
        Ok(())
    }

    /// Version 6 and a whole fixed header; the payload length is not looked at.
    pub fn check_header(&self) -> Result<(), Malformed> {
        if self.buffer.as_ref().len() < HEADER_LEN || self.version() != 6 {
            return Err(Malformed::Ipv6Header);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn ver_tc_flow(&self) -> u32 {
        be_u32(&self.buffer.as_ref()[field::VER_TC_FLOW])
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Everything after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// The first next-header value (an extension header or the upper layer).
    pub fn next_header(&self) -> IpProtocol {
        self.buffer.as_ref()[field::NXT_HDR].into()
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        ipv6_at(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        ipv6_at(&self.buffer.as_ref()[field::DST_ADDR])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload (extension headers included), bounded by the payload length field.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// Walks the extension headers of the payload; see [`walk_ext_headers`].
    pub fn upper_layer(&self) -> Result<UpperLayer, Malformed> {
        walk_ext_headers(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 6 with the given traffic class and flow label (masked to 20 bits).
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let value = (6 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        set_be_u32(&mut self.buffer.as_mut()[field::VER_TC_FLOW], value);
    }

    pub fn set_payload_len(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.into();
    }

    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The fields of a fragment header (RFC 8200 section 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    /// In bytes, a multiple of 8.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
}

/// Where the extension-header chain ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The protocol after the last extension header walked. For a non-first fragment it is
    /// the fragment header's next header, whose bytes are in the first fragment.
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header within the IPv6 payload.
    pub offset: usize,
    pub fragment: Option<FragmentHeader>,
}

/// Walks the extension headers in `data` (an IPv6 payload), starting with `next` (the fixed
/// header's next header), up to the first protocol that is not hop-by-hop, routing, fragment,
/// destination options or AH. ESP and "no next header" end the walk too: nothing after them
/// can be read.
///
/// A non-first fragment ends the walk at its fragment header. Errors are
/// [`Malformed::Ipv6Header`]: a header cut short, hop-by-hop anywhere but first (RFC 8200
/// section 4.1), two fragment headers, or more than [`MAX_EXT_HEADERS`] headers.
pub fn walk_ext_headers(mut next: IpProtocol, data: &[u8]) -> Result<UpperLayer, Malformed> {
    let mut offset = 0;
    let mut fragment = None;
    for index in 0..=MAX_EXT_HEADERS {
        let done = UpperLayer {
            protocol: next,
            offset,
            fragment,
        };
        if !matches!(
            next,
            IpProtocol::HopByHop
                | IpProtocol::Ipv6Route
                | IpProtocol::Ipv6Frag
                | IpProtocol::Ipv6Opts
                | IpProtocol::Ah
        ) {
            return Ok(done);
        }
        if index == MAX_EXT_HEADERS || (next == IpProtocol::HopByHop && index != 0) {
            break;
        }
        // Every extension header is at least 8 bytes long.
        let header = match data.get(offset..) {
            Some(rest) if rest.len() >= 8 => rest,
            _ => break,
        };
        let len = match next {
            IpProtocol::Ipv6Frag => {
                if fragment.is_some() {
                    break;
                }
                let off_flags = be_u16(&header[2..4]);
                let frag = FragmentHeader {
                    offset: off_flags & !0x7,
                    more: off_flags & 0x1 != 0,
                    ident: be_u32(&header[4..8]),
                };
                fragment = Some(frag);
                if frag.offset != 0 {
                    return Ok(UpperLayer {
                        protocol: header[0].into(),
                        offset: offset + 8,
                        fragment,
                    });
                }
                8
            }
            // RFC 4302: the length counts 4-byte words, minus 2.
            IpProtocol::Ah => (usize::from(header[1]) + 2) * 4,
            _ => (usize::from(header[1]) + 1) * 8,
        };
        if header.len() < len {
            break;
        }
        next = header[0].into();
        offset += len;
    }
    Err(Malformed::Ipv6Header)
}

/// The fixed header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub next_header: IpProtocol,
    pub payload_len: u16,
    pub hop_limit: u8,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Malformed> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len(),
            hop_limit: packet.hop_limit(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header (traffic class and flow label 0); the payload is left alone.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version_tc_flow(0, 0);
        packet.set_payload_len(self.payload_len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::vec::Vec;

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

    fn packet(next: IpProtocol, payload: &[u8], padding: usize) -> Vec<u8> {
        let mut bytes = std::vec![0; HEADER_LEN];
        Repr {
            src_addr: SRC,
            dst_addr: DST,
            next_header: next,
            payload_len: payload.len() as u16,
            hop_limit: 64,
        }
        .emit(&mut Packet::new_unchecked(&mut bytes[..]));
        bytes.extend_from_slice(payload);
        bytes.resize(bytes.len() + padding, 0xee);
        bytes
    }

    /// Hop-by-hop (router alert, 8 bytes), then a first fragment header, then UDP.
    const HBH_FRAG_UDP: [u8; 24] = [
        44, 0, 5, 2, 0, 0, 1, 0, // HBH: next=fragment, len 0, router alert, PadN(0)
        17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef, // fragment: next=UDP, offset 0, M=1
        0x04, 0xd2, 0x16, 0x2e, 0x00, 0x10, 0x00, 0x00, // UDP header (first 8 bytes)
    ];

    #[test]
    fn fixed_header() {
        let bytes = packet(IpProtocol::Icmpv6, &[1, 2, 3], 10);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.version(), p.traffic_class(), p.flow_label()), (6, 0, 0));
        assert_eq!((p.src_addr(), p.dst_addr()), (SRC, DST));
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.payload(), &[1, 2, 3]);
        assert_eq!(Repr::parse(&p).unwrap().payload_len, 3);
        assert_eq!(
            p.upper_layer(),
            Ok(UpperLayer {
                protocol: IpProtocol::Icmpv6,
                offset: 0,
                fragment: None
            })
        );
    }

    #[test]
    fn malformed_fixed_header() {
        let bytes = packet(IpProtocol::Udp, &[0; 8], 0);
        assert_eq!(
            Packet::new_checked(&bytes[..39]),
            Err(Malformed::Ipv6Header)
        );
        assert_eq!(
            Packet::new_checked(&bytes[..47]),
            Err(Malformed::Ipv6Header)
        );
        let mut v4 = bytes.clone();
        v4[0] = 0x40;
        assert_eq!(Packet::new_checked(&v4[..]), Err(Malformed::Ipv6Header));
    }

    #[test]
    fn hop_by_hop_then_fragment() {
        let bytes = packet(IpProtocol::HopByHop, &HBH_FRAG_UDP, 0);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            p.upper_layer(),
            Ok(UpperLayer {
                protocol: IpProtocol::Udp,
                offset: 16,
                fragment: Some(FragmentHeader {
                    offset: 0,
                    more: true,
                    ident: 0xdeadbeef
                }),
            })
        );
    }

    #[test]
    fn later_fragment_stops_at_fragment_header() {
        // Offset 1448 bytes (181 units << 3), M=0; the "UDP header" is just data now.
        let mut payload = HBH_FRAG_UDP;
        payload[10..12].copy_from_slice(&(1448u16).to_be_bytes());
        let up = walk_ext_headers(IpProtocol::HopByHop, &payload).unwrap();
        assert_eq!(up.protocol, IpProtocol::Udp);
        assert_eq!(up.offset, 16);
        assert_eq!(up.fragment.map(|f| (f.offset, f.more)), Some((1448, false)));
    }

    #[test]
    fn routing_destination_options_and_ah_lengths() {
        let mut chain = Vec::new();
        chain.extend_from_slice(&[60, 1, 0, 0, 0, 0, 0, 0]); // routing, 16 bytes
        chain.extend_from_slice(&[0; 8]);
        chain.extend_from_slice(&[51, 0, 1, 4, 0, 0, 0, 0]); // dest opts, 8 bytes
        chain.extend_from_slice(&[6, 4, 0, 0]); // AH, (4 + 2) * 4 = 24 bytes
        chain.extend_from_slice(&[0; 20]);
        let up = walk_ext_headers(IpProtocol::Ipv6Route, &chain).unwrap();
        assert_eq!((up.protocol, up.offset), (IpProtocol::Tcp, 48));
    }

    #[test]
    fn malformed_chains() {
        // Truncated hop-by-hop.
        assert_eq!(
            walk_ext_headers(IpProtocol::HopByHop, &HBH_FRAG_UDP[..7]),
            Err(Malformed::Ipv6Header)
        );
        // Hop-by-hop whose length runs past the data.
        assert_eq!(
            walk_ext_headers(IpProtocol::HopByHop, &[6, 1, 0, 0, 0, 0, 0, 0, 0]),
            Err(Malformed::Ipv6Header)
        );
        // Hop-by-hop after another header.
        let late_hbh = [0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            walk_ext_headers(IpProtocol::Ipv6Opts, &late_hbh),
            Err(Malformed::Ipv6Header)
        );
        // Two fragment headers.
        let two_frags = [44, 0, 0, 1, 0, 0, 0, 1, 17, 0, 0, 1, 0, 0, 0, 1];
        assert_eq!(
            walk_ext_headers(IpProtocol::Ipv6Frag, &two_frags),
            Err(Malformed::Ipv6Header)
        );
        // MAX_EXT_HEADERS destination options are fine, one more is not.
        let opts = |n: usize| {
            let mut chain = Vec::new();
            for _ in 0..n - 1 {
                chain.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
            }
            chain.extend_from_slice(&[59, 0, 1, 4, 0, 0, 0, 0]);
            chain
        };
        let up = walk_ext_headers(IpProtocol::Ipv6Opts, &opts(MAX_EXT_HEADERS)).unwrap();
        assert_eq!((up.protocol, up.offset), (IpProtocol::Ipv6NoNxt, 64));
        assert_eq!(
            walk_ext_headers(IpProtocol::Ipv6Opts, &opts(MAX_EXT_HEADERS + 1)),
            Err(Malformed::Ipv6Header)
        );
    }

    #[test]
    fn esp_ends_the_walk() {
        let up = walk_ext_headers(IpProtocol::Esp, &[1, 2, 3]).unwrap();
        assert_eq!((up.protocol, up.offset), (IpProtocol::Esp, 0));
    }
}
