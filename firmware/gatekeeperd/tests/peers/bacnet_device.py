#!/usr/bin/env python3
"""A BACnet/IP device for the namespace tests, built on bacpypes3.

    bacnet_device.py ADDRESS/PREFIX INSTANCE

Serves a device object (INSTANCE) and a commandable analog-value 1 ("setpoint") on
UDP 47808 of ADDRESS. ReinitializeDevice is answered with a simple ACK (bacpypes3 has
no handler of its own), so that a request that reaches the device is visible. Every
request it receives is logged on stdout, one line each: "request <Service> from <addr>".
"""

import asyncio
import sys

from bacpypes3.apdu import SimpleAckPDU
from bacpypes3.app import Application
from bacpypes3.argparse import SimpleArgumentParser
from bacpypes3.local.analog import AnalogValueObjectCmd


class Device(Application):
    async def indication(self, apdu) -> None:
        print(f"request {type(apdu).__name__} from {apdu.pduSource}", flush=True)
        await super().indication(apdu)

    async def do_ReinitializeDeviceRequest(self, apdu) -> None:
        print(f"reinitialize {apdu.reinitializedStateOfDevice}", flush=True)
        await self.response(SimpleAckPDU(context=apdu))


async def main() -> None:
    address, instance = sys.argv[1], sys.argv[2]
    args = SimpleArgumentParser().parse_args(
        ["--address", address, "--instance", instance, "--name", "plc"]
    )
    app = Device.from_args(args)
    app.add_object(
        AnalogValueObjectCmd(
            objectIdentifier=("analog-value", 1),
            objectName="setpoint",
            presentValue=21.5,
            units="degreesCelsius",
        )
    )
    print("listening", flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
