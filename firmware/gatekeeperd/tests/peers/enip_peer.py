#!/usr/bin/env python3
"""EtherNet/IP peers for the namespace tests: cpppo's Logix-like server, cpppo's and
pycomm3's clients, and plain sockets that report exactly what the network did.

  enip_peer.py server [--port 44818] TAG=TYPE[N] ...
      cpppo's simulated Logix controller (`python -m cpppo.server.enip`), TCP and UDP.
  enip_peer.py tags HOST OP [OP ...] [--multiple] [--timeout 2]
      cpppo client, one TCP connection (one session), the OPs in order through
      Unconnected Send; with --multiple, all OPs in one Multiple Service Packet.
      OPs: TAG (read, "Setpoint[0-3]") or TAG=(TYPE)VALUE (write, "Setpoint[1]=(INT)7").
      One JSON line per OP: {"op": OP, "result": "ok"|"error"|"reset"|"closed"|"timeout",
      "value": [...]}.
  enip_peer.py attr HOST CLASS INSTANCE ATTRIBUTE [--unconnected] [--timeout 2]
      pycomm3 CIPDriver: Get_Attribute_Single over a class 3 connection (Large Forward
      Open, then SendUnitData), or with --unconnected over SendRRData.
  enip_peer.py identity HOST          pycomm3: List Identity over TCP
  enip_peer.py identity-udp HOST      cpppo: List Identity over UDP (unicast)
  enip_peer.py raw HOST HEX [HEX ...] [--port 44818] [--timeout 2]
      a plain TCP socket: sends each message (hex), waits for an answer; one JSON line
      per message with "result": "reply" (and "hex"), "reset", "closed" or "timeout".
  enip_peer.py io-send HOST HEX [HEX ...]   UDP datagrams from port 2222 to HOST:2222
  enip_peer.py io-listen [--seconds 3]      prints one JSON line per datagram on 2222
Every command prints JSON lines only and exits 0 unless its arguments are wrong.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import socket
import sys
import time


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def classify(err: BaseException) -> str:
    """What the network did, from an exception somewhere in a client library."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ConnectionResetError) or getattr(err, "errno", None) == errno.ECONNRESET:
            return "reset"
        if isinstance(err, (socket.timeout, TimeoutError)):
            return "timeout"
        if isinstance(err, (BrokenPipeError, EOFError)):
            return "closed"
        text = str(err).lower()
        if "reset" in text:
            return "reset"
        if "timed out" in text or "timeout" in text:
            return "timeout"
        if "closed" in text or "eof" in text or "disconnect" in text:
            return "closed"
        err = err.__cause__ or err.__context__
    return "error"


# --------------------------------------------------------------------------- server


def server(args) -> None:
    from cpppo.server.enip import main as enip_main

    sys.argv = ["enip", "--address", f"0.0.0.0:{args.port}", *args.tags]
    sys.exit(enip_main.main())


# --------------------------------------------------------------------------- cpppo client


class SocketErrors(logging.Handler):
    """cpppo treats a socket error on receive as end of file and logs it (at debug
    level, logger "network"): this keeps what it logged, to tell a reset from a close."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())

    def reset(self) -> bool:
        return any("ConnectionResetError" in m or "Connection reset" in m for m in self.seen)


def tags(args) -> None:
    from cpppo.server.enip import client

    errors = SocketErrors()
    network = logging.getLogger("network")
    network.setLevel(logging.DEBUG)
    network.propagate = False
    network.addHandler(errors)

    try:
        conn = client.connector(host=args.host, port=args.port, timeout=args.timeout)
    except Exception as err:  # the TCP handshake or the session registration
        for op in args.ops:
            say(op=op, result=classify(err), detail=str(err))
        return
    with conn:
        ops = list(client.parse_operations(args.ops))
        done = 0
        try:
            for _idx, _dsc, _op, _rpy, sts, val in conn.pipeline(
                operations=ops,
                depth=1,
                multiple=500 if args.multiple else 0,
                timeout=args.timeout,
            ):
                op = args.ops[done]
                done += 1
                if sts in (0, None) and val is not None:
                    value = val if isinstance(val, list) else [val]
                    say(op=op, result="ok", value=[v if isinstance(v, (int, float)) else str(v) for v in value])
                else:
                    say(op=op, result="error", status=str(sts))
        except Exception as err:
            result = "reset" if errors.reset() else classify(err)
            for op in args.ops[done:]:
                say(op=op, result=result, detail=str(err))


def identity_udp(args) -> None:
    from cpppo.server.enip import client

    with client.client(host=args.host, udp=True, broadcast=False) as conn:
        conn.list_identity(timeout=args.timeout)
        response, _elapsed = client.await_response(conn, timeout=args.timeout)
    if response:
        item = response.enip.CIP.list_identity.CPF.item[0].identity_object
        say(op="list-identity", result="ok", product=str(item.product_name))
    else:
        say(op="list-identity", result="timeout")


# --------------------------------------------------------------------------- pycomm3


def attr(args) -> None:
    from pycomm3 import CIPDriver

    op = f"get-attribute-single:{args.cls}/{args.instance}/{args.attribute}"
    try:
        with CIPDriver(args.host) as drv:
            drv.socket_timeout = args.timeout
            tag = drv.generic_message(
                service=0x0E,
                class_code=args.cls,
                instance=args.instance,
                attribute=args.attribute,
                connected=not args.unconnected,
                name=op,
            )
        if tag.error:
            say(op=op, result=classify(Exception(tag.error)), detail=str(tag.error))
        else:
            value = tag.value
            say(op=op, result="ok", value=value.hex() if isinstance(value, bytes) else str(value))
    except Exception as err:
        say(op=op, result=classify(err), detail=str(err))


def identity(args) -> None:
    from pycomm3 import CIPDriver

    try:
        found = CIPDriver.list_identity(args.host)
        if found:
            say(op="list-identity", result="ok", product=found.get("product_name"))
        else:
            say(op="list-identity", result="error")
    except Exception as err:
        say(op="list-identity", result=classify(err), detail=str(err))


# --------------------------------------------------------------------------- raw sockets


def raw(args) -> None:
    sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    try:
        for i, text in enumerate(args.messages):
            try:
                sock.sendall(bytes.fromhex(text))
                data = sock.recv(65536)
                if data:
                    say(message=i, result="reply", hex=data.hex())
                else:
                    say(message=i, result="closed")
                    return
            except Exception as err:
                say(message=i, result=classify(err))
                return
    finally:
        sock.close()


def io_send(args) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 2222))
    for text in args.datagrams:
        sock.sendto(bytes.fromhex(text), (args.host, 2222))
        time.sleep(0.05)
    say(result="sent", count=len(args.datagrams))


def io_listen(args) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 2222))
    say(result="ready")
    deadline = time.monotonic() + args.seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, addr = sock.recvfrom(65536)
        except socket.timeout:
            break
        say(result="datagram", src=addr[0], hex=data.hex())


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, default=44818)
    s.add_argument("tags", nargs="+")
    s.set_defaults(run=server)
    s = sub.add_parser("tags")
    s.add_argument("host")
    s.add_argument("ops", nargs="+")
    s.add_argument("--port", type=int, default=44818)
    s.add_argument("--multiple", action="store_true")
    s.add_argument("--timeout", type=float, default=2.0)
    s.set_defaults(run=tags)
    s = sub.add_parser("attr")
    s.add_argument("host")
    s.add_argument("cls", type=lambda v: int(v, 0))
    s.add_argument("instance", type=lambda v: int(v, 0))
    s.add_argument("attribute", type=lambda v: int(v, 0))
    s.add_argument("--unconnected", action="store_true")
    s.add_argument("--timeout", type=float, default=2.0)
    s.set_defaults(run=attr)
    s = sub.add_parser("identity")
    s.add_argument("host")
    s.set_defaults(run=identity)
    s = sub.add_parser("identity-udp")
    s.add_argument("host")
    s.add_argument("--timeout", type=float, default=2.0)
    s.set_defaults(run=identity_udp)
    s = sub.add_parser("raw")
    s.add_argument("host")
    s.add_argument("messages", nargs="+")
    s.add_argument("--port", type=int, default=44818)
    s.add_argument("--timeout", type=float, default=2.0)
    s.set_defaults(run=raw)
    s = sub.add_parser("io-send")
    s.add_argument("host")
    s.add_argument("datagrams", nargs="+")
    s.set_defaults(run=io_send)
    s = sub.add_parser("io-listen")
    s.add_argument("--seconds", type=float, default=3.0)
    s.set_defaults(run=io_listen)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
