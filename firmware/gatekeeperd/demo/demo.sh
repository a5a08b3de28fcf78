#!/usr/bin/env bash
# The gatekeeper demo: a PLC behind gatekeeperd, an HMI that may poll it, an intruder
# that may not. Builds five network namespaces, runs a real Modbus/TCP server on the PLC,
# plays a short scene and narrates it with the gatekeeper's own events. See README.md.
#
# Run as root, after `cargo build --release` (make demo does both):
#   GATEKEEPERD=target/release/gatekeeperd PYTHON=target/venv/bin/python \
#   POLICY=config/examples/demo.toml firmware/gatekeeperd/demo/demo.sh
#
# Exit status: 0 when every step turned out as the policy says it should, 1 otherwise,
# 2 when a precondition is missing. Everything it creates is removed on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
GATEKEEPERD=${GATEKEEPERD:-$REPO/target/release/gatekeeperd}
PYTHON=${PYTHON:-$REPO/target/venv/bin/python}
POLICY=${POLICY:-$REPO/config/examples/demo.toml}
TOOL=$HERE/demo_tool.py

P=gkdemo
NS_HMI=$P-hmi NS_INTRUDER=$P-intruder NS_SW=$P-sw NS_GK=$P-gk NS_PLC=$P-plc
HMI_IP=10.10.0.21 INTRUDER_IP=10.10.0.66 PLC_IP=10.10.0.10
HMI_MAC=02:00:00:00:00:21 INTRUDER_MAC=02:00:00:00:00:66 PLC_MAC=02:00:00:00:00:10

# ---------------------------------------------------------------------------------------
# Output

if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
    B=$'\e[1m' DIM=$'\e[2m' RED=$'\e[31m' GRN=$'\e[32m' RST=$'\e[0m'
else
    B='' DIM='' RED='' GRN='' RST=''
fi
say() { printf '%s\n' "$*"; }
die() { printf '%sdemo: %s%s\n' "$RED" "$*" "$RST" >&2; exit 2; }
indent() { sed 's/^/    /'; }

# ---------------------------------------------------------------------------------------
# Preconditions

IP=$(command -v ip || true)
[[ -z $IP && -x /usr/sbin/ip ]] && IP=/usr/sbin/ip
[[ $(id -u) -eq 0 ]] || die "run me as root: the demo creates network namespaces (sudo make demo)"
[[ -n $IP ]] || die "'ip' not found: apt-get install iproute2"
command -v ping >/dev/null || die "'ping' not found: apt-get install iputils-ping"
[[ -x $GATEKEEPERD ]] || die "gatekeeperd not found at GATEKEEPERD=$GATEKEEPERD: build it with
    cargo build --release -p gatekeeperd    (or set GATEKEEPERD=/path/to/gatekeeperd)"
[[ -x $PYTHON ]] || command -v "$PYTHON" >/dev/null ||
    die "no python at PYTHON=$PYTHON: make a venv with pymodbus:
    python3 -m venv target/venv && target/venv/bin/pip install pymodbus"
"$PYTHON" -c 'import pymodbus' 2>/dev/null || die "PYTHON=$PYTHON cannot import pymodbus: $PYTHON -m pip install pymodbus"
[[ -r $POLICY ]] || die "policy not found: POLICY=$POLICY"
ARPING=$(command -v arping || true)

# ---------------------------------------------------------------------------------------
# Clean-up: on every exit, also after a failed step or Ctrl-C

WORK=$(mktemp -d /tmp/gkdemo.XXXXXX)
EVENTS=$WORK/events.jsonl
GKLOG=$WORK/gatekeeperd.log
GK_PID='' PLC_PID=''

kill_ns_processes() {
    local ns=$1 pid
    for pid in $("$IP" netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    sleep 0.2
    for pid in $("$IP" netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
}

remove_namespaces() {
    local ns
    for ns in $("$IP" netns list 2>/dev/null | awk '{print $1}' | grep "^$P-" || true); do
        kill_ns_processes "$ns"
        "$IP" netns del "$ns" 2>/dev/null || true
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $GK_PID ]] && kill -0 "$GK_PID" 2>/dev/null; then
        kill -TERM "$GK_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$GK_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$GK_PID" 2>/dev/null || true
    fi
    [[ -n $PLC_PID ]] && kill "$PLC_PID" 2>/dev/null || true
    remove_namespaces
    if [[ $rc -ne 0 && -s $GKLOG && ${KEEP_LOGS:-} != 1 ]]; then
        say "${DIM}gatekeeperd's log ($GKLOG) ends with:${RST}"
        tail -n 15 "$GKLOG" | indent
    fi
    [[ ${KEEP_LOGS:-} == 1 ]] && say "logs kept in $WORK" || rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'say; say "interrupted"; exit 130' INT TERM

nsx() { local ns=$1; shift; "$IP" netns exec "$ns" "$@"; }

# ---------------------------------------------------------------------------------------
# Topology

build_topology() {
    remove_namespaces  # left-overs of an interrupted run
    local ns
    for ns in $NS_HMI $NS_INTRUDER $NS_SW $NS_GK $NS_PLC; do
        "$IP" netns add "$ns"
        nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        nsx "$ns" "$IP" link set lo up
    done
    # Plant side: HMI and intruder on a switch, with the gatekeeper's plant port.
    "$IP" link add h0 netns "$NS_HMI" address $HMI_MAC type veth peer sw-hmi netns "$NS_SW"
    "$IP" link add i0 netns "$NS_INTRUDER" address $INTRUDER_MAC type veth peer sw-intruder netns "$NS_SW"
    "$IP" link add sw-gk netns "$NS_SW" type veth peer plant netns "$NS_GK"
    # Asset side: the PLC on the gatekeeper's asset port.
    "$IP" link add asset netns "$NS_GK" type veth peer p0 netns "$NS_PLC" address $PLC_MAC
    nsx "$NS_SW" sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e "$f" ] && echo 0 > "$f"; done; true'
    # A quiet switch: no STP, no IGMP of its own (multicast snooping off).
    nsx "$NS_SW" "$IP" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    for ns in sw-hmi sw-intruder sw-gk; do
        nsx "$NS_SW" "$IP" link set "$ns" master br0 up
    done
    nsx "$NS_SW" "$IP" link set br0 up
    nsx "$NS_HMI" "$IP" addr add $HMI_IP/24 dev h0
    nsx "$NS_INTRUDER" "$IP" addr add $INTRUDER_IP/24 dev i0
    nsx "$NS_PLC" "$IP" addr add $PLC_IP/24 dev p0
    nsx "$NS_HMI" "$IP" link set h0 up
    nsx "$NS_INTRUDER" "$IP" link set i0 up
    nsx "$NS_PLC" "$IP" link set p0 up
    nsx "$NS_GK" "$IP" link set plant up
    nsx "$NS_GK" "$IP" link set asset up
}

start_plc() {
    "$IP" netns exec "$NS_PLC" "$PYTHON" "$HERE/plc_server.py" --host $PLC_IP --port 502 \
        >"$WORK/plc.log" 2>&1 &
    PLC_PID=$!
    local i
    for i in $(seq 100); do
        kill -0 "$PLC_PID" 2>/dev/null || { cat "$WORK/plc.log" >&2; die "the PLC's Modbus server did not start"; }
        if nsx "$NS_PLC" "$PYTHON" -c "import socket; socket.create_connection(('$PLC_IP', 502), 0.5).close()" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    cat "$WORK/plc.log" >&2
    die "the PLC's Modbus server is not listening on $PLC_IP:502"
}

probe_plc_from_hmi() {
    # ARP passes the gatekeeper without a rule or an event; ping needs rule hmi-ping-plc.
    if [[ -n $ARPING ]]; then
        nsx "$NS_HMI" "$ARPING" -q -c 1 -w 1 -I h0 $PLC_IP >/dev/null 2>&1
    else
        nsx "$NS_HMI" ping -q -c 1 -W 1 $PLC_IP >/dev/null 2>&1
    fi
}

start_gatekeeper() {
    # Not through nsx: $! must be the daemon itself (ip netns exec execs it).
    "$IP" netns exec "$NS_GK" "$GATEKEEPERD" --plant plant --asset asset --unsigned-policy "$POLICY" \
        --events "$EVENTS" </dev/null >/dev/null 2>"$GKLOG" &
    GK_PID=$!
    local i
    for i in $(seq 150); do
        if ! kill -0 "$GK_PID" 2>/dev/null; then
            wait "$GK_PID" || true
            GK_PID=''
            say "${RED}gatekeeperd exited at start-up:${RST}"
            indent <"$GKLOG"
            exit 1
        fi
        if grep -q forwarding "$GKLOG" 2>/dev/null && probe_plc_from_hmi; then
            return 0
        fi
        sleep 0.1
    done
    say "${RED}gatekeeperd did not start forwarding within 15 s; its log:${RST}"
    indent <"$GKLOG"
    exit 1
}

# ---------------------------------------------------------------------------------------
# The scene

FAILED=()
OFFSET=0

step() {
    OFFSET=$(stat -c %s "$EVENTS" 2>/dev/null || echo 0)
    say
    say "${B}[$1] $2${RST}"
}

# outcome EXPECTED ACTUAL TEXT: prints the client's view and whether it is what the
# policy says should happen.
outcome() {
    local want=$1 got=$2 text=$3
    if [[ $want == "$got" ]]; then
        say "    ${GRN}✔${RST} $text"
    else
        say "    ${RED}✘ $text (the policy says this should $([[ $want == ok ]] && echo work || echo be blocked))${RST}"
        FAILED+=("$CURRENT")
    fi
}

show_events() {
    sleep 0.6  # the event writer flushes every 100 ms
    say "  gatekeeper:"
    "$PYTHON" "$TOOL" events "$EVENTS" --offset "$OFFSET" --indent "    " \
        --none "${1:-(no events)}"
}

client() {  # client NS CMD...: runs a client, shows its output, returns its status
    local ns=$1 rc=0 out
    shift
    out=$(nsx "$ns" "$@" 2>&1) || rc=$?
    say "  client:"
    printf '%s\n' "$out" | ${SHOW:-cat} | indent
    return $rc
}

print_policy() {
    "$PYTHON" - "$POLICY" <<'EOF' 2>/dev/null || say "    (see $POLICY)"
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))
g = p.get("gatekeeper", {})
print(f"    name {g.get('name')!r}, mode {g.get('mode')}; ethertypes {', '.join(map(str, p.get('l2', {}).get('ethertypes', [])))}")
for name, h in p.get("hosts", {}).items():
    pin = f", pinned to MAC {h['mac']}" if h.get("mac") else ""
    print(f"    host {name}: {h.get('ip')}{pin}")
for r in p.get("rule", []):
    what = r.get("proto", "any")
    if r.get("ports"): what += " " + ",".join(map(str, r["ports"] if isinstance(r["ports"], list) else [r["ports"]]))
    if r.get("icmp"): what += " " + ",".join(map(str, r["icmp"] if isinstance(r["icmp"], list) else [r["icmp"]]))
    section = r.get(what)
    if isinstance(section, dict):
        what += " [" + "; ".join(f"{k} {v if not isinstance(v, list) else ','.join(map(str, v))}" for k, v in section.items()) + "]"
    if r.get("on-deny"):
        what += f", on deny: {r['on-deny']}"
    print(f"    rule {r['name']}: {r['from']} → {r['to']} {what}: {r['action']}{' (logged)' if r.get('log') else ''}")
print("    anything else: denied (no-rule)")
EOF
}

say "${B}gatekeeper demo: a PLC behind a bump-in-the-wire firewall${RST}"
say
say "  [$NS_HMI]      HMI       $HMI_IP  $HMI_MAC ──┐"
say "                                                           ├── [$NS_SW] switch ── plant ┤ gatekeeperd ├ asset ── [$NS_PLC] PLC $PLC_IP"
say "  [$NS_INTRUDER] intruder  $INTRUDER_IP  $INTRUDER_MAC ──┘               [$NS_GK]: no IP address        $PLC_MAC, Modbus/TCP :502"
say
say "  policy $POLICY:"
print_policy

build_topology
start_plc
say
say "${DIM}  PLC: $(head -n 1 "$WORK/plc.log" | sed 's/^plc: //')${RST}"
start_gatekeeper
say "${DIM}  gatekeeperd (pid $GK_PID) is forwarding: $GATEKEEPERD --plant plant --asset asset --unsigned-policy $POLICY --events $EVENTS${RST}"

# modbus_write NS KIND ADDRESS VALUE: a write as the client sees it; sets WROTE to ok,
# exception or reset.
modbus_write() {
    local rc=0
    client "$1" "$PYTHON" "$TOOL" write --host $PLC_IP --kind "$2" --address "$3" --value "$4" \
        --timeout 2 || rc=$?
    case $rc in 0) WROTE=ok ;; 3) WROTE=exception ;; *) WROTE=reset ;; esac
}

CURRENT="1: HMI reads the PLC"
step 1 "The HMI reads holding registers 0-9 from the PLC (Modbus/TCP, unit 1)"
rc=0; client "$NS_HMI" "$PYTHON" "$TOOL" read --host $PLC_IP --count 10 --timeout 3 || rc=$?
outcome ok "$([[ $rc -eq 0 ]] && echo ok || echo blocked)" \
    "$([[ $rc -eq 0 ]] && echo "the read works" || echo "the read failed")"
show_events

CURRENT="2: HMI changes the set-point"
step 2 "The HMI changes the press force set-point (register 0 = 1250)"
modbus_write "$NS_HMI" register 0 1250
outcome ok "$WROTE" "$([[ $WROTE == ok ]] && echo "the PLC took the new set-point" || echo "the write failed")"
show_events

CURRENT="3: HMI writes the alarm word"
step 3 "The HMI tries to clear the alarm word (register 9): not a set-point it may change"
modbus_write "$NS_HMI" register 9 0
outcome blocked "$([[ $WROTE == reset ]] && echo blocked || echo ok)" \
    "$([[ $WROTE == reset ]] && echo "blocked: the request was dropped and the connection reset" || echo "the write was not stopped")"
show_events

CURRENT="4: intruder reads the PLC"
step 4 "The intruder ($INTRUDER_IP) reads the registers: any plant host may read telemetry"
rc=0; client "$NS_INTRUDER" "$PYTHON" "$TOOL" read --host $PLC_IP --count 10 --timeout 2 || rc=$?
outcome ok "$([[ $rc -eq 0 ]] && echo ok || echo blocked)" \
    "$([[ $rc -eq 0 ]] && echo "the read works (rule plant-reads does not log)" || echo "the read failed")"
show_events "(no events: rule plant-reads allows reads without logging)"

CURRENT="5: intruder starts the press"
step 5 "The intruder writes coil 0 (start the press)"
modbus_write "$NS_INTRUDER" coil 0 1
outcome blocked "$([[ $WROTE == exception ]] && echo blocked || echo ok)" \
    "$([[ $WROTE == exception ]] && echo "blocked: the gatekeeper answered in the PLC's name; the PLC never saw the request" || echo "the write was not answered with an exception")"
show_events

CURRENT="6: intruder pings the PLC"
step 6 "The intruder pings the PLC"
rc=0; SHOW="tail -n 2" client "$NS_INTRUDER" ping -c 2 -i 0.5 -W 1 $PLC_IP || rc=$?
outcome blocked "$([[ $rc -eq 0 ]] && echo ok || echo blocked)" \
    "$([[ $rc -eq 0 ]] && echo "the PLC answered the intruder" || echo "blocked: no reply")"
show_events

CURRENT="7: intruder claims the PLC's address"
step 7 "The intruder claims the PLC's address: ARP reply \"$PLC_IP is-at $INTRUDER_MAC\" sent to the PLC"
rm -f "$WORK/watch.ready"
"$IP" netns exec "$NS_PLC" "$PYTHON" "$TOOL" arp-watch --iface p0 --ip $PLC_IP --own-mac $PLC_MAC \
    --seconds 3 --ready "$WORK/watch.ready" >"$WORK/watch.out" 2>&1 &
WATCH_PID=$!
for _ in $(seq 50); do [[ -e $WORK/watch.ready ]] && break; sleep 0.05; done
rc=0; client "$NS_INTRUDER" "$PYTHON" "$TOOL" arp-spoof --iface i0 --claim-ip $PLC_IP \
    --dst-mac $PLC_MAC --count 3 || rc=$?
wait "$WATCH_PID" || true
seen=$(tail -n 1 "$WORK/watch.out")
[[ $seen =~ ^[0-9]+$ ]] || { cat "$WORK/watch.out"; seen=-1; }
say "    on the PLC's wire: $seen forged ARP frame(s) arrived"
outcome blocked "$([[ $seen -eq 0 ]] && echo blocked || echo ok)" \
    "$([[ $seen -eq 0 ]] && echo "dropped: the PLC never saw them (its IP is pinned to $PLC_MAC)" || echo "the forged ARP reached the PLC")"
show_events

# ---------------------------------------------------------------------------------------
# Counters and summary

say
say "${B}gatekeeperd's counters (printed when it stops on SIGTERM)${RST}"
kill -TERM "$GK_PID"
stopped=0
for _ in $(seq 100); do kill -0 "$GK_PID" 2>/dev/null || { stopped=1; break; }; sleep 0.1; done
wait "$GK_PID" 2>/dev/null && gk_rc=0 || gk_rc=$?
GK_PID=''
# Everything after the start-up lines: the counters report and the final log lines.
awk 'f; /forwarding/ {f=1}' "$GKLOG" | sed 's/\x1b\[[0-9;]*m//g' | indent
[[ $stopped -eq 1 ]] || FAILED+=("gatekeeperd did not stop on SIGTERM")
[[ $gk_rc -eq 0 ]] || FAILED+=("gatekeeperd exited with status $gk_rc")

say
tally=$("$PYTHON" "$TOOL" tally "$EVENTS")
if [[ ${#FAILED[@]} -eq 0 ]]; then
    say "${GRN}${B}Summary: the HMI read the PLC, changed its set-point and pinged it, and could not touch the alarm word; the intruder could read, but its coil write, ping and ARP spoof were all stopped. Events: $tally.${RST}"
else
    say "${RED}${B}Summary: NOT as the policy says: $(printf '%s; ' "${FAILED[@]}")events: $tally.${RST}"
    exit 1
fi
