//! `gk_dataplane::port` on real veth pairs in throw-away network namespaces.
//!
//! Needs root (namespaces, veth pairs, raw sockets, ethtool). Without root the tests
//! fail with a clear message, unless `GK_SKIP_NETNS=1` is set, in which case they pass
//! without doing anything. Namespaces are named `gkp<pid><tag>` and removed on drop,
//! also when a test panics; stale ones from dead test processes are removed at start.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use gk_dataplane::port::{
    check_same_mtu, set_features, set_link_up, Features, Iface, LinkInfo, LinkMonitor,
    OffloadStatus, PortError, PreparedPort, RawPort, RxSlot, VnetHdr, MAX_GSO_FRAME,
    OFFLOADS_TO_DISABLE,
};

// ---------------------------------------------------------------------------------------
// Allocation counting: the fast path (recv, push, flush) must not allocate.
// ---------------------------------------------------------------------------------------

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct CountingAlloc;

// SAFETY: forwards every call unchanged to the system allocator; counting touches only a
// const-initialised thread-local `Cell` without destructor, which never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations made by the calling thread so far.
fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const IP: &str = "/usr/sbin/ip";
/// Source MAC of every frame the tests craft, to tell them from kernel chatter.
const SRC: [u8; 6] = [0x02, 0x47, 0x4b, 0x50, 0x00, 0x01];
const DST: [u8; 6] = [0x02, 0x47, 0x4b, 0x50, 0x00, 0x02];

// ---------------------------------------------------------------------------------------
// Harness: root check, namespaces, threads inside them.
// ---------------------------------------------------------------------------------------

/// Whether to run; panics with an explanation when not root and not told to skip.
fn netns_tests_enabled() -> bool {
    if std::env::var("GK_SKIP_NETNS").as_deref() == Ok("1") {
        eprintln!("GK_SKIP_NETNS=1: skipping the network-namespace port tests");
        return false;
    }
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "the port_netns tests need root (network namespaces, veth pairs, raw sockets, \
         ethtool ioctls); run them as root, or set GK_SKIP_NETNS=1 to skip them"
    );
    assert!(
        std::path::Path::new(IP).exists(),
        "the port_netns tests need iproute2 at {IP}"
    );
    static CLEAN: Once = Once::new();
    CLEAN.call_once(remove_stale_namespaces);
    true
}

/// Removes `gkp<pid>…` namespaces left by test processes that no longer exist.
fn remove_stale_namespaces() {
    let Ok(out) = Command::new(IP).args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("gkp") else {
            continue;
        };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new(IP).args(["netns", "del", name]).status();
        }
    }
}

fn run(args: &[&str]) {
    let out = Command::new(IP).args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted (with every interface in it) on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("gkp{}{tag}", std::process::id());
        let _ = Command::new(IP).args(["netns", "del", &name]).output();
        run(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> args…`
    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run(&all);
    }

    /// A veth pair with both ends in this namespace; the first end gets no IPv6
    /// link-local address (it is the test's own injection/capture end).
    fn veth(&self, peer: &str, port: &str) {
        self.ip(&["link", "add", peer, "type", "veth", "peer", "name", port]);
        self.ip(&["link", "set", peer, "addrgenmode", "none"]);
    }

    /// Runs `f` on a thread that has entered this namespace.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(move || {
                enter(&path);
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new(IP).args(["netns", "del", &self.name]).output();
    }
}

/// Moves the calling thread into the namespace mounted at `path`.
fn enter(path: &str) {
    let f = File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// A plain AF_PACKET socket, independent of the code under test, for injecting frames.
// ---------------------------------------------------------------------------------------

struct PlainSock {
    fd: OwnedFd,
}

impl PlainSock {
    /// Bound to `ifname`; with `vnet`, every send starts with a virtio_net_hdr.
    fn open(ifname: &str, vnet: bool) -> PlainSock {
        let ifindex = nix::net::if_::if_nametoindex(ifname).expect("if_nametoindex");
        let proto = i32::from((libc::ETH_P_ALL as u16).to_be());
        // SAFETY: socket(2) with integer arguments.
        let fd =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if vnet {
            let one: libc::c_int = 1;
            // SAFETY: `one` is a live c_int and we pass its size.
            let r = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_VNET_HDR,
                    std::ptr::from_ref(&one).cast(),
                    4,
                )
            };
            assert_eq!(r, 0, "PACKET_VNET_HDR: {}", std::io::Error::last_os_error());
        }
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is live and we pass its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
        PlainSock { fd }
    }

    fn send(&self, bytes: &[u8]) {
        // SAFETY: `bytes` is a live slice of the length we pass.
        let r = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        assert_eq!(
            r,
            bytes.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Frames from our test MAC received within `timeout` (without their stripped tags:
    /// only used where no tags are involved).
    fn recv_from_src(&self, src: [u8; 6], timeout: Duration) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let end = Instant::now() + timeout;
        let mut buf = vec![0u8; 70_000];
        while Instant::now() < end {
            if !poll_readable(self.fd.as_raw_fd(), 50) {
                continue;
            }
            // SAFETY: `buf` is a live buffer of the length we pass.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n >= 14 && buf[6..12] == src {
                out.push(buf[..n as usize].to_vec());
            }
        }
        out
    }
}

fn poll_readable(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

/// Receives on `port` until `want` frames from `src` arrived or `timeout` passed.
fn collect(
    port: &mut RawPort,
    src: [u8; 6],
    want: usize,
    timeout: Duration,
) -> Vec<(Vec<u8>, VnetHdr, usize, bool)> {
    let mut got = Vec::new();
    let end = Instant::now() + timeout;
    while got.len() < want && Instant::now() < end {
        if !poll_readable(port.as_raw_fd(), 50) {
            continue;
        }
        port.recv().expect("recv");
        for s in port.rx().iter() {
            if s.frame().len() >= 12 && s.frame()[6..12] == src {
                got.push((
                    s.frame().to_vec(),
                    s.vnet_hdr(),
                    s.wire_len(),
                    s.truncated(),
                ));
            }
        }
    }
    got
}

// ---------------------------------------------------------------------------------------
// Frame crafting.
// ---------------------------------------------------------------------------------------

fn frame(
    dst: [u8; 6],
    tags: &[(u16, u16)],
    ethertype: u16,
    payload_len: usize,
    seed: u8,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * tags.len() + payload_len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&SRC);
    for &(tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend((0..payload_len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    f
}

/// The frames of the tag tests: untagged, 802.1Q with priority bits, VLAN 0 (priority
/// tagged, with and without priority), QinQ, double 802.1Q, a non-stripped 0x9100 tag,
/// LLDP, minimal and full-size frames.
fn tag_zoo() -> Vec<Vec<u8>> {
    vec![
        frame(DST, &[], 0x88b5, 46, 1),
        frame(DST, &[(0x8100, (5 << 13) | 100)], 0x88b5, 60, 2),
        frame(DST, &[(0x8100, 3 << 13)], 0x88b5, 50, 3),
        frame(DST, &[(0x8100, 0)], 0x0800, 50, 4),
        frame(
            DST,
            &[(0x88a8, (7 << 13) | 0x1000 | 4094), (0x8100, (2 << 13) | 5)],
            0x0800,
            80,
            5,
        ),
        frame(
            DST,
            &[(0x8100, 10), (0x8100, (1 << 13) | 20)],
            0x86dd,
            70,
            6,
        ),
        frame(DST, &[(0x9100, 0x0123)], 0x88b5, 64, 7),
        frame([0x01, 0x80, 0xc2, 0, 0, 0x0e], &[], 0x88cc, 46, 8),
        frame([0xff; 6], &[], 0x0806, 28, 9),
        frame(DST, &[], 0x88b5, 1500, 10),
        frame(DST, &[(0x8100, (6 << 13) | 4000)], 0x88b5, 1500, 11),
    ]
}

// ---------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------

#[test]
fn missing_interface_is_no_such_interface() {
    if !netns_tests_enabled() {
        return;
    }
    let ns = Netns::new("m");
    ns.run(|| {
        let name = "gkp-missing";
        let is_missing = |e: &PortError| matches!(e, PortError::NoSuchInterface(n) if n == name);
        let e = LinkInfo::query(name).unwrap_err();
        assert!(is_missing(&e), "{e:?}");
        assert!(e.to_string().contains(name), "{e}");
        let e = RawPort::open(name, 8, 2048).unwrap_err();
        assert!(is_missing(&e), "{e:?}");
        let e = PreparedPort::prepare(name).unwrap_err();
        assert!(is_missing(&e), "{e:?}");
        let e = Features::read(name).unwrap_err();
        assert!(is_missing(&e), "{e:?}");
        let e = RawPort::open(Iface::Index(999_999), 8, 2048).unwrap_err();
        assert!(matches!(e, PortError::NoSuchInterface(_)), "{e:?}");
        let e = LinkInfo::query_index(999_999).unwrap_err();
        assert!(matches!(e, PortError::NoSuchInterface(_)), "{e:?}");
        let e = LinkInfo::query("a-name-far-too-long-for-linux").unwrap_err();
        assert!(matches!(e, PortError::NoSuchInterface(_)), "{e:?}");
        eprintln!("missing interface: {e}");
    });
}

#[test]
fn tagged_and_untagged_frames_cross_byte_identical() {
    if !netns_tests_enabled() {
        return;
    }
    let ns = Netns::new("t");
    ns.veth("a0", "a1");
    ns.veth("b0", "b1");
    ns.run(|| {
        let pa = PreparedPort::prepare("a1").expect("prepare a1");
        let pb = PreparedPort::prepare("b1").expect("prepare b1");
        for p in [&pa, &pb] {
            assert!(
                p.info().up && p.info().promisc && p.info().noarp,
                "{:?}",
                p.info()
            );
        }
        ns.ip(&["link", "set", "a0", "up"]);
        ns.ip(&["link", "set", "b0", "up"]);

        let mut a1 = RawPort::open("a1", 16, 2048).expect("open a1");
        let mut b1 = RawPort::open("b1", 16, 2048).expect("open b1");
        let mut b0 = RawPort::open("b0", 16, 2048).expect("open b0 (capture)");
        assert_eq!(
            a1.options(),
            (true, true),
            "IGNORE_OUTGOING and QDISC_BYPASS"
        );
        eprintln!("a1: {a1:?}");
        let inject = PlainSock::open("a0", false);

        let zoo = tag_zoo();
        for f in &zoo {
            inject.send(f);
        }
        // Receive on a1: byte for byte what was sent, in order.
        let got = collect(&mut a1, SRC, zoo.len(), Duration::from_secs(3));
        assert_eq!(got.len(), zoo.len(), "frames received on a1");
        for (i, ((bytes, vnet, wire, trunc), want)) in got.iter().zip(&zoo).enumerate() {
            assert_eq!(bytes, want, "frame {i} differs after receive");
            assert_eq!(*wire, want.len(), "frame {i} wire length");
            assert!(!trunc && !vnet.is_gso(), "frame {i}: {vnet:?}");
        }
        let c = a1.counters();
        // 802.1Q and 802.1ad outer tags are stripped by the kernel and restored; 0x9100
        // is not a tag to the kernel and stays in the bytes untouched.
        assert_eq!(c.rx_tags_restored, 6, "{c:?}");
        assert_eq!(c.rx_outgoing_ignored, 0);

        // Forward a1 -> b1 in one batch (zero copy), capture on b0.
        for f in &zoo {
            inject.send(f);
        }
        let mut pending = zoo.len();
        let end = Instant::now() + Duration::from_secs(3);
        let probe = allocations();
        drop(std::hint::black_box(vec![0u8; 16]));
        assert!(allocations() > probe, "the allocation counter counts");
        let allocs_before = allocations();
        while pending > 0 && Instant::now() < end {
            if !poll_readable(a1.as_raw_fd(), 50) {
                continue;
            }
            a1.recv().unwrap();
            let mut tx = b1.tx();
            for s in a1.rx().iter().filter(|s| s.frame()[6..12] == SRC) {
                assert!(tx.push(&s));
                pending -= 1;
            }
            let out = tx.flush();
            assert!(out.dropped == 0);
        }
        assert_eq!(
            allocations() - allocs_before,
            0,
            "allocations while forwarding"
        );
        assert_eq!(pending, 0, "frames to forward");
        let got = collect(&mut b0, SRC, zoo.len(), Duration::from_secs(3));
        assert_eq!(got.len(), zoo.len(), "frames captured on b0");
        for (i, ((bytes, ..), want)) in got.iter().zip(&zoo).enumerate() {
            assert_eq!(bytes, want, "frame {i} differs after forwarding");
        }
        let c = b1.counters();
        assert_eq!(
            (c.tx_frames, c.tx_dropped, c.tx_errors),
            (zoo.len() as u64, 0, 0)
        );
        assert_eq!(
            c.rx_frames, 0,
            "b1 must not see its own transmissions: {c:?}"
        );
        assert_eq!(b1.options(), (true, true), "no GSO: qdisc bypass kept");

        // Transmit from a1 towards a0: a1 must not read its own frames back.
        let before = a1.counters();
        {
            let mut tx = a1.tx();
            for f in &zoo {
                tx.push_frame(VnetHdr::default(), f);
            }
        } // dropped: flushed
        std::thread::sleep(Duration::from_millis(200));
        while a1.recv().unwrap() > 0 {
            assert!(
                a1.rx().iter().all(|s| s.frame()[6..12] != SRC),
                "own frame read back"
            );
        }
        let after = a1.counters();
        assert_eq!(after.tx_frames - before.tx_frames, zoo.len() as u64);
        assert_eq!(after.rx_outgoing_ignored, 0);

        let ks = a1.kernel_stats().unwrap();
        assert!(ks.packets >= 2 * zoo.len() as u64, "{ks:?}");
        assert_eq!(ks.drops, 0);
        drop((pa, pb));
    });
}

#[test]
fn oversize_frames_are_marked_truncated() {
    if !netns_tests_enabled() {
        return;
    }
    let ns = Netns::new("o");
    ns.veth("c0", "c1");
    ns.run(|| {
        let _p = PreparedPort::prepare("c1").unwrap();
        ns.ip(&["link", "set", "c0", "up"]);
        let mut port = RawPort::open("c1", 4, 256).unwrap();
        let inject = PlainSock::open("c0", false);
        let big = frame(DST, &[], 0x88b5, 1000, 1);
        let big_tagged = frame(DST, &[(0x8100, 7)], 0x88b5, 1000, 2);
        let small = frame(DST, &[(0x8100, 8)], 0x88b5, 100, 3);
        for f in [&big, &big_tagged, &small] {
            inject.send(f);
        }
        let mut slots = Vec::new();
        let end = Instant::now() + Duration::from_secs(3);
        while slots.len() < 3 && Instant::now() < end {
            if poll_readable(port.as_raw_fd(), 50) {
                port.recv().unwrap();
                for s in port.rx().iter().filter(|s| s.frame()[6..12] == SRC) {
                    slots.push((s.frame().to_vec(), s.wire_len(), s.truncated(), s.len()));
                }
            }
        }
        assert_eq!(slots.len(), 3);
        assert_eq!((slots[0].1, slots[0].2, slots[0].3), (big.len(), true, 256));
        assert_eq!(slots[0].0[..], big[..256]);
        // The tag is restored even in a truncated capture; 4 more bytes fit in the headroom.
        assert_eq!(
            (slots[1].1, slots[1].2, slots[1].3),
            (big_tagged.len(), true, 260)
        );
        assert_eq!(slots[1].0[..], big_tagged[..260]);
        assert_eq!((slots[2].0.clone(), slots[2].2), (small.clone(), false));
        assert_eq!(port.counters().rx_truncated, 2);

        // A truncated slot is refused for transmission.
        inject.send(&big);
        assert!(wait_until(Duration::from_secs(2), || {
            port.recv().unwrap() > 0 && port.rx().iter().any(|s| s.truncated())
        }));
        let mut other = RawPort::open("c0", 4, 2048).unwrap();
        let refused = {
            let mut tx = other.tx();
            let s = port.rx().iter().find(|s| s.truncated()).unwrap();
            !tx.push(&s)
        };
        assert!(refused);
        assert_eq!(other.counters().tx_errors, 1);
        assert_eq!(other.counters().tx_frames, 0);
    });
}

#[test]
fn prepare_silences_the_port_and_restore_puts_it_back() {
    if !netns_tests_enabled() {
        return;
    }
    let ns = Netns::new("p");
    ns.veth("p0", "p1");
    ns.veth("q0", "q1");
    ns.ip(&["link", "set", "p0", "up"]);
    ns.ip(&["link", "set", "p1", "up"]);
    ns.ip(&["link", "set", "q0", "up"]);
    ns.run(|| {
        // p1: up, with its link-local address, offloads as veth has them by default.
        assert!(
            wait_until(Duration::from_secs(5), || LinkInfo::query("p1")
                .unwrap()
                .has_ipv6_link_local()),
            "p1 never got a link-local address"
        );
        let orig = LinkInfo::query("p1").unwrap();
        let orig_features = Features::read("p1").unwrap();
        assert!(orig.up && !orig.promisc && !orig.noarp && orig.is_ethernet());
        assert_eq!(orig.addr_gen_mode, Some(0));
        let offloads: Vec<(&str, bool)> = OFFLOADS_TO_DISABLE
            .iter()
            .filter_map(|n| orig_features.get(n).map(|s| (*n, s.active)))
            .collect();
        eprintln!("veth offloads before: {offloads:?}");

        let p = PreparedPort::prepare("p1").expect("prepare p1");
        eprintln!("offload report: {:?}", p.offloads());
        eprintln!("warnings: {:?}", p.warnings());
        let now = LinkInfo::query("p1").unwrap();
        assert!(now.up && now.promisc && now.noarp, "{now:?}");
        assert!(!now.has_ipv6(), "IPv6 addresses left: {:?}", now.ipv6_addrs);
        assert_eq!(now.addr_gen_mode, Some(1), "addr_gen_mode none");
        let dis = std::fs::read_to_string("/proc/sys/net/ipv6/conf/p1/disable_ipv6").unwrap();
        assert_eq!(dis.trim(), "1");
        let f = Features::read("p1").unwrap();
        for name in [
            "rx-gro",
            "rx-lro",
            "tx-generic-segmentation",
            "tx-tcp-segmentation",
            "tx-tcp6-segmentation",
            "tx-udp-segmentation",
        ] {
            let s = f.get(name).unwrap_or_else(|| panic!("{name} unknown"));
            assert!(!s.active, "{name} still active after prepare: {s:?}");
        }
        for r in p.offloads() {
            assert!(
                matches!(
                    r.status,
                    OffloadStatus::AlreadyOff | OffloadStatus::TurnedOff
                ),
                "{r:?}"
            );
        }
        assert!(p
            .offloads()
            .iter()
            .any(|r| r.name == "tx-tcp-segmentation" && r.status == OffloadStatus::TurnedOff));

        p.restore().expect("restore p1");
        let back = LinkInfo::query("p1").unwrap();
        assert!(back.up && !back.promisc && !back.noarp, "{back:?}");
        assert_eq!(back.addr_gen_mode, Some(0));
        let dis = std::fs::read_to_string("/proc/sys/net/ipv6/conf/p1/disable_ipv6").unwrap();
        assert_eq!(dis.trim(), "0");
        let f = Features::read("p1").unwrap();
        for (name, was) in &offloads {
            assert_eq!(f.get(name).unwrap().active, *was, "{name} not restored");
        }
        assert!(
            wait_until(Duration::from_secs(5), || LinkInfo::query("p1")
                .unwrap()
                .has_ipv6_link_local()),
            "link-local address did not come back"
        );

        // Dropping restores too.
        drop(PreparedPort::prepare("p1").unwrap());
        let back = LinkInfo::query("p1").unwrap();
        assert!(back.up && !back.promisc && !back.noarp, "{back:?}");

        // q1 starts down: preparing brings it up without a single frame of its own
        // (no router solicitation, DAD, MLD, ARP), and restoring takes it down again.
        let cap = PlainSock::open("q0", false);
        let q1 = LinkInfo::query("q1").unwrap();
        assert!(!q1.up);
        let mac = q1.mac.unwrap();
        let p = PreparedPort::prepare("q1").unwrap();
        assert!(LinkInfo::query("q1").unwrap().up);
        let heard = cap.recv_from_src(mac, Duration::from_millis(2500));
        assert!(
            heard.is_empty(),
            "q1 emitted {} frame(s): {heard:02x?}",
            heard.len()
        );
        p.restore().unwrap();
        let q1 = LinkInfo::query("q1").unwrap();
        assert!(!q1.up && !q1.promisc && !q1.noarp, "{q1:?}");
    });
}

#[test]
fn unsuitable_ports_are_refused_and_left_alone() {
    if !netns_tests_enabled() {
        return;
    }
    let ns = Netns::new("r");
    ns.veth("v4a", "v4b");
    ns.ip(&["addr", "add", "198.18.7.1/24", "dev", "v4b"]);
    ns.veth("v6a", "v6b");
    ns.ip(&["addr", "add", "2001:db8::7/64", "dev", "v6b"]);
    ns.veth("bra", "brb");
    ns.ip(&["link", "add", "gkbr", "type", "bridge"]);
    ns.ip(&["link", "set", "brb", "master", "gkbr"]);
    ns.run(|| {
        let e = PreparedPort::prepare("v4b").unwrap_err();
        assert!(
            matches!(&e, PortError::HasIpv4 { addrs, .. } if addrs == "198.18.7.1"),
            "{e:?}"
        );
        eprintln!("{e}");
        let e = PreparedPort::prepare("v6b").unwrap_err();
        assert!(
            matches!(&e, PortError::HasIpv6 { addrs, .. } if addrs.contains("2001:db8::7")),
            "{e:?}"
        );
        let e = PreparedPort::prepare("brb").unwrap_err();
        assert!(
            matches!(&e, PortError::Enslaved { master, .. } if master == "gkbr"),
            "{e:?}"
        );
        eprintln!("{e}");
        assert!(LinkInfo::query("brb").unwrap().is_enslaved());
        let e = PreparedPort::prepare("lo").unwrap_err();
        assert!(matches!(&e, PortError::NotEthernet { .. }), "{e:?}");
        for name in ["v4b", "v6b", "brb"] {
            let i = LinkInfo::query(name).unwrap();
            assert!(!i.promisc && !i.noarp && !i.up, "{name} was touched: {i:?}");
        }
    });
}

#[test]
fn link_monitor_sees_carrier_and_mtus_are_compared() {
    if !netns_tests_enabled() {
        return;
    }
    let ns = Netns::new("l");
    ns.veth("m0", "m1");
    ns.ip(&["link", "set", "m0", "up"]);
    ns.ip(&["link", "set", "m1", "up"]);
    ns.run(|| {
        let m0 = LinkInfo::query("m0").unwrap();
        let m1 = LinkInfo::query("m1").unwrap();
        assert!(wait_until(Duration::from_secs(3), || LinkInfo::query("m1")
            .unwrap()
            .carrier));
        assert_eq!(check_same_mtu(&m0, &m1).unwrap(), 1500);
        assert_eq!(m1.frame_capacity(), 1522);

        let mut mon = LinkMonitor::new().unwrap();
        assert!(mon.poll_events().unwrap().is_empty());
        set_link_up(m0.ifindex, false).unwrap();
        let mut seen = Vec::new();
        let lost = wait_until(Duration::from_secs(3), || {
            seen.extend(mon.poll_events().unwrap());
            seen.iter()
                .any(|c| c.ifindex == m1.ifindex && !c.carrier_up && c.admin_up)
        });
        assert!(lost, "no carrier-down event for m1: {seen:?}");
        assert!(seen.iter().any(|c| c.ifindex == m0.ifindex && !c.admin_up));
        assert!(!LinkInfo::query("m1").unwrap().carrier);
        set_link_up(m0.ifindex, true).unwrap();
        seen.clear();
        let back = wait_until(Duration::from_secs(3), || {
            seen.extend(mon.poll_events().unwrap());
            seen.iter().any(|c| c.ifindex == m1.ifindex && c.carrier_up)
        });
        assert!(back, "no carrier-up event for m1: {seen:?}");
        assert_eq!(
            seen[0].name.as_deref(),
            Some(if seen[0].ifindex == m0.ifindex {
                "m0"
            } else {
                "m1"
            })
        );

        ns.ip(&["link", "set", "m0", "mtu", "1400"]);
        let m0 = LinkInfo::query("m0").unwrap();
        let e = check_same_mtu(&m0, &m1).unwrap_err();
        assert!(matches!(
            e,
            PortError::MtuMismatch {
                a_mtu: 1400,
                b_mtu: 1500,
                ..
            }
        ));
        assert!(
            e.to_string().contains("m0 has MTU 1400") && e.to_string().contains("m1 has MTU 1500"),
            "{e}"
        );
    });
}

// --- GSO ---------------------------------------------------------------------------------

fn csum_add(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn tcp_pseudo(ip: &[u8], tcp_len: usize) -> u32 {
    let mut s = csum_add(0, &ip[12..20]);
    s += 6 + tcp_len as u32;
    s
}

/// A TCP/IPv4 super-frame as a TSO sender hands it over: correct IPv4 header checksum,
/// TCP checksum field holding the pseudo-header sum, and the vnet header describing it.
fn tcp_super_frame(tags: &[(u16, u16)], payload: &[u8], mss: u16) -> (Vec<u8>, VnetHdr) {
    let mut f = Vec::new();
    f.extend_from_slice(&DST);
    f.extend_from_slice(&SRC);
    for &(tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let l3 = f.len();
    let total = (20 + 20 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[198, 18, 9, 1]);
    ip[16..20].copy_from_slice(&[198, 18, 9, 2]);
    let c = !fold(csum_add(0, &ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&502u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    tcp[8..12].copy_from_slice(&1u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18; // ACK | PSH
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let pseudo = fold(tcp_pseudo(&ip, 20 + payload.len()));
    tcp[16..18].copy_from_slice(&pseudo.to_be_bytes());
    f.extend_from_slice(&tcp);
    f.extend_from_slice(payload);
    let vnet = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: VnetHdr::GSO_TCPV4,
        hdr_len: (l3 + 40) as u16,
        gso_size: mss,
        csum_start: (l3 + 20) as u16,
        csum_offset: 16,
    };
    (f, vnet)
}

/// Checks one segment produced from [`tcp_super_frame`] and returns (seq, payload).
fn check_segment(seg: &[u8], tags: &[(u16, u16)]) -> (u32, Vec<u8>) {
    let l3 = 14 + 4 * tags.len();
    assert_eq!(seg[..6], DST);
    for (i, &(tpid, tci)) in tags.iter().enumerate() {
        let t = &seg[12 + 4 * i..16 + 4 * i];
        assert_eq!(
            t,
            [tpid.to_be_bytes(), tci.to_be_bytes()].concat(),
            "tag {i}"
        );
    }
    assert_eq!(seg[l3 - 2..l3], [0x08, 0x00]);
    let ip = &seg[l3..l3 + 20];
    assert_eq!(fold(csum_add(0, ip)), 0xffff, "IPv4 header checksum");
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    assert_eq!(seg.len(), l3 + total, "IPv4 total length");
    let tcp = &seg[l3 + 20..];
    let sum = fold(csum_add(tcp_pseudo(ip, tcp.len()), tcp));
    assert_eq!(sum, 0xffff, "TCP checksum");
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    (seq, tcp[20..].to_vec())
}

#[test]
fn gso_super_frames_with_tags_are_forwarded_and_segmented_correctly() {
    if !netns_tests_enabled() {
        return;
    }
    let ns = Netns::new("g");
    ns.veth("a0", "a1");
    ns.veth("b0", "b1");
    ns.run(|| {
        let _pa = PreparedPort::prepare("a1").unwrap();
        let _pb = PreparedPort::prepare("b1").unwrap();
        // Checksums of what leaves b1 are computed in software, so that the bytes
        // captured on b0 carry real checksums to verify.
        let out = set_features("b1", &[("tx-checksum-ip-generic", false)]).unwrap();
        eprintln!("b1 tx checksum off: {out:?}");
        ns.ip(&["link", "set", "a0", "up"]);
        ns.ip(&["link", "set", "b0", "up"]);
        let inject = PlainSock::open("a0", true);
        let mut a1 = RawPort::open("a1", 8, MAX_GSO_FRAME).unwrap();
        let mut b1 = RawPort::open("b1", 8, MAX_GSO_FRAME).unwrap();
        let mut b0 = RawPort::open("b0", 64, 2048).unwrap();
        let payload: Vec<u8> = (0..10_500u32).map(|i| (i % 251) as u8).collect();

        for tags in [
            vec![],
            vec![(0x8100u16, (5u16 << 13) | 42)],
            vec![(0x88a8, (3 << 13) | 300), (0x8100, 7)],
        ] {
            let (sf, vnet) = tcp_super_frame(&tags, &payload, 1000);
            let mut msg = Vec::new();
            msg.extend_from_slice(&[vnet.flags, vnet.gso_type]);
            for v in [
                vnet.hdr_len,
                vnet.gso_size,
                vnet.csum_start,
                vnet.csum_offset,
            ] {
                msg.extend_from_slice(&v.to_ne_bytes());
            }
            msg.extend_from_slice(&sf);
            inject.send(&msg);

            // What a1 sees: the super-frame whole (if a0 kept it as GSO), tags restored.
            let mut frames = 0;
            let mut total = 0;
            let end = Instant::now() + Duration::from_secs(3);
            while total < payload.len() && Instant::now() < end {
                if !poll_readable(a1.as_raw_fd(), 50) {
                    continue;
                }
                a1.recv().unwrap();
                let mut tx = b1.tx();
                for s in a1.rx().iter().filter(|s| s.frame()[6..12] == SRC) {
                    let h = s.vnet_hdr();
                    eprintln!(
                        "tags {tags:04x?}: a1 got {} bytes (wire {}), vnet {h:?}",
                        s.len(),
                        s.wire_len()
                    );
                    if h.is_gso() {
                        assert_eq!(s.frame(), &sf[..], "super-frame bytes");
                        assert_eq!(
                            h.csum_start, vnet.csum_start,
                            "csum_start after tag restore"
                        );
                        assert_eq!(h.gso_size, 1000);
                        total += payload.len();
                    } else {
                        total += s.len() - (14 + 4 * tags.len() + 40);
                    }
                    frames += 1;
                    assert!(tx.push(&s));
                }
                let out = tx.flush();
                drop(tx);
                assert_eq!(out.dropped, 0, "b1: {:?}", b1.counters());
            }
            assert_eq!(total, payload.len(), "payload seen on a1");
            if tags.len() <= 1 {
                assert_eq!(frames, 1, "a0 should pass the super-frame through as GSO");
            }

            // What b0 sees: segments with the same tags, valid checksums, in sequence.
            let segs = collect(&mut b0, SRC, 11, Duration::from_secs(3));
            assert_eq!(segs.len(), 11, "segments on b0 (tags {tags:04x?})");
            let mut data = Vec::new();
            for (seg, ..) in &segs {
                let (seq, p) = check_segment(seg, &tags);
                assert_eq!(seq as usize, 1000 + data.len(), "sequence");
                assert!(p.len() <= 1000);
                data.extend_from_slice(&p);
            }
            assert_eq!(data, payload, "payload after segmentation");
        }
        let c = b1.counters();
        eprintln!("a1 {:?}\nb1 {c:?}", a1.counters());
        assert_eq!((c.tx_dropped, c.tx_errors), (0, 0));
        assert!(c.tx_gso_frames >= 2);
        assert_eq!(b1.options(), (true, false), "qdisc bypass given up for GSO");
    });
}

/// Forwards one batch, if any, from `from` to `to` (zero copy).
fn forward(from: &mut RawPort, to: &mut RawPort, note: &mut impl FnMut(&RxSlot<'_>)) {
    if from.recv().unwrap() == 0 {
        return;
    }
    let mut tx = to.tx();
    for slot in from.rx().iter() {
        note(&slot);
        tx.push(&slot);
    }
}

/// A real TCP connection between two namespaces, both directions, across a user-space
/// forwarder made of two `RawPort`s: TSO super-frames from the sender's veth must cross
/// intact and be segmented correctly; the receivers verify TCP checksums (rx checksum
/// offload off on their veth).
#[test]
fn tcp_bulk_transfer_through_a_user_space_forwarder() {
    if !netns_tests_enabled() {
        return;
    }
    let cl = Netns::new("c");
    let fw = Netns::new("f");
    let sv = Netns::new("s");
    fw.ip(&[
        "link", "add", "f0", "type", "veth", "peer", "name", "c0", "netns", &cl.name,
    ]);
    fw.ip(&[
        "link", "add", "f1", "type", "veth", "peer", "name", "s0", "netns", &sv.name,
    ]);
    cl.ip(&["addr", "add", "198.18.0.1/24", "dev", "c0"]);
    sv.ip(&["addr", "add", "198.18.0.2/24", "dev", "s0"]);
    for (ns, dev) in [(&cl, "c0"), (&sv, "s0")] {
        ns.ip(&["link", "set", dev, "up"]);
        let out = ns.run(|| set_features(dev, &[("rx-checksum", false)]).unwrap());
        eprintln!("{dev} rx checksum off: {out:?}");
    }

    const UP: usize = 8 << 20;
    const DOWN: usize = 4 << 20;
    let pattern = |i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    let stop = AtomicBool::new(false);
    let first_gso = Mutex::new(None::<(VnetHdr, usize)>);

    std::thread::scope(|s| {
        let fwpath = format!("/run/netns/{}", fw.name);
        let (stop, first_gso) = (&stop, &first_gso);
        // Ports are prepared and open before the forwarder thread reports ready.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let forwarder = s.spawn(move || {
            enter(&fwpath);
            let _p0 = PreparedPort::prepare("f0").unwrap();
            let _p1 = PreparedPort::prepare("f1").unwrap();
            for dev in ["f0", "f1"] {
                set_features(dev, &[("tx-checksum-ip-generic", false)]).unwrap();
            }
            let mut f0 = RawPort::open("f0", 64, MAX_GSO_FRAME).unwrap();
            let mut f1 = RawPort::open("f1", 64, MAX_GSO_FRAME).unwrap();
            ready_tx.send(()).unwrap();
            let mut max_len = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut fds = [
                    libc::pollfd {
                        fd: f0.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: f1.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                // SAFETY: two live pollfds.
                unsafe { libc::poll(fds.as_mut_ptr(), 2, 50) };
                let mut note = |slot: &RxSlot<'_>| {
                    max_len = max_len.max(slot.len());
                    if slot.vnet_hdr().is_gso() {
                        first_gso
                            .lock()
                            .unwrap()
                            .get_or_insert((slot.vnet_hdr(), slot.len()));
                    }
                };
                forward(&mut f0, &mut f1, &mut note);
                forward(&mut f1, &mut f0, &mut note);
            }
            (f0.counters(), f1.counters(), max_len)
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("forwarder ready");

        let svpath = format!("/run/netns/{}", sv.name);
        let listener_ready = std::sync::mpsc::channel();
        let server = s.spawn(move || {
            enter(&svpath);
            let l = TcpListener::bind("198.18.0.2:5020").unwrap();
            l.set_nonblocking(true).unwrap();
            listener_ready.0.send(()).unwrap();
            // Bounded accept: never hang the test if the client died.
            assert!(
                poll_readable(l.as_raw_fd(), 30_000),
                "server: no connection"
            );
            let (mut c, _) = l.accept().unwrap();
            c.set_nonblocking(false).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            c.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut got = vec![0u8; UP];
            c.read_exact(&mut got).unwrap();
            let bad = (0..UP).find(|&i| got[i] != pattern(i));
            assert_eq!(bad, None, "server: first corrupt byte");
            let down: Vec<u8> = (0..DOWN).map(|i| pattern(i + 7)).collect();
            c.write_all(&down).unwrap();
        });
        listener_ready
            .1
            .recv_timeout(Duration::from_secs(10))
            .unwrap();

        let clpath = format!("/run/netns/{}", cl.name);
        let client = s.spawn(move || {
            enter(&clpath);
            let t0 = Instant::now();
            let mut c = TcpStream::connect_timeout(
                &"198.18.0.2:5020".parse().unwrap(),
                Duration::from_secs(10),
            )
            .unwrap();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            c.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
            let up: Vec<u8> = (0..UP).map(pattern).collect();
            c.write_all(&up).unwrap();
            let mut down = vec![0u8; DOWN];
            c.read_exact(&mut down).unwrap();
            let bad = (0..DOWN).find(|&i| down[i] != pattern(i + 7));
            assert_eq!(bad, None, "client: first corrupt byte");
            t0.elapsed()
        });
        let client_result = client.join();
        let server_result = server.join();
        stop.store(true, Ordering::Relaxed);
        let (c0, c1, max_len) = forwarder.join().unwrap();
        let elapsed = client_result.unwrap_or_else(|p| std::panic::resume_unwind(p));
        server_result.unwrap_or_else(|p| std::panic::resume_unwind(p));
        eprintln!("{UP} + {DOWN} bytes in {elapsed:?}; largest frame {max_len}");
        eprintln!("first GSO frame: {:?}", first_gso.lock().unwrap());
        eprintln!("f0 {c0:?}\nf1 {c1:?}");
        assert!(
            c0.rx_gso_frames + c1.rx_gso_frames > 0,
            "no TSO super-frame crossed"
        );
        assert!(max_len > 1514, "largest frame {max_len}");
        assert_eq!(c0.rx_truncated + c1.rx_truncated, 0);
        assert_eq!(c0.tx_errors + c1.tx_errors, 0);
    });
}
