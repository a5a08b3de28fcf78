//! Stage 2: `/sbin/init` on the verified root, PID 1 for the life of the box.
//!
//! One thread runs the loop below every 200 ms: feed the watchdog, reap children, act
//! on signals, start gatekeeperd when the supervisor says so, notice READY, print the
//! status. A second thread polls USB sticks (copying and writing an update can take
//! minutes; the watchdog must not wait for it) and sends requests over a channel.
//!
//! Signals: SIGTERM, SIGINT (also Ctrl-Alt-Del, which the kernel sends to PID 1 once
//! `reboot(RB_DISABLE_CAD)`) and SIGUSR2 power the box off; SIGUSR1 reboots it. Both
//! stop gatekeeperd cleanly (SIGTERM, 10 s, then SIGKILL), sync and unmount `/data`.
//!
//! gatekeeperd's stdout (its event stream, one JSON line per event) goes nowhere on the
//! box: the console is for people, and the data partition is too small for an
//! unbounded log. Its stderr (warnings, refusals) goes to the console.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::board::{Board, Boot, Profile, BOARD_FILE};
use crate::bootcount;
use crate::netlink;
use crate::stage1::{self, ENV_DISK, ENV_SLOT};
use crate::status::{self, Summary};
use crate::supervisor::{Limits, Next, Phase, State, Supervisor};
use crate::sys::{self, announce, say};
use crate::sysfs::{self, DiskSearch};
use crate::update::{self, Running};
use crate::usb::{self, Request};
use crate::watchdog::{self, Watchdog};

const DAEMON: &str = "/usr/bin/gatekeeperd";
const TRUST: &str = "/etc/gatekeeper/trust";
const CONTROL: &str = "/run/gatekeeper/control.sock";
const READY: &str = "/run/gatekeeper/ready";
/// The empty state the fail-open daemon runs on (tmpfs: it must never hold a bundle).
const FAIL_OPEN_STATE: &str = "/run/gatekeeper/fail-open-state";
const TICK: Duration = Duration::from_millis(200);
const PORT_WAIT: Duration = Duration::from_secs(30);
const STOP_WAIT: Duration = Duration::from_secs(10);
const STATUS_EVERY: Duration = Duration::from_secs(60);
const FAIL_EVERY: Duration = Duration::from_secs(10);
const USB_EVERY: Duration = Duration::from_secs(2);

/// The signal that arrived last (0: none); set by the handler, read by the loop.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// What the box is doing about gatekeeperd.
/// Where gatekeeperd writes its events (JSON lines), and the size past which it moves
/// them to `events.jsonl.1`: at most about 8 MiB of the 64 MiB data partition.
const EVENTS: &str = "/data/events.jsonl";
const EVENTS_MAX_BYTES: u64 = 4 << 20;

struct Daemon {
    board: Board,
    device_id: Option<String>,
    sup: Supervisor,
    pid: Option<Pid>,
    /// Test hook `crash-loop`: starts fail until the crash loop.
    sabotage: bool,
    ready_seen: bool,
    /// `dev` images: the busybox shell on the console (started once READY, again when
    /// it exits). Production and test images have no shell at all.
    shell: Option<Pid>,
}

impl Daemon {
    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = ["--plant", "plant", "--asset", "asset", "--trust", TRUST]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let push = |a: &mut Vec<String>, k: &str, v: &str| {
            a.push(k.to_string());
            a.push(v.to_string());
        };
        match self.sup.phase() {
            Phase::FailOpen => {
                // gatekeeperd's own fail-open: an empty state, no bundle source, so the
                // placeholder policy (forward everything) is what runs.
                push(&mut a, "--state", FAIL_OPEN_STATE);
                push(&mut a, "--on-failure", "fail-open");
            }
            _ => {
                push(&mut a, "--state", "/data/state");
                push(&mut a, "--inbox", "/data/inbox");
                push(&mut a, "--on-failure", self.board.on_failure.as_str());
                a.push("--factory-monitor".into());
            }
        }
        push(&mut a, "--control", CONTROL);
        if let Some(id) = &self.device_id {
            push(&mut a, "--device-id", id);
        }
        push(&mut a, "--ready-file", READY);
        // Events on the data partition, bounded: the current file and one previous.
        push(&mut a, "--events", EVENTS);
        push(&mut a, "--events-max-bytes", &EVENTS_MAX_BYTES.to_string());
        if self.board.link_propagation {
            a.push("--link-propagation".into());
        }
        if self.sabotage {
            // An argument gatekeeperd refuses: it really starts and really exits.
            a.push("--gk-init-test-crash-loop".into());
        }
        a
    }

    fn start(&mut self, now: Instant) {
        let _ = std::fs::remove_file(READY);
        self.ready_seen = false;
        if self.sup.phase() == Phase::FailOpen {
            let _ = std::fs::remove_dir_all(FAIL_OPEN_STATE);
            let _ = std::fs::create_dir_all(FAIL_OPEN_STATE);
        }
        let args = self.args();
        self.sup.started(now);
        match Command::new(DAEMON)
            .args(&args)
            // A serial console shows escape codes as garbage.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null()) // events go to EVENTS
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(child) => {
                self.pid = Some(Pid::from_raw(child.id() as i32));
                say(&format!(
                    "gatekeeperd started (pid {}): {}",
                    child.id(),
                    args.join(" ")
                ));
            }
            Err(e) => {
                say(&format!("cannot start {DAEMON}: {e}"));
                self.exited(now, "could not be started".into());
            }
        }
    }

    fn exited(&mut self, now: Instant, how: String) {
        self.pid = None;
        let _ = std::fs::remove_file(READY);
        match self.sup.exited(now) {
            Next::Restart(d) => say(&format!(
                "gatekeeperd {how}; restarting in {} s",
                d.as_secs()
            )),
            Next::Stopped => say(&format!("gatekeeperd {how}")),
            Next::CrashLoop(phase) => {
                self.sabotage = false;
                say(&format!(
                    "gatekeeperd {how}: a crash loop (5 exits within 2 minutes)"
                ));
                enter_failure(&self.board, phase);
            }
        }
    }
}

/// What a crash loop ends in, on the ports and the hooks.
fn enter_failure(board: &Board, phase: Phase) {
    match phase {
        Phase::FailClosed => {
            for port in ["plant", "asset"] {
                match netlink::ifindex(port).and_then(|i| netlink::set_up(i, false)) {
                    Ok(()) => say(&format!("{port} is down")),
                    Err(e) => say(&format!("cannot take {port} down: {e}")),
                }
            }
            hook(&board.hooks.bypass, "0");
            announce("GATEKEEPER FAIL-CLOSED: FORWARDING NOTHING");
        }
        Phase::FailOpen => {
            hook(&board.hooks.bypass, "1");
            announce("GATEKEEPER FAIL-OPEN: FORWARDING UNFILTERED");
        }
        Phase::Normal => {}
    }
}

fn hook(path: &Option<PathBuf>, value: &str) {
    if let Some(p) = path {
        if let Err(e) = sys::write_sysfs(p, value) {
            say(&format!("warning: {e}"));
        }
    }
}

/// Runs stage 2; returns only with an error message for the caller's fatal path.
pub fn run() -> String {
    let board = match Board::load(Path::new(BOARD_FILE)) {
        Ok(b) => b,
        Err(e) => return e.to_string(),
    };
    if let Err(e) = sys::console(&board.console) {
        let _ = sys::console("console");
        say(&format!("warning: console /dev/{}: {e}", board.console));
    }
    let slot = match std::env::var(ENV_SLOT).as_deref() {
        Ok("a") => 'a',
        Ok("b") => 'b',
        _ => return format!("{ENV_SLOT} is not set: stage 2 runs only after stage 1"),
    };
    let disk_name = std::env::var(ENV_DISK).unwrap_or_default();
    let disk = match sysfs::find_gk_disk(&sysfs::partitions(Path::new("/sys")), |d| d != disk_name)
    {
        DiskSearch::Found(d, _) if d.disk == disk_name => *d,
        _ => return format!("the boot disk {disk_name:?} has gone"),
    };
    let _ = sys::mount(
        "tmpfs",
        Path::new("/tmp"),
        "tmpfs",
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some("mode=1777,size=16m"),
    );
    let _ = std::fs::create_dir_all("/run/gatekeeper");

    let mut wd = match (
        std::env::var(watchdog::FD_ENV)
            .ok()
            .and_then(|v| v.parse().ok()),
        &board.watchdog,
    ) {
        (Some(fd), Some(w)) => Some(Watchdog::inherit(fd, w.timeout)),
        (None, Some(w)) => Watchdog::open(&w.device, w.timeout)
            .map_err(|e| say(&format!("warning: {e}; running without a watchdog")))
            .ok(),
        _ => None,
    };
    std::env::remove_var(watchdog::FD_ENV);

    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
        if let Err(e) = unsafe { signal::signal(sig, SigHandler::Handler(on_signal)) } {
            say(&format!("warning: cannot handle {sig}: {e}"));
        }
    }
    let _ = nix::sys::reboot::set_cad_enabled(false);
    hook(&board.hooks.bypass, "0");
    hook(&board.hooks.status_led, "0");
    say(&format!("stage 2: slot {slot} on {}", disk.disk));

    let plant_mac = match setup_ports(&board, &mut wd) {
        Ok(mac) => mac,
        Err(e) => {
            // Nothing can forward without the ports: say so, keep the watchdog fed and
            // the box reachable for a USB update, and wait for a reboot.
            return ports_missing(&e, &mut wd);
        }
    };
    let device_id = sysfs::device_id(Path::new("/sys"), plant_mac);
    say(&format!(
        "device id {}",
        device_id.as_deref().unwrap_or("(none)")
    ));

    let now = Instant::now();
    let mut d = Daemon {
        sup: Supervisor::new(Limits::default(), board.on_failure, now),
        board: board.clone(),
        device_id,
        pid: None,
        sabotage: false,
        ready_seen: false,
        shell: None,
    };
    let running = Running {
        board: board.clone(),
        disk: disk.clone(),
        slot,
    };
    let boot_good = Arc::new(AtomicBool::new(false));
    let requests = spawn_usb(running.clone(), boot_good.clone());

    let mut last_status: Option<String> = None;
    let mut status_at = now;
    let mut fail_at = now;
    let mut last_phase = Phase::Normal;
    loop {
        let now = Instant::now();
        if let Some(w) = wd.as_mut() {
            if let Err(e) = w.tick(now) {
                say(&format!("watchdog keepalive failed: {e}"));
            }
        }
        reap(&mut d, now);

        let sig = SIGNAL.swap(0, Ordering::SeqCst);
        if sig != 0 {
            let power_off = sig != libc::SIGUSR1;
            say(&format!(
                "signal {sig}: {}",
                if power_off {
                    "powering off"
                } else {
                    "rebooting"
                }
            ));
            return shutdown(&mut d, wd, power_off);
        }
        while let Ok(r) = requests.try_recv() {
            match r {
                Request::KillDaemon => match d.pid {
                    Some(pid) => {
                        say("test hook: SIGKILL to gatekeeperd");
                        let _ = signal::kill(pid, Signal::SIGKILL);
                    }
                    None => say("test hook kill-daemon: gatekeeperd is not running"),
                },
                Request::CrashLoop => {
                    if d.sup.phase() == Phase::Normal {
                        say("test hook: the next starts of gatekeeperd fail until the crash loop");
                        d.sabotage = true;
                        if let Some(pid) = d.pid {
                            let _ = signal::kill(pid, Signal::SIGKILL);
                        }
                    }
                }
                Request::Hang => {
                    match wd.as_mut() {
                        Some(w) => {
                            say(&format!("test hook: no more watchdog keepalives; expect a reset within {} s", w.timeout.as_secs()));
                            w.starved = true;
                        }
                        None => say("test hook hang: this board has no watchdog"),
                    }
                }
                Request::Reboot => return shutdown(&mut d, wd, false),
            }
        }

        if d.board.profile == Profile::Dev && d.ready_seen && d.shell.is_none() {
            d.shell = dev_shell();
        }

        if d.sup.start_due(now) {
            d.start(now);
        }

        if d.pid.is_some() && !d.ready_seen && Path::new(READY).exists() {
            d.ready_seen = true;
            announce(&format!(
                "GATEKEEPER READY {} {}",
                board.version, board.board
            ));
            hook(&board.hooks.status_led, "1");
            if !boot_good.load(Ordering::SeqCst) {
                match mark_good(&running) {
                    Ok(what) => {
                        say(&format!("boot of slot {slot} marked good: {what}"));
                        boot_good.store(true, Ordering::SeqCst);
                    }
                    Err(e) => say(&format!("warning: cannot mark the boot good: {e}")),
                }
            }
            status_at = now - STATUS_EVERY; // a status line right away
        }

        let phase = d.sup.phase();
        if phase != last_phase {
            // enter_failure() has just said it; the next reminder is in 10 s.
            last_phase = phase;
            fail_at = now;
        }
        if phase != Phase::Normal && now.saturating_duration_since(fail_at) >= FAIL_EVERY {
            fail_at = now;
            match (phase, d.pid.is_some() && d.ready_seen) {
                (Phase::FailClosed, _) => announce("GATEKEEPER FAIL-CLOSED: FORWARDING NOTHING"),
                (Phase::FailOpen, true) => announce("GATEKEEPER FAIL-OPEN: FORWARDING UNFILTERED"),
                (Phase::FailOpen, false) if board.hooks.bypass.is_some() => {
                    announce("GATEKEEPER FAIL-OPEN: FORWARDING UNFILTERED (hardware bypass; gatekeeperd restarting)")
                }
                (Phase::FailOpen, false) => {
                    announce("GATEKEEPER FAIL-OPEN: NOT FORWARDING YET (gatekeeperd restarting)")
                }
                _ => {}
            }
        }

        let line = status_line(&d, now);
        if last_status.as_deref() != Some(line.as_str())
            || now.saturating_duration_since(status_at) >= STATUS_EVERY
        {
            announce(&format!("GATEKEEPER STATUS {line}"));
            last_status = Some(line);
            status_at = now;
        }
        sys::nap(TICK);
    }
}

/// The daemon's side of the status line, plus gatekeeperd's own summary when it runs.
/// Queried only when the line is due or the daemon's state changed (the cost is one
/// Unix-socket round trip).
fn status_line(d: &Daemon, now: Instant) -> String {
    let daemon = match (d.sup.phase(), d.sup.state()) {
        (Phase::FailClosed, _) => "fail-closed".to_string(),
        (_, State::Running { .. }) if d.ready_seen => "running".to_string(),
        (_, State::Running { .. }) => "starting".to_string(),
        (_, State::Waiting { until }) => format!(
            "restarting-in-{}s",
            until.saturating_duration_since(now).as_secs()
        ),
        (_, State::Stopped) => "stopped".to_string(),
    };
    let phase = match d.sup.phase() {
        Phase::Normal => "normal",
        Phase::FailOpen => "fail-open",
        Phase::FailClosed => "fail-closed",
    };
    let summary = if d.ready_seen && d.pid.is_some() {
        status::query(Path::new(CONTROL), Duration::from_secs(1))
            .ok()
            .and_then(|a| Summary::from_answer(&a))
            .map(|s| s.render())
            .unwrap_or_else(|| "status=unavailable".into())
    } else {
        "status=unavailable".into()
    };
    // "restarting-in-Ns" changes every second; the change test uses the coarse state.
    let coarse = if daemon.starts_with("restarting") {
        "restarting"
    } else {
        daemon.as_str()
    };
    format!(
        "daemon={coarse} phase={phase} starts={} {summary}",
        d.sup.starts
    )
}

/// A busybox shell on the console (the `dev` profile only).
fn dev_shell() -> Option<Pid> {
    match Command::new(DEV_SHELL)
        .env("PATH", "/bin:/usr/bin:/sbin")
        .env("PS1", "gatekeeper-dev# ")
        .spawn()
    {
        Ok(child) => {
            say("dev image: a shell on this console (press Enter)");
            Some(Pid::from_raw(child.id() as i32))
        }
        Err(e) => {
            say(&format!("dev image: no shell: {DEV_SHELL}: {e}"));
            // Not again and again: the image has no shell.
            Some(Pid::from_raw(0))
        }
    }
}

/// The `dev` profile's shell (busybox).
const DEV_SHELL: &str = "/bin/sh";

fn reap(d: &mut Daemon, now: Instant) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => {
                let pid = status.pid();
                if pid.is_some() && pid == d.shell {
                    say("dev shell exited; another one starts");
                    d.shell = None;
                    continue;
                }
                if pid.is_some() && pid == d.pid {
                    let how = match status {
                        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
                        WaitStatus::Signaled(_, sig, _) => format!("was killed by {sig}"),
                        other => format!("ended ({other:?})"),
                    };
                    hook(&d.board.hooks.status_led, "0");
                    d.exited(now, how);
                }
                // Any other child is an orphan reparented to us: reaped, nothing more.
            }
        }
    }
}

/// Finds the ports (waiting for the drivers), renames them `plant` and `asset`.
/// Returns the plant port's MAC (for the device id).
fn setup_ports(board: &Board, wd: &mut Option<Watchdog>) -> Result<Option<[u8; 6]>, String> {
    let sys_root = Path::new("/sys");
    let deadline = Instant::now() + PORT_WAIT;
    let (plant, asset) = loop {
        let ifs = sysfs::interfaces(sys_root);
        // Already renamed (a previous stage 2 of this boot cannot exist, but a port may
        // carry the name from the kernel command line): take it as it is.
        match sysfs::find_ports(&ifs, &board.plant, &board.asset) {
            Ok(found) => break found,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {}
        }
        if let Some(w) = wd.as_mut() {
            let _ = w.tick(Instant::now());
        }
        sys::nap(TICK);
    };
    for (iface, role) in [(&plant, "plant"), (&asset, "asset")] {
        if iface.name == role {
            continue;
        }
        let index = netlink::ifindex(&iface.name).map_err(|e| format!("{}: {e}", iface.name))?;
        let _ = netlink::set_up(index, false);
        netlink::rename(index, role)
            .map_err(|e| format!("renaming {} to {role}: {e}", iface.name))?;
        say(&format!(
            "port {role} is {} ({})",
            iface.name,
            if role == "plant" {
                &board.plant
            } else {
                &board.asset
            }
        ));
    }
    Ok(plant.mac)
}

fn ports_missing(error: &str, wd: &mut Option<Watchdog>) -> String {
    loop {
        announce(&format!(
            "GATEKEEPER PORTS NOT FOUND: FORWARDING NOTHING: {error}"
        ));
        let until = Instant::now() + FAIL_EVERY;
        while Instant::now() < until {
            if let Some(w) = wd.as_mut() {
                let _ = w.tick(Instant::now());
            }
            if SIGNAL.load(Ordering::SeqCst) != 0 {
                return "stopped by a signal while the ports were missing".into();
            }
            sys::nap(TICK);
        }
    }
}

/// UEFI: rename the running slot's counted UKI to its good name; BIOS: remove
/// `/gk/tries`.
fn mark_good(running: &Running) -> std::io::Result<String> {
    update::with_esp(&running.disk, |esp| match running.board.boot {
        Boot::Uefi | Boot::UBoot => {
            let dir = esp.join("EFI/Linux");
            let mut names: Vec<String> = std::fs::read_dir(&dir)?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            let renames = bootcount::mark_good_renames(&names, running.slot);
            if renames.is_empty() {
                return Ok("nothing to do (no counted entry)".into());
            }
            let mut done = Vec::new();
            for (from, to) in renames {
                std::fs::rename(dir.join(&from), dir.join(&to))?;
                done.push(format!("{from} -> {to}"));
            }
            sys::sync_dir(&dir)?;
            Ok(done.join(", "))
        }
        Boot::Bios => {
            let tries = esp.join("gk/tries");
            if tries.exists() {
                std::fs::remove_file(&tries)?;
                sys::sync_dir(&esp.join("gk"))?;
                Ok("/gk/tries removed".into())
            } else {
                Ok("nothing to do (no trial)".into())
            }
        }
    })
}

fn spawn_usb(running: Running, boot_good: Arc<AtomicBool>) -> mpsc::Receiver<Request> {
    let (tx, rx) = mpsc::channel();
    let test = running.board.profile == Profile::Test;
    let spawned = std::thread::Builder::new().name("gk-usb".into()).spawn(move || {
        let mut scanner = usb::Scanner::new("/sys".into(), running.disk.disk.clone(), "/data/inbox".into(), test);
        // An update found before READY waits for it; the stick is then read once more
        // (it may stay in: a stick present at boot is found within a second or so of
        // READY, on either side of it).
        let mut deferred = false;
        loop {
            if deferred && boot_good.load(Ordering::SeqCst) {
                deferred = false;
                say("USB: this boot is good now: reading the sticks again for the update that waited");
                scanner.forget();
            }
            let requests = scanner.poll(&mut |mnt| {
                let files = usb::updates(mnt);
                match update::pick(&files) {
                    Ok(None) => Vec::new(),
                    Err(e) => {
                        say(&format!("USB: update NOT taken: {e}"));
                        Vec::new()
                    }
                    Ok(Some(_)) if !boot_good.load(Ordering::SeqCst) => {
                        say("USB: update not taken yet: this boot has not reached READY (a trial boot must finish first); the stick is read again once it has");
                        deferred = true;
                        Vec::new()
                    }
                    Ok(Some(path)) => match update::apply(path, &running, &mut || {}) {
                        Ok(msg) => {
                            say(&format!("USB: {msg}"));
                            vec![Request::Reboot]
                        }
                        Err(e) => {
                            say(&format!("USB: update {} NOT installed: {e}", path.display()));
                            Vec::new()
                        }
                    },
                }
            });
            for r in requests {
                if tx.send(r).is_err() {
                    return;
                }
            }
            std::thread::sleep(USB_EVERY);
        }
    });
    if let Err(e) = spawned {
        say(&format!("warning: no USB scanning: {e}"));
    }
    rx
}

/// Stops gatekeeperd, syncs, unmounts `/data`, powers off or reboots.
fn shutdown(d: &mut Daemon, mut wd: Option<Watchdog>, power_off: bool) -> String {
    d.sup.stop();
    if let Some(pid) = d.pid {
        let _ = signal::kill(pid, Signal::SIGTERM);
        let until = Instant::now() + STOP_WAIT;
        while d.pid.is_some() && Instant::now() < until {
            if let Some(w) = wd.as_mut() {
                let _ = w.tick(Instant::now());
            }
            reap(d, Instant::now());
            sys::nap(Duration::from_millis(50));
        }
        if let Some(pid) = d.pid {
            say("gatekeeperd did not stop within 10 s: SIGKILL");
            let _ = signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
    nix::unistd::sync();
    if let Err(e) = sys::unmount_or_ro(Path::new("/data")) {
        say(&format!("warning: {e}"));
    }
    if let Some(w) = wd {
        if d.board.profile != Profile::Prod {
            let _ = w.disarm();
        } else {
            // Kept armed: if the power-off hangs, the watchdog resets the box.
            std::mem::forget(w);
        }
    }
    say(if power_off {
        "powering off"
    } else {
        "rebooting"
    });
    sys::halt(power_off).to_string()
}

/// Stage 2's fatal path is stage 1's: say it, reboot.
pub fn fatal(message: &str) -> ! {
    stage1::fatal(message)
}
