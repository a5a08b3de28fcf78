#!/usr/bin/env python3
"""A BACnet/IP client for the namespace tests, built on bacpypes3.

    bacnet_client.py ADDRESS/PREFIX DEVICE COMMAND [ARGS...]

COMMAND is one of
    who-is                      unicast Who-Is to DEVICE, waits for its I-Am
    read OBJECT PROPERTY        ReadProperty, e.g. "analog-value,1" "present-value"
    write OBJECT PROPERTY REAL  WriteProperty at priority 8
    reinitialize STATE          ReinitializeDevice, e.g. "warmstart"

Prints one JSON line, {"ok": true, "result": ...} or {"ok": false, "error": ...}, and
exits 0 or 1. Confirmed requests wait 1.5 s and are sent twice (one retry) before the
client gives up, as a BACnet client does when nothing answers.
"""

import asyncio
import json
import sys

from bacpypes3.apdu import ReinitializeDeviceRequest
from bacpypes3.app import Application
from bacpypes3.argparse import SimpleArgumentParser
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import Real


async def run(app, device, command, rest):
    addr = Address(device)
    if command == "who-is":
        i_ams = await app.who_is(address=addr, timeout=3)
        if not i_ams:
            raise TimeoutError("no I-Am")
        return [str(i.iAmDeviceIdentifier) for i in i_ams]
    if command == "read":
        value = await app.read_property(addr, rest[0], rest[1])
        return str(value)
    if command == "write":
        await app.write_property(addr, rest[0], rest[1], Real(float(rest[2])), priority=8)
        return "written"
    if command == "reinitialize":
        request = ReinitializeDeviceRequest(
            reinitializedStateOfDevice=rest[0], destination=addr
        )
        response = await app.request(request)
        return type(response).__name__
    raise ValueError(f"unknown command {command}")


async def main() -> int:
    address, device, command, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    args = SimpleArgumentParser().parse_args(
        ["--address", address, "--instance", "999", "--name", "hmi"]
    )
    app = Application.from_args(args)
    app.device_object.apduTimeout = 1500
    app.device_object.numberOfApduRetries = 1
    try:
        result = await asyncio.wait_for(run(app, device, command, rest), timeout=15)
        print(json.dumps({"ok": True, "result": result}), flush=True)
        return 0
    except BaseException as e:  # what the client sees: a timeout, an abort, an error
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1
    finally:
        app.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
