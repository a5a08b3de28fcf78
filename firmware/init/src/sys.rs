//! Thin wrappers over the system calls both stages use, each error naming what it was
//! doing. Nothing here decides anything.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags};

/// Writes one line to the console (our stderr once [`console`] ran). Console output
/// can fail (a serial port without a reader never does; a closed one may): that is not
/// a reason for PID 1 to stop, so errors are ignored.
pub fn say(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "gk-init: {line}");
}

/// A line the QEMU tests and technicians look for (`GATEKEEPER READY …`), unprefixed.
pub fn announce(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Makes `/dev/<name>` (or `/dev/console` if that cannot be opened) our stdin, stdout
/// and stderr. The port is opened non-blocking (a serial line without carrier would
/// block the open), then set back to blocking with `CLOCAL` so that a missing carrier
/// never hangs a write.
pub fn console(name: &str) -> io::Result<()> {
    let open = |p: &Path| {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(p)
    };
    let file = open(&Path::new("/dev").join(name)).or_else(|_| open(Path::new("/dev/console")))?;
    let fd = file.as_fd();
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let mut flags = nix::fcntl::OFlag::from_bits_retain(flags);
    flags.remove(nix::fcntl::OFlag::O_NONBLOCK);
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    if let Ok(mut t) = nix::sys::termios::tcgetattr(fd) {
        t.control_flags |= nix::sys::termios::ControlFlags::CLOCAL;
        t.output_flags |=
            nix::sys::termios::OutputFlags::OPOST | nix::sys::termios::OutputFlags::ONLCR;
        let _ = nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &t);
    }
    for target in 0..=2 {
        // SAFETY: dup2 on an fd we own onto the standard descriptors; no Rust object
        // owns 0, 1 or 2 in a way that their replacement invalidates.
        if unsafe { libc::dup2(file.as_raw_fd(), target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `mount(2)`, with the target in the error.
pub fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> io::Result<()> {
    nix::mount::mount(Some(source), target, Some(fstype), flags, data).map_err(|e| {
        io::Error::from(e).with_context(format!(
            "mounting {source} ({fstype}) on {}",
            target.display()
        ))
    })
}

/// `mount --move`.
pub fn move_mount(from: &Path, to: &Path) -> io::Result<()> {
    nix::mount::mount(Some(from), to, None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(|e| {
        io::Error::from(e).with_context(format!(
            "moving the mount {} to {}",
            from.display(),
            to.display()
        ))
    })
}

/// Unmounts; if busy, remounts read-only so that the filesystem is at least clean.
pub fn unmount_or_ro(target: &Path) -> io::Result<()> {
    match nix::mount::umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => nix::mount::mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| {
            io::Error::from(e).with_context(format!("remounting {} read-only", target.display()))
        }),
        Err(e) => Err(io::Error::from(e).with_context(format!("unmounting {}", target.display()))),
    }
}

/// Adds context to an I/O error, keeping its kind.
pub trait Context {
    fn with_context(self, what: String) -> io::Error;
}

impl Context for io::Error {
    fn with_context(self, what: String) -> io::Error {
        io::Error::new(self.kind(), format!("{what}: {self}"))
    }
}

/// What loading one module did.
#[derive(Debug, PartialEq, Eq)]
pub enum Loaded {
    Now,
    Already,
}

/// `finit_module(2)` on a `.ko` (compressed ones are decompressed by the kernel, which
/// Debian's kernels are built to do). "Already loaded" is not an error: a module the
/// kernel pulled in itself, or one listed as a dependency of two others.
pub fn load_module(path: &Path) -> io::Result<Loaded> {
    let file =
        File::open(path).map_err(|e| e.with_context(format!("module {}", path.display())))?;
    let name = path.to_string_lossy();
    // MODULE_INIT_COMPRESSED_FILE (linux/module.h); nix has no name for it.
    let flags = if name.ends_with(".xz") || name.ends_with(".zst") || name.ends_with(".gz") {
        nix::kmod::ModuleInitFlags::from_bits_retain(4)
    } else {
        nix::kmod::ModuleInitFlags::empty()
    };
    match nix::kmod::finit_module(file.as_fd(), c"", flags) {
        Ok(()) => Ok(Loaded::Now),
        Err(nix::errno::Errno::EEXIST) => Ok(Loaded::Already),
        Err(e) => {
            Err(io::Error::from(e).with_context(format!("loading module {}", path.display())))
        }
    }
}

/// Writes `value` to a sysfs file (board hooks).
pub fn write_sysfs(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value)
        .map_err(|e| e.with_context(format!("writing {value:?} to {}", path.display())))
}

/// Reads a file of at most `max` bytes.
pub fn read_small(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    File::open(path)
        .and_then(|f| f.take(max).read_to_end(&mut out))
        .map_err(|e| e.with_context(format!("reading {}", path.display())))?;
    Ok(out)
}

/// Writes `bytes` to `dir/name` atomically: a dot-file in the same directory, fsync,
/// rename, fsync of the directory. Works on vfat too (the ESP), where the rename is
/// as atomic as FAT allows.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| e.with_context(format!("writing {}", dir.join(name).display())))
}

/// fsync of a directory (makes a rename durable).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Sleeps, for the bounded waits of stage 1.
pub fn nap(d: Duration) {
    std::thread::sleep(d);
}

/// `sync(2)`, then `reboot(2)`. Never returns on success.
pub fn halt(power_off: bool) -> io::Error {
    nix::unistd::sync();
    let mode = if power_off {
        nix::sys::reboot::RebootMode::RB_POWER_OFF
    } else {
        nix::sys::reboot::RebootMode::RB_AUTOBOOT
    };
    match nix::sys::reboot::reboot(mode) {
        Ok(never) => match never {},
        Err(e) => io::Error::from(e).with_context("reboot(2)".into()),
    }
}

/// A C string for paths handed to `exec`.
pub fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{s:?} contains NUL")))
}
