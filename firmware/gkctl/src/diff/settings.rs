//! The policy's settings: mode, name, layer 2, MAC pins, hosts, limits.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use gk_packet::MacAddr;
use gk_policy::{HealthCheck, Mode, Policy, Ranges};

use super::app::minus;
use super::effect::Space;
use super::labels::Labels;
use super::space::Net;
use super::{Item, Mark};

pub(super) fn changes(old: &Policy, new: &Policy, space: &Space, labels: &Labels) -> Vec<Item> {
    let mut out = Vec::new();
    match (old.mode(), new.mode()) {
        (Mode::Enforce, Mode::Monitor) => out.push(Item::new(
            "settings",
            Mark::Wider,
            "mode: enforce -> monitor. WARNING: the new policy enforces NOTHING: every frame \
             is forwarded, and what the rules deny is only reported (would-deny)"
                .to_string(),
            serde_json::json!({"change": "mode", "old": "enforce", "new": "monitor"}),
        )),
        (Mode::Monitor, Mode::Enforce) => out.push(Item::new(
            "settings",
            Mark::Narrower,
            "mode: monitor -> enforce: the rules are now enforced; what they deny is dropped \
             (until now it was forwarded and reported)"
                .to_string(),
            serde_json::json!({"change": "mode", "old": "monitor", "new": "enforce"}),
        )),
        _ => {}
    }
    if old.name() != new.name() {
        out.push(Item::new(
            "settings",
            Mark::Note,
            format!("name: {:?} -> {:?}", old.name(), new.name()),
            serde_json::json!({"change": "name", "old": old.name(), "new": new.name()}),
        ));
    }
    ethertypes(old, new, &mut out);
    vlans(old, new, &mut out);
    pins(old, new, space, labels, &mut out);
    hosts(old, new, &mut out);
    limits(old, new, &mut out);
    health(old, new, space, labels, &mut out);
    out
}

/// `hmi -> plc modbus 502 within 60s`
fn check_text(h: &HealthCheck) -> String {
    let ports = if h.ports.is_all() {
        String::new()
    } else {
        format!(" {}", h.ports)
    };
    format!(
        "{} -> {} {}{ports} within {}s",
        h.from,
        h.to,
        h.proto,
        h.within.as_secs()
    )
}

/// Health checks added, removed, changed; and the new policy's checks that watch
/// conversations it denies itself (the bundle would revert as soon as one is tried).
fn health(old: &Policy, new: &Policy, space: &Space, labels: &Labels, out: &mut Vec<Item>) {
    for h in new.health_checks() {
        let text = check_text(h);
        match old.health_checks().iter().find(|o| o.name == h.name) {
            None => out.push(Item::new(
                "settings",
                Mark::Note,
                format!("health check {:?} added: {text}", h.name),
                serde_json::json!({"change": "health-added", "check": h.name, "new": text}),
            )),
            Some(o) if check_text(o) != text => out.push(Item::new(
                "settings",
                Mark::Note,
                format!("health check {:?}: {} -> {text}", h.name, check_text(o)),
                serde_json::json!({"change": "health-changed", "check": h.name,
                    "old": check_text(o), "new": text}),
            )),
            Some(_) => {}
        }
        let denied: Vec<&super::space::Cell> = space
            .cells
            .iter()
            .filter(|c| {
                let q = space.query(c);
                h.matches(&q) && !new.evaluate(&q).action.permits()
            })
            .collect();
        if !denied.is_empty() {
            let side = |k: usize| -> String {
                let set: BTreeSet<usize> = denied.iter().map(|c| c[k]).collect();
                labels.addresses(&set).join(", ")
            };
            out.push(Item::new(
                "settings",
                Mark::Note,
                format!(
                    "WARNING: health check {:?} watches conversations the new policy denies \
                     (from {} to {}): if one is tried while the bundle is pending, it reverts",
                    h.name,
                    side(0),
                    side(1)
                ),
                serde_json::json!({"change": "health-denied", "check": h.name}),
            ));
        }
    }
    for o in old.health_checks() {
        if !new.health_checks().iter().any(|h| h.name == o.name) {
            out.push(Item::new(
                "settings",
                Mark::Note,
                format!("health check {:?} removed (was {})", o.name, check_text(o)),
                serde_json::json!({"change": "health-removed", "check": o.name, "old": check_text(o)}),
            ));
        }
    }
}

fn ethertype_name(t: u16) -> String {
    match gk_policy::ethertype_name(t) {
        Some(n) => format!("{n} ({t:#06x})"),
        None => format!("{t:#06x}"),
    }
}

fn ethertypes(old: &Policy, new: &Policy, out: &mut Vec<Item>) {
    let set = |p: &Policy| -> BTreeSet<u16> { p.ethertypes().map(u16::from).collect() };
    let (a, b) = (set(old), set(new));
    let names = |s: Vec<u16>| -> Vec<String> { s.into_iter().map(ethertype_name).collect() };
    let added = names(b.difference(&a).copied().collect());
    let removed = names(a.difference(&b).copied().collect());
    if !added.is_empty() {
        out.push(Item::new(
            "settings",
            Mark::Wider,
            format!("l2 ethertypes: now also allows {}", added.join(", ")),
            serde_json::json!({"change": "ethertypes", "added": added}),
        ));
    }
    if !removed.is_empty() {
        out.push(Item::new(
            "settings",
            Mark::Narrower,
            format!("l2 ethertypes: no longer allows {}", removed.join(", ")),
            serde_json::json!({"change": "ethertypes", "removed": removed}),
        ));
    }
}

/// Allowed VLAN ids; 0 stands for untagged.
fn vlan_set(p: &Policy) -> Ranges {
    Ranges::new(
        (0u16..=4094)
            .filter(|&v| p.vlan_allowed(Some(v)))
            .map(|v| (u32::from(v), u32::from(v)))
            .collect(),
    )
}

fn vlan_text(s: &Ranges) -> String {
    let parts: Vec<String> = s
        .ranges()
        .iter()
        .flat_map(|&(lo, hi)| {
            let mut v = Vec::new();
            let mut lo = lo;
            if lo == 0 {
                v.push("untagged".to_string());
                lo = 1;
            }
            if lo <= hi {
                v.push(if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                });
            }
            v
        })
        .collect();
    parts.join(", ")
}

fn vlans(old: &Policy, new: &Policy, out: &mut Vec<Item>) {
    let (a, b) = (vlan_set(old), vlan_set(new));
    let (added, removed) = (minus(&b, &a), minus(&a, &b));
    if !added.is_empty() {
        out.push(Item::new(
            "settings",
            Mark::Wider,
            format!("l2 vlans: now also allows {}", vlan_text(&added)),
            serde_json::json!({"change": "vlans", "added": vlan_text(&added)}),
        ));
    }
    if !removed.is_empty() {
        out.push(Item::new(
            "settings",
            Mark::Narrower,
            format!("l2 vlans: no longer allows {}", vlan_text(&removed)),
            serde_json::json!({"change": "vlans", "removed": vlan_text(&removed)}),
        ));
    }
}

/// The MAC an address is pinned to.
fn pinned(p: &Policy, ip: IpAddr) -> Option<MacAddr> {
    p.hosts()
        .iter()
        .filter(|h| h.mac.is_some())
        .find(|h| h.nets.iter().any(|n| n.contains(&ip)))
        .and_then(|h| h.mac)
}

fn pins(old: &Policy, new: &Policy, space: &Space, labels: &Labels, out: &mut Vec<Item>) {
    // Atoms by (old pin, new pin), for the atoms whose pin changed.
    let mut by: BTreeMap<(Option<String>, Option<String>), BTreeSet<usize>> = BTreeMap::new();
    for (i, a) in space.atoms.iter().enumerate() {
        let (x, y) = (pinned(old, a.rep), pinned(new, a.rep));
        if x != y {
            by.entry((x.map(|m| m.to_string()), y.map(|m| m.to_string())))
                .or_default()
                .insert(i);
        }
    }
    for ((x, y), atoms) in by {
        let who = labels.addresses(&atoms).join(", ");
        let (mark, text) = match (&x, &y) {
            (Some(x), None) => (
                Mark::Wider,
                format!(
                    "MAC pin removed: {who} was pinned to {x}; any MAC may now use these \
                     addresses (the ARP/IP spoofing guard no longer protects them)"
                ),
            ),
            (None, Some(y)) => (
                Mark::Narrower,
                format!("MAC pin added: {who} pinned to {y}; frames from any other MAC claiming these addresses are dropped"),
            ),
            (Some(x), Some(y)) => (
                Mark::Both,
                format!("MAC pin changed: {who} from {x} to {y}; the machine at {y} may now use these addresses, the one at {x} may not"),
            ),
            (None, None) => continue,
        };
        out.push(Item::new(
            "settings",
            mark,
            text,
            serde_json::json!({"change": "mac-pin", "addresses": labels.addresses(&atoms), "old": x, "new": y}),
        ));
    }
}

fn hosts(old: &Policy, new: &Policy, out: &mut Vec<Item>) {
    let text = |nets: &[gk_policy::IpNet]| -> Vec<String> {
        nets.iter().map(|n| Net::of(n).text()).collect()
    };
    for h in new.hosts() {
        match old.hosts().iter().find(|o| o.name == h.name) {
            None => out.push(Item::new(
                "settings",
                Mark::Note,
                format!("host {:?} added: {}", h.name, text(&h.nets).join(", ")),
                serde_json::json!({"change": "host-added", "host": h.name, "ip": text(&h.nets)}),
            )),
            Some(o) if o.nets != h.nets => {
                let (a, b): (BTreeSet<String>, BTreeSet<String>) = (
                    text(&o.nets).into_iter().collect(),
                    text(&h.nets).into_iter().collect(),
                );
                let added: Vec<&String> = b.difference(&a).collect();
                let removed: Vec<&String> = a.difference(&b).collect();
                let mut s = Vec::new();
                if !added.is_empty() {
                    s.push(format!("now also {}", join(&added)));
                }
                if !removed.is_empty() {
                    s.push(format!("no longer {}", join(&removed)));
                }
                out.push(Item::new(
                    "settings",
                    Mark::Note,
                    format!("host {:?} addresses: {}", h.name, s.join("; ")),
                    serde_json::json!({"change": "host-addresses", "host": h.name,
                        "added": added, "removed": removed}),
                ));
            }
            Some(_) => {}
        }
    }
    for o in old.hosts() {
        if !new.hosts().iter().any(|h| h.name == o.name) {
            out.push(Item::new(
                "settings",
                Mark::Note,
                format!(
                    "host {:?} removed (was {})",
                    o.name,
                    text(&o.nets).join(", ")
                ),
                serde_json::json!({"change": "host-removed", "host": o.name, "ip": text(&o.nets)}),
            ));
        }
    }
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

fn limits(old: &Policy, new: &Policy, out: &mut Vec<Item>) {
    let (a, b) = (old.limits(), new.limits());
    let secs = |d: std::time::Duration| format!("{}s", d.as_secs());
    let rows: [(&str, String, String); 11] = [
        (
            "flows capacity",
            a.flow_capacity.to_string(),
            b.flow_capacity.to_string(),
        ),
        (
            "flows tcp-syn-timeout",
            secs(a.tcp_syn_timeout),
            secs(b.tcp_syn_timeout),
        ),
        (
            "flows tcp-established-timeout",
            secs(a.tcp_established_timeout),
            secs(b.tcp_established_timeout),
        ),
        (
            "flows tcp-closing-timeout",
            secs(a.tcp_closing_timeout),
            secs(b.tcp_closing_timeout),
        ),
        (
            "flows udp-timeout",
            secs(a.udp_timeout),
            secs(b.udp_timeout),
        ),
        (
            "flows icmp-timeout",
            secs(a.icmp_timeout),
            secs(b.icmp_timeout),
        ),
        (
            "flows other-timeout",
            secs(a.other_timeout),
            secs(b.other_timeout),
        ),
        (
            "events rate",
            a.events_per_second.to_string(),
            b.events_per_second.to_string(),
        ),
        (
            "events burst",
            a.event_burst.to_string(),
            b.event_burst.to_string(),
        ),
        (
            "inspection streams",
            a.inspect_streams.to_string(),
            b.inspect_streams.to_string(),
        ),
        (
            "inspection buffer",
            a.inspect_buffer.to_string(),
            b.inspect_buffer.to_string(),
        ),
    ];
    for (name, x, y) in rows {
        if x != y {
            out.push(Item::new(
                "settings",
                Mark::Note,
                format!("{name}: {x} -> {y}"),
                serde_json::json!({"change": "limit", "limit": name, "old": x, "new": y}),
            ));
        }
    }
}
