//! UDP header (RFC 768).

use core::net::IpAddr;

use crate::ip::checksum;
use crate::{be_u16, set_be_u16, IpProtocol, Malformed};

mod field {
    use crate::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks: accessors may panic unless it came from
    /// [`Packet::new_checked`] or [`Packet::new_checked_first_fragment`].
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Malformed> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Wraps the first fragment of a datagram after [`Packet::check_header`]: its length
    /// field also counts the bytes in later fragments.
    pub fn new_checked_first_fragment(buffer: T) -> Result<Packet<T>, Malformed> {
        let packet = Self::new_unchecked(buffer);
        packet.check_header()?;
        Ok(packet)
    }

    /// [`Packet::check_header`], and the length field must fit in the buffer.
    pub fn check_len(&self) -> Result<(), Malformed> {
        self.check_header()?;
        if usize::from(self.len()) > self.buffer.as_ref().len() {
            return Err(Malformed::UdpHeader);
        }
        Ok(())
    }

    /// A whole header whose length field counts at least the header.
    pub fn check_header(&self) -> Result<(), Malformed> {
        if self.buffer.as_ref().len() < HEADER_LEN || usize::from(self.len()) < HEADER_LEN {
            return Err(Malformed::UdpHeader);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    pub fn dst_port(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// The length field: header plus payload.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    pub fn checksum(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The end of the datagram: the length field, or the buffer if that is shorter (a first
    /// fragment).
    fn end(&self) -> usize {
        usize::from(self.len()).clamp(HEADER_LEN, self.buffer.as_ref().len().max(HEADER_LEN))
    }

    /// Whether the checksum is right. Zero means "none" over IPv4 but is invalid over IPv6
    /// (RFC 8200 section 8.1).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if self.checksum() == 0 {
            return matches!((src, dst), (IpAddr::V4(_), IpAddr::V4(_)));
        }
        let data = &self.buffer.as_ref()[..self.end()];
        checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Udp, data.len() as u32),
            checksum::data(data),
        ]) == !0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload, bounded by the length field and the buffer.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.end()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::SRC_PORT], value);
    }

    pub fn set_dst_port(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::DST_PORT], value);
    }

    pub fn set_len(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    pub fn set_checksum(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Computes and writes the checksum over the pseudo-header and the datagram (a computed
    /// zero is sent as `0xffff`, since zero means "no checksum").
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let data = &self.buffer.as_ref()[..self.end()];
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Udp, data.len() as u32),
            checksum::data(data),
        ]);
        self.set_checksum(match !sum {
            0 => 0xffff,
            sum => sum,
        });
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.end();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A datagram as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Reads the datagram; the checksum is not checked.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>, Malformed> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload: packet.payload(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Writes header, payload and checksum; the buffer must be at least [`Repr::buffer_len`]
    /// and the payload at most 65527 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: IpAddr,
        dst: IpAddr,
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(self.buffer_len() as u16);
        packet.payload_mut().copy_from_slice(self.payload);
        packet.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20));

    /// 1234 -> 53, "ping"; checksum computed independently for 192.168.1.10 -> .20.
    const PING: [u8; 12] = [
        0x04, 0xd2, 0x00, 0x35, 0x00, 0x0c, 0x98, 0x8f, b'p', b'i', b'n', b'g',
    ];

    #[test]
    fn reads_datagram() {
        let udp = Packet::new_checked(&PING[..]).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port(), udp.len()), (1234, 53, 12));
        assert_eq!(udp.payload(), b"ping");
        assert!(udp.verify_checksum(SRC, DST));
        assert!(!udp.verify_checksum(SRC, SRC));
    }

    #[test]
    fn length_field_bounds_payload() {
        let mut bytes = PING.to_vec();
        bytes.extend_from_slice(&[0xee; 6]); // trailing bytes past the length field
        let udp = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(udp.payload(), b"ping");
        assert!(udp.verify_checksum(SRC, DST));
    }

    #[test]
    fn malformed_lengths() {
        assert_eq!(Packet::new_checked(&PING[..7]), Err(Malformed::UdpHeader));
        // Length field 12 > 11-byte buffer.
        assert_eq!(Packet::new_checked(&PING[..11]), Err(Malformed::UdpHeader));
        let mut short = PING;
        short[5] = 7;
        assert_eq!(Packet::new_checked(&short[..]), Err(Malformed::UdpHeader));
        // A first fragment may stop before the length field says.
        let first = Packet::new_checked_first_fragment(&PING[..10]).unwrap();
        assert_eq!(first.payload(), b"pi");
        assert_eq!(
            Packet::new_checked_first_fragment(&short[..]),
            Err(Malformed::UdpHeader)
        );
    }

    #[test]
    fn zero_checksum() {
        let mut bytes = PING;
        bytes[6..8].copy_from_slice(&[0, 0]);
        let udp = Packet::new_checked(&bytes[..]).unwrap();
        assert!(udp.verify_checksum(SRC, DST));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(!udp.verify_checksum(v6, v6));
    }

    #[test]
    fn repr_round_trip() {
        let repr = Repr {
            src_port: 1234,
            dst_port: 53,
            payload: b"ping",
        };
        let mut bytes = [0u8; 12];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), SRC, DST);
        assert_eq!(bytes, PING);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()),
            Ok(repr)
        );
    }
}
