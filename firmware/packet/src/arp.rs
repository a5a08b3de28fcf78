//! ARP for Ethernet/IPv4 (RFC 826 with htype 1, ptype 0x0800, hlen 6, plen 4). Other
//! hardware/protocol combinations have no business on an industrial Ethernet segment and are
//! rejected as [`Malformed::Arp`].

use core::net::Ipv4Addr;

use crate::macros::enum_with_unknown;
use crate::{be_u16, ipv4_at, set_be_u16, EtherType, MacAddr, Malformed};

enum_with_unknown! {
    /// The ARP opcode.
    pub enum Operation(u16) {
        Request = 1,
        Reply = 2,
    }
}

mod field {
    use crate::Field;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet (frames carry padding after it).
pub const PACKET_LEN: usize = field::TPA.end;
const HTYPE_ETHERNET: u16 = 1;

/// A view of an Ethernet/IPv4 ARP packet.
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

    /// The buffer must hold 28 bytes, and the types and sizes must be Ethernet/IPv4 (the
    /// sizes decide where the address fields are).
    pub fn check_len(&self) -> Result<(), Malformed> {
        let data = self.buffer.as_ref();
        let ok = data.len() >= PACKET_LEN
            && self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == EtherType::Ipv4
            && data[field::HLEN] == 6
            && data[field::PLEN] == 4;
        if ok {
            Ok(())
        } else {
            Err(Malformed::Arp)
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn hardware_type(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::HTYPE])
    }

    pub fn protocol_type(&self) -> EtherType {
        be_u16(&self.buffer.as_ref()[field::PTYPE]).into()
    }

    pub fn operation(&self) -> Operation {
        be_u16(&self.buffer.as_ref()[field::OPER]).into()
    }

    pub fn sender_hardware_addr(&self) -> MacAddr {
        MacAddr::from_slice(&self.buffer.as_ref()[field::SHA])
    }

    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        ipv4_at(&self.buffer.as_ref()[field::SPA])
    }

    pub fn target_hardware_addr(&self) -> MacAddr {
        MacAddr::from_slice(&self.buffer.as_ref()[field::THA])
    }

    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        ipv4_at(&self.buffer.as_ref()[field::TPA])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes htype, ptype, hlen and plen for Ethernet/IPv4.
    pub fn set_ethernet_ipv4(&mut self) {
        let data = self.buffer.as_mut();
        set_be_u16(&mut data[field::HTYPE], HTYPE_ETHERNET);
        set_be_u16(&mut data[field::PTYPE], EtherType::Ipv4.into());
        data[field::HLEN] = 6;
        data[field::PLEN] = 4;
    }

    pub fn set_operation(&mut self, operation: Operation) {
        set_be_u16(&mut self.buffer.as_mut()[field::OPER], operation.into());
    }

    pub fn set_sender_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr.0);
    }

    pub fn set_sender_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    pub fn set_target_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr.0);
    }

    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
    }
}

/// An Ethernet/IPv4 ARP packet as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub operation: Operation,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Malformed> {
        packet.check_len()?;
        Ok(Repr {
            operation: packet.operation(),
            sender_mac: packet.sender_hardware_addr(),
            sender_ip: packet.sender_protocol_addr(),
            target_mac: packet.target_hardware_addr(),
            target_ip: packet.target_protocol_addr(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_ethernet_ipv4();
        packet.set_operation(self.operation);
        packet.set_sender_hardware_addr(self.sender_mac);
        packet.set_sender_protocol_addr(self.sender_ip);
        packet.set_target_hardware_addr(self.target_mac);
        packet.set_target_protocol_addr(self.target_ip);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// "Who has 192.168.0.20? Tell 192.168.0.10", hand-assembled from RFC 826.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, // htype Ethernet
        0x08, 0x00, // ptype IPv4
        6, 4, // hlen, plen
        0x00, 0x01, // request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // sender MAC
        192, 168, 0, 10, // sender IP
        0, 0, 0, 0, 0, 0, // target MAC (unknown)
        192, 168, 0, 20, // target IP
    ];

    #[test]
    fn request() {
        let arp = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(
            Repr::parse(&arp),
            Ok(Repr {
                operation: Operation::Request,
                sender_mac: MacAddr([2, 0, 0, 0, 0, 0x0a]),
                sender_ip: Ipv4Addr::new(192, 168, 0, 10),
                target_mac: MacAddr([0; 6]),
                target_ip: Ipv4Addr::new(192, 168, 0, 20),
            })
        );
    }

    #[test]
    fn emit_matches_fixture() {
        let repr = Repr::parse(&Packet::new_checked(&REQUEST[..]).unwrap()).unwrap();
        let mut buf = [0xffu8; PACKET_LEN];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn rejects_truncated_and_foreign() {
        assert_eq!(Packet::new_checked(&REQUEST[..27]), Err(Malformed::Arp));
        for (at, value) in [(1, 6), (2, 0x86), (4, 8), (5, 16)] {
            let mut bytes = REQUEST;
            bytes[at] = value;
            assert_eq!(
                Packet::new_checked(&bytes[..]),
                Err(Malformed::Arp),
                "byte {at}"
            );
        }
    }
}
