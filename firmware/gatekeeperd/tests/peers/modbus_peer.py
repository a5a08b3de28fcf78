#!/usr/bin/env python3
"""Modbus/TCP peers for the namespace tests: a pymodbus server, a pymodbus client, and a
raw-socket client that reports exactly what the network did (for resets).

  modbus_peer.py server [--port 502]
      pymodbus server, unit ids any; coils, discrete inputs, holding and input registers
      0-199, register N holding the value N. Prints "ready" once it listens.
  modbus_peer.py client HOST OP [OP ...] [--port 502] [--unit 1] [--timeout 2]
      pymodbus client, one connection, the OPs in order; one JSON line per OP:
      {"op": OP, "result": "ok" | "exception" | "failed", "values": [...], "code": N}
  modbus_peer.py raw HOST OP [OP ...] [--port 502] [--unit 1] [--timeout 2]
                     [--split N] [--together]
      the same requests on a plain socket; "result" is also "reset" (ECONNRESET),
      "closed" (orderly close) or "timeout" when no answer came. --split N sends each
      request as two TCP segments (N bytes, a pause, the rest); --together sends all
      requests in one write (one segment) before reading the answers.
  modbus_peer.py garbage HOST [--port 502]
      connects and sends bytes that are not Modbus; reports what the network did.

OPs: read-hr:ADDR:COUNT  read-coils:ADDR:COUNT  write-hr:ADDR:VALUE  write-coil:ADDR:0|1
     write-hrs:ADDR:V1,V2,...  diag:SUB   (append @UNIT to use another unit id)
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import socket
import struct
import sys
import time


def parse_op(text: str) -> tuple[str, list[str], int | None]:
    unit = None
    if "@" in text:
        text, u = text.split("@", 1)
        unit = int(u)
    name, *args = text.split(":")
    return name, args, unit


# --------------------------------------------------------------------------- server


def build_context():
    values = list(range(200))
    try:  # pymodbus 3.11+
        from pymodbus.simulator import DataType, SimData, SimDevice

        return SimDevice(id=0, simdata=[
            SimData(address=0, values=values, datatype=DataType.REGISTERS),
            SimData(address=0, values=[False] * 200, datatype=DataType.BITS),
        ])
    except (ImportError, TypeError):
        pass
    from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext

    try:  # 3.10: request address N is block address N + 1
        from pymodbus.datastore import ModbusDeviceContext

        dev = ModbusDeviceContext(co=ModbusSequentialDataBlock(1, [0] * 200),
                                  di=ModbusSequentialDataBlock(1, [0] * 200),
                                  hr=ModbusSequentialDataBlock(1, values),
                                  ir=ModbusSequentialDataBlock(1, values))
        return ModbusServerContext(devices=dev, single=True)
    except ImportError:
        from pymodbus.datastore import ModbusSlaveContext

        dev = ModbusSlaveContext(co=ModbusSequentialDataBlock(0, [0] * 200),
                                 di=ModbusSequentialDataBlock(0, [0] * 200),
                                 hr=ModbusSequentialDataBlock(0, values),
                                 ir=ModbusSequentialDataBlock(0, values), zero_mode=True)
        return ModbusServerContext(slaves=dev, single=True)


async def serve(port: int) -> None:
    from pymodbus.server import ModbusTcpServer

    server = ModbusTcpServer(build_context(), address=("0.0.0.0", port))
    task = asyncio.create_task(server.serve_forever())
    for _ in range(100):
        if getattr(server, "transport", None) is not None:
            break
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await task


# --------------------------------------------------------------------------- pymodbus client


def client(a: argparse.Namespace) -> int:
    from pymodbus.client import ModbusTcpClient

    c = ModbusTcpClient(a.host, port=a.port, timeout=a.timeout, retries=0)
    if not c.connect():
        print(json.dumps({"op": "connect", "result": "failed"}), flush=True)
        return 1
    params = inspect.signature(c.read_holding_registers).parameters
    unit_kw = next((k for k in ("device_id", "slave", "unit") if k in params), None)
    worst = 0
    for text in a.ops:
        name, args, unit = parse_op(text)
        kw = {unit_kw: unit if unit is not None else a.unit} if unit_kw else {}
        out = {"op": text}
        try:
            if name == "read-hr":
                r = c.read_holding_registers(int(args[0]), count=int(args[1]), **kw)
            elif name == "read-coils":
                r = c.read_coils(int(args[0]), count=int(args[1]), **kw)
            elif name == "write-hr":
                r = c.write_register(int(args[0]), int(args[1]), **kw)
            elif name == "write-hrs":
                r = c.write_registers(int(args[0]), [int(v) for v in args[1].split(",")], **kw)
            elif name == "write-coil":
                r = c.write_coil(int(args[0]), args[1] == "1", **kw)
            else:
                raise SystemExit(f"unknown op {name}")
            if r.isError():
                out["result"] = "exception"
                out["code"] = getattr(r, "exception_code", None)
            else:
                out["result"] = "ok"
                vals = getattr(r, "registers", None) or getattr(r, "bits", None)
                if vals is not None:
                    out["values"] = [int(v) for v in vals][: int(args[1]) if name.startswith("read") else None]
        except Exception as e:  # ModbusIOException, ConnectionException …
            out["result"] = "failed"
            out["error"] = type(e).__name__
        if out["result"] != "ok":
            worst = 1
        print(json.dumps(out), flush=True)
    c.close()
    return worst


# --------------------------------------------------------------------------- raw client


def pdu_of(name: str, args: list[str]) -> bytes:
    if name == "read-hr":
        return struct.pack(">BHH", 3, int(args[0]), int(args[1]))
    if name == "read-coils":
        return struct.pack(">BHH", 1, int(args[0]), int(args[1]))
    if name == "write-hr":
        return struct.pack(">BHH", 6, int(args[0]), int(args[1]))
    if name == "write-coil":
        return struct.pack(">BHH", 5, int(args[0]), 0xFF00 if args[1] == "1" else 0)
    if name == "write-hrs":
        vals = [int(v) for v in args[1].split(",")]
        return struct.pack(f">BHHB{len(vals)}H", 16, int(args[0]), len(vals), 2 * len(vals), *vals)
    if name == "diag":
        return struct.pack(">BHH", 8, int(args[0]), 0)
    raise SystemExit(f"unknown op {name}")


def recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def connect(a: argparse.Namespace) -> socket.socket | None:
    try:
        s = socket.create_connection((a.host, a.port), timeout=a.timeout)
    except socket.timeout:
        print(json.dumps({"op": "connect", "result": "timeout"}), flush=True)
        return None
    except OSError as e:
        print(json.dumps({"op": "connect", "result": "failed", "error": str(e)}), flush=True)
        return None
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def adu_of(tid: int, text: str, default_unit: int) -> bytes:
    name, args, unit = parse_op(text)
    pdu = pdu_of(name, args)
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, default_unit if unit is None else unit) + pdu


def raw(a: argparse.Namespace) -> int:
    s = connect(a)
    if s is None:
        return 1
    adus = [adu_of(tid, text, a.unit) for tid, text in enumerate(a.ops, 1)]
    if a.together:
        s.sendall(b"".join(adus))
    worst = 0
    for text, adu in zip(a.ops, adus):
        out = {"op": text}
        try:
            if a.split and not a.together:
                s.sendall(adu[: a.split])
                time.sleep(0.2)
                s.sendall(adu[a.split:])
            elif not a.together:
                s.sendall(adu)
            head = recv_exact(s, 7)
            length = struct.unpack(">H", head[4:6])[0]
            body = recv_exact(s, length - 1)
            if body[0] & 0x80:
                out.update(result="exception", code=body[1])
            else:
                out.update(result="ok", function=body[0])
        except socket.timeout:
            out["result"] = "timeout"
        except ConnectionResetError:
            out["result"] = "reset"
        except (EOFError, BrokenPipeError):
            out["result"] = "closed"
        if out["result"] != "ok":
            worst = 1
        print(json.dumps(out), flush=True)
        if out["result"] in ("reset", "closed"):
            break
    s.close()
    return worst


def garbage(a: argparse.Namespace) -> int:
    s = connect(a)
    if s is None:
        return 1
    out = {"op": "garbage"}
    try:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = s.recv(100)
        out["result"] = "closed" if not data else "answered"
    except socket.timeout:
        out["result"] = "timeout"
    except ConnectionResetError:
        out["result"] = "reset"
    print(json.dumps(out), flush=True)
    return 0 if out["result"] == "answered" else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("server")
    sv.add_argument("--port", type=int, default=502)
    for name in ("client", "raw", "garbage"):
        c = sub.add_parser(name)
        c.add_argument("host")
        if name != "garbage":
            c.add_argument("ops", nargs="+")
        c.add_argument("--port", type=int, default=502)
        c.add_argument("--unit", type=int, default=1)
        c.add_argument("--timeout", type=float, default=2.0)
        c.add_argument("--split", type=int, default=0)
        c.add_argument("--together", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    if a.cmd == "server":
        asyncio.run(serve(a.port))
        return 0
    return {"client": client, "raw": raw, "garbage": garbage}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
