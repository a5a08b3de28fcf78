#!/usr/bin/env python3
"""S7comm peers for the namespace tests: the Snap7 server and client (python-snap7, the
native Snap7 library in its wheel), and a plain-socket client for hand-built TPKTs.

  s7_peer.py server [--port 102]
      Snap7 server with DB1, DB5 and DB20 (100 bytes each, byte N holding N) and 256
      bytes of flags (M). Prints {"ready": true} once it listens, then one JSON line per
      server event: {"event": TEXT} (what the PLC received and did).
  s7_peer.py client HOST OP [OP ...] [--rack 0] [--slot 2] [--timeout 2]
      Snap7 client, one connection (COTP connection request, then setup
      communication), the OPs in order; one JSON line per step, "connect" first:
      {"op": OP, "result": "ok" | "failed", "values": [...], "error": TEXT}
  s7_peer.py raw HOST HEX [HEX ...] [--timeout 2]
      a plain socket: each HEX is one TPKT, sent alone, then one answer TPKT read; one
      JSON line per TPKT: {"op": N, "result": "answer" | "reset" | "closed" | "timeout",
      "answer": HEX}. "cr" and "setup" stand for a Snap7-like connection request (rack
      0, slot 2) and setup communication; "A/B" sends A and B as two TCP segments with
      a pause between.

OPs: db-read:DB:START:SIZE  db-write:DB:START:HEX  mb-read:START:SIZE  mb-write:START:HEX
     cpu-state  szl:ID  list-blocks  get-clock  set-clock  password:TEXT  plc-stop
     hot-start  cold-start  compress  copy-ram-to-rom  upload:DB  delete:DB
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import socket
import struct
import sys
import time

CR = "0300001611e00000000100c0010ac1020100c2020102"
SETUP = "0300001902f08032010000000000080000f0000001000101e0"


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def text(error: Exception) -> str:
    """Snap7 raises with its message as bytes."""
    arg = error.args[0] if error.args else error
    return arg.decode(errors="replace").strip() if isinstance(arg, bytes) else str(arg)


# --------------------------------------------------------------------------- server


def serve(port: int) -> None:
    import snap7
    from snap7.type import SrvArea

    server = snap7.server.Server(log=False)
    keep = []
    for number in (1, 5, 20):
        db = (ctypes.c_uint8 * 100)(*range(100))
        keep.append(db)
        server.register_area(SrvArea.DB, number, db)
    flags = (ctypes.c_uint8 * 256)()
    keep.append(flags)
    server.register_area(SrvArea.MK, 0, flags)

    def on_event(event) -> None:
        say(event=server.event_text(event))

    server.set_events_callback(on_event)
    server.start(tcp_port=port)
    say(ready=True)
    try:
        while True:
            time.sleep(1)
    finally:
        server.stop()


# --------------------------------------------------------------------------- client


def run_op(client, op: str):
    from snap7.type import Area, Block

    name, *args = op.split(":")
    if name == "db-read":
        db, start, size = map(int, args)
        return list(client.db_read(db, start, size))
    if name == "db-write":
        db, start = int(args[0]), int(args[1])
        client.db_write(db, start, bytearray.fromhex(args[2]))
        return None
    if name == "mb-read":
        return list(client.mb_read(int(args[0]), int(args[1])))
    if name == "mb-write":
        client.mb_write(int(args[0]), len(args[1]) // 2, bytearray.fromhex(args[1]))
        return None
    if name == "cpu-state":
        return client.get_cpu_state()
    if name == "szl":
        szl = client.read_szl(int(args[0], 0), 0)
        return szl.Header.LengthDR
    if name == "list-blocks":
        return client.list_blocks().DBCount
    if name == "get-clock":
        return client.get_plc_datetime().isoformat()
    if name == "set-clock":
        client.set_plc_datetime(datetime.datetime(2024, 1, 2, 3, 4, 5))
        return None
    if name == "password":
        client.set_session_password(args[0])
        return None
    if name == "plc-stop":
        client.plc_stop()
        return None
    if name == "hot-start":
        client.plc_hot_start()
        return None
    if name == "cold-start":
        client.plc_cold_start()
        return None
    if name == "compress":
        client.compress(1000)
        return None
    if name == "copy-ram-to-rom":
        client.copy_ram_to_rom(1)
        return None
    if name == "upload":
        data, size = client.full_upload(Block.DB, int(args[0]))
        return size
    if name == "delete":
        client.delete(Block.DB, int(args[0]))
        return None
    raise ValueError(f"unknown op {op}")


def client_main(host: str, ops: list[str], rack: int, slot: int, port: int, timeout: float) -> None:
    import snap7
    from snap7.type import Parameter

    client = snap7.client.Client()
    for p in (Parameter.PingTimeout, Parameter.SendTimeout, Parameter.RecvTimeout):
        client.set_param(p, int(timeout * 1000))
    try:
        client.connect(host, rack, slot, port)
        say(op="connect", result="ok", pdu=client.get_pdu_length())
    except Exception as e:  # noqa: BLE001 - the peer reports whatever the library says
        say(op="connect", result="failed", error=text(e))
        for op in ops:
            say(op=op, result="failed", error="not connected")
        return
    for op in ops:
        try:
            values = run_op(client, op)
            say(op=op, result="ok", values=values)
        except Exception as e:  # noqa: BLE001
            say(op=op, result="failed", error=text(e))
    try:
        client.disconnect()
    except Exception:  # noqa: BLE001
        pass


# --------------------------------------------------------------------------- raw


def recv_tpkt(sock: socket.socket) -> bytes:
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            raise EOFError
        head += chunk
    length = struct.unpack(">H", head[2:4])[0]
    body = b""
    while len(body) < length - 4:
        chunk = sock.recv(length - 4 - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    return head + body


def raw_main(host: str, frames: list[str], port: int, timeout: float) -> None:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.settimeout(timeout)
    dead = None
    for i, text in enumerate(frames):
        if dead:
            say(op=i, result=dead)
            continue
        parts = [bytes.fromhex({"cr": CR, "setup": SETUP}.get(t, t)) for t in text.split("/")]
        try:
            for j, part in enumerate(parts):
                if j:
                    time.sleep(0.2)
                sock.sendall(part)
            answer = recv_tpkt(sock)
            say(op=i, result="answer", answer=answer.hex())
        except ConnectionResetError:
            dead = "reset"
            say(op=i, result="reset")
        except BrokenPipeError:
            dead = "reset"
            say(op=i, result="reset")
        except EOFError:
            dead = "closed"
            say(op=i, result="closed")
        except socket.timeout:
            say(op=i, result="timeout")
    sock.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["server", "client", "raw"])
    ap.add_argument("rest", nargs="*")
    ap.add_argument("--port", type=int, default=102)
    ap.add_argument("--rack", type=int, default=0)
    ap.add_argument("--slot", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=2.0)
    a = ap.parse_args()
    if a.mode == "server":
        serve(a.port)
    elif a.mode == "client":
        client_main(a.rest[0], a.rest[1:], a.rack, a.slot, a.port, a.timeout)
    else:
        raw_main(a.rest[0], a.rest[1:], a.port, a.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
