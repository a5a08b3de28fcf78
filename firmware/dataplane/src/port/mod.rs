//! Port I/O and link control: the edge where frames enter and leave the box.
//!
//! Two halves:
//!
//! * **Frame I/O** ([`RawPort`]): one `AF_PACKET`/`SOCK_RAW` socket per data port, bound to
//!   one interface, with `PACKET_VNET_HDR` (GSO super-frames and partial checksums arrive
//!   described by a [`VnetHdr`] and are handed back to the kernel unchanged on transmit),
//!   `PACKET_AUXDATA` (the outermost VLAN tag, which the kernel strips into skb metadata
//!   before any packet socket sees the frame, is put back into the bytes), and
//!   `recvmmsg`/`sendmmsg` batching into buffers allocated once at open. Nothing on the
//!   per-packet path allocates, locks or logs.
//! * **Link control** ([`LinkInfo`], [`PreparedPort`], [`set_link_up`], [`LinkMonitor`],
//!   [`Features`]): synchronous rtnetlink and the ethtool ioctl, used at start-up, at
//!   shutdown and on link events — never per packet.
//!
//! What is deliberately absent: no pnet, no mmap rings (yet), no tokio, no dependence on
//! the `ip` or `ethtool` binaries.

mod ethtool;
mod link;
mod prepare;
mod raw;
mod sys;
mod vnet;

pub use ethtool::{set_features, FeatureState, Features, SetFeaturesOutcome};
pub use link::{
    check_same_mtu, frame_capacity_for_mtu, set_link_up, Ipv6AddrInfo, LinkChange, LinkInfo,
    LinkMonitor, OperState,
};
pub use prepare::{OffloadReport, OffloadStatus, PreparedPort, OFFLOADS_TO_DISABLE};
pub use raw::{
    KernelStats, PortCounters, RawPort, RxBatch, RxSlot, TxBatch, TxOutcome, MAX_BATCH,
    MAX_GSO_FRAME,
};
pub use vnet::{VlanTag, VnetHdr, HEADROOM};

use std::io;

/// An interface, by name or by index (both resolved in the caller's network namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Iface {
    /// An interface name such as `eth0` (at most 15 bytes).
    Name(String),
    /// A kernel interface index.
    Index(u32),
}

impl From<&str> for Iface {
    fn from(name: &str) -> Self {
        Iface::Name(name.to_owned())
    }
}

impl From<String> for Iface {
    fn from(name: String) -> Self {
        Iface::Name(name)
    }
}

impl From<&String> for Iface {
    fn from(name: &String) -> Self {
        Iface::Name(name.clone())
    }
}

impl From<u32> for Iface {
    fn from(index: u32) -> Self {
        Iface::Index(index)
    }
}

impl std::fmt::Display for Iface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Iface::Name(n) => f.write_str(n),
            Iface::Index(i) => write!(f, "ifindex {i}"),
        }
    }
}

/// Everything that can go wrong opening, preparing or driving a port.
///
/// The variants say who is at fault: the operator's setup (`NoSuchInterface`, `HasIpv4`,
/// `Enslaved`, `MtuMismatch`, …), missing privileges, or the kernel refusing an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// The interface does not exist (in the caller's network namespace).
    #[error(
        "no such network interface: {0:?} (check the name, and that it exists in this \
         network namespace)"
    )]
    NoSuchInterface(String),

    /// A parameter given by our own caller is out of range (a bug or a bad configuration).
    #[error("invalid port parameter: {0}")]
    InvalidParameter(String),

    /// The operation needs privileges the process does not have.
    #[error(
        "{iface}: {op} is not permitted (needs CAP_NET_RAW and CAP_NET_ADMIN; run as root \
         or grant the capabilities): {source}"
    )]
    PermissionDenied {
        /// The interface concerned.
        iface: String,
        /// What we tried to do.
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },

    /// A system call or kernel request failed.
    #[error("{iface}: {op} failed: {source}")]
    Os {
        /// The interface concerned.
        iface: String,
        /// What we tried to do.
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },

    /// The kernel's netlink answer could not be understood.
    #[error("{iface}: cannot decode the kernel's netlink answer to {op}: {detail}")]
    Netlink {
        /// The interface concerned.
        iface: String,
        /// The request.
        op: &'static str,
        /// What was wrong with it.
        detail: String,
    },

    /// The interface carries IPv4 addresses: a transparent port must not.
    #[error(
        "refusing to use {iface} as a bridge port: it has IPv4 address(es) {addrs}; a \
         transparent port carries no addresses (remove them, e.g. `ip address flush dev \
         {iface}`)"
    )]
    HasIpv4 {
        /// The interface concerned.
        iface: String,
        /// The addresses found, comma-separated.
        addrs: String,
    },

    /// The interface carries manually configured (permanent, non-link-local) IPv6
    /// addresses, which disabling IPv6 on it would silently destroy.
    #[error(
        "refusing to use {iface} as a bridge port: it has configured IPv6 address(es) \
         {addrs}; a transparent port carries no addresses (remove them first)"
    )]
    HasIpv6 {
        /// The interface concerned.
        iface: String,
        /// The addresses found, comma-separated.
        addrs: String,
    },

    /// The interface is a port of a bridge, bond or team.
    #[error(
        "refusing to use {iface} as a bridge port: it is enslaved to {master} (a bridge, \
         bond or team); release it first (`ip link set dev {iface} nomaster`)"
    )]
    Enslaved {
        /// The interface concerned.
        iface: String,
        /// Its master's name (or index when the name cannot be found).
        master: String,
    },

    /// The interface is not Ethernet (loopback, tunnel, …).
    #[error("refusing to use {iface} as a bridge port: it is not an Ethernet interface ({kind})")]
    NotEthernet {
        /// The interface concerned.
        iface: String,
        /// Its link-layer type.
        kind: String,
    },

    /// The two data ports have different MTUs.
    #[error(
        "the two ports' MTUs differ: {a} has MTU {a_mtu}, {b} has MTU {b_mtu}; set both to \
         the same MTU"
    )]
    MtuMismatch {
        /// First port.
        a: String,
        /// Its MTU.
        a_mtu: u32,
        /// Second port.
        b: String,
        /// Its MTU.
        b_mtu: u32,
    },

    /// The interface was removed while the port was open.
    #[error("{0}: the interface disappeared while in use")]
    InterfaceGone(String),
}

impl PortError {
    /// Classifies an OS error from operation `op` on `iface`.
    pub(crate) fn os(iface: &str, op: &'static str, source: io::Error) -> PortError {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => PortError::PermissionDenied {
                iface: iface.to_owned(),
                op,
                source,
            },
            Some(libc::ENODEV) | Some(libc::ENXIO) => PortError::NoSuchInterface(iface.to_owned()),
            _ => PortError::Os {
                iface: iface.to_owned(),
                op,
                source,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>() {}
    fn is_send_sync_error<T: std::error::Error + Send + Sync + 'static>() {}

    #[test]
    fn handles_move_between_threads_and_errors_travel() {
        is_send::<RawPort>();
        is_send::<PreparedPort>();
        is_send::<LinkMonitor>();
        is_send_sync_error::<PortError>();
    }

    #[test]
    fn iface_conversions_and_error_messages() {
        assert_eq!(Iface::from("eth0"), Iface::Name("eth0".into()));
        assert_eq!(Iface::from(3u32), Iface::Index(3));
        let e = PortError::os(
            "eth9",
            "opening",
            std::io::Error::from_raw_os_error(libc::ENODEV),
        );
        assert!(matches!(&e, PortError::NoSuchInterface(n) if n == "eth9"));
        let e = PortError::os(
            "eth1",
            "opening",
            std::io::Error::from_raw_os_error(libc::EPERM),
        );
        assert!(e.to_string().contains("CAP_NET_RAW"), "{e}");
    }
}
