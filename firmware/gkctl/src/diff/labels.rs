//! Names for sets of address atoms and services: host names where a set is a whole
//! host, addresses where it is part of one, "any other address" for what no host names.

use std::collections::BTreeSet;

use gk_policy::Policy;

use super::space::{AddrAtom, Net, Service, Span};

#[derive(Debug)]
struct HostLabel {
    label: String,
    nets: Vec<Net>,
    atoms: BTreeSet<usize>,
}

/// Host names of both policies over the atoms of a diff.
#[derive(Debug)]
pub(super) struct Labels {
    hosts: Vec<HostLabel>,
    atoms: Vec<AddrAtom>,
}

impl Labels {
    pub fn new(old: &Policy, new: &Policy, atoms: &[AddrAtom]) -> Labels {
        let mut hosts: Vec<HostLabel> = Vec::new();
        let mut add = |label: String, nets: Vec<Net>| {
            let set = atoms
                .iter()
                .enumerate()
                .filter(|(_, a)| nets.iter().any(|n| a.net.inside(n)))
                .map(|(i, _)| i)
                .collect();
            hosts.push(HostLabel {
                label,
                nets,
                atoms: set,
            });
        };
        let nets = |h: &gk_policy::Host| -> Vec<Net> { h.nets.iter().map(Net::of).collect() };
        for h in new.hosts() {
            add(h.name.clone(), nets(h));
        }
        for h in old.hosts() {
            match new.hosts().iter().find(|n| n.name == h.name) {
                None => add(h.name.clone(), nets(h)),
                Some(n) if n.nets != h.nets => {
                    add(format!("{} (as in the old policy)", h.name), nets(h))
                }
                Some(_) => {}
            }
        }
        Labels {
            hosts,
            atoms: atoms.to_vec(),
        }
    }

    /// Names for a set of atoms: `hmi, eng`, `hmi (10.10.0.22)`, `any other IPv4
    /// address`, `any`.
    pub fn addresses(&self, set: &BTreeSet<usize>) -> Vec<String> {
        let family = |v6: bool| -> BTreeSet<usize> {
            (0..self.atoms.len())
                .filter(|&i| self.atoms[i].net.v6 == v6)
                .collect()
        };
        let (v4, v6) = (family(false), family(true));
        let mut left = set.clone();
        let mut out = Vec::new();
        if left.is_superset(&v4) && left.is_superset(&v6) {
            return vec!["any".to_string()];
        }
        for (fam, name) in [(&v4, "any IPv4 address"), (&v6, "any IPv6 address")] {
            if left.is_superset(fam) {
                out.push(name.to_string());
                left.retain(|i| !fam.contains(i));
                continue;
            }
            // "Anyone but a few": say who is left out, when that is shorter.
            let mine: BTreeSet<usize> = left.intersection(fam).copied().collect();
            let root = fam
                .iter()
                .any(|&i| self.atoms[i].net.is_root() && mine.contains(&i));
            if root {
                let others: BTreeSet<usize> = fam.difference(&mine).copied().collect();
                let (yes, no) = (self.named(&mine), self.named(&others));
                if no.len() < yes.len() || (no.len() == yes.len() && mine.len() > 1) {
                    out.push(format!("{name} except {}", no.join(", ")));
                    left.retain(|i| !fam.contains(i));
                }
            }
        }
        out.extend(self.named(&left));
        out
    }

    /// Names for atoms of one family, without "any" shortcuts.
    fn named(&self, set: &BTreeSet<usize>) -> Vec<String> {
        let mut left = set.clone();
        let mut out = Vec::new();
        // Whole hosts, largest first.
        let mut order: Vec<&HostLabel> =
            self.hosts.iter().filter(|h| !h.atoms.is_empty()).collect();
        order.sort_by_key(|h| std::cmp::Reverse(h.atoms.len()));
        for h in order {
            if h.atoms.is_subset(&left) {
                out.push(h.label.clone());
                left.retain(|i| !h.atoms.contains(i));
            }
        }
        for i in left {
            out.push(self.atom(i));
        }
        out
    }

    /// One atom on its own: `hmi (10.10.0.22)`, `other addresses of cell (10.10.0.0/24)`.
    fn atom(&self, i: usize) -> String {
        let a = &self.atoms[i];
        if a.net.is_root() {
            let v = if a.net.v6 { "IPv6" } else { "IPv4" };
            return format!("any other {v} address");
        }
        let owner = self.hosts.iter().find(|h| h.nets.contains(&a.net));
        match (owner, a.whole) {
            (Some(h), true) => format!("{} ({})", h.label, a.net.text()),
            (Some(h), false) => format!("other addresses of {} ({})", h.label, a.net.text()),
            (None, _) => a.net.text(),
        }
    }
}

/// `tcp 502,20000-20010; icmp echo-request; other IP protocols`.
pub(super) fn services(all: &[Service], set: &BTreeSet<usize>) -> Vec<String> {
    // A transport or ICMP family's pieces, by name.
    let of = |name: &str, s: &Service| -> Option<Span> {
        match (name, s) {
            ("tcp", Service::Tcp(r))
            | ("udp", Service::Udp(r))
            | ("icmp", Service::Icmp(r))
            | ("icmpv6", Service::Icmpv6(r)) => Some(*r),
            _ => None,
        }
    };
    let mut out = Vec::new();
    for name in ["tcp", "udp", "icmp", "icmpv6"] {
        let every = all.iter().filter(|s| of(name, s).is_some()).count();
        let mine: Vec<Span> = set.iter().filter_map(|&i| of(name, &all[i])).collect();
        let whole = !mine.is_empty() && mine.len() == every;
        let spans = merge(mine);
        if spans.is_empty() {
            continue;
        }
        if whole {
            let what = if name.starts_with("icmp") {
                "every type"
            } else {
                "every port"
            };
            out.push(format!("{name} ({what})"));
            continue;
        }
        let icmp = name.starts_with("icmp");
        // Most of the space: say what is left out.
        let max: u32 = if icmp { 255 } else { 65535 };
        let count: u64 = spans.iter().map(|&(lo, hi)| u64::from(hi - lo) + 1).sum();
        let (spans, except) = if count > u64::from(max) / 2 {
            (complement(&spans, max), true)
        } else {
            (spans, false)
        };
        let items: Vec<String> = if icmp {
            let v6 = name != "icmp";
            spans
                .iter()
                .flat_map(|&(lo, hi)| {
                    if hi - lo > 8 {
                        vec![format!("types {lo}-{hi}")]
                    } else {
                        (lo..=hi).map(|t| icmp_name(v6, t)).collect()
                    }
                })
                .collect()
        } else {
            spans
                .iter()
                .map(|&(lo, hi)| {
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}-{hi}")
                    }
                })
                .collect()
        };
        if except {
            let what = if icmp { "every type" } else { "every port" };
            out.push(format!("{name} ({what} except {})", items.join(",")));
        } else {
            out.push(format!("{name} {}", items.join(",")));
        }
    }
    for &i in set {
        match all[i] {
            Service::Proto(n) => out.push(format!("IP protocol {n}")),
            Service::Other(_) => out.push("other IP protocols".to_string()),
            _ => {}
        }
    }
    out
}

/// `0..=max` without `spans` (sorted, merged).
fn complement(spans: &[Span], max: u32) -> Vec<Span> {
    let mut out = Vec::new();
    let mut next = 0u64;
    for &(lo, hi) in spans {
        if u64::from(lo) > next {
            out.push((next as u32, lo - 1));
        }
        next = u64::from(hi) + 1;
    }
    if next <= u64::from(max) {
        out.push((next as u32, max));
    }
    out
}

fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_unstable();
    let mut out: Vec<Span> = Vec::new();
    for (lo, hi) in spans {
        match out.last_mut() {
            Some(last) if u64::from(lo) <= u64::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// An ICMP (`v6`: ICMPv6) type by the name policies use, or its number.
pub(super) fn icmp_name(v6: bool, t: u32) -> String {
    u8::try_from(t)
        .ok()
        .and_then(|t| gk_policy::icmp_type_name(v6, t))
        .map_or_else(|| t.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::super::space::address_atoms;
    use super::*;

    fn policy(hosts: &str) -> Policy {
        let text = format!("schema = 1\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n{hosts}");
        Policy::from_toml(&text, "t.toml").unwrap().0
    }

    #[test]
    fn sets_of_atoms_read_as_hosts() {
        let p = policy(
            "[hosts.plc]\nip = \"10.10.0.10\"\n[hosts.hmi]\nip = [\"10.10.0.21\", \"10.10.0.22\"]\n\
             [hosts.cell]\nip = \"10.10.0.0/24\"\n",
        );
        let atoms = address_atoms(
            p.hosts()
                .iter()
                .flat_map(|h| h.nets.iter().map(Net::of))
                .collect::<Vec<_>>(),
        );
        let labels = Labels::new(&p, &p, &atoms);
        let idx = |s: &str| atoms.iter().position(|a| a.net.text() == s).unwrap();
        let set = |v: &[&str]| v.iter().map(|s| idx(s)).collect::<BTreeSet<usize>>();
        assert_eq!(
            labels.addresses(&set(&["10.10.0.21", "10.10.0.22"])),
            ["hmi"]
        );
        assert_eq!(
            labels.addresses(&set(&["10.10.0.22"])),
            ["hmi (10.10.0.22)"]
        );
        assert_eq!(
            labels.addresses(&set(&["10.10.0.0/24"])),
            ["other addresses of cell (10.10.0.0/24)"]
        );
        assert_eq!(
            labels.addresses(&set(&[
                "10.10.0.0/24",
                "10.10.0.10",
                "10.10.0.21",
                "10.10.0.22"
            ])),
            ["cell"]
        );
        assert_eq!(
            labels.addresses(&set(&["0.0.0.0/0"])),
            ["any other IPv4 address"]
        );
        assert_eq!(
            labels.addresses(&set(&[
                "0.0.0.0/0",
                "10.10.0.0/24",
                "10.10.0.10",
                "10.10.0.21"
            ])),
            ["any IPv4 address except hmi (10.10.0.22)"]
        );
        let all: BTreeSet<usize> = (0..atoms.len()).collect();
        assert_eq!(labels.addresses(&all), ["any"]);
    }

    #[test]
    fn services_merge_ports_and_name_icmp_types() {
        let all = [
            Service::Tcp((0, 501)),
            Service::Tcp((502, 502)),
            Service::Tcp((503, 503)),
            Service::Tcp((504, 65535)),
            Service::Icmp((0, 7)),
            Service::Icmp((8, 8)),
            Service::Icmp((9, 255)),
            Service::Other(253),
        ];
        let set: BTreeSet<usize> = [1, 2, 5, 7].into();
        assert_eq!(
            services(&all, &set),
            ["tcp 502-503", "icmp echo-request", "other IP protocols"]
        );
        let set: BTreeSet<usize> = [0, 1, 2, 3].into();
        assert_eq!(services(&all, &set), ["tcp (every port)"]);
        let set: BTreeSet<usize> = [0, 2, 3, 4, 6].into();
        assert_eq!(
            services(&all, &set),
            [
                "tcp (every port except 502)",
                "icmp (every type except echo-request)"
            ]
        );
    }
}
