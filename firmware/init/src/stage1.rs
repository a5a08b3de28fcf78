//! Stage 1: `/init` in the initramfs, PID 1. Mounts the kernel filesystems, loads the
//! board's modules, finds the gatekeeper disk by GPT names, maps the root slot that
//! verifies under dm-verity, counts BIOS trial boots, mounts root and data, and hands
//! over to `/sbin/init` (stage 2, the same binary) on the verified root.
//!
//! switch_root: the initramfs (a tmpfs/ramfs "rootfs" that can never be unmounted) is
//! *emptied* before the hand-over, like busybox's switch_root does: every file on it is
//! deleted (only that filesystem; mount points are skipped), which frees the modules and
//! this binary's copy (a few MiB of RAM). Then the new root is moved onto `/`, we
//! chroot into it and exec stage 2.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::mount::MsFlags;

use crate::board::{Board, BOARD_FILE};
use crate::bootcount::{self, BiosStep, Tries};
use crate::cmdline::{self, VerityParams};
use crate::dm;
use crate::sys::{self, say};
use crate::sysfs::{self, DiskSearch, GkDisk};
use crate::watchdog::{self, Watchdog};

/// How long stage 1 waits for the disk to appear (USB and NVMe can take seconds).
const DISK_WAIT: Duration = Duration::from_secs(30);
/// Environment handed to stage 2.
pub const ENV_STAGE: &str = "GK_STAGE";
pub const ENV_SLOT: &str = "GK_SLOT";
pub const ENV_DISK: &str = "GK_DISK";

/// Mounts `/dev`, `/proc`, `/sys`, `/run` (already mounted is fine).
pub fn mount_kernel_filesystems(prefix: &Path) {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    for (src, dir, fstype, flags, data) in [
        (
            "devtmpfs",
            "dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            Some("mode=0755"),
        ),
        ("proc", "proc", "proc", nosuid, None),
        ("sysfs", "sys", "sysfs", nosuid, None),
        (
            "tmpfs",
            "run",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755,size=50%"),
        ),
    ] {
        let target = prefix.join(dir);
        let _ = fs::create_dir_all(&target);
        if let Err(e) = sys::mount(src, &target, fstype, flags, data) {
            if e.raw_os_error() != Some(libc::EBUSY) {
                say(&format!("warning: {e}"));
            }
        }
    }
}

/// Runs stage 1; returns only with an error message for [`fatal`].
pub fn run() -> String {
    mount_kernel_filesystems(Path::new("/"));
    let _ = sys::console("console");
    let board = match Board::load(Path::new(BOARD_FILE)) {
        Ok(b) => b,
        Err(e) => return e.to_string(),
    };
    if let Err(e) = sys::console(&board.console) {
        say(&format!(
            "warning: console /dev/{}: {e}; staying on /dev/console",
            board.console
        ));
    }
    say(&format!(
        "stage 1: gatekeeper {} on {} ({} profile)",
        board.version,
        board.board,
        board.profile.as_str()
    ));
    match boot(&board) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// Never returns `Ok`: the exec replaces us.
fn boot(board: &Board) -> Result<std::convert::Infallible, String> {
    let text = fs::read_to_string("/proc/cmdline").map_err(|e| format!("/proc/cmdline: {e}"))?;
    let verity = cmdline::verity(&text).map_err(|e| e.to_string())?;

    let started = Instant::now();
    let (mut loaded, mut already) = (0, 0);
    for m in &board.modules {
        match sys::load_module(&board.module_path(m)) {
            Ok(sys::Loaded::Now) => loaded += 1,
            Ok(sys::Loaded::Already) => already += 1,
            Err(e) => say(&format!("warning: {e}")),
        }
    }
    say(&format!(
        "modules: {loaded} loaded, {already} already there, of {} in {} ms",
        board.modules.len(),
        started.elapsed().as_millis()
    ));

    let mut wd = match &board.watchdog {
        None => None,
        Some(w) => match Watchdog::open(&w.device, w.timeout) {
            Ok(wd) => {
                say(&format!(
                    "watchdog {} armed, {} s",
                    w.device.display(),
                    wd.timeout.as_secs()
                ));
                Some(wd)
            }
            Err(e) => {
                say(&format!("warning: {e}; running without a watchdog"));
                None
            }
        },
    };

    let disk = wait_for_disk(&mut wd)?;
    say(&format!(
        "disk {}: esp {}, root {} / {}, data {}",
        disk.disk, disk.esp.name, disk.root_a.name, disk.root_b.name, disk.data.name
    ));

    let (slot, root_node) = map_root(&disk, &verity)?;
    if let Some(w) = wd.as_mut() {
        let _ = w.keepalive();
    }
    if board.boot == crate::board::Boot::Bios {
        bios_count(&disk, slot)?;
    }

    let newroot = Path::new("/newroot");
    let _ = fs::create_dir_all(newroot);
    sys::mount(
        &root_node,
        newroot,
        "squashfs",
        MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        None,
    )
    .map_err(|e| e.to_string())?;
    mount_data(&disk, &newroot.join("data"));

    for dir in ["dev", "proc", "sys", "run"] {
        sys::move_mount(&Path::new("/").join(dir), &newroot.join(dir))
            .map_err(|e| e.to_string())?;
    }
    free_initramfs();
    std::env::set_current_dir(newroot).map_err(|e| format!("chdir /newroot: {e}"))?;
    sys::move_mount(Path::new("."), Path::new("/")).map_err(|e| e.to_string())?;
    nix::unistd::chroot(".").map_err(|e| format!("chroot: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;

    let mut cmd = std::process::Command::new("/sbin/init");
    cmd.env(ENV_STAGE, "2")
        .env(ENV_SLOT, slot.to_string())
        .env(ENV_DISK, &disk.disk);
    if let Some(w) = wd {
        let fd = w.keep_across_exec().map_err(|e| format!("watchdog: {e}"))?;
        cmd.env(watchdog::FD_ENV, fd.to_string());
    }
    say(&format!(
        "slot {slot} verified and mounted; starting stage 2"
    ));
    let e = cmd.exec();
    Err(format!("exec /sbin/init on the new root: {e}"))
}

fn wait_for_disk(wd: &mut Option<Watchdog>) -> Result<GkDisk, String> {
    let sys_root = Path::new("/sys");
    let started = Instant::now();
    let deadline = started + DISK_WAIT;
    let mut said = false;
    loop {
        let parts = sysfs::partitions(sys_root);
        match sysfs::find_gk_disk(&parts, |d| sysfs::is_removable_or_usb(sys_root, d)) {
            DiskSearch::Found(disk, others) => {
                for o in others {
                    say(&format!(
                        "warning: {o} is a gatekeeper disk too; booting from {} (non-removable first)",
                        disk.disk
                    ));
                }
                return Ok(*disk);
            }
            DiskSearch::Missing(seen) => {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "no disk with the partitions gk-esp, gk-root-a, gk-root-b and gk-data \
                         after {} s; partitions seen: {}. Is the disk driver among the board's \
                         modules, and was the image written to this disk?",
                        DISK_WAIT.as_secs(),
                        if seen.is_empty() {
                            "none".to_string()
                        } else {
                            seen.join(", ")
                        }
                    ));
                }
                // Only after 3 s of waiting, so that a normal boot says nothing.
                if !said && started.elapsed() >= Duration::from_secs(3) {
                    say("waiting for the gatekeeper disk ...");
                    said = true;
                }
            }
        }
        if let Some(w) = wd.as_mut() {
            let _ = w.tick(Instant::now());
        }
        sys::nap(Duration::from_millis(100));
    }
}

/// Maps `gk-root-a`, else `gk-root-b`, keeping the one whose first block reads back
/// under the command line's root hash; returns the slot and its `/dev/mapper` node.
fn map_root(disk: &GkDisk, p: &VerityParams) -> Result<(char, String), String> {
    let ctl = dm::Control::open().map_err(|e| e.to_string())?;
    let mut why = Vec::new();
    for slot in ['a', 'b'] {
        let part = disk.root(slot);
        let name = format!("gk-root-{slot}");
        match dm::map_verity(&ctl, &name, &part.dev, p) {
            Err(e) => why.push(format!(
                "{}: {e} (table {})",
                part.name,
                dm::verity_table(&part.dev, p)
            )),
            Ok(node) => {
                let mut block = vec![0u8; 4096];
                let read = fs::File::open(&node).and_then(|mut f| f.read_exact(&mut block));
                match read {
                    Ok(()) if &block[..4] == b"hsqs" => {
                        return Ok((slot, node.to_string_lossy().into_owned()))
                    }
                    Ok(()) => why.push(format!("{}: verified but not a squashfs", part.name)),
                    Err(e) => why.push(format!(
                        "{}: {e} (not the root this kernel was built for)",
                        part.name
                    )),
                }
                if let Err(e) = ctl.remove(&name) {
                    say(&format!("warning: removing {name}: {e}"));
                }
            }
        }
    }
    Err(format!(
        "no root slot verifies against gk.verity={}: {}",
        p.root_hash,
        why.join("; ")
    ))
}

/// BIOS boot counting (see `bootcount`): decrement `/gk/tries`, or fall back.
fn bios_count(disk: &GkDisk, slot: char) -> Result<(), String> {
    let step = crate::update::with_esp(disk, |esp| {
        let file = esp.join("gk/tries");
        let tries = match fs::read_to_string(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) => Some(Err(())),
            Ok(t) => Some(Tries::parse(&t).ok_or(())),
        };
        let step = bootcount::bios_step(tries, slot);
        match &step {
            BiosStep::Nothing {
                remove_stale: false,
            } => {}
            BiosStep::Nothing { remove_stale: true } => {
                fs::remove_file(&file)?;
            }
            BiosStep::Count(t) => {
                sys::write_atomic(&esp.join("gk"), "tries", t.render().as_bytes())?
            }
            BiosStep::FallBack(to) => {
                let cfg_dir = esp.join("syslinux");
                let cfg = fs::read_to_string(cfg_dir.join("syslinux.cfg"))?;
                sys::write_atomic(
                    &cfg_dir,
                    "syslinux.cfg",
                    bootcount::syslinux_set_default(&cfg, *to).as_bytes(),
                )?;
                fs::remove_file(&file)?;
            }
        }
        Ok(step)
    })
    .map_err(|e| format!("BIOS boot counting on the ESP: {e}"))?;
    match step {
        BiosStep::Count(t) => say(&format!(
            "trial boot of slot {slot}: {} tries left after this one",
            t.left
        )),
        BiosStep::FallBack(to) => {
            say(&format!("slot {slot} used up its tries without reaching READY: falling back to slot {to}, rebooting"));
            let e = sys::halt(false);
            return Err(e.to_string());
        }
        BiosStep::Nothing { .. } => {}
    }
    Ok(())
}

/// Mounts the data partition; if it cannot be, a tmpfs takes its place so that the box
/// still runs (factory default, fail mode), and the console says that nothing will be
/// kept across a reboot.
fn mount_data(disk: &GkDisk, target: &Path) {
    let node = disk.data.node();
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if let Err(e) = sys::mount(
        &node.to_string_lossy(),
        target,
        "ext4",
        flags,
        Some("errors=remount-ro"),
    ) {
        say(&format!(
            "DATA PARTITION UNUSABLE: {e}; running on a RAM disk, bundles and the audit log \
             will NOT survive a reboot"
        ));
        let _ = sys::mount("tmpfs", target, "tmpfs", flags, Some("mode=0755,size=16m"));
    }
    for dir in ["state", "inbox"] {
        let _ = fs::create_dir_all(target.join(dir));
    }
}

/// Deletes every file of the initramfs (the filesystem of `/`), not crossing mounts.
fn free_initramfs() {
    let Ok(root) = fs::symlink_metadata("/") else {
        return;
    };
    delete_tree(Path::new("/"), root.dev());
}

fn delete_tree(dir: &Path, dev: u64) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.dev() != dev {
            continue; // a mount point (/newroot)
        }
        if meta.is_dir() {
            delete_tree(&path, dev);
            let _ = fs::remove_dir(&path);
        } else {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Says what went wrong, waits so that it can be read, and reboots (the boot counting
/// of UEFI or BIOS then leads back to the previous slot after a failed update).
pub fn fatal(message: &str) -> ! {
    sys::announce(&format!("GATEKEEPER BOOT FAILED: {message}"));
    sys::announce("GATEKEEPER BOOT FAILED: rebooting in 10 s; nothing is forwarded");
    sys::nap(Duration::from_secs(10));
    let e = sys::halt(false);
    sys::say(&format!("{e}"));
    loop {
        sys::nap(Duration::from_secs(3600));
    }
}
