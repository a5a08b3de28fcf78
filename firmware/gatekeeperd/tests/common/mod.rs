//! A plant — gatekeeper — asset topology in network namespaces, with the daemon running
//! in the middle and real kernel stacks and tools at both ends.
//!
//! ```text
//!  [hmi 10.10.0.21]──┐
//!                    ├─[sw: kernel bridge]── plant ─[gk: gatekeeperd]─ asset ──[plc 10.10.0.10]
//!  [intruder .66]────┘
//! ```
//! Every name is prefixed per test, everything is torn down on drop (also on panic),
//! and traffic only ever goes to addresses inside these namespaces.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const HMI: &str = "10.10.0.21";
pub const INTRUDER: &str = "10.10.0.66";
pub const PLC: &str = "10.10.0.10";
pub const HMI_MAC: &str = "02:00:00:00:00:21";
pub const INTRUDER_MAC: &str = "02:00:00:00:00:66";
pub const PLC_MAC: &str = "02:00:00:00:00:10";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Fail loudly when the suite cannot run: these tests are the product's guarantee.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("GK_SKIP_NETNS").is_some() {
        eprintln!("skipping: not root and GK_SKIP_NETNS is set");
        return false;
    }
    panic!("the namespace tests need root (set GK_SKIP_NETNS=1 to skip them knowingly)");
}

/// The Python with the real protocol peers (pymodbus …): `GK_PYTHON` (set by the
/// Makefile), else the venv `make venv` builds in `target/venv`.
pub fn python() -> String {
    if let Some(p) = std::env::var_os("GK_PYTHON") {
        return p.to_string_lossy().into_owned();
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/venv/bin/python3");
    assert!(
        Path::new(venv).exists(),
        "no Python with the protocol peers: run `make venv` (or set GK_PYTHON)"
    );
    venv.to_string()
}

/// A peer script in tests/peers/.
pub fn peer_script(name: &str) -> String {
    format!("{}/tests/peers/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs a peer script (`tests/peers/SCRIPT`) with the peers' Python in `role`; one JSON
/// value per line it printed. A script that printed nothing fails the test, with its
/// stderr.
pub fn peer_json(net: &Net, role: &str, script: &str, args: &str) -> Vec<serde_json::Value> {
    let path = peer_script(script);
    let out = net.try_sh(role, &format!("{} {path} {args}", python()));
    let text = String::from_utf8_lossy(&out.stdout);
    let values: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("{script} said {l:?}")))
        .collect();
    assert!(
        !values.is_empty(),
        "{script} {args}: no output; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    values
}

/// The `result` of each value a peer printed.
pub fn results(values: &[serde_json::Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| v["result"].as_str().unwrap_or("?").to_string())
        .collect()
}

pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

pub fn ip(args: &[&str]) {
    let out = run("ip", args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Net {
    pub prefix: String,
    pub dir: PathBuf,
    roles: Vec<&'static str>,
    daemon: Option<Child>,
    background: Vec<Child>,
}

impl Net {
    /// Build the topology. `test` names the evidence directory under target/netns-tests.
    pub fn new(test: &str) -> Net {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("gkt{}x{n}", std::process::id() % 100_000);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("netns-tests")
            .join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let roles = vec!["hmi", "intr", "sw", "gk", "plc"];
        let net = Net {
            prefix,
            dir,
            roles,
            daemon: None,
            background: Vec::new(),
        };
        for role in &net.roles {
            let ns = net.ns(role);
            let _ = run("ip", &["netns", "del", &ns]);
            ip(&["netns", "add", &ns]);
            // The hosts stay quiet on IPv6 so that captures hold only the test's traffic;
            // the gatekeeper's namespace keeps the kernel defaults: silencing its ports
            // is the daemon's job, and the silence test checks it does.
            if *role == "gk" {
                net.sh(role, "ip link set lo up");
            } else {
                net.sh(role, "ip link set lo up; sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
            }
        }
        net.sh("sw", "ip link add br0 type bridge && ip link set br0 up");
        for (role, addr, mac) in [("hmi", HMI, HMI_MAC), ("intr", INTRUDER, INTRUDER_MAC)] {
            ip(&[
                "link",
                "add",
                "eth0",
                "netns",
                &net.ns(role),
                "type",
                "veth",
                "peer",
                "name",
                role,
                "netns",
                &net.ns("sw"),
            ]);
            net.sh("sw", &format!("ip link set {role} master br0 up"));
            net.sh(
                role,
                &format!("ip link set eth0 address {mac} up && ip addr add {addr}/24 dev eth0"),
            );
        }
        ip(&[
            "link",
            "add",
            "plant",
            "netns",
            &net.ns("gk"),
            "type",
            "veth",
            "peer",
            "name",
            "uplink",
            "netns",
            &net.ns("sw"),
        ]);
        net.sh("sw", "ip link set uplink master br0 up");
        ip(&[
            "link",
            "add",
            "asset",
            "netns",
            &net.ns("gk"),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &net.ns("plc"),
        ]);
        net.sh(
            "plc",
            &format!("ip link set eth0 address {PLC_MAC} up && ip addr add {PLC}/24 dev eth0"),
        );
        net
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// Run a shell snippet inside a namespace and insist that it works.
    pub fn sh(&self, role: &str, script: &str) -> String {
        let out = self.try_sh(role, script);
        assert!(
            out.status.success(),
            "in {role}: {script}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn try_sh(&self, role: &str, script: &str) -> Output {
        run("ip", &["netns", "exec", &self.ns(role), "sh", "-c", script])
    }

    pub fn spawn(&mut self, role: &str, script: &str) {
        let log = std::fs::File::create(
            self.dir
                .join(format!("{role}-bg{}.log", self.background.len())),
        )
        .unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(role),
                "sh",
                "-c",
                &format!("exec {script}"),
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.background.push(child);
    }

    pub fn peers() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/peers.py").to_string()
    }

    /// Start an echo server (tcp or udp) in `role` and wait until it listens.
    pub fn echo_server(&mut self, role: &str, proto: &str, port: u16) {
        self.spawn(
            role,
            &format!("python3 -u {} {proto}-server {port}", Net::peers()),
        );
        self.wait_listening(role, proto, port);
    }

    /// Wait (up to 20 s) until something in `role` listens on `port` (`tcp` or `udp`).
    pub fn wait_listening(&self, role: &str, proto: &str, port: u16) {
        let probe = if proto == "tcp" { "-tln" } else { "-uln" };
        wait_until(Duration::from_secs(20), || {
            self.try_sh(
                role,
                &format!("ss -H {probe} 'sport = :{port}' | grep -q ."),
            )
            .status
            .success()
        });
    }

    /// A client run: Ok(()) when the echo came back intact, Err(reason) otherwise.
    pub fn tcp(&self, role: &str, dst: &str, port: u16, bytes: usize) -> Result<(), String> {
        self.client(role, &format!("tcp-client {dst} {port} {bytes} 2"))
    }

    pub fn udp(&self, role: &str, dst: &str, port: u16) -> Result<(), String> {
        self.client(role, &format!("udp-client {dst} {port} 1"))
    }

    fn client(&self, role: &str, args: &str) -> Result<(), String> {
        let out = self.try_sh(role, &format!("python3 {} {args}", Net::peers()));
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{said} {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    pub fn ping(&self, role: &str, dst: &str) -> bool {
        self.try_sh(role, &format!("ping -c 2 -i 0.2 -W 1 {dst}"))
            .status
            .success()
    }

    pub fn write_policy(&self, text: &str) -> PathBuf {
        let path = self.dir.join("policy.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn events_path(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.dir.join("gatekeeperd.stderr")
    }

    /// Start gatekeeperd in the gk namespace with a policy text; wait until it forwards.
    pub fn start_daemon(&mut self, policy: &str, extra: &[&str]) {
        let policy = self.write_policy(policy);
        let policy = policy.to_string_lossy().into_owned();
        let mut args = vec!["--unsigned-policy", policy.as_str()];
        args.extend_from_slice(extra);
        self.start_daemon_args(&args);
    }

    /// Start gatekeeperd with `args` after `--plant plant --asset asset --events …`
    /// (production mode: `--trust`, `--state` …); wait until it forwards.
    pub fn start_daemon_args(&mut self, args: &[&str]) {
        // Earlier runs' lines stay in the log: look only at this run's.
        let offset = self.daemon_log().len();
        let child = self
            .daemon_command_args(args)
            .spawn()
            .expect("spawn gatekeeperd");
        self.daemon = Some(child);
        self.wait_forwarding(offset);
    }

    fn wait_forwarding(&mut self, offset: usize) {
        let stderr = self.stderr_path();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let all = std::fs::read_to_string(&stderr).unwrap_or_default();
            let log = all.get(offset..).unwrap_or("");
            if log.contains("forwarding") {
                return;
            }
            if let Some(status) = self.daemon.as_mut().unwrap().try_wait().unwrap() {
                panic!("gatekeeperd exited with {status} before forwarding:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "gatekeeperd did not start forwarding:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn daemon_command(&self, policy: &Path, extra: &[&str]) -> Command {
        let policy = policy.to_string_lossy().into_owned();
        let mut args = vec!["--unsigned-policy", policy.as_str()];
        args.extend_from_slice(extra);
        self.daemon_command_args(&args)
    }

    /// The daemon's command line with `args`; its stderr goes to `stderr_path()`
    /// (appended, so that restarts keep the earlier runs' lines).
    pub fn daemon_command_args(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.ns("gk"),
            env!("CARGO_BIN_EXE_gatekeeperd"),
        ])
        .args(["--plant", "plant", "--asset", "asset"])
        .arg("--events")
        .arg(self.events_path())
        .args(args)
        .env("GK_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.stderr_path())
                .unwrap(),
        );
        cmd
    }

    /// Kill the daemon with SIGKILL (a power cut, as far as its files are concerned).
    pub fn kill_daemon(&mut self) {
        let mut child = self.daemon.take().expect("daemon running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// What the daemon has written to stderr so far (every run of it).
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// Send a signal to the daemon.
    pub fn signal_daemon(&self, signal: i32) {
        let pid = self.daemon.as_ref().expect("daemon running").id() as i32;
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Stop the daemon with SIGTERM; returns its exit code and stderr.
    pub fn stop_daemon(&mut self) -> (i32, String) {
        let mut child = self.daemon.take().expect("daemon running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("gatekeeperd did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (
            status.code().unwrap_or(-1),
            std::fs::read_to_string(self.stderr_path()).unwrap_or_default(),
        )
    }

    /// Every event written so far, parsed.
    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.events_path())
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}"))
            })
            .collect()
    }

    /// Wait (up to 5 s) for an event matching `pred`, since the writer flushes asynchronously.
    pub fn wait_event(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(e) = self.events().into_iter().find(&pred) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no event {what}; events: {:#?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Start tcpdump on an interface of a namespace, writing a pcap into the test dir.
    pub fn capture(&mut self, role: &str, iface: &str, name: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.pcap"));
        self.spawn(
            role,
            &format!(
                "tcpdump -i {iface} -U -s 0 -w {} 2>/dev/null",
                path.display()
            ),
        );
        wait_until(Duration::from_secs(5), || path.exists());
        std::thread::sleep(Duration::from_millis(300));
        path
    }

    /// Stop background processes (captures flush on SIGTERM).
    pub fn stop_background(&mut self) {
        for child in &mut self.background {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        for mut child in self.background.drain(..) {
            let deadline = Instant::now() + Duration::from_secs(3);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stop_background();
        for role in &self.roles {
            let _ = run("ip", &["netns", "del", &self.ns(role)]);
        }
    }
}

pub fn wait_until(timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Read the frames of a pcap file written by tcpdump.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(file).unwrap();
    let mut frames = Vec::new();
    while let Some(Ok(packet)) = reader.next_packet() {
        frames.push(packet.data.into_owned());
    }
    frames
}

/// Wait (up to 5 s) until the capture holds every frame in `expected` (tcpdump -U writes
/// each packet as it comes), then return everything captured so far.
pub fn wait_for_frames(path: &Path, expected: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = read_pcap(path);
        let missing: Vec<String> = expected
            .iter()
            .filter(|f| !seen.contains(f))
            .map(|f| hex(f))
            .collect();
        if missing.is_empty() {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "frames not delivered byte for byte: {missing:?}\nseen: {:?}",
            seen.iter().map(|f| hex(f)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn mac_bytes(mac: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, part) in out.iter_mut().zip(mac.split(':')) {
        *o = u8::from_str_radix(part, 16).unwrap();
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
