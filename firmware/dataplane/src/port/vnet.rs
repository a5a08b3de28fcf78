//! The `virtio_net_hdr` that `PACKET_VNET_HDR` puts in front of every frame, and the
//! re-insertion of the VLAN tag that the kernel strips before a packet socket sees it.
//!
//! Pure code on byte buffers: no I/O, unit-tested here.

use std::ops::Range;

/// Bytes of headroom in front of every received frame: room for the one VLAN tag the
/// kernel may have stripped, so putting it back is a 12-byte move, not a payload copy.
pub const HEADROOM: usize = 4;

/// `struct virtio_net_hdr` as `AF_PACKET` exchanges it with `PACKET_VNET_HDR`, in host
/// byte order (the kernel uses `vio_le()`, i.e. native order on little- and big-endian
/// hosts alike for the legacy header).
///
/// On receive it describes GSO super-frames (`gso_type`, `gso_size`) and frames whose
/// transport checksum is still to be completed (`F_NEEDS_CSUM`, `csum_start`,
/// `csum_offset`). Handing the same header back on transmit makes the kernel segment and
/// checksum on egress, so such frames are forwarded intact rather than dropped.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_*` bits.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*` value, possibly or-ed with [`VnetHdr::GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers (Ethernet to transport), a hint for the linear part.
    pub hdr_len: u16,
    /// Segment payload size for GSO frames.
    pub gso_size: u16,
    /// Offset from the start of the frame where checksumming starts.
    pub csum_start: u16,
    /// Offset after `csum_start` where the checksum is stored.
    pub csum_offset: u16,
}

const _: () = assert!(std::mem::size_of::<VnetHdr>() == VnetHdr::LEN);

impl VnetHdr {
    /// Size on the wire between the kernel and us.
    pub const LEN: usize = 10;
    /// The transport checksum must be completed from `csum_start`/`csum_offset`.
    pub const F_NEEDS_CSUM: u8 = 1;
    /// The checksum was verified by the receiving device.
    pub const F_DATA_VALID: u8 = 2;
    /// Not a GSO frame.
    pub const GSO_NONE: u8 = 0;
    /// TCP over IPv4 super-frame.
    pub const GSO_TCPV4: u8 = 1;
    /// UDP fragmentation offload (legacy).
    pub const GSO_UDP: u8 = 3;
    /// TCP over IPv6 super-frame.
    pub const GSO_TCPV6: u8 = 4;
    /// UDP segmentation (USO) super-frame.
    pub const GSO_UDP_L4: u8 = 5;
    /// ECN (CWR) flag on a TCP super-frame.
    pub const GSO_ECN: u8 = 0x80;

    /// Whether the transport checksum is still to be completed.
    pub fn needs_csum(&self) -> bool {
        self.flags & Self::F_NEEDS_CSUM != 0
    }

    /// Whether this describes a GSO super-frame, which the kernel segments on egress and
    /// which may exceed the MTU.
    pub fn is_gso(&self) -> bool {
        self.gso_type & !Self::GSO_ECN != Self::GSO_NONE
    }

    /// Accounts for 4 bytes inserted in front of the network header (a re-inserted VLAN
    /// tag): the checksum start and the header length move with it.
    pub fn shift_for_tag(&mut self) {
        if self.needs_csum() {
            self.csum_start = self.csum_start.wrapping_add(4);
        }
        if self.hdr_len != 0 {
            self.hdr_len = self.hdr_len.wrapping_add(4);
        }
    }
}

/// An 802.1Q / 802.1ad tag: the TPID (`0x8100`, `0x88a8`, …) and the TCI (priority
/// code point, drop-eligible bit, VLAN id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// Tag protocol identifier (the ethertype that announces the tag).
    pub tpid: u16,
    /// Tag control information: PCP (3 bits), DEI (1 bit), VID (12 bits).
    pub tci: u16,
}

impl VlanTag {
    /// The 12-bit VLAN id (0 for priority-tagged frames).
    pub fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }

    /// The 3-bit priority code point.
    pub fn pcp(&self) -> u8 {
        (self.tci >> 13) as u8
    }

    /// The drop-eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci & 0x1000 != 0
    }
}

/// Puts `tag` back between the MAC addresses of the frame held in
/// `slot[HEADROOM..HEADROOM + captured]`, moving the 12 address bytes 4 bytes to the
/// front (the payload does not move), and shifts the vnet header accordingly.
///
/// Returns the range of `slot` that now holds the frame. A capture shorter than the two
/// MAC addresses cannot carry a tag and is returned unchanged.
///
/// # Panics
///
/// If `slot` is shorter than `HEADROOM + captured` (a bug in the caller).
pub(crate) fn reinsert_tag(
    slot: &mut [u8],
    captured: usize,
    tag: VlanTag,
    vnet: &mut VnetHdr,
) -> Range<usize> {
    let end = HEADROOM + captured;
    assert!(slot.len() >= end, "slot shorter than its capture");
    if captured < 12 {
        return HEADROOM..end;
    }
    slot.copy_within(HEADROOM..HEADROOM + 12, 0);
    slot[12..14].copy_from_slice(&tag.tpid.to_be_bytes());
    slot[14..16].copy_from_slice(&tag.tci.to_be_bytes());
    vnet.shift_for_tag();
    0..end
}

/// Reads a `struct tpacket_auxdata` from a `PACKET_AUXDATA` control message payload and
/// returns the stripped tag, if the kernel reports one.
pub(crate) fn tag_from_auxdata(data: &[u8]) -> Option<VlanTag> {
    // struct tpacket_auxdata { u32 tp_status, tp_len, tp_snaplen; u16 tp_mac, tp_net,
    //                          tp_vlan_tci, tp_vlan_tpid; }
    if data.len() < 20 {
        return None;
    }
    let status = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
    if status & libc::TP_STATUS_VLAN_VALID == 0 {
        return None;
    }
    let tci = u16::from_ne_bytes([data[16], data[17]]);
    let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
        u16::from_ne_bytes([data[18], data[19]])
    } else {
        0x8100
    };
    Some(VlanTag { tpid, tci })
}

/// Walks the control messages in `control` (as filled in by `recvmsg`) and returns the
/// `PACKET_AUXDATA` payload, if any. Safe byte parsing, no `CMSG_*` pointer arithmetic.
pub(crate) fn find_auxdata(control: &[u8]) -> Option<&[u8]> {
    const ALIGN: usize = std::mem::size_of::<usize>();
    let hdr_len = std::mem::size_of::<libc::cmsghdr>().next_multiple_of(ALIGN);
    let mut off = 0;
    while off + hdr_len <= control.len() {
        let word: [u8; ALIGN] = control[off..off + ALIGN].try_into().ok()?;
        let cmsg_len = usize::from_ne_bytes(word);
        let level = i32::from_ne_bytes(control[off + ALIGN..off + ALIGN + 4].try_into().ok()?);
        let ty = i32::from_ne_bytes(control[off + ALIGN + 4..off + ALIGN + 8].try_into().ok()?);
        if cmsg_len < hdr_len || off + cmsg_len > control.len() {
            return None;
        }
        if level == libc::SOL_PACKET && ty == libc::PACKET_AUXDATA {
            return Some(&control[off + hdr_len..off + cmsg_len]);
        }
        off += cmsg_len.next_multiple_of(ALIGN);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DST: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];
    const SRC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

    /// A slot as the kernel leaves it: headroom, then the untagged frame.
    fn slot_with(frame: &[u8]) -> Vec<u8> {
        let mut slot = vec![0xEE; HEADROOM];
        slot.extend_from_slice(frame);
        slot.extend_from_slice(&[0xAA; 8]); // unused tail of the buffer
        slot
    }

    fn untagged(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&DST);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn tag_is_reinserted_between_the_addresses() {
        let frame = untagged(0x0800, &[0x45, 0, 0, 20, 1, 2, 3, 4]);
        let mut slot = slot_with(&frame);
        let mut vnet = VnetHdr::default();
        let tag = VlanTag {
            tpid: 0x8100,
            tci: (5 << 13) | 100,
        };
        let r = reinsert_tag(&mut slot, frame.len(), tag, &mut vnet);
        assert_eq!(r, 0..frame.len() + 4);
        let mut want = Vec::new();
        want.extend_from_slice(&DST);
        want.extend_from_slice(&SRC);
        want.extend_from_slice(&[0x81, 0x00, 0xa0, 0x64]);
        want.extend_from_slice(&frame[12..]);
        assert_eq!(&slot[r], &want[..]);
        assert_eq!(
            vnet,
            VnetHdr::default(),
            "no checksum, no GSO: header untouched"
        );
    }

    #[test]
    fn qinq_outer_tag_and_priority_tag_zero_come_back() {
        // Inner 802.1Q tag stays in the payload; the outer 802.1ad one was stripped.
        let inner = untagged(0x8100, &[0x20, 0x07, 0x08, 0x06, 0, 1]);
        let mut slot = slot_with(&inner);
        let mut vnet = VnetHdr::default();
        let outer = VlanTag {
            tpid: 0x88a8,
            tci: (7 << 13) | 0x1000 | 0xfff,
        };
        let r = reinsert_tag(&mut slot, inner.len(), outer, &mut vnet);
        assert_eq!(
            &slot[r.clone()][12..20],
            &[0x88, 0xa8, 0xff, 0xff, 0x81, 0x00, 0x20, 0x07]
        );
        assert_eq!(&slot[r][..12], &inner[..12]);

        // VLAN 0, priority 3: tci = 0x6000; VLAN 0 priority 0 is tci = 0 and still a tag.
        for tci in [0x6000u16, 0] {
            let frame = untagged(0x88cc, &[1, 2, 3]);
            let mut slot = slot_with(&frame);
            let r = reinsert_tag(
                &mut slot,
                frame.len(),
                VlanTag { tpid: 0x8100, tci },
                &mut vnet,
            );
            assert_eq!(r.len(), frame.len() + 4);
            assert_eq!(
                &slot[r.clone()][12..16],
                &[0x81, 0x00, (tci >> 8) as u8, tci as u8]
            );
            assert_eq!(&slot[r][16..], &frame[12..]);
        }
    }

    #[test]
    fn partial_checksum_start_moves_with_the_tag() {
        let frame = untagged(0x0800, &[0u8; 60]);
        let mut slot = slot_with(&frame);
        let mut vnet = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        reinsert_tag(
            &mut slot,
            frame.len(),
            VlanTag {
                tpid: 0x8100,
                tci: 42,
            },
            &mut vnet,
        );
        assert_eq!(vnet.csum_start, 38);
        assert_eq!(vnet.csum_offset, 16, "offset is relative to csum_start");
        assert_eq!(vnet.hdr_len, 70);
        assert_eq!(vnet.gso_size, 1448);

        // DATA_VALID only: csum_start is meaningless and must not move.
        let mut vnet = VnetHdr {
            flags: VnetHdr::F_DATA_VALID,
            ..VnetHdr::default()
        };
        let mut slot = slot_with(&frame);
        reinsert_tag(
            &mut slot,
            frame.len(),
            VlanTag {
                tpid: 0x8100,
                tci: 42,
            },
            &mut vnet,
        );
        assert_eq!(vnet.csum_start, 0);
        assert_eq!(vnet.hdr_len, 0);
    }

    #[test]
    fn runt_capture_is_left_alone() {
        let mut slot = vec![9u8; HEADROOM + 11];
        let mut vnet = VnetHdr::default();
        let r = reinsert_tag(
            &mut slot,
            11,
            VlanTag {
                tpid: 0x8100,
                tci: 1,
            },
            &mut vnet,
        );
        assert_eq!(r, HEADROOM..HEADROOM + 11);
        assert_eq!(slot, vec![9u8; HEADROOM + 11]);
    }

    fn auxdata(status: u32, tci: u16, tpid: u16) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&status.to_ne_bytes());
        a.extend_from_slice(&100u32.to_ne_bytes()); // tp_len
        a.extend_from_slice(&100u32.to_ne_bytes()); // tp_snaplen
        a.extend_from_slice(&0u16.to_ne_bytes()); // tp_mac
        a.extend_from_slice(&14u16.to_ne_bytes()); // tp_net
        a.extend_from_slice(&tci.to_ne_bytes());
        a.extend_from_slice(&tpid.to_ne_bytes());
        a
    }

    fn cmsg(level: i32, ty: i32, data: &[u8]) -> Vec<u8> {
        let align = std::mem::size_of::<usize>();
        let hdr = std::mem::size_of::<libc::cmsghdr>().next_multiple_of(align);
        let mut c = Vec::new();
        c.extend_from_slice(&(hdr + data.len()).to_ne_bytes());
        c.extend_from_slice(&level.to_ne_bytes());
        c.extend_from_slice(&ty.to_ne_bytes());
        c.resize(hdr, 0);
        c.extend_from_slice(data);
        c.resize(c.len().next_multiple_of(align), 0);
        c
    }

    #[test]
    fn auxdata_is_found_and_decoded() {
        let aux = auxdata(
            libc::TP_STATUS_VLAN_VALID | libc::TP_STATUS_VLAN_TPID_VALID,
            0xa064,
            0x88a8,
        );
        let mut control = cmsg(libc::SOL_SOCKET, libc::SCM_TIMESTAMP, &[0u8; 16]);
        control.extend(cmsg(libc::SOL_PACKET, libc::PACKET_AUXDATA, &aux));
        let found = find_auxdata(&control).expect("auxdata present");
        assert_eq!(
            tag_from_auxdata(found),
            Some(VlanTag {
                tpid: 0x88a8,
                tci: 0xa064
            })
        );

        // No TPID reported (old kernels): 802.1Q is assumed.
        let aux = auxdata(libc::TP_STATUS_VLAN_VALID, 7, 0);
        assert_eq!(
            tag_from_auxdata(&aux),
            Some(VlanTag {
                tpid: 0x8100,
                tci: 7
            })
        );
        // No tag.
        assert_eq!(tag_from_auxdata(&auxdata(0, 7, 0x8100)), None);
        // Truncated or garbage control data is not trusted.
        assert_eq!(find_auxdata(&control[..10]), None);
        let mut bad = control.clone();
        bad[0] = 0xff;
        assert_eq!(find_auxdata(&bad), None);
    }

    #[test]
    fn vlan_tag_fields() {
        let t = VlanTag {
            tpid: 0x8100,
            tci: (6 << 13) | 0x1000 | 4094,
        };
        assert_eq!((t.pcp(), t.dei(), t.vid()), (6, true, 4094));
    }
}
