//! Every policy shipped in `config/examples/` validates cleanly, and the demo policy
//! means what the demo says.

use std::net::IpAddr;
use std::path::PathBuf;

use gk_packet::{IpProtocol, MacAddr};
use gk_policy::{Action, FlowQuery, Mode, Policy, Violation};

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
    for expected in ["demo.toml", "ipv6.toml", "monitor.toml", "press-line.toml"] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected} missing: {seen:?}"
        );
    }
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

/// A Modbus request as the policy sees it.
fn modbus(function: u8, data: &[u8]) -> Vec<u8> {
    let mut adu = vec![0, 1, 0, 0, 0, (data.len() + 2) as u8, 1, function];
    adu.extend_from_slice(data);
    adu
}

/// How `p` judges a Modbus request in the conversation `q`: (action, rule, violation).
fn judge(p: &Policy, q: &FlowQuery, adu: &[u8]) -> (Action, Option<String>, Option<Violation>) {
    use gk_inspect::{modbus as mb, Dir, Message};
    let d = p.evaluate(q);
    assert!(d.inspect.is_some(), "{q:?} is inspected");
    let m = Message::Modbus(mb::parse(adu, adu.len(), Dir::Request).unwrap());
    let m = p.judge_message(q, d.rule.unwrap(), &m);
    (
        m.action,
        m.rule.map(|r| p.rule(r).name.clone()),
        m.violation,
    )
}

#[test]
fn the_modbus_example_means_what_it_says() {
    let (p, _) = Policy::load(&examples_dir().join("modbus.toml")).unwrap();
    let hmi = q("10.10.0.21", "10.10.0.10", IpProtocol::Tcp, 502, None);
    let eng = q("10.10.0.31", "10.10.0.10", IpProtocol::Tcp, 502, None);
    let read = |start: u16| modbus(3, &[(start >> 8) as u8, start as u8, 0, 10]);
    let write = |address: u16| modbus(6, &[(address >> 8) as u8, address as u8, 0, 1]);
    assert_eq!(judge(&p, &hmi, &read(990)).0, Action::Allow);
    assert_eq!(judge(&p, &hmi, &read(995)).2, Some(Violation::Address));
    assert_eq!(judge(&p, &hmi, &write(150)).2, Some(Violation::Function));
    assert_eq!(
        judge(&p, &eng, &write(150)),
        (Action::Allow, Some("eng-writes".into()), None)
    );
    assert_eq!(
        judge(&p, &eng, &write(250)),
        (
            Action::Deny,
            Some("eng-writes".into()),
            Some(Violation::Address)
        )
    );
    assert_eq!(
        judge(&p, &eng, &read(5000)).0,
        Action::Allow,
        "eng-reads: read-only"
    );
    let umas = modbus(90, &[0, 0x02]);
    let diagnostics = modbus(8, &[0, 4, 0, 0]);
    for programming in [umas, diagnostics] {
        assert_eq!(judge(&p, &eng, &programming).2, Some(Violation::Function));
    }
    let hmi_reads = p.rules().iter().find(|r| r.name == "hmi-reads").unwrap();
    assert_eq!(hmi_reads.on_deny, gk_policy::OnDeny::ModbusException);
}

#[test]
fn demo_policy_means_what_the_demo_says() {
    let (p, _) = Policy::load(&examples_dir().join("demo.toml")).unwrap();
    assert_eq!(p.mode(), Mode::Enforce);
    let judge = |q: &FlowQuery, adu: &[u8]| judge(&p, q, adu);
    let hmi = q("10.10.0.21", "10.10.0.10", IpProtocol::Tcp, 502, None);
    let intruder = q("10.10.0.66", "10.10.0.10", IpProtocol::Tcp, 502, None);
    let read_0_9 = modbus(3, &[0, 0, 0, 10]);
    let setpoint = modbus(6, &[0, 0, 0x04, 0xe2]);
    let alarm_word = modbus(6, &[0, 9, 0, 0]);
    let start_press = modbus(5, &[0, 0, 0xff, 0]);
    assert_eq!(judge(&hmi, &read_0_9).0, Action::Allow);
    assert_eq!(
        judge(&hmi, &setpoint),
        (Action::Allow, Some("hmi-setpoint".into()), None)
    );
    assert_eq!(
        judge(&hmi, &alarm_word),
        (
            Action::Deny,
            Some("hmi-setpoint".into()),
            Some(Violation::Address)
        )
    );
    assert_eq!(judge(&intruder, &read_0_9).0, Action::Allow);
    let (action, rule, violation) = judge(&intruder, &start_press);
    assert_eq!(
        (action, rule.as_deref()),
        (Action::Deny, Some("plant-reads"))
    );
    assert_eq!(violation, Some(Violation::Function));
    let on_deny = p
        .rules()
        .iter()
        .find(|r| r.name == "plant-reads")
        .unwrap()
        .on_deny;
    assert_eq!(on_deny, gk_policy::OnDeny::ModbusException);

    let ping = q("10.10.0.21", "10.10.0.10", IpProtocol::Icmp, 0, Some(8));
    assert_eq!(p.evaluate(&ping).action, Action::Allow);
    for denied in [
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
