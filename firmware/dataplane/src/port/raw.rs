//! `RawPort`: batched frame I/O on one interface through an `AF_PACKET` socket.
//!
//! Receive: `recvmmsg` into slots allocated at open. Each slot gets the
//! [`VnetHdr`], the frame (at [`HEADROOM`] bytes into its buffer) and the
//! `PACKET_AUXDATA` control message; the VLAN tag the kernel stripped is put back, so
//! frames come out exactly as they were on the wire.
//!
//! Transmit: `sendmmsg` from a [`TxBatch`] of pre-allocated iovecs that point at the
//! caller's frames (normally slots just received on the other port: zero copy), each with
//! its own vnet header, so GSO super-frames and partial checksums are completed by the
//! kernel on egress.

use std::marker::PhantomData;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::sys::{self, cvt, zeroed};
use super::vnet::{find_auxdata, reinsert_tag, tag_from_auxdata, VlanTag, VnetHdr, HEADROOM};
use super::{Iface, PortError};

/// Largest batch accepted by [`RawPort::open`].
pub const MAX_BATCH: usize = 1024;

/// A `max_frame` large enough for GSO super-frames (the kernel's default
/// `gso_max_size` of 64 KiB) plus a re-inserted tag. Use it where a port may receive
/// super-frames, e.g. from a local veth peer whose TSO cannot be turned off; on a real
/// NIC with GRO/LRO off, `frame_capacity_for_mtu(mtu)` is enough.
pub const MAX_GSO_FRAME: usize = 65_536 + 64;

/// Upper bound for `max_frame` (BIG TCP super-frames beyond this are truncated).
const MAX_FRAME_LIMIT: usize = 512 * 1024;

/// Socket buffer size asked for (with `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE`, which ignore
/// `net.core.rmem_max` for a privileged process).
const SOCKET_BUFFER_BYTES: usize = 16 * 1024 * 1024;

/// Control-message space per slot: `CMSG_SPACE(sizeof(struct tpacket_auxdata))` is 40.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct CtrlBuf([u8; 64]);

/// How many times a flush waits for socket buffer space before dropping the rest.
const TX_EAGAIN_WAITS: u32 = 2;
/// How long each such wait lasts, in milliseconds.
const TX_EAGAIN_WAIT_MS: libc::c_int = 1;
/// How many `EINTR`s one call tolerates before giving up for this round.
const MAX_EINTR: u32 = 16;

/// Per-port counters, maintained without locks or allocation by the port's owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames delivered to the caller (truncated ones included).
    pub rx_frames: u64,
    /// Their length on the wire, tags included.
    pub rx_bytes: u64,
    /// Frames longer than `max_frame`: delivered marked truncated, for the caller to drop
    /// and count as oversize.
    pub rx_truncated: u64,
    /// Frames whose outer VLAN tag was recovered from the auxdata and put back.
    pub rx_tags_restored: u64,
    /// GSO super-frames received (`gso_type != NONE`).
    pub rx_gso_frames: u64,
    /// Our own transmissions seen again (should stay 0 with `PACKET_IGNORE_OUTGOING`).
    pub rx_outgoing_ignored: u64,
    /// Frames the kernel could not hand over (e.g. a GSO type that has no virtio
    /// equivalent) and other receive errors.
    pub rx_errors: u64,
    /// Receive calls that found the link down.
    pub rx_link_down: u64,
    /// Frames handed to the kernel for transmission.
    pub tx_frames: u64,
    /// Their length (as given, super-frames counted once).
    pub tx_bytes: u64,
    /// GSO super-frames transmitted.
    pub tx_gso_frames: u64,
    /// Frames dropped for lack of room: socket buffer full (`EAGAIN`) after a short wait,
    /// or the device queue full (`ENOBUFS`).
    pub tx_dropped: u64,
    /// Frames the kernel rejected (`EMSGSIZE`, `EINVAL`, …) or truncated frames refused.
    pub tx_errors: u64,
    /// Frames dropped because the link was down.
    pub tx_link_down: u64,
}

/// The kernel's own `PACKET_STATISTICS` for the socket, accumulated (reading resets the
/// kernel's counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Frames that reached the socket (queued plus dropped).
    pub packets: u64,
    /// Frames dropped because the socket's receive buffer was full.
    pub drops: u64,
}

/// What one flush did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOutcome {
    /// Frames accepted by the kernel.
    pub sent: usize,
    /// Frames dropped (full buffers, link down, rejected).
    pub dropped: usize,
}

#[derive(Clone, Copy, Debug, Default)]
struct SlotMeta {
    /// Whether this slot carries a frame for the caller.
    valid: bool,
    /// Frame range within the slot's buffer.
    start: u32,
    len: u32,
    /// Length on the wire, tags included.
    wire_len: u32,
    truncated: bool,
    tag: Option<VlanTag>,
}

/// The receive slots of one port: `batch` × (`HEADROOM` + `max_frame`) bytes, vnet
/// headers, addresses and control buffers, all allocated at open.
pub struct RxBatch {
    buf: Box<[u8]>,
    stride: usize,
    max_frame: usize,
    hdrs: Box<[VnetHdr]>,
    addrs: Box<[libc::sockaddr_ll]>,
    ctrl: Box<[CtrlBuf]>,
    iovs: Box<[[libc::iovec; 2]]>,
    msgs: Box<[libc::mmsghdr]>,
    meta: Box<[SlotMeta]>,
    /// Slots written by the last `recvmmsg`.
    filled: usize,
    /// Of those, slots holding a frame for the caller.
    delivered: usize,
}

// SAFETY: the raw pointers inside `iovs` and `msgs` only ever point into this batch's own
// heap buffers; they are re-derived before every system call and never dereferenced by
// Rust code, so moving the batch to another thread moves everything they refer to.
unsafe impl Send for RxBatch {}

impl std::fmt::Debug for RxBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxBatch")
            .field("capacity", &self.capacity())
            .field("max_frame", &self.max_frame)
            .field("len", &self.delivered)
            .finish()
    }
}

impl RxBatch {
    fn new(batch: usize, max_frame: usize) -> RxBatch {
        let stride = (HEADROOM + max_frame).next_multiple_of(64);
        RxBatch {
            buf: vec![0u8; batch * stride].into_boxed_slice(),
            stride,
            max_frame,
            hdrs: vec![VnetHdr::default(); batch].into_boxed_slice(),
            addrs: vec![zeroed::<libc::sockaddr_ll>(); batch].into_boxed_slice(),
            ctrl: vec![CtrlBuf([0; 64]); batch].into_boxed_slice(),
            iovs: vec![[zeroed::<libc::iovec>(); 2]; batch].into_boxed_slice(),
            msgs: vec![zeroed::<libc::mmsghdr>(); batch].into_boxed_slice(),
            meta: vec![SlotMeta::default(); batch].into_boxed_slice(),
            filled: 0,
            delivered: 0,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.msgs.len()
    }

    /// Largest frame a slot holds without truncation.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Number of frames received by the last [`RawPort::recv`].
    pub fn len(&self) -> usize {
        self.delivered
    }

    /// Whether the last [`RawPort::recv`] returned no frame.
    pub fn is_empty(&self) -> bool {
        self.delivered == 0
    }

    /// The frames received by the last [`RawPort::recv`], in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = RxSlot<'_>> + '_ {
        (0..self.filled).filter_map(move |i| self.slot(i))
    }

    /// Like [`RxBatch::iter`], with each slot's index (for [`RxBatch::frame_mut`]).
    pub fn iter_indexed(&self) -> impl Iterator<Item = (usize, RxSlot<'_>)> + '_ {
        (0..self.filled).filter_map(move |i| self.slot(i).map(|s| (i, s)))
    }

    /// The frame in slot `i`, to edit in place before it is forwarded.
    pub fn frame_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let m = *self.meta.get(i)?;
        if !m.valid || i >= self.filled {
            return None;
        }
        let base = i * self.stride + m.start as usize;
        Some(&mut self.buf[base..base + m.len as usize])
    }

    fn slot(&self, i: usize) -> Option<RxSlot<'_>> {
        let m = self.meta[i];
        if !m.valid {
            return None;
        }
        let base = i * self.stride + m.start as usize;
        Some(RxSlot {
            frame: &self.buf[base..base + m.len as usize],
            vnet: self.hdrs[i],
            wire_len: m.wire_len as usize,
            truncated: m.truncated,
            tag: m.tag,
        })
    }

    /// Points every slot's message at its buffers. Pointers are derived afresh from each
    /// buffer's base before the system call, and the buffers are not touched again until
    /// it returns.
    fn arm(&mut self) {
        let hdr_base = self.hdrs.as_mut_ptr();
        let buf_base = self.buf.as_mut_ptr();
        let addr_base = self.addrs.as_mut_ptr();
        let ctrl_base = self.ctrl.as_mut_ptr();
        for (i, iov) in self.iovs.iter_mut().enumerate() {
            iov[0] = libc::iovec {
                iov_base: hdr_base.wrapping_add(i).cast(),
                iov_len: VnetHdr::LEN,
            };
            iov[1] = libc::iovec {
                iov_base: buf_base.wrapping_add(i * self.stride + HEADROOM).cast(),
                iov_len: self.max_frame,
            };
        }
        let iov_base = self.iovs.as_mut_ptr();
        for (i, m) in self.msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_name = addr_base.wrapping_add(i).cast();
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            m.msg_hdr.msg_iov = iov_base.wrapping_add(i).cast();
            m.msg_hdr.msg_iovlen = 2;
            m.msg_hdr.msg_control = ctrl_base.wrapping_add(i).cast();
            m.msg_hdr.msg_controllen = size_of::<CtrlBuf>() as _;
            m.msg_hdr.msg_flags = 0;
            m.msg_len = 0;
        }
        self.filled = 0;
        self.delivered = 0;
    }

    /// Turns the first `n` filled messages into slots: skips our own transmissions,
    /// detects truncation, re-inserts the stripped VLAN tag.
    fn complete(&mut self, n: usize, c: &mut PortCounters) {
        self.filled = n;
        self.delivered = 0;
        for i in 0..n {
            self.meta[i] = SlotMeta::default();
            let msg = &self.msgs[i];
            let total = msg.msg_len as usize;
            let flags = msg.msg_hdr.msg_flags;
            // `msg_controllen` is a `size_t` on glibc and a `socklen_t` on musl.
            #[allow(clippy::unnecessary_cast)]
            let ctrl_len = (msg.msg_hdr.msg_controllen as usize).min(size_of::<CtrlBuf>());
            if self.addrs[i].sll_pkttype == libc::PACKET_OUTGOING {
                c.rx_outgoing_ignored += 1;
                continue;
            }
            if total < VnetHdr::LEN {
                c.rx_errors += 1;
                continue;
            }
            // With MSG_TRUNC passed in, msg_len is the full length, not what was copied.
            let orig = total - VnetHdr::LEN;
            let captured = orig.min(self.max_frame);
            let truncated = orig > self.max_frame || flags & libc::MSG_TRUNC != 0;
            let tag = find_auxdata(&self.ctrl[i].0[..ctrl_len]).and_then(tag_from_auxdata);
            let slot = &mut self.buf[i * self.stride..(i + 1) * self.stride];
            let (range, tag) = match tag {
                Some(t) if captured >= 12 => {
                    c.rx_tags_restored += 1;
                    (reinsert_tag(slot, captured, t, &mut self.hdrs[i]), Some(t))
                }
                _ => (HEADROOM..HEADROOM + captured, None),
            };
            let wire_len = orig + if tag.is_some() { 4 } else { 0 };
            if truncated {
                c.rx_truncated += 1;
            }
            if self.hdrs[i].is_gso() {
                c.rx_gso_frames += 1;
            }
            c.rx_frames += 1;
            c.rx_bytes += wire_len as u64;
            self.meta[i] = SlotMeta {
                valid: true,
                start: range.start as u32,
                len: range.len() as u32,
                wire_len: wire_len as u32,
                truncated,
                tag,
            };
            self.delivered += 1;
        }
    }
}

/// One received frame: a view into a slot of the port's [`RxBatch`].
#[derive(Clone, Copy, Debug)]
pub struct RxSlot<'a> {
    frame: &'a [u8],
    vnet: VnetHdr,
    wire_len: usize,
    truncated: bool,
    tag: Option<VlanTag>,
}

impl<'a> RxSlot<'a> {
    /// The frame as it was on the wire (outer VLAN tag restored), from the destination
    /// MAC address on, without FCS. Only the first `max_frame` bytes if truncated.
    pub fn frame(&self) -> &'a [u8] {
        self.frame
    }

    /// The vnet header the kernel gave with the frame (already adjusted for a restored
    /// tag). Hand it back unchanged when forwarding the frame.
    pub fn vnet_hdr(&self) -> VnetHdr {
        self.vnet
    }

    /// Whether the frame was longer than `max_frame` and was cut; drop such frames and
    /// count them as oversize.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Number of bytes in [`frame`](Self::frame).
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Whether the frame is empty (never, for Ethernet).
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    /// The frame's full length on the wire (for a GSO super-frame: of the super-frame),
    /// also when truncated.
    pub fn wire_len(&self) -> usize {
        self.wire_len
    }

    /// The outer tag that the kernel had stripped and that was put back, if any.
    pub fn restored_tag(&self) -> Option<VlanTag> {
        self.tag
    }
}

/// Transmit iovecs and headers of one port, allocated at open.
struct TxRing {
    hdrs: Box<[VnetHdr]>,
    iovs: Box<[[libc::iovec; 2]]>,
    msgs: Box<[libc::mmsghdr]>,
    len: usize,
}

// SAFETY: between pushes and the flush, the pointers in `iovs`/`msgs` refer to frames
// borrowed by a live `TxBatch`, which borrows the owning `RawPort` mutably, so the port
// cannot move to another thread meanwhile; outside a `TxBatch` they are stale, never
// dereferenced, and discarded (`len` reset) before the next use.
unsafe impl Send for TxRing {}

impl TxRing {
    fn new(batch: usize) -> TxRing {
        TxRing {
            hdrs: vec![VnetHdr::default(); batch].into_boxed_slice(),
            iovs: vec![[zeroed::<libc::iovec>(); 2]; batch].into_boxed_slice(),
            msgs: vec![zeroed::<libc::mmsghdr>(); batch].into_boxed_slice(),
            len: 0,
        }
    }
}

/// One data port: an `AF_PACKET`/`SOCK_RAW` socket bound to one interface.
///
/// Not for the fast path: [`open`](Self::open) (allocates everything),
/// [`kernel_stats`](Self::kernel_stats). Fast path: [`recv`](Self::recv),
/// [`rx`](Self::rx), [`tx`](Self::tx) and [`TxBatch`] — no allocation, no lock, one
/// system call per batch.
pub struct RawPort {
    fd: OwnedFd,
    name: String,
    ifindex: u32,
    rx: RxBatch,
    tx: TxRing,
    counters: PortCounters,
    kernel: KernelStats,
    rcvbuf: usize,
    sndbuf: usize,
    ignore_outgoing: bool,
    qdisc_bypass: bool,
}

impl std::fmt::Debug for RawPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPort")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .field("fd", &self.fd.as_raw_fd())
            .field("batch", &self.rx.capacity())
            .field("max_frame", &self.rx.max_frame)
            .field("rcvbuf", &self.rcvbuf)
            .field("sndbuf", &self.sndbuf)
            .field("ignore_outgoing", &self.ignore_outgoing)
            .field("qdisc_bypass", &self.qdisc_bypass)
            .finish()
    }
}

impl RawPort {
    /// Opens a port on `iface` (a name or an index, in the calling thread's network
    /// namespace) with `batch` receive and transmit slots of `max_frame` bytes each
    /// (frame without FCS, tags included; see [`MAX_GSO_FRAME`] and
    /// [`frame_capacity_for_mtu`](super::frame_capacity_for_mtu)).
    ///
    /// Sets `PACKET_VNET_HDR` and `PACKET_AUXDATA` (required), `PACKET_IGNORE_OUTGOING`
    /// and `PACKET_QDISC_BYPASS` (used when the kernel has them), non-blocking mode and
    /// large socket buffers. The interface may be down; frames flow once it is up.
    pub fn open(
        iface: impl Into<Iface>,
        batch: usize,
        max_frame: usize,
    ) -> Result<RawPort, PortError> {
        let iface = iface.into();
        if batch == 0 || batch > MAX_BATCH {
            return Err(PortError::InvalidParameter(format!(
                "batch size {batch} is outside 1..={MAX_BATCH}"
            )));
        }
        if !(64..=MAX_FRAME_LIMIT).contains(&max_frame) {
            return Err(PortError::InvalidParameter(format!(
                "max_frame {max_frame} is outside 64..={MAX_FRAME_LIMIT}"
            )));
        }
        let (name, ifindex) = sys::resolve(&iface)?;
        let os = |op: &'static str| {
            let name = name.clone();
            move |e| PortError::os(&name, op, e)
        };

        // Protocol 0: nothing is queued before the options are set and the socket bound.
        let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)
            .map_err(os("opening an AF_PACKET socket"))?;
        let one: libc::c_int = 1;
        sys::setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, &one)
            .map_err(os("enabling PACKET_VNET_HDR"))?;
        sys::setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, &one)
            .map_err(os("enabling PACKET_AUXDATA"))?;
        // Both appeared in Linux 4.x; without them we still filter on sll_pkttype and go
        // through the qdisc.
        let ignore_outgoing =
            sys::setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one).is_ok();
        let qdisc_bypass =
            sys::setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &one).is_ok();
        let rcvbuf = set_buffer(&fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
        let sndbuf = set_buffer(&fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);

        let mut sll: libc::sockaddr_ll = zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `sll` is a live, initialised sockaddr_ll and we pass its exact size.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })
        .map_err(os("binding the AF_PACKET socket"))?;

        Ok(RawPort {
            fd,
            name,
            ifindex,
            rx: RxBatch::new(batch, max_frame),
            tx: TxRing::new(batch),
            counters: PortCounters::default(),
            kernel: KernelStats::default(),
            rcvbuf,
            sndbuf,
            ignore_outgoing,
            qdisc_bypass,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The counters so far.
    pub fn counters(&self) -> PortCounters {
        self.counters
    }

    /// Effective `(SO_RCVBUF, SO_SNDBUF)` in bytes, as the kernel reports them.
    pub fn socket_buffers(&self) -> (usize, usize) {
        (self.rcvbuf, self.sndbuf)
    }

    /// Whether `PACKET_IGNORE_OUTGOING` and `PACKET_QDISC_BYPASS` are in effect. The
    /// bypass is given up for good when the port first transmits a GSO super-frame:
    /// the kernel's direct-transmit path cannot segment in software.
    pub fn options(&self) -> (bool, bool) {
        (self.ignore_outgoing, self.qdisc_bypass)
    }

    /// Receives up to one batch of frames without blocking and returns how many were
    /// delivered (0 when none were waiting). The frames are then in [`rx`](Self::rx)
    /// until the next call.
    ///
    /// Transient conditions are counted, not returned: link down, a frame the kernel
    /// could not describe. Errors are only returned for a vanished interface or an
    /// unexpected failure.
    pub fn recv(&mut self) -> Result<usize, PortError> {
        self.rx.arm();
        let capacity = self.rx.capacity() as libc::c_uint;
        let mut eintr = 0;
        let mut einval = 0;
        let n = loop {
            let msgs = self.rx.msgs.as_mut_ptr();
            // SAFETY: `msgs` points to `capacity` initialised mmsghdrs whose iovecs, name
            // and control pointers were just derived by `arm` from live buffers of this
            // batch with their exact sizes; the kernel writes only within those, and
            // nothing else touches them until the call returns.
            let r = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    msgs,
                    capacity,
                    // The flags are a c_int on glibc and a c_uint on musl.
                    (libc::MSG_DONTWAIT | libc::MSG_TRUNC) as _,
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                break r as usize;
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(0),
                Some(libc::EINTR) if eintr < MAX_EINTR => eintr += 1,
                Some(libc::EINTR) => return Ok(0),
                // A frame the kernel could not turn into a vnet header (e.g. a GSO type
                // virtio has no name for) is consumed with EINVAL; go on with the next.
                Some(libc::EINVAL) if einval < 4 => {
                    einval += 1;
                    self.counters.rx_errors += 1;
                }
                Some(libc::EINVAL) => return Ok(0),
                Some(libc::ENETDOWN) => {
                    self.counters.rx_link_down += 1;
                    return Ok(0);
                }
                Some(libc::ENODEV) | Some(libc::ENXIO) => {
                    return Err(PortError::InterfaceGone(self.name.clone()))
                }
                _ => return Err(PortError::os(&self.name, "receiving (recvmmsg)", err)),
            }
        };
        self.rx.complete(n, &mut self.counters);
        Ok(self.rx.delivered)
    }

    /// The frames of the last receive, to edit before they are forwarded.
    pub fn rx_mut(&mut self) -> &mut RxBatch {
        &mut self.rx
    }

    /// The frames received by the last [`recv`](Self::recv).
    pub fn rx(&self) -> &RxBatch {
        &self.rx
    }

    /// Starts a transmit batch on this port. Frames pushed to it are borrowed, not
    /// copied, and sent by `sendmmsg` when the batch is full, on
    /// [`flush`](TxBatch::flush), and when it is dropped.
    pub fn tx(&mut self) -> TxBatch<'_> {
        if self.tx.len != 0 {
            // Left over by a TxBatch that was leaked rather than dropped: the frames it
            // pointed at may be gone, so they are discarded, never sent.
            self.counters.tx_dropped += self.tx.len as u64;
            self.tx.len = 0;
        }
        TxBatch {
            port: self,
            _frames: PhantomData,
        }
    }

    /// Reads the kernel's `PACKET_STATISTICS` and returns the totals since open (reading
    /// resets the kernel's counters, so they are accumulated here).
    pub fn kernel_stats(&mut self) -> Result<KernelStats, PortError> {
        let s: libc::tpacket_stats =
            sys::getsockopt(&self.fd, libc::SOL_PACKET, libc::PACKET_STATISTICS)
                .map_err(|e| PortError::os(&self.name, "reading PACKET_STATISTICS", e))?;
        self.kernel.packets += u64::from(s.tp_packets);
        self.kernel.drops += u64::from(s.tp_drops);
        Ok(self.kernel)
    }

    /// Sends the `len` frames staged in the transmit ring; see [`TxBatch::flush`].
    fn flush_ring(&mut self) -> TxOutcome {
        let n = self.tx.len;
        self.tx.len = 0;
        if n == 0 {
            return TxOutcome::default();
        }
        if self.qdisc_bypass && self.tx.hdrs[..n].iter().any(VnetHdr::is_gso) {
            // The direct-xmit path drops every skb that needs software segmentation
            // (__dev_direct_xmit: `if (skb != orig_skb) goto drop`), and prepared ports
            // have TSO/GSO off: from the first super-frame on, go through the qdisc,
            // which segments. Once, for good (switching back and forth could reorder).
            let zero: libc::c_int = 0;
            if sys::setsockopt(&self.fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &zero).is_ok()
            {
                self.qdisc_bypass = false;
            }
        }
        let hdr_base = self.tx.hdrs.as_mut_ptr();
        for (i, iov) in self.tx.iovs[..n].iter_mut().enumerate() {
            iov[0] = libc::iovec {
                iov_base: hdr_base.wrapping_add(i).cast(),
                iov_len: VnetHdr::LEN,
            };
        }
        let iov_base = self.tx.iovs.as_mut_ptr();
        for (i, m) in self.tx.msgs[..n].iter_mut().enumerate() {
            m.msg_hdr = zeroed();
            m.msg_hdr.msg_iov = iov_base.wrapping_add(i).cast();
            m.msg_hdr.msg_iovlen = 2;
            m.msg_len = 0;
        }
        let msgs = self.tx.msgs.as_mut_ptr();
        let c = &mut self.counters;
        let mut out = TxOutcome::default();
        let mut off = 0;
        let (mut eintr, mut waits, mut netdown) = (0, 0, 0);
        while off < n {
            // SAFETY: `msgs[off..n]` are initialised mmsghdrs (set just above) whose
            // iovecs point at our `hdrs` and at frames borrowed for the lifetime of the
            // `TxBatch` that staged them, which is still alive; the kernel only reads.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs.wrapping_add(off),
                    (n - off) as libc::c_uint,
                    libc::MSG_DONTWAIT as _,
                )
            };
            if r > 0 {
                for i in off..off + r as usize {
                    c.tx_frames += 1;
                    c.tx_bytes += self.tx.iovs[i][1].iov_len as u64;
                    if self.tx.hdrs[i].is_gso() {
                        c.tx_gso_frames += 1;
                    }
                }
                out.sent += r as usize;
                off += r as usize;
                continue;
            }
            let errno = if r == 0 {
                libc::EAGAIN
            } else {
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO)
            };
            match errno {
                libc::EINTR if eintr < MAX_EINTR => eintr += 1,
                libc::EAGAIN if waits < TX_EAGAIN_WAITS => {
                    waits += 1;
                    sys::poll_one(self.fd.as_raw_fd(), libc::POLLOUT, TX_EAGAIN_WAIT_MS);
                }
                // The socket error left by a link flap is reported once: try again once.
                libc::ENETDOWN if netdown == 0 => netdown += 1,
                libc::ENETDOWN | libc::ENXIO | libc::ENODEV => {
                    c.tx_link_down += (n - off) as u64;
                    out.dropped += n - off;
                    break;
                }
                // This one frame was dropped by the device or its queue; go on.
                libc::ENOBUFS => {
                    c.tx_dropped += 1;
                    out.dropped += 1;
                    off += 1;
                }
                libc::EAGAIN | libc::EINTR => {
                    c.tx_dropped += (n - off) as u64;
                    out.dropped += n - off;
                    break;
                }
                // This one frame was rejected (too long, bad vnet header, …); go on.
                _ => {
                    c.tx_errors += 1;
                    out.dropped += 1;
                    off += 1;
                }
            }
        }
        out
    }
}

impl AsRawFd for RawPort {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for RawPort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Sets a socket buffer size, privileged variant first; returns what the kernel reports.
fn set_buffer(fd: &OwnedFd, force: libc::c_int, plain: libc::c_int) -> usize {
    let want = SOCKET_BUFFER_BYTES as libc::c_int;
    if sys::setsockopt(fd, libc::SOL_SOCKET, force, &want).is_err() {
        // Capped by net.core.{r,w}mem_max; failure leaves the default, which still works.
        let _ = sys::setsockopt(fd, libc::SOL_SOCKET, plain, &want);
    }
    sys::getsockopt::<libc::c_int>(fd, libc::SOL_SOCKET, plain).map_or(0, |v| v.max(0) as usize)
}

/// A transmit batch on one port, borrowing the frames it will send (see [`RawPort::tx`]).
///
/// Dropping it flushes what is left, so frames are never silently forgotten.
#[must_use = "frames are sent when the batch is flushed or dropped"]
pub struct TxBatch<'a> {
    port: &'a mut RawPort,
    _frames: PhantomData<&'a [u8]>,
}

impl std::fmt::Debug for TxBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxBatch")
            .field("port", &self.port.name)
            .field("len", &self.port.tx.len)
            .finish()
    }
}

impl<'a> TxBatch<'a> {
    /// Stages a received frame with the vnet header it came with (zero copy). A truncated
    /// slot is refused (counted in `tx_errors`) and `false` returned.
    pub fn push(&mut self, slot: &RxSlot<'a>) -> bool {
        if slot.truncated() {
            self.port.counters.tx_errors += 1;
            return false;
        }
        self.push_frame(slot.vnet_hdr(), slot.frame());
        true
    }

    /// Stages any frame (from the destination MAC on, tags in-band) with a vnet header
    /// (`VnetHdr::default()` for a plain, complete frame). Sends the batch first if it is
    /// full.
    pub fn push_frame(&mut self, vnet: VnetHdr, frame: &'a [u8]) {
        if self.port.tx.len == self.port.tx.msgs.len() {
            self.port.flush_ring();
        }
        let tx = &mut self.port.tx;
        let i = tx.len;
        tx.hdrs[i] = vnet;
        tx.iovs[i][1] = libc::iovec {
            iov_base: frame.as_ptr().cast_mut().cast(),
            iov_len: frame.len(),
        };
        tx.len += 1;
    }

    /// Frames staged and not yet sent.
    pub fn len(&self) -> usize {
        self.port.tx.len
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.port.tx.len == 0
    }

    /// How many frames are sent per system call.
    pub fn capacity(&self) -> usize {
        self.port.tx.msgs.len()
    }

    /// Sends everything staged, with as few `sendmmsg` calls as the kernel allows.
    ///
    /// Never blocks for long and never spins: a full socket buffer is waited on briefly
    /// (twice 1 ms) and then the rest of the batch is dropped; a frame the device drops
    /// (`ENOBUFS`) or the kernel rejects is skipped; a down link drops the batch. All of
    /// it is counted in the port's [`PortCounters`].
    pub fn flush(&mut self) -> TxOutcome {
        self.port.flush_ring()
    }
}

impl Drop for TxBatch<'_> {
    fn drop(&mut self) {
        self.port.flush_ring();
    }
}
