//! Property tests: loading never panics, and `evaluate` agrees with a naive reference
//! evaluator over random policies and random queries.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use gk_packet::IpProtocol;
use gk_policy::{Action, FlowQuery, IpNet, Policy, RuleId};
use proptest::prelude::*;

const VALID: &str = include_str!("../../../config/examples/press-line.toml");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = Policy::from_toml(&text, "fuzz.toml");
    }

    #[test]
    fn never_panics_on_toml_like_text(text in "[\\[\\]a-z0-9=\"., \n#{}/:_-]{0,300}") {
        let _ = Policy::from_toml(&text, "fuzz.toml");
    }

    #[test]
    fn never_panics_on_mutated_policies(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..4u8, any::<char>()), 1..8)
    ) {
        let mut text: Vec<char> = VALID.chars().collect();
        for (at, op, c) in edits {
            let i = at.index(text.len() + 1);
            match op {
                0 => text.insert(i, c),
                1 if i < text.len() => { text.remove(i); }
                2 if i < text.len() => text[i] = c,
                // Duplicate a line-sized chunk: repeated keys and tables.
                _ => {
                    let chunk: Vec<char> = text[i.min(text.len())..].iter().take(40).copied().collect();
                    text.splice(i..i, chunk);
                }
            }
        }
        let text: String = text.into_iter().collect();
        if let Err(e) = Policy::from_toml(&text, "fuzz.toml") {
            prop_assert!(e.errors().count() > 0);
            for d in &e.diagnostics {
                prop_assert!(d.line >= 1 && d.column >= 1, "{}", d);
            }
        }
    }

    #[test]
    fn evaluate_agrees_with_a_reference(model in model(), queries in prop::collection::vec(query(), 64)) {
        let text = model.to_toml();
        let (policy, _) = Policy::from_toml(&text, "model.toml").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(policy.rules().len(), model.rules.len());
        for q in &queries {
            let got = policy.evaluate(q);
            let want = model.evaluate(q);
            prop_assert_eq!(got.rule.map(|RuleId(i)| usize::from(i)), want.map(|(i, _)| i), "{:?}\n{}", q, text);
            prop_assert_eq!(got.action, want.map_or(Action::Deny, |(_, a)| a));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum MProto {
    Any,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Gre,
}

#[derive(Debug, Clone)]
struct MRule {
    /// `None` is "any"; otherwise host indexes.
    from: Option<Vec<usize>>,
    to: Option<Vec<usize>>,
    proto: MProto,
    ports: Option<Vec<(u16, u16)>>,
    icmp: Option<Vec<u8>>,
    action: Action,
}

#[derive(Debug, Clone)]
struct Model {
    hosts: Vec<Vec<IpNet>>,
    rules: Vec<MRule>,
}

impl Model {
    fn to_toml(&self) -> String {
        let mut t =
            String::from("schema = 1\n[gatekeeper]\nname = \"model\"\nmode = \"enforce\"\n");
        for (i, nets) in self.hosts.iter().enumerate() {
            let nets: Vec<String> = nets.iter().map(|n| format!("\"{n}\"")).collect();
            writeln!(t, "[hosts.h{i}]\nip = [{}]", nets.join(", ")).unwrap();
        }
        let peer = |p: &Option<Vec<usize>>| match p {
            None => "\"any\"".to_string(),
            Some(hosts) => {
                let names: Vec<String> = hosts.iter().map(|h| format!("\"h{h}\"")).collect();
                format!("[{}]", names.join(", "))
            }
        };
        for (i, r) in self.rules.iter().enumerate() {
            writeln!(
                t,
                "[[rule]]\nname = \"r{i}\"\nfrom = {}\nto = {}",
                peer(&r.from),
                peer(&r.to)
            )
            .unwrap();
            let proto = match r.proto {
                MProto::Any => "\"any\"",
                MProto::Tcp => "\"tcp\"",
                MProto::Udp => "\"udp\"",
                MProto::Icmp => "\"icmp\"",
                MProto::Icmpv6 => "\"icmpv6\"",
                MProto::Gre => "47",
            };
            writeln!(t, "proto = {proto}").unwrap();
            if let Some(ports) = &r.ports {
                let ports: Vec<String> = ports
                    .iter()
                    .map(|(lo, hi)| format!("\"{lo}-{hi}\""))
                    .collect();
                writeln!(t, "ports = [{}]", ports.join(", ")).unwrap();
            }
            if let Some(types) = &r.icmp {
                writeln!(t, "icmp = {types:?}").unwrap();
            }
            writeln!(t, "action = \"{}\"", r.action).unwrap();
        }
        t
    }

    /// The obvious, slow reading of the semantics.
    fn evaluate(&self, q: &FlowQuery) -> Option<(usize, Action)> {
        let proto = u8::from(q.protocol);
        let side = |p: &Option<Vec<usize>>, ip: IpAddr| match p {
            None => true,
            Some(hosts) => hosts
                .iter()
                .any(|&h| self.hosts[h].iter().any(|n| n.contains(&ip))),
        };
        self.rules
            .iter()
            .position(|r| {
                let l4 = match r.proto {
                    MProto::Any => true,
                    MProto::Tcp | MProto::Udp => {
                        proto == if r.proto == MProto::Tcp { 6 } else { 17 }
                            && r.ports.as_ref().is_none_or(|ps| {
                                ps.iter().any(|&(lo, hi)| (lo..=hi).contains(&q.dst_port))
                            })
                    }
                    MProto::Icmp | MProto::Icmpv6 => {
                        proto == if r.proto == MProto::Icmp { 1 } else { 58 }
                            && r.icmp
                                .as_ref()
                                .is_none_or(|ts| q.icmp_type.is_some_and(|t| ts.contains(&t)))
                    }
                    MProto::Gre => proto == 47,
                };
                l4 && side(&r.from, q.src) && side(&r.to, q.dst)
            })
            .map(|i| (i, self.rules[i].action))
    }
}

fn net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (0..16u8, 28..=32u8).prop_map(|(x, len)| IpNet::new(
            Ipv4Addr::new(10, 0, 0, x).into(),
            len
        )
        .unwrap()
        .trunc()),
        (0..16u16, 124..=128u8).prop_map(|(x, len)| {
            IpNet::new(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, x).into(), len)
                .unwrap()
                .trunc()
        }),
    ]
}

fn model() -> impl Strategy<Value = Model> {
    prop::collection::vec(prop::collection::vec(net(), 1..3), 1..5).prop_flat_map(|hosts| {
        let n = hosts.len();
        let peer = prop::option::weighted(0.7, prop::collection::btree_set(0..n, 1..3))
            .prop_map(|s| s.map(|s| s.into_iter().collect::<Vec<_>>()));
        let proto = prop_oneof![
            Just(MProto::Any),
            Just(MProto::Tcp),
            Just(MProto::Udp),
            Just(MProto::Icmp),
            Just(MProto::Icmpv6),
            Just(MProto::Gre)
        ];
        let ports = prop::option::of(prop::collection::vec(
            (0..20u16, 0..6u16).prop_map(|(lo, w)| (lo, lo + w)),
            1..3,
        ));
        let icmp = prop::option::of(prop::collection::vec(0..12u8, 1..3));
        let action = prop_oneof![Just(Action::Allow), Just(Action::Deny), Just(Action::Alert)];
        let rule = (peer.clone(), peer, proto, ports, icmp, action).prop_map(
            |(from, to, proto, ports, icmp, action)| MRule {
                from,
                to,
                proto,
                ports: ports.filter(|_| matches!(proto, MProto::Tcp | MProto::Udp)),
                icmp: icmp.filter(|_| matches!(proto, MProto::Icmp | MProto::Icmpv6)),
                action,
            },
        );
        prop::collection::vec(rule, 0..12).prop_map(move |rules| Model {
            hosts: hosts.clone(),
            rules,
        })
    })
}

fn query() -> impl Strategy<Value = FlowQuery> {
    let addrs = prop_oneof![
        (0..20u8, 0..20u8).prop_map(|(a, b)| (
            Ipv4Addr::new(10, 0, 0, a).into(),
            Ipv4Addr::new(10, 0, 0, b).into()
        )),
        (0..20u16, 0..20u16).prop_map(|(a, b)| {
            let v6 = |x| IpAddr::from(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, x));
            (v6(a), v6(b))
        }),
    ];
    let proto = prop::sample::select(vec![1u8, 6, 17, 58, 47, 112]);
    (addrs, proto, 0..30u16, 0..30u16, 0..14u8).prop_map(|((src, dst), proto, sp, dp, t)| {
        FlowQuery {
            src,
            dst,
            protocol: IpProtocol::from(proto),
            src_port: sp,
            dst_port: dp,
            icmp_type: matches!(proto, 1 | 58).then_some(t),
        }
    })
}
