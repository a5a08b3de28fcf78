//! Link control through rtnetlink: what an interface is, setting its flags, and watching
//! carrier changes. Synchronous, one short-lived netlink socket per operation; never on
//! the per-packet path.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, LinkAttribute, LinkFlags, LinkLayerType,
    LinkMessage, State,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::sys;
use super::PortError;

/// Receive buffer for netlink answers (a dump datagram is at most 32 KiB by default).
const NETLINK_RECV_BYTES: usize = 64 * 1024;

/// Ethernet header plus two VLAN tags (QinQ): what a frame may add to the MTU.
const L2_OVERHEAD: usize = 14 + 2 * 4;

/// The frame capacity (`max_frame` for [`RawPort::open`](super::RawPort::open)) for an
/// interface MTU: the MTU plus Ethernet header and room for two VLAN tags (no FCS).
///
/// Receiving is one thing; the kernel *transmits* a non-GSO frame through a packet
/// socket only up to MTU + 14 bytes, or MTU + 18 when the outer TPID is 0x8100 (802.1Q).
/// A full-size 802.1ad/QinQ frame (MTU + 22) is refused with `EMSGSIZE` (counted in
/// `tx_errors`) unless the port's MTU is raised by 8 (measured on veth, Linux 6.18).
pub fn frame_capacity_for_mtu(mtu: u32) -> usize {
    mtu as usize + L2_OVERHEAD
}

/// Returns the common MTU of two ports, or [`PortError::MtuMismatch`] naming both.
pub fn check_same_mtu(a: &LinkInfo, b: &LinkInfo) -> Result<u32, PortError> {
    if a.mtu == b.mtu {
        Ok(a.mtu)
    } else {
        Err(PortError::MtuMismatch {
            a: a.name.clone(),
            a_mtu: a.mtu,
            b: b.name.clone(),
            b_mtu: b.mtu,
        })
    }
}

/// RFC 2863 operational state, as the kernel reports it (`IFLA_OPERSTATE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperState {
    /// Not determined (typical for virtual devices without carrier management).
    Unknown,
    /// A component is missing.
    NotPresent,
    /// Down.
    Down,
    /// Down because a lower layer is.
    LowerLayerDown,
    /// In a test mode.
    Testing,
    /// Waiting for an external event.
    Dormant,
    /// Up and able to pass frames.
    Up,
    /// A value newer than this code.
    Other(u8),
}

impl From<State> for OperState {
    fn from(s: State) -> OperState {
        match u8::from(s) {
            0 => OperState::Unknown,
            1 => OperState::NotPresent,
            2 => OperState::Down,
            3 => OperState::LowerLayerDown,
            4 => OperState::Testing,
            5 => OperState::Dormant,
            6 => OperState::Up,
            v => OperState::Other(v),
        }
    }
}

/// An IPv6 address on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6AddrInfo {
    /// The address.
    pub addr: Ipv6Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// Whether it is link-local (`fe80::/10`).
    pub link_local: bool,
    /// Whether it was configured by hand (`IFA_F_PERMANENT`) rather than automatically.
    pub permanent: bool,
}

/// What the kernel says about one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    /// MTU (L3 payload size).
    pub mtu: u32,
    /// Hardware address, for Ethernet-like interfaces.
    pub mac: Option<[u8; 6]>,
    /// `ARPHRD_*` link-layer type (1 for Ethernet).
    pub link_type: u16,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Up and operational (`IFF_RUNNING`).
    pub running: bool,
    /// Carrier present (`IFF_LOWER_UP`; only reported while administratively up).
    pub carrier: bool,
    /// Promiscuous mode requested by the administrator (`IFF_PROMISC`).
    pub promisc: bool,
    /// ARP disabled (`IFF_NOARP`).
    pub noarp: bool,
    /// Operational state.
    pub oper_state: OperState,
    /// Index of the bridge, bond or team this interface is enslaved to (`IFLA_MASTER`).
    pub master: Option<u32>,
    /// That master's name, when it could be looked up.
    pub master_name: Option<String>,
    /// IPv4 addresses.
    pub ipv4_addrs: Vec<Ipv4Addr>,
    /// IPv6 addresses (link-local ones included).
    pub ipv6_addrs: Vec<Ipv6AddrInfo>,
    /// `IFLA_INET6_ADDR_GEN_MODE` (0 EUI-64, 1 none, 2 stable-privacy, 3 random), when
    /// the interface has IPv6 state.
    pub addr_gen_mode: Option<u8>,
}

impl LinkInfo {
    /// Queries the kernel about `ifname` (in the calling thread's network namespace).
    ///
    /// A missing interface is [`PortError::NoSuchInterface`].
    pub fn query(ifname: &str) -> Result<LinkInfo, PortError> {
        sys::ifname_cstring(ifname)?;
        let mut rtnl = Rtnl::open(ifname)?;
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::IfName(ifname.to_owned()));
        let link = rtnl.get_link(ifname, msg)?;
        rtnl.complete(link)
    }

    /// Queries the kernel about the interface with index `ifindex`.
    pub fn query_index(ifindex: u32) -> Result<LinkInfo, PortError> {
        let label = format!("ifindex {ifindex}");
        let mut rtnl = Rtnl::open(&label)?;
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        let link = rtnl.get_link(&label, msg)?;
        rtnl.complete(link)
    }

    /// Whether the interface has any IPv4 address.
    pub fn has_ipv4(&self) -> bool {
        !self.ipv4_addrs.is_empty()
    }

    /// Whether the interface has any IPv6 address (link-local included).
    pub fn has_ipv6(&self) -> bool {
        !self.ipv6_addrs.is_empty()
    }

    /// Whether the interface has an IPv6 link-local address.
    pub fn has_ipv6_link_local(&self) -> bool {
        self.ipv6_addrs.iter().any(|a| a.link_local)
    }

    /// Whether the interface is a port of a bridge, bond or team.
    pub fn is_enslaved(&self) -> bool {
        self.master.is_some()
    }

    /// Whether the interface is Ethernet (`ARPHRD_ETHER`).
    pub fn is_ethernet(&self) -> bool {
        self.link_type == u16::from(LinkLayerType::Ether)
    }

    /// The frame capacity for this interface's MTU, see [`frame_capacity_for_mtu`].
    pub fn frame_capacity(&self) -> usize {
        frame_capacity_for_mtu(self.mtu)
    }

    fn from_link(msg: &LinkMessage) -> LinkInfo {
        let flags = msg.header.flags;
        let mut info = LinkInfo {
            name: String::new(),
            ifindex: msg.header.index,
            mtu: 0,
            mac: None,
            link_type: u16::from(msg.header.link_layer_type),
            up: flags.contains(LinkFlags::Up),
            running: flags.contains(LinkFlags::Running),
            carrier: flags.contains(LinkFlags::LowerUp),
            promisc: flags.contains(LinkFlags::Promisc),
            noarp: flags.contains(LinkFlags::Noarp),
            oper_state: OperState::Unknown,
            master: None,
            master_name: None,
            ipv4_addrs: Vec::new(),
            ipv6_addrs: Vec::new(),
            addr_gen_mode: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => info.name = n.clone(),
                LinkAttribute::Mtu(m) => info.mtu = *m,
                LinkAttribute::Address(a) => info.mac = a.as_slice().try_into().ok(),
                LinkAttribute::OperState(s) => info.oper_state = (*s).into(),
                LinkAttribute::Controller(m) if *m != 0 => info.master = Some(*m),
                LinkAttribute::AfSpecUnspec(specs) => {
                    for spec in specs {
                        if let AfSpecUnspec::Inet6(v6) = spec {
                            for a in v6 {
                                if let AfSpecInet6::AddrGenMode(m) = a {
                                    info.addr_gen_mode = Some(u8::from(m));
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        info
    }
}

/// Brings the interface with index `ifindex` administratively up or down (`IFF_UP`),
/// e.g. to propagate a link loss from one port to the other.
pub fn set_link_up(ifindex: u32, up: bool) -> Result<(), PortError> {
    let mask = LinkFlags::Up;
    set_link_flags(ifindex, if up { mask } else { LinkFlags::empty() }, mask)
}

/// Sets the `IFF_*` bits in `mask` to their values in `flags`.
pub(crate) fn set_link_flags(
    ifindex: u32,
    flags: LinkFlags,
    mask: LinkFlags,
) -> Result<(), PortError> {
    let label = format!("ifindex {ifindex}");
    let mut rtnl = Rtnl::open(&label)?;
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.header.flags = flags;
    msg.header.change_mask = mask;
    rtnl.request(RouteNetlinkMessage::SetLink(msg), false)
        .map(drop)
        .map_err(|e| e.into_port_error(&label, "setting link flags"))
}

/// Sets `IFLA_INET6_ADDR_GEN_MODE` (1 = none: the kernel generates no link-local
/// address).
pub(crate) fn set_addr_gen_mode(ifindex: u32, mode: u8) -> Result<(), PortError> {
    let label = format!("ifindex {ifindex}");
    let mut rtnl = Rtnl::open(&label)?;
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.attributes
        .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
            vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::from(mode))],
        )]));
    rtnl.request(RouteNetlinkMessage::SetLink(msg), false)
        .map(drop)
        .map_err(|e| e.into_port_error(&label, "setting the IPv6 address generation mode"))
}

/// One carrier or administrative change seen by a [`LinkMonitor`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkChange {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name, when the kernel included it.
    pub name: Option<String>,
    /// Administratively up.
    pub admin_up: bool,
    /// Carrier present (`IFF_LOWER_UP`): frames can flow.
    pub carrier_up: bool,
    /// The interface was removed.
    pub removed: bool,
}

/// A non-blocking netlink socket subscribed to link notifications (`RTNLGRP_LINK`).
///
/// Poll [`as_raw_fd`](AsRawFd::as_raw_fd) for readability, then call
/// [`poll_events`](Self::poll_events).
pub struct LinkMonitor {
    sock: Socket,
    buf: Vec<u8>,
}

impl std::fmt::Debug for LinkMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkMonitor")
            .field("fd", &self.sock.as_raw_fd())
            .finish()
    }
}

impl LinkMonitor {
    /// Subscribes to link notifications in the calling thread's network namespace.
    pub fn new() -> Result<LinkMonitor, PortError> {
        let os = |e| PortError::os("link monitor", "subscribing to link notifications", e);
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(os)?;
        sock.bind(&SocketAddr::new(0, 0)).map_err(os)?;
        sock.add_membership(libc::RTNLGRP_LINK).map_err(os)?;
        sock.set_non_blocking(true).map_err(os)?;
        Ok(LinkMonitor {
            sock,
            buf: Vec::with_capacity(NETLINK_RECV_BYTES),
        })
    }

    /// Reads every pending notification and returns the link changes, oldest first.
    /// Returns an empty list when nothing is pending. If the kernel dropped
    /// notifications (socket overrun), returns the current state of every interface
    /// instead, so nothing is missed.
    pub fn poll_events(&mut self) -> Result<Vec<LinkChange>, PortError> {
        let mut out = Vec::new();
        loop {
            self.buf.clear();
            self.buf.reserve(NETLINK_RECV_BYTES);
            match self.sock.recv(&mut self.buf, libc::MSG_DONTWAIT) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Overrun: drain what is left, then resynchronise from a dump.
                    while self.sock.recv(&mut self.buf, libc::MSG_DONTWAIT).is_ok() {
                        self.buf.clear();
                        self.buf.reserve(NETLINK_RECV_BYTES);
                    }
                    return current_links();
                }
                Err(e) => {
                    return Err(PortError::os(
                        "link monitor",
                        "reading link notifications",
                        e,
                    ))
                }
            }
            for msg in split_messages(&self.buf) {
                let Ok(parsed) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg) else {
                    continue;
                };
                match parsed.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                        out.push(change_from(&l, false));
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                        out.push(change_from(&l, true));
                    }
                    _ => {}
                }
            }
        }
    }
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl AsFd for LinkMonitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is owned by `self.sock`, which lives as long as the
        // returned borrow (tied to `&self`).
        unsafe { BorrowedFd::borrow_raw(self.sock.as_raw_fd()) }
    }
}

fn change_from(l: &LinkMessage, removed: bool) -> LinkChange {
    let name = l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    });
    LinkChange {
        ifindex: l.header.index,
        name,
        admin_up: !removed && l.header.flags.contains(LinkFlags::Up),
        carrier_up: !removed && l.header.flags.contains(LinkFlags::LowerUp),
        removed,
    }
}

/// The state of every interface, as link changes (used to resynchronise).
fn current_links() -> Result<Vec<LinkChange>, PortError> {
    let mut rtnl = Rtnl::open("link monitor")?;
    let links = rtnl
        .request(RouteNetlinkMessage::GetLink(LinkMessage::default()), true)
        .map_err(|e| e.into_port_error("link monitor", "listing links"))?;
    Ok(links
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(change_from(l, false)),
            _ => None,
        })
        .collect())
}

/// Splits a netlink datagram into its messages (by the length in each header).
fn split_messages(mut buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if buf.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            return None;
        }
        let msg = &buf[..len];
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
        Some(msg)
    })
}

/// A failed netlink exchange, before we know which interface to blame.
pub(crate) enum RtnlError {
    Io(io::Error),
    Decode(String),
}

impl RtnlError {
    pub(crate) fn into_port_error(self, iface: &str, op: &'static str) -> PortError {
        match self {
            RtnlError::Io(e) => PortError::os(iface, op, e),
            RtnlError::Decode(detail) => PortError::Netlink {
                iface: iface.to_owned(),
                op,
                detail,
            },
        }
    }
}

impl From<io::Error> for RtnlError {
    fn from(e: io::Error) -> RtnlError {
        RtnlError::Io(e)
    }
}

/// A synchronous rtnetlink request/response channel.
pub(crate) struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    pub(crate) fn open(iface: &str) -> Result<Rtnl, PortError> {
        let os = |e| PortError::os(iface, "opening a netlink socket", e);
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(os)?;
        sock.bind_auto().map_err(os)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(os)?;
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: Vec::with_capacity(NETLINK_RECV_BYTES),
        })
    }

    /// Sends one request and collects the answers: until the ACK for a plain request,
    /// until `NLMSG_DONE` for a dump. Messages of a dump that cannot be decoded are
    /// skipped; for a plain request they are an error.
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        dump: bool,
    ) -> Result<Vec<RouteNetlinkMessage>, RtnlError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        self.sock.send(&out, 0)?;

        let mut replies = Vec::new();
        loop {
            self.buf.clear();
            self.buf.reserve(NETLINK_RECV_BYTES);
            match self.sock.recv(&mut self.buf, 0) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            for raw in split_messages(&self.buf) {
                let parsed = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw) {
                    Ok(p) => p,
                    Err(_) if dump => continue,
                    Err(e) => return Err(RtnlError::Decode(e.to_string())),
                };
                if parsed.header.sequence_number != self.seq {
                    continue;
                }
                match parsed.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get()).into()),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    _ => {}
                }
            }
        }
    }

    /// One `RTM_GETLINK`; `ENODEV` becomes `NoSuchInterface(label)`.
    fn get_link(&mut self, label: &str, msg: LinkMessage) -> Result<LinkMessage, PortError> {
        let replies = self
            .request(RouteNetlinkMessage::GetLink(msg), false)
            .map_err(|e| e.into_port_error(label, "querying the link"))?;
        replies
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .ok_or_else(|| PortError::Netlink {
                iface: label.to_owned(),
                op: "querying the link",
                detail: "no RTM_NEWLINK in the answer".to_owned(),
            })
    }

    /// Fills in addresses and the master's name.
    fn complete(&mut self, link: LinkMessage) -> Result<LinkInfo, PortError> {
        let mut info = LinkInfo::from_link(&link);
        let addrs = self
            .request(
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
                true,
            )
            .map_err(|e| e.into_port_error(&info.name, "listing addresses"))?;
        for m in &addrs {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if a.header.index != info.ifindex {
                continue;
            }
            let mut permanent = a.header.flags.bits() & 0x80 != 0;
            let mut addr = None;
            for attr in &a.attributes {
                match attr {
                    AddressAttribute::Flags(f) => permanent = f.contains(AddressFlags::Permanent),
                    AddressAttribute::Address(ip) => addr = Some(*ip),
                    AddressAttribute::Local(ip @ IpAddr::V4(_)) => addr = Some(*ip),
                    _ => {}
                }
            }
            match addr {
                Some(IpAddr::V4(v4)) if !info.ipv4_addrs.contains(&v4) => {
                    info.ipv4_addrs.push(v4);
                }
                Some(IpAddr::V4(_)) => {}
                Some(IpAddr::V6(v6)) => info.ipv6_addrs.push(Ipv6AddrInfo {
                    addr: v6,
                    prefix_len: a.header.prefix_len,
                    link_local: v6.segments()[0] & 0xffc0 == 0xfe80,
                    permanent,
                }),
                None => {}
            }
        }
        if let Some(master) = info.master {
            let mut msg = LinkMessage::default();
            msg.header.index = master;
            info.master_name = self
                .get_link(&info.name, msg)
                .ok()
                .map(|l| LinkInfo::from_link(&l).name);
        }
        Ok(info)
    }
}
