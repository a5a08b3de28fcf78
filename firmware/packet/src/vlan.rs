//! IEEE 802.1Q / 802.1ad tag: the 4 bytes after a 0x8100 or 0x88a8 TPID (TCI, then the inner
//! ethertype). The TPID itself is the preceding ethertype field.

use crate::{be_u16, set_be_u16, EtherType, Malformed};

mod field {
    use crate::{Field, Rest};

    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
    pub const PAYLOAD: Rest = 4..;
}

/// Length of the tag after the TPID.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A view of one tag (TCI + inner ethertype) and what follows it.
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

    /// The buffer must hold the whole tag.
    pub fn check_len(&self) -> Result<(), Malformed> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed::VlanTruncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn tci(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::TCI])
    }

    /// Priority code point, 0..=7.
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN id, 0..=4095.
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The ethertype of what follows the tag (possibly another tag).
    pub fn ethertype(&self) -> EtherType {
        be_u16(&self.buffer.as_ref()[field::ETHERTYPE]).into()
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the TCI; `pcp` and `vid` are masked to 3 and 12 bits.
    pub fn set_tci(&mut self, pcp: u8, dei: bool, vid: u16) {
        let tci = (u16::from(pcp & 0x7) << 13) | (u16::from(dei) << 12) | (vid & 0x0fff);
        set_be_u16(&mut self.buffer.as_mut()[field::TCI], tci);
    }

    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        set_be_u16(
            &mut self.buffer.as_mut()[field::ETHERTYPE],
            ethertype.into(),
        );
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// A tag as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub pcp: u8,
    pub dei: bool,
    pub vid: u16,
    pub ethertype: EtherType,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Malformed> {
        packet.check_len()?;
        Ok(Repr {
            pcp: packet.pcp(),
            dei: packet.dei(),
            vid: packet.vid(),
            ethertype: packet.ethertype(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_tci(self.pcp, self.dei, self.vid);
        packet.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn reads_tci() {
        // PCP 5, DEI 1, VID 0x123; inner IPv4; one payload byte.
        let bytes = [0xb1, 0x23, 0x08, 0x00, 0x45];
        let tag = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((tag.pcp(), tag.dei(), tag.vid()), (5, true, 0x123));
        assert_eq!(tag.ethertype(), EtherType::Ipv4);
        assert_eq!(tag.payload(), &[0x45]);
        assert_eq!(
            Packet::new_checked(&bytes[..3]),
            Err(Malformed::VlanTruncated)
        );
    }

    #[test]
    fn repr_round_trip() {
        let repr = Repr {
            pcp: 7,
            dei: false,
            vid: 4095,
            ethertype: EtherType::Profinet,
        };
        let mut buf = [0u8; HEADER_LEN];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, [0xef, 0xff, 0x88, 0x92]);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&buf[..]).unwrap()),
            Ok(repr)
        );
    }
}
