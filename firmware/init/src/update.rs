//! Applying a signed image update (`*.gku`, format and checks in `gk_bundle::update`)
//! from a USB stick: verify the header before touching any disk, write the inactive
//! slot while hashing, install its boot entry with tries, reboot.
//!
//! The order is what makes it safe to pull the power at any point:
//! 1. header signatures and board (nothing written yet);
//! 2. the UKI, read into memory and checked against the header (it is small);
//! 3. every boot entry of the inactive slot removed, so nothing boots it while it is
//!    being written;
//! 4. the root image streamed to the inactive partition, hashed on the way; a
//!    mismatch zeroes the partition's first block (so it can never verify) and stops;
//! 5. only then the new boot entry: UEFI `gatekeeper-<N+1>-<slot>+3.efi` (written as a
//!    dot-file, fsync, rename), BIOS the kernel and initrd under `/gk/<slot>/`, the
//!    `/gk/tries` file, and last `DEFAULT <slot>` in syslinux.cfg.

use std::fs::{self, File};
use std::io::{self, BufReader, Seek, Write};
use std::path::{Path, PathBuf};

use gk_bundle::trust::TrustStore;
use gk_bundle::update::{self as gku, UpdateError};
use nix::mount::MsFlags;

use crate::board::{Board, Boot};
use crate::bootcount::{self, Tries};
use crate::sys::{self, say, Context};
use crate::sysfs::GkDisk;

/// The trust store update headers are checked with (the bundles' own).
pub const TRUST_DIR: &str = "/etc/gatekeeper/trust";
/// Where the ESP is mounted, briefly, to change boot entries.
pub const ESP_MOUNT: &str = "/run/esp";
/// The largest UKI taken (the ESP is 64 MiB and holds two).
pub const MAX_UKI: u64 = 48 << 20;
/// One empty file per update ever installed, named by its root hash: an update that
/// fell back is not installed again from a stick left in the box (a boot loop).
pub const INSTALLED_DIR: &str = "/data/updates";

/// What the running system is.
#[derive(Clone, Debug)]
pub struct Running {
    pub board: Board,
    pub disk: GkDisk,
    pub slot: char,
}

/// Applies the update file `path`. `Ok` means the new slot is installed and the box
/// should reboot into it.
pub fn apply(path: &Path, running: &Running, feed: &mut dyn FnMut()) -> Result<String, String> {
    let trust = TrustStore::load(Path::new(TRUST_DIR)).map_err(|e| e.to_string())?;
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let refuse = |e: UpdateError| format!("refused ({}): {e}", e.code());
    let (info, signers) = gku::read_header(&mut r, &trust, gku::MAX_HEADER).map_err(refuse)?;
    info.check_board(&running.board.board).map_err(refuse)?;
    let running_root = fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|c| crate::cmdline::verity(&c).ok())
        .map(|v| v.root_hash);
    if let Some(why) = already_seen(
        running_root.as_deref(),
        &info.verity_root,
        Path::new(INSTALLED_DIR),
    ) {
        return Err(format!("not taken: {why}"));
    }
    let target = bootcount::other(running.slot);
    let part = running.disk.root(target).clone();
    say(&format!(
        "update {} for {} signed by {}: installing into slot {target} ({})",
        info.version,
        info.board,
        signers
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        part.name
    ));
    let capacity =
        crate::sysfs::block_size_bytes(Path::new("/sys"), &part.name).map_err(|e| e.to_string())?;
    if info.root_len > capacity {
        return Err(format!(
            "refused: the root image is {} bytes but partition {} holds {capacity}",
            info.root_len, part.name
        ));
    }
    if info.uki_len > MAX_UKI {
        return Err(format!(
            "refused: the UKI is {} bytes (at most {MAX_UKI})",
            info.uki_len
        ));
    }
    let mut uki = Vec::with_capacity(info.uki_len as usize);
    gku::copy_part(&mut r, &info.uki(), &mut uki).map_err(refuse)?;

    retire_slot(running, target).map_err(|e| format!("cannot retire slot {target}: {e}"))?;

    let mut dev = fs::OpenOptions::new()
        .write(true)
        .open(part.node())
        .map_err(|e| format!("{}: {e}", part.node().display()))?;
    let mut last_step = 0u64;
    let copied = gku::copy_part_with_progress(&mut r, &info.root(), &mut dev, &mut |done| {
        feed();
        let step = done / (64 << 20);
        if step != last_step {
            last_step = step;
            say(&format!(
                "update: {} of {} MiB written",
                done >> 20,
                info.root_len >> 20
            ));
        }
    })
    .and_then(|()| gku::check_end(&mut r));
    if let Err(e) = copied {
        let _ = spoil(&mut dev);
        return Err(format!(
            "{}; slot {target} is left unusable (its first block zeroed), the running slot \
             {} is untouched",
            refuse(e),
            running.slot
        ));
    }
    dev.sync_all()
        .map_err(|e| format!("syncing {}: {e}", part.name))?;
    drop(dev);
    feed();

    // Recorded before the boot entry exists: a power cut in between leaves a record of
    // an update that never booted, which is what it is.
    fs::create_dir_all(INSTALLED_DIR)
        .and_then(|()| sys::write_atomic(Path::new(INSTALLED_DIR), &info.verity_root, b""))
        .map_err(|e| format!("cannot record the update in {INSTALLED_DIR}: {e}"))?;
    install(running, target, &uki).map_err(|e| format!("installing the boot entry: {e}"))?;
    Ok(format!(
        "update {} installed in slot {target}; rebooting into it",
        info.version
    ))
}

/// Why an update with root hash `root` is not taken again, if it is not: the box runs
/// it already, or it was installed before (and the box is not running it, so it fell
/// back). `installed` holds one file per update ever installed.
fn already_seen(running: Option<&str>, root: &str, installed: &Path) -> Option<String> {
    let short = &root[..root.len().min(16)];
    if running == Some(root) {
        return Some(format!("this box already runs it (root {short}…)"));
    }
    if !root.is_empty() && !root.contains('/') && installed.join(root).exists() {
        return Some(format!(
            "it was installed before and did not stay (root {short}…): it failed to reach \
             READY and the box fell back; remove the stick"
        ));
    }
    None
}

/// Zeroes the first block so that the slot can never pass dm-verity.
fn spoil(dev: &mut File) -> io::Result<()> {
    dev.rewind()?;
    dev.write_all(&[0u8; 4096])?;
    dev.sync_all()
}

/// Mounts the ESP read-write at [`ESP_MOUNT`], runs `f`, unmounts (always).
pub fn with_esp<T>(disk: &GkDisk, f: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
    let mnt = Path::new(ESP_MOUNT);
    fs::create_dir_all(mnt)?;
    sys::mount(
        &disk.esp.node().to_string_lossy(),
        mnt,
        "vfat",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    let result = f(mnt);
    nix::unistd::sync();
    let unmounted = sys::unmount_or_ro(mnt);
    let value = result?;
    unmounted?;
    Ok(value)
}

fn list(dir: &Path) -> io::Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| e.with_context(format!("listing {}", dir.display())))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Removes every boot entry of `slot`.
fn retire_slot(running: &Running, slot: char) -> io::Result<()> {
    with_esp(&running.disk, |esp| {
        if running.board.boot.is_uefi() {
            let dir = esp.join("EFI/Linux");
            for name in bootcount::ukis_of_slot(&list(&dir)?, slot) {
                fs::remove_file(dir.join(&name))?;
                say(&format!("update: removed the old boot entry {name}"));
            }
            sys::sync_dir(&dir)
        } else {
            let tries = esp.join("gk/tries");
            if fs::read_to_string(&tries)
                .ok()
                .and_then(|t| Tries::parse(&t))
                .is_some_and(|t| t.slot == slot)
            {
                fs::remove_file(&tries)?;
            }
            let dir = esp.join("gk").join(slot.to_string());
            let _ = fs::remove_dir_all(&dir);
            sys::sync_dir(&esp.join("gk"))
        }
    })
}

/// Installs the boot entry of the freshly written `slot`, with tries.
fn install(running: &Running, slot: char, uki: &[u8]) -> io::Result<()> {
    with_esp(&running.disk, |esp| match running.board.boot {
        Boot::Uefi | Boot::UBoot => {
            let dir = esp.join("EFI/Linux");
            let name = bootcount::next_install_name(&list(&dir)?, slot);
            sys::write_atomic(&dir, &name, uki)?;
            say(&format!("update: boot entry {name} written (3 tries)"));
            Ok(())
        }
        Boot::Bios => {
            let parts = pe_sections(uki)?;
            let gk = esp.join("gk");
            let dir = gk.join(slot.to_string());
            fs::create_dir_all(&dir)?;
            sys::write_atomic(&dir, "vmlinuz", &parts.linux)?;
            sys::write_atomic(&dir, "initrd.img", &parts.initrd)?;
            sys::write_atomic(
                &gk,
                "tries",
                Tries {
                    slot,
                    left: bootcount::TRIES,
                }
                .render()
                .as_bytes(),
            )?;
            let cfg_dir = esp.join("syslinux");
            let cfg = fs::read_to_string(cfg_dir.join("syslinux.cfg"))
                .map_err(|e| e.with_context("reading syslinux/syslinux.cfg".into()))?;
            let cfg = bootcount::syslinux_set_label(&cfg, slot, &parts.cmdline);
            let cfg = bootcount::syslinux_set_default(&cfg, slot);
            sys::write_atomic(&cfg_dir, "syslinux.cfg", cfg.as_bytes())?;
            say(&format!(
                "update: /gk/{slot}/ written, syslinux DEFAULT {slot} (3 tries)"
            ));
            Ok(())
        }
    })
}

/// The parts of a UKI a BIOS board boots without systemd-stub.
#[derive(Debug, PartialEq, Eq)]
pub struct UkiParts {
    pub linux: Vec<u8>,
    pub initrd: Vec<u8>,
    pub cmdline: String,
}

/// Reads `.linux`, `.initrd` and `.cmdline` from a UKI (a PE32+ image). Each section is
/// cut to its VirtualSize: the file's raw data is padded to the file alignment, and
/// padding after a kernel or in a command line is not ours to pass on.
pub fn pe_sections(uki: &[u8]) -> io::Result<UkiParts> {
    use object::read::pe::PeFile64;
    use object::LittleEndian as LE;
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, format!("the UKI: {m}"));
    let pe = PeFile64::parse(uki).map_err(|e| bad(format!("not a PE32+ image: {e}")))?;
    let table = pe.section_table();
    let get = |want: &str| -> io::Result<Vec<u8>> {
        for s in table.iter() {
            // Section names of up to 8 bytes sit in the header, NUL-padded (all of the
            // stub's are that short: .linux, .initrd, .cmdline).
            let raw_name = s.raw_name();
            let name = &raw_name[..raw_name.iter().position(|b| *b == 0).unwrap_or(8)];
            if name == want.as_bytes() {
                let raw = s
                    .pe_data(uki)
                    .map_err(|e| bad(format!("section {want}: {e}")))?;
                let len = (s.virtual_size.get(LE) as usize).min(raw.len());
                return Ok(raw[..len].to_vec());
            }
        }
        Err(bad(format!("no {want} section")))
    };
    let cmdline = get(".cmdline")?;
    let end = cmdline
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(cmdline.len());
    Ok(UkiParts {
        linux: get(".linux")?,
        initrd: get(".initrd")?,
        cmdline: String::from_utf8_lossy(&cmdline[..end]).trim().to_string(),
    })
}

/// `update` files on a stick: exactly one is taken.
pub fn pick(names: &[PathBuf]) -> Result<Option<&PathBuf>, String> {
    match names {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(format!(
            "{} update files on the stick ({}): leave exactly one",
            names.len(),
            names
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Reads all of `r` (for tests of the reader side).
#[cfg(test)]
fn read_all(mut r: impl std::io::Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).expect("read");
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_is_not_taken_twice() {
        let dir = std::env::temp_dir().join(format!("gk-init-seen-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(already_seen(Some("aa"), "bb", &dir), None);
        assert!(already_seen(Some("bb"), "bb", &dir)
            .unwrap()
            .contains("already runs it"));
        fs::write(dir.join("bb"), b"").unwrap();
        assert!(already_seen(Some("aa"), "bb", &dir)
            .unwrap()
            .contains("fell back"));
        // A root hash is hex: nothing else is looked up as a path.
        assert_eq!(already_seen(None, "../bb", &dir), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_update_file_at_a_time() {
        assert_eq!(pick(&[]), Ok(None));
        let one = vec![PathBuf::from("/run/usb/x.gku")];
        assert_eq!(pick(&one), Ok(Some(&one[0])));
        let two = vec![PathBuf::from("/a/x.gku"), PathBuf::from("/a/y.gku")];
        assert!(pick(&two).unwrap_err().contains("x.gku, y.gku"));
    }

    #[test]
    fn a_non_pe_uki_is_refused() {
        let e = pe_sections(&read_all(&b"MZ not really"[..])).unwrap_err();
        assert!(e.to_string().contains("not a PE32+ image"), "{e}");
    }

    /// A real UKI when the host has one (systemd-boot-efi ships the stub, and a test
    /// image builder leaves UKIs in out/); skipped otherwise.
    #[test]
    fn sections_of_a_real_uki() {
        let Ok(path) = std::env::var("GK_TEST_UKI") else {
            return;
        };
        let uki = fs::read(path).expect("GK_TEST_UKI");
        let parts = pe_sections(&uki).expect("a UKI");
        assert!(parts.cmdline.contains("gk.verity="), "{}", parts.cmdline);
        assert_eq!(&parts.linux[0x202..0x206], b"HdrS", "a bzImage");
        assert!(!parts.initrd.is_empty());
    }
}
