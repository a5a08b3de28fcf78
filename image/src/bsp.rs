//! Board descriptions (`bsp/<board>.toml`): raw serde structs, the `inherit` chain, and
//! validation into a [`Board`] that nothing else needs to second-guess.
//!
//! A board file may name one parent with `inherit = "<path relative to this file>"`; the
//! parent may inherit in turn. Merging is field by field, the child winning, except for
//! the two lists `modules` and `cmdline`, which are concatenated parent first (a shared
//! file lists what every board of an architecture needs, a board adds its NICs). Tables
//! (`console`, `ports.plant`, `watchdog`, `hooks`, `partitions`, `uboot`) merge key by
//! key; in `[watchdog]`, `none = true` drops an inherited watchdog.
//!
//! Errors name the file and line (`bsp/x.toml:12:3: ...`). Module names are checked
//! against the kernel later ([`crate::modules`]), but keep the place they were written
//! so that an unknown module is reported at its line.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_spanned::Spanned;

/// Where a value was written: a file and a 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A board description that cannot be used, and where.
#[derive(Debug, thiserror::Error)]
#[error("{place}: {what}")]
pub struct BspError {
    /// `file:line:column`, or just the file when the problem has no single place.
    pub place: String,
    pub what: String,
}

impl BspError {
    fn at(origin: &Origin, what: impl Into<String>) -> BspError {
        BspError {
            place: origin.to_string(),
            what: what.into(),
        }
    }
    fn file(file: &Path, what: impl Into<String>) -> BspError {
        BspError {
            place: file.display().to_string(),
            what: what.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// Debian's name for the architecture (`apt-get download NAME:ARCH`).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }
    /// Rust's name (`<arch>-unknown-linux-musl`) and board.toml's `arch`.
    pub fn rust(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
    /// The suffix of systemd-boot's and systemd-stub's file names, and of the removable
    /// media path `/EFI/BOOT/BOOT<X>.EFI`.
    pub fn efi(self) -> &'static str {
        match self {
            Arch::X86_64 => "x64",
            Arch::Aarch64 => "aa64",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[allow(clippy::enum_variant_names)] // `u-boot` is the loader's name, not "a boot"
pub enum Boot {
    /// Firmware UEFI: systemd-boot and a unified kernel image.
    Uefi,
    /// Legacy BIOS: syslinux on the ESP, `gptmbr.bin` in the protective MBR.
    Bios,
    /// U-Boot from raw offsets, then U-Boot's UEFI: as `Uefi` on the ESP.
    UBoot,
}

impl Boot {
    pub fn as_str(self) -> &'static str {
        match self {
            Boot::Uefi => "uefi",
            Boot::Bios => "bios",
            Boot::UBoot => "u-boot",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    FailClosed,
    FailOpen,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::FailClosed => "fail-closed",
            OnFailure::FailOpen => "fail-open",
        }
    }
}

// ---- raw, as written ---------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    inherit: Option<Spanned<String>>,
    description: Option<String>,
    arch: Option<Arch>,
    kernel_package: Option<Spanned<String>>,
    boot: Option<Boot>,
    on_failure: Option<OnFailure>,
    link_propagation: Option<bool>,
    #[serde(default)]
    modules: Vec<Spanned<String>>,
    #[serde(default)]
    cmdline: Vec<Spanned<String>>,
    console: Option<RawConsole>,
    ports: Option<RawPorts>,
    watchdog: Option<RawWatchdog>,
    hooks: Option<RawHooks>,
    partitions: Option<RawPartitions>,
    uboot: Option<RawUboot>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    device: Option<Spanned<String>>,
    baud: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPorts {
    plant: Option<Spanned<RawPort>>,
    asset: Option<Spanned<RawPort>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    device: Option<String>,
    mac: Option<String>,
    /// Free text for people (which connector on the case): not used by the build.
    #[allow(dead_code)]
    label: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatchdog {
    device: Option<Spanned<String>>,
    timeout: Option<Spanned<u32>>,
    /// `none = true` in a board that inherits a watchdog but has none.
    none: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    bypass: Option<Spanned<String>>,
    status_led: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartitions {
    reserved_mib: Option<Spanned<u64>>,
    esp_mib: Option<Spanned<u64>>,
    root_mib: Option<Spanned<u64>>,
    data_mib: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUboot {
    dtb: Option<Spanned<String>>,
    idbloader_sector: Option<u64>,
    itb_sector: Option<u64>,
}

// ---- validated ---------------------------------------------------------------------

/// A kernel module the board asks for, by name (`-` and `_` are the same), and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleRef {
    pub name: String,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortId {
    /// The last component of `realpath /sys/class/net/X/device` (a PCI address, or a
    /// platform device such as `fe300000.ethernet`).
    Device(String),
    /// The permanent MAC, lowercase `aa:bb:cc:dd:ee:ff`.
    Mac(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Console {
    pub device: String,
    pub baud: u32,
}

impl Console {
    /// The kernel's `console=` argument.
    pub fn kernel_arg(&self) -> String {
        format!("console={},{}n8", self.device, self.baud)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watchdog {
    pub device: String,
    pub timeout: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    pub bypass: Option<String>,
    pub status_led: Option<String>,
}

/// Partition sizes in MiB. `reserved` is the space before the first partition (the
/// primary GPT, and on U-Boot boards the loader at raw offsets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partitions {
    pub reserved_mib: u64,
    pub esp_mib: u64,
    pub root_mib: u64,
    pub data_mib: u64,
}

/// Where U-Boot's two images go (512-byte sectors) and which device tree the UKI carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uboot {
    /// Path under the kernel package's `usr/lib/linux-image-<release>/`.
    pub dtb: String,
    pub idbloader_sector: u64,
    pub itb_sector: u64,
}

/// A validated board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board {
    pub name: String,
    pub description: String,
    /// The board file and every file it inherits, child first.
    pub files: Vec<PathBuf>,
    pub arch: Arch,
    /// A Debian package name, usually the meta package (`linux-image-amd64`); the lock
    /// file pins the concrete one.
    pub kernel_package: String,
    pub boot: Boot,
    pub on_failure: OnFailure,
    pub link_propagation: bool,
    pub modules: Vec<ModuleRef>,
    pub cmdline: Vec<String>,
    pub console: Console,
    pub plant: PortId,
    pub asset: PortId,
    pub watchdog: Option<Watchdog>,
    pub hooks: Hooks,
    pub partitions: Partitions,
    pub uboot: Option<Uboot>,
}

/// The boards in `bsp_dir` (its `*.toml`, not the shared files in subdirectories).
pub fn list(bsp_dir: &Path) -> Result<Vec<String>, BspError> {
    let entries = std::fs::read_dir(bsp_dir)
        .map_err(|e| BspError::file(bsp_dir, format!("cannot read the directory: {e}")))?;
    let mut names = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            if let Some(stem) = path.file_stem() {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Loads and validates `bsp_dir/<name>.toml` with its inherit chain.
pub fn load(bsp_dir: &Path, name: &str) -> Result<Board, BspError> {
    check_board_name(name).map_err(|w| BspError::file(bsp_dir, w))?;
    let path = bsp_dir.join(format!("{name}.toml"));
    if !path.is_file() {
        let known = list(bsp_dir).unwrap_or_default().join(", ");
        return Err(BspError::file(
            &path,
            format!("no such board (boards in {}: {known})", bsp_dir.display()),
        ));
    }
    load_file(&path, name)
}

/// Loads and validates one board file (its name given: the file stem in `bsp/`).
pub fn load_file(path: &Path, name: &str) -> Result<Board, BspError> {
    let mut chain: Vec<(PathBuf, String, RawBoard)> = Vec::new();
    let mut next = Some(path.to_path_buf());
    while let Some(file) = next.take() {
        let canonical = file.canonicalize().unwrap_or_else(|_| file.clone());
        if chain
            .iter()
            .any(|(p, _, _)| p.canonicalize().unwrap_or_else(|_| p.clone()) == canonical)
        {
            let names: Vec<String> = chain
                .iter()
                .map(|(p, _, _)| p.display().to_string())
                .collect();
            return Err(BspError::file(
                &file,
                format!("inherit loop: {} -> {}", names.join(" -> "), file.display()),
            ));
        }
        if chain.len() >= 8 {
            return Err(BspError::file(&file, "inherit chain longer than 8 files"));
        }
        let text = std::fs::read_to_string(&file)
            .map_err(|e| BspError::file(&file, format!("cannot read: {e}")))?;
        let raw: RawBoard = toml::from_str(&text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(&text, s.start));
            BspError::at(
                &Origin {
                    file: file.clone(),
                    line,
                    column,
                },
                e.message().trim_end().to_string(),
            )
        })?;
        if let Some(parent) = &raw.inherit {
            let base = file.parent().unwrap_or(Path::new("."));
            let target = base.join(parent.get_ref());
            if !target.is_file() {
                return Err(BspError::at(
                    &origin(&file, &text, parent.span()),
                    format!(
                        "inherit = {:?}: no such file {}",
                        parent.get_ref(),
                        target.display()
                    ),
                ));
            }
            next = Some(target);
        }
        chain.push((file, text, raw));
    }
    merge(name, chain)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn origin(file: &Path, text: &str, span: std::ops::Range<usize>) -> Origin {
    let (line, column) = line_col(text, span.start);
    Origin {
        file: file.to_path_buf(),
        line,
        column,
    }
}

/// Merges the chain (child first) and validates the result.
fn merge(name: &str, chain: Vec<(PathBuf, String, RawBoard)>) -> Result<Board, BspError> {
    let board_file = chain[0].0.clone();
    let files: Vec<PathBuf> = chain.iter().map(|(p, _, _)| p.clone()).collect();
    // First setting wins going from the child up: find the nearest file that sets it.
    macro_rules! nearest {
        (|$r:ident| $get:expr) => {
            nearest(&chain, |$r: &RawBoard| $get)
        };
        ($field:ident) => {
            nearest(&chain, |r: &RawBoard| r.$field.as_ref())
        };
    }
    let missing = |what: &str| {
        BspError::file(
            &board_file,
            format!("no `{what}` (set it in this file or in a file it inherits)"),
        )
    };

    let description = nearest!(description)
        .map(|(_, _, d)| d.clone())
        .unwrap_or_default();
    let arch = *nearest!(arch).ok_or_else(|| missing("arch"))?.2;
    let (kp_file, kp_text, kp) =
        nearest!(kernel_package).ok_or_else(|| missing("kernel_package"))?;
    let kernel_package = kp.get_ref().clone();
    if !kernel_package.starts_with("linux-image-") || kernel_package.contains([' ', ':', '=']) {
        return Err(BspError::at(
            &origin(kp_file, kp_text, kp.span()),
            format!("kernel_package = {kernel_package:?}: expected a Debian package name like linux-image-amd64"),
        ));
    }
    let boot = *nearest!(boot).ok_or_else(|| missing("boot"))?.2;
    let on_failure = nearest!(on_failure).map_or(OnFailure::FailClosed, |(_, _, v)| *v);
    let link_propagation = nearest!(link_propagation).is_some_and(|(_, _, v)| *v);

    // Lists: parent first.
    let mut modules = Vec::new();
    let mut seen = BTreeSet::new();
    let mut cmdline = Vec::new();
    for (path, text, raw) in chain.iter().rev() {
        for m in &raw.modules {
            let at = origin(path, text, m.span());
            let normal = crate::modules::normalize(m.get_ref());
            if normal.is_empty()
                || !normal
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(BspError::at(
                    &at,
                    format!("module {:?}: a module name is letters, digits, '_' and '-' (no path, no .ko)", m.get_ref()),
                ));
            }
            if seen.insert(normal) {
                modules.push(ModuleRef {
                    name: m.get_ref().clone(),
                    origin: at,
                });
            }
        }
        for arg in &raw.cmdline {
            let at = origin(path, text, arg.span());
            let a = arg.get_ref();
            if a.is_empty() || a.contains(char::is_whitespace) {
                return Err(BspError::at(
                    &at,
                    format!("cmdline entry {a:?}: one kernel argument per entry, no spaces"),
                ));
            }
            if a.starts_with("gk.") || a.starts_with("console=") || a.starts_with("panic=") {
                return Err(BspError::at(
                    &at,
                    format!("cmdline entry {a:?}: console=, panic= and gk.* are set by the image builder"),
                ));
            }
            cmdline.push(a.clone());
        }
    }

    let (c_file, c_text, c_dev) = nearest!(|r| r.console.as_ref().and_then(|c| c.device.as_ref()))
        .ok_or_else(|| missing("console.device"))?;
    let device = c_dev.get_ref();
    if !(device.starts_with("tty")
        && device.len() > 3
        && device.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(BspError::at(
            &origin(c_file, c_text, c_dev.span()),
            format!(
                "console.device = {device:?}: expected a serial tty name such as ttyS0 or ttyAMA0"
            ),
        ));
    }
    let baud = nearest!(|r| r.console.as_ref().and_then(|c| c.baud.as_ref()))
        .map_or(115_200, |(_, _, b)| *b);
    let console = Console {
        device: device.clone(),
        baud,
    };

    let port = |which: &str| -> Result<PortId, BspError> {
        let found = chain.iter().find_map(|(p, t, r)| {
            let ports = r.ports.as_ref()?;
            let port = if which == "plant" {
                ports.plant.as_ref()
            } else {
                ports.asset.as_ref()
            };
            port.map(|v| (p, t, v))
        });
        let (file, text, port) = found.ok_or_else(|| missing(&format!("ports.{which}")))?;
        let at = origin(file, text, port.span());
        match (&port.get_ref().device, &port.get_ref().mac) {
            (Some(d), None) => {
                if d.is_empty() || d.contains('/') || d.contains(char::is_whitespace) {
                    Err(BspError::at(&at, format!("ports.{which}.device = {d:?}: the last component of the sysfs device path (e.g. 0000:01:00.0 or fe300000.ethernet)")))
                } else {
                    Ok(PortId::Device(d.clone()))
                }
            }
            (None, Some(m)) => parse_mac(m).map(PortId::Mac).ok_or_else(|| {
                BspError::at(
                    &at,
                    format!(
                        "ports.{which}.mac = {m:?}: expected six hex pairs like 52:54:00:12:34:56"
                    ),
                )
            }),
            (Some(_), Some(_)) => Err(BspError::at(
                &at,
                format!("ports.{which}: give `device` or `mac`, not both"),
            )),
            (None, None) => Err(BspError::at(
                &at,
                format!("ports.{which}: give `device` or `mac`"),
            )),
        }
    };
    let plant = port("plant")?;
    let asset = port("asset")?;
    if plant == asset {
        return Err(BspError::file(
            &board_file,
            "ports.plant and ports.asset name the same port",
        ));
    }

    // Key by key, nearest wins; `none = true` (nearest) removes an inherited watchdog.
    let wd_none =
        nearest!(|r| r.watchdog.as_ref().and_then(|w| w.none.as_ref())).is_some_and(|(_, _, n)| *n);
    let wd_device = nearest!(|r| r.watchdog.as_ref().and_then(|w| w.device.as_ref()));
    let wd_timeout = nearest!(|r| r.watchdog.as_ref().and_then(|w| w.timeout.as_ref()));
    let watchdog = match (wd_none, wd_device) {
        (true, _) => None,
        // A timeout alone (a shared default) is no watchdog.
        (false, None) => None,
        (false, Some((file, text, dev))) => {
            if !dev.get_ref().starts_with("/dev/") {
                return Err(BspError::at(
                    &origin(file, text, dev.span()),
                    format!(
                        "watchdog.device = {:?}: expected a /dev path",
                        dev.get_ref()
                    ),
                ));
            }
            let timeout = match wd_timeout {
                None => 30,
                Some((_, _, t)) if (5..=600).contains(t.get_ref()) => *t.get_ref(),
                Some((file, text, t)) => {
                    return Err(BspError::at(
                        &origin(file, text, t.span()),
                        format!(
                            "watchdog.timeout = {}: between 5 and 600 seconds",
                            t.get_ref()
                        ),
                    ))
                }
            };
            Some(Watchdog {
                device: dev.get_ref().clone(),
                timeout,
            })
        }
    };

    let mut hooks = Hooks::default();
    if let Some((file, text, h)) = nearest!(hooks) {
        for (slot, value) in [
            (&mut hooks.bypass, &h.bypass),
            (&mut hooks.status_led, &h.status_led),
        ] {
            if let Some(v) = value {
                if !v.get_ref().starts_with("/sys/") {
                    return Err(BspError::at(
                        &origin(file, text, v.span()),
                        format!(
                            "hook {:?}: hooks write sysfs files; expected a /sys path",
                            v.get_ref()
                        ),
                    ));
                }
                *slot = Some(v.get_ref().clone());
            }
        }
    }

    // Partitions: key by key, nearest wins.
    let part = |get: fn(&RawPartitions) -> Option<&Spanned<u64>>,
                default: u64,
                min: u64,
                max: u64,
                what: &str|
     -> Result<u64, BspError> {
        match chain
            .iter()
            .find_map(|(p, t, r)| r.partitions.as_ref().and_then(get).map(|v| (p, t, v)))
        {
            None => Ok(default),
            Some((file, text, v)) if (min..=max).contains(v.get_ref()) => {
                let _ = (file, text);
                Ok(*v.get_ref())
            }
            Some((file, text, v)) => Err(BspError::at(
                &origin(file, text, v.span()),
                format!(
                    "partitions.{what} = {}: between {min} and {max}",
                    v.get_ref()
                ),
            )),
        }
    };
    let default_reserved = if boot == Boot::UBoot { 16 } else { 1 };
    let partitions = Partitions {
        reserved_mib: part(
            |p| p.reserved_mib.as_ref(),
            default_reserved,
            1,
            64,
            "reserved_mib",
        )?,
        // FAT32 needs 65525 clusters: 33 MiB with 512-byte clusters.
        esp_mib: part(|p| p.esp_mib.as_ref(), 64, 40, 1024, "esp_mib")?,
        root_mib: part(|p| p.root_mib.as_ref(), 256, 32, 4096, "root_mib")?,
        data_mib: part(|p| p.data_mib.as_ref(), 64, 16, 4096, "data_mib")?,
    };

    let uboot = match (boot, nearest!(uboot)) {
        (Boot::UBoot, Some((file, text, u))) => {
            let dtb = u.dtb.as_ref().ok_or_else(|| missing("uboot.dtb"))?;
            if !dtb.get_ref().ends_with(".dtb")
                || dtb.get_ref().starts_with('/')
                || dtb.get_ref().contains("..")
            {
                return Err(BspError::at(&origin(file, text, dtb.span()), format!("uboot.dtb = {:?}: a path such as rockchip/rk3399-nanopi-r4s.dtb under the kernel's dtb directory", dtb.get_ref())));
            }
            let u = Uboot {
                dtb: dtb.get_ref().clone(),
                idbloader_sector: u.idbloader_sector.unwrap_or(64),
                itb_sector: u.itb_sector.unwrap_or(16384),
            };
            let reserved_sectors = partitions.reserved_mib * 2048;
            if !(34 <= u.idbloader_sector
                && u.idbloader_sector < u.itb_sector
                && u.itb_sector < reserved_sectors)
            {
                return Err(BspError::file(&board_file, format!(
                    "uboot: idbloader_sector {} and itb_sector {} must lie after the GPT (34) and before the first partition ({reserved_sectors}), in that order",
                    u.idbloader_sector, u.itb_sector)));
            }
            Some(u)
        }
        (Boot::UBoot, None) => return Err(missing("uboot (a [uboot] table with dtb)")),
        (_, Some(_)) => {
            return Err(BspError::file(
                &board_file,
                "[uboot] is only for boot = \"u-boot\"",
            ))
        }
        (_, None) => None,
    };
    if boot == Boot::Bios && arch != Arch::X86_64 {
        return Err(BspError::file(
            &board_file,
            "boot = \"bios\" is for x86_64 boards only",
        ));
    }
    if boot == Boot::UBoot && arch != Arch::Aarch64 {
        return Err(BspError::file(
            &board_file,
            "boot = \"u-boot\" is for aarch64 boards here",
        ));
    }
    Ok(Board {
        name: name.to_string(),
        description,
        files,
        arch,
        kernel_package,
        boot,
        on_failure,
        link_propagation,
        modules,
        cmdline,
        console,
        plant,
        asset,
        watchdog,
        hooks,
        partitions,
        uboot,
    })
}

/// The nearest file in the chain (child first) where `get` finds a value.
fn nearest<'a, T>(
    chain: &'a [(PathBuf, String, RawBoard)],
    get: impl Fn(&'a RawBoard) -> Option<&'a T>,
) -> Option<(&'a PathBuf, &'a String, &'a T)> {
    chain.iter().find_map(|(p, t, r)| get(r).map(|v| (p, t, v)))
}

fn check_board_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 40
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        || name.starts_with('-')
    {
        return Err(format!(
            "board name {name:?}: lowercase letters, digits, '-' and '_', at most 40"
        ));
    }
    Ok(())
}

fn parse_mac(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split(':').collect();
    (parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit())))
    .then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("gk-image-bsp-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("common")).unwrap();
            Scratch(dir)
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const COMMON: &str = r#"
arch = "x86_64"
kernel_package = "linux-image-amd64"
boot = "uefi"
modules = ["virtio_pci", "squashfs"]
cmdline = ["quiet"]
[console]
device = "ttyS0"
[watchdog]
device = "/dev/watchdog0"
[partitions]
root_mib = 128
"#;

    #[test]
    fn inherit_merges_fields_and_concatenates_lists() {
        let s = Scratch::new("inherit");
        s.write("common/x.toml", COMMON);
        s.write(
            "b.toml",
            r#"inherit = "common/x.toml"
modules = ["virtio-net", "squashfs"]
cmdline = ["loglevel=4"]
[console]
baud = 9600
[ports.plant]
device = "0000:00:03.0"
[ports.asset]
mac = "52:54:00:AA:bb:01"
[watchdog]
timeout = 10
[partitions]
data_mib = 32
"#,
        );
        let b = load(&s.0, "b").unwrap();
        assert_eq!(b.arch, Arch::X86_64);
        assert_eq!(b.boot, Boot::Uefi);
        let names: Vec<&str> = b.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["virtio_pci", "squashfs", "virtio-net"]);
        assert_eq!(
            b.modules[0].origin.file,
            s.0.join("b.toml").parent().unwrap().join("common/x.toml")
        );
        assert_eq!(b.modules[2].origin.line, 2);
        assert_eq!(b.cmdline, ["quiet", "loglevel=4"]);
        assert_eq!(
            b.console,
            Console {
                device: "ttyS0".into(),
                baud: 9600
            }
        );
        assert_eq!(b.console.kernel_arg(), "console=ttyS0,9600n8");
        assert_eq!(b.plant, PortId::Device("0000:00:03.0".into()));
        assert_eq!(b.asset, PortId::Mac("52:54:00:aa:bb:01".into()));
        // Tables merge key by key: the device from the parent, the timeout from the child.
        assert_eq!(
            b.watchdog,
            Some(Watchdog {
                device: "/dev/watchdog0".into(),
                timeout: 10
            })
        );
        assert_eq!(
            b.partitions,
            Partitions {
                reserved_mib: 1,
                esp_mib: 64,
                root_mib: 128,
                data_mib: 32
            }
        );
        assert_eq!(b.on_failure, OnFailure::FailClosed);
        assert_eq!(b.files.len(), 2);
    }

    #[test]
    fn errors_name_file_and_line() {
        let s = Scratch::new("errors");
        s.write("common/x.toml", COMMON);
        let ports = "[ports.plant]\ndevice = \"a\"\n[ports.asset]\ndevice = \"b\"\n";
        let cases: Vec<(&str, String, &str)> = vec![
            ("typo", format!("inherit = \"common/x.toml\"\nmodulez = []\n{ports}"), "typo.toml:2:1: unknown field `modulez`"),
            ("arch", format!("inherit = \"common/x.toml\"\narch = \"riscv\"\n{ports}"), "arch.toml:2:8: unknown variant `riscv`"),
            ("both", "inherit = \"common/x.toml\"\n[ports.plant]\ndevice = \"a\"\nmac = \"52:54:00:00:00:01\"\n[ports.asset]\ndevice = \"b\"\n".into(), "both.toml:2:1: ports.plant: give `device` or `mac`, not both"),
            ("mac", "inherit = \"common/x.toml\"\n[ports.plant]\nmac = \"52:54:00\"\n[ports.asset]\ndevice = \"b\"\n".into(), "mac.toml:2:1: ports.plant.mac"),
            ("same", "inherit = \"common/x.toml\"\n[ports.plant]\ndevice = \"a\"\n[ports.asset]\ndevice = \"a\"\n".into(), "same.toml: ports.plant and ports.asset name the same port"),
            ("noport", "inherit = \"common/x.toml\"\n[ports.plant]\ndevice = \"a\"\n".into(), "noport.toml: no `ports.asset`"),
            ("modpath", format!("inherit = \"common/x.toml\"\nmodules = [\"ok\",\n  \"kernel/x.ko\"]\n{ports}"), "modpath.toml:3:3: module \"kernel/x.ko\""),
            ("cmd", format!("inherit = \"common/x.toml\"\ncmdline = [\"gk.verity=00\"]\n{ports}"), "cmd.toml:2:12: cmdline entry"),
            ("wd", format!("inherit = \"common/x.toml\"\n{ports}[watchdog]\ndevice = \"/dev/watchdog\"\ntimeout = 1\n"), "wd.toml:8:11: watchdog.timeout = 1"),
            ("noinherit", format!("inherit = \"common/nope.toml\"\n{ports}"), "noinherit.toml:1:11: inherit = \"common/nope.toml\": no such file"),
            ("bios", format!("inherit = \"common/x.toml\"\narch = \"aarch64\"\nboot = \"bios\"\n{ports}"), "bios.toml: boot = \"bios\" is for x86_64"),
            ("uboot", format!("inherit = \"common/x.toml\"\narch = \"aarch64\"\nboot = \"u-boot\"\n{ports}"), "uboot.toml: no `uboot"),
            ("hook", format!("inherit = \"common/x.toml\"\n{ports}[hooks]\nbypass = \"/dev/gpio\"\n"), "hook.toml:7:10: hook \"/dev/gpio\""),
            ("loop", format!("inherit = \"loop.toml\"\n{ports}"), "inherit loop"),
        ];
        for (name, text, expect) in cases {
            s.write(&format!("{name}.toml"), &text);
            let e = load(&s.0, name).unwrap_err().to_string();
            assert!(e.contains(expect), "{name}: {e}\n  expected: {expect}");
            assert!(e.starts_with(&s.0.display().to_string()), "{name}: {e}");
        }
        assert!(load(&s.0, "missing")
            .unwrap_err()
            .to_string()
            .contains("no such board"));
        assert!(load(&s.0, "../x").is_err());
    }

    #[test]
    fn uboot_offsets_are_checked() {
        let s = Scratch::new("uboot");
        let base = "arch = \"aarch64\"\nkernel_package = \"linux-image-arm64\"\nboot = \"u-boot\"\n[console]\ndevice = \"ttyS2\"\nbaud = 1500000\n[ports.plant]\ndevice = \"a\"\n[ports.asset]\ndevice = \"b\"\n";
        s.write(
            "ok.toml",
            &format!("{base}[uboot]\ndtb = \"rockchip/rk3399-nanopi-r4s.dtb\"\n"),
        );
        let b = load(&s.0, "ok").unwrap();
        assert_eq!(b.partitions.reserved_mib, 16);
        assert_eq!(b.uboot.unwrap().itb_sector, 16384);
        s.write(
            "bad.toml",
            &format!("{base}[uboot]\ndtb = \"x.dtb\"\nitb_sector = 40000\n"),
        );
        assert!(load(&s.0, "bad")
            .unwrap_err()
            .to_string()
            .contains("before the first partition"));
    }

    #[test]
    fn the_boards_in_the_repository_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bsp");
        let boards = list(&dir).unwrap();
        for expected in [
            "qemu-x86_64",
            "qemu-aarch64",
            "x86_64-generic",
            "x86_64-bios",
            "nanopi-r4s",
        ] {
            assert!(
                boards.iter().any(|b| b == expected),
                "bsp/{expected}.toml is missing"
            );
        }
        for name in boards {
            let b = load(&dir, &name).unwrap_or_else(|e| panic!("{e}"));
            assert!(!b.modules.is_empty(), "{name}");
            assert!(!b.description.is_empty(), "{name} has no description");
        }
    }
}
