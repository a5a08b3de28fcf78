//! Every policy shipped in `config/examples/` validates cleanly, and the demo policy
//! means what the demo says.

use std::net::IpAddr;
use std::path::PathBuf;

use gk_packet::{IpProtocol, MacAddr};
use gk_policy::{Action, FlowQuery, Mode, Policy};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/examples")
}

#[test]
fn every_example_validates_without_errors_or_warnings() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            match Policy::load(&path) {
                Ok((_, warnings)) => {
                    assert!(warnings.is_empty(), "{}: {warnings:#?}", path.display())
                }
                Err(e) => panic!("{e}"),
            }
            seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        ["demo.toml", "ipv6.toml", "monitor.toml", "press-line.toml"]
    );
}

fn q(src: &str, dst: &str, protocol: IpProtocol, port: u16, icmp_type: Option<u8>) -> FlowQuery {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    FlowQuery {
        src: ip(src),
        dst: ip(dst),
        protocol,
        src_port: 40000,
        dst_port: port,
        icmp_type,
    }
}

#[test]
fn demo_policy_means_what_the_demo_says() {
    let (p, _) = Policy::load(&examples_dir().join("demo.toml")).unwrap();
    assert_eq!(p.mode(), Mode::Enforce);
    let modbus = p.evaluate(&q("10.10.0.21", "10.10.0.10", IpProtocol::Tcp, 502, None));
    assert_eq!(modbus.action, Action::Allow);
    assert!(p.rule(modbus.rule.unwrap()).log);
    let ping = q("10.10.0.21", "10.10.0.10", IpProtocol::Icmp, 0, Some(8));
    assert_eq!(p.evaluate(&ping).action, Action::Allow);
    for denied in [
        q("10.10.0.66", "10.10.0.10", IpProtocol::Tcp, 502, None),
        q("10.10.0.66", "10.10.0.10", IpProtocol::Icmp, 0, Some(8)),
        q("10.10.0.21", "10.10.0.10", IpProtocol::Tcp, 102, None),
        q("10.10.0.10", "10.10.0.21", IpProtocol::Tcp, 502, None),
    ] {
        assert_eq!(p.evaluate(&denied).rule, None, "{denied:?}");
    }
    let plc = "10.10.0.10".parse().unwrap();
    assert!(!p.mac_pin_violation(plc, "02:00:00:00:00:10".parse::<MacAddr>().unwrap()));
    assert!(p.mac_pin_violation(plc, "02:00:00:00:00:66".parse::<MacAddr>().unwrap()));
}
