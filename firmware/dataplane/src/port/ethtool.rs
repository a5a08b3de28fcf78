//! Offload features through the ethtool ioctl (`SIOCETHTOOL`, `ETHTOOL_GFEATURES` /
//! `ETHTOOL_SFEATURES`), by the kernel's feature names (`rx-gro`, `tx-tcp-segmentation`,
//! …) — the ones `ethtool -k` shows under their long aliases. No dependence on the
//! `ethtool` binary.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::sys::{self, cvt, IFNAMSIZ};
use super::PortError;

const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;
/// `ETHTOOL_F_UNSUPPORTED`: some requested feature cannot be changed.
const ETHTOOL_F_UNSUPPORTED: i32 = 1 << 0;
/// `ETHTOOL_F_WISH`: some change was recorded but the device could not apply it.
const ETHTOOL_F_WISH: i32 = 1 << 1;

/// One feature's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureState {
    /// The device lets it be changed (otherwise ethtool shows it `[fixed]`).
    pub changeable: bool,
    /// What was asked for.
    pub requested: bool,
    /// What is in effect.
    pub active: bool,
}

/// The offload features of one interface, as read from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    iface: String,
    names: Vec<String>,
    available: Vec<u32>,
    requested: Vec<u32>,
    active: Vec<u32>,
}

/// What [`set_features`] achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetFeaturesOutcome {
    /// Features whose requested state was changed.
    pub changed: Vec<String>,
    /// Features that cannot be changed on this device (fixed).
    pub fixed: Vec<String>,
    /// Feature names this kernel does not know.
    pub unknown: Vec<String>,
    /// Whether the kernel reported that not every wish could be applied
    /// (`ETHTOOL_F_WISH`), e.g. because of a dependency between features.
    pub not_all_applied: bool,
}

impl Features {
    /// Reads the features of `ifname` (in the calling thread's network namespace).
    pub fn read(ifname: &str) -> Result<Features, PortError> {
        let sock = Ethtool::open(ifname)?;
        let names = sock.feature_names()?;
        let words = names.len().div_ceil(32);
        // struct ethtool_gfeatures { u32 cmd, size; struct { u32 available, requested,
        // active, never_changed; } features[size]; }
        let mut buf = vec![0u32; 2 + 4 * words];
        buf[0] = ETHTOOL_GFEATURES;
        buf[1] = words as u32;
        sock.ioctl(buf.as_mut_ptr().cast(), "reading offload features")?;
        let block = |k: usize| (0..words).map(|w| buf[2 + 4 * w + k]).collect::<Vec<u32>>();
        Ok(Features {
            iface: ifname.to_owned(),
            available: block(0),
            requested: block(1),
            active: block(2),
            names,
        })
    }

    /// The state of feature `name` (kernel name, e.g. `rx-gro`), if the kernel knows it.
    pub fn get(&self, name: &str) -> Option<FeatureState> {
        let i = self.names.iter().position(|n| n == name)?;
        Some(self.state(i))
    }

    /// Every feature with its state, in the kernel's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, FeatureState)> + '_ {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), self.state(i)))
    }

    /// The interface these features belong to.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    fn state(&self, i: usize) -> FeatureState {
        let (w, bit) = (i / 32, 1u32 << (i % 32));
        FeatureState {
            changeable: self.available[w] & bit != 0,
            requested: self.requested[w] & bit != 0,
            active: self.active[w] & bit != 0,
        }
    }
}

/// Requests features of `ifname` on or off, by kernel name. Fixed features and names
/// this kernel does not know are reported, not errors; read the features back to see
/// what is in effect.
pub fn set_features(
    ifname: &str,
    changes: &[(&str, bool)],
) -> Result<SetFeaturesOutcome, PortError> {
    let sock = Ethtool::open(ifname)?;
    let current = Features::read(ifname)?;
    let words = current.names.len().div_ceil(32);
    // struct ethtool_sfeatures { u32 cmd, size; struct { u32 valid, requested; }
    // features[size]; }
    let mut buf = vec![0u32; 2 + 2 * words];
    buf[0] = ETHTOOL_SFEATURES;
    buf[1] = words as u32;
    let mut out = SetFeaturesOutcome::default();
    for &(name, on) in changes {
        let Some(i) = current.names.iter().position(|n| n == name) else {
            out.unknown.push(name.to_owned());
            continue;
        };
        let st = current.state(i);
        if !st.changeable {
            if st.active != on {
                out.fixed.push(name.to_owned());
            }
            continue;
        }
        if st.requested == on {
            continue;
        }
        let (w, bit) = (i / 32, 1u32 << (i % 32));
        buf[2 + 2 * w] |= bit;
        if on {
            buf[2 + 2 * w + 1] |= bit;
        }
        out.changed.push(name.to_owned());
    }
    if out.changed.is_empty() {
        return Ok(out);
    }
    let ret = sock.ioctl(buf.as_mut_ptr().cast(), "changing offload features")?;
    out.not_all_applied = ret & (ETHTOOL_F_WISH | ETHTOOL_F_UNSUPPORTED) != 0;
    Ok(out)
}

/// A socket to issue ethtool ioctls on, for one interface.
struct Ethtool {
    fd: OwnedFd,
    iface: String,
    name: [libc::c_char; IFNAMSIZ],
}

/// `struct ifreq` with the `ifr_data` member of its union (40 bytes on 64-bit targets).
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 24 - std::mem::size_of::<*mut libc::c_void>()],
}

impl Ethtool {
    fn open(ifname: &str) -> Result<Ethtool, PortError> {
        let c = sys::ifname_cstring(ifname)?;
        let mut name = [0 as libc::c_char; IFNAMSIZ];
        for (d, s) in name.iter_mut().zip(c.as_bytes()) {
            *d = *s as libc::c_char;
        }
        // As the ethtool tool does: any socket will do, IPv4 may be compiled out.
        let fd = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
            .or_else(|_| sys::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_GENERIC))
            .map_err(|e| PortError::os(ifname, "opening a socket for ethtool", e))?;
        Ok(Ethtool {
            fd,
            iface: ifname.to_owned(),
            name,
        })
    }

    /// Issues `SIOCETHTOOL` with `data` (an ethtool command structure whose size matches
    /// what its `cmd` and size fields announce) and returns the ioctl's value.
    fn ioctl(&self, data: *mut libc::c_void, op: &'static str) -> Result<i32, PortError> {
        let mut ifr = IfreqData {
            name: self.name,
            data,
            _pad: [0; 24 - std::mem::size_of::<*mut libc::c_void>()],
        };
        // SAFETY: `ifr` is a live ifreq-shaped struct of the size the kernel copies, its
        // name is NUL-terminated, and `data` points to a live buffer sized by the caller
        // for the command it encodes (the kernel reads and writes only that much).
        let r = cvt(unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SIOCETHTOOL as _,
                std::ptr::from_mut(&mut ifr),
            )
        });
        r.map_err(|e| match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) => PortError::os(
                &self.iface,
                op,
                io::Error::new(e.kind(), "the driver does not support ethtool features"),
            ),
            _ => PortError::os(&self.iface, op, e),
        })
    }

    /// The names of the feature bits (`ETH_SS_FEATURES` string set).
    fn feature_names(&self) -> Result<Vec<String>, PortError> {
        // struct ethtool_sset_info { u32 cmd, reserved; u64 sset_mask; u32 data[]; }
        let mut info = [0u32; 5];
        info[0] = ETHTOOL_GSSET_INFO;
        let mask = 1u64 << ETH_SS_FEATURES;
        info[2..4].copy_from_slice(&[mask as u32, (mask >> 32) as u32]);
        if cfg!(target_endian = "big") {
            info.swap(2, 3);
        }
        self.ioctl(info.as_mut_ptr().cast(), "counting offload features")?;
        let count = info[4] as usize;
        if count == 0 || count > 4096 {
            return Err(PortError::Os {
                iface: self.iface.clone(),
                op: "counting offload features",
                source: io::Error::other(format!("implausible feature count {count}")),
            });
        }
        // struct ethtool_gstrings { u32 cmd, string_set, len; u8 data[len * 32]; }
        let mut buf = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
        buf[0] = ETHTOOL_GSTRINGS;
        buf[1] = ETH_SS_FEATURES;
        buf[2] = count as u32;
        self.ioctl(buf.as_mut_ptr().cast(), "reading offload feature names")?;
        let bytes: Vec<u8> = buf[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
        Ok(bytes
            .chunks(ETH_GSTRING_LEN)
            .map(|s| {
                let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
                String::from_utf8_lossy(&s[..end]).into_owned()
            })
            .collect())
    }
}
