//! The bundle file.
//!
//! ```text
//! gatekeeper-bundle 1                                   magic line
//! signature ed25519 <16 hex> <88 base64>                one per signer, 1 to 16
//! --- signed ---                                        end of the envelope
//! [bundle]                                              ┐
//! serial = 42                                           │ the signed body: every byte
//! created = 2026-11-22T06:00:00Z                        │ from here to the end of the
//! …                                                     │ file, signed as
//! --- policy ---                                        │ SIGNING_PREFIX ‖ body
//! <the policy TOML, byte for byte>                      ┘
//! ```
//!
//! The envelope (magic, signature lines, `--- signed ---`) is parsed by
//! [`parse_envelope`], which reads bytes and lines only — no TOML — and is strict: exact
//! line formats, LF line ends, no byte-order mark, no duplicate key ids, at most
//! [`MAX_SIGNATURES`] signatures, at most [`MAX_BUNDLE_SIZE`] bytes (checked first). The
//! body is parsed ([`parse_body`]) only after its signatures are checked
//! ([`crate::verify::verify`]), except by [`read_unverified`] and [`inspect`], which say so.

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::keys::{self, KeyId};

/// The first line of every bundle.
pub const MAGIC: &str = "gatekeeper-bundle 1";
/// The line that ends the envelope; the signed body starts after it.
pub const SIGNED_LINE: &str = "--- signed ---";
/// The line in the body between the `[bundle]` table and the policy.
pub const POLICY_LINE: &str = "--- policy ---";
/// Signatures are over `SIGNING_PREFIX ‖ body` (domain separation: a gatekeeper
/// signature can never be mistaken for a signature over anything else).
pub const SIGNING_PREFIX: &[u8] = b"gatekeeper-bundle-v1\0";
/// The largest bundle file accepted (1 MiB), checked before anything else.
pub const MAX_BUNDLE_SIZE: usize = 1 << 20;
/// The most signature lines a bundle may carry.
pub const MAX_SIGNATURES: usize = 16;
/// The shortest and longest confirm windows a bundle may ask for.
pub const MIN_CONFIRM_WINDOW: Duration = Duration::from_secs(1);
pub const MAX_CONFIRM_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

const BOM: &[u8] = b"\xef\xbb\xbf";
const SIGNATURE_WORD: &str = "signature";
const ALGORITHM: &str = "ed25519";
/// Base64 (standard alphabet, padded) of 64 bytes.
const SIGNATURE_B64_LEN: usize = 88;

/// What a bundle says about itself (the `[bundle]` table of the signed body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub serial: u64,
    pub created: OffsetDateTime,
    pub expires: Option<OffsetDateTime>,
    /// Device ids the bundle is for; empty: any.
    pub devices: Vec<String>,
    pub site: Option<String>,
    pub comment: Option<String>,
    /// How long a new bundle stays pending before it is confirmed or reverted.
    pub confirm_window: Option<Duration>,
    /// The policy file's name when it was signed (for people).
    pub policy_file: Option<String>,
}

impl Metadata {
    /// Metadata with a serial and a creation time, and nothing else.
    pub fn new(serial: u64, created: OffsetDateTime) -> Metadata {
        Metadata {
            serial,
            created,
            expires: None,
            devices: Vec::new(),
            site: None,
            comment: None,
            confirm_window: None,
            policy_file: None,
        }
    }

    /// The rules every bundle's metadata keeps (checked when building and when
    /// reading): serial ≥ 1, `expires` after `created`, dates within years 0–9999,
    /// names without control characters, the confirm window in whole seconds within
    /// [`MIN_CONFIRM_WINDOW`]..=[`MAX_CONFIRM_WINDOW`].
    pub fn check(&self) -> Result<(), String> {
        if self.serial == 0 {
            return Err("serial = 0: serials start at 1".into());
        }
        if self.serial > i64::MAX as u64 {
            return Err(format!(
                "serial = {}: at most {} (a TOML integer)",
                self.serial,
                i64::MAX
            ));
        }
        let writable = |what: &str, t: OffsetDateTime| {
            let utc = t.to_offset(time::UtcOffset::UTC);
            if (0..=9999).contains(&utc.year()) {
                Ok(())
            } else {
                Err(format!("{what} {t} is outside the years 0000-9999"))
            }
        };
        writable("created", self.created)?;
        if let Some(expires) = self.expires {
            writable("expires", expires)?;
            if expires <= self.created {
                return Err(format!(
                    "expires = {} is not after created = {}",
                    crate::rfc3339(expires),
                    crate::rfc3339(self.created)
                ));
            }
        }
        for device in &self.devices {
            check_name("device id", device)?;
        }
        if let Some(site) = &self.site {
            check_name("site", site)?;
        }
        if let Some(file) = &self.policy_file {
            check_name("policy-file", file)?;
        }
        if let Some(comment) = &self.comment {
            if let Some(c) = comment
                .chars()
                .find(|&c| c.is_control() && c != '\n' && c != '\t')
            {
                return Err(format!("the comment contains the control character {c:?}"));
            }
        }
        if let Some(window) = self.confirm_window {
            if window.subsec_nanos() != 0
                || window < MIN_CONFIRM_WINDOW
                || window > MAX_CONFIRM_WINDOW
            {
                return Err(format!(
                    "confirm-window of {window:?}: a whole number of seconds from {} to {} \
                     is required",
                    MIN_CONFIRM_WINDOW.as_secs(),
                    MAX_CONFIRM_WINDOW.as_secs()
                ));
            }
        }
        Ok(())
    }
}

fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("an empty {what} is not allowed"));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the {what} {value:?} contains the control character {c:?}"
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed bundle: {0}")]
pub struct Malformed(pub String);

/// One `signature ed25519 <key id> <base64>` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureLine {
    pub key_id: KeyId,
    pub signature: ed25519_dalek::Signature,
    /// 1-based line number in the file.
    pub line: usize,
}

/// The envelope of a bundle: its signature lines and the signed body (not parsed).
#[derive(Clone, Debug)]
pub struct Envelope<'a> {
    pub signatures: Vec<SignatureLine>,
    /// Every byte after the `--- signed ---` line, up to the end of the file.
    pub body: &'a [u8],
    /// Byte offset of the body in the file.
    pub body_offset: usize,
    /// 1-based line number of the body's first line in the file.
    pub body_line: usize,
    /// Byte offset of the `--- signed ---` line (where cosign inserts a line).
    pub signed_line_offset: usize,
}

/// Strictly parses the envelope; reads no TOML and checks no signature.
pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope<'_>, Malformed> {
    if bytes.len() > MAX_BUNDLE_SIZE {
        return bad(format!(
            "the file is {} bytes; at most {MAX_BUNDLE_SIZE} are accepted",
            bytes.len()
        ));
    }
    if bytes.is_empty() {
        return bad("the file is empty; not a gatekeeper bundle".into());
    }
    if bytes.starts_with(BOM) {
        return bad(
            "the file starts with a byte-order mark (EF BB BF): it was re-saved by an \
             editor; bundles are written by gkctl and must not be edited"
                .into(),
        );
    }
    let mut pos = 0;
    let mut number = 0;
    let mut signatures: Vec<SignatureLine> = Vec::new();
    loop {
        number += 1;
        let start = pos;
        let Some(len) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            return bad(if number == 1 {
                format!(
                    "not a gatekeeper bundle (no line `{MAGIC}`; found {})",
                    crate::excerpt(bytes, 40)
                )
            } else {
                format!(
                    "the file ends at line {number}, inside the signature lines, before \
                     `{SIGNED_LINE}` (truncated?)"
                )
            });
        };
        let line = &bytes[pos..pos + len];
        pos += len + 1;
        if line.ends_with(b"\r") {
            return bad(format!(
                "line {number} ends with CR LF: the file's line endings were converted \
                 (an editor, a Windows copy, a mail program); bundle lines end with LF only, \
                 and any change breaks the signatures"
            ));
        }
        if number == 1 {
            if line == MAGIC.as_bytes() {
                continue;
            }
            if let Some(version) = line.strip_prefix(b"gatekeeper-bundle ") {
                return bad(format!(
                    "line 1: bundle format version {} is not supported (this gatekeeper \
                     reads version 1)",
                    crate::excerpt(version, 20)
                ));
            }
            let hint = if line.starts_with(b"schema")
                || line.starts_with(b"[")
                || line.starts_with(b"#")
            {
                " (this looks like a policy file: make a bundle of it with `gkctl sign`)"
            } else {
                ""
            };
            return bad(format!(
                "line 1: not a gatekeeper bundle (expected `{MAGIC}`, found {}){hint}",
                crate::excerpt(line, 40)
            ));
        }
        if line == SIGNED_LINE.as_bytes() {
            if signatures.is_empty() {
                return bad(format!(
                    "line {number}: `{SIGNED_LINE}` comes before any signature line: the \
                     bundle is not signed"
                ));
            }
            if pos == bytes.len() {
                return bad(format!(
                    "nothing follows `{SIGNED_LINE}` on line {number}: the body is missing \
                     (truncated?)"
                ));
            }
            return Ok(Envelope {
                signatures,
                body: &bytes[pos..],
                body_offset: pos,
                body_line: number + 1,
                signed_line_offset: start,
            });
        }
        let sig = parse_signature_line(line, number)?;
        if let Some(first) = signatures.iter().find(|s| s.key_id == sig.key_id) {
            return bad(format!(
                "line {number}: key {} already signed on line {}; a key signs a bundle once",
                sig.key_id, first.line
            ));
        }
        if signatures.len() == MAX_SIGNATURES {
            return bad(format!(
                "line {number}: more than {MAX_SIGNATURES} signature lines"
            ));
        }
        signatures.push(sig);
    }
}

/// `signature ed25519 <key id> <base64>`, line `number` (for messages).
pub(crate) fn parse_signature_line(line: &[u8], number: usize) -> Result<SignatureLine, Malformed> {
    let bad = |m: String| Err(Malformed(format!("line {number}: {m}")));
    let at = |m: String| Malformed(format!("line {number}: {m}"));
    let Ok(text) = std::str::from_utf8(line) else {
        return bad(format!(
            "expected a signature line or `{SIGNED_LINE}`, found non-text bytes"
        ));
    };
    let words: Vec<&str> = text.split(' ').collect();
    if words.first() != Some(&SIGNATURE_WORD) {
        return bad(format!(
            "expected `{SIGNATURE_WORD} {ALGORITHM} <key id> <signature>` or `{SIGNED_LINE}`, \
             found {}",
            crate::excerpt(line, 40)
        ));
    }
    if words.len() != 4 {
        return bad(format!(
            "a signature line is `{SIGNATURE_WORD} {ALGORITHM} <key id> <signature>`, four \
             words separated by single spaces; found {}",
            crate::excerpt(line, 40)
        ));
    }
    if words[1] != ALGORITHM {
        return bad(format!(
            "signature algorithm {} is not supported (only {ALGORITHM})",
            crate::excerpt(words[1].as_bytes(), 20)
        ));
    }
    let key_id: KeyId = words[2].parse().map_err(at)?;
    if words[3].len() != SIGNATURE_B64_LEN {
        return bad(format!(
            "the signature by key {key_id} is {} characters; an Ed25519 signature is {} \
             base64 characters",
            words[3].len(),
            SIGNATURE_B64_LEN
        ));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(words[3])
        .map_err(|e| {
            at(format!(
                "the signature by key {key_id} is not valid base64 ({e})"
            ))
        })?;
    let raw: [u8; 64] = raw
        .try_into()
        .map_err(|_| at(format!("the signature by key {key_id} is not 64 bytes")))?;
    Ok(SignatureLine {
        key_id,
        signature: ed25519_dalek::Signature::from_bytes(&raw),
        line: number,
    })
}

/// The bytes a signature covers: [`SIGNING_PREFIX`] followed by the body.
pub fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_PREFIX.len() + body.len());
    message.extend_from_slice(SIGNING_PREFIX);
    message.extend_from_slice(body);
    message
}

pub(crate) fn signature_line(key_id: KeyId, signature: &ed25519_dalek::Signature) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(signature.to_bytes());
    format!("{SIGNATURE_WORD} {ALGORITHM} {key_id} {b64}\n")
}

/// A TOML basic string, on one line whatever `s` holds.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The signed body for `metadata` and `policy_text`: the `[bundle]` table, the
/// `--- policy ---` line, the policy exactly.
pub fn body_bytes(metadata: &Metadata, policy_text: &str) -> Vec<u8> {
    let mut head = String::from("[bundle]\n");
    let _ = writeln!(head, "serial = {}", metadata.serial);
    let _ = writeln!(head, "created = {}", crate::rfc3339(metadata.created));
    if let Some(expires) = metadata.expires {
        let _ = writeln!(head, "expires = {}", crate::rfc3339(expires));
    }
    if !metadata.devices.is_empty() {
        let devices: Vec<String> = metadata.devices.iter().map(|d| toml_string(d)).collect();
        let _ = writeln!(head, "devices = [{}]", devices.join(", "));
    }
    if let Some(site) = &metadata.site {
        let _ = writeln!(head, "site = {}", toml_string(site));
    }
    if let Some(window) = metadata.confirm_window {
        let _ = writeln!(head, "confirm-window = {}", window.as_secs());
    }
    if let Some(file) = &metadata.policy_file {
        let _ = writeln!(head, "policy-file = {}", toml_string(file));
    }
    if let Some(comment) = &metadata.comment {
        let _ = writeln!(head, "comment = {}", toml_string(comment));
    }
    let _ = writeln!(head, "{POLICY_LINE}");
    let mut body = head.into_bytes();
    body.extend_from_slice(policy_text.as_bytes());
    body
}

fn assemble(signature_lines: &[String], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 160 * signature_lines.len() + 40);
    out.extend_from_slice(MAGIC.as_bytes());
    out.push(b'\n');
    for line in signature_lines {
        out.extend_from_slice(line.as_bytes());
    }
    out.extend_from_slice(SIGNED_LINE.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// A new bundle carrying `policy_text` exactly, signed by `key`.
///
/// Does not judge its input: metadata that breaks [`Metadata::check`] (serial 0, say)
/// is written as it is and the result is refused by verification. Use [`try_build`]
/// to be told instead.
pub fn build(metadata: &Metadata, policy_text: &str, key: &keys::SecretKey) -> Vec<u8> {
    let body = body_bytes(metadata, policy_text);
    let signature = key.key.sign(&signed_message(&body));
    assemble(&[signature_line(key.id(), &signature)], &body)
}

/// [`build`], after checking the metadata and the size limit.
pub fn try_build(
    metadata: &Metadata,
    policy_text: &str,
    key: &keys::SecretKey,
) -> Result<Vec<u8>, Malformed> {
    metadata.check().map_err(Malformed)?;
    let bundle = build(metadata, policy_text, key);
    if bundle.len() > MAX_BUNDLE_SIZE {
        return Err(Malformed(format!(
            "the bundle would be {} bytes; at most {MAX_BUNDLE_SIZE} are accepted",
            bundle.len()
        )));
    }
    Ok(bundle)
}

/// The bundle with one more signature (by `key`), added after the others; the body is
/// not touched.
pub fn cosign(bundle: &[u8], key: &keys::SecretKey) -> Result<Vec<u8>, Malformed> {
    let envelope = parse_envelope(bundle)?;
    let id = key.id();
    if let Some(line) = envelope.signatures.iter().find(|s| s.key_id == id) {
        return Err(Malformed(format!(
            "already signed by key {id} ({}) on line {}",
            key.name, line.line
        )));
    }
    if envelope.signatures.len() >= MAX_SIGNATURES {
        return Err(Malformed(format!(
            "already carries {MAX_SIGNATURES} signatures, the most a bundle may have"
        )));
    }
    let signature = key.key.sign(&signed_message(envelope.body));
    let line = signature_line(id, &signature);
    let at = envelope.signed_line_offset;
    let mut out = Vec::with_capacity(bundle.len() + line.len());
    out.extend_from_slice(&bundle[..at]);
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(&bundle[at..]);
    if out.len() > MAX_BUNDLE_SIZE {
        return Err(Malformed(format!(
            "with one more signature the bundle would be {} bytes; at most {MAX_BUNDLE_SIZE} \
             are accepted",
            out.len()
        )));
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBody {
    bundle: RawMeta,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawMeta {
    serial: toml::Spanned<i64>,
    created: toml::Spanned<toml::value::Datetime>,
    expires: Option<toml::Spanned<toml::value::Datetime>>,
    #[serde(default)]
    devices: Vec<String>,
    site: Option<String>,
    comment: Option<String>,
    confirm_window: Option<toml::Spanned<i64>>,
    policy_file: Option<String>,
}

fn datetime(dt: &toml::value::Datetime) -> Result<OffsetDateTime, String> {
    use toml::value::Offset;
    let (Some(date), Some(t), Some(offset)) = (dt.date, dt.time, dt.offset) else {
        return Err(format!(
            "{dt} is not a full date-time with an offset (write e.g. 2026-11-22T06:00:00Z)"
        ));
    };
    let month = time::Month::try_from(date.month).map_err(|e| format!("{dt}: {e}"))?;
    let day = time::Date::from_calendar_date(i32::from(date.year), month, date.day)
        .map_err(|e| format!("{dt}: {e}"))?;
    let clock = time::Time::from_hms_nano(
        t.hour,
        t.minute,
        t.second.unwrap_or(0),
        t.nanosecond.unwrap_or(0),
    )
    .map_err(|e| format!("{dt}: {e}"))?;
    let offset = match offset {
        Offset::Z => time::UtcOffset::UTC,
        Offset::Custom { minutes } => time::UtcOffset::from_whole_seconds(i32::from(minutes) * 60)
            .map_err(|e| format!("{dt}: {e}"))?,
    };
    Ok(time::PrimitiveDateTime::new(day, clock).assume_offset(offset))
}

/// The parsed body: metadata, the policy text, and where the policy starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    pub metadata: Metadata,
    pub policy_text: String,
    /// 1-based line number in the bundle file of the policy's first line.
    pub policy_line: usize,
}

/// Parses a signed body (call it only on a body whose signatures are checked, or say
/// that you did not). `first_line` is the body's line number in the file, for messages.
pub fn parse_body(body: &[u8], first_line: usize) -> Result<Body, Malformed> {
    let separator = format!("{POLICY_LINE}\n");
    let split = if body.starts_with(separator.as_bytes()) {
        Some(0)
    } else {
        find(body, format!("\n{separator}").as_bytes()).map(|i| i + 1)
    };
    let Some(split) = split else {
        if find(body, format!("{POLICY_LINE}\r\n").as_bytes()).is_some() {
            return bad(format!(
                "the `{POLICY_LINE}` line ends with CR LF; bundle lines end with LF only"
            ));
        }
        return bad(format!(
            "the signed body (from line {first_line}) has no `{POLICY_LINE}` line"
        ));
    };
    let (head, rest) = body.split_at(split);
    let policy = &rest[separator.len()..];
    let head_lines = head.iter().filter(|&&b| b == b'\n').count();
    let policy_line = first_line + head_lines + 1;
    let Ok(head) = std::str::from_utf8(head) else {
        return bad(format!(
            "the [bundle] table (from line {first_line}) is not UTF-8 text"
        ));
    };
    let policy_text = match std::str::from_utf8(policy) {
        Ok(text) => text.to_string(),
        Err(e) => {
            let line = policy[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + policy_line;
            return bad(format!(
                "the policy is not UTF-8 text (line {line} of the bundle)"
            ));
        }
    };
    let at = |offset: usize| first_line + crate::line_col(head, offset).0 - 1;
    let raw: RawBody = toml::from_str(head).map_err(|e| {
        let line = e.span().map_or(first_line, |s| at(s.start));
        let message = e.message().trim_end().replace('\n', "; ");
        if message.contains("missing field `bundle`") || message.contains("expected `bundle`") {
            return Malformed(format!(
                "line {line}: {message}: the signed body is one [bundle] table, then the \
                 line `{POLICY_LINE}`"
            ));
        }
        Malformed(format!("line {line}: {message}"))
    })?;
    let m = raw.bundle;
    let serial = *m.serial.get_ref();
    if serial < 1 {
        return bad(format!(
            "line {}: serial = {serial}: serials start at 1",
            at(m.serial.span().start)
        ));
    }
    let created = datetime(m.created.get_ref())
        .map_err(|e| Malformed(format!("line {}: created: {e}", at(m.created.span().start))))?;
    let expires = match &m.expires {
        None => None,
        Some(e) => Some(
            datetime(e.get_ref())
                .map_err(|msg| Malformed(format!("line {}: expires: {msg}", at(e.span().start))))?,
        ),
    };
    let confirm_window = match &m.confirm_window {
        None => None,
        Some(w) => {
            let secs = *w.get_ref();
            let ok = u64::try_from(secs)
                .ok()
                .map(Duration::from_secs)
                .filter(|d| (MIN_CONFIRM_WINDOW..=MAX_CONFIRM_WINDOW).contains(d));
            match ok {
                Some(d) => Some(d),
                None => {
                    return bad(format!(
                        "line {}: confirm-window = {secs}: from {} to {} seconds",
                        at(w.span().start),
                        MIN_CONFIRM_WINDOW.as_secs(),
                        MAX_CONFIRM_WINDOW.as_secs()
                    ))
                }
            }
        }
    };
    let metadata = Metadata {
        serial: serial as u64,
        created,
        expires,
        devices: m.devices,
        site: m.site,
        comment: m.comment,
        confirm_window,
        policy_file: m.policy_file,
    };
    metadata.check().map_err(|e| {
        Malformed(format!(
            "[bundle] (lines {first_line}-{}): {e}",
            policy_line - 2
        ))
    })?;
    Ok(Body {
        metadata,
        policy_text,
        policy_line,
    })
}

fn bad<T>(message: String) -> Result<T, Malformed> {
    Err(Malformed(message))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A bundle read WITHOUT checking any signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unverified {
    pub metadata: Metadata,
    pub policy_text: String,
    /// 1-based line number of the policy's first line in the bundle file.
    pub policy_line: usize,
    /// The signature lines: key ids claimed, signatures not checked.
    pub signatures: Vec<SignatureLine>,
}

/// Everything a bundle says, WITHOUT checking any signature (for `show` and `diff`).
pub fn inspect(bundle: &[u8]) -> Result<Unverified, Malformed> {
    let envelope = parse_envelope(bundle)?;
    let body = parse_body(envelope.body, envelope.body_line)?;
    Ok(Unverified {
        metadata: body.metadata,
        policy_text: body.policy_text,
        policy_line: body.policy_line,
        signatures: envelope.signatures,
    })
}

/// Metadata and policy text WITHOUT checking any signature (for `show` and `diff`).
pub fn read_unverified(bundle: &[u8]) -> Result<(Metadata, String), Malformed> {
    inspect(bundle).map(|u| (u.metadata, u.policy_text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn malformed(bytes: &[u8]) -> String {
        match inspect(bytes) {
            Err(Malformed(m)) => m,
            Ok(u) => panic!("accepted: {u:?}"),
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let b = bundle(42, &[1]);
        let text = std::str::from_utf8(&b).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "gatekeeper-bundle 1");
        assert!(lines[1].starts_with(&format!("signature ed25519 {} ", key(1).id())));
        assert_eq!(lines[1].len(), "signature ed25519 ".len() + 16 + 1 + 88);
        assert_eq!(lines[2], "--- signed ---");
        assert_eq!(
            &lines[3..12],
            &[
                "[bundle]",
                "serial = 42",
                "created = 2026-11-22T06:00:00Z",
                "expires = 2027-01-31T00:00:00Z",
                "devices = [\"plc-7\", \"plc-8\"]",
                "site = \"press-line\"",
                "confirm-window = 600",
                "policy-file = \"press-line.toml\"",
                "comment = \"quarterly review \\\"Q4\\\"\\nsecond line\"",
            ]
        );
        assert_eq!(lines[12], "--- policy ---");
        assert!(text.ends_with(&format!("--- policy ---\n{POLICY}")));
        let u = inspect(&b).unwrap();
        assert_eq!(u.metadata, metadata(42));
        assert_eq!(u.policy_text, POLICY);
        assert_eq!(u.policy_line, 14);
        assert_eq!(u.signatures.len(), 1);
        assert_eq!(
            read_unverified(&b).unwrap(),
            (metadata(42), POLICY.to_string())
        );
    }

    #[test]
    fn minimal_metadata_round_trips() {
        let m = Metadata::new(1, CREATED);
        let b = try_build(&m, "", &key(1)).unwrap();
        assert_eq!(read_unverified(&b).unwrap(), (m, String::new()));
    }

    #[test]
    fn cosign_appends_a_line_and_keeps_the_body() {
        let one = bundle(3, &[1]);
        let two = cosign(&one, &key(2)).unwrap();
        let e1 = parse_envelope(&one).unwrap();
        let e2 = parse_envelope(&two).unwrap();
        assert_eq!(e1.body, e2.body);
        assert_eq!(e2.signatures.len(), 2);
        assert_eq!(e2.signatures[0], e1.signatures[0]);
        assert_eq!(e2.signatures[1].key_id, key(2).id());
        assert_eq!(e2.signatures[1].line, 3);
        let again = cosign(&two, &key(1)).unwrap_err().0;
        assert!(
            again.contains(&format!("already signed by key {}", key(1).id())),
            "{again}"
        );
        assert!(again.contains("line 2"), "{again}");
        let mut b = one;
        for n in 2..=16 {
            b = cosign(&b, &key(n)).unwrap();
        }
        let full = cosign(&b, &key(17)).unwrap_err().0;
        assert!(full.contains("16 signatures"), "{full}");
    }

    #[test]
    fn envelope_errors_name_the_line() {
        let good = bundle(1, &[1, 2]);
        let text = String::from_utf8(good.clone()).unwrap();
        let sig1 = text.lines().nth(1).unwrap().to_string();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "the file is empty"),
            (
                b"gatekeeper-bundle 1".to_vec(),
                "no line `gatekeeper-bundle 1`",
            ),
            (
                b"schema = 1\n[gatekeeper]\n".to_vec(),
                "this looks like a policy file",
            ),
            (
                b"gatekeeper-bundle 2\n".to_vec(),
                "version \"2\" is not supported",
            ),
            (
                b"Gatekeeper-bundle 1\n".to_vec(),
                "line 1: not a gatekeeper bundle",
            ),
            (
                b"gatekeeper-bundle 1\n--- signed ---\nx".to_vec(),
                "line 2: `--- signed ---` comes before any signature",
            ),
            (
                format!("gatekeeper-bundle 1\n{sig1}\n--- signed ---\n").into_bytes(),
                "nothing follows `--- signed ---` on line 3",
            ),
            (
                format!("gatekeeper-bundle 1\n{sig1}\n").into_bytes(),
                "ends at line 3, inside the signature lines",
            ),
            (
                format!("gatekeeper-bundle 1\n{sig1}\n\n--- signed ---\nx").into_bytes(),
                "line 3: expected `signature ed25519",
            ),
            (
                format!("gatekeeper-bundle 1\n{sig1}\n{sig1}\n--- signed ---\nx").into_bytes(),
                "line 3: key",
            ),
            (
                format!(
                    "gatekeeper-bundle 1\n{}\n--- signed ---\nx",
                    sig1.replace("ed25519", "rsa")
                )
                .into_bytes(),
                "line 2: signature algorithm \"rsa\" is not supported",
            ),
            (
                format!(
                    "gatekeeper-bundle 1\n{}\n--- signed ---\nx",
                    sig1.replacen(' ', "  ", 1)
                )
                .into_bytes(),
                "line 2: a signature line is",
            ),
            (
                format!("gatekeeper-bundle 1\n{} \n--- signed ---\nx", sig1).into_bytes(),
                "four words",
            ),
            (
                format!(
                    "gatekeeper-bundle 1\n{}\n--- signed ---\nx",
                    sig1.to_uppercase()
                        .replace("SIGNATURE ED25519", "signature ed25519")
                )
                .into_bytes(),
                "is not a key id",
            ),
            (
                format!(
                    "gatekeeper-bundle 1\n{}\n--- signed ---\nx",
                    &sig1[..sig1.len() - 2]
                )
                .into_bytes(),
                "is 86 characters",
            ),
            (
                format!(
                    "gatekeeper-bundle 1\n{}*=\n--- signed ---\nx",
                    &sig1[..sig1.len() - 2]
                )
                .into_bytes(),
                "not valid base64",
            ),
            (
                b"gatekeeper-bundle 1\n--- Signed ---\nx".to_vec(),
                "line 2: expected `signature",
            ),
            (
                b"gatekeeper-bundle 1\n\xff\xfe\n".to_vec(),
                "line 2: expected a signature line or `--- signed ---`, found non-text bytes",
            ),
            (
                text.replace('\n', "\r\n").into_bytes(),
                "line 1 ends with CR LF",
            ),
            (
                [b"\xef\xbb\xbf".as_slice(), &good].concat(),
                "byte-order mark",
            ),
        ];
        for (bytes, expect) in cases {
            let m = malformed(&bytes);
            assert!(m.contains(expect), "expected {expect:?} in {m:?}");
        }
        // A duplicate signature is refused even when it is a copy of a valid one.
        let m =
            malformed(format!("gatekeeper-bundle 1\n{sig1}\n{sig1}\n--- signed ---\nx").as_bytes());
        assert!(m.contains("already signed on line 2"), "{m}");
        // More than 16 signature lines.
        let mut many = String::from("gatekeeper-bundle 1\n");
        for n in 1..=17u8 {
            let s = sig1.replace(&key(1).id().to_string(), &key(n).id().to_string());
            many.push_str(&s);
            many.push('\n');
        }
        many.push_str("--- signed ---\nx");
        assert!(malformed(many.as_bytes()).contains("line 18: more than 16 signature lines"));
        // Over the limit, before anything else (even garbage).
        let huge = vec![b'x'; MAX_BUNDLE_SIZE + 1];
        assert!(malformed(&huge).contains("1048577 bytes; at most 1048576"));
    }

    #[test]
    fn body_errors_name_the_line() {
        let head = |extra: &str| {
            format!("[bundle]\nserial = 5\ncreated = 2026-11-22T06:00:00Z\n{extra}--- policy ---\n{POLICY}")
        };
        let cases: Vec<(String, &str)> = vec![
            (head("colour = \"blue\"\n"), "line 7: unknown field `colour`"),
            (head("").replace("serial = 5", "serial = 0"), "line 5: serial = 0: serials start at 1"),
            (head("").replace("serial = 5", "serial = -3"), "line 5: serial = -3"),
            (head("").replace("serial = 5", "serial = \"5\""), "line 5: invalid type"),
            (head("").replace("serial = 5\n", ""), "missing field `serial`"),
            (head("").replace("created = 2026-11-22T06:00:00Z", "created = 2026-11-22T06:00:00"), "line 6: created: 2026-11-22T06:00:00 is not a full date-time with an offset"),
            (head("").replace("created = 2026-11-22T06:00:00Z", "created = 2026-11-22"), "line 6: created"),
            (head("expires = 2026-01-01T00:00:00Z\n"), "expires = 2026-01-01T00:00:00Z is not after created = 2026-11-22T06:00:00Z"),
            (head("confirm-window = 0\n"), "line 7: confirm-window = 0: from 1 to 604800 seconds"),
            (head("confirm-window = 99999999\n"), "confirm-window = 99999999"),
            (head("devices = []\n").replace("devices = []", "devices = [\"\"]"), "an empty device id"),
            (head("site = \"a\\u0001b\"\n"), "control character"),
            (head("[other]\n"), "line 7: unknown field `other`, expected `bundle`: the signed body is one [bundle] table"),
            (head("").replace("[bundle]", "[bundel]"), "line 4: unknown field `bundel`, expected `bundle`: the signed body is one [bundle] table"),
            (head("").replace("--- policy ---", "--- Policy ---"), "has no `--- policy ---` line"),
            (head("").replace("--- policy ---\n", "--- policy ---\r\n"), "ends with CR LF"),
            (head("serial = 6\n"), "line 7: duplicate key"),
            (format!("{POLICY}--- policy ---\n"), "the signed body is one [bundle] table"),
        ];
        for (body, expect) in cases {
            let m = malformed(&with_body(body.as_bytes(), &[1]));
            assert!(m.contains(expect), "expected {expect:?} in {m:?}");
        }
        let mut bad_utf8 = head("").into_bytes();
        bad_utf8.extend_from_slice(b"\n\nname = \"\xff\"\n");
        let m = malformed(&with_body(&bad_utf8, &[1]));
        assert!(
            m.contains("the policy is not UTF-8 text (line 18 of the bundle)"),
            "{m}"
        );
        let m = malformed(&with_body(
            b"[bundle]\ncomment = \"\xff\"\n--- policy ---\n",
            &[1],
        ));
        assert!(m.contains("is not UTF-8"), "{m}");
    }

    #[test]
    fn strings_stay_on_one_line_whatever_they_hold() {
        let mut m = metadata(9);
        m.comment = Some("a\n--- policy ---\nb \\ \" \t é ☃".into());
        m.site = Some("--- policy ---".into());
        m.devices = vec!["\"quoted\"".into(), "back\\slash".into()];
        let b = try_build(&m, POLICY, &key(1)).unwrap();
        assert_eq!(read_unverified(&b).unwrap(), (m, POLICY.to_string()));
    }

    #[test]
    fn try_build_refuses_what_would_not_verify() {
        let mut m = metadata(0);
        assert!(try_build(&m, POLICY, &key(1))
            .unwrap_err()
            .0
            .contains("serial = 0"));
        m.serial = 1;
        m.expires = Some(CREATED);
        assert!(try_build(&m, POLICY, &key(1))
            .unwrap_err()
            .0
            .contains("not after"));
        m.expires = None;
        m.confirm_window = Some(Duration::from_millis(1500));
        assert!(try_build(&m, POLICY, &key(1))
            .unwrap_err()
            .0
            .contains("whole number"));
        m.confirm_window = None;
        m.created = OffsetDateTime::from_unix_timestamp(-70_000_000_000).unwrap();
        assert!(try_build(&m, POLICY, &key(1))
            .unwrap_err()
            .0
            .contains("0000-9999"));
        m.created = CREATED;
        let big = "#".repeat(MAX_BUNDLE_SIZE);
        assert!(try_build(&m, &big, &key(1))
            .unwrap_err()
            .0
            .contains("at most 1048576"));
        // build writes it anyway; it is refused when read.
        assert!(read_unverified(&build(&metadata(0), POLICY, &key(1))).is_err());
    }

    #[test]
    fn offsets_and_fractions_in_dates() {
        let body = "[bundle]\nserial = 5\ncreated = 2026-11-22T08:00:00.5+02:00\n--- policy ---\n";
        let u = inspect(&with_body(body.as_bytes(), &[1])).unwrap();
        assert_eq!(
            u.metadata.created,
            time::macros::datetime!(2026-11-22 06:00:00.5 UTC)
        );
    }
}
