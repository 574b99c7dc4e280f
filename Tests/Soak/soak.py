"""The chaos soak behind Scripts/soak: real `tether server` and `tether agent` processes
under faults, then a check of what the server recorded against what the tasks did.

  soak.py --tether BIN --out DIR [--agents N] [--slots N] [--swarms K] [--swarm-agents N]
          [--lease-ttl S] [--seed N] MINUTES
  soak.py --analyze DIR      the report again, from a finished soak's DIR

Besides the `tether agent` processes, --swarms processes (`tether-torture swarm`) each run
--swarm-agents real agents (the agent library's own code, one connection and one Connect
stream each, sharing the process's threads and lease keeper): hundreds of agents on a
small machine. Swarm agents serve the `swarm` queue, which only a third DAG (soak_wide, a
wide fan-out) uses, and `default`; each has its own token, state dir and ledger like any
agent. Half the swarms (at least one) run in network namespaces.

For MINUTES it triggers runs of the DAGs at a steady rate while injecting faults, one at a
time at random moments, each bounded in time: an agent SIGKILLed (and started again), an
agent SIGSTOPped for longer than the lease TTL (then SIGCONT), the same for a whole swarm
process and all its agents (a region dying, a host hanging), the server SIGKILLed and
restarted on its data dir and port, the network between a namespace of agents and the
server cut for longer than the TTL (link down, or every packet dropped), and the server's
wall clock stepped by +/-1 h (live, or across a restart; see Tests/Soak/wallclock_step.c
for why not libfaketime). Then it stops
triggering, heals every fault, waits for every run to finish, and compares the server's
runs and attempts (GetRun, via `tether run show --json`) with the ledgers the tasks wrote
(Tests/Soak/ledger_task.py). It prints a report, writes DIR/report.json, and exits 1 if an
event was lost or applied twice, two executions of a task overlapped, or a run never
finished.

Everything it creates is its own: processes (stopped on exit, whatever the exit), network
namespaces and veth pairs named after its pid, an address on lo and one unreachable route
(removed on exit; a later soak removes what a killed one left). Every loop is bounded.
"""

import argparse
import collections
import concurrent.futures
import ctypes
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TASK_SCRIPT = os.path.join(HERE, "ledger_task.py")
CLOCK_SHIM_SOURCE = os.path.join(HERE, "wallclock_step.c")
ADMIN_SECRET_BYTES = 24
FAULT_KINDS = ("agent_kill", "agent_stop", "swarm_kill", "swarm_stop", "server_kill", "net_cut", "clock")
MUST_BE_ZERO = ("events_lost", "events_applied_twice", "overlapping_executions", "runs_unfinished")


def boot_ns():
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


class SoakError(Exception):
    pass


# --- the network: namespaces and veth pairs, all named after this process ---------------

def ip(*args, check=True, netns=None):
    command = ["ip"] + (["-n", netns] if netns else []) + list(args)
    result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise SoakError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result


def tc(*args, netns=None, check=True):
    command = (["ip", "netns", "exec", netns] if netns else []) + ["tc"] + list(args)
    result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise SoakError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result


def address_block(pid):
    return pid % 250 + 1


def remove_network(pid, namespaces):
    """Deletes the namespaces, veths, lo address and route a soak with this pid made."""
    block = address_block(pid)
    for name in namespaces:
        ip("netns", "del", name, check=False)
    links = ip("-o", "link", "show", check=False).stdout
    for host_end in re.findall(rf"^\d+: (tsk{pid}h\d+)[@:]", links, re.M):
        ip("link", "del", host_end, check=False)
    ip("addr", "del", f"10.77.{block}.1/32", "dev", "lo", check=False)
    ip("route", "del", "unreachable", f"10.78.{block}.0/24", "metric", "4000", check=False)


def remove_stale_networks():
    """Removes what soaks that were killed (SIGKILL skips their cleanup) left behind."""
    listing = ip("netns", "list", check=False).stdout
    stale = collections.defaultdict(list)
    for name, pid in re.findall(r"^(tsoak(\d+)-\d+)", listing, re.M):
        if not os.path.exists(f"/proc/{pid}"):
            stale[int(pid)].append(name)
    for pid, names in stale.items():
        log(f"removing network namespaces left by soak pid {pid}: {' '.join(names)}")
        remove_network(pid, names)


class Network:
    """The server's address on lo and COUNT namespaces, each reaching it over a veth pair."""

    def __init__(self, count):
        self.pid = os.getpid()
        self.block = address_block(self.pid)
        self.server_address = f"10.77.{self.block}.1"
        self.namespaces = []  # [{"name", "host_end", "ns_end"}]
        try:
            ip("addr", "add", f"{self.server_address}/32", "dev", "lo")
            # With a host end down, replies to its namespace must not follow the default route out.
            ip("route", "add", "unreachable", f"10.78.{self.block}.0/24", "metric", "4000")
            for i in range(count):
                name, host_end, ns_end = f"tsoak{self.pid}-{i}", f"tsk{self.pid}h{i}", f"tsk{self.pid}n{i}"
                ip("netns", "add", name)
                self.namespaces.append({"name": name, "host_end": host_end, "ns_end": ns_end})
                ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end, "netns", name)
                ip("addr", "add", f"10.78.{self.block}.{4 * i + 1}/30", "dev", host_end)
                ip("link", "set", host_end, "up")
                ip("addr", "add", f"10.78.{self.block}.{4 * i + 2}/30", "dev", ns_end, netns=name)
                ip("link", "set", ns_end, "up", netns=name)
                ip("link", "set", "lo", "up", netns=name)
                ip("route", "add", "default", "via", f"10.78.{self.block}.{4 * i + 1}", netns=name)
        except Exception:
            self.remove()
            raise

    def cut(self, index, method):
        ns = self.namespaces[index]
        if method == "link-down":
            ip("link", "set", ns["host_end"], "down")
        else:  # drop: a FIFO that holds no packet drops every one, both ways, silently
            tc("qdisc", "add", "dev", ns["host_end"], "root", "pfifo", "limit", "0")
            tc("qdisc", "add", "dev", ns["ns_end"], "root", "pfifo", "limit", "0", netns=ns["name"])

    def heal(self, index, method):
        ns = self.namespaces[index]
        if method == "link-down":
            ip("link", "set", ns["host_end"], "up")
        else:
            tc("qdisc", "del", "dev", ns["host_end"], "root", check=False)
            tc("qdisc", "del", "dev", ns["ns_end"], "root", netns=ns["name"], check=False)

    def remove(self):
        remove_network(self.pid, [ns["name"] for ns in self.namespaces])


# --- output ------------------------------------------------------------------------------

START = time.monotonic()


def log(message):
    print(f"soak +{time.monotonic() - START:7.1f}s: {message}", file=sys.stderr, flush=True)


# --- the soak ----------------------------------------------------------------------------

class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.out = os.path.abspath(args.out)
        self.ttl = args.lease_ttl
        self.tether = os.path.abspath(args.tether)
        self.torture = os.path.abspath(args.torture or os.path.join(os.path.dirname(self.tether), "tether-torture"))
        self.children = []  # every Popen started, for the exit
        self.network = None
        self.server = None
        self.server_log = os.path.join(self.out, "server.log")
        self.incarnations = []  # {"n", "pid", "start_ns", "offset_s", "end_ns", "end"}
        self.offset_s = 0  # the server's wall clock offset (Tests/Soak/wallclock_step.c)
        # The agent processes: `tether agent`s by agent name and swarms by swarm name, each
        # {"proc", "netns": index or None, "state": up|killed|stopped, "cut": bool,
        #  "members": the names of the agents it runs}.
        self.agents = {}
        self.swarms = {}
        self.faults = []  # {"kind", "target", "agents": [...] or ["*"], "start_ns", "end_ns", ...}
        self.pending = []  # [(monotonic time, description, callable)] heals and restarts
        self.rss = []  # [boot_ns, incarnation, kib]
        self.triggers = collections.Counter()
        self.trigger_failures = collections.Counter()
        self.stop_triggering = threading.Event()
        self.clock_shim = os.path.join(self.out, "wallclock_step.so")
        self.use_clock_shim = False
        self.clock_file = os.path.join(self.out, "wallclock-offset")
        self.admin = os.urandom(ADMIN_SECRET_BYTES).hex()

    # -- processes --

    def spawn(self, argv, log_path, env=None):
        out = open(log_path, "ab")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=die_with_parent)
        out.close()
        self.children.append(proc)
        return proc

    def stop_all(self):
        """Stops every process started, agents first while the server can still take
        their last events (an agent told to stop keeps trying to deliver them): SIGINT for
        agents (SIGTERM would drain, letting tasks finish), then SIGTERM for the rest, and
        SIGKILL for whatever is left 8 s after each signal."""
        agents = [p for p in self.children if "agent" in p.args or "swarm" in p.args]
        for group, sig in ((agents, signal.SIGINT), ([p for p in self.children if p not in agents], signal.SIGTERM)):
            for proc in group:
                if proc.poll() is None:
                    try:
                        os.kill(proc.pid, signal.SIGCONT)
                        os.kill(proc.pid, sig)
                    except ProcessLookupError:
                        pass
            deadline = time.monotonic() + 8
            for proc in group:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log(f"pid {proc.pid} ({' '.join(proc.args[:2])}) still there 8 s after {sig.name}: SIGKILL")
                    proc.kill()
                    proc.wait(timeout=10)

    def cli(self, *args, timeout=30):
        env = dict(os.environ, TETHER_SERVER=self.url, TETHER_TOKEN=self.admin, HOME=self.out)
        return subprocess.run([self.tether] + list(args), capture_output=True, text=True, env=env, timeout=timeout)

    # -- set-up --

    def setup(self):
        os.makedirs(self.out, exist_ok=True)
        os.makedirs(os.path.join(self.out, "locks"), exist_ok=True)
        with open(os.path.join(self.out, "admin.token"), "w") as f:
            f.write(self.admin)
        with open(self.clock_file, "w") as f:
            f.write("0\n")
        self.in_namespaces = 0
        if self.args.netns and os.geteuid() == 0 and shutil.which("ip"):
            remove_stale_networks()
            count = 2 if self.args.agents >= 6 else 1
            self.network = Network(count)
            self.in_namespaces = min(self.args.agents, max(1, self.args.agents // 3))
            address = self.network.server_address
        else:
            log("no network namespaces (needs root and iproute2, or --no-netns): network cuts are skipped")
            address = "127.0.0.1"
        self.use_clock_shim = self.build_clock_shim()
        self.port = free_port(address)
        self.address = address
        self.url = f"http://{address}:{self.port}"
        self.start_server()
        self.apply_dags()
        for i in range(self.args.agents):
            name = f"a{i:02d}"
            netns = None
            if self.network and i >= self.args.agents - self.in_namespaces:
                netns = i % len(self.network.namespaces)
            self.agents[name] = {"proc": None, "netns": netns, "state": "up", "cut": False, "members": [name]}
        width = len(str(self.args.swarm_agents - 1))
        swarms_in_namespaces = max(1, self.args.swarms // 2) if self.network else 0
        for k in range(self.args.swarms):
            name = f"s{k}"
            netns = k % len(self.network.namespaces) if k < swarms_in_namespaces else None
            # Agent i of every swarm sorts beside agent i of the others: the dispatcher breaks
            # ties by the lowest name, so this spreads work over every swarm, not the first.
            members = [f"w{str(i).zfill(width)}.{name}" for i in range(self.args.swarm_agents)]
            self.swarms[name] = {"proc": None, "netns": netns, "state": "up", "cut": False, "members": members}
            if netns is not None:
                self.in_namespaces += len(members)
        names = [n for unit in self.units() for n in unit["members"]]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # one `tether token create` each
            list(pool.map(self.create_token, names))
        for name in self.agents:
            self.write_agent_config(name)
            self.start_agent(name)
        for name in self.swarms:
            self.write_swarm_config(name)
            self.start_swarm(name)
        self.wait_for_agents(60 + len(names) // 10)

    def units(self):
        """Every agent process: the `tether agent`s, then the swarms."""
        return list(self.agents.values()) + list(self.swarms.values())

    def build_clock_shim(self):
        """The wall-clock step preload (Tests/Soak/wallclock_step.c), built for this soak."""
        compiler = shutil.which("cc") or shutil.which("clang")
        if compiler:
            result = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", self.clock_shim, CLOCK_SHIM_SOURCE, "-ldl"],
                                    capture_output=True, text=True, timeout=120)
            if result.returncode == 0:
                return True
            log(f"building {CLOCK_SHIM_SOURCE} failed: {result.stderr.strip()}")
        log("no C compiler for the wall-clock shim: clock steps are skipped")
        return False

    def start_server(self):
        env = dict(os.environ)
        if self.use_clock_shim:
            # Only CLOCK_REALTIME moves: the offset is read from the file (every 100 ms),
            # so writing it steps the live server's wall clock.
            env.update(LD_PRELOAD=self.clock_shim, SOAK_WALLCLOCK_FILE=self.clock_file)
        argv = [self.tether, "server", "--listen", f"{self.address}:{self.port}",
                "--data-dir", os.path.join(self.out, "server"), "--insecure-plaintext",
                "--bootstrap-token-file", os.path.join(self.out, "admin.token"), "--lease-ttl", str(self.ttl)]
        for attempt in range(20):  # the port may be in TIME_WAIT trouble for a moment, the lock not yet free
            offset = os.path.getsize(self.server_log) if os.path.exists(self.server_log) else 0
            start = boot_ns()
            proc = self.spawn(argv, self.server_log, env)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with open(self.server_log, "rb") as f:
                    f.seek(offset)
                    if b"listening on" in f.read():
                        self.server = proc
                        self.incarnations.append({"n": len(self.incarnations) + 1, "pid": proc.pid, "start_ns": start,
                                                  "offset_s": self.offset_s, "end_ns": None, "end": None})
                        return
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                raise SoakError(f"tether server did not listen within 30 s; see {self.server_log}")
            log(f"tether server exited {proc.returncode} at start (try {attempt + 1}); trying again")
            time.sleep(0.5)
        raise SoakError(f"tether server would not start; see {self.server_log}")

    def end_incarnation(self, how):
        inc = self.incarnations[-1]
        inc["end_ns"], inc["end"] = boot_ns(), how

    def apply_dags(self):
        dags = {
            "soak_fan": """
                dag_id: soak_fan
                params: {seq: "0"}
                defaults: {retries: 2, retry_delay: 1s}
                tasks:
                  - {id: extract, entrypoint: quick}
                  - {id: part1, entrypoint: slow, depends_on: extract}
                  - {id: part2, entrypoint: quick, depends_on: extract}
                  - {id: part3, entrypoint: slow, depends_on: extract}
                  - {id: part4, entrypoint: quick, depends_on: extract}
                  - {id: load, entrypoint: quick, depends_on: [part1, part2, part3, part4], trigger_rule: all_done}
                """,
            "soak_chain": """
                dag_id: soak_chain
                params: {seq: "0"}
                defaults: {retries: 3, retry_delay: 500ms}
                tasks:
                  - {id: a, entrypoint: quick}
                  - {id: b, entrypoint: slow, depends_on: a}
                  - {id: c, entrypoint: quick, depends_on: b}
                  - {id: d, entrypoint: slow, depends_on: c}
                """,
        }
        if self.args.swarms:
            # Only swarm agents serve `swarm`: this DAG's tasks run on them, the others'
            # mostly on the `tether agent`s (which win the dispatcher's ties by name).
            tasks = [f"  - {{id: p{i:02d}, entrypoint: {'slow' if i % 4 == 0 else 'quick'}}}"
                     for i in range(1, self.args.wide_tasks + 1)]
            dags["soak_wide"] = "\n".join(" " * 16 + line for line in [
                "dag_id: soak_wide", 'params: {seq: "0"}', "defaults: {retries: 2, retry_delay: 1s, queue: swarm}",
                "tasks:"] + tasks)
        for dag, text in dags.items():
            path = os.path.join(self.out, f"{dag}.yaml")
            with open(path, "w") as f:
                f.write("\n".join(line[16:] for line in text.strip("\n").split("\n")) + "\n")
            result = self.cli("dag", "apply", path)
            if result.returncode != 0:
                raise SoakError(f"dag apply {path}: {result.stderr.strip()}")
        self.dag_ids = list(dags)

    def create_token(self, name):
        """An agent token bound to `name`, in agents/NAME/agent.token."""
        home = os.path.join(self.out, "agents", name)
        os.makedirs(home, exist_ok=True)
        result = self.cli("token", "create", "--role", "agent", "--agent-name", name, "--description", "soak agent")
        if result.returncode != 0:
            raise SoakError(f"token create for {name}: {result.stderr.strip()}")
        with open(os.path.join(home, "agent.token"), "w") as f:
            f.write(result.stdout.strip())

    def agent_config(self, name, queues, slots):
        """A `tether agent` config; with name "{name}", a swarm's template for all its agents."""
        home = os.path.join(self.out, "agents", name)
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")

        def entrypoint(min_ms, max_ms):
            env = {"SOAK_LEDGER": os.path.join(home, "ledger.jsonl"), "SOAK_LOCKS": os.path.join(self.out, "locks"),
                   "SOAK_AGENT": name, "SOAK_MIN_MS": min_ms, "SOAK_MAX_MS": max_ms,
                   "SOAK_FAIL_PCT": str(self.args.fail_pct), "SOAK_BEAT_MS": "200"}
            return json.dumps({"argv": [python, "-S", TASK_SCRIPT], "env": env})

        return f"""\
server: {self.url}
insecure_plaintext: true
token_file: {home}/agent.token
name: {name}
queues: [{", ".join(queues)}]
slots: {slots}
log_dir: {home}/logs
state_dir: {home}/state
kill_grace: 1s
entrypoints:
  quick: {entrypoint("100", "1500")}
  slow: {entrypoint("1000", str(2000 * self.ttl))}
"""

    def write_agent_config(self, name):
        with open(os.path.join(self.out, "agents", name, "agent.yaml"), "w") as f:
            f.write(self.agent_config(name, ["default"], self.args.slots))

    def write_swarm_config(self, name):
        os.makedirs(os.path.join(self.out, "swarms"), exist_ok=True)
        with open(os.path.join(self.out, "swarms", f"{name}.yaml"), "w") as f:
            f.write(self.agent_config("{name}", ["default", "swarm"], self.args.swarm_slots))

    def start_agent(self, name):
        agent = self.agents[name]
        home = os.path.join(self.out, "agents", name)
        argv = [self.tether, "agent", "--config", os.path.join(home, "agent.yaml")]
        if agent["netns"] is not None:
            argv = ["ip", "netns", "exec", self.network.namespaces[agent["netns"]]["name"]] + argv
        agent["proc"] = self.spawn(argv, os.path.join(home, "agent.log"))
        agent["state"] = "up"

    def start_swarm(self, name):
        swarm = self.swarms[name]
        argv = [self.torture, "swarm", "--config", os.path.join(self.out, "swarms", f"{name}.yaml"),
                "--agents", str(len(swarm["members"])), "--names", "w{i}." + name]
        if swarm["netns"] is not None:
            argv = ["ip", "netns", "exec", self.network.namespaces[swarm["netns"]]["name"]] + argv
        swarm["proc"] = self.spawn(argv, os.path.join(self.out, "swarms", f"{name}.log"))
        swarm["state"] = "up"

    def wait_for_agents(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            result = self.cli("agents", "--json", timeout=15)
            if result.returncode == 0:
                connected = set(re.findall(r'"name":\s*"([^"]+)"', result.stdout))
                expected = {n for unit in self.units() for n in unit["members"]}
                if connected >= expected:  # `connected` also holds metric names
                    log(f"{len(expected)} agents connected ({len(self.agents)} tether agent processes, "
                        f"{len(self.swarms)} swarms)")
                    return
            time.sleep(0.5)
        raise SoakError(f"not every agent connected within {seconds} s: {result.stdout[:500]} {result.stderr[:500]}")

    # -- load --

    def trigger_loop(self, interval):
        seq = 0
        while not self.stop_triggering.is_set():
            began = time.monotonic()
            dag = self.dag_ids[seq % len(self.dag_ids)]
            seq += 1
            try:
                result = self.cli("run", "trigger", dag, "--param", f"seq={seq}", timeout=20)
                if result.returncode == 0:
                    self.triggers[dag] += 1
                else:
                    self.trigger_failures[f"exit {result.returncode}"] += 1
            except subprocess.TimeoutExpired:
                self.trigger_failures["timeout"] += 1
            self.stop_triggering.wait(max(0.0, interval - (time.monotonic() - began)))

    # -- faults --

    def later(self, seconds, description, action):
        self.pending.append((time.monotonic() + seconds, description, action))

    def run_due(self, everything=False):
        now = time.monotonic()
        due = sorted((p for p in self.pending if everything or p[0] <= now), key=lambda p: p[0])
        self.pending = [p for p in self.pending if p not in due]
        for _, description, action in due:
            log(description)
            action()

    def faulted_agents(self):
        return {n for unit in self.units() if unit["state"] != "up" or unit["cut"] for n in unit["members"]}

    def pick(self, processes):
        """A healthy process of `processes` (agents or swarms) to fault, unless a third of
        them are faulted already."""
        busy = {n for n, p in processes.items() if p["state"] != "up" or p["cut"]}
        if len(busy) >= max(1, len(processes) // 3):
            return None
        free = sorted(set(processes) - busy)
        return self.rng.choice(free) if free else None

    def record_fault(self, kind, target, agents, **extra):
        fault = dict(kind=kind, target=target, agents=agents, start_ns=boot_ns(), end_ns=None, **extra)
        self.faults.append(fault)
        return fault

    def heal_fault(self, fault):
        fault["end_ns"] = boot_ns()

    def fault_kill(self, kind, processes, start):
        """SIGKILL an agent process (a swarm: all its agents at once), started again later."""
        name = self.pick(processes)
        if not name:
            return False
        process = processes[name]
        down = self.rng.uniform(0.5, 2 * self.ttl)
        fault = self.record_fault(kind, name, process["members"], down_s=round(down, 1))
        os.kill(process["proc"].pid, signal.SIGKILL)
        process["proc"].wait()
        process["state"] = "killed"
        log(f"fault: SIGKILL {kind.split('_')[0]} {name}; back in {down:.1f} s")

        def restart():
            start(name)
            self.heal_fault(fault)
        self.later(down, f"heal: start {kind.split('_')[0]} {name} again", restart)
        return True

    def fault_stop(self, kind, processes):
        """SIGSTOP an agent process for longer than the lease TTL, then SIGCONT."""
        name = self.pick(processes)
        if not name:
            return False
        process = processes[name]
        stopped = self.rng.uniform(self.ttl + 1, 2 * self.ttl + 3)
        fault = self.record_fault(kind, name, process["members"], stopped_s=round(stopped, 1))
        os.kill(process["proc"].pid, signal.SIGSTOP)
        process["state"] = "stopped"
        log(f"fault: SIGSTOP {kind.split('_')[0]} {name} for {stopped:.1f} s (lease TTL {self.ttl} s)")

        def resume():
            os.kill(process["proc"].pid, signal.SIGCONT)
            process["state"] = "up"
            self.heal_fault(fault)
        self.later(stopped, f"heal: SIGCONT {kind.split('_')[0]} {name}", resume)
        return True

    def fault_server_kill(self, reason="server_kill", new_offset=None):
        down = self.rng.uniform(0, 3)
        fault = self.record_fault(reason, "server", ["*"], down_s=round(down, 1))
        os.kill(self.server.pid, signal.SIGKILL)
        self.server.wait()
        self.end_incarnation("SIGKILL")
        self.server = None
        if new_offset is not None:
            self.set_clock(new_offset)
            fault["offset_s"] = new_offset
        log(f"fault: SIGKILL server; back in {down:.1f} s" + (f" with its wall clock at {new_offset:+d} s" if new_offset is not None else ""))

        def restart():
            self.start_server()
            self.heal_fault(fault)
        self.later(down, "heal: start server again on its data dir and port", restart)
        return True

    def set_clock(self, offset):
        self.offset_s = offset
        with open(self.clock_file + ".new", "w") as f:
            f.write(f"{offset}\n")
        os.replace(self.clock_file + ".new", self.clock_file)

    def fault_clock(self):
        if not self.use_clock_shim or self.server is None:
            return False
        new = self.rng.choice([o for o in (-3600, 0, 3600) if o != self.offset_s])
        if self.rng.random() < 0.5:
            self.record_fault("clock_step_live", "server", [], offset_s=new)["end_ns"] = boot_ns()
            self.set_clock(new)
            log(f"fault: the running server's wall clock steps to {new:+d} s")
            return True
        return self.fault_server_kill("clock_step_restart", new_offset=new)

    def fault_net_cut(self):
        if not self.network:
            return False
        free = [i for i, ns in enumerate(self.network.namespaces)
                if not any(u["cut"] for u in self.units() if u["netns"] == i)]
        if not free:
            return False
        index = self.rng.choice(free)
        inside = [u for u in self.units() if u["netns"] == index]
        members = sorted(n for u in inside for n in u["members"])
        everyone = sum(len(u["members"]) for u in self.units())
        if not members or len(self.faulted_agents() | set(members)) > max(len(members), everyone // 2):
            return False
        method = self.rng.choice(["link-down", "drop"])
        cut = self.rng.uniform(self.ttl + 1, 2 * self.ttl + 3)
        fault = self.record_fault("net_cut", self.network.namespaces[index]["name"], members, method=method,
                                  cut_s=round(cut, 1))
        self.network.cut(index, method)
        for u in inside:
            u["cut"] = True
        shown = " ".join(n for n, u in {**self.agents, **self.swarms}.items() if u["netns"] == index)
        log(f"fault: cut {self.network.namespaces[index]['name']} ({shown}; {len(members)} agents) by {method} for {cut:.1f} s")

        def heal():
            self.network.heal(index, method)
            for u in inside:
                u["cut"] = False
            self.heal_fault(fault)
        self.later(cut, f"heal: reconnect {self.network.namespaces[index]['name']}", heal)
        return True

    def inject(self, kind):
        if kind == "server_kill" and self.server is None:
            return False
        if kind in ("server_kill", "clock") and any(f["agents"] == ["*"] and f["end_ns"] is None for f in self.faults):
            return False
        return {"agent_kill": lambda: self.fault_kill(kind, self.agents, self.start_agent),
                "agent_stop": lambda: self.fault_stop(kind, self.agents),
                "swarm_kill": lambda: self.fault_kill(kind, self.swarms, self.start_swarm),
                "swarm_stop": lambda: self.fault_stop(kind, self.swarms),
                "server_kill": self.fault_server_kill, "net_cut": self.fault_net_cut, "clock": self.fault_clock}[kind]()

    # -- the run --

    def sample_rss(self):
        if self.server is None:
            return
        try:
            with open(f"/proc/{self.server.pid}/status") as f:
                kib = int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))
            self.rss.append([boot_ns(), self.incarnations[-1]["n"], kib])
        except (OSError, AttributeError):
            pass

    def soak(self):
        seconds = self.args.minutes * 60
        self.start_ns = boot_ns()
        kinds = [k for k in self.args.faults.split(",") if k != "net_cut" or self.network]
        kinds = [k for k in kinds if k != "clock" or self.use_clock_shim]
        kinds = [k for k in kinds if not k.startswith("agent_") or self.agents]
        kinds = [k for k in kinds if not k.startswith("swarm_") or self.swarms]
        # Every kind once, in a random order, before any repeats: a short soak still sees each.
        order = kinds[:]
        self.rng.shuffle(order)
        log(f"soaking for {seconds:.0f} s: {len(self.agents)} agents x {self.args.slots} slots and "
            f"{len(self.swarms)} swarms x {self.args.swarm_agents} agents x {self.args.swarm_slots} slots "
            f"({self.in_namespaces} agents in network namespaces), lease TTL {self.ttl} s, "
            f"a run every {self.args.trigger_interval} s, a fault every {self.args.fault_gap[0]}-{self.args.fault_gap[1]} s")
        trigger = threading.Thread(target=self.trigger_loop, args=(self.args.trigger_interval,), daemon=True)
        trigger.start()
        end = time.monotonic() + seconds
        next_fault = time.monotonic() + min(5, seconds / 6)
        next_sample = time.monotonic()
        while time.monotonic() < end:
            self.run_due()
            now = time.monotonic()
            if now >= next_sample:
                self.sample_rss()
                next_sample = now + self.args.rss_interval
            # No new fault that would outlast the soak by much: the drain starts healed.
            if now >= next_fault and end - now > 2 * self.ttl + 4:
                kind = order.pop(0) if order else self.rng.choice(kinds)
                if self.inject(kind):
                    next_fault = now + self.rng.uniform(*self.args.fault_gap)
                else:  # its target is busy (too many agents faulted, the server down): soon again
                    order.insert(0, kind)
                    next_fault = now + 1
            time.sleep(0.05)
        self.stop_triggering.set()
        trigger.join(timeout=30)
        self.end_ns = boot_ns()
        log(f"triggering stopped ({sum(self.triggers.values())} runs triggered, "
            f"{sum(self.trigger_failures.values())} triggers refused); healing every fault")
        self.run_due(everything=True)
        if self.server is None:
            self.start_server()

    def list_runs(self):
        runs = []
        for dag in self.dag_ids:
            result = self.cli("run", "list", "--dag", dag, "--limit", "1000", "--json")
            if result.returncode != 0:
                raise SoakError(f"run list: {result.stderr.strip()}")
            runs += json.loads(result.stdout).get("runs", [])
        return runs

    def drain(self):
        deadline = time.monotonic() + self.args.drain_seconds
        while True:
            self.sample_rss()
            try:
                runs = self.list_runs()
                open_runs = [r for r in runs if r.get("state") in ("RUN_STATE_QUEUED", "RUN_STATE_RUNNING")]
                if not open_runs:
                    log(f"drained: all {len(runs)} runs finished")
                    break
            except (SoakError, subprocess.TimeoutExpired) as error:
                log(f"run list failed while draining: {error}")
                open_runs = ["?"]
            if time.monotonic() > deadline:
                log(f"{len(open_runs)} runs still open after {self.args.drain_seconds} s of draining")
                break
            time.sleep(2)
        time.sleep(2)  # the last heartbeats: outboxes flush what waited

    def collect(self):
        runs = self.list_runs()
        os.makedirs(os.path.join(self.out, "runs"), exist_ok=True)
        shown = {}
        lock = threading.Lock()
        queue = [r["runId"] for r in runs]

        def worker():
            while True:
                with lock:
                    if not queue:
                        return
                    run_id = queue.pop()
                result = self.cli("run", "show", run_id, "--json")
                if result.returncode != 0:
                    raise SoakError(f"run show {run_id}: {result.stderr.strip()}")
                with lock:
                    shown[run_id] = json.loads(result.stdout)
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with open(os.path.join(self.out, "runs.json"), "w") as f:
            json.dump([shown[r["runId"]] for r in runs if r["runId"] in shown], f)
        self.end_incarnation("running at collection")
        state = {
            "minutes": self.args.minutes, "agents": len(self.agents), "slots": self.args.slots, "lease_ttl_s": self.ttl,
            "swarms": {n: sw["members"] for n, sw in self.swarms.items()}, "swarm_slots": self.args.swarm_slots,
            "seed": self.args.seed, "in_namespaces": self.in_namespaces, "wallclock_steps": self.use_clock_shim,
            "start_ns": self.start_ns, "end_ns": self.end_ns,
            "agent_netns": {n: u["netns"] for u in self.units() for n in u["members"]},
            "triggers": dict(self.triggers), "trigger_failures": dict(self.trigger_failures),
            "faults": self.faults, "incarnations": self.incarnations, "rss": self.rss,
        }
        with open(os.path.join(self.out, "soak.json"), "w") as f:
            json.dump(state, f)

    def cleanup(self):
        self.stop_triggering.set()
        for agent in self.units():
            if agent["proc"] is not None and agent["proc"].poll() is None:
                try:
                    os.kill(agent["proc"].pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        self.stop_all()
        if self.network:
            self.network.remove()
            self.network = None


LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def die_with_parent():
    """In the child before exec: SIGKILL when the soak dies, even by SIGKILL (no orphans)."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port(address):
    s = socket.socket()
    s.bind((address, 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- the analysis: what the server recorded against what the tasks did -----------------

def read_ledgers(out):
    executions = {}  # lease -> {...}
    starts = collections.Counter()
    for name in sorted(os.listdir(os.path.join(out, "agents"))):
        path = os.path.join(out, "agents", name, "ledger.jsonl")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a line cut by SIGKILL mid-write cannot happen (one write), but be safe
                lease = r.get("lease")
                r["ledger"] = path
                if r["k"] == "start":
                    starts[lease] += 1
                    if lease not in executions:
                        executions[lease] = {"lease": lease, "run": r["run"], "task": r["task"],
                                             "attempt": r["attempt"], "agent": r["agent"], "start": r["t"],
                                             "last": r["t"], "end": None, "exit": None, "overlap": r["overlap"],
                                             "holder": r["holder"], "ledger": path, "records": [r]}
                    else:
                        executions[lease]["overlap"] |= r["overlap"]
                        executions[lease]["records"].append(r)
                    continue
                e = executions.get(lease)
                if e is None:
                    continue
                e["last"] = max(e["last"], r["t"])
                if r["k"] == "end":
                    e["end"], e["exit"] = r["t"], r["exit"]
                    e["records"].append(r)
                else:
                    e["last_beat"] = r
    return executions, starts


def normalise_reason(message, agents):
    text = message
    for name in sorted(agents, key=len, reverse=True):
        text = text.replace(name, "AGENT")
    return re.sub(r"\d+", "N", text) or "(no message)"


def analyze(out):
    with open(os.path.join(out, "soak.json")) as f:
        state = json.load(f)
    with open(os.path.join(out, "runs.json")) as f:
        runs = json.load(f)
    ttl_ns = state["lease_ttl_s"] * 1_000_000_000
    executions, starts = read_ledgers(out)
    agents = list(state["agent_netns"])
    report = collections.OrderedDict()
    lost, twice, overlaps, late = [], [], [], []
    restarts = []  # attempts FAILED because their agent was restarted (SIGKILL) under them
    evidence = []  # ledger lines of the executions behind each problem

    def show(*leases):
        for lease in leases:
            e = executions.get(lease)
            if e:
                for r in e["records"] + ([e["last_beat"]] if "last_beat" in e and e["end"] is None else []):
                    evidence.append(json.dumps(r, separators=(",", ":")))

    # The server's side.
    attempts_by_lease = collections.defaultdict(list)
    run_states, task_states, outcomes, expired = (collections.Counter() for _ in range(4))
    task_count = 0
    for shown in runs:
        run = shown["run"]
        run_states[run["state"]] += 1
        for task in shown.get("taskInstances", []):
            task_count += 1
            task_states[task["state"]] += 1
            attempts = task.get("attempts", [])
            numbers = collections.Counter(a.get("attempt", 0) for a in attempts)
            for number, count in numbers.items():
                if count > 1:
                    twice.append(f"{run['runId']} {task['taskId']}: attempt {number} recorded {count} times")
            succeeded = [a for a in attempts if a.get("outcome") == "ATTEMPT_OUTCOME_SUCCEEDED"]
            if len(succeeded) > 1:
                twice.append(f"{run['runId']} {task['taskId']}: {len(succeeded)} attempts succeeded")
            if succeeded:
                after = [a for a in attempts if a.get("attempt", 0) > succeeded[0].get("attempt", 0)]
                if after:
                    twice.append(f"{run['runId']} {task['taskId']}: attempts {[a.get('attempt') for a in after]} "
                                 f"granted after attempt {succeeded[0].get('attempt')} succeeded")
            if task.get("tries", 0) != len(attempts):
                twice.append(f"{run['runId']} {task['taskId']}: tries {task.get('tries', 0)} but {len(attempts)} attempts")
            for a in attempts:
                outcome = a.get("outcome", "")
                outcomes[outcome] += 1
                attempts_by_lease[a.get("leaseId", "")].append((run["runId"], task["taskId"], a))
                if outcome == "ATTEMPT_OUTCOME_LOST":
                    expired[normalise_reason(a.get("message", ""), agents)] += 1
    for lease, found in attempts_by_lease.items():
        if len(found) > 1:
            twice.append(f"lease {lease} recorded for {len(found)} attempts")

    # Each attempt the server says ended by an exit code was an execution that ended so.
    for lease, found in attempts_by_lease.items():
        run_id, task_id, a = found[0]
        outcome = a.get("outcome", "")
        e = executions.get(lease)
        if outcome == "ATTEMPT_OUTCOME_FAILED" and "exitCode" not in a and "signal" not in a:
            # No exit at all: the agent restarted and found the task gone (it died with the
            # agent's SIGKILL). Not an event lost, unless the task had in fact ended.
            restarts.append(f"{run_id} {task_id} attempt {a.get('attempt')} on {a.get('agentName')}: {a.get('message', '')}")
            if e is not None and e["end"] is not None:
                show(lease)
                lost.append(f"{lease}: the task ended with exit {e['exit']} on {e['agent']}, the server recorded "
                            f"FAILED with no exit ({a.get('message', '')})")
            continue
        if outcome in ("ATTEMPT_OUTCOME_SUCCEEDED", "ATTEMPT_OUTCOME_FAILED"):
            code = a.get("exitCode")
            if code is None and outcome == "ATTEMPT_OUTCOME_SUCCEEDED":
                code = 0  # protobuf's JSON may leave a zero out
            if "signal" in a:
                if e is not None and e["end"] is not None:
                    lost.append(f"{lease}: the server recorded signal {a['signal']}, the task ended with exit {e['exit']}")
            elif e is None or e["end"] is None or e["exit"] != code:
                show(lease)
                lost.append(f"{lease}: the server recorded {outcome} exit {code}, the ledger "
                            + ("has no execution" if e is None else "has no end" if e["end"] is None else f"says exit {e['exit']}"))
        elif outcome == "ATTEMPT_OUTCOME_REJECTED" and e is not None:
            lost.append(f"{lease}: the server recorded REJECTED (never started) but the task ran on {e['agent']}")

    # Each execution that ended had its end recorded, unless its lease had expired first.
    def explained(e):
        at = e["end"] if e["end"] is not None else e["last"]
        lo, hi = at - ttl_ns - 10_000_000_000, at + 2_000_000_000
        for f in state["faults"]:
            if f["agents"] != ["*"] and e["agent"] not in f["agents"]:
                continue
            f_end = f["end_ns"] if f["end_ns"] is not None else state["end_ns"]
            if f["start_ns"] <= hi and f_end >= lo:
                return f"{f['kind']} {f['target']}"
        return None

    for lease, e in executions.items():
        if starts[lease] > 1:
            show(lease)
            twice.append(f"{lease}: started {starts[lease]} times ({e['ledger']})")
        found = attempts_by_lease.get(lease)
        if not found:
            lost.append(f"{lease}: ran on {e['agent']} ({e['run']} {e['task']}) but the server has no such attempt")
            continue
        a = found[0][2]
        if e["end"] is None or a.get("outcome") in ("ATTEMPT_OUTCOME_SUCCEEDED", "ATTEMPT_OUTCOME_FAILED"):
            continue
        why = explained(e)
        entry = f"{lease}: ended with exit {e['exit']} on {e['agent']}, the server recorded {a.get('outcome')} ({a.get('message', '')})"
        if why and a.get("outcome") == "ATTEMPT_OUTCOME_LOST":
            late.append(entry + f"; during {why}")
        else:
            show(lease)
            lost.append(entry + ("" if why else "; no fault touched that agent"))

    # Executions of one task never overlap, and none starts after a recorded success ended.
    by_task = collections.defaultdict(list)
    for e in executions.values():
        by_task[(e["run"], e["task"])].append(e)
    for (run_id, task_id), found in by_task.items():
        found.sort(key=lambda e: e["start"])
        for i, first in enumerate(found):
            for second in found[i + 1:]:
                if second["start"] < first["last"]:
                    show(first["lease"], second["lease"])
                    overlaps.append(f"{run_id} {task_id}: {first['lease']} on {first['agent']} ran "
                                    f"until {first['last'] / 1e9:.3f} s, {second['lease']} on {second['agent']} "
                                    f"started at {second['start'] / 1e9:.3f} s (CLOCK_BOOTTIME)")
            if first["overlap"]:
                show(first["lease"], first["holder"])
                overlaps.append(f"{run_id} {task_id}: {first['lease']} on {first['agent']} started while "
                                f"{first['holder']} was alive (flock held)")
            recorded = attempts_by_lease.get(first["lease"])
            if first["end"] is not None and first["exit"] == 0 and recorded \
                    and recorded[0][2].get("outcome") == "ATTEMPT_OUTCOME_SUCCEEDED":
                again = [e for e in found if e["start"] > first["end"]]
                if again:
                    show(first["lease"], again[0]["lease"])
                    twice.append(f"{run_id} {task_id}: ran again on {again[0]['agent']} ({again[0]['lease']}) "
                                 f"after {first['lease']} succeeded")
    overlaps = sorted(set(overlaps))

    # Leases lost with no fault near their agent: starvation (too many agents for the
    # machine) would show here. Not a must-be-zero number: a loaded machine may cause some.
    lost_unexplained = []
    for lease, e in executions.items():
        found = attempts_by_lease.get(lease)
        if found and found[0][2].get("outcome") == "ATTEMPT_OUTCOME_LOST" and not explained(e):
            lost_unexplained.append(f"{lease} on {e['agent']}: {found[0][2].get('message', '')}")

    swarm_of = {agent: swarm for swarm, members in state.get("swarms", {}).items() for agent in members}
    on_swarms = [e for e in executions.values() if e["agent"] in swarm_of]

    unfinished = sum(n for s, n in run_states.items() if s in ("RUN_STATE_QUEUED", "RUN_STATE_RUNNING"))
    swarms = state.get("swarms", {})
    report["soak"] = {"minutes": state["minutes"], "agents": state["agents"], "slots": state["slots"],
                      "swarms": len(swarms), "swarm_agents": sum(len(m) for m in swarms.values()),
                      "swarm_slots": state.get("swarm_slots"), "agents_total": len(state["agent_netns"]),
                      "agent_processes": state["agents"] + len(swarms),
                      "in_network_namespaces": state["in_namespaces"], "lease_ttl_s": state["lease_ttl_s"],
                      "seed": state["seed"], "wallclock_steps": state.get("wallclock_steps", state.get("faketime")), "dir": out}
    report["runs"] = {"triggered": sum(state["triggers"].values()), "triggers_refused": state["trigger_failures"],
                      "started": len(runs), "by_state": dict(run_states)}
    report["runs_unfinished"] = unfinished
    report["tasks"] = {"instances": task_count, "by_state": dict(task_states),
                       "attempts_by_outcome": dict(outcomes), "executions": len(executions),
                       "executions_ended": sum(1 for e in executions.values() if e["end"] is not None),
                       "executions_killed": sum(1 for e in executions.values() if e["end"] is None),
                       "executions_on_swarm_agents": len(on_swarms),
                       "swarm_agents_that_ran_a_task": len({e["agent"] for e in on_swarms}),
                       "executions_by_swarm": dict(sorted(collections.Counter(swarm_of[e["agent"]] for e in on_swarms).items()))}
    report["faults"] = dict(collections.Counter(f["kind"] for f in state["faults"]))
    report["server_restarts"] = len(state["incarnations"]) - 1
    report["events_lost"] = len(lost)
    report["events_applied_twice"] = len(twice)
    report["overlapping_executions"] = len(overlaps)
    report["late_reports"] = {"count": len(late), "note": "ended, but the lease had expired (during a fault) before the "
                              "report arrived: recorded LOST and run again, never at the same time"}
    restarted_tasks = {" ".join(r.split(" ")[:2]) for r in restarts}
    failed_for_good = sorted(f"{shown['run']['runId']} {t['taskId']}" for shown in runs for t in shown.get("taskInstances", [])
                             if t["state"] == "TASK_STATE_FAILED" and f"{shown['run']['runId']} {t['taskId']}" in restarted_tasks)
    report["agent_restart_failures"] = {
        "attempts": len(restarts), "tasks_failed_for_good": failed_for_good,
        "note": "attempts recorded FAILED (no exit code) because their agent was SIGKILLed and restarted; "
                "they count against the task's retries, unlike LOST"}
    report["leases_expired"] = {"total": outcomes.get("ATTEMPT_OUTCOME_LOST", 0), "by_reason": dict(expired.most_common()),
                                "with_no_fault_near": len(lost_unexplained)}
    report["server_rss_kib"] = rss_summary(state)
    report["details"] = {"events_lost": lost[:50], "events_applied_twice": twice[:50],
                         "overlapping_executions": overlaps[:50], "late_reports": late[:20],
                         "agent_restart_failures": restarts[:20], "leases_lost_with_no_fault_near": lost_unexplained[:20],
                         "ledger_lines": sorted(set(evidence))[:200]}
    report["ok"] = all(report[k] == 0 for k in MUST_BE_ZERO)
    return report


def rss_summary(state):
    samples = state["rss"]
    if not samples:
        return {}
    warmup_ns = min(60, state["minutes"] * 60 / 4) * 1e9
    starts = {inc["n"]: inc["start_ns"] for inc in state["incarnations"]}
    after = [s for s in samples if s[0] - starts[s[1]] >= warmup_ns]
    longest = max(state["incarnations"], key=lambda inc: (inc["end_ns"] or state["end_ns"]) - inc["start_ns"])
    steady = [s[2] for s in after if s[1] == longest["n"]]
    series, last = [], None
    for s in samples:
        if last is None or s[0] - last >= 30e9:
            series.append([round((s[0] - state["start_ns"]) / 1e9), s[1], s[2]])
            last = s[0]
    summary = {"samples": len(samples), "min": min(s[2] for s in samples), "max": max(s[2] for s in samples),
               "warmup_s": warmup_ns / 1e9}
    if after:
        summary["after_warmup"] = {"min": min(s[2] for s in after), "max": max(s[2] for s in after)}
    if steady:
        summary["longest_incarnation"] = {"n": longest["n"], "first": steady[0], "last": steady[-1],
                                          "min": min(steady), "max": max(steady)}
    summary["series_s_incarnation_kib"] = series
    return summary


def print_report(report):
    p = lambda s="": print(s, flush=True)
    s, runs, tasks = report["soak"], report["runs"], report["tasks"]
    p(f"== soak report ({s['minutes']} min, {s.get('agents_total', s['agents'])} agents in "
      f"{s.get('agent_processes', s['agents'])} processes: {s['agents']} tether agent x {s['slots']} slots, "
      f"{s.get('swarms', 0)} swarms with {s.get('swarm_agents', 0)} agents x {s.get('swarm_slots')} slots; "
      f"{s['in_network_namespaces']} in network namespaces, lease TTL {s['lease_ttl_s']} s, seed {s['seed']})")
    p(f"runs started:            {runs['started']} (triggered {runs['triggered']}, refused {sum(runs['triggers_refused'].values())}: {runs['triggers_refused']})")
    p(f"runs finished by state:  {runs['by_state']}")
    p(f"runs unfinished:         {report['runs_unfinished']}")
    p(f"tasks:                   {tasks['instances']} instances {tasks['by_state']}")
    p(f"attempts by outcome:     {tasks['attempts_by_outcome']}")
    p(f"executions (ledgers):    {tasks['executions']} ({tasks['executions_ended']} ended, {tasks['executions_killed']} killed)")
    if s.get("swarms"):
        p(f"  on swarm agents:       {tasks['executions_on_swarm_agents']} by {tasks['swarm_agents_that_ran_a_task']} of "
          f"{s['swarm_agents']} swarm agents; by swarm {tasks['executions_by_swarm']}")
    p(f"faults:                  {report['faults']}; server restarts {report['server_restarts']}")
    p(f"events lost:             {report['events_lost']}")
    p(f"events applied twice:    {report['events_applied_twice']}")
    p(f"overlapping executions:  {report['overlapping_executions']}")
    p(f"late reports:            {report['late_reports']['count']} (lease expired during a fault before the report arrived)")
    restarts = report["agent_restart_failures"]
    p(f"agent-restart failures:  {restarts['attempts']} attempts FAILED because their agent was SIGKILLed "
      f"(counted as retries); tasks failed for good with one: {len(restarts['tasks_failed_for_good'])} "
      f"{' '.join(restarts['tasks_failed_for_good'])}")
    p(f"leases expired:          {report['leases_expired']['total']} "
      f"({report['leases_expired'].get('with_no_fault_near', 0)} of executions with no fault near their agent)")
    for reason, count in report["leases_expired"]["by_reason"].items():
        p(f"  {count:5d}  {reason}")
    rss = report["server_rss_kib"]
    if rss:
        line = f"server RSS (KiB):        min {rss['min']} max {rss['max']} over {rss['samples']} samples"
        if "after_warmup" in rss:
            line += f"; after {rss['warmup_s']:.0f} s warm-up min {rss['after_warmup']['min']} max {rss['after_warmup']['max']}"
        p(line)
        if "longest_incarnation" in rss:
            li = rss["longest_incarnation"]
            p(f"  longest-lived server (#{li['n']}) after warm-up: first {li['first']} last {li['last']} "
              f"min {li['min']} max {li['max']}")
        p("  series [s, server #, KiB]: " + " ".join(f"[{a},{b},{c}]" for a, b, c in rss["series_s_incarnation_kib"]))
    for key, values in report["details"].items():
        for value in values:
            p(f"{key}: {value}")
    p(f"report: {os.path.join(s['dir'], 'report.json')}")
    p("== soak " + ("passed" if report["ok"] else "FAILED: " + ", ".join(
        f"{k} {report[k]}" for k in MUST_BE_ZERO if report[k] != 0)))


def finish(out):
    report = analyze(out)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    print_report(report)
    return 0 if report["ok"] else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("minutes", type=float, nargs="?")
    parser.add_argument("--tether", help="the tether binary")
    parser.add_argument("--out", help="directory for state, logs, ledgers and report.json")
    parser.add_argument("--analyze", metavar="DIR", help="only print the report of a finished soak in DIR")
    parser.add_argument("--agents", type=int, default=12)
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--swarms", type=int, default=4, help="tether-torture swarm processes")
    parser.add_argument("--swarm-agents", type=int, default=50, help="agents in each swarm")
    parser.add_argument("--swarm-slots", type=int, default=2)
    parser.add_argument("--wide-tasks", type=int, default=12, help="tasks of soak_wide, the swarms' DAG")
    parser.add_argument("--torture", help="the tether-torture binary (default: beside --tether)")
    parser.add_argument("--lease-ttl", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--fail-pct", type=float, default=10)
    parser.add_argument("--trigger-interval", type=float, default=1.5, help="seconds between runs triggered")
    parser.add_argument("--fault-gap", type=float, nargs=2, default=[6, 12], metavar=("MIN", "MAX"),
                        help="seconds between faults")
    parser.add_argument("--rss-interval", type=float, default=3)
    parser.add_argument("--drain-seconds", type=float, default=180)
    parser.add_argument("--no-netns", dest="netns", action="store_false")
    parser.add_argument("--faults", default=",".join(FAULT_KINDS),
                        help="fault kinds to inject, comma-separated (default: all of %(default)s)")
    args = parser.parse_args()
    if args.analyze:
        return finish(os.path.abspath(args.analyze))
    if args.minutes is None or not args.tether or not args.out:
        parser.error("MINUTES, --tether and --out are required")
    if not 0 < args.minutes <= 24 * 60:
        parser.error("MINUTES must be in (0, 1440]")
    if not args.faults or set(args.faults.split(",")) - set(FAULT_KINDS):
        parser.error(f"--faults takes kinds from {','.join(FAULT_KINDS)}")
    if args.agents < 0 or args.swarms < 0 or args.swarm_agents < 1 or args.agents + args.swarms == 0:
        parser.error("--agents and --swarms must be >= 0 (not both 0), --swarm-agents >= 1")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)

    soak = Soak(args)

    def terminate(signum, frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, terminate)
    try:
        soak.setup()
        soak.soak()
        soak.drain()
        soak.collect()
    except SoakError as error:
        log(f"FAILED: {error}")
        return 2
    finally:
        soak.cleanup()
    return finish(soak.out)


if __name__ == "__main__":
    sys.exit(main())
