//! Signed policy bundles (the format is documented in `config/BUNDLE.md`).
//!
//! A bundle is one text file: a magic line, one line per Ed25519 signature, a
//! `--- signed ---` line, then the signed body (a `[bundle]` TOML table with the
//! metadata, a `--- policy ---` line, the policy exactly as written). The signatures
//! cover a fixed domain prefix followed by the exact body bytes, and are checked before
//! a single byte of the body is parsed.
//!
//! - [`keys`]: Ed25519 key pairs, their files, key ids.
//! - [`trust`]: the trust store (a directory of `*.pub`, optional `trust.toml` with the
//!   number of distinct signatures required).
//! - [`format`](mod@format): the bundle file: the strict envelope parser (no TOML),
//!   the body's metadata, building and cosigning.
//! - [`verify`]: size, envelope, signatures (k of n), then metadata: serial above the
//!   ratchet, not expired, made for this device/site.
//! - [`state`]: the state directory: bundles, the ratchet and time floor, the pending
//!   apply, one manifest replaced atomically; every write crash-safe.
//! - [`audit`]: the hash-chained audit log (JSON lines) and its verification.
//!
//! Nothing here does I/O except `keys` (key files), `trust` (the trust directory) and
//! `state` (the state directory, with the audit log's file); `format`, `verify` and
//! `audit` work on bytes. Time is always passed in, never read from a clock.

mod fsutil;
#[cfg(test)]
mod testing;

/// The `time` crate, as used in this crate's API (so that users need not pin it).
pub use time;

pub mod audit;
pub mod format;
pub mod keys;
pub mod state;
pub mod trust;
pub mod update;
pub mod verify;

/// Writes `bytes` to `path` crash-safely: a temporary file in the same directory,
/// fsync, then rename over `path` (or, with `overwrite` false, a hard link that fails if
/// `path` exists), then fsync of the directory. `path` holds the old contents or the
/// new ones, never a part; a failed write leaves no temporary file behind.
pub fn write_file_atomic(
    path: &std::path::Path,
    bytes: &[u8],
    overwrite: bool,
) -> std::io::Result<()> {
    fsutil::write_file_atomic(path, bytes, overwrite)
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Lowercase hex of `bytes` (digests, key ids).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses exactly `N` bytes of lowercase hex (the only spelling this crate writes).
pub(crate) fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// A short, printable rendering of untrusted bytes for error messages: at most `max`
/// characters, control characters escaped, marked when cut.
pub(crate) fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    format!("\"{out}\"")
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

/// RFC 3339 in UTC, e.g. `2026-11-22T06:00:00Z` (what every file here writes).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    use time::format_description::well_known::Rfc3339;
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| format!("{t}"))
}

/// Parses an RFC 3339 date-time with an offset (`2027-01-31T00:00:00Z`).
pub fn parse_rfc3339(text: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|e| {
        format!("{text:?} is not an RFC 3339 date-time such as 2027-01-31T00:00:00Z ({e})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_is_strict() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(unhex::<3>("00ab10"), Some([0, 0xab, 0x10]));
        assert_eq!(unhex::<3>("00AB10"), None);
        assert_eq!(unhex::<3>("00ab1"), None);
        assert_eq!(unhex::<3>("00ab1g"), None);
        assert_eq!(unhex::<2>("é1"), None);
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab\ncd", 99), (2, 3));
    }

    #[test]
    fn excerpt_escapes_and_cuts() {
        assert_eq!(excerpt(b"a\rb", 10), "\"a\\rb\"");
        assert_eq!(excerpt(b"abcdef", 3), "\"abc…\"");
        assert_eq!(excerpt(&[0xff], 3), "\"\u{fffd}\"");
    }
}
