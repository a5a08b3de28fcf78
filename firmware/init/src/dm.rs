//! Device-mapper through its ioctls, just enough for a dm-verity root: create a device,
//! load one `verity` target, resume it, remove it again.
//!
//! Why not a crate: `devicemapper` (stratis) pulls in bindgen for the same header, which
//! needs libclang at build time and does not cross-build for musl here; `dm-verity`
//! wrappers shell out to `veritysetup`. What the kernel needs is small and stable (the
//! ABI of `linux/dm-ioctl.h` is versioned 4.x since 2.6): a fixed 312-byte
//! `struct dm_ioctl` header, then for a table load one 40-byte `struct dm_target_spec`
//! followed by its parameter string. We build those bytes by hand at the offsets of
//! the header (the tests pin every offset), so no `unsafe` struct casts are needed;
//! the one `unsafe` is the `ioctl(2)` call itself.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::cmdline::{VerityParams, VERITY_BLOCK};

/// `DM_IOCTL` in `linux/dm-ioctl.h`: the ioctl type byte.
const DM_IOCTL: u8 = 0xfd;
/// `sizeof(struct dm_ioctl)`.
pub const DM_IOCTL_SIZE: usize = 312;
/// `sizeof(struct dm_target_spec)`.
pub const DM_TARGET_SPEC_SIZE: usize = 40;
/// `DM_NAME_LEN`, `DM_UUID_LEN`, `DM_MAX_TYPE_NAME`.
const DM_NAME_LEN: usize = 128;
const DM_UUID_LEN: usize = 129;
const DM_MAX_TYPE_NAME: usize = 16;
/// The interface version we speak (the kernel accepts any 4.x minor up to its own).
const DM_VERSION: [u32; 3] = [4, 0, 0];
/// Room for the kernel's answers (it sets `DM_BUFFER_FULL_FLAG` if that is too little,
/// which none of the commands used here can cause).
const BUFFER: usize = 16 * 1024;

/// `DM_READONLY_FLAG`: the mapped device refuses writes.
pub const DM_READONLY_FLAG: u32 = 1 << 0;
// (`DM_SUSPEND_FLAG`, 1 << 1, is what `DM_DEV_SUSPEND` would need to suspend; we
// only resume, which is the same command without it.)

/// Offsets of the fields of `struct dm_ioctl` (see the header; pinned by tests). The
/// ones we never write are listed all the same, so that the tests check the layout.
#[allow(dead_code)]
mod field {
    pub const VERSION: usize = 0; // __u32 version[3]
    pub const DATA_SIZE: usize = 12; // __u32, the whole buffer
    pub const DATA_START: usize = 16; // __u32, where the payload starts
    pub const TARGET_COUNT: usize = 20; // __u32
    pub const OPEN_COUNT: usize = 24; // __s32, out
    pub const FLAGS: usize = 28; // __u32
    pub const EVENT_NR: usize = 32; // __u32
    pub const PADDING: usize = 36; // __u32
    pub const DEV: usize = 40; // __u64 (8-byte aligned)
    pub const NAME: usize = 48; // char[128]
    pub const UUID: usize = 176; // char[129]
    pub const DATA: usize = 305; // char[7], padding to 312
    /// `struct dm_target_spec`, relative to its own start.
    pub const SPEC_SECTOR_START: usize = 0; // __u64
    pub const SPEC_LENGTH: usize = 8; // __u64
    pub const SPEC_STATUS: usize = 16; // __s32
    pub const SPEC_NEXT: usize = 20; // __u32: offset of the next spec from this one
    pub const SPEC_TARGET_TYPE: usize = 24; // char[16]
}

/// The commands (`DM_*_CMD`), the ioctl numbers' low byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    #[allow(dead_code)]
    Version = 0,
    DevCreate = 3,
    DevRemove = 4,
    DevSuspend = 6,
    TableLoad = 9,
}

impl Command {
    /// `_IOWR(DM_IOCTL, cmd, struct dm_ioctl)`, the same encoding on x86_64 and aarch64.
    pub fn request(self) -> u64 {
        const IOC_READ_WRITE: u64 = 3;
        (IOC_READ_WRITE << 30)
            | ((DM_IOCTL_SIZE as u64) << 16)
            | ((DM_IOCTL as u64) << 8)
            | self as u64
    }
}

/// The parameter string of a dm-verity target (format 1, no superblock: the image
/// builder runs `veritysetup format --no-superblock`).
pub fn verity_params(dev: &str, p: &VerityParams) -> String {
    let salt = if p.salt.is_empty() { "-" } else { &p.salt };
    format!(
        "1 {dev} {dev} {b} {b} {} {} sha256 {} {salt}",
        p.data_blocks,
        p.hash_start_block(),
        p.root_hash,
        b = VERITY_BLOCK
    )
}

/// The length of a verity target in 512-byte sectors.
pub fn verity_sectors(p: &VerityParams) -> u64 {
    p.data_blocks * (VERITY_BLOCK / 512)
}

/// The one-line table as `dmsetup table` would show it (for messages).
pub fn verity_table(dev: &str, p: &VerityParams) -> String {
    format!("0 {} verity {}", verity_sectors(p), verity_params(dev, p))
}

/// A `struct dm_ioctl` header for `name` (and optionally a uuid) with `flags`.
pub fn header(name: &str, uuid: &str, flags: u32) -> io::Result<Vec<u8>> {
    if name.is_empty() || name.len() >= DM_NAME_LEN || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("device-mapper name {name:?}: 1 to 127 bytes, no '/'"),
        ));
    }
    if uuid.len() >= DM_UUID_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("device-mapper uuid {uuid:?}: at most 128 bytes"),
        ));
    }
    let mut b = vec![0u8; DM_IOCTL_SIZE];
    for (i, v) in DM_VERSION.iter().enumerate() {
        put_u32(&mut b, field::VERSION + 4 * i, *v);
    }
    put_u32(&mut b, field::DATA_START, DM_IOCTL_SIZE as u32);
    put_u32(&mut b, field::FLAGS, flags);
    b[field::NAME..field::NAME + name.len()].copy_from_slice(name.as_bytes());
    b[field::UUID..field::UUID + uuid.len()].copy_from_slice(uuid.as_bytes());
    Ok(b)
}

/// A `DM_TABLE_LOAD` request: the header, then one target spec and its parameters.
pub fn table_load(
    name: &str,
    target: &str,
    start: u64,
    sectors: u64,
    params: &str,
) -> io::Result<Vec<u8>> {
    if target.len() >= DM_MAX_TYPE_NAME || params.as_bytes().contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("device-mapper target {target:?} or its parameters are malformed"),
        ));
    }
    let mut b = header(name, "", DM_READONLY_FLAG)?;
    put_u32(&mut b, field::TARGET_COUNT, 1);
    // The parameters are NUL-terminated and the next spec would start 8-aligned.
    let params_len = (params.len() + 1).next_multiple_of(8);
    let spec_len = DM_TARGET_SPEC_SIZE + params_len;
    let mut spec = vec![0u8; spec_len];
    put_u64(&mut spec, field::SPEC_SECTOR_START, start);
    put_u64(&mut spec, field::SPEC_LENGTH, sectors);
    put_u32(&mut spec, field::SPEC_NEXT, spec_len as u32);
    spec[field::SPEC_TARGET_TYPE..field::SPEC_TARGET_TYPE + target.len()]
        .copy_from_slice(target.as_bytes());
    spec[DM_TARGET_SPEC_SIZE..DM_TARGET_SPEC_SIZE + params.len()]
        .copy_from_slice(params.as_bytes());
    b.extend_from_slice(&spec);
    Ok(b)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(x)
}

/// The kernel's `huge_encode_dev` as found in `dm_ioctl.dev` → (major, minor).
pub fn decode_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) as u32;
    let minor = ((dev & 0xff) | ((dev >> 12) & 0xfff00)) as u32;
    (major, minor)
}

/// `/dev/mapper/control`, opened once.
#[derive(Debug)]
pub struct Control {
    file: File,
}

impl Control {
    /// Opens the control node (devtmpfs creates it once `dm-mod` is loaded).
    pub fn open() -> io::Result<Control> {
        let path = Path::new("/dev/mapper/control");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{}: {e} (is dm-mod loaded? it must be in the board's modules)",
                        path.display()
                    ),
                )
            })?;
        Ok(Control { file })
    }

    /// Runs one command on a prepared request; returns the kernel's answer buffer.
    fn call(&self, cmd: Command, request: &[u8]) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; request.len().max(BUFFER)];
        buf[..request.len()].copy_from_slice(request);
        let size = buf.len() as u32;
        put_u32(&mut buf, field::DATA_SIZE, size);
        // SAFETY: `buf` is a live, writable allocation of `data_size` bytes starting
        // with a valid `struct dm_ioctl`; the kernel reads and writes at most
        // `data_size` bytes of it, and the fd is our open control node.
        let rc =
            unsafe { libc::ioctl(self.file.as_raw_fd(), cmd.request() as _, buf.as_mut_ptr()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(buf)
    }

    /// Creates an (empty) mapped device; returns its (major, minor).
    pub fn create(&self, name: &str, uuid: &str) -> io::Result<(u32, u32)> {
        let answer = self.call(Command::DevCreate, &header(name, uuid, 0)?)?;
        Ok(decode_dev(get_u64(&answer, field::DEV)))
    }

    /// Loads a one-target read-only table into the inactive slot of `name`.
    pub fn load(&self, name: &str, target: &str, sectors: u64, params: &str) -> io::Result<()> {
        self.call(
            Command::TableLoad,
            &table_load(name, target, 0, sectors, params)?,
        )
        .map(drop)
    }

    /// Resumes `name`, making the loaded table live.
    pub fn resume(&self, name: &str) -> io::Result<()> {
        self.call(Command::DevSuspend, &header(name, "", 0)?)
            .map(drop)
    }

    /// Removes `name` (it must not be open or mounted).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        self.call(Command::DevRemove, &header(name, "", 0)?)
            .map(drop)
    }
}

/// Maps `dev` (`MAJOR:MINOR` of the partition) as a read-only dm-verity device `name`
/// and makes `/dev/mapper/<name>`; on any failure the half-made device is removed.
pub fn map_verity(ctl: &Control, name: &str, dev: &str, p: &VerityParams) -> io::Result<PathBuf> {
    let (major, minor) = ctl.create(name, &format!("GATEKEEPER-{name}"))?;
    let made = (|| {
        ctl.load(name, "verity", verity_sectors(p), &verity_params(dev, p))
            .map_err(|e| io::Error::new(e.kind(), format!("loading the verity table: {e}")))?;
        ctl.resume(name)
            .map_err(|e| io::Error::new(e.kind(), format!("resuming: {e}")))?;
        let node = PathBuf::from(format!("/dev/mapper/{name}"));
        let _ = std::fs::remove_file(&node);
        nix::sys::stat::mknod(
            &node,
            nix::sys::stat::SFlag::S_IFBLK,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(u64::from(major), u64::from(minor)),
        )
        .map_err(|e| io::Error::other(format!("mknod {}: {e}", node.display())))?;
        Ok(node)
    })();
    if made.is_err() {
        let _ = ctl.remove(name);
    }
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> VerityParams {
        VerityParams {
            root_hash: "ab".repeat(32),
            data_blocks: 1000,
            hash_offset: 4096 * 1000,
            salt: String::new(),
        }
    }

    #[test]
    fn the_header_layout_matches_linux_dm_ioctl_h() {
        // The offsets follow from the C declaration; this pins them against edits.
        assert_eq!(field::DEV % 8, 0);
        assert_eq!(field::NAME, field::DEV + 8);
        assert_eq!(field::UUID, field::NAME + DM_NAME_LEN);
        assert_eq!(field::DATA, field::UUID + DM_UUID_LEN);
        assert_eq!(field::DATA + 7, DM_IOCTL_SIZE);
        assert_eq!(DM_IOCTL_SIZE % 8, 0);
        assert_eq!(field::PADDING + 4, field::DEV);
        assert_eq!(field::EVENT_NR + 4, field::PADDING);
        assert_eq!(field::OPEN_COUNT + 4, field::FLAGS);
        assert_eq!(
            field::SPEC_TARGET_TYPE + DM_MAX_TYPE_NAME,
            DM_TARGET_SPEC_SIZE
        );
        assert_eq!(field::SPEC_STATUS + 4, field::SPEC_NEXT);

        let b = header("gk-root-a", "GATEKEEPER-gk-root-a", DM_READONLY_FLAG).expect("ok");
        assert_eq!(b.len(), 312);
        assert_eq!(&b[0..12], &[4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(&b[16..20], &312u32.to_ne_bytes()[..]);
        assert_eq!(&b[28..32], &1u32.to_ne_bytes()[..]);
        assert_eq!(&b[48..57], b"gk-root-a");
        assert_eq!(b[57], 0);
        assert_eq!(&b[176..196], b"GATEKEEPER-gk-root-a");
        assert!(header(&"x".repeat(128), "", 0).is_err());
        assert!(header("a/b", "", 0).is_err());
    }

    #[test]
    fn ioctl_numbers_are_iowr_0xfd() {
        // Values as computed by the C macros (DM_DEV_CREATE = 0xc138fd03 and so on).
        assert_eq!(Command::Version.request(), 0xc138_fd00);
        assert_eq!(Command::DevCreate.request(), 0xc138_fd03);
        assert_eq!(Command::DevRemove.request(), 0xc138_fd04);
        assert_eq!(Command::DevSuspend.request(), 0xc138_fd06);
        assert_eq!(Command::TableLoad.request(), 0xc138_fd09);
    }

    #[test]
    fn the_verity_table_is_what_veritysetup_would_load() {
        let p = params();
        assert_eq!(
            verity_table("8:2", &p),
            format!(
                "0 8000 verity 1 8:2 8:2 4096 4096 1000 1000 sha256 {} -",
                "ab".repeat(32)
            )
        );
        let salted = VerityParams {
            salt: "00ff".into(),
            hash_offset: 4096 * 1024,
            ..p
        };
        assert!(verity_params("259:3", &salted).contains(" 1000 1024 sha256 "));
        assert!(verity_params("259:3", &salted).ends_with(" 00ff"));
    }

    #[test]
    fn a_table_load_carries_one_aligned_target_spec() {
        let params = "1 8:2 8:2 4096 4096 1 1 sha256 00 -";
        let b = table_load("gk-root-b", "verity", 0, 8, params).expect("ok");
        let spec = &b[DM_IOCTL_SIZE..];
        assert_eq!(b.len() % 8, 0);
        assert_eq!(&b[20..24], &1u32.to_ne_bytes()[..], "target_count");
        assert_eq!(&b[28..32], &DM_READONLY_FLAG.to_ne_bytes()[..], "read-only");
        assert_eq!(&spec[0..8], &0u64.to_ne_bytes()[..]);
        assert_eq!(&spec[8..16], &8u64.to_ne_bytes()[..]);
        assert_eq!(
            &spec[20..24],
            &(spec.len() as u32).to_ne_bytes()[..],
            "next"
        );
        assert_eq!(&spec[24..30], b"verity");
        assert_eq!(&spec[40..40 + params.len()], params.as_bytes());
        assert_eq!(spec[40 + params.len()], 0, "NUL-terminated");
        assert!(table_load("x", "a-very-long-target", 0, 8, "").is_err());
        assert!(table_load("x", "verity", 0, 8, "a\0b").is_err());
    }

    #[test]
    fn device_numbers_decode_like_the_kernel() {
        // huge_encode_dev(MKDEV(253, 0)) and MKDEV(259, 300).
        assert_eq!(decode_dev(253 << 8), (253, 0));
        let enc = (300 & 0xff) | (259 << 8) | ((300 & !0xff) << 12);
        assert_eq!(decode_dev(enc), (259, 300));
    }
}
