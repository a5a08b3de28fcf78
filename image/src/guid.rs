//! Fixed identifiers derived from the board name, so that two builds of one board give
//! the same bytes and two boards never share a disk GUID.
//!
//! Each identifier is the first bytes of SHA-256 over a domain prefix, the board name
//! and a role (`disk`, `gk-esp`, …). GUIDs carry the RFC 9562 version 8 ("custom") and
//! variant bits so that tools see well-formed UUIDs.

use sha2::{Digest, Sha256};

const PREFIX: &[u8] = b"gatekeeper-image-id-v1\0";

fn digest(board: &str, role: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(PREFIX);
    h.update(board.as_bytes());
    h.update([0]);
    h.update(role.as_bytes());
    h.finalize().into()
}

/// A GUID for `role` on `board`, in the canonical text form sgdisk and mkfs take
/// (`xxxxxxxx-xxxx-8xxx-yxxx-xxxxxxxxxxxx`, lowercase).
pub fn guid(board: &str, role: &str) -> String {
    let d = digest(board, role);
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = gk_bundle::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A FAT volume id (`mkfs.vfat -i`): 8 hex digits.
pub fn fat_volume_id(board: &str) -> String {
    gk_bundle::hex(&digest(board, "fat-volume-id")[..4])
}

/// The dm-verity salt of a board's root filesystems: 32 bytes, hex. Fixed per board so
/// that the hash tree, and so the disk, is reproducible.
pub fn verity_salt(board: &str) -> String {
    gk_bundle::hex(&digest(board, "verity-salt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_fixed_well_formed_and_distinct() {
        let g = guid("qemu-x86_64", "disk");
        assert_eq!(g, guid("qemu-x86_64", "disk"));
        assert_eq!(g.len(), 36);
        let parts: Vec<&str> = g.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('8'), "{g}");
        assert!(
            matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{g}"
        );
        assert!(g
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
        let mut all = std::collections::BTreeSet::new();
        for board in ["qemu-x86_64", "qemu-aarch64", "nanopi-r4s"] {
            for role in ["disk", "gk-esp", "gk-root-a", "gk-root-b", "gk-data"] {
                assert!(all.insert(guid(board, role)), "{board} {role}");
            }
        }
        // The board and the role are separated: ("ab", "c") is not ("a", "bc").
        assert_ne!(guid("ab", "c"), guid("a", "bc"));
        // Pinned: a change here changes every image's identity; do it knowingly.
        assert_eq!(guid("qemu-x86_64", "disk"), PINNED_DISK_GUID);
        assert_eq!(fat_volume_id("qemu-x86_64").len(), 8);
        assert_eq!(verity_salt("qemu-x86_64").len(), 64);
        assert_ne!(verity_salt("qemu-x86_64"), verity_salt("qemu-aarch64"));
    }

    const PINNED_DISK_GUID: &str = "33633e72-1a41-881c-a10e-1e1d23ca75a5";
}
