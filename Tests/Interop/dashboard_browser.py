"""The dashboard in a real browser: Debian's chromium, headless, driven over the Chrome
DevTools Protocol (websocket-client), against a live `tether server` with agents.

    dashboard_browser.py SERVER_URL ADMIN_TOKEN_FILE TETHER_BINARY DAG_ID ARTIFACT_DIR EXPECT_AGENTS

EXPECT_AGENTS is `name=region,name=region`. The DAG must have finished one run already.
Checks, each waiting on a DOM condition with a deadline (never a fixed sleep):
  - a page without a session lands on the login page; the token logs in;
  - the overview lists every agent under its region, healthy;
  - the grid shows one cell per task and run;
  - a run triggered with the CLI appears in the grid, and its cells turn to success,
    without a reload (a marker set on the page survives);
  - the run's graph shows a node per task, with state and agent;
  - no script error and no Content-Security-Policy violation on any page.
Screenshots go to ARTIFACT_DIR. Exits 0 when every check passed; always stops chromium.
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket

OVERALL_SECONDS = 50


class Failure(Exception):
    pass


class Browser:
    """One headless chromium and one page, over the DevTools protocol."""

    def __init__(self, deadline):
        self.deadline = deadline
        self.profile = tempfile.mkdtemp(prefix="tether-chromium-")
        # Root cannot use chromium's sandbox; the pages are our own.
        self.process = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-dev-shm-usage", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={self.profile}", "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        port = self._devtools_port()
        page = self._first_page(port)
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=10)
        self.next_id = 0
        self.events = []
        self.problems = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def _devtools_port(self):
        # chromium writes the port it chose to DevToolsActivePort in its profile.
        path = os.path.join(self.profile, "DevToolsActivePort")
        while time.monotonic() < self.deadline:
            if self.process.poll() is not None:
                raise Failure(f"chromium exited: {self.process.stderr.read()[-2000:]}")
            try:
                with open(path) as f:
                    return int(f.readline().strip())
            except (FileNotFoundError, ValueError):
                time.sleep(0.05)
        raise Failure("chromium did not open its DevTools port in time")

    def _first_page(self, port):
        while time.monotonic() < self.deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                if pages:
                    return pages[0]
            except OSError:
                pass
            time.sleep(0.05)
        raise Failure("chromium has no page target")

    def call(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            self.ws.settimeout(max(0.1, self.deadline - time.monotonic()))
            message = json.loads(self.ws.recv())
            if message.get("id") == my_id:
                if "error" in message:
                    raise Failure(f"{method}: {message['error']}")
                return message.get("result", {})
            self._event(message)

    def _event(self, message):
        method = message.get("method", "")
        params = message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.problems.append("script error: " + json.dumps(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            text = entry.get("text", "")
            # A refused API call (401 before login) is logged by the browser as a network
            # error; everything else at error level (CSP violations among them) is a problem.
            if entry.get("level") == "error" and entry.get("source") != "network":
                self.problems.append(f"console {entry.get('source')}: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.problems.append("console.error: " + json.dumps([a.get("value", a.get("description")) for a in params.get("args", [])]))

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise Failure(f"evaluating {expression!r}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, what, expression, seconds=15):
        """Polls `expression` in the page until it is truthy; its last value on failure."""
        limit = min(self.deadline, time.monotonic() + seconds)
        value = None
        while time.monotonic() < limit:
            try:
                value = self.evaluate(expression)
            except Failure:
                value = None  # the page is navigating
            if value:
                return value
            time.sleep(0.1)
        raise Failure(f"timed out waiting for {what} (last value {value!r}) at {self.evaluate('location.href')}")

    def navigate(self, url):
        self.call("Page.navigate", url=url)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        print(f"screenshot {path}")

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    server, token_file, tether, dag_id, artifacts, expect = sys.argv[1:7]
    if shutil.which("chromium") is None:
        print("dashboard browser test FAILED: chromium is not installed (Scripts/bootstrap installs it)")
        return 1
    agents = dict(pair.split("=", 1) for pair in expect.split(","))
    token = open(token_file).read().strip()
    os.makedirs(artifacts, exist_ok=True)
    deadline = time.monotonic() + OVERALL_SECONDS
    browser = Browser(deadline)
    checks = 0
    try:
        # No session: the overview redirects to the login page.
        browser.navigate(server + "/ui/")
        browser.wait_for("the login page", "location.pathname === '/ui/login' && document.body.dataset.ready === 'true'")
        browser.evaluate(f"document.getElementById('token').value = {json.dumps(token)};"
                         "document.getElementById('login-form').requestSubmit(); true")
        browser.wait_for("the overview after login", "location.pathname === '/ui/' && document.querySelectorAll('tr.agent-row').length > 0")
        checks += 1

        # Every agent listed under its region, healthy, and the feed live.
        for name, region in agents.items():
            browser.wait_for(f"agent {name} healthy in region {region}",
                             f"!!document.querySelector('[data-region={json.dumps(region)}] tr.agent-row[data-agent={json.dumps(name)}] [data-health=ok]')")
        browser.wait_for("the live feed", "document.getElementById('live').classList.contains('on')")
        browser.wait_for("a stats window in the overview", "document.getElementById('stat-agents').textContent === " + json.dumps(str(len(agents))))
        browser.screenshot(os.path.join(artifacts, "overview.png"))
        checks += 1

        # The grid: a cell per task and run.
        runs = json.loads(run_cli(tether, server, token, ["run", "list", "--dag", dag_id, "--json"]))["runs"]
        dag = json.loads(run_cli(tether, server, token, ["dag", "show", dag_id, "--json"]))
        tasks = [t["taskId"] for t in dag["version"]["spec"]["tasks"]]
        browser.navigate(f"{server}/ui/dags/{dag_id}")
        expected = len(tasks) * len(runs)
        browser.wait_for(f"{expected} grid cells ({len(tasks)} tasks x {len(runs)} runs)",
                         f"document.querySelectorAll('#grid a.cell').length === {expected}")
        for run in runs:
            for task in tasks:
                browser.wait_for(f"cell {run['runId']}/{task}",
                                 f"!!document.querySelector('#grid a.cell[data-run={json.dumps(run['runId'])}][data-task={json.dumps(task)}]')", seconds=2)
        browser.wait_for("the live feed on the grid", "document.getElementById('live').classList.contains('on')")
        browser.screenshot(os.path.join(artifacts, "grid.png"))
        checks += 1

        # A run triggered with the CLI arrives, and its tasks finish, without a reload.
        browser.evaluate("window.__noReload = 'still here'; true")
        run_id = run_cli(tether, server, token, ["run", "trigger", dag_id]).strip()
        browser.wait_for(f"a grid column for the new run {run_id}",
                         f"document.querySelectorAll('#grid a.cell[data-run={json.dumps(run_id)}]').length === {len(tasks)}")
        browser.wait_for(f"a task of {run_id} running or done",
                         f"[...document.querySelectorAll('#grid a.cell[data-run={json.dumps(run_id)}]')].some(c => c.dataset.state !== 'none' && c.dataset.state !== 'scheduled')")
        browser.screenshot(os.path.join(artifacts, "grid-live-running.png"))
        browser.wait_for(f"every task of {run_id} succeeded",
                         f"[...document.querySelectorAll('#grid a.cell[data-run={json.dumps(run_id)}]')].every(c => c.dataset.state === 'success')", seconds=25)
        browser.wait_for(f"{run_id} listed as a success",
                         f"document.querySelector('#runs tr[data-run={json.dumps(run_id)}]')?.dataset.state === 'success'")
        if browser.evaluate("window.__noReload") != "still here":
            raise Failure("the page was reloaded")
        browser.screenshot(os.path.join(artifacts, "grid-live-done.png"))
        checks += 1

        # The run's graph: a node per task with its state and the agent that ran it.
        browser.navigate(f"{server}/ui/runs/{run_id}")
        browser.wait_for(f"{len(tasks)} graph nodes, all succeeded",
                         f"[...document.querySelectorAll('#graph g.node')].filter(n => n.dataset.state === 'success').length === {len(tasks)}")
        browser.wait_for("the agent that ran each task", "[...document.querySelectorAll('#graph g.node text.sub')].every(t => /\\u00b7 try \\d+\\/\\d+ \\u00b7 \\S+/.test(t.textContent))")
        browser.screenshot(os.path.join(artifacts, "run-graph.png"))
        checks += 1

        # The other pages draw without errors.
        browser.navigate(f"{server}/ui/dags/{dag_id}/versions")
        browser.wait_for("the version list", "document.querySelectorAll('main table tbody tr').length >= 1")
        browser.screenshot(os.path.join(artifacts, "versions.png"))
        name = next(iter(agents))
        browser.navigate(f"{server}/ui/agents/{name}")
        browser.wait_for(f"agent {name}'s page", "!!document.querySelector('main [data-health]')")
        browser.screenshot(os.path.join(artifacts, "agent.png"))
        browser.navigate(f"{server}/ui/dags")
        browser.wait_for("the DAG list", f"!!document.querySelector('#dags tr[data-dag={json.dumps(dag_id)}]')")
        # The audit log (an admin's session): the trigger made with the CLI above is in it.
        browser.wait_for("the audit link for an admin", "!document.getElementById('nav-audit').hidden")
        browser.navigate(f"{server}/ui/audit")
        browser.wait_for("the audit log", "!!document.querySelector('#audit tr[data-method=TriggerRun][data-code=\"0\"]')")
        browser.screenshot(os.path.join(artifacts, "audit.png"))
        checks += 1

        if browser.problems:
            raise Failure("the browser reported problems:\n  " + "\n  ".join(browser.problems))
        print(f"dashboard browser test: {checks} checks passed, 0 failed")
        return 0
    except Failure as failure:
        try:
            browser.screenshot(os.path.join(artifacts, "failure.png"))
        except Exception:
            pass
        print(f"dashboard browser test FAILED after {checks} checks: {failure}")
        for problem in browser.problems:
            print(f"  browser: {problem}")
        return 1
    finally:
        browser.close()


def run_cli(tether, server, token, arguments):
    result = subprocess.run([tether] + arguments + ["--server", server, "--token", token],
                            capture_output=True, text=True, timeout=20, env={"HOME": tempfile.gettempdir(), "PATH": os.environ.get("PATH", "")})
    if result.returncode != 0:
        raise Failure(f"tether {' '.join(arguments)}: {result.stderr}")
    return result.stdout


if __name__ == "__main__":
    sys.exit(main())
