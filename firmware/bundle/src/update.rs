//! Signed image updates (`*.gku`; documented in `config/UPDATE.md`).
//!
//! ```text
//! gatekeeper-update 1                                   magic line
//! signature ed25519 <16 hex> <88 base64>                one per signer, 1 to 16
//! --- signed ---                                        end of the envelope
//! [update]                                              ┐ the signed header body,
//! version = "0.2.0+g1a2b3c4"                            │ signed as
//! board = "qemu-x86_64"                                 │ SIGNING_PREFIX ‖ body
//! …                                                     │ (the `--- payload ---` line
//! --- payload ---                                       ┘ included)
//! <uki_len bytes: the unified kernel image>             ┐ the payload: not signed
//! <root_len bytes: squashfs + dm-verity hash tree>      ┘ itself, but its lengths and
//!                                                         SHA-256s are in the header
//! ```
//!
//! The header is read from a stream ([`read_header`]) line by line, never more than a
//! limit the caller gives, and its signatures are checked with the bundle's trust store
//! (same keys, same k of n, another domain prefix) **before** the TOML is parsed. The
//! reader is then left at the first payload byte, so a box can stream each part to its
//! partition with [`copy_part`], which hashes as it copies and fails at the end when the
//! length or the SHA-256 is not the header's. The bytes copied before that failure are
//! not trustworthy: the caller must not make the slot bootable unless `copy_part`
//! returned `Ok`.
//!
//! The image manifest (`manifest.json` next to `disk.img`) is signed with the same keys
//! too, with its own prefix: [`sign_manifest`] and [`verify_manifest`].

use std::fmt::Write as _;
use std::io::{self, BufRead, Read, Write};

use ed25519_dalek::Signer as _;
use serde::Deserialize;
use sha2::Digest as _;
use time::OffsetDateTime;

use crate::format::SignatureLine;
use crate::keys::{KeyId, SecretKey};
use crate::trust::TrustStore;

/// The first line of every update file.
pub const MAGIC: &str = "gatekeeper-update 1";
/// The line that ends the envelope; the signed header body starts after it.
pub const SIGNED_LINE: &str = "--- signed ---";
/// The last line of the signed header body; the payload starts after it.
pub const PAYLOAD_LINE: &str = "--- payload ---";
/// Header signatures are over `SIGNING_PREFIX ‖ body` (domain separation: a bundle
/// signature or a manifest signature can never pass for an update signature).
pub const SIGNING_PREFIX: &[u8] = b"gatekeeper-update-v1\0";
/// Manifest signatures are over `MANIFEST_PREFIX ‖ manifest.json`.
pub const MANIFEST_PREFIX: &[u8] = b"gatekeeper-manifest-v1\0";
/// A sensible `max_header` for [`read_header`]: a real header is under 2 KiB (16
/// signature lines are 1.8 KiB of it), so 64 KiB is generous and still cheap.
pub const MAX_HEADER: usize = 64 * 1024;
/// The most signature lines a header (or a manifest signature file) may carry.
pub const MAX_SIGNATURES: usize = 16;
/// dm-verity data and hash block size (the contract: 4096 bytes, sha256).
pub const VERITY_BLOCK: u64 = 4096;
/// Longest `version` or `board` accepted.
pub const MAX_NAME_LEN: usize = 128;
/// Longest salt accepted, in bytes (dm-verity's limit is 256).
pub const MAX_SALT_LEN: usize = 256;

const BOM: &[u8] = b"\xef\xbb\xbf";
/// Copy buffer of [`copy_part`] and [`write_update`].
const CHUNK: usize = 1 << 20;

/// What an update says about itself (the `[update]` table of the signed header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateInfo {
    /// The firmware version it installs (`release.json`'s `version`).
    pub version: String,
    /// The board it is built for: a box refuses an update for another board.
    pub board: String,
    /// When it was made (the image's SOURCE_DATE_EPOCH, or the signing time).
    pub created: OffsetDateTime,
    /// Length and SHA-256 of the unified kernel image, the first payload part.
    pub uki_len: u64,
    pub uki_sha256: [u8; 32],
    /// Length and SHA-256 of the root partition image (squashfs, then its hash tree).
    pub root_len: u64,
    pub root_sha256: [u8; 32],
    /// The dm-verity root hash (64 lowercase hex digits): `gk.verity=`.
    pub verity_root: String,
    /// Data blocks (4096 bytes) the hash tree covers: `gk.verity_data_blocks=`.
    pub verity_data_blocks: u64,
    /// Where the hash tree starts in the root image, in bytes: `gk.verity_hash_offset=`.
    pub verity_hash_offset: u64,
    /// The salt, lowercase hex (may be empty): `gk.verity_salt=`.
    pub verity_salt: String,
}

/// One part of the payload, as the header describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// `uki` or `root` (for messages).
    pub name: &'static str,
    pub len: u64,
    pub sha256: [u8; 32],
}

impl UpdateInfo {
    /// The first payload part: the unified kernel image.
    pub fn uki(&self) -> Part {
        Part {
            name: "uki",
            len: self.uki_len,
            sha256: self.uki_sha256,
        }
    }

    /// The second payload part: the root partition image.
    pub fn root(&self) -> Part {
        Part {
            name: "root",
            len: self.root_len,
            sha256: self.root_sha256,
        }
    }

    /// Bytes of payload after the header.
    pub fn payload_len(&self) -> u64 {
        self.uki_len.saturating_add(self.root_len)
    }

    /// Refuses an update made for another board (`wrong-board`). The box must call it
    /// after [`read_header`], with the `board` of its own `board.toml`.
    pub fn check_board(&self, board: &str) -> Result<(), UpdateError> {
        if self.board == board {
            Ok(())
        } else {
            Err(UpdateError::WrongBoard {
                update: self.board.clone(),
                board: board.to_string(),
            })
        }
    }

    /// The rules every header keeps (checked when writing and when reading): names of
    /// 1–128 printable characters without spaces; `created` within the years 0–9999;
    /// both parts non-empty; the verity root 64 hex digits, the salt hex of at most 256
    /// bytes; the hash tree after the data it covers, on a 4096-byte boundary, inside
    /// the root image.
    pub fn check(&self) -> Result<(), String> {
        check_name("version", &self.version)?;
        check_name("board", &self.board)?;
        let utc = self.created.to_offset(time::UtcOffset::UTC);
        if !(0..=9999).contains(&utc.year()) {
            return Err(format!(
                "created {} is outside the years 0000-9999",
                self.created
            ));
        }
        for (what, len) in [("uki-len", self.uki_len), ("root-len", self.root_len)] {
            if len == 0 {
                return Err(format!("{what} = 0: the part is empty"));
            }
            if len > i64::MAX as u64 {
                return Err(format!(
                    "{what} = {len}: at most {} (a TOML integer)",
                    i64::MAX
                ));
            }
        }
        if crate::unhex::<32>(&self.verity_root).is_none() {
            return Err(format!(
                "verity-root {} is not a SHA-256 root hash (64 lowercase hex digits)",
                crate::excerpt(self.verity_root.as_bytes(), 70)
            ));
        }
        let salt = self.verity_salt.as_bytes();
        if !salt.len().is_multiple_of(2)
            || salt.len() > 2 * MAX_SALT_LEN
            || !salt
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        {
            return Err(format!(
                "verity-salt {} is not lowercase hex of at most {MAX_SALT_LEN} bytes",
                crate::excerpt(salt, 70)
            ));
        }
        if self.verity_data_blocks == 0 {
            return Err("verity-data-blocks = 0: the hash tree covers no data".into());
        }
        let data_end = self.verity_data_blocks.checked_mul(VERITY_BLOCK);
        if data_end.is_none_or(|end| end > self.verity_hash_offset) {
            return Err(format!(
                "verity-hash-offset = {} is inside the {} data blocks of {VERITY_BLOCK} bytes \
                 it should follow",
                self.verity_hash_offset, self.verity_data_blocks
            ));
        }
        if !self.verity_hash_offset.is_multiple_of(VERITY_BLOCK) {
            return Err(format!(
                "verity-hash-offset = {} is not a multiple of {VERITY_BLOCK} (dm-verity counts \
                 it in hash blocks)",
                self.verity_hash_offset
            ));
        }
        if self.verity_hash_offset >= self.root_len {
            return Err(format!(
                "verity-hash-offset = {} is not inside the root image of {} bytes: the hash \
                 tree is missing",
                self.verity_hash_offset, self.root_len
            ));
        }
        Ok(())
    }
}

fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_NAME_LEN {
        return Err(format!(
            "{what} must be 1 to {MAX_NAME_LEN} bytes, not {}",
            value.len()
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("{what} {value:?} contains {c:?}"));
    }
    Ok(())
}

/// Why an update is refused, or could not be read. `code()` is stable (the init's
/// console and audit lines, `gkctl update-info`).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("malformed update: {0}")]
    Malformed(String),
    #[error(
        "the update's header is longer than {max} bytes (not an update file, or a damaged one)"
    )]
    TooLarge { max: usize },
    #[error(
        "bad signature by trusted key {0}: the update was changed after it was signed, or the \
         signature is corrupt"
    )]
    BadSignature(KeyId),
    #[error("signed only by key{} this box does not trust: {}",
        if .keys.len() == 1 { "" } else { "s" }, List(.keys))]
    UnknownKey { keys: Vec<KeyId> },
    #[error(
        "signed by {have} trusted key{}; this box requires {need} distinct trusted signers",
        if *.have == 1 { "" } else { "s" }
    )]
    TooFewSignatures { have: usize, need: usize },
    #[error("the update is for board {update:?}, but this box is {board:?}")]
    WrongBoard { update: String, board: String },
    #[error(
        "the payload's {part} part ends after {got} of its {expected} bytes (a truncated \
         file?)"
    )]
    Truncated {
        part: &'static str,
        expected: u64,
        got: u64,
    },
    #[error(
        "the payload's {part} part has SHA-256 {got}, but the signed header says {expected}: \
         the file is damaged or was tampered with"
    )]
    BadDigest {
        part: &'static str,
        expected: String,
        got: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

struct List<'a, T>(&'a [T]);

impl<T: std::fmt::Display> std::fmt::Display for List<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

impl UpdateError {
    /// Every code, in declaration order.
    pub const CODES: [&'static str; 9] = [
        "malformed",
        "too-large",
        "bad-signature",
        "unknown-key",
        "too-few-signatures",
        "wrong-board",
        "truncated",
        "bad-digest",
        "io",
    ];

    pub fn code(&self) -> &'static str {
        match self {
            UpdateError::Malformed(_) => "malformed",
            UpdateError::TooLarge { .. } => "too-large",
            UpdateError::BadSignature(_) => "bad-signature",
            UpdateError::UnknownKey { .. } => "unknown-key",
            UpdateError::TooFewSignatures { .. } => "too-few-signatures",
            UpdateError::WrongBoard { .. } => "wrong-board",
            UpdateError::Truncated { .. } => "truncated",
            UpdateError::BadDigest { .. } => "bad-digest",
            UpdateError::Io { .. } => "io",
        }
    }

    fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> UpdateError {
        let what = what.into();
        move |source| UpdateError::Io { what, source }
    }
}

fn malformed<T>(message: String) -> Result<T, UpdateError> {
    Err(UpdateError::Malformed(message))
}

// ---------------------------------------------------------------------------------------
// Writing

/// A TOML basic string on one line (the names are checked to hold no control character,
/// so only `"` and `\` need escaping).
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The signed header body for `info`: the `[update]` table and the `--- payload ---`
/// line.
pub fn body_bytes(info: &UpdateInfo) -> Vec<u8> {
    let mut s = String::from("[update]\n");
    let _ = writeln!(s, "version = {}", toml_string(&info.version));
    let _ = writeln!(s, "board = {}", toml_string(&info.board));
    let _ = writeln!(s, "created = {}", crate::rfc3339(info.created));
    let _ = writeln!(s, "uki-len = {}", info.uki_len);
    let _ = writeln!(s, "uki-sha256 = \"{}\"", crate::hex(&info.uki_sha256));
    let _ = writeln!(s, "root-len = {}", info.root_len);
    let _ = writeln!(s, "root-sha256 = \"{}\"", crate::hex(&info.root_sha256));
    let _ = writeln!(s, "verity-root = {}", toml_string(&info.verity_root));
    let _ = writeln!(s, "verity-data-blocks = {}", info.verity_data_blocks);
    let _ = writeln!(s, "verity-hash-offset = {}", info.verity_hash_offset);
    let _ = writeln!(s, "verity-salt = {}", toml_string(&info.verity_salt));
    let _ = writeln!(s, "{PAYLOAD_LINE}");
    s.into_bytes()
}

/// The bytes a header signature covers: [`SIGNING_PREFIX`] followed by the body.
pub fn signed_message(body: &[u8]) -> Vec<u8> {
    [SIGNING_PREFIX, body].concat()
}

fn signature_line(key: &SecretKey, message: &[u8]) -> String {
    crate::format::signature_line(key.id(), &key.key.sign(message))
}

fn check_signers(signers: &[&SecretKey]) -> Result<(), String> {
    if signers.is_empty() {
        return Err("at least one signing key is needed".into());
    }
    if signers.len() > MAX_SIGNATURES {
        return Err(format!("at most {MAX_SIGNATURES} signers"));
    }
    for (i, a) in signers.iter().enumerate() {
        if signers[..i].iter().any(|b| b.id() == a.id()) {
            return Err(format!("key {} ({}) is given twice", a.id(), a.name));
        }
    }
    Ok(())
}

/// The whole header (envelope and signed body) for `info`, signed by each of `signers`.
pub fn header_bytes(info: &UpdateInfo, signers: &[&SecretKey]) -> Result<Vec<u8>, String> {
    info.check()?;
    check_signers(signers)?;
    let body = body_bytes(info);
    let message = signed_message(&body);
    let mut out = format!("{MAGIC}\n").into_bytes();
    for key in signers {
        out.extend_from_slice(signature_line(key, &message).as_bytes());
    }
    out.extend_from_slice(format!("{SIGNED_LINE}\n").as_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Length and SHA-256 of everything `r` yields (to fill in an [`UpdateInfo`]).
pub fn measure(r: &mut impl Read) -> io::Result<(u64, [u8; 32])> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok((len, hasher.finalize().into())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

/// Writes an update file: the header for `info` signed by every key in `signers`, then
/// `uki` and `root` copied to their end.
///
/// `info` must already carry the parts' lengths and SHA-256s (see [`measure`]): the
/// header is written before the payload, and the payload is streamed, never held in
/// memory. Each part is hashed while it is copied, and a part whose length or digest is
/// not `info`'s fails the write (`InvalidData`) — by then the output is unusable, so
/// write to a temporary file and rename it only on `Ok`. An `info` that breaks
/// [`UpdateInfo::check`], no signer, or a key given twice fail (`InvalidInput`) before
/// anything is written.
pub fn write_update(
    out: &mut impl Write,
    info: &UpdateInfo,
    uki: &mut impl Read,
    root: &mut impl Read,
    signers: &[&SecretKey],
) -> io::Result<()> {
    let header = header_bytes(info, signers)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("update: {e}")))?;
    if header.len() > MAX_HEADER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "update: the header would be {} bytes; at most {MAX_HEADER}",
                header.len()
            ),
        ));
    }
    out.write_all(&header)?;
    for (part, input) in [
        (info.uki(), uki as &mut dyn Read),
        (info.root(), root as &mut dyn Read),
    ] {
        let mut input = input.take(part.len.saturating_add(1));
        match copy_part(&mut input, &part, out) {
            Ok(()) => {}
            Err(UpdateError::Io { source, .. }) => return Err(source),
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("update: the input does not match the header: {e}"),
                ))
            }
        }
        let mut extra = [0u8; 1];
        if input.read(&mut extra)? != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "update: the {} input is longer than the header's {} bytes",
                    part.name, part.len
                ),
            ));
        }
    }
    out.flush()
}

// ---------------------------------------------------------------------------------------
// Reading

/// The envelope of a header read from a stream: the signature lines, the signed body
/// (the `--- payload ---` line included) and the header's length in bytes.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub signatures: Vec<SignatureLine>,
    pub body: Vec<u8>,
    /// 1-based line number of the body's first line.
    pub body_line: usize,
    /// Bytes from the start of the file to the first payload byte.
    pub header_len: usize,
}

/// Reads the header's lines from `r`, strictly (no TOML, no signature checked), never
/// more than `max_header` bytes; `r` is left at the first payload byte.
pub fn read_envelope(r: &mut impl BufRead, max_header: usize) -> Result<Envelope, UpdateError> {
    let mut consumed = 0usize;
    let mut number = 0usize;
    let mut signatures: Vec<SignatureLine> = Vec::new();
    let mut body: Option<Vec<u8>> = None;
    let mut body_line = 0;
    let mut line = Vec::new();
    loop {
        number += 1;
        line.clear();
        let budget = (max_header - consumed) as u64;
        let n = (&mut *r)
            .take(budget)
            .read_until(b'\n', &mut line)
            .map_err(UpdateError::io("reading the update's header"))?;
        consumed += n;
        if line.last() != Some(&b'\n') {
            if consumed >= max_header {
                return Err(UpdateError::TooLarge { max: max_header });
            }
            return malformed(if consumed == 0 {
                "the file is empty; not a gatekeeper update".into()
            } else if number == 1 {
                format!(
                    "not a gatekeeper update (no line `{MAGIC}`; found {})",
                    crate::excerpt(&line, 40)
                )
            } else {
                format!(
                    "the file ends at line {number}, inside the header, before `{PAYLOAD_LINE}` \
                     (truncated?)"
                )
            });
        }
        line.pop();
        if number == 1 && line.starts_with(BOM) {
            return malformed(
                "the file starts with a byte-order mark (EF BB BF): it was re-saved by an \
                 editor; updates are written by the image build and must not be edited"
                    .into(),
            );
        }
        if line.ends_with(b"\r") {
            return malformed(format!(
                "line {number} ends with CR LF: the file's line endings were converted; \
                 update header lines end with LF only"
            ));
        }
        if let Some(b) = &mut body {
            b.extend_from_slice(&line);
            b.push(b'\n');
            if line == PAYLOAD_LINE.as_bytes() {
                return Ok(Envelope {
                    signatures,
                    body: std::mem::take(b),
                    body_line,
                    header_len: consumed,
                });
            }
            continue;
        }
        if number == 1 {
            if line == MAGIC.as_bytes() {
                continue;
            }
            if let Some(version) = line.strip_prefix(b"gatekeeper-update ") {
                return malformed(format!(
                    "line 1: update format version {} is not supported (this gatekeeper reads \
                     version 1)",
                    crate::excerpt(version, 20)
                ));
            }
            let hint = if line.starts_with(b"gatekeeper-bundle") {
                " (this is a policy bundle: offer it to gatekeeperd, not as an image update)"
            } else {
                ""
            };
            return malformed(format!(
                "line 1: not a gatekeeper update (expected `{MAGIC}`, found {}){hint}",
                crate::excerpt(&line, 40)
            ));
        }
        if line == SIGNED_LINE.as_bytes() {
            if signatures.is_empty() {
                return malformed(format!(
                    "line {number}: `{SIGNED_LINE}` comes before any signature line: the \
                     update is not signed"
                ));
            }
            body = Some(Vec::new());
            body_line = number + 1;
            continue;
        }
        let sig = parse_signature_line(&line, number)?;
        if let Some(first) = signatures.iter().find(|s| s.key_id == sig.key_id) {
            return malformed(format!(
                "line {number}: key {} already signed on line {}; a key signs an update once",
                sig.key_id, first.line
            ));
        }
        if signatures.len() == MAX_SIGNATURES {
            return malformed(format!(
                "line {number}: more than {MAX_SIGNATURES} signature lines"
            ));
        }
        signatures.push(sig);
    }
}

/// A signature line, as bundles have them.
fn parse_signature_line(line: &[u8], number: usize) -> Result<SignatureLine, UpdateError> {
    crate::format::parse_signature_line(line, number).map_err(|m| UpdateError::Malformed(m.0))
}

/// k of n over `message`, as bundles do: a bad signature by a trusted key refuses;
/// signatures by keys the store does not hold are ignored.
fn check_signatures(
    signatures: &[SignatureLine],
    message: &[u8],
    trust: &TrustStore,
) -> Result<Vec<KeyId>, UpdateError> {
    let mut signers: Vec<KeyId> = Vec::new();
    let mut untrusted = Vec::new();
    for line in signatures {
        match trust.find(&line.key_id) {
            None => untrusted.push(line.key_id),
            Some(key) => {
                key.key
                    .verify_strict(message, &line.signature)
                    .map_err(|_| UpdateError::BadSignature(key.id))?;
                if !signers.contains(&key.id) {
                    signers.push(key.id);
                }
            }
        }
    }
    if signers.is_empty() && !untrusted.is_empty() {
        return Err(UpdateError::UnknownKey { keys: untrusted });
    }
    if signers.len() < trust.required() {
        return Err(UpdateError::TooFewSignatures {
            have: signers.len(),
            need: trust.required(),
        });
    }
    Ok(signers)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    update: RawUpdate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawUpdate {
    version: String,
    board: String,
    created: toml::value::Datetime,
    uki_len: i64,
    uki_sha256: String,
    root_len: i64,
    root_sha256: String,
    verity_root: String,
    verity_data_blocks: i64,
    verity_hash_offset: i64,
    verity_salt: String,
}

/// Parses a signed header body (the `--- payload ---` line included). Call it only on a
/// body whose signatures are checked, or say that you did not. `first_line` is the body's
/// line number in the file, for messages.
pub fn parse_body(body: &[u8], first_line: usize) -> Result<UpdateInfo, UpdateError> {
    let separator = format!("{PAYLOAD_LINE}\n");
    let Some(table) = body.strip_suffix(separator.as_bytes()) else {
        return malformed(format!("the header has no `{PAYLOAD_LINE}` line"));
    };
    let Ok(text) = std::str::from_utf8(table) else {
        return malformed(format!(
            "the [update] table (from line {first_line}) is not UTF-8 text"
        ));
    };
    let raw: RawHeader = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(first_line, |s| {
            first_line + crate::line_col(text, s.start).0 - 1
        });
        UpdateError::Malformed(format!(
            "line {line}: {}",
            e.message().trim_end().replace('\n', "; ")
        ))
    })?;
    let u = raw.update;
    let where_ = format!("[update] (lines {first_line}-{})", {
        first_line + text.lines().count().saturating_sub(1)
    });
    let bad = |m: String| UpdateError::Malformed(format!("{where_}: {m}"));
    let created = crate::parse_rfc3339(&u.created.to_string())
        .map_err(|e| bad(format!("created: {e}; write it with an offset, e.g. …Z")))?;
    let count = |what: &str, v: i64| {
        u64::try_from(v).map_err(|_| bad(format!("{what} = {v}: a count cannot be negative")))
    };
    let digest = |what: &str, v: &str| {
        crate::unhex::<32>(v).ok_or_else(|| {
            bad(format!(
                "{what} {} is not a SHA-256 (64 lowercase hex digits)",
                crate::excerpt(v.as_bytes(), 70)
            ))
        })
    };
    let info = UpdateInfo {
        version: u.version,
        board: u.board,
        created,
        uki_len: count("uki-len", u.uki_len)?,
        uki_sha256: digest("uki-sha256", &u.uki_sha256)?,
        root_len: count("root-len", u.root_len)?,
        root_sha256: digest("root-sha256", &u.root_sha256)?,
        verity_root: u.verity_root,
        verity_data_blocks: count("verity-data-blocks", u.verity_data_blocks)?,
        verity_hash_offset: count("verity-hash-offset", u.verity_hash_offset)?,
        verity_salt: u.verity_salt,
    };
    info.check().map_err(bad)?;
    Ok(info)
}

/// Reads and verifies an update's header from `r`, leaving `r` at the first payload
/// byte: at most `max_header` bytes are read (`too-large` past that; [`MAX_HEADER`] is
/// a good value), the envelope is parsed strictly (`malformed`), every signature by a
/// trusted key is checked with `verify_strict` over `SIGNING_PREFIX ‖ body` and the
/// distinct trusted signers must reach the store's threshold (`bad-signature`,
/// `unknown-key`, `too-few-signatures`) — all before the TOML is parsed; then the
/// `[update]` table (`malformed`). Returns what the header says and the key ids of the
/// trusted signers.
///
/// It does not judge the board: call [`UpdateInfo::check_board`]. Nor the payload: copy
/// each part with [`copy_part`] (UKI first, then root) and then [`check_end`].
pub fn read_header(
    r: &mut impl BufRead,
    trust: &TrustStore,
    max_header: usize,
) -> Result<(UpdateInfo, Vec<KeyId>), UpdateError> {
    let envelope = read_envelope(r, max_header)?;
    let signers = check_signatures(&envelope.signatures, &signed_message(&envelope.body), trust)?;
    let info = parse_body(&envelope.body, envelope.body_line)?;
    Ok((info, signers))
}

/// A header read WITHOUT checking any signature (for `gkctl update-info` without a
/// trust store).
#[derive(Clone, Debug)]
pub struct Unverified {
    pub info: UpdateInfo,
    /// The key ids the signature lines claim; not checked.
    pub claimed_signers: Vec<KeyId>,
    pub header_len: usize,
}

/// What a header says, WITHOUT checking any signature. `r` is left at the payload.
pub fn read_header_unverified(
    r: &mut impl BufRead,
    max_header: usize,
) -> Result<Unverified, UpdateError> {
    let envelope = read_envelope(r, max_header)?;
    let info = parse_body(&envelope.body, envelope.body_line)?;
    Ok(Unverified {
        info,
        claimed_signers: envelope.signatures.iter().map(|s| s.key_id).collect(),
        header_len: envelope.header_len,
    })
}

/// Copies exactly `part.len` bytes from `r` to `out`, hashing them, and fails at the end
/// unless they are all there (`truncated`) and their SHA-256 is `part.sha256`
/// (`bad-digest`). Read and write errors are `io`. Everything written before a failure
/// is to be thrown away: do not make anything of it bootable unless this returns `Ok`.
pub fn copy_part(r: &mut impl Read, part: &Part, out: &mut impl Write) -> Result<(), UpdateError> {
    copy_part_with_progress(r, part, out, &mut |_| {})
}

/// [`copy_part`], calling `progress` with the bytes copied so far after every chunk
/// (1 MiB), for a console line.
pub fn copy_part_with_progress(
    r: &mut impl Read,
    part: &Part,
    out: &mut impl Write,
    progress: &mut dyn FnMut(u64),
) -> Result<(), UpdateError> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(part.len).unwrap_or(CHUNK)).max(1)];
    let mut done = 0u64;
    while done < part.len {
        let want = buf
            .len()
            .min(usize::try_from(part.len - done).unwrap_or(usize::MAX));
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(UpdateError::Truncated {
                    part: part.name,
                    expected: part.len,
                    got: done,
                })
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(UpdateError::Io {
                    what: format!("reading the update's {} part", part.name),
                    source: e,
                })
            }
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(UpdateError::io(format!(
            "writing the update's {} part",
            part.name
        )))?;
        done += n as u64;
        progress(done);
    }
    let got: [u8; 32] = hasher.finalize().into();
    if got != part.sha256 {
        return Err(UpdateError::BadDigest {
            part: part.name,
            expected: crate::hex(&part.sha256),
            got: crate::hex(&got),
        });
    }
    Ok(())
}

/// Fails (`malformed`) when anything follows the payload: a file with bytes appended is
/// not the file that was signed.
pub fn check_end(r: &mut impl Read) -> Result<(), UpdateError> {
    let mut byte = [0u8; 1];
    loop {
        match r.read(&mut byte) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                return malformed(
                    "bytes follow the end of the payload (the file was appended to)".into(),
                )
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(UpdateError::io("reading the end of the update")(e)),
        }
    }
}

/// Checks the whole payload without writing it anywhere: both parts, then the end.
pub fn verify_payload(r: &mut impl Read, info: &UpdateInfo) -> Result<(), UpdateError> {
    copy_part(r, &info.uki(), &mut io::sink())?;
    copy_part(r, &info.root(), &mut io::sink())?;
    check_end(r)
}

// ---------------------------------------------------------------------------------------
// The image manifest's signature

/// The text of `manifest.json.sig`: one `signature ed25519 <key id> <base64>` line per
/// signer (the bundle's signature-line format), each over `MANIFEST_PREFIX ‖ manifest`.
pub fn sign_manifest(manifest: &[u8], signers: &[&SecretKey]) -> Result<String, String> {
    check_signers(signers)?;
    let message = [MANIFEST_PREFIX, manifest].concat();
    Ok(signers
        .iter()
        .map(|key| signature_line(key, &message))
        .collect())
}

/// Verifies `manifest.json.sig` (`signatures`) over `manifest` against `trust`, k of n
/// like bundles; returns the trusted signers. The signature file is at most
/// [`MAX_SIGNATURES`] lines in the format [`sign_manifest`] writes.
pub fn verify_manifest(
    manifest: &[u8],
    signatures: &[u8],
    trust: &TrustStore,
) -> Result<Vec<KeyId>, UpdateError> {
    if signatures.len() > MAX_SIGNATURES * 160 {
        return Err(UpdateError::TooLarge {
            max: MAX_SIGNATURES * 160,
        });
    }
    if signatures.is_empty() {
        return malformed("the signature file is empty".into());
    }
    let Some(text) = signatures.strip_suffix(b"\n") else {
        return malformed("the signature file does not end with a newline (truncated?)".into());
    };
    let mut lines = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.ends_with(b"\r") {
            return malformed(format!("line {}: ends with CR LF; LF only", i + 1));
        }
        let sig = parse_signature_line(line, i + 1)?;
        if let Some(first) = lines
            .iter()
            .find(|s: &&SignatureLine| s.key_id == sig.key_id)
        {
            return malformed(format!(
                "line {}: key {} already signed on line {}",
                i + 1,
                sig.key_id,
                first.line
            ));
        }
        if lines.len() == MAX_SIGNATURES {
            return malformed(format!("more than {MAX_SIGNATURES} signature lines"));
        }
        lines.push(sig);
    }
    check_signatures(&lines, &[MANIFEST_PREFIX, manifest].concat(), trust)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{key, store, CREATED};
    use proptest::prelude::*;

    const UKI: &[u8] = b"MZ\x90\0 pretend this is a unified kernel image\n";

    fn root() -> Vec<u8> {
        // Two data blocks, then a one-block "hash tree".
        let mut r = vec![0x5au8; 2 * 4096];
        r.extend_from_slice(&[0xa5; 4096]);
        r
    }

    fn info() -> UpdateInfo {
        let root = root();
        UpdateInfo {
            version: "0.2.0+g1a2b3c4".into(),
            board: "qemu-x86_64".into(),
            created: CREATED,
            uki_len: UKI.len() as u64,
            uki_sha256: crate::sha256(UKI),
            root_len: root.len() as u64,
            root_sha256: crate::sha256(&root),
            verity_root: "ab".repeat(32),
            verity_data_blocks: 2,
            verity_hash_offset: 8192,
            verity_salt: "00ff".into(),
        }
    }

    fn update(signers: &[u8]) -> Vec<u8> {
        let keys: Vec<SecretKey> = signers.iter().map(|&n| key(n)).collect();
        let refs: Vec<&SecretKey> = keys.iter().collect();
        let mut out = Vec::new();
        write_update(&mut out, &info(), &mut &UKI[..], &mut &root()[..], &refs).unwrap();
        out
    }

    /// The header's length in `file`.
    fn header_len(file: &[u8]) -> usize {
        let at = file
            .windows(PAYLOAD_LINE.len() + 1)
            .position(|w| w == format!("{PAYLOAD_LINE}\n").as_bytes())
            .unwrap();
        at + PAYLOAD_LINE.len() + 1
    }

    /// read_header + both parts + end; the code of the first failure.
    fn read_all(file: &[u8], trust: &TrustStore) -> Result<(UpdateInfo, Vec<KeyId>), UpdateError> {
        let mut r = file;
        let (info, signers) = read_header(&mut r, trust, MAX_HEADER)?;
        verify_payload(&mut r, &info)?;
        Ok((info, signers))
    }

    fn code(r: Result<(UpdateInfo, Vec<KeyId>), UpdateError>) -> &'static str {
        match r {
            Ok(_) => panic!("accepted"),
            Err(e) => e.code(),
        }
    }

    #[test]
    fn round_trip_streams_to_the_payload() {
        let file = update(&[1, 2]);
        let text = String::from_utf8_lossy(&file[..header_len(&file)]).into_owned();
        assert!(
            text.starts_with("gatekeeper-update 1\nsignature ed25519 "),
            "{text}"
        );
        assert!(text.contains("\n--- signed ---\n[update]\nversion = \"0.2.0+g1a2b3c4\"\n"));
        assert!(
            text.ends_with("verity-salt = \"00ff\"\n--- payload ---\n"),
            "{text}"
        );

        let mut r = &file[..];
        let (got, signers) = read_header(&mut r, &store(&[1, 2], 2), MAX_HEADER).unwrap();
        assert_eq!(got, info());
        assert_eq!(signers, vec![key(1).id(), key(2).id()]);
        assert_eq!(r.len(), UKI.len() + root().len(), "left at the payload");
        got.check_board("qemu-x86_64").unwrap();
        let (mut uki, mut rootfs) = (Vec::new(), Vec::new());
        let mut seen = Vec::new();
        copy_part_with_progress(&mut r, &got.uki(), &mut uki, &mut |n| seen.push(n)).unwrap();
        copy_part(&mut r, &got.root(), &mut rootfs).unwrap();
        check_end(&mut r).unwrap();
        assert_eq!(uki, UKI);
        assert_eq!(rootfs, root());
        assert_eq!(seen.last(), Some(&(UKI.len() as u64)));

        // Through a BufReader with a tiny buffer, as the init reads a file: the same.
        let mut br = io::BufReader::with_capacity(7, &file[..]);
        let (again, _) = read_header(&mut br, &store(&[1], 1), MAX_HEADER).unwrap();
        assert_eq!(again, info());
        verify_payload(&mut br, &again).unwrap();

        // The unverified reader says the same, and who claims to have signed.
        let u = read_header_unverified(&mut &file[..], MAX_HEADER).unwrap();
        assert_eq!(u.info, info());
        assert_eq!(u.claimed_signers, vec![key(1).id(), key(2).id()]);
        assert_eq!(u.header_len, header_len(&file));

        // The payload-size helper.
        assert_eq!(info().payload_len(), (UKI.len() + root().len()) as u64);
        assert_eq!(
            measure(&mut &UKI[..]).unwrap(),
            (UKI.len() as u64, crate::sha256(UKI))
        );
    }

    #[test]
    fn writing_checks_its_inputs() {
        let k = key(1);
        let mut out = Vec::new();
        // A part that does not match the info: InvalidData.
        let e = write_update(
            &mut out,
            &info(),
            &mut &b"other"[..],
            &mut &root()[..],
            &[&k],
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        let mut longer = root();
        longer.push(0);
        let e = write_update(
            &mut Vec::new(),
            &info(),
            &mut &UKI[..],
            &mut &longer[..],
            &[&k],
        )
        .unwrap_err();
        assert!(e.to_string().contains("longer than the header's"), "{e}");
        // No signer, a signer twice, a bad info: InvalidInput, nothing written.
        for (signers, i) in [
            (vec![], info()),
            (vec![&k, &k], info()),
            (
                vec![&k],
                UpdateInfo {
                    board: "qemu x86".into(),
                    ..info()
                },
            ),
        ] {
            let mut out = Vec::new();
            let e =
                write_update(&mut out, &i, &mut &UKI[..], &mut &root()[..], &signers).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
            assert!(out.is_empty());
        }
    }

    #[test]
    fn info_rules() {
        let cases: Vec<(UpdateInfo, &str)> = vec![
            (
                UpdateInfo {
                    version: String::new(),
                    ..info()
                },
                "version must be 1 to",
            ),
            (
                UpdateInfo {
                    board: "a\nb".into(),
                    ..info()
                },
                "board",
            ),
            (
                UpdateInfo {
                    uki_len: 0,
                    ..info()
                },
                "uki-len = 0",
            ),
            (
                UpdateInfo {
                    verity_root: "AB".repeat(32),
                    ..info()
                },
                "verity-root",
            ),
            (
                UpdateInfo {
                    verity_salt: "abc".into(),
                    ..info()
                },
                "verity-salt",
            ),
            (
                UpdateInfo {
                    verity_data_blocks: 0,
                    ..info()
                },
                "covers no data",
            ),
            (
                UpdateInfo {
                    verity_data_blocks: 3,
                    ..info()
                },
                "inside the 3 data blocks",
            ),
            (
                UpdateInfo {
                    verity_hash_offset: 8193,
                    ..info()
                },
                "not a multiple of 4096",
            ),
            (
                UpdateInfo {
                    verity_hash_offset: 12288,
                    ..info()
                },
                "not inside the root image",
            ),
            (
                UpdateInfo {
                    verity_data_blocks: u64::MAX,
                    ..info()
                },
                "inside the",
            ),
        ];
        for (i, expect) in cases {
            let e = i.check().unwrap_err();
            assert!(e.contains(expect), "{expect}: {e}");
        }
        let mut empty_salt = info();
        empty_salt.verity_salt.clear();
        assert!(empty_salt.check().is_ok());
    }

    #[test]
    fn every_refusal_has_its_code() {
        let file = update(&[1]);
        // Wrong board.
        let (i, _) = read_all(&file, &store(&[1], 1)).unwrap();
        let e = i.check_board("nanopi-r4s").unwrap_err();
        assert_eq!(e.code(), "wrong-board");
        assert_eq!(
            e.to_string(),
            "the update is for board \"qemu-x86_64\", but this box is \"nanopi-r4s\""
        );
        // Unknown key, too few signatures, threshold met with an untrusted extra.
        let e = read_all(&file, &store(&[2], 1)).unwrap_err();
        assert!(matches!(&e, UpdateError::UnknownKey { keys } if keys == &[key(1).id()]));
        let e = read_all(&file, &store(&[1, 2], 2)).unwrap_err();
        assert!(
            matches!(e, UpdateError::TooFewSignatures { have: 1, need: 2 }),
            "{e}"
        );
        let (_, signers) = read_all(&update(&[9, 1]), &store(&[1], 1)).unwrap();
        assert_eq!(signers, vec![key(1).id()]);
        // Too large: a header limit smaller than the header, and a stream of garbage
        // with no newline (read no further than the limit).
        let e = read_header(&mut &file[..], &store(&[1], 1), 100).unwrap_err();
        assert_eq!(e.code(), "too-large");
        let mut endless = io::repeat(b'x');
        let mut br = io::BufReader::new(&mut endless);
        let e = read_header(&mut br, &store(&[1], 1), MAX_HEADER).unwrap_err();
        assert!(matches!(e, UpdateError::TooLarge { max: MAX_HEADER }));
        // Bad signature: a valid signature of another body by a trusted key.
        let other = {
            let k = key(1);
            let mut i = info();
            i.version = "0.3.0".into();
            let mut out = Vec::new();
            write_update(&mut out, &i, &mut &UKI[..], &mut &root()[..], &[&k]).unwrap();
            out
        };
        let line = |f: &[u8]| {
            String::from_utf8_lossy(f)
                .lines()
                .nth(1)
                .unwrap()
                .to_string()
        };
        let forged = String::from_utf8_lossy(&file)
            .replacen(&line(&file), &line(&other), 1)
            .into_bytes();
        assert!(matches!(
            read_all(&forged, &store(&[1], 1)).unwrap_err(),
            UpdateError::BadSignature(id) if id == key(1).id()
        ));
        // Malformed, with messages that say what.
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "the file is empty"),
            (
                b"gatekeeper-update 2\n".to_vec(),
                "version \"2\" is not supported",
            ),
            (b"gatekeeper-bundle 1\n".to_vec(), "this is a policy bundle"),
            (
                b"gatekeeper-update 1\n--- signed ---\n".to_vec(),
                "not signed",
            ),
            (
                String::from_utf8_lossy(&file)
                    .replace('\n', "\r\n")
                    .into_bytes(),
                "line 1 ends with CR LF",
            ),
            ([BOM, &file].concat(), "byte-order mark"),
            (
                String::from_utf8_lossy(&file)
                    .replacen("signature ed25519", "signature ed448", 1)
                    .into_bytes(),
                "ed448",
            ),
        ];
        for (bytes, expect) in cases {
            let e = read_all(&bytes, &store(&[1], 1)).unwrap_err();
            assert_eq!(e.code(), "malformed", "{expect}: {e}");
            assert!(e.to_string().contains(expect), "{expect}: {e}");
        }
        // Two signatures by the same key.
        let text = String::from_utf8_lossy(&file).into_owned();
        let l = line(&file);
        let twice = text.replacen(&l, &format!("{l}\n{l}"), 1);
        let e = read_all(twice.as_bytes(), &store(&[1], 1)).unwrap_err();
        assert!(e.to_string().contains("already signed on line 2"), "{e}");
        // Anything after the payload.
        let mut appended = file.clone();
        appended.push(0);
        assert_eq!(code(read_all(&appended, &store(&[1], 1))), "malformed");
        // The codes are listed.
        let all = [
            UpdateError::Malformed(String::new()),
            UpdateError::TooLarge { max: 0 },
            UpdateError::BadSignature(key(1).id()),
            UpdateError::UnknownKey { keys: vec![] },
            UpdateError::TooFewSignatures { have: 0, need: 1 },
            UpdateError::WrongBoard {
                update: String::new(),
                board: String::new(),
            },
            UpdateError::Truncated {
                part: "uki",
                expected: 1,
                got: 0,
            },
            UpdateError::BadDigest {
                part: "uki",
                expected: String::new(),
                got: String::new(),
            },
            UpdateError::Io {
                what: String::new(),
                source: io::Error::other("x"),
            },
        ];
        let codes: Vec<&str> = all.iter().map(UpdateError::code).collect();
        assert_eq!(codes, UpdateError::CODES);
    }

    #[test]
    fn a_signed_body_that_does_not_parse_is_malformed_only_after_its_signature() {
        let k = key(1);
        let body = b"[update]\nversion = \"1\"\n--- payload ---\n".to_vec();
        let mut file = format!(
            "{MAGIC}\n{}{SIGNED_LINE}\n",
            signature_line(&k, &signed_message(&body))
        )
        .into_bytes();
        file.extend_from_slice(&body);
        let e = read_header(&mut &file[..], &store(&[1], 1), MAX_HEADER).unwrap_err();
        assert_eq!(e.code(), "malformed");
        assert!(
            e.to_string().contains("line 4: missing field `board`"),
            "{e}"
        );
        let n = file.len();
        file[n - 20] ^= 1;
        let e = read_header(&mut &file[..], &store(&[1], 1), MAX_HEADER).unwrap_err();
        assert_eq!(e.code(), "bad-signature");
        // A signed table with an unknown key, or a negative length.
        for (table, expect) in [
            ("serial = 3\n", "unknown field `serial`"),
            ("", "uki-len = -5"),
        ] {
            let text = String::from_utf8(body_bytes(&info())).unwrap();
            let text = if table.is_empty() {
                text.replace(&format!("uki-len = {}", UKI.len()), "uki-len = -5")
            } else {
                text.replace("[update]\n", &format!("[update]\n{table}"))
            };
            let mut file = format!(
                "{MAGIC}\n{}{SIGNED_LINE}\n",
                signature_line(&k, &signed_message(text.as_bytes()))
            )
            .into_bytes();
            file.extend_from_slice(text.as_bytes());
            let e = read_header(&mut &file[..], &store(&[1], 1), MAX_HEADER).unwrap_err();
            assert!(e.to_string().contains(expect), "{expect}: {e}");
        }
    }

    #[test]
    fn every_flipped_header_byte_is_refused() {
        let file = update(&[1, 2]);
        let trust = store(&[1, 2], 2);
        let end = header_len(&file);
        let body_at = file
            .windows(SIGNED_LINE.len() + 1)
            .position(|w| w == format!("{SIGNED_LINE}\n").as_bytes())
            .unwrap()
            + SIGNED_LINE.len()
            + 1;
        for i in 0..end {
            for bit in [0x01u8, 0x80] {
                let mut t = file.clone();
                t[i] ^= bit;
                let c = code(read_all(&t, &trust));
                // Inside the table (not the newline before the payload line, nor that line):
                // whatever the change, the signature fails.
                if i >= body_at && i < end - (PAYLOAD_LINE.len() + 2) {
                    assert_eq!(c, "bad-signature", "byte {i} ^ {bit:#x}");
                } else {
                    assert!(
                        [
                            "malformed",
                            "bad-signature",
                            "too-few-signatures",
                            "too-large"
                        ]
                        .contains(&c),
                        "byte {i} ^ {bit:#x}: {c}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_flipped_payload_byte_is_found_by_the_copy() {
        let file = update(&[1]);
        let start = header_len(&file);
        let trust = store(&[1], 1);
        for (i, part) in [
            (start, "uki"),
            (start + UKI.len() - 1, "uki"),
            (start + UKI.len(), "root"),
            (file.len() - 1, "root"),
        ] {
            let mut t = file.clone();
            t[i] ^= 0x40;
            let mut r = &t[..];
            // The header still verifies: the payload is not in it.
            let (info, _) = read_header(&mut r, &trust, MAX_HEADER).unwrap();
            let e = verify_payload(&mut r, &info).unwrap_err();
            assert!(
                matches!(&e, UpdateError::BadDigest { part: p, .. } if *p == part),
                "{i}: {e}"
            );
            assert!(e.to_string().contains("tampered"), "{e}");
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let file = update(&[1]);
        let trust = store(&[1], 1);
        let end = header_len(&file);
        // Every length inside the header; in the payload, its edges and a stride (each
        // try checks a signature, which is slow in a debug build).
        let payload = end..file.len();
        let lengths = (0..end).chain(payload.clone().step_by(97)).chain([
            end + UKI.len() - 1,
            end + UKI.len(),
            end + UKI.len() + 1,
            file.len() - 1,
        ]);
        for len in lengths {
            let e = read_all(&file[..len], &trust).unwrap_err();
            if len < end {
                assert_eq!(e.code(), "malformed", "{len}: {e}");
            } else {
                let part = if len < end + UKI.len() { "uki" } else { "root" };
                assert!(
                    matches!(&e, UpdateError::Truncated { part: p, .. } if *p == part),
                    "{len}: {e}"
                );
            }
        }
    }

    #[test]
    fn manifest_signatures() {
        let manifest = br#"{"version":"0.2.0","board":"qemu-x86_64"}"#;
        let (a, b) = (key(1), key(2));
        let sig = sign_manifest(manifest, &[&a, &b]).unwrap();
        assert_eq!(sig.lines().count(), 2);
        assert_eq!(
            verify_manifest(manifest, sig.as_bytes(), &store(&[1, 2], 2)).unwrap(),
            vec![a.id(), b.id()]
        );
        let mut changed = manifest.to_vec();
        changed[3] ^= 1;
        let e = verify_manifest(&changed, sig.as_bytes(), &store(&[1], 1)).unwrap_err();
        assert_eq!(e.code(), "bad-signature");
        let e = verify_manifest(manifest, sig.as_bytes(), &store(&[3], 1)).unwrap_err();
        assert_eq!(e.code(), "unknown-key");
        let one = sign_manifest(manifest, &[&a]).unwrap();
        let e = verify_manifest(manifest, one.as_bytes(), &store(&[1, 2], 2)).unwrap_err();
        assert_eq!(e.code(), "too-few-signatures");
        for bad in [&b""[..], b"garbage\n", &one.as_bytes()[..one.len() - 1]] {
            let e = verify_manifest(manifest, bad, &store(&[1], 1)).unwrap_err();
            assert_eq!(e.code(), "malformed", "{e}");
        }
        // An update signature is not a manifest signature (domain separation): sign the
        // same bytes as an update body, and it does not verify as a manifest.
        let as_update = signature_line(&a, &signed_message(manifest));
        let e = verify_manifest(manifest, as_update.as_bytes(), &store(&[1], 1)).unwrap_err();
        assert_eq!(e.code(), "bad-signature");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No byte string panics the header reader, and only the one signed body passes.
        #[test]
        fn no_bytes_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let trust = store(&[1], 1);
            let r = read_header(&mut &bytes[..], &trust, 512);
            prop_assert!(r.is_err());
            let _ = read_header_unverified(&mut &bytes[..], 512);
            let _ = verify_manifest(&bytes, &bytes, &trust);
        }

        /// A real header prefix followed by anything: no panic.
        #[test]
        fn mutated_headers_do_not_panic(
            cut in 0usize..400,
            tail in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let file = update(&[1]);
            let mut bytes = file[..cut.min(file.len())].to_vec();
            bytes.extend_from_slice(&tail);
            let trust = store(&[1], 1);
            if let Ok((info, _)) = read_header(&mut &bytes[..], &trust, MAX_HEADER) {
                prop_assert_eq!(info, self::info());
            }
        }
    }
}
