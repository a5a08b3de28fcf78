//! Zero-copy views over untrusted frame bytes, in the style of smoltcp's `wire` module.
//!
//! Each protocol has a `Packet<T: AsRef<[u8]>>` view whose `new_checked` validates every
//! length once; after that no accessor can panic. Unknown codes (ethertypes, IP protocol
//! numbers, ICMP types) decode totally, as `Unknown(raw)`: policy decides what they mean.
//!
//! [`dissect`] walks a whole Ethernet frame through the views and returns a [`Frame`]: the
//! compact, allocation-free summary that the data-plane pipeline classifies.
//!
//! This crate does no I/O and never allocates.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod arp;
mod dissect;
pub mod ethernet;
pub mod icmp;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
mod macros;
pub mod tcp;
pub mod udp;
pub mod vlan;

pub use dissect::{
    dissect, tcp_flags, ArpInfo, Embedded, Fragment, Frame, IpInfo, Malformed, VlanTag, L3, L4,
    MAX_VLAN_TAGS,
};
pub use ethernet::{EtherType, MacAddr};
pub use ip::IpProtocol;

/// The byte range of a fixed-size header field, as in smoltcp's `field` modules.
type Field = core::ops::Range<usize>;
/// From a fixed offset to the end of the buffer.
type Rest = core::ops::RangeFrom<usize>;

// Big-endian field access. The views pass slices of constant ranges that `check_len` has
// proven to be in bounds, so the indexing below cannot fail on a checked view.

fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn set_be_u16(b: &mut [u8], value: u16) {
    b[..2].copy_from_slice(&value.to_be_bytes());
}

fn set_be_u32(b: &mut [u8], value: u32) {
    b[..4].copy_from_slice(&value.to_be_bytes());
}

fn ipv4_at(b: &[u8]) -> core::net::Ipv4Addr {
    core::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn ipv6_at(b: &[u8]) -> core::net::Ipv6Addr {
    let mut octets = [0; 16];
    octets.copy_from_slice(&b[..16]);
    core::net::Ipv6Addr::from(octets)
}
