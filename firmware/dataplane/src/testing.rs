//! Frame builders for tests and tools (`gkctl` tests, the pipeline's own tests). Not used
//! on the packet path.

use std::net::{IpAddr, Ipv4Addr};

/// Builds Ethernet frames carrying IPv4, IPv6, ARP or raw payloads, with valid IP and
/// transport checksums.
#[derive(Debug, Clone)]
pub struct FrameBuilder {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// (TPID, TCI) tags, outermost first.
    pub tags: Vec<(u16, u16)>,
}

pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

impl FrameBuilder {
    pub fn new(src_mac: [u8; 6], dst_mac: [u8; 6]) -> Self {
        FrameBuilder {
            dst_mac,
            src_mac,
            tags: Vec::new(),
        }
    }

    pub fn vlan(mut self, tpid: u16, pcp: u8, vid: u16) -> Self {
        self.tags
            .push((tpid, (u16::from(pcp) << 13) | (vid & 0x0fff)));
        self
    }

    pub fn ethernet(&self, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(18 + 4 * self.tags.len() + payload.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for (tpid, tci) in &self.tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    pub fn arp(
        &self,
        op: u16,
        sender_mac: [u8; 6],
        sender_ip: Ipv4Addr,
        target_ip: Ipv4Addr,
    ) -> Vec<u8> {
        let mut p = vec![0, 1, 8, 0, 6, 4];
        p.extend_from_slice(&op.to_be_bytes());
        p.extend_from_slice(&sender_mac);
        p.extend_from_slice(&sender_ip.octets());
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&target_ip.octets());
        self.ethernet(0x0806, &p)
    }

    /// A TCP segment with sequence number 1000 and (with ACK) acknowledgement 2000.
    pub fn tcp(
        &self,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let ack = if flags & flags::ACK != 0 { 2000 } else { 0 };
        self.tcp_seq(src, sport, dst, dport, 1000, ack, flags, payload)
    }

    /// A TCP segment with the given sequence and acknowledgement numbers.
    #[allow(clippy::too_many_arguments)]
    pub fn tcp_seq(
        &self,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut seg = Vec::with_capacity(20 + payload.len());
        seg.extend_from_slice(&sport.to_be_bytes());
        seg.extend_from_slice(&dport.to_be_bytes());
        seg.extend_from_slice(&seq.to_be_bytes());
        seg.extend_from_slice(&ack.to_be_bytes());
        seg.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        seg.extend_from_slice(payload);
        self.ip(src, dst, 6, seg, 16)
    }

    pub fn udp(&self, src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut seg = Vec::with_capacity(8 + payload.len());
        seg.extend_from_slice(&sport.to_be_bytes());
        seg.extend_from_slice(&dport.to_be_bytes());
        seg.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        seg.extend_from_slice(&[0, 0]);
        seg.extend_from_slice(payload);
        self.ip(src, dst, 17, seg, 6)
    }

    /// ICMP echo (type 8/0 for v4, 128/129 for v6) with the given identifier.
    pub fn icmp_echo(&self, src: IpAddr, dst: IpAddr, icmp_type: u8, id: u16) -> Vec<u8> {
        let mut msg = vec![icmp_type, 0, 0, 0];
        msg.extend_from_slice(&id.to_be_bytes());
        msg.extend_from_slice(&[0, 1, b'g', b'k', b'p', b'i', b'n', b'g', 0, 0]);
        let proto = if src.is_ipv4() { 1 } else { 58 };
        self.ip(src, dst, proto, msg, 2)
    }

    /// An ICMP error (`icmp_type`/`code`) quoting `quoted` (an IP packet, without Ethernet).
    pub fn icmp_error(
        &self,
        src: IpAddr,
        dst: IpAddr,
        icmp_type: u8,
        code: u8,
        quoted: &[u8],
    ) -> Vec<u8> {
        let mut msg = vec![icmp_type, code, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&quoted[..quoted.len().min(548)]);
        let proto = if src.is_ipv4() { 1 } else { 58 };
        self.ip(src, dst, proto, msg, 2)
    }

    /// An IP packet with `l4` as its payload; `csum_at` is the transport checksum's
    /// offset inside `l4` (filled in here).
    pub fn ip(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        mut l4: Vec<u8>,
        csum_at: usize,
    ) -> Vec<u8> {
        let mut packet = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                if proto != 1 {
                    let sum = pseudo_sum(&s.octets(), &d.octets(), proto, l4.len()) + ones_sum(&l4);
                    l4[csum_at..csum_at + 2].copy_from_slice(&fold(sum).to_be_bytes());
                } else {
                    let sum = ones_sum(&l4);
                    l4[csum_at..csum_at + 2].copy_from_slice(&fold(sum).to_be_bytes());
                }
                let total = (20 + l4.len()) as u16;
                let mut h = vec![0x45, 0];
                h.extend_from_slice(&total.to_be_bytes());
                h.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
                h.extend_from_slice(&s.octets());
                h.extend_from_slice(&d.octets());
                let c = fold(ones_sum(&h));
                h[10..12].copy_from_slice(&c.to_be_bytes());
                h.extend_from_slice(&l4);
                h
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let sum = pseudo_sum(&s.octets(), &d.octets(), proto, l4.len()) + ones_sum(&l4);
                l4[csum_at..csum_at + 2].copy_from_slice(&fold(sum).to_be_bytes());
                let mut h = vec![0x60, 0, 0, 0];
                h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                h.extend_from_slice(&[proto, 64]);
                h.extend_from_slice(&s.octets());
                h.extend_from_slice(&d.octets());
                h.extend_from_slice(&l4);
                h
            }
            _ => panic!("mixed address families"),
        };
        let ethertype = if src.is_ipv4() { 0x0800 } else { 0x86dd };
        let frame = self.ethernet(ethertype, &packet);
        packet.clear();
        frame
    }
}

fn ones_sum(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn pseudo_sum(src: &[u8], dst: &[u8], proto: u8, len: usize) -> u32 {
    ones_sum(src) + ones_sum(dst) + u32::from(proto) + len as u32
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A pipeline fed with crafted frames on a clock that advances 1 ms per frame, with
/// the events and built frames it produced. For the pipeline's tests.
#[derive(Debug)]
pub struct Harness {
    pub pipeline: crate::Pipeline<Vec<crate::Event>>,
    pub t: u64,
}

impl Harness {
    /// Panics unless `policy` is valid and has no warnings.
    pub fn new(policy: &str) -> Self {
        let (policy, warnings) =
            gk_policy::Policy::from_toml(policy, "test.toml").expect("valid policy");
        assert!(warnings.is_empty(), "{warnings:?}");
        Harness {
            pipeline: crate::Pipeline::new(std::sync::Arc::new(policy), Vec::new()),
            t: 1_000_000_000,
        }
    }

    pub fn send(&mut self, frame: &[u8], port: crate::Port) -> crate::Outcome {
        self.t += 1_000_000;
        self.pipeline.process(
            frame,
            port,
            crate::Now {
                mono_ns: self.t,
                wall_ns: 1_700_000_000_000_000_000,
            },
        )
    }

    pub fn advance(&mut self, seconds: u64) {
        self.t += seconds * 1_000_000_000;
    }

    pub fn events(&mut self) -> Vec<crate::Event> {
        std::mem::take(self.pipeline.sink_mut())
    }

    /// The frames the pipeline built since the last call, with their ports.
    pub fn injected(&mut self) -> Vec<(crate::Port, Vec<u8>)> {
        let out = self
            .pipeline
            .injected()
            .iter()
            .map(|f| (f.port, f.frame().to_vec()))
            .collect();
        self.pipeline.clear_injected();
        out
    }

    /// The name of a rule of the harness's policy.
    pub fn rule_name(&self, rule: Option<gk_policy::RuleId>) -> Option<String> {
        rule.map(|r| self.pipeline.policy().rule(r).name.clone())
    }
}

/// One TCP conversation from a plant-side client to an asset-side server, keeping both
/// sides' sequence numbers. `open` plays the handshake and checks that it passes.
#[derive(Debug, Clone)]
pub struct TcpConv {
    pub client: FrameBuilder,
    pub server: FrameBuilder,
    pub client_ip: IpAddr,
    pub server_ip: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// The next sequence number of each side.
    pub c_seq: u32,
    pub s_seq: u32,
}

impl TcpConv {
    pub fn open(
        h: &mut Harness,
        (client_mac, client_ip, sport): ([u8; 6], &str, u16),
        (server_mac, server_ip, dport): ([u8; 6], &str, u16),
    ) -> TcpConv {
        let c = TcpConv {
            client: FrameBuilder::new(client_mac, server_mac),
            server: FrameBuilder::new(server_mac, client_mac),
            client_ip: client_ip.parse().expect("client address"),
            server_ip: server_ip.parse().expect("server address"),
            sport,
            dport,
            c_seq: 100,
            s_seq: 5000,
        };
        use flags::{ACK, SYN};
        let (cip, sip) = (c.client_ip, c.server_ip);
        let syn = c.client.tcp_seq(cip, sport, sip, dport, 99, 0, SYN, b"");
        assert!(h.send(&syn, crate::Port::Plant).forward, "SYN");
        let synack = c
            .server
            .tcp_seq(sip, dport, cip, sport, 4999, 100, SYN | ACK, b"");
        assert!(h.send(&synack, crate::Port::Asset).forward, "SYN+ACK");
        let ack = c
            .client
            .tcp_seq(cip, sport, sip, dport, 100, 5000, ACK, b"");
        assert!(h.send(&ack, crate::Port::Plant).forward, "ACK");
        c
    }

    /// A client segment at `seq` (without sending it).
    pub fn client_frame(&self, seq: u32, payload: &[u8]) -> Vec<u8> {
        use flags::{ACK, PSH};
        let (cip, sip) = (self.client_ip, self.server_ip);
        self.client.tcp_seq(
            cip,
            self.sport,
            sip,
            self.dport,
            seq,
            self.s_seq,
            ACK | PSH,
            payload,
        )
    }

    /// Sends the next client segment.
    pub fn client(&mut self, h: &mut Harness, payload: &[u8]) -> crate::Outcome {
        let frame = self.client_frame(self.c_seq, payload);
        self.c_seq = self.c_seq.wrapping_add(payload.len() as u32);
        h.send(&frame, crate::Port::Plant)
    }

    /// Sends the next server segment.
    pub fn server(&mut self, h: &mut Harness, payload: &[u8]) -> crate::Outcome {
        use flags::{ACK, PSH};
        let (cip, sip) = (self.client_ip, self.server_ip);
        let frame = self.server.tcp_seq(
            sip,
            self.dport,
            cip,
            self.sport,
            self.s_seq,
            self.c_seq,
            ACK | PSH,
            payload,
        );
        self.s_seq = self.s_seq.wrapping_add(payload.len() as u32);
        h.send(&frame, crate::Port::Asset)
    }
}
