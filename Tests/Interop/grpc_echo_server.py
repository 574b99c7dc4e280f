"""A stock grpcio server for tether.testing.v1.EchoService, so our client can be
tested against a server that is not ours.

  grpc_echo_server.py [--tls-cert FILE --tls-key FILE]

Prints "listening on 127.0.0.1:PORT" once ready; runs until SIGTERM.
"""
import argparse
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

from grpc_interop import load  # same directory: compiles Protos/ with grpc_tools


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    mods = load()
    pb, pb_grpc = mods["echo_pb2"], mods["echo_pb2_grpc"]

    def behave(request, context):
        if request.delay_ms:
            deadline = time.monotonic() + request.delay_ms / 1000
            while time.monotonic() < deadline:
                if not context.is_active():
                    return False
                time.sleep(0.01)
        if request.fail_with_code:
            context.abort(grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == request.fail_with_code).value),
                          request.fail_with_message)
        return True

    def response(request, index, context):
        metadata = sorted(f"{k}={','.join(str(b) for b in v) if isinstance(v, bytes) else v}"
                          for k, v in context.invocation_metadata() if k.startswith("x-")) if index == 0 else []
        payload = b"a" * request.response_size if request.response_size else request.payload
        return pb.EchoResponse(payload=payload, text=request.text, index=index, metadata=metadata)

    class Echo(pb_grpc.EchoServiceServicer):
        def Echo(self, request, context):
            behave(request, context)
            return response(request, 0, context)

        def Expand(self, request, context):
            for i in range(request.repeat):
                if not behave(request, context):
                    return
                yield response(request, i, context)

        def Collect(self, requests, context):
            text, payload = "", b""
            for r in requests:
                behave(r, context)
                text += r.text
                payload += r.payload
            return response(pb.EchoRequest(text=text, payload=payload), 0, context)

        def Chat(self, requests, context):
            for i, r in enumerate(requests):
                behave(r, context)
                yield response(r, i, context)

    mib = 1 << 20
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", 4 * mib),
                                  ("grpc.max_send_message_length", 16 * mib)])
    pb_grpc.add_EchoServiceServicer_to_server(Echo(), server)
    if args.tls_cert:
        with open(args.tls_cert, "rb") as c, open(args.tls_key, "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # A parent spawning us from a dispatch worker thread passes its blocked signal mask on.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    while not stop.wait(0.2):  # a bare wait() would not wake for the signal handler
        pass
    server.stop(grace=1).wait()
    # Handler threads of calls the test abandoned may still be parked; don't join them.
    os._exit(0)


if __name__ == "__main__":
    main()
