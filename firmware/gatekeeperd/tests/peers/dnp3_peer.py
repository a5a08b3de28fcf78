#!/usr/bin/env python3
"""DNP3 peers for the namespace tests: an opendnp3 outstation and an opendnp3 master
(yadnp3, the Python bindings of a maintained opendnp3 fork), and a raw-socket master
that sends frames built here from IEEE 1815 and reports what the network did.

  dnp3_peer.py outstation [--port 20000] [--address 10] [--master 1]
      opendnp3 outstation (TCP server) with 10 points of each type, binary input 0 on
      and analog input 0 at 42. Accepts every control, cold and warm restarts. Prints
      "ready", then one JSON line per control or restart it carries out:
      {"event": "select" | "operate" | "cold-restart" | "warm-restart", "index": N}
  dnp3_peer.py master HOST OP [OP ...] [--port 20000] [--address 1] [--outstation 10]
                     [--timeout 3]
      opendnp3 master (TCP client). Waits for its startup sequence (disable unsolicited,
      integrity poll, …), then runs the OPs in order; one JSON line per OP:
      {"op": OP, "result": "success" | "failure_no_comms" | "failure_response_timeout" |
       … | "timeout", "binaries": [...], "analogs": [...]}, and a line
      {"op": "channel", "states": [...]} at the end with the channel's state changes
      (a reset closes the channel; the master opens it again).
  dnp3_peer.py raw HOST FRAME [FRAME ...] [--port 20000] [--address 1] [--outstation 10]
                  [--timeout 2]
      a plain socket: sends each FRAME and reads the answer; "result" is "answered"
      (with the answer's link function and application function), "reset"
      (ECONNRESET), "closed" or "timeout".

OPs: integrity (classes 0-3)  class1  range:G:V:START:STOP  operate:INDEX (direct
     operate, latch on)  sbo:INDEX (select, then operate)  analog:INDEX:VALUE (direct
     operate of a 32-bit analog output)  cold-restart  warm-restart
FRAMEs: poll (an integrity poll)  link-status (request link status)
        bad-crc (the poll with a data block CRC broken)  restart (cold restart)
        garbage (bytes that are not DNP3)
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time


def dnp3():
    import opendnp3

    return opendnp3


# --------------------------------------------------------------------------- outstation


def outstation(a: argparse.Namespace) -> int:
    o = dnp3()
    say_lock = threading.Lock()

    def say(**kw):
        with say_lock:
            print(json.dumps(kw), flush=True)

    class Commands(o.ICommandHandler):
        def Begin(self):
            pass

        def End(self):
            pass

        def Select(self, command, index):
            say(event="select", index=index)
            return o.CommandStatus.SUCCESS

        def Operate(self, command, index, handler, op_type):
            kind = "crob" if isinstance(command, o.ControlRelayOutputBlock) else "analog"
            say(event="operate", index=index, kind=kind)
            return o.CommandStatus.SUCCESS

    class App(o.IOutstationApplication):
        def SupportsWriteAbsoluteTime(self):
            return False

        def WriteAbsoluteTime(self, timestamp):
            return False

        def SupportsAssignClass(self):
            return False

        def GetApplicationIIN(self):
            return o.ApplicationIIN()

        def ColdRestartSupport(self):
            return o.RestartMode.SUPPORTED_DELAY_COARSE

        def WarmRestartSupport(self):
            return o.RestartMode.SUPPORTED_DELAY_COARSE

        def ColdRestart(self):
            say(event="cold-restart", index=None)
            return 60

        def WarmRestart(self):
            say(event="warm-restart", index=None)
            return 60

        def Now(self):
            return o.DNPTime(int(time.time() * 1000))

    manager = o.DNP3Manager(1)
    channel = manager.AddTCPServer(
        "server",
        o.levels.NOTHING,
        o.ServerAcceptMode.CloseExisting,
        o.IPEndpoint("0.0.0.0", a.port),
        None,
    )
    config = o.OutstationStackConfig(o.DatabaseConfig(10))
    config.outstation.params.allowUnsolicited = False
    config.link.LocalAddr = a.address
    config.link.RemoteAddr = a.master
    commands, app = Commands(), App()
    stack = channel.AddOutstation("outstation", commands, app, config)
    stack.Enable()
    updates = o.UpdateBuilder()
    updates.Update(o.Binary(True), 0)
    updates.Update(o.Analog(42.0), 0)
    stack.Apply(updates.Build())
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    manager.Shutdown()
    return 0


# --------------------------------------------------------------------------- master


def master(a: argparse.Namespace) -> int:
    o = dnp3()
    states: list[str] = []
    done = threading.Event()
    startup = threading.Event()
    outcome: dict = {}

    class Listener(o.IChannelListener):
        def OnStateChange(self, state):
            states.append(state.name)

    class Values(o.ISOEHandler):
        def __init__(self):
            super().__init__()
            self.binaries: list = []
            self.analogs: list = []

        def BeginFragment(self, info):
            pass

        def EndFragment(self, info):
            pass

        def Process(self, info, values):
            for v in values:
                if isinstance(v.value, o.Binary):
                    self.binaries.append([v.index, bool(v.value.value)])
                elif isinstance(v.value, o.Analog):
                    self.analogs.append([v.index, v.value.value])

    class App(o.IMasterApplication):
        def OnReceiveIIN(self, iin):
            pass

        def OnTaskStart(self, task_type, task_id):
            pass

        def OnTaskComplete(self, info):
            if info.type == o.MasterTaskType.STARTUP_INTEGRITY_POLL:
                outcome["startup"] = info.result.name.lower()
                startup.set()
            elif info.type == o.MasterTaskType.USER_TASK:
                outcome["task"] = info.result.name.lower()
                done.set()

        def OnOpen(self):
            pass

        def OnClose(self):
            pass

        def AssignClassDuringStartup(self):
            return False

        def Now(self):
            return o.UTCTimestamp(int(time.time() * 1000))

    manager = o.DNP3Manager(1)
    listener = Listener()
    channel = manager.AddTCPClient(
        "client",
        o.levels.NOTHING,
        o.ChannelRetry(o.TimeDuration.Milliseconds(200), o.TimeDuration.Seconds(1)),
        [o.IPEndpoint(a.host, a.port)],
        "0.0.0.0",
        listener,
    )
    config = o.MasterStackConfig()
    config.master.responseTimeout = o.TimeDuration.Milliseconds(int(a.timeout * 1000))
    config.link.LocalAddr = a.address
    config.link.RemoteAddr = a.outstation
    values, app = Values(), App()
    stack = channel.AddMaster("master", values, app, config)
    stack.Enable()
    startup.wait(a.timeout * 2)
    print(json.dumps({"op": "startup", "result": outcome.get("startup", "timeout"),
                      "binaries": values.binaries[:3], "analogs": values.analogs[:3]}),
          flush=True)
    worst = 0 if outcome.get("startup") == "success" else 1

    for text in a.ops:
        name, *args = text.split(":")
        values.binaries.clear()
        values.analogs.clear()
        done.clear()
        outcome.pop("task", None)
        out: dict = {"op": text}

        def on_command(result):
            outcome["task"] = result.summary.name.lower()
            done.set()

        def on_restart(result):
            outcome["task"] = result.summary.name.lower()
            done.set()

        if name == "integrity":
            stack.ScanClasses(o.ClassField.AllClasses(), values)
        elif name == "class1":
            stack.ScanClasses(o.ClassField.AllEventClasses(), values)
        elif name == "range":
            g, v, start, stop = (int(x) for x in args)
            stack.ScanRange(o.GroupVariationID(g, v), start, stop, values)
        elif name == "operate":
            crob = o.ControlRelayOutputBlock(o.OperationType.LATCH_ON)
            stack.DirectOperate(crob, int(args[0]), on_command)
        elif name == "sbo":
            crob = o.ControlRelayOutputBlock(o.OperationType.LATCH_ON)
            stack.SelectAndOperate(crob, int(args[0]), on_command)
        elif name == "analog":
            stack.DirectOperate(o.AnalogOutputInt32(int(args[1])), int(args[0]), on_command)
        elif name in ("cold-restart", "warm-restart"):
            kind = o.RestartType.COLD if name == "cold-restart" else o.RestartType.WARM
            stack.Restart(kind, on_restart)
        else:
            raise SystemExit(f"unknown op {name}")
        if done.wait(a.timeout * 2):
            out["result"] = outcome.get("task", "?")
        else:
            out["result"] = "timeout"
        if name in ("integrity", "class1", "range"):
            out["binaries"] = values.binaries[:3]
            out["analogs"] = values.analogs[:3]
        if out["result"] != "success":
            worst = 1
        print(json.dumps(out), flush=True)
        # After a reset the channel opens again; let it settle before the next op.
        time.sleep(0.3)
    print(json.dumps({"op": "channel", "states": states}), flush=True)
    manager.Shutdown()
    return worst


# --------------------------------------------------------------------------- raw master


def crc(data: bytes) -> int:
    """DNP3 CRC-16: polynomial 0x3D65 (reflected 0xA6BC), initial 0, complemented."""
    c = 0
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0xA6BC if c & 1 else c >> 1
    return c ^ 0xFFFF


def link_frame(control: int, dest: int, src: int, user: bytes = b"") -> bytes:
    head = bytes([0x05, 0x64, 5 + len(user), control]) + dest.to_bytes(2, "little") + src.to_bytes(2, "little")
    out = head + crc(head).to_bytes(2, "little")
    for i in range(0, len(user), 16):
        block = user[i:i + 16]
        out += block + crc(block).to_bytes(2, "little")
    return out


def frame_of(name: str, a: argparse.Namespace) -> bytes:
    # Transport header FIN|FIR (0xC0), application control FIR|FIN seq 0 (0xC0).
    poll = bytes([0xC0, 0xC0, 0x01, 60, 2, 6, 60, 3, 6, 60, 4, 6, 60, 1, 6])
    if name == "poll":
        return link_frame(0xC4, a.outstation, a.address, poll)
    if name == "restart":
        return link_frame(0xC4, a.outstation, a.address, bytes([0xC0, 0xC0, 13]))
    if name == "link-status":
        return link_frame(0xC9, a.outstation, a.address)
    if name == "bad-crc":
        f = bytearray(link_frame(0xC4, a.outstation, a.address, poll))
        f[-1] ^= 0xFF
        return bytes(f)
    if name == "garbage":
        return b"GET / HTTP/1.0\r\n\r\n"
    raise SystemExit(f"unknown frame {name}")


def read_frame(s: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    head = exact(10)
    n = head[2] - 5
    return head + exact(n + 2 * ((n + 15) // 16))


def raw(a: argparse.Namespace) -> int:
    try:
        s = socket.create_connection((a.host, a.port), timeout=a.timeout)
    except OSError as e:
        print(json.dumps({"op": "connect", "result": "timeout" if isinstance(e, socket.timeout) else "failed"}), flush=True)
        return 1
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    worst = 0
    for name in a.frames:
        out = {"op": name}
        try:
            s.sendall(frame_of(name, a))
            # The answer: a link frame, or every segment of a fragment up to FIN.
            answer = read_frame(s)
            out["result"] = "answered"
            out["link_function"] = answer[3] & 0x4F
            if answer[2] > 5:
                out["function"] = answer[12]
                while not answer[10] & 0x80:
                    answer = read_frame(s)
        except socket.timeout:
            out["result"] = "timeout"
        except ConnectionResetError:
            out["result"] = "reset"
        except (EOFError, BrokenPipeError):
            out["result"] = "closed"
        if out["result"] != "answered":
            worst = 1
        print(json.dumps(out), flush=True)
        if out["result"] in ("reset", "closed"):
            break
    s.close()
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("outstation")
    o.add_argument("--port", type=int, default=20000)
    o.add_argument("--address", type=int, default=10)
    o.add_argument("--master", type=int, default=1)
    for name in ("master", "raw"):
        c = sub.add_parser(name)
        c.add_argument("host")
        c.add_argument("ops" if name == "master" else "frames", nargs="+")
        c.add_argument("--port", type=int, default=20000)
        c.add_argument("--address", type=int, default=1)
        c.add_argument("--outstation", type=int, default=10)
        c.add_argument("--timeout", type=float, default=3.0 if name == "master" else 2.0)
    a = ap.parse_args()
    return {"outstation": outstation, "master": master, "raw": raw}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
