#!/usr/bin/env python3
"""Opens many idle HTTP/2-over-TLS connections to one server and holds them, so the
transport benchmark can read the server's memory per idle connection.

Each connection: TLS with ALPN h2 (certificate verified), the HTTP/2 preface and an
empty SETTINGS frame, then nothing but answers: SETTINGS and PING get their ACKs,
as any live but idle client would send. No streams are opened.

    idle-connections.py HOST PORT COUNT --ca PEM [--server-name NAME] [--timeout S]

Prints "connected N failed F" on stdout once every connection is set up (or has
failed), then holds them until SIGTERM or SIGINT. Errors go to stderr.
"""
import argparse
import asyncio
import resource
import signal
import ssl
import struct
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, GOAWAY = 0x4, 0x6, 0x7
ACK = 0x1


def frame(kind, flags, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + b"\0\0\0\0" + payload


async def hold(host, port, context, server_name, ready, handshakes):
    """Connects, completes the HTTP/2 set-up (resolving `ready`), then answers frames."""
    async with handshakes:
        reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=server_name)
        if writer.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
            raise RuntimeError("server did not select ALPN h2")
        writer.write(PREFACE + frame(SETTINGS, 0))
    try:
        while True:
            header = await reader.readexactly(9)
            length = int.from_bytes(header[:3], "big")
            kind, flags = header[3], header[4]
            payload = await reader.readexactly(length)
            if kind == SETTINGS and not flags & ACK:
                writer.write(frame(SETTINGS, ACK))
                if not ready.done():
                    ready.set_result(True)
            elif kind == PING and not flags & ACK:
                writer.write(frame(PING, ACK, payload))
            elif kind == GOAWAY:
                raise RuntimeError("server sent GOAWAY")
    except Exception as error:
        if not ready.done():
            ready.set_exception(error)
        else:
            print(f"idle-connections: a set-up connection ended: {error!r}", file=sys.stderr)
        writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--server-name", default="localhost")
    parser.add_argument("--timeout", type=float, default=120, help="give up setting up after this many seconds")
    args = parser.parse_args()

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    context = ssl.create_default_context(cafile=args.ca)
    context.set_alpn_protocols(["h2"])

    loop = asyncio.get_running_loop()
    handshakes = asyncio.Semaphore(64)
    readies = [loop.create_future() for _ in range(args.count)]
    tasks = [asyncio.create_task(hold(args.host, args.port, context, args.server_name, ready, handshakes))
             for ready in readies]
    # A task that fails before set-up (refused, TLS error) reports through its future.
    for task, ready in zip(tasks, readies):
        task.add_done_callback(lambda t, r=ready: r.done() or r.set_exception(
            t.exception() or RuntimeError("connection closed during set-up")))
    results = await asyncio.wait_for(asyncio.gather(*readies, return_exceptions=True), args.timeout)
    failures = [r for r in results if isinstance(r, BaseException)]
    for error in sorted({repr(f) for f in failures})[:5]:
        print(f"idle-connections: failed: {error}", file=sys.stderr)
    print(f"connected {len(results) - len(failures)} failed {len(failures)}", flush=True)

    stop = asyncio.Event()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop_signal, stop.set)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
