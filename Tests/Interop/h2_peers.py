"""Peers that misbehave at the connection level, for the transport's connection tests
(Tests/GRPCTests: ClientConnectionTests, KeepaliveTests, ConcurrentStreamLimitTests).

Server roles listen on 127.0.0.1 (a free port), print "listening on HOST:PORT" once
ready and serve every connection the same way until SIGTERM:

  h2_peers.py http1-server         reads the client's first bytes, answers
                                   "HTTP/1.1 400 Bad Request" and closes, as an HTTP/1.1
                                   server does when it gets the HTTP/2 preface
  h2_peers.py silent-server        accepts and never sends a byte
  h2_peers.py unresponsive-server  completes the HTTP/2 handshake (the `h2` package), takes
                                   one request's HEADERS, then never reads again (so it
                                   never answers a PING)

Client roles connect to ADDRESS (HOST:PORT), print what they saw and exit 0 when the
server behaved as expected, 1 otherwise:

  h2_peers.py unresponsive-client ADDRESS [--wait S]
      Completes the handshake (SETTINGS both ways, both acknowledged), then never reads:
      the server's keepalive PINGs go unanswered. Waits up to S seconds (default 10) for
      the server to close the connection, noticed without reading (POLLRDHUP), then reads
      what the server had sent and reports it.
  h2_peers.py silent-client ADDRESS [--wait S]
      Connects over TCP and never sends a byte (no TLS ClientHello, no preface); waits up
      to S seconds (default 10) for the server to close the connection.
  h2_peers.py too-many-streams ADDRESS --limit N (--before-ack | --after-ack)
      Opens N + 1 Chat streams on one connection, ignoring the server's
      SETTINGS_MAX_CONCURRENT_STREAMS of N: before acknowledging the server's SETTINGS
      (the race REFUSED_STREAM exists for: expects RST_STREAM(REFUSED_STREAM) for the
      excess stream and the N others served), or after acknowledging them (a plain
      violation: reports the server's answer, expected GOAWAY(PROTOCOL_ERROR)).
"""
import argparse
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2_attacks import (  # noqa: E402  (frame helpers shared with the attack suite)
    ACK, CHAT, DATA, ERR, GOAWAY, HEADERS, PING, PREFACE, RST_STREAM, SETTINGS, SETTINGS_MAX_CONCURRENT_STREAMS,
    RawConnection, echo_request, error_name, frame, grpc_message, grpc_messages, request_headers, settings_frame)

IO_SECONDS = 5


# MARK: - Server roles


def listen():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    host, port = listener.getsockname()
    print(f"listening on {host}:{port}", flush=True)
    return listener


def http1_server(sock):
    # Read the client's preface first: closing with unread input would send RST instead
    # of FIN, and the client might never see the answer.
    sock.settimeout(IO_SECONDS)
    try:
        sock.recv(1 << 16)
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(1 << 16):
            pass
    except OSError:
        pass
    sock.close()


held = []   # connections kept open and never read again


def silent_server(sock):
    held.append(sock)


def unresponsive_server(sock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    while True:
        data = sock.recv(1 << 16)
        if not data:
            sock.close()
            return
        events = conn.receive_data(data)
        sock.sendall(conn.data_to_send())      # SETTINGS ACK (and PING ACKs, until now)
        if any(isinstance(e, h2.events.RequestReceived) for e in events):
            held.append(sock)
            return


SERVERS = {"http1-server": http1_server, "silent-server": silent_server, "unresponsive-server": unresponsive_server}


def serve(handler):
    listener = listen()
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=handler, args=(sock,), daemon=True).start()


# MARK: - Client roles


def describe(frames):
    return ", ".join(str(f) for f in frames) or "nothing"


def unresponsive_client(conn, wait):
    # Handshake: the server's SETTINGS (acknowledged by read_until) and its ACK of ours.
    got_ack = conn.read_until(lambda f: f.kind == SETTINGS and f.flags & ACK)
    if got_ack is None:
        print(f"FAILED: no SETTINGS ACK from the server ({conn.ended or 'silent'})")
        return 1
    print("handshake done", flush=True)
    start = time.monotonic()
    poller = select.poll()
    poller.register(conn.sock.fileno(), select.POLLRDHUP)
    closed = poller.poll(wait * 1000)
    elapsed = time.monotonic() - start
    if not closed:
        print(f"FAILED: the server kept the connection open for {wait} s")
        return 1
    seen = len(conn.frames)
    conn.wait_closed()
    print(f"closed after {elapsed:.2f} s; meanwhile the server sent: {describe(conn.frames[seen:])}")
    return 0


def silent_client(target, wait):
    sock = target.tcp()
    print("connected", flush=True)
    start = time.monotonic()
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLRDHUP)
    if not poller.poll(wait * 1000):
        print(f"FAILED: the server kept a silent connection open for {wait} s")
        return 1
    print(f"closed after {time.monotonic() - start:.2f} s")
    return 0


def too_many_streams(conn, target, limit, before_ack):
    if not before_ack:
        settings = conn.read_until(lambda f: f.kind == SETTINGS and not f.flags & ACK)
        if settings is None:
            print("FAILED: no SETTINGS from the server")
            return 1
        entries = dict(struct.unpack(">HI", settings.payload[i:i + 6]) for i in range(0, len(settings.payload), 6))
        advertised = entries.get(SETTINGS_MAX_CONCURRENT_STREAMS)
        if advertised != limit:
            print(f"FAILED: the server advertised SETTINGS_MAX_CONCURRENT_STREAMS {advertised}, not {limit}")
            return 1
    # Chat streams held open (no END_STREAM) so they all count against the limit.
    ids = [2 * i + 1 for i in range(limit + 1)]
    for stream_id in ids:
        conn.send_headers(stream_id, request_headers(target, CHAT))
    excess = ids[-1]
    if not before_ack:
        answer = conn.read_until(lambda f: f.kind == GOAWAY or f.kind == RST_STREAM and f.stream_id == excess)
        print(f"excess stream {excess}: {answer or 'no answer'}; connection {conn.ended or 'open'}")
        return 0 if answer is not None and answer.kind == GOAWAY and answer.error_code == ERR["PROTOCOL_ERROR"] else 1
    # Reading from here on acknowledges the server's SETTINGS.
    answer = conn.read_until(lambda f: f.kind == GOAWAY or f.kind == RST_STREAM and f.stream_id == excess)
    if answer is None or answer.kind != RST_STREAM or answer.error_code != ERR["REFUSED_STREAM"]:
        print(f"FAILED: expected RST_STREAM(stream {excess}, REFUSED_STREAM), got {answer}")
        return 1
    print(f"excess stream {excess}: {answer}", flush=True)
    # The streams within the limit are served.
    for stream_id in ids[:-1]:
        conn.send(frame(DATA, 0, stream_id, grpc_message(echo_request(text=f"stream {stream_id}"))))
        conn.send(frame(DATA, 0x1, stream_id, b""))
    statuses = {}
    deadline = time.monotonic() + IO_SECONDS
    while len(statuses) < limit:
        f = conn.next_frame(deadline)
        if f is None or f.kind == GOAWAY:
            print(f"FAILED: the other streams were not all served: {f} (connection {conn.ended or 'silent'})")
            return 1
        if f.kind == HEADERS and dict(f.headers).get("grpc-status") is not None:
            statuses[f.stream_id] = dict(f.headers)["grpc-status"]
        elif f.kind == RST_STREAM and f.stream_id != excess:
            print(f"FAILED: {f}")
            return 1
    answered = {f.stream_id: len(grpc_messages(f.payload)) for f in conn.frames if f.kind == DATA and f.payload}
    print(f"streams {ids[:-1]} served: grpc-status {statuses}, messages {answered}")
    return 0 if all(code == "0" for code in statuses.values()) else 1


class Address:
    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.authority = address
        self.tls, self.ca, self.pid = False, None, None

    def tcp(self):
        return socket.create_connection((self.host, self.port), timeout=IO_SECONDS)

    def connect(self, alpn=None):
        return self.tcp()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=sorted(SERVERS) + ["unresponsive-client", "silent-client", "too-many-streams"])
    parser.add_argument("address", nargs="?", help="HOST:PORT of the server (client roles)")
    parser.add_argument("--wait", type=float, default=10)
    parser.add_argument("--limit", type=int)
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--before-ack", action="store_true")
    when.add_argument("--after-ack", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    # A child started from a test's helper thread inherits its blocked signal mask;
    # unblock the signals this script relies on.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGALRM})

    if args.role in SERVERS:
        serve(SERVERS[args.role])
        return 0
    if not args.address:
        parser.error("client roles need ADDRESS")
    target = Address(args.address)
    signal.alarm(int(args.wait) + 2 * IO_SECONDS)    # never outlive a hung test
    if args.role == "unresponsive-client":
        return unresponsive_client(RawConnection(target), args.wait)
    if args.role == "silent-client":
        return silent_client(target, args.wait)
    if args.limit is None or not (args.before_ack or args.after_ack):
        parser.error("too-many-streams needs --limit and --before-ack or --after-ack")
    # Before the ACK: the preface and our SETTINGS, but no reading (which would acknowledge
    # the server's SETTINGS) until every stream is open.
    return too_many_streams(RawConnection(target), target, args.limit, args.before_ack)


if __name__ == "__main__":
    sys.exit(main())
