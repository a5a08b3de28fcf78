//! The gatekeeper policy: the TOML model, its validation into compiled, immutable
//! tables, and their evaluation.
//!
//! Loading is the slow, careful half: [`Policy::from_toml`] reads the file into raw serde
//! structs (shape only, `deny_unknown_fields`), then validates them into a [`Policy`],
//! reporting every error it can find with file, line and column. Nothing downstream sees
//! the raw form. Evaluation is the fast half: [`Policy::evaluate`],
//! [`Policy::ethertype_allowed`], [`Policy::vlan_allowed`] and
//! [`Policy::mac_pin_violation`] run per packet or per new flow, so they read only plain
//! vectors and bitsets: no allocation, no locking, no string hashing.
//!
//! The file format is documented in `config/README.md`.

pub mod app;
mod compile;
mod diag;
mod names;
mod raw;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

pub use app::{AppRule, OnDeny, Ranges, Violation};
pub use diag::{Diagnostic, PolicyError, Severity};
pub use gk_inspect::{Message, Protocol};
use gk_packet::{EtherType, IpProtocol, MacAddr};
pub use ipnet::IpNet;

/// The name a policy may use for an ethertype (`lldp` for 0x88cc), if it has one.
pub fn ethertype_name(ethertype: u16) -> Option<&'static str> {
    names::name_of(names::ETHERTYPES, ethertype)
}

/// The name a policy may use for an ICMP (or, with `v6`, ICMPv6) type, if it has one.
pub fn icmp_type_name(v6: bool, icmp_type: u8) -> Option<&'static str> {
    let table = if v6 { names::ICMPV6 } else { names::ICMPV4 };
    names::name_of(table, icmp_type)
}

/// The schema version this crate reads (`schema = 1`).
pub const SCHEMA: i64 = 1;

/// Whether the policy's verdicts are carried out or only reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Drop what the policy denies.
    Enforce,
    /// Forward everything; report what would have been dropped.
    Monitor,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a matching rule does with a new conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Deny,
    /// Allow, and report it.
    Alert,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Alert => "alert",
        }
    }

    /// Whether the conversation may proceed (allow and alert).
    pub fn permits(self) -> bool {
        self != Action::Deny
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Index of a rule in file order; valid for the [`Policy`] that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleId(pub u16);

/// A rule's `proto`: which IP protocol it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Any,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    /// Another IP protocol, by number (`proto = 112` for VRRP, say).
    Other(u8),
    /// An industrial protocol on its transport (TCP, UDP or both): the rule's
    /// `[rule.<protocol>]` section judges each message.
    App(Protocol),
}

impl Proto {
    /// The IP protocol number, `None` for any (and for industrial protocols, which may
    /// run on more than one).
    pub fn number(self) -> Option<u8> {
        match self {
            Proto::Any | Proto::App(_) => None,
            Proto::Tcp => Some(6),
            Proto::Udp => Some(17),
            Proto::Icmp => Some(1),
            Proto::Icmpv6 => Some(58),
            Proto::Other(n) => Some(n),
        }
    }

    /// The canonical form of a protocol number (6 is `Tcp`, not `Other(6)`).
    pub fn from_number(n: u8) -> Proto {
        match n {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            1 => Proto::Icmp,
            58 => Proto::Icmpv6,
            n => Proto::Other(n),
        }
    }

    fn icmp_names(self) -> &'static [(&'static str, u8)] {
        if self == Proto::Icmpv6 {
            names::ICMPV6
        } else {
            names::ICMPV4
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proto::Any => f.write_str("any"),
            Proto::Tcp => f.write_str("tcp"),
            Proto::Udp => f.write_str("udp"),
            Proto::Icmp => f.write_str("icmp"),
            Proto::Icmpv6 => f.write_str("icmpv6"),
            Proto::Other(n) => write!(f, "proto {n}"),
            Proto::App(p) => f.write_str(p.name()),
        }
    }
}

/// One side of a rule: named hosts compiled to address/mask pairs, or any address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    hosts: Box<[String]>,
    nets: Box<[IpNet]>,
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
}

impl Peer {
    pub(crate) fn any() -> Peer {
        Peer {
            hosts: Box::new([]),
            nets: Box::new([]),
            v4: Box::new([]),
            v6: Box::new([]),
        }
    }

    pub(crate) fn new(hosts: Vec<String>, nets: Vec<IpNet>) -> Peer {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in &nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.netmask()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.netmask()))),
            }
        }
        Peer {
            hosts: hosts.into(),
            nets: nets.into(),
            v4: v4.into(),
            v6: v6.into(),
        }
    }

    /// `"any"` in the file.
    pub fn is_any(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The host names, in the order written; empty for any.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Every network of every named host; empty for any.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.is_any() {
            return true;
        }
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.hosts.as_ref() {
            [] => f.write_str("any"),
            [one] => f.write_str(one),
            many => write!(f, "[{}]", many.join(", ")),
        }
    }
}

/// Responder ports: sorted, merged, inclusive ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ports(Box<[(u16, u16)]>);

impl Ports {
    pub(crate) fn all() -> Ports {
        Ports(Box::new([(0, u16::MAX)]))
    }

    /// Sorts and merges overlapping or adjacent ranges.
    pub(crate) fn new(mut ranges: Vec<(u16, u16)>) -> Ports {
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Ports(merged.into())
    }

    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }

    pub fn is_all(&self) -> bool {
        *self.0 == [(0, u16::MAX)]
    }

    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        let i = self.0.partition_point(|&(_, hi)| hi < port);
        self.0.get(i).is_some_and(|&(lo, _)| lo <= port)
    }

    /// Every port of `other` is in `self`.
    pub fn covers(&self, other: &Ports) -> bool {
        // Ranges are merged, so each of `other`'s must sit inside a single one of ours.
        other.0.iter().all(|&(lo, hi)| {
            let i = self.0.partition_point(|&(_, h)| h < lo);
            self.0.get(i).is_some_and(|&(l, h)| l <= lo && hi <= h)
        })
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            if lo == hi {
                write!(f, "{sep}{lo}")?;
            } else {
                write!(f, "{sep}{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// ICMP or ICMPv6 types a rule matches: a 256-bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpTypes([u64; 4]);

impl IcmpTypes {
    pub(crate) const ALL: IcmpTypes = IcmpTypes([u64::MAX; 4]);
    pub(crate) const NONE: IcmpTypes = IcmpTypes([0; 4]);

    pub(crate) fn insert(&mut self, t: u8) {
        self.0[usize::from(t >> 6)] |= 1 << (t & 63);
    }

    #[inline]
    pub fn contains(&self, t: u8) -> bool {
        self.0[usize::from(t >> 6)] & (1 << (t & 63)) != 0
    }

    pub fn is_all(&self) -> bool {
        *self == Self::ALL
    }

    pub fn covers(&self, other: &IcmpTypes) -> bool {
        self.0.iter().zip(other.0).all(|(a, b)| b & !a == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=u8::MAX).filter(|&t| self.contains(t))
    }

    /// A query without a type (not ICMP at all) matches only an unrestricted set.
    #[inline]
    fn matches(&self, t: Option<u8>) -> bool {
        match t {
            Some(t) => self.contains(t),
            None => self.is_all(),
        }
    }
}

/// A compiled `[[rule]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub action: Action,
    /// Report allowed conversations too (deny and alert are always reported).
    pub log: bool,
    /// Initiator side.
    pub from: Peer,
    /// Responder side.
    pub to: Peer,
    pub proto: Proto,
    /// Responder ports; all ports unless proto is tcp or udp with `ports` set.
    pub ports: Ports,
    /// ICMP types; all types unless proto is icmp or icmpv6 with `icmp` set.
    pub icmp: IcmpTypes,
    /// The protocol section of an industrial-protocol rule (`proto = "modbus"`).
    pub app: Option<AppRule>,
    /// What a denied message does to its TCP conversation.
    pub on_deny: OnDeny,
    /// 1-based line of the rule's `[[rule]]` header.
    pub line: usize,
}

impl Rule {
    /// Whether this rule judges the conversation that `q` opens.
    #[inline]
    pub fn matches(&self, q: &FlowQuery) -> bool {
        self.matches_proto(q, u8::from(q.protocol))
    }

    /// `matches` with the protocol number decoded once per query, not once per rule.
    #[inline]
    fn matches_proto(&self, q: &FlowQuery, proto: u8) -> bool {
        l4_matches(self.proto, &self.ports, &self.icmp, q, proto)
            && self.to.contains(q.dst)
            && self.from.contains(q.src)
    }

    /// Whether this rule judges messages (it has a protocol section).
    pub fn inspects(&self) -> Option<Protocol> {
        self.app.as_ref().map(AppRule::protocol)
    }
}

impl fmt::Display for Rule {
    /// `hmi-polls-plc: hmi -> plc tcp 502,20000-20010 allow log`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} -> {} {}",
            self.name, self.from, self.to, self.proto
        )?;
        if !self.ports.is_all() {
            write!(f, " {}", self.ports)?;
        }
        if !self.icmp.is_all() {
            let names = self.proto.icmp_names();
            let types: Vec<String> = self
                .icmp
                .iter()
                .map(|t| names::name_of(names, t).map_or_else(|| t.to_string(), str::to_string))
                .collect();
            write!(f, " {}", types.join(","))?;
        }
        write!(f, " {}", self.action)?;
        if self.log {
            f.write_str(" log")?;
        }
        if let Some(app) = &self.app {
            write!(f, " [{app}]")?;
            if self.on_deny != OnDeny::Reset {
                write!(f, " on-deny {}", self.on_deny.as_str())?;
            }
        }
        Ok(())
    }
}

/// A `[[health]]` check: after a new bundle is applied, a conversation from `from` to
/// `to` on `proto`/`ports` must be seen flowing (packets allowed both ways) within
/// `within`, and none may be refused; otherwise the previous bundle comes back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub name: String,
    pub from: Peer,
    pub to: Peer,
    pub proto: Proto,
    pub ports: Ports,
    pub within: Duration,
    /// 1-based line of the `[[health]]` header.
    pub line: usize,
}

impl HealthCheck {
    /// Whether the conversation `q` (initiator to responder) is one this check watches.
    #[inline]
    pub fn matches(&self, q: &FlowQuery) -> bool {
        l4_matches(
            self.proto,
            &self.ports,
            &IcmpTypes::ALL,
            q,
            u8::from(q.protocol),
        ) && self.to.contains(q.dst)
            && self.from.contains(q.src)
    }
}

/// Whether `q`'s protocol, port and ICMP type are what `proto`/`ports`/`icmp` say.
#[inline]
fn l4_matches(proto: Proto, ports: &Ports, icmp: &IcmpTypes, q: &FlowQuery, number: u8) -> bool {
    match proto {
        Proto::Any => true,
        Proto::Tcp | Proto::Udp => proto.number() == Some(number) && ports.contains(q.dst_port),
        Proto::Icmp | Proto::Icmpv6 => proto.number() == Some(number) && icmp.matches(q.icmp_type),
        Proto::Other(n) => n == number,
        Proto::App(p) => {
            let transport = match number {
                6 => !p.tcp_ports().is_empty(),
                17 => !p.udp_ports().is_empty(),
                _ => false,
            };
            transport && ports.contains(q.dst_port)
        }
    }
}

/// A named host from `[hosts.NAME]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    /// Addresses as networks (a lone address is a /32 or /128), host bits cleared.
    pub nets: Vec<IpNet>,
    /// The MAC its addresses are pinned to.
    pub mac: Option<MacAddr>,
    /// 1-based line of the host's table header.
    pub line: usize,
}

/// The first packet of a conversation, initiator to responder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowQuery {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: IpProtocol,
    pub src_port: u16,
    pub dst_port: u16,
    /// For ICMP and ICMPv6 only.
    pub icmp_type: Option<u8>,
}

/// The verdict on a new conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// `None` when no rule matched; the action is then `Deny`.
    pub rule: Option<RuleId>,
    pub action: Action,
    /// The conversation's messages are judged one by one, with this protocol, starting
    /// from `rule` (see [`Policy::judge_message`]); `action` then says whether any rule
    /// could allow a message at all.
    pub inspect: Option<Protocol>,
}

/// The verdict on one message of an inspected conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageDecision {
    /// The rule that allowed or denied it; for a message no rule allowed, the rule
    /// that came closest (its `violation` says why it did not take it); `None` when no
    /// protocol rule applied at all.
    pub rule: Option<RuleId>,
    pub action: Action,
    /// Set when no rule took the message: what put it outside `rule`.
    pub violation: Option<Violation>,
}

/// Sizes and timeouts the data plane reserves and applies (`[flows]`, `[events]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub flow_capacity: usize,
    pub tcp_syn_timeout: Duration,
    pub tcp_established_timeout: Duration,
    pub tcp_closing_timeout: Duration,
    pub udp_timeout: Duration,
    pub icmp_timeout: Duration,
    pub other_timeout: Duration,
    /// Events per second per (rule, source) key.
    pub events_per_second: u32,
    pub event_burst: u32,
    /// Inspected TCP conversations that can be followed at once (`[inspection]`).
    pub inspect_streams: usize,
    /// Reassembly buffer per direction of an inspected conversation, in bytes.
    pub inspect_buffer: usize,
}

impl Default for Limits {
    /// The values a policy gets when it leaves `[flows]` and `[events]` out.
    fn default() -> Limits {
        Limits {
            flow_capacity: 16384,
            tcp_syn_timeout: Duration::from_secs(30),
            tcp_established_timeout: Duration::from_secs(3600),
            tcp_closing_timeout: Duration::from_secs(120),
            udp_timeout: Duration::from_secs(60),
            icmp_timeout: Duration::from_secs(30),
            other_timeout: Duration::from_secs(60),
            events_per_second: 10,
            event_burst: 20,
            inspect_streams: 1024,
            inspect_buffer: 4096,
        }
    }
}

/// A validated, compiled policy. Immutable: a new policy is a new value.
#[derive(Debug)]
pub struct Policy {
    name: String,
    mode: Mode,
    /// `[gatekeeper] link-propagation`: a port that loses its link takes the other down.
    link_propagation: bool,
    limits: Limits,
    /// Sorted.
    ethertypes: Box<[u16]>,
    /// Bit 0 stands for untagged (and priority-tagged VID 0).
    vlans: Box<[u64; 64]>,
    hosts: Vec<Host>,
    rules: Vec<Rule>,
    health: Vec<HealthCheck>,
    pins_v4: Box<[PinV4]>,
    pins_v6: Box<[PinV6]>,
}

/// A MAC pin: (network, netmask, MAC), addresses as integers for a mask-and-compare.
type PinV4 = (u32, u32, MacAddr);
type PinV6 = (u128, u128, MacAddr);

impl Policy {
    /// Validates a policy. `file` names it in diagnostics. On success, also returns the
    /// warnings; on failure, every error (and warning) found.
    pub fn from_toml(text: &str, file: &str) -> Result<(Policy, Vec<Diagnostic>), PolicyError> {
        compile::compile(text, file)
    }

    /// What runs when there is no valid bundle and the box must forward nothing
    /// (`fail-closed`): enforce mode, no ethertype allowed, no rule.
    pub fn fail_closed() -> Policy {
        Policy::fallback("fail-closed", Mode::Enforce)
    }

    /// What runs when there is no valid bundle and the box must keep the plant running
    /// (`fail-open`): monitor mode and no rule, so everything is forwarded and reported
    /// as what an empty enforce policy would refuse.
    pub fn fail_open() -> Policy {
        Policy::fallback("fail-open", Mode::Monitor)
    }

    /// What a new box runs until its first bundle is confirmed (`gatekeeperd
    /// --factory-monitor`): like `fail_open`, under its own name, so that events and
    /// status say it is the factory default rather than a failure.
    pub fn factory_default() -> Policy {
        Policy::fallback("factory-default", Mode::Monitor)
    }

    fn fallback(name: &str, mode: Mode) -> Policy {
        Policy {
            name: name.to_string(),
            mode,
            link_propagation: false,
            limits: Limits::default(),
            ethertypes: Box::new([]),
            vlans: Box::new([u64::MAX; 64]),
            hosts: Vec::new(),
            rules: Vec::new(),
            health: Vec::new(),
            pins_v4: Box::new([]),
            pins_v6: Box::new([]),
        }
    }

    /// Reads and validates a policy file; a read error is reported as a diagnostic.
    pub fn load(path: &Path) -> Result<(Policy, Vec<Diagnostic>), PolicyError> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml(&text, &file),
            Err(e) => Err(PolicyError {
                diagnostics: vec![Diagnostic {
                    severity: Severity::Error,
                    file,
                    line: 0,
                    column: 0,
                    message: format!("cannot read policy: {e}"),
                }],
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether a port that loses its link should take the other port down too, so that
    /// the devices on that side see the loss (and a redundant path takes over).
    pub fn link_propagation(&self) -> bool {
        self.link_propagation
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// In file order; `RuleId(i)` is `rules()[i]`.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Panics if `id` did not come from this policy.
    pub fn rule(&self, id: RuleId) -> &Rule {
        &self.rules[usize::from(id.0)]
    }

    /// Sorted by name.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The `[[health]]` checks, in file order.
    pub fn health_checks(&self) -> &[HealthCheck] {
        &self.health
    }

    /// The first host (by name) one of whose networks holds `ip`; for reports, not the
    /// fast path.
    pub fn host_of(&self, ip: IpAddr) -> Option<&Host> {
        self.hosts
            .iter()
            .find(|h| h.nets.iter().any(|n| n.contains(&ip)))
    }

    /// Allowed ethertypes, sorted.
    pub fn ethertypes(&self) -> impl Iterator<Item = EtherType> + '_ {
        self.ethertypes.iter().map(|&t| EtherType::from(t))
    }

    #[inline]
    pub fn ethertype_allowed(&self, ethertype: EtherType) -> bool {
        self.ethertypes.binary_search(&u16::from(ethertype)).is_ok()
    }

    /// Judges the outermost 802.1Q tag's VLAN id; `None` or `Some(0)` is untagged.
    #[inline]
    pub fn vlan_allowed(&self, outer_vid: Option<u16>) -> bool {
        let vid = usize::from(outer_vid.unwrap_or(0));
        vid < 4096 && self.vlans[vid / 64] & (1 << (vid % 64)) != 0
    }

    /// True when `ip` belongs to a host pinned to a MAC other than `mac`.
    #[inline]
    pub fn mac_pin_violation(&self, ip: IpAddr, mac: MacAddr) -> bool {
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.pins_v4
                    .iter()
                    .any(|&(net, mask, m)| a & mask == net && m != mac)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.pins_v6
                    .iter()
                    .any(|&(net, mask, m)| a & mask == net && m != mac)
            }
        }
    }

    /// Judges a new conversation: the first rule in file order that matches, else deny.
    ///
    /// When that rule has a protocol section, the conversation is inspected: it opens
    /// if any rule that could judge its messages (see [`Policy::judge_message`]) allows
    /// something, and each message is then judged on its own.
    #[inline]
    pub fn evaluate(&self, q: &FlowQuery) -> Decision {
        let proto = u8::from(q.protocol);
        let Some(i) = self.rules.iter().position(|r| r.matches_proto(q, proto)) else {
            return Decision {
                rule: None,
                action: Action::Deny,
                inspect: None,
            };
        };
        // Rule count is bounded by u16 at compile time.
        let id = RuleId(i as u16);
        let Some(protocol) = self.rules[i].inspects() else {
            return Decision {
                rule: Some(id),
                action: self.rules[i].action,
                inspect: None,
            };
        };
        let permits = self
            .message_rules(q, i, protocol)
            .any(|(_, r)| r.action.permits());
        Decision {
            rule: Some(id),
            action: if permits { Action::Allow } else { Action::Deny },
            inspect: Some(protocol),
        }
    }

    /// Judges one message of a conversation that [`Policy::evaluate`] opened for
    /// inspection at rule `first`. The rules that match the conversation, from `first`
    /// on, are tried in file order: the first protocol rule (of the message's protocol)
    /// whose section takes the message decides; a plain rule (no section) that matches
    /// the conversation decides every message that reaches it; past all of them the
    /// message is denied.
    ///
    /// A request that travels against its conversation (a BACnet device answering with
    /// a request of its own) is judged with `q` reversed and `first` = `RuleId(0)`.
    #[inline]
    pub fn judge_message(
        &self,
        q: &FlowQuery,
        first: RuleId,
        msg: &Message<'_>,
    ) -> MessageDecision {
        let mut closest: Option<(RuleId, Violation)> = None;
        for (i, r) in self.message_rules(q, usize::from(first.0), msg.protocol()) {
            let id = RuleId(i as u16);
            let verdict = match &r.app {
                None => Ok(()),
                Some(app) => app.check(msg),
            };
            match verdict {
                Ok(()) => {
                    return MessageDecision {
                        rule: Some(id),
                        action: r.action,
                        violation: None,
                    }
                }
                // The allowing rule that got furthest through its checks (they run in
                // the order unit, function, address, object, security) names the
                // reason; on a tie, the first.
                // Only a rule that allows could have taken it: a deny rule whose section
                // does not take the message just does not apply.
                Err(v) => {
                    if r.action.permits() && closest.is_none_or(|(_, c)| v > c) {
                        closest = Some((id, v));
                    }
                }
            }
        }
        MessageDecision {
            rule: closest.map(|(id, _)| id),
            action: Action::Deny,
            violation: closest.map(|(_, v)| v),
        }
    }

    /// The rules that can judge messages of `protocol` in the conversation `q`, from
    /// rule `from` on: matching protocol rules of that protocol, up to and including the
    /// first matching plain rule.
    fn message_rules<'p>(
        &'p self,
        q: &'p FlowQuery,
        from: usize,
        protocol: Protocol,
    ) -> impl Iterator<Item = (usize, &'p Rule)> + 'p {
        let proto = u8::from(q.protocol);
        let mut done = false;
        self.rules
            .iter()
            .enumerate()
            .skip(from)
            .filter(move |(_, r)| r.matches_proto(q, proto))
            .filter(move |(_, r)| r.inspects().is_none_or(|p| p == protocol))
            .take_while(move |(_, r)| {
                let go = !done;
                done |= r.app.is_none();
                go
            })
    }

    /// A few human lines: name, mode, L2, hosts, rules, limits (for `gkctl lint`).
    pub fn summary(&self) -> String {
        let ethertypes: Vec<String> = self
            .ethertypes
            .iter()
            .map(|&t| {
                names::name_of(names::ETHERTYPES, t).map_or(format!("{t:#06x}"), str::to_string)
            })
            .collect();
        let pinned = self.hosts.iter().filter(|h| h.mac.is_some()).count();
        let host_names: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
        let count = |a: Action| self.rules.iter().filter(|r| r.action == a).count();
        let l = &self.limits;
        format!(
            "policy {:?}, mode {}\n\
             l2: ethertypes {}; vlans {}\n\
             hosts: {} ({}), {} MAC-pinned\n\
             rules: {} ({} allow, {} alert, {} deny), then deny\n\
             flows: {} entries; events: {}/s, burst {}\n",
            self.name,
            self.mode,
            ethertypes.join(", "),
            self.vlan_list(),
            self.hosts.len(),
            if host_names.is_empty() {
                "none".to_string()
            } else {
                host_names.join(", ")
            },
            pinned,
            self.rules.len(),
            count(Action::Allow),
            count(Action::Alert),
            count(Action::Deny),
            l.flow_capacity,
            l.events_per_second,
            l.event_burst,
        )
    }

    /// "untagged, 10, 100-200"
    fn vlan_list(&self) -> String {
        let mut parts = Vec::new();
        if self.vlan_allowed(None) {
            parts.push("untagged".to_string());
        }
        let mut vid = 1u16;
        while vid < 4095 {
            if self.vlan_allowed(Some(vid)) {
                let start = vid;
                while vid < 4094 && self.vlan_allowed(Some(vid + 1)) {
                    vid += 1;
                }
                parts.push(if start == vid {
                    vid.to_string()
                } else {
                    format!("{start}-{vid}")
                });
            }
            vid += 1;
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    }
}
