//! gatekeeperd between real kernel stacks in network namespaces: what passes, what does
//! not, what it reports, and what it never does (talk on its ports).

mod common;

use common::*;

fn policy(mode: &str, extra: &str) -> String {
    format!(
        r#"
schema = 1
[gatekeeper]
name = "netns-test"
mode = "{mode}"
[l2]
ethertypes = ["arp", "ipv4"]
vlans = ["untagged", 10]
[events]
rate = 20
burst = 20
[hosts.plc]
ip = "{PLC}"
mac = "{PLC_MAC}"
[hosts.hmi]
ip = "{HMI}"
[[rule]]
name = "hmi-polls-plc"
from = "hmi"
to = "plc"
proto = "tcp"
ports = [502, 5201]
action = "allow"
log = true
[[rule]]
name = "hmi-io"
from = "hmi"
to = "plc"
proto = "udp"
ports = [2222]
action = "allow"
[[rule]]
name = "ping-plc"
from = "hmi"
to = "plc"
proto = "icmp"
icmp = ["echo-request"]
action = "allow"
{extra}
"#
    )
}

#[test]
fn enforces_direction_replies_udp_and_icmp() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("enforce");
    net.echo_server("plc", "tcp", 502);
    net.echo_server("plc", "udp", 2222);
    net.echo_server("hmi", "tcp", 502);
    net.start_daemon(&policy("enforce", ""), &[]);

    // Allowed, with the replies flowing back through the flow table.
    net.tcp("hmi", PLC, 502, 20_000)
        .expect("hmi → plc:502 allowed");
    net.udp("hmi", PLC, 2222)
        .expect("hmi → plc:2222/udp allowed");
    assert!(net.ping("hmi", PLC), "hmi may ping the plc");
    let allow = net.wait_event("allow hmi-polls-plc", |e| e["rule"] == "hmi-polls-plc");
    assert_eq!(allow["verdict"], "allow");
    assert_eq!(allow["port"], "plant");
    assert_eq!(allow["src"], HMI);
    assert_eq!(allow["dst"], PLC);
    assert_eq!(allow["proto"], "tcp");
    assert_eq!(allow["dport"], 502);
    assert!(allow["time"].as_str().unwrap().ends_with('Z'));

    // Not allowed: another source, another port, the other direction.
    assert_eq!(
        net.tcp("intr", PLC, 502, 100)
            .unwrap_err()
            .split(' ')
            .next(),
        Some("timeout")
    );
    assert!(!net.ping("intr", PLC), "the intruder may not ping");
    assert!(net.udp("hmi", PLC, 2223).is_err(), "udp/2223 not allowed");
    assert!(
        net.tcp("plc", HMI, 502, 100).is_err(),
        "the plc may not open connections to the hmi"
    );
    let denied = net.wait_event("deny from the intruder", |e| {
        e["src"] == INTRUDER && e["proto"] == "tcp"
    });
    assert_eq!(denied["verdict"], "deny");
    assert_eq!(denied["reason"], "no-rule");
    assert_eq!(denied["rule"], serde_json::Value::Null);
    assert_eq!(denied["port"], "plant");
    let reverse = net.wait_event("deny from the plc side", |e| {
        e["src"] == PLC && e["proto"] == "tcp"
    });
    assert_eq!(reverse["port"], "asset");

    // Counters on SIGTERM: the exit is clean and reports rules and reasons.
    let (code, stderr) = net.stop_daemon();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("hmi-polls-plc"), "{stderr}");
    assert!(stderr.contains("no-rule"), "{stderr}");
}

#[test]
fn an_icmp_error_about_an_allowed_flow_comes_back() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("related");
    net.start_daemon(&policy("enforce", ""), &[]);
    // Nothing listens on udp/2222 at the plc: its kernel answers port-unreachable, which
    // must reach the client as "refused" (not a timeout).
    let err = net.udp("hmi", PLC, 2222).unwrap_err();
    assert!(
        err.starts_with("refused"),
        "expected the ICMP error to pass, got {err}"
    );
}

#[test]
fn bulk_tcp_with_default_offloads() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("bulk");
    net.echo_server("plc", "tcp", 502);
    net.spawn("plc", "iperf3 -s -p 5201");
    std::thread::sleep(std::time::Duration::from_millis(500));
    net.start_daemon(&policy("enforce", ""), &[]);
    // 8 MB echoed back and compared by hash: every byte crossed the bridge twice.
    net.tcp("hmi", PLC, 502, 8_000_000)
        .expect("bulk echo through the bridge");
    let out = net.sh("hmi", &format!("iperf3 -c {PLC} -p 5201 -t 2 -J"));
    let report: serde_json::Value = serde_json::from_str(&out).expect("iperf3 JSON");
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap();
    eprintln!("iperf3 through gatekeeperd: {:.1} Mbit/s", bps / 1e6);
    assert!(bps > 1e6, "bulk TCP barely moved: {bps} bit/s");
}

#[test]
fn monitor_mode_forwards_everything_and_reports_would_deny() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("monitor");
    net.echo_server("plc", "tcp", 502);
    net.start_daemon(&policy("monitor", ""), &[]);
    net.tcp("intr", PLC, 502, 1000)
        .expect("monitor mode forwards the intruder");
    assert!(net.ping("intr", PLC));
    let e = net.wait_event("would-deny", |e| {
        e["src"] == INTRUDER && e["proto"] == "tcp"
    });
    assert_eq!(e["verdict"], "would-deny");
    assert_eq!(e["reason"], "no-rule");
    // Reported once per conversation, not once per packet.
    let tcp_events = net
        .events()
        .iter()
        .filter(|e| e["src"] == INTRUDER && e["proto"] == "tcp")
        .count();
    assert_eq!(tcp_events, 1);
}

#[test]
fn vlan_tags_pass_byte_for_byte_and_unlisted_vlans_do_not() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("vlan");
    // Let the tagged test frames through on the plc end: the tag is for this test only.
    let pcap = net.capture("plc", "eth0", "asset");
    net.start_daemon(&policy("enforce", ""), &[]);
    let hmi = gk_dataplane::testing::FrameBuilder::new(mac_bytes(HMI_MAC), mac_bytes(PLC_MAC));
    let src = HMI.parse().unwrap();
    let dst = PLC.parse().unwrap();
    let syn = gk_dataplane::testing::flags::SYN;
    let allowed = [
        hmi.clone()
            .vlan(0x8100, 5, 10)
            .tcp(src, 41000, dst, 502, syn, b""),
        hmi.clone()
            .vlan(0x8100, 7, 0)
            .tcp(src, 41001, dst, 502, syn, b""),
        hmi.clone()
            .vlan(0x88a8, 3, 10)
            .vlan(0x8100, 1, 300)
            .tcp(src, 41002, dst, 502, syn, b""),
        hmi.tcp(src, 41003, dst, 502, syn, &[0xab; 1200]),
    ];
    let refused = hmi_vlan(20).tcp(src, 41004, dst, 502, syn, b"");
    let mut args = allowed.iter().map(|f| hex(f)).collect::<Vec<_>>();
    args.push(hex(&refused));
    net.sh(
        "hmi",
        &format!("python3 {} raw-send eth0 {}", Net::peers(), args.join(" ")),
    );
    net.wait_event("vlan 20 refused", |e| e["reason"] == "vlan");
    let seen = wait_for_frames(&pcap, &allowed);
    assert!(!seen.contains(&refused), "VLAN 20 must not pass");
}

fn hmi_vlan(vid: u16) -> gk_dataplane::testing::FrameBuilder {
    gk_dataplane::testing::FrameBuilder::new(mac_bytes(HMI_MAC), mac_bytes(PLC_MAC))
        .vlan(0x8100, 0, vid)
}

#[test]
fn mac_pin_stops_arp_spoofing_of_the_plc() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("macpin");
    let pcap = net.capture("plc", "eth0", "asset");
    net.start_daemon(&policy("enforce", ""), &[]);
    let intruder = gk_dataplane::testing::FrameBuilder::new(mac_bytes(INTRUDER_MAC), [0xff; 6]);
    let poison = intruder.arp(
        2,
        mac_bytes(INTRUDER_MAC),
        PLC.parse().unwrap(),
        HMI.parse().unwrap(),
    );
    let honest = intruder.arp(
        1,
        mac_bytes(INTRUDER_MAC),
        INTRUDER.parse().unwrap(),
        PLC.parse().unwrap(),
    );
    net.sh(
        "intr",
        &format!(
            "python3 {} raw-send eth0 {} {}",
            Net::peers(),
            hex(&poison),
            hex(&honest)
        ),
    );
    let e = net.wait_event("mac-pin", |e| e["reason"] == "mac-pin");
    assert_eq!(e["verdict"], "deny");
    assert_eq!(e["proto"], "arp");
    assert_eq!(e["src"], PLC);
    assert_eq!(e["src_mac"], INTRUDER_MAC);
    // The honest request arrives; the poison, sent just before it, never does.
    let seen = wait_for_frames(&pcap, std::slice::from_ref(&honest));
    assert!(!seen.contains(&poison), "the spoofed ARP reached the plc");
}

#[test]
fn the_box_is_silent_on_both_ports() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("silence");
    let macs: Vec<String> = ["plant", "asset"]
        .iter()
        .map(|i| {
            net.sh("gk", &format!("cat /sys/class/net/{i}/address"))
                .trim()
                .to_string()
        })
        .collect();
    let plant_pcap = net.capture("sw", "uplink", "plant-side");
    let asset_pcap = net.capture("plc", "eth0", "asset-side");
    net.echo_server("plc", "tcp", 502);
    net.start_daemon(&policy("enforce", ""), &[]);
    net.tcp("hmi", PLC, 502, 1000).unwrap();
    let _ = net.tcp("intr", PLC, 502, 10);
    // Long enough for IPv6 autoconfiguration, router solicitations or ARP to show up.
    std::thread::sleep(std::time::Duration::from_secs(3));
    net.stop_background();
    for (side, pcap) in [("plant", &plant_pcap), ("asset", &asset_pcap)] {
        let frames = read_pcap(pcap);
        assert!(!frames.is_empty(), "the {side} capture saw traffic");
        for frame in frames {
            let src = frame[6..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            assert!(
                !macs.contains(&src),
                "the box sent a frame of its own on the {side} side: {}",
                hex(&frame)
            );
        }
    }
    let addrs = net.sh("gk", "ip -o addr show dev plant; ip -o addr show dev asset");
    assert!(
        addrs.trim().is_empty(),
        "the ports carry addresses: {addrs}"
    );
}

#[test]
fn full_flow_table_refuses_new_flows_and_keeps_old_ones() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("flowfull");
    net.echo_server("plc", "udp", 2222);
    let text = policy("enforce", "").replace("[events]", "[flows]\ncapacity = 16\n[events]");
    net.start_daemon(&text, &[]);
    // 16 conversations from fixed source ports fill the table; they stay alive.
    let script = r#"
import socket, sys
socks = []
for i in range(16):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
    s.bind(("0.0.0.0", 30000 + i)); s.connect((sys.argv[1], 2222)); s.send(b"x"); s.recv(100); socks.append(s)
extra = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); extra.settimeout(1); extra.connect((sys.argv[1], 2222))
try:
    extra.send(b"y"); extra.recv(100); print("extra-passed")
except socket.timeout:
    print("extra-refused")
socks[3].send(b"z"); print("old-ok" if socks[3].recv(100) == b"z" else "old-broken")
"#;
    let path = net.dir.join("fill.py");
    std::fs::write(&path, script).unwrap();
    let out = net.sh("hmi", &format!("python3 {} {PLC}", path.display()));
    assert!(out.contains("extra-refused"), "{out}");
    assert!(out.contains("old-ok"), "{out}");
    net.wait_event("flow-table-full", |e| e["reason"] == "flow-table-full");
}

#[test]
fn deny_events_are_rate_limited() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("ratelimit");
    net.start_daemon(&policy("enforce", ""), &[]);
    // 200 denied datagrams in a burst from one source: at most the burst (20) plus a few
    // refills become events, and the count of what was held back is reported later.
    net.sh("intr", &format!(
        "python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b'x', ('{PLC}', 9)) for _ in range(200)]\""
    ));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    net.sh("intr", &format!(
        "python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('{PLC}', 9))\""
    ));
    let later = net.wait_event("an event carrying a suppressed count", |e| {
        e["suppressed"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(later["reason"], "no-rule");
    let count = net
        .events()
        .iter()
        .filter(|e| e["src"] == INTRUDER && e["proto"] == "udp")
        .count();
    assert!(count < 60, "{count} events for 201 packets");
}

#[test]
fn sigusr1_prints_counters_and_keeps_running() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("sigusr1");
    net.echo_server("plc", "tcp", 502);
    net.start_daemon(&policy("enforce", ""), &[]);
    net.tcp("hmi", PLC, 502, 100).unwrap();
    net.signal_daemon(libc::SIGUSR1);
    wait_until(std::time::Duration::from_secs(5), || {
        std::fs::read_to_string(net.stderr_path())
            .unwrap_or_default()
            .contains("counters for policy")
    });
    net.tcp("hmi", PLC, 502, 100)
        .expect("still forwarding after SIGUSR1");
}

#[test]
fn link_loss_on_one_side_takes_the_other_side_down_when_the_board_asks() {
    link_loss_takes_the_other_side_down(
        "linkprop",
        &policy("enforce", ""),
        &["--link-propagation"],
    );
}

#[test]
fn link_loss_on_one_side_takes_the_other_side_down_when_the_policy_asks() {
    let text = policy("enforce", "").replacen(
        "mode = \"enforce\"",
        "mode = \"enforce\"\nlink-propagation = true",
        1,
    );
    link_loss_takes_the_other_side_down("linkpol", &text, &[]);
}

fn link_loss_takes_the_other_side_down(name: &str, policy: &str, flags: &[&str]) {
    if !require_root() {
        return;
    }
    let mut net = Net::new(name);
    net.start_daemon(policy, flags);
    let carrier = |net: &Net| {
        net.sh("plc", "cat /sys/class/net/eth0/carrier")
            .trim()
            .to_string()
    };
    assert_eq!(carrier(&net), "1");
    // The plant cable is pulled: the switch's end goes down, so the gatekeeper's plant
    // port loses carrier, and the asset port is taken down so that the PLC notices (once
    // the ports' 5 s start-up settling time is over).
    net.sh("sw", "ip link set uplink down");
    wait_until(std::time::Duration::from_secs(15), || carrier(&net) == "0");
    net.sh("sw", "ip link set uplink up");
    wait_until(std::time::Duration::from_secs(5), || carrier(&net) == "1");
    // The asset port is given 5 s to find its link again: meanwhile it holds nothing down.
    assert!(
        net.ping("hmi", PLC),
        "no traffic once the link is back:\n{}",
        net.daemon_log()
    );
    let (code, stderr) = net.stop_daemon();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("link lost: taking down the other port"),
        "{stderr}"
    );
    assert!(
        stderr.contains("link back: bringing up the other port"),
        "{stderr}"
    );
}

#[test]
fn without_link_propagation_the_other_side_stays_up() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("nolinkprop");
    net.start_daemon(&policy("enforce", ""), &[]);
    net.sh("sw", "ip link set uplink down");
    // Longer than the start-up settling time, after which a propagation would be at once.
    std::thread::sleep(std::time::Duration::from_secs(7));
    assert_eq!(net.sh("plc", "cat /sys/class/net/eth0/carrier").trim(), "1");
}

#[test]
fn ipv6_with_neighbour_discovery() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("ipv6");
    for (role, addr) in [
        ("hmi", "fd00::21"),
        ("intr", "fd00::66"),
        ("plc", "fd00::10"),
    ] {
        net.sh(
            role,
            &format!(
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0 && \
             ip addr add {addr}/64 dev eth0 nodad"
            ),
        );
    }
    net.spawn("plc", "python3 -c \"import socket; s=socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('::', 502)); s.listen(); [c.close() for c, _ in iter(s.accept, None)]\"");
    wait_until(std::time::Duration::from_secs(10), || {
        net.try_sh("plc", "ss -H -tln 'sport = :502' | grep -q .")
            .status
            .success()
    });
    let text = r#"
schema = 1
[gatekeeper]
name = "v6"
mode = "enforce"
[l2]
ethertypes = ["ipv6"]
[hosts.plc]
ip = ["fd00::10", "fe80::/64"]
[hosts.hmi]
ip = "fd00::21"
[hosts.link-multicast]
ip = "ff02::/16"
[[rule]]
name = "nd-multicast"
from = "any"
to = "link-multicast"
proto = "icmpv6"
icmp = ["neighbor-solicitation", "neighbor-advertisement", "mldv2-report", "router-solicitation"]
action = "allow"
[[rule]]
name = "nd-unicast"
from = "any"
to = "any"
proto = "icmpv6"
icmp = ["neighbor-solicitation", "neighbor-advertisement"]
action = "allow"
[[rule]]
name = "hmi-ping"
from = "hmi"
to = "plc"
proto = "icmpv6"
icmp = ["echo-request"]
action = "allow"
[[rule]]
name = "hmi-modbus"
from = "hmi"
to = "plc"
proto = "tcp"
ports = [502]
action = "allow"
"#;
    net.start_daemon(text, &[]);
    assert!(
        net.ping("hmi", "fd00::10"),
        "hmi pings the plc over IPv6 (neighbour discovery passes)"
    );
    assert!(
        net.try_sh("hmi", "python3 -c \"import socket; socket.create_connection(('fd00::10', 502), timeout=2).close()\"").status.success(),
        "hmi connects to [fd00::10]:502"
    );
    assert!(!net.ping("intr", "fd00::10"), "the intruder may not ping");
    let e = net.wait_event("intruder's echo request denied", |e| {
        e["src"] == "fd00::66" && e["icmp_type"] == 128
    });
    assert_eq!(e["proto"], "icmpv6");
    assert_eq!(e["reason"], "no-rule");
}

#[test]
fn the_events_file_is_rotated_past_its_limit() {
    if !require_root() {
        return;
    }
    let mut net = Net::new("events-rotate");
    net.start_daemon(&policy("monitor", ""), &["--events-max-bytes", "2000"]);
    // Every UDP port is a conversation of its own, reported once: about 300 bytes each
    // (paced under the events' rate limit).
    net.sh(
        "intr",
        &format!(
            "python3 -c \"import socket, time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             for p in range(1000, 1040): s.sendto(b'x', ('{PLC}', p)); time.sleep(0.05)\""
        ),
    );
    net.wait_event("the last conversation", |e| e["dport"] == 1039);
    let current = std::fs::read_to_string(net.events_path()).unwrap();
    let mut previous_path = net.events_path().into_os_string();
    previous_path.push(".1");
    let previous = std::fs::read_to_string(&previous_path).expect("events.jsonl.1 exists");
    for text in [&current, &previous] {
        assert!(text.len() < 2000 + 1000, "bounded: {} bytes", text.len());
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("{e}: a whole line per event: {line}"));
        }
    }
    assert!(
        current.contains("\"dport\":1039"),
        "the newest event is in the current file"
    );
}
