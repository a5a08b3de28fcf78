//! Just enough of the PE/COFF headers to place a unified kernel image's sections: where
//! the systemd-stub's last section ends (new sections go after it, as the systemd docs
//! do with `objdump -h` for UKIs built with objcopy), and which machine a PE is for.

/// What the headers say.
#[derive(Debug, PartialEq, Eq)]
pub struct PeInfo {
    pub machine: u16,
    pub image_base: u64,
    pub section_alignment: u64,
    /// ImageBase + the end of the highest section, rounded up to the section alignment:
    /// the first VMA free for a new section.
    pub end_vma: u64,
    pub section_names: Vec<String>,
}

pub const MACHINE_X86_64: u16 = 0x8664;
pub const MACHINE_AARCH64: u16 = 0xaa64;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses a PE32+ image's headers; `None` when it is not one.
pub fn parse(b: &[u8]) -> Option<PeInfo> {
    if b.get(0..2)? != b"MZ" {
        return None;
    }
    let pe = u32_at(b, 0x3c)? as usize;
    if b.get(pe..pe + 4)? != b"PE\0\0" {
        return None;
    }
    let coff = pe + 4;
    let machine = u16_at(b, coff)?;
    let sections = u16_at(b, coff + 2)? as usize;
    let opt_size = u16_at(b, coff + 16)? as usize;
    let opt = coff + 20;
    if u16_at(b, opt)? != 0x20b {
        return None; // not PE32+
    }
    let image_base = u64_at(b, opt + 24)?;
    let section_alignment = u64::from(u32_at(b, opt + 32)?).max(1);
    let table = opt + opt_size;
    let mut end = 0u64;
    let mut names = Vec::new();
    for i in 0..sections {
        let s = table + i * 40;
        let name = b.get(s..s + 8)?;
        names.push(
            String::from_utf8_lossy(name)
                .trim_end_matches('\0')
                .to_string(),
        );
        let vsize = u64::from(u32_at(b, s + 8)?);
        let va = u64::from(u32_at(b, s + 12)?);
        let raw = u64::from(u32_at(b, s + 16)?);
        end = end.max(va + vsize.max(raw));
    }
    Some(PeInfo {
        machine,
        image_base,
        section_alignment,
        end_vma: image_base + end.div_ceil(section_alignment) * section_alignment,
        section_names: names,
    })
}

/// The PE image checksum (as `IMAGEHLP!CheckSumMappedFile`): 16-bit one's-complement
/// style sum of the file without the CheckSum field, plus the file length.
pub fn checksum(b: &[u8]) -> Option<u32> {
    let field = checksum_offset(b)?;
    let mut sum: u64 = 0;
    for (i, chunk) in b.chunks(2).enumerate() {
        let at = i * 2;
        if at == field || at == field + 2 {
            continue;
        }
        sum += u64::from(chunk[0]) | (u64::from(*chunk.get(1).unwrap_or(&0)) << 8);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    Some((sum as u32).wrapping_add(b.len() as u32))
}

fn checksum_offset(b: &[u8]) -> Option<usize> {
    parse(b)?;
    Some(u32_at(b, 0x3c)? as usize + 24 + 64)
}

/// Sets the COFF header's TimeDateStamp (objcopy writes the time of the copy there) and,
/// when the image carries a checksum, recomputes it. Refuses (`None`) an image whose
/// checksum was wrong before: then our idea of the format is wrong too.
pub fn set_timestamp(b: &mut [u8], stamp: u32) -> Option<()> {
    let field = checksum_offset(b)?;
    let had = u32_at(b, field)?;
    if had != 0 && checksum(b)? != had {
        return None;
    }
    let pe = u32_at(b, 0x3c)? as usize;
    b.get_mut(pe + 8..pe + 12)?
        .copy_from_slice(&stamp.to_le_bytes());
    if had != 0 {
        let sum = checksum(b)?;
        b.get_mut(field..field + 4)?
            .copy_from_slice(&sum.to_le_bytes());
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ header with two sections.
    fn fixture() -> Vec<u8> {
        let mut b = vec![0u8; 0x200];
        b[0..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        let coff = 0x84;
        b[coff..coff + 2].copy_from_slice(&MACHINE_AARCH64.to_le_bytes());
        b[coff + 2..coff + 4].copy_from_slice(&2u16.to_le_bytes());
        b[coff + 16..coff + 18].copy_from_slice(&240u16.to_le_bytes());
        let opt = coff + 20;
        b[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        b[opt + 24..opt + 32].copy_from_slice(&0x1_0000_0000u64.to_le_bytes());
        b[opt + 32..opt + 36].copy_from_slice(&0x1000u32.to_le_bytes());
        let table = opt + 240;
        for (i, (name, vsize, va, raw)) in [
            (".text", 0x2345u32, 0x1000u32, 0x2400u32),
            (".data", 0x10, 0x4000, 0x200),
        ]
        .iter()
        .enumerate()
        {
            let s = table + i * 40;
            b[s..s + name.len()].copy_from_slice(name.as_bytes());
            b[s + 8..s + 12].copy_from_slice(&vsize.to_le_bytes());
            b[s + 12..s + 16].copy_from_slice(&va.to_le_bytes());
            b[s + 16..s + 20].copy_from_slice(&raw.to_le_bytes());
        }
        b
    }

    #[test]
    fn end_of_the_last_section() {
        let info = parse(&fixture()).unwrap();
        assert_eq!(info.machine, MACHINE_AARCH64);
        assert_eq!(info.section_names, [".text", ".data"]);
        // .data: 0x4000 + max(0x10, 0x200) = 0x4200 → 0x5000, plus the image base.
        assert_eq!(info.end_vma, 0x1_0000_5000);
        let mut not_pe = fixture();
        not_pe[0x80] = b'X';
        assert!(parse(&not_pe).is_none());
        assert!(parse(b"MZ").is_none());
        let mut b = fixture();
        set_timestamp(&mut b, 0x5f5e1000).unwrap();
        assert_eq!(u32_at(&b, 0x84 + 4), Some(0x5f5e1000));
        assert_eq!(parse(&b).unwrap(), parse(&fixture()).unwrap());
        // With a checksum: kept correct; a wrong one is refused.
        let mut b = fixture();
        let field = checksum_offset(&b).unwrap();
        let sum = checksum(&b).unwrap();
        b[field..field + 4].copy_from_slice(&sum.to_le_bytes());
        set_timestamp(&mut b, 7).unwrap();
        assert_eq!(u32_at(&b, field), checksum(&b));
        assert_ne!(u32_at(&b, field), Some(sum));
        b[field] ^= 1;
        assert!(set_timestamp(&mut b, 8).is_none());
    }
}
