#!/usr/bin/env python3
"""Small, real network peers for the namespace tests (stdlib only).

tcp-server PORT                    echo server; prints "ready" when listening
tcp-client HOST PORT [BYTES] [T]   sends BYTES random bytes, expects them echoed back
udp-server PORT                    echo server
udp-client HOST PORT [T]           one datagram, expects the echo
raw-send IFACE HEX [HEX ...]       sends raw Ethernet frames
Exit status 0 = worked; 1 = the network said no (timeout, refused, reset); the reason
is printed on stdout as one word: ok, timeout, refused, reset, mismatch, unreachable.
"""
import hashlib, os, socket, sys, threading

def tcp_server(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port))); s.listen(64)
    print("ready", flush=True)
    def serve(c):
        with c:
            while True:
                d = c.recv(65536)
                if not d: return
                c.sendall(d)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()

def tcp_client(host, port, nbytes="1000", timeout="2"):
    data = os.urandom(int(nbytes))
    try:
        c = socket.create_connection((host, int(port)), timeout=float(timeout))
        c.settimeout(max(float(timeout), 20.0))
        got = bytearray()
        def reader():
            while len(got) < len(data):
                d = c.recv(65536)
                if not d: break
                got.extend(d)
        t = threading.Thread(target=reader); t.start()
        c.sendall(data); t.join()
        c.close()
    except socket.timeout: print("timeout"); return 1
    except ConnectionRefusedError: print("refused"); return 1
    except ConnectionResetError: print("reset"); return 1
    except OSError as e: print("unreachable", e); return 1
    if hashlib.sha256(bytes(got)).digest() != hashlib.sha256(data).digest():
        print("mismatch", len(got), len(data)); return 1
    print("ok"); return 0

def udp_server(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(port)))
    print("ready", flush=True)
    while True:
        d, a = s.recvfrom(65536); s.sendto(d, a)

def udp_client(host, port, timeout="1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(float(timeout))
    s.connect((host, int(port)))
    msg = os.urandom(32)
    try:
        s.send(msg)
        d = s.recv(65536)
    except socket.timeout: print("timeout"); return 1
    except ConnectionRefusedError: print("refused"); return 1
    print("ok" if d == msg else "mismatch"); return 0 if d == msg else 1

def raw_send(iface, *frames):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for f in frames: s.send(bytes.fromhex(f))
    print("ok"); return 0

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {"tcp-server": tcp_server, "tcp-client": tcp_client, "udp-server": udp_server,
          "udp-client": udp_client, "raw-send": raw_send}[cmd]
    sys.exit(fn(*args) or 0)
