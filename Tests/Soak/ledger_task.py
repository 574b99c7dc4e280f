"""The chaos soak's task (Scripts/soak): one execution of one task attempt.

Run by a real `tether agent` as an entrypoint (argv [python3, -S, this file]), it appends
JSON lines to its agent's ledger (SOAK_LEDGER, O_APPEND, one write per line):

  {"k": "start", "t": NS, "run", "task", "attempt", "lease", "agent", "pid", "overlap", "holder"}
  {"k": "beat",  "t": NS, "lease"}            every SOAK_BEAT_MS while it runs
  {"k": "end",   "t": NS, "lease", "exit"}    just before it exits with that code

t is CLOCK_BOOTTIME in nanoseconds: every agent of the soak runs on this machine (network
namespaces do not change it), so stamps compare across agents, and a stopped or starved
agent cannot skew it. An execution killed by SIGKILL (its lease keeper, its agent's death)
has no end: its last beat bounds how long it is known to have run.

Besides the stamps, each execution takes an exclusive flock on SOAK_LOCKS/RUN~TASK for its
whole life: the kernel drops it only when the process is gone, so a start that finds the
lock held proves two executions of one task alive at once ("overlap": true, with the
holder's lease), however short the overlap.

SOAK_MIN_MS..SOAK_MAX_MS: how long it runs; SOAK_FAIL_PCT: the chance it exits 1 (retries).
Both are drawn from a generator seeded with the lease id, so a re-run of the soak's
analysis can tell what each execution meant to do.
"""

import fcntl
import json
import os
import random
import sys
import time

env = os.environ


def now():
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


ledger = os.open(env["SOAK_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def record(kind, **fields):
    line = json.dumps(dict(k=kind, t=now(), **fields), separators=(",", ":")) + "\n"
    os.write(ledger, line.encode())


run, task = env.get("TETHER_RUN_ID", "?"), env.get("TETHER_TASK_ID", "?")
lease = env.get("TETHER_LEASE_ID", "?")
lock_path = os.path.join(env["SOAK_LOCKS"], (run + "~" + task).replace("/", "_"))
lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    overlap, holder = False, ""
except BlockingIOError:
    overlap = True
    holder = os.pread(lock, 256, 0).decode(errors="replace").strip()
if not overlap:
    os.ftruncate(lock, 0)
    os.pwrite(lock, (lease + "\n").encode(), 0)

record("start", run=run, task=task, attempt=env.get("TETHER_ATTEMPT", "?"), lease=lease,
       agent=env.get("SOAK_AGENT", "?"), pid=os.getpid(), overlap=overlap, holder=holder)

rng = random.Random(lease)
seconds = rng.uniform(int(env.get("SOAK_MIN_MS", "100")), int(env.get("SOAK_MAX_MS", "1000"))) / 1000
fails = rng.uniform(0, 100) < float(env.get("SOAK_FAIL_PCT", "0"))
beat = int(env.get("SOAK_BEAT_MS", "200")) / 1000

deadline = time.monotonic() + seconds
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        break
    time.sleep(min(beat, left))
    record("beat", lease=lease)

code = 1 if fails else 0
record("end", lease=lease, exit=code)
os._exit(code)
