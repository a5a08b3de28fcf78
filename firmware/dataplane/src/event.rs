//! Events: what the pipeline reports, as fixed-size records.
//!
//! The pipeline fills an [`Event`] (plain `Copy` data, no strings) and hands it to an
//! [`EventSink`]; turning it into a JSON line, with rule names and the policy's name, is
//! done by [`EventFormatter`] off the fast path. A per-(rule, source) token bucket keeps
//! a flood of denied packets from becoming a flood of events; the number suppressed is
//! carried by the next event that gets through.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

use gk_inspect::Op;
use gk_packet::MacAddr;
use gk_policy::{Policy, RuleId};
use serde::Serialize;

use crate::{Port, Reason};

/// The verdict an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventVerdict {
    Allow,
    Deny,
    Alert,
    WouldDeny,
}

/// One reportable decision. `Copy`, so queueing it never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub wall_ns: i64,
    pub verdict: EventVerdict,
    pub rule: Option<RuleId>,
    pub reason: Reason,
    pub port: Port,
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub vlan: Option<u16>,
    pub ethertype: u16,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// IP protocol number (None for non-IP frames).
    pub protocol: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub icmp_type: Option<u8>,
    /// The industrial-protocol operation the verdict is about.
    pub op: Option<Op>,
    /// Why a message is malformed ("quantity out of range"), when that is the reason.
    pub detail: Option<&'static str>,
    /// Events for the same rule and source that the rate limiter held back before this one.
    pub suppressed: u32,
}

/// Where the pipeline puts events. The daemon's sink is a bounded queue to the writer
/// thread (never blocking: a full queue counts a lost event); replay collects them.
pub trait EventSink {
    /// Offer an event; return false when it could not be taken (counted as lost).
    fn offer(&mut self, event: &Event) -> bool;

    /// The pipeline swapped `policy` in: events offered from now on name its rules.
    /// A sink that formats later (on another thread) must learn it in order.
    fn policy_changed(&mut self, _policy: &std::sync::Arc<Policy>) {}
}

impl EventSink for Vec<Event> {
    fn offer(&mut self, event: &Event) -> bool {
        self.push(*event);
        true
    }
}

/// A sink that drops everything (benchmarks, tests that only look at verdicts).
#[derive(Debug, Default)]
pub struct NullSink;

impl EventSink for NullSink {
    fn offer(&mut self, _: &Event) -> bool {
        true
    }
}

impl EventSink for std::sync::mpsc::SyncSender<Event> {
    fn offer(&mut self, event: &Event) -> bool {
        self.try_send(*event).is_ok()
    }
}

/// Fixed-size table of token buckets keyed by (rule or reason, source address). A new
/// key that lands on an occupied bucket takes it over: under a flood of distinct
/// sources the limiter may let a few more events through, but it never grows.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: Vec<Bucket>,
    hasher: RandomState,
    /// Tokens per second and bucket depth, scaled by 1e9 to count in nanoseconds.
    rate_per_s: u64,
    burst: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    key: u64,
    /// Tokens × 1e9 (so refill is integer arithmetic on nanoseconds).
    tokens_ns: u64,
    last_ns: u64,
    suppressed: u32,
}

/// Outcome of asking the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Report it, with this many suppressed before it.
    Yes {
        suppressed: u32,
    },
    No,
}

const BUCKETS: usize = 4096;
const NS: u64 = 1_000_000_000;

impl RateLimiter {
    pub fn new(rate_per_s: u32, burst: u32) -> Self {
        RateLimiter {
            buckets: vec![Bucket::default(); BUCKETS],
            hasher: RandomState::new(),
            rate_per_s: u64::from(rate_per_s.max(1)),
            burst: u64::from(burst.max(1)),
        }
    }

    pub fn admit(
        &mut self,
        rule: Option<RuleId>,
        reason: Reason,
        src: Option<IpAddr>,
        now_ns: u64,
    ) -> Admit {
        let key = self.hasher.hash_one((rule, reason, src)) | 1; // 0 marks an unused bucket
        let bucket = &mut self.buckets[(key as usize) % BUCKETS];
        if bucket.key != key {
            *bucket = Bucket {
                key,
                tokens_ns: self.burst * NS,
                last_ns: now_ns,
                suppressed: 0,
            };
        }
        let elapsed = now_ns.saturating_sub(bucket.last_ns);
        bucket.last_ns = now_ns;
        bucket.tokens_ns = bucket
            .tokens_ns
            .saturating_add(elapsed.saturating_mul(self.rate_per_s))
            .min(self.burst * NS);
        if bucket.tokens_ns >= NS {
            bucket.tokens_ns -= NS;
            let suppressed = std::mem::take(&mut bucket.suppressed);
            Admit::Yes { suppressed }
        } else {
            bucket.suppressed = bucket.suppressed.saturating_add(1);
            Admit::No
        }
    }
}

/// The stable JSON schema of one event line. Field names are part of the user contract
/// (config/README.md, "Events").
#[derive(Debug, Serialize)]
struct EventLine<'a> {
    time: String,
    gatekeeper: &'a str,
    verdict: EventVerdict,
    rule: Option<&'a str>,
    reason: &'static str,
    port: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    src: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst: Option<IpAddr>,
    proto: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_type: Option<u8>,
    src_mac: String,
    dst_mac: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<u16>,
    ethertype: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    op: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'static str>,
    suppressed: u32,
}

/// Turns events into JSON lines, resolving rule ids against the policy they came from.
#[derive(Debug, Clone)]
pub struct EventFormatter {
    policy: std::sync::Arc<Policy>,
}

impl EventFormatter {
    pub fn new(policy: std::sync::Arc<Policy>) -> Self {
        EventFormatter { policy }
    }

    pub fn to_json(&self, event: &Event) -> String {
        let line = EventLine {
            time: rfc3339(event.wall_ns),
            gatekeeper: self.policy.name(),
            verdict: event.verdict,
            rule: event.rule.map(|id| self.policy.rule(id).name.as_str()),
            reason: event.reason.code(),
            port: event.port.name(),
            src: event.src,
            dst: event.dst,
            proto: protocol_name(event.ethertype, event.protocol),
            sport: event.sport,
            dport: event.dport,
            icmp_type: event.icmp_type,
            src_mac: event.src_mac.to_string(),
            dst_mac: event.dst_mac.to_string(),
            vlan: event.vlan,
            ethertype: format!("0x{:04x}", event.ethertype),
            op: event.op.as_ref().map(op_json),
            detail: event.detail,
            suppressed: event.suppressed,
        };
        serde_json::to_string(&line).expect("event lines always serialize")
    }
}

/// An operation as a JSON object: `{"protocol": "modbus", "function": "...", ...}`.
pub fn op_json(op: &Op) -> serde_json::Map<String, serde_json::Value> {
    struct Json(serde_json::Map<String, serde_json::Value>);
    impl gk_inspect::Fields for Json {
        fn text(&mut self, key: &'static str, value: &str) {
            self.0.insert(key.into(), value.into());
        }
        fn number(&mut self, key: &'static str, value: u64) {
            self.0.insert(key.into(), value.into());
        }
        fn flag(&mut self, key: &'static str, value: bool) {
            self.0.insert(key.into(), value.into());
        }
    }
    let mut json = Json(serde_json::Map::new());
    op.describe(&mut json);
    json.0
}

/// `tcp`, `udp`, `icmp`, `icmpv6`, `arp`, another IP protocol number, or the ethertype
/// of a non-IP frame.
pub fn protocol_name(ethertype: u16, protocol: Option<u8>) -> String {
    match (ethertype, protocol) {
        (_, Some(6)) => "tcp".into(),
        (_, Some(17)) => "udp".into(),
        (_, Some(1)) => "icmp".into(),
        (_, Some(58)) => "icmpv6".into(),
        (_, Some(n)) => n.to_string(),
        (0x0806, None) => "arp".into(),
        (t, None) => format!("0x{t:04x}"),
    }
}

/// RFC 3339 with microseconds, UTC.
pub fn rfc3339(wall_ns: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(wall_ns))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let t = t
        .replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn limiter_allows_burst_then_rate_and_counts_suppressed() {
        let mut rl = RateLimiter::new(2, 3);
        let src = Some("10.0.0.66".parse().unwrap());
        let admitted = (0..10)
            .filter(|_| matches!(rl.admit(None, Reason::NoRule, src, 0), Admit::Yes { .. }))
            .count();
        assert_eq!(admitted, 3, "the burst");
        // Half a second later at 2/s one token is back, and it reports the 7 held back.
        assert_eq!(
            rl.admit(None, Reason::NoRule, src, NS / 2),
            Admit::Yes { suppressed: 7 }
        );
        assert_eq!(rl.admit(None, Reason::NoRule, src, NS / 2), Admit::No);
        // Another source has its own bucket.
        let other = Some("10.0.0.67".parse().unwrap());
        assert_eq!(
            rl.admit(None, Reason::NoRule, other, NS / 2),
            Admit::Yes { suppressed: 0 }
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn protocol_names() {
        assert_eq!(protocol_name(0x0800, Some(6)), "tcp");
        assert_eq!(protocol_name(0x86dd, Some(58)), "icmpv6");
        assert_eq!(protocol_name(0x0800, Some(47)), "47");
        assert_eq!(protocol_name(0x0806, None), "arp");
        assert_eq!(protocol_name(0x88cc, None), "0x88cc");
    }
}
