//! The per-packet pipeline: dissect → L2 checks → connection tracking → rules → verdict.

use std::net::IpAddr;
use std::sync::Arc;

use gk_packet::{dissect, tcp_flags, Frame, IpInfo, L3, L4};
use gk_policy::{Action, FlowQuery, Mode, Policy, RuleId};

use crate::counters::Counters;
use crate::event::{Admit, Event, EventSink, EventVerdict, RateLimiter};
use crate::flow::{Endpoint, FlowEntry, FlowKey, FlowState, FlowTable, FlowVerdict, Timeouts};
use crate::{Port, Reason};

/// The time of a packet: a monotonic clock for timeouts and rate limits, and the wall
/// clock for events. Injected, so that replay runs on capture time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono_ns: u64,
    pub wall_ns: i64,
}

/// The pipeline's decision on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Send the frame out of the other port.
    pub forward: bool,
    pub verdict: EventVerdict,
    pub rule: Option<RuleId>,
    pub reason: Reason,
}

/// The per-packet state machine. Owned by one thread; nothing in it locks.
#[derive(Debug)]
pub struct Pipeline<S> {
    policy: Arc<Policy>,
    flows: FlowTable,
    counters: Arc<Counters>,
    limiter: RateLimiter,
    sink: S,
}

/// What the pipeline learned about the frame's addressing, for events.
#[derive(Debug, Clone, Copy)]
struct Subject {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    protocol: Option<u8>,
    sport: Option<u16>,
    dport: Option<u16>,
    icmp_type: Option<u8>,
}

const NO_SUBJECT: Subject = Subject {
    src: None,
    dst: None,
    protocol: None,
    sport: None,
    dport: None,
    icmp_type: None,
};

impl Subject {
    fn of(frame: &Frame<'_>) -> Subject {
        match frame.l3 {
            L3::Arp(arp) => Subject {
                src: Some(IpAddr::V4(arp.sender_ip)),
                dst: Some(IpAddr::V4(arp.target_ip)),
                ..NO_SUBJECT
            },
            L3::Ip(ip) => Subject::of_ip(&ip),
            L3::Other(_) => NO_SUBJECT,
        }
    }

    fn of_ip(ip: &IpInfo<'_>) -> Subject {
        let (sport, dport, icmp_type) = match ip.l4 {
            L4::Tcp {
                src_port, dst_port, ..
            }
            | L4::Udp {
                src_port, dst_port, ..
            } => (Some(src_port), Some(dst_port), None),
            L4::Icmp { icmp_type, .. } => (None, None, Some(icmp_type)),
            L4::Fragment | L4::Other(_) => (None, None, None),
        };
        Subject {
            src: Some(ip.src),
            dst: Some(ip.dst),
            protocol: Some(u8::from(ip.protocol)),
            sport,
            dport,
            icmp_type,
        }
    }
}

/// What the pipeline knows about the frame it is judging, for verdicts and events.
#[derive(Clone, Copy)]
struct Seen<'a, 'f> {
    frame: &'f [u8],
    parsed: Option<&'a Frame<'f>>,
    subject: Subject,
    ingress: Port,
    now: Now,
}

impl<'a, 'f> Seen<'a, 'f> {
    fn parsed(frame: &'f [u8], parsed: &'a Frame<'f>, ingress: Port, now: Now) -> Self {
        Seen {
            frame,
            parsed: Some(parsed),
            subject: Subject::of(parsed),
            ingress,
            now,
        }
    }

    fn unparsed(frame: &'f [u8], ingress: Port, now: Now) -> Self {
        Seen {
            frame,
            parsed: None,
            subject: NO_SUBJECT,
            ingress,
            now,
        }
    }
}

/// The event that describes `frame` with the given decision: what `gkctl replay --json`
/// prints for every packet, built exactly as the pipeline builds its events.
pub fn describe(frame: &[u8], ingress: Port, now: Now, outcome: &Outcome) -> Event {
    let parsed = dissect(frame).ok();
    let seen = match &parsed {
        Some(parsed) => Seen::parsed(frame, parsed, ingress, now),
        None => Seen::unparsed(frame, ingress, now),
    };
    build_event(&seen, outcome.verdict, outcome.reason, outcome.rule, 0)
}

fn build_event(
    seen: &Seen<'_, '_>,
    verdict: EventVerdict,
    reason: Reason,
    rule: Option<RuleId>,
    suppressed: u32,
) -> Event {
    let frame = seen.frame;
    let mac = |range: std::ops::Range<usize>| {
        frame
            .get(range)
            .and_then(|b| <[u8; 6]>::try_from(b).ok())
            .map(gk_packet::MacAddr)
            .unwrap_or_default()
    };
    let raw_ethertype = || {
        frame
            .get(12..14)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let subject = seen.subject;
    Event {
        wall_ns: seen.now.wall_ns,
        verdict,
        rule,
        reason,
        port: seen.ingress,
        dst_mac: mac(0..6),
        src_mac: mac(6..12),
        vlan: seen.parsed.and_then(|p| p.outer_vlan()).map(|t| t.vid),
        ethertype: seen
            .parsed
            .map_or_else(raw_ethertype, |p| u16::from(p.ethertype)),
        src: subject.src,
        dst: subject.dst,
        protocol: subject.protocol,
        sport: subject.sport,
        dport: subject.dport,
        icmp_type: subject.icmp_type,
        suppressed,
    }
}

impl<S: EventSink> Pipeline<S> {
    pub fn new(policy: Arc<Policy>, sink: S) -> Self {
        let limits = policy.limits();
        let flows = FlowTable::new(limits.flow_capacity, Timeouts::from_limits(limits));
        let limiter = RateLimiter::new(limits.events_per_second, limits.event_burst);
        let counters = Arc::new(Counters::new(&policy));
        counters.flow_capacity.set(flows.capacity() as u64);
        Pipeline {
            policy,
            flows,
            counters,
            limiter,
            sink,
        }
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Expire a bounded number of idle flows. The forwarding loop calls this between
    /// batches, so that expiry cost is spread out.
    pub fn housekeeping(&mut self, now: Now, budget: usize) {
        self.flows.expire(now.mono_ns, budget);
        self.counters.flows_active.set(self.flows.len() as u64);
    }

    /// A frame the port could not receive whole (bigger than the receive buffer).
    pub fn oversize(&mut self, frame: &[u8], ingress: Port, now: Now) -> Outcome {
        self.count_rx(frame, ingress);
        self.refuse(&Seen::unparsed(frame, ingress, now), Reason::Oversize, None)
    }

    /// Judge one Ethernet frame that arrived on `ingress`.
    pub fn process(&mut self, frame: &[u8], ingress: Port, now: Now) -> Outcome {
        self.count_rx(frame, ingress);
        let Ok(parsed) = dissect(frame) else {
            return self.refuse(
                &Seen::unparsed(frame, ingress, now),
                Reason::Malformed,
                None,
            );
        };
        let seen = Seen::parsed(frame, &parsed, ingress, now);
        let vid = parsed.outer_vlan().map(|t| t.vid).filter(|vid| *vid != 0);
        if !self.policy.vlan_allowed(vid) {
            return self.refuse(&seen, Reason::Vlan, None);
        }
        if !self.policy.ethertype_allowed(parsed.ethertype) {
            return self.refuse(&seen, Reason::Ethertype, None);
        }
        match parsed.l3 {
            L3::Arp(arp) => {
                let ip = IpAddr::V4(arp.sender_ip);
                if self.policy.mac_pin_violation(ip, arp.sender_mac)
                    || self.policy.mac_pin_violation(ip, parsed.src_mac)
                {
                    return self.refuse(&seen, Reason::MacPin, None);
                }
                allowed(Reason::L2)
            }
            L3::Other(_) => allowed(Reason::L2),
            L3::Ip(ip) => self.process_ip(&seen, &ip, vid.unwrap_or(0)),
        }
    }

    fn count_rx(&self, frame: &[u8], ingress: Port) {
        let port = self.counters.port(ingress);
        port.rx_packets.add(1);
        port.rx_bytes.add(frame.len() as u64);
    }

    fn process_ip(&mut self, seen: &Seen<'_, '_>, ip: &IpInfo<'_>, vlan: u16) -> Outcome {
        let (frame, ingress, now) = (seen.frame, seen.ingress, seen.now);
        let protocol = u8::from(ip.protocol);
        let (sport, dport, tcp, icmp_type) = match ip.l4 {
            L4::Tcp {
                src_port,
                dst_port,
                flags,
                ..
            } => (src_port, dst_port, Some(flags), None),
            L4::Udp {
                src_port, dst_port, ..
            } => (src_port, dst_port, None, None),
            // Echo ids play the part of ports, so that each ping session is its own flow.
            L4::Icmp {
                icmp_type, echo_id, ..
            } => {
                let id = echo_id.unwrap_or(0);
                (id, id, None, Some(icmp_type))
            }
            L4::Fragment | L4::Other(_) => (0, 0, None, None),
        };
        let has_ports = matches!(ip.l4, L4::Tcp { .. } | L4::Udp { .. });
        if let Some(parsed) = seen.parsed {
            if self.policy.mac_pin_violation(ip.src, parsed.src_mac) {
                return self.refuse(seen, Reason::MacPin, None);
            }
        }
        if ip.fragment != gk_packet::Fragment::None {
            return self.refuse(seen, Reason::Fragment, None);
        }

        let (key, src_is_lo) = FlowKey::new(
            Endpoint::new(ip.src, sport),
            Endpoint::new(ip.dst, dport),
            protocol,
            vlan,
        );
        if let Some(handle) = self.flows.lookup(&key, now.mono_ns) {
            let entry = *self.flows.get(handle);
            let from_initiator = entry.from_initiator(src_is_lo);
            let restarts = tcp.is_some_and(opens_connection)
                && matches!(
                    entry.state,
                    FlowState::Reset | FlowState::Closing | FlowState::FinWait
                );
            if restarts {
                // A fresh SYN reusing the ports of a finished connection: judge it anew.
                self.flows.remove(handle);
            } else {
                let expected = if from_initiator {
                    entry.initiator_port
                } else {
                    entry.initiator_port.other()
                };
                if ingress != expected {
                    return self.refuse(seen, Reason::SpoofedReply, flow_rule(entry.verdict));
                }
                if let Some(flags) = tcp {
                    let entry = self.flows.get_mut(handle);
                    entry.fins = advance_tcp(&mut entry.state, entry.fins, from_initiator, flags);
                }
                self.flows.touch(handle, now.mono_ns, frame.len());
                return match entry.verdict {
                    FlowVerdict::Allowed(rule) => {
                        let c = self.counters.rule(rule);
                        c.packets.add(1);
                        c.bytes.add(frame.len() as u64);
                        Outcome {
                            forward: true,
                            verdict: EventVerdict::Allow,
                            rule: Some(rule),
                            reason: Reason::Flow,
                        }
                    }
                    FlowVerdict::WouldDeny(rule, reason) => {
                        self.counters.would_drop[reason.index()].add(1);
                        Outcome {
                            forward: true,
                            verdict: EventVerdict::WouldDeny,
                            rule,
                            reason,
                        }
                    }
                };
            }
        }

        if let L4::Icmp {
            embedded: Some(quoted),
            ..
        } = ip.l4
        {
            if self.is_related(&quoted, ip, vlan, ingress, now) {
                return allowed(Reason::Related);
            }
        }
        if tcp.is_some_and(|flags| !opens_connection(flags)) {
            return self.refuse(seen, Reason::TcpState, None);
        }

        let query = FlowQuery {
            src: ip.src,
            dst: ip.dst,
            protocol: ip.protocol,
            src_port: if has_ports { sport } else { 0 },
            dst_port: if has_ports { dport } else { 0 },
            icmp_type,
        };
        let decision = self.policy.evaluate(&query);
        let is_icmp_error = matches!(
            ip.l4,
            L4::Icmp {
                embedded: Some(_),
                ..
            }
        );
        let rule = match (decision.action, decision.rule) {
            (Action::Allow | Action::Alert, Some(rule)) => rule,
            (_, rule) => {
                let reason = if rule.is_some() {
                    Reason::DenyRule
                } else {
                    Reason::NoRule
                };
                if self.policy.mode() == Mode::Monitor && !is_icmp_error {
                    // Track it, so that the conversation is reported once, not per packet.
                    let verdict = FlowVerdict::WouldDeny(rule, reason);
                    let entry = new_entry(key, src_is_lo, ingress, tcp, verdict);
                    if self.flows.insert(entry, now.mono_ns).is_ok() {
                        self.counters.flows_created.add(1);
                    }
                }
                return self.refuse(seen, reason, rule);
            }
        };
        // ICMP errors that quote no known conversation are judged alone; they open nothing.
        if !is_icmp_error {
            let entry = new_entry(key, src_is_lo, ingress, tcp, FlowVerdict::Allowed(rule));
            if self.flows.insert(entry, now.mono_ns).is_err() {
                return self.refuse(seen, Reason::FlowTableFull, Some(rule));
            }
            self.counters.flows_created.add(1);
        }
        let c = self.counters.rule(rule);
        c.flows.add(1);
        c.packets.add(1);
        c.bytes.add(frame.len() as u64);
        let verdict = if decision.action == Action::Alert {
            EventVerdict::Alert
        } else {
            EventVerdict::Allow
        };
        if verdict == EventVerdict::Alert || self.policy.rule(rule).log {
            self.report(seen, verdict, Reason::Rule, Some(rule));
        }
        Outcome {
            forward: true,
            verdict,
            rule: Some(rule),
            reason: Reason::Rule,
        }
    }

    /// Whether an ICMP error quotes a packet of a live conversation, is addressed to that
    /// packet's sender, and arrives from the far side of it.
    fn is_related(
        &mut self,
        quoted: &gk_packet::Embedded,
        ip: &IpInfo<'_>,
        vlan: u16,
        ingress: Port,
        now: Now,
    ) -> bool {
        if ip.dst != quoted.src {
            return false;
        }
        let (key, sender_is_lo) = FlowKey::new(
            Endpoint::new(quoted.src, quoted.src_port),
            Endpoint::new(quoted.dst, quoted.dst_port),
            u8::from(quoted.protocol),
            vlan,
        );
        let Some(handle) = self.flows.lookup(&key, now.mono_ns) else {
            return false;
        };
        let entry = self.flows.get(handle);
        let sender_port = if entry.from_initiator(sender_is_lo) {
            entry.initiator_port
        } else {
            entry.initiator_port.other()
        };
        ingress == sender_port.other()
    }

    /// Drop the frame (enforce) or forward it and say enforce would not have (monitor).
    fn refuse(&mut self, seen: &Seen<'_, '_>, reason: Reason, rule: Option<RuleId>) -> Outcome {
        let monitor = self.policy.mode() == Mode::Monitor;
        let verdict = if monitor {
            self.counters.would_drop[reason.index()].add(1);
            EventVerdict::WouldDeny
        } else {
            self.counters.dropped[reason.index()].add(1);
            match (reason, rule) {
                (Reason::NoRule, _) => self.counters.no_rule.add(1),
                (Reason::DenyRule, Some(rule)) => {
                    let c = self.counters.rule(rule);
                    c.packets.add(1);
                    c.bytes.add(seen.frame.len() as u64);
                }
                _ => {}
            }
            EventVerdict::Deny
        };
        self.report(seen, verdict, reason, rule);
        Outcome {
            forward: monitor,
            verdict,
            rule,
            reason,
        }
    }

    /// Offer an event for this frame, through the rate limiter.
    fn report(
        &mut self,
        seen: &Seen<'_, '_>,
        verdict: EventVerdict,
        reason: Reason,
        rule: Option<RuleId>,
    ) {
        let admitted = self
            .limiter
            .admit(rule, reason, seen.subject.src, seen.now.mono_ns);
        let Admit::Yes { suppressed } = admitted else {
            self.counters.events_suppressed.add(1);
            return;
        };
        let event = build_event(seen, verdict, reason, rule, suppressed);
        if self.sink.offer(&event) {
            self.counters.events_emitted.add(1);
        } else {
            self.counters.events_lost.add(1);
        }
    }
}

fn allowed(reason: Reason) -> Outcome {
    Outcome {
        forward: true,
        verdict: EventVerdict::Allow,
        rule: None,
        reason,
    }
}

fn flow_rule(verdict: FlowVerdict) -> Option<RuleId> {
    match verdict {
        FlowVerdict::Allowed(rule) => Some(rule),
        FlowVerdict::WouldDeny(rule, _) => rule,
    }
}

/// A SYN without ACK: the only segment that may open a TCP conversation.
fn opens_connection(flags: u8) -> bool {
    flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST) == tcp_flags::SYN
}

fn new_entry(
    key: FlowKey,
    src_is_lo: bool,
    ingress: Port,
    tcp: Option<u8>,
    verdict: FlowVerdict,
) -> FlowEntry {
    FlowEntry {
        key,
        initiator_is_lo: src_is_lo,
        initiator_port: ingress,
        verdict,
        state: if tcp.is_some() {
            FlowState::SynSent
        } else {
            FlowState::Open
        },
        fins: 0,
        expires_at: 0,
        packets: 1,
        bytes: 0,
    }
}

/// Follow the TCP handshake and teardown; returns the updated FIN bits.
fn advance_tcp(state: &mut FlowState, mut fins: u8, from_initiator: bool, flags: u8) -> u8 {
    use tcp_flags::{ACK, FIN, RST, SYN};
    if flags & RST != 0 {
        *state = FlowState::Reset;
        return fins;
    }
    if flags & FIN != 0 {
        fins |= if from_initiator { 1 } else { 2 };
    }
    *state = match *state {
        FlowState::SynSent if !from_initiator && flags & (SYN | ACK) == SYN | ACK => {
            FlowState::SynReceived
        }
        FlowState::SynReceived if from_initiator && flags & (SYN | ACK) == ACK => {
            if fins != 0 {
                FlowState::FinWait
            } else {
                FlowState::Established
            }
        }
        FlowState::Established | FlowState::SynReceived | FlowState::SynSent if fins != 0 => {
            FlowState::FinWait
        }
        FlowState::FinWait if fins == 3 => FlowState::Closing,
        other => other,
    };
    fins
}
