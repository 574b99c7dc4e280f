"""A small threaded HTTP CONNECT proxy (stdlib only) for the client's proxy tests
(Tests/GRPCTests/ProxyTests.swift).

Listens on 127.0.0.1 (a free port), prints "listening on HOST:PORT" once ready, then one
stdout line per event, flushed at once, until SIGTERM:

  accepted N                  a client connected (N counts connections from 1)
  tunnel N to TARGET          CONNECT answered 200; bytes are relayed both ways from now
  refused N: STATUS           CONNECT answered with STATUS (e.g. "403 Forbidden")

Modes (default: tunnel every CONNECT):

  --refuse       answer every CONNECT "403 Forbidden"
  --auth U:P     require "Proxy-Authorization: Basic base64(U:P)", else answer
                 "407 Proxy Authentication Required"
  --silent       read the CONNECT request, then never answer (and never close)
  --close        read the CONNECT request, then close without answering
  --huge-head    answer with a 200 response head larger than 8 KiB (prints "huge head N"),
                 then hold the connection
  --coalesce     connect to the target and wait for its first bytes (an h2c server's
                 SETTINGS), then send the 200 head and those bytes in one write: the
                 client must keep what follows the head
"""
import argparse
import base64
import os
import signal
import socket
import sys
import threading

IO_SECONDS = 30
MAX_REQUEST_HEAD = 16 * 1024

lock = threading.Lock()
held = []   # connections kept open and never answered (--silent)


def say(line):
    with lock:
        print(line, flush=True)


def read_head(sock):
    """The request head up to and including the blank line, or None if the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > MAX_REQUEST_HEAD:
            return None
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")


def relay(source, sink):
    try:
        while True:
            chunk = source.recv(1 << 16)
            if not chunk:
                break
            sink.sendall(chunk)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def refuse(sock, number, status):
    sock.sendall(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    say(f"refused {number}: {status}")
    sock.close()


def handle(sock, number, args):
    sock.settimeout(IO_SECONDS)
    try:
        head = read_head(sock)
        if head is None:
            sock.close()
            return
        lines = head.split("\r\n")
        method, target, _ = (lines[0].split(" ") + ["", ""])[:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if args.silent:
            held.append(sock)
            return
        if args.close:
            sock.close()
            return
        if method != "CONNECT":
            return refuse(sock, number, "405 Method Not Allowed")
        if args.refuse:
            return refuse(sock, number, "403 Forbidden")
        if args.auth is not None:
            expected = "Basic " + base64.b64encode(args.auth.encode()).decode()
            if headers.get("proxy-authorization") != expected:
                return refuse(sock, number, "407 Proxy Authentication Required")
        if args.huge_head:
            sock.sendall(b"HTTP/1.1 200 Connection established\r\nX-Padding: " + b"a" * (9 * 1024) + b"\r\n\r\n")
            say(f"huge head {number}")
            held.append(sock)
            return
        host, _, port = target.rpartition(":")
        upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=IO_SECONDS)
        head = b"HTTP/1.1 200 Connection established\r\n\r\n"
        if args.coalesce:
            head += upstream.recv(1 << 16)
        sock.sendall(head)
        say(f"tunnel {number} to {target}")
        sock.settimeout(None)
        upstream.settimeout(None)
        threading.Thread(target=relay, args=(upstream, sock), daemon=True).start()
        relay(sock, upstream)
    except OSError as error:
        say(f"error {number}: {error}")
        sock.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--refuse", action="store_true")
    mode.add_argument("--silent", action="store_true")
    mode.add_argument("--close", action="store_true")
    mode.add_argument("--huge-head", action="store_true")
    mode.add_argument("--coalesce", action="store_true")
    parser.add_argument("--auth", metavar="USER:PASS")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    # A child started from a test's helper thread inherits its blocked signal mask;
    # unblock the signal this script relies on.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    host, port = listener.getsockname()
    print(f"listening on {host}:{port}", flush=True)
    number = 0
    while True:
        sock, _ = listener.accept()
        number += 1
        say(f"accepted {number}")
        threading.Thread(target=handle, args=(sock, number, args), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
