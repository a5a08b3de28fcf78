//! Ethernet II header (IEEE 802.3 without preamble and FCS): addresses and ethertype.

use core::fmt;
use core::str::FromStr;

use crate::macros::enum_with_unknown;
use crate::{be_u16, set_be_u16, Malformed};

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Reads an address from a slice that the caller has checked to be 6 bytes long.
    pub(crate) fn from_slice(b: &[u8]) -> MacAddr {
        let mut octets = [0; 6];
        octets.copy_from_slice(&b[..6]);
        MacAddr(octets)
    }

    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// The I/G bit: group addresses (which include broadcast) are flooded by switches.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Debug prints the familiar notation: addresses show up in test failures and drop events.
impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not six colon-separated pairs of hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseMacAddrError;

impl fmt::Display for ParseMacAddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid MAC address, expected six hex pairs like aa:bb:cc:dd:ee:ff")
    }
}

impl core::error::Error for ParseMacAddrError {}

/// Parses `aa:bb:cc:dd:ee:ff` (either case). Only the colon form is accepted, so that a
/// configuration has a single spelling for an address.
impl FromStr for MacAddr {
    type Err = ParseMacAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut octets = [0; 6];
        let mut parts = s.split(':');
        for octet in &mut octets {
            let part = parts.next().ok_or(ParseMacAddrError)?;
            // from_str_radix alone would also take "+f".
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ParseMacAddrError);
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| ParseMacAddrError)?;
        }
        match parts.next() {
            Some(_) => Err(ParseMacAddrError),
            None => Ok(MacAddr(octets)),
        }
    }
}

enum_with_unknown! {
    /// The ethertype / TPID field. Industrial layer-2 protocols are named so that policy can
    /// refer to them; anything else is `Unknown(raw)`.
    pub enum EtherType(u16) {
        Ipv4 = 0x0800,
        Arp = 0x0806,
        Rarp = 0x8035,
        /// IEEE 802.1Q C-tag.
        Vlan = 0x8100,
        Ipv6 = 0x86dd,
        /// LACP, marker and OAM ("slow protocols").
        Slow = 0x8809,
        Mpls = 0x8847,
        /// IEEE 802.1X port authentication.
        Eapol = 0x888e,
        Profinet = 0x8892,
        EtherCat = 0x88a4,
        /// IEEE 802.1ad S-tag.
        QinQ = 0x88a8,
        Powerlink = 0x88ab,
        /// IEC 61850-8-1 GOOSE.
        Goose = 0x88b8,
        /// IEC 61850 generic substation state events.
        Gse = 0x88b9,
        /// IEC 61850-9-2 sampled values.
        SampledValues = 0x88ba,
        Lldp = 0x88cc,
        SercosIii = 0x88cd,
        /// Media Redundancy Protocol (IEC 62439-2).
        Mrp = 0x88e3,
        MacSec = 0x88e5,
        /// IEEE 1588 precision time protocol over Ethernet.
        Ptp = 0x88f7,
        /// Parallel Redundancy Protocol supervision frames (IEC 62439-3).
        PrpSupervision = 0x88fb,
        /// Connectivity fault management (IEEE 802.1ag).
        Cfm = 0x8902,
        /// High-availability Seamless Redundancy (IEC 62439-3).
        Hsr = 0x892f,
    }
}

mod field {
    use crate::{Field, Rest};

    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A view of an Ethernet II frame (without FCS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checks: accessors may panic unless it came from [`Frame::new_checked`].
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer after [`Frame::check_len`].
    pub fn new_checked(buffer: T) -> Result<Frame<T>, Malformed> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// The buffer must hold a whole header.
    pub fn check_len(&self) -> Result<(), Malformed> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed::EthernetTruncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> MacAddr {
        MacAddr::from_slice(&self.buffer.as_ref()[field::DESTINATION])
    }

    pub fn src_addr(&self) -> MacAddr {
        MacAddr::from_slice(&self.buffer.as_ref()[field::SOURCE])
    }

    pub fn ethertype(&self) -> EtherType {
        be_u16(&self.buffer.as_ref()[field::ETHERTYPE]).into()
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// Everything after the header (VLAN tags included), borrowed from the underlying buffer.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
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

/// The header as plain values, for building frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub dst_addr: MacAddr,
    pub src_addr: MacAddr,
    pub ethertype: EtherType,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr, Malformed> {
        frame.check_len()?;
        Ok(Repr {
            dst_addr: frame.dst_addr(),
            src_addr: frame.src_addr(),
            ethertype: frame.ethertype(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header; the frame must be at least [`HEADER_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::string::ToString;

    // dst 01:80:c2:00:00:0e (LLDP multicast), src 00:1b:1b:12:34:56, LLDP, 2 payload bytes.
    const LLDP: [u8; 16] = [
        0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e, 0x00, 0x1b, 0x1b, 0x12, 0x34, 0x56, 0x88, 0xcc, 0x02,
        0x07,
    ];

    #[test]
    fn view_reads_fields() {
        let frame = Frame::new_checked(&LLDP[..]).unwrap();
        assert_eq!(frame.dst_addr().to_string(), "01:80:c2:00:00:0e");
        assert!(frame.dst_addr().is_multicast());
        assert!(!frame.dst_addr().is_broadcast());
        assert!(frame.src_addr().is_unicast());
        assert_eq!(frame.ethertype(), EtherType::Lldp);
        assert_eq!(frame.payload(), &[0x02, 0x07]);
    }

    #[test]
    fn truncated_header() {
        assert_eq!(
            Frame::new_checked(&LLDP[..13]),
            Err(Malformed::EthernetTruncated)
        );
        assert_eq!(Frame::new_checked(&LLDP[..14]).unwrap().payload(), &[]);
    }

    #[test]
    fn repr_round_trip() {
        let repr = Repr {
            dst_addr: MacAddr::BROADCAST,
            src_addr: "02:00:00:00:00:01".parse().unwrap(),
            ethertype: EtherType::from(0x1234),
        };
        let mut buf = [0u8; HEADER_LEN];
        repr.emit(&mut Frame::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[12..], &[0x12, 0x34]);
        assert_eq!(
            Repr::parse(&Frame::new_checked(&buf[..]).unwrap()),
            Ok(repr)
        );
        assert_eq!(repr.ethertype, EtherType::Unknown(0x1234));
    }

    #[test]
    fn mac_text() {
        let mac: MacAddr = "AA:bb:0c:dd:ee:FF".parse().unwrap();
        assert_eq!(mac.0, [0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0xff]);
        assert_eq!(mac.to_string(), "aa:bb:0c:dd:ee:ff");
        assert_eq!(std::format!("{mac:?}"), "aa:bb:0c:dd:ee:ff");
        assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aa-bb-cc-dd-ee-ff",
            "a:bb:cc:dd:ee:ff",
            "+a:bb:cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:fg",
            "aa:bb:cc:dd:ee:ff:",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(ParseMacAddrError), "{bad}");
        }
    }

    #[test]
    fn industrial_ethertypes_have_names() {
        for (raw, ty) in [
            (0x8892, EtherType::Profinet),
            (0x88b8, EtherType::Goose),
            (0x88ba, EtherType::SampledValues),
            (0x88f7, EtherType::Ptp),
            (0x88e3, EtherType::Mrp),
            (0x892f, EtherType::Hsr),
            (0x88a4, EtherType::EtherCat),
            (0x88ab, EtherType::Powerlink),
            (0x8809, EtherType::Slow),
            (0x88a8, EtherType::QinQ),
        ] {
            assert_eq!(EtherType::from(raw), ty);
            assert_eq!(u16::from(ty), raw);
        }
    }
}
