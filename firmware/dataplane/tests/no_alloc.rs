//! The per-packet path must not allocate: a counting allocator watches `process` over a
//! mix of allowed, denied, reply, malformed, monitor-mode and event-raising frames.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::Arc;

use gk_dataplane::testing::{flags::*, FrameBuilder};
use gk_dataplane::{EventSink, Now, Pipeline, Port};
use gk_policy::Policy;

struct Counting;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only adds a thread-local counter, which
// does not allocate (const-initialised Cells).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A bounded queue like the daemon's: events are fixed-size records.
struct Bounded(std::sync::mpsc::SyncSender<gk_dataplane::Event>);
impl EventSink for Bounded {
    fn offer(&mut self, event: &gk_dataplane::Event) -> bool {
        self.0.offer(event)
    }
}

const POLICY: &str = r#"
schema = 1
[gatekeeper]
name = "no-alloc"
mode = "MODE"
[hosts.plc]
ip = "10.10.0.10"
mac = "02:00:00:00:00:10"
[hosts.hmi]
ip = "10.10.0.21"
[[rule]]
name = "hmi-polls-plc"
from = "hmi"
to = "plc"
proto = "tcp"
ports = [502]
action = "allow"
log = true
[[rule]]
name = "ping-plc"
from = "any"
to = "plc"
proto = "icmp"
icmp = ["echo-request"]
action = "alert"
[[rule]]
name = "hmi-reads"
from = "hmi"
to = "plc"
proto = "modbus"
ports = [1502]
action = "allow"
log = true
[rule.modbus]
preset = "read-only"
addresses = ["0-99"]
"#;

fn run(mode: &str) -> u64 {
    let text = POLICY.replace("MODE", mode);
    let (policy, _) = Policy::from_toml(&text, "no-alloc.toml").unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel(64);
    let mut pipeline = Pipeline::new(Arc::new(policy), Bounded(tx));

    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let hmi = FrameBuilder::new([2, 0, 0, 0, 0, 0x21], [2, 0, 0, 0, 0, 0x10]);
    let plc = FrameBuilder::new([2, 0, 0, 0, 0, 0x10], [2, 0, 0, 0, 0, 0x21]);
    let bad = FrameBuilder::new([2, 0, 0, 0, 0, 0x66], [2, 0, 0, 0, 0, 0x10]);
    let mut frames = Vec::new();
    for n in 0..200u16 {
        frames.push((
            hmi.tcp(ip("10.10.0.21"), 10000 + n, ip("10.10.0.10"), 502, SYN, b""),
            Port::Plant,
        ));
        frames.push((
            plc.tcp(
                ip("10.10.0.10"),
                502,
                ip("10.10.0.21"),
                10000 + n,
                SYN | ACK,
                b"",
            ),
            Port::Asset,
        ));
        frames.push((
            hmi.tcp(
                ip("10.10.0.21"),
                10000 + n,
                ip("10.10.0.10"),
                502,
                ACK | PSH,
                &[0; 12],
            ),
            Port::Plant,
        ));
        frames.push((
            bad.tcp(ip("10.10.0.66"), 10000 + n, ip("10.10.0.10"), 502, SYN, b""),
            Port::Plant,
        ));
        frames.push((
            bad.udp(ip("10.10.0.10"), 53, ip("10.10.0.21"), 53, b"spoof"),
            Port::Plant,
        ));
        frames.push((
            hmi.icmp_echo(ip("10.10.0.21"), ip("10.10.0.10"), 8, n),
            Port::Plant,
        ));
        frames.push((bad.ethernet(0x88b8, &[0; 46]), Port::Plant));
        frames.push((vec![0u8; 20], Port::Asset));
        // An inspected Modbus conversation: an allowed read (logged) split across two
        // segments, its answer, then a denied write that resets the connection.
        let (hmi_ip, plc_ip, sport) = (ip("10.10.0.21"), ip("10.10.0.10"), 20000 + n);
        let read = [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2];
        let answer = [0, 1, 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2];
        let write = [0, 2, 0, 0, 0, 6, 1, 6, 0, 5, 0, 1];
        frames.push((
            hmi.tcp_seq(hmi_ip, sport, plc_ip, 1502, 99, 0, SYN, b""),
            Port::Plant,
        ));
        frames.push((
            plc.tcp_seq(plc_ip, 1502, hmi_ip, sport, 499, 100, SYN | ACK, b""),
            Port::Asset,
        ));
        frames.push((
            hmi.tcp_seq(hmi_ip, sport, plc_ip, 1502, 100, 500, ACK, &read[..5]),
            Port::Plant,
        ));
        frames.push((
            hmi.tcp_seq(hmi_ip, sport, plc_ip, 1502, 105, 500, ACK, &read[5..]),
            Port::Plant,
        ));
        frames.push((
            plc.tcp_seq(plc_ip, 1502, hmi_ip, sport, 500, 112, ACK, &answer),
            Port::Asset,
        ));
        frames.push((
            hmi.tcp_seq(hmi_ip, sport, plc_ip, 1502, 112, 513, ACK, &write),
            Port::Plant,
        ));
    }

    let mut t = 1_000_000_000u64;
    let mut step = |pipeline: &mut Pipeline<Bounded>, frames: &[(Vec<u8>, Port)]| {
        for (frame, port) in frames {
            t += 50_000;
            let now = Now {
                mono_ns: t,
                wall_ns: t as i64,
            };
            std::hint::black_box(pipeline.process(frame, *port, now));
            pipeline.clear_injected();
            pipeline.housekeeping(now, 8);
        }
    };
    // Warm-up: lazily initialised std internals (the channel's first use) may allocate.
    step(&mut pipeline, &frames[..8]);
    while rx.try_recv().is_ok() {}

    WATCHING.with(|w| w.set(true));
    step(&mut pipeline, &frames);
    WATCHING.with(|w| w.set(false));
    let allocations = ALLOCATIONS.with(Cell::get);
    let emitted = pipeline.counters().events_emitted.get();
    assert!(
        emitted > 10,
        "the run raised events ({emitted}), so the event path was exercised"
    );
    let c = pipeline.counters();
    let read_rule = c.rules.last().unwrap();
    assert!(
        read_rule.messages.get() >= 100 && read_rule.messages_denied.get() >= 100,
        "Modbus messages were judged both ways"
    );
    if mode == "enforce" {
        assert!(c.injected.get() >= 200, "resets were built");
    }
    allocations
}

#[test]
fn the_packet_path_does_not_allocate() {
    assert_eq!(run("enforce"), 0, "allocations in enforce mode");
    ALLOCATIONS.with(|a| a.set(0));
    assert_eq!(run("monitor"), 0, "allocations in monitor mode");
}
