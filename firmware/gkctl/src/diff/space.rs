//! The probe space: every conversation two policies can tell apart, one representative
//! each, and the grouping of probes back into a few readable boxes.
//!
//! A conversation's first packet is judged on five things: its source and destination
//! address, its IP protocol, its destination port and its ICMP type. Each of them is cut
//! into *atoms*, pieces inside which no rule of either policy can tell two values apart:
//!
//! - addresses: every host network of both policies, and the IPv4 and IPv6 spaces
//!   themselves, form a tree (CIDRs nest or are disjoint); an atom is a network minus the
//!   smaller networks inside it, represented by one address that is in it and in none of
//!   them ("any other address" for what no host names);
//! - ports and ICMP types: the elementary intervals between the edges of every rule's
//!   ranges;
//! - IP protocols: TCP, UDP, ICMP or ICMPv6, each number a rule names, and one number
//!   no rule names.
//!
//! Since rules only test membership in those sets, one probe per combination of atoms
//! decides exactly what every conversation of the combination gets. The probe set is
//! complete, not sampled.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use gk_packet::IpProtocol;
use gk_policy::{FlowQuery, IpNet, Policy, Proto};

/// An inclusive interval of integers.
pub(super) type Span = (u32, u32);

/// Cuts `domain` (sorted, disjoint intervals) at every edge of every interval of `sets`:
/// the pieces no set can tell apart inside.
pub(super) fn cut<'a>(domain: &[Span], sets: impl IntoIterator<Item = &'a [Span]>) -> Vec<Span> {
    let mut edges = BTreeSet::new();
    for set in sets {
        for &(lo, hi) in set {
            edges.insert(u64::from(lo));
            edges.insert(u64::from(hi) + 1);
        }
    }
    let mut out = Vec::new();
    for &(lo, hi) in domain {
        let mut start = u64::from(lo);
        if lo < hi {
            for &e in edges.range(u64::from(lo) + 1..=u64::from(hi)) {
                out.push((start as u32, (e - 1) as u32));
                start = e;
            }
        }
        out.push((start as u32, hi));
    }
    out
}

/// A network as an inclusive range of addresses (IPv4 addresses as the low 32 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Net {
    pub v6: bool,
    pub lo: u128,
    pub hi: u128,
}

impl Net {
    pub fn of(net: &IpNet) -> Net {
        let num = |a: IpAddr| match a {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        Net {
            v6: matches!(net, IpNet::V6(_)),
            lo: num(net.network()),
            hi: num(net.broadcast()),
        }
    }

    /// Every IPv4 or every IPv6 address.
    pub fn root(v6: bool) -> Net {
        Net {
            v6,
            lo: 0,
            hi: if v6 { u128::MAX } else { u128::from(u32::MAX) },
        }
    }

    pub fn is_root(&self) -> bool {
        *self == Net::root(self.v6)
    }

    pub fn contains(&self, a: u128) -> bool {
        self.lo <= a && a <= self.hi
    }

    /// Every address of `self` is in `other`.
    pub fn inside(&self, other: &Net) -> bool {
        self.v6 == other.v6 && other.lo <= self.lo && self.hi <= other.hi
    }

    pub fn addr(&self, a: u128) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            IpAddr::V4(Ipv4Addr::from(a as u32))
        }
    }

    /// `10.10.0.10` for one address, `10.10.0.0/24` for a network.
    pub fn text(&self) -> String {
        if self.lo == self.hi {
            return self.addr(self.lo).to_string();
        }
        let bits = if self.v6 { 128 } else { 32 };
        let prefix = bits - (self.hi - self.lo + 1).trailing_zeros();
        format!("{}/{prefix}", self.addr(self.lo))
    }
}

/// A piece of the address space no host network of either policy cuts further.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct AddrAtom {
    /// The smallest network (of a host, or a whole address family) the atom is in.
    pub net: Net,
    /// One address of the atom: in `net`, in no smaller network.
    pub rep: IpAddr,
    /// The atom is all of `net` (no smaller network inside it).
    pub whole: bool,
}

/// The atoms of the address space cut by `nets` (IPv4 and IPv6 roots are added).
pub(super) fn address_atoms(nets: impl IntoIterator<Item = Net>) -> Vec<AddrAtom> {
    let mut all: BTreeSet<Net> = nets.into_iter().collect();
    all.insert(Net::root(false));
    all.insert(Net::root(true));
    let mut atoms = Vec::new();
    for n in &all {
        let inner: Vec<Net> = all
            .iter()
            .filter(|c| *c != n && c.inside(n))
            .copied()
            .collect();
        let mut candidates: Vec<u128> = Vec::new();
        if n.is_root() {
            // Documentation addresses read better than 0.0.0.1 for "anyone else".
            candidates.push(if n.v6 {
                u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
            } else {
                u128::from(u32::from(Ipv4Addr::new(192, 0, 2, 1)))
            });
        }
        if n.hi - n.lo >= 2 {
            candidates.push(n.lo + 1);
        }
        candidates.extend([n.lo, n.hi]);
        for c in &inner {
            if c.lo > n.lo {
                candidates.push(c.lo - 1);
            }
            if c.hi < n.hi {
                candidates.push(c.hi + 1);
            }
        }
        let rep = candidates
            .into_iter()
            .find(|&a| n.contains(a) && !inner.iter().any(|c| c.contains(a)));
        if let Some(rep) = rep {
            atoms.push(AddrAtom {
                net: *n,
                rep: n.addr(rep),
                whole: inner.is_empty(),
            });
        }
    }
    atoms
}

/// What a conversation runs on, as far as rules can tell: a piece of the TCP or UDP port
/// space, of the ICMP or ICMPv6 type space, or another IP protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Service {
    Tcp(Span),
    Udp(Span),
    Icmp(Span),
    Icmpv6(Span),
    /// An IP protocol a rule names by number.
    Proto(u8),
    /// Every IP protocol no rule names (the number is a representative).
    Other(u8),
}

impl Service {
    pub fn v6_only(&self) -> bool {
        matches!(self, Service::Icmpv6(_))
    }

    pub fn v4_only(&self) -> bool {
        matches!(self, Service::Icmp(_))
    }
}

/// Runs of an ICMP type set, as intervals.
fn icmp_runs(types: &gk_policy::IcmpTypes) -> Vec<Span> {
    let mut runs: Vec<Span> = Vec::new();
    for t in types.iter() {
        let t = u32::from(t);
        match runs.last_mut() {
            Some(last) if last.1 + 1 == t => last.1 = t,
            _ => runs.push((t, t)),
        }
    }
    runs
}

/// Every service the rules of `policies` can tell apart.
pub(super) fn services(policies: &[&Policy]) -> Vec<Service> {
    let rules = || policies.iter().flat_map(|p| p.rules());
    let ports = |tcp: bool| -> Vec<Vec<Span>> {
        rules()
            .filter(|r| match r.proto {
                Proto::Tcp => tcp,
                Proto::Udp => !tcp,
                Proto::App(p) => {
                    if tcp {
                        !p.tcp_ports().is_empty()
                    } else {
                        !p.udp_ports().is_empty()
                    }
                }
                _ => false,
            })
            .map(|r| {
                r.ports
                    .ranges()
                    .iter()
                    .map(|&(lo, hi)| (u32::from(lo), u32::from(hi)))
                    .collect()
            })
            .collect()
    };
    let icmp = |proto: Proto| -> Vec<Vec<Span>> {
        rules()
            .filter(|r| r.proto == proto)
            .map(|r| icmp_runs(&r.icmp))
            .collect()
    };
    let mut out = Vec::new();
    let tcp = ports(true);
    out.extend(
        cut(&[(0, 65535)], tcp.iter().map(Vec::as_slice))
            .into_iter()
            .map(Service::Tcp),
    );
    let udp = ports(false);
    out.extend(
        cut(&[(0, 65535)], udp.iter().map(Vec::as_slice))
            .into_iter()
            .map(Service::Udp),
    );
    let v4 = icmp(Proto::Icmp);
    out.extend(
        cut(&[(0, 255)], v4.iter().map(Vec::as_slice))
            .into_iter()
            .map(Service::Icmp),
    );
    let v6 = icmp(Proto::Icmpv6);
    out.extend(
        cut(&[(0, 255)], v6.iter().map(Vec::as_slice))
            .into_iter()
            .map(Service::Icmpv6),
    );
    let named: BTreeSet<u8> = rules()
        .filter_map(|r| match r.proto {
            Proto::Other(n) => Some(n),
            _ => None,
        })
        .collect();
    out.extend(named.iter().map(|&n| Service::Proto(n)));
    // Experimental numbers first (RFC 3692), then anything unassigned-looking.
    let taken = |n: u8| named.contains(&n) || matches!(n, 0 | 1 | 6 | 17 | 43 | 44 | 58 | 59 | 60);
    if let Some(n) = [253u8, 254]
        .into_iter()
        .chain(143..=252)
        .chain(2..=142)
        .find(|&n| !taken(n))
    {
        out.push(Service::Other(n));
    }
    out
}

/// The first packet of a conversation from `src` to `dst` on `service`.
pub(super) fn query(src: IpAddr, dst: IpAddr, service: Service) -> FlowQuery {
    let (protocol, dst_port, icmp_type) = match service {
        Service::Tcp((lo, _)) => (6, lo as u16, None),
        Service::Udp((lo, _)) => (17, lo as u16, None),
        Service::Icmp((lo, _)) => (1, 0, Some(lo as u8)),
        Service::Icmpv6((lo, _)) => (58, 0, Some(lo as u8)),
        Service::Proto(n) | Service::Other(n) => (n, 0, None),
    };
    FlowQuery {
        src,
        dst,
        protocol: IpProtocol::from(protocol),
        src_port: 49152,
        dst_port,
        icmp_type,
    }
}

/// A probe: indices of a source atom, a destination atom and a service.
pub(super) type Cell = [usize; 3];

/// Every probe: pairs of atoms of one address family, with the services of that family.
pub(super) fn cells(atoms: &[AddrAtom], services: &[Service]) -> Vec<Cell> {
    let mut out = Vec::new();
    for (s, src) in atoms.iter().enumerate() {
        for (d, dst) in atoms.iter().enumerate() {
            if src.net.v6 != dst.net.v6 {
                continue;
            }
            for (k, svc) in services.iter().enumerate() {
                if (src.net.v6 && svc.v4_only()) || (!src.net.v6 && svc.v6_only()) {
                    continue;
                }
                out.push([s, d, k]);
            }
        }
    }
    out
}

/// Regroups points (tuples of coordinates) into few boxes (products of sets of
/// coordinates) whose union is exactly the points. Tries every order of the dimensions
/// (up to five) and keeps the one with the fewest boxes.
pub(super) fn boxes<T: Ord + Clone>(points: &BTreeSet<Vec<T>>) -> Vec<Vec<BTreeSet<T>>> {
    let Some(first) = points.iter().next() else {
        return Vec::new();
    };
    let dims = first.len();
    let mut orders = vec![(0..dims).collect::<Vec<usize>>()];
    if dims <= 5 && points.len() * 120 <= 2_000_000 {
        orders = permutations(dims);
    }
    let mut best: Option<Vec<Vec<BTreeSet<T>>>> = None;
    for order in orders {
        let permuted: Vec<Vec<T>> = points
            .iter()
            .map(|p| order.iter().map(|&i| p[i].clone()).collect())
            .collect();
        let found: Vec<Vec<BTreeSet<T>>> = decompose(permuted)
            .into_iter()
            .map(|b| {
                let mut back: Vec<Option<BTreeSet<T>>> = vec![None; dims];
                for (pos, set) in b.into_iter().enumerate() {
                    back[order[pos]] = Some(set);
                }
                back.into_iter().map(Option::unwrap_or_default).collect()
            })
            .collect();
        if best.as_ref().is_none_or(|b| found.len() < b.len()) {
            best = Some(found);
        }
    }
    let mut best = best.unwrap_or_default();
    best.sort();
    best
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out.sort();
    out
}

/// Groups points by their first coordinate, merges first coordinates whose remaining
/// points are the same, and recurses on the rest.
fn decompose<T: Ord + Clone>(points: Vec<Vec<T>>) -> Vec<Vec<BTreeSet<T>>> {
    if points.first().is_none_or(Vec::is_empty) {
        return vec![Vec::new()];
    }
    let mut by_first: BTreeMap<T, BTreeSet<Vec<T>>> = BTreeMap::new();
    for p in points {
        let mut it = p.into_iter();
        let Some(head) = it.next() else { continue };
        by_first.entry(head).or_default().insert(it.collect());
    }
    let mut by_rest: BTreeMap<BTreeSet<Vec<T>>, BTreeSet<T>> = BTreeMap::new();
    for (head, rest) in by_first {
        by_rest.entry(rest).or_default().insert(head);
    }
    let mut out = Vec::new();
    for (rest, heads) in by_rest {
        for tail in decompose(rest.into_iter().collect()) {
            let mut b = Vec::with_capacity(tail.len() + 1);
            b.push(heads.clone());
            b.extend(tail);
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Net {
        Net::of(&s.parse::<IpNet>().unwrap())
    }

    #[test]
    fn cut_splits_at_every_edge_and_nowhere_else() {
        assert_eq!(cut(&[(0, 65535)], []), vec![(0, 65535)]);
        let a: &[Span] = &[(502, 502)];
        let b: &[Span] = &[(500, 510), (65535, 65535)];
        assert_eq!(
            cut(&[(0, 65535)], [a, b]),
            vec![
                (0, 499),
                (500, 501),
                (502, 502),
                (503, 510),
                (511, 65534),
                (65535, 65535)
            ]
        );
        // A domain with a hole keeps it.
        let c: &[Span] = &[(0, 300)];
        assert_eq!(
            cut(&[(1, 127), (256, 511)], [c]),
            vec![(1, 127), (256, 300), (301, 511)]
        );
    }

    #[test]
    fn address_atoms_have_one_representative_per_piece() {
        let atoms = address_atoms([
            net("10.10.0.0/24"),
            net("10.10.0.10/32"),
            net("10.10.0.21/32"),
            net("2001:db8:1::10/128"),
        ]);
        let find = |s: &str| atoms.iter().find(|a| a.net == net(s)).unwrap();
        // Every atom's representative is in its network and in no smaller one.
        for a in &atoms {
            let inner = atoms
                .iter()
                .filter(|b| b.net != a.net && b.net.inside(&a.net));
            let rep = match a.rep {
                IpAddr::V4(x) => u128::from(u32::from(x)),
                IpAddr::V6(x) => u128::from(x),
            };
            assert!(a.net.contains(rep), "{a:?}");
            for b in inner {
                assert!(!b.net.contains(rep), "{a:?} in {b:?}");
            }
        }
        assert_eq!(atoms.len(), 6, "{atoms:#?}");
        assert_eq!(find("10.10.0.10/32").rep.to_string(), "10.10.0.10");
        assert!(find("10.10.0.10/32").whole);
        let cell = find("10.10.0.0/24");
        assert!(!cell.whole);
        assert_eq!(cell.rep.to_string(), "10.10.0.1");
        assert_eq!(find("0.0.0.0/0").rep.to_string(), "192.0.2.1");
        assert_eq!(find("::/0").rep.to_string(), "2001:db8::1");
    }

    #[test]
    fn a_network_covered_by_its_parts_has_no_atom_of_its_own() {
        let atoms = address_atoms([net("10.0.0.0/31"), net("10.0.0.0/32"), net("10.0.0.1/32")]);
        assert!(!atoms.iter().any(|a| a.net == net("10.0.0.0/31")));
        // A representative avoids the network that holds 192.0.2.1.
        let atoms = address_atoms([net("192.0.2.0/24")]);
        let root = atoms.iter().find(|a| a.net.is_root() && !a.net.v6).unwrap();
        assert_eq!(root.rep.to_string(), "0.0.0.1");
    }

    fn policy(rules: &str) -> Policy {
        let text = format!(
            "schema = 1\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n\
             [hosts.a]\nip = \"10.0.0.1\"\n[hosts.b]\nip = \"10.0.0.2\"\n{rules}"
        );
        Policy::from_toml(&text, "t.toml").unwrap().0
    }

    #[test]
    fn services_cut_ports_icmp_types_and_protocols() {
        let p = policy(
            "[[rule]]\nname = \"r1\"\nfrom = \"a\"\nto = \"b\"\nproto = \"tcp\"\nports = [502, \"600-700\"]\naction = \"allow\"\n\
             [[rule]]\nname = \"r2\"\nfrom = \"a\"\nto = \"b\"\nproto = \"icmp\"\nicmp = [\"echo-request\"]\naction = \"allow\"\n\
             [[rule]]\nname = \"r3\"\nfrom = \"a\"\nto = \"b\"\nproto = 112\naction = \"allow\"\n\
             [[rule]]\nname = \"r4\"\nfrom = \"a\"\nto = \"b\"\nproto = \"bacnet\"\naction = \"allow\"\n",
        );
        let s = services(&[&p]);
        let tcp: Vec<Span> = s
            .iter()
            .filter_map(|s| match s {
                Service::Tcp(r) => Some(*r),
                _ => None,
            })
            .collect();
        assert_eq!(
            tcp,
            vec![(0, 501), (502, 502), (503, 599), (600, 700), (701, 65535)]
        );
        assert!(s.contains(&Service::Udp((47808, 47808))));
        assert!(s.contains(&Service::Udp((47809, 65535))));
        assert!(s.contains(&Service::Icmp((8, 8))));
        assert!(s.contains(&Service::Icmp((9, 255))));
        assert!(s.contains(&Service::Icmpv6((0, 255))));
        assert!(s.contains(&Service::Proto(112)));
        assert!(s.contains(&Service::Other(253)));
        // Port boundaries: lo-1, lo, hi, hi+1 are each in a different piece than their
        // neighbour across the edge.
        let q = query(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            Service::Tcp((600, 700)),
        );
        assert_eq!((u8::from(q.protocol), q.dst_port), (6, 600));
        assert_eq!(p.evaluate(&q).rule.map(|r| r.0), Some(0));
    }

    #[test]
    fn cells_pair_atoms_of_one_family() {
        let atoms = address_atoms([net("10.0.0.1/32"), net("2001:db8::10/128")]);
        let svcs = [
            Service::Tcp((0, 65535)),
            Service::Icmp((0, 255)),
            Service::Icmpv6((0, 255)),
        ];
        let cells = cells(&atoms, &svcs);
        for [s, d, k] in &cells {
            assert_eq!(atoms[*s].net.v6, atoms[*d].net.v6);
            assert!(!(atoms[*s].net.v6 && svcs[*k].v4_only()));
            assert!(atoms[*s].net.v6 || !svcs[*k].v6_only());
        }
        // Two IPv4 atoms (the host, the rest) and two IPv6 ones: 4 + 4 pairs, each with
        // two services.
        assert_eq!(cells.len(), 16);
    }

    #[test]
    fn boxes_regroup_products_exactly() {
        let mut points = BTreeSet::new();
        for a in [1, 2] {
            for b in [10, 11, 12] {
                points.insert(vec![a, b, 7]);
            }
        }
        points.insert(vec![3, 10, 8]);
        let found = boxes(&points);
        assert_eq!(found.len(), 2, "{found:?}");
        let mut back = BTreeSet::new();
        for b in &found {
            for x in &b[0] {
                for y in &b[1] {
                    for z in &b[2] {
                        back.insert(vec![*x, *y, *z]);
                    }
                }
            }
        }
        assert_eq!(back, points);
        assert!(boxes::<u8>(&BTreeSet::new()).is_empty());
    }
}
