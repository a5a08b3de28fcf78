//! Unit tests: every validation error with its exact place, every default, and the
//! semantics of evaluation.

use std::net::IpAddr;
use std::time::Duration;

use gk_packet::{EtherType, IpProtocol, MacAddr};

use crate::*;

/// Four lines; a test's own text starts on line 5.
const HEAD: &str = "schema = 1\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n";

fn ok(body: &str) -> (Policy, Vec<Diagnostic>) {
    Policy::from_toml(&format!("{HEAD}{body}"), "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn clean(body: &str) -> Policy {
    let (p, warnings) = ok(body);
    assert!(warnings.is_empty(), "unexpected warnings: {warnings:?}");
    p
}

fn warnings(body: &str) -> Vec<String> {
    ok(body).1.iter().map(ToString::to_string).collect()
}

/// The errors (as displayed) of a policy that must fail.
fn errors_of(text: &str) -> Vec<String> {
    match Policy::from_toml(text, "t.toml") {
        Ok(_) => panic!("policy was accepted:\n{text}"),
        Err(e) => e.errors().map(ToString::to_string).collect(),
    }
}

fn errors(body: &str) -> Vec<String> {
    errors_of(&format!("{HEAD}{body}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn tcp(src: &str, dst: &str, port: u16) -> FlowQuery {
    FlowQuery {
        src: ip(src),
        dst: ip(dst),
        protocol: IpProtocol::Tcp,
        src_port: 40000,
        dst_port: port,
        icmp_type: None,
    }
}

fn udp(src: &str, dst: &str, port: u16) -> FlowQuery {
    FlowQuery {
        protocol: IpProtocol::Udp,
        ..tcp(src, dst, port)
    }
}

fn icmp(src: &str, dst: &str, t: u8) -> FlowQuery {
    let protocol = if ip(src).is_ipv4() {
        IpProtocol::Icmp
    } else {
        IpProtocol::Icmpv6
    };
    FlowQuery {
        protocol,
        dst_port: 0,
        src_port: 0,
        icmp_type: Some(t),
        ..tcp(src, dst, 0)
    }
}

fn verdict<'p>(p: &'p Policy, q: &FlowQuery) -> (Option<&'p str>, Action) {
    let d = p.evaluate(q);
    (d.rule.map(|id| p.rule(id).name.as_str()), d.action)
}

const PRESS_LINE: &str = r#"schema = 1

[gatekeeper]
name = "press-line-3"
mode = "enforce"

[l2]
ethertypes = ["arp", "ipv4", "ipv6"]
vlans = ["untagged", 10]

[hosts.plc]
ip = "10.10.0.10"
mac = "02:00:00:00:00:10"

[hosts.hmi]
ip = ["10.10.0.21", "10.10.0.22"]

[[rule]]
name = "hmi-polls-plc"
from = "hmi"
to = "plc"
proto = "tcp"
ports = [502, "20000-20010"]
action = "allow"
log = false

[[rule]]
name = "ping-plc"
from = "any"
to = "plc"
proto = "icmp"
icmp = ["echo-request"]
action = "allow"
"#;

#[test]
fn the_contract_example_compiles_and_judges() {
    let (p, warnings) = Policy::from_toml(PRESS_LINE, "plant.toml").unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(p.name(), "press-line-3");
    assert_eq!(p.mode(), Mode::Enforce);
    assert_eq!(p.rules().len(), 2);
    assert_eq!(p.rule(RuleId(1)).name, "ping-plc");
    assert_eq!(p.rules()[0].line, 18);
    let d = p.evaluate(&tcp("10.10.0.22", "10.10.0.10", 502));
    assert_eq!(
        d,
        Decision {
            rule: Some(RuleId(0)),
            action: Action::Allow,
            inspect: None,
        }
    );
    assert_eq!(
        verdict(&p, &icmp("192.0.2.1", "10.10.0.10", 8)),
        (Some("ping-plc"), Action::Allow)
    );
    assert_eq!(
        verdict(&p, &icmp("192.0.2.1", "10.10.0.10", 0)),
        (None, Action::Deny)
    );
    assert_eq!(
        verdict(&p, &udp("10.10.0.21", "10.10.0.10", 502)),
        (None, Action::Deny)
    );
    assert!(p.vlan_allowed(Some(10)) && !p.vlan_allowed(Some(11)));
    assert!(p.mac_pin_violation(ip("10.10.0.10"), mac("02:00:00:00:00:66")));
}

#[test]
fn error_names_file_line_column_and_the_known_hosts() {
    let text = PRESS_LINE.replace("from = \"hmi\"", "from = \"hmi2\"");
    assert_eq!(
        errors_of(&text),
        ["plant.toml:20:8: error: rule \"hmi-polls-plc\": unknown host \"hmi2\" in `from` (hosts are: hmi, plc)"]
            .map(|s| s.replace("plant.toml", "t.toml"))
    );
    let err = Policy::from_toml(&text, "plant.toml").unwrap_err();
    assert_eq!(err.diagnostics[0].file, "plant.toml");
    assert_eq!(
        (err.diagnostics[0].line, err.diagnostics[0].column),
        (20, 8)
    );
}

#[test]
fn all_semantic_errors_are_collected_in_file_order() {
    let e = errors(
        "[hosts.a]\nip = \"10.0.0.1\"\n\
         [[rule]]\nname = \"r\"\nfrom = [\"a\", \"b\"]\nto = \"c\"\nproto = \"tcp\"\nports = [70000]\naction = \"allow\"\n",
    );
    assert_eq!(
        e,
        [
            "t.toml:9:14: error: rule \"r\": unknown host \"b\" in `from` (hosts are: a)",
            "t.toml:10:6: error: rule \"r\": unknown host \"c\" in `to` (hosts are: a)",
            "t.toml:12:10: error: rule \"r\": port 70000 is out of range (0-65535)",
        ]
    );
}

#[test]
fn display_of_a_policy_error_is_one_line_per_diagnostic() {
    let text = format!("{HEAD}[[rule]]\nname = \"r\"\n");
    let err = Policy::from_toml(&text, "t.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.toml:5:1: error: rule \"r\": missing `from` (write from = \"any\" to match every address)\n\
         t.toml:5:1: error: rule \"r\": missing `to` (write to = \"any\" to match every address)\n\
         t.toml:5:1: error: rule \"r\": missing `action` (allow, deny or alert)"
    );
}

#[test]
fn missing_rule_name_is_reported_with_the_rule_number() {
    let e = errors(
        "[[rule]]\nfrom = \"any\"\nto = \"any\"\naction = \"deny\"\n[[rule]]\nfrom = \"any\"\n",
    );
    assert_eq!(e[0], "t.toml:5:1: error: rule #1: missing `name`");
    assert_eq!(e[1], "t.toml:9:1: error: rule #2: missing `name`");
    assert_eq!(
        e[2],
        "t.toml:9:1: error: rule #2: missing `to` (write to = \"any\" to match every address)"
    );
    assert_eq!(e.len(), 4, "{e:?}");
}

#[test]
fn unknown_keys_are_errors_at_the_key() {
    assert_eq!(
        errors("mood = 3\n"),
        ["t.toml:5:1: error: unknown field `mood`, expected one of `name`, `mode`, `link-propagation`"]
    );
    let e = errors("[rules]\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("t.toml:5:2: error: unknown field `rules`, expected one of `schema`"),
        "{}",
        e[0]
    );
    let e = errors(
        "[[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\naction = \"allow\"\nport = 5\n",
    );
    assert!(
        e[0].starts_with("t.toml:10:1: error: unknown field `port`"),
        "{}",
        e[0]
    );
    let e = errors("[hosts.a]\nip = \"10.0.0.1\"\n  macc = \"x\"\n");
    assert!(
        e[0].starts_with("t.toml:7:3: error: unknown field `macc`, expected `ip` or `mac`"),
        "{}",
        e[0]
    );
    let e = errors("[flows]\ncapacty = 5\n");
    assert!(
        e[0].starts_with("t.toml:6:1: error: unknown field `capacty`"),
        "{}",
        e[0]
    );
}

#[test]
fn syntax_and_type_errors_have_a_place() {
    let e = errors("[hosts.a\n");
    assert!(e[0].starts_with("t.toml:5:9: error: "), "{}", e[0]);
    let e = errors("[hosts.a]\nip = 1.5\n");
    assert_eq!(e, ["t.toml:6:6: error: invalid type: floating point `1.5`, expected a string, an integer or a list of them"]);
    let e = errors("[[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\naction = \"permit\"\n");
    assert!(
        e[0].starts_with("t.toml:9:10: error: unknown variant `permit`"),
        "{}",
        e[0]
    );
}

#[test]
fn schema_must_be_one() {
    let e = errors_of("schema = 2\n[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n");
    assert_eq!(
        e,
        ["t.toml:1:10: error: unsupported schema 2: this gatekeeper reads schema 1"]
    );
    let e = errors_of("[gatekeeper]\nname = \"t\"\nmode = \"enforce\"\n");
    assert_eq!(e, ["t.toml:1:1: error: missing field `schema`"]);
}

#[test]
fn gatekeeper_name_and_mode_are_checked() {
    let e = errors_of("schema = 1\n[gatekeeper]\nname = \"\"\nmode = \"enforce\"\n");
    assert_eq!(
        e,
        ["t.toml:3:8: error: gatekeeper `name` must not be empty"]
    );
    let e = errors_of("schema = 1\n[gatekeeper]\nname = \"x\"\nmode = \"audit\"\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "t.toml:4:8: error: unknown variant `audit`, expected `enforce` or `monitor`"
        ),
        "{}",
        e[0]
    );
    let (p, _) = Policy::from_toml(
        "schema = 1\n[gatekeeper]\nname = \"x\"\nmode = \"monitor\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(p.mode(), Mode::Monitor);
}

#[test]
fn link_propagation_is_off_unless_asked_for() {
    assert!(!clean("").link_propagation());
    assert!(!Policy::fail_open().link_propagation());
    let on =
        "schema = 1\n[gatekeeper]\nname = \"x\"\nmode = \"enforce\"\nlink-propagation = true\n";
    assert!(Policy::from_toml(on, "t").unwrap().0.link_propagation());
    let e = errors_of(&on.replace("true", "\"yes\""));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("t.toml:5:20: error: invalid type"),
        "{}",
        e[0]
    );
}

#[test]
fn defaults() {
    let p = clean("");
    // l2
    let allowed: Vec<EtherType> = p.ethertypes().collect();
    assert_eq!(allowed, [EtherType::Ipv4, EtherType::Arp, EtherType::Ipv6]);
    assert!(!p.ethertype_allowed(EtherType::Lldp));
    assert!(p.vlan_allowed(None) && p.vlan_allowed(Some(0)));
    assert!(!p.vlan_allowed(Some(1)));
    // limits
    let l = p.limits();
    assert_eq!(*l, Limits::default());
    assert_eq!(l.flow_capacity, 16384);
    assert_eq!(l.tcp_syn_timeout, Duration::from_secs(30));
    assert_eq!(l.tcp_established_timeout, Duration::from_secs(3600));
    assert_eq!(l.tcp_closing_timeout, Duration::from_secs(120));
    assert_eq!(l.udp_timeout, Duration::from_secs(60));
    assert_eq!(l.icmp_timeout, Duration::from_secs(30));
    assert_eq!(l.other_timeout, Duration::from_secs(60));
    assert_eq!((l.events_per_second, l.event_burst), (10, 20));
    // rules: proto any, every port and type, log off; nothing matched means deny
    assert_eq!(
        verdict(&p, &tcp("10.0.0.1", "10.0.0.2", 1)),
        (None, Action::Deny)
    );
    let p = clean("[[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\naction = \"allow\"\n");
    let r = &p.rules()[0];
    assert_eq!(r.proto, Proto::Any);
    assert!(r.ports.is_all() && r.icmp.is_all() && !r.log);
    assert!(r.from.is_any() && r.to.is_any());
    let q = FlowQuery {
        protocol: IpProtocol::Gre,
        ..tcp("10.0.0.1", "fd00::1", 0)
    };
    assert_eq!(p.evaluate(&q).rule, Some(RuleId(0)));
}

#[test]
fn flows_and_events_are_read_and_bounded() {
    let p = clean(
        "[flows]\ncapacity = 1024\ntcp-syn-timeout = 5\ntcp-established-timeout = 86400\n\
         tcp-closing-timeout = 7\nudp-timeout = 8\nicmp-timeout = 9\nother-timeout = 1\n\
         [events]\nrate = 100\nburst = 500\n",
    );
    let l = p.limits();
    assert_eq!(l.flow_capacity, 1024);
    assert_eq!(l.tcp_syn_timeout, Duration::from_secs(5));
    assert_eq!(l.tcp_established_timeout, Duration::from_secs(86400));
    assert_eq!(l.tcp_closing_timeout, Duration::from_secs(7));
    assert_eq!(l.udp_timeout, Duration::from_secs(8));
    assert_eq!(l.icmp_timeout, Duration::from_secs(9));
    assert_eq!(l.other_timeout, Duration::from_secs(1));
    assert_eq!((l.events_per_second, l.event_burst), (100, 500));
    let e = errors("[flows]\ncapacity = 15\nudp-timeout = 0\nicmp-timeout = 86401\n[events]\nrate = 10001\nburst = 0\n");
    assert_eq!(
        e,
        [
            "t.toml:6:12: error: `flows.capacity` = 15 is out of range (16-1048576)",
            "t.toml:7:15: error: `flows.udp-timeout` = 0 is out of range (1-86400)",
            "t.toml:8:16: error: `flows.icmp-timeout` = 86401 is out of range (1-86400)",
            "t.toml:10:8: error: `events.rate` = 10001 is out of range (1-10000)",
            "t.toml:11:9: error: `events.burst` = 0 is out of range (1-100000)",
        ]
    );
}

const TWO_HOSTS: &str = "[hosts.hmi]\nip = \"10.0.0.21\"\n[hosts.plc]\nip = \"10.0.0.10\"\n";

#[test]
fn first_match_wins_in_file_order() {
    let p = clean(&format!(
        "{TWO_HOSTS}\
         [[rule]]\nname = \"no-writes\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\nports = [102]\naction = \"deny\"\n\
         [[rule]]\nname = \"watch\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\nports = [502]\naction = \"alert\"\n\
         [[rule]]\nname = \"rest\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\naction = \"allow\"\n"
    ));
    assert_eq!(
        verdict(&p, &tcp("10.0.0.21", "10.0.0.10", 102)),
        (Some("no-writes"), Action::Deny)
    );
    assert_eq!(
        verdict(&p, &tcp("10.0.0.21", "10.0.0.10", 502)),
        (Some("watch"), Action::Alert)
    );
    assert_eq!(
        verdict(&p, &tcp("10.0.0.21", "10.0.0.10", 80)),
        (Some("rest"), Action::Allow)
    );
    assert!(Action::Alert.permits() && !Action::Deny.permits());
}

#[test]
fn from_and_to_are_not_symmetric() {
    let p = clean(&format!(
        "{TWO_HOSTS}[[rule]]\nname = \"r\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\nports = [502]\naction = \"allow\"\n"
    ));
    assert_eq!(
        p.evaluate(&tcp("10.0.0.21", "10.0.0.10", 502)).action,
        Action::Allow
    );
    assert_eq!(
        p.evaluate(&tcp("10.0.0.10", "10.0.0.21", 502)).action,
        Action::Deny
    );
    // Ports are the responder's: the initiator's port does not count.
    let q = FlowQuery {
        src_port: 502,
        ..tcp("10.0.0.21", "10.0.0.10", 40000)
    };
    assert_eq!(p.evaluate(&q).action, Action::Deny);
}

#[test]
fn ports_and_ranges() {
    let p = clean(&format!(
        "{TWO_HOSTS}[[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"plc\"\nproto = \"udp\"\n\
         ports = [502, \"20000-20010\", \"20011-20012\", \"47808\", 0]\naction = \"allow\"\n"
    ));
    assert_eq!(
        p.rules()[0].ports.ranges(),
        [(0, 0), (502, 502), (20000, 20012), (47808, 47808)]
    );
    for (port, allowed) in [
        (0, true),
        (1, false),
        (501, false),
        (502, true),
        (503, false),
        (19999, false),
        (20000, true),
    ]
    .into_iter()
    .chain([
        (20010, true),
        (20012, true),
        (20013, false),
        (47808, true),
        (65535, false),
    ]) {
        assert_eq!(
            p.evaluate(&udp("10.0.0.21", "10.0.0.10", port))
                .action
                .permits(),
            allowed,
            "{port}"
        );
    }
    assert_eq!(
        p.evaluate(&tcp("10.0.0.21", "10.0.0.10", 502)).action,
        Action::Deny
    );
}

#[test]
fn port_errors() {
    let rule = |ports: &str, proto: &str| {
        format!("[[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\nproto = \"{proto}\"\nports = {ports}\naction = \"allow\"\n")
    };
    assert_eq!(
        errors(&rule("[\"20-10\", \"x\", -1, \"1-65536\"]", "tcp")),
        [
            "t.toml:10:10: error: rule \"r\": port range \"20-10\" is reversed",
            "t.toml:10:19: error: rule \"r\": \"x\" is not a port or a range such as \"20000-20010\"",
            "t.toml:10:24: error: rule \"r\": port -1 is out of range (0-65535)",
            "t.toml:10:28: error: rule \"r\": port \"1-65536\" is out of range (0-65535)",
        ]
    );
    assert_eq!(
        errors(&rule("[502]", "icmp")),
        ["t.toml:10:9: error: rule \"r\": `ports` needs proto = \"tcp\", \"udp\" or an industrial protocol (this rule has icmp)"]
    );
    assert_eq!(
        errors(&rule("[]", "any")),
        ["t.toml:10:9: error: rule \"r\": `ports` needs proto = \"tcp\", \"udp\" or an industrial protocol (this rule has any)"]
    );
    assert_eq!(
        errors(&rule("[]", "tcp")),
        ["t.toml:10:9: error: rule \"r\": `ports` is empty (leave it out to match every port)"]
    );
    // A lone port borrows its key's position.
    assert_eq!(
        errors(&rule("99999", "tcp")),
        ["t.toml:10:9: error: rule \"r\": port 99999 is out of range (0-65535)"]
    );
}

#[test]
fn icmp_types_v4_and_v6() {
    let p = clean(
        "[[rule]]\nname = \"v4\"\nfrom = \"any\"\nto = \"any\"\nproto = \"icmp\"\nicmp = [\"echo-request\", 13, \"Time-Exceeded\"]\naction = \"allow\"\n\
         [[rule]]\nname = \"v6\"\nfrom = \"any\"\nto = \"any\"\nproto = \"icmpv6\"\nicmp = [\"neighbor-solicitation\", \"echo-request\"]\naction = \"allow\"\n",
    );
    let v4 = |t| p.evaluate(&icmp("10.0.0.1", "10.0.0.2", t));
    assert_eq!(v4(8).rule, Some(RuleId(0)));
    assert_eq!(v4(13).rule, Some(RuleId(0)));
    assert_eq!(v4(11).rule, Some(RuleId(0)));
    assert_eq!(v4(0).rule, None);
    assert_eq!(v4(128).rule, None, "128 is echo-request only in ICMPv6");
    let v6 = |t| p.evaluate(&icmp("fd00::1", "fd00::2", t));
    assert_eq!(v6(135).rule, Some(RuleId(1)));
    assert_eq!(v6(128).rule, Some(RuleId(1)));
    assert_eq!(v6(8).rule, None);
    assert_eq!(v6(136).rule, None);
    // Without a type, a restricted rule cannot match.
    let q = FlowQuery {
        icmp_type: None,
        ..icmp("10.0.0.1", "10.0.0.2", 8)
    };
    assert_eq!(p.evaluate(&q).rule, None);
    let shown = p.rules()[0].to_string();
    assert_eq!(
        shown,
        "v4: any -> any icmp echo-request,time-exceeded,timestamp allow"
    );
}

#[test]
fn icmp_errors() {
    let rule = |icmp: &str, proto: &str| {
        format!("[[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\nproto = \"{proto}\"\nicmp = {icmp}\naction = \"allow\"\n")
    };
    let e = errors(&rule("[\"neighbor-solicitation\", 256]", "icmp"));
    assert_eq!(e.len(), 2);
    assert!(e[0].starts_with("t.toml:10:9: error: rule \"r\": unknown icmp type \"neighbor-solicitation\" (names are: echo-reply, destination-unreachable,"), "{}", e[0]);
    assert!(
        e[1].starts_with("t.toml:10:34: error: rule \"r\": unknown icmp type 256"),
        "{}",
        e[1]
    );
    assert_eq!(
        errors(&rule("[\"echo-request\"]", "tcp")),
        ["t.toml:10:8: error: rule \"r\": `icmp` needs proto = \"icmp\" or \"icmpv6\" (this rule has tcp)"]
    );
    assert_eq!(
        errors(&rule("[]", "icmpv6")),
        ["t.toml:10:8: error: rule \"r\": `icmp` is empty (leave it out to match every type)"]
    );
}

#[test]
fn proto_names_and_numbers() {
    let p = clean(
        "[[rule]]\nname = \"vrrp\"\nfrom = \"any\"\nto = \"any\"\nproto = 112\naction = \"allow\"\n\
         [[rule]]\nname = \"modbus\"\nfrom = \"any\"\nto = \"any\"\nproto = 6\nports = [502]\naction = \"allow\"\n",
    );
    assert_eq!(p.rules()[0].proto, Proto::Other(112));
    assert_eq!(p.rules()[1].proto, Proto::Tcp);
    let q = FlowQuery {
        protocol: IpProtocol::Vrrp,
        ..tcp("10.0.0.1", "224.0.0.18", 0)
    };
    assert_eq!(p.evaluate(&q).rule, Some(RuleId(0)));
    assert_eq!(
        p.evaluate(&tcp("10.0.0.1", "10.0.0.2", 502)).rule,
        Some(RuleId(1))
    );
    assert_eq!(p.evaluate(&tcp("10.0.0.1", "10.0.0.2", 503)).rule, None);
    let e = errors("[[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\nproto = \"sctp\"\naction = \"allow\"\n");
    assert_eq!(e, ["t.toml:9:9: error: rule \"r\": unknown proto \"sctp\" (tcp, udp, icmp, icmpv6, any, modbus, dnp3, enip, enip-io, s7, iec104, opcua, bacnet, or a protocol number 0-255)"]);
    let e = errors(
        "[[rule]]\nname = \"r\"\nfrom = \"any\"\nto = \"any\"\nproto = 256\naction = \"allow\"\n",
    );
    assert_eq!(e.len(), 1);
}

#[test]
fn cidrs_lists_v4_and_v6() {
    let p = clean(
        "[hosts.cell]\nip = [\"10.10.0.0/24\", \"2001:db8:10::/48\"]\n[hosts.eng]\nip = [\"192.168.1.5\", \"fe80::5\"]\n\
         [[rule]]\nname = \"r\"\nfrom = \"eng\"\nto = \"cell\"\naction = \"allow\"\n",
    );
    let allowed = |src: &str, dst: &str| p.evaluate(&tcp(src, dst, 1)).action == Action::Allow;
    assert!(allowed("192.168.1.5", "10.10.0.0"));
    assert!(allowed("192.168.1.5", "10.10.0.255"));
    assert!(!allowed("192.168.1.5", "10.10.1.0"));
    assert!(!allowed("192.168.1.6", "10.10.0.1"));
    assert!(allowed("fe80::5", "2001:db8:10:ffff::1"));
    assert!(!allowed("fe80::5", "2001:db8:11::1"));
    // Families do not mix: a v4 source never matches a v6 net, nor the reverse.
    assert!(!allowed("::ffff:192.168.1.5", "2001:db8:10::1"));
    assert_eq!(p.hosts()[0].nets.len(), 2);
    assert_eq!(
        p.host_of(ip("10.10.0.77")).map(|h| h.name.as_str()),
        Some("cell")
    );
    assert!(p.host_of(ip("10.10.1.77")).is_none());
}

#[test]
fn host_errors() {
    let e = errors(
        "[hosts.any]\nip = \"10.0.0.1\"\n[hosts.Plc]\nip = \"10.0.0.2\"\n[hosts.x]\nip = [\"10.0.0.300\", 5, \"10.0.0.0/33\"]\n[hosts.y]\nmac = \"02:00:00:00:00:01\"\n[hosts.z]\nip = []\n",
    );
    assert_eq!(
        e,
        [
            "t.toml:5:8: error: host name \"any\" is reserved: it means every address",
            "t.toml:7:8: error: host name \"Plc\" must be 1-64 of a-z, 0-9, '-' and '_', starting with a letter or digit",
            "t.toml:10:7: error: host \"x\": \"10.0.0.300\" is not an IP address or CIDR",
            "t.toml:10:21: error: host \"x\": 5 is not an IP address or CIDR",
            "t.toml:10:24: error: host \"x\": \"10.0.0.0/33\" is not an IP address or CIDR",
            "t.toml:11:1: error: host \"y\": missing `ip`",
            "t.toml:14:6: error: host \"z\": `ip` is empty",
        ]
    );
}

#[test]
fn host_bits_in_a_cidr_are_a_warning() {
    let (p, w) = ok("[hosts.cell]\nip = \"10.0.0.5/24\"\n");
    assert_eq!(w.len(), 1);
    assert_eq!(
        w[0].to_string(),
        "t.toml:6:6: warning: host \"cell\": 10.0.0.5/24 has host bits set; it means 10.0.0.0/24"
    );
    assert_eq!(p.hosts()[0].nets, ["10.0.0.0/24".parse::<IpNet>().unwrap()]);
}

#[test]
fn peer_errors() {
    let e = errors(&format!(
        "{TWO_HOSTS}[[rule]]\nname = \"r\"\nfrom = [\"any\", \"hmi\"]\nto = []\naction = \"allow\"\n[[rule]]\nname = \"s\"\nfrom = 5\nto = \"nobody\"\naction = \"allow\"\n"
    ));
    assert_eq!(
        e,
        [
            "t.toml:11:8: error: rule \"r\": `from` mixes \"any\" with host names",
            "t.toml:12:6: error: rule \"r\": `to` is empty (write \"any\" to match every address)",
            "t.toml:16:8: error: rule \"s\": `from` takes host names or \"any\", found 5",
            "t.toml:17:6: error: rule \"s\": unknown host \"nobody\" in `to` (hosts are: hmi, plc)",
        ]
    );
    let e = errors("[[rule]]\nname = \"r\"\nfrom = \"x\"\nto = \"any\"\naction = \"allow\"\n");
    assert_eq!(
        e,
        ["t.toml:7:8: error: rule \"r\": unknown host \"x\" in `from` (no hosts are defined)"]
    );
}

#[test]
fn rule_names_are_unique_and_well_formed() {
    let rule = |name: &str| {
        format!("[[rule]]\nname = \"{name}\"\nfrom = \"any\"\nto = \"any\"\naction = \"deny\"\n")
    };
    let e = errors(&format!("{}{}{}", rule("a"), rule("Bad Name"), rule("a")));
    assert_eq!(
        e,
        [
            "t.toml:11:8: error: rule name \"Bad Name\" must be 1-64 of a-z, 0-9, '-' and '_', starting with a letter or digit",
            "t.toml:16:8: error: rule \"a\": name already used by the rule at line 5",
        ]
    );
    assert_eq!(errors(&rule("")).len(), 1);
    assert_eq!(errors(&rule("-x")).len(), 1);
    clean(&rule("0_ok-name"));
}

#[test]
fn mac_pins_v4_and_v6_affect_only_pinned_addresses() {
    let p = clean(
        "[hosts.plc]\nip = [\"10.0.0.10\", \"fe80::10\"]\nmac = \"02:00:00:00:00:10\"\n\
         [hosts.hmi]\nip = \"10.0.0.21\"\n\
         [hosts.rtu]\nip = \"2001:db8::7\"\nmac = \"02:00:00:00:00:07\"\n\
         [[rule]]\nname = \"nd\"\nfrom = \"any\"\nto = \"any\"\nproto = \"icmpv6\"\nicmp = [135, 136]\naction = \"allow\"\n",
    );
    let plc = mac("02:00:00:00:00:10");
    let other = mac("02:00:00:00:00:66");
    assert!(!p.mac_pin_violation(ip("10.0.0.10"), plc));
    assert!(p.mac_pin_violation(ip("10.0.0.10"), other));
    assert!(!p.mac_pin_violation(ip("fe80::10"), plc));
    assert!(p.mac_pin_violation(ip("fe80::10"), other));
    assert!(p.mac_pin_violation(ip("2001:db8::7"), plc));
    assert!(!p.mac_pin_violation(ip("2001:db8::7"), mac("02:00:00:00:00:07")));
    // Unpinned hosts and unknown addresses may come from any MAC.
    assert!(!p.mac_pin_violation(ip("10.0.0.21"), other));
    assert!(!p.mac_pin_violation(ip("10.0.0.11"), other));
    assert!(!p.mac_pin_violation(ip("fe80::11"), other));
    assert_eq!(
        p.hosts().iter().find(|h| h.name == "plc").unwrap().mac,
        Some(plc)
    );
}

#[test]
fn mac_pin_errors_and_warnings() {
    let e = errors(
        "[hosts.a]\nip = \"10.0.0.1\"\nmac = \"zz\"\n[hosts.b]\nip = \"10.0.0.2\"\nmac = \"01:00:5e:00:00:01\"\n\
         [hosts.c]\nip = \"10.0.0.0/30\"\nmac = \"02:00:00:00:00:0c\"\n[hosts.d]\nip = \"10.0.0.3\"\nmac = \"02:00:00:00:00:0d\"\n",
    );
    assert_eq!(
        e,
        [
            "t.toml:7:7: error: host \"a\": \"zz\" is not a MAC address (write it as 02:00:00:00:00:10)",
            "t.toml:10:7: error: host \"b\": 01:00:5e:00:00:01 is not a unicast MAC: a pin needs the host's own MAC",
            "t.toml:16:7: error: host \"d\": 10.0.0.3/32 is also pinned by host \"c\" to another MAC (02:00:00:00:00:0c)",
        ]
    );
    let w = warnings("[hosts.cell]\nip = [\"10.0.0.0/29\", \"10.0.1.1\", \"fd00::/64\"]\nmac = \"02:00:00:00:00:01\"\n");
    assert_eq!(
        w,
        [
            "t.toml:5:1: warning: host \"cell\" has IPv6 addresses but no rule allows ICMPv6 neighbor-solicitation: IPv6 hosts will not find each other",
            "t.toml:7:7: warning: host \"cell\": the MAC pin covers every address of 10.0.0.0/29",
            "t.toml:7:7: warning: host \"cell\": the MAC pin covers every address of fd00::/64",
        ]
    );
    // The same MAC on overlapping hosts is consistent, hence fine.
    clean("[hosts.a]\nip = \"10.0.0.1\"\nmac = \"02:00:00:00:00:01\"\n[hosts.b]\nip = \"10.0.0.1\"\nmac = \"02:00:00:00:00:01\"\n");
}

#[test]
fn vlans_ranges_and_priority_tag() {
    let p = clean("[l2]\nvlans = [\"untagged\", 10, \"100-200\", 4094]\n");
    for (vid, allowed) in [
        (None, true),
        (Some(0), true),
        (Some(1), false),
        (Some(10), true),
        (Some(99), false),
        (Some(100), true),
        (Some(150), true),
        (Some(200), true),
        (Some(201), false),
        (Some(4094), true),
        (Some(4095), false),
        (Some(9999), false),
    ] {
        assert_eq!(p.vlan_allowed(vid), allowed, "{vid:?}");
    }
    let tagged_only = clean("[l2]\nvlans = [10]\n");
    assert!(!tagged_only.vlan_allowed(None) && !tagged_only.vlan_allowed(Some(0)));
    assert!(tagged_only.vlan_allowed(Some(10)));
    assert!(tagged_only.summary().contains("vlans 10\n"));
    assert!(
        p.summary().contains("vlans untagged, 10, 100-200, 4094\n"),
        "{}",
        p.summary()
    );
}

#[test]
fn vlan_errors() {
    assert_eq!(
        errors("[l2]\nvlans = [0, 4095, \"300-200\", \"tagged\", \"0-5\"]\n"),
        [
            "t.toml:6:10: error: VLAN 0 is priority-tagged, which counts as untagged: write \"untagged\"",
            "t.toml:6:13: error: VLAN 4095 is out of range (1-4094)",
            "t.toml:6:19: error: VLAN range \"300-200\" is reversed",
            "t.toml:6:30: error: \"tagged\" is not a VLAN id: write \"untagged\", 1-4094, or a range such as \"100-200\"",
            "t.toml:6:40: error: VLAN \"0-5\" is out of range (1-4094)",
        ]
    );
    assert_eq!(
        errors("[l2]\nvlans = []\n"),
        ["t.toml:6:9: error: `l2.vlans` is empty: every frame would be dropped"]
    );
}

#[test]
fn ethertype_names_and_numbers() {
    let p = clean(
        "[l2]\nethertypes = [\"arp\", \"IPv4\", \"ipv6\", \"lldp\", \"profinet\", \"goose\", \"sv\", \"ptp\", \"mrp\", \"hsr\", \"ethercat\", \"powerlink\", \"slow\", 0x1234, \"0x88E5\", \"35093\"]\n",
    );
    use EtherType::*;
    for t in [
        Arp,
        Ipv4,
        Ipv6,
        Lldp,
        Profinet,
        Goose,
        SampledValues,
        Ptp,
        Mrp,
        Hsr,
        EtherCat,
        Powerlink,
        Slow,
    ] {
        assert!(p.ethertype_allowed(t), "{t:?}");
    }
    assert!(p.ethertype_allowed(EtherType::from(0x1234)));
    assert!(p.ethertype_allowed(EtherType::Unknown(0x1234)));
    assert!(p.ethertype_allowed(EtherType::from(0x88e5)));
    assert!(p.ethertype_allowed(EtherType::from(35093))); // 0x8915, RoCE
    assert!(!p.ethertype_allowed(EtherType::Vlan));
    assert!(!p.ethertype_allowed(EtherType::from(0x88b9)));
    let only_lldp = clean("[l2]\nethertypes = [\"lldp\", \"sampled-values\", \"lacp\"]\n");
    assert!(only_lldp.ethertype_allowed(Lldp) && only_lldp.ethertype_allowed(SampledValues));
    assert!(only_lldp.ethertype_allowed(Slow) && !only_lldp.ethertype_allowed(Ipv4));
    assert!(
        only_lldp.summary().contains("ethertypes slow, sv, lldp;"),
        "{}",
        only_lldp.summary()
    );
}

#[test]
fn ethertype_errors() {
    let e = errors("[l2]\nethertypes = [\"arp\", \"ipx\", 0x8100, \"0x88a8\", 1500, 70000]\n");
    assert_eq!(e.len(), 5, "{e:?}");
    assert!(
        e[0].starts_with(
            "t.toml:6:22: error: unknown ethertype \"ipx\" (names are: ipv4, arp, ipv6,"
        ),
        "{}",
        e[0]
    );
    assert!(e[0].ends_with("; or a number such as 0x88cc)"), "{}", e[0]);
    assert_eq!(
        e[1],
        "t.toml:6:29: error: 0x8100 is a VLAN tag, not a payload: list VLAN ids in `l2.vlans`"
    );
    assert_eq!(
        e[2],
        "t.toml:6:37: error: 0x88a8 is a VLAN tag, not a payload: list VLAN ids in `l2.vlans`"
    );
    assert_eq!(e[3], "t.toml:6:47: error: 0x05dc is an 802.3 length, not an ethertype (ethertypes start at 0x0600)");
    assert!(
        e[4].starts_with("t.toml:6:53: error: unknown ethertype 70000"),
        "{}",
        e[4]
    );
    assert_eq!(
        errors("[l2]\nethertypes = []\n"),
        ["t.toml:6:14: error: `l2.ethertypes` is empty: every frame would be dropped"]
    );
}

#[test]
fn shadowed_rules_are_warned_about() {
    let allow_all = "[[rule]]\nname = \"all\"\nfrom = \"any\"\nto = \"any\"\naction = \"allow\"\n";
    let w = warnings(&format!(
        "{TWO_HOSTS}{allow_all}[[rule]]\nname = \"late\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\naction = \"deny\"\n"
    ));
    assert_eq!(w, ["t.toml:14:1: warning: rule \"late\" can never match: rule \"all\" (line 9) comes first and matches everything it would"]);
    // A superset of ports and hosts also shadows; a partial overlap does not.
    let body = format!(
        "{TWO_HOSTS}[hosts.lan]\nip = \"10.0.0.0/24\"\n\
         [[rule]]\nname = \"wide\"\nfrom = \"any\"\nto = \"lan\"\nproto = \"tcp\"\nports = [\"1-1000\"]\naction = \"allow\"\n\
         [[rule]]\nname = \"narrow\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\nports = [502, 102]\naction = \"deny\"\n\
         [[rule]]\nname = \"partial\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"tcp\"\nports = [\"900-1100\"]\naction = \"deny\"\n\
         [[rule]]\nname = \"udp\"\nfrom = \"hmi\"\nto = \"plc\"\nproto = \"udp\"\nports = [502]\naction = \"deny\"\n"
    );
    let w = warnings(&body);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("rule \"narrow\" can never match: rule \"wide\""),
        "{}",
        w[0]
    );
    // ICMP: a superset of types shadows.
    let w = warnings(
        "[[rule]]\nname = \"a\"\nfrom = \"any\"\nto = \"any\"\nproto = \"icmp\"\nicmp = [0, 8]\naction = \"allow\"\n\
         [[rule]]\nname = \"b\"\nfrom = \"any\"\nto = \"any\"\nproto = \"icmp\"\nicmp = [8]\naction = \"deny\"\n\
         [[rule]]\nname = \"c\"\nfrom = \"any\"\nto = \"any\"\nproto = \"icmp\"\nicmp = [3]\naction = \"deny\"\n",
    );
    assert_eq!(w.len(), 1, "{w:?}");
}

#[test]
fn other_warnings() {
    let w = warnings("[hosts.a]\nip = \"10.0.0.1\"\n[hosts.b]\nip = \"fd00::1\"\n[[rule]]\nname = \"r\"\nfrom = \"a\"\nto = \"b\"\nproto = \"tcp\"\naction = \"allow\"\nlog = true\n[[rule]]\nname = \"d\"\nfrom = \"any\"\nto = \"any\"\naction = \"deny\"\nlog = true\n");
    assert_eq!(
        w,
        [
            "t.toml:7:1: warning: host \"b\" has IPv6 addresses but no rule allows ICMPv6 neighbor-solicitation: IPv6 hosts will not find each other",
            "t.toml:9:1: warning: rule \"r\" can never match: `from` and `to` share no IP version",
            "t.toml:21:7: warning: rule \"d\": `log` has no effect: deny rules are always reported",
        ]
    );
    let w = warnings("[l2]\nethertypes = [\"ipv4\"]\n");
    assert_eq!(w, ["t.toml:6:14: warning: ipv4 is allowed but arp is not: IPv4 hosts will not find each other's MACs"]);
}

#[test]
fn summary_and_rule_display() {
    let (p, _) = Policy::from_toml(PRESS_LINE, "plant.toml").unwrap();
    assert_eq!(
        p.summary(),
        "policy \"press-line-3\", mode enforce\n\
         l2: ethertypes ipv4, arp, ipv6; vlans untagged, 10\n\
         hosts: 2 (hmi, plc), 1 MAC-pinned\n\
         rules: 2 (2 allow, 0 alert, 0 deny), then deny\n\
         flows: 16384 entries; events: 10/s, burst 20\n"
    );
    assert_eq!(
        p.rules()[0].to_string(),
        "hmi-polls-plc: hmi -> plc tcp 502,20000-20010 allow"
    );
}

#[test]
fn load_reads_files_and_reports_read_errors() {
    let dir = std::env::temp_dir().join(format!("gk-policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("plant.toml");
    std::fs::write(&path, PRESS_LINE).unwrap();
    let (p, _) = Policy::load(&path).unwrap();
    assert_eq!(p.name(), "press-line-3");
    std::fs::write(&path, PRESS_LINE.replace("\"hmi\"", "\"hmi2\"")).unwrap();
    let e = Policy::load(&path).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}:20:8: error:", path.display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let e = Policy::load(&dir.join("missing.toml")).unwrap_err();
    let d = &e.diagnostics[0];
    assert_eq!((d.line, d.column, d.severity), (0, 0, Severity::Error));
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!(
            "{}: error: cannot read policy: ",
            dir.join("missing.toml").display()
        )),
        "{shown}"
    );
}

#[test]
fn policy_is_send_sync_and_columns_count_characters() {
    fn assert_send_sync<T: Send + Sync + std::fmt::Debug>() {}
    assert_send_sync::<Policy>();
    // "é" is two bytes but one column.
    let e = errors_of("# é\nschema = 1\n[gatekeeper]\nname = \"é\"\nmode = \"x\"\n");
    assert!(
        e[0].starts_with("t.toml:5:8: error: unknown variant `x`"),
        "{}",
        e[0]
    );
    let e = errors_of("schema = 1\n[gatekeeper]\nname = \"é\"\nmode = \"enforce\"\n[hosts.\"é\"]\nip = \"1.2.3.4\"\n");
    assert!(
        e[0].starts_with("t.toml:5:8: error: host name \"é\""),
        "{}",
        e[0]
    );
}
