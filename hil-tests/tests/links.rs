//! Link propagation on the real image: when the asset NIC loses its link (QMP
//! `set_link`), the box takes its plant port down too — if the policy asks for it — so
//! that the plant's switch and HMI see the loss as they would on a plain cable, and
//! brings it back with the asset link.

use std::time::{Duration, Instant};

use gk_hil::{make_stick, require, scaled, signed_bundle, Vm, PLC};

const BOOT: Duration = Duration::from_secs(180);

const POLICY: &str = r#"schema = 1
[gatekeeper]
name = "hil-links"
mode = "enforce"
link-propagation = true
[hosts.plc]
ip = "10.10.0.10"
[hosts.hmi]
ip = "10.10.0.21"
[[rule]]
name = "hmi-ping"
from = "hmi"
to = "plc"
proto = "icmp"
icmp = ["echo-request"]
action = "allow"
[[health]]
name = "hmi-pings-plc"
from = "hmi"
to = "plc"
proto = "icmp"
within = 300
"#;

const TAKEN_DOWN: &str = "link lost: taking down the other port";
const BROUGHT_UP: &str = "link back: bringing up the other port";

#[test]
fn a_lost_asset_link_takes_the_plant_port_down_when_the_policy_asks() {
    let Some(image) = require("qemu-x86_64") else {
        return;
    };
    let mut vm = Vm::boot("link-propagation", &image, Default::default());
    vm.wait_console("GATEKEEPER READY", BOOT);
    vm.plant.ping_until_answered(PLC, Duration::from_secs(60));

    // The factory default does not ask for it: the plant port stays up. (The ports'
    // start-up settling time, 5 s, is long over once a ping has passed.)
    let from = vm.console().len();
    vm.set_link("asset", false);
    std::thread::sleep(scaled(Duration::from_secs(8)));
    assert!(
        !vm.console()[from..].contains(TAKEN_DOWN),
        "the factory default must not propagate a link loss"
    );
    vm.set_link("asset", true);
    vm.plant.ping_until_answered(PLC, Duration::from_secs(30));

    // A bundle that asks for it, confirmed by its health check (the ping).
    let stick = vm.dir.join("links.img");
    make_stick(&stick, &[("links.gkb", &signed_bundle(1, POLICY, |_| {}))]);
    let from = vm.console().len();
    vm.plug_stick("links", &stick);
    vm.wait_console_from(from, "bundle serial 1 is in force", BOOT);
    // The health check confirms it once it has seen pings both ways.
    let deadline = Instant::now() + scaled(Duration::from_secs(60));
    while !vm.console()[from..].contains("bundle confirmed") {
        assert!(Instant::now() < deadline, "the bundle was not confirmed");
        vm.plant.ping(PLC, 1);
    }
    vm.unplug_stick("links");

    // The asset cable is pulled: the plant port goes down, and says why.
    let from = vm.console().len();
    let cut = Instant::now();
    vm.set_link("asset", false);
    let (_, at) = vm.wait_console_from(from, TAKEN_DOWN, Duration::from_secs(30));
    let taken_down = cut.elapsed();
    let console = vm.console();
    let line_end = console[at..].find('\n').map_or(console.len(), |i| at + i);
    let line = &console[from..line_end].lines().last().unwrap_or_default();
    assert!(
        line.contains("port=asset") && line.contains("other=\"plant\""),
        "the asset port's loss takes the plant port down: {line:?}"
    );
    assert!(
        !vm.plant.ping(PLC, 2),
        "nothing passes while the link is cut"
    );

    // The cable is back: so is the plant port, and the traffic.
    let from = vm.console().len();
    let restored = Instant::now();
    vm.set_link("asset", true);
    vm.wait_console_from(from, BROUGHT_UP, Duration::from_secs(30));
    let brought_up = restored.elapsed();
    let forwarding = vm.plant.ping_until_answered(PLC, Duration::from_secs(30)) + brought_up;
    eprintln!(
        "link propagation: plant port down {:.2} s after the asset link was cut; \
         back up {:.2} s and forwarding {:.2} s after it was restored",
        taken_down.as_secs_f64(),
        brought_up.as_secs_f64(),
        forwarding.as_secs_f64()
    );
}
