//! USB sticks: every 2 s, look for removable or USB disks that were not there before;
//! mount each volume FAT read-only (nosuid, nodev, noexec) at `/run/usb`; copy the
//! bundles (`*.gkb`) into gatekeeperd's inbox, take one image update (`*.gku`), act on
//! the test hooks of test images; unmount; say what was found and taken.
//!
//! The inbox contract (gatekeeperd's `scan_inbox`): files named `*.gkb` (lower case)
//! are offered once per (name, size, mtime), oldest mtime first. So a copy is written
//! as a dot-file (which gatekeeperd ignores: its extension is `.tmp`), fsynced, given
//! the stick file's mtime (so several serials on one stick apply in order) and renamed
//! into place; a bundle already in the inbox with the same bytes is not copied again.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::sys::{self, say};

/// Where a stick's volume is mounted while it is read.
pub const MOUNT: &str = "/run/usb";
/// The largest bundle copied (gatekeeperd's own limit).
pub const MAX_BUNDLE: u64 = 1 << 20;
/// The test-hook directory on a stick.
pub const TEST_DIR: &str = "gk-test";

/// What the stick asks of the main loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Test hook `kill-daemon`: SIGKILL gatekeeperd once.
    KillDaemon,
    /// Test hook `crash-loop`: the next starts fail until the crash loop.
    CrashLoop,
    /// Test hook `hang`: stop feeding the watchdog.
    Hang,
    /// An update was installed: reboot into it.
    Reboot,
}

/// What was done with one file (for the console).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Taken {
    Copied(String),
    AlreadyThere(String),
    Refused(String, String),
}

/// Lower-case extension test (FAT names are often upper case).
fn has_ext(name: &str, ext: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.to_string_lossy().eq_ignore_ascii_case(ext))
}

/// The inbox name for a stick file: its stem with only `[A-Za-z0-9._-]`, `.gkb`.
pub fn inbox_name(name: &str) -> String {
    let stem = Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    while clean.starts_with('.') {
        clean.remove(0);
    }
    if clean.is_empty() {
        clean.push_str("bundle");
    }
    format!("{clean}.gkb")
}

/// Copies the `*.gkb` files at the top of `src` into `inbox`.
pub fn take_bundles(src: &Path, inbox: &Path) -> Vec<Taken> {
    let Ok(entries) = fs::read_dir(src) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| has_ext(n, "gkb") && !n.starts_with('.'))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let from = src.join(&name);
            match copy_bundle(&from, inbox, &inbox_name(&name)) {
                Ok(true) => Taken::Copied(name),
                Ok(false) => Taken::AlreadyThere(name),
                Err(e) => Taken::Refused(name, e),
            }
        })
        .collect()
}

/// Copies one bundle; `Ok(false)` when the inbox already has the same bytes.
fn copy_bundle(from: &Path, inbox: &Path, name: &str) -> Result<bool, String> {
    let meta = fs::symlink_metadata(from).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_BUNDLE {
        return Err(format!(
            "{} bytes, larger than a bundle may be ({MAX_BUNDLE})",
            meta.len()
        ));
    }
    let bytes = sys::read_small(from, MAX_BUNDLE + 1).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_BUNDLE {
        return Err("grew while being read".into());
    }
    if let Ok(entries) = fs::read_dir(inbox) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "gkb")
                && e.metadata().is_ok_and(|m| m.len() == bytes.len() as u64)
                && fs::read(&p).is_ok_and(|b| b == bytes)
            {
                return Ok(false);
            }
        }
    }
    let tmp = inbox.join(format!(".{name}.tmp"));
    let result = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        if let Ok(mtime) = meta.modified() {
            f.set_modified(mtime)?;
        }
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, inbox.join(name))?;
        sys::sync_dir(inbox)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(format!("cannot copy into {}: {e}", inbox.display()));
    }
    Ok(true)
}

/// The test hooks present in `src/gk-test/`.
pub fn test_hooks(src: &Path) -> Vec<Request> {
    let dir = src.join(TEST_DIR);
    [
        ("kill-daemon", Request::KillDaemon),
        ("crash-loop", Request::CrashLoop),
        ("hang", Request::Hang),
    ]
    .into_iter()
    .filter(|(f, _)| {
        // FAT is case-insensitive; its names may come back upper case.
        dir.join(f).exists() || dir.join(f.to_ascii_uppercase()).exists()
    })
    .map(|(_, r)| r)
    .collect()
}

/// The `*.gku` files at the top of `src`.
pub fn updates(src: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(src)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| has_ext(&e.file_name().to_string_lossy(), "gku"))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// The USB poller's memory: which disks were already handled.
#[derive(Debug)]
pub struct Scanner {
    pub sys: PathBuf,
    pub boot_disk: String,
    pub inbox: PathBuf,
    pub test_hooks: bool,
    seen: BTreeSet<String>,
}

impl Scanner {
    /// Disks present at start are handled too (a stick left in at boot is a stick).
    pub fn new(sys: PathBuf, boot_disk: String, inbox: PathBuf, test_hooks: bool) -> Scanner {
        Scanner {
            sys,
            boot_disk,
            inbox,
            test_hooks,
            seen: BTreeSet::new(),
        }
    }

    /// Forgets every stick, so that the next poll reads each one again (once a trial
    /// boot is good, for an update that had to wait for it).
    pub fn forget(&mut self) {
        self.seen.clear();
    }

    /// One poll: handles new sticks; forgets removed ones (so a re-inserted stick is
    /// read again). `on_volume` applies updates; it gets the mounted directory.
    pub fn poll(&mut self, on_volume: &mut dyn FnMut(&Path) -> Vec<Request>) -> Vec<Request> {
        let sticks = crate::sysfs::sticks(&self.sys, &self.boot_disk);
        // By insertion, not by name: a stick swapped for another between two polls comes
        // back as the same `sda`, with a new diskseq.
        let present: BTreeSet<String> = sticks.iter().map(|s| s.insertion.clone()).collect();
        self.seen.retain(|d| present.contains(d));
        let mut out = Vec::new();
        for stick in sticks {
            if !self.seen.insert(stick.insertion.clone()) {
                continue;
            }
            say(&format!(
                "USB: {} inserted ({} volume(s))",
                stick.disk,
                stick.volumes.len()
            ));
            let mut any = false;
            for vol in &stick.volumes {
                match self.volume(vol, on_volume) {
                    Some(r) => {
                        any = true;
                        out.extend(r);
                    }
                    None => continue,
                }
            }
            if !any {
                say(&format!(
                    "USB: {}: no FAT volume; nothing taken",
                    stick.disk
                ));
            }
        }
        out
    }

    fn volume(
        &self,
        vol: &str,
        on_volume: &mut dyn FnMut(&Path) -> Vec<Request>,
    ) -> Option<Vec<Request>> {
        let mnt = Path::new(MOUNT);
        let _ = fs::create_dir_all(mnt);
        let node = format!("/dev/{vol}");
        if let Err(e) = sys::mount(
            &node,
            mnt,
            "vfat",
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None,
        ) {
            say(&format!("USB: {vol}: not mounted ({e})"));
            return None;
        }
        let mut out = Vec::new();
        let taken = take_bundles(mnt, &self.inbox);
        if taken.is_empty() {
            say(&format!("USB: {vol}: no bundles (*.gkb)"));
        }
        for t in &taken {
            match t {
                Taken::Copied(n) => say(&format!("USB: {vol}: bundle {n} taken into the inbox")),
                Taken::AlreadyThere(n) => {
                    say(&format!("USB: {vol}: bundle {n} is already in the inbox"))
                }
                Taken::Refused(n, why) => say(&format!("USB: {vol}: bundle {n} NOT taken: {why}")),
            }
        }
        if self.test_hooks {
            for r in test_hooks(mnt) {
                say(&format!("USB: {vol}: test hook {r:?}"));
                out.push(r);
            }
        }
        out.extend(on_volume(mnt));
        if let Err(e) = sys::unmount_or_ro(mnt) {
            say(&format!("USB: {vol}: {e}"));
        } else {
            say(&format!(
                "USB: {vol}: done, unmounted; the stick may be removed"
            ));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::fake::{write, Tmp};
    use std::time::{Duration, SystemTime};

    #[test]
    fn bundles_are_copied_once_with_their_mtime() {
        let t = Tmp::new("usb");
        let stick = t.0.join("stick");
        let inbox = t.0.join("inbox");
        fs::create_dir_all(&inbox).expect("inbox");
        write(&stick.join("SITE 1.GKB"), "bundle one");
        write(&stick.join("b.gkb"), "bundle two");
        write(&stick.join("notes.txt"), "x");
        write(
            &stick.join("huge.gkb"),
            &"x".repeat(MAX_BUNDLE as usize + 1),
        );
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        File::options()
            .write(true)
            .open(stick.join("b.gkb"))
            .expect("open")
            .set_modified(old)
            .expect("mtime");

        let taken = take_bundles(&stick, &inbox);
        assert_eq!(taken[0], Taken::Copied("SITE 1.GKB".into()));
        assert_eq!(taken[1], Taken::Copied("b.gkb".into()));
        assert!(
            matches!(&taken[2], Taken::Refused(n, why) if n == "huge.gkb" && why.contains("larger"))
        );
        assert_eq!(taken.len(), 3);
        assert_eq!(
            fs::read(inbox.join("SITE_1.gkb")).expect("copied"),
            b"bundle one"
        );
        assert_eq!(
            fs::metadata(inbox.join("b.gkb"))
                .and_then(|m| m.modified())
                .expect("mtime"),
            old
        );
        // No temporary left behind.
        assert_eq!(fs::read_dir(&inbox).expect("ls").count(), 2);

        // The same stick again: nothing new.
        let again = take_bundles(&stick, &inbox);
        assert_eq!(again[0], Taken::AlreadyThere("SITE 1.GKB".into()));
        assert_eq!(again[1], Taken::AlreadyThere("b.gkb".into()));
    }

    #[test]
    fn inbox_names_are_tame() {
        assert_eq!(inbox_name("POLICY.GKB"), "POLICY.gkb");
        assert_eq!(inbox_name("..gkb"), "bundle.gkb");
        assert_eq!(inbox_name("a b/c.gkb"), "c.gkb");
        assert_eq!(inbox_name(".hidden.gkb"), "hidden.gkb");
    }

    #[test]
    fn test_hooks_and_updates_are_found() {
        let t = Tmp::new("hooks");
        write(&t.0.join("gk-test/kill-daemon"), "");
        write(&t.0.join("gk-test/HANG"), "");
        write(&t.0.join("x.GKU"), "");
        assert_eq!(test_hooks(&t.0), vec![Request::KillDaemon, Request::Hang]);
        assert_eq!(updates(&t.0), vec![t.0.join("x.GKU")]);
    }
}
