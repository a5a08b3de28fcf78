//! Inspection state on the data path: the pool of TCP stream buffers, and the frames the
//! gatekeeper builds when it denies a message inside a live conversation.
//!
//! Everything here is reserved when the pipeline is built (`[inspection] streams` and
//! `buffer`); nothing grows afterwards.

use std::net::IpAddr;

use gk_inspect::stream::StreamDir;
use gk_packet::{ipv4, ipv6, tcp, tcp_flags, Frame, IpProtocol, L3, L4};

use crate::Port;

/// The per-conversation state of an inspected TCP flow; the buffers are in the pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamSlot {
    /// Reassembly, by direction: 0 = initiator to responder, 1 = back.
    pub dirs: [StreamDir; 2],
    /// The next sequence number expected in each direction.
    pub next_seq: [u32; 2],
    /// Whether `next_seq` is known (from the SYN, the SYN+ACK or the first data).
    pub synced: [bool; 2],
    /// Monitor mode forwarded a gap in this direction: its messages are no longer
    /// followed (reported once).
    pub lost: [bool; 2],
    /// Sequence-number shifts per direction, after the gatekeeper answered a request in
    /// the server's name and dropped it (`on-deny = "modbus-exception"`): the client's
    /// bytes the server never saw, and the bytes the client got from us.
    pub shift: [SeqShift; 2],
    /// The last request answered that way, to answer its retransmissions the same way.
    pub answered: Option<Answered>,
}

impl StreamSlot {
    /// Whether the conversation's sequence numbers are rewritten.
    pub fn shifted(&self) -> bool {
        !self.shift[0].is_zero() || !self.shift[1].is_zero()
    }
}

/// A request the gatekeeper answered itself: the client's bytes `start..end` and the
/// answer it got at `answer_seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    pub start: u32,
    pub end: u32,
    pub answer_seq: u32,
    pub answer_len: u8,
    pub answer: [u8; 16],
    /// Why the request was denied.
    pub reason: crate::Reason,
}

/// How one direction's sequence numbers differ between its sender and its receiver
/// after the gatekeeper removed bytes from it or added bytes to it: `before` is added
/// to the sender's numbers below `pos`, `after` from `pos` on (wrapping; a removal adds
/// a "negative" amount). One step of history, as netfilter's seqadj keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqShift {
    pub pos: u32,
    pub before: u32,
    pub after: u32,
}

/// `a` comes before `b` in sequence space (RFC 1982).
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl SeqShift {
    pub fn is_zero(&self) -> bool {
        self.before == 0 && self.after == 0
    }

    /// The receiver's number for the sender's `seq`.
    pub fn seq(&self, seq: u32) -> u32 {
        if seq_lt(seq, self.pos) {
            seq.wrapping_add(self.before)
        } else {
            seq.wrapping_add(self.after)
        }
    }

    /// The sender's number for an acknowledgement (or SACK edge) from the receiver. An
    /// acknowledgement of bytes the gatekeeper added maps to where they were added.
    pub fn ack(&self, ack: u32) -> u32 {
        let boundary = self.pos.wrapping_add(self.after);
        if !seq_lt(ack, boundary) {
            return ack.wrapping_sub(self.after);
        }
        let a = ack.wrapping_sub(self.before);
        if seq_lt(self.pos, a) {
            self.pos
        } else {
            a
        }
    }

    /// From the sender's `pos` on, `delta` more is added (wrapping: `0u32.wrapping_sub(n)`
    /// removes `n` bytes).
    pub fn shift(&mut self, pos: u32, delta: u32) {
        self.before = self.after;
        self.pos = pos;
        self.after = self.after.wrapping_add(delta);
    }
}

/// New sequence and acknowledgement numbers for a forwarded TCP segment; SACK blocks
/// are blanked (their edges would need the same translation, and SACK is advisory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRewrite {
    pub seq: u32,
    pub ack: u32,
}

/// Applies `rw` to `frame` in place. `checksum_partial`: the frame's TCP checksum is
/// left for the kernel to complete (vnet `NEEDS_CSUM`), so it holds only the
/// pseudo-header sum, which does not change; otherwise the checksum is recomputed.
/// Returns false (and leaves the frame alone) when the frame is not the TCP segment the
/// rewrite was computed for.
pub fn apply_rewrite(frame: &mut [u8], rw: &TcpRewrite, checksum_partial: bool) -> bool {
    let Some((tcp_at, options_len, end, src, dst)) = tcp_layout(frame) else {
        return false;
    };
    let segment = &mut frame[tcp_at..end];
    segment[4..8].copy_from_slice(&rw.seq.to_be_bytes());
    segment[8..12].copy_from_slice(&rw.ack.to_be_bytes());
    blank_sack(&mut segment[20..20 + options_len]);
    if !checksum_partial {
        tcp::Packet::new_unchecked(segment).fill_checksum(src, dst);
    }
    true
}

/// Where the TCP segment of a frame is: (header offset, options length, end of the
/// segment, source, destination).
fn tcp_layout(frame: &[u8]) -> Option<(usize, usize, usize, IpAddr, IpAddr)> {
    let parsed = gk_packet::dissect(frame).ok()?;
    let L3::Ip(ip) = parsed.l3 else { return None };
    let L4::Tcp {
        options, payload, ..
    } = ip.l4
    else {
        return None;
    };
    // Both slices point into `frame`: their offsets locate the header.
    let base = frame.as_ptr() as usize;
    let options_at = options.as_ptr() as usize - base;
    let end = payload.as_ptr() as usize - base + payload.len();
    Some((options_at - 20, options.len(), end, ip.src, ip.dst))
}

/// Turns SACK options (kind 5) into NOPs, walking the option list safely.
fn blank_sack(options: &mut [u8]) {
    let mut i = 0;
    while i < options.len() {
        match options[i] {
            0 => return,
            1 => i += 1,
            kind => {
                let Some(&len) = options.get(i + 1) else {
                    return;
                };
                let len = usize::from(len);
                if len < 2 || i + len > options.len() {
                    return;
                }
                if kind == 5 {
                    options[i..i + len].fill(1);
                }
                i += len;
            }
        }
    }
}

/// Fixed-capacity pool of stream slots and their reassembly buffers (two per slot).
#[derive(Debug)]
pub struct StreamPool {
    slots: Vec<StreamSlot>,
    in_use: Vec<bool>,
    buffers: Vec<u8>,
    buffer_len: usize,
    free: Vec<u32>,
}

impl StreamPool {
    pub fn new(capacity: usize, buffer_len: usize) -> Self {
        StreamPool {
            slots: vec![StreamSlot::default(); capacity],
            in_use: vec![false; capacity],
            buffers: vec![0; capacity * 2 * buffer_len],
            buffer_len,
            free: (0..capacity as u32).rev().collect(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh slot, or `None` when all are in use.
    pub fn alloc(&mut self) -> Option<u32> {
        let id = self.free.pop()?;
        self.slots[id as usize] = StreamSlot::default();
        self.in_use[id as usize] = true;
        Some(id)
    }

    /// Gives a slot back (ignores ids that are not in use, so a double release cannot
    /// corrupt the free list).
    pub fn release(&mut self, id: u32) {
        if let Some(used) = self.in_use.get_mut(id as usize) {
            if *used {
                *used = false;
                self.free.push(id);
            }
        }
    }

    pub fn slot(&mut self, id: u32) -> &mut StreamSlot {
        &mut self.slots[id as usize]
    }

    /// The slot and the buffer of one of its directions.
    pub fn slot_and_buffer(&mut self, id: u32, dir: usize) -> (&mut StreamSlot, &mut [u8]) {
        let start = (id as usize * 2 + dir) * self.buffer_len;
        (
            &mut self.slots[id as usize],
            &mut self.buffers[start..start + self.buffer_len],
        )
    }
}

/// The largest frame the gatekeeper builds: two VLAN tags, IPv6, TCP and a short answer.
pub const MAX_INJECTED: usize = 160;

/// A frame the gatekeeper built, to leave through `port`.
#[derive(Debug, Clone, Copy)]
pub struct Injected {
    pub port: Port,
    len: u16,
    bytes: [u8; MAX_INJECTED],
}

impl Injected {
    pub fn frame(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Frames built while judging a batch, sent by the forwarding loop after the batch.
#[derive(Debug)]
pub struct InjectQueue {
    frames: Vec<Injected>,
}

impl InjectQueue {
    pub fn new(capacity: usize) -> Self {
        InjectQueue {
            frames: Vec::with_capacity(capacity),
        }
    }

    pub fn frames(&self) -> &[Injected] {
        &self.frames
    }

    pub fn clear(&mut self) {
        self.frames.clear();
    }

    /// A slot to build the next frame in; `None` when the queue is full (never grows).
    fn next(&mut self, port: Port) -> Option<&mut Injected> {
        if self.frames.len() == self.frames.capacity() {
            return None;
        }
        self.frames.push(Injected {
            port,
            len: 0,
            bytes: [0; MAX_INJECTED],
        });
        self.frames.last_mut()
    }

    fn undo(&mut self) {
        self.frames.pop();
    }
}

/// The addressing of the segment being denied, from which answers are built.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'f> {
    /// The frame's Ethernet header with its tags, exactly as received.
    pub l2: &'f [u8],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub payload_len: u32,
    /// The numbers as the receiver knows them (they differ from `seq`/`ack` after the
    /// gatekeeper answered a request itself); set by `of` to `seq` and `ack`.
    pub seq_on: u32,
    pub ack_on: u32,
}

impl<'f> Segment<'f> {
    /// The segment of a dissected TCP frame.
    pub fn of(frame: &'f [u8], parsed: &Frame<'f>) -> Option<Segment<'f>> {
        let L3::Ip(ip) = parsed.l3 else { return None };
        let L4::Tcp {
            src_port,
            dst_port,
            seq,
            ack,
            payload,
            ..
        } = ip.l4
        else {
            return None;
        };
        let l2_len = 14 + 4 * parsed.vlan_count();
        Some(Segment {
            l2: frame.get(..l2_len)?,
            src: ip.src,
            dst: ip.dst,
            src_port,
            dst_port,
            seq,
            ack,
            payload_len: payload.len() as u32,
            seq_on: seq,
            ack_on: ack,
        })
    }
}

/// What a built segment says, in the direction it travels.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'p> {
    /// Towards the segment's sender (true) or on to its receiver (false).
    pub back: bool,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: &'p [u8],
}

/// Builds a TCP segment in the conversation of `seg` into the queue, leaving through
/// `port`. Returns false when the queue is full or the frame would not fit.
pub fn build(queue: &mut InjectQueue, port: Port, seg: &Segment<'_>, answer: &Answer<'_>) -> bool {
    let Some(slot) = queue.next(port) else {
        return false;
    };
    match write_segment(&mut slot.bytes, seg, answer) {
        Some(len) => {
            slot.len = len as u16;
            true
        }
        None => {
            queue.undo();
            false
        }
    }
}

fn write_segment(out: &mut [u8], seg: &Segment<'_>, a: &Answer<'_>) -> Option<usize> {
    let l2 = seg.l2;
    let (src, dst, sport, dport) = if a.back {
        (seg.dst, seg.src, seg.dst_port, seg.src_port)
    } else {
        (seg.src, seg.dst, seg.src_port, seg.dst_port)
    };
    let ip_len = match src {
        IpAddr::V4(_) => 20,
        IpAddr::V6(_) => 40,
    };
    let tcp_len = 20 + a.payload.len();
    let total = l2.len() + ip_len + tcp_len;
    let out = out.get_mut(..total)?;
    out[..l2.len()].copy_from_slice(l2);
    if a.back {
        // Swap the MAC addresses; the tags stay as they were.
        out[..6].copy_from_slice(&l2[6..12]);
        out[6..12].copy_from_slice(&l2[..6]);
    }
    let (ip, rest) = out[l2.len()..].split_at_mut(ip_len);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4::Repr {
            src_addr: s,
            dst_addr: d,
            protocol: IpProtocol::Tcp,
            payload_len: tcp_len as u16,
            ttl: 64,
            ident: 0,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        }
        .emit(&mut ipv4::Packet::new_unchecked(ip)),
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6::Repr {
            src_addr: s,
            dst_addr: d,
            next_header: IpProtocol::Tcp,
            payload_len: tcp_len as u16,
            hop_limit: 64,
        }
        .emit(&mut ipv6::Packet::new_unchecked(ip)),
        _ => return None,
    }
    tcp::Repr {
        src_port: sport,
        dst_port: dport,
        seq_number: a.seq,
        ack_number: a.ack,
        flags: a.flags,
        window_len: if a.flags & tcp_flags::RST != 0 {
            0
        } else {
            8192
        },
        payload: a.payload,
    }
    .emit(&mut tcp::Packet::new_unchecked(rest), src, dst);
    Some(total)
}

/// Resets towards both ends of the conversation of `seg`, which the gatekeeper drops:
/// the receiver gets a RST at the sequence number it expects next (the dropped
/// segment's), the sender one at the number it acknowledged. Returns how many frames
/// were queued.
pub fn resets(queue: &mut InjectQueue, ingress: Port, seg: &Segment<'_>) -> usize {
    let flags = tcp_flags::RST | tcp_flags::ACK;
    let on = Answer {
        back: false,
        seq: seg.seq_on,
        ack: seg.ack_on,
        flags,
        payload: &[],
    };
    let back = Answer {
        back: true,
        seq: seg.ack,
        ack: seg.seq.wrapping_add(seg.payload_len),
        flags,
        payload: &[],
    };
    usize::from(build(queue, ingress.other(), seg, &on))
        + usize::from(build(queue, ingress, seg, &back))
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::testing::FrameBuilder;
    use gk_packet::dissect;

    #[test]
    fn shifts_translate_both_ways_with_one_step_of_history() {
        // The client's bytes 1000..1012 were removed: the server's view is 12 lower
        // from 1012 on.
        let mut removal = SeqShift::default();
        removal.shift(1012, 0u32.wrapping_sub(12));
        assert_eq!(removal.seq(900), 900);
        assert_eq!(removal.seq(1012), 1000);
        assert_eq!(removal.seq(1100), 1088);
        assert_eq!(
            removal.ack(1000),
            1012,
            "the server acks up to the gap: all of it"
        );
        assert_eq!(removal.ack(999), 999);
        assert_eq!(removal.ack(1088), 1100);
        // The client got 9 bytes from us at server position 5000.
        let mut insertion = SeqShift::default();
        insertion.shift(5000, 9);
        assert_eq!(insertion.seq(5000), 5009);
        assert_eq!(insertion.seq(4999), 4999);
        assert_eq!(insertion.ack(5009), 5000);
        assert_eq!(
            insertion.ack(5004),
            5000,
            "acks of our bytes map to where they went"
        );
        assert_eq!(insertion.ack(4000), 4000);
        // A second change keeps the first as `before`.
        insertion.shift(6000, 9);
        assert_eq!(insertion.seq(5500), 5509);
        assert_eq!(insertion.seq(6000), 6018);
        assert_eq!(insertion.ack(6018), 6000);
        // Across the wrap.
        let mut wrap = SeqShift::default();
        wrap.shift(u32::MAX - 3, 0u32.wrapping_sub(8));
        assert_eq!(wrap.seq(2), u32::MAX - 5);
        assert_eq!(wrap.ack(u32::MAX - 5), 2);
    }

    #[test]
    fn rewrite_sets_numbers_blanks_sack_and_fixes_the_checksum() {
        let b = FrameBuilder::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let (src, dst): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut frame = b.tcp_seq(src, 1, dst, 502, 10, 20, tcp_flags::ACK, b"data");
        // Put a SACK block (and a NOP) into the options by hand: 12 option bytes.
        let ip_at = 14;
        let tcp_at = ip_at + 20;
        let mut with_opts = frame[..tcp_at + 20].to_vec();
        with_opts.extend_from_slice(&[1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        with_opts.extend_from_slice(b"data");
        with_opts[tcp_at + 12] = 8 << 4;
        let total = (with_opts.len() - ip_at) as u16;
        with_opts[ip_at + 2..ip_at + 4].copy_from_slice(&total.to_be_bytes());
        ipv4::Packet::new_unchecked(&mut with_opts[ip_at..]).fill_checksum();
        tcp::Packet::new_unchecked(&mut with_opts[tcp_at..]).fill_checksum(src, dst);
        frame = with_opts;
        let rw = TcpRewrite { seq: 7, ack: 8 };
        assert!(apply_rewrite(&mut frame, &rw, false));
        let t = tcp::Packet::new_checked(&frame[tcp_at..]).unwrap();
        assert_eq!((t.seq_number(), t.ack_number()), (7, 8));
        assert_eq!(t.options(), &[1; 12]);
        assert_eq!(t.payload(), b"data");
        assert!(t.verify_checksum(src, dst));
        // With a partial checksum the field is left alone.
        let before = frame[tcp_at + 16..tcp_at + 18].to_vec();
        assert!(apply_rewrite(
            &mut frame,
            &TcpRewrite { seq: 9, ack: 9 },
            true
        ));
        assert_eq!(&frame[tcp_at + 16..tcp_at + 18], &before[..]);
        assert!(!apply_rewrite(&mut [0u8; 20], &rw, false));
    }

    #[test]
    fn resets_go_both_ways_at_the_expected_sequence_numbers() {
        let b = FrameBuilder::new([2, 0, 0, 0, 0, 0x21], [2, 0, 0, 0, 0, 0x10]).vlan(0x8100, 5, 10);
        let frame = b.tcp_seq(
            "10.10.0.21".parse().unwrap(),
            40000,
            "10.10.0.10".parse().unwrap(),
            502,
            1000,
            7000,
            tcp_flags::ACK | tcp_flags::PSH,
            &[0u8; 12],
        );
        let parsed = dissect(&frame).unwrap();
        let seg = Segment::of(&frame, &parsed).unwrap();
        let mut q = InjectQueue::new(4);
        assert_eq!(resets(&mut q, Port::Plant, &seg), 2);
        let [on, back] = q.frames() else { panic!() };
        assert_eq!(on.port, Port::Asset);
        assert_eq!(back.port, Port::Plant);
        let on_p = dissect(on.frame()).unwrap();
        assert_eq!(on_p.src_mac, parsed.src_mac);
        assert_eq!(on_p.outer_vlan().unwrap().vid, 10);
        assert_eq!(on_p.outer_vlan().unwrap().pcp, 5);
        let L3::Ip(ip) = on_p.l3 else { panic!() };
        assert_eq!(ip.dst, seg.dst);
        let L4::Tcp {
            seq,
            flags,
            dst_port,
            ..
        } = ip.l4
        else {
            panic!()
        };
        assert_eq!((seq, dst_port), (1000, 502));
        assert_eq!(flags, tcp_flags::RST | tcp_flags::ACK);
        let back_p = dissect(back.frame()).unwrap();
        assert_eq!(back_p.dst_mac, parsed.src_mac);
        let L3::Ip(ip) = back_p.l3 else { panic!() };
        assert_eq!((ip.src, ip.dst), (seg.dst, seg.src));
        let L4::Tcp {
            seq, ack, dst_port, ..
        } = ip.l4
        else {
            panic!()
        };
        assert_eq!((seq, ack, dst_port), (7000, 1012, 40000));
        // Checksums are complete.
        let ip_start = 18;
        let t = tcp::Packet::new_checked(&back.frame()[ip_start + 20..]).unwrap();
        assert!(t.verify_checksum(seg.dst, seg.src));
        // A full queue takes nothing and says so.
        assert_eq!(resets(&mut q, Port::Plant, &seg), 2);
        assert_eq!(resets(&mut q, Port::Plant, &seg), 0);
    }

    #[test]
    fn pool_hands_out_and_takes_back() {
        let mut p = StreamPool::new(2, 1024);
        let a = p.alloc().unwrap();
        let b = p.alloc().unwrap();
        assert_eq!(p.alloc(), None);
        p.slot_and_buffer(a, 1).1[0] = 7;
        assert_eq!(p.slot_and_buffer(b, 0).1[0], 0, "buffers do not overlap");
        p.release(a);
        p.release(a);
        assert_eq!(p.len(), 1);
        assert_eq!(p.alloc(), Some(a));
    }
}
