//! `/etc/gatekeeper/board.toml`: the board's runtime description, written by the image
//! builder and read by both stages.
//!
//! Raw, then validated: the serde structs below (`deny_unknown_fields`, spans kept) are
//! private; the rest of the init only sees [`Board`]. Every error names the file, the
//! line and the column, and says what would be right, because the person reading it is
//! whoever wrote a new `bsp/` description.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_spanned::Spanned;

/// Where both stages read the board description.
pub const BOARD_FILE: &str = "/etc/gatekeeper/board.toml";

/// The CPU architecture the image was built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Aarch64,
}

/// How the box boots, which decides how a boot is counted and marked good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(clippy::enum_variant_names)] // `u-boot` is the contract's name
pub enum Boot {
    /// systemd-boot on UEFI: unified kernel images with `+tries` in their names.
    Uefi,
    /// syslinux from the ESP: the init counts tries in `/gk/tries`.
    Bios,
    /// U-Boot's UEFI implementation: the same as [`Boot::Uefi`] for the init.
    UBoot,
}

impl Boot {
    /// Whether boot counting is systemd-boot's (UKI file names) rather than ours.
    pub fn is_uefi(self) -> bool {
        matches!(self, Boot::Uefi | Boot::UBoot)
    }
}

/// The image profile: `test` enables the USB test hooks, `prod` never closes the
/// watchdog with the magic character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    Prod,
    Test,
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

/// What runs while no valid bundle does, and what a crash loop of gatekeeperd ends in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    FailClosed,
    FailOpen,
}

impl OnFailure {
    /// The value of gatekeeperd's `--on-failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::FailClosed => "fail-closed",
            OnFailure::FailOpen => "fail-open",
        }
    }
}

/// How one port is recognised: never by probe order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortMatch {
    /// A component of `realpath(/sys/class/net/X/device)`: normally the last one (a PCI
    /// address such as `0000:00:03.0`, or a platform device such as
    /// `fe300000.ethernet`); for virtio NICs, whose last component is `virtioN`, the PCI
    /// function above it.
    Device(String),
    /// The port's permanent MAC address.
    Mac([u8; 6]),
}

impl fmt::Display for PortMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortMatch::Device(d) => write!(f, "device {d}"),
            PortMatch::Mac(m) => write!(f, "mac {}", format_mac(m)),
        }
    }
}

/// The hardware watchdog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watchdog {
    pub device: PathBuf,
    /// Seconds without a keepalive before the board resets.
    pub timeout: u32,
}

/// Optional sysfs files the init writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    /// "1" while failing open (a hardware bypass relay), "0" otherwise.
    pub bypass: Option<PathBuf>,
    /// "1" when READY, "0" otherwise.
    pub status_led: Option<PathBuf>,
}

/// A validated board description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board {
    pub board: String,
    pub arch: Arch,
    pub kernel_release: String,
    pub boot: Boot,
    /// A device name under `/dev` (`ttyS0`, `ttyAMA0`, `ttyS2`).
    pub console: String,
    pub profile: Profile,
    pub version: String,
    pub on_failure: OnFailure,
    pub link_propagation: bool,
    /// Module paths relative to `/lib/modules/<kernel_release>/`, in load order.
    pub modules: Vec<String>,
    pub plant: PortMatch,
    pub asset: PortMatch,
    pub watchdog: Option<Watchdog>,
    pub hooks: Hooks,
}

/// A board description that cannot be used: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct BoardError {
    pub path: PathBuf,
    /// 1-based line and column, when the fault has a place in the file.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    board: Spanned<String>,
    arch: Arch,
    kernel_release: Spanned<String>,
    boot: Boot,
    console: Spanned<String>,
    profile: Profile,
    version: Spanned<String>,
    on_failure: OnFailure,
    #[serde(default)]
    link_propagation: bool,
    #[serde(default)]
    modules: Vec<Spanned<String>>,
    ports: Spanned<RawPorts>,
    watchdog: Option<Spanned<RawWatchdog>>,
    hooks: Option<RawHooks>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPorts {
    plant: Spanned<RawPort>,
    asset: Spanned<RawPort>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    device: Option<Spanned<String>>,
    mac: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatchdog {
    device: Spanned<String>,
    timeout: Spanned<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    bypass: Option<Spanned<String>>,
    status_led: Option<Spanned<String>>,
}

impl Board {
    /// Reads and validates a board file.
    pub fn load(path: &Path) -> Result<Board, BoardError> {
        let text = std::fs::read_to_string(path).map_err(|e| BoardError {
            path: path.to_path_buf(),
            at: None,
            message: format!(
                "cannot read the board description: {e} (the image builder writes it; \
                 is this a gatekeeper image?)"
            ),
        })?;
        Board::parse(path, &text)
    }

    /// Parses and validates the text of a board file; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Board, BoardError> {
        let fail = |span: Option<Range<usize>>, message: String| BoardError {
            path: path.to_path_buf(),
            at: span.map(|s| line_col(text, s.start)),
            message,
        };
        let raw: RawBoard =
            toml::from_str(text).map_err(|e| fail(e.span(), e.message().trim().to_string()))?;

        let board = raw.board.get_ref();
        if board.is_empty()
            || !board
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(fail(
                Some(raw.board.span()),
                format!("board {board:?}: use lower-case letters, digits, '-' and '_'"),
            ));
        }
        for (what, value) in [
            ("kernel_release", &raw.kernel_release),
            ("version", &raw.version),
        ] {
            let v = value.get_ref();
            if v.is_empty() || v.bytes().any(|b| !b.is_ascii_graphic() || b == b'/') {
                return Err(fail(
                    Some(value.span()),
                    format!("{what} {v:?}: must be non-empty, printable, without spaces or '/'"),
                ));
            }
        }
        let console = raw.console.get_ref();
        if console.is_empty()
            || console.contains('/')
            || !console.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(fail(
                Some(raw.console.span()),
                format!("console {console:?}: give the device name under /dev, e.g. \"ttyS0\""),
            ));
        }
        let mut modules = Vec::with_capacity(raw.modules.len());
        for m in &raw.modules {
            let name = m.get_ref();
            let ok_suffix = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
                .iter()
                .any(|s| name.ends_with(s));
            if !ok_suffix
                || name.starts_with('/')
                || name
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
            {
                return Err(fail(
                    Some(m.span()),
                    format!(
                        "module {name:?}: give the path relative to /lib/modules/<release>/, \
                         as in modules.dep (e.g. \"kernel/drivers/md/dm-verity.ko\")"
                    ),
                ));
            }
            if modules.contains(name) {
                return Err(fail(
                    Some(m.span()),
                    format!("module {name:?} is listed twice"),
                ));
            }
            modules.push(name.clone());
        }

        let ports = raw.ports.get_ref();
        let plant = port(&ports.plant, "plant", &fail)?;
        let asset = port(&ports.asset, "asset", &fail)?;
        if plant == asset {
            return Err(fail(
                Some(raw.ports.span()),
                format!(
                    "ports.plant and ports.asset both match {plant}: they must be different ports"
                ),
            ));
        }

        let watchdog = match &raw.watchdog {
            None => None,
            Some(w) => {
                let w = w.get_ref();
                let device = w.device.get_ref();
                if !device.starts_with("/dev/") || device.contains("..") {
                    return Err(fail(
                        Some(w.device.span()),
                        format!("watchdog.device {device:?}: give a path under /dev/, e.g. \"/dev/watchdog0\""),
                    ));
                }
                let timeout = *w.timeout.get_ref();
                // The keepalive period is timeout/3, and the slowest thing the init does
                // between two keepalives (a status query, a USB scan step) takes about a
                // second: below 3 s a busy box would reset itself.
                if !(3..=3600).contains(&timeout) {
                    return Err(fail(
                        Some(w.timeout.span()),
                        format!("watchdog.timeout {timeout}: give seconds between 3 and 3600"),
                    ));
                }
                Some(Watchdog {
                    device: PathBuf::from(device),
                    timeout: timeout as u32,
                })
            }
        };

        let mut hooks = Hooks::default();
        if let Some(h) = &raw.hooks {
            for (what, value, slot) in [
                ("hooks.bypass", &h.bypass, &mut hooks.bypass),
                ("hooks.status_led", &h.status_led, &mut hooks.status_led),
            ] {
                if let Some(v) = value {
                    let p = v.get_ref();
                    if !p.starts_with("/sys/") || p.contains("..") {
                        return Err(fail(
                            Some(v.span()),
                            format!("{what} {p:?}: hooks are sysfs files, give a path under /sys/"),
                        ));
                    }
                    *slot = Some(PathBuf::from(p));
                }
            }
        }

        Ok(Board {
            board: board.clone(),
            arch: raw.arch,
            kernel_release: raw.kernel_release.into_inner(),
            boot: raw.boot,
            console: console.clone(),
            profile: raw.profile,
            version: raw.version.into_inner(),
            on_failure: raw.on_failure,
            link_propagation: raw.link_propagation,
            modules,
            plant,
            asset,
            watchdog,
            hooks,
        })
    }

    /// Where module `m` of [`Board::modules`] lies.
    pub fn module_path(&self, m: &str) -> PathBuf {
        Path::new("/lib/modules").join(&self.kernel_release).join(m)
    }
}

fn port(
    raw: &Spanned<RawPort>,
    name: &str,
    fail: &impl Fn(Option<Range<usize>>, String) -> BoardError,
) -> Result<PortMatch, BoardError> {
    let p = raw.get_ref();
    match (&p.device, &p.mac) {
        (Some(d), None) => {
            let dev = d.get_ref();
            if dev.is_empty() || dev.contains('/') {
                return Err(fail(
                    Some(d.span()),
                    format!("ports.{name}.device {dev:?}: give the PCI or platform address of the NIC (a component of realpath(/sys/class/net/IF/device)), e.g. \"0000:00:03.0\""),
                ));
            }
            Ok(PortMatch::Device(dev.clone()))
        }
        (None, Some(m)) => parse_mac(m.get_ref()).map(PortMatch::Mac).ok_or_else(|| {
            fail(
                Some(m.span()),
                format!("ports.{name}.mac {:?}: give six hex bytes, e.g. \"52:54:00:12:34:56\"", m.get_ref()),
            )
        }),
        _ => Err(fail(
            Some(raw.span()),
            format!("ports.{name}: give exactly one of device = \"PCI or platform address\" or mac = \"permanent MAC\""),
        )),
    }
}

/// `aa:bb:cc:dd:ee:ff` (either case; `-` also accepted) → bytes.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.trim().split([':', '-']);
    for byte in &mut out {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// `aa:bb:cc:dd:ee:ff`, lower case.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const QEMU: &str = r#"
board = "qemu-x86_64"
arch = "x86_64"
kernel_release = "6.1.0-57-amd64"
boot = "uefi"
console = "ttyS0"
profile = "test"
version = "0.1.0+g1a2b3c4"
on_failure = "fail-closed"
link_propagation = false
modules = ["kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/md/dm-verity.ko"]
[ports.plant]
device = "0000:00:03.0"
[ports.asset]
mac = "52:54:00:12:34:56"
[watchdog]
device = "/dev/watchdog0"
timeout = 30
[hooks]
bypass = "/sys/class/gpio/gpio42/value"
status_led = "/sys/class/leds/green:status/brightness"
"#;

    fn parse(text: &str) -> Result<Board, BoardError> {
        Board::parse(Path::new("board.toml"), text)
    }

    #[test]
    fn the_contract_example_parses() {
        let b = parse(QEMU).expect("valid");
        assert_eq!(b.board, "qemu-x86_64");
        assert_eq!(b.arch, Arch::X86_64);
        assert_eq!(b.boot, Boot::Uefi);
        assert_eq!(b.profile, Profile::Test);
        assert_eq!(b.on_failure, OnFailure::FailClosed);
        assert_eq!(b.plant, PortMatch::Device("0000:00:03.0".into()));
        assert_eq!(b.asset, PortMatch::Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(
            b.watchdog,
            Some(Watchdog {
                device: "/dev/watchdog0".into(),
                timeout: 30
            })
        );
        assert_eq!(
            b.module_path(&b.modules[1]),
            Path::new("/lib/modules/6.1.0-57-amd64/kernel/drivers/md/dm-verity.ko")
        );
        assert!(b.hooks.bypass.is_some() && b.hooks.status_led.is_some());
    }

    #[test]
    fn optional_tables_may_be_absent() {
        let text: String = QEMU
            .lines()
            .take_while(|l| !l.starts_with("[watchdog]"))
            .collect::<Vec<_>>()
            .join("\n");
        let b = parse(&text).expect("valid");
        assert_eq!(b.watchdog, None);
        assert_eq!(b.hooks, Hooks::default());
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let text = QEMU.replace("link_propagation = false", "link_propagaton = false");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(10), "{e}");
        assert!(e.to_string().starts_with("board.toml:10:"), "{e}");
        assert!(e.message.contains("link_propagaton"), "{e}");
    }

    #[test]
    fn bad_enum_values_say_where() {
        let e = parse(&QEMU.replace("\"uefi\"", "\"efi\"")).unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(5), "{e}");
    }

    #[test]
    fn a_port_needs_exactly_one_way_to_be_found() {
        let text = QEMU.replace(
            "[ports.asset]\n",
            "[ports.asset]\ndevice = \"0000:00:04.0\"\n",
        );
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("exactly one"), "{e}");
        assert_eq!(e.at.map(|a| a.0), Some(14), "{e}");
        let text = QEMU.replace("mac = \"52:54:00:12:34:56\"", "");
        assert!(parse(&text).unwrap_err().message.contains("exactly one"));
    }

    #[test]
    fn the_two_ports_must_differ() {
        let text = QEMU.replace("mac = \"52:54:00:12:34:56\"", "device = \"0000:00:03.0\"");
        assert!(parse(&text).unwrap_err().message.contains("different"));
    }

    #[test]
    fn bad_values_are_refused_with_their_line() {
        for (from, to, line) in [
            ("\"52:54:00:12:34:56\"", "\"52:54:00:12:34\"", 15),
            ("timeout = 30", "timeout = 1", 18),
            ("\"/dev/watchdog0\"", "\"watchdog0\"", 17),
            ("\"ttyS0\"", "\"/dev/ttyS0\"", 6),
            ("\"qemu-x86_64\"", "\"QEMU x86\"", 2),
            (
                "\"kernel/drivers/md/dm-verity.ko\"",
                "\"../dm-verity.ko\"",
                11,
            ),
            (
                "\"kernel/drivers/md/dm-verity.ko\"",
                "\"kernel/drivers/virtio/virtio_pci.ko\"",
                11,
            ),
            ("\"/sys/class/gpio/gpio42/value\"", "\"/tmp/x\"", 20),
        ] {
            let e = parse(&QEMU.replace(from, to)).unwrap_err();
            assert_eq!(e.at.map(|a| a.0), Some(line), "{from} -> {to}: {e}");
        }
    }

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(
            parse_mac("AA-bb-cc-dd-ee-0f"),
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f])
        );
        assert_eq!(parse_mac("aa:bb:cc:dd:ee"), None);
        assert_eq!(parse_mac("aa:bb:cc:dd:ee:ff:00"), None);
        assert_eq!(parse_mac("a:bb:cc:dd:ee:ff"), None);
        assert_eq!(
            format_mac(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f]),
            "aa:bb:cc:dd:ee:0f"
        );
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_col("ab\ncé\nx", 7), (3, 1));
        assert_eq!(line_col("ab\ncé\nx", 3), (2, 1));
        assert_eq!(line_col("ab", 1), (1, 2));
    }
}
