//! IPv4 header (RFC 791).

use core::net::Ipv4Addr;

use crate::ip::checksum;
use crate::{be_u16, ipv4_at, set_be_u16, IpProtocol, Malformed};

mod field {
    use crate::Field;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
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

    /// [`Packet::check_header`], and the total length must cover the header and fit in the
    /// buffer. Bytes past the total length (Ethernet padding) are not part of the packet.
    pub fn check_len(&self) -> Result<(), Malformed> {
        self.check_header()?;
        let total = usize::from(self.total_len());
        if total < usize::from(self.header_len()) || total > self.buffer.as_ref().len() {
            return Err(Malformed::Ipv4Header);
        }
        Ok(())
    }

    /// Version 4 and a header (IHL >= 5) that fits in the buffer; the total length is not
    /// looked at. This is what can be asked of the truncated copy quoted in an ICMP error.
    pub fn check_header(&self) -> Result<(), Malformed> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN
            || self.version() != 4
            || usize::from(self.header_len()) < HEADER_LEN
            || usize::from(self.header_len()) > len
        {
            return Err(Malformed::Ipv4Header);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL * 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    pub fn total_len(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    pub fn ident(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::IDENT])
    }

    fn flags_offset(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::FLG_OFF])
    }

    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// The fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) * 8
    }

    /// Whether this is one piece of a fragmented datagram (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> IpProtocol {
        self.buffer.as_ref()[field::PROTOCOL].into()
    }

    pub fn checksum(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        ipv4_at(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        ipv4_at(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// Whether the header checksum is right. [`crate::dissect`] does not ask: end hosts drop
    /// such packets themselves, and a bump in the wire must not be stricter than they are.
    pub fn verify_checksum(&self) -> bool {
        let data = self.buffer.as_ref();
        checksum::data(&data[..usize::from(self.header_len())]) == !0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The options between the fixed header and the payload.
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The payload, bounded by the total length field.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: u8) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, dscp: u8, ecn: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = (dscp << 2) | (ecn & 0x03);
    }

    pub fn set_total_len(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    pub fn set_ident(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::IDENT], value);
    }

    /// Sets DF, MF and the offset in bytes (rounded down to a multiple of 8).
    pub fn set_flags_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut value = (offset / 8) & OFFSET_MASK;
        if dont_frag {
            value |= FLAG_DF;
        }
        if more_frags {
            value |= FLAG_MF;
        }
        set_be_u16(&mut self.buffer.as_mut()[field::FLG_OFF], value);
    }

    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    pub fn set_protocol(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into();
    }

    pub fn set_checksum(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes and writes the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = usize::from(self.header_len());
        let sum = checksum::data(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(!sum);
    }

    /// The payload, bounded by the total length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// An option-less IPv4 header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: IpProtocol,
    pub payload_len: u16,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// In bytes, a multiple of 8.
    pub frag_offset: u16,
}

impl Repr {
    /// Reads the header; options are skipped and the checksum is not checked.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Malformed> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.total_len() - u16::from(packet.header_len()),
            ttl: packet.ttl(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with its checksum. The buffer must hold the header; the payload
    /// is left alone.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version_and_header_len(HEADER_LEN as u8);
        packet.set_dscp_ecn(0, 0);
        packet.set_total_len(self.payload_len.saturating_add(HEADER_LEN as u16));
        packet.set_ident(self.ident);
        packet.set_flags_offset(self.dont_frag, self.more_frags, self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// UDP from 192.168.0.1 to 192.168.0.199, total length 0x73, DF, TTL 64, checksum 0xb861
    /// (the worked example for the IPv4 header checksum).
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn packet_with_payload(payload_len: usize, padding: usize) -> std::vec::Vec<u8> {
        let mut bytes = HEADER.to_vec();
        bytes[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
        bytes.extend((0..payload_len).map(|i| i as u8));
        bytes.extend(core::iter::repeat_n(0xee, padding));
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.fill_checksum();
        bytes
    }

    #[test]
    fn reads_known_header() {
        let mut bytes = HEADER.to_vec();
        bytes.resize(0x73, 0);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.total_len(), 0x73);
        assert!(packet.dont_frag() && !packet.more_frags() && !packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), IpProtocol::Udp);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(packet.verify_checksum());
        assert_eq!(packet.payload().len(), 0x73 - 20);
    }

    #[test]
    fn fill_checksum_matches_known_value() {
        let mut bytes = HEADER;
        bytes[10..12].copy_from_slice(&[0xde, 0xad]);
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        assert!(!packet.verify_checksum());
        packet.fill_checksum();
        assert_eq!(packet.checksum(), 0xb861);
    }

    #[test]
    fn padding_is_not_payload() {
        let bytes = packet_with_payload(6, 20);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload(), &[0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn options_are_skipped() {
        let mut bytes = packet_with_payload(4, 0);
        // Insert a 4-byte option (NOP NOP NOP EOL) and bump IHL and total length.
        bytes.splice(20..20, [1, 1, 1, 0]);
        bytes[0] = 0x46;
        bytes[3] += 4;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.options(), &[1, 1, 1, 0]);
        assert_eq!(packet.payload(), &[0, 1, 2, 3]);
    }

    #[test]
    fn fragments() {
        let mut bytes = packet_with_payload(8, 0);
        Packet::new_unchecked(&mut bytes[..]).set_flags_offset(false, true, 0);
        let first = Packet::new_checked(&bytes[..]).unwrap();
        assert!(first.is_fragment() && first.more_frags() && first.frag_offset() == 0);
        Packet::new_unchecked(&mut bytes[..]).set_flags_offset(false, false, 1480);
        let last = Packet::new_checked(&bytes[..]).unwrap();
        assert!(last.is_fragment() && !last.more_frags() && last.frag_offset() == 1480);
    }

    #[test]
    fn malformed_headers() {
        let good = packet_with_payload(8, 0);
        let bad = |edit: &dyn Fn(&mut std::vec::Vec<u8>)| {
            let mut bytes = good.clone();
            edit(&mut bytes);
            Packet::new_checked(&bytes[..]).map(|_| ())
        };
        assert_eq!(bad(&|_| ()), Ok(()));
        assert_eq!(bad(&|b| b.truncate(19)), Err(Malformed::Ipv4Header));
        assert_eq!(bad(&|b| b.truncate(27)), Err(Malformed::Ipv4Header)); // total_len > buffer
        assert_eq!(bad(&|b| b[0] = 0x65), Err(Malformed::Ipv4Header)); // version 6
        assert_eq!(bad(&|b| b[0] = 0x44), Err(Malformed::Ipv4Header)); // IHL 4
        assert_eq!(bad(&|b| b[0] = 0x48), Err(Malformed::Ipv4Header)); // IHL 8 > total 28
        assert_eq!(bad(&|b| b[3] = 19), Err(Malformed::Ipv4Header)); // total < header
        assert_eq!(bad(&|b| b[0] = 0x4f), Err(Malformed::Ipv4Header)); // IHL 15 > buffer
    }

    #[test]
    fn repr_round_trip() {
        let repr = Repr {
            src_addr: Ipv4Addr::new(10, 1, 2, 3),
            dst_addr: Ipv4Addr::new(10, 3, 2, 1),
            protocol: IpProtocol::Tcp,
            payload_len: 4,
            ttl: 63,
            ident: 0xbeef,
            dont_frag: false,
            more_frags: true,
            frag_offset: 64,
        };
        let mut bytes = [0u8; 24];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum());
        assert_eq!(Repr::parse(&packet), Ok(repr));
    }
}
