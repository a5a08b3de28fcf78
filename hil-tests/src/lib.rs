//! Hardware-in-the-loop harness: boots the exact firmware image (`out/<board>/disk.img`)
//! in QEMU under software emulation, with its two NICs on tap devices inside network
//! namespaces, so that real stacks and real protocol peers sit on both sides:
//!
//! ```text
//!  [plant ns: hmi 10.10.0.21]──tap── plant NIC ─[QEMU: the image]─ asset NIC ──tap──[asset ns: plc 10.10.0.10]
//! ```
//!
//! Without root ([`Network::Sockets`]), the NICs are on Unix datagram sockets instead
//! and the test itself sends and receives the frames on each side ([`Wire`]).
//!
//! The image is never modified: the VM runs on a copy-on-write overlay. Every test keeps
//! its evidence (serial console, QMP transcript, pcaps of both sides, the data
//! partition's events and state) under `target/hil/<test>/`. KVM is never assumed: the machines this runs on cannot use it.

mod wire;
pub use wire::Wire;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const HMI: &str = "10.10.0.21";
pub const PLC: &str = "10.10.0.10";

/// The repository's root (the harness lives in `hil-tests/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("hil-tests has a parent")
        .to_path_buf()
}

/// How much slower than a quiet machine this one is allowed to be: timeouts are scaled
/// by `GK_HIL_SLOWDOWN` (default 1; CI on 2 busy cores may want 2 or 3).
pub fn slowdown() -> u32 {
    std::env::var("GK_HIL_SLOWDOWN")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

pub fn scaled(d: Duration) -> Duration {
    d * slowdown()
}

/// The tests need root (namespaces, taps) and a built image. Like the namespace tests,
/// they fail loudly instead of passing silently; `GK_SKIP_HIL=1` skips them knowingly.
pub fn require(board: &str) -> Option<Image> {
    let image = require_image(board)?;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "the HIL tests need root for namespaces and taps (GK_SKIP_HIL=1 skips them)"
    );
    Some(image)
}

/// A built image, for a test that needs no root ([`Network::Sockets`]).
pub fn require_image(board: &str) -> Option<Image> {
    if std::env::var_os("GK_SKIP_HIL").is_some() {
        eprintln!("skipping: GK_SKIP_HIL is set");
        return None;
    }
    Some(Image::find(board))
}

/// A built image: `out/<board>/` (or `GK_HIL_OUT/<board>/`).
#[derive(Debug, Clone)]
pub struct Image {
    pub board: String,
    pub dir: PathBuf,
}

impl Image {
    pub fn find(board: &str) -> Image {
        let out = std::env::var_os("GK_HIL_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("out"));
        let dir = out.join(board);
        assert!(
            dir.join("disk.img").exists(),
            "no image at {}: run `make image BOARD={board} PROFILE=test` first (or `make hil`)",
            dir.join("disk.img").display()
        );
        Image {
            board: board.to_string(),
            dir,
        }
    }

    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.img")
    }

    /// The image's `manifest.json`.
    pub fn manifest(&self) -> Value {
        let text = fs::read_to_string(self.dir.join("manifest.json")).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// How a board is started in QEMU: the machine, its firmware, and the hardware that the
/// board description in `bsp/` expects (its ports are named by MAC or PCI address).
#[derive(Debug, Clone)]
pub struct Machine {
    pub qemu: &'static str,
    pub args: Vec<String>,
    /// UEFI firmware code (read-only) and the variable store template (copied per VM);
    /// `None` boots QEMU's own BIOS (SeaBIOS).
    pub firmware: Option<(&'static str, &'static str)>,
    pub hardware: Hardware,
}

/// The devices of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hardware {
    /// The QEMU boards: virtio-blk disk (slot 5), virtio NICs in slots 3 (plant) and 4
    /// (asset) of the root bus, without offloads so that frames look like real hardware's,
    /// and an i6300esb watchdog (slot 6).
    Virtio,
    /// A small x86 box: the disk on the chipset's AHCI, Intel igb NICs behind two PCIe
    /// root ports (so at 0000:01:00.0 and 0000:02:00.0, as `bsp/x86_64-*.toml` say), and
    /// the chipset's TCO watchdog (iTCO_wdt), allowed to reset the machine.
    PcBox,
}

impl Machine {
    pub fn for_board(board: &str) -> Machine {
        let q35 = || vec!["-machine".into(), "q35".into(), "-cpu".into(), "max".into()];
        let ovmf = Some((
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
        ));
        match board {
            "qemu-x86_64" => Machine {
                qemu: "qemu-system-x86_64",
                args: q35(),
                firmware: ovmf,
                hardware: Hardware::Virtio,
            },
            "qemu-aarch64" => Machine {
                qemu: "qemu-system-aarch64",
                args: vec![
                    "-machine".into(),
                    "virt".into(),
                    "-cpu".into(),
                    "cortex-a57".into(),
                ],
                firmware: Some((
                    "/usr/share/AAVMF/AAVMF_CODE.fd",
                    "/usr/share/AAVMF/AAVMF_VARS.fd",
                )),
                hardware: Hardware::Virtio,
            },
            "x86_64-generic" => Machine {
                qemu: "qemu-system-x86_64",
                args: q35(),
                firmware: ovmf,
                hardware: Hardware::PcBox,
            },
            "x86_64-bios" => Machine {
                qemu: "qemu-system-x86_64",
                args: q35(),
                firmware: None,
                hardware: Hardware::PcBox,
            },
            other => panic!("no QEMU machine for board {other}"),
        }
    }
}

/// Options of one boot.
#[derive(Debug, Clone)]
pub struct Options {
    pub memory_mib: u32,
    /// A USB stick present at boot.
    pub stick: Option<PathBuf>,
    pub network: Network,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            memory_mib: 512,
            stick: None,
            network: Network::Namespaces,
        }
    }
}

/// Where the two NICs lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Tap devices in two network namespaces with a host address each (needs root), so
    /// that real stacks and peers (ping, pymodbus …) run on both sides: [`Vm::plant`],
    /// [`Vm::asset`].
    Namespaces,
    /// `-netdev dgram` on Unix datagram sockets (no root): the test sends and receives
    /// Ethernet frames itself, on [`Vm::wire`].
    Sockets,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One side of the box: a namespace holding the tap of one NIC and a host address
/// (with [`Network::Sockets`], neither: its methods panic).
#[derive(Debug)]
pub struct Side {
    pub ns: String,
    pub tap: String,
    pub ip: &'static str,
}

impl Side {
    fn namespace(&self) -> &str {
        assert!(
            !self.ns.is_empty(),
            "this VM's NICs are on sockets (Network::Sockets): use Vm::wire"
        );
        &self.ns
    }

    /// Runs `script` with `sh -c` inside this side's namespace.
    pub fn sh(&self, script: &str) -> Output {
        self.namespace();
        run(
            "ip",
            &[
                "netns", "exec", &self.ns, "timeout", "120", "sh", "-c", script,
            ],
        )
    }

    /// Starts `script` in the background inside the namespace, its output in `log`.
    pub fn spawn(&self, script: &str, log: &Path) -> Child {
        self.namespace();
        let out = fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        Command::new("ip")
            .args(["netns", "exec", &self.ns, "sh", "-c", script])
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("ip netns exec")
    }

    /// A TCP listener on `port` that accepts and closes every connection (a port that is
    /// open on this side), its output in `log`.
    pub fn listen_tcp(&self, port: u16, log: &Path) -> Child {
        self.spawn(
            &format!(
                "exec python3 -c \"import socket; s=socket.socket(); \
                 s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
                 s.bind(('0.0.0.0', {port})); s.listen(8)\nwhile True: s.accept()[0].close()\""
            ),
            log,
        )
    }

    /// Whether a TCP connection from this side to `dst`:`port` is accepted.
    pub fn tcp_connects(&self, dst: &str, port: u16) -> bool {
        self.sh(&format!(
            "python3 -c \"import socket; socket.create_connection(('{dst}', {port}), timeout=3).close()\""
        ))
        .status
        .success()
    }

    /// Pings `dst` until it answers (at most `within`, scaled); the time it took.
    pub fn ping_until_answered(&self, dst: &str, within: Duration) -> Duration {
        let start = Instant::now();
        while !self.ping(dst, 1) {
            assert!(
                start.elapsed() < scaled(within),
                "no ping to {dst} answered through the box within {within:?}"
            );
        }
        start.elapsed()
    }

    pub fn ping(&self, dst: &str, count: u32) -> bool {
        self.sh(&format!("ping -c {count} -i 0.3 -W 1 {dst}"))
            .status
            .success()
    }
}

/// A running VM and the evidence it leaves.
#[derive(Debug)]
pub struct Vm {
    pub dir: PathBuf,
    pub board: String,
    pub plant: Side,
    pub asset: Side,
    /// The NICs' sockets, with [`Network::Sockets`]: plant, asset.
    wires: Option<[Wire; 2]>,
    qemu: Option<Child>,
    qmp: Option<Qmp>,
    /// When QEMU started (`uptime`).
    started: Instant,
    background: Vec<Child>,
    overlay: PathBuf,
    /// The data partition's offset and length on the disk, in bytes.
    data_partition: (u64, u64),
    cmdline: Vec<String>,
}

impl Vm {
    /// Boots `image` for test `test`. Its evidence goes to `target/hil/<test>/`.
    pub fn boot(test: &str, image: &Image, opts: Options) -> Vm {
        let dir = repo().join("target/hil").join(test);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("evidence directory");
        let machine = Machine::for_board(&image.board);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("gkh{}x{n}", std::process::id() % 100_000);
        let namespaces = opts.network == Network::Namespaces;
        let side = |name: &str, tap: &str, ip| Side {
            ns: if namespaces {
                format!("{prefix}-{name}")
            } else {
                String::new()
            },
            tap: if namespaces {
                format!("{prefix}{tap}")
            } else {
                String::new()
            },
            ip,
        };
        let (plant, asset) = (side("plant", "p", HMI), side("asset", "a", PLC));
        if namespaces {
            for side in [&plant, &asset] {
                ip(&["netns", "add", &side.ns]);
                ip(&["tuntap", "add", "mode", "tap", "name", &side.tap]);
            }
        }
        let wires = (!namespaces).then(|| {
            ["plant", "asset"].map(|name| {
                Wire::bind(
                    &dir.join(format!("{name}.host.sock")),
                    &dir.join(format!("{name}.qemu.sock")),
                    &dir.join(format!("{name}.pcap")),
                )
            })
        });
        // The image stays untouched: writes go to an overlay.
        let overlay = dir.join("overlay.qcow2");
        let disk = image.disk();
        let out = run(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                &disk.to_string_lossy(),
                &overlay.to_string_lossy(),
            ],
        );
        assert!(out.status.success(), "qemu-img: {}", stderr(&out));
        let mut vm = Vm {
            dir,
            board: image.board.clone(),
            plant,
            asset,
            wires,
            qemu: None,
            qmp: None,
            started: Instant::now(),
            background: Vec::new(),
            overlay,
            data_partition: image.partition("gk-data"),
            cmdline: Vec::new(),
        };
        vm.cmdline = vm.qemu_args(&machine, &opts);
        vm.start();
        if !namespaces {
            return vm;
        }
        // QEMU holds the taps now; move them to their namespaces and bring them up.
        for side in [&vm.plant, &vm.asset] {
            ip(&["link", "set", &side.tap, "netns", &side.ns]);
            let ns = &side.ns;
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", &side.tap, "up"]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", side.ip),
                "dev",
                &side.tap,
            ]);
            // The hosts are quiet apart from what the tests send.
            let _ = side.sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1");
        }
        vm.capture();
        vm
    }

    fn qemu_args(&self, machine: &Machine, opts: &Options) -> Vec<String> {
        let mut a: Vec<String> = vec![machine.qemu.into(), "-accel".into(), "tcg".into()];
        a.extend(machine.args.iter().cloned());
        a.extend([
            "-m".into(),
            opts.memory_mib.to_string(),
            "-smp".into(),
            "1".into(),
        ]);
        a.extend([
            "-nographic".into(),
            "-no-user-config".into(),
            "-nodefaults".into(),
        ]);
        a.extend([
            "-serial".into(),
            format!("file:{}", self.serial_path().display()),
        ]);
        a.extend([
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", self.qmp_path().display()),
        ]);
        if let Some((code, vars)) = machine.firmware {
            let vars_copy = self.dir.join("efivars.fd");
            fs::copy(vars, &vars_copy)
                .unwrap_or_else(|e| panic!("{vars}: {e} (install ovmf / qemu-efi-aarch64)"));
            a.extend([
                "-drive".into(),
                format!("if=pflash,format=raw,readonly=on,file={code}"),
                "-drive".into(),
                format!("if=pflash,format=raw,file={}", vars_copy.display()),
            ]);
        }
        let disk = format!(
            "if=none,id=disk,format=qcow2,file={}",
            self.overlay.display()
        );
        let nics = [
            ("plant", &self.plant, "52:54:00:00:00:01"),
            ("asset", &self.asset, "52:54:00:00:00:02"),
        ];
        let netdev = |name: &str, side: &Side| match self.wires {
            None => format!("tap,id={name},ifname={},script=no,downscript=no", side.tap),
            Some(_) => format!(
                "dgram,id={name},local.type=unix,local.path={},remote.type=unix,remote.path={}",
                self.dir.join(format!("{name}.qemu.sock")).display(),
                self.dir.join(format!("{name}.host.sock")).display()
            ),
        };
        a.extend(["-drive".into(), disk, "-device".into()]);
        match machine.hardware {
            Hardware::Virtio => {
                a.push("virtio-blk-pci,drive=disk,bus=pcie.0,addr=0x5,bootindex=1".into());
                // No checksum or segmentation offloads towards the guest.
                let offloads = "csum=off,guest_csum=off,gso=off,guest_tso4=off,guest_tso6=off,\
                                guest_ecn=off,guest_ufo=off,host_tso4=off,host_tso6=off,\
                                host_ufo=off,mrg_rxbuf=off";
                for ((name, side, mac), slot) in nics.into_iter().zip(["0x3", "0x4"]) {
                    a.extend([
                        "-netdev".into(),
                        netdev(name, side),
                        "-device".into(),
                        format!(
                            "virtio-net-pci,netdev={name},mac={mac},bus=pcie.0,addr={slot},{offloads}"
                        ),
                    ]);
                }
                a.extend([
                    "-device".into(),
                    "i6300esb,bus=pcie.0,addr=0x6".into(),
                    "-action".into(),
                    "watchdog=reset".into(),
                ]);
            }
            Hardware::PcBox => {
                a.push("ide-hd,drive=disk,bus=ide.0,bootindex=1".into());
                a.extend([
                    "-device".into(),
                    "pcie-root-port,id=rp1,bus=pcie.0,addr=0x1c.0,chassis=1,multifunction=on"
                        .into(),
                    "-device".into(),
                    "pcie-root-port,id=rp2,bus=pcie.0,addr=0x1c.1,chassis=2".into(),
                ]);
                for ((name, side, mac), port) in nics.into_iter().zip(["rp1", "rp2"]) {
                    a.extend([
                        "-netdev".into(),
                        netdev(name, side),
                        "-device".into(),
                        format!("igb,netdev={name},mac={mac},bus={port}"),
                    ]);
                }
                // The ICH9's TCO timer resets the machine only with noreboot off.
                a.extend([
                    "-global".into(),
                    "ICH9-LPC.noreboot=off".into(),
                    "-action".into(),
                    "watchdog=reset".into(),
                ]);
            }
        }
        a.extend(["-device".into(), "qemu-xhci,id=xhci".into()]);
        if let Some(stick) = &opts.stick {
            a.extend([
                "-drive".into(),
                format!("if=none,id=stick0,format=raw,file={}", stick.display()),
                "-device".into(),
                "usb-storage,bus=xhci.0,drive=stick0,removable=on".into(),
            ]);
        }
        a
    }

    fn start(&mut self) {
        let log = fs::File::create(self.dir.join("qemu.log")).expect("qemu log");
        fs::write(self.dir.join("qemu.cmdline"), self.cmdline.join(" ")).ok();
        let child = Command::new(&self.cmdline[0])
            .args(&self.cmdline[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("qemu log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.cmdline[0]));
        self.qemu = Some(child);
        self.started = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.qmp_path().exists() {
            assert!(
                Instant::now() < deadline,
                "QEMU did not open its QMP socket: {}",
                fs::read_to_string(self.dir.join("qemu.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.qmp = Some(Qmp::connect(&self.qmp_path(), &self.dir.join("qmp.log")));
    }

    /// tcpdump on both taps, for the evidence directory.
    fn capture(&mut self) {
        for side in ["plant", "asset"] {
            let s = if side == "plant" {
                &self.plant
            } else {
                &self.asset
            };
            let pcap = self.dir.join(format!("{side}.pcap"));
            let child = s.spawn(
                &format!("exec tcpdump -U -s 256 -ni {} -w {}", s.tap, pcap.display()),
                &self.dir.join(format!("tcpdump-{side}.log")),
            );
            self.background.push(child);
        }
    }

    /// The host's end of NIC `nic` (`plant` or `asset`), with [`Network::Sockets`].
    pub fn wire(&self, nic: &str) -> &Wire {
        let wires = self
            .wires
            .as_ref()
            .expect("this VM's NICs are on taps (Network::Namespaces): use Vm::plant/asset");
        match nic {
            "plant" => &wires[0],
            "asset" => &wires[1],
            other => panic!("no NIC {other:?}: plant or asset"),
        }
    }

    pub fn serial_path(&self) -> PathBuf {
        self.dir.join("serial.log")
    }

    fn qmp_path(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }

    /// Time since QEMU started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Everything the console printed so far.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.serial_path()).unwrap_or_default()).into_owned()
    }

    /// Waits until the console prints `needle` after byte `from`; returns the time since
    /// the VM started and the offset just after the match. Panics with the console's
    /// tail on time-out.
    pub fn wait_console_from(
        &self,
        from: usize,
        needle: &str,
        timeout: Duration,
    ) -> (Duration, usize) {
        let deadline = Instant::now() + scaled(timeout);
        loop {
            let text = self.console();
            if let Some(i) = text.get(from..).and_then(|t| t.find(needle)) {
                return (self.started.elapsed(), from + i + needle.len());
            }
            if let Some(status) = self.qemu_exited() {
                panic!(
                    "QEMU exited ({status}) before the console said {needle:?}; console:\n{}",
                    tail(&text, 3000)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "the console did not say {needle:?} within {:?}; console:\n{}",
                    scaled(timeout),
                    tail(&text, 3000)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_console(&self, needle: &str, timeout: Duration) -> Duration {
        self.wait_console_from(0, needle, timeout).0
    }

    fn qemu_exited(&self) -> Option<String> {
        // try_wait needs &mut; a zero-signal kill tells whether the process is alive.
        let pid = self.qemu.as_ref()?.id() as i32;
        // SAFETY: kill(2) with signal 0 only checks for the process.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
        (!alive || zombie).then(|| "exited".to_string())
    }

    /// A QMP command; panics on an error answer.
    pub fn qmp(&mut self, command: &str, arguments: Value) -> Value {
        self.qmp
            .as_mut()
            .expect("QMP connected")
            .execute(command, arguments)
    }

    /// Pulls the plug: QEMU ends at once, whatever the guest was writing.
    pub fn power_cut(&mut self) {
        if let Some(mut q) = self.qmp.take() {
            let _ = q.execute_raw("quit", json!({}));
        }
        if let Some(mut child) = self.qemu.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sets a NIC's link (`plant` or `asset`) up or down.
    pub fn set_link(&mut self, nic: &str, up: bool) {
        self.qmp("set_link", json!({"name": nic, "up": up}));
    }

    /// Plugs a USB stick (a raw FAT image) into the running VM.
    pub fn plug_stick(&mut self, id: &str, image: &Path) {
        self.qmp(
            "blockdev-add",
            json!({"node-name": id, "driver": "raw",
                   "file": {"driver": "file", "filename": image.to_string_lossy()}}),
        );
        self.qmp(
            "device_add",
            json!({"driver": "usb-storage", "id": format!("dev-{id}"), "drive": id, "bus": "xhci.0", "removable": true}),
        );
    }

    pub fn unplug_stick(&mut self, id: &str) {
        self.qmp("device_del", json!({"id": format!("dev-{id}")}));
        // The block node goes once the device is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self
                .qmp
                .as_mut()
                .expect("QMP connected")
                .execute_raw("blockdev-del", json!({"node-name": id}));
            if r.get("error").is_none() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // Per-scenario times for the log (`make hil` runs with --nocapture).
        let test = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        eprintln!(
            "hil: {}: the VM ran {:.1} s",
            test.unwrap_or_default(),
            self.started.elapsed().as_secs_f64()
        );
        self.power_cut();
        for mut child in self.background.drain(..) {
            // SAFETY: kill(2) on our own child's pid; tcpdump flushes on SIGTERM.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
        for side in [&self.plant, &self.asset]
            .into_iter()
            .filter(|s| !s.ns.is_empty())
        {
            let _ = run("ip", &["netns", "del", &side.ns]);
            let _ = run("ip", &["link", "del", &side.tap]);
        }
        // The events and the state on the data partition, also for a failed test.
        if let Err(e) = self.copy_data_files(&self.dir.join("data")) {
            let _ = fs::write(self.dir.join("data-error.txt"), e);
        }
        // The overlay is the bulk of the evidence and says nothing the console and the
        // data partition's files don't.
        let _ = fs::remove_file(&self.overlay);
    }
}

/// A QMP connection (JSON lines over a Unix socket), with a transcript.
#[derive(Debug)]
pub struct Qmp {
    stream: BufReader<UnixStream>,
    log: fs::File,
}

impl Qmp {
    fn connect(path: &Path, log: &Path) -> Qmp {
        let stream = UnixStream::connect(path).expect("QMP socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut q = Qmp {
            stream: BufReader::new(stream),
            log: fs::File::create(log).expect("qmp log"),
        };
        let greeting = q.read();
        assert!(greeting.get("QMP").is_some(), "QMP greeting: {greeting}");
        let r = q.execute_raw("qmp_capabilities", json!({}));
        assert!(r.get("return").is_some(), "qmp_capabilities: {r}");
        q
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.stream.read_line(&mut line).expect("QMP read");
        let _ = write!(self.log, "<- {line}");
        serde_json::from_str(&line).unwrap_or(Value::Null)
    }

    /// Sends a command and returns its answer (events before it are logged and skipped).
    pub fn execute_raw(&mut self, command: &str, arguments: Value) -> Value {
        let request = json!({"execute": command, "arguments": arguments}).to_string();
        let _ = writeln!(self.log, "-> {request}");
        if writeln!(self.stream.get_mut(), "{request}").is_err() {
            return json!({"error": {"desc": "QMP connection closed"}});
        }
        loop {
            let v = self.read();
            if v.is_null() || v.get("return").is_some() || v.get("error").is_some() {
                return v;
            }
        }
    }

    pub fn execute(&mut self, command: &str, arguments: Value) -> Value {
        let r = self.execute_raw(command, arguments.clone());
        assert!(r.get("error").is_none(), "QMP {command} {arguments}: {r}");
        r
    }
}

/// A FAT-formatted 64 MiB USB stick image (sparse) holding `files` (name → bytes), built with mtools
/// (no loop mount).
pub fn make_stick(path: &Path, files: &[(&str, &[u8])]) {
    let _ = fs::remove_file(path);
    let out = run(
        "mkfs.vfat",
        &["-C", "-n", "GKSTICK", &path.to_string_lossy(), "65536"],
    );
    assert!(out.status.success(), "mkfs.vfat: {}", stderr(&out));
    let staging = path.with_extension("files");
    let _ = fs::remove_dir_all(&staging);
    for (name, bytes) in files {
        let file = staging.join(name);
        fs::create_dir_all(file.parent().expect("parent")).expect("staging");
        fs::write(&file, bytes).expect("staging file");
        if let Some(parent) = Path::new(name)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let _ = run(
                "mmd",
                &[
                    "-D",
                    "s",
                    "-i",
                    &path.to_string_lossy(),
                    &format!("::{}", parent.display()),
                ],
            );
        }
        let out = run(
            "mcopy",
            &[
                "-o",
                "-i",
                &path.to_string_lossy(),
                &file.to_string_lossy(),
                &format!("::{name}"),
            ],
        );
        assert!(out.status.success(), "mcopy {name}: {}", stderr(&out));
    }
    let _ = fs::remove_dir_all(&staging);
}

pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn ip(args: &[&str]) {
    let out = run("ip", args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        stderr(&out)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn tail(text: &str, n: usize) -> &str {
    let start = text.len().saturating_sub(n);
    let mut i = start;
    while !text.is_char_boundary(i) {
        i += 1;
    }
    &text[i..]
}

/// The Python with the real protocol peers (pymodbus …): `GK_PYTHON` (the Makefile sets
/// it), else the venv `make venv` builds in `target/venv`.
pub fn python() -> String {
    if let Some(p) = std::env::var_os("GK_PYTHON") {
        return p.to_string_lossy().into_owned();
    }
    let venv = repo().join("target/venv/bin/python3");
    assert!(
        venv.exists(),
        "no Python with the protocol peers: run `make venv` (or set GK_PYTHON)"
    );
    venv.to_string_lossy().into_owned()
}

/// A peer script of the namespace tests (`firmware/gatekeeperd/tests/peers/`).
pub fn peer(script: &str) -> PathBuf {
    repo().join("firmware/gatekeeperd/tests/peers").join(script)
}

/// The published test-only signer that test images trust (`config/keys/`).
pub fn test_signer_key() -> PathBuf {
    repo().join("config/keys/test-only-signer-1.key")
}

/// A bundle of `policy` with serial `serial`, made now and signed by the test-only
/// signer; `edit` changes its metadata first.
pub fn signed_bundle(
    serial: u64,
    policy: &str,
    edit: impl FnOnce(&mut gk_bundle::format::Metadata),
) -> Vec<u8> {
    use gk_bundle::{format, keys::SecretKey};
    let text = fs::read_to_string(test_signer_key()).expect("config/keys test key");
    let key = SecretKey::from_file_text(&text).expect("a test key");
    let mut meta = format::Metadata::new(serial, time::OffsetDateTime::now_utc());
    edit(&mut meta);
    format::build(&meta, policy, &key)
}

impl Vm {
    /// Cuts the power and returns the VM's whole disk as a raw file in the evidence
    /// directory (the overlay converted; the image itself is untouched).
    pub fn disk_after_power_cut(&mut self) -> PathBuf {
        self.power_cut();
        let raw = self.dir.join("disk-after.raw");
        let out = run(
            "qemu-img",
            &[
                "convert",
                "-f",
                "qcow2",
                "-O",
                "raw",
                &self.overlay.to_string_lossy(),
                &raw.to_string_lossy(),
            ],
        );
        assert!(out.status.success(), "qemu-img convert: {}", stderr(&out));
        raw
    }
}

impl Vm {
    /// Cuts the power and copies the data partition's files into `into`: `state/` (the
    /// bundle in force, the ratchet, the audit log) and the events (`events.jsonl*`).
    pub fn data_after_power_cut(&mut self, into: &Path) -> PathBuf {
        self.power_cut();
        self.copy_data_files(into).unwrap_or_else(|e| panic!("{e}"));
        into.to_path_buf()
    }

    /// The data partition's files, read off the overlay without a mount: its slice copied
    /// out by qemu-img, the journal replayed by e2fsck (as the next mount would, after a
    /// power cut), the files read by debugfs.
    fn copy_data_files(&self, into: &Path) -> Result<(), String> {
        let (offset, len) = self.data_partition;
        let part = self.dir.join("data-partition.img");
        let spec = format!(
            "driver=raw,offset={offset},size={len},file.driver=qcow2,\
             file.file.driver=file,file.file.filename={}",
            self.overlay.display()
        );
        let p = part.to_string_lossy().into_owned();
        let out = run(
            "qemu-img",
            &["convert", "--image-opts", &spec, "-O", "raw", &p],
        );
        if !out.status.success() {
            return Err(format!("qemu-img convert: {}", stderr(&out)));
        }
        // e2fsck exits 1 when it fixed something, which a journal replay is.
        let out = run("e2fsck", &["-fy", &p]);
        fs::write(self.dir.join("data-e2fsck.log"), &out.stdout).ok();
        if !matches!(out.status.code(), Some(0 | 1)) {
            return Err(format!(
                "e2fsck on the data partition: {}{}",
                String::from_utf8_lossy(&out.stdout),
                stderr(&out)
            ));
        }
        let _ = fs::remove_dir_all(into);
        fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
        let debugfs = |request: String| run("debugfs", &["-R", &request, &p]);
        let out = debugfs(format!("rdump /state {}", into.display()));
        if !out.status.success() {
            return Err(format!("debugfs: {}", stderr(&out)));
        }
        for events in ["events.jsonl", "events.jsonl.1"] {
            // A missing file is only a message on stderr.
            debugfs(format!("dump /{events} {}", into.join(events).display()));
        }
        let _ = fs::remove_file(&part);
        Ok(())
    }
}

impl Image {
    /// Where partition `name` (`gk-esp`, `gk-data` …) starts and how long it is, in
    /// bytes, from the manifest.
    pub fn partition(&self, name: &str) -> (u64, u64) {
        let manifest = self.manifest();
        let p = manifest["partitions"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .unwrap_or_else(|| panic!("manifest.json lists no partition {name}"));
        let field = |k: &str| p[k].as_u64().unwrap_or_else(|| panic!("{name}: no {k}"));
        (field("first_lba") * 512, field("sectors") * 512)
    }
}
