//! `gk-bench`: the traffic tools behind `make bench`.
//!
//! * `gen` — a raw AF_PACKET UDP flood generator. Frames are built once (valid IPv4 and
//!   UDP checksums), then sent with `sendmmsg` in batches of 64 through a socket with
//!   `PACKET_QDISC_BYPASS`, paced to a target rate (or as fast as possible) for a given
//!   duration. It prints a one-line JSON summary on stdout.
//! * `count` — a user-space sink (AF_PACKET, `recvmmsg`) that counts matching UDP frames
//!   and reports the socket's `PACKET_STATISTICS`. The benchmark itself counts with an
//!   nftables `netdev` ingress counter (cheaper, and not a user-space consumer); this is
//!   a diagnostic.
//!
//! Frame sizes are given without the 4-byte FCS, as they sit in the send buffer:
//! `--size 60` is a minimum-size "64-byte" Ethernet frame, `--size 1514` carries a full
//! 1500-byte IP packet ("1518 bytes" with FCS).

use std::ffi::CString;
use std::io::Write;
use std::mem;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Parser, Subcommand};

/// Frames per `sendmmsg`/`recvmmsg` call by default.
const DEFAULT_BATCH: usize = 64;
/// Largest batch accepted on the command line.
const MAX_BATCH: usize = 1024;
/// Ethernet + IPv4 + UDP header bytes.
const HDR_LEN: usize = 14 + 20 + 8;
/// Smallest frame without FCS (64 bytes on the wire with FCS).
const MIN_FRAME: usize = 60;
/// Largest frame without FCS for a 1500-byte MTU.
const MAX_FRAME: usize = 1514;

#[derive(Debug, Parser)]
#[command(
    name = "gk-bench",
    version,
    about = "Benchmark traffic tools for gatekeeper"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Send a paced UDP flood from an interface with AF_PACKET + sendmmsg.
    Gen(GenArgs),
    /// Count UDP frames arriving on an interface (user-space AF_PACKET sink).
    Count(CountArgs),
}

#[derive(Debug, Args)]
struct GenArgs {
    /// Interface to send on (in the current network namespace).
    #[arg(long, short = 'i')]
    iface: String,
    /// Source MAC address.
    #[arg(long, default_value = "02:00:00:00:01:01", value_parser = parse_mac)]
    src_mac: [u8; 6],
    /// Destination MAC address.
    #[arg(long, default_value = "02:00:00:00:02:01", value_parser = parse_mac)]
    dst_mac: [u8; 6],
    /// Source IPv4 address.
    #[arg(long, default_value = "198.18.0.1")]
    src_ip: Ipv4Addr,
    /// Destination IPv4 address.
    #[arg(long, default_value = "198.18.0.2")]
    dst_ip: Ipv4Addr,
    /// First UDP source port; with --flows N the ports sport..sport+N-1 are used in turn.
    #[arg(long, default_value_t = 10000)]
    sport: u16,
    /// UDP destination port.
    #[arg(long, default_value_t = 9)]
    dport: u16,
    /// Frame length without FCS, 60..=1514 (60 = a 64-byte frame on the wire).
    #[arg(long, default_value_t = MIN_FRAME as u16, value_parser = clap::value_parser!(u16).range(MIN_FRAME as i64..=MAX_FRAME as i64))]
    size: u16,
    /// Number of flows (distinct source ports), sent round-robin.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    flows: u32,
    /// Target rate in frames per second; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many frames (0 = no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Frames per sendmmsg call.
    #[arg(long, default_value_t = DEFAULT_BATCH, value_parser = parse_batch)]
    batch: usize,
    /// Busy-wait between batches instead of sleeping (more regular pacing, burns the core).
    #[arg(long)]
    spin: bool,
}

#[derive(Debug, Args)]
struct CountArgs {
    /// Interface to listen on.
    #[arg(long, short = 'i')]
    iface: String,
    /// Count only UDP frames to this destination port (0 = every frame).
    #[arg(long, default_value_t = 9)]
    dport: u16,
    /// How long to count, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("{s:?} is not a MAC address like 02:00:00:00:00:01"));
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(&parts) {
        *byte = u8::from_str_radix(part, 16).map_err(|_| format!("bad MAC byte {part:?}"))?;
    }
    Ok(mac)
}

fn parse_batch(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if (1..=MAX_BATCH).contains(&n) {
        Ok(n)
    } else {
        Err(format!("batch must be within 1..={MAX_BATCH}"))
    }
}

fn main() {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Gen(args) => run_gen(&args),
        Cmd::Count(args) => run_count(&args),
    };
    if let Err(e) = res {
        eprintln!("gk-bench: error: {e:#}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------
// Frame construction

/// Adds `data` as big-endian 16-bit words to a one's-complement running sum.
fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds a running sum into the final one's-complement checksum.
fn csum_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The 42 header bytes of one flow's frame, plus the shared payload they describe.
#[derive(Debug)]
struct Frames {
    headers: Vec<[u8; HDR_LEN]>,
    payload: Vec<u8>,
}

fn build_frames(a: &GenArgs) -> Frames {
    let size = usize::from(a.size);
    let payload_len = size - HDR_LEN;
    // A recognisable, non-zero payload.
    let payload: Vec<u8> = b"gk-bench "
        .iter()
        .copied()
        .cycle()
        .take(payload_len)
        .collect();
    // The payload's contribution to the UDP checksum, computed once. It starts at an even
    // offset of the UDP segment (8), so it can be summed on its own.
    let payload_sum = csum_add(0, &payload);
    let ip_len = (size - 14) as u16;
    let udp_len = (size - 34) as u16;

    let headers = (0..a.flows)
        .map(|i| {
            let sport = a.sport.wrapping_add(i as u16);
            let mut h = [0u8; HDR_LEN];
            h[0..6].copy_from_slice(&a.dst_mac);
            h[6..12].copy_from_slice(&a.src_mac);
            h[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let ip = &mut h[14..34];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
            ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
            ip[8] = 64;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&a.src_ip.octets());
            ip[16..20].copy_from_slice(&a.dst_ip.octets());
            let ipsum = csum_fold(csum_add(0, ip));
            ip[10..12].copy_from_slice(&ipsum.to_be_bytes());
            let udp = &mut h[34..42];
            udp[0..2].copy_from_slice(&sport.to_be_bytes());
            udp[2..4].copy_from_slice(&a.dport.to_be_bytes());
            udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
            // Pseudo-header + UDP header (checksum field zero) + payload.
            let mut sum = payload_sum;
            sum = csum_add(sum, &a.src_ip.octets());
            sum = csum_add(sum, &a.dst_ip.octets());
            sum += 17 + u32::from(udp_len);
            sum = csum_add(sum, udp);
            let mut usum = csum_fold(sum);
            if usum == 0 {
                usum = 0xffff;
            }
            udp[6..8].copy_from_slice(&usum.to_be_bytes());
            h
        })
        .collect();
    Frames { headers, payload }
}

// ---------------------------------------------------------------------------------------
// Sockets

/// An owned AF_PACKET socket bound to one interface.
#[derive(Debug)]
struct PacketSocket {
    fd: libc::c_int,
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: `fd` is a descriptor this struct owns and nothing else closes.
        unsafe {
            libc::close(self.fd);
        }
    }
}

fn ifindex(name: &str) -> Result<libc::c_int> {
    let c = CString::new(name).context("interface name contains NUL")?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    ensure!(
        idx != 0,
        "no interface named {name:?} in this network namespace"
    );
    Ok(idx as libc::c_int)
}

fn setsockopt_int(
    fd: libc::c_int,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> Result<()> {
    // SAFETY: we pass a pointer to a live c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// Opens an AF_PACKET raw socket bound to `iface` for `protocol` (host order; 0 = send only).
fn packet_socket(iface: &str, protocol: u16) -> Result<PacketSocket> {
    let idx = ifindex(iface)?;
    let proto_be = protocol.to_be();
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::c_int::from(proto_be),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket(AF_PACKET) (are you root?)");
    }
    let sock = PacketSocket { fd };
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto_be;
    sll.sll_ifindex = idx;
    // SAFETY: `sll` is a valid sockaddr_ll and we pass its exact size.
    let rc = unsafe {
        libc::bind(
            sock.fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("bind to {iface}"));
    }
    Ok(sock)
}

fn monotonic_now() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts
}

fn timespec_add(base: libc::timespec, d: Duration) -> libc::timespec {
    let mut sec = base.tv_sec + d.as_secs() as libc::time_t;
    let mut nsec = base.tv_nsec + d.subsec_nanos() as libc::c_long;
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec += 1;
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

/// Sleeps until an absolute CLOCK_MONOTONIC time.
fn sleep_until(t: &libc::timespec) {
    loop {
        // SAFETY: `t` points to a valid timespec; the remainder pointer may be null for
        // TIMER_ABSTIME.
        let rc = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                t,
                std::ptr::null_mut(),
            )
        };
        if rc != libc::EINTR {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// gen

fn run_gen(a: &GenArgs) -> Result<()> {
    ensure!(
        a.duration > 0.0 && a.duration.is_finite(),
        "--duration must be positive"
    );
    let frames = build_frames(a);
    let sock = packet_socket(&a.iface, 0)?;
    setsockopt_int(sock.fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)
        .context("setsockopt(PACKET_QDISC_BYPASS)")?;
    // A large send buffer so a batch never waits for skbs to be freed; best effort.
    let _ = setsockopt_int(sock.fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 16 << 20)
        .or_else(|_| setsockopt_int(sock.fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 16 << 20));
    // Tight timer slack so paced sleeps end on time.
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }

    // One iovec pair (per-flow header, shared payload) per flow.
    let payload_iov = libc::iovec {
        iov_base: frames.payload.as_ptr() as *mut libc::c_void,
        iov_len: frames.payload.len(),
    };
    let mut iovs: Vec<[libc::iovec; 2]> = frames
        .headers
        .iter()
        .map(|h| {
            [
                libc::iovec {
                    iov_base: h.as_ptr() as *mut libc::c_void,
                    iov_len: HDR_LEN,
                },
                payload_iov,
            ]
        })
        .collect();
    let iovs_ptr = iovs.as_mut_ptr();
    let nflows = iovs.len();
    // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) value.
    let mut msgs: Vec<libc::mmsghdr> = (0..a.batch).map(|_| unsafe { mem::zeroed() }).collect();
    for m in &mut msgs {
        m.msg_hdr.msg_iovlen = 2;
    }

    let duration = Duration::from_secs_f64(a.duration);
    let limit = if a.count == 0 { u64::MAX } else { a.count };
    let mut attempted: u64 = 0;
    let mut sent: u64 = 0;
    let mut errors: u64 = 0;
    let mut calls: u64 = 0;
    let mut last_err: Option<String> = None;
    let mut flow = 0usize;
    let start = Instant::now();
    let start_ts = monotonic_now();

    while attempted < limit {
        if a.rate > 0 {
            // The time at which the next batch is due, so that the average rate holds.
            let due = Duration::from_secs_f64(attempted as f64 / a.rate as f64);
            if due >= duration {
                break;
            }
            if start.elapsed() < due {
                if a.spin {
                    while start.elapsed() < due {
                        std::hint::spin_loop();
                    }
                } else {
                    sleep_until(&timespec_add(start_ts, due));
                }
            }
        }
        if start.elapsed() >= duration {
            break;
        }
        let n = (limit - attempted).min(a.batch as u64) as usize;
        for m in msgs.iter_mut().take(n) {
            // SAFETY: `flow < nflows`, so the pointer stays inside `iovs`, which lives
            // (unmoved) until the end of this function.
            m.msg_hdr.msg_iov = unsafe { iovs_ptr.add(flow) }.cast();
            m.msg_len = 0;
            flow += 1;
            if flow == nflows {
                flow = 0;
            }
        }
        // SAFETY: `msgs[..n]` are initialised mmsghdrs whose iovecs point at the frame
        // buffers in `frames` and `iovs`, both alive for the whole call; the socket is
        // bound, so no destination address is needed.
        let rc = unsafe { libc::sendmmsg(sock.fd, msgs.as_mut_ptr(), n as libc::c_uint, 0) };
        calls += 1;
        attempted += n as u64;
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                attempted -= n as u64;
                continue;
            }
            errors += n as u64;
            last_err = Some(e.to_string());
        } else {
            let ok = rc as u64;
            sent += ok;
            errors += n as u64 - ok;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(iovs);
    let summary = serde_json::json!({
        "iface": a.iface,
        "frame_len": a.size,
        "flows": a.flows,
        "target_pps": a.rate,
        "sent": sent,
        "errors": errors,
        "calls": calls,
        "elapsed": elapsed,
        "pps": if elapsed > 0.0 { sent as f64 / elapsed } else { 0.0 },
        "last_error": last_err,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{summary}")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// count

fn run_count(a: &CountArgs) -> Result<()> {
    ensure!(
        a.duration > 0.0 && a.duration.is_finite(),
        "--duration must be positive"
    );
    const ETH_P_ALL: u16 = 0x0003;
    let sock = packet_socket(&a.iface, ETH_P_ALL)?;
    let _ = setsockopt_int(sock.fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 32 << 20);
    // Receive timeout so the loop notices the end of the window.
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: pointer to a live timeval and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        bail!(
            "setsockopt(SO_RCVTIMEO): {}",
            std::io::Error::last_os_error()
        );
    }
    // Only the headers are needed to classify a frame: truncate copies to 64 bytes.
    const SNAP: usize = 64;
    let mut bufs = vec![[0u8; SNAP]; DEFAULT_BATCH];
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: SNAP,
        })
        .collect();
    // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) value.
    let mut msgs: Vec<libc::mmsghdr> = (0..DEFAULT_BATCH)
        .map(|_| unsafe { mem::zeroed() })
        .collect();
    for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    // Reset the socket statistics (reading them clears them).
    let _ = packet_stats(sock.fd);

    let duration = Duration::from_secs_f64(a.duration);
    let start = Instant::now();
    let (mut matched, mut frames, mut bytes) = (0u64, 0u64, 0u64);
    while start.elapsed() < duration {
        for m in &mut msgs {
            m.msg_len = 0;
        }
        // SAFETY: every mmsghdr points at its own live iovec and 64-byte buffer; the
        // buffers outlive the call.
        let rc = unsafe {
            libc::recvmmsg(
                sock.fd,
                msgs.as_mut_ptr(),
                DEFAULT_BATCH as libc::c_uint,
                libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                _ => return Err(e).context("recvmmsg"),
            }
        }
        for (m, b) in msgs.iter().zip(bufs.iter()).take(rc as usize) {
            frames += 1;
            bytes += u64::from(m.msg_len);
            let is_match = a.dport == 0
                || (b[12..14] == [0x08, 0x00]
                    && b[23] == 17
                    && u16::from_be_bytes([b[36], b[37]]) == a.dport
                    && b[14] == 0x45);
            if is_match {
                matched += 1;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (st_packets, st_drops) = packet_stats(sock.fd).unwrap_or((0, 0));
    let summary = serde_json::json!({
        "iface": a.iface,
        "matched": matched,
        "frames": frames,
        "bytes": bytes,
        "elapsed": elapsed,
        "pps": if elapsed > 0.0 { matched as f64 / elapsed } else { 0.0 },
        "socket_packets": st_packets,
        "socket_drops": st_drops,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{summary}")?;
    Ok(())
}

/// Reads (and thereby resets) PACKET_STATISTICS: (packets, drops).
fn packet_stats(fd: libc::c_int) -> Result<(u64, u64)> {
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `st` is a writable tpacket_stats and `len` holds its exact size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        bail!(
            "getsockopt(PACKET_STATISTICS): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok((u64::from(st.tp_packets), u64::from(st.tp_drops)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(size: u16, flows: u32) -> GenArgs {
        GenArgs {
            iface: "lo".into(),
            src_mac: [2, 0, 0, 0, 1, 1],
            dst_mac: [2, 0, 0, 0, 2, 1],
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            dst_ip: Ipv4Addr::new(198, 18, 0, 2),
            sport: 10000,
            dport: 9,
            size,
            flows,
            rate: 0,
            duration: 1.0,
            count: 0,
            batch: 64,
            spin: false,
        }
    }

    fn whole(f: &Frames, i: usize) -> Vec<u8> {
        let mut v = f.headers[i].to_vec();
        v.extend_from_slice(&f.payload);
        v
    }

    #[test]
    fn checksums_verify() {
        for size in [60u16, 61, 128, 1514] {
            let f = build_frames(&args(size, 3));
            assert_eq!(f.headers.len(), 3);
            for i in 0..3 {
                let fr = whole(&f, i);
                assert_eq!(fr.len(), usize::from(size));
                // IPv4 header sums to 0xffff including its checksum.
                assert_eq!(csum_fold(csum_add(0, &fr[14..34])), 0);
                // UDP: pseudo-header + segment sums to zero.
                let udp = &fr[34..];
                let mut s = csum_add(0, &fr[26..34]);
                s += 17 + udp.len() as u32;
                s = csum_add(s, udp);
                assert_eq!(csum_fold(s), 0, "size {size} flow {i}");
                assert_eq!(u16::from_be_bytes([fr[34], fr[35]]), 10000 + i as u16);
                assert_eq!(
                    u16::from_be_bytes([fr[16], fr[17]]) as usize,
                    usize::from(size) - 14
                );
            }
        }
    }

    #[test]
    fn macs_parse() {
        assert_eq!(
            parse_mac("02:00:00:00:00:10").unwrap(),
            [2, 0, 0, 0, 0, 0x10]
        );
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert!(parse_mac("zz:00:00:00:00:00").is_err());
    }
}
