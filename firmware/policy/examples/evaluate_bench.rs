//! Micro benchmark of the per-flow and per-packet look-ups on a 100-rule policy.
//!
//! `cargo run --release -p gk-policy --example evaluate_bench`

use std::fmt::Write;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use gk_packet::{EtherType, IpProtocol, MacAddr};
use gk_policy::{FlowQuery, Policy};

fn main() {
    let mut text = String::from("schema = 1\n[gatekeeper]\nname = \"bench\"\nmode = \"enforce\"\n");
    text.push_str("[l2]\nethertypes = [\"arp\", \"ipv4\", \"ipv6\", \"lldp\", \"profinet\", \"ptp\"]\nvlans = [\"untagged\", \"10-20\"]\n");
    for h in 0..50 {
        writeln!(text, "[hosts.h{h}]\nip = [\"10.0.{h}.0/28\", \"10.1.{h}.7\"]\nmac = \"02:00:00:00:01:{h:02x}\"").unwrap();
    }
    for r in 0..100 {
        let (from, to) = (r % 50, (r * 7 + 3) % 50);
        writeln!(
            text,
            "[[rule]]\nname = \"r{r}\"\nfrom = [\"h{from}\", \"h{}\"]\nto = \"h{to}\"\nproto = \"tcp\"\nports = [{}, \"20000-20010\", 44818]\naction = \"allow\"",
            (from + 1) % 50,
            500 + r
        )
        .unwrap();
    }
    let (policy, warnings) =
        Policy::from_toml(&text, "bench.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(warnings.iter().all(|w| !w.is_error()));

    let ip = |a: u8, b: u8, c: u8| IpAddr::V4(Ipv4Addr::new(10, a, b, c));
    // Half the queries open a conversation some rule allows; the rest match none.
    let queries: Vec<FlowQuery> = (0..1024u32)
        .map(|i| {
            let r = (i % 100) as u8;
            let (from, to) = (r % 50, (r * 7 + 3) % 50);
            FlowQuery {
                src: ip(0, from, 1),
                dst: ip(0, if i % 2 == 0 { to } else { (to + 1) % 50 }, 2),
                protocol: IpProtocol::Tcp,
                src_port: 40000,
                dst_port: if i % 4 == 0 {
                    20005
                } else {
                    500 + u16::from(r)
                },
                icmp_type: None,
            }
        })
        .collect();
    let matched = queries
        .iter()
        .filter(|q| policy.evaluate(q).rule.is_some())
        .count();
    // Every query misses: the worst case, a scan of all 100 rules.
    let misses: Vec<FlowQuery> = queries
        .iter()
        .map(|q| FlowQuery { dst_port: 9, ..*q })
        .collect();

    let time = |label: &str, f: &dyn Fn() -> usize| {
        let rounds = 2000;
        let start = Instant::now();
        let mut sink = 0;
        for _ in 0..rounds {
            sink += f();
        }
        let ns = start.elapsed().as_nanos() as f64 / (rounds * queries.len()) as f64;
        println!("{label:<32} {ns:>7.1} ns/op  ({})", black_box(sink) % 10);
    };
    println!(
        "100 rules, 50 hosts; {matched} of {} mixed queries match a rule",
        queries.len()
    );
    time("evaluate (mixed)", &|| {
        queries
            .iter()
            .filter(|q| policy.evaluate(black_box(q)).rule.is_some())
            .count()
    });
    time("evaluate (no rule matches)", &|| {
        misses
            .iter()
            .filter(|q| policy.evaluate(black_box(q)).rule.is_some())
            .count()
    });
    let mac = MacAddr([2, 0, 0, 0, 1, 0x33]);
    time("mac_pin_violation (50 pinned)", &|| {
        queries
            .iter()
            .filter(|q| policy.mac_pin_violation(black_box(q.dst), mac))
            .count()
    });
    time("ethertype_allowed", &|| {
        queries
            .iter()
            .filter(|q| policy.ethertype_allowed(black_box(EtherType::from(q.dst_port))))
            .count()
    });
    time("vlan_allowed", &|| {
        queries
            .iter()
            .filter(|q| policy.vlan_allowed(black_box(Some(q.dst_port % 30))))
            .count()
    });
}
