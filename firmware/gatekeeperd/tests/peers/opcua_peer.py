#!/usr/bin/env python3
"""A real OPC UA server and client (asyncua, from PyPI) for the namespace tests.

    opcua_peer.py server HOST PORT CERTDIR
        An OPC UA server on opc.tcp://HOST:PORT/gk/ with endpoints for the policies
        None, Basic256Sha256 Sign and Basic256Sha256 SignAndEncrypt (a self-signed
        certificate made in CERTDIR), an object Plc with a writable variable Speed and
        a method Stop. Runs until killed.

    opcua_peer.py client URL SECURITY CERTDIR STEP...
        SECURITY: none | sign | encrypt (Basic256Sha256; the server's certificate is
        read from CERTDIR). STEPs, in order on one session: browse, read, write, call.
        Prints one line per step: "<step> ok <detail>" or "<step> error <what>", and
        "connect error <what>" when the session cannot be opened. Exits 0 when it
        could say what happened, whatever happened.

    opcua_peer.py raw HOST PORT STEP...
        Hand-built frames on a plain TCP socket (layouts from OPC 10000-6, 7.1.2 and
        6.7.2), one line per step: "<step> ok", "<step> reset", "<step> closed" or
        "<step> timeout". Steps: hello (HEL, wait for ACK), hello-split (the HEL in two
        segments), open (an OPN with the policy None, wait for the OPN answer),
        hello-open (HEL and OPN in one segment, wait for both answers), garbage (bytes
        that are no OPC UA message), msg-first (a MSG before any OPN), bad-url (a HEL
        whose endpoint URL is not UTF-8).

Nothing here talks to an address that is not given on the command line.
"""

import asyncio
import logging
import socket
import struct
import sys
import time
from pathlib import Path

from asyncua import Client, Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

NAMESPACE = "urn:gatekeeper:test"
SUBJECT = {"countryName": "DE", "organizationName": "gatekeeper tests"}
TIMEOUT = 4


def say(*words):
    print(*words, flush=True)


async def certificate(certdir, name, uri, host, usage):
    certdir = Path(certdir)
    certdir.mkdir(parents=True, exist_ok=True)
    key, cert = certdir / f"{name}-key.pem", certdir / f"{name}-cert.der"
    await setup_self_signed_certificate(key, cert, uri, host, [usage], SUBJECT)
    return key, cert


async def serve(host, port, certdir):
    uri = "urn:gatekeeper:test:plc"
    key, cert = await certificate(certdir, "server", uri, host, ExtendedKeyUsageOID.SERVER_AUTH)
    server = Server()
    await server.init()
    await server.set_application_uri(uri)
    server.set_endpoint(f"opc.tcp://{host}:{port}/gk/")
    server.set_server_name("gatekeeper test PLC")
    server.set_security_policy(
        [
            ua.SecurityPolicyType.NoSecurity,
            ua.SecurityPolicyType.Basic256Sha256_Sign,
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ]
    )
    await server.load_certificate(str(cert))
    await server.load_private_key(str(key))
    idx = await server.register_namespace(NAMESPACE)
    plc = await server.nodes.objects.add_object(idx, "Plc")
    speed = await plc.add_variable(idx, "Speed", 12.5)
    await speed.set_writable()

    async def stop(parent):
        return [ua.Variant(True, ua.VariantType.Boolean)]

    await plc.add_method(idx, "Stop", stop, [], [ua.VariantType.Boolean])
    async with server:
        say("listening", host, port)
        while True:
            await asyncio.sleep(3600)


def what(e):
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}"[:200]


async def client(url, security, certdir, steps):
    c = Client(url, timeout=TIMEOUT)
    c.application_uri = "urn:gatekeeper:test:hmi"
    if security != "none":
        key, cert = await certificate(
            certdir, "client", c.application_uri, "hmi", ExtendedKeyUsageOID.CLIENT_AUTH
        )
        mode = {
            "sign": ua.MessageSecurityMode.Sign,
            "encrypt": ua.MessageSecurityMode.SignAndEncrypt,
        }[security]
        await c.set_security(
            SecurityPolicyBasic256Sha256,
            certificate=str(cert),
            private_key=str(key),
            server_certificate=str(Path(certdir) / "server-cert.der"),
            mode=mode,
        )
    try:
        await asyncio.wait_for(c.connect(), TIMEOUT + 2)
    except BaseException as e:  # noqa: BLE001 - reported, not raised
        say("connect error", what(e))
        return
    say("connect ok", security)
    try:
        idx = await c.get_namespace_index(NAMESPACE)
        plc = await c.nodes.objects.get_child(f"{idx}:Plc")
        speed = await plc.get_child(f"{idx}:Speed")
        for step in steps:
            try:
                if step == "browse":
                    children = await asyncio.wait_for(c.nodes.objects.get_children(), TIMEOUT)
                    say("browse ok", len(children))
                elif step == "read":
                    say("read ok", await asyncio.wait_for(speed.read_value(), TIMEOUT))
                elif step == "write":
                    await asyncio.wait_for(speed.write_value(42.0), TIMEOUT)
                    say("write ok")
                elif step == "call":
                    r = await asyncio.wait_for(plc.call_method(f"{idx}:Stop"), TIMEOUT)
                    say("call ok", r)
                else:
                    say(step, "error unknown step")
            except BaseException as e:  # noqa: BLE001
                say(step, "error", what(e))
                return
    except BaseException as e:  # noqa: BLE001
        say("connect error", what(e))
        return
    finally:
        try:
            await asyncio.wait_for(c.disconnect(), 2)
        except BaseException:  # noqa: BLE001 - the connection may be gone already
            pass


NONE_URI = b"http://opcfoundation.org/UA/SecurityPolicy#None"


def ua_string(b):
    return struct.pack("<i", len(b)) + b


def message(kind, body, chunk=b"F"):
    return kind + chunk + struct.pack("<I", 8 + len(body)) + body


def hel(url=b"opc.tcp://10.10.0.10:4840/gk/"):
    # ProtocolVersion, ReceiveBufferSize, SendBufferSize, MaxMessageSize, MaxChunkCount.
    return message(b"HEL", struct.pack("<5I", 0, 65535, 65535, 0, 0) + ua_string(url))


def request_header(handle):
    # authenticationToken (null NodeId), timestamp, requestHandle, returnDiagnostics,
    # auditEntryId (null), timeoutHint, additionalHeader (no ExtensionObject).
    return b"\x00\x00" + struct.pack("<qIIiI", 133_500_000_000_000_000, handle, 0, -1, 5000) + b"\x00\x00\x00"


def opn():
    body = struct.pack("<I", 0) + ua_string(NONE_URI) + struct.pack("<ii", -1, -1)
    body += struct.pack("<II", 1, 1)  # sequence number, request id
    body += b"\x01\x00" + struct.pack("<H", 446)  # OpenSecureChannelRequest
    body += request_header(1)
    # ClientProtocolVersion, RequestType Issue, SecurityMode None, ClientNonce (empty),
    # RequestedLifetime.
    body += struct.pack("<IIIiI", 0, 0, 1, 0, 600_000)
    return message(b"OPN", body)


def msg_read():
    body = struct.pack("<IIII", 1, 1, 2, 2) + b"\x01\x00" + struct.pack("<H", 631)
    return message(b"MSG", body + request_header(2) + struct.pack("<diI", 0.0, 0, 0) + struct.pack("<i", 0))


def receive(sock, kinds):
    """Reads messages until one of each kind arrived: ok, reset, closed or timeout."""
    data = b""
    want = list(kinds)
    try:
        while want:
            chunk = sock.recv(65536)
            if not chunk:
                return "closed"
            data += chunk
            while len(data) >= 8 and len(data) >= struct.unpack("<I", data[4:8])[0]:
                size = struct.unpack("<I", data[4:8])[0]
                kind, data = data[:3], data[size:]
                if kind == b"ERR":
                    return "closed"
                if kind in want:
                    want.remove(kind)
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "timeout"
    return "ok"


def send(sock, *parts):
    try:
        for i, p in enumerate(parts):
            if i:
                time.sleep(0.2)
            sock.sendall(p)
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    return None


def raw(host, port, steps):
    sock = socket.create_connection((host, port), timeout=3)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for step in steps:
        h = hel()
        parts, kinds = {
            "hello": ([h], [b"ACK"]),
            "hello-split": ([h[:10], h[10:]], [b"ACK"]),
            "open": ([opn()], [b"OPN"]),
            "hello-open": ([h + opn()], [b"ACK", b"OPN"]),
            "garbage": ([b"GET / HTTP/1.0\r\n\r\n"], [b"ACK"]),
            "msg-first": ([h, msg_read()], [b"ACK", b"MSG"]),
            "bad-url": ([hel(b"opc.tcp://\xff\xfe/")], [b"ACK"]),
        }[step]
        result = send(sock, *parts) or receive(sock, kinds)
        say(step, result)
        if result != "ok":
            return


def main():
    logging.basicConfig(level=logging.ERROR)
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "server":
        asyncio.run(serve(args[1], int(args[2]), args[3]))
    elif len(args) >= 4 and args[0] == "client":
        asyncio.run(client(args[1], args[2], args[3], args[4:]))
    elif len(args) >= 4 and args[0] == "raw":
        raw(args[1], int(args[2]), args[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
