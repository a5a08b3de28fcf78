//! Counters: per port, per rule and per drop reason.
//!
//! The forwarding thread is the only writer; other threads (the signal handler's
//! reporter, later the management plane) read. A single writer can bump a relaxed
//! atomic with a plain load and store, which compiles to ordinary moves: no locked
//! instruction per packet.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use gk_policy::{Policy, RuleId};

use crate::{Port, Reason};

/// A counter with one writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add `n`. Only the owning (forwarding) thread may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct PortCounters {
    /// Frames received on this port.
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    /// Frames received on this port and forwarded to the other one.
    pub forwarded: Counter,
    /// Frames that could not be sent out of this port (full queue, driver error).
    pub tx_errors: Counter,
    /// Drops the kernel reported for this port's socket (receive queue overflow).
    pub kernel_drops: Counter,
    /// 1 while the gatekeeper holds this port down because the other lost its link.
    pub held_down: Counter,
}

#[derive(Debug, Default)]
pub struct RuleCounters {
    /// Conversations this rule decided.
    pub flows: Counter,
    /// Packets of those conversations (both directions) and, for deny rules, denied packets.
    pub packets: Counter,
    pub bytes: Counter,
    /// Industrial-protocol requests this rule allowed (or alerted on).
    pub messages: Counter,
    /// Requests denied with this rule named (an explicit deny, or the rule that could
    /// have allowed them and says why it did not).
    pub messages_denied: Counter,
}

/// What a `[[health]]` check has seen since the policy was applied.
#[derive(Debug, Default)]
pub struct HealthCounters {
    /// Packets allowed from the check's `from` side, and back from its `to` side.
    pub forward: Counter,
    pub reverse: Counter,
    /// Conversations the check watches that the policy refused.
    pub refused: Counter,
}

#[derive(Debug)]
pub struct Counters {
    pub ports: [PortCounters; 2],
    /// Frames dropped, by reason (enforce mode).
    pub dropped: Vec<Counter>,
    /// Frames that enforce mode would have dropped, by reason (monitor mode).
    pub would_drop: Vec<Counter>,
    pub rules: Vec<RuleCounters>,
    /// Packets that matched no rule (the implicit default deny).
    pub no_rule: Counter,
    pub flows_created: Counter,
    /// Current number of live flow-table entries (a gauge).
    pub flows_active: Counter,
    pub flow_capacity: Counter,
    /// Inspected TCP conversations being followed (a gauge), and how many can be.
    pub streams_active: Counter,
    pub stream_capacity: Counter,
    /// Frames the gatekeeper built: resets and protocol answers to denied messages.
    pub injected: Counter,
    pub events_emitted: Counter,
    pub events_suppressed: Counter,
    /// Events the writer could not keep up with (queue full).
    pub events_lost: Counter,
    /// One per `[[health]]` check of the policy, in order.
    pub health: Vec<HealthCounters>,
    /// Policies swapped in since start, and conversations they revoked.
    pub swaps: Counter,
    pub flows_revoked: Counter,
}

impl Counters {
    pub fn new(policy: &Policy) -> Self {
        let per_reason = || (0..Reason::ALL.len()).map(|_| Counter::default()).collect();
        Counters {
            ports: Default::default(),
            dropped: per_reason(),
            would_drop: per_reason(),
            rules: (0..policy.rules().len())
                .map(|_| RuleCounters::default())
                .collect(),
            no_rule: Counter::default(),
            flows_created: Counter::default(),
            flows_active: Counter::default(),
            flow_capacity: Counter::default(),
            streams_active: Counter::default(),
            stream_capacity: Counter::default(),
            injected: Counter::default(),
            events_emitted: Counter::default(),
            events_suppressed: Counter::default(),
            events_lost: Counter::default(),
            health: (0..policy.health_checks().len())
                .map(|_| HealthCounters::default())
                .collect(),
            swaps: Counter::default(),
            flows_revoked: Counter::default(),
        }
    }

    /// Counters for `policy` that go on from `old`: ports, drops, flows and events
    /// carry over, and so do the counters of rules that keep their name; health checks
    /// start from zero (they watch what happens after the swap).
    pub fn carried_over(policy: &Policy, old: &Counters, old_policy: &Policy) -> Self {
        let new = Counters::new(policy);
        let carry = |to: &Counter, from: &Counter| to.set(from.get());
        for (to, from) in new.ports.iter().zip(&old.ports) {
            carry(&to.rx_packets, &from.rx_packets);
            carry(&to.rx_bytes, &from.rx_bytes);
            carry(&to.forwarded, &from.forwarded);
            carry(&to.tx_errors, &from.tx_errors);
            carry(&to.kernel_drops, &from.kernel_drops);
            carry(&to.held_down, &from.held_down);
        }
        for (to, from) in new.dropped.iter().zip(&old.dropped) {
            carry(to, from);
        }
        for (to, from) in new.would_drop.iter().zip(&old.would_drop) {
            carry(to, from);
        }
        for (rule, to) in policy.rules().iter().zip(&new.rules) {
            let same = old_policy.rules().iter().position(|r| r.name == rule.name);
            if let Some(from) = same.and_then(|i| old.rules.get(i)) {
                carry(&to.flows, &from.flows);
                carry(&to.packets, &from.packets);
                carry(&to.bytes, &from.bytes);
                carry(&to.messages, &from.messages);
                carry(&to.messages_denied, &from.messages_denied);
            }
        }
        for (to, from) in [
            (&new.no_rule, &old.no_rule),
            (&new.flows_created, &old.flows_created),
            (&new.flows_active, &old.flows_active),
            (&new.streams_active, &old.streams_active),
            (&new.injected, &old.injected),
            (&new.events_emitted, &old.events_emitted),
            (&new.events_suppressed, &old.events_suppressed),
            (&new.events_lost, &old.events_lost),
            (&new.swaps, &old.swaps),
            (&new.flows_revoked, &old.flows_revoked),
        ] {
            carry(to, from);
        }
        new
    }

    #[inline]
    pub fn port(&self, port: Port) -> &PortCounters {
        &self.ports[port as usize]
    }

    #[inline]
    pub fn rule(&self, id: RuleId) -> &RuleCounters {
        &self.rules[usize::from(id.0)]
    }

    pub fn total_dropped(&self) -> u64 {
        self.dropped.iter().map(Counter::get).sum()
    }

    /// A human-readable report, as printed on SIGUSR1 and at exit.
    pub fn report(&self, policy: &Policy) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "counters for policy {:?} ({:?} mode):",
            policy.name(),
            policy.mode()
        );
        for port in [Port::Plant, Port::Asset] {
            let c = self.port(port);
            let _ = writeln!(
                out,
                "  port {:<5}  rx {} frames / {} bytes, forwarded {}, tx errors {}, kernel drops {}",
                port.name(),
                c.rx_packets.get(),
                c.rx_bytes.get(),
                c.forwarded.get(),
                c.tx_errors.get(),
                c.kernel_drops.get()
            );
        }
        let _ = writeln!(
            out,
            "  flows      created {}, active {} of {}",
            self.flows_created.get(),
            self.flows_active.get(),
            self.flow_capacity.get()
        );
        if self.stream_capacity.get() > 0 {
            let _ = writeln!(
                out,
                "  streams    active {} of {}, frames built (resets, answers) {}",
                self.streams_active.get(),
                self.stream_capacity.get(),
                self.injected.get()
            );
        }
        let _ = writeln!(
            out,
            "  events     emitted {}, suppressed {}, lost {}",
            self.events_emitted.get(),
            self.events_suppressed.get(),
            self.events_lost.get()
        );
        let _ = writeln!(out, "  rules:");
        for (rule, c) in policy.rules().iter().zip(&self.rules) {
            let _ = write!(
                out,
                "    {:<24} {:<6} flows {:>8}  packets {:>10}  bytes {:>12}",
                rule.name,
                format!("{:?}", rule.action).to_lowercase(),
                c.flows.get(),
                c.packets.get(),
                c.bytes.get()
            );
            if rule.app.is_some() {
                let _ = write!(
                    out,
                    "  messages {:>8}  denied {:>8}",
                    c.messages.get(),
                    c.messages_denied.get()
                );
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "    {:<24} {:<6} packets {:>10}",
            "(no rule)",
            "deny",
            self.no_rule.get()
        );
        let _ = writeln!(out, "  drops by reason:");
        for (reason, (d, w)) in Reason::ALL
            .iter()
            .zip(self.dropped.iter().zip(&self.would_drop))
        {
            if reason.is_drop() {
                let _ = writeln!(
                    out,
                    "    {:<18} dropped {:>10}  would-drop {:>10}",
                    reason.code(),
                    d.get(),
                    w.get()
                );
            }
        }
        out
    }
}
