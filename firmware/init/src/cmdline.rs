//! The kernel command line: the dm-verity parameters of the root this kernel was built
//! with (`gk.verity=`, `gk.verity_data_blocks=`, `gk.verity_hash_offset=`,
//! `gk.verity_salt=`). They come from the UKI (or syslinux.cfg), which the boot loader
//! verified or at least chose; the slot is deliberately not among them, because one
//! UKI serves either slot.

use std::fmt;

/// The verity block size the image builder uses for data and hash blocks.
pub const VERITY_BLOCK: u64 = 4096;

/// What stage 1 needs to map a root slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerityParams {
    /// The root hash, lower-case hex (64 digits for sha256).
    pub root_hash: String,
    /// Number of 4096-byte data blocks (the squashfs, padded).
    pub data_blocks: u64,
    /// Where the hash tree starts, in bytes from the start of the partition.
    pub hash_offset: u64,
    /// The salt, lower-case hex; empty for none.
    pub salt: String,
}

impl VerityParams {
    /// The hash tree's start in 4096-byte hash blocks (dm-verity's `hash_start_block`).
    pub fn hash_start_block(&self) -> u64 {
        self.hash_offset / VERITY_BLOCK
    }
}

/// A command line without usable verity parameters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct CmdlineError(pub String);

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel command line: {} (the image builder puts gk.verity, gk.verity_data_blocks, \
             gk.verity_hash_offset and gk.verity_salt into the UKI or syslinux.cfg)",
            self.0
        )
    }
}

/// Splits a kernel command line into words the way the kernel does: on whitespace,
/// with double quotes grouping (`a="b c"` is one word, the quotes dropped).
pub fn words(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// The value of the last `key=value` word (the kernel's rule: later ones win).
pub fn value<'a>(words: &'a [String], key: &str) -> Option<&'a str> {
    words
        .iter()
        .rev()
        .find_map(|w| w.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

/// Reads the verity parameters from a command line.
pub fn verity(cmdline: &str) -> Result<VerityParams, CmdlineError> {
    let w = words(cmdline);
    let need = |key: &str| value(&w, key).ok_or_else(|| CmdlineError(format!("{key}= is missing")));
    let root_hash = need("gk.verity")?.to_ascii_lowercase();
    if root_hash.len() != 64 || !is_hex(&root_hash) {
        return Err(CmdlineError(format!(
            "gk.verity={root_hash:?} is not a sha256 root hash (64 hex digits)"
        )));
    }
    let number = |key: &str| -> Result<u64, CmdlineError> {
        let v = need(key)?;
        v.parse::<u64>()
            .map_err(|_| CmdlineError(format!("{key}={v:?} is not a number")))
    };
    let data_blocks = number("gk.verity_data_blocks")?;
    let hash_offset = number("gk.verity_hash_offset")?;
    if data_blocks == 0 {
        return Err(CmdlineError(
            "gk.verity_data_blocks=0: the root is empty".into(),
        ));
    }
    if hash_offset % VERITY_BLOCK != 0 || hash_offset < data_blocks.saturating_mul(VERITY_BLOCK) {
        return Err(CmdlineError(format!(
            "gk.verity_hash_offset={hash_offset} must be a multiple of {VERITY_BLOCK} at or \
             after the data ({data_blocks} blocks)"
        )));
    }
    let salt = match value(&w, "gk.verity_salt") {
        None | Some("-") => String::new(),
        Some(s) => s.to_ascii_lowercase(),
    };
    if salt.len() % 2 != 0 || !is_hex(&salt) || salt.len() > 512 {
        return Err(CmdlineError(format!(
            "gk.verity_salt={salt:?} is not hex (at most 256 bytes)"
        )));
    }
    Ok(VerityParams {
        root_hash,
        data_blocks,
        hash_offset,
        salt,
    })
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "4392712ba01368efdf14b05c76f9e4df0d53664630b5d48632ed17a137f39076";

    fn line(extra: &str) -> String {
        format!(
            "console=ttyS0 panic=10 gk.verity={ROOT} gk.verity_data_blocks=1000 \
             gk.verity_hash_offset=4096000 gk.verity_salt=00ff {extra}"
        )
    }

    #[test]
    fn reads_the_verity_parameters() {
        let p = verity(&line("")).expect("valid");
        assert_eq!(p.root_hash, ROOT);
        assert_eq!(p.data_blocks, 1000);
        assert_eq!(p.hash_offset, 4_096_000);
        assert_eq!(p.hash_start_block(), 1000);
        assert_eq!(p.salt, "00ff");
    }

    #[test]
    fn later_words_win_and_quotes_group() {
        assert_eq!(
            words("a=\"b c\" d  \"e\"\n"),
            vec!["a=b c".to_string(), "d".into(), "e".into()]
        );
        let p = verity(&line("gk.verity_salt=-")).expect("valid");
        assert_eq!(p.salt, "");
        // A key is not a prefix of another key.
        let w = words("gk.verity_salt=aa");
        assert_eq!(value(&w, "gk.verity"), None);
    }

    #[test]
    fn refuses_what_cannot_be_a_verity_table() {
        for bad in [
            line("gk.verity=abc"),
            line("gk.verity_data_blocks=x"),
            line("gk.verity_data_blocks=0"),
            line("gk.verity_hash_offset=4095"),
            line("gk.verity_hash_offset=4096"),
            line("gk.verity_salt=abc"),
            "console=ttyS0".to_string(),
        ] {
            assert!(verity(&bad).is_err(), "{bad}");
        }
        let e = verity("console=ttyS0").unwrap_err().to_string();
        assert!(e.contains("gk.verity= is missing"), "{e}");
    }
}
