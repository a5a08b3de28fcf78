//! The few raw system-call wrappers the port layer needs, each checked once here so the
//! rest of the module stays in safe code.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{Iface, PortError};

/// `IFNAMSIZ` including the terminating NUL.
pub(crate) const IFNAMSIZ: usize = 16;

/// Turns a `-1` return into the thread's `errno`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `socket(2)`, close-on-exec, returning an owned descriptor.
pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    protocol: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes only integers and returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) })?;
    // SAFETY: `fd` was just returned by socket(2), is open, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(2)` with a plain-old-data value.
pub(crate) fn setsockopt<T: Copy>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of exactly the length we pass; the kernel only
    // reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `getsockopt(2)` into a plain-old-data value.
pub(crate) fn getsockopt<T: Pod>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut value: T = zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a live, initialised `T` and `len` holds its exact size, so the
    // kernel writes at most `size_of::<T>()` bytes into it; `T: Pod` is valid for any
    // bit pattern the kernel may leave there.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Validates an interface name and returns it as a C string.
pub(crate) fn ifname_cstring(name: &str) -> Result<CString, PortError> {
    if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('/') {
        return Err(PortError::NoSuchInterface(name.to_owned()));
    }
    CString::new(name).map_err(|_| PortError::NoSuchInterface(name.to_owned()))
}

/// Resolves an interface to `(name, ifindex)` in the calling thread's network namespace.
pub(crate) fn resolve(iface: &Iface) -> Result<(String, u32), PortError> {
    match iface {
        Iface::Name(name) => {
            let c = ifname_cstring(name)?;
            // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
            let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
            if index == 0 {
                Err(PortError::NoSuchInterface(name.clone()))
            } else {
                Ok((name.clone(), index))
            }
        }
        Iface::Index(index) => {
            let mut buf = [0 as libc::c_char; IFNAMSIZ];
            // SAFETY: `buf` has IFNAMSIZ bytes, which is what if_indextoname may write.
            let p = unsafe { libc::if_indextoname(*index, buf.as_mut_ptr()) };
            if p.is_null() {
                return Err(PortError::NoSuchInterface(format!("ifindex {index}")));
            }
            let bytes: Vec<u8> = buf
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            Ok((String::from_utf8_lossy(&bytes).into_owned(), *index))
        }
    }
}

/// Waits up to `timeout_ms` for `fd` to become ready for `events`. Returns whether it did.
pub(crate) fn poll_one(fd: RawFd, events: libc::c_short, timeout_ms: libc::c_int) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: `pfd` is a single live pollfd and we pass a count of 1.
    let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    r > 0 && pfd.revents & events != 0
}

/// Plain-old-data C types: `Copy`, and every bit pattern (so all-zero too) is a valid
/// value.
///
/// # Safety
///
/// Only implement for `#[repr(C)]` types made solely of integers and raw pointers.
pub(crate) unsafe trait Pod: Copy {}

// SAFETY: a C integer.
unsafe impl Pod for libc::c_int {}
// SAFETY: two `c_uint`s.
unsafe impl Pod for libc::tpacket_stats {}
// SAFETY: a `msghdr` (integers and raw pointers) and a `c_uint`.
unsafe impl Pod for libc::mmsghdr {}
// SAFETY: integers and raw pointers.
unsafe impl Pod for libc::msghdr {}
// SAFETY: a raw pointer and a `size_t`.
unsafe impl Pod for libc::iovec {}
// SAFETY: integers and a byte array.
unsafe impl Pod for libc::sockaddr_ll {}

/// An all-zero value of a plain-old-data C type.
pub(crate) fn zeroed<T: Pod>() -> T {
    // SAFETY: `T: Pod` promises that every bit pattern, so all-zero, is a valid `T`.
    unsafe { MaybeUninit::<T>::zeroed().assume_init() }
}
