//! A sequence of frames, each with an ingress port and a time step, through one pipeline
//! in enforce and in monitor mode: nothing may panic, and monitor mode forwards all.
//! The policy inspects every industrial protocol on its well-known port.
#![no_main]

use std::sync::{Arc, OnceLock};

use gk_dataplane::{Now, NullSink, Pipeline, Port};
use gk_policy::Policy;
use libfuzzer_sys::fuzz_target;

const POLICY: &str = r#"
schema = 1
[gatekeeper]
name = "fuzz"
mode = "MODE"
[l2]
ethertypes = ["arp", "ipv4", "ipv6", "lldp"]
vlans = ["untagged", 10, "100-200"]
[flows]
capacity = 64
[hosts.plc]
ip = ["10.10.0.10", "fd00::10"]
mac = "02:00:00:00:00:10"
[hosts.hmi]
ip = ["10.10.0.0/24", "fd00::/64"]
[inspection]
streams = 16
buffer = 1024
[[rule]]
name = "modbus"
from = "hmi"
to = "plc"
proto = "modbus"
action = "allow"
log = true
[rule.modbus]
preset = "read-only"
addresses = ["0-999"]
[[rule]]
name = "modbus-writes"
from = "hmi"
to = "plc"
proto = "modbus"
action = "alert"
[rule.modbus]
functions = ["write-single-register"]
[[rule]]
name = "dnp3"
from = "hmi"
to = "plc"
proto = "dnp3"
action = "allow"
[[rule]]
name = "enip"
from = "hmi"
to = "plc"
proto = "enip"
action = "allow"
[[rule]]
name = "enip-io"
from = "hmi"
to = "plc"
proto = "enip-io"
action = "allow"
[[rule]]
name = "s7"
from = "hmi"
to = "plc"
proto = "s7"
action = "allow"
[[rule]]
name = "iec104"
from = "hmi"
to = "plc"
proto = "iec104"
action = "allow"
[[rule]]
name = "opcua"
from = "hmi"
to = "plc"
proto = "opcua"
action = "allow"
[[rule]]
name = "bacnet"
from = "hmi"
to = "plc"
proto = "bacnet"
action = "allow"
[[rule]]
name = "tcp"
from = "hmi"
to = "plc"
proto = "tcp"
ports = [502, "20000-20010"]
action = "allow"
log = true
[[rule]]
name = "udp"
from = "any"
to = "plc"
proto = "udp"
action = "alert"
[[rule]]
name = "icmp"
from = "any"
to = "any"
proto = "icmp"
icmp = ["echo-request", "destination-unreachable"]
action = "allow"
[[rule]]
name = "no-v6"
from = "any"
to = "any"
proto = "icmpv6"
action = "deny"
"#;

fn policies() -> &'static [Arc<Policy>; 2] {
    static P: OnceLock<[Arc<Policy>; 2]> = OnceLock::new();
    P.get_or_init(|| {
        let load = |mode| Arc::new(Policy::from_toml(&POLICY.replace("MODE", mode), "fuzz.toml").unwrap().0);
        [load("enforce"), load("monitor")]
    })
}

fuzz_target!(|data: &[u8]| {
    for (i, policy) in policies().iter().enumerate() {
        let mut pipeline = Pipeline::new(policy.clone(), NullSink);
        let mut t = 1u64;
        // Records: [port+step byte][length byte][frame bytes…]
        let mut rest = data;
        while rest.len() >= 2 {
            let (head, len) = (rest[0], usize::from(rest[1]));
            let frame = &rest[2..(2 + len).min(rest.len())];
            rest = &rest[(2 + len).min(rest.len())..];
            let port = if head & 1 == 0 { Port::Plant } else { Port::Asset };
            t += u64::from(head >> 1) * 1_000_000_000;
            let now = Now { mono_ns: t, wall_ns: t as i64 };
            let outcome = pipeline.process(frame, port, now);
            if i == 1 {
                assert!(outcome.forward, "monitor mode forwards every frame");
            }
            pipeline.clear_injected();
            pipeline.housekeeping(now, 4);
        }
    }
});
