//! The GPT disk: layout from the board's sizes, the table written by sgdisk with fixed
//! GUIDs, partition images copied in at their offsets (all-zero blocks skipped, so the
//! file stays sparse and the bmap maps only what holds data), and the comparison that
//! `make image-check` uses to say where two images differ.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::bsp::Partitions;
use crate::guid;
use crate::tools;

pub const SECTOR: u64 = 512;
const MIB_SECTORS: u64 = 2048;
/// The backup GPT: 32 sectors of entries and the header.
const BACKUP_SECTORS: u64 = 33;

pub const ESP: &str = "gk-esp";
pub const ROOT_A: &str = "gk-root-a";
pub const ROOT_B: &str = "gk-root-b";
pub const DATA: &str = "gk-data";

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Part {
    pub number: u32,
    pub name: &'static str,
    /// sgdisk type code.
    pub type_code: &'static str,
    pub guid: String,
    pub first_lba: u64,
    pub sectors: u64,
}

impl Part {
    pub fn offset(&self) -> u64 {
        self.first_lba * SECTOR
    }
    pub fn bytes(&self) -> u64 {
        self.sectors * SECTOR
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Layout {
    pub disk_guid: String,
    pub parts: Vec<Part>,
    pub total_bytes: u64,
}

impl Layout {
    /// ESP, root A, root B, data, back to back from `reserved_mib`, 1 MiB aligned, and
    /// 1 MiB at the end for the backup table.
    pub fn new(board: &str, p: &Partitions) -> Layout {
        let mut lba = p.reserved_mib * MIB_SECTORS;
        let mut parts = Vec::new();
        for (number, (name, type_code, mib)) in [
            (ESP, "ef00", p.esp_mib),
            (ROOT_A, "8300", p.root_mib),
            (ROOT_B, "8300", p.root_mib),
            (DATA, "8300", p.data_mib),
        ]
        .into_iter()
        .enumerate()
        {
            let sectors = mib * MIB_SECTORS;
            parts.push(Part {
                number: number as u32 + 1,
                name,
                type_code,
                guid: guid::guid(board, name),
                first_lba: lba,
                sectors,
            });
            lba += sectors;
        }
        Layout {
            disk_guid: guid::guid(board, "disk"),
            parts,
            total_bytes: (lba + MIB_SECTORS) * SECTOR,
        }
    }

    pub fn part(&self, name: &str) -> &Part {
        self.parts
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("layout has no partition {name}"))
    }

    /// sgdisk's arguments for the table (`legacy_boot`: the ESP's legacy BIOS bootable
    /// attribute, bit 2, for syslinux's gptmbr.bin).
    pub fn sgdisk_args(&self, legacy_boot: bool) -> Vec<String> {
        let mut a = vec![
            "--clear".to_string(),
            format!("--disk-guid={}", self.disk_guid),
        ];
        for p in &self.parts {
            let n = p.number;
            a.push(format!(
                "--new={n}:{}:{}",
                p.first_lba,
                p.first_lba + p.sectors - 1
            ));
            a.push(format!("--typecode={n}:{}", p.type_code));
            a.push(format!("--change-name={n}:{}", p.name));
            a.push(format!("--partition-guid={n}:{}", p.guid));
        }
        if legacy_boot {
            a.push("--attributes=1:set:2".into());
        }
        a
    }
}

/// Creates the (sparse) disk file and writes the table.
pub fn create(path: &Path, layout: &Layout, legacy_boot: bool) -> Result<()> {
    let _ = fs::remove_file(path);
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.set_len(layout.total_bytes)?;
    drop(f);
    let mut cmd = tools::command("sgdisk")?;
    cmd.args(layout.sgdisk_args(legacy_boot)).arg(path);
    tools::run(cmd)?;
    Ok(())
}

/// Copies `image` into the disk at `offset`, refusing one larger than `room`; blocks of
/// zeros are not written (the disk file is sparse and already reads as zeros there).
pub fn write_at(disk: &Path, offset: u64, room: u64, image: &Path, what: &str) -> Result<u64> {
    let len = fs::metadata(image)
        .with_context(|| format!("cannot read {}", image.display()))?
        .len();
    if len > room {
        bail!(
            "{what} is {} but its place holds {}: raise its size in the board's [partitions]",
            human(len),
            human(room)
        );
    }
    let out = fs::OpenOptions::new().write(true).open(disk)?;
    let mut input = File::open(image)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    loop {
        let n = read_full(&mut input, &mut buf)?;
        if n == 0 {
            break;
        }
        for (i, block) in buf[..n].chunks(4096).enumerate() {
            if block.iter().any(|&b| b != 0) {
                out.write_all_at(block, offset + at + (i * 4096) as u64)?;
            }
        }
        at += n as u64;
    }
    Ok(len)
}

/// Writes raw bytes (a boot loader) at `offset`.
pub fn write_bytes(disk: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    let out = fs::OpenOptions::new().write(true).open(disk)?;
    out.write_all_at(bytes, offset)?;
    Ok(())
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = f.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// A partition as read back from a GPT.
#[derive(Debug, PartialEq, Eq)]
pub struct TablePart {
    pub name: String,
    pub first_lba: u64,
    pub last_lba: u64,
}

/// Reads the primary GPT's partitions from an image.
pub fn read_gpt(path: &Path) -> Result<Vec<TablePart>> {
    let mut f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut header = [0u8; 92];
    f.seek(SeekFrom::Start(SECTOR))?;
    f.read_exact(&mut header)?;
    if &header[0..8] != b"EFI PART" {
        bail!("{}: no GPT header at LBA 1", path.display());
    }
    let le64 = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    let le32 = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or([0; 4]));
    let entries_lba = le64(&header[72..80]);
    let count = le32(&header[80..84]).min(256) as usize;
    let size = (le32(&header[84..88]) as usize).clamp(128, 512);
    let mut table = vec![0u8; count * size];
    f.seek(SeekFrom::Start(entries_lba * SECTOR))?;
    f.read_exact(&mut table)?;
    let mut parts = Vec::new();
    for e in table.chunks(size) {
        if e[0..16].iter().all(|&b| b == 0) {
            continue;
        }
        let units: Vec<u16> = e[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        parts.push(TablePart {
            name: String::from_utf16_lossy(&units),
            first_lba: le64(&e[32..40]),
            last_lba: le64(&e[40..48]),
        });
    }
    Ok(parts)
}

/// Names the region of a disk an offset falls in.
pub fn region(parts: &[TablePart], total: u64, offset: u64) -> String {
    let lba = offset / SECTOR;
    let total_lba = total / SECTOR;
    if lba == 0 {
        return if offset < 440 {
            "the MBR boot code".into()
        } else {
            "the protective MBR".into()
        };
    }
    if lba == 1 {
        return "the primary GPT header".into();
    }
    if lba < 34 {
        return "the primary GPT entries".into();
    }
    if lba >= total_lba.saturating_sub(BACKUP_SECTORS) {
        return "the backup GPT".into();
    }
    for p in parts {
        if (p.first_lba..=p.last_lba).contains(&lba) {
            return format!(
                "partition {} at +{} (0x{:x})",
                p.name,
                offset - p.first_lba * SECTOR,
                offset - p.first_lba * SECTOR
            );
        }
    }
    "the space outside any partition (boot loader area)".into()
}

/// Compares two images; `Ok(None)` when identical, else a report of the first
/// difference and how many 4 KiB blocks differ in each region.
pub fn compare(a: &Path, b: &Path) -> Result<Option<String>> {
    let la = fs::metadata(a)
        .with_context(|| format!("cannot read {}", a.display()))?
        .len();
    let lb = fs::metadata(b)
        .with_context(|| format!("cannot read {}", b.display()))?
        .len();
    let parts = read_gpt(a).unwrap_or_default();
    let mut fa = File::open(a)?;
    let mut fb = File::open(b)?;
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut at = 0u64;
    let mut first = None;
    let mut per_region: Vec<(String, u64)> = Vec::new();
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        let n = na.min(nb);
        if n == 0 {
            break;
        }
        if ba[..n] != bb[..n] {
            for (i, (ca, cb)) in ba[..n].chunks(4096).zip(bb[..n].chunks(4096)).enumerate() {
                if ca != cb {
                    let block_at = at + (i * 4096) as u64;
                    if first.is_none() {
                        let j = ca.iter().zip(cb).position(|(x, y)| x != y).unwrap_or(0);
                        first = Some(block_at + j as u64);
                    }
                    let r = region(&parts, la, block_at);
                    let r = r.split(" at +").next().unwrap_or(&r).to_string();
                    match per_region.iter_mut().find(|(name, _)| *name == r) {
                        Some((_, c)) => *c += 1,
                        None => per_region.push((r, 1)),
                    }
                }
            }
        }
        at += n as u64;
        if na != nb {
            break;
        }
    }
    let mut report = String::new();
    if la != lb {
        report.push_str(&format!("sizes differ: {la} vs {lb} bytes\n"));
    }
    if let Some(off) = first {
        report.push_str(&format!(
            "first difference at byte {off} (0x{off:x}), in {}\n",
            region(&parts, la, off)
        ));
        for (r, blocks) in per_region {
            report.push_str(&format!("  {blocks} differing 4 KiB blocks in {r}\n"));
        }
    }
    Ok((!report.is_empty()).then_some(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_aligned_and_fixed() {
        let p = Partitions {
            reserved_mib: 16,
            esp_mib: 64,
            root_mib: 256,
            data_mib: 64,
        };
        let l = Layout::new("nanopi-r4s", &p);
        assert_eq!(
            l.parts.iter().map(|p| p.name).collect::<Vec<_>>(),
            [ESP, ROOT_A, ROOT_B, DATA]
        );
        assert_eq!(l.part(ESP).first_lba, 16 * 2048);
        assert_eq!(l.part(ROOT_A).first_lba, 80 * 2048);
        assert_eq!(l.part(ROOT_B).first_lba, 336 * 2048);
        assert_eq!(l.part(DATA).bytes(), 64 << 20);
        assert_eq!(l.total_bytes, (16 + 64 + 512 + 64 + 1) << 20);
        for part in &l.parts {
            assert_eq!(part.first_lba % 2048, 0);
            assert_eq!(part.guid, guid::guid("nanopi-r4s", part.name));
        }
        assert_eq!(l, Layout::new("nanopi-r4s", &p));
        assert_ne!(l.disk_guid, Layout::new("qemu-aarch64", &p).disk_guid);
        let args = l.sgdisk_args(true);
        assert!(args.contains(&format!("--new=1:32768:{}", 32768 + 64 * 2048 - 1)));
        assert!(args.contains(&"--change-name=2:gk-root-a".to_string()));
        assert!(args.contains(&"--typecode=1:ef00".to_string()));
        assert_eq!(args.last().unwrap(), "--attributes=1:set:2");
        assert!(!l
            .sgdisk_args(false)
            .iter()
            .any(|a| a.starts_with("--attributes")));
    }

    #[test]
    fn regions_of_offsets() {
        let parts = vec![TablePart {
            name: "gk-esp".into(),
            first_lba: 2048,
            last_lba: 4095,
        }];
        let total = 8192 * 512;
        assert_eq!(region(&parts, total, 100), "the MBR boot code");
        assert_eq!(region(&parts, total, 510), "the protective MBR");
        assert_eq!(region(&parts, total, 600), "the primary GPT header");
        assert_eq!(region(&parts, total, 3000), "the primary GPT entries");
        assert_eq!(
            region(&parts, total, 2048 * 512 + 16),
            "partition gk-esp at +16 (0x10)"
        );
        assert_eq!(
            region(&parts, total, 5000 * 512),
            "the space outside any partition (boot loader area)"
        );
        assert_eq!(region(&parts, total, total - 512), "the backup GPT");
    }
}
