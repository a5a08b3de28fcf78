#!/usr/bin/env python3
"""Data-plane benchmark for gatekeeper: gatekeeperd against the Linux kernel bridge.

Run as root from the repository root (``make bench`` does):

    python3 firmware/bench/bench.py [--quick] [--out BENCHMARKS.md]

It follows shared/BENCHMARKING.md:

* Topology: three network namespaces ``gkb-gen`` -- ``gkb-dut`` -- ``gkb-sink`` joined by
  veth pairs (g0|d0 and d1|s0), RFC 2544 addresses (198.18.0.0/15), static neighbour
  entries, IPv6 off, no RPS.  The device under test (DUT) in ``gkb-dut`` is either a
  kernel bridge ``br0`` over d0 and d1, or ``gatekeeperd --plant d0 --asset d1`` with a
  generated 100-rule policy in enforce mode.  A third pair g9|s9 joins the generator to
  the sink directly ("wire", no DUT): the generator's ceiling and the CPU baseline.
* Traffic: ``gk-bench gen`` (AF_PACKET, sendmmsg 64 frames per call, PACKET_QDISC_BYPASS)
  in gkb-gen; the sink is an nftables ``netdev`` ingress counter (count and drop) on s0.
* Pinning: this script, the generator, the sink-side clients and servers run on core 0
  (``taskset -c 0``); gatekeeperd and all its threads on core 1 (``taskset -c 1``).
* Per path and repetition: warm-up, then a measurement window; counters (sink counter,
  ``ip -s -j link``, /proc/stat, /proc/net/softnet_stat) are read at window start and end.
  Paths are interleaved (bridge, gatekeeperd, bridge, gatekeeperd ...).
* Results: median and min..max over the repetitions, as absolute figures and as ratios to
  the kernel bridge measured in the same run, written to BENCHMARKS.md with the method and
  the exact commands.

Only the Python standard library is used.  External tools: ip (iproute2), nft (nftables),
taskset (util-linux), ping (iputils-ping), sockperf and iperf3 (optional: the sections that
need them are skipped with a note when they are missing).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PREFIX = "gkb-"
NS_GEN, NS_DUT, NS_SINK = PREFIX + "gen", PREFIX + "dut", PREFIX + "sink"
NAMESPACES = (NS_GEN, NS_DUT, NS_SINK)

# Addresses: RFC 2544 benchmarking range only, and only inside our namespaces.
GEN_IP, SINK_IP = "198.18.0.1", "198.18.0.2"
WIRE_GEN_IP, WIRE_SINK_IP = "198.18.1.1", "198.18.1.2"
MAC = {
    "g0": "02:00:00:00:01:01",
    "d0": "02:00:00:00:0d:00",
    "d1": "02:00:00:00:0d:01",
    "s0": "02:00:00:00:02:01",
    "g9": "02:00:00:00:01:09",
    "s9": "02:00:00:00:02:09",
}
FLOOD_SPORT, FLOOD_DPORT = 10000, 9
SOCKPERF_PORT, IPERF_PORT = 11111, 5201

LOSS_LIMIT = 0.001  # "no drop": < 0.1 % loss
SIZES = (60, 1514)  # frame bytes without FCS: "64-byte" and full-MTU frames
SIZE_LABEL = {60: "64 B", 1514: "1518 B"}
PATH_LABEL = {"wire": "wire (no DUT)", "bridge": "kernel bridge", "gatekeeperd": "gatekeeperd"}

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str = "") -> None:
    print(msg, flush=True)


def find_tool(name: str, *extra: str) -> str | None:
    for cand in (shutil.which(name), *extra):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


IP = find_tool("ip", "/usr/sbin/ip", "/sbin/ip") or "ip"
NFT = find_tool("nft", "/usr/sbin/nft", "/sbin/nft") or "nft"


class BenchError(Exception):
    """A precondition or a step failed; the message says what to do."""


class PathFailed(Exception):
    """The DUT of one path could not be brought up or stopped forwarding."""


# ---------------------------------------------------------------------------------------
# Running commands


class Runner:
    """Runs commands and keeps the setup commands for the report."""

    def __init__(self) -> None:
        self.setup_log: list[str] = []
        self.recording = False

    def run(self, cmd: list[str], check: bool = True, capture: bool = True,
            timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        if self.recording:
            line = shlex.join(cmd)
            if input is not None:
                line += " <<'EOF'\n" + input.rstrip("\n") + "\nEOF"
            self.setup_log.append(line)
        res = subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout, input=input)
        if check and res.returncode != 0:
            err = (res.stderr or "").strip() if capture else ""
            raise BenchError(f"command failed ({res.returncode}): {shlex.join(cmd)}\n{err}")
        return res

    def ns(self, ns: str, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        return self.run([IP, "netns", "exec", ns, *cmd], **kw)


R = Runner()


def ns_cmd(ns: str, cmd: list[str], cpu: int | None = None) -> list[str]:
    pre = [IP, "netns", "exec", ns]
    if cpu is not None:
        pre += ["taskset", "-c", str(cpu)]
    return pre + cmd


# ---------------------------------------------------------------------------------------
# Topology


def existing_namespaces() -> list[str]:
    res = R.run([IP, "netns", "list"], check=False)
    names = [line.split()[0] for line in (res.stdout or "").splitlines() if line.strip()]
    return [n for n in names if n.startswith(PREFIX)]


def teardown() -> None:
    """Kill whatever runs in our namespaces (all started by us), then delete them."""
    rec, R.recording = R.recording, False
    try:
        for ns in existing_namespaces():
            pids = R.run([IP, "netns", "pids", ns], check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        for ns in existing_namespaces():
            R.run([IP, "netns", "del", ns], check=False)
    finally:
        R.recording = rec


def set_rps(cpus_mask: str) -> None:
    for ns, ifs in ((NS_GEN, ("g0", "g9")), (NS_DUT, ("d0", "d1")), (NS_SINK, ("s0", "s9"))):
        for dev in ifs:
            R.ns(ns, ["sh", "-c", f"for q in /sys/class/net/{dev}/queues/rx-*; do "
                      f"echo {cpus_mask} > $q/rps_cpus; done"])


def setup_topology(rps: bool) -> None:
    teardown()
    R.recording = True
    for ns in NAMESPACES:
        R.run([IP, "netns", "add", ns])
        R.ns(ns, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                  "net.ipv6.conf.default.disable_ipv6=1"])
        R.ns(ns, [IP, "link", "set", "lo", "up"])
    pairs = (("g0", NS_GEN, "d0", NS_DUT), ("d1", NS_DUT, "s0", NS_SINK),
             ("g9", NS_GEN, "s9", NS_SINK))
    for a, nsa, b, nsb in pairs:
        R.run([IP, "link", "add", a, "netns", nsa, "address", MAC[a], "type", "veth",
               "peer", b, "netns", nsb, "address", MAC[b]])
    for ns, dev, addr in ((NS_GEN, "g0", GEN_IP), (NS_SINK, "s0", SINK_IP),
                          (NS_GEN, "g9", WIRE_GEN_IP), (NS_SINK, "s9", WIRE_SINK_IP)):
        R.ns(ns, [IP, "addr", "add", addr + "/24", "dev", dev])
    for ns, dev in ((NS_GEN, "g0"), (NS_GEN, "g9"), (NS_DUT, "d0"), (NS_DUT, "d1"),
                    (NS_SINK, "s0"), (NS_SINK, "s9")):
        R.ns(ns, [IP, "link", "set", dev, "up"])
    # Static neighbour entries: no ARP during the measurements.
    for ns, dev, peer_ip, peer_mac in ((NS_GEN, "g0", SINK_IP, MAC["s0"]),
                                       (NS_SINK, "s0", GEN_IP, MAC["g0"]),
                                       (NS_GEN, "g9", WIRE_SINK_IP, MAC["s9"]),
                                       (NS_SINK, "s9", WIRE_GEN_IP, MAC["g9"])):
        R.ns(ns, [IP, "neigh", "replace", peer_ip, "lladdr", peer_mac, "dev", dev,
                  "nud", "permanent"])
    # The sink: count and drop the flood at the netdev ingress hook.
    R.ns(NS_SINK, [NFT, "-f", "-"], input=f"""\
table netdev gkb {{
    counter rx {{ }}
    counter rxw {{ }}
    chain in_s0 {{
        type filter hook ingress device "s0" priority 0;
        udp dport {FLOOD_DPORT} counter name "rx" drop
    }}
    chain in_s9 {{
        type filter hook ingress device "s9" priority 0;
        udp dport {FLOOD_DPORT} counter name "rxw" drop
    }}
}}
""")
    # A plain kernel bridge: no br_netfilter hooks (they are per namespace and on by
    # default on kernels where br_netfilter is built in).
    R.ns(NS_DUT, ["sh", "-c", "for f in /proc/sys/net/bridge/bridge-nf-call-*; do "
                  "[ -e $f ] && echo 0 > $f; done; true"])
    set_rps("3" if rps else "0")
    R.recording = False


def bridge_up() -> None:
    R.ns(NS_DUT, [IP, "link", "add", "br0", "type", "bridge", "stp_state", "0",
                  "forward_delay", "0", "mcast_snooping", "0"])
    R.ns(NS_DUT, [IP, "link", "set", "d0", "master", "br0"])
    R.ns(NS_DUT, [IP, "link", "set", "d1", "master", "br0"])
    R.ns(NS_DUT, [IP, "link", "set", "br0", "up"])


def bridge_down() -> None:
    if R.ns(NS_DUT, [IP, "link", "show", "br0"], check=False).returncode == 0:
        R.ns(NS_DUT, [IP, "link", "del", "br0"])
        # Removing the ports from the bridge leaves them up.
        for dev in ("d0", "d1"):
            R.ns(NS_DUT, [IP, "link", "set", dev, "up"])


# ---------------------------------------------------------------------------------------
# The gatekeeperd policy


def make_policy(path: Path) -> tuple[int, str]:
    """Writes the benchmark policy: 99 rules that the flood does not match, then the rule
    that allows it (so a first-match engine walks the whole list).  Returns (rules, toml)."""
    out = [
        "# Generated by firmware/bench/bench.py: 100 rules, the flood matches only the last.",
        "schema = 1",
        "",
        "[gatekeeper]",
        'name = "bench"',
        'mode = "enforce"',
        "",
        "[l2]",
        'ethertypes = ["arp", "ipv4"]',
        "",
        "[hosts.gen]",
        f'ip = "{GEN_IP}"',
        f'mac = "{MAC["g0"]}"',
        "",
        "[hosts.sink]",
        f'ip = "{SINK_IP}"',
        f'mac = "{MAC["s0"]}"',
        "",
    ]
    decoys = 8
    for i in range(decoys):
        out += [f"[hosts.decoy{i}]", f'ip = "198.19.{i}.{10 + i}"', ""]
    rules: list[dict] = []
    # 40 rules between the right hosts but for TCP (the flood is UDP).
    for i in range(40):
        rules.append(dict(name=f"decoy-tcp-{i:02}", frm="gen", to="sink", proto="tcp",
                          ports=[1000 + i]))
    # 30 rules between the right hosts, right protocol, wrong port: the costly misses.
    for i in range(30):
        rules.append(dict(name=f"decoy-udp-{i:02}", frm="gen", to="sink", proto="udp",
                          ports=[2000 + 2 * i, 2001 + 2 * i]))
    # 27 rules for other hosts.
    for i in range(27):
        rules.append(dict(name=f"decoy-host-{i:02}", frm=f"decoy{i % decoys}",
                          to="sink" if i % 2 else "gen", proto="udp" if i % 3 else "tcp",
                          ports=[FLOOD_DPORT, 3000 + i]))
    # The latency and TCP tests (they don't match the flood either).
    rules.append(dict(name="bench-tcp", frm="gen", to="sink", proto="tcp", ports=[IPERF_PORT]))
    rules.append(dict(name="bench-ping", frm="gen", to="sink", proto="icmp",
                      icmp=["echo-request"]))
    # A Modbus/TCP rule with function-code inspection belongs here once the policy format
    # has it (PRODUCT.md: "100-rule policy including Modbus inspection"); keep the total
    # at 100 by dropping one decoy when adding it.
    # The one rule the flood matches (plus the sockperf port).
    rules.append(dict(name="bench-flood", frm="gen", to="sink", proto="udp",
                      ports=[FLOOD_DPORT, SOCKPERF_PORT]))
    for r in rules:
        out += ["[[rule]]", f'name = "{r["name"]}"', f'from = "{r["frm"]}"', f'to = "{r["to"]}"',
                f'proto = "{r["proto"]}"']
        if "ports" in r:
            out.append("ports = [" + ", ".join(str(p) for p in r["ports"]) + "]")
        if "icmp" in r:
            out.append("icmp = [" + ", ".join(f'"{t}"' for t in r["icmp"]) + "]")
        out += ['action = "allow"', ""]
    text = "\n".join(out)
    path.write_text(text)
    return len(rules), text


# ---------------------------------------------------------------------------------------
# The DUT paths


class Daemon:
    """gatekeeperd in gkb-dut, pinned to its core."""

    def __init__(self, binary: str, policy: Path, workdir: Path, cpu: int) -> None:
        self.binary, self.policy, self.workdir, self.cpu = binary, policy, workdir, cpu
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.stderr_path = workdir / "gatekeeperd.stderr"
        self.events_path = workdir / "gatekeeperd.events.jsonl"
        self.command: list[str] = []

    def _stderr_text(self, start: int = 0) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(start)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_size(self) -> int:
        try:
            return self.stderr_path.stat().st_size
        except FileNotFoundError:
            return 0

    def start(self) -> None:
        self.starts += 1
        self.command = ns_cmd(NS_DUT, [self.binary, "--plant", "d0", "--asset", "d1",
                                       "--unsigned-policy", str(self.policy),
                                       "--events", str(self.events_path)], cpu=self.cpu)
        offset = self.stderr_size()
        with open(self.stderr_path, "ab") as err:
            err.write(f"\n===== start #{self.starts}: {shlex.join(self.command)}\n".encode())
            err.flush()
            offset = err.tell()
            self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=err,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        said_forwarding = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self._stderr_text(offset).strip()[-2000:]
                self.proc = None
                raise PathFailed(f"gatekeeperd exited during start-up:\n{tail}")
            if not said_forwarding and "forwarding" in self._stderr_text(offset):
                said_forwarding = True
            # Ready when a probe crosses it (policy rule bench-ping).
            if said_forwarding or time.monotonic() > deadline - 10:
                if probe_ping(timeout=0.5):
                    return
            time.sleep(0.1)
        tail = self._stderr_text(offset).strip()[-2000:]
        self.stop()
        raise PathFailed("gatekeeperd did not forward a ping from gkb-gen to gkb-sink within "
                         f"15 s (policy rule bench-ping). Its stderr:\n{tail}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def counters(self) -> str:
        """Sends SIGUSR1 and returns what the daemon printed."""
        if not self.alive():
            return ""
        offset = self.stderr_size()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1)
        text, last = "", -1
        for _ in range(20):
            time.sleep(0.1)
            text = self._stderr_text(offset)
            if text and len(text) == last:
                break
            last = len(text)
        return text

    def stop(self) -> str:
        if self.proc is None:
            return ""
        offset = self.stderr_size()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        text = self._stderr_text(offset)
        if rc not in (0, -signal.SIGTERM):
            text += f"\n(gatekeeperd exit status {rc})"
        return text


class Paths:
    """Switches the DUT between the kernel bridge and gatekeeperd."""

    def __init__(self, daemon: Daemon | None) -> None:
        self.daemon = daemon
        self.current: str | None = None
        self.failed: dict[str, str] = {}

    def use(self, path: str) -> None:
        if path in self.failed:
            raise PathFailed(self.failed[path])
        if path == self.current and (path != "gatekeeperd" or (self.daemon and self.daemon.alive())):
            return
        if self.current == "gatekeeperd" and self.daemon:
            self.daemon.stop()
        bridge_down()
        self.current = None
        if path == "wire":
            # g9|s9 bypass the DUT namespace; nothing runs there meanwhile (a polling
            # daemon would otherwise count in the CPU baseline).
            self.current = path
            return
        if path == "bridge":
            bridge_up()
            if not wait_probe(5):
                raise PathFailed("the kernel bridge does not forward pings")
        elif path == "gatekeeperd":
            if not self.daemon:
                raise PathFailed("gatekeeperd is not available")
            try:
                self.daemon.start()
            except PathFailed as e:
                self.failed[path] = str(e)
                raise
        self.current = path

    def check_alive(self, path: str) -> None:
        if path == "gatekeeperd" and self.daemon and not self.daemon.alive():
            tail = self.daemon._stderr_text(max(0, self.daemon.stderr_size() - 2000))
            msg = f"gatekeeperd died during a measurement. Its stderr ends with:\n{tail}"
            self.failed[path] = msg
            self.current = None
            raise PathFailed(msg)

    def fail(self, path: str, msg: str) -> None:
        self.failed[path] = msg
        if path == "gatekeeperd" and self.daemon:
            self.daemon.stop()
            self.current = None


def probe_ping(timeout: float = 1.0, ip: str = SINK_IP) -> bool:
    res = subprocess.run(ns_cmd(NS_GEN, ["ping", "-c", "1", "-W", str(max(1, int(timeout))),
                                         "-q", ip]),
                         capture_output=True, text=True, timeout=timeout + 5)
    return res.returncode == 0


def wait_probe(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe_ping():
            return True
        time.sleep(0.1)
    return False


# ---------------------------------------------------------------------------------------
# Counters


def link_stats() -> dict[str, dict]:
    stats = {}
    for ns in NAMESPACES:
        res = R.ns(ns, [IP, "-s", "-j", "link", "show"], check=False)
        try:
            for link in json.loads(res.stdout or "[]"):
                s = link.get("stats64") or link.get("stats") or {}
                rx, tx = s.get("rx", {}), s.get("tx", {})
                stats[link["ifname"]] = {
                    "rx_packets": rx.get("packets", 0), "rx_dropped": rx.get("dropped", 0),
                    "tx_packets": tx.get("packets", 0), "tx_dropped": tx.get("dropped", 0),
                }
        except (json.JSONDecodeError, KeyError):
            pass
    return stats


def sink_counters() -> dict[str, int]:
    res = R.ns(NS_SINK, [NFT, "-j", "list", "counters", "table", "netdev", "gkb"])
    out = {}
    for obj in json.loads(res.stdout).get("nftables", []):
        c = obj.get("counter")
        if c:
            out[c["name"]] = int(c["packets"])
    return out


def cpu_times() -> list[list[int]]:
    """Per-core jiffies from /proc/stat: user nice system idle iowait irq softirq steal."""
    cores = []
    with open("/proc/stat") as f:
        for line in f:
            if re.match(r"cpu\d+ ", line):
                cores.append([int(x) for x in line.split()[1:9]])
    return cores


def softnet() -> tuple[int, int, int]:
    """(processed, dropped, time_squeeze) summed over cores, /proc/net/softnet_stat."""
    p = d = s = 0
    with open("/proc/net/softnet_stat") as f:
        for line in f:
            cols = [int(x, 16) for x in line.split()]
            p, d, s = p + cols[0], d + cols[1], s + cols[2]
    return p, d, s


def kthread_runtime() -> float:
    """CPU seconds (sum_exec_runtime) of all kernel threads: ksoftirqd, kworkers ..."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
            rest = raw[raw.rfind(")") + 2:].split()
            if not (entry == "2" or rest[1] == "2"):
                continue
            with open(f"/proc/{entry}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


class CpuAccounting:
    """Tells this benchmark's CPU from everybody else's.

    The script moves itself into a cgroup of its own (cpuacct v1, or cgroup v2), so that
    everything it starts (generator, daemon, clients) is counted there, including children
    that come and go within a window.  Other processes' CPU = all tasks (the hierarchy's
    root) - ours - kernel threads (ksoftirqd does our packet work).  Without cgroups the
    CPU of other processes is not measured."""

    def __init__(self) -> None:
        self.mode = ""
        self.dir: Path | None = None
        self.root: Path | None = None
        self.home: Path | None = None
        v1 = Path("/sys/fs/cgroup/cpuacct")
        v2 = next((p for p in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
                   if (p / "cgroup.subtree_control").exists()), None)
        try:
            if (v1 / "cpuacct.usage").exists():
                self._enter(v1, "cpuacct")
                self.mode = "v1"
            elif v2 is not None and (v2 / "cpu.stat").exists():
                self._enter(v2, "")
                self.mode = "v2"
        except OSError as e:
            log(f"note: cannot set up CPU accounting by cgroup ({e}); other processes' CPU "
                "is not measured")
            self.mode = ""

    def _enter(self, root: Path, controller: str) -> None:
        self.root = root
        current = "/"
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if (controller and controller in ctrls.split(",")) or (not controller and ctrls == ""):
                    current = path
        self.home = root / current.lstrip("/")
        self.dir = root / f"{PREFIX}bench-{os.getpid()}"
        self.dir.mkdir(exist_ok=True)
        (self.dir / "cgroup.procs").write_text(str(os.getpid()))

    def _usage(self, d: Path) -> float:
        if self.mode == "v1":
            return int((d / "cpuacct.usage").read_text()) / 1e9
        for line in (d / "cpu.stat").read_text().splitlines():
            k, v = line.split()
            if k == "usage_usec":
                return int(v) / 1e6
        return 0.0

    def sample(self) -> tuple[float, float, float] | None:
        if not self.mode:
            return None
        assert self.root is not None and self.dir is not None
        return self._usage(self.root), self._usage(self.dir), kthread_runtime()

    def close(self) -> None:
        if not self.mode or self.dir is None or self.home is None:
            return
        try:
            (self.home / "cgroup.procs").write_text(str(os.getpid()))
            for _ in range(50):
                try:
                    self.dir.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        except OSError as e:
            log(f"note: could not remove the cgroup {self.dir}: {e}")
        self.mode = ""


ACCT: CpuAccounting | None = None


def other_cpu(a: tuple | None, b: tuple | None) -> float:
    """CPU seconds used between two samples by processes outside this benchmark."""
    if a is None or b is None:
        return 0.0
    return max(0.0, (b[0] - a[0]) - (b[1] - a[1]) - (b[2] - a[2]))


class Snapshot:
    def __init__(self) -> None:
        self.t = time.monotonic()
        self.sink = sink_counters()
        self.links = link_stats()
        self.cpu = cpu_times()
        self.softnet = softnet()
        self.procs = ACCT.sample() if ACCT else None


def delta_link(a: Snapshot, b: Snapshot, dev: str, key: str) -> int:
    return b.links.get(dev, {}).get(key, 0) - a.links.get(dev, {}).get(key, 0)


# ---------------------------------------------------------------------------------------
# Trials


class Ctx:
    def __init__(self, args: argparse.Namespace, paths: Paths) -> None:
        self.args = args
        self.paths = paths
        self.gen = args.gk_bench
        self.gen_cpu = args.gen_cpu
        self.disturbed = 0
        self.retried = 0
        self.max_steal = 0.0


def gen_command(ctx: Ctx, path: str, size: int, rate: float, duration: float) -> list[str]:
    wire = path == "wire"
    return ns_cmd(NS_GEN, [
        ctx.gen, "gen", "--iface", "g9" if wire else "g0",
        "--src-mac", MAC["g9" if wire else "g0"], "--dst-mac", MAC["s9" if wire else "s0"],
        "--src-ip", WIRE_GEN_IP if wire else GEN_IP, "--dst-ip", WIRE_SINK_IP if wire else SINK_IP,
        "--sport", str(FLOOD_SPORT), "--dport", str(FLOOD_DPORT), "--flows", str(ctx.args.flows),
        "--size", str(size), "--rate", str(int(rate)), "--duration", f"{duration:.3f}",
    ], cpu=ctx.gen_cpu)


def run_trial(ctx: Ctx, path: str, size: int, rate: float, warmup: float, window: float,
              want_counters: bool = False) -> dict:
    """One flood trial; retried when other processes disturbed it by > 5 % of a core."""
    res: dict = {}
    for attempt in range(3):
        res = _trial(ctx, path, size, rate, warmup, window, want_counters)
        if res["other_cpu_frac"] <= 0.05:
            break
        retry = attempt < 2 and ctx.retried < ctx.args.retry_budget
        log(f"      (disturbed: other processes used {100 * res['other_cpu_frac']:.0f}% of a "
            f"core; {'retrying' if retry else 'keeping it, marked *'})")
        if not retry:
            res["disturbed"] = True
            ctx.disturbed += 1
            break
        ctx.retried += 1
    return res


def _trial(ctx: Ctx, path: str, size: int, rate: float, warmup: float, window: float,
           want_counters: bool) -> dict:
    ctx.paths.use(path)
    wire = path == "wire"
    gdev, sdev, counter = ("g9", "s9", "rxw") if wire else ("g0", "s0", "rx")
    tail = 0.5
    cmd = gen_command(ctx, path, size, rate, warmup + window + tail)
    s_begin = Snapshot()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t_start = time.monotonic()
    time.sleep(max(0.0, t_start + warmup - time.monotonic()))
    s0 = Snapshot()
    time.sleep(max(0.0, s0.t + window - time.monotonic()))
    s1 = Snapshot()
    daemon_counters = ""
    if want_counters and path == "gatekeeperd" and ctx.paths.daemon:
        daemon_counters = ctx.paths.daemon.counters()
    try:
        out, err = proc.communicate(timeout=warmup + window + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    if proc.returncode != 0:
        raise BenchError(f"the generator failed: {shlex.join(cmd)}\n{err.strip()}")
    time.sleep(0.3)  # let queued frames drain
    s_end = Snapshot()
    ctx.paths.check_alive(path)
    gen = json.loads(out.strip().splitlines()[-1])

    dt = s1.t - s0.t
    fwd = s1.sink[counter] - s0.sink[counter]
    offered = (delta_link(s0, s1, gdev, "tx_packets") + delta_link(s0, s1, gdev, "tx_dropped"))
    # Whole trial (warm-up included), counted after the generator stopped and queues drained.
    tot_offered = (delta_link(s_begin, s_end, gdev, "tx_packets")
                   + delta_link(s_begin, s_end, gdev, "tx_dropped"))
    tot_fwd = s_end.sink[counter] - s_begin.sink[counter]
    busy = steal = 0.0
    for c0, c1 in zip(s0.cpu, s1.cpu):
        d = [b - a for a, b in zip(c0, c1)]
        busy += d[0] + d[1] + d[2] + d[5] + d[6]
        steal += d[7]
    busy /= CLK_TCK
    steal /= CLK_TCK
    other = other_cpu(s0.procs, s1.procs)
    # Where frames were lost: whole trial, counted after the queues drained.
    a, b = s_begin, s_end
    drops = {
        "ingress_veth": delta_link(a, b, gdev, "tx_dropped"),
        "softnet": b.softnet[1] - a.softnet[1],
    }
    if not wire:
        d0_rx = delta_link(a, b, "d0", "rx_packets")
        d1_out = delta_link(a, b, "d1", "tx_packets") + delta_link(a, b, "d1", "tx_dropped")
        drops["in_dut"] = max(0, d0_rx - d1_out)
        drops["egress_veth"] = delta_link(a, b, "d1", "tx_dropped")
        drops["after_dut"] = max(0, delta_link(a, b, "d1", "tx_packets") - tot_fwd)
    ctx.max_steal = max(ctx.max_steal, steal / dt / len(s0.cpu))
    return {
        "path": path, "size": size, "target": rate, "window": dt,
        "offered_pps": offered / dt, "fwd_pps": fwd / dt,
        "loss": 1 - fwd / offered if offered else 0.0,
        "loss_total": 1 - tot_fwd / tot_offered if tot_offered else 0.0,
        "tot_offered": tot_offered, "tot_fwd": tot_fwd,
        "gen_sent": gen.get("sent", 0),
        "cpu_busy_s": busy, "steal_frac": steal / dt / len(s0.cpu),
        "other_cpu_frac": other / dt,
        "cpu_per_pkt_us": (busy - other) / fwd * 1e6 if fwd else float("nan"),
        "drops": drops, "daemon_counters": daemon_counters,
    }


def guarded_measure(ctx: Ctx, what: str, fn):
    """Runs a latency or TCP measurement; re-runs it once when other processes used more
    than 5 % of a core meanwhile (within the retry budget)."""
    result = None
    for attempt in range(2):
        a, t0 = (ACCT.sample() if ACCT else None), time.monotonic()
        result = fn()
        b, dt = (ACCT.sample() if ACCT else None), time.monotonic() - t0
        frac = other_cpu(a, b) / dt if dt > 0 else 0.0
        if frac <= 0.05:
            return result
        retry = attempt == 0 and ctx.retried < ctx.args.retry_budget
        log(f"      ({what} disturbed: other processes used {100 * frac:.0f}% of a core; "
            f"{'retrying' if retry else 'keeping it, marked *'})")
        if not retry:
            ctx.disturbed += 1
            if isinstance(result, dict):
                result["disturbed"] = True
            return result
        ctx.retried += 1
    return result


def fmt_trial(r: dict) -> str:
    d = r["drops"]
    noise = max(10, r["tot_offered"] // 10000)  # stray frames and counter skew
    where = ", ".join(f"{k}={v}" for k, v in d.items() if v > noise)
    return (f"offered {r['offered_pps'] / 1e3:8.1f} kpps  fwd {r['fwd_pps'] / 1e3:8.1f} kpps  "
            f"loss {100 * r['loss_total']:6.2f}%  cpu/pkt {r['cpu_per_pkt_us']:.2f} us"
            + (f"  drops: {where}" if where else "")
            + ("  *" if r.get("disturbed") else ""))


def nodrop_search(ctx: Ctx, path: str, size: int, overload: dict, warmup: float,
                  window: float, steps: int) -> dict:
    """Binary search on the offered rate for < 0.1 % loss (counted after the trial ends).

    The overload trial bounds it: if it lost nothing, the path keeps up with the
    generator (one trial at the generator's rate confirms it); otherwise the generator's
    rate is known to fail, and the search starts just above the rate the path forwarded
    at overload (a path can forward more when it is not overloaded)."""
    gen_max = overload["offered_pps"]
    hi_rate: float | None
    if overload["loss_total"] < LOSS_LIMIT:
        rate, hi_rate = gen_max, None
    else:
        rate, hi_rate = min(overload["fwd_pps"] * 1.01, gen_max * 0.98), gen_max
    lo: dict | None = None
    tried = []
    for _ in range(steps):
        r = run_trial(ctx, path, size, rate, warmup, window)
        ok = r["loss_total"] < LOSS_LIMIT
        tried.append((rate, r["loss_total"]))
        log(f"      search {rate / 1e3:8.1f} kpps -> loss {100 * r['loss_total']:.3f}% "
            f"{'ok' if ok else 'drop'}")
        if ok:
            if lo is None or rate > lo["target"]:
                lo = r
            if hi_rate is None:
                break  # no loss at the generator's rate
        else:
            hi_rate = rate if hi_rate is None else min(hi_rate, rate)
        if lo is not None and hi_rate is not None:
            if (hi_rate - lo["target"]) / hi_rate < 0.02:
                break
            rate = (lo["target"] + hi_rate) / 2
        else:
            rate *= 0.6
            if rate < 1000:
                break
    best = lo["offered_pps"] if lo else 0.0
    bound = "generator" if lo is not None and hi_rate is None else ""
    return {"rate": best, "target": lo["target"] if lo else 0.0, "bound": bound, "tried": tried}


def quick_nodrop(ctx: Ctx, path: str, size: int, rates: list[int], warmup: float,
                 window: float) -> dict:
    best = 0.0
    target = 0.0
    tried = []
    for rate in rates:
        r = run_trial(ctx, path, size, rate, warmup, window)
        ok = r["loss_total"] < LOSS_LIMIT
        tried.append((rate, r["loss_total"]))
        log(f"      fixed {rate / 1e3:8.1f} kpps -> offered {r['offered_pps'] / 1e3:.1f} kpps, "
            f"loss {100 * r['loss_total']:.3f}% {'ok' if ok else 'drop'}")
        if not ok:
            break
        best, target = r["offered_pps"], rate
        if r["offered_pps"] < 0.95 * rate:
            break  # the generator cannot offer more
    bound = ""
    if tried and tried[-1][1] < LOSS_LIMIT:
        bound = "generator" if best < 0.95 * tried[-1][0] else "fixed-rates"
    return {"rate": best, "target": target, "bound": bound, "tried": tried}


# ---------------------------------------------------------------------------------------
# Latency and TCP


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    f = int(k)
    c = min(f + 1, len(v) - 1)
    return v[f] + (v[c] - v[f]) * (k - f)


def run_sockperf(ctx: Ctx, path: str, seconds: int) -> dict | None:
    if not ctx.args.sockperf:
        return None
    ctx.paths.use(path)
    server = subprocess.Popen(ns_cmd(NS_SINK, [ctx.args.sockperf, "server", "-i", SINK_IP, "-p",
                                               str(SOCKPERF_PORT)], cpu=ctx.gen_cpu),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        cmd = ns_cmd(NS_GEN, [ctx.args.sockperf, "ping-pong", "-i", SINK_IP, "-p",
                              str(SOCKPERF_PORT), "--mps", "2000", "-t", str(seconds),
                              "--full-rtt"], cpu=ctx.gen_cpu)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    text = res.stdout + res.stderr
    pct = {m.group(1): float(m.group(2))
           for m in re.finditer(r"percentile\s+([\d.]+)\s*=\s*([\d.]+)", text)}
    if res.returncode != 0 or "50.000" not in pct:
        log(f"      sockperf failed ({res.returncode}): {text.strip()[-500:]}")
        return None
    ctx.paths.check_alive(path)
    return {"p50": pct["50.000"], "p99": pct.get("99.000", float("nan")),
            "p999": pct.get("99.900", float("nan"))}


def run_ping(ctx: Ctx, path: str, count: int) -> dict | None:
    ctx.paths.use(path)
    cmd = ns_cmd(NS_GEN, ["ping", "-i", "0.01", "-c", str(count), "-W", "1", SINK_IP],
                 cpu=ctx.gen_cpu)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=count * 0.05 + 30)
    rtts = [float(x) * 1000 for x in re.findall(r"time=([\d.]+) ms", res.stdout)]
    if len(rtts) < count * 0.9:
        log(f"      ping: only {len(rtts)}/{count} replies")
        if not rtts:
            return None
    ctx.paths.check_alive(path)
    return {"p50": percentile(rtts, 50), "p99": percentile(rtts, 99),
            "p999": percentile(rtts, 99.9), "replies": len(rtts), "sent": count}


def set_endpoint_offloads(on: bool) -> None:
    state = "on" if on else "off"
    for ns, dev in ((NS_GEN, "g0"), (NS_SINK, "s0")):
        R.ns(ns, ["ethtool", "-K", dev, "tx", state, "tso", state, "gso", state, "gro", state],
             check=False)


def run_iperf(ctx: Ctx, path: str, seconds: int) -> dict | None:
    if not ctx.args.iperf3:
        return None
    ctx.paths.use(path)
    server = subprocess.Popen(ns_cmd(NS_SINK, [ctx.args.iperf3, "-s", "-1", "-B", SINK_IP, "-p",
                                               str(IPERF_PORT)], cpu=ctx.gen_cpu),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        cmd = ns_cmd(NS_GEN, [ctx.args.iperf3, "-c", SINK_IP, "-p", str(IPERF_PORT), "-t",
                              str(seconds), "-O", "1", "-J", "--connect-timeout", "3000"],
                     cpu=ctx.gen_cpu)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    finally:
        try:
            server.wait(timeout=3)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    try:
        data = json.loads(res.stdout)
    except json.JSONDecodeError:
        log(f"      iperf3 failed: {(res.stdout + res.stderr).strip()[-300:]}")
        return None
    if "error" in data:
        log(f"      iperf3 failed: {data['error']}")
        return {"error": data["error"]}
    end = data.get("end", {})
    recv = end.get("sum_received", {})
    sent = end.get("sum_sent", {})
    ctx.paths.check_alive(path)
    return {"gbps": recv.get("bits_per_second", 0) / 1e9, "retrans": sent.get("retransmits", 0)}


# ---------------------------------------------------------------------------------------
# Statistics and the report


def med(values: list[float]) -> float:
    v = [x for x in values if x == x]
    return statistics.median(v) if v else float("nan")


def spread(values: list[float], scale: float = 1.0, fmt: str = "{:.1f}") -> str:
    v = [x / scale for x in values if x == x]
    if not v:
        return "n/a"
    m = fmt.format(statistics.median(v))
    if len(v) == 1:
        return m
    return f"{m} ({fmt.format(min(v))}..{fmt.format(max(v))})"


def ratio(a: float, b: float) -> str:
    if a != a or b != b or not b:
        return "n/a"
    return f"{a / b:.2f}x"


def machine_info() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        backlog = Path("/proc/sys/net/core/netdev_max_backlog").read_text().strip()
    except OSError:
        backlog = "?"
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"],
                           capture_output=True, text=True)
    rev = commit.stdout.strip() if commit.returncode == 0 else "no commit"
    if dirty.returncode == 0 and dirty.stdout.strip():
        rev += " (with uncommitted changes)"
    return {
        "kernel": platform.release(),
        "cores": os.cpu_count(),
        "cpu": model,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "load1": os.getloadavg()[0],
        "backlog": backlog,
        "rev": rev,
    }


def write_report(ctx: Ctx, out: Path, info: dict, res: dict, policy_rules: int,
                 policy_path: Path, notes: list[str], elapsed: float) -> None:
    a = ctx.args
    paths = [p for p in ("bridge", "gatekeeperd") if p in a.paths]
    has_gk = "gatekeeperd" in paths
    L: list[str] = []
    L.append("# gatekeeper data-plane benchmark")
    L.append("")
    L.append(f"Generated by `firmware/bench/bench.py{' --quick' if a.quick else ''}` "
             f"(`make bench`) on {info['date']}; revision {info['rev']}. "
             f"{'QUICK MODE: one repetition, short windows, fixed rates: for development, not for publication. ' if a.quick else ''}"
             f"Run time {elapsed / 60:.1f} min.")
    L.append("")
    L.append(f"Machine: Linux {info['kernel']}, {info['cores']} cores ({info['cpu']}), "
             f"netdev_max_backlog {info['backlog']}. 1-minute load before the run: "
             f"{info['load1']:.2f}{' (NOISY: >= 0.7)' if info['load1'] >= 0.7 else ''}. "
             f"Highest steal time in a window: {100 * ctx.max_steal:.1f}% of the cores. "
             f"Samples retried because other processes used > 5% of a core: {ctx.retried}; "
             f"kept although disturbed (marked *): {ctx.disturbed}.")
    L.append("")
    L.append("Absolute packet rates on this small VM move with the host: compare the ratios to "
             "the kernel bridge measured in the same run. Rates are frames per second; sizes "
             "include the 4-byte FCS (64 B = 60 bytes handed to the kernel).")
    L.append("")
    for n in notes:
        L.append(f"> **Note:** {n}")
        L.append("")

    # ---- Headline table
    L.append("## Summary")
    L.append("")
    L.append("Median over the repetitions, (min..max) when there are several.")
    L.append("")
    hdr = "| metric | kernel bridge |" + (" gatekeeperd | gatekeeperd / bridge |" if has_gk else "")
    L.append(hdr)
    L.append("|---|---:|" + ("---:|---:|" if has_gk else ""))

    def cell(path: str, key: tuple, scale: float, fmt: str) -> str:
        text = spread(res.get((path,) + key, []), scale, fmt)
        if key[0] == "nodrop":
            bounds = res.get((path, "nodrop_bound", key[1]), [])
            if bounds and all(b in ("generator", "fixed-rates") for b in bounds):
                text = "≥ " + text  # never lost a frame: the generator is the limit
        return text

    def row(name: str, key, scale: float, fmt: str) -> None:
        vb = res.get(("bridge",) + key, [])
        line = f"| {name} | {cell('bridge', key, scale, fmt)} |"
        if has_gk:
            vg = res.get(("gatekeeperd",) + key, [])
            line += f" {cell('gatekeeperd', key, scale, fmt)} | {ratio(med(vg), med(vb))} |"
        L.append(line)

    for size in SIZES:
        row(f"no-drop rate, {SIZE_LABEL[size]} (kpps, < 0.1% loss)", ("nodrop", size), 1e3, "{:.1f}")
    for size in SIZES:
        if ("bridge", "confirmed", size) in res or ("gatekeeperd", "confirmed", size) in res:
            row(f"no-drop rate confirmed by a full-length trial, {SIZE_LABEL[size]} (kpps)",
                ("confirmed", size), 1e3, "{:.1f}")
    for size in SIZES:
        row(f"forwarded at overload, {SIZE_LABEL[size]} (kpps)", ("fwd", size), 1e3, "{:.1f}")
    for size in SIZES:
        row(f"CPU per forwarded packet at overload, {SIZE_LABEL[size]} (us, all cores)",
            ("cpu", size), 1, "{:.2f}")
    for size in SIZES:
        if ("bridge", "dutcpu", size) in res:
            row(f"CPU per packet above the wire baseline, {SIZE_LABEL[size]} (us)",
                ("dutcpu", size), 1, "{:.2f}")
    for tool in ("sockperf", "ping"):
        for p, lab in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
            if ("bridge", tool, p) in res or ("gatekeeperd", tool, p) in res:
                row(f"round trip at idle, {tool} {lab} (us)", (tool, p), 1, "{:.1f}")
    if ("bridge", "tcp") in res or ("gatekeeperd", "tcp") in res:
        row("TCP, iperf3 one stream, default offloads (Gbit/s)", ("tcp",), 1, "{:.2f}")
    if ("bridge", "tcp_nooffload") in res or ("gatekeeperd", "tcp_nooffload") in res:
        row("TCP, iperf3, endpoint offloads off (Gbit/s)", ("tcp_nooffload",), 1, "{:.2f}")
    L.append("")
    L.append("≥: the path lost no frame at the highest rate the generator offered; the "
             "generator (see the wire reference) is the limit, not the path.")
    L.append("")
    if has_gk:
        lat = []
        for tool in ("sockperf", "ping"):
            for p in ("p50", "p99"):
                b, g = med(res.get(("bridge", tool, p), [])), med(res.get(("gatekeeperd", tool, p), []))
                if b == b and g == g:
                    lat.append(f"{tool} {p} {g - b:+.1f} us")
        if lat:
            L.append("Added round-trip latency of gatekeeperd over the kernel bridge: "
                     + ", ".join(lat) + ".")
            L.append("")
    if "wire" in a.paths:
        L.append("Reference, generator straight into the sink (no DUT): "
                 + "; ".join(f"{SIZE_LABEL[s]}: {spread(res.get(('wire', 'fwd', s), []), 1e3)} kpps, "
                             f"{spread(res.get(('wire', 'cpu', s), []), 1, '{:.2f}')} us CPU per packet"
                             for s in SIZES)
                 + ". No-drop rates equal to this are bound by the generator, not the DUT.")
        L.append("")

    # ---- Detail tables
    L.append("## Overload trials (generator as fast as it goes)")
    L.append("")
    L.append("Where drops happened, per window: `ingress veth` = frames the generator's veth "
             "could not hand to the receiving core's backlog (g0 tx_dropped); `in DUT` = "
             "frames that entered d0 and never left d1 (for gatekeeperd: its socket rings or "
             "its verdicts); `egress veth` = d1 tx_dropped; `softnet` = backlog drops in "
             "/proc/net/softnet_stat.")
    L.append("")
    L.append("| rep | path | size | offered kpps | forwarded kpps | loss (whole trial) | CPU us/pkt | drops: ingress veth / in DUT / egress veth / softnet |")
    L.append("|---:|---|---|---:|---:|---:|---:|---|")
    for t in res.get("overload_trials", []):
        d = t["drops"]
        L.append(f"| {t['rep']} | {PATH_LABEL[t['path']]} | {SIZE_LABEL[t['size']]} | "
                 f"{t['offered_pps'] / 1e3:.1f} | {t['fwd_pps'] / 1e3:.1f} | "
                 f"{100 * max(0.0, t['loss_total']):.2f}% | {t['cpu_per_pkt_us']:.2f} | "
                 f"{d.get('ingress_veth', 0)} / {d.get('in_dut', '-')} / "
                 f"{d.get('egress_veth', '-')} / {d.get('softnet', 0)}"
                 f"{' *' if t.get('disturbed') else ''} |")
    L.append("")
    L.append("## No-drop searches")
    L.append("")
    L.append("| rep | path | size | no-drop kpps | rates tried (kpps: loss) |")
    L.append("|---:|---|---|---:|---|")
    for s in res.get("searches", []):
        tried = ", ".join(f"{r / 1e3:.0f}: {100 * loss:.2f}%" for r, loss in s["tried"])
        bound = {"generator": " (generator-bound)", "fixed-rates": " (highest rate tried)"}.get(s["bound"], "")
        L.append(f"| {s['rep']} | {PATH_LABEL[s['path']]} | {SIZE_LABEL[s['size']]} | "
                 f"{s['rate'] / 1e3:.1f}{bound} | {tried} |")
    if res.get("confirm"):
        L.append("")
        L.append("Confirmation of the median no-drop rate with full-length trials (3% lower "
                 "after each failure, at most three times):")
        L.append("")
        for c in res["confirm"]:
            L.append(f"- {PATH_LABEL[c['path']]}, {SIZE_LABEL[c['size']]}: target "
                     f"{c['target'] / 1e3:.1f} kpps, offered {c['offered_pps'] / 1e3:.1f} kpps, "
                     f"loss {100 * c['loss_total']:.3f}% "
                     f"({'holds' if c['loss_total'] < LOSS_LIMIT else 'DOES NOT HOLD'})")
    L.append("")
    if res.get("daemon_counters"):
        L.append("## gatekeeperd counters after a 64 B overload trial (SIGUSR1)")
        L.append("")
        L.append("Rules and reasons with nothing to count are left out.")
        L.append("")
        L.append("```")
        for line in res["daemon_counters"].rstrip().splitlines():
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)
            if re.search(r"\bflows\s+0\s+packets\s+0\b", line) or \
                    re.search(r"\bdropped\s+0\s+would-drop\s+0\s*$", line):
                continue
            L.append(line)
        L.append("```")
        L.append("")
    if res.get("failures"):
        L.append("## Failures")
        L.append("")
        for p, msg in res["failures"].items():
            L.append(f"- **{PATH_LABEL.get(p, p)}**:")
            L.append("")
            L.append("```")
            L.extend(msg.strip().splitlines()[-30:])
            L.append("```")
        L.append("")

    # ---- Method
    w = "quick" if a.quick else "full"
    p = PARAMS[w]
    L.append("## Method")
    L.append("")
    L.append(f"- Topology: namespaces `{NS_GEN}` -- `{NS_DUT}` -- `{NS_SINK}`, veth g0|d0 and "
             f"d1|s0, plus g9|s9 straight from the generator to the sink (the \"wire\" "
             f"reference). Addresses from 198.18.0.0/15, static neighbour entries, IPv6 "
             f"disabled in every namespace, RPS {'ON (diagnostic mode)' if a.rps else 'off (rps_cpus = 0)'}. "
             f"Veth offloads are left at their defaults (the generator's frames carry full "
             f"checksums; TCP is measured with the defaults and once with the endpoints' "
             f"offloads off).")
    L.append(f"- DUT: the kernel bridge `br0` (STP off) over d0 and d1, or `gatekeeperd --plant d0 "
             f"--asset d1` in enforce mode with a generated {policy_rules}-rule policy "
             f"(`{policy_path.name}` in the run directory): 97 decoy rules the flood does not "
             f"match (40 TCP between the same hosts, 30 UDP to other ports, 27 for other "
             f"hosts), rules for iperf3 and ping, and last the rule that allows the flood.")
    L.append(f"- Pinning: this script, the generator, the nftables sink (it runs in the "
             f"softirq of the core that transmits), sockperf, ping and iperf3 on core "
             f"{a.gen_cpu} (`taskset -c {a.gen_cpu}`); gatekeeperd and its threads on core "
             f"{a.daemon_cpu} (`taskset -c {a.daemon_cpu}` at start, inherited by its threads). "
             f"The kernel bridge has no thread of its own: it runs in the generator's "
             f"sends on core {a.gen_cpu}.")
    L.append(f"- Generator: `gk-bench gen` (raw AF_PACKET, sendmmsg of 64 pre-built frames per "
             f"call, PACKET_QDISC_BYPASS), UDP to port {FLOOD_DPORT}, {a.flows} flow(s). Sink: an "
             f"nftables netdev ingress counter on s0 (`udp dport {FLOOD_DPORT} counter drop`).")
    L.append(f"- Each overload trial: {p['warmup']} s warm-up, {p['window']} s window; "
             f"{p['reps']} repetition(s), paths interleaved in each (wire, bridge, gatekeeperd). "
             f"Counters read at window start and end: the sink counter (`nft -j list counters`), "
             f"`ip -s -j link` in each namespace, /proc/stat, /proc/net/softnet_stat. Offered "
             f"= g0 tx_packets + tx_dropped (what the generator handed to the wire).")
    if a.quick:
        L.append(f"- No-drop rate (quick mode): fixed offered rates, {p['s_warmup']} s + "
                 f"{p['s_window']} s each; the highest rate with < 0.1% loss (counted after "
                 f"the trial ends) is reported.")
    else:
        L.append(f"- No-drop rate: binary search on the offered rate, starting at the rate the "
                 f"path forwarded at overload, at most {p['steps']} steps, stopping within 2%; "
                 f"search trials are {p['s_warmup']} s + {p['s_window']} s; loss counted over "
                 f"the whole trial after the generator stopped and queues drained; one search "
                 f"per repetition; the median is then confirmed with a full-length trial "
                 f"(stepping down 3% after a failure).")
    L.append("- CPU per forwarded packet: busy time of all cores (user+nice+system+irq+softirq "
             "from /proc/stat) over the window, less the CPU of other processes, divided by "
             "the packets counted at the sink. It includes the generator and the sink, hence "
             "the wire reference; it does not depend on pinning.")
    L.append(f"- Latency at idle: `sockperf ping-pong --mps 2000 -t {p['sockperf_t']} --full-rtt` "
             f"(UDP to a `sockperf server` in the sink namespace) and `ping -i 0.01 -c "
             f"{p['ping_c']}`; round-trip percentiles in microseconds.")
    L.append(f"- TCP: `iperf3 -t {p['iperf_t']} -O 1 -J`, one stream, client in {NS_GEN}, server "
             f"in {NS_SINK}, both on core {a.gen_cpu}.")
    L.append("- Guard rails: the 1-minute load is read before the run; in each window the "
             "steal time and the CPU of processes outside the benchmark are recorded (all "
             "tasks less this benchmark's own cgroup and kernel threads, from cpuacct), and "
             "a trial disturbed by more than 5% of a core is retried (twice at most within a "
             f"budget of {a.retry_budget} per run, then kept and marked *); latency and TCP "
             "runs are retried once the same way.")
    L.append("")
    L.append("### Exact commands")
    L.append("")
    L.append("Topology (as run):")
    L.append("")
    L.append("```sh")
    L.extend(R.setup_log)
    L.append("# kernel bridge path:")
    L.append(f"{IP} netns exec {NS_DUT} {IP} link add br0 type bridge stp_state 0 forward_delay 0 "
             "mcast_snooping 0")
    L.append(f"{IP} netns exec {NS_DUT} {IP} link set d0 master br0")
    L.append(f"{IP} netns exec {NS_DUT} {IP} link set d1 master br0")
    L.append(f"{IP} netns exec {NS_DUT} {IP} link set br0 up")
    L.append("```")
    L.append("")
    L.append("Measurements:")
    L.append("")
    L.append("```sh")
    if has_gk and ctx.paths.daemon:
        L.append(shlex.join(ctx.paths.daemon.command or ns_cmd(
            NS_DUT, [ctx.paths.daemon.binary, "--plant", "d0", "--asset", "d1",
                     "--unsigned-policy", str(policy_path), "--events", "EVENTS"],
            cpu=a.daemon_cpu)))
    L.append(shlex.join(gen_command(ctx, "bridge", 60, 0, p["warmup"] + p["window"] + 0.5)))
    L.append(f"{IP} netns exec {NS_SINK} {NFT} -j list counters table netdev gkb")
    L.append(f"{IP} netns exec {NS_GEN} {IP} -s -j link show   # and in {NS_DUT}, {NS_SINK}")
    if a.sockperf:
        L.append(shlex.join(ns_cmd(NS_SINK, ["sockperf", "server", "-i", SINK_IP, "-p",
                                             str(SOCKPERF_PORT)], cpu=a.gen_cpu)))
        L.append(shlex.join(ns_cmd(NS_GEN, ["sockperf", "ping-pong", "-i", SINK_IP, "-p",
                                            str(SOCKPERF_PORT), "--mps", "2000", "-t",
                                            str(p["sockperf_t"]), "--full-rtt"], cpu=a.gen_cpu)))
    L.append(shlex.join(ns_cmd(NS_GEN, ["ping", "-i", "0.01", "-c", str(p["ping_c"]), SINK_IP],
                               cpu=a.gen_cpu)))
    if a.iperf3:
        L.append(shlex.join(ns_cmd(NS_SINK, ["iperf3", "-s", "-1", "-B", SINK_IP],
                                   cpu=a.gen_cpu)))
        L.append(shlex.join(ns_cmd(NS_GEN, ["iperf3", "-c", SINK_IP, "-t", str(p["iperf_t"]),
                                            "-O", "1", "-J"], cpu=a.gen_cpu)))
        L.append(f"{IP} netns exec {NS_GEN} ethtool -K g0 tx off tso off gso off gro off   "
                 f"# offloads-off variant, same on s0")
    L.append("```")
    L.append("")
    text = "\n".join(L) + "\n"
    out.write_text(text.replace(str(REPO) + "/", ""))


# ---------------------------------------------------------------------------------------
# Main


PARAMS = {
    "full": dict(reps=3, warmup=2.0, window=10.0, s_warmup=0.5, s_window=2.0, steps=7,
                 sockperf_t=5, ping_c=500, iperf_t=10),
    "quick": dict(reps=1, warmup=1.0, window=3.0, s_warmup=0.5, s_window=1.5, steps=0,
                  sockperf_t=2, ping_c=100, iperf_t=3),
}
QUICK_RATES = {60: [50_000, 100_000, 200_000, 300_000, 400_000, 500_000, 600_000],
               1514: [50_000, 100_000, 200_000, 300_000, 400_000, 500_000, 600_000]}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="one repetition, short windows, fixed rates (development)")
    ap.add_argument("--out", default=str(REPO / "BENCHMARKS.md"),
                    help="where to write the report (default: BENCHMARKS.md at the repo root)")
    ap.add_argument("--paths", default="wire,bridge,gatekeeperd",
                    help="comma-separated paths to measure: wire, bridge, gatekeeperd")
    ap.add_argument("--gatekeeperd", default=str(REPO / "target/release/gatekeeperd"),
                    help="the daemon binary (default target/release/gatekeeperd)")
    ap.add_argument("--gk-bench", default=str(REPO / "target/release/gk-bench"),
                    help="the generator binary (built with cargo if missing)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    ap.add_argument("--flows", type=int, default=1, help="UDP flows in the flood (default 1)")
    ap.add_argument("--gen-cpu", type=int, default=0, help="core for generator and clients")
    ap.add_argument("--daemon-cpu", type=int, default=1, help="core for gatekeeperd")
    ap.add_argument("--rps", action="store_true", help="diagnostic: enable RPS on all veths")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: "
                    "overload, nodrop, latency, tcp")
    ap.add_argument("--retry-budget", type=int, default=30,
                    help="at most this many disturbed trials are re-run (default 30)")
    ap.add_argument("--keep", action="store_true",
                    help="leave the namespaces in place at the end (debugging)")
    return ap.parse_args()


def preflight(args: argparse.Namespace) -> list[str]:
    notes = []
    if os.geteuid() != 0:
        raise BenchError("run as root: the benchmark creates network namespaces")
    for tool, pkg in ((IP, "iproute2"), (NFT, "nftables"), ("taskset", "util-linux"),
                      ("ping", "iputils-ping")):
        if not find_tool(tool):
            raise BenchError(f"{tool} not found: apt-get install {pkg}")
    if not find_tool("ethtool", "/usr/sbin/ethtool", "/sbin/ethtool"):
        notes.append("ethtool is missing (apt-get install ethtool): the offloads-off TCP "
                     "variant is skipped.")
        args.ethtool = None
    else:
        args.ethtool = find_tool("ethtool", "/usr/sbin/ethtool", "/sbin/ethtool")
    args.sockperf = find_tool("sockperf")
    if not args.sockperf:
        notes.append("sockperf is missing (apt-get install sockperf): latency from ping only.")
    args.iperf3 = find_tool("iperf3")
    if not args.iperf3:
        notes.append("iperf3 is missing (apt-get install iperf3): no TCP figures.")
    ncpu = os.cpu_count() or 1
    if ncpu < 2:
        notes.append(f"only {ncpu} core: generator and daemon share it.")
        args.daemon_cpu = args.gen_cpu = 0
    if not os.access(args.gk_bench, os.X_OK):
        cargo = find_tool("cargo")
        if not cargo:
            raise BenchError(f"{args.gk_bench} is missing and cargo is not available: "
                             "build it with `cargo build --release -p gk-bench`")
        log("Building gk-bench (cargo build --release -p gk-bench) ...")
        subprocess.run([cargo, "build", "--release", "-p", "gk-bench"], cwd=REPO, check=True)
    if "gatekeeperd" in args.paths and not os.access(args.gatekeeperd, os.X_OK):
        raise BenchError(
            f"gatekeeperd not found at {args.gatekeeperd}. Build it with "
            "`cargo build --release -p gatekeeperd` (or `make`), pass --gatekeeperd PATH, "
            "or measure only the kernel bridge with --paths wire,bridge.")
    return notes


def main() -> int:
    args = parse_args()
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    for p in args.paths:
        if p not in PATH_LABEL:
            raise BenchError(f"unknown path {p!r}: use wire, bridge, gatekeeperd")
    args.gk_bench = os.path.abspath(args.gk_bench)
    args.gatekeeperd = os.path.abspath(args.gatekeeperd)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    mode = "quick" if args.quick else "full"
    prm = dict(PARAMS[mode])
    if args.reps:
        prm["reps"] = args.reps
    notes = preflight(args)

    info = machine_info()
    log(f"gatekeeper benchmark ({mode} mode) - {info['date']}")
    log(f"kernel {info['kernel']}, {info['cores']} cores ({info['cpu']}), revision {info['rev']}")
    log(f"pinning: generator/sink/clients on core {args.gen_cpu} (taskset -c {args.gen_cpu}), "
        f"gatekeeperd on core {args.daemon_cpu} (taskset -c {args.daemon_cpu})")
    if info["load1"] >= 0.7:
        msg = (f"the 1-minute load was {info['load1']:.2f} (>= 0.7) before the run: "
               "figures may be noisy.")
        notes.append(msg)
        log("WARNING: " + msg)
    for n in notes:
        log("note: " + n)

    # Generator, clients and this script on the generator's core.
    os.sched_setaffinity(0, {args.gen_cpu})
    global ACCT
    ACCT = CpuAccounting()
    if not ACCT.mode:
        notes.append("no cgroup CPU accounting here: other processes' CPU was not measured.")
    workdir = Path(tempfile.mkdtemp(prefix="gk-bench-", dir=str(REPO / "target")
                                    if (REPO / "target").is_dir() else None))
    policy_path = workdir / "bench-policy.toml"
    rules, _ = make_policy(policy_path)
    daemon = (Daemon(args.gatekeeperd, policy_path, workdir, args.daemon_cpu)
              if "gatekeeperd" in args.paths else None)
    paths = Paths(daemon)
    ctx = Ctx(args, paths)
    res: dict = {"overload_trials": [], "searches": [], "confirm": []}
    t_run = time.monotonic()

    def add(key: tuple, value: float) -> None:
        res.setdefault(key, []).append(value)

    def guarded(path: str, fn):
        """Runs one measurement; a failing gatekeeperd is recorded and its path skipped."""
        if path in paths.failed:
            return None
        try:
            return fn()
        except PathFailed as e:
            paths.fail(path, str(e))
            log(f"  !! {PATH_LABEL[path]} failed: " + "\n     ".join(str(e).strip().splitlines()[:6]))
            return None

    log(f"run directory (policy, daemon logs): {workdir}")
    setup_topology(args.rps)
    log("topology up: " + " -- ".join(NAMESPACES))
    dut_paths = [p for p in ("bridge", "gatekeeperd") if p in args.paths]
    order = (["wire"] if "wire" in args.paths else []) + dut_paths
    for rep in range(1, prm["reps"] + 1):
        log(f"== repetition {rep}/{prm['reps']}")
        for path in order:
            overload = {}
            if "overload" not in skip or "nodrop" not in skip:
                for size in SIZES:
                    def do_overload(path=path, size=size):
                        r = run_trial(ctx, path, size, 0, prm["warmup"], prm["window"],
                                      want_counters=(size == 60 and rep == prm["reps"]))
                        return r
                    r = guarded(path, do_overload)
                    if r is None:
                        continue
                    overload[size] = r
                    r["rep"] = rep
                    res["overload_trials"].append(r)
                    add((path, "fwd", size), r["fwd_pps"])
                    add((path, "offered", size), r["offered_pps"])
                    add((path, "cpu", size), r["cpu_per_pkt_us"])
                    if r.get("daemon_counters"):
                        res["daemon_counters"] = r["daemon_counters"]
                    log(f"  {PATH_LABEL[path]:14} {SIZE_LABEL[size]:6} overload: {fmt_trial(r)}")
            if path == "wire":
                continue
            if "nodrop" not in skip:
                for size in SIZES:
                    if size not in overload:
                        continue
                    log(f"  {PATH_LABEL[path]:14} {SIZE_LABEL[size]:6} no-drop search")
                    if args.quick:
                        s = guarded(path, lambda: quick_nodrop(ctx, path, size, QUICK_RATES[size],
                                                               prm["s_warmup"], prm["s_window"]))
                    else:
                        s = guarded(path, lambda: nodrop_search(ctx, path, size, overload[size],
                                                                prm["s_warmup"], prm["s_window"],
                                                                prm["steps"]))
                    if s is None:
                        continue
                    s.update(path=path, size=size, rep=rep)
                    res["searches"].append(s)
                    add((path, "nodrop", size), s["rate"])
                    res.setdefault((path, "nodrop_bound", size), []).append(s["bound"])
                    log(f"  {PATH_LABEL[path]:14} {SIZE_LABEL[size]:6} no-drop rate "
                        f"{s['rate'] / 1e3:.1f} kpps {s['bound']}")
            if "latency" not in skip:
                def do_lat(path=path):
                    sp = guarded_measure(ctx, "sockperf",
                                         lambda: run_sockperf(ctx, path, prm["sockperf_t"]))
                    pg = guarded_measure(ctx, "ping", lambda: run_ping(ctx, path, prm["ping_c"]))
                    return sp, pg
                lat = guarded(path, do_lat)
                if lat:
                    sp, pg = lat
                    msg = f"  {PATH_LABEL[path]:14} latency:"
                    if sp:
                        for k in ("p50", "p99", "p999"):
                            add((path, "sockperf", k), sp[k])
                        msg += (f" sockperf p50 {sp['p50']:.1f} p99 {sp['p99']:.1f} "
                                f"p99.9 {sp['p999']:.1f} us;")
                    if pg:
                        for k in ("p50", "p99", "p999"):
                            add((path, "ping", k), pg[k])
                        msg += (f" ping p50 {pg['p50']:.1f} p99 {pg['p99']:.1f} us "
                                f"({pg['replies']}/{pg['sent']} replies)")
                    log(msg)
            if "tcp" not in skip and args.iperf3:
                t = guarded(path, lambda: guarded_measure(
                    ctx, "iperf3", lambda: run_iperf(ctx, path, prm["iperf_t"])))
                if t and "gbps" in t:
                    add((path, "tcp"), t["gbps"])
                    log(f"  {PATH_LABEL[path]:14} TCP {t['gbps']:.2f} Gbit/s, "
                        f"{t['retrans']} retransmits")
                elif t is not None or path not in paths.failed:
                    add((path, "tcp"), 0.0)
                    log(f"  {PATH_LABEL[path]:14} TCP failed: {t}")

    # Confirm the median no-drop rates with full-length trials (full mode).
    if not args.quick and "nodrop" not in skip:
        log("== confirmation of the no-drop rates")
        for size in SIZES:
            for path in dut_paths:
                rates = [s["target"] for s in res["searches"]
                         if s["path"] == path and s["size"] == size and s["target"] > 0]
                if not rates:
                    continue
                target = med(rates)
                # Step down 3 % at a time (at most 3 times) until a full-length trial holds.
                for attempt in range(4):
                    r = guarded(path, lambda: run_trial(ctx, path, size, target,
                                                        prm["warmup"], prm["window"]))
                    if not r:
                        break
                    r["target"] = target
                    res["confirm"].append(r)
                    log(f"  {PATH_LABEL[path]:14} {SIZE_LABEL[size]:6} at {target / 1e3:.1f} "
                        f"kpps: {fmt_trial(r)}")
                    if r["loss_total"] < LOSS_LIMIT:
                        add((path, "confirmed", size), r["offered_pps"])
                        break
                    target *= 0.97

    # TCP with the endpoints' offloads off (one run per path: a diagnostic).
    if "tcp" not in skip and args.iperf3 and args.ethtool:
        set_endpoint_offloads(False)
        try:
            for path in dut_paths:
                t = guarded(path, lambda: run_iperf(ctx, path, prm["iperf_t"]))
                if t and "gbps" in t:
                    add((path, "tcp_nooffload"), t["gbps"])
                    log(f"  {PATH_LABEL[path]:14} TCP, endpoint offloads off: {t['gbps']:.2f} "
                        f"Gbit/s, {t['retrans']} retransmits")
        finally:
            set_endpoint_offloads(True)

    for size in SIZES:
        wire = res.get(("wire", "cpu", size))
        for path in dut_paths:
            vals = res.get((path, "cpu", size))
            if wire and vals:
                res[(path, "dutcpu", size)] = [v - med(wire) for v in vals]

    if daemon and paths.current == "gatekeeperd":
        daemon.stop()
    res["failures"] = dict(paths.failed)
    raw = {"|".join(map(str, k)) if isinstance(k, tuple) else k: v for k, v in res.items()}
    (workdir / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    log(f"raw results: {workdir / 'results.json'}")
    out = Path(args.out)
    write_report(ctx, out, info, res, rules, policy_path, notes, time.monotonic() - t_run)
    log(f"report written to {out}")
    if paths.failed:
        for p, msg in paths.failed.items():
            log(f"FAILED: {PATH_LABEL[p]}: {msg.splitlines()[0]}")
        return 1
    return 0


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_signal)
    keep = "--keep" in sys.argv
    code = 1
    try:
        code = main()
    except BenchError as e:
        log(f"bench: error: {e}")
        code = 2
    except KeyboardInterrupt:
        log("bench: interrupted")
        code = 130
    finally:
        if not keep:
            try:
                teardown()
            except Exception as e:  # noqa: BLE001 - cleanup must not hide the real error
                log(f"bench: cleanup problem: {e}")
        if ACCT:
            ACCT.close()
    sys.exit(code)
