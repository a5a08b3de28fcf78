//! The audit log: one JSON object per line (`audit.jsonl` in the state directory), each
//! naming the SHA-256 of the line before it, so that an edit, a deletion or a reordering
//! breaks the chain at a line that can be named.
//!
//! ```json
//! {"time":"2026-11-22T06:01:02Z","digest":"…64 hex…","serial":7,"signers":["1a2b3c4d5e6f7081"],
//!  "source":"inbox","outcome":"refused","reason":"rollback: serial 7 is not above 9, …","prev":"…64 hex…"}
//! ```
//!
//! `prev` is the lowercase hex SHA-256 of the previous line's bytes *including* its
//! final `\n` (so `sed -n 3p audit.jsonl | sha256sum` gives line 4's `prev`), and 64
//! zeros on the first line. The state directory's manifest records how many entries the
//! log has and the hash of the last one (the head), so that removing lines from the end
//! is detected too. This module is pure (bytes in, report out); the files are read and
//! written by [`crate::state`].

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The name of the log in the state directory.
pub const AUDIT_FILE: &str = "audit.jsonl";
/// `prev` of the first entry: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the audit log, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub time: OffsetDateTime,
    /// Hex SHA-256 of the bundle file, when there is one.
    pub digest: Option<String>,
    pub serial: Option<u64>,
    /// Key ids (hex) of the trusted keys that signed.
    pub signers: Vec<String>,
    pub source: String,
    /// accepted, pending, confirmed, reverted, refused, started, …
    pub outcome: String,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    time: String,
    digest: Option<String>,
    serial: Option<u64>,
    signers: Vec<String>,
    source: String,
    outcome: String,
    reason: Option<String>,
    prev: String,
}

/// The hex SHA-256 of a line's bytes (pass them with their final `\n`).
pub fn line_hash(line: &[u8]) -> String {
    crate::hex(&crate::sha256(line))
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The line (with its final `\n`) that records `entry` after the line hashing to `prev`.
pub fn entry_line(entry: &AuditEntry, prev: &str) -> String {
    let line = Line {
        time: crate::rfc3339(entry.time),
        digest: entry.digest.clone(),
        serial: entry.serial,
        signers: entry.signers.clone(),
        source: entry.source.clone(),
        outcome: entry.outcome.clone(),
        reason: entry.reason.clone(),
        prev: prev.to_string(),
    };
    let mut text = serde_json::to_string(&line).unwrap_or_else(|e| {
        // Serializing plain strings and numbers cannot fail; say so if it ever does.
        format!("{{\"error\":{:?}}}", e.to_string())
    });
    text.push('\n');
    text
}

fn parse_line(bytes: &[u8]) -> Result<(AuditEntry, String), String> {
    let line: Line = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let time = crate::parse_rfc3339(&line.time).map_err(|e| format!("time: {e}"))?;
    if let Some(d) = &line.digest {
        if !is_hex(d, 64) {
            return Err(format!("digest {d:?} is not 64 lowercase hex digits"));
        }
    }
    if let Some(s) = line.signers.iter().find(|s| !is_hex(s, 16)) {
        return Err(format!(
            "signer {s:?} is not a key id (16 lowercase hex digits)"
        ));
    }
    if !is_hex(&line.prev, 64) {
        return Err(format!(
            "prev {:?} is not 64 lowercase hex digits",
            line.prev
        ));
    }
    Ok((
        AuditEntry {
            time,
            digest: line.digest,
            serial: line.serial,
            signers: line.signers,
            source: line.source,
            outcome: line.outcome,
            reason: line.reason,
        },
        line.prev,
    ))
}

/// One line of the log, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// 1-based line number.
    pub line: usize,
    /// The entry, or why the line is not one.
    pub entry: Result<AuditEntry, String>,
    /// The line's `prev` (empty when the line does not parse).
    pub prev: String,
    /// The hex SHA-256 of the line's bytes with its `\n`.
    pub hash: String,
}

/// The first place the chain is broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditBreak {
    /// 1-based line number (one past the last line when lines are missing at the end).
    pub line: usize,
    pub what: String,
}

/// What the manifest says about the log: the number of entries and the last one's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditHead {
    pub entries: u64,
    pub head: String,
}

impl Default for AuditHead {
    fn default() -> Self {
        AuditHead {
            entries: 0,
            head: GENESIS.to_string(),
        }
    }
}

/// The result of checking a log against its head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// Every complete line, in order (`records.len()` is `entries`).
    pub records: Vec<AuditRecord>,
    /// The number of complete lines in the log.
    pub entries: usize,
    /// The first broken link, if any.
    pub broken: Option<AuditBreak>,
    /// Complete, well-chained entries after the recorded head: appends whose manifest
    /// update a crash cut off (the state directory takes them in at its next start).
    pub unacknowledged: usize,
    /// Bytes of a last line with no `\n`: an append cut by a crash (removed at the
    /// next start when it follows the recorded head).
    pub torn_tail: usize,
    /// What the manifest recorded (`None`: checked without one).
    pub head: Option<AuditHead>,
}

impl AuditReport {
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }

    /// The entries that parsed, in order.
    pub fn valid_entries(&self) -> impl Iterator<Item = &AuditEntry> {
        self.records.iter().filter_map(|r| r.entry.as_ref().ok())
    }

    /// Hash and count of the whole chain (every complete line), when it is intact.
    pub fn chain_end(&self) -> AuditHead {
        AuditHead {
            entries: self.records.len() as u64,
            head: self
                .records
                .last()
                .map_or(GENESIS.to_string(), |r| r.hash.clone()),
        }
    }
}

/// Checks a log's bytes: every line an entry, every `prev` the hash of the line before,
/// and — when `head` is given — the recorded head among them.
pub fn verify_log(log: &[u8], head: Option<&AuditHead>) -> AuditReport {
    let mut records = Vec::new();
    let mut broken: Option<AuditBreak> = None;
    let mut set_broken = |line: usize, what: String| {
        if broken.is_none() {
            broken = Some(AuditBreak { line, what });
        }
    };
    let mut expected = GENESIS.to_string();
    let mut pos = 0;
    while let Some(len) = log[pos..].iter().position(|&b| b == b'\n') {
        let number = records.len() + 1;
        let bytes = &log[pos..pos + len + 1];
        pos += len + 1;
        let hash = line_hash(bytes);
        let (entry, prev) = match parse_line(&bytes[..len]) {
            Ok((entry, prev)) => (Ok(entry), prev),
            Err(e) => {
                set_broken(number, format!("not an audit entry ({e})"));
                (Err(e), String::new())
            }
        };
        if entry.is_ok() && prev != expected {
            set_broken(
                number,
                if number == 1 {
                    format!(
                        "the first entry's prev is {prev}, not 64 zeros: entries before it \
                         were removed"
                    )
                } else {
                    format!(
                        "prev is {prev}, but line {} hashes to {expected}: line {} was \
                         changed, or lines were removed or reordered here",
                        number - 1,
                        number - 1
                    )
                },
            );
        }
        expected = hash.clone();
        records.push(AuditRecord {
            line: number,
            entry,
            prev,
            hash,
        });
    }
    let torn_tail = log.len() - pos;
    let mut unacknowledged = 0;
    if let Some(h) = head {
        let n = usize::try_from(h.entries).unwrap_or(usize::MAX);
        if records.len() < n {
            set_broken(
                records.len() + 1,
                format!(
                    "the log ends after {} entr{}, but state.toml records {} (the last \
                     hashing to {}): entries were removed from the end",
                    records.len(),
                    if records.len() == 1 { "y" } else { "ies" },
                    h.entries,
                    h.head
                ),
            );
        } else {
            let at = if n == 0 {
                GENESIS.to_string()
            } else {
                records[n - 1].hash.clone()
            };
            if at != h.head {
                set_broken(
                    n.max(1),
                    format!(
                        "state.toml records entry {n} as hashing to {}, but it hashes to \
                         {at}: the entry was changed",
                        h.head
                    ),
                );
            }
            unacknowledged = records.len() - n;
        }
    }
    if broken.is_some() {
        unacknowledged = 0;
    }
    AuditReport {
        entries: records.len(),
        records,
        broken,
        unacknowledged,
        torn_tail,
        head: head.cloned(),
    }
}
