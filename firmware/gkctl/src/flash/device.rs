//! Which disk a block device is, and whether it may be written: never a disk that is
//! mounted (or any of its partitions, or anything stacked on them, such as dm-crypt or
//! LVM), never the disk holding `/` or `/boot`, never a partition instead of a disk,
//! never swap; a disk that is neither removable nor on USB only with `--force`.
//!
//! Everything here reads a sysfs tree and the texts of `/proc/self/mountinfo` and
//! `/proc/swaps` passed in, so the tests run the same code on fake ones.

use std::fs;
use std::path::{Path, PathBuf};

/// A device number, as sysfs `dev` files and mountinfo write it (`8:16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevNo {
    pub major: u32,
    pub minor: u32,
}

impl DevNo {
    /// From `st_rdev` (glibc's and musl's encoding).
    pub fn from_rdev(rdev: u64) -> DevNo {
        DevNo {
            major: (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32,
            minor: ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32,
        }
    }

    pub fn parse(text: &str) -> Option<DevNo> {
        let (a, b) = text.trim().split_once(':')?;
        Some(DevNo {
            major: a.parse().ok()?,
            minor: b.parse().ok()?,
        })
    }
}

impl std::fmt::Display for DevNo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// One block device in sysfs: a disk, a partition, or a device stacked on one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Kernel name (`sdb`, `sdb1`, `dm-0`).
    pub name: String,
    pub dev: DevNo,
    /// The device-mapper name (`/dev/mapper/<it>`), for dm devices.
    pub dm_name: Option<String>,
}

/// What sysfs says about a whole disk.
#[derive(Clone, Debug)]
pub struct Disk {
    pub node: Node,
    /// `removable` is 1.
    pub removable: bool,
    /// Attached through USB (sticks often say removable = 0).
    pub usb: bool,
    /// `size` × 512.
    pub size: u64,
    /// Vendor and model, as the device reports them (may be empty).
    pub model: String,
    /// Its partitions, and every device stacked on the disk or them (holders).
    pub parts: Vec<Node>,
}

impl Disk {
    /// The disk, its partitions and what is stacked on them.
    pub fn tree(&self) -> impl Iterator<Item = &Node> {
        std::iter::once(&self.node).chain(self.parts.iter())
    }

    /// "SanDisk Cruzer Blade, 14.9 GiB, USB" — what the confirmation prompt shows.
    pub fn describe(&self) -> String {
        let model = if self.model.is_empty() {
            "unknown model"
        } else {
            &self.model
        };
        let bus = match (self.usb, self.removable) {
            (true, _) => "USB",
            (false, true) => "removable",
            (false, false) => "NOT removable",
        };
        format!("{model}, {}, {bus}", human(self.size))
    }
}

/// 14.9 GiB, 512.0 MiB, 4.0 KiB, 100 B.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

fn read_trim(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn node_at(dir: &Path) -> Result<Node, String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dev = read_trim(&dir.join("dev"))
        .and_then(|t| DevNo::parse(&t))
        .ok_or_else(|| format!("{}: no readable dev file", dir.display()))?;
    Ok(Node {
        name,
        dev,
        dm_name: read_trim(&dir.join("dm/name")),
    })
}

/// Everything stacked on `dir` (its `holders/`), recursively.
fn holders(dir: &Path, out: &mut Vec<Node>, depth: usize) {
    if depth > 8 {
        return; // no real stack is this deep; a loop in a fake tree is not followed
    }
    let Ok(entries) = fs::read_dir(dir.join("holders")) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .filter_map(|e| fs::canonicalize(e.path()).ok())
        .collect();
    paths.sort();
    for path in paths {
        if let Ok(node) = node_at(&path) {
            if !out.iter().any(|n| n.dev == node.dev) {
                out.push(node);
                holders(&path, out, depth + 1);
            }
        }
    }
}

/// The disk `dev` is, from the sysfs tree at `sys` (`/sys`). A partition is refused
/// (naming its disk): gkctl writes whole disks.
pub fn inspect(sys: &Path, dev: DevNo) -> Result<Disk, String> {
    let link = sys.join("dev/block").join(dev.to_string());
    let dir = fs::canonicalize(&link).map_err(|e| {
        format!(
            "block device {dev} is not in {} ({e})",
            sys.join("dev/block").display()
        )
    })?;
    let node = node_at(&dir)?;
    if dir.join("partition").exists() {
        let disk = dir
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(format!(
            "{} is a partition of {disk}; give the whole disk (/dev/{disk}): the image holds \
             its own partition table",
            node.name
        ));
    }
    let mut parts = Vec::new();
    let mut children: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("partition").exists())
        .collect();
    children.sort();
    holders(&dir, &mut parts, 0);
    for child in &children {
        if let Ok(part) = node_at(child) {
            parts.push(part);
        }
        holders(child, &mut parts, 0);
    }
    let size = read_trim(&dir.join("size"))
        .and_then(|s| s.parse::<u64>().ok())
        .map(|sectors| sectors.saturating_mul(512))
        .ok_or_else(|| format!("{}: no readable size", dir.display()))?;
    let vendor = read_trim(&dir.join("device/vendor")).unwrap_or_default();
    let model = read_trim(&dir.join("device/model")).unwrap_or_default();
    let model = [vendor, model]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let usb = dir
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with("usb"));
    Ok(Disk {
        removable: read_trim(&dir.join("removable")).as_deref() == Some("1"),
        usb,
        size,
        model,
        parts,
        node,
    })
}

/// One line of `/proc/self/mountinfo`: the device and where it is mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub dev: DevNo,
    pub mount_point: String,
    /// The mount source (`/dev/sdb1`), after the ` - fstype ` separator.
    pub source: String,
}

/// Undoes mountinfo's octal escapes (`\040` is a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(digits)) = (bytes[i], octal) {
            let v = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo (`36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`).
/// Lines that do not parse are skipped (the kernel writes them; a future field is not a
/// reason to refuse to look at the others).
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(dev), Some(point)) = (fields.get(2), fields.get(4)) else {
            continue;
        };
        let Some(dev) = DevNo::parse(dev) else {
            continue;
        };
        let source = fields
            .iter()
            .position(|f| *f == "-")
            .and_then(|i| fields.get(i + 2))
            .map(|s| unescape(s))
            .unwrap_or_default();
        mounts.push(Mount {
            dev,
            mount_point: unescape(point),
            source,
        });
    }
    mounts
}

/// Whether a mount or swap source names `node` (`/dev/sdb1`, `/dev/mapper/<dm name>`);
/// btrfs and some others show an anonymous device number, so the name counts too.
fn names(source: &str, node: &Node) -> bool {
    if let Some(name) = source.strip_prefix("/dev/mapper/") {
        return node.dm_name.as_deref() == Some(name);
    }
    source.strip_prefix("/dev/") == Some(node.name.as_str())
}

/// Mount points that make a disk the system's own.
pub const SYSTEM_MOUNTS: [&str; 4] = ["/", "/boot", "/boot/efi", "/usr"];

/// Why a disk may not be written, or `Ok`. The first of: the system disk, mounted,
/// swap, not removable (unless `force`), too small for `image_size`.
pub fn check(
    disk: &Disk,
    mountinfo: &str,
    swaps: &str,
    force: bool,
    image_size: u64,
) -> Result<(), String> {
    let mounts = parse_mountinfo(mountinfo);
    let mut on_disk: Vec<(&Mount, &Node)> = Vec::new();
    for m in &mounts {
        if let Some(node) = disk.tree().find(|n| n.dev == m.dev || names(&m.source, n)) {
            on_disk.push((m, node));
        }
    }
    if let Some((m, node)) = on_disk
        .iter()
        .find(|(m, _)| SYSTEM_MOUNTS.contains(&m.mount_point.as_str()))
    {
        return Err(format!(
            "/dev/{} holds {} (on {}): it is this computer's system disk; never written, \
             even with --force",
            disk.node.name, m.mount_point, node.name
        ));
    }
    if !on_disk.is_empty() {
        let list: Vec<String> = on_disk
            .iter()
            .map(|(m, n)| format!("{} on {}", n.name, m.mount_point))
            .collect();
        return Err(format!(
            "/dev/{} is mounted ({}): unmount it first (`umount` each, or eject it in the \
             desktop); a mounted disk is never written, even with --force",
            disk.node.name,
            list.join(", ")
        ));
    }
    for line in swaps.lines().skip(1) {
        let Some(source) = line.split_whitespace().next() else {
            continue;
        };
        if let Some(node) = disk.tree().find(|n| names(source, n)) {
            return Err(format!(
                "/dev/{} is in use as swap ({}): `swapoff {source}` first",
                disk.node.name, node.name
            ));
        }
    }
    if !disk.removable && !disk.usb && !force {
        return Err(format!(
            "/dev/{} ({}) is neither removable nor on USB: it looks like an internal disk. \
             If it really is the disk to write (a box's disk in a USB enclosure, an SD card \
             reader that says otherwise), give --force",
            disk.node.name,
            disk.describe()
        ));
    }
    if disk.size < image_size {
        return Err(format!(
            "/dev/{} is {} ({} bytes); the image needs {} ({image_size} bytes)",
            disk.node.name,
            human(disk.size),
            disk.size,
            human(image_size)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake sysfs: a USB stick sdb (8:16) with sdb1, an internal SATA disk sda (8:0)
    /// with sda1 and sda2, dm-0 (254:0, "root") stacked on sda2, an SD card mmcblk0
    /// (179:0) that says removable, and a NVMe disk.
    fn fake_sys(name: &str) -> PathBuf {
        let sys =
            std::env::temp_dir().join(format!("gkctl-fake-sys-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&sys);
        let w = |p: &Path, text: &str| {
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        let disk =
            |path: &str, dev: &str, size: u64, removable: &str, model: Option<(&str, &str)>| {
                let d = sys.join(path);
                w(&d.join("dev"), &format!("{dev}\n"));
                w(&d.join("size"), &format!("{size}\n"));
                w(&d.join("removable"), &format!("{removable}\n"));
                if let Some((vendor, model)) = model {
                    w(&d.join("device/vendor"), &format!("{vendor}  \n"));
                    w(&d.join("device/model"), &format!("{model}\n"));
                }
                fs::create_dir_all(sys.join("dev/block")).unwrap();
                symlink(&d, sys.join("dev/block").join(dev)).unwrap();
                d
            };
        let part = |d: &Path, name: &str, dev: &str| {
            let p = d.join(name);
            w(&p.join("dev"), &format!("{dev}\n"));
            w(&p.join("partition"), "1\n");
            symlink(&p, sys.join("dev/block").join(dev)).unwrap();
            p
        };
        let usb =
            "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb";
        let sdb = disk(
            usb,
            "8:16",
            30_031_872,
            "0",
            Some(("SanDisk", "Cruzer Blade")),
        );
        part(&sdb, "sdb1", "8:17");
        let sda = disk(
            "devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda",
            "8:0",
            1_953_525_168,
            "0",
            Some(("ATA", "Samsung SSD 860")),
        );
        part(&sda, "sda1", "8:1");
        let sda2 = part(&sda, "sda2", "8:2");
        let dm = sys.join("devices/virtual/block/dm-0");
        w(&dm.join("dev"), "254:0\n");
        w(&dm.join("dm/name"), "root\n");
        fs::create_dir_all(sda2.join("holders")).unwrap();
        symlink(&dm, sda2.join("holders/dm-0")).unwrap();
        disk(
            "devices/platform/fe320000.mmc/mmc_host/mmc1/mmc1:0001/block/mmcblk0",
            "179:0",
            62_333_952,
            "1",
            None,
        );
        let nvme = disk(
            "devices/pci0000:00/0000:00:1d.0/nvme/nvme0/nvme0n1",
            "259:0",
            1_000_215_216,
            "0",
            None,
        );
        part(&nvme, "nvme0n1p1", "259:1");
        sys
    }

    const SDB: DevNo = DevNo {
        major: 8,
        minor: 16,
    };
    const SDA: DevNo = DevNo { major: 8, minor: 0 };
    const MMC: DevNo = DevNo {
        major: 179,
        minor: 0,
    };
    const NVME: DevNo = DevNo {
        major: 259,
        minor: 0,
    };

    /// A laptop's mountinfo: / on dm-0 (LUKS on sda2), /boot on sda1, the usual
    /// pseudo file systems.
    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/mapper/root rw
28 27 8:1 / /boot rw,relatime - vfat /dev/sda1 rw
40 27 0:45 / /tmp rw - tmpfs tmpfs rw
";
    const SWAPS: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";

    #[test]
    fn reads_a_usb_stick() {
        let sys = fake_sys("usb");
        let d = inspect(&sys, SDB).unwrap();
        assert_eq!(d.node.name, "sdb");
        assert!(d.usb && !d.removable);
        assert_eq!(d.size, 30_031_872 * 512);
        assert_eq!(d.model, "SanDisk Cruzer Blade");
        assert_eq!(d.describe(), "SanDisk Cruzer Blade, 14.3 GiB, USB");
        assert_eq!(
            d.parts.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["sdb1"]
        );
        assert!(check(&d, MOUNTINFO, SWAPS, false, 1 << 30).is_ok());
        // Too small.
        let e = check(&d, MOUNTINFO, SWAPS, false, 16 << 30).unwrap_err();
        assert!(e.contains("the image needs 16.0 GiB"), "{e}");
        // An SD card that says removable.
        let mmc = inspect(&sys, MMC).unwrap();
        assert!(mmc.removable && !mmc.usb);
        assert!(check(&mmc, MOUNTINFO, SWAPS, false, 1 << 20).is_ok());
        fs::remove_dir_all(&sys).unwrap();
    }

    #[test]
    fn refuses_the_system_disk_even_forced() {
        let sys = fake_sys("system");
        let sda = inspect(&sys, SDA).unwrap();
        let names: Vec<&str> = sda.parts.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["sda1", "sda2", "dm-0"]);
        for force in [false, true] {
            let e = check(&sda, MOUNTINFO, SWAPS, force, 1 << 20).unwrap_err();
            // The first system mount in mountinfo order is / (on dm-0, over sda2).
            assert!(
                e.contains("holds / (on dm-0)") && e.contains("system disk"),
                "{e}"
            );
        }
        // /boot alone (root elsewhere) is enough; by device number or by name.
        let boot_only = "28 27 8:1 / /boot rw - vfat /dev/sda1 rw\n";
        let e = check(&sda, boot_only, SWAPS, true, 1).unwrap_err();
        assert!(e.contains("holds /boot (on sda1)"), "{e}");
        // btrfs shows an anonymous device number: the source name still counts.
        let btrfs = "27 1 0:31 /@ / rw - btrfs /dev/sda2 rw\n";
        let e = check(&sda, btrfs, SWAPS, true, 1).unwrap_err();
        assert!(e.contains("holds / (on sda2)"), "{e}");
        fs::remove_dir_all(&sys).unwrap();
    }

    #[test]
    fn refuses_mounted_disks_and_swap() {
        let sys = fake_sys("mounted");
        let d = inspect(&sys, SDB).unwrap();
        let mounted = format!(
            "{MOUNTINFO}50 27 8:17 / /media/tech/GK\\040DATA rw,nosuid - vfat /dev/sdb1 rw\n"
        );
        let e = check(&d, &mounted, SWAPS, true, 1).unwrap_err();
        assert!(
            e.contains("/dev/sdb is mounted (sdb1 on /media/tech/GK DATA)")
                && e.contains("even with --force"),
            "{e}"
        );
        // The whole disk mounted (no partition table, e.g. a FAT stick).
        let whole = "51 27 8:16 / /mnt rw - vfat /dev/sdb rw\n";
        assert!(check(&d, whole, SWAPS, true, 1)
            .unwrap_err()
            .contains("sdb on /mnt"));
        let swaps = format!(
            "{SWAPS}/dev/sdb1                               partition\t1048572\t\t0\t\t-2\n"
        );
        let e = check(&d, MOUNTINFO, &swaps, true, 1).unwrap_err();
        assert!(e.contains("in use as swap (sdb1)"), "{e}");
        fs::remove_dir_all(&sys).unwrap();
    }

    #[test]
    fn refuses_internal_disks_unless_forced() {
        let sys = fake_sys("internal");
        let nvme = inspect(&sys, NVME).unwrap();
        assert!(!nvme.usb && !nvme.removable);
        assert_eq!(nvme.describe(), "unknown model, 476.9 GiB, NOT removable");
        let e = check(&nvme, MOUNTINFO, SWAPS, false, 1).unwrap_err();
        assert!(
            e.contains("neither removable nor on USB") && e.contains("--force"),
            "{e}"
        );
        assert!(check(&nvme, MOUNTINFO, SWAPS, true, 1).is_ok());
        fs::remove_dir_all(&sys).unwrap();
    }

    #[test]
    fn refuses_partitions_and_unknown_devices() {
        let sys = fake_sys("partition");
        let e = inspect(
            &sys,
            DevNo {
                major: 8,
                minor: 17,
            },
        )
        .unwrap_err();
        assert!(
            e.contains("sdb1 is a partition of sdb; give the whole disk (/dev/sdb)"),
            "{e}"
        );
        let e = inspect(&sys, DevNo { major: 7, minor: 0 }).unwrap_err();
        assert!(e.contains("block device 7:0 is not in"), "{e}");
        fs::remove_dir_all(&sys).unwrap();
    }

    #[test]
    fn mountinfo_and_devno_parsing() {
        let m = parse_mountinfo(
            "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
             garbage\n\
             37 35 x:y / /a rw - ext4 /dev/sda1 rw\n",
        );
        assert_eq!(
            m,
            vec![Mount {
                dev: DevNo {
                    major: 98,
                    minor: 0
                },
                mount_point: "/mnt 2".into(),
                source: "/dev/root".into()
            }]
        );
        assert_eq!(unescape("a\\134b\\"), "a\\b\\");
        // glibc's makedev(8, 16) and makedev(259, 65536).
        assert_eq!(DevNo::from_rdev(0x0810), SDB);
        // makedev(259, 65536): the minor's high bits go above the major's.
        let (major, minor) = (259u64, 65536u64);
        let rdev = (major << 8) | (minor & 0xff) | ((minor & !0xff) << 12);
        assert_eq!(
            DevNo::from_rdev(rdev),
            DevNo {
                major: 259,
                minor: 65536
            }
        );
        assert_eq!(human(100), "100 B");
        assert_eq!(human(1536), "1.5 KiB");
    }
}
