//! dm-verity bookkeeping for a root partition: squashfs, padded to 4096 bytes, then the
//! hash tree that `veritysetup format --no-superblock` writes (sha256, 4096-byte data
//! and hash blocks). Without a superblock nothing on disk says where the tree starts or
//! how many blocks it covers, so these numbers travel on the kernel command line
//! (`gk.verity_*`), in the manifest and in the update header.

pub const BLOCK: u64 = 4096;
/// sha256 digests per 4096-byte hash block.
const HASHES_PER_BLOCK: u64 = BLOCK / 32;

/// What stage 1 needs to open a root partition with dm-verity.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VerityParams {
    pub root_hash: String,
    pub salt: String,
    /// 4096-byte data blocks covered (the padded squashfs).
    pub data_blocks: u64,
    /// Bytes into the partition where the hash tree starts (= data_blocks × 4096).
    pub hash_offset: u64,
    /// Bytes of hash tree.
    pub hash_bytes: u64,
}

impl VerityParams {
    /// The kernel command line's part: `gk.verity=… gk.verity_data_blocks=… …`.
    pub fn cmdline(&self) -> String {
        format!(
            "gk.verity={} gk.verity_data_blocks={} gk.verity_hash_offset={} gk.verity_salt={}",
            self.root_hash, self.data_blocks, self.hash_offset, self.salt
        )
    }
    /// Bytes of the whole root image (data + tree).
    pub fn image_bytes(&self) -> u64 {
        self.hash_offset + self.hash_bytes
    }
}

/// The data length padded up to whole blocks.
pub fn padded(len: u64) -> u64 {
    len.div_ceil(BLOCK) * BLOCK
}

/// Bytes of the hash tree veritysetup writes for `data_blocks` (format 1, no superblock):
/// one level per 128-fold reduction, at least one block.
pub fn hash_tree_bytes(data_blocks: u64) -> u64 {
    let mut blocks = 0;
    let mut n = data_blocks;
    loop {
        n = n.div_ceil(HASHES_PER_BLOCK).max(1);
        blocks += n;
        if n == 1 {
            break;
        }
    }
    blocks * BLOCK
}

/// Reads `Root hash:` and checks `Data blocks:` in veritysetup's report.
pub fn parse_format_output(text: &str, data_blocks: u64) -> Result<String, String> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let blocks = field("Data blocks:").ok_or("veritysetup printed no `Data blocks:`")?;
    if blocks != data_blocks.to_string() {
        return Err(format!(
            "veritysetup covered {blocks} data blocks, expected {data_blocks}"
        ));
    }
    let root = field("Root hash:").ok_or("veritysetup printed no `Root hash:`")?;
    if root.len() != 64 || !root.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "veritysetup's root hash {root:?} is not 64 hex digits"
        ));
    }
    Ok(root.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_sizes() {
        assert_eq!(padded(0), 0);
        assert_eq!(padded(1), 4096);
        assert_eq!(padded(4096), 4096);
        assert_eq!(padded(4097), 8192);
        // One data block: one hash block.
        assert_eq!(hash_tree_bytes(1), 4096);
        assert_eq!(hash_tree_bytes(128), 4096);
        // 129 blocks: two leaf blocks and a root block.
        assert_eq!(hash_tree_bytes(129), 3 * 4096);
        // 128 * 128 + 1 blocks: 129 leaves, 2 middle, 1 root.
        assert_eq!(hash_tree_bytes(128 * 128 + 1), (129 + 2 + 1) * 4096);
    }

    #[test]
    fn parameters_and_cmdline() {
        let report = "VERITY header information for root.img\nUUID:            \t\nHash type:       \t1\nData blocks:     \t2560\nData block size: \t4096\nHash block size: \t4096\nHash algorithm:  \tsha256\nSalt:            \t00ff\nRoot hash:      \tABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\n";
        let root = parse_format_output(report, 2560).unwrap();
        assert_eq!(
            root,
            "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
        );
        assert!(parse_format_output(report, 2561)
            .unwrap_err()
            .contains("2560"));
        assert!(parse_format_output("Data blocks: 1\n", 1).is_err());
        let p = VerityParams {
            root_hash: root,
            salt: "00ff".into(),
            data_blocks: 2560,
            hash_offset: 2560 * 4096,
            hash_bytes: hash_tree_bytes(2560),
        };
        assert_eq!(p.hash_bytes, 21 * 4096);
        assert_eq!(p.image_bytes(), (2560 + 21) * 4096);
        assert_eq!(
            p.cmdline(),
            format!("gk.verity={} gk.verity_data_blocks=2560 gk.verity_hash_offset=10485760 gk.verity_salt=00ff", p.root_hash)
        );
    }
}
