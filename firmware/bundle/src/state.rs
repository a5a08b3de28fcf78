//! The state directory: what a box remembers across restarts and power cuts.
//!
//! ```text
//! STATE/
//!   state.toml          the manifest: current and pending bundle, ratchet, time floor,
//!                       audit head — the only file that changes state, replaced whole
//!   bundles/<sha256>.gkb  bundles by digest, written once, never changed
//!   audit.jsonl         the hash-chained audit log, append-only
//!   lock                held (flock) while a StateDir is open: one owner at a time
//! ```
//!
//! Every transition rewrites `state.toml` with write, fsync, rename, fsync of the
//! directory; a bundle file it names is made durable (write, fsync, rename, fsync)
//! before. A power cut at any point leaves the old manifest or the new one, and the
//! files the old one names are still there: the old state or the new, never a mix. What
//! a cut can leave behind — temporary `.tmp-*` files, a bundle file no manifest names,
//! an audit line appended but not yet counted in the manifest, or half an audit line —
//! is cleaned up (or taken in) by [`StateDir::open`].

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::audit::{self, AUDIT_FILE, GENESIS};
pub use crate::audit::{AuditBreak, AuditEntry, AuditHead, AuditRecord, AuditReport};
use crate::fsutil::{self, step, TMP_PREFIX};

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "state.toml";
/// The directory of stored bundles.
pub const BUNDLES_DIR: &str = "bundles";
/// The lock file's name.
pub const LOCK_FILE: &str = "lock";
const FORMAT: u32 = 1;
const MANIFEST_HEADER: &str =
    "# gatekeeper state: written by gatekeeperd, replaced atomically on every change.\n\
     # Do not edit: the audit log's head below makes edits to audit.jsonl detectable.\n";

/// The state directory's error: which file, what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("state {path}: {what}", path = .path.display())]
pub struct StateError {
    pub path: PathBuf,
    pub what: String,
}

fn error(path: &Path, what: impl Into<String>) -> StateError {
    StateError {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// The anti-rollback ratchet and the time floor, kept across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ratchet {
    pub serial: u64,
    pub time_floor: Option<OffsetDateTime>,
}

/// A bundle applied but not confirmed yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub bytes: Vec<u8>,
    /// Unix time (seconds) at which it reverts unless confirmed.
    pub deadline: i64,
    /// Where it came from (`inbox`, `control`, `bundle`).
    pub source: String,
}

/// The pending apply as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRef {
    /// Hex SHA-256 of the bundle (its file is `bundles/<digest>.gkb`).
    pub digest: String,
    pub deadline: i64,
    pub source: String,
}

/// Everything the manifest says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub ratchet: Ratchet,
    /// Hex SHA-256 of the bundle in force.
    pub current: Option<String>,
    pub pending: Option<PendingRef>,
    pub audit: AuditHead,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawManifest {
    format: u32,
    ratchet: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time_floor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<RawPending>,
    audit: RawAudit,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPending {
    digest: String,
    deadline: i64,
    source: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    entries: u64,
    head: String,
}

fn is_digest(text: &str) -> bool {
    crate::unhex::<32>(text).is_some()
}

impl Manifest {
    fn empty() -> Manifest {
        Manifest {
            ratchet: Ratchet::default(),
            current: None,
            pending: None,
            audit: AuditHead::default(),
        }
    }

    fn to_text(&self) -> Result<String, String> {
        if self.ratchet.serial > i64::MAX as u64 {
            return Err(format!("ratchet {} is too large", self.ratchet.serial));
        }
        let raw = RawManifest {
            format: FORMAT,
            ratchet: self.ratchet.serial,
            time_floor: self.ratchet.time_floor.map(crate::rfc3339),
            current: self.current.clone(),
            pending: self.pending.as_ref().map(|p| RawPending {
                digest: p.digest.clone(),
                deadline: p.deadline,
                source: p.source.clone(),
            }),
            audit: RawAudit {
                entries: self.audit.entries,
                head: self.audit.head.clone(),
            },
        };
        let body = toml::to_string(&raw).map_err(|e| e.to_string())?;
        Ok(format!("{MANIFEST_HEADER}{body}"))
    }

    /// Parses a manifest; `Err` says which line is wrong.
    fn parse(text: &str) -> Result<Manifest, String> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map_or((1, 1), |s| crate::line_col(text, s.start));
            format!("line {line}, column {col}: {}", e.message().trim_end())
        })?;
        let find = |key: &str| {
            text.lines()
                .position(|l| l.trim_start().starts_with(key))
                .map_or(String::new(), |i| format!("line {}: ", i + 1))
        };
        if raw.format != FORMAT {
            return Err(format!(
                "{}format = {}: this gatekeeper reads format {FORMAT} (written by a newer \
                 version?)",
                find("format"),
                raw.format
            ));
        }
        let time_floor = match &raw.time_floor {
            None => None,
            Some(t) => Some(
                crate::parse_rfc3339(t)
                    .map_err(|e| format!("{}time-floor: {e}", find("time-floor")))?,
            ),
        };
        if let Some(c) = &raw.current {
            if !is_digest(c) {
                return Err(format!(
                    "{}current = {c:?} is not a SHA-256 digest (64 lowercase hex digits)",
                    find("current")
                ));
            }
        }
        if let Some(p) = &raw.pending {
            if !is_digest(&p.digest) {
                return Err(format!(
                    "{}pending digest {:?} is not a SHA-256 digest",
                    find("digest"),
                    p.digest
                ));
            }
        }
        if !is_digest(&raw.audit.head) {
            return Err(format!(
                "{}audit head {:?} is not a SHA-256 digest",
                find("head"),
                raw.audit.head
            ));
        }
        if raw.audit.entries == 0 && raw.audit.head != GENESIS {
            return Err(format!(
                "{}audit: 0 entries, but a head that is not 64 zeros",
                find("entries")
            ));
        }
        Ok(Manifest {
            ratchet: Ratchet {
                serial: raw.ratchet,
                time_floor,
            },
            current: raw.current,
            pending: raw.pending.map(|p| PendingRef {
                digest: p.digest,
                deadline: p.deadline,
                source: p.source,
            }),
            audit: AuditHead {
                entries: raw.audit.entries,
                head: raw.audit.head,
            },
        })
    }
}

/// Reads and parses `DIR/state.toml` (`None` if there is none).
fn read_manifest(dir: &Path) -> Result<Option<Manifest>, StateError> {
    let path = dir.join(MANIFEST_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes)
                .map_err(|_| error(&path, "not UTF-8 text: the manifest is damaged"))?;
            Manifest::parse(&text)
                .map(Some)
                .map_err(|e| error(&path, format!("{e} (the manifest is damaged)")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(error(&path, format!("cannot read: {e}"))),
    }
}

fn read_log(dir: &Path) -> Result<Vec<u8>, StateError> {
    let path = dir.join(AUDIT_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(error(&path, format!("cannot read: {e}"))),
    }
}

/// A state directory's audit log, checked against its manifest's head, without opening
/// (or locking, or repairing) the directory: safe while gatekeeperd runs.
pub fn audit_verify(dir: &Path) -> Result<AuditReport, StateError> {
    let manifest = read_manifest(dir)?;
    let log = read_log(dir)?;
    if manifest.is_none() && log.is_empty() && !dir.join(AUDIT_FILE).exists() {
        return Err(error(
            dir,
            format!("no {MANIFEST_FILE} and no {AUDIT_FILE}: not a gatekeeper state directory"),
        ));
    }
    let head = manifest.map(|m| m.audit).unwrap_or_default();
    Ok(audit::verify_log(&log, Some(&head)))
}

/// The entries of a state directory's audit log, in order; fails on the first line
/// that is not an entry (saying which). Does not check the chain: see [`audit_verify`].
pub fn audit_read(dir: &Path) -> Result<Vec<AuditEntry>, StateError> {
    let path = dir.join(AUDIT_FILE);
    let report = audit::verify_log(&read_log(dir)?, None);
    let mut entries = Vec::with_capacity(report.records.len());
    for record in report.records {
        match record.entry {
            Ok(entry) => entries.push(entry),
            Err(e) => {
                return Err(error(
                    &path,
                    format!("line {}: not an audit entry ({e})", record.line),
                ))
            }
        }
    }
    Ok(entries)
}

#[derive(Debug)]
pub struct StateDir {
    pub dir: PathBuf,
    /// The open lock file (its flock keeps other processes out; the mutex keeps this
    /// process's threads from interleaving read-modify-write of the manifest).
    lock: Mutex<File>,
}

impl StateDir {
    /// Opens (creating if needed) a state directory and takes its lock; removes
    /// temporary files and unreferenced bundles a power cut may have left; takes in
    /// audit lines whose manifest update was cut off and removes a torn last line.
    /// Fails, naming the file and line, on a damaged manifest.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        let bundles = dir.join(BUNDLES_DIR);
        fs::create_dir_all(&bundles).map_err(|e| error(&bundles, format!("cannot create: {e}")))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| error(&lock_path, format!("cannot open: {e}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(error(
                    dir,
                    "in use by another process (is another gatekeeperd running with this \
                     --state?)",
                ))
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(error(&lock_path, format!("cannot lock: {e}")))
            }
        }
        let state = StateDir {
            dir: dir.to_path_buf(),
            lock: Mutex::new(lock),
        };
        for d in [dir, bundles.as_path()] {
            remove_temporaries(d)?;
        }
        let manifest = match read_manifest(dir)? {
            Some(m) => m,
            None => {
                let log = read_log(dir)?;
                if !log.is_empty() {
                    return Err(error(
                        &dir.join(MANIFEST_FILE),
                        format!(
                            "is missing, but {AUDIT_FILE} has entries: the state directory \
                             is damaged (or was tampered with); the ratchet cannot be trusted"
                        ),
                    ));
                }
                let m = Manifest::empty();
                state.write_manifest(&m)?;
                m
            }
        };
        for (what, digest) in [
            ("current", manifest.current.as_deref()),
            (
                "pending",
                manifest.pending.as_ref().map(|p| p.digest.as_str()),
            ),
        ] {
            if let Some(d) = digest {
                let path = state.bundle_path(d);
                if !path.is_file() {
                    return Err(error(
                        &dir.join(MANIFEST_FILE),
                        format!(
                            "names {BUNDLES_DIR}/{d}.gkb as the {what} bundle, but the file \
                             is missing"
                        ),
                    ));
                }
            }
        }
        state.recover_audit(manifest)?;
        let guard = state.guard();
        let manifest = state.manifest_locked()?;
        state.collect_garbage(&manifest)?;
        drop(guard);
        Ok(state)
    }

    fn guard(&self) -> MutexGuard<'_, File> {
        // A panic while the lock was held cannot leave the files inconsistent (every
        // change is one rename), so a poisoned mutex is still good to use.
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }

    fn bundle_path(&self, digest: &str) -> PathBuf {
        self.dir.join(BUNDLES_DIR).join(format!("{digest}.gkb"))
    }

    fn manifest_locked(&self) -> Result<Manifest, StateError> {
        read_manifest(&self.dir)?.ok_or_else(|| error(&self.manifest_path(), "is missing"))
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<(), StateError> {
        let path = self.manifest_path();
        let text = manifest.to_text().map_err(|e| error(&path, e))?;
        fsutil::write_atomic(&self.dir, MANIFEST_FILE, text.as_bytes(), 0o644)
            .map_err(|e| error(&path, format!("cannot write: {e}")))
    }

    /// Takes in audit lines appended after the manifest's head (their manifest update
    /// was cut off), and removes a torn last line after it. A log that does not chain
    /// from the head is left as it is, for [`audit_verify`] to report.
    fn recover_audit(&self, mut manifest: Manifest) -> Result<(), StateError> {
        let _guard = self.guard();
        let path = self.dir.join(AUDIT_FILE);
        let log = read_log(&self.dir)?;
        let report = audit::verify_log(&log, Some(&manifest.audit));
        if !report.is_intact() {
            return Ok(());
        }
        if report.torn_tail > 0 {
            let keep = (log.len() - report.torn_tail) as u64;
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| error(&path, format!("cannot open: {e}")))?;
            file.set_len(keep)
                .and_then(|()| file.sync_all())
                .map_err(|e| error(&path, format!("cannot remove a torn last line: {e}")))?;
        }
        if report.unacknowledged > 0 {
            manifest.audit = report.chain_end();
            self.write_manifest(&manifest)?;
        }
        Ok(())
    }

    /// Removes bundle files the manifest does not name.
    fn collect_garbage(&self, manifest: &Manifest) -> Result<(), StateError> {
        let dir = self.dir.join(BUNDLES_DIR);
        let keep: Vec<String> = manifest
            .current
            .iter()
            .chain(manifest.pending.as_ref().map(|p| &p.digest))
            .map(|d| format!("{d}.gkb"))
            .collect();
        let entries = fs::read_dir(&dir).map_err(|e| error(&dir, format!("cannot read: {e}")))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                step().map_err(|e| error(&entry.path(), e.to_string()))?;
                fs::remove_file(entry.path())
                    .map_err(|e| error(&entry.path(), format!("cannot remove: {e}")))?;
            }
        }
        Ok(())
    }

    /// The manifest as it is now.
    pub fn manifest(&self) -> Result<Manifest, StateError> {
        let _guard = self.guard();
        self.manifest_locked()
    }

    pub fn ratchet(&self) -> Result<Ratchet, StateError> {
        Ok(self.manifest()?.ratchet)
    }

    fn read_bundle(&self, digest: &str) -> Result<Vec<u8>, StateError> {
        let path = self.bundle_path(digest);
        let bytes = fs::read(&path).map_err(|e| error(&path, format!("cannot read: {e}")))?;
        let actual = crate::hex(&crate::sha256(&bytes));
        if actual != digest {
            return Err(error(
                &path,
                format!("is damaged: its SHA-256 is {actual}, not the {digest} of its name"),
            ));
        }
        Ok(bytes)
    }

    /// The bundle in force (confirmed), if any.
    pub fn current(&self) -> Result<Option<Vec<u8>>, StateError> {
        let _guard = self.guard();
        match self.manifest_locked()?.current {
            Some(d) => self.read_bundle(&d).map(Some),
            None => Ok(None),
        }
    }

    pub fn pending(&self) -> Result<Option<Pending>, StateError> {
        let _guard = self.guard();
        match self.manifest_locked()?.pending {
            Some(p) => Ok(Some(Pending {
                bytes: self.read_bundle(&p.digest)?,
                deadline: p.deadline,
                source: p.source,
            })),
            None => Ok(None),
        }
    }

    /// Stores a bundle under its digest (durably) unless an intact copy is there.
    fn store_bundle(&self, bytes: &[u8]) -> Result<String, StateError> {
        let digest = crate::hex(&crate::sha256(bytes));
        if self.read_bundle(&digest).is_ok() {
            return Ok(digest);
        }
        let dir = self.dir.join(BUNDLES_DIR);
        fsutil::write_atomic(&dir, &format!("{digest}.gkb"), bytes, 0o644)
            .map_err(|e| error(&self.bundle_path(&digest), format!("cannot write: {e}")))?;
        Ok(digest)
    }

    /// Makes `pending` the pending bundle (replacing any other pending one).
    pub fn set_pending(&self, pending: &Pending) -> Result<(), StateError> {
        let _guard = self.guard();
        if pending.source.is_empty() || pending.source.chars().any(char::is_control) {
            return Err(error(
                &self.manifest_path(),
                format!(
                    "pending source {:?}: a non-empty name is needed",
                    pending.source
                ),
            ));
        }
        let mut manifest = self.manifest_locked()?;
        let digest = self.store_bundle(&pending.bytes)?;
        manifest.pending = Some(PendingRef {
            digest,
            deadline: pending.deadline,
            source: pending.source.clone(),
        });
        self.write_manifest(&manifest)?;
        self.collect_garbage(&manifest)
    }

    /// The pending bundle becomes the current one; the ratchet moves up to its
    /// serial and the time floor to its `created`. One atomic step.
    pub fn confirm(&self, serial: u64, created: OffsetDateTime) -> Result<(), StateError> {
        let _guard = self.guard();
        let mut manifest = self.manifest_locked()?;
        let Some(pending) = manifest.pending.take() else {
            return Err(error(&self.manifest_path(), "no pending bundle to confirm"));
        };
        if let Ok((metadata, _)) =
            crate::format::read_unverified(&self.read_bundle(&pending.digest)?)
        {
            if metadata.serial != serial {
                return Err(error(
                    &self.manifest_path(),
                    format!(
                        "confirm of serial {serial}, but the pending bundle has serial {}",
                        metadata.serial
                    ),
                ));
            }
        }
        manifest.current = Some(pending.digest);
        manifest.ratchet.serial = manifest.ratchet.serial.max(serial);
        manifest.ratchet.time_floor = Some(match manifest.ratchet.time_floor {
            Some(floor) => floor.max(created),
            None => created,
        });
        self.write_manifest(&manifest)?;
        self.collect_garbage(&manifest)
    }

    /// Forgets the pending bundle; the current one stays. Nothing to do when there is
    /// no pending bundle.
    pub fn revert(&self) -> Result<(), StateError> {
        let _guard = self.guard();
        let mut manifest = self.manifest_locked()?;
        if manifest.pending.take().is_none() {
            return Ok(());
        }
        self.write_manifest(&manifest)?;
        self.collect_garbage(&manifest)
    }

    /// Raises the time floor (a bundle's `created` was seen) without a new bundle.
    /// Never lowers it.
    pub fn raise_time_floor(&self, seen: OffsetDateTime) -> Result<(), StateError> {
        let _guard = self.guard();
        let mut manifest = self.manifest_locked()?;
        if manifest
            .ratchet
            .time_floor
            .is_some_and(|floor| floor >= seen)
        {
            return Ok(());
        }
        manifest.ratchet.time_floor = Some(seen);
        self.write_manifest(&manifest)
    }

    /// Appends an entry to the audit log (chained to the manifest's head), makes it
    /// durable, then records the new head in the manifest.
    pub fn audit_append(&self, entry: &AuditEntry) -> Result<(), StateError> {
        let _guard = self.guard();
        let path = self.dir.join(AUDIT_FILE);
        let year = entry.time.to_offset(time::UtcOffset::UTC).year();
        if !(0..=9999).contains(&year) {
            return Err(error(
                &path,
                format!("cannot record an entry dated in the year {year}"),
            ));
        }
        let mut manifest = self.manifest_locked()?;
        let line = audit::entry_line(entry, &manifest.audit.head);
        let io = |e: std::io::Error| error(&path, format!("cannot append: {e}"));
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        // A line that does not end (a damaged log; a torn line after a head is removed
        // at open) must not swallow this one.
        let mut prefix = Vec::new();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1)).map_err(io)?;
            file.read_exact(&mut last).map_err(io)?;
            if last[0] != b'\n' {
                prefix.push(b'\n');
            }
        }
        prefix.extend_from_slice(line.as_bytes());
        let written = step()
            .and_then(|()| file.write_all(&prefix[..prefix.len() / 2]))
            .and_then(|()| step())
            .and_then(|()| file.write_all(&prefix[prefix.len() / 2..]))
            .and_then(|()| step())
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Not acknowledged: take the partial line back out if we still can.
            if !fsutil::is_simulated_cut(&e) {
                let _ = file.set_len(len);
            }
            return Err(io(e));
        }
        drop(file);
        if created {
            fsutil::sync_dir(&self.dir).map_err(io)?;
        }
        manifest.audit = AuditHead {
            entries: manifest.audit.entries + 1,
            head: audit::line_hash(line.as_bytes()),
        };
        self.write_manifest(&manifest)
    }

    /// The audit log checked against the manifest's head.
    pub fn audit_verify(&self) -> Result<AuditReport, StateError> {
        let _guard = self.guard();
        audit_verify(&self.dir)
    }

    /// The audit log's entries, in order.
    pub fn audit_read(&self) -> Result<Vec<AuditEntry>, StateError> {
        let _guard = self.guard();
        audit_read(&self.dir)
    }
}

fn remove_temporaries(dir: &Path) -> Result<(), StateError> {
    let entries = fs::read_dir(dir).map_err(|e| error(dir, format!("cannot read: {e}")))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            fs::remove_file(entry.path())
                .map_err(|e| error(&entry.path(), format!("cannot remove: {e}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::crash;
    use crate::testing::{bundle, CREATED};
    use time::macros::datetime;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gk-bundle-state-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn pending(serial: u64, deadline: i64) -> Pending {
        Pending {
            bytes: bundle(serial, &[1]),
            deadline,
            source: "inbox".into(),
        }
    }

    fn entry(n: u64, outcome: &str) -> AuditEntry {
        AuditEntry {
            time: CREATED + time::Duration::seconds(n as i64),
            digest: Some(crate::hex(&crate::sha256(&bundle(n.max(1), &[1])))),
            serial: Some(n),
            signers: vec![crate::testing::key(1).id().to_string()],
            source: "inbox".into(),
            outcome: outcome.into(),
            reason: (outcome == "refused").then(|| "rollback: serial 1 is not above 3".into()),
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .chain(fs::read_dir(dir.join(BUNDLES_DIR)).unwrap())
            .map(|e| {
                let e = e.unwrap();
                let parent = e
                    .path()
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if parent == BUNDLES_DIR {
                    format!("{BUNDLES_DIR}/{}", e.file_name().to_string_lossy())
                } else {
                    e.file_name().to_string_lossy().into_owned()
                }
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_transition_and_reopen() {
        let dir = scratch("transitions");
        let s = StateDir::open(&dir).unwrap();
        assert_eq!(files(&dir), ["bundles", "lock", "state.toml"]);
        assert_eq!(s.ratchet().unwrap(), Ratchet::default());
        assert_eq!(s.current().unwrap(), None);
        assert_eq!(s.pending().unwrap(), None);
        assert!(s
            .confirm(1, CREATED)
            .unwrap_err()
            .to_string()
            .contains("no pending bundle"));
        s.revert().unwrap(); // nothing pending: nothing to do

        let p3 = pending(3, 1_800_000_000);
        s.set_pending(&p3).unwrap();
        assert_eq!(s.pending().unwrap().as_ref(), Some(&p3));
        assert_eq!(s.current().unwrap(), None);
        let d3 = crate::hex(&crate::sha256(&p3.bytes));
        assert!(files(&dir).contains(&format!("bundles/{d3}.gkb")));
        // Confirming with another serial than the pending bundle's is a bug, refused.
        let e = s.confirm(4, CREATED).unwrap_err().to_string();
        assert!(
            e.contains("confirm of serial 4, but the pending bundle has serial 3"),
            "{e}"
        );
        s.confirm(3, CREATED).unwrap();
        assert_eq!(s.current().unwrap(), Some(p3.bytes.clone()));
        assert_eq!(s.pending().unwrap(), None);
        assert_eq!(
            s.ratchet().unwrap(),
            Ratchet {
                serial: 3,
                time_floor: Some(CREATED)
            }
        );

        // A pending bundle that is reverted leaves the current one, and its file goes.
        let p4 = pending(4, 1_800_000_600);
        s.set_pending(&p4).unwrap();
        s.revert().unwrap();
        assert_eq!(s.pending().unwrap(), None);
        assert_eq!(s.current().unwrap(), Some(p3.bytes.clone()));
        assert_eq!(s.ratchet().unwrap().serial, 3);
        assert_eq!(
            files(&dir),
            [
                "bundles",
                format!("bundles/{d3}.gkb").as_str(),
                "lock",
                "state.toml"
            ]
        );

        // A second pending bundle replaces the first.
        let p5 = pending(5, 1_800_001_200);
        s.set_pending(&p4).unwrap();
        s.set_pending(&p5).unwrap();
        assert_eq!(s.pending().unwrap().unwrap().bytes, p5.bytes);
        assert_eq!(fs::read_dir(dir.join(BUNDLES_DIR)).unwrap().count(), 2);

        // The time floor only goes up.
        s.raise_time_floor(datetime!(2020-01-01 00:00:00 UTC))
            .unwrap();
        assert_eq!(s.ratchet().unwrap().time_floor, Some(CREATED));
        let later = datetime!(2026-12-24 18:00:00.25 UTC);
        s.raise_time_floor(later).unwrap();
        assert_eq!(s.ratchet().unwrap().time_floor, Some(later));

        // Everything survives a restart.
        let before = s.manifest().unwrap();
        drop(s);
        let s = StateDir::open(&dir).unwrap();
        assert_eq!(s.manifest().unwrap(), before);
        assert_eq!(s.pending().unwrap().unwrap(), p5);
        s.confirm(5, datetime!(2026-12-01 00:00:00 UTC)).unwrap();
        // The floor stays at the later time; the old current bundle's file is gone.
        assert_eq!(
            s.ratchet().unwrap(),
            Ratchet {
                serial: 5,
                time_floor: Some(later)
            }
        );
        assert_eq!(fs::read_dir(dir.join(BUNDLES_DIR)).unwrap().count(), 1);
        let text = fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
        assert!(text.starts_with("# gatekeeper state"), "{text}");
        assert!(text.contains("ratchet = 5\n"), "{text}");
        drop(s);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_owner_at_a_time() {
        let dir = scratch("lock");
        let s = StateDir::open(&dir).unwrap();
        let e = StateDir::open(&dir).unwrap_err().to_string();
        assert!(e.contains("in use by another process"), "{e}");
        // Reading the audit log needs no lock.
        assert!(audit_verify(&dir).unwrap().is_intact());
        drop(s);
        StateDir::open(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stray_files_are_removed_at_open() {
        let dir = scratch("stray");
        let s = StateDir::open(&dir).unwrap();
        s.set_pending(&pending(3, 0)).unwrap();
        drop(s);
        fs::write(dir.join(".tmp-state.toml.123"), "half a manifest").unwrap();
        fs::write(
            dir.join(BUNDLES_DIR).join(".tmp-abc.gkb.9"),
            "half a bundle",
        )
        .unwrap();
        let orphan = format!("{BUNDLES_DIR}/{}.gkb", "ab".repeat(32));
        fs::write(dir.join(&orphan), "a bundle no manifest names").unwrap();
        let s = StateDir::open(&dir).unwrap();
        let names = files(&dir);
        assert!(
            !names.iter().any(|n| n.contains(".tmp-") || *n == orphan),
            "{names:?}"
        );
        assert_eq!(s.pending().unwrap().unwrap().bytes, bundle(3, &[1]));
        drop(s);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_state_is_refused_clearly() {
        let digest = "cd".repeat(32);
        let cases: Vec<(String, &str)> = vec![
            ("garbage = ".into(), "state.toml: line 1, column 11"),
            ("format = 1\nratchet = 0\ncolour = 1\n[audit]\nentries = 0\nhead = \"0\"\n".into(), "line 3, column 1: unknown field `colour`"),
            (format!("format = 2\nratchet = 0\n[audit]\nentries = 0\nhead = \"{GENESIS}\"\n"), "line 1: format = 2"),
            (format!("format = 1\nratchet = -1\n[audit]\nentries = 0\nhead = \"{GENESIS}\"\n"), "line 2"),
            (format!("format = 1\nratchet = 0\ncurrent = \"xyz\"\n[audit]\nentries = 0\nhead = \"{GENESIS}\"\n"), "line 3: current = \"xyz\" is not a SHA-256 digest"),
            (format!("format = 1\nratchet = 0\ncurrent = \"{digest}\"\n[audit]\nentries = 0\nhead = \"{GENESIS}\"\n"), "names bundles/cdcd"),
            (format!("format = 1\nratchet = 0\ntime-floor = \"yesterday\"\n[audit]\nentries = 0\nhead = \"{GENESIS}\"\n"), "line 3: time-floor"),
            (format!("format = 1\nratchet = 0\n[audit]\nentries = 0\nhead = \"{digest}\"\n"), "0 entries, but a head"),
            ("format = 1\nratchet = 0\n".into(), "missing field `audit`"),
        ];
        for (text, expect) in cases {
            let dir = scratch("damaged");
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(MANIFEST_FILE), &text).unwrap();
            let e = StateDir::open(&dir).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{}", dir.join(MANIFEST_FILE).display())),
                "{e}"
            );
            assert!(e.contains(expect), "expected {expect:?} in {e}");
            fs::remove_dir_all(&dir).unwrap();
        }
        // No manifest, but an audit log: the ratchet is lost; refuse to start afresh.
        let dir = scratch("no-manifest");
        let s = StateDir::open(&dir).unwrap();
        s.audit_append(&entry(1, "started")).unwrap();
        drop(s);
        fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        let e = StateDir::open(&dir).unwrap_err().to_string();
        assert!(
            e.contains("state.toml: is missing, but audit.jsonl has entries"),
            "{e}"
        );
        fs::remove_dir_all(&dir).unwrap();
        // A stored bundle that changed is refused when read.
        let dir = scratch("bad-bundle");
        let s = StateDir::open(&dir).unwrap();
        s.set_pending(&pending(3, 0)).unwrap();
        s.confirm(3, CREATED).unwrap();
        let d = s.manifest().unwrap().current.unwrap();
        let path = dir.join(BUNDLES_DIR).join(format!("{d}.gkb"));
        let mut bytes = fs::read(&path).unwrap();
        bytes[100] ^= 1;
        fs::write(&path, bytes).unwrap();
        let e = s.current().unwrap_err().to_string();
        assert!(e.contains("is damaged: its SHA-256 is"), "{e}");
        drop(s);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Runs `op` on a state prepared by `setup`, with a power cut at every step in
    /// turn, and checks that the state found after reopening is the old or the new one.
    fn cut_everywhere(
        name: &str,
        setup: impl Fn(&StateDir),
        op: impl Fn(&StateDir) -> Result<(), StateError>,
    ) {
        let dir = scratch(name);
        let (old, new) = {
            let s = StateDir::open(&dir).unwrap();
            setup(&s);
            let old = s.manifest().unwrap();
            op(&s).unwrap();
            (old, s.manifest().unwrap())
        };
        assert_ne!(old, new, "{name}: the operation changes nothing");
        let mut saw_old = false;
        for steps in 0.. {
            fs::remove_dir_all(&dir).unwrap();
            let s = StateDir::open(&dir).unwrap();
            setup(&s);
            crash::arm(steps);
            let result = op(&s);
            let crashed = crash::disarm();
            drop(s);
            if !crashed {
                result.unwrap();
                assert!(saw_old, "{name}: no step reached");
                break;
            }
            assert!(
                result.is_err(),
                "{name}: a cut at step {steps} went unnoticed"
            );
            let s = StateDir::open(&dir).unwrap();
            let found = s.manifest().unwrap();
            assert!(
                found == old || found == new,
                "{name}: cut at step {steps}: {found:?}"
            );
            saw_old |= found == old;
            // Whatever the state, its files are whole, and nothing stray is left.
            if let Some(p) = &found.pending {
                s.pending().unwrap().unwrap();
                assert!(p.digest.len() == 64);
            }
            s.current().unwrap();
            assert!(
                s.audit_verify().unwrap().is_intact(),
                "{name}: cut at step {steps}"
            );
            let names = files(&dir);
            assert!(
                !names.iter().any(|n| n.contains(".tmp-")),
                "{name}: {names:?}"
            );
            let referenced = found
                .current
                .iter()
                .chain(found.pending.as_ref().map(|p| &p.digest))
                .count();
            assert_eq!(
                fs::read_dir(dir.join(BUNDLES_DIR)).unwrap().count(),
                referenced,
                "{name}: {names:?}"
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_power_cut_anywhere_leaves_the_old_or_the_new_state() {
        let confirmed = |s: &StateDir| {
            s.set_pending(&pending(3, 100)).unwrap();
            s.confirm(3, CREATED).unwrap();
            s.audit_append(&entry(3, "confirmed")).unwrap();
        };
        let with_pending = |s: &StateDir| {
            confirmed(s);
            s.set_pending(&pending(4, 200)).unwrap();
        };
        cut_everywhere("cut-set-pending", confirmed, |s| {
            s.set_pending(&pending(4, 200))
        });
        cut_everywhere("cut-replace-pending", with_pending, |s| {
            s.set_pending(&pending(5, 300))
        });
        cut_everywhere("cut-confirm", with_pending, |s| {
            s.confirm(4, datetime!(2026-11-23 00:00:00 UTC))
        });
        cut_everywhere("cut-revert", with_pending, |s| s.revert());
        cut_everywhere("cut-floor", confirmed, |s| {
            s.raise_time_floor(datetime!(2027-01-01 00:00:00 UTC))
        });
        cut_everywhere("cut-audit", confirmed, |s| {
            s.audit_append(&entry(4, "refused"))
        });
        cut_everywhere(
            "cut-first-audit",
            |_| {},
            |s| s.audit_append(&entry(1, "started")),
        );
    }

    fn lines(dir: &Path) -> Vec<String> {
        fs::read_to_string(dir.join(AUDIT_FILE))
            .unwrap()
            .lines()
            .map(|l| format!("{l}\n"))
            .collect()
    }

    fn write_lines(dir: &Path, lines: &[String]) {
        fs::write(dir.join(AUDIT_FILE), lines.concat()).unwrap();
    }

    fn audited(name: &str, n: u64) -> (PathBuf, Vec<AuditEntry>) {
        let dir = scratch(name);
        let s = StateDir::open(&dir).unwrap();
        let entries: Vec<AuditEntry> = (1..=n)
            .map(|i| entry(i, if i % 2 == 0 { "refused" } else { "pending" }))
            .collect();
        for e in &entries {
            s.audit_append(e).unwrap();
        }
        (dir, entries)
    }

    #[test]
    fn the_audit_log_is_a_hash_chain() {
        let (dir, entries) = audited("audit", 5);
        assert_eq!(audit_read(&dir).unwrap(), entries);
        let report = audit_verify(&dir).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.records.len(), 5);
        let lines = lines(&dir);
        // Check it the way the documentation says a person can: prev = sha256 of the
        // previous line with its newline; the manifest's head = sha256 of the last one.
        assert!(lines[0].contains(&format!("\"prev\":\"{GENESIS}\"")));
        for i in 1..5 {
            let hash = crate::hex(&crate::sha256(lines[i - 1].as_bytes()));
            assert!(
                lines[i].ends_with(&format!("\"prev\":\"{hash}\"}}\n")),
                "{}",
                lines[i]
            );
        }
        let head = crate::hex(&crate::sha256(lines[4].as_bytes()));
        let manifest = fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
        assert!(
            manifest.contains(&format!("head = \"{head}\"")),
            "{manifest}"
        );
        assert!(manifest.contains("entries = 5"), "{manifest}");
        assert!(
            lines[1].starts_with("{\"time\":\"2026-11-22T06:00:02Z\",\"digest\":\""),
            "{}",
            lines[1]
        );
        assert!(
            lines[1].contains("\"serial\":2,\"signers\":[\""),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains("\"source\":\"inbox\",\"outcome\":\"refused\",\"reason\":\"rollback: serial 1 is not above 3\""), "{}", lines[1]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tampering_with_the_audit_log_is_found_with_its_line() {
        type Tamper = fn(&mut Vec<String>);
        let cases: Vec<(&str, Tamper, usize, &str)> = vec![
            (
                "edit",
                |l| l[1] = l[1].replace("refused", "accepted"),
                3,
                "line 2 was changed",
            ),
            (
                "edit-last",
                |l| l[4] = l[4].replace("pending", "confirmd"),
                5,
                "the entry was changed",
            ),
            (
                "delete",
                |l| {
                    l.remove(1);
                },
                2,
                "but line 1 hashes to",
            ),
            (
                "delete-first",
                |l| {
                    l.remove(0);
                },
                1,
                "not 64 zeros",
            ),
            (
                "reorder",
                |l| l.swap(1, 2),
                2,
                "lines were removed or reordered",
            ),
            (
                "truncate",
                |l| {
                    l.pop();
                },
                5,
                "the log ends after 4 entries, but state.toml records 5",
            ),
            (
                "truncate-all",
                |l| l.clear(),
                1,
                "the log ends after 0 entries",
            ),
            (
                "garbage",
                |l| l[2] = "hello\n".into(),
                3,
                "not an audit entry",
            ),
            (
                "unknown-field",
                |l| l[2] = l[2].replacen('{', "{\"x\":1,", 1),
                3,
                "unknown field `x`",
            ),
            (
                "bad-prev",
                |l| l[3] = l[3].replace("\"prev\":\"", "\"prev\":\"X"),
                4,
                "prev \"X",
            ),
            (
                "blank",
                |l| l.insert(2, "\n".into()),
                3,
                "not an audit entry",
            ),
        ];
        for (name, tamper, line, expect) in cases {
            let (dir, _) = audited(&format!("tamper-{name}"), 5);
            let mut l = lines(&dir);
            tamper(&mut l);
            write_lines(&dir, &l);
            let report = audit_verify(&dir).unwrap();
            let broken = report
                .broken
                .clone()
                .unwrap_or_else(|| panic!("{name}: not found"));
            assert_eq!(broken.line, line, "{name}: {broken:?}");
            assert!(broken.what.contains(expect), "{name}: {broken:?}");
            // The box still starts, repairs nothing, and new entries keep the evidence.
            let s = StateDir::open(&dir).unwrap();
            s.audit_append(&entry(9, "started")).unwrap();
            let after = s.audit_verify().unwrap();
            assert!(
                !after.is_intact(),
                "{name}: the break was hidden by an append"
            );
            assert!(after.broken.unwrap().line <= line + 1, "{name}");
            drop(s);
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn a_torn_or_unacknowledged_append_is_not_a_break() {
        // Half a line after the head: a power cut during an append. Removed at open.
        let (dir, entries) = audited("torn", 3);
        let head = s_head(&dir);
        let line = crate::audit::entry_line(&entry(4, "pending"), &head);
        let mut log = fs::read(dir.join(AUDIT_FILE)).unwrap();
        let intact_len = log.len();
        log.extend_from_slice(&line.as_bytes()[..line.len() / 2]);
        fs::write(dir.join(AUDIT_FILE), &log).unwrap();
        let report = audit_verify(&dir).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.torn_tail, line.len() / 2);
        let s = StateDir::open(&dir).unwrap();
        assert_eq!(fs::read(dir.join(AUDIT_FILE)).unwrap().len(), intact_len);
        s.audit_append(&entry(4, "pending")).unwrap();
        assert!(s.audit_verify().unwrap().is_intact());
        assert_eq!(s.audit_read().unwrap().len(), 4);
        assert_eq!(&s.audit_read().unwrap()[..3], &entries[..]);
        drop(s);

        // A whole line after the head (the manifest update was cut): taken in at open.
        let head = s_head(&dir);
        let line = crate::audit::entry_line(&entry(5, "refused"), &head);
        let mut log = fs::read(dir.join(AUDIT_FILE)).unwrap();
        log.extend_from_slice(line.as_bytes());
        fs::write(dir.join(AUDIT_FILE), &log).unwrap();
        let report = audit_verify(&dir).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.unacknowledged, 1);
        let s = StateDir::open(&dir).unwrap();
        let report = s.audit_verify().unwrap();
        assert_eq!((report.unacknowledged, report.records.len()), (0, 5));
        assert_eq!(s.manifest().unwrap().audit.entries, 5);
        drop(s);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn s_head(dir: &Path) -> String {
        read_manifest(dir).unwrap().unwrap().audit.head
    }
}
