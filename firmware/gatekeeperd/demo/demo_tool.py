#!/usr/bin/env python3
"""Small helpers for demo.sh: a Modbus/TCP client, a forged-ARP sender and watcher, and
the pretty-printer for gatekeeperd's JSON-lines events.

    demo_tool.py read --host 10.10.0.10 [--count 10] [--timeout 2]
    demo_tool.py write --host 10.10.0.10 --kind register|coil --address A --value V
    demo_tool.py arp-spoof --iface IF --claim-ip IP [--count 3]
    demo_tool.py arp-watch --iface IF --ip IP --own-mac MAC --seconds S
    demo_tool.py events FILE [--offset N]       # prints one line per event
    demo_tool.py tally FILE                     # "N allow, M deny (reasons)"

Only `read` and `write` need pymodbus; the rest is the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time

COLOR = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None


def paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if COLOR else text


# ---------------------------------------------------------------------------------------
# Modbus/TCP client


def cmd_read(a: argparse.Namespace) -> int:
    import inspect
    import logging

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(a.host, port=a.port, timeout=a.timeout, retries=0)
    t0 = time.monotonic()
    try:
        if not client.connect():
            took = time.monotonic() - t0
            print(f"no connection to {a.host}:{a.port} "
                  f"({'timed out' if took >= a.timeout * 0.9 else 'refused or unreachable'} "
                  f"after {took:.1f} s)")
            return 2
        # The keyword for the unit id changed across pymodbus 3.x versions.
        params = inspect.signature(client.read_holding_registers).parameters
        unit_kw = next((k for k in ("device_id", "slave", "unit") if k in params), None)
        kw = {"count": a.count}
        if unit_kw:
            kw[unit_kw] = a.unit
        try:
            rr = client.read_holding_registers(a.address, **kw)
        except Exception as e:  # pymodbus raises ModbusIOException & co on time-outs
            print(f"connected, but the request failed: {e}")
            return 3
        if rr.isError():
            print(f"Modbus error response: {rr}")
            return 3
        regs = list(rr.registers)[: a.count]
        print(f"holding registers {a.address}-{a.address + len(regs) - 1} (unit {a.unit}): "
              + " ".join(str(r) for r in regs))
        return 0
    finally:
        client.close()


EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
              4: "server device failure", 10: "gateway path unavailable",
              11: "gateway target device failed to respond"}


def cmd_write(a: argparse.Namespace) -> int:
    """One write (a holding register or a coil); says what the client saw."""
    import inspect
    import logging

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(a.host, port=a.port, timeout=a.timeout, retries=0)
    what = (f"register {a.address} = {a.value}" if a.kind == "register"
            else f"coil {a.address} = {'ON' if a.value else 'OFF'}")
    try:
        if not client.connect():
            print(f"no connection to {a.host}:{a.port}")
            return 2
        fn = client.write_register if a.kind == "register" else client.write_coil
        params = inspect.signature(fn).parameters
        unit_kw = next((k for k in ("device_id", "slave", "unit") if k in params), None)
        kw = {unit_kw: a.unit} if unit_kw else {}
        value = a.value if a.kind == "register" else bool(a.value)
        try:
            rr = fn(a.address, value, **kw)
        except Exception:
            print(f"write {what}: no answer - the connection was reset")
            return 4
        if rr.isError():
            code = getattr(rr, "exception_code", None)
            print(f"write {what}: refused with Modbus exception {code} "
                  f"({EXCEPTIONS.get(code, 'unknown')}); the connection stays up")
            return 3
        print(f"write {what}: done")
        return 0
    finally:
        client.close()


# ---------------------------------------------------------------------------------------
# ARP


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def iface_mac(iface: str) -> str:
    with open(f"/sys/class/net/{iface}/address") as f:
        return f.read().strip()


def cmd_arp_spoof(a: argparse.Namespace) -> int:
    """Gratuitous ARP replies: "CLAIM-IP is-at <my MAC>", broadcast."""
    src = mac_bytes(a.mac or iface_mac(a.iface))
    dst = mac_bytes(a.dst_mac)
    ip = socket.inet_aton(a.claim_ip)
    # Ethernet + ARP reply (op 2): sender = (my MAC, claimed IP), target = (dst, claimed IP).
    frame = (dst + src + struct.pack("!H", 0x0806)
             + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + src + ip + dst + ip)
    frame += b"\x00" * (60 - len(frame))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((a.iface, 0))
        for i in range(a.count):
            s.send(frame)
            if i + 1 < a.count:
                time.sleep(a.interval)
    print(f"sent {a.count} forged ARP replies: {a.claim_ip} is-at {mac_str(src)}")
    return 0


def cmd_arp_watch(a: argparse.Namespace) -> int:
    """Counts ARP frames whose sender claims IP from a MAC other than OWN-MAC."""
    own = mac_bytes(a.own_mac)
    ip = socket.inet_aton(a.ip)
    seen = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806)) as s:
        s.bind((a.iface, 0))
        s.settimeout(0.1)
        if a.ready:
            with open(a.ready, "w") as f:
                f.write("ready\n")
        end = time.monotonic() + a.seconds
        while time.monotonic() < end:
            try:
                fr = s.recv(128)
            except socket.timeout:
                continue
            if len(fr) >= 42 and fr[12:14] == b"\x08\x06":
                sha, spa = fr[22:28], fr[28:32]
                if spa == ip and sha != own:
                    seen += 1
    print(seen)
    return 0


# ---------------------------------------------------------------------------------------
# Events

ICMP_NAMES = {0: "echo-reply", 3: "destination-unreachable", 5: "redirect",
              8: "echo-request", 11: "time-exceeded"}


PROTO_NAMES = {"1": "icmp", "2": "igmp", "6": "tcp", "17": "udp", "47": "gre", "58": "icmpv6",
               "112": "vrrp", "132": "sctp"}


def endpoint(ip: str | None, port) -> str:
    if ip is None:
        return "?"
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_op(op: dict) -> str:
    """`modbus write-single-coil unit 1 address 0 count 1`"""
    parts = [str(op.get("protocol", "?")), str(op.get("function", ""))]
    parts += [f"{k} {v}" for k, v in op.items() if k not in ("protocol", "function")]
    return " ".join(p for p in parts if p)


def format_event(ev: dict) -> str:
    verdict = str(ev.get("verdict", "?")).upper()
    reason = ev.get("reason") or ""
    rule = ev.get("rule")
    who = rule if (reason == "rule" and rule) else (reason or rule or "?")
    if reason != "rule" and rule:
        who = f"{reason} ({rule})"
    proto = ev.get("proto")
    if proto == "arp":
        # ARP: src/dst (when given) are the sender's and the target's protocol addresses.
        claim = f" claims {ev['src']}" if ev.get("src") else ""
        target = f" (asks about {ev['dst']})" if ev.get("dst") and reason != "mac-pin" else ""
        path = f"{ev.get('src_mac', '?')}{claim} → {ev.get('dst_mac', '?')}{target}"
        extra = [f"on {ev.get('port', '?')} port"]
        if ev.get("suppressed"):
            extra.append(f"+{ev['suppressed']} suppressed before")
        color = {"ALLOW": "32", "DENY": "31"}.get(verdict, "33")
        return (f"{paint(f'{verdict:<6}', color + ';1')} {who:<15} {path} arp"
                + paint(f"  ({', '.join(extra)})", "2"))
    if ev.get("src") is not None:
        path = f"{endpoint(ev.get('src'), ev.get('sport'))} → {endpoint(ev.get('dst'), ev.get('dport'))}"
    else:
        path = f"{ev.get('src_mac', '?')} → {ev.get('dst_mac', '?')}"
    detail = PROTO_NAMES.get(str(proto), str(proto)) if proto is not None else ""
    if ev.get("icmp_type") is not None:
        detail += " " + ICMP_NAMES.get(ev["icmp_type"], f"type {ev['icmp_type']}")
    if ev.get("op"):
        detail += "  " + paint(format_op(ev["op"]), "1")
    if ev.get("detail"):
        detail += f" ({ev['detail']})"
    extra = []
    if ev.get("src") is not None and reason == "mac-pin":
        extra.append(f"from MAC {ev.get('src_mac', '?')}")
    if ev.get("vlan") is not None:
        extra.append(f"vlan {ev['vlan']}")
    extra.append(f"on {ev.get('port', '?')} port")
    if ev.get("suppressed"):
        extra.append(f"+{ev['suppressed']} suppressed before")
    color = {"ALLOW": "32", "DENY": "31", "ALERT": "33", "WOULD-DENY": "33"}.get(verdict, "0")
    return (f"{paint(f'{verdict:<6}', color + ';1')} {who:<15} {path} {detail}".rstrip()
            + paint(f"  ({', '.join(extra)})", "2"))


def read_events(path: str, offset: int) -> list[dict]:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in data.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            out.append({"verdict": "?", "reason": f"unparsable event line: {line[:80]}"})
    return out


def cmd_events(a: argparse.Namespace) -> int:
    evs = read_events(a.file, a.offset)
    if not evs:
        print(a.indent + paint(a.none, "2"))
    for ev in evs:
        print(a.indent + format_event(ev))
    return 0


def cmd_tally(a: argparse.Namespace) -> int:
    evs = read_events(a.file, 0)
    verdicts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for ev in evs:
        n = 1 + int(ev.get("suppressed") or 0)
        v = str(ev.get("verdict", "?"))
        verdicts[v] = verdicts.get(v, 0) + n
        if v != "allow":
            r = str(ev.get("reason", "?"))
            reasons[r] = reasons.get(r, 0) + n
    parts = [f"{n} {v}" for v, n in sorted(verdicts.items())]
    text = ", ".join(parts) if parts else "no events"
    if reasons:
        text += " (" + ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items())) + ")"
    print(text)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("read", help="read holding registers over Modbus/TCP")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=502)
    p.add_argument("--unit", type=int, default=1)
    p.add_argument("--address", type=int, default=0)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--timeout", type=float, default=2.0)
    p.set_defaults(fn=cmd_read)
    p = sub.add_parser("write", help="write a holding register or a coil over Modbus/TCP")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=502)
    p.add_argument("--unit", type=int, default=1)
    p.add_argument("--kind", choices=["register", "coil"], default="register")
    p.add_argument("--address", type=int, required=True)
    p.add_argument("--value", type=int, required=True)
    p.add_argument("--timeout", type=float, default=2.0)
    p.set_defaults(fn=cmd_write)
    p = sub.add_parser("arp-spoof", help="send gratuitous ARP replies claiming an IP")
    p.add_argument("--iface", required=True)
    p.add_argument("--claim-ip", required=True)
    p.add_argument("--mac", help="sender MAC (default: the interface's)")
    p.add_argument("--dst-mac", default="ff:ff:ff:ff:ff:ff")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--interval", type=float, default=0.2)
    p.set_defaults(fn=cmd_arp_spoof)
    p = sub.add_parser("arp-watch", help="count forged ARP frames for an IP")
    p.add_argument("--iface", required=True)
    p.add_argument("--ip", required=True)
    p.add_argument("--own-mac", required=True)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--ready", help="file to create once listening")
    p.set_defaults(fn=cmd_arp_watch)
    p = sub.add_parser("events", help="pretty-print events from an events file")
    p.add_argument("file")
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--indent", default="    ")
    p.add_argument("--none", default="(no events)")
    p.set_defaults(fn=cmd_events)
    p = sub.add_parser("tally", help="count the events of a file by verdict and reason")
    p.add_argument("file")
    p.set_defaults(fn=cmd_tally)
    a = ap.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
