//! `[rule.enip]`: encapsulation commands, CIP services (with presets), classes,
//! instances and Logix tag names; `[rule.enip-io]`: implicit I/O packet sizes.
//!
//! ```toml
//! [rule.enip]
//! preset = "read-only"                     # read-only | read-write | programming | all
//! commands = ["list-identity"]             # encapsulation commands, added to the preset
//! services = ["write-tag"]                 # CIP services, added to the preset
//! classes = ["identity", "symbol", 0x6c]   # objects a request may address
//! instances = ["1-10"]                     # instance and connection point numbers
//! tags = ["HMI_*", "Program:Main.Speed"]   # tag name patterns (`*`, `?`), any case
//!
//! [rule.enip-io]
//! preset = "read-only"                     # heartbeats only (at most 2 bytes of data)
//! sizes = [36]                             # I/O data sizes in bytes, added to the preset
//! ```
//!
//! Every CIP request a message carries is judged: the requests of a Multiple Service
//! Packet and the one inside an Unconnected Send each on their own, all of which must be
//! inside the rule. Object-specific service names (0x4B–0x63) are resolved by the class
//! the request addresses: `forward-close` is 0x4E on the Connection Manager,
//! `read-modify-write-tag` is 0x4E on a tag; a number in `services` means that code on
//! every class.

use std::fmt;

use gk_inspect::enip::cip::{self, Kind, Request, Scope, Segment, OBJECT_SPECIFIC};
use gk_inspect::enip::{Command, IoMessage, Message};
use serde::Deserialize;
use serde_spanned::Spanned;

use super::{codes, fmt_codes, preset, ranges, Preset, Ranges, Violation};
use crate::diag::Diags;
use crate::raw::{items, Items, Scalar};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Raw {
    pub preset: Option<Spanned<String>>,
    pub commands: Option<Spanned<Items>>,
    pub services: Option<Spanned<Items>>,
    pub classes: Option<Spanned<Items>>,
    pub instances: Option<Spanned<Items>>,
    pub tags: Option<Spanned<Items>>,
}

/// The encapsulation commands of the read-only, read-write and programming presets.
const COMMANDS: &[u16] = &[
    0x0000, 0x0004, 0x0063, 0x0064, 0x0065, 0x0066, 0x006f, 0x0070,
];

const COMMON_READS: &[u8] = &[0x01, 0x03, 0x0a, 0x0e, 0x11, 0x17, 0x18];
const COMMON_WRITES: &[u8] = &[0x02, 0x04, 0x0d, 0x10, 0x19, 0x1a, 0x1b, 0x1c];
const COMMON_PROGRAMMING: &[u8] = &[0x05, 0x06, 0x07, 0x08, 0x09, 0x15, 0x16];

const SCOPED_READS: &[(Scope, u8)] = &[
    (Scope::ConnectionManager, 0x4e), // forward-close
    (Scope::ConnectionManager, 0x52), // unconnected-send
    (Scope::ConnectionManager, 0x56), // get-connection-data
    (Scope::ConnectionManager, 0x57), // search-connection-data
    (Scope::ConnectionManager, 0x5a), // get-connection-owner
    (Scope::Tag, 0x4c),               // read-tag
    (Scope::Tag, 0x52),               // read-tag-fragmented
    (Scope::Tag, 0x55),               // get-instance-attribute-list
    (Scope::File, 0x4b),              // initiate-upload
    (Scope::File, 0x4d),              // initiate-partial-read
    (Scope::File, 0x4f),              // upload-transfer
];
const SCOPED_WRITES: &[(Scope, u8)] = &[
    (Scope::ConnectionManager, 0x54), // forward-open
    (Scope::ConnectionManager, 0x5b), // large-forward-open
    (Scope::Tag, 0x4d),               // write-tag
    (Scope::Tag, 0x4e),               // read-modify-write-tag
    (Scope::Tag, 0x53),               // write-tag-fragmented
];

/// Service keys: a code (0-127) on every class; `scope_key` for a name that holds only
/// on its class; `EXPLICIT` + code for Forward Opens of class 3 connections only.
const MAX_SERVICE: u32 = 0x7f;
const EXPLICIT: u32 = 0x500;
const MESSAGE_ROUTER: u32 = 0x02;

fn scope_key(scope: Scope, code: u8) -> u32 {
    let i = Scope::ALL.iter().position(|s| *s == scope).unwrap_or(0) as u32;
    0x100 * (i + 1) + u32::from(code)
}

fn key_name(key: u32) -> String {
    if key <= MAX_SERVICE {
        return match cip::service_name(key as u8, None) {
            Some(n) => n.to_string(),
            None => format!("{key:#04x}"),
        };
    }
    if (EXPLICIT..EXPLICIT + 0x100).contains(&key) {
        let name = cip::service_name((key - EXPLICIT) as u8, Some(Scope::ConnectionManager));
        return format!("{}(class 3)", name.unwrap_or("?"));
    }
    let i = (key / 0x100) as usize;
    let code = (key % 0x100) as u8;
    match Scope::ALL.get(i.wrapping_sub(1)) {
        Some(&s) => cip::service_name(code, Some(s)).map_or(format!("{key:#x}"), str::to_string),
        None => format!("{key:#x}"),
    }
}

/// Adds the keys a set implies, so that `covers` compares like with like: a code on
/// every class implies its name on each class, and a Forward Open on the Connection
/// Manager implies the class 3 one.
fn with_implied(set: Ranges) -> Ranges {
    let mut extra = Vec::new();
    for code in OBJECT_SPECIFIC {
        let any = set.contains(code.into());
        for scope in Scope::ALL {
            let key = scope_key(scope, code);
            if any {
                extra.push((key, key));
            }
        }
        let fo = any || set.contains(scope_key(Scope::ConnectionManager, code));
        if fo && (code == 0x54 || code == 0x5b) {
            extra.push((EXPLICIT + u32::from(code), EXPLICIT + u32::from(code)));
        }
    }
    set.union(&Ranges::new(extra))
}

/// Whether `key` is in `set` only because another key implies it (see `with_implied`).
fn implied(set: &Ranges, key: u32) -> bool {
    if key >= EXPLICIT {
        let code = key - EXPLICIT;
        let cm = scope_key(Scope::ConnectionManager, code as u8);
        return set.contains(code) || set.contains(cm);
    }
    key > MAX_SERVICE && set.contains(key % 0x100)
}

/// What each preset holds here:
/// - `read-only`: Discovery, sessions, explicit messaging; reads of attributes, members, tags and files; class 3 connections (Forward Open of transport class 3, Forward Close) and Unconnected Send (whose embedded request is judged too).
/// - `read-write`: Read-only, writes of attributes, members and tags, and Forward Open of every transport class (I/O connections: their data is judged by `[rule.enip-io]`).
/// - `programming`: Read-write, reset, start, stop, create, delete, save, restore, and every object-specific service (0x4B–0x63) on every class: file downloads, PCCC, vendor programming services.
/// - `all`: Every command and every service code.
trait EnipSets {
    fn commands(self) -> Ranges;
    fn services(self) -> Ranges;
    fn service_keys(self) -> Ranges;
}

impl EnipSets for Preset {
    fn commands(self) -> Ranges {
        if self == Preset::All {
            return Ranges::all(0xffff);
        }
        Ranges::new(COMMANDS.iter().map(|&c| (c.into(), c.into())).collect())
    }

    fn services(self) -> Ranges {
        with_implied(self.service_keys())
    }

    fn service_keys(self) -> Ranges {
        if self == Preset::All {
            return Ranges::all(MAX_SERVICE);
        }
        let one = |c: u8| (u32::from(c), u32::from(c));
        let scoped = |&(s, c): &(Scope, u8)| (scope_key(s, c), scope_key(s, c));
        let mut v: Vec<(u32, u32)> = COMMON_READS.iter().map(|&c| one(c)).collect();
        v.extend(SCOPED_READS.iter().map(scoped));
        if self == Preset::ReadOnly {
            v.extend([
                (EXPLICIT + 0x54, EXPLICIT + 0x54),
                (EXPLICIT + 0x5b, EXPLICIT + 0x5b),
            ]);
            return Ranges::new(v);
        }
        v.extend(COMMON_WRITES.iter().map(|&c| one(c)));
        v.extend(SCOPED_WRITES.iter().map(scoped));
        if self == Preset::Programming {
            v.extend(COMMON_PROGRAMMING.iter().map(|&c| one(c)));
            v.push((
                u32::from(*OBJECT_SPECIFIC.start()),
                u32::from(*OBJECT_SPECIFIC.end()),
            ));
        }
        Ranges::new(v)
    }
}

/// A compiled `[rule.enip]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnipRule {
    pub preset: Option<Preset>,
    /// Encapsulation commands (0-65535).
    pub commands: Ranges,
    /// Service keys (see `scope_key`).
    pub services: Ranges,
    /// Classes (0-65535) a request may address.
    pub classes: Ranges,
    /// Instance and connection point numbers a request may name.
    pub instances: Ranges,
    /// Tag name patterns, lower case; `None`: every tag.
    pub tags: Option<Box<[Box<str>]>>,
}

fn lookup_service(name: &str) -> Option<Vec<u32>> {
    if let Some(s) = cip::Service::from_name(name) {
        return Some(vec![u32::from(u8::from(s))]);
    }
    Scope::ALL.iter().find_map(|&scope| {
        scope
            .names()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, code)| vec![scope_key(scope, code)])
    })
}

fn service_names() -> String {
    let mut v: Vec<&str> = cip::Service::NAMES.iter().map(|(n, _)| *n).collect();
    for scope in Scope::ALL {
        v.extend(scope.names().iter().map(|(n, _)| *n));
    }
    v.join(", ")
}

fn tag_patterns(d: &mut Diags<'_>, label: &str, field: &Spanned<Items>) -> Option<Box<[Box<str>]>> {
    let mut out = Vec::new();
    for (item, span) in items(field) {
        match item {
            Scalar::Str(s)
                if !s.is_empty()
                    && s.bytes().all(|c| (0x21..0x7f).contains(&c) && c != b'[' && c != b']') =>
            {
                out.push(s.to_ascii_lowercase().into_boxed_str())
            }
            Scalar::Str(s) if s.contains('[') || s.contains(']') => d.error(
                &span,
                format!("{label}: tag pattern {s:?} has array indices (patterns match names without them: \"Tank.Level\" takes Tank[3].Level)"),
            ),
            _ => d.error(
                &span,
                format!("{label}: tag pattern {item} is not a name of printable characters (use `*` and `?` as wildcards)"),
            ),
        }
    }
    if field.get_ref().0.is_empty() {
        d.error(
            &field.span(),
            format!("{label}: `tags` is empty (leave it out to allow every tag)"),
        );
        return None;
    }
    Some(out.into_boxed_slice())
}

pub(crate) fn compile(d: &mut Diags<'_>, label: &str, raw: Option<&Spanned<Raw>>) -> EnipRule {
    let mut rule = EnipRule {
        preset: None,
        commands: Preset::All.commands(),
        services: Preset::All.services(),
        classes: Ranges::all(0xffff),
        instances: Ranges::all(u32::MAX),
        tags: None,
    };
    let Some(raw) = raw.map(Spanned::get_ref) else {
        return rule;
    };
    let preset = raw
        .preset
        .as_ref()
        .and_then(|p| preset(d, label, p, Preset::NAMES));
    rule.preset = preset;
    let commands = raw.commands.as_ref().and_then(|f| {
        let lookup = |n: &str| Command::from_name(n).map(|c| vec![u32::from(u16::from(c))]);
        let known = super::known_names(Command::NAMES);
        codes(d, label, "command", f, 0xffff, lookup, &known)
    });
    let services = raw.services.as_ref().and_then(|f| {
        codes(
            d,
            label,
            "service",
            f,
            MAX_SERVICE,
            lookup_service,
            &service_names(),
        )
    });
    let merge = |preset: Option<Ranges>, listed: Option<Ranges>, all: Ranges| match (preset, listed)
    {
        (Some(p), Some(l)) => p.union(&l),
        (Some(p), None) => p,
        (None, Some(l)) => l,
        (None, None) => all,
    };
    rule.commands = merge(preset.map(Preset::commands), commands, rule.commands);
    rule.services = with_implied(merge(preset.map(Preset::services), services, rule.services));
    if let Some(f) = &raw.classes {
        let lookup = |n: &str| cip::Class::from_name(n).map(|c| vec![u32::from(u16::from(c))]);
        let known = super::known_names(cip::Class::NAMES);
        rule.classes = codes(d, label, "class", f, 0xffff, lookup, &known).unwrap_or(rule.classes);
    }
    if let Some(f) = &raw.instances {
        rule.instances = ranges(d, label, "instance", f, 0, u32::MAX).unwrap_or(rule.instances);
    }
    if let Some(f) = &raw.tags {
        rule.tags = tag_patterns(d, label, f);
    }
    rule
}

/// `*` any run of characters, `?` any one; ASCII case-insensitive (`pattern` is lower
/// case already).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let c = name[n].to_ascii_lowercase();
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&q) if q == b'?' || q == c => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

impl EnipRule {
    /// Whether the rule restricts nothing a CIP request carries.
    fn takes_every_request(&self) -> bool {
        self.services.is_all(MAX_SERVICE)
            && self.classes.is_all(0xffff)
            && self.instances.is_all(u32::MAX)
            && self.tags.is_none()
    }

    /// Whether a request is inside the rule: its command, then every CIP request it
    /// carries, depth first, each checked in the order service, class, instance, tag.
    #[inline]
    pub fn check(&self, msg: &Message<'_>) -> Result<(), Violation> {
        if !self.commands.contains(msg.command_code().into()) {
            return Err(Violation::Function);
        }
        let Some(req) = msg.cip_request() else {
            return Ok(());
        };
        // Embedded requests past the inspection buffer cannot be vouched for.
        if req.has_unseen() && !self.takes_every_request() {
            return Err(Violation::Function);
        }
        req.for_each(&mut |r| self.check_request(r))
    }

    fn service_allowed(&self, r: &Request<'_>) -> bool {
        let code = r.service();
        if self.services.contains(code.into()) {
            return true;
        }
        if !OBJECT_SPECIFIC.contains(&code) {
            return false;
        }
        if let Some(scope) = r.target().scope() {
            if self.services.contains(scope_key(scope, code)) {
                return true;
            }
        }
        r.forward_open().is_some_and(|f| f.transport_class() == 3)
            && self.services.contains(EXPLICIT + u32::from(code))
    }

    fn check_request(&self, r: &Request<'_>) -> Result<(), Violation> {
        if !self.service_allowed(r) {
            return Err(Violation::Function);
        }
        // An Unconnected Send only carries a request (judged next) to the route's end.
        if r.kind() == Kind::UnconnectedSend {
            return Ok(());
        }
        // Forward Open / Close: the connection's application object.
        let object = r.object_path();
        let t = object.target();
        let class = t.object();
        // The message router only routes (multiple service packets, class 3
        // connections): it is not an object of `classes` or `instances`.
        if class == Some(MESSAGE_ROUTER) {
            return self.check_tags(r, &object, &t);
        }
        match class {
            Some(c) if self.classes.contains(c) => {}
            _ if self.classes.is_all(0xffff) => {}
            _ => return Err(Violation::Object),
        }
        if !self.instances.is_all(u32::MAX) {
            for seg in object.segments() {
                if let Segment::Logical {
                    kind: cip::Logical::Instance | cip::Logical::ConnectionPoint,
                    value,
                } = seg
                {
                    if !self.instances.contains(value) {
                        return Err(Violation::Address);
                    }
                }
            }
        }
        self.check_tags(r, &object, &t)
    }

    fn check_tags(
        &self,
        r: &Request<'_>,
        object: &cip::Path<'_>,
        t: &cip::Target,
    ) -> Result<(), Violation> {
        let Some(patterns) = &self.tags else {
            return Ok(());
        };
        // Listing the symbols (names and types, not values) is not a tag access.
        let listing = r.service() == 0x55 && t.scope() == Some(Scope::Tag);
        if listing {
            return Ok(());
        }
        // A symbol named by instance number cannot be matched against names.
        if t.class == Some(cip::SYMBOL_CLASS) && t.instance.is_some() {
            return Err(Violation::Address);
        }
        if !t.symbolic {
            return Ok(());
        }
        let mut buf = [0u8; 512];
        let (n, whole) = object.tag(&mut buf, false);
        if whole && patterns.iter().any(|p| glob(p.as_bytes(), &buf[..n])) {
            Ok(())
        } else {
            Err(Violation::Address)
        }
    }

    pub fn covers(&self, other: &EnipRule) -> bool {
        let tags = match (&self.tags, &other.tags) {
            (None, _) => true,
            (Some(a), _) if a.iter().any(|p| p.bytes().all(|c| c == b'*')) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => b.iter().all(|p| a.contains(p)),
        };
        tags && self.commands.covers(&other.commands)
            && self.services.covers(&other.services)
            && self.classes.covers(&other.classes)
            && self.instances.covers(&other.instances)
    }
}

impl fmt::Display for EnipRule {
    /// `preset read-only; classes identity,symbol; tags hmi_*`, leaving out what is
    /// unrestricted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let preset_sets = self.preset.map(|p| (p.commands(), p.services()));
        match (self.preset, preset_sets) {
            (Some(p), Some((c, s))) if c == self.commands && s == self.services => {
                parts.push(format!("preset {}", p.name()))
            }
            _ => {
                if !self.commands.is_all(0xffff) {
                    let names: Vec<String> = self
                        .commands
                        .values()
                        .map(|c| Command::from(c as u16).to_string())
                        .collect();
                    parts.push(format!("commands {}", names.join(",")));
                }
                if !self.services.is_all(MAX_SERVICE) {
                    let names: Vec<String> = self
                        .services
                        .values()
                        .filter(|&k| !implied(&self.services, k))
                        .map(key_name)
                        .collect();
                    parts.push(format!("services {}", names.join(",")));
                }
            }
        }
        if !self.classes.is_all(0xffff) {
            struct Classes<'a>(&'a Ranges);
            impl fmt::Display for Classes<'_> {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    fmt_codes(f, self.0, |c| cip::Class::from(c as u16).name())
                }
            }
            let count: u64 = self
                .classes
                .ranges()
                .iter()
                .map(|&(lo, hi)| u64::from(hi - lo) + 1)
                .sum();
            if count <= 64 {
                parts.push(format!("classes {}", Classes(&self.classes)));
            } else {
                parts.push(format!("classes {}", self.classes));
            }
        }
        if !self.instances.is_all(u32::MAX) {
            parts.push(format!("instances {}", self.instances));
        }
        if let Some(tags) = &self.tags {
            let v: Vec<&str> = tags.iter().map(|t| &**t).collect();
            parts.push(format!("tags {}", v.join(",")));
        }
        if parts.is_empty() {
            f.write_str("every message")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawIo {
    pub preset: Option<Spanned<String>>,
    pub sizes: Option<Spanned<Items>>,
}

/// The largest heartbeat: a class 1 sequence count and no data.
const HEARTBEAT: u32 = 2;

/// A compiled `[rule.enip-io]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnipIoRule {
    pub preset: Option<Preset>,
    /// Sizes in bytes of the I/O data (the connected data item).
    pub sizes: Ranges,
}

fn io_sizes(p: Preset) -> Ranges {
    match p {
        Preset::ReadOnly => Ranges::new(vec![(0, HEARTBEAT)]),
        _ => Ranges::all(0xffff),
    }
}

pub(crate) fn compile_io(
    d: &mut Diags<'_>,
    label: &str,
    raw: Option<&Spanned<RawIo>>,
) -> EnipIoRule {
    let mut rule = EnipIoRule {
        preset: None,
        sizes: Ranges::all(0xffff),
    };
    let Some(raw) = raw.map(Spanned::get_ref) else {
        return rule;
    };
    rule.preset = raw
        .preset
        .as_ref()
        .and_then(|p| preset(d, label, p, Preset::NAMES));
    let sizes = raw
        .sizes
        .as_ref()
        .and_then(|f| ranges(d, label, "size", f, 0, 0xffff));
    rule.sizes = match (rule.preset.map(io_sizes), sizes) {
        (Some(p), Some(s)) => p.union(&s),
        (Some(p), None) => p,
        (None, Some(s)) => s,
        (None, None) => rule.sizes,
    };
    rule
}

impl EnipIoRule {
    /// Whether the packet's I/O data has a size the rule allows (else `object`: the
    /// size of an I/O image identifies the assembly it carries).
    #[inline]
    pub fn check(&self, msg: &IoMessage<'_>) -> Result<(), Violation> {
        if self.sizes.contains(msg.data().len() as u32) {
            Ok(())
        } else {
            Err(Violation::Object)
        }
    }

    pub fn covers(&self, other: &EnipIoRule) -> bool {
        self.sizes.covers(&other.sizes)
    }
}

impl fmt::Display for EnipIoRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.preset {
            Some(p) if io_sizes(p) == self.sizes => write!(f, "preset {}", p.name()),
            _ if self.sizes.is_all(0xffff) => f.write_str("every packet"),
            _ => write!(f, "sizes {}", self.sizes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gk_inspect::enip::repr::{self, ForwardOpenRepr, ParamsRepr, RequestRepr, SegmentRepr};
    use gk_inspect::enip::{parse, parse_io};
    use gk_inspect::Dir;

    /// The compiled section of a one-rule policy, or its diagnostics.
    fn section(proto: &str, section: &str) -> Result<super::super::AppRule, String> {
        let text = format!(
            "schema = 1\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n\
             [[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\nproto = \"{proto}\"\naction = \"allow\"\n[rule.{proto}]\n{section}\n"
        );
        match crate::Policy::from_toml(&text, "t.toml") {
            Ok((p, w)) if w.is_empty() => Ok(p.rules()[0].app.clone().unwrap()),
            Ok((_, w)) => Err(format!("{w:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    fn rule(text: &str) -> Result<EnipRule, String> {
        match section("enip", text)? {
            super::super::AppRule::Enip(r) => Ok(r),
            other => panic!("{other:?}"),
        }
    }

    fn request(service: u8, path: &[SegmentRepr<'_>], data: &[u8]) -> Vec<u8> {
        let mut out = [0u8; 1024];
        let n = RequestRepr {
            service,
            path,
            data,
        }
        .emit(&mut out)
        .unwrap();
        out[..n].to_vec()
    }

    fn rr(cip: &[u8]) -> Vec<u8> {
        let mut out = [0u8; 2048];
        let n = repr::emit_send_rr_data(&mut out, 1, cip).unwrap();
        out[..n].to_vec()
    }

    fn routed(cip: &[u8]) -> Vec<u8> {
        let mut out = [0u8; 2048];
        let route = [SegmentRepr::Port {
            port: 1,
            link: &[0],
        }];
        let n = repr::emit_unconnected_send(&mut out, cip, &route).unwrap();
        rr(&out[..n])
    }

    fn check(rule: &EnipRule, bytes: &[u8]) -> Result<(), Violation> {
        let m = parse(bytes, bytes.len(), Dir::Request).unwrap();
        assert!(m.is_request());
        rule.check(&m)
    }

    fn read_tag(name: &str) -> Vec<u8> {
        request(0x4c, &[SegmentRepr::Symbol(name.as_bytes())], &[1, 0])
    }

    fn write_tag(name: &str) -> Vec<u8> {
        request(
            0x4d,
            &[SegmentRepr::Symbol(name.as_bytes())],
            &[0xc3, 0, 1, 0, 7, 0],
        )
    }

    fn get_single(class: u32, instance: u32, attribute: u32) -> Vec<u8> {
        let path = [
            SegmentRepr::Class(class),
            SegmentRepr::Instance(instance),
            SegmentRepr::Attribute(attribute),
        ];
        request(0x0e, &path, &[])
    }

    fn forward_open(transport: u8, path: &[SegmentRepr<'_>]) -> Vec<u8> {
        let mut out = [0u8; 512];
        let p = ParamsRepr {
            rpi: 10_000,
            size: 500,
            kind: 2,
        };
        let n = ForwardOpenRepr {
            large: false,
            o_t_connection: 0,
            t_o_connection: 1,
            serial: 1,
            vendor: 1,
            originator_serial: 1,
            o_t: p,
            t_o: p,
            transport,
            path,
        }
        .emit(&mut out)
        .unwrap();
        rr(&out[..n])
    }

    #[test]
    fn presets_nest() {
        let sets: Vec<(Ranges, Ranges)> = Preset::NAMES
            .iter()
            .map(|(_, p)| (p.commands(), p.services()))
            .collect();
        for w in sets.windows(2) {
            assert!(w[1].0.covers(&w[0].0) && w[1].1.covers(&w[0].1));
        }
    }

    #[test]
    fn read_only_reads_and_refuses_writes() {
        let ro = rule("preset = \"read-only\"").unwrap();
        assert_eq!(ro.to_string(), "preset read-only");
        assert_eq!(check(&ro, &rr(&get_single(1, 1, 7))), Ok(()));
        assert_eq!(check(&ro, &routed(&read_tag("Setpoint"))), Ok(()));
        assert_eq!(check(&ro, &rr(&read_tag("Setpoint"))), Ok(()));
        assert_eq!(
            check(&ro, &routed(&write_tag("Setpoint"))),
            Err(Violation::Function)
        );
        let set = request(
            0x10,
            &[
                SegmentRepr::Class(0xf5),
                SegmentRepr::Instance(1),
                SegmentRepr::Attribute(5),
            ],
            &[1, 2, 3, 4],
        );
        assert_eq!(check(&ro, &rr(&set)), Err(Violation::Function));
        let stop = request(
            0x07,
            &[SegmentRepr::Class(0x8e), SegmentRepr::Instance(1)],
            &[],
        );
        let rw = rule("preset = \"read-write\"").unwrap();
        assert_eq!(check(&rw, &routed(&write_tag("Setpoint"))), Ok(()));
        assert_eq!(check(&rw, &rr(&stop)), Err(Violation::Function));
        let pr = rule("preset = \"programming\"").unwrap();
        assert_eq!(check(&pr, &rr(&stop)), Ok(()));
        // A vendor service (0x4B-0x63) on a vendor class: programming.
        let vendor = request(
            0x55,
            &[SegmentRepr::Class(0x8e), SegmentRepr::Instance(1)],
            &[],
        );
        assert_eq!(check(&rw, &rr(&vendor)), Err(Violation::Function));
        assert_eq!(check(&pr, &rr(&vendor)), Ok(()));
    }

    #[test]
    fn every_request_of_a_multiple_service_packet_is_judged() {
        let ro = rule("preset = \"read-only\"").unwrap();
        let (a, b) = (read_tag("A"), write_tag("B"));
        let mut out = [0u8; 512];
        let n = repr::emit_multiple(&mut out, &[&a, &a]).unwrap();
        assert_eq!(check(&ro, &routed(&out[..n])), Ok(()));
        let n = repr::emit_multiple(&mut out, &[&a, &b]).unwrap();
        assert_eq!(check(&ro, &routed(&out[..n])), Err(Violation::Function));
        // Cut after the first request: the unseen one cannot be vouched for.
        let msg = rr(&out[..n]);
        let seen = msg.len() - 4;
        let m = parse(&msg[..seen], msg.len(), Dir::Request).unwrap();
        assert_eq!(ro.check(&m), Err(Violation::Function));
        let every = rule("").unwrap();
        assert_eq!(every.check(&m), Ok(()));
    }

    #[test]
    fn names_of_colliding_codes_resolve_by_class() {
        // 0x4E: forward-close on the connection manager, read-modify-write on a tag.
        let r = rule("services = [\"forward-close\"]").unwrap();
        let mut out = [0u8; 128];
        let mr = [
            SegmentRepr::Port {
                port: 1,
                link: &[0],
            },
            SegmentRepr::Class(2),
            SegmentRepr::Instance(1),
        ];
        let n = repr::emit_forward_close(&mut out, 1, 1, 1, &mr).unwrap();
        assert_eq!(check(&r, &rr(&out[..n])), Ok(()));
        let rmw = request(
            0x4e,
            &[SegmentRepr::Symbol(b"T")],
            &[2, 0, 1, 0, 0xfe, 0xff],
        );
        assert_eq!(check(&r, &rr(&rmw)), Err(Violation::Function));
        // A number means that code on every class.
        let r = rule("services = [0x4e]").unwrap();
        assert_eq!(check(&r, &rr(&rmw)), Ok(()));
        assert_eq!(check(&r, &rr(&out[..n])), Ok(()));
        assert_eq!(r.to_string(), "services 0x4e");
        let r =
            rule("services = [\"read-tag\", \"get-attribute-single\", \"forward-close\"]").unwrap();
        assert_eq!(
            r.to_string(),
            "services get-attribute-single,forward-close,read-tag"
        );
    }

    #[test]
    fn read_only_opens_class_3_connections_only() {
        let ro = rule("preset = \"read-only\"").unwrap();
        let rw = rule("preset = \"read-write\"").unwrap();
        let mr = [
            SegmentRepr::Port {
                port: 1,
                link: &[0],
            },
            SegmentRepr::Class(2),
            SegmentRepr::Instance(1),
        ];
        let io = [
            SegmentRepr::Class(4),
            SegmentRepr::Instance(1),
            SegmentRepr::ConnectionPoint(100),
            SegmentRepr::ConnectionPoint(150),
        ];
        assert_eq!(check(&ro, &forward_open(0xa3, &mr)), Ok(()));
        assert_eq!(
            check(&ro, &forward_open(0x01, &io)),
            Err(Violation::Function)
        );
        assert_eq!(check(&rw, &forward_open(0x01, &io)), Ok(()));
        // The connection's object is judged: assembly instances.
        let r = rule("preset = \"read-write\"\nclasses = [\"identity\"]").unwrap();
        assert_eq!(
            check(&r, &forward_open(0xa3, &mr)),
            Ok(()),
            "the message router always passes"
        );
        assert_eq!(check(&r, &forward_open(0x01, &io)), Err(Violation::Object));
        let r =
            rule("preset = \"read-write\"\nclasses = [\"assembly\"]\ninstances = [1, \"100-149\"]")
                .unwrap();
        assert_eq!(check(&r, &forward_open(0x01, &io)), Err(Violation::Address));
        let r =
            rule("preset = \"read-write\"\nclasses = [\"assembly\"]\ninstances = [1, \"100-150\"]")
                .unwrap();
        assert_eq!(check(&r, &forward_open(0x01, &io)), Ok(()));
    }

    #[test]
    fn classes_instances_and_the_routed_request() {
        let r = rule("preset = \"read-only\"\nclasses = [\"identity\", \"tcp-ip-interface\"]\ninstances = [1]").unwrap();
        assert_eq!(
            r.to_string(),
            "preset read-only; classes identity,tcp-ip-interface; instances 1"
        );
        assert_eq!(check(&r, &routed(&get_single(1, 1, 7))), Ok(()));
        assert_eq!(check(&r, &rr(&get_single(0xf5, 1, 5))), Ok(()));
        assert_eq!(
            check(&r, &routed(&get_single(4, 1, 3))),
            Err(Violation::Object)
        );
        assert_eq!(
            check(&r, &rr(&get_single(1, 2, 7))),
            Err(Violation::Address)
        );
        // A symbolic path addresses the symbol class.
        assert_eq!(check(&r, &rr(&read_tag("A"))), Err(Violation::Object));
        let r = rule("classes = [\"symbol\"]").unwrap();
        assert_eq!(check(&r, &rr(&read_tag("A"))), Ok(()));
    }

    #[test]
    fn tags_match_names_without_indices() {
        let r = rule(
            "preset = \"read-write\"\ntags = [\"HMI_*\", \"Program:Main.Speed\", \"Tank?.Level\"]",
        )
        .unwrap();
        assert_eq!(check(&r, &routed(&write_tag("hmi_setpoint"))), Ok(()));
        assert_eq!(
            check(&r, &routed(&write_tag("Secret"))),
            Err(Violation::Address)
        );
        let speed = request(
            0x4c,
            &[
                SegmentRepr::Symbol(b"Program:Main"),
                SegmentRepr::Symbol(b"SPEED"),
            ],
            &[1, 0],
        );
        assert_eq!(check(&r, &rr(&speed)), Ok(()));
        let level = request(
            0x4c,
            &[
                SegmentRepr::Symbol(b"Tank3"),
                SegmentRepr::Member(4),
                SegmentRepr::Symbol(b"Level"),
            ],
            &[1, 0],
        );
        assert_eq!(check(&r, &rr(&level)), Ok(()));
        // By instance number: refused, except the listing of symbols.
        let by_instance = request(
            0x4c,
            &[SegmentRepr::Class(0x6b), SegmentRepr::Instance(5)],
            &[1, 0],
        );
        assert_eq!(check(&r, &rr(&by_instance)), Err(Violation::Address));
        let list = request(
            0x55,
            &[SegmentRepr::Class(0x6b), SegmentRepr::Instance(0)],
            &[2, 0, 1, 0, 2, 0],
        );
        assert_eq!(check(&r, &rr(&list)), Ok(()));
        // Requests without symbols are not limited by `tags`.
        assert_eq!(check(&r, &rr(&get_single(1, 1, 7))), Ok(()));
        assert!(glob(b"a*b*c", b"AxxBxxC") && !glob(b"a*b", b"ab c") && glob(b"*", b""));
    }

    #[test]
    fn commands_and_discovery() {
        let r = rule("commands = [\"list-identity\", \"register-session\"]").unwrap();
        let mut out = [0u8; 64];
        let n = repr::emit_encapsulation(&mut out, Command::ListIdentity, 0, 0, &[]).unwrap();
        assert_eq!(check(&r, &out[..n]), Ok(()));
        assert_eq!(
            check(&r, &rr(&get_single(1, 1, 7))),
            Err(Violation::Function)
        );
        let n = repr::emit_encapsulation(&mut out, Command::from(0x0001), 0, 0, &[]).unwrap();
        assert_eq!(check(&r, &out[..n]), Err(Violation::Function));
        let all = rule("preset = \"all\"").unwrap();
        assert_eq!(check(&all, &out[..n]), Ok(()));
    }

    #[test]
    fn errors_name_the_place() {
        let e = rule("services = [\"read-tags\"]").unwrap_err();
        assert!(
            e.contains("t.toml:12:") && e.contains("unknown service \"read-tags\""),
            "{e}"
        );
        let e = rule("classes = [\"identiti\"]").unwrap_err();
        assert!(e.contains("unknown class"), "{e}");
        let e = rule("tags = [\"Tank[1]\"]").unwrap_err();
        assert!(e.contains("array indices"), "{e}");
        let e = rule("preset = \"readonly\"").unwrap_err();
        assert!(e.contains("presets are"), "{e}");
        let e = rule("services = [200]").unwrap_err();
        assert!(e.contains("0-127"), "{e}");
        assert!(rule("services = []").is_err());
        assert!(rule("tags = []").is_err());
        assert!(rule("bogus = 1").is_err());
    }

    #[test]
    fn covers_is_sound() {
        let ro = rule("preset = \"read-only\"").unwrap();
        let rw = rule("preset = \"read-write\"").unwrap();
        let every = rule("").unwrap();
        assert!(rw.covers(&ro) && !ro.covers(&rw) && every.covers(&rw));
        let t = rule("tags = [\"A*\"]").unwrap();
        let star = rule("tags = [\"*\"]").unwrap();
        assert!(every.covers(&t) && !t.covers(&every) && star.covers(&every));
    }

    #[test]
    fn io_sizes_and_presets() {
        let compile_text = |text: &str| match section("enip-io", text).unwrap() {
            super::super::AppRule::EnipIo(r) => r,
            other => panic!("{other:?}"),
        };
        let mut out = [0u8; 128];
        let heartbeat = repr::emit_io(&mut out, 1, 1, &[1, 0]).unwrap();
        let hb = out[..heartbeat].to_vec();
        let n = repr::emit_io(&mut out, 1, 2, &[0u8; 38]).unwrap();
        let data = out[..n].to_vec();
        let ro = compile_text("preset = \"read-only\"");
        let m = |b: &[u8]| parse_io(b, Dir::Request).map(|m| m.data().len()).unwrap();
        assert_eq!(m(&hb), 2);
        assert_eq!(ro.check(&parse_io(&hb, Dir::Request).unwrap()), Ok(()));
        assert_eq!(
            ro.check(&parse_io(&data, Dir::Request).unwrap()),
            Err(Violation::Object)
        );
        assert_eq!(ro.to_string(), "preset read-only");
        let sized = compile_text("sizes = [38]");
        assert_eq!(sized.check(&parse_io(&data, Dir::Request).unwrap()), Ok(()));
        assert_eq!(
            sized.check(&parse_io(&hb, Dir::Request).unwrap()),
            Err(Violation::Object)
        );
        assert_eq!(sized.to_string(), "sizes 38");
        let both = compile_text("preset = \"read-only\"\nsizes = [\"30-40\"]");
        assert!(both.covers(&ro) && both.covers(&sized) && !ro.covers(&both));
        assert_eq!(compile_text("").to_string(), "every packet");
    }
}
