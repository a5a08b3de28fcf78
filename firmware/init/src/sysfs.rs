//! What the init learns from sysfs: GPT partitions by name, USB sticks, the two ports,
//! the device id. Every function takes the sysfs root as an argument (`/sys` on the
//! box), so the tests run them on fake trees; none of them changes anything.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::board::{format_mac, parse_mac, PortMatch};

/// The GPT names of the contract's partitions.
pub const ESP: &str = "gk-esp";
pub const ROOT_A: &str = "gk-root-a";
pub const ROOT_B: &str = "gk-root-b";
pub const DATA: &str = "gk-data";

/// One block device partition, from `/sys/class/block/<name>/uevent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Kernel name (`sda2`, `nvme0n1p2`, `vda2`, `mmcblk0p2`).
    pub name: String,
    /// The GPT partition name, when the table has one.
    pub partname: Option<String>,
    /// The whole disk's kernel name.
    pub disk: String,
    /// `MAJOR:MINOR`.
    pub dev: String,
}

impl Partition {
    /// Its device node (devtmpfs names it like the kernel).
    pub fn node(&self) -> PathBuf {
        Path::new("/dev").join(&self.name)
    }
}

fn read_trim(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// `KEY=value` lines of a uevent file.
pub fn uevent_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .map(str::to_string)
}

/// Every partition the kernel knows, sorted by name.
pub fn partitions(sys: &Path) -> Vec<Partition> {
    let Ok(entries) = fs::read_dir(sys.join("class/block")) else {
        return Vec::new();
    };
    let mut out: Vec<Partition> = entries
        .flatten()
        .filter_map(|e| {
            let link = e.path();
            let uevent = fs::read_to_string(link.join("uevent")).ok()?;
            if uevent_value(&uevent, "DEVTYPE").as_deref() != Some("partition") {
                return None;
            }
            // .../block/sda/sda2: the parent directory is the disk.
            let real = fs::canonicalize(&link).ok()?;
            let disk = file_name(real.parent()?)?;
            Some(Partition {
                name: uevent_value(&uevent, "DEVNAME").or_else(|| file_name(&link))?,
                partname: uevent_value(&uevent, "PARTNAME"),
                disk,
                dev: format!(
                    "{}:{}",
                    uevent_value(&uevent, "MAJOR")?,
                    uevent_value(&uevent, "MINOR")?
                ),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The four partitions of a gatekeeper disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GkDisk {
    pub disk: String,
    pub esp: Partition,
    pub root_a: Partition,
    pub root_b: Partition,
    pub data: Partition,
}

impl GkDisk {
    /// The root partition of slot `a` or `b`.
    pub fn root(&self, slot: char) -> &Partition {
        if slot == 'a' {
            &self.root_a
        } else {
            &self.root_b
        }
    }
}

/// What [`find_gk_disk`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskSearch {
    /// One disk with all four partitions (plus any other candidates that were passed
    /// over, for a warning).
    Found(Box<GkDisk>, Vec<String>),
    /// No disk has all four; the names that were seen, for the message.
    Missing(Vec<String>),
}

/// Finds the disk holding `gk-esp`, `gk-root-a`, `gk-root-b` and `gk-data`.
///
/// Two gatekeeper disks at boot (the box's own and a freshly flashed stick of the same
/// board, with the same GUIDs) cannot be told apart by the GPT; we prefer a
/// non-removable disk (`removable(disk)`), then the first by kernel name, and report
/// the others so that the console says which one was taken.
pub fn find_gk_disk(parts: &[Partition], removable: impl Fn(&str) -> bool) -> DiskSearch {
    let mut disks: Vec<&str> = parts.iter().map(|p| p.disk.as_str()).collect();
    disks.sort_unstable();
    disks.dedup();
    let mut found: Vec<GkDisk> = disks
        .iter()
        .filter_map(|d| {
            let get = |n: &str| {
                parts
                    .iter()
                    .find(|p| p.disk == *d && p.partname.as_deref() == Some(n))
                    .cloned()
            };
            Some(GkDisk {
                disk: d.to_string(),
                esp: get(ESP)?,
                root_a: get(ROOT_A)?,
                root_b: get(ROOT_B)?,
                data: get(DATA)?,
            })
        })
        .collect();
    if found.is_empty() {
        let seen = parts
            .iter()
            .map(|p| {
                format!(
                    "{}={}",
                    p.name,
                    p.partname.as_deref().unwrap_or("(no name)")
                )
            })
            .collect();
        return DiskSearch::Missing(seen);
    }
    found.sort_by_key(|g| (removable(&g.disk), g.disk.clone()));
    let chosen = found.remove(0);
    DiskSearch::Found(
        Box::new(chosen),
        found.into_iter().map(|g| g.disk).collect(),
    )
}

/// Whether `/sys/block/<disk>` is removable media or hangs off a USB bus.
pub fn is_removable_or_usb(sys: &Path, disk: &str) -> bool {
    let dir = sys.join("block").join(disk);
    if read_trim(&dir.join("removable")).as_deref() == Some("1") {
        return true;
    }
    fs::canonicalize(&dir).is_ok_and(|p| {
        p.components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with("usb"))
    })
}

/// A disk a USB stick could be: its kernel name and the partitions to try (the whole
/// disk when it has none, as a "superfloppy" FAT stick does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stick {
    pub disk: String,
    /// What tells this insertion from the next one in the same slot: the kernel's
    /// `diskseq` (new for every disk and every medium change), else the size.
    pub insertion: String,
    /// Kernel names of what to mount, in order.
    pub volumes: Vec<String>,
}

/// The removable or USB disks other than `boot_disk` that hold a medium, sorted.
pub fn sticks(sys: &Path, boot_disk: &str) -> Vec<Stick> {
    let Ok(entries) = fs::read_dir(sys.join("block")) else {
        return Vec::new();
    };
    let mut out: Vec<Stick> = entries
        .flatten()
        .filter_map(|e| {
            let disk = e.file_name().to_string_lossy().into_owned();
            // Virtual disks are never sticks.
            if disk == boot_disk
                || ["loop", "ram", "zram", "dm-", "md", "nbd", "sr"]
                    .iter()
                    .any(|p| disk.starts_with(p))
            {
                return None;
            }
            if !is_removable_or_usb(sys, &disk) {
                return None;
            }
            // No medium (an empty card reader) reads as size 0.
            let size: u64 = read_trim(&e.path().join("size"))?.parse().ok()?;
            if size == 0 {
                return None;
            }
            let mut parts: Vec<String> = fs::read_dir(e.path())
                .ok()?
                .flatten()
                .filter(|p| p.path().join("partition").is_file())
                .map(|p| p.file_name().to_string_lossy().into_owned())
                .collect();
            parts.sort();
            let volumes = if parts.is_empty() {
                vec![disk.clone()]
            } else {
                parts
            };
            let insertion = read_trim(&e.path().join("diskseq"))
                .map(|seq| format!("{disk}#{seq}"))
                .unwrap_or_else(|| format!("{disk}/{size}"));
            Some(Stick {
                disk,
                insertion,
                volumes,
            })
        })
        .collect();
    out.sort_by(|a, b| a.disk.cmp(&b.disk));
    out
}

/// One network interface as sysfs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetIf {
    pub name: String,
    /// The last component of `realpath(device)`; none for virtual interfaces.
    pub device: Option<String>,
    /// Every component of `realpath(device)` (`pci0000:00`, `0000:00:03.0`, `virtio0`):
    /// a virtio NIC's device is `virtio0`, its PCI function the component above, and a
    /// board names the PCI address, so a `device` matches any component.
    pub device_path: Vec<String>,
    /// `address`. At boot nobody has changed it, so it is the permanent address for
    /// every driver that reads it from the hardware (`addr_assign_type` 0); an
    /// interface whose driver made one up (`addr_assign_type` 1) matches no `mac`.
    pub mac: Option<[u8; 6]>,
}

impl NetIf {
    fn describe(&self) -> String {
        format!(
            "{} (device {}, mac {})",
            self.name,
            self.device.as_deref().unwrap_or("none"),
            self.mac.as_ref().map_or("none".into(), format_mac)
        )
    }
}

/// The interfaces under `/sys/class/net`, sorted, loopback left out.
pub fn interfaces(sys: &Path) -> Vec<NetIf> {
    let Ok(entries) = fs::read_dir(sys.join("class/net")) else {
        return Vec::new();
    };
    let mut out: Vec<NetIf> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "lo" {
                return None;
            }
            let dir = e.path();
            let real = fs::canonicalize(dir.join("device")).ok();
            let device = real.as_deref().and_then(file_name);
            let device_path = real
                .iter()
                .flat_map(|p| p.components())
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .filter(|c| c != "/" && c != "sys" && c != "devices")
                .collect();
            let random = read_trim(&dir.join("addr_assign_type")).is_some_and(|t| t != "0");
            let mac = if random {
                None
            } else {
                read_trim(&dir.join("address")).and_then(|a| parse_mac(&a))
            };
            Some(NetIf {
                name,
                device,
                device_path,
                mac,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Which interface one board port is.
pub fn match_port<'a>(ifs: &'a [NetIf], m: &PortMatch) -> Vec<&'a NetIf> {
    ifs.iter()
        .filter(|i| match m {
            PortMatch::Device(d) => i.device_path.iter().any(|c| c == d),
            PortMatch::Mac(mac) => i.mac.as_ref() == Some(mac),
        })
        .collect()
}

/// The kernel names of the plant and asset ports, or why they cannot be told.
pub fn find_ports(
    ifs: &[NetIf],
    plant: &PortMatch,
    asset: &PortMatch,
) -> Result<(NetIf, NetIf), String> {
    let one = |role: &str, m: &PortMatch| -> Result<NetIf, String> {
        match match_port(ifs, m)[..] {
            [i] => Ok(i.clone()),
            [] => Err(format!(
                "no interface matches the {role} port ({m}); the box has: {}",
                if ifs.is_empty() {
                    "no interfaces (is the NIC driver among the board's modules?)".to_string()
                } else {
                    ifs.iter()
                        .map(NetIf::describe)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )),
            ref many => Err(format!(
                "several interfaces match the {role} port ({m}): {}",
                many.iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    };
    let p = one("plant", plant)?;
    let a = one("asset", asset)?;
    if p.name == a.name {
        return Err(format!("the plant and asset ports are both {}", p.name));
    }
    Ok((p, a))
}

/// Keeps the characters a device id may have (bundles name it; see BUNDLE.md), so that
/// a firmware's padding and spaces do not become part of it.
fn clean_serial(raw: &str) -> Option<String> {
    let s: String = raw
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        .collect();
    // Placeholders that board vendors leave in the DMI table.
    let junk = [
        "",
        "0",
        "00000000",
        "tobefilledbyoem",
        "defaultstring",
        "systemserialnumber",
        "notspecified",
        "none",
        "123456789",
    ];
    let folded: String = s.to_ascii_lowercase().replace(['.', '-', '_'], "");
    (!junk.contains(&folded.as_str())).then_some(s)
}

/// The device id: DMI `product_serial`, else the device tree's `serial-number`, else
/// the plant port's permanent MAC without colons.
pub fn device_id(sys: &Path, plant_mac: Option<[u8; 6]>) -> Option<String> {
    let dmi = fs::read(sys.join("class/dmi/id/product_serial")).ok();
    let dt = fs::read(sys.join("firmware/devicetree/base/serial-number")).ok();
    [dmi, dt]
        .into_iter()
        .flatten()
        .find_map(|b| clean_serial(&String::from_utf8_lossy(&b)))
        .or_else(|| plant_mac.map(|m| m.iter().map(|b| format!("{b:02x}")).collect()))
}

/// Size of a block device in bytes (`size` is in 512-byte sectors).
pub fn block_size_bytes(sys: &Path, name: &str) -> io::Result<u64> {
    let path = sys.join("class/block").join(name).join("size");
    let text = fs::read_to_string(&path)?;
    text.trim().parse::<u64>().map(|s| s * 512).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
pub(crate) mod fake {
    //! Builders of fake sysfs trees in a temporary directory.
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};

    /// A temporary directory removed on drop.
    #[derive(Debug)]
    pub struct Tmp(pub PathBuf);

    impl Tmp {
        pub fn new(tag: &str) -> Tmp {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "gk-init-test-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).expect("tmp");
            Tmp(p)
        }
    }

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    pub fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    /// A disk under `devices/<bus>/block/<disk>` with partitions `(name, partname)`.
    pub fn disk(
        sys: &Path,
        bus: &str,
        disk: &str,
        removable: bool,
        parts: &[(&str, Option<&str>)],
    ) {
        let dir = sys.join("devices").join(bus).join("block").join(disk);
        write(
            &dir.join("removable"),
            if removable { "1\n" } else { "0\n" },
        );
        write(&dir.join("size"), "2097152\n");
        write(
            &dir.join("uevent"),
            &format!("MAJOR=8\nMINOR=0\nDEVNAME={disk}\nDEVTYPE=disk\n"),
        );
        fs::create_dir_all(sys.join("block")).expect("mkdir");
        fs::create_dir_all(sys.join("class/block")).expect("mkdir");
        symlink(&dir, sys.join("block").join(disk)).expect("symlink");
        symlink(&dir, sys.join("class/block").join(disk)).expect("symlink");
        for (i, (name, partname)) in parts.iter().enumerate() {
            let pdir = dir.join(name);
            let mut uevent = format!(
                "MAJOR=8\nMINOR={}\nDEVNAME={name}\nDEVTYPE=partition\nPARTN={}\n",
                i + 1,
                i + 1
            );
            if let Some(n) = partname {
                uevent.push_str(&format!("PARTNAME={n}\n"));
            }
            write(&pdir.join("uevent"), &uevent);
            write(&pdir.join("partition"), &format!("{}\n", i + 1));
            write(&pdir.join("size"), "1024\n");
            symlink(&pdir, sys.join("class/block").join(name)).expect("symlink");
        }
    }

    /// An interface with an optional device and an address.
    pub fn netif(sys: &Path, name: &str, device: Option<&str>, mac: &str, assign: &str) {
        let dir = sys.join("devices/virtual/net").join(name);
        write(&dir.join("address"), &format!("{mac}\n"));
        write(&dir.join("addr_assign_type"), &format!("{assign}\n"));
        if let Some(d) = device {
            let ddir = sys.join("devices/pci0000:00").join(d.replace('+', "/"));
            fs::create_dir_all(&ddir).expect("mkdir");
            symlink(&ddir, dir.join("device")).expect("symlink");
        }
        fs::create_dir_all(sys.join("class/net")).expect("mkdir");
        symlink(&dir, sys.join("class/net").join(name)).expect("symlink");
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;

    fn gk_parts() -> Vec<(&'static str, Option<&'static str>)> {
        vec![
            ("sda1", Some("gk-esp")),
            ("sda2", Some("gk-root-a")),
            ("sda3", Some("gk-root-b")),
            ("sda4", Some("gk-data")),
        ]
    }

    #[test]
    fn partitions_are_found_by_gpt_name() {
        let t = Tmp::new("parts");
        disk(
            &t.0,
            "pci0000:00/0000:00:05.0/virtio2",
            "vda",
            false,
            &[
                ("vda1", Some("gk-esp")),
                ("vda2", Some("gk-root-a")),
                ("vda3", Some("gk-root-b")),
                ("vda4", Some("gk-data")),
            ],
        );
        disk(&t.0, "pci0000:00/usb1/1-1", "sda", true, &[("sda1", None)]);
        let parts = partitions(&t.0);
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[0].partname, None);
        assert_eq!(parts[0].disk, "sda");
        match find_gk_disk(&parts, |d| is_removable_or_usb(&t.0, d)) {
            DiskSearch::Found(g, others) => {
                assert_eq!(g.disk, "vda");
                assert_eq!(g.root('b').name, "vda3");
                assert_eq!(g.root_a.dev, "8:2");
                assert_eq!(g.data.node(), Path::new("/dev/vda4"));
                assert!(others.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_second_gatekeeper_disk_is_passed_over_and_named() {
        let t = Tmp::new("two");
        // The stick sorts first by name but is removable.
        disk(&t.0, "usb1/1-1", "sda", true, &gk_parts());
        let internal: Vec<(&str, Option<&str>)> = vec![
            ("sdb1", Some("gk-esp")),
            ("sdb2", Some("gk-root-a")),
            ("sdb3", Some("gk-root-b")),
            ("sdb4", Some("gk-data")),
        ];
        disk(&t.0, "ata1", "sdb", false, &internal);
        match find_gk_disk(&partitions(&t.0), |d| is_removable_or_usb(&t.0, d)) {
            DiskSearch::Found(g, others) => {
                assert_eq!(g.disk, "sdb");
                assert_eq!(others, vec!["sda".to_string()]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_partition_lists_what_was_seen() {
        let t = Tmp::new("missing");
        disk(&t.0, "ata1", "sda", false, &gk_parts()[..3]);
        match find_gk_disk(&partitions(&t.0), |_| false) {
            DiskSearch::Missing(seen) => assert_eq!(seen.len(), 3, "{seen:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sticks_are_removable_or_usb_and_not_the_boot_disk() {
        let t = Tmp::new("sticks");
        disk(&t.0, "ata1", "sda", false, &gk_parts());
        disk(
            &t.0,
            "pci0000:00/0000:00:14.0/usb2/2-1",
            "sdb",
            false,
            &[("sdb1", None), ("sdb2", None)],
        );
        disk(&t.0, "platform/card", "sdc", true, &[]);
        disk(&t.0, "virtual", "loop0", true, &[]);
        // An empty card reader.
        disk(&t.0, "pci0000:00/usb3/3-1", "sdd", true, &[]);
        write(
            &t.0.join("devices/pci0000:00/usb3/3-1/block/sdd/size"),
            "0\n",
        );
        // sdb is a kernel with diskseq, sdc one without (the size stands in).
        write(
            &t.0.join("devices/pci0000:00/0000:00:14.0/usb2/2-1/block/sdb/diskseq"),
            "17\n",
        );
        let s = sticks(&t.0, "sda");
        assert_eq!(
            s,
            vec![
                Stick {
                    disk: "sdb".into(),
                    insertion: "sdb#17".into(),
                    volumes: vec!["sdb1".into(), "sdb2".into()]
                },
                Stick {
                    disk: "sdc".into(),
                    insertion: "sdc/2097152".into(),
                    volumes: vec!["sdc".into()]
                },
            ]
        );
        // Booted from a USB stick: that stick is not scanned.
        assert_eq!(sticks(&t.0, "sdb").len(), 1);
    }

    #[test]
    fn ports_match_by_device_or_permanent_mac() {
        let t = Tmp::new("ports");
        netif(&t.0, "ens3", Some("0000:00:03.0"), "52:54:00:12:34:56", "0");
        // A virtio NIC: its device is virtio1 below the PCI function.
        netif(
            &t.0,
            "ens4",
            Some("0000:00:04.0+virtio1"),
            "52:54:00:12:34:57",
            "0",
        );
        netif(&t.0, "eth9", None, "52:54:00:12:34:58", "1");
        netif(&t.0, "lo", None, "00:00:00:00:00:00", "0");
        let ifs = interfaces(&t.0);
        assert_eq!(ifs.len(), 3);
        let (p, a) = find_ports(
            &ifs,
            &PortMatch::Device("0000:00:04.0".into()),
            &PortMatch::Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        )
        .expect("found");
        assert_eq!((p.name.as_str(), a.name.as_str()), ("ens4", "ens3"));
        // A made-up address matches nothing.
        let e = find_ports(
            &ifs,
            &PortMatch::Mac([0x52, 0x54, 0, 0x12, 0x34, 0x58]),
            &PortMatch::Device("0000:00:03.0".into()),
        )
        .unwrap_err();
        assert!(e.contains("no interface matches the plant port"), "{e}");
        assert!(
            e.contains("ens3 (device 0000:00:03.0, mac 52:54:00:12:34:56)"),
            "{e}"
        );
        let e = find_ports(
            &[],
            &PortMatch::Device("x".into()),
            &PortMatch::Device("y".into()),
        )
        .unwrap_err();
        assert!(e.contains("NIC driver"), "{e}");
    }

    #[test]
    fn the_device_id_prefers_a_real_serial() {
        let t = Tmp::new("id");
        let mac = Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(device_id(&t.0, mac).as_deref(), Some("525400123456"));
        write(
            &t.0.join("class/dmi/id/product_serial"),
            "To Be Filled By O.E.M.\n",
        );
        assert_eq!(device_id(&t.0, mac).as_deref(), Some("525400123456"));
        write(
            &t.0.join("firmware/devicetree/base/serial-number"),
            "c0ffee42\0",
        );
        assert_eq!(device_id(&t.0, mac).as_deref(), Some("c0ffee42"));
        write(&t.0.join("class/dmi/id/product_serial"), "  APU2-1234 \n");
        assert_eq!(device_id(&t.0, mac).as_deref(), Some("APU2-1234"));
        assert_eq!(device_id(&Tmp::new("none").0, None), None);
    }
}
