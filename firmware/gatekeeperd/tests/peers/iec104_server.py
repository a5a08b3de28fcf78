"""A controlled station (RTU) for the IEC 60870-5-104 namespace tests, on c104 (the Python
bindings of lib60870-C): common address 1 with

- IOA 100 single point (M_SP_NA_1), the breaker's position,
- IOA 200 measured value, short float (M_ME_NC_1), 42.5,
- IOA 5000 single command (C_SC_NA_1) that moves IOA 100 and reports it back
  (return information, remote),
- IOA 6000 single command (outside the policy's allowed IOAs),
- IOA 7000 setpoint, short float (C_SE_NC_1; a type the policy does not allow).

Every command that reaches the station is printed as one JSON line, so that a test can
tell that a refused command never arrived.

Usage: iec104_server.py [PORT]
"""

import json
import signal
import sys
import time

import c104


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 2404
    server = c104.Server(ip="0.0.0.0", port=port, tick_rate_ms=50)
    station = server.add_station(common_address=1)
    breaker = station.add_point(io_address=100, type=c104.Type.M_SP_NA_1)
    breaker.value = False
    measured = station.add_point(io_address=200, type=c104.Type.M_ME_NC_1)
    measured.value = 42.5

    def on_command(
        point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
    ) -> c104.ResponseState:
        print(
            json.dumps(
                {
                    "received": point.io_address,
                    "type": str(point.type),
                    "cot": str(message.cot),
                    "value": str(point.value),
                }
            ),
            flush=True,
        )
        related = point.related_io_address and station.get_point(point.related_io_address)
        if related:
            related.value = bool(point.value)
        return c104.ResponseState.SUCCESS

    commands = [
        station.add_point(
            io_address=5000,
            type=c104.Type.C_SC_NA_1,
            related_io_address=100,
            related_io_autoreturn=True,
        ),
        station.add_point(io_address=6000, type=c104.Type.C_SC_NA_1),
        station.add_point(io_address=7000, type=c104.Type.C_SE_NC_1),
    ]
    for point in commands:
        point.on_receive(callable=on_command)

    server.start()
    print(json.dumps({"listening": port}), flush=True)
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while running:
        time.sleep(0.1)
    server.stop()


if __name__ == "__main__":
    main()
