//! Industrial protocol sections of rules: `[rule.modbus]`, `[rule.dnp3]`, …
//!
//! Each protocol has a module with the same shape:
//! - `Raw`: the section as written (serde, `deny_unknown_fields`, spans);
//! - a compiled rule type (`ModbusRule`, …) built by `compile`, which reports every
//!   problem with its place and keeps going;
//! - `check(&message) -> Result<(), Violation>`: whether a message is inside the rule,
//!   and if not, which kind of field put it outside; no allocation;
//! - `Display` (one line for summaries and diffs) and `covers` (for the shadowing lint:
//!   sound, not complete).
//!
//! The helpers below turn lists of names, numbers and ranges into compiled sets with
//! the diagnostics every protocol needs.

pub mod bacnet;
pub mod dnp3;
pub mod enip;
pub mod iec104;
pub mod modbus;
pub mod opcua;
pub mod s7;

use std::fmt;
use std::ops::Range;

use gk_inspect::{Message, Protocol};
use serde_spanned::Spanned;

use crate::diag::Diags;
use crate::raw::{items, Items, RawRule, Scalar};

/// Why a message falls outside a rule's protocol section. The codes are stable: they
/// are the `reason` of events and counters. Sections check in this order (unit first),
/// and when several rules refuse a message the one that got furthest names the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Violation {
    /// A unit, station, device or link address the rule does not list.
    Unit,
    /// A function, service, command, job or type the rule does not allow.
    Function,
    /// A data address (register, coil, IOA, tag, area) outside the rule's ranges.
    Address,
    /// An object, class or property the rule does not allow.
    Object,
    /// A security setting below what the rule requires (OPC UA policy, say).
    Security,
}

impl Violation {
    pub const ALL: [Violation; 5] = [
        Violation::Unit,
        Violation::Function,
        Violation::Address,
        Violation::Object,
        Violation::Security,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Violation::Unit => "unit",
            Violation::Function => "function",
            Violation::Address => "address",
            Violation::Object => "object",
            Violation::Security => "security",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What the gatekeeper does to a TCP conversation when it denies a message in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OnDeny {
    /// Drop the message and reset the connection towards both ends (the default: a
    /// silently dropped segment would be retransmitted until the client gives up).
    Reset,
    /// Answer the Modbus client with an exception response in the server's name and
    /// keep the connection (the server never sees the request).
    ModbusException,
}

impl OnDeny {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDeny::Reset => "reset",
            OnDeny::ModbusException => "modbus-exception",
        }
    }
}

/// A rule's compiled protocol section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppRule {
    Modbus(modbus::ModbusRule),
    Dnp3(dnp3::Dnp3Rule),
    Enip(enip::EnipRule),
    EnipIo(enip::EnipIoRule),
    S7(s7::S7Rule),
    Iec104(iec104::Iec104Rule),
    OpcUa(opcua::OpcUaRule),
    Bacnet(bacnet::BacnetRule),
}

impl AppRule {
    pub fn protocol(&self) -> Protocol {
        match self {
            AppRule::Modbus(_) => Protocol::Modbus,
            AppRule::Dnp3(_) => Protocol::Dnp3,
            AppRule::Enip(_) => Protocol::Enip,
            AppRule::EnipIo(_) => Protocol::EnipIo,
            AppRule::S7(_) => Protocol::S7,
            AppRule::Iec104(_) => Protocol::Iec104,
            AppRule::OpcUa(_) => Protocol::OpcUa,
            AppRule::Bacnet(_) => Protocol::Bacnet,
        }
    }

    /// Whether `msg` is inside this section. A message of another protocol is never
    /// inside (reported as a function violation).
    #[inline]
    pub fn check(&self, msg: &Message<'_>) -> Result<(), Violation> {
        match (self, msg) {
            (AppRule::Modbus(r), Message::Modbus(m)) => r.check(m),
            (AppRule::Dnp3(r), Message::Dnp3(m)) => r.check(m),
            (AppRule::Enip(r), Message::Enip(m)) => r.check(m),
            (AppRule::EnipIo(r), Message::EnipIo(m)) => r.check(m),
            (AppRule::S7(r), Message::S7(m)) => r.check(m),
            (AppRule::Iec104(r), Message::Iec104(m)) => r.check(m),
            (AppRule::OpcUa(r), Message::OpcUa(m)) => r.check(m),
            (AppRule::Bacnet(r), Message::Bacnet(m)) => r.check(m),
            _ => Err(Violation::Function),
        }
    }

    /// Every message `other` lets through, this lets through too.
    pub fn covers(&self, other: &AppRule) -> bool {
        match (self, other) {
            (AppRule::Modbus(a), AppRule::Modbus(b)) => a.covers(b),
            (AppRule::Dnp3(a), AppRule::Dnp3(b)) => a.covers(b),
            (AppRule::Enip(a), AppRule::Enip(b)) => a.covers(b),
            (AppRule::EnipIo(a), AppRule::EnipIo(b)) => a.covers(b),
            (AppRule::S7(a), AppRule::S7(b)) => a.covers(b),
            (AppRule::Iec104(a), AppRule::Iec104(b)) => a.covers(b),
            (AppRule::OpcUa(a), AppRule::OpcUa(b)) => a.covers(b),
            (AppRule::Bacnet(a), AppRule::Bacnet(b)) => a.covers(b),
            _ => false,
        }
    }
}

impl fmt::Display for AppRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppRule::Modbus(r) => r.fmt(f),
            AppRule::Dnp3(r) => r.fmt(f),
            AppRule::Enip(r) => r.fmt(f),
            AppRule::EnipIo(r) => r.fmt(f),
            AppRule::S7(r) => r.fmt(f),
            AppRule::Iec104(r) => r.fmt(f),
            AppRule::OpcUa(r) => r.fmt(f),
            AppRule::Bacnet(r) => r.fmt(f),
        }
    }
}

/// Compiles the protocol section of a rule whose `proto` is `protocol`, and complains
/// about sections for other protocols. `span` is the rule's, for errors without a
/// better place.
pub(crate) fn compile(d: &mut Diags<'_>, label: &str, protocol: Protocol, r: &RawRule) -> AppRule {
    let sections: [(Protocol, Option<Range<usize>>); 8] = [
        (Protocol::Modbus, r.modbus.as_ref().map(Spanned::span)),
        (Protocol::Dnp3, r.dnp3.as_ref().map(Spanned::span)),
        (Protocol::Enip, r.enip.as_ref().map(Spanned::span)),
        (Protocol::EnipIo, r.enip_io.as_ref().map(Spanned::span)),
        (Protocol::S7, r.s7.as_ref().map(Spanned::span)),
        (Protocol::Iec104, r.iec104.as_ref().map(Spanned::span)),
        (Protocol::OpcUa, r.opcua.as_ref().map(Spanned::span)),
        (Protocol::Bacnet, r.bacnet.as_ref().map(Spanned::span)),
    ];
    for (p, span) in &sections {
        if let (true, Some(span)) = (*p != protocol, span) {
            d.error(
                span,
                format!("{label}: a [rule.{p}] section needs proto = \"{p}\" (this rule has {protocol})"),
            );
        }
    }
    match protocol {
        Protocol::Modbus => AppRule::Modbus(modbus::compile(d, label, r.modbus.as_ref())),
        Protocol::Dnp3 => AppRule::Dnp3(dnp3::compile(d, label, r.dnp3.as_ref())),
        Protocol::Enip => AppRule::Enip(enip::compile(d, label, r.enip.as_ref())),
        Protocol::EnipIo => AppRule::EnipIo(enip::compile_io(d, label, r.enip_io.as_ref())),
        Protocol::S7 => AppRule::S7(s7::compile(d, label, r.s7.as_ref())),
        Protocol::Iec104 => AppRule::Iec104(iec104::compile(d, label, r.iec104.as_ref())),
        Protocol::OpcUa => AppRule::OpcUa(opcua::compile(d, label, r.opcua.as_ref())),
        Protocol::Bacnet => AppRule::Bacnet(bacnet::compile(d, label, r.bacnet.as_ref())),
    }
}

/// The error for a section that names a protocol table but whose rule is not a
/// protocol rule at all (`proto = "tcp"` with `[rule.modbus]`).
pub(crate) fn stray_sections(d: &mut Diags<'_>, label: &str, proto: &str, r: &RawRule) {
    let spans = [
        ("modbus", r.modbus.as_ref().map(Spanned::span)),
        ("dnp3", r.dnp3.as_ref().map(Spanned::span)),
        ("enip", r.enip.as_ref().map(Spanned::span)),
        ("enip-io", r.enip_io.as_ref().map(Spanned::span)),
        ("s7", r.s7.as_ref().map(Spanned::span)),
        ("iec104", r.iec104.as_ref().map(Spanned::span)),
        ("opcua", r.opcua.as_ref().map(Spanned::span)),
        ("bacnet", r.bacnet.as_ref().map(Spanned::span)),
    ];
    for (name, span) in spans {
        if let Some(span) = span {
            d.error(
                &span,
                format!("{label}: a [rule.{name}] section needs proto = \"{name}\" (this rule has {proto})"),
            );
        }
    }
}

/// Sorted, merged, inclusive ranges of integers: unit ids, addresses, type ids, …
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ranges(Box<[(u32, u32)]>);

impl Ranges {
    /// Everything from 0 to `max`.
    pub fn all(max: u32) -> Ranges {
        Ranges(Box::new([(0, max)]))
    }

    pub fn none() -> Ranges {
        Ranges(Box::new([]))
    }

    /// Sorts and merges overlapping or adjacent ranges.
    pub fn new(mut ranges: Vec<(u32, u32)>) -> Ranges {
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if u64::from(lo) <= u64::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Ranges(merged.into())
    }

    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every value from 0 to `max` is in.
    pub fn is_all(&self, max: u32) -> bool {
        self.0.first().is_some_and(|&(lo, hi)| lo == 0 && hi >= max)
    }

    #[inline]
    pub fn contains(&self, v: u32) -> bool {
        let i = self.0.partition_point(|&(_, hi)| hi < v);
        self.0.get(i).is_some_and(|&(lo, _)| lo <= v)
    }

    /// Whether `lo..=hi` lies inside one of the ranges.
    #[inline]
    pub fn contains_range(&self, lo: u32, hi: u32) -> bool {
        let i = self.0.partition_point(|&(_, h)| h < lo);
        self.0.get(i).is_some_and(|&(l, h)| l <= lo && hi <= h)
    }

    pub fn covers(&self, other: &Ranges) -> bool {
        other.0.iter().all(|&(lo, hi)| self.contains_range(lo, hi))
    }

    pub fn union(&self, other: &Ranges) -> Ranges {
        Ranges::new(self.0.iter().chain(other.0.iter()).copied().collect())
    }

    /// The values in the set, for small sets (display).
    pub fn values(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().flat_map(|&(lo, hi)| lo..=hi)
    }
}

impl fmt::Display for Ranges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
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

/// Writes a set of codes by name where they have one: `read-coils,write-single-coil,65`.
pub fn fmt_codes(
    f: &mut fmt::Formatter<'_>,
    set: &Ranges,
    name: impl Fn(u32) -> Option<&'static str>,
) -> fmt::Result {
    let mut first = true;
    for v in set.values() {
        if !first {
            f.write_str(",")?;
        }
        first = false;
        match name(v) {
            Some(n) => f.write_str(n)?,
            None => write!(f, "{v}")?,
        }
    }
    if first {
        f.write_str("none")?;
    }
    Ok(())
}

/// Reads a list of codes given by name (through `lookup`) or by number (0..=`max`), or
/// ranges of numbers ("65-72"). Unknown names are errors that list the known ones.
/// Returns `None` when the list is empty (an error too).
pub(crate) fn codes(
    d: &mut Diags<'_>,
    label: &str,
    key: &str,
    field: &Spanned<Items>,
    max: u32,
    lookup: impl Fn(&str) -> Option<Vec<u32>>,
    known: &str,
) -> Option<Ranges> {
    let mut out = Vec::new();
    for (item, span) in items(field) {
        let values = match item {
            Scalar::Int(n) => u32::try_from(*n)
                .ok()
                .filter(|n| *n <= max)
                .map(|n| vec![n]),
            Scalar::Str(s) => lookup(&s.to_ascii_lowercase()).or_else(|| {
                parse_range(s)
                    .filter(|&(lo, hi)| lo <= hi && hi <= max)
                    .map(|(lo, hi)| vec![lo, hi])
                    .map(|v| (v[0]..=v[1]).collect())
            }),
        };
        match values {
            Some(v) => out.extend(v),
            None => d.error(
                &span,
                format!("{label}: unknown {key} {item} (names are: {known}; or a number 0-{max})"),
            ),
        }
    }
    if field.get_ref().0.is_empty() {
        d.error(
            &field.span(),
            format!("{label}: `{key}` is empty (leave it out to allow every {key})"),
        );
        return None;
    }
    Some(Ranges::new(out.into_iter().map(|v| (v, v)).collect()))
}

/// Reads a list of numbers and ranges ("0-999", 1, "0x10-0x1f") within `lo..=hi`.
pub(crate) fn ranges(
    d: &mut Diags<'_>,
    label: &str,
    key: &str,
    field: &Spanned<Items>,
    lo: u32,
    hi: u32,
) -> Option<Ranges> {
    let mut out = Vec::new();
    for (item, span) in items(field) {
        let range = match item {
            Scalar::Int(n) => u32::try_from(*n).ok().map(|n| (n, n)),
            Scalar::Str(s) => parse_range(s),
        };
        match range {
            Some((a, b)) if a > b => {
                d.error(&span, format!("{label}: {key} range {item} is reversed"))
            }
            Some((a, b)) if a < lo || b > hi => d.error(
                &span,
                format!("{label}: {key} {item} is out of range ({lo}-{hi})"),
            ),
            Some(r) => out.push(r),
            None => d.error(
                &span,
                format!("{label}: {item} is not a number or a range such as \"0-999\" in `{key}`"),
            ),
        }
    }
    if field.get_ref().0.is_empty() {
        d.error(
            &field.span(),
            format!("{label}: `{key}` is empty (leave it out to allow every {key})"),
        );
        return None;
    }
    Some(Ranges::new(out))
}

/// Sets of functions by intent, the same four words for every protocol; what each one
/// holds is the protocol's own (its module and its page in `config/protocols/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Looking: reads, discovery, subscriptions.
    ReadOnly,
    /// Operating: read-only and writes, commands, set-points.
    ReadWrite,
    /// Engineering: read-write and downloads, restarts, configuration, firmware.
    Programming,
    /// Every code of the protocol (well-formed).
    All,
}

impl Preset {
    pub const NAMES: &'static [(&'static str, Preset)] = &[
        ("read-only", Preset::ReadOnly),
        ("read-write", Preset::ReadWrite),
        ("programming", Preset::Programming),
        ("all", Preset::All),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::ReadOnly => "read-only",
            Preset::ReadWrite => "read-write",
            Preset::Programming => "programming",
            Preset::All => "all",
        }
    }
}

/// Reads a `preset` value.
pub(crate) fn preset(
    d: &mut Diags<'_>,
    label: &str,
    field: &Spanned<String>,
    presets: &[(&str, Preset)],
) -> Option<Preset> {
    let name = field.get_ref().to_ascii_lowercase();
    let found = presets.iter().find(|(n, _)| *n == name).map(|&(_, p)| p);
    if found.is_none() {
        let known: Vec<&str> = presets.iter().map(|(n, _)| *n).collect();
        d.error(
            &field.span(),
            format!(
                "{label}: unknown preset {:?} (presets are: {})",
                field.get_ref(),
                known.join(", ")
            ),
        );
    }
    found
}

/// The names of a code table, for error messages.
pub(crate) fn known_names(names: &[(&str, impl Copy)]) -> String {
    let v: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
    v.join(", ")
}

/// Decimal or `0x` hexadecimal.
fn parse_number(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

/// `"7"` or `"100-199"`.
pub(crate) fn parse_range(s: &str) -> Option<(u32, u32)> {
    match s.split_once('-') {
        Some((lo, hi)) => Some((parse_number(lo)?, parse_number(hi)?)),
        None => parse_number(s).map(|n| (n, n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_answer() {
        let r = Ranges::new(vec![(10, 20), (0, 4), (5, 5), (21, 30), (100, 100)]);
        assert_eq!(r.ranges(), &[(0, 5), (10, 30), (100, 100)]);
        assert!(r.contains(5) && r.contains(30) && !r.contains(6) && !r.contains(101));
        assert!(r.contains_range(10, 30) && !r.contains_range(4, 10));
        assert!(r.covers(&Ranges::new(vec![(1, 2), (12, 14)])));
        assert!(!r.covers(&Ranges::new(vec![(1, 7)])));
        assert_eq!(r.to_string(), "0-5,10-30,100");
        assert!(Ranges::all(255).is_all(255));
        assert_eq!(parse_range("0x10-0x1f"), Some((16, 31)));
        assert_eq!(parse_range("a-b"), None);
    }
}
