//! `gk-image build`: one board, one profile, from the lock file's Debian packages and
//! the static binaries the Makefile built, to `out/<board>/`. No root, no loop mounts:
//! every filesystem is made in a file by its own tool (mksquashfs, veritysetup,
//! mkfs.vfat + mtools, mkfs.ext4 -d), and the disk is assembled by writing those files
//! at their offsets.
//!
//! Reproducibility: every time is SOURCE_DATE_EPOCH (the commit's time), every id is
//! derived from the board name ([`crate::guid`]), inputs are sorted, and the tools are
//! run with fixed options (`--invariant`, `-all-root`, `E2FSPROGS_FAKE_TIME`, …).
//! `gk-image compare` (make image-check) checks that it holds.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use gk_bundle::keys::{PublicKey, SecretKey};

use crate::bsp::{self, Arch, Board, Boot, PortId};
use crate::cpio;
use crate::debian::{self, Cache, Kernel, Lock, LockedPackage};
use crate::disk::{self, human, Layout};
use crate::guid;
use crate::modules::ModuleDb;
use crate::pe;
use crate::tools;
use crate::verity::{self, VerityParams};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Production: needs --trust and --key, refuses the published test-only keys.
    Prod,
    /// For the QEMU tests: trusts config/keys/*.pub, USB test hooks active.
    Test,
    /// As test, plus a busybox shell.
    Dev,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Prod => "prod",
            Profile::Test => "test",
            Profile::Dev => "dev",
        }
    }
}

#[derive(Debug)]
pub struct Options {
    /// The repository root: bsp/, config/keys/, image/debian.lock, git.
    pub repo: PathBuf,
    pub board: String,
    pub profile: Profile,
    pub trust: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Where gatekeeperd, gkctl and gk-init (static musl, the board's architecture) are.
    pub bin_dir: PathBuf,
    pub out: PathBuf,
    pub cache: PathBuf,
    /// U-Boot boards: a directory with idbloader.img and u-boot.itb.
    pub uboot_dir: Option<PathBuf>,
    /// A variant name ([`check_variant`]), appended to the version as `+NAME`: the same
    /// commit built as a different image (another root hash), e.g. an update to test.
    pub variant: Option<String>,
    /// Overrides the board's `on_failure` (`--on-failure`).
    pub on_failure: Option<bsp::OnFailure>,
}

/// A variant name is `[a-z0-9-]{1,32}`: it becomes part of the version, which the box
/// prints and compares (and the UKI's `PRETTY_NAME`; nothing orders boot entries by it).
pub fn check_variant(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > 32 {
        return Err(format!("{name:?}: a variant name has 1 to 32 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "{name:?}: {c:?} is not allowed in a variant name (only a-z, 0-9 and -)"
        ));
    }
    Ok(name.to_string())
}

/// The version recorded everywhere (release.json, board.toml, the UKI's os-release, the
/// manifest, the update header): `<crate version>+g<commit>[.dirty][+<variant>]`.
pub fn version_string(git: &GitInfo, variant: Option<&str>) -> String {
    let short = &git.commit[..git.commit.len().min(7)];
    format!(
        "{}+g{short}{}{}",
        env!("CARGO_PKG_VERSION"),
        if git.dirty { ".dirty" } else { "" },
        variant.map(|v| format!("+{v}")).unwrap_or_default()
    )
}

/// Progress lines on stderr: the time since the start, the step, its size.
struct Progress {
    start: Instant,
}

impl Progress {
    fn say(&self, what: &str, detail: impl AsRef<str>) {
        eprintln!(
            "gk-image [{:6.1}s] {what}: {}",
            self.start.elapsed().as_secs_f64(),
            detail.as_ref()
        );
    }
}

fn size_of(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The commit, its time and whether the tree has uncommitted changes.
#[derive(Debug, Clone)]
pub struct GitInfo {
    pub commit: String,
    pub epoch: u64,
    pub dirty: bool,
}

pub fn git_info(repo: &Path) -> Result<GitInfo> {
    let git = |args: &[&str]| -> Result<String> {
        let mut c = tools::command("git")?;
        c.arg("-C").arg(repo).args(args);
        Ok(String::from_utf8_lossy(&tools::run(c)?.stdout)
            .trim()
            .to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]).context("the image is built from a git checkout")?;
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        _ => git(&["log", "-1", "--format=%ct"])?
            .parse()
            .context("git log -1 --format=%ct gave no time")?,
    };
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"])?.is_empty();
    Ok(GitInfo {
        commit,
        epoch,
        dirty,
    })
}

/// The trust store to put in the image and the key that signs the manifest and the
/// update, checked against the profile before anything is built.
struct Signing {
    trust_dir: PathBuf,
    trust_files: Vec<PathBuf>,
    trusted: Vec<PublicKey>,
    key: SecretKey,
}

fn signing(o: &Options) -> Result<Signing> {
    let keys_dir = o.repo.join("config/keys");
    let (trust_dir, key_path) = match o.profile {
        Profile::Prod => {
            let trust = o.trust.clone().context(
                "PROFILE=prod needs TRUST=<directory of *.pub (and trust.toml)> and KEY=<signing key>",
            )?;
            let key = o
                .key
                .clone()
                .context("PROFILE=prod needs KEY=<the signing .key file>")?;
            (trust, key)
        }
        Profile::Test | Profile::Dev => (
            o.trust.clone().unwrap_or_else(|| keys_dir.clone()),
            o.key
                .clone()
                .unwrap_or_else(|| keys_dir.join("test-only-signer-1.key")),
        ),
    };
    let store = gk_bundle::trust::TrustStore::load(&trust_dir)
        .with_context(|| format!("trust store {}", trust_dir.display()))?;
    let (key, warning) = gk_bundle::keys::read_secret_checked(&key_path)?;
    if let Some(w) = warning {
        if o.profile == Profile::Prod {
            bail!("{w} (a production signing key must be private)");
        }
    }
    if o.profile == Profile::Prod {
        let test: Vec<String> = store
            .test_only_keys()
            .iter()
            .map(|k| format!("{} ({})", k.name, k.id))
            .collect();
        if !test.is_empty() {
            bail!(
                "{}: holds the published test-only keys {}; a production image must not trust them",
                trust_dir.display(),
                test.join(", ")
            );
        }
        if key.public().is_test_only() {
            bail!(
                "{}: is a published test-only key; sign production images with your own key",
                key_path.display()
            );
        }
    }
    if store.find(&key.id()).is_none() {
        bail!(
            "{}: key {} ({}) is not in the trust store {}: the box would refuse the image's own updates",
            key_path.display(),
            key.id(),
            key.name,
            trust_dir.display()
        );
    }
    let mut trust_files: Vec<PathBuf> = fs::read_dir(&trust_dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            !n.starts_with('.') && (n.ends_with(".pub") || n == gk_bundle::trust::TRUST_FILE)
        })
        .collect();
    trust_files.sort();
    let mut trusted = Vec::new();
    for f in &trust_files {
        if f.extension().is_some_and(|e| e == "pub") {
            trusted.push(gk_bundle::keys::read_public(f)?);
        }
    }
    Ok(Signing {
        trust_dir,
        trust_files,
        trusted,
        key,
    })
}

/// Tools this board's build runs.
fn needed_tools(board: &Board) -> Vec<&'static str> {
    let mut t = vec![
        "apt-get",
        "dpkg-deb",
        "depmod",
        "mksquashfs",
        "veritysetup",
        "objcopy",
        "mkfs.vfat",
        "mmd",
        "mcopy",
        "mkfs.ext4",
        "debugfs",
        "sgdisk",
        "bmaptool",
        "gzip",
        "git",
    ];
    if board.arch == Arch::Aarch64 {
        t.push("aarch64-linux-gnu-objcopy");
    }
    t
}

/// The objcopy that understands the board's ELF and PE files (Debian's host objcopy
/// on x86_64 knows no aarch64 PE: `binutils-aarch64-linux-gnu`'s does).
fn objcopy(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "objcopy",
        Arch::Aarch64 => "aarch64-linux-gnu-objcopy",
    }
}

/// The packages a board needs (for `gk-image lock`): (name, Debian arch, meta).
pub fn wanted_packages(board: &Board) -> Vec<debian::Wanted> {
    let arch = board.arch.debian().to_string();
    let w = |name: &str, meta: bool| debian::Wanted {
        name: name.to_string(),
        arch: arch.clone(),
        meta,
    };
    let mut v = vec![w(&board.kernel_package, true), w("busybox-static", false)];
    match board.boot {
        Boot::Uefi | Boot::UBoot => v.push(w("systemd-boot-efi", false)),
        Boot::Bios => {
            v.push(w("syslinux", false));
            v.push(w("syslinux-common", false));
        }
    }
    v
}

/// What a build produced (for the summary and the tests).
#[derive(Debug)]
pub struct Built {
    pub disk: PathBuf,
    pub disk_bytes: u64,
    pub mapped_bytes: u64,
    pub verity: VerityParams,
    pub elapsed: Duration,
}

pub fn build(o: &Options) -> Result<Built> {
    let progress = Progress {
        start: Instant::now(),
    };
    let mut board = bsp::load(&o.repo.join("bsp"), &o.board)?;
    if let Some(mode) = o.on_failure {
        board.on_failure = mode;
    }
    let signing = signing(o)?;
    tools::require(&needed_tools(&board))?;
    let git = git_info(&o.repo)?;
    if let Some(v) = &o.variant {
        check_variant(v).map_err(anyhow::Error::msg)?;
    }
    let version = version_string(&git, o.variant.as_deref());
    progress.say(
        "board",
        format!(
            "{} ({}, {}, profile {}), version {version}, SOURCE_DATE_EPOCH={}{}",
            board.name,
            board.arch.rust(),
            board.boot.as_str(),
            o.profile.as_str(),
            git.epoch,
            if git.dirty {
                " — the tree has uncommitted changes"
            } else {
                ""
            }
        ),
    );
    let uboot_files = match (&board.uboot, &o.uboot_dir) {
        (None, _) => None,
        (Some(_), None) => bail!(
            "board {} boots with U-Boot, which Debian does not package for it: build U-Boot \
             for the board (idbloader.img and u-boot.itb) and pass UBOOT_DIR=<directory with \
             both> (see bsp/{}.toml)",
            board.name,
            board.name
        ),
        (Some(_), Some(dir)) => {
            let idb = dir.join("idbloader.img");
            let itb = dir.join("u-boot.itb");
            for f in [&idb, &itb] {
                if !f.is_file() {
                    bail!(
                        "UBOOT_DIR={}: no {} (need idbloader.img and u-boot.itb)",
                        dir.display(),
                        f.display()
                    );
                }
            }
            Some((fs::read(&idb)?, fs::read(&itb)?))
        }
    };

    // Output directory: our files only, the work directory afresh.
    let work = o.out.join("work");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    for f in [
        "disk.img",
        "disk.img.bmap",
        "SHA256SUMS",
        "manifest.json",
        "manifest.json.sig",
        "update.gku",
    ] {
        let _ = fs::remove_file(o.out.join(f));
    }

    // Binaries.
    let bins = ["gatekeeperd", "gkctl", "gk-init"];
    for b in bins {
        check_binary(&o.bin_dir.join(b), board.arch)?;
    }
    let mut stripped = std::collections::BTreeMap::new();
    for b in bins {
        let out = work.join(format!("bin-{b}"));
        let mut c = tools::command(objcopy(board.arch))?;
        c.arg("--strip-debug").arg(o.bin_dir.join(b)).arg(&out);
        tools::run(c)?;
        stripped.insert(b, fs::read(&out)?);
    }
    progress.say(
        "binaries",
        bins.iter()
            .map(|b| format!("{b} {}", human(stripped[b].len() as u64)))
            .collect::<Vec<_>>()
            .join(", "),
    );

    // Packages.
    let lock = Lock::load(&o.repo.join("image/debian.lock"))?;
    let cache = Cache {
        dir: o.cache.clone(),
    };
    let arch = board.arch.debian();
    let kernel_pkg = lock.find(&board.kernel_package, arch)?.clone();
    let mut used: Vec<LockedPackage> = vec![kernel_pkg.clone()];
    let kernel = Kernel::open(&cache.unpacked(&kernel_pkg)?)?;
    let boot_pkgs: Vec<LockedPackage> = match board.boot {
        Boot::Uefi | Boot::UBoot => vec![lock.find("systemd-boot-efi", arch)?.clone()],
        Boot::Bios => vec![
            lock.find("syslinux", arch)?.clone(),
            lock.find("syslinux-common", arch)?.clone(),
        ],
    };
    let mut boot_dirs = Vec::new();
    for p in &boot_pkgs {
        boot_dirs.push(cache.unpacked(p)?);
        used.push(p.clone());
    }
    let busybox = if o.profile == Profile::Dev {
        let p = lock.find("busybox-static", arch)?.clone();
        let dir = cache.unpacked(&p)?;
        used.push(p);
        Some(fs::read(dir.join("bin/busybox")).context("busybox-static has no bin/busybox")?)
    } else {
        None
    };
    progress.say(
        "packages",
        used.iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect::<Vec<_>>()
            .join(", "),
    );

    // Modules.
    let mdir = kernel.modules_dir();
    let db = ModuleDb::parse(
        &fs::read_to_string(mdir.join("modules.dep"))?,
        &fs::read_to_string(mdir.join("modules.builtin")).unwrap_or_default(),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", mdir.display()))?;
    let resolved = db
        .resolve(&board.modules, &kernel.release)
        .map_err(anyhow::Error::msg)?;
    let mut module_bytes = 0u64;
    for m in &resolved.load_order {
        module_bytes += size_of(&mdir.join(m));
    }
    progress.say(
        "modules",
        format!(
            "{} files ({}) for {} requested, built in: {}",
            resolved.load_order.len(),
            human(module_bytes),
            board.modules.len(),
            if resolved.builtin.is_empty() {
                "none".to_string()
            } else {
                resolved.builtin.join(" ")
            }
        ),
    );

    let board_toml = board_toml(
        &board,
        o.profile,
        &version,
        &kernel.release,
        &resolved.load_order,
    );
    let release_json = serde_json::to_string_pretty(&serde_json::json!({
        "version": version,
        "board": board.name,
        "profile": o.profile.as_str(),
        "commit": git.commit,
        "source_date_epoch": git.epoch,
    }))? + "\n";

    // Root filesystem.
    let stage = work.join("rootfs");
    let mut tree = Tree::new(&stage, git.epoch);
    for d in [
        "dev",
        "proc",
        "sys",
        "run",
        "data",
        "tmp",
        "mnt",
        "etc/gatekeeper/trust",
        "sbin",
        "usr/bin",
    ] {
        tree.dir(d)?;
    }
    tree.file("sbin/init", &stripped["gk-init"], 0o755)?;
    tree.file("usr/bin/gatekeeperd", &stripped["gatekeeperd"], 0o755)?;
    tree.file("usr/bin/gkctl", &stripped["gkctl"], 0o755)?;
    tree.file("etc/gatekeeper/board.toml", board_toml.as_bytes(), 0o644)?;
    tree.file(
        "etc/gatekeeper/release.json",
        release_json.as_bytes(),
        0o644,
    )?;
    for f in &signing.trust_files {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        tree.file(
            &format!("etc/gatekeeper/trust/{name}"),
            &fs::read(f)?,
            0o644,
        )?;
    }
    if let Some(bb) = &busybox {
        tree.dir("bin")?;
        tree.file("bin/busybox", bb, 0o755)?;
        tree.symlink("bin/sh", "busybox")?;
    }
    tree.finish()?;
    let sqfs = work.join("root.squashfs");
    let mut c = tools::command("mksquashfs")?;
    c.arg(&stage).arg(&sqfs).args([
        "-noappend",
        "-all-root",
        "-no-xattrs",
        "-comp",
        "zstd",
        "-no-progress",
        "-quiet",
        "-mkfs-time",
        &git.epoch.to_string(),
        "-all-time",
        &git.epoch.to_string(),
    ]);
    tools::run(c)?;
    progress.say("squashfs root", human(size_of(&sqfs)));

    let verity = make_verity(&board.name, &sqfs, &work)?;
    let root_img = work.join("root.img");
    progress.say(
        "dm-verity",
        format!(
            "{} data blocks, hash tree {} at offset {}, root {}",
            verity.data_blocks,
            human(verity.hash_bytes),
            verity.hash_offset,
            verity.root_hash
        ),
    );

    // Initramfs.
    let mut a = cpio::Archive::new();
    a.file("init", stripped["gk-init"].clone(), 0o755);
    for m in &resolved.load_order {
        let bytes = fs::read(mdir.join(m)).with_context(|| format!("module {m}"))?;
        a.file(&format!("lib/modules/{}/{m}", kernel.release), bytes, 0o644);
    }
    a.file(
        "etc/gatekeeper/board.toml",
        board_toml.clone().into_bytes(),
        0o644,
    );
    for d in ["dev", "proc", "sys", "run", "newroot"] {
        a.dir(d, 0o755);
    }
    let cpio_path = work.join("initramfs.cpio");
    fs::write(
        &cpio_path,
        a.to_bytes(u32::try_from(git.epoch).unwrap_or(u32::MAX)),
    )?;
    let initrd = work.join("initramfs.cpio.gz");
    let mut c = tools::command("gzip")?;
    c.args(["-n", "-9", "-k", "-f"]).arg(&cpio_path);
    tools::run(c)?;
    progress.say(
        "initramfs",
        format!(
            "{} (cpio {})",
            human(size_of(&initrd)),
            human(size_of(&cpio_path))
        ),
    );

    // Kernel command line.
    let mut cmdline = vec![board.console.kernel_arg(), "panic=10".to_string()];
    cmdline.extend(board.cmdline.iter().cloned());
    cmdline.push(verity.cmdline());
    let cmdline = cmdline.join(" ");

    // ESP.
    let layout = Layout::new(&board.name, &board.partitions);
    let esp = work.join("esp.img");
    let esp_part = layout.part(disk::ESP);
    let mut c = tools::command("mkfs.vfat")?;
    c.args([
        "--invariant",
        "-F",
        "32",
        "-s",
        "1",
        "-S",
        "512",
        "-n",
        "GK-ESP",
        "-i",
    ])
    .arg(guid::fat_volume_id(&board.name))
    .arg("-C")
    .arg(&esp)
    .arg((esp_part.bytes() / 1024).to_string());
    tools::run(c)?;
    let fat = Fat {
        image: esp.clone(),
        epoch: git.epoch,
    };
    let mut uki_path = None;
    match board.boot {
        Boot::Uefi | Boot::UBoot => {
            let sdboot_dir = boot_dirs[0].join("usr/lib/systemd/boot/efi");
            let efi = board.arch.efi();
            let uki = work.join("gatekeeper-1-a.efi");
            let dtb = match &board.uboot {
                Some(u) => {
                    let p = kernel.dtb_dir().join(&u.dtb);
                    if !p.is_file() {
                        bail!(
                            "uboot.dtb {}: not in {} ({})",
                            u.dtb,
                            kernel_pkg.name,
                            p.display()
                        );
                    }
                    Some(p)
                }
                None => None,
            };
            make_uki(
                board.arch,
                &sdboot_dir.join(format!("linux{efi}.efi.stub")),
                &kernel.vmlinuz,
                &initrd,
                &cmdline,
                &os_release(&board, &version),
                dtb.as_deref(),
                &work,
                &uki,
                git.epoch,
            )?;
            progress.say(
                "unified kernel image",
                format!("{} ({})", human(size_of(&uki)), uki.display()),
            );
            fat.mkdir(&[
                "/EFI",
                "/EFI/BOOT",
                "/EFI/Linux",
                "/loader",
                "/loader/entries",
            ])?;
            let loader = work.join("loader.conf");
            fs::write(&loader, "timeout 0\ndefault gatekeeper-*\neditor no\n")?;
            fat.copy(
                &sdboot_dir.join(format!("systemd-boot{efi}.efi")),
                &format!("/EFI/BOOT/BOOT{}.EFI", efi.to_uppercase()),
            )?;
            fat.copy(&loader, "/loader/loader.conf")?;
            fat.copy(&uki, "/EFI/Linux/gatekeeper-1-a.efi")?;
            uki_path = Some(uki);
        }
        Boot::Bios => {
            let syslinux = &boot_dirs[0];
            let common = &boot_dirs[1];
            fat.mkdir(&["/gk", "/gk/a", "/syslinux"])?;
            fat.copy(&kernel.vmlinuz, "/gk/a/vmlinuz")?;
            fat.copy(&initrd, "/gk/a/initrd.img")?;
            let cfg = work.join("syslinux.cfg");
            fs::write(&cfg, syslinux_cfg(&board, &cmdline))?;
            fat.copy(&cfg, "/syslinux/syslinux.cfg")?;
            // The installer (mtools flavour) writes ldlinux.sys and ldlinux.c32 into
            // the FAT image file and patches the boot sector: no loop device.
            let mut c = tools::command("sh")?;
            c.arg("-c")
                .arg("exec \"$0\" --install --directory /syslinux \"$1\"")
                .arg(syslinux.join("usr/bin/syslinux"))
                .arg(&esp)
                .env("MTOOLS_SKIP_CHECK", "1")
                .env("SOURCE_DATE_EPOCH", git.epoch.to_string());
            tools::run(c).context("syslinux --install on the ESP image")?;
            let mbr = fs::read(common.join("usr/lib/syslinux/mbr/gptmbr.bin"))
                .context("syslinux-common has no usr/lib/syslinux/mbr/gptmbr.bin")?;
            if mbr.len() > 440 {
                bail!(
                    "gptmbr.bin is {} bytes; the MBR boot code area holds 440",
                    mbr.len()
                );
            }
            fs::write(work.join("gptmbr.bin"), &mbr)?;
            progress.say(
                "syslinux",
                format!(
                    "kernel {}, initrd {}",
                    human(size_of(&kernel.vmlinuz)),
                    human(size_of(&initrd))
                ),
            );
        }
    }
    progress.say("ESP", format!("FAT32 {}", human(size_of(&esp))));

    // Data partition.
    let data_stage = work.join("data");
    let mut dt = Tree::new(&data_stage, git.epoch);
    dt.dir_mode("state", 0o700)?;
    dt.dir_mode("inbox", 0o700)?;
    dt.finish()?;
    let data_img = work.join("data.img");
    let data_part = layout.part(disk::DATA);
    let mut c = tools::command("mkfs.ext4")?;
    // MKE2FS_CONFIG=/dev/null (below) keeps the host's mke2fs.conf out, and with it the
    // default features: name them. The journal is what makes the state directory's
    // write-fsync-rename steps survive a power cut.
    c.args(["-q", "-F", "-b", "4096", "-I", "256", "-L", "gk-data"])
        .args([
            "-O",
            "has_journal,extent,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize,huge_file",
        ])
        .arg("-U")
        .arg(guid::guid(&board.name, "gk-data-fs"))
        .arg("-E")
        .arg(format!(
            "hash_seed={},root_owner=0:0,nodiscard",
            guid::guid(&board.name, "gk-data-hash-seed")
        ))
        .arg("-d")
        .arg(&data_stage)
        .arg(&data_img)
        .arg(format!("{}k", data_part.bytes() / 1024))
        .env("E2FSPROGS_FAKE_TIME", git.epoch.to_string())
        .env("MKE2FS_CONFIG", "/dev/null");
    tools::run(c)?;
    // mkfs.ext4 -d copies each staged file's ctime, which no one can set: set it after.
    let mut requests = String::new();
    for p in ["/", "/state", "/inbox"] {
        requests.push_str(&format!(
            "sif {p} ctime @{e}\nsif {p} atime @{e}\nsif {p} mtime @{e}\n",
            e = git.epoch
        ));
    }
    let req = work.join("data.debugfs");
    fs::write(&req, requests)?;
    let mut c = tools::command("debugfs")?;
    c.arg("-w")
        .arg("-f")
        .arg(&req)
        .arg(&data_img)
        .env("E2FSPROGS_FAKE_TIME", git.epoch.to_string());
    let out = tools::run(c)?;
    let said = String::from_utf8_lossy(&out.stderr);
    if let Some(bad) = said
        .lines()
        .find(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
    {
        bail!("debugfs on the data partition: {bad}");
    }
    progress.say(
        "data partition",
        format!("ext4 {}", human(size_of(&data_img))),
    );

    // Disk.
    let disk_path = o.out.join("disk.img");
    disk::create(&disk_path, &layout, board.boot == Boot::Bios)?;
    disk::write_at(
        &disk_path,
        esp_part.offset(),
        esp_part.bytes(),
        &esp,
        "the ESP",
    )?;
    let ra = layout.part(disk::ROOT_A);
    disk::write_at(
        &disk_path,
        ra.offset(),
        ra.bytes(),
        &root_img,
        "root A (squashfs + hash tree)",
    )?;
    disk::write_at(
        &disk_path,
        data_part.offset(),
        data_part.bytes(),
        &data_img,
        "the data partition",
    )?;
    if board.boot == Boot::Bios {
        disk::write_bytes(&disk_path, 0, &fs::read(work.join("gptmbr.bin"))?)?;
    }
    if let (Some(u), Some((idb, itb))) = (&board.uboot, &uboot_files) {
        let idb_room = (u.itb_sector - u.idbloader_sector) * disk::SECTOR;
        let itb_room = (board.partitions.reserved_mib * 2048 - u.itb_sector) * disk::SECTOR;
        if idb.len() as u64 > idb_room || itb.len() as u64 > itb_room {
            bail!(
                "U-Boot images too large: idbloader.img {} (room {}), u-boot.itb {} (room {})",
                idb.len(),
                idb_room,
                itb.len(),
                itb_room
            );
        }
        disk::write_bytes(&disk_path, u.idbloader_sector * disk::SECTOR, idb)?;
        disk::write_bytes(&disk_path, u.itb_sector * disk::SECTOR, itb)?;
    }
    let disk_bytes = size_of(&disk_path);
    let mapped = allocated_bytes(&disk_path);
    progress.say(
        "disk.img",
        format!("{} ({} with data)", human(disk_bytes), human(mapped)),
    );

    let bmap = o.out.join("disk.img.bmap");
    let mut c = tools::command("bmaptool")?;
    c.arg("create").arg("-o").arg(&bmap).arg(&disk_path);
    tools::run(c)?;
    progress.say("bmap", human(size_of(&bmap)));

    // The signed update of slot contents: this build's UKI and root image.
    let update = o.out.join("update.gku");
    let update_written = match &uki_path {
        Some(uki) => {
            write_update(
                &update,
                &board.name,
                &version,
                git.epoch,
                uki,
                &root_img,
                &verity,
                &signing.key,
            )?;
            progress.say("update.gku", human(size_of(&update)));
            true
        }
        None => {
            progress.say(
                "update.gku",
                "not written: updates carry a UKI, and legacy-BIOS boards boot a kernel and initrd (no update format for them yet)",
            );
            false
        }
    };

    // Manifest, signature, checksums.
    let mut files = serde_json::Map::new();
    let mut record = |name: &str, path: &Path| -> Result<()> {
        files.insert(
            name.to_string(),
            serde_json::json!({"sha256": debian::sha256_file(path)?, "size": size_of(path)}),
        );
        Ok(())
    };
    record("disk.img", &disk_path)?;
    record("disk.img.bmap", &bmap)?;
    if update_written {
        record("update.gku", &update)?;
    }
    if let Some(uki) = &uki_path {
        record("gatekeeper-1-a.efi", uki)?;
    }
    record("root.img", &root_img)?;
    record("initramfs.cpio.gz", &initrd)?;
    record("esp.img", &esp)?;
    record("data.img", &data_img)?;
    let manifest = serde_json::json!({
        "format": "gatekeeper-manifest-v1",
        "version": version,
        "board": board.name,
        "arch": board.arch.rust(),
        "boot": board.boot.as_str(),
        "profile": o.profile.as_str(),
        "commit": git.commit,
        "dirty": git.dirty,
        "source_date_epoch": git.epoch,
        "kernel_release": kernel.release,
        "cmdline": cmdline,
        "files": files,
        "verity": { "gk-root-a": verity },
        "partitions": layout.parts,
        "disk_guid": layout.disk_guid,
        "packages": used.iter().map(|p| serde_json::json!({
            "name": p.name, "version": p.version, "arch": p.arch, "sha256": p.sha256,
        })).collect::<Vec<_>>(),
        "modules": resolved.load_order,
        "trust": signing.trusted.iter().map(|k| serde_json::json!({"name": k.name, "id": k.id.to_string()})).collect::<Vec<_>>(),
        "trust_dir_test_only": signing.trusted.iter().any(|k| k.is_test_only()),
        "signer": signing.key.id().to_string(),
    });
    let manifest_bytes = serde_json::to_string_pretty(&manifest)? + "\n";
    let manifest_path = o.out.join("manifest.json");
    fs::write(&manifest_path, &manifest_bytes)?;
    let sig = gk_bundle::update::sign_manifest(manifest_bytes.as_bytes(), &[&signing.key])
        .map_err(|e| anyhow::anyhow!("signing the manifest: {e}"))?;
    let sig_path = o.out.join("manifest.json.sig");
    fs::write(&sig_path, sig)?;
    let mut sums = String::new();
    for name in [
        "disk.img",
        "disk.img.bmap",
        "manifest.json",
        "manifest.json.sig",
        "update.gku",
    ] {
        let p = o.out.join(name);
        if p.is_file() {
            sums.push_str(&format!("{}  {name}\n", debian::sha256_file(&p)?));
        }
    }
    fs::write(o.out.join("SHA256SUMS"), sums)?;
    progress.say(
        "manifest",
        format!(
            "signed by {} ({}){}; trust {}",
            signing.key.name,
            signing.key.id(),
            if signing.key.public().is_test_only() {
                " — a TEST-ONLY key"
            } else {
                ""
            },
            signing.trust_dir.display()
        ),
    );
    Ok(Built {
        disk: disk_path,
        disk_bytes,
        mapped_bytes: mapped,
        verity,
        elapsed: progress.start.elapsed(),
    })
}

fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).map(|m| m.blocks() * 512).unwrap_or(0)
}

/// A static ELF for the board's architecture (e_machine 62 or 183, no PT_INTERP).
fn check_binary(path: &Path, arch: Arch) -> Result<()> {
    let b = fs::read(path).with_context(|| {
        format!(
            "{}: missing; build it with `cargo build --release --locked --target {}-unknown-linux-musl -p gatekeeperd -p gkctl -p gk-init` (make image does)",
            path.display(),
            arch.rust()
        )
    })?;
    if b.len() < 64 || &b[0..4] != b"\x7fELF" || b[4] != 2 {
        bail!("{}: not a 64-bit ELF executable", path.display());
    }
    let machine = u16::from_le_bytes([b[18], b[19]]);
    let want = match arch {
        Arch::X86_64 => 62,
        Arch::Aarch64 => 183,
    };
    if machine != want {
        bail!(
            "{}: built for another architecture (ELF machine {machine}), the board is {}",
            path.display(),
            arch.rust()
        );
    }
    let phoff = u64::from_le_bytes(b[32..40].try_into().unwrap_or_default()) as usize;
    let phentsize = u16::from_le_bytes([b[54], b[55]]) as usize;
    let phnum = u16::from_le_bytes([b[56], b[57]]) as usize;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        if b.get(at..at + 4) == Some(&3u32.to_le_bytes()[..]) {
            bail!(
                "{}: dynamically linked (has an interpreter); the image needs static musl binaries",
                path.display()
            );
        }
    }
    Ok(())
}

/// `/etc/gatekeeper/board.toml`, as the brief's contract spells it.
pub fn board_toml(
    board: &Board,
    profile: Profile,
    version: &str,
    release: &str,
    modules: &[String],
) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut t = String::new();
    t.push_str("# Written by gk-image from bsp/; read by gk-init.\n");
    t.push_str(&format!("board = {}\n", q(&board.name)));
    t.push_str(&format!("arch = {}\n", q(board.arch.rust())));
    t.push_str(&format!("kernel_release = {}\n", q(release)));
    t.push_str(&format!("boot = {}\n", q(board.boot.as_str())));
    t.push_str(&format!("console = {}\n", q(&board.console.device)));
    t.push_str(&format!("profile = {}\n", q(profile.as_str())));
    t.push_str(&format!("version = {}\n", q(version)));
    t.push_str(&format!("on_failure = {}\n", q(board.on_failure.as_str())));
    t.push_str(&format!("link_propagation = {}\n", board.link_propagation));
    t.push_str("modules = [\n");
    for m in modules {
        t.push_str(&format!("    {},\n", q(m)));
    }
    t.push_str("]\n");
    for (name, port) in [("plant", &board.plant), ("asset", &board.asset)] {
        t.push_str(&format!("\n[ports.{name}]\n"));
        match port {
            PortId::Device(d) => t.push_str(&format!("device = {}\n", q(d))),
            PortId::Mac(m) => t.push_str(&format!("mac = {}\n", q(m))),
        }
    }
    if let Some(w) = &board.watchdog {
        t.push_str(&format!(
            "\n[watchdog]\ndevice = {}\ntimeout = {}\n",
            q(&w.device),
            w.timeout
        ));
    }
    if board.hooks.bypass.is_some() || board.hooks.status_led.is_some() {
        t.push_str("\n[hooks]\n");
        if let Some(b) = &board.hooks.bypass {
            t.push_str(&format!("bypass = {}\n", q(b)));
        }
        if let Some(l) = &board.hooks.status_led {
            t.push_str(&format!("status_led = {}\n", q(l)));
        }
    }
    t
}

/// The UKI's `.osrel`. systemd-boot (252, `config_entry_compare`) orders type #2 entries
/// by: no tries left last; then, if *both* have a sort key (`IMAGE_ID`, else `ID`), by
/// the key and by the version (`IMAGE_VERSION`, else `VERSION`, `VERSION_ID`,
/// `BUILD_ID`), newest first; then by the file name, newest first (`strverscmp`-like:
/// `gatekeeper-10-a` before `gatekeeper-9-b`). Our versions are `0.1.0+g<commit>`,
/// which would order two commits by their hash digits and put a downgrade below the
/// running slot, where it would never be tried. So the `.osrel` has none of those six
/// fields: no sort key, and the install counter in the file name
/// (`gatekeeper-<N>-<slot>`) alone decides — the most recently installed entry with
/// tries left boots. systemd-boot only needs a name (`PRETTY_NAME`, shown, else `NAME`)
/// to list the entry; the version is kept in `GATEKEEPER_VERSION`, which nothing orders by.
fn os_release(board: &Board, version: &str) -> String {
    format!(
        "NAME=\"gatekeeper\"\nPRETTY_NAME=\"gatekeeper {version} ({})\"\nGATEKEEPER_BOARD={}\nGATEKEEPER_VERSION={version}\n",
        board.name, board.name,
    )
}

/// The os-release fields systemd-boot takes a sort key or a version from
/// (`bootspec_pick_name_version_sort_key`): none of them may be in [`os_release`].
#[cfg(test)]
const SDBOOT_ORDER_FIELDS: [&str; 6] = [
    "IMAGE_ID",
    "ID",
    "IMAGE_VERSION",
    "VERSION",
    "VERSION_ID",
    "BUILD_ID",
];

fn syslinux_cfg(board: &Board, cmdline: &str) -> String {
    // Slot B's label is written by whoever installs an update into /gk/b/.
    format!(
        "# Written by gk-image. Boot counting: gk-init (see /gk/tries).\nSERIAL {} {}\nPROMPT 0\nTIMEOUT 0\nDEFAULT a\n\nLABEL a\n  LINUX /gk/a/vmlinuz\n  INITRD /gk/a/initrd.img\n  APPEND {cmdline}\n",
        board.console.device.trim_start_matches("ttyS").parse::<u32>().unwrap_or(0),
        board.console.baud
    )
}

/// Pads the squashfs to whole blocks, builds the hash tree, and concatenates both into
/// `work/root.img`.
fn make_verity(board: &str, sqfs: &Path, work: &Path) -> Result<VerityParams> {
    let data = work.join("root.data");
    fs::copy(sqfs, &data)?;
    let padded = verity::padded(size_of(&data));
    fs::OpenOptions::new()
        .write(true)
        .open(&data)?
        .set_len(padded)?;
    let hash = work.join("root.hash");
    fs::write(&hash, b"")?;
    let salt = guid::verity_salt(board);
    let data_blocks = padded / verity::BLOCK;
    let mut c = tools::command("veritysetup")?;
    c.args([
        "format",
        "--no-superblock",
        "--hash=sha256",
        "--data-block-size=4096",
        "--hash-block-size=4096",
    ])
    .arg(format!("--salt={salt}"))
    .arg(format!("--uuid={}", guid::guid(board, "verity")))
    .arg(&data)
    .arg(&hash);
    let out = tools::run(c)?;
    let root_hash = verity::parse_format_output(&String::from_utf8_lossy(&out.stdout), data_blocks)
        .map_err(anyhow::Error::msg)?;
    let hash_bytes = size_of(&hash);
    let expected = verity::hash_tree_bytes(data_blocks);
    if hash_bytes != expected {
        bail!("veritysetup wrote a hash tree of {hash_bytes} bytes; {expected} expected for {data_blocks} blocks");
    }
    let root = work.join("root.img");
    let mut f = fs::File::create(&root)?;
    std::io::copy(&mut fs::File::open(&data)?, &mut f)?;
    std::io::copy(&mut fs::File::open(&hash)?, &mut f)?;
    f.flush()?;
    let params = VerityParams {
        root_hash,
        salt,
        data_blocks,
        hash_offset: padded,
        hash_bytes,
    };
    if size_of(&root) != params.image_bytes() {
        bail!(
            "{}: {} bytes, expected {}",
            root.display(),
            size_of(&root),
            params.image_bytes()
        );
    }
    Ok(params)
}

/// A unified kernel image: systemd-stub with `.osrel`, `.cmdline`, (`.dtb`), `.linux`,
/// `.initrd` added by objcopy at VMAs after the stub's own sections, as systemd's
/// documentation does it without ukify (bookworm's systemd 252 has no ukify).
#[allow(clippy::too_many_arguments)]
fn make_uki(
    arch: Arch,
    stub: &Path,
    vmlinuz: &Path,
    initrd: &Path,
    cmdline: &str,
    os_release: &str,
    dtb: Option<&Path>,
    work: &Path,
    out: &Path,
    epoch: u64,
) -> Result<()> {
    let stub_bytes =
        fs::read(stub).with_context(|| format!("no systemd-stub at {}", stub.display()))?;
    let info =
        pe::parse(&stub_bytes).with_context(|| format!("{}: not a PE32+ image", stub.display()))?;
    let want = match arch {
        Arch::X86_64 => pe::MACHINE_X86_64,
        Arch::Aarch64 => pe::MACHINE_AARCH64,
    };
    if info.machine != want {
        bail!(
            "{}: PE machine 0x{:x}, expected 0x{want:x}",
            stub.display(),
            info.machine
        );
    }
    let kernel = fs::read(vmlinuz)?;
    match pe::parse(&kernel) {
        Some(k) if k.machine == want => {}
        _ => bail!(
            "{}: not an EFI-stub kernel for {} (systemd-stub needs a PE kernel)",
            vmlinuz.display(),
            arch.rust()
        ),
    }
    let osrel = work.join("uki-osrel");
    let cmd = work.join("uki-cmdline");
    fs::write(&osrel, os_release)?;
    fs::write(&cmd, cmdline)?;
    let mut sections: Vec<(&str, PathBuf)> = vec![(".osrel", osrel), (".cmdline", cmd)];
    if let Some(d) = dtb {
        sections.push((".dtb", d.to_path_buf()));
    }
    sections.push((".linux", vmlinuz.to_path_buf()));
    sections.push((".initrd", initrd.to_path_buf()));
    let align = info.section_alignment.max(4096);
    let mut vma = info.end_vma.div_ceil(align) * align;
    let mut c = tools::command(objcopy(arch))?;
    for (name, path) in &sections {
        c.arg("--add-section")
            .arg(format!("{name}={}", path.display()))
            .arg("--change-section-vma")
            .arg(format!("{name}=0x{vma:x}"));
        vma += size_of(path).div_ceil(align) * align;
    }
    c.arg(stub)
        .arg(out)
        .env("SOURCE_DATE_EPOCH", epoch.to_string());
    tools::run(c)?;
    // objcopy stamps the PE header with the time of the copy: set it to the epoch.
    let mut built = fs::read(out)?;
    pe::set_timestamp(&mut built, u32::try_from(epoch).unwrap_or(u32::MAX))
        .context("objcopy wrote no PE image, or one whose checksum we do not reproduce")?;
    fs::write(out, &built)?;
    let names = pe::parse(&built)
        .context("objcopy wrote no PE image")?
        .section_names;
    for (name, _) in &sections {
        if !names.iter().any(|n| n == name) {
            bail!("the UKI has no {name} section (objcopy: {names:?})");
        }
    }
    Ok(())
}

/// A FAT image worked on with mtools, every new entry timed SOURCE_DATE_EPOCH.
struct Fat {
    image: PathBuf,
    epoch: u64,
}

impl Fat {
    fn mtool(&self, tool: &str) -> Result<Command> {
        let mut c = tools::command(tool)?;
        c.env("MTOOLS_SKIP_CHECK", "1")
            .env("SOURCE_DATE_EPOCH", self.epoch.to_string())
            .env("TZ", "UTC")
            .arg("-i")
            .arg(&self.image);
        Ok(c)
    }
    fn mkdir(&self, dirs: &[&str]) -> Result<()> {
        let mut c = self.mtool("mmd")?;
        c.args(dirs.iter().map(|d| format!("::{d}")));
        tools::run(c)?;
        Ok(())
    }
    fn copy(&self, from: &Path, to: &str) -> Result<()> {
        set_mtime(from, self.epoch)?;
        let mut c = self.mtool("mcopy")?;
        c.arg("-m").arg(from).arg(format!("::{to}"));
        tools::run(c)?;
        Ok(())
    }
}

/// Sets the access and modification times (mkfs.ext4 -d and mcopy -m copy them).
fn set_mtime(path: &Path, epoch: u64) -> Result<()> {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch);
    let times = fs::FileTimes::new().set_accessed(t).set_modified(t);
    // Files in the package cache are ours (we unpacked them), so this is allowed.
    let f = fs::File::options()
        .write(true)
        .open(path)
        .or_else(|_| fs::File::open(path))?;
    f.set_times(times)
        .with_context(|| format!("cannot set the times of {}", path.display()))?;
    Ok(())
}

/// A staging directory whose modes and times are set explicitly (the umask and the
/// clock of the builder must not leak into the image).
struct Tree {
    root: PathBuf,
    epoch: u64,
    /// Every path made, with the mode of directories (files get theirs when written).
    paths: std::collections::BTreeMap<PathBuf, Option<u32>>,
}

impl Tree {
    fn new(root: &Path, epoch: u64) -> Tree {
        let _ = fs::remove_dir_all(root);
        let mut paths = std::collections::BTreeMap::new();
        paths.insert(root.to_path_buf(), Some(0o755));
        Tree {
            root: root.to_path_buf(),
            epoch,
            paths,
        }
    }
    /// A directory (and its parents), mode 0755.
    fn dir(&mut self, rel: &str) -> Result<()> {
        let p = self.root.join(rel);
        fs::create_dir_all(&p)?;
        let mut at = p.as_path();
        while at != self.root {
            self.paths.entry(at.to_path_buf()).or_insert(Some(0o755));
            at = at.parent().unwrap_or(&self.root);
        }
        Ok(())
    }
    /// A directory with another mode.
    fn dir_mode(&mut self, rel: &str, mode: u32) -> Result<()> {
        self.dir(rel)?;
        self.paths.insert(self.root.join(rel), Some(mode));
        Ok(())
    }
    fn file(&mut self, rel: &str, bytes: &[u8], mode: u32) -> Result<()> {
        if let Some(parent) = Path::new(rel)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            self.dir(&parent.to_string_lossy())?;
        }
        let p = self.root.join(rel);
        fs::write(&p, bytes)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
        self.paths.insert(p, None);
        Ok(())
    }
    fn symlink(&mut self, rel: &str, target: &str) -> Result<()> {
        std::os::unix::fs::symlink(target, self.root.join(rel))?;
        Ok(())
    }
    /// Directory modes, and every time the epoch (deepest first, so that setting a
    /// file's time does not touch its directory's afterwards).
    fn finish(&mut self) -> Result<()> {
        for (p, mode) in self.paths.iter().rev() {
            if let Some(mode) = mode {
                fs::set_permissions(p, fs::Permissions::from_mode(*mode))?;
            }
            set_mtime(p, self.epoch)?;
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn write_update(
    out: &Path,
    board: &str,
    version: &str,
    epoch: u64,
    uki: &Path,
    root: &Path,
    v: &VerityParams,
    key: &SecretKey,
) -> Result<()> {
    use gk_bundle::update;
    let sha =
        |p: &Path| -> Result<(u64, [u8; 32])> { Ok(update::measure(&mut fs::File::open(p)?)?) };
    let (uki_len, uki_sha256) = sha(uki)?;
    let (root_len, root_sha256) = sha(root)?;
    let info = update::UpdateInfo {
        version: version.to_string(),
        board: board.to_string(),
        created: gk_bundle::time::OffsetDateTime::from_unix_timestamp(epoch as i64)
            .map_err(|e| anyhow::anyhow!("SOURCE_DATE_EPOCH {epoch}: {e}"))?,
        uki_len,
        uki_sha256,
        root_len,
        root_sha256,
        verity_root: v.root_hash.clone(),
        verity_data_blocks: v.data_blocks,
        verity_hash_offset: v.hash_offset,
        verity_salt: v.salt.clone(),
    };
    let mut f = std::io::BufWriter::new(fs::File::create(out)?);
    update::write_update(
        &mut f,
        &info,
        &mut fs::File::open(uki)?,
        &mut fs::File::open(root)?,
        &[key],
    )
    .with_context(|| format!("writing {}", out.display()))?;
    f.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What gk-image writes is what gk-init reads: every board's `board.toml`, parsed by
    /// the init's own reader, says what the bsp file and the build options say.
    #[test]
    fn board_toml_follows_the_contract() {
        use gk_init::board as runtime;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bsp");
        let names = bsp::list(&dir).unwrap();
        assert!(names.len() >= 5, "{names:?}");
        for name in names {
            let mut board = bsp::load(&dir, &name).unwrap();
            for (profile, on_failure, link_propagation) in [
                (Profile::Test, bsp::OnFailure::FailClosed, false),
                (Profile::Prod, bsp::OnFailure::FailOpen, true),
                (Profile::Dev, bsp::OnFailure::FailClosed, true),
            ] {
                board.on_failure = on_failure;
                board.link_propagation = link_propagation;
                let modules = ["kernel/a.ko".to_string(), "kernel/b.ko".to_string()];
                let text = board_toml(&board, profile, "0.1.0+gabc", "6.1.0-57-amd64", &modules);
                let read = runtime::Board::parse(Path::new("board.toml"), &text)
                    .unwrap_or_else(|e| panic!("{name}: gk-init refuses it: {e}\n{text}"));
                assert_eq!(read.board, name);
                assert_eq!(read.kernel_release, "6.1.0-57-amd64");
                assert_eq!(read.version, "0.1.0+gabc");
                assert_eq!(read.console, board.console.device);
                assert_eq!(read.profile.as_str(), profile.as_str());
                assert_eq!(read.on_failure.as_str(), on_failure.as_str());
                assert_eq!(read.link_propagation, link_propagation);
                assert_eq!(read.modules, modules);
                let boot = match read.boot {
                    runtime::Boot::Uefi => "uefi",
                    runtime::Boot::Bios => "bios",
                    runtime::Boot::UBoot => "u-boot",
                };
                assert_eq!(boot, board.boot.as_str(), "{name}");
                let arch = match read.arch {
                    runtime::Arch::X86_64 => "x86_64",
                    runtime::Arch::Aarch64 => "aarch64",
                };
                assert_eq!(arch, board.arch.rust(), "{name}");
                for (port, read) in [(&board.plant, &read.plant), (&board.asset, &read.asset)] {
                    let written = match port {
                        PortId::Device(d) => format!("device {d}"),
                        PortId::Mac(m) => format!("mac {}", m.to_lowercase()),
                    };
                    assert_eq!(read.to_string(), written, "{name}");
                }
                assert_eq!(
                    read.watchdog.map(|w| (w.device, w.timeout)),
                    board
                        .watchdog
                        .as_ref()
                        .map(|w| (PathBuf::from(&w.device), w.timeout)),
                    "{name}"
                );
                assert_eq!(
                    (read.hooks.bypass, read.hooks.status_led),
                    (
                        board.hooks.bypass.as_ref().map(PathBuf::from),
                        board.hooks.status_led.as_ref().map(PathBuf::from)
                    ),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn a_variant_is_appended_to_the_version_and_validated() {
        let git = GitInfo {
            commit: "1a2b3c4d5e6f".into(),
            epoch: 0,
            dirty: false,
        };
        let plain = version_string(&git, None);
        assert_eq!(plain, format!("{}+g1a2b3c4", env!("CARGO_PKG_VERSION")));
        assert_eq!(version_string(&git, Some("update")), plain + "+update");
        let dirty = GitInfo { dirty: true, ..git };
        assert!(version_string(&dirty, Some("x")).ends_with("+g1a2b3c4.dirty+x"));
        assert_eq!(check_variant("update-2"), Ok("update-2".into()));
        assert!(check_variant(&"a".repeat(32)).is_ok());
        for bad in ["", "Update", "a b", "a+b", "a.b", "a/b", "ü"] {
            assert!(check_variant(bad).is_err(), "{bad:?}");
        }
        assert!(check_variant(&"a".repeat(33))
            .unwrap_err()
            .contains("1 to 32"));
    }

    #[test]
    fn the_uki_os_release_gives_systemd_boot_no_sort_key_and_no_version() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bsp");
        let board = bsp::load(&dir, "qemu-x86_64").unwrap();
        let text = os_release(&board, "0.1.0+g1a2b3c4+update");
        let keys: Vec<&str> = text
            .lines()
            .map(|l| l.split_once('=').expect("KEY=value").0)
            .collect();
        for k in SDBOOT_ORDER_FIELDS {
            assert!(!keys.contains(&k), "{k} in the .osrel:\n{text}");
        }
        // systemd-boot skips an entry without a name; PRETTY_NAME is the one shown.
        assert!(
            keys.contains(&"PRETTY_NAME") && keys.contains(&"NAME"),
            "{text}"
        );
        assert!(
            text.contains("PRETTY_NAME=\"gatekeeper 0.1.0+g1a2b3c4+update (qemu-x86_64)\"\n"),
            "{text}"
        );
        assert!(
            text.contains("GATEKEEPER_VERSION=0.1.0+g1a2b3c4+update\n"),
            "{text}"
        );
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn static_binary_check() {
        let e = check_binary(Path::new("/nonexistent/gatekeeperd"), Arch::X86_64)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x86_64-unknown-linux-musl"), "{e}");
        // /bin/sh is dynamically linked on Debian (or of another architecture).
        assert!(check_binary(Path::new("/bin/sh"), Arch::X86_64).is_err());
        assert!(check_binary(Path::new("/bin/sh"), Arch::Aarch64).is_err());
    }
}
