//! NICs on Unix datagram sockets (`-netdev dgram`), for runs without root: no tap, no
//! namespace. Each datagram is one Ethernet frame; the test itself is the peer on each
//! side, and every frame either way is kept in a pcap for the evidence directory.

use std::fs;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

/// The host's end of one NIC.
#[derive(Debug)]
pub struct Wire {
    sock: UnixDatagram,
    /// QEMU's end, where frames are sent.
    qemu: PathBuf,
    pcap: Mutex<PcapWriter<fs::File>>,
}

/// The longest frame QEMU sends (64 KiB of GSO super-frame at most, and the NICs have
/// no offloads).
const MAX_FRAME: usize = 65_536;

impl Wire {
    /// Binds the host's end at `host` before QEMU starts; QEMU binds `qemu` itself.
    pub(crate) fn bind(host: &Path, qemu: &Path, pcap: &Path) -> Wire {
        let _ = fs::remove_file(host);
        let sock = UnixDatagram::bind(host)
            .unwrap_or_else(|e| panic!("cannot bind {}: {e}", host.display()));
        let file = fs::File::create(pcap).expect("pcap file");
        let header = PcapHeader {
            snaplen: MAX_FRAME as u32,
            ..PcapHeader::default()
        };
        let writer = PcapWriter::with_header(file, header).expect("pcap header");
        Wire {
            sock,
            qemu: qemu.to_path_buf(),
            pcap: Mutex::new(writer),
        }
    }

    /// Puts `frame` on the wire, towards the box.
    pub fn send(&self, frame: &[u8]) {
        self.record(frame);
        // QEMU binds its end a moment after it starts: retry briefly.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.sock.send_to(frame, &self.qemu) {
                Ok(_) => return,
                Err(e)
                    if Instant::now() < deadline
                        && matches!(
                            e.kind(),
                            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                        ) =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("send to {}: {e}", self.qemu.display()),
            }
        }
    }

    /// The next frame from the box within `timeout`, if any.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; MAX_FRAME];
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    self.record(&buf);
                    return Some(buf);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => panic!("receive from {}: {e}", self.qemu.display()),
            }
        }
    }

    /// Frames from the box within `timeout` until one satisfies `wanted`; the others
    /// (the box's own, or stray ones) are skipped.
    pub fn recv_matching(
        &self,
        timeout: Duration,
        wanted: impl Fn(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let frame = self.recv(left)?;
            if wanted(&frame) {
                return Some(frame);
            }
        }
    }

    fn record(&self, frame: &[u8]) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let packet = PcapPacket::new(now, frame.len() as u32, frame);
        let mut pcap = self.pcap.lock().unwrap_or_else(|e| e.into_inner());
        let _ = pcap.write_packet(&packet);
    }
}
