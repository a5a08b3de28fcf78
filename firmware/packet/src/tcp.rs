//! TCP header (RFC 9293).

use core::net::IpAddr;

use crate::ip::checksum;
use crate::{be_u16, be_u32, set_be_u16, set_be_u32, tcp_flags, IpProtocol, Malformed};

mod field {
    use crate::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::URGENT.end;

/// A view of a TCP segment. The buffer is the whole segment: the checksum covers all of it.
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

    /// The fixed header must fit, and the data offset must be at least 5 words and within the
    /// buffer.
    pub fn check_len(&self) -> Result<(), Malformed> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN
            || usize::from(self.header_len()) < HEADER_LEN
            || usize::from(self.header_len()) > len
        {
            return Err(Malformed::TcpHeader);
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

    pub fn seq_number(&self) -> u32 {
        be_u32(&self.buffer.as_ref()[field::SEQ_NUM])
    }

    pub fn ack_number(&self) -> u32 {
        be_u32(&self.buffer.as_ref()[field::ACK_NUM])
    }

    /// The header length in bytes (data offset * 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The 8 flag bits (see [`tcp_flags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn syn(&self) -> bool {
        self.flags() & tcp_flags::SYN != 0
    }

    pub fn ack(&self) -> bool {
        self.flags() & tcp_flags::ACK != 0
    }

    pub fn fin(&self) -> bool {
        self.flags() & tcp_flags::FIN != 0
    }

    pub fn rst(&self) -> bool {
        self.flags() & tcp_flags::RST != 0
    }

    pub fn window_len(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::WIN_SIZE])
    }

    pub fn checksum(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    pub fn urgent_at(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::URGENT])
    }

    /// Whether the checksum over the pseudo-header and the whole buffer is right.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let data = self.buffer.as_ref();
        checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Tcp, data.len() as u32),
            checksum::data(data),
        ]) == !0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::SRC_PORT], value);
    }

    pub fn set_dst_port(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::DST_PORT], value);
    }

    pub fn set_seq_number(&mut self, value: u32) {
        set_be_u32(&mut self.buffer.as_mut()[field::SEQ_NUM], value);
    }

    pub fn set_ack_number(&mut self, value: u32) {
        set_be_u32(&mut self.buffer.as_mut()[field::ACK_NUM], value);
    }

    /// Sets the data offset from a header length in bytes (a multiple of 4).
    pub fn set_header_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::DATA_OFF] = (value / 4) << 4;
    }

    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    pub fn set_window_len(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::WIN_SIZE], value);
    }

    pub fn set_checksum(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    pub fn set_urgent_at(&mut self, value: u16) {
        set_be_u16(&mut self.buffer.as_mut()[field::URGENT], value);
    }

    /// Computes and writes the checksum over the pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Tcp, data.len() as u32),
            checksum::data(data),
        ]);
        self.set_checksum(!sum);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }
}

/// An option-less segment as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    pub ack_number: u32,
    pub flags: u8,
    pub window_len: u16,
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Reads the segment; options are skipped and the checksum is not checked.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>, Malformed> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            payload: packet.payload(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Writes header, payload and checksum; the buffer must be exactly [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: IpAddr,
        dst: IpAddr,
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.set_header_len(HEADER_LEN as u8);
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_urgent_at(0);
        packet.payload_mut().copy_from_slice(self.payload);
        packet.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use core::net::Ipv4Addr;

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20));

    /// A SYN to Modbus/TCP (port 502) with MSS 1460, SACK permitted and window scale 7;
    /// checksum computed independently for 192.168.1.10 -> 192.168.1.20.
    const SYN: [u8; 32] = [
        0xc0, 0x00, 0x01, 0xf6, // ports 49152 -> 502
        0x12, 0x34, 0x56, 0x78, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0x80, 0x02, // data offset 8, SYN
        0xfa, 0xf0, // window 64240
        0xc6, 0x0e, // checksum
        0x00, 0x00, // urgent
        2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7, // MSS, NOP NOP SACKP, NOP WS
    ];

    #[test]
    fn syn_with_options() {
        let tcp = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!((tcp.src_port(), tcp.dst_port()), (49152, 502));
        assert_eq!((tcp.seq_number(), tcp.ack_number()), (0x1234_5678, 0));
        assert_eq!(tcp.header_len(), 32);
        assert!(tcp.syn() && !tcp.ack() && !tcp.fin() && !tcp.rst());
        assert_eq!(tcp.window_len(), 64240);
        assert_eq!(tcp.options().len(), 12);
        assert_eq!(tcp.payload(), &[]);
        assert!(tcp.verify_checksum(SRC, DST));
        assert!(!tcp.verify_checksum(DST, DST));
    }

    #[test]
    fn fill_checksum_matches_fixture() {
        let mut bytes = SYN;
        let mut tcp = Packet::new_unchecked(&mut bytes[..]);
        tcp.set_checksum(0);
        tcp.fill_checksum(SRC, DST);
        assert_eq!(bytes, SYN);
    }

    #[test]
    fn malformed() {
        assert_eq!(Packet::new_checked(&SYN[..19]), Err(Malformed::TcpHeader));
        // Data offset 8 needs 32 bytes.
        assert_eq!(Packet::new_checked(&SYN[..31]), Err(Malformed::TcpHeader));
        let mut short = SYN;
        short[12] = 0x40; // data offset 4
        assert_eq!(Packet::new_checked(&short[..]), Err(Malformed::TcpHeader));
        let mut options_as_payload = SYN;
        options_as_payload[12] = 0x50;
        let tcp = Packet::new_checked(&options_as_payload[..]).unwrap();
        assert_eq!(tcp.payload().len(), 12);
    }

    #[test]
    fn repr_round_trip() {
        let repr = Repr {
            src_port: 502,
            dst_port: 49152,
            seq_number: 1,
            ack_number: 0x1234_5679,
            flags: tcp_flags::PSH | tcp_flags::ACK,
            window_len: 512,
            payload: &[0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1],
        };
        let mut bytes = std::vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), SRC, DST);
        let tcp = Packet::new_checked(&bytes[..]).unwrap();
        assert!(tcp.verify_checksum(SRC, DST));
        assert_eq!(Repr::parse(&tcp), Ok(repr));
    }
}
