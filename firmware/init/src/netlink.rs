//! Renaming the ports and taking them up or down, over rtnetlink (the same crates and
//! the same request/ACK pattern as `gk-dataplane`'s `port/link.rs`, whose helpers are
//! crate-private there). One short-lived socket per request; only at start-up and on a
//! change of failure mode.

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// Sends one request and waits for its ACK (or error).
fn request(msg: RouteNetlinkMessage) -> io::Result<()> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    header.sequence_number = 1;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    nl.finalize();
    let mut out = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut out);
    sock.send(&out, 0)?;
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        buf.clear();
        match sock.recv(&mut buf, 0) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let mut rest = &buf[..];
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len < 16 || len > rest.len() {
                break;
            }
            let raw = &rest[..len];
            rest = &rest[len.next_multiple_of(4).min(rest.len())..];
            let Ok(parsed) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw) else {
                continue;
            };
            if parsed.header.sequence_number != 1 {
                continue;
            }
            if let NetlinkPayload::Error(e) = parsed.payload {
                return match e.code {
                    None => Ok(()),
                    Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                };
            }
        }
    }
}

/// The interface index of `name`.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = crate::sys::cstring(name)?;
    // SAFETY: if_nametoindex reads a NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i)
    }
}

/// Sets `IFF_UP` on or off.
pub fn set_up(index: u32, up: bool) -> io::Result<()> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.header.flags = if up {
        LinkFlags::Up
    } else {
        LinkFlags::empty()
    };
    msg.header.change_mask = LinkFlags::Up;
    request(RouteNetlinkMessage::SetLink(msg))
}

/// Renames the interface (it must be down, which it is at boot).
pub fn rename(index: u32, new_name: &str) -> io::Result<()> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes
        .push(LinkAttribute::IfName(new_name.to_string()));
    request(RouteNetlinkMessage::SetLink(msg))
}
