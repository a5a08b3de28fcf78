//! What IPv4 and IPv6 share: protocol numbers and the internet checksum.

use crate::macros::enum_with_unknown;

enum_with_unknown! {
    /// The IPv4 protocol / IPv6 next-header number (IANA "Assigned Internet Protocol Numbers").
    pub enum IpProtocol(u8) {
        HopByHop = 0,
        Icmp = 1,
        Igmp = 2,
        Tcp = 6,
        Udp = 17,
        /// IPv6 encapsulation (6in4).
        Ipv6 = 41,
        Ipv6Route = 43,
        Ipv6Frag = 44,
        Gre = 47,
        Esp = 50,
        Ah = 51,
        Icmpv6 = 58,
        Ipv6NoNxt = 59,
        Ipv6Opts = 60,
        Ospf = 89,
        Pim = 103,
        Vrrp = 112,
        Sctp = 132,
        UdpLite = 136,
    }
}

/// The internet checksum (RFC 1071). Sums are one's-complement and kept folded, not
/// complemented; a packet verifies when the sum over it (and its pseudo-header) is `0xffff`.
pub mod checksum {
    use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::IpProtocol;

    fn fold(mut sum: u64) -> u16 {
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    /// The one's-complement sum of `data` as big-endian 16-bit words (an odd last byte is
    /// padded with zero).
    pub fn data(data: &[u8]) -> u16 {
        let mut chunks = data.chunks_exact(2);
        let mut sum: u64 = (&mut chunks)
            .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        if let [last] = chunks.remainder() {
            sum += u64::from(*last) << 8;
        }
        fold(sum)
    }

    /// Adds partial sums.
    pub fn combine(sums: &[u16]) -> u16 {
        fold(sums.iter().map(|&s| u64::from(s)).sum())
    }

    /// The IPv4 pseudo-header (RFC 793, RFC 768) for an upper-layer length of `length` bytes.
    pub fn pseudo_header_v4(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        length: u32,
    ) -> u16 {
        combine(&[
            data(&src.octets()),
            data(&dst.octets()),
            u16::from(u8::from(protocol)),
            (length >> 16) as u16,
            length as u16,
        ])
    }

    /// The IPv6 pseudo-header (RFC 8200 section 8.1).
    pub fn pseudo_header_v6(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        protocol: IpProtocol,
        length: u32,
    ) -> u16 {
        combine(&[
            data(&src.octets()),
            data(&dst.octets()),
            u16::from(u8::from(protocol)),
            (length >> 16) as u16,
            length as u16,
        ])
    }

    /// Either pseudo-header. Mixed families cannot occur in a real packet; they are summed as
    /// IPv6 with the IPv4 address mapped, so that the function stays total.
    pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: IpProtocol, length: u32) -> u16 {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_v4(s, d, protocol, length),
            (s, d) => pseudo_header_v6(v6(s), v6(d), protocol, length),
        }
    }

    fn v6(addr: IpAddr) -> Ipv6Addr {
        match addr {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        }
    }

    #[cfg(test)]
    mod test {
        use super::*;

        #[test]
        fn rfc1071_example() {
            // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
            assert_eq!(
                data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
                0xddf2
            );
            assert_eq!(data(&[0xab]), 0xab00);
            assert_eq!(data(&[]), 0);
            assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        }

        #[test]
        fn pseudo_header_v4_by_hand() {
            let sum = pseudo_header_v4(
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2),
                IpProtocol::Udp,
                12,
            );
            // 0a00 + 0001 + 0a00 + 0002 + 0011 + 000c
            assert_eq!(sum, 0x1420);
            let mixed = pseudo_header(
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                IpProtocol::Udp,
                12,
            );
            assert_ne!(mixed, 0);
        }
    }
}

#[cfg(test)]
mod test {
    use super::IpProtocol;

    #[test]
    fn numbers() {
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
        assert_eq!(IpProtocol::from(58), IpProtocol::Icmpv6);
        assert_eq!(IpProtocol::from(253), IpProtocol::Unknown(253));
        assert_eq!(u8::from(IpProtocol::Sctp), 132);
    }
}
