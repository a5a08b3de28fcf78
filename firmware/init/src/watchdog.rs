//! The hardware watchdog (`/dev/watchdog*`): set its timeout, feed it every third of
//! it. Stage 1 opens it (so that a hang while waiting for disks or in dm-verity resets
//! the box too) and hands the open descriptor to stage 2 across the exec, because
//! closing it would stop the watchdog (or, with `nowayout`, be a hang that resets).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::sys::Context;

// linux/watchdog.h: WDIOC_SETTIMEOUT = _IOWR('W', 6, int), WDIOC_KEEPALIVE = _IOR('W', 5, int).
nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, libc::c_int);
nix::ioctl_read!(wdioc_keepalive, b'W', 5, libc::c_int);

/// The environment variable that carries the open descriptor into stage 2.
pub const FD_ENV: &str = "GK_WATCHDOG_FD";

/// An open watchdog.
#[derive(Debug)]
pub struct Watchdog {
    file: File,
    /// The timeout the driver accepted (it may round).
    pub timeout: Duration,
    last: Instant,
    /// The `hang` test hook: stop feeding (the box resets after the timeout).
    pub starved: bool,
}

impl Watchdog {
    /// Opens `device` and sets its timeout to `seconds`.
    pub fn open(device: &Path, seconds: u32) -> io::Result<Watchdog> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(device)
            .map_err(|e| e.with_context(format!("opening the watchdog {}", device.display())))?;
        let mut t: libc::c_int = seconds as libc::c_int;
        // SAFETY: WDIOC_SETTIMEOUT reads and writes one int through the pointer, which
        // points at a live local; the fd is the open watchdog.
        unsafe { wdioc_settimeout(file.as_raw_fd(), &mut t) }.map_err(|e| {
            io::Error::from(e).with_context(format!(
                "setting the timeout of {} to {seconds} s",
                device.display()
            ))
        })?;
        let mut w = Watchdog {
            file,
            timeout: Duration::from_secs(t.max(1) as u64),
            last: Instant::now(),
            starved: false,
        };
        w.keepalive()?;
        Ok(w)
    }

    /// Takes over the descriptor stage 1 left open (see [`FD_ENV`]).
    pub fn inherit(fd: RawFd, seconds: u32) -> Watchdog {
        // SAFETY: stage 1 exec'd us with this descriptor open and owned by nobody else
        // in this process; we take ownership exactly once (the caller removes FD_ENV).
        let file = unsafe { File::from_raw_fd(fd) };
        // Not to be inherited by gatekeeperd.
        let _ = nix::fcntl::fcntl(
            &file,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        Watchdog {
            file,
            timeout: Duration::from_secs(u64::from(seconds.max(1))),
            last: Instant::now() - Duration::from_secs(3600),
            starved: false,
        }
    }

    /// Keeps the descriptor open across `exec` and returns its number for [`FD_ENV`].
    pub fn keep_across_exec(self) -> io::Result<RawFd> {
        let fd = self.file.into_raw_fd();
        // SAFETY: `fd` is open (we just released it from its File) and stays open.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        nix::fcntl::fcntl(
            borrowed,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(io::Error::from)?;
        Ok(fd)
    }

    /// Feeds it now.
    pub fn keepalive(&mut self) -> io::Result<()> {
        if self.starved {
            return Ok(());
        }
        let mut dummy: libc::c_int = 0;
        // SAFETY: WDIOC_KEEPALIVE writes at most one int through the pointer (most
        // drivers ignore it); it points at a live local.
        unsafe { wdioc_keepalive(self.file.as_raw_fd(), &mut dummy) }.map_err(io::Error::from)?;
        self.last = Instant::now();
        Ok(())
    }

    /// Feeds it if a third of the timeout has passed since the last time.
    pub fn tick(&mut self, now: Instant) -> io::Result<()> {
        if now.saturating_duration_since(self.last) >= self.timeout / 3 {
            self.keepalive()?;
        }
        Ok(())
    }

    /// Stops the watchdog with the magic close ('V'), for clean shutdowns of test and
    /// dev images. Production images never do this: a shutdown that hangs must still
    /// end in a reset.
    pub fn disarm(mut self) -> io::Result<()> {
        self.file.write_all(b"V")?;
        self.file.flush()
    }
}
