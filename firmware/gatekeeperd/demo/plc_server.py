#!/usr/bin/env python3
"""The demo's PLC: a real Modbus/TCP server (pymodbus) with a few holding registers.

    python plc_server.py [--host 10.10.0.10] [--port 502]

Unit (device) id 1. Holding registers 0-9 hold the values in REGISTERS below (a small
press line: setpoints and measurements), registers 10-99 are zero; coils 0-99 are off
(coil 0 would start the press). It runs until it is
killed. Works with pymodbus 3.x: the SimDevice API when it is there (3.11+), the older
datastore API otherwise.
"""

import argparse
import asyncio
import logging

# Holding registers 0-9: what the HMI reads in the demo.
REGISTERS = [
    1200,  # 0: press force setpoint (kN)
    1187,  # 1: press force measured (kN)
    72,    # 2: hydraulic oil temperature (degC)
    3,     # 3: recipe number
    1,     # 4: mode (1 = automatic)
    450,   # 5: strokes per hour
    22,    # 6: ambient temperature (degC)
    8,     # 7: shift
    65,    # 8: tool wear (%)
    0,     # 9: alarm word
]
SIZE = 100


def build_context():
    """Returns (context, api) for whichever pymodbus API this version offers."""
    values = REGISTERS + [0] * (SIZE - len(REGISTERS))
    try:
        from pymodbus.simulator import DataType, SimData, SimDevice

        return SimDevice(id=1, simdata=[
            SimData(address=0, values=values, datatype=DataType.REGISTERS),
            SimData(address=0, values=[False] * SIZE, datatype=DataType.BITS),
        ]), "SimDevice"
    except (ImportError, TypeError):  # TypeError: this SimDevice keeps one flat address map
        pass
    from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext

    try:  # pymodbus 3.10: ModbusDeviceContext, request address N is block address N+1
        from pymodbus.datastore import ModbusDeviceContext

        dev = ModbusDeviceContext(co=ModbusSequentialDataBlock(1, [0] * SIZE),
                                  hr=ModbusSequentialDataBlock(1, values),
                                  ir=ModbusSequentialDataBlock(1, values))
        return ModbusServerContext(devices=dev, single=True), "ModbusDeviceContext"
    except ImportError:  # pymodbus < 3.10
        from pymodbus.datastore import ModbusSlaveContext

        dev = ModbusSlaveContext(co=ModbusSequentialDataBlock(0, [0] * SIZE),
                                 hr=ModbusSequentialDataBlock(0, values),
                                 ir=ModbusSequentialDataBlock(0, values), zero_mode=True)
        return ModbusServerContext(slaves=dev, single=True), "ModbusSlaveContext"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="10.10.0.10")
    ap.add_argument("--port", type=int, default=502)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="plc: %(message)s")
    # pymodbus warns about deprecated APIs on every start; keep the demo's log readable.
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    import pymodbus
    from pymodbus.server import StartAsyncTcpServer

    context, api = build_context()
    logging.info("pymodbus %s (%s API): Modbus/TCP server on %s:%d, unit 1, "
                 "holding registers 0-9 = %s", pymodbus.__version__, api, args.host,
                 args.port, REGISTERS)
    await StartAsyncTcpServer(context, address=(args.host, args.port))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
