//! `gkctl flash IMAGE DEVICE`: writes a firmware image to a USB stick or a box's disk
//! with its block map, and proves it: every mapped range is checked against the bmap's
//! SHA-256 while it is read from the image, and again after it is written, read back
//! from the device with the page cache dropped. Refuses mounted disks, the system disk,
//! partitions, swap, and (unless `--force`) disks that are neither removable nor on USB.
//! A regular file can stand for the device (tests, or making a copy): it is made sparse
//! and exactly the image's size.
//!
//! Exit status: 0 written and verified; 1 refused (a device that may not be written, a
//! bmap or image that does not check out, a manifest signature that fails, a device
//! that does not read back what was written); 2 could not run.

pub mod bmap;
pub mod device;
mod progress;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::os::unix::fs::{FileExt as _, FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use gk_bundle::trust::TrustStore;
use gk_bundle::update;
use sha2::{Digest, Sha256};

use bmap::Bmap;
use device::{human, DevNo, Disk};
use progress::Progress;

/// Read and write in pieces of this size.
const CHUNK: usize = 1 << 20;
/// Flush to the device after this many bytes, so that the progress shown is the
/// device's and not the page cache's (a stick otherwise "finishes" at memory speed and
/// then sits in the final fsync for minutes).
const SYNC_EVERY: u64 = 64 << 20;

#[derive(Debug, Args)]
#[command(after_long_help = FLASH_HELP)]
pub struct FlashArgs {
    /// The image to write (`out/<board>/disk.img`).
    pub image: PathBuf,
    /// The whole disk to write it to (`/dev/sdb`), or a regular file standing for one.
    pub device: PathBuf,
    /// The block map (default: IMAGE.bmap, which `make image` writes next to the image).
    #[arg(long, value_name = "FILE")]
    pub bmap: Option<PathBuf>,
    /// Write a disk that is neither removable nor on USB (an internal disk). Mounted
    /// disks and the system disk are refused even so.
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation (scripts); everything else is still checked.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// A trust store (directory of *.pub, optional trust.toml): the image's
    /// manifest.json must be signed by it and must list the bmap's SHA-256, or nothing
    /// is written. Without it the signature is reported as not verified.
    #[arg(long, value_name = "DIR")]
    pub trust: Option<PathBuf>,
    /// The sysfs tree to judge block devices by (tests).
    #[arg(long, value_name = "DIR", default_value = "/sys", hide = true)]
    pub sysfs: PathBuf,
    /// The mount table to judge block devices by (tests).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/proc/self/mountinfo",
        hide = true
    )]
    pub mountinfo: PathBuf,
}

const FLASH_HELP: &str = "\
Writes only the blocks the bmap lists (a fresh image is mostly empty: root B and the free \
space are not written), checking each range's SHA-256 as it is read from the image, then \
flushes the device, drops its cache and reads every range back to check it again. The \
device must be a whole disk (/dev/sdb, not /dev/sdb1) that is not mounted, holds neither / \
nor /boot, is not swap, is at least as large as the image, and is removable or on USB \
(--force for an internal disk). Its vendor, model and size are shown and you are asked to \
type yes (--yes skips that).

With --trust DIR the manifest.json next to the image must carry a valid signature in \
manifest.json.sig by keys of DIR (k of n, as for bundles) and must list the SHA-256 of the \
bmap, which ties the signature to every byte written; without --trust the manifest's \
version and board are shown as 'not verified'.

A regular file as DEVICE gets an exact, sparse copy (unmapped blocks are holes).

Example:
  gkctl flash --trust trust out/qemu-x86_64/disk.img /dev/sdb

Exit status: 0 written and verified; 1 refused (nothing written, or for a read-back \
failure: the device holds a bad image); 2 could not run.";

/// A refusal: the input or the device was judged and found wanting (exit 1).
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refuse<T>(message: String) -> anyhow::Result<T> {
    Err(Refused(message).into())
}

/// What DEVICE is.
#[derive(Debug)]
enum Target {
    Block(Disk),
    File,
}

pub fn flash(args: &FlashArgs) -> anyhow::Result<ExitCode> {
    match run(args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => match e.downcast_ref::<Refused>() {
            Some(r) => {
                eprintln!("gkctl flash: refused: {r}");
                Ok(ExitCode::from(1))
            }
            None => Err(e),
        },
    }
}

fn run(args: &FlashArgs) -> anyhow::Result<()> {
    let image_path = &args.image;
    let image = File::open(image_path)
        .with_context(|| format!("cannot open the image {}", image_path.display()))?;
    let image_meta = image.metadata()?;
    if !image_meta.is_file() {
        anyhow::bail!("{}: not a regular file", image_path.display());
    }
    let bmap_path = args.bmap.clone().unwrap_or_else(|| {
        let mut p = image_path.clone().into_os_string();
        p.push(".bmap");
        PathBuf::from(p)
    });
    let bmap_bytes = fs::read(&bmap_path).with_context(|| {
        format!(
            "cannot read the block map {} (make image writes it next to disk.img; or give \
             --bmap FILE)",
            bmap_path.display()
        )
    })?;
    let map = match bmap::parse(&bmap_bytes) {
        Ok(map) => map,
        Err(e) => return refuse(format!("{}: {e}", bmap_path.display())),
    };
    if map.image_size != image_meta.len() {
        return refuse(format!(
            "{} is for an image of {} bytes, but {} is {} bytes: not its block map",
            bmap_path.display(),
            map.image_size,
            image_path.display(),
            image_meta.len()
        ));
    }
    let bmap_sha256 = bmap::hex(&Sha256::digest(&bmap_bytes));

    let manifest = manifest_status(image_path, &bmap_sha256, args.trust.as_deref())?;
    for line in &manifest.lines {
        println!("{line}");
    }
    if let Some(problem) = manifest.refusal {
        return refuse(problem);
    }

    let target = judge_target(args, &image_meta, map.image_size)?;
    let shown = match &target {
        Target::Block(disk) => format!("{} ({})", args.device.display(), disk.describe()),
        Target::File => format!("{} (a regular file)", args.device.display()),
    };
    println!(
        "will write {} ({}; {} image, {} mapped in {} ranges) to {shown}",
        image_path.display(),
        manifest.title,
        human(map.image_size),
        human(map.mapped_bytes()),
        map.ranges.len()
    );
    if !args.yes && !confirm(&shown)? {
        return refuse("not confirmed; nothing was written".into());
    }

    let out = open_target(&args.device, &target, map.image_size)?;
    let start = Instant::now();
    write_ranges(&image, image_path, &out, &args.device, &map)?;
    let written = start.elapsed();
    verify_ranges(&out, &args.device, &map)?;
    let total = start.elapsed();
    let mapped = map.mapped_bytes();
    println!(
        "{}: wrote {} in {:.1} s ({}/s), then read every one of its {} ranges back: all \
         match the bmap ({:.1} s in all)",
        args.device.display(),
        human(mapped),
        written.as_secs_f64(),
        human((mapped as f64 / written.as_secs_f64().max(1e-3)) as u64),
        map.ranges.len(),
        total.as_secs_f64()
    );
    println!("{}", manifest.summary);
    if matches!(target, Target::Block(_)) {
        println!("done: the data is on the device; it is safe to remove it");
    }
    Ok(())
}

/// Checks DEVICE: a block device (judged through sysfs and the mount table), an existing
/// regular file that is not the image, or a new file in an existing directory.
fn judge_target(args: &FlashArgs, image: &fs::Metadata, image_size: u64) -> anyhow::Result<Target> {
    let path = &args.device;
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if path.to_string_lossy().starts_with("/dev/") {
                return refuse(format!(
                    "{} does not exist (is the stick plugged in? `lsblk` lists the disks)",
                    path.display()
                ));
            }
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            if let Some(parent) = parent {
                if !parent.is_dir() {
                    anyhow::bail!("{}: no such directory", parent.display());
                }
            }
            return Ok(Target::File);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot look at {}", path.display())),
    };
    if meta.is_file() {
        if meta.dev() == image.dev() && meta.ino() == image.ino() {
            return refuse(format!("{} is the image itself", path.display()));
        }
        return Ok(Target::File);
    }
    if !meta.file_type().is_block_device() {
        return refuse(format!(
            "{} is neither a block device nor a regular file",
            path.display()
        ));
    }
    let dev = DevNo::from_rdev(meta.rdev());
    let disk = device::inspect(&args.sysfs, dev).map_err(Refused)?;
    let mountinfo = fs::read_to_string(&args.mountinfo)
        .with_context(|| format!("cannot read {}", args.mountinfo.display()))?;
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    device::check(&disk, &mountinfo, &swaps, args.force, image_size).map_err(Refused)?;
    Ok(Target::Block(disk))
}

/// Asks on the terminal (or stdin) for `yes`.
fn confirm(shown: &str) -> anyhow::Result<bool> {
    eprint!("Everything on {shown} will be lost.\nType yes to write it: ");
    io::stderr().flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// Opens the target for writing and reading back. A block device is opened with
/// O_EXCL, which the kernel refuses (EBUSY) while anything has it mounted or claimed —
/// a last check against a mount that appeared since the mount table was read. A
/// regular file is emptied and set to the image's size (all holes).
fn open_target(path: &Path, target: &Target, image_size: u64) -> anyhow::Result<File> {
    match target {
        Target::Block(_) => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_EXCL)
                .open(path);
            let file = match file {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    return refuse(format!(
                        "{} is busy (mounted or in use by another program)",
                        path.display()
                    ))
                }
                other => {
                    other.with_context(|| format!("cannot open {} for writing", path.display()))?
                }
            };
            let size = io::Seek::seek(&mut &file, io::SeekFrom::End(0))?;
            if size < image_size {
                return refuse(format!(
                    "{} is {size} bytes; the image needs {image_size}",
                    path.display()
                ));
            }
            Ok(file)
        }
        Target::File => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            file.set_len(image_size)
                .with_context(|| format!("cannot size {} to {image_size} bytes", path.display()))?;
            Ok(file)
        }
    }
}

fn blocks(range: &bmap::Range) -> String {
    if range.first == range.last {
        format!("block {}", range.first)
    } else {
        format!("blocks {}-{}", range.first, range.last)
    }
}

/// Copies every mapped range, hashing what it reads from the image; a range that does
/// not hash to its bmap checksum stops the copy.
fn write_ranges(
    image: &File,
    image_path: &Path,
    out: &File,
    out_path: &Path,
    map: &Bmap,
) -> anyhow::Result<()> {
    let mut progress = Progress::new("writing", map.mapped_bytes());
    let mut buf = vec![0u8; CHUNK];
    let mut since_sync = 0u64;
    for range in &map.ranges {
        let (start, len) = map.bytes(range);
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        while done < len {
            let n = CHUNK.min((len - done) as usize);
            image
                .read_exact_at(&mut buf[..n], start + done)
                .with_context(|| {
                    format!("reading {} at byte {}", image_path.display(), start + done)
                })?;
            hasher.update(&buf[..n]);
            out.write_all_at(&buf[..n], start + done).with_context(|| {
                format!("writing {} at byte {}", out_path.display(), start + done)
            })?;
            done += n as u64;
            since_sync += n as u64;
            progress.advance(n as u64);
            if since_sync >= SYNC_EVERY {
                out.sync_data()
                    .with_context(|| format!("flushing {}", out_path.display()))?;
                since_sync = 0;
            }
        }
        if <[u8; 32]>::from(hasher.finalize()) != range.sha256 {
            progress.abandon();
            return refuse(format!(
                "{} of {} (bmap line {}) do not match their SHA-256 in the bmap: the image is \
                 damaged, or the bmap is another image's. {} now holds a partial image: do \
                 not use it; flash again from a good copy",
                blocks(range),
                image_path.display(),
                range.line,
                out_path.display()
            ));
        }
    }
    out.sync_all()
        .with_context(|| format!("flushing {}", out_path.display()))?;
    progress.finish();
    Ok(())
}

/// Reads every mapped range back from the device, after dropping its cached pages so
/// that the bytes come from the medium, and checks each against the bmap.
fn verify_ranges(out: &File, out_path: &Path, map: &Bmap) -> anyhow::Result<()> {
    // Clean pages only (they were just flushed); a failure here means the read-back may
    // come from memory, which is still a check of the write path, so it is not fatal.
    if let Err(e) = nix::fcntl::posix_fadvise(
        out,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    ) {
        eprintln!(
            "gkctl flash: warning: cannot drop the cache of {} ({e}); the read-back may come \
             from memory",
            out_path.display()
        );
    }
    let mut progress = Progress::new("verifying", map.mapped_bytes());
    let mut buf = vec![0u8; CHUNK];
    for range in &map.ranges {
        let (start, len) = map.bytes(range);
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        while done < len {
            let n = CHUNK.min((len - done) as usize);
            out.read_exact_at(&mut buf[..n], start + done)
                .with_context(|| {
                    format!(
                        "reading back {} at byte {}",
                        out_path.display(),
                        start + done
                    )
                })?;
            hasher.update(&buf[..n]);
            done += n as u64;
            progress.advance(n as u64);
        }
        if <[u8; 32]>::from(hasher.finalize()) != range.sha256 {
            progress.abandon();
            return refuse(format!(
                "{} read back from {} differ from what was written (bmap line {}): the device \
                 is failing, or is a fake that reports more capacity than it has. Do not use \
                 it",
                blocks(range),
                out_path.display(),
                range.line
            ));
        }
    }
    progress.finish();
    Ok(())
}

/// What the manifest next to the image says, and what its signature is worth.
#[derive(Debug, Default)]
struct ManifestStatus {
    /// Printed before anything is written.
    lines: Vec<String>,
    /// "gatekeeper 0.1.0 for qemu-x86_64" or "an image without a manifest".
    title: String,
    /// One line for the end.
    summary: String,
    /// With --trust: why nothing may be written.
    refusal: Option<String>,
}

fn manifest_status(
    image: &Path,
    bmap_sha256: &str,
    trust_dir: Option<&Path>,
) -> anyhow::Result<ManifestStatus> {
    let dir = image
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let path = dir.join("manifest.json");
    let sig_path = dir.join("manifest.json.sig");
    let trust = match trust_dir {
        Some(d) => Some(TrustStore::load(d)?),
        None => None,
    };
    let mut status = ManifestStatus::default();
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            status.title = "no manifest".into();
            status.summary = format!("manifest: none ({} is missing)", path.display());
            status.lines.push(status.summary.clone());
            if trust.is_some() {
                status.refusal = Some(format!(
                    "--trust was given, but there is no {} to verify",
                    path.display()
                ));
            }
            return Ok(status);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let json: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            status.title = "a broken manifest".into();
            status.summary = format!("manifest: {}: not valid JSON ({e})", path.display());
            status.lines.push(status.summary.clone());
            if trust.is_some() {
                status.refusal = Some(status.summary.clone());
            }
            return Ok(status);
        }
    };
    let field = |k: &str| {
        json.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string()
    };
    let (version, board) = (field("version"), field("board"));
    status.title = format!("gatekeeper {version} for {board}");
    let commit = json
        .get("commit")
        .and_then(|v| v.as_str())
        .map(|c| format!(", commit {c}"))
        .unwrap_or_default();
    status.lines.push(format!(
        "manifest: version {version}, board {board}{commit}"
    ));
    let covers = mentions(&json, bmap_sha256);

    let signature = match &trust {
        None => "not verified: no --trust".to_string(),
        Some(trust) => match fs::read(&sig_path) {
            Err(e) => {
                let s = format!("cannot read {} ({e})", sig_path.display());
                status.refusal = Some(format!("--trust was given, but {s}"));
                s
            }
            Ok(sig) => match update::verify_manifest(&bytes, &sig, trust) {
                Err(e) => {
                    let s = format!("REFUSED ({}): {e}", e.code());
                    status.refusal = Some(format!("{}: {e}", sig_path.display()));
                    s
                }
                Ok(ids) => {
                    if !covers {
                        status.refusal = Some(format!(
                            "{} is signed, but does not list the SHA-256 of the bmap \
                             ({bmap_sha256}): the signature does not cover what would be \
                             written (a manifest of another build?)",
                            path.display()
                        ));
                    }
                    format!("ok, by {}", trust.describe_signers(&ids))
                }
            },
        },
    };
    status
        .lines
        .push(format!("manifest signature: {signature}"));
    status.lines.push(if covers {
        "manifest lists this bmap's SHA-256: the signature covers every block written".into()
    } else {
        format!("manifest does NOT list this bmap's SHA-256 ({bmap_sha256})")
    });
    status.summary =
        format!("image: gatekeeper {version} for {board}{commit}; manifest signature: {signature}");
    Ok(status)
}

/// Whether `digest` (lowercase hex) is any string in the JSON (the manifest's layout of
/// its hashes is the image builder's; any place counts).
fn mentions(json: &serde_json::Value, digest: &str) -> bool {
    match json {
        serde_json::Value::String(s) => s.eq_ignore_ascii_case(digest),
        serde_json::Value::Array(items) => items.iter().any(|v| mentions(v, digest)),
        serde_json::Value::Object(map) => map.values().any(|v| mentions(v, digest)),
        _ => false,
    }
}

/// Whether progress goes to a terminal (a bar) or a log (lines).
pub(crate) fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}
