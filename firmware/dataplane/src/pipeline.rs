//! The per-packet pipeline: dissect → L2 checks → connection tracking → rules → verdict.

use std::net::IpAddr;
use std::sync::Arc;

use gk_inspect::stream;
use gk_inspect::{modbus, Dir, Malformed, Message, Op, Protocol};
use gk_packet::{dissect, tcp_flags, Frame, IpInfo, L3, L4};
use gk_policy::{Action, FlowQuery, Mode, OnDeny, Policy, RuleId};

use crate::counters::Counters;
use crate::event::{Admit, Event, EventSink, EventVerdict, RateLimiter};
use crate::flow::{
    Endpoint, FlowEntry, FlowHandle, FlowKey, FlowState, FlowTable, FlowVerdict, Timeouts,
    NO_STREAM,
};
use crate::inspect::{
    self, Answer, Answered, InjectQueue, Injected, Segment, StreamPool, TcpRewrite,
};
use crate::{Port, Reason};

/// Frames the gatekeeper may build per batch (two per denied conversation).
const INJECT_CAPACITY: usize = 128;

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
    /// The industrial-protocol operation that decided the frame, if one did: the first
    /// message denied, else the last request judged.
    pub op: Option<Op>,
    /// Why the message was malformed, when that is the reason.
    pub detail: Option<&'static str>,
    /// New TCP sequence numbers for the forwarded frame (after the gatekeeper answered a
    /// request itself); the forwarding loop applies it with [`inspect::apply_rewrite`].
    pub rewrite: Option<TcpRewrite>,
}

/// What [`Pipeline::swap_policy`] did with the conversations it found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwapReport {
    /// Still allowed by the new policy: they carry on untouched.
    pub kept: usize,
    /// No longer allowed: refused (and reset) at their next packet.
    pub revoked: usize,
    /// Lost because the new policy's flow table is smaller.
    pub dropped_for_room: usize,
}

/// The per-packet state machine. Owned by one thread; nothing in it locks.
#[derive(Debug)]
pub struct Pipeline<S> {
    policy: Arc<Policy>,
    /// The monotonic time of the last frame (for a swap's table rebuild).
    last_now: u64,
    flows: FlowTable,
    streams: StreamPool,
    injected: InjectQueue,
    counters: Arc<Counters>,
    reporter: Reporter<S>,
}

/// Rate-limited event reporting, apart from the tables so that it can be used while a
/// stream buffer is borrowed.
#[derive(Debug)]
struct Reporter<S> {
    limiter: RateLimiter,
    sink: S,
}

impl<S: EventSink> Reporter<S> {
    /// Offer an event for this frame, through the rate limiter.
    fn report(&mut self, counters: &Counters, seen: &Seen<'_, '_>, what: Report) {
        let admitted =
            self.limiter
                .admit(what.rule, what.reason, seen.subject.src, seen.now.mono_ns);
        let Admit::Yes { suppressed } = admitted else {
            counters.events_suppressed.add(1);
            return;
        };
        let event = build_event(seen, &what, suppressed);
        if self.sink.offer(&event) {
            counters.events_emitted.add(1);
        } else {
            counters.events_lost.add(1);
        }
    }
}

/// What an event says beyond the frame it is about.
#[derive(Debug, Clone, Copy)]
struct Report {
    verdict: EventVerdict,
    reason: Reason,
    rule: Option<RuleId>,
    op: Option<Op>,
    detail: Option<&'static str>,
}

impl Report {
    fn new(verdict: EventVerdict, reason: Reason, rule: Option<RuleId>) -> Report {
        Report {
            verdict,
            reason,
            rule,
            op: None,
            detail: None,
        }
    }
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
    let mut what = Report::new(outcome.verdict, outcome.reason, outcome.rule);
    what.op = outcome.op;
    what.detail = outcome.detail;
    build_event(&seen, &what, 0)
}

fn build_event(seen: &Seen<'_, '_>, what: &Report, suppressed: u32) -> Event {
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
        verdict: what.verdict,
        rule: what.rule,
        reason: what.reason,
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
        op: what.op,
        detail: what.detail,
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
        let streams = StreamPool::new(streams_for(&policy), limits.inspect_buffer);
        counters.stream_capacity.set(streams.capacity() as u64);
        Pipeline {
            policy,
            last_now: 0,
            flows,
            streams,
            injected: InjectQueue::new(INJECT_CAPACITY),
            counters,
            reporter: Reporter { limiter, sink },
        }
    }

    /// Frames the gatekeeper built (TCP resets, Modbus exceptions) since the last
    /// [`Pipeline::clear_injected`], each with the port it must leave through.
    pub fn injected(&self) -> &[Injected] {
        self.injected.frames()
    }

    pub fn clear_injected(&mut self) {
        self.injected.clear();
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.reporter.sink
    }

    /// Expire a bounded number of idle flows. The forwarding loop calls this between
    /// batches, so that expiry cost is spread out.
    pub fn housekeeping(&mut self, now: Now, budget: usize) {
        self.flows.expire(now.mono_ns, budget);
        self.reclaim_streams();
        self.counters.flows_active.set(self.flows.len() as u64);
    }

    /// Counts a packet of the conversation `q` for the health checks that watch it.
    fn watch(&self, q: &FlowQuery, what: Watched) {
        for (check, c) in self
            .policy
            .health_checks()
            .iter()
            .zip(&self.counters.health)
        {
            if check.matches(q) {
                match what {
                    Watched::Forward => c.forward.add(1),
                    Watched::Reverse => c.reverse.add(1),
                    Watched::Refused => c.refused.add(1),
                }
            }
        }
    }

    /// `watch` for a packet of a known conversation (its query is built only when the
    /// policy has health checks).
    fn watch_flow(&self, entry: &FlowEntry, from_initiator: bool, refused: bool) {
        if self.counters.health.is_empty() {
            return;
        }
        let what = match (refused, from_initiator) {
            (true, _) => Watched::Refused,
            (false, true) => Watched::Forward,
            (false, false) => Watched::Reverse,
        };
        self.watch(&flow_query(entry), what);
    }

    /// Puts `policy` in force from the next frame on, keeping what the data plane knows:
    /// every conversation in the flow table is judged again by the new rules. One the
    /// new policy still allows (with the same inspection) carries on untouched; one it
    /// no longer allows is revoked: its next packet is refused, and a TCP connection is
    /// reset towards both ends. Counters carry over (rules by name). Runs on the
    /// forwarding thread between batches; it allocates (this is not the packet path).
    pub fn swap_policy(&mut self, policy: Arc<Policy>) -> SwapReport {
        let old_policy = std::mem::replace(&mut self.policy, policy.clone());
        let limits = policy.limits().clone();
        let old_limits = old_policy.limits();
        let mut report = SwapReport::default();
        // Tables whose size the new policy changes are rebuilt; their conversations
        // are carried over while they fit.
        if limits.flow_capacity != old_limits.flow_capacity {
            let mut table = FlowTable::new(limits.flow_capacity, Timeouts::from_limits(&limits));
            let now = self.last_now;
            for entry in self.flows.entries() {
                if table.insert(*entry, now).is_err() {
                    report.dropped_for_room += 1;
                    if entry.stream != NO_STREAM {
                        self.streams.release(entry.stream);
                    }
                }
            }
            // Entries that did not fit give their streams back with the old table.
            self.flows = table;
        } else {
            self.flows.set_timeouts(Timeouts::from_limits(&limits));
        }
        let wanted_streams = streams_for(&policy);
        let streams_rebuilt = wanted_streams != self.streams.capacity()
            || limits.inspect_buffer != old_limits.inspect_buffer;
        if streams_rebuilt {
            self.streams = StreamPool::new(wanted_streams, limits.inspect_buffer);
        }
        let monitor = policy.mode() == Mode::Monitor;
        let streams = &mut self.streams;
        self.flows.retain(|entry| {
            let q = flow_query(entry);
            let decision = policy.evaluate(&q);
            let permits = decision.action.permits() && decision.rule.is_some();
            // A TCP conversation cannot start being inspected (or change protocol) in
            // the middle of its byte stream; a datagram conversation can, and any
            // conversation can stop being inspected.
            let same =
                decision.inspect == entry.app && !(streams_rebuilt && entry.stream != NO_STREAM);
            let switchable = entry.key.protocol != 6 || decision.inspect.is_none();
            let reason = if decision.rule.is_some() {
                Reason::DenyRule
            } else {
                Reason::NoRule
            };
            entry.verdict = match decision.rule {
                Some(rule) if permits && (same || switchable) => {
                    entry.app = decision.inspect;
                    report.kept += 1;
                    FlowVerdict::Allowed(rule)
                }
                // Monitor mode revokes nothing: it reports. A conversation it cannot
                // follow any more is simply no longer inspected.
                Some(rule) if permits && monitor => {
                    entry.app = None;
                    report.kept += 1;
                    FlowVerdict::Allowed(rule)
                }
                rule if monitor => {
                    report.kept += 1;
                    FlowVerdict::WouldDeny(rule, reason)
                }
                rule => {
                    // Its next packet will say why: a deny rule, or no rule at all, or
                    // (allowed, but its inspection cannot carry on) the rule that now
                    // governs it.
                    report.revoked += 1;
                    let reason = if permits { Reason::DenyRule } else { reason };
                    FlowVerdict::Revoked(rule, reason)
                }
            };
            if streams_rebuilt {
                entry.stream = NO_STREAM;
            } else if entry.app.is_none() && entry.stream != NO_STREAM {
                streams.release(entry.stream);
                entry.stream = NO_STREAM;
            }
            true
        });
        if streams_rebuilt {
            // The old table's streams belong to the old pool: forget them.
            self.flows.take_released().for_each(drop);
        } else {
            self.reclaim_streams();
        }
        let counters = Arc::new(Counters::carried_over(&policy, &self.counters, &old_policy));
        counters.flow_capacity.set(self.flows.capacity() as u64);
        counters.stream_capacity.set(self.streams.capacity() as u64);
        counters.swaps.add(1);
        counters.flows_revoked.add(report.revoked as u64);
        counters.flows_active.set(self.flows.len() as u64);
        self.counters = counters;
        if limits.events_per_second != old_limits.events_per_second
            || limits.event_burst != old_limits.event_burst
        {
            self.reporter.limiter = RateLimiter::new(limits.events_per_second, limits.event_burst);
        }
        self.reporter.sink.policy_changed(&policy);
        report
    }

    /// Takes back the streams of flows the table removed.
    fn reclaim_streams(&mut self) {
        for id in self.flows.take_released() {
            self.streams.release(id);
        }
        self.counters.streams_active.set(self.streams.len() as u64);
    }

    /// A frame the port could not receive whole (bigger than the receive buffer).
    pub fn oversize(&mut self, frame: &[u8], ingress: Port, now: Now) -> Outcome {
        self.count_rx(frame, ingress);
        self.refuse(&Seen::unparsed(frame, ingress, now), Reason::Oversize, None)
    }

    /// Judge one Ethernet frame that arrived on `ingress`.
    pub fn process(&mut self, frame: &[u8], ingress: Port, now: Now) -> Outcome {
        self.last_now = now.mono_ns;
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
                self.reclaim_streams();
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
                        self.watch_flow(&entry, from_initiator, false);
                        if entry.app.is_some() {
                            return self.inspect(seen, ip, handle, &entry, from_initiator, rule);
                        }
                        flow_allowed(rule)
                    }
                    FlowVerdict::WouldDeny(rule, reason) => {
                        self.counters.would_drop[reason.index()].add(1);
                        Outcome {
                            forward: true,
                            verdict: EventVerdict::WouldDeny,
                            rule,
                            reason,
                            op: None,
                            detail: None,
                            rewrite: None,
                        }
                    }
                    FlowVerdict::Revoked(rule, reason) => {
                        // The policy in force since a swap does not allow it: refused,
                        // and a TCP connection is reset so that neither end waits.
                        self.watch_flow(&entry, from_initiator, true);
                        let mut out = self.refuse(seen, reason, rule);
                        out.detail = Some(REVOKED);
                        if tcp.is_some() && !out.forward {
                            self.end_conversation(
                                seen,
                                handle,
                                entry.stream,
                                usize::from(!from_initiator),
                            );
                        } else {
                            self.flows.remove(handle);
                            self.reclaim_streams();
                        }
                        out
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
        if !self.counters.health.is_empty() {
            let permits = decision.action.permits() && decision.rule.is_some();
            self.watch(
                &query,
                if permits {
                    Watched::Forward
                } else {
                    Watched::Refused
                },
            );
        }
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
                    self.reclaim_streams();
                }
                return self.refuse(seen, reason, rule);
            }
        };
        // ICMP errors that quote no known conversation are judged alone; they open nothing.
        if !is_icmp_error {
            let mut entry = new_entry(key, src_is_lo, ingress, tcp, FlowVerdict::Allowed(rule));
            entry.app = decision.inspect;
            if decision.inspect.is_some() && tcp.is_some() {
                match self.alloc_stream(now) {
                    Some(id) => entry.stream = id,
                    None => return self.refuse(seen, Reason::StreamTableFull, Some(rule)),
                }
            }
            let inserted = self.flows.insert(entry, now.mono_ns);
            self.reclaim_streams();
            let Ok(handle) = inserted else {
                if entry.stream != NO_STREAM {
                    self.streams.release(entry.stream);
                }
                return self.refuse(seen, Reason::FlowTableFull, Some(rule));
            };
            self.counters.flows_created.add(1);
            let c = self.counters.rule(rule);
            c.flows.add(1);
            c.packets.add(1);
            c.bytes.add(frame.len() as u64);
            if entry.app.is_some() {
                // The conversation's messages are judged (and reported) one by one,
                // starting with any this packet carries (a UDP datagram, say).
                return self.inspect(seen, ip, handle, &entry, true, rule);
            }
        } else {
            let c = self.counters.rule(rule);
            c.packets.add(1);
            c.bytes.add(frame.len() as u64);
        }
        let verdict = if decision.action == Action::Alert {
            EventVerdict::Alert
        } else {
            EventVerdict::Allow
        };
        if verdict == EventVerdict::Alert || self.policy.rule(rule).log {
            let what = Report::new(verdict, Reason::Rule, Some(rule));
            self.reporter.report(&self.counters, seen, what);
        }
        Outcome {
            forward: true,
            verdict,
            rule: Some(rule),
            reason: Reason::Rule,
            op: None,
            detail: None,
            rewrite: None,
        }
    }

    /// A stream for a new inspected TCP conversation; when all are in use, the idle
    /// ones are expired first (a bounded sweep).
    fn alloc_stream(&mut self, now: Now) -> Option<u32> {
        if let Some(id) = self.streams.alloc() {
            return Some(id);
        }
        self.flows.expire(now.mono_ns, 1024);
        self.reclaim_streams();
        self.streams.alloc()
    }

    /// Judges the industrial-protocol messages that a packet of an inspected, allowed
    /// conversation completes. `first` is the rule that opened the conversation.
    fn inspect(
        &mut self,
        seen: &Seen<'_, '_>,
        ip: &IpInfo<'_>,
        handle: FlowHandle,
        entry: &FlowEntry,
        from_initiator: bool,
        first: RuleId,
    ) -> Outcome {
        let Some(protocol) = entry.app else {
            return flow_allowed(first);
        };
        let (src_port, dst_port, payload, tcp) = match ip.l4 {
            L4::Tcp {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                payload,
                ..
            } => (src_port, dst_port, payload, Some((seq, ack, flags))),
            L4::Udp {
                src_port,
                dst_port,
                payload,
            } => (src_port, dst_port, payload, None),
            _ => return flow_allowed(first),
        };
        let dir = if from_initiator {
            Dir::Request
        } else {
            Dir::Response
        };
        let d = usize::from(!from_initiator);
        // The packet as sent, and the same with the roles swapped.
        let sent = FlowQuery {
            src: ip.src,
            dst: ip.dst,
            protocol: ip.protocol,
            src_port,
            dst_port,
            icmp_type: None,
        };
        let swapped = FlowQuery {
            src: ip.dst,
            dst: ip.src,
            src_port: dst_port,
            dst_port: src_port,
            ..sent
        };
        let (forward, reverse) = if from_initiator {
            (sent, swapped)
        } else {
            (swapped, sent)
        };
        let monitor = self.policy.mode() == Mode::Monitor;
        let mut judge = Judge {
            policy: &self.policy,
            counters: &self.counters,
            reporter: &mut self.reporter,
            seen,
            forward,
            reverse,
            first,
            dir,
            monitor,
            denied: None,
            last_op: None,
            messages: 0,
        };
        let mut gap = false;
        // For the answer in the server's name: whether this segment held exactly the
        // messages it completed (no partial message before or after, nothing seen twice).
        let mut whole = false;
        let mut rewrite = None;
        let mut answer_again = None;
        match tcp {
            None => stream::datagram(protocol, payload, dir, &mut |m| judge.message(m)),
            Some(_) if entry.stream == NO_STREAM => {}
            Some((seq, ack, flags)) => {
                let (slot, buf) = self.streams.slot_and_buffer(entry.stream, d);
                let mut data_seq = seq;
                if flags & tcp_flags::SYN != 0 {
                    data_seq = seq.wrapping_add(1);
                    slot.next_seq[d] = data_seq;
                    slot.synced[d] = true;
                }
                let again = slot
                    .answered
                    .filter(|a| d == 0 && overlaps(data_seq, payload.len() as u32, a.start, a.end));
                if again.is_some() {
                    // The client did not get our answer and sent the request again.
                    answer_again = again;
                } else if !payload.is_empty() && !slot.lost[d] {
                    if !slot.synced[d] {
                        slot.next_seq[d] = data_seq;
                        slot.synced[d] = true;
                    }
                    match new_bytes(slot.next_seq[d], data_seq, payload) {
                        Bytes::Gap if monitor => {
                            // Forwarded unjudged: the rest of this direction cannot be
                            // followed. Said once.
                            slot.lost[d] = true;
                            judge.deny(Reason::OutOfOrder, Some(first), None, None);
                        }
                        Bytes::Gap => gap = true,
                        Bytes::Seen => {}
                        Bytes::New(data) => {
                            let boundary_before = slot.dirs[d].at_boundary();
                            slot.next_seq[d] = slot.next_seq[d].wrapping_add(data.len() as u32);
                            slot.dirs[d].feed(protocol, buf, data, dir, &mut |m| judge.message(m));
                            whole = boundary_before
                                && slot.dirs[d].at_boundary()
                                && data.len() == payload.len();
                        }
                    }
                }
                if slot.shifted() {
                    rewrite = Some(TcpRewrite {
                        seq: slot.shift[d].seq(seq),
                        ack: slot.shift[1 - d].ack(ack),
                    });
                }
            }
        }
        let Judge {
            denied,
            last_op,
            messages,
            ..
        } = judge;
        if let Some(answered) = answer_again {
            self.answer_again(seen, &answered);
            return Outcome {
                forward: false,
                verdict: EventVerdict::Deny,
                rule: Some(first),
                reason: answered.reason,
                op: None,
                detail: None,
                rewrite: None,
            };
        }
        if gap {
            // Counted, not reported: a gap is TCP recovering from loss, and the sender
            // retransmits what is missing; the segment is judged when it fits.
            self.counters.dropped[Reason::OutOfOrder.index()].add(1);
            return Outcome {
                forward: false,
                verdict: EventVerdict::Deny,
                rule: Some(first),
                reason: Reason::OutOfOrder,
                op: None,
                detail: None,
                rewrite: None,
            };
        }
        let Some(denied) = denied else {
            return Outcome {
                op: last_op,
                rewrite,
                ..flow_allowed(first)
            };
        };
        if monitor {
            return Outcome {
                forward: true,
                verdict: EventVerdict::WouldDeny,
                rule: denied.rule,
                reason: denied.reason,
                op: denied.op,
                detail: denied.detail,
                rewrite,
            };
        }
        if tcp.is_some() {
            let rule = denied.rule.unwrap_or(first);
            let answerable = self.policy.rule(rule).on_deny == OnDeny::ModbusException
                && protocol == Protocol::Modbus
                && dir == Dir::Request
                && whole
                && messages == 1
                && denied.reason != Reason::Malformed;
            if !(answerable && self.answer_modbus(seen, entry.stream, payload, denied.reason)) {
                self.end_conversation(seen, handle, entry.stream, d);
            }
        }
        Outcome {
            forward: false,
            verdict: EventVerdict::Deny,
            rule: denied.rule,
            reason: denied.reason,
            op: denied.op,
            detail: denied.detail,
            rewrite: None,
        }
    }

    /// After a denied message: reset the TCP conversation towards both ends (its
    /// rule's `on-deny`) and forget it, so that stragglers are refused (`tcp-state`).
    /// `d` is the direction of the segment being denied (0: from the initiator).
    fn end_conversation(&mut self, seen: &Seen<'_, '_>, handle: FlowHandle, stream: u32, d: usize) {
        if let Some(mut segment) = seen.parsed.and_then(|p| Segment::of(seen.frame, p)) {
            // The reset towards the receiver speaks in the receiver's numbers.
            if stream != NO_STREAM {
                let slot = self.streams.slot(stream);
                if slot.shifted() {
                    segment.seq_on = slot.shift[d].seq(segment.seq);
                    segment.ack_on = slot.shift[1 - d].ack(segment.ack);
                }
            }
            let built = inspect::resets(&mut self.injected, seen.ingress, &segment);
            self.counters.injected.add(built as u64);
        }
        self.flows.remove(handle);
        self.reclaim_streams();
    }

    /// `on-deny = "modbus-exception"`: answers the client with an exception in the
    /// server's name, drops the request, and from then on shifts the conversation's
    /// sequence numbers so that neither side notices the gap. Returns false when the
    /// answer cannot be built (the caller resets instead).
    fn answer_modbus(
        &mut self,
        seen: &Seen<'_, '_>,
        stream: u32,
        payload: &[u8],
        reason: Reason,
    ) -> bool {
        let Some(segment) = seen.parsed.and_then(|p| Segment::of(seen.frame, p)) else {
            return false;
        };
        let Ok(request) = modbus::parse(payload, payload.len(), Dir::Request) else {
            return false;
        };
        let code = match reason {
            Reason::Address => modbus::Exception::IllegalDataAddress,
            Reason::Unit => modbus::Exception::GatewayTargetFailed,
            _ => modbus::Exception::IllegalFunction,
        };
        let mut answer = [0u8; 16];
        let Some(len) = modbus::emit_exception(&mut answer, &request, code) else {
            return false;
        };
        let slot = self.streams.slot(stream);
        // The answer goes where the server's next byte would go in the client's view:
        // after everything the server has sent so far.
        let server_next = if slot.synced[1] {
            slot.next_seq[1]
        } else {
            slot.shift[1].ack(segment.ack)
        };
        let answer_seq = slot.shift[1].seq(server_next);
        let end = segment.seq.wrapping_add(segment.payload_len);
        let answered = Answered {
            start: segment.seq,
            end,
            answer_seq,
            answer_len: len as u8,
            answer,
            reason,
        };
        if !self.answer_again(seen, &answered) {
            return false;
        }
        let slot = self.streams.slot(stream);
        slot.shift[1].shift(server_next, len as u32);
        slot.shift[0].shift(end, 0u32.wrapping_sub(segment.payload_len));
        slot.answered = Some(answered);
        true
    }

    /// Sends the client the answer to its request `answered` (again).
    fn answer_again(&mut self, seen: &Seen<'_, '_>, answered: &Answered) -> bool {
        let Some(segment) = seen.parsed.and_then(|p| Segment::of(seen.frame, p)) else {
            return false;
        };
        let reply = Answer {
            back: true,
            seq: answered.answer_seq,
            ack: answered.end,
            flags: tcp_flags::ACK | tcp_flags::PSH,
            payload: &answered.answer[..usize::from(answered.answer_len)],
        };
        let built = inspect::build(&mut self.injected, seen.ingress, &segment, &reply);
        self.counters.injected.add(u64::from(built));
        built
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
        let verdict = count_refusal(&self.policy, &self.counters, seen, reason, rule);
        let what = Report::new(verdict, reason, rule);
        self.reporter.report(&self.counters, seen, what);
        Outcome {
            forward: verdict == EventVerdict::WouldDeny,
            verdict,
            rule,
            reason,
            op: None,
            detail: None,
            rewrite: None,
        }
    }
}

/// Counts a refusal (a drop in enforce mode, a would-drop in monitor mode) and returns
/// the verdict that reports it.
fn count_refusal(
    policy: &Policy,
    counters: &Counters,
    seen: &Seen<'_, '_>,
    reason: Reason,
    rule: Option<RuleId>,
) -> EventVerdict {
    if policy.mode() == Mode::Monitor {
        counters.would_drop[reason.index()].add(1);
        return EventVerdict::WouldDeny;
    }
    counters.dropped[reason.index()].add(1);
    match (reason, rule) {
        (Reason::NoRule, _) => counters.no_rule.add(1),
        (Reason::DenyRule, Some(rule)) => {
            let c = counters.rule(rule);
            c.packets.add(1);
            c.bytes.add(seen.frame.len() as u64);
        }
        _ => {}
    }
    EventVerdict::Deny
}

/// How many inspection streams `policy` needs: its `[inspection] streams` when some rule
/// inspects a TCP protocol, none otherwise.
fn streams_for(policy: &Policy) -> usize {
    let inspects_tcp = policy
        .rules()
        .iter()
        .filter_map(|r| r.inspects())
        .any(|p| !p.tcp_ports().is_empty());
    if inspects_tcp {
        policy.limits().inspect_streams
    } else {
        0
    }
}

/// Whether the `len` bytes from `seq` touch the range `start..end`.
fn overlaps(seq: u32, len: u32, start: u32, end: u32) -> bool {
    len > 0
        && end.wrapping_sub(seq) as i32 > 0
        && seq.wrapping_add(len).wrapping_sub(start) as i32 > 0
}

/// Where a segment's payload stands against the next sequence number expected.
enum Bytes<'p> {
    /// It starts beyond what was seen: bytes are missing in front of it.
    Gap,
    /// Every byte was seen before (a retransmission).
    Seen,
    /// These bytes are new (the tail of a partial retransmission, or all of it).
    New(&'p [u8]),
}

fn new_bytes(next: u32, seq: u32, payload: &[u8]) -> Bytes<'_> {
    // Sequence numbers compare within half the space (RFC 1982 serial arithmetic).
    let ahead = seq.wrapping_sub(next) as i32;
    if ahead > 0 {
        return Bytes::Gap;
    }
    let seen = ahead.unsigned_abs() as usize;
    match payload.get(seen..) {
        Some(rest) if !rest.is_empty() => Bytes::New(rest),
        _ => Bytes::Seen,
    }
}

/// The first message denied in a packet.
#[derive(Debug, Clone, Copy)]
struct Denied {
    rule: Option<RuleId>,
    reason: Reason,
    op: Option<Op>,
    detail: Option<&'static str>,
}

/// Judges the messages of one packet against the policy and reports them.
struct Judge<'j, 'a, 'f, S> {
    policy: &'j Policy,
    counters: &'j Counters,
    reporter: &'j mut Reporter<S>,
    seen: &'j Seen<'a, 'f>,
    /// The conversation initiator to responder, and the other way round.
    forward: FlowQuery,
    reverse: FlowQuery,
    first: RuleId,
    dir: Dir,
    monitor: bool,
    denied: Option<Denied>,
    last_op: Option<Op>,
    /// Messages completed by this packet.
    messages: u32,
}

impl<S: EventSink> Judge<'_, '_, '_, S> {
    fn message(&mut self, message: Result<Message<'_>, Malformed>) {
        // In enforce mode the first denial ends the conversation: nothing after it counts.
        if self.denied.is_some() && !self.monitor {
            return;
        }
        self.messages += 1;
        let msg = match message {
            Ok(msg) => msg,
            Err(e) => return self.deny(Reason::Malformed, Some(self.first), None, Some(e.what)),
        };
        // Answers and reports are not judged (their shape was checked by the parser).
        if !msg.is_request() {
            return;
        }
        let op = msg.op();
        self.last_op = Some(op);
        let decision = match self.dir {
            Dir::Request => self.policy.judge_message(&self.forward, self.first, &msg),
            // A request against the conversation: judged with the roles swapped.
            Dir::Response => self.policy.judge_message(&self.reverse, RuleId(0), &msg),
        };
        match (decision.action, decision.rule) {
            (Action::Allow | Action::Alert, Some(rule)) => {
                self.counters.rule(rule).messages.add(1);
                let alert = decision.action == Action::Alert;
                if alert || self.policy.rule(rule).log {
                    let verdict = if alert {
                        EventVerdict::Alert
                    } else {
                        EventVerdict::Allow
                    };
                    let mut what = Report::new(verdict, Reason::Rule, Some(rule));
                    what.op = Some(op);
                    self.reporter.report(self.counters, self.seen, what);
                }
            }
            (_, rule) => {
                let reason = match (decision.violation, rule) {
                    (Some(v), _) => Reason::from(v),
                    (None, Some(_)) => Reason::DenyRule,
                    (None, None) => Reason::NoRule,
                };
                self.deny(reason, rule, Some(op), None);
            }
        }
    }

    fn deny(
        &mut self,
        reason: Reason,
        rule: Option<RuleId>,
        op: Option<Op>,
        detail: Option<&'static str>,
    ) {
        let verdict = count_refusal(self.policy, self.counters, self.seen, reason, rule);
        if let Some(rule) = rule {
            self.counters.rule(rule).messages_denied.add(1);
        }
        let what = Report {
            verdict,
            reason,
            rule,
            op,
            detail,
        };
        self.reporter.report(self.counters, self.seen, what);
        self.denied.get_or_insert(Denied {
            rule,
            reason,
            op,
            detail,
        });
    }
}

fn allowed(reason: Reason) -> Outcome {
    Outcome {
        forward: true,
        verdict: EventVerdict::Allow,
        rule: None,
        reason,
        op: None,
        detail: None,
        rewrite: None,
    }
}

/// A packet of a conversation that `rule` allowed.
fn flow_allowed(rule: RuleId) -> Outcome {
    Outcome {
        forward: true,
        verdict: EventVerdict::Allow,
        rule: Some(rule),
        reason: Reason::Flow,
        op: None,
        detail: None,
        rewrite: None,
    }
}

fn flow_rule(verdict: FlowVerdict) -> Option<RuleId> {
    match verdict {
        FlowVerdict::Allowed(rule) => Some(rule),
        FlowVerdict::WouldDeny(rule, _) | FlowVerdict::Revoked(rule, _) => rule,
    }
}

/// The `detail` of a conversation refused because a new policy no longer allows it.
const REVOKED: &str = "no longer allowed by the policy in force";

/// What a health check saw a packet of its conversation get.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Watched {
    /// Allowed, from the initiator.
    Forward,
    /// Allowed, back from the responder.
    Reverse,
    Refused,
}

/// The conversation of `entry` as the policy sees it: initiator to responder.
fn flow_query(entry: &FlowEntry) -> FlowQuery {
    let (initiator, responder) = if entry.initiator_is_lo {
        (entry.key.lo, entry.key.hi)
    } else {
        (entry.key.hi, entry.key.lo)
    };
    let addr = |e: Endpoint| {
        let v6 = std::net::Ipv6Addr::from(e.addr);
        // IPv4 conversations are keyed by their v4-mapped form.
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    };
    let (src, dst) = (addr(initiator), addr(responder));
    let protocol = gk_packet::IpProtocol::from(entry.key.protocol);
    let has_ports = matches!(entry.key.protocol, 6 | 17);
    let icmp_type = match entry.key.protocol {
        // ICMP conversations are echo sessions (their "ports" are the echo id).
        1 => Some(8),
        58 => Some(128),
        _ => None,
    };
    FlowQuery {
        src,
        dst,
        protocol,
        src_port: if has_ports { initiator.port } else { 0 },
        dst_port: if has_ports { responder.port } else { 0 },
        icmp_type,
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
        app: None,
        stream: NO_STREAM,
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
