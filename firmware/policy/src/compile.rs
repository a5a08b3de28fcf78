//! Validation: raw serde structs in, a compiled [`Policy`] (or every error found) out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use gk_packet::MacAddr;
use ipnet::IpNet;
use serde_spanned::Spanned;

use crate::diag::{Diags, PolicyError};
use crate::names::{self, ETHERTYPES, VLAN_TPIDS};
use crate::raw::{items, Items, RawAction, RawHealth, RawMode, RawPolicy, RawRule, Scalar};
use crate::{
    Action, Diagnostic, HealthCheck, Host, IcmpTypes, Limits, Mode, OnDeny, Peer, PinV4, PinV6,
    Policy, Ports, Proto, Protocol, Rule, SCHEMA,
};

/// `RuleId` is a u16.
const MAX_RULES: usize = 65535;
/// Past this many rules the quadratic shadowing check is skipped.
const MAX_SHADOW_CHECK: usize = 4096;
const DEFAULT_ETHERTYPES: [u16; 3] = [0x0800, 0x0806, 0x86dd];

pub(crate) fn compile(text: &str, file: &str) -> Result<(Policy, Vec<Diagnostic>), PolicyError> {
    let mut d = Diags::new(text, file);
    match toml::from_str::<RawPolicy>(text) {
        Ok(raw) => {
            let policy = Compiler { d: &mut d }.policy(raw);
            if d.has_errors() {
                Err(PolicyError {
                    diagnostics: d.finish(),
                })
            } else {
                Ok((policy, d.finish()))
            }
        }
        Err(e) => {
            d.error(&e.span().unwrap_or(0..0), e.message().trim());
            Err(PolicyError {
                diagnostics: d.finish(),
            })
        }
    }
}

struct Compiler<'d, 'a> {
    d: &'d mut Diags<'a>,
}

impl Compiler<'_, '_> {
    /// Builds the policy even when errors were found (with stand-ins for the bad parts),
    /// so that one pass reports them all; the caller discards it then.
    fn policy(&mut self, raw: RawPolicy) -> Policy {
        let schema = &raw.schema;
        if *schema.get_ref() != SCHEMA {
            let n = schema.get_ref();
            self.d.error(
                &schema.span(),
                format!("unsupported schema {n}: this gatekeeper reads schema {SCHEMA}"),
            );
        }
        let name = self.gatekeeper_name(&raw.gatekeeper.name);
        let mode = match raw.gatekeeper.mode {
            RawMode::Enforce => Mode::Enforce,
            RawMode::Monitor => Mode::Monitor,
        };
        let l2 = raw.l2.as_ref();
        let ethertypes = self.ethertypes(l2.and_then(|l2| l2.ethertypes.as_ref()));
        let vlans = self.vlans(l2.and_then(|l2| l2.vlans.as_ref()));
        let hosts = self.hosts(&raw);
        let (pins_v4, pins_v6) = self.pins(&raw, &hosts);
        let rules = self.rules(&raw.rule, &hosts);
        let health = self.health(&raw.health, &hosts);
        self.lint_rules(&raw.rule, &rules);
        self.lint_l2(&raw, &ethertypes, &hosts, &rules);
        let limits = self.limits(&raw);
        Policy {
            name,
            mode,
            link_propagation: raw.gatekeeper.link_propagation,
            limits,
            ethertypes,
            vlans,
            hosts,
            rules,
            health,
            pins_v4,
            pins_v6,
        }
    }

    /// `[[health]]` checks: a name, the conversation (from, to, proto, ports) and how
    /// long after an apply it must be seen flowing.
    fn health(&mut self, raw: &[Spanned<RawHealth>], hosts: &[Host]) -> Vec<HealthCheck> {
        let mut checks: Vec<HealthCheck> = Vec::new();
        for (i, spanned) in raw.iter().enumerate() {
            let span = spanned.span();
            let r = spanned.get_ref();
            let label = match &r.name {
                Some(n) => format!("health check {:?}", n.get_ref()),
                None => format!("health check #{}", i + 1),
            };
            let name = match &r.name {
                None => {
                    self.d.error(&span, format!("{label}: missing `name`"));
                    String::new()
                }
                Some(n) => {
                    self.check_name("health check", n.get_ref(), &n.span());
                    if checks.iter().any(|c| c.name == *n.get_ref()) {
                        self.d
                            .error(&n.span(), format!("{label}: name already used"));
                    }
                    n.get_ref().clone()
                }
            };
            let from = self.peer(&label, "from", r.from.as_ref(), &span, hosts);
            let to = self.peer(&label, "to", r.to.as_ref(), &span, hosts);
            let proto = self.proto(&label, r.proto.as_ref());
            let ports = self.ports(&label, proto, r.ports.as_ref());
            let within =
                Duration::from_secs(
                    int(self.d, r.within.as_ref(), "health.within", 1, 86400, 60) as u64,
                );
            let line = self.d.line(span.start);
            checks.push(HealthCheck {
                name,
                from,
                to,
                proto,
                ports,
                within,
                line,
            });
        }
        checks
    }

    fn gatekeeper_name(&mut self, name: &Spanned<String>) -> String {
        let n = name.get_ref();
        let problem = if n.is_empty() {
            Some("must not be empty")
        } else if n.chars().any(char::is_control) {
            Some("must not contain control characters")
        } else if n.len() > 64 {
            Some("is too long (64 bytes at most)")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.d
                .error(&name.span(), format!("gatekeeper `name` {problem}"));
        }
        n.clone()
    }

    fn ethertypes(&mut self, field: Option<&Spanned<Items>>) -> Box<[u16]> {
        let Some(field) = field else {
            return sorted(DEFAULT_ETHERTYPES.to_vec());
        };
        let mut out = Vec::new();
        for (item, span) in items(field) {
            let value = match item {
                Scalar::Int(n) => u16::try_from(*n).ok(),
                Scalar::Str(s) => names::lookup(ETHERTYPES, &s.to_ascii_lowercase())
                    .or_else(|| parse_number(s).and_then(|n| u16::try_from(n).ok())),
            };
            match value {
                None => self.d.error(
                    &span,
                    format!(
                        "unknown ethertype {item} (names are: {}; or a number such as 0x88cc)",
                        names::list(ETHERTYPES)
                    ),
                ),
                Some(v) if v < 0x0600 => self.d.error(
                    &span,
                    format!("{v:#06x} is an 802.3 length, not an ethertype (ethertypes start at 0x0600)"),
                ),
                Some(v) if VLAN_TPIDS.contains(&v) => self.d.error(
                    &span,
                    format!("{v:#06x} is a VLAN tag, not a payload: list VLAN ids in `l2.vlans`"),
                ),
                Some(v) => out.push(v),
            }
        }
        if field.get_ref().0.is_empty() {
            self.d.error(
                &field.span(),
                "`l2.ethertypes` is empty: every frame would be dropped",
            );
        }
        sorted(out)
    }

    fn vlans(&mut self, field: Option<&Spanned<Items>>) -> Box<[u64; 64]> {
        let mut bits = Box::new([0u64; 64]);
        let mut set = |vid: u16| bits[usize::from(vid / 64)] |= 1 << (vid % 64);
        let Some(field) = field else {
            set(0);
            return bits;
        };
        for (item, span) in items(field) {
            let range = match item {
                Scalar::Str(s) if s == "untagged" => {
                    set(0);
                    continue;
                }
                Scalar::Int(n) => Some((*n, *n)),
                Scalar::Str(s) => parse_range(s),
            };
            let Some((lo, hi)) = range else {
                self.d.error(&span, format!("{item} is not a VLAN id: write \"untagged\", 1-4094, or a range such as \"100-200\""));
                continue;
            };
            if lo == 0 && hi == 0 {
                self.d.error(
                    &span,
                    "VLAN 0 is priority-tagged, which counts as untagged: write \"untagged\"",
                );
            } else if !(1..=4094).contains(&lo) || !(1..=4094).contains(&hi) {
                self.d
                    .error(&span, format!("VLAN {item} is out of range (1-4094)"));
            } else if lo > hi {
                self.d
                    .error(&span, format!("VLAN range {item} is reversed"));
            } else {
                // In range 1..=4094, so the casts are lossless.
                (lo as u16..=hi as u16).for_each(&mut set);
            }
        }
        if field.get_ref().0.is_empty() {
            self.d.error(
                &field.span(),
                "`l2.vlans` is empty: every frame would be dropped",
            );
        }
        bits
    }

    fn hosts(&mut self, raw: &RawPolicy) -> Vec<Host> {
        let mut hosts = Vec::new();
        for (key, spanned) in &raw.hosts {
            let name = key.get_ref().clone();
            if name == "any" {
                let why = "host name \"any\" is reserved: it means every address";
                self.d.error(&key.span(), why);
            } else {
                self.check_name("host", &name, &key.span());
            }
            let label = format!("host {name:?}");
            let nets = match &spanned.get_ref().ip {
                Some(ip) => self.host_nets(&label, ip),
                None => {
                    self.d
                        .error(&spanned.span(), format!("{label}: missing `ip`"));
                    Vec::new()
                }
            };
            let mac = spanned.get_ref().mac.as_ref();
            let mac = mac.and_then(|mac| self.host_mac(&label, mac, &nets));
            let line = self.d.line(spanned.span().start);
            hosts.push(Host {
                name,
                nets,
                mac,
                line,
            });
        }
        hosts
    }

    fn host_nets(&mut self, label: &str, ip: &Spanned<Items>) -> Vec<IpNet> {
        let mut nets: Vec<IpNet> = Vec::new();
        for (item, span) in items(ip) {
            let Some(net) = parse_net(item) else {
                let why = format!("{label}: {item} is not an IP address or CIDR");
                self.d.error(&span, why);
                continue;
            };
            let trunc = net.trunc();
            if net != trunc {
                let why = format!("{label}: {net} has host bits set; it means {trunc}");
                self.d.warn(&span, why);
            }
            if !nets.contains(&trunc) {
                nets.push(trunc);
            }
        }
        if ip.get_ref().0.is_empty() {
            self.d.error(&ip.span(), format!("{label}: `ip` is empty"));
        }
        nets
    }

    fn host_mac(&mut self, label: &str, mac: &Spanned<String>, nets: &[IpNet]) -> Option<MacAddr> {
        let span = mac.span();
        let Ok(parsed) = mac.get_ref().parse::<MacAddr>() else {
            let m = mac.get_ref();
            let why =
                format!("{label}: {m:?} is not a MAC address (write it as 02:00:00:00:00:10)");
            self.d.error(&span, why);
            return None;
        };
        if !parsed.is_unicast() || parsed == MacAddr::default() {
            let why =
                format!("{label}: {parsed} is not a unicast MAC: a pin needs the host's own MAC");
            self.d.error(&span, why);
            return None;
        }
        for net in nets.iter().filter(|n| n.prefix_len() < n.max_prefix_len()) {
            let why = format!("{label}: the MAC pin covers every address of {net}");
            self.d.warn(&span, why);
        }
        Some(parsed)
    }

    /// Compiles MAC pins, refusing overlapping pins to different MACs (one address could
    /// then never be used from any MAC).
    fn pins(&mut self, raw: &RawPolicy, hosts: &[Host]) -> (Box<[PinV4]>, Box<[PinV6]>) {
        let spans: Vec<Range<usize>> = raw
            .hosts
            .values()
            .map(|h| h.get_ref().mac.as_ref().map_or(h.span(), |m| m.span()))
            .collect();
        let pinned: Vec<(usize, &Host, MacAddr)> = hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| Some((i, h, h.mac?)))
            .collect();
        for (k, &(i, host, mac)) in pinned.iter().enumerate() {
            for &(_, other, other_mac) in &pinned[..k] {
                if mac == other_mac {
                    continue;
                }
                let clash = host
                    .nets
                    .iter()
                    .find(|a| other.nets.iter().any(|b| overlap(a, b)));
                if let Some(net) = clash {
                    let (name, other_name) = (&host.name, &other.name);
                    self.d.error(
                        &spans[i],
                        format!("host {name:?}: {net} is also pinned by host {other_name:?} to another MAC ({other_mac})"),
                    );
                }
            }
        }
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for &(_, host, mac) in &pinned {
            for net in &host.nets {
                match net {
                    IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.netmask()), mac)),
                    IpNet::V6(n) => {
                        v6.push((u128::from(n.network()), u128::from(n.netmask()), mac))
                    }
                }
            }
        }
        (v4.into(), v6.into())
    }

    fn rules(&mut self, raw: &[Spanned<RawRule>], hosts: &[Host]) -> Vec<Rule> {
        let mut rules = Vec::with_capacity(raw.len());
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, spanned) in raw.iter().enumerate() {
            let span = spanned.span();
            let r = spanned.get_ref();
            let line = self.d.line(span.start);
            if i == MAX_RULES {
                self.d
                    .error(&span, format!("too many rules ({MAX_RULES} at most)"));
            }
            let label = match &r.name {
                Some(n) => format!("rule {:?}", n.get_ref()),
                None => format!("rule #{}", i + 1),
            };
            let name = match &r.name {
                None => {
                    self.d.error(&span, format!("{label}: missing `name`"));
                    String::new()
                }
                Some(n) => {
                    self.check_name("rule", n.get_ref(), &n.span());
                    if let Some(first) = seen.insert(n.get_ref(), line) {
                        seen.insert(n.get_ref(), first);
                        self.d.error(
                            &n.span(),
                            format!("{label}: name already used by the rule at line {first}"),
                        );
                    }
                    n.get_ref().clone()
                }
            };
            let from = self.peer(&label, "from", r.from.as_ref(), &span, hosts);
            let to = self.peer(&label, "to", r.to.as_ref(), &span, hosts);
            let proto = self.proto(&label, r.proto.as_ref());
            let ports = self.ports(&label, proto, r.ports.as_ref());
            let icmp = self.icmp(&label, proto, r.icmp.as_ref());
            let app = match proto {
                Proto::App(protocol) => Some(crate::app::compile(self.d, &label, protocol, r)),
                other => {
                    crate::app::stray_sections(self.d, &label, &other.to_string(), r);
                    None
                }
            };
            let on_deny = self.on_deny(&label, proto, r.on_deny.as_ref());
            let action = match r.action {
                None => {
                    self.d.error(
                        &span,
                        format!("{label}: missing `action` (allow, deny or alert)"),
                    );
                    Action::Deny
                }
                Some(RawAction::Allow) => Action::Allow,
                Some(RawAction::Deny) => Action::Deny,
                Some(RawAction::Alert) => Action::Alert,
            };
            let log = r.log.as_ref().is_some_and(|l| *l.get_ref());
            if log && action != Action::Allow {
                let span = r.log.as_ref().map_or(span.clone(), |l| l.span());
                self.d.warn(
                    &span,
                    format!("{label}: `log` has no effect: {action} rules are always reported"),
                );
            }
            rules.push(Rule {
                name,
                action,
                log,
                from,
                to,
                proto,
                ports,
                icmp,
                app,
                on_deny,
                line,
            });
        }
        rules
    }

    fn on_deny(&mut self, label: &str, proto: Proto, field: Option<&Spanned<String>>) -> OnDeny {
        let Some(field) = field else {
            return OnDeny::Reset;
        };
        match (field.get_ref().as_str(), proto) {
            ("reset", Proto::App(_)) => OnDeny::Reset,
            ("modbus-exception", Proto::App(Protocol::Modbus)) => OnDeny::ModbusException,
            ("reset" | "modbus-exception", _) => {
                self.d.error(
                    &field.span(),
                    format!(
                        "{label}: on-deny = {:?} needs proto = \"modbus\"{} (this rule has {proto})",
                        field.get_ref(),
                        if field.get_ref() == "reset" { " or another industrial protocol" } else { "" }
                    ),
                );
                OnDeny::Reset
            }
            (other, _) => {
                self.d.error(
                    &field.span(),
                    format!("{label}: unknown on-deny {other:?} (reset, modbus-exception)"),
                );
                OnDeny::Reset
            }
        }
    }

    fn peer(
        &mut self,
        label: &str,
        key: &str,
        field: Option<&Spanned<Items>>,
        rule_span: &Range<usize>,
        hosts: &[Host],
    ) -> Peer {
        let Some(field) = field else {
            self.d.error(
                rule_span,
                format!("{label}: missing `{key}` (write {key} = \"any\" to match every address)"),
            );
            return Peer::any();
        };
        let mut names: Vec<String> = Vec::new();
        let mut nets: Vec<IpNet> = Vec::new();
        let mut any = false;
        for (item, span) in items(field) {
            let Scalar::Str(name) = item else {
                self.d.error(
                    &span,
                    format!("{label}: `{key}` takes host names or \"any\", found {item}"),
                );
                continue;
            };
            if name == "any" {
                any = true;
            } else if let Some(host) = hosts.iter().find(|h| h.name == *name) {
                if !names.contains(name) {
                    names.push(name.clone());
                    nets.extend(&host.nets);
                }
            } else {
                let known = if hosts.is_empty() {
                    "no hosts are defined".to_string()
                } else {
                    let all: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
                    format!("hosts are: {}", all.join(", "))
                };
                self.d.error(
                    &span,
                    format!("{label}: unknown host {name:?} in `{key}` ({known})"),
                );
            }
        }
        if field.get_ref().0.is_empty() {
            self.d.error(
                &field.span(),
                format!("{label}: `{key}` is empty (write \"any\" to match every address)"),
            );
        } else if any && !names.is_empty() {
            self.d.error(
                &field.span(),
                format!("{label}: `{key}` mixes \"any\" with host names"),
            );
        }
        if any {
            Peer::any()
        } else {
            Peer::new(names, nets)
        }
    }

    fn proto(&mut self, label: &str, field: Option<&Spanned<Scalar>>) -> Proto {
        let Some(field) = field else {
            return Proto::Any;
        };
        let proto = match field.get_ref() {
            Scalar::Str(s) => match s.to_ascii_lowercase().as_str() {
                "any" => Some(Proto::Any),
                "tcp" => Some(Proto::Tcp),
                "udp" => Some(Proto::Udp),
                "icmp" => Some(Proto::Icmp),
                "icmpv6" => Some(Proto::Icmpv6),
                name => Protocol::from_name(name).map(Proto::App),
            },
            Scalar::Int(n) => u8::try_from(*n).ok().map(Proto::from_number),
        };
        proto.unwrap_or_else(|| {
            let p = field.get_ref();
            let apps: Vec<&str> = Protocol::ALL.iter().map(|p| p.name()).collect();
            self.d.error(&field.span(), format!("{label}: unknown proto {p} (tcp, udp, icmp, icmpv6, any, {}, or a protocol number 0-255)", apps.join(", ")));
            Proto::Any
        })
    }

    fn ports(&mut self, label: &str, proto: Proto, field: Option<&Spanned<Items>>) -> Ports {
        let Some(field) = field else {
            return match proto {
                // An industrial protocol's well-known ports, on whichever transports it uses.
                Proto::App(p) => Ports::new(
                    p.tcp_ports()
                        .iter()
                        .chain(p.udp_ports())
                        .map(|&n| (n, n))
                        .collect(),
                ),
                _ => Ports::all(),
            };
        };
        if !matches!(proto, Proto::Tcp | Proto::Udp | Proto::App(_)) {
            self.d.error(
                &field.span(),
                format!(
                    "{label}: `ports` needs proto = \"tcp\", \"udp\" or an industrial protocol (this rule has {proto})"
                ),
            );
            return Ports::all();
        }
        let mut ranges = Vec::new();
        for (item, span) in items(field) {
            let range = match item {
                Scalar::Int(n) => Some((*n, *n)),
                Scalar::Str(s) => parse_range(s),
            };
            match range {
                None => self.d.error(
                    &span,
                    format!("{label}: {item} is not a port or a range such as \"20000-20010\""),
                ),
                Some((lo, hi)) if !(0..=65535).contains(&lo) || !(0..=65535).contains(&hi) => {
                    self.d.error(
                        &span,
                        format!("{label}: port {item} is out of range (0-65535)"),
                    )
                }
                Some((lo, hi)) if lo > hi => self
                    .d
                    .error(&span, format!("{label}: port range {item} is reversed")),
                // In range 0..=65535, so the casts are lossless.
                Some((lo, hi)) => ranges.push((lo as u16, hi as u16)),
            }
        }
        if field.get_ref().0.is_empty() {
            self.d.error(
                &field.span(),
                format!("{label}: `ports` is empty (leave it out to match every port)"),
            );
            return Ports::all();
        }
        if ranges.is_empty() {
            Ports::all()
        } else {
            Ports::new(ranges)
        }
    }

    fn icmp(&mut self, label: &str, proto: Proto, field: Option<&Spanned<Items>>) -> IcmpTypes {
        let Some(field) = field else {
            return IcmpTypes::ALL;
        };
        if !matches!(proto, Proto::Icmp | Proto::Icmpv6) {
            self.d.error(
                &field.span(),
                format!(
                    "{label}: `icmp` needs proto = \"icmp\" or \"icmpv6\" (this rule has {proto})"
                ),
            );
            return IcmpTypes::ALL;
        }
        let table = proto.icmp_names();
        let mut types = IcmpTypes::NONE;
        for (item, span) in items(field) {
            let t = match item {
                Scalar::Int(n) => u8::try_from(*n).ok(),
                Scalar::Str(s) => names::lookup(table, &s.to_ascii_lowercase()),
            };
            match t {
                Some(t) => types.insert(t),
                None => self.d.error(
                    &span,
                    format!(
                        "{label}: unknown {proto} type {item} (names are: {}; or a number 0-255)",
                        names::list(table)
                    ),
                ),
            }
        }
        if field.get_ref().0.is_empty() {
            self.d.error(
                &field.span(),
                format!("{label}: `icmp` is empty (leave it out to match every type)"),
            );
        }
        if types == IcmpTypes::NONE {
            IcmpTypes::ALL
        } else {
            types
        }
    }

    /// Warnings about rules that can never match.
    fn lint_rules(&mut self, raw: &[Spanned<RawRule>], rules: &[Rule]) {
        for (j, later) in rules.iter().enumerate() {
            let span = raw[j].span();
            let families = |p: &Peer| (p.v4.is_empty(), p.v6.is_empty());
            let (from, to) = (families(&later.from), families(&later.to));
            if !later.from.is_any() && !later.to.is_any() && (from.0 || to.0) && (from.1 || to.1) {
                self.d.warn(
                    &span,
                    format!(
                        "rule {:?} can never match: `from` and `to` share no IP version",
                        later.name
                    ),
                );
                continue;
            }
            if rules.len() > MAX_SHADOW_CHECK {
                continue;
            }
            if let Some(earlier) = rules[..j].iter().find(|e| shadows(e, later)) {
                self.d.warn(
                    &span,
                    format!(
                        "rule {:?} can never match: rule {:?} (line {}) comes first and matches everything it would",
                        later.name, earlier.name, earlier.line
                    ),
                );
            }
        }
    }

    /// Warnings about L2 settings that starve IP of what it needs.
    fn lint_l2(&mut self, raw: &RawPolicy, ethertypes: &[u16], hosts: &[Host], rules: &[Rule]) {
        if let Some(field) = raw.l2.as_ref().and_then(|l2| l2.ethertypes.as_ref()) {
            if ethertypes.contains(&0x0800) && !ethertypes.contains(&0x0806) {
                self.d.warn(
                    &field.span(),
                    "ipv4 is allowed but arp is not: IPv4 hosts will not find each other's MACs",
                );
            }
        }
        let v6_host = hosts
            .iter()
            .zip(raw.hosts.values())
            .find(|(h, _)| h.nets.iter().any(|n| matches!(n, IpNet::V6(_))));
        let nd_allowed = rules.iter().any(|r| {
            r.action.permits()
                && matches!(r.proto, Proto::Any | Proto::Icmpv6)
                && r.icmp.contains(135)
        });
        if let (Some((host, spanned)), true, false) =
            (v6_host, ethertypes.contains(&0x86dd), nd_allowed)
        {
            self.d.warn(
                &spanned.span(),
                format!(
                    "host {:?} has IPv6 addresses but no rule allows ICMPv6 neighbor-solicitation: IPv6 hosts will not find each other",
                    host.name
                ),
            );
        }
    }

    fn limits(&mut self, raw: &RawPolicy) -> Limits {
        let def = Limits::default();
        let secs = |d: &mut Diags<'_>, f: Option<&Spanned<i64>>, key: &str, default: Duration| {
            Duration::from_secs(int(d, f, key, 1, 86400, default.as_secs() as i64) as u64)
        };
        let f = raw.flows.as_ref();
        let e = raw.events.as_ref();
        let d = &mut *self.d;
        Limits {
            flow_capacity: int(
                d,
                f.and_then(|f| f.capacity.as_ref()),
                "flows.capacity",
                16,
                1 << 20,
                16384,
            ) as usize,
            tcp_syn_timeout: secs(
                d,
                f.and_then(|f| f.tcp_syn_timeout.as_ref()),
                "flows.tcp-syn-timeout",
                def.tcp_syn_timeout,
            ),
            tcp_established_timeout: secs(
                d,
                f.and_then(|f| f.tcp_established_timeout.as_ref()),
                "flows.tcp-established-timeout",
                def.tcp_established_timeout,
            ),
            tcp_closing_timeout: secs(
                d,
                f.and_then(|f| f.tcp_closing_timeout.as_ref()),
                "flows.tcp-closing-timeout",
                def.tcp_closing_timeout,
            ),
            udp_timeout: secs(
                d,
                f.and_then(|f| f.udp_timeout.as_ref()),
                "flows.udp-timeout",
                def.udp_timeout,
            ),
            icmp_timeout: secs(
                d,
                f.and_then(|f| f.icmp_timeout.as_ref()),
                "flows.icmp-timeout",
                def.icmp_timeout,
            ),
            other_timeout: secs(
                d,
                f.and_then(|f| f.other_timeout.as_ref()),
                "flows.other-timeout",
                def.other_timeout,
            ),
            events_per_second: int(
                d,
                e.and_then(|e| e.rate.as_ref()),
                "events.rate",
                1,
                10_000,
                10,
            ) as u32,
            event_burst: int(
                d,
                e.and_then(|e| e.burst.as_ref()),
                "events.burst",
                1,
                100_000,
                20,
            ) as u32,
            inspect_streams: int(
                d,
                raw.inspection.as_ref().and_then(|i| i.streams.as_ref()),
                "inspection.streams",
                16,
                65536,
                def.inspect_streams as i64,
            ) as usize,
            inspect_buffer: int(
                d,
                raw.inspection.as_ref().and_then(|i| i.buffer.as_ref()),
                "inspection.buffer",
                gk_inspect::stream::MIN_BUFFER as i64,
                65536,
                def.inspect_buffer as i64,
            ) as usize,
        }
    }

    fn check_name(&mut self, what: &str, name: &str, span: &Range<usize>) {
        let b = name.as_bytes();
        let ok = b
            .first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && b.len() <= 64
            && b.iter()
                .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
        if !ok {
            self.d.error(
                span,
                format!("{what} name {name:?} must be 1-64 of a-z, 0-9, '-' and '_', starting with a letter or digit"),
            );
        }
    }
}

/// A bounded integer setting, or its default (with an error) when out of bounds.
fn int(
    d: &mut Diags<'_>,
    field: Option<&Spanned<i64>>,
    key: &str,
    lo: i64,
    hi: i64,
    default: i64,
) -> i64 {
    let Some(field) = field else { return default };
    let n = *field.get_ref();
    if (lo..=hi).contains(&n) {
        n
    } else {
        d.error(
            &field.span(),
            format!("`{key}` = {n} is out of range ({lo}-{hi})"),
        );
        default
    }
}

/// `earlier` matches every conversation `later` would (a sound, not complete, test).
fn shadows(earlier: &Rule, later: &Rule) -> bool {
    let covers = |a: &Peer, b: &Peer| {
        a.is_any()
            || (!b.is_any()
                && b.nets()
                    .iter()
                    .all(|n| a.nets().iter().any(|m| m.contains(n))))
    };
    let l4 = match (earlier.proto, later.proto) {
        (Proto::Any, _) => true,
        // A protocol rule never shadows a plain one: the plain rule still decides what
        // the protocol rule does not take.
        (Proto::App(_), p) if !matches!(p, Proto::App(_)) => false,
        (Proto::App(a), Proto::App(b)) => {
            a == b
                && earlier.ports.covers(&later.ports)
                && match (&earlier.app, &later.app) {
                    (Some(x), Some(y)) => x.covers(y),
                    _ => false,
                }
        }
        // A plain TCP (UDP) rule takes every conversation of a protocol rule that runs
        // only on TCP (UDP) on ports it covers.
        (Proto::Tcp, Proto::App(p)) => {
            p.udp_ports().is_empty() && earlier.ports.covers(&later.ports)
        }
        (Proto::Udp, Proto::App(p)) => {
            p.tcp_ports().is_empty() && earlier.ports.covers(&later.ports)
        }
        (a, b) => a == b && earlier.ports.covers(&later.ports) && earlier.icmp.covers(&later.icmp),
    };
    covers(&earlier.from, &later.from) && covers(&earlier.to, &later.to) && l4
}

fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn sorted(mut v: Vec<u16>) -> Box<[u16]> {
    v.sort_unstable();
    v.dedup();
    v.into()
}

/// Decimal, or hexadecimal with `0x`.
fn parse_number(s: &str) -> Option<i64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

/// `"502"` or `"20000-20010"`.
fn parse_range(s: &str) -> Option<(i64, i64)> {
    match s.split_once('-') {
        Some((lo, hi)) => Some((parse_number(lo)?, parse_number(hi)?)),
        None => parse_number(s).map(|n| (n, n)),
    }
}

fn parse_net(item: &Scalar) -> Option<IpNet> {
    let Scalar::Str(s) = item else { return None };
    let s = s.trim();
    if s.contains('/') {
        s.parse().ok()
    } else {
        s.parse::<IpAddr>().ok().map(IpNet::from)
    }
}
