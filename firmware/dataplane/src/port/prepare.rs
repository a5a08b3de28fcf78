//! `PreparedPort`: makes an interface a silent, transparent bridge port, and puts it back
//! the way it was afterwards.

use std::path::PathBuf;

use netlink_packet_route::link::LinkFlags;

use super::ethtool::{set_features, Features};
use super::link::{set_addr_gen_mode, set_link_flags, LinkInfo};
use super::PortError;

/// Offloads turned off on a prepared port (kernel feature names), where present and
/// changeable: receive coalescing (GRO, LRO, hardware GRO, GRO lists), transmit
/// segmentation (GSO, TSO and friends) and hardware VLAN filtering (which would drop
/// tagged frames for VLANs the host has no device for). VLAN tag stripping
/// (`rx-vlan-hw-parse`) is left alone: tags are recovered from the auxdata.
pub const OFFLOADS_TO_DISABLE: &[&str] = &[
    "rx-gro",
    "rx-lro",
    "rx-gro-hw",
    "rx-gro-list",
    "rx-udp-gro-forwarding",
    "tx-generic-segmentation",
    "tx-tcp-segmentation",
    "tx-tcp-ecn-segmentation",
    "tx-tcp-mangleid-segmentation",
    "tx-tcp6-segmentation",
    "tx-tcp-accecn-segmentation",
    "tx-udp-segmentation",
    "tx-gso-list",
    "rx-vlan-filter",
    "rx-vlan-stag-filter",
];

/// IFLA_INET6_ADDR_GEN_MODE "none": no link-local address is generated.
const ADDR_GEN_MODE_NONE: u8 = 1;

/// What happened to one offload on preparation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffloadStatus {
    /// It was off already.
    AlreadyOff,
    /// We turned it off (and will turn it back on at restore).
    TurnedOff,
    /// It is on and the device does not let it be changed. A warning, not an error:
    /// `PACKET_VNET_HDR` still lets such frames through intact.
    Fixed,
    /// We asked for it off but the kernel kept it on.
    StillOn,
}

/// One offload's outcome, as read back after preparation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffloadReport {
    /// Kernel feature name.
    pub name: &'static str,
    /// Outcome.
    pub status: OffloadStatus,
}

/// The state we changed, to put back.
#[derive(Debug, Default)]
struct Original {
    /// `(flags, mask)` for the IFF_UP/PROMISC/NOARP bits, once we changed them.
    flags: Option<LinkFlags>,
    /// Offloads we turned off.
    offloads: Vec<&'static str>,
    /// addr_gen_mode before we set it to none.
    addr_gen_mode: Option<u8>,
    /// `disable_ipv6` contents before we wrote 1.
    disable_ipv6: Option<String>,
}

/// An interface made silent and transparent; restored on [`restore`](Self::restore) or
/// drop.
///
/// Preparation: refuse an interface that is not Ethernet, is enslaved to a bridge/bond,
/// has IPv4 addresses or hand-configured IPv6 addresses; turn off the offloads in
/// [`OFFLOADS_TO_DISABLE`]; stop IPv6 (address generation mode none, `disable_ipv6`) so
/// the kernel sends no router solicitation, DAD or MLD; set `IFF_UP`, `IFF_PROMISC`,
/// `IFF_NOARP`.
pub struct PreparedPort {
    name: String,
    ifindex: u32,
    info: LinkInfo,
    original: Original,
    offloads: Vec<OffloadReport>,
    warnings: Vec<String>,
    armed: bool,
}

impl std::fmt::Debug for PreparedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedPort")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .field("offloads", &self.offloads)
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl PreparedPort {
    /// Prepares `ifname` (in the calling thread's network namespace). On error, whatever
    /// was already changed is put back.
    pub fn prepare(ifname: &str) -> Result<PreparedPort, PortError> {
        let info = LinkInfo::query(ifname)?;
        refuse_unsuitable(&info)?;
        let mut port = PreparedPort {
            name: info.name.clone(),
            ifindex: info.ifindex,
            info: info.clone(),
            original: Original::default(),
            offloads: Vec::new(),
            warnings: Vec::new(),
            armed: true,
        };
        // Dropping `port` on an early return restores what was changed so far.
        port.disable_offloads()?;
        port.stop_ipv6(&info)?;
        let mut orig = LinkFlags::empty();
        for (on, flag) in [
            (info.up, LinkFlags::Up),
            (info.promisc, LinkFlags::Promisc),
            (info.noarp, LinkFlags::Noarp),
        ] {
            if on {
                orig |= flag;
            }
        }
        let mask = LinkFlags::Up | LinkFlags::Promisc | LinkFlags::Noarp;
        port.original.flags = Some(orig);
        set_link_flags(port.ifindex, mask, mask)?;

        port.info = LinkInfo::query(&port.name)?;
        if !(port.info.up && port.info.promisc && port.info.noarp) {
            port.warn(format!(
                "{}: flags did not stick (up {}, promisc {}, noarp {})",
                port.name, port.info.up, port.info.promisc, port.info.noarp
            ));
        }
        if port.info.has_ipv6() {
            port.warn(format!(
                "{}: still has IPv6 addresses after disabling IPv6",
                port.name
            ));
        }
        Ok(port)
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface as it was right after preparation (MTU, MAC, …).
    pub fn info(&self) -> &LinkInfo {
        &self.info
    }

    /// The MTU.
    pub fn mtu(&self) -> u32 {
        self.info.mtu
    }

    /// What happened to each offload present on this device.
    pub fn offloads(&self) -> &[OffloadReport] {
        &self.offloads
    }

    /// Things that could not be done and are tolerated (fixed offloads, …), in words.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Puts the interface back as it was: offloads, promiscuity, ARP, IPv6, up/down.
    /// Everything is attempted; the first error is returned.
    pub fn restore(mut self) -> Result<(), PortError> {
        self.armed = false;
        self.restore_inner()
    }

    fn warn(&mut self, w: String) {
        tracing::warn!(port = %self.name, "{w}");
        self.warnings.push(w);
    }

    fn disable_offloads(&mut self) -> Result<(), PortError> {
        let before = match Features::read(&self.name) {
            Ok(f) => f,
            Err(e) => {
                self.warn(format!(
                    "{}: cannot read offload features ({e}); relying on PACKET_VNET_HDR",
                    self.name
                ));
                return Ok(());
            }
        };
        let wanted: Vec<(&str, bool)> = OFFLOADS_TO_DISABLE
            .iter()
            .filter(|n| before.get(n).is_some_and(|s| s.changeable && s.requested))
            .map(|&n| (n, false))
            .collect();
        let outcome = set_features(&self.name, &wanted)?;
        self.original.offloads = OFFLOADS_TO_DISABLE
            .iter()
            .copied()
            .filter(|n| outcome.changed.iter().any(|c| c == n))
            .collect();
        let after = Features::read(&self.name)?;
        for &name in OFFLOADS_TO_DISABLE {
            let (Some(b), Some(a)) = (before.get(name), after.get(name)) else {
                continue;
            };
            let status = match (b.active, a.active) {
                (false, false) => OffloadStatus::AlreadyOff,
                (true, false) => OffloadStatus::TurnedOff,
                (_, true) if !a.changeable => OffloadStatus::Fixed,
                (_, true) => OffloadStatus::StillOn,
            };
            if matches!(status, OffloadStatus::Fixed | OffloadStatus::StillOn) {
                self.warn(format!(
                    "{}: offload {name} stays on ({status:?}); frames it produces still pass \
                     intact through PACKET_VNET_HDR",
                    self.name
                ));
            }
            self.offloads.push(OffloadReport { name, status });
        }
        Ok(())
    }

    fn stop_ipv6(&mut self, info: &LinkInfo) -> Result<(), PortError> {
        if let Some(mode) = info.addr_gen_mode {
            if mode != ADDR_GEN_MODE_NONE {
                match set_addr_gen_mode(self.ifindex, ADDR_GEN_MODE_NONE) {
                    Ok(()) => self.original.addr_gen_mode = Some(mode),
                    Err(e) => self.warn(format!(
                        "{}: cannot set IPv6 address generation mode to none: {e}",
                        self.name
                    )),
                }
            }
        }
        let path = disable_ipv6_path(&self.name);
        let Ok(before) = std::fs::read_to_string(&path) else {
            // No IPv6 in this kernel or namespace: nothing to silence.
            return Ok(());
        };
        std::fs::write(&path, "1\n")
            .map_err(|e| PortError::os(&self.name, "disabling IPv6 (disable_ipv6)", e))?;
        self.original.disable_ipv6 = Some(before.trim().to_owned());
        Ok(())
    }

    fn restore_inner(&mut self) -> Result<(), PortError> {
        let mut first: Option<PortError> = None;
        let mut note = |r: Result<(), PortError>| {
            if let Err(e) = r {
                tracing::warn!("restoring a port: {e}");
                first.get_or_insert(e);
            }
        };
        let mask = LinkFlags::Up | LinkFlags::Promisc | LinkFlags::Noarp;
        if let Some(flags) = self.original.flags.take() {
            note(set_link_flags(self.ifindex, flags, mask));
        }
        let offloads = std::mem::take(&mut self.original.offloads);
        if !offloads.is_empty() {
            let on: Vec<(&str, bool)> = offloads.iter().map(|&n| (n, true)).collect();
            note(set_features(&self.name, &on).map(drop));
        }
        if let Some(mode) = self.original.addr_gen_mode.take() {
            note(set_addr_gen_mode(self.ifindex, mode));
        }
        if let Some(v) = self.original.disable_ipv6.take() {
            note(
                std::fs::write(disable_ipv6_path(&self.name), format!("{v}\n"))
                    .map_err(|e| PortError::os(&self.name, "restoring disable_ipv6", e)),
            );
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for PreparedPort {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            let _ = self.restore_inner();
        }
    }
}

fn disable_ipv6_path(ifname: &str) -> PathBuf {
    PathBuf::from(format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"))
}

/// Refuses interfaces that cannot be transparent bridge ports, saying why.
fn refuse_unsuitable(info: &LinkInfo) -> Result<(), PortError> {
    if !info.is_ethernet() {
        return Err(PortError::NotEthernet {
            iface: info.name.clone(),
            kind: format!("ARPHRD {}", info.link_type),
        });
    }
    if let Some(master) = info.master {
        return Err(PortError::Enslaved {
            iface: info.name.clone(),
            master: info
                .master_name
                .clone()
                .unwrap_or_else(|| format!("ifindex {master}")),
        });
    }
    if info.has_ipv4() {
        return Err(PortError::HasIpv4 {
            iface: info.name.clone(),
            addrs: join(info.ipv4_addrs.iter()),
        });
    }
    let configured: Vec<_> = info
        .ipv6_addrs
        .iter()
        .filter(|a| a.permanent && !a.link_local)
        .map(|a| format!("{}/{}", a.addr, a.prefix_len))
        .collect();
    if !configured.is_empty() {
        return Err(PortError::HasIpv6 {
            iface: info.name.clone(),
            addrs: configured.join(", "),
        });
    }
    Ok(())
}

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}
