"""Bad input from the network against a Tether gRPC server (tether-echo serve).

  h2_attacks.py ADDRESS [--tls --ca FILE] [--server-pid PID] [CASE ...]
  h2_attacks.py --list [--tls]

Each case attacks the server on a connection of its own and checks the server's
reaction on the wire (GOAWAY and its error code, RST_STREAM and its code, the HTTP
or gRPC status of the response), then checks that the server keeps serving: a
bystander connection opened before the attack, and a new connection opened after
it, each complete a unary Echo call (a well-behaved client built on the `h2`
package). Attacks are crafted frame by frame (raw sockets, `hpack` for header
blocks), so nothing on our side second-guesses them.

Without CASE names, runs every case for the transport (`--tls` adds the TLS-only
cases). Prints one line per case and a closing "N passed, M failed" line; exits 1
if any case failed. Loopback only: every case is bounded in frames sent and in
time (socket timeouts, and an alarm after CASE_SECONDS). Cases that watch the
server's memory (VmRSS in /proc/PID/status) need --server-pid.
"""
import argparse
import os
import random
import signal
import socket
import ssl
import struct
import sys
import time
import traceback

import h2.config
import h2.connection
import h2.events
import hpack

CASE_SECONDS = 12          # hard limit per case (alarm)
IO_SECONDS = 5             # socket timeout, and how long we wait for any one reaction
MiB = 1 << 20

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
FRAME_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY",
               "WINDOW_UPDATE", "CONTINUATION"]
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS = 1, 2, 3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = 4, 5, 6

ERROR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
               "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
               "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
ERR = {name: code for code, name in enumerate(ERROR_NAMES)}

ECHO = "/tether.testing.v1.EchoService/Echo"
EXPAND = "/tether.testing.v1.EchoService/Expand"
CHAT = "/tether.testing.v1.EchoService/Chat"
GRPC_OK, GRPC_UNIMPLEMENTED, GRPC_INTERNAL, GRPC_RESOURCE_EXHAUSTED, GRPC_INVALID_ARGUMENT = 0, 12, 13, 8, 3

# What our server advertises (HTTP2Configuration defaults); the cases aim just past them.
SERVER_MAX_HEADER_LIST = 16 << 10
SERVER_MAX_FRAME = 16 << 10


def error_name(code):
    return ERROR_NAMES[code] if code < len(ERROR_NAMES) else hex(code)


# MARK: - Wire encoding


def frame(kind, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def settings_frame(entries=(), flags=0):
    return frame(SETTINGS, flags, 0, b"".join(struct.pack(">HI", k, v) for k, v in entries))


def rst_stream(stream_id, code):
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def echo_request(payload=b"", text="", repeat=0, delay_ms=0, response_size=0):
    """tether.testing.v1.EchoRequest, encoded by hand (fields 1, 2, 3, 4, 7)."""
    out = b""
    if payload:
        out += b"\x0a" + varint(len(payload)) + payload
    if text:
        raw = text.encode()
        out += b"\x12" + varint(len(raw)) + raw
    if repeat:
        out += b"\x18" + varint(repeat)
    if delay_ms:
        out += b"\x20" + varint(delay_ms)
    if response_size:
        out += b"\x38" + varint(response_size)
    return out


def echo_response_payload(message):
    """Field 1 (payload) of an EchoResponse."""
    i = 0
    while i < len(message):
        key, i = read_varint(message, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = read_varint(message, i)
        elif wire == 2:
            length, i = read_varint(message, i)
            if field == 1:
                return message[i:i + length]
            i += length
        else:
            raise AssertionError(f"unexpected wire type {wire} in EchoResponse")
    return b""


def read_varint(data, i):
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def grpc_message(body, compressed=0):
    return bytes([compressed]) + struct.pack(">I", len(body)) + body


def grpc_messages(data):
    """Splits a response body into gRPC messages."""
    out, i = [], 0
    while i + 5 <= len(data):
        length = struct.unpack(">I", data[i + 1:i + 5])[0]
        out.append(data[i + 5:i + 5 + length])
        i += 5 + length
    return out


def request_headers(target, path=ECHO, method="POST", content_type="application/grpc", extra=()):
    headers = [(":method", method), (":scheme", "https" if target.tls else "http"), (":path", path),
               (":authority", target.authority), ("content-type", content_type), ("te", "trailers")]
    return [h for h in headers if h[1] is not None] + list(extra)


# MARK: - Target


class Target:
    def __init__(self, args):
        host, _, port = args.address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.authority = args.address
        self.tls = args.tls
        self.ca = args.ca
        self.pid = args.server_pid

    def tcp(self):
        return socket.create_connection((self.host, self.port), timeout=IO_SECONDS)

    def connect(self, alpn=("h2",)):
        sock = self.tcp()
        if not self.tls:
            return sock
        context = ssl.create_default_context(cafile=self.ca)
        if alpn:
            context.set_alpn_protocols(list(alpn))
        tls = TLSStream(sock, context, self.host)
        if alpn:
            assert tls.selected_alpn_protocol() == "h2", f"server selected ALPN {tls.selected_alpn_protocol()!r}"
        return tls

    def rss_kib(self):
        if not self.pid:
            raise AssertionError("this case watches the server's memory: pass --server-pid")
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc status")

    def alive(self):
        return not self.pid or os.path.exists(f"/proc/{self.pid}")


class TLSStream:
    """TLS over a socket through memory BIOs, with the socket calls the cases use
    (sendall, recv, settimeout, close). An ssl.SSLSocket whose write failed (the server
    closed on a flood we were still sending) refuses to read what the server sent before
    closing, its GOAWAY included; here a failed socket write leaves reading intact."""

    def __init__(self, sock, context, server_hostname):
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._receive()
        self._flush()

    def _flush(self):
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _receive(self):
        data = self.sock.recv(1 << 16)
        if data:
            self.incoming.write(data)
        else:
            self.incoming.write_eof()

    def selected_alpn_protocol(self):
        return self.tls.selected_alpn_protocol()

    def settimeout(self, seconds):
        self.sock.settimeout(seconds)

    def sendall(self, data):
        self.tls.write(data)
        self._flush()

    def recv(self, n):
        while True:
            try:
                return self.tls.read(n)
            except ssl.SSLWantReadError:
                self._receive()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    def close(self):
        self.sock.close()


# MARK: - A raw connection: frames out as crafted, frames in as parsed


class Frame:
    def __init__(self, kind, flags, stream_id, payload):
        self.kind, self.flags, self.stream_id, self.payload = kind, flags, stream_id, payload
        self.headers = None

    @property
    def error_code(self):
        if self.kind == RST_STREAM:
            return struct.unpack(">I", self.payload[:4])[0]
        if self.kind == GOAWAY:
            return struct.unpack(">I", self.payload[4:8])[0]
        return None

    @property
    def last_stream_id(self):
        return struct.unpack(">I", self.payload[:4])[0] & 0x7FFFFFFF

    def __str__(self):
        name = FRAME_NAMES[self.kind] if self.kind < len(FRAME_NAMES) else f"type{self.kind}"
        if self.kind == GOAWAY:
            debug = self.payload[8:].decode(errors="replace")
            return f"GOAWAY({error_name(self.error_code)}, last_stream={self.last_stream_id}" + \
                (f", {debug!r})" if debug else ")")
        if self.kind == RST_STREAM:
            return f"RST_STREAM(stream {self.stream_id}, {error_name(self.error_code)})"
        if self.kind == HEADERS:
            shown = {k: v for k, v in self.headers if k in (":status", "grpc-status", "grpc-message")}
            return f"HEADERS(stream {self.stream_id}, {shown})"
        return f"{name}(stream {self.stream_id}, flags {self.flags:#x}, {len(self.payload)} bytes)"


class RawConnection:
    """A client connection that sends exactly the bytes it is given and parses what
    comes back. Acknowledges the server's SETTINGS (and PINGs) while reading, unless
    told not to, so the server's advertised limits apply."""

    def __init__(self, target, preface=True, settings=(), alpn=("h2",)):
        self.target = target
        self.sock = target.connect(alpn)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.buffer = bytearray()
        self.ended = None            # why reading stopped: "closed", "reset", ...
        self.send_failed = None
        self.frames = []             # everything received, in order
        if preface:
            self.send(PREFACE + settings_frame(settings))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        """Sends `data`; if the server has closed or reset meanwhile, remembers it and
        returns False (the caller then reads what the server said before closing)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as error:
            self.send_failed = repr(error)
            return False

    def header_block(self, headers):
        return self.encoder.encode(headers)

    def send_headers(self, stream_id, headers, end_stream=False):
        block = self.header_block(headers)
        assert len(block) <= SERVER_MAX_FRAME
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        return self.send(frame(HEADERS, flags, stream_id, block))

    def send_message(self, stream_id, body, end_stream=True):
        return self.send(frame(DATA, END_STREAM if end_stream else 0, stream_id, grpc_message(body)))

    def _fill(self, deadline):
        if self.ended:
            return False
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(1 << 16)
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            self.ended = "reset"
            return False
        except ssl.SSLError as error:
            self.ended = f"TLS error {error.reason}"
            return False
        if not chunk:
            self.ended = "closed"
            return False
        self.buffer += chunk
        return True

    def _take(self, n, deadline):
        while len(self.buffer) < n:
            if time.monotonic() >= deadline or not self._fill(deadline):
                return None
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def next_frame(self, deadline, auto_ack=True):
        """The next frame (HEADERS with its CONTINUATIONs folded in and decoded), or None
        at end of connection or deadline."""
        head = self._take(9, deadline)
        if head is None:
            return None
        length = struct.unpack(">I", b"\0" + head[:3])[0]
        kind, flags, stream_id = head[3], head[4], struct.unpack(">I", head[5:9])[0] & 0x7FFFFFFF
        payload = self._take(length, deadline)
        if payload is None:
            return None
        f = Frame(kind, flags, stream_id, payload)
        if kind in (HEADERS, PUSH_PROMISE):
            block = payload
            if flags & PADDED:
                block = block[1:len(block) - block[0]]
            if flags & PRIORITY_FLAG:
                block = block[5:]
            while not f.flags & END_HEADERS:
                more = self.next_frame(deadline, auto_ack)
                assert more and more.kind == CONTINUATION, "server sent HEADERS without its CONTINUATION"
                block += more.payload
                f.flags |= more.flags & END_HEADERS
            f.headers = [(k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                         for k, v in self.decoder.decode(block, raw=True)]
        self.frames.append(f)
        if auto_ack and kind == SETTINGS and not flags & ACK:
            self.send(settings_frame(flags=ACK))
        if auto_ack and kind == PING and not flags & ACK:
            self.send(frame(PING, ACK, 0, payload))
        return f

    def read_until(self, predicate, timeout=IO_SECONDS, auto_ack=True):
        """Reads until a frame satisfies `predicate` (returned), the connection ends or
        `timeout` passes (None)."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.next_frame(deadline, auto_ack)
            if f is None:
                return None
            if predicate(f):
                return f

    def wait_closed(self, timeout=IO_SECONDS):
        """Reads (and keeps) frames until the server closes; returns how it ended."""
        deadline = time.monotonic() + timeout
        while self.next_frame(deadline) is not None:
            pass
        return self.ended

    def goaway(self):
        return next((f for f in self.frames if f.kind == GOAWAY), None)


def expect(condition, what):
    if not condition:
        raise AssertionError(what)


def expect_goaway(conn, code, timeout=IO_SECONDS, closes=True):
    """The server sends GOAWAY with `code` (reading as long as it takes, up to
    `timeout`), then closes the connection. Returns a description."""
    conn.read_until(lambda f: f.kind == GOAWAY, timeout)
    goaway = conn.goaway()
    expect(goaway is not None, f"expected GOAWAY({error_name(code)}); connection {conn.ended or 'still open'}, "
                               f"received {[str(f) for f in conn.frames if f.kind != SETTINGS][-5:]}")
    expect(goaway.error_code == code, f"expected GOAWAY({error_name(code)}), got {goaway}")
    if closes:
        ended = conn.wait_closed()
        expect(ended in ("closed", "reset"), f"server did not close the connection after {goaway}")
        return f"{goaway}, then the connection was {ended}"
    return str(goaway)


def expect_stream_reset(conn, stream_id, code, timeout=IO_SECONDS):
    f = conn.read_until(lambda f: f.stream_id == stream_id and f.kind in (RST_STREAM, HEADERS) or f.kind == GOAWAY,
                        timeout)
    expect(f is not None, f"expected RST_STREAM on stream {stream_id}; connection {conn.ended or 'silent'}")
    expect(f.kind == RST_STREAM and f.error_code == code,
           f"expected RST_STREAM(stream {stream_id}, {error_name(code)}), got {f}")
    return str(f)


def read_response(conn, stream_id, timeout=IO_SECONDS):
    """Reads one stream's response: (header blocks, DATA bytes, RST_STREAM frame or None).
    Ends at END_STREAM, RST_STREAM, GOAWAY or connection end."""
    deadline = time.monotonic() + timeout
    blocks, body = [], b""
    while True:
        f = conn.next_frame(deadline)
        expect(f is not None, f"stream {stream_id}: no complete response (connection {conn.ended or 'silent'}); "
                              f"got {[str(b) for b in blocks]}")
        if f.kind == GOAWAY:
            raise AssertionError(f"stream {stream_id}: got {f} instead of a response")
        if f.stream_id != stream_id:
            continue
        if f.kind == HEADERS:
            blocks.append(dict(f.headers))
        elif f.kind == DATA:
            body += f.payload
            # Keep the windows open for responses larger than the initial window.
            if f.payload:
                conn.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(f.payload)))
                          + frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", len(f.payload))))
        elif f.kind == RST_STREAM:
            return blocks, body, f
        if f.kind in (HEADERS, DATA) and f.flags & END_STREAM:
            # The server may follow a complete response with RST_STREAM(NO_ERROR).
            return blocks, body, None


def expect_grpc_status(conn, stream_id, code, reset_after=None):
    """A complete gRPC response ending with `grpc-status: code`; with `reset_after`, a
    RST_STREAM with that code follows it (the server telling a still-sending client to stop)."""
    blocks, _, reset = read_response(conn, stream_id)
    expect(reset is None, f"stream {stream_id}: {reset} instead of grpc-status {code}")
    expect(blocks and blocks[0].get(":status") == "200", f"stream {stream_id}: response headers {blocks[:1]}")
    trailers = blocks[-1]
    expect(trailers.get("grpc-status") == str(code),
           f"expected grpc-status {code}, got {trailers.get('grpc-status')} ({trailers.get('grpc-message')!r})")
    described = f"grpc-status {code} {trailers.get('grpc-message', '')!r}" + \
        (" (Trailers-Only)" if len(blocks) == 1 else "")
    if reset_after is not None:
        after = conn.read_until(lambda f: f.stream_id == stream_id or f.kind == GOAWAY, 2)
        expect(after is not None and after.kind == RST_STREAM and after.error_code == reset_after,
               f"expected RST_STREAM({error_name(reset_after)}) after the status, got {after}")
        described += f", then {after}"
    return described


def expect_http_status(conn, stream_id, status):
    blocks, _, reset = read_response(conn, stream_id)
    expect(reset is None, f"stream {stream_id}: {reset} instead of HTTP {status}")
    expect(blocks[0].get(":status") == str(status), f"expected HTTP {status}, got {blocks[0]}")
    return f"HTTP {status} ({blocks[0].get('content-type')})"


# MARK: - A well-behaved client, on the h2 package


class WellBehavedClient:
    """One HTTP/2 connection driven by the `h2` package's state machine, making unary
    Echo calls the way a stock gRPC client does."""

    def __init__(self, target):
        self.target = target
        self.sock = target.connect()
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())

    def close(self):
        self.sock.close()

    def echo(self, payload):
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, request_headers(self.target))
        self.conn.send_data(stream_id, grpc_message(echo_request(payload=payload)), end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        body, trailers, deadline = b"", None, time.monotonic() + IO_SECONDS
        while trailers is None:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(1 << 16)
            except (socket.timeout, TimeoutError):
                raise AssertionError("Echo: no response within %ss" % IO_SECONDS)
            expect(data, "Echo: server closed the connection")
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                    body += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, h2.events.TrailersReceived) and event.stream_id == stream_id:
                    trailers = dict(event.headers)
                elif isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                    if "grpc-status" in dict(event.headers):
                        trailers = dict(event.headers)
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                    raise AssertionError(f"Echo: stream reset ({event.error_code!r})")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    raise AssertionError(f"Echo: GOAWAY ({event.error_code!r})")
            self.sock.sendall(self.conn.data_to_send())
        expect(trailers.get("grpc-status") == "0", f"Echo: grpc-status {trailers}")
        messages = grpc_messages(body)
        expect(len(messages) == 1 and echo_response_payload(messages[0]) == payload, "Echo: wrong payload echoed")


# MARK: - Cases

CASES = []


def case(transport="any"):
    def register(fn):
        CASES.append((fn.__name__, transport, fn))
        return fn
    return register


@case()
def bad_connection_preface(t):
    conn = RawConnection(t, preface=False)
    conn.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + settings_frame())
    return expect_goaway(conn, ERR["PROTOCOL_ERROR"])


@case()
def http1_request_instead_of_http2(t):
    conn = RawConnection(t, preface=False)
    conn.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n")
    return expect_goaway(conn, ERR["PROTOCOL_ERROR"])


@case()
def garbage_bytes_after_preface(t):
    conn = RawConnection(t)
    # 64 KiB of seeded noise: its first "frame header" announces a frame far over our
    # SETTINGS_MAX_FRAME_SIZE.
    garbage = random.Random(4).randbytes(64 << 10)
    expect(struct.unpack(">I", b"\0" + garbage[:3])[0] > SERVER_MAX_FRAME, "seed no longer yields an oversized frame")
    conn.send(garbage)
    return expect_goaway(conn, ERR["FRAME_SIZE_ERROR"])


@case("tls")
def garbage_bytes_instead_of_tls_handshake(t):
    sock = t.tcp()
    sock.sendall(random.Random(5).randbytes(4096))
    sock.settimeout(IO_SECONDS)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    sock.close()
    # TLS 1.3 answers a record that is not a handshake with an alert, or nothing at all.
    expect(len(received) < 64, f"server sent {len(received)} bytes to a non-TLS peer")
    return f"connection closed ({len(received)} bytes sent back: {received.hex() or 'none'})"


def tls_handshake_error(t, alpn):
    try:
        t.connect(alpn).close()
    except ssl.SSLError as error:
        # The server's no_application_protocol alert (RFC 7301 3.2), as OpenSSL words it
        # ("tlsv1 alert no application protocol"); Python has no `reason` name for it.
        expect("alert no application protocol" in str(error), f"handshake failed, but not for ALPN: {error}")
        return "handshake failed with the server's no_application_protocol alert"
    raise AssertionError("handshake succeeded")


@case("tls")
def tls_without_alpn(t):
    return tls_handshake_error(t, ())


@case("tls")
def tls_offering_only_http11(t):
    return tls_handshake_error(t, ("http/1.1",))


@case()
def oversized_header_block(t):
    conn = RawConnection(t)
    conn.read_until(lambda f: f.kind == SETTINGS and not f.flags & ACK)   # the limit is advertised (and acked)
    # 300 distinct 64-byte custom headers: ~30 KiB against a 16 KiB SETTINGS_MAX_HEADER_LIST_SIZE,
    # across a HEADERS and a CONTINUATION frame.
    big = [(f"x-filler-{i}", "v" * 64) for i in range(300)]
    block = conn.header_block(request_headers(t) + big)
    expect(len(block) > SERVER_MAX_FRAME, "header block fits one frame")
    conn.send(frame(HEADERS, 0, 1, block[:SERVER_MAX_FRAME])
              + frame(CONTINUATION, END_HEADERS, 1, block[SERVER_MAX_FRAME:])
              + frame(DATA, END_STREAM, 1, grpc_message(echo_request(payload=b"x"))))
    # nghttp2 advertises the limit but leaves enforcing it to us: our header callback refuses
    # the field that crosses it, and nghttp2 resets the stream with INTERNAL_ERROR while it
    # keeps decoding the block, so the connection's HPACK state stays in sync.
    described = expect_stream_reset(conn, 1, ERR["INTERNAL_ERROR"])
    # The connection (and its HPACK state) survives: the next stream is answered.
    conn.send_headers(3, request_headers(t))
    conn.send_message(3, echo_request(payload=b"after"))
    expect_grpc_status(conn, 3, GRPC_OK)
    conn.close()
    return described + "; the next stream on the connection is served"


@case()
def continuation_flood(t):
    conn = RawConnection(t)
    head = conn.header_block(request_headers(t))
    # A HEADERS without END_HEADERS, then 1,000 CONTINUATIONs of one small header each
    # (nghttp2 allows 8 per header block here).
    flood = b"".join(frame(CONTINUATION, 0, 1, conn.header_block([(f"x-c{i}", "c" * 40)])) for i in range(1000))
    conn.send(frame(HEADERS, 0, 1, head) + flood)
    described = expect_goaway(conn, ERR["ENHANCE_YOUR_CALM"])
    expect(not any(f.kind == HEADERS for f in conn.frames), "the flooded request was answered")
    return described


@case()
def rapid_reset(t):
    conn = RawConnection(t)
    block = conn.header_block(request_headers(t))   # self-contained: may be sent again as is
    pairs = 3000
    burst = b"".join(frame(HEADERS, END_HEADERS, 2 * i + 1, block) + rst_stream(2 * i + 1, ERR["CANCEL"])
                     for i in range(pairs))
    conn.send(burst)
    # nghttp2's stream_reset_rate_limit (burst 1000, 33/s) answers with INTERNAL_ERROR.
    described = expect_goaway(conn, ERR["INTERNAL_ERROR"])
    last = conn.goaway().last_stream_id
    expect(last < 2 * pairs - 1, f"GOAWAY came only after every reset (last stream {last})")
    return described


@case()
def settings_flood(t):
    conn = RawConnection(t)
    # 20,000 SETTINGS frames, never reading the ACKs: nghttp2 queues one ACK each, and more
    # than 1,000 unsent (max_outbound_ack) is a flood.
    conn.send(settings_frame() * 20000)
    return expect_goaway(conn, ERR["ENHANCE_YOUR_CALM"])


@case()
def settings_with_too_many_entries(t):
    conn = RawConnection(t, preface=False)
    conn.send(PREFACE + settings_frame([(SETTINGS_MAX_CONCURRENT_STREAMS, 100 + i) for i in range(100)]))
    return expect_goaway(conn, ERR["ENHANCE_YOUR_CALM"])


@case()
def ping_flood(t):
    conn = RawConnection(t)
    # 20,000 PINGs, never reading the ACKs (the same max_outbound_ack limit).
    conn.send(b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(20000)))
    return expect_goaway(conn, ERR["ENHANCE_YOUR_CALM"])


def watch_rss(t, seconds, limit_kib):
    """Samples the server's RSS for `seconds`; fails if it grows more than `limit_kib`."""
    start = peak = t.rss_kib()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
        peak = max(peak, t.rss_kib())
    growth = peak - start
    expect(growth < limit_kib, f"server RSS grew {growth} KiB ({start} -> {peak}) in {seconds}s")
    return growth


def expand_request(t, conn, stream_id=1):
    conn.send_headers(stream_id, request_headers(t, EXPAND))
    conn.send_message(stream_id, echo_request(repeat=100000, response_size=16384))


@case()
def zero_window_reader(t):
    # Stream window 0: the server may send HEADERS but no DATA until we open it, which we never do.
    conn = RawConnection(t, settings=[(SETTINGS_INITIAL_WINDOW_SIZE, 0)])
    expand_request(t, conn)
    growth = watch_rss(t, 3, 64 << 10)
    f = conn.read_until(lambda f: f.stream_id == 1 and f.kind in (HEADERS, DATA, RST_STREAM) or f.kind == GOAWAY, 2)
    expect(f is not None and f.kind == HEADERS, f"expected response HEADERS (and no DATA), got {f}")
    expect(not any(f.kind == DATA for f in conn.frames), "server sent DATA into a zero window")
    conn.close()
    return f"server holds the stream with {growth} KiB RSS growth over 3 s; response headers, no DATA"


@case()
def stalled_reader(t):
    # Huge windows, then the socket is never read: only TCP backpressure stops the server.
    conn = RawConnection(t, settings=[(SETTINGS_INITIAL_WINDOW_SIZE, 0x7FFFFFFF)])
    conn.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF - 65535)))
    expand_request(t, conn)
    growth = watch_rss(t, 3, 64 << 10)
    conn.close()
    return f"{growth} KiB RSS growth over 3 s of a 1.6 GB response nobody reads"


@case()
def request_flood_into_slow_handler(t):
    # Chat answers each message after its delay_ms: the first one stalls the handler for 2 s
    # while we send as fast as the server's windows let us. Receive flow control must stop us
    # about one stream window ahead of the handler (without it the server queued every byte
    # we sent: 256 MiB in 0.6 s), and must reopen once the handler catches up. Our own
    # windows are wide open, so the handler's answers never wait for us.
    conn = RawConnection(t, settings=[(SETTINGS_INITIAL_WINDOW_SIZE, 0x7FFFFFFF)])
    conn.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF - 65535)))
    server_settings = conn.read_until(lambda f: f.kind == SETTINGS and not f.flags & ACK)
    expect(server_settings is not None, "no SETTINGS from the server")
    entries = dict(struct.unpack(">HI", server_settings.payload[i:i + 6])
                   for i in range(0, len(server_settings.payload), 6))
    stream_window = entries.get(SETTINGS_INITIAL_WINDOW_SIZE, 65535)
    windows = {0: 65535, 1: stream_window}
    conn.send_headers(1, request_headers(t, CHAT))
    first = grpc_message(echo_request(payload=b"first", delay_ms=2000))
    conn.send(frame(DATA, 0, 1, first))
    windows[0] -= len(first)
    windows[1] -= len(first)
    chunk = grpc_message(echo_request(payload=b"z" * (SERVER_MAX_FRAME - 64)))
    start = t.rss_kib()
    sent, messages, stopped, reopened = len(first), 1, None, False

    def pump(until, max_bytes):
        """Sends within the windows until `until` or `max_bytes`; returns True if the stream's
        window reopened after it had closed."""
        nonlocal sent, messages, stopped
        was_blocked = reopened_now = False
        while time.monotonic() < until and sent < max_bytes and stopped is None:
            while min(windows.values()) >= len(chunk) and sent < max_bytes:
                if not conn.send(frame(DATA, 0, 1, chunk)):
                    stopped = f"send failed: {conn.send_failed}"
                    return reopened_now
                windows[0] -= len(chunk)
                windows[1] -= len(chunk)
                sent += len(chunk)
                messages += 1
            if windows[1] < len(chunk):
                was_blocked = True
            f = conn.next_frame(min(until, time.monotonic() + 0.1))
            if f is None and conn.ended:
                stopped = f"connection {conn.ended}"
            elif f is not None and f.kind == WINDOW_UPDATE and f.stream_id in windows:
                windows[f.stream_id] += struct.unpack(">I", f.payload)[0] & 0x7FFFFFFF
                reopened_now = reopened_now or (f.stream_id == 1 and was_blocked)
            elif f is not None and (f.kind == GOAWAY or f.kind == RST_STREAM and f.stream_id == 1):
                stopped = str(f)
        return reopened_now

    pump(time.monotonic() + 1.5, 256 * MiB)         # the handler is asleep
    held, growth = sent, t.rss_kib() - start
    expect(stopped is None, f"the server ended the stream instead of applying flow control: {stopped}")
    expect(held <= stream_window + len(chunk) + len(first),
           f"the server accepted {held >> 10} KiB for a handler that had read one message")
    expect(growth < 64 << 10, f"server RSS grew {growth} KiB while the handler was not reading")
    reopened = pump(time.monotonic() + 3, held + 2 * MiB)   # the handler wakes and catches up
    expect(stopped is None, f"stream ended: {stopped}")
    expect(reopened, "the stream window never reopened after the handler caught up")
    conn.send(frame(DATA, END_STREAM, 1, b""))
    end = conn.read_until(lambda f: f.stream_id == 1 and (f.kind == RST_STREAM or f.flags & END_STREAM)
                          or f.kind == GOAWAY)
    trailers = dict(end.headers) if end is not None and end.kind == HEADERS else {}
    expect(trailers.get("grpc-status") == "0", f"Chat did not complete: {end}")
    body = b"".join(f.payload for f in conn.frames if f.stream_id == 1 and f.kind == DATA)
    answered = len(grpc_messages(body))
    expect(answered == messages, f"{messages} messages sent, {answered} answered")
    conn.close()
    return (f"window closed after {held >> 10} KiB unread (RSS +{growth} KiB), reopened as the handler "
            f"read; all {messages} messages answered")


@case()
def length_prefix_announcing_4gib(t):
    conn = RawConnection(t)
    start = t.rss_kib() if t.pid else None
    conn.send_headers(1, request_headers(t))
    conn.send(frame(DATA, 0, 1, b"\x00\xff\xff\xff\xff" + b"\x0a" * 64))   # no END_STREAM: we "keep sending"
    described = expect_grpc_status(conn, 1, GRPC_RESOURCE_EXHAUSTED, reset_after=ERR["NO_ERROR"])
    if start is not None:
        growth = t.rss_kib() - start
        expect(growth < 16 << 10, f"server RSS grew {growth} KiB")
        described += f"; RSS growth {growth} KiB"
    conn.close()
    return described


@case()
def bad_text_in_string_fields(t):
    # EchoRequest.text (field 2) as bytes that are not UTF-8, then holding U+0000: the
    # client's mistake, INVALID_ARGUMENT naming the field; bytes that are not protobuf at
    # all stay INTERNAL, as stock servers answer.
    conn = RawConnection(t)
    described = []
    for stream_id, body in ((1, b"\x12\x02\xc3\x28"), (3, b"\x12\x03a\x00b")):
        conn.send_headers(stream_id, request_headers(t))
        conn.send(frame(DATA, END_STREAM, stream_id, b"\x00" + struct.pack(">I", len(body)) + body))
        described.append(expect_grpc_status(conn, stream_id, GRPC_INVALID_ARGUMENT))
    conn.send_headers(5, request_headers(t))
    conn.send(frame(DATA, END_STREAM, 5, b"\x00\x00\x00\x00\x03\x0f\xff\xff"))
    expect_grpc_status(conn, 5, GRPC_INTERNAL)
    conn.close()
    for message, wanted in zip(described, ("not valid UTF-8", "U+0000")):
        expect(".text" in message and wanted in message, f"message does not name the field and fault: {message}")
    return "; ".join(described) + "; non-protobuf bytes still INTERNAL"


@case()
def truncated_message(t):
    conn = RawConnection(t)
    # A prefix announcing 100 bytes, 10 of them, END_STREAM.
    conn.send_headers(1, request_headers(t))
    conn.send(frame(DATA, END_STREAM, 1, b"\x00\x00\x00\x00\x64" + b"\x0a" * 10))
    described = expect_grpc_status(conn, 1, GRPC_INTERNAL)
    # Three bytes of a prefix, END_STREAM.
    conn.send_headers(3, request_headers(t))
    conn.send(frame(DATA, END_STREAM, 3, b"\x00\x00\x00"))
    expect_grpc_status(conn, 3, GRPC_INTERNAL)
    conn.close()
    return described + " (and for a truncated prefix)"


@case()
def stream_id_reused(t):
    conn = RawConnection(t)
    conn.send_headers(1, request_headers(t))
    conn.send_message(1, echo_request(payload=b"one"))
    expect_grpc_status(conn, 1, GRPC_OK)
    conn.send_headers(1, request_headers(t))
    conn.send_message(1, echo_request(payload=b"again"))
    # HEADERS on a stream that is closed: RFC 9113 5.1 makes it a connection error of type
    # STREAM_CLOSED, which nghttp2 answers while it still remembers the stream (its last
    # max-concurrent-streams closed ones); an older id is treated as going backwards (below).
    return expect_goaway(conn, ERR["STREAM_CLOSED"])


@case()
def stream_id_going_backwards(t):
    conn = RawConnection(t)
    conn.send_headers(5, request_headers(t))
    conn.send_headers(3, request_headers(t))
    # RFC 9113 5.1.1 calls for PROTOCOL_ERROR here, but a server cannot tell a skipped id
    # from a stream it closed and forgot, whose late trailers are legitimate; nghttp2 (see
    # nghttp2_session_on_request_headers_received) ignores such a header block instead: it
    # decodes it for HPACK and creates no stream. Prove exactly that: nothing answers stream
    # 3, and streams 5 and 7 on the same connection are served.
    conn.send_message(5, echo_request(payload=b"five"))
    expect_grpc_status(conn, 5, GRPC_OK)
    conn.send_headers(7, request_headers(t))
    conn.send_message(7, echo_request(payload=b"seven"))
    expect_grpc_status(conn, 7, GRPC_OK)
    expect(not any(f.stream_id == 3 for f in conn.frames), "the server answered stream 3")
    expect(conn.goaway() is None, f"unexpected {conn.goaway()}")
    conn.close()
    return "HEADERS on stream 3 after stream 5 ignored (no stream, no answer); streams 5 and 7 served"


@case()
def even_stream_id_from_client(t):
    conn = RawConnection(t)
    conn.send_headers(2, request_headers(t))
    return expect_goaway(conn, ERR["PROTOCOL_ERROR"])


@case()
def request_without_path(t):
    conn = RawConnection(t)
    conn.send_headers(1, [h for h in request_headers(t) if h[0] != ":path"], end_stream=True)
    return expect_stream_reset(conn, 1, ERR["PROTOCOL_ERROR"])


@case()
def get_instead_of_post(t):
    conn = RawConnection(t)
    conn.send_headers(1, request_headers(t, method="GET"), end_stream=True)
    return expect_http_status(conn, 1, 405)


@case()
def wrong_content_type(t):
    conn = RawConnection(t)
    conn.send_headers(1, request_headers(t, content_type="application/json"))
    conn.send(frame(DATA, END_STREAM, 1, b"{}"))
    return expect_http_status(conn, 1, 415)


@case()
def malformed_and_unknown_method_paths(t):
    conn = RawConnection(t)
    conn.send_headers(1, request_headers(t, path="/not-a-grpc-path"), end_stream=True)
    described = expect_grpc_status(conn, 1, GRPC_UNIMPLEMENTED)
    conn.send_headers(3, request_headers(t, path="/tether.testing.v1.EchoService/NoSuchMethod"))
    conn.send_message(3, echo_request(payload=b"x"))
    expect_grpc_status(conn, 3, GRPC_UNIMPLEMENTED)
    conn.close()
    return described + "; an unknown method also gets UNIMPLEMENTED"


# MARK: - Runner


class CaseTimeout(Exception):
    pass


def on_alarm(signum, frame_):
    raise CaseTimeout(f"case still running after {CASE_SECONDS}s")


def run_case(name, fn, target):
    bystander = WellBehavedClient(target)
    bystander.echo(b"before " + name.encode())
    observed = fn(target)
    expect(target.alive(), "server process died")
    bystander.echo(b"after " + name.encode())     # the attack did not take other connections down
    bystander.close()
    fresh = WellBehavedClient(target)              # and the server still accepts new ones
    fresh.echo(b"fresh " + name.encode())
    fresh.close()
    return observed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address", nargs="?", help="HOST:PORT of the server")
    parser.add_argument("cases", nargs="*", help="case names (default: all for the transport)")
    parser.add_argument("--tls", action="store_true", help="the server speaks TLS (ALPN h2)")
    parser.add_argument("--ca", help="CA file that signed the server's certificate (with --tls)")
    parser.add_argument("--server-pid", type=int, help="the server's process id, to watch its memory")
    parser.add_argument("--list", action="store_true", help="print the case names for the transport and exit")
    args = parser.parse_intermixed_args()

    available = [(name, fn) for name, transport, fn in CASES
                 if transport == "any" or transport == ("tls" if args.tls else "h2c")]
    if args.list:
        print("\n".join(name for name, _ in available))
        return 0
    if not args.address:
        parser.error("ADDRESS is required")
    chosen = available
    if args.cases:
        unknown = set(args.cases) - {name for name, _ in available}
        if unknown:
            parser.error(f"unknown case(s) for this transport: {', '.join(sorted(unknown))}")
        chosen = [(name, fn) for name, fn in available if name in args.cases]

    target = Target(args)
    signal.signal(signal.SIGALRM, on_alarm)
    # Started from a test's helper thread, we inherit its blocked signal mask: without
    # this the alarm above never fires.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
    passed = failed = 0
    for name, fn in chosen:
        start = time.monotonic()
        signal.alarm(CASE_SECONDS)
        try:
            observed = run_case(name, fn, target)
            signal.alarm(0)
            passed += 1
            print(f"ok     {name}: {observed} [{time.monotonic() - start:.1f}s]", flush=True)
        except Exception as error:   # noqa: BLE001 - every failure is reported, then the next case runs
            signal.alarm(0)
            failed += 1
            print(f"FAILED {name}: {type(error).__name__}: {error} [{time.monotonic() - start:.1f}s]", flush=True)
            if not isinstance(error, (AssertionError, CaseTimeout)):
                traceback.print_exc(file=sys.stdout)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
