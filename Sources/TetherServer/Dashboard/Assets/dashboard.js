'use strict';
// The Tether dashboard: one script for every page. It reads the JSON API (/api/…, the
// ControlService messages in protobuf JSON) and follows the live feed (/api/events,
// server-sent events: `task`, `run`, `dag`, `agent` carry WatchEventsResponse messages,
// `stats` the overview's numbers once a second, `resync` means "fetch again").
// No framework, no build step; DOM built with createElement only (no innerHTML), so
// names from the server are never parsed as markup.

const TASK_STATES = ['success', 'running', 'queued', 'scheduled', 'up_for_retry', 'failed',
  'upstream_failed', 'skipped', 'cancelled'];
const HISTORY_POINTS = 300; // stats windows kept for the charts (~5 minutes at 1 s)
const STALE_HEARTBEAT_US = 15e6;

const app = {
  csrf: null,
  page: null,
  feed: null,
  stats: [],
};

// ---------------------------------------------------------------------------------------
// DOM and formatting helpers

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'data') for (const [k, v] of Object.entries(value)) node.dataset[k] = v;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === 'class') node.setAttribute('class', value);
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) if (child) node.append(child);
  return node;
}

function main(...children) {
  const root = document.getElementById('main');
  root.replaceChildren(...children.flat().filter(Boolean));
}

/** 'TASK_STATE_UP_FOR_RETRY' -> 'up_for_retry'. */
function stateName(value) {
  return String(value || '').replace(/^(TASK_STATE_|RUN_STATE_|AGENT_STATE_|ATTEMPT_OUTCOME_|RUN_TRIGGER_)/, '').toLowerCase();
}

function us(value) { return Number(value || 0); }

function fmtTime(value) {
  const t = us(value);
  if (!t) return '';
  return new Date(t / 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function fmtAgo(value) {
  const t = us(value);
  if (!t) return 'never';
  const seconds = Math.max(0, Math.round((Date.now() * 1000 - t) / 1e6));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  return `${Math.floor(seconds / 3600)}h ago`;
}

function fmtDuration(startUs, endUs) {
  const s = us(startUs), e = us(endUs) || Date.now() * 1000;
  if (!s) return '';
  const ms = Math.max(0, (e - s) / 1000);
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function stateBadge(state) {
  const name = stateName(state);
  return el('span', { class: `badge st-${name}`, text: name.replace(/_/g, ' ') });
}

function legend() {
  return el('div', { class: 'legend' },
    TASK_STATES.map((s) => el('span', {}, el('i', { class: `st-${s}` }), s.replace(/_/g, ' '))),
    el('span', {}, el('i', { class: 'st-none' }), 'no status'));
}

/** Runs `fn` at most once per `ms`, the last call winning. */
function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// ---------------------------------------------------------------------------------------
// The API

function toLogin() {
  location.assign('/ui/login?next=' + encodeURIComponent(location.pathname));
}

async function api(path, options = {}) {
  const init = { credentials: 'same-origin', headers: {} , ...options };
  if (init.method && init.method !== 'GET') init.headers['x-csrf-token'] = app.csrf || '';
  const response = await fetch('/api/' + path, init);
  if (response.status === 401) {
    toLogin();
    throw new Error('not logged in');
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

async function act(button, path, done) {
  button.disabled = true;
  try {
    const result = await api(path, { method: 'POST' });
    if (done) done(result);
  } catch (e) {
    alert(e.message);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// The live feed

function setLive(text, cls) {
  const live = document.getElementById('live');
  live.textContent = text;
  live.className = 'live ' + cls;
}

function connectFeed() {
  const feed = new EventSource('/api/events');
  app.feed = feed;
  let opened = 0;
  feed.addEventListener('open', () => {
    setLive('live', 'on');
    // After a reconnect, anything may have been missed: read the page again.
    if (opened++ > 0 && app.page && app.page.load) app.page.load();
  });
  for (const kind of ['task', 'run', 'dag', 'agent']) {
    feed.addEventListener(kind, (event) => {
      const message = JSON.parse(event.data);
      const handler = app.page && app.page[kind];
      if (handler) handler(message[kind === 'task' ? 'taskInstance' : kind], message);
    });
  }
  feed.addEventListener('stats', (event) => {
    const stats = JSON.parse(event.data);
    app.stats.push(stats);
    if (app.stats.length > HISTORY_POINTS) app.stats.shift();
    if (app.page && app.page.stats) app.page.stats(stats);
  });
  feed.addEventListener('resync', () => { if (app.page && app.page.load) app.page.load(); });
  feed.addEventListener('logout', () => { feed.close(); toLogin(); });
  feed.addEventListener('busy', () => { feed.close(); setLive('too many tabs', 'off'); });
  feed.addEventListener('error', async () => {
    setLive(feed.readyState === EventSource.CLOSED ? 'offline' : 'reconnecting', 'off');
    if (feed.readyState === EventSource.CLOSED) {
      // Refused (logged out, or the server is full): find out which, and retry later.
      try { await api('session'); } catch (e) { return; }
      setTimeout(connectFeed, 5000);
    }
  });
}

// ---------------------------------------------------------------------------------------
// Overview: agents by region and queue, queue depths, running tasks, charts

/** An AgentDisconnectReason as words: "server stopped", "replaced". */
function reasonName(reason) {
  return String(reason || '').replace(/^AGENT_DISCONNECT_REASON_/, '').toLowerCase().replace('_', ' ');
}

function agentHealth(agent) {
  const state = stateName(agent.state);
  if (state === 'disconnected') {
    const why = reasonName(agent.disconnectReason);
    return ['down', why ? `disconnected (${why})` : 'disconnected'];
  }
  if (state === 'draining') return ['draining', 'draining'];
  const age = Date.now() * 1000 - us(agent.lastHeartbeatAtUnixUs);
  if (us(agent.lastHeartbeatAtUnixUs) && age > STALE_HEARTBEAT_US) return ['stale', `silent ${fmtAgo(agent.lastHeartbeatAtUnixUs)}`];
  return ['ok', 'healthy'];
}

function healthBadge(agent) {
  const [cls, text] = agentHealth(agent);
  return el('span', { class: `badge health-${cls}`, text, data: { health: cls } });
}

function overviewPage() {
  const agents = new Map();
  const cards = el('div', { class: 'cards' });
  const tasksChart = el('canvas', { id: 'chart-tasks' });
  const latencyChart = el('canvas', { id: 'chart-latency' });
  const queues = el('div', { id: 'queues' });
  const regions = el('div', { id: 'agents' });
  main(
    el('h1', { text: 'Overview' }),
    cards,
    el('div', { class: 'charts' },
      el('div', { class: 'card chart' }, el('div', { class: 'title', text: 'Tasks finished per second' }), tasksChart),
      el('div', { class: 'card chart' }, el('div', { class: 'title', text: 'Dispatch latency, ready → granted (ms): median and max per second' }), latencyChart)),
    el('h2', { text: 'Queues' }), queues,
    el('h2', { text: 'Agents by region' }), regions,
  );

  function card(label, value, id) {
    return el('div', { class: 'card stat' }, el('div', { class: 'value', id, text: String(value) }), el('div', { class: 'label', text: label }));
  }

  function drawCards() {
    const last = app.stats[app.stats.length - 1] || { queues: {}, activeRuns: 0 };
    const sum = (key) => Object.values(last.queues || {}).reduce((n, q) => n + (q[key] || 0), 0);
    const list = [...agents.values()];
    const live = list.filter((a) => stateName(a.state) !== 'disconnected');
    const rate = last.windowMs ? (last.finished * 1000 / last.windowMs) : 0;
    cards.replaceChildren(
      card('agents connected', live.length, 'stat-agents'),
      card('slots free / total', `${live.reduce((n, a) => n + (a.freeSlots || 0), 0)} / ${live.reduce((n, a) => n + (a.slots || 0), 0)}`),
      card('tasks running', sum('running'), 'stat-running'),
      card('tasks queued', sum('queued'), 'stat-queued'),
      card('active runs', last.activeRuns || 0, 'stat-runs'),
      card('tasks/s (last second)', rate.toFixed(1)),
    );
  }

  function drawQueues() {
    const last = app.stats[app.stats.length - 1] || { queues: {} };
    const names = new Set(Object.keys(last.queues || {}));
    for (const agent of agents.values()) for (const q of agent.queues || []) names.add(q);
    const rows = [...names].sort().map((name) => {
      const q = (last.queues || {})[name] || {};
      const serving = [...agents.values()].filter((a) => (a.queues || []).includes(name) && stateName(a.state) !== 'disconnected');
      return el('tr', { data: { queue: name } },
        el('td', { class: 'mono', text: name }),
        el('td', { text: String(q.queued || 0) }),
        el('td', { text: String(q.running || 0) }),
        el('td', { text: String(q.waiting || 0) }),
        el('td', {}, serving.length ? serving.map((a, i) => [i ? ', ' : '', el('a', { href: `/ui/agents/${encodeURIComponent(a.name)}`, text: a.name })]) : el('span', { class: 'error', text: 'no agent' })),
        el('td', { text: String(serving.reduce((n, a) => n + (a.freeSlots || 0), 0)) }));
    });
    queues.replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, ['queue', 'queued (depth)', 'running', 'waiting on upstream / retry', 'agents', 'free slots'].map((h) => el('th', { text: h })))),
      el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: 6, class: 'muted', text: 'No queues yet.' })))));
  }

  function drawAgents() {
    const byRegion = new Map();
    for (const agent of [...agents.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      const region = (agent.labels || {}).region || '(no region label)';
      if (!byRegion.has(region)) byRegion.set(region, []);
      byRegion.get(region).push(agent);
    }
    if (!byRegion.size) {
      regions.replaceChildren(el('p', { class: 'muted', text: 'No agent is connected.' }));
      return;
    }
    regions.replaceChildren(...[...byRegion.keys()].sort().map((region) => {
      const list = byRegion.get(region);
      const healthy = list.filter((a) => agentHealth(a)[0] === 'ok').length;
      return el('div', { class: 'region', data: { region } },
        el('h3', {}, region, el('span', { class: 'muted', text: `  ${healthy} of ${list.length} healthy` })),
        el('table', {},
          el('thead', {}, el('tr', {}, ['agent', 'health', 'queues', 'slots used', 'version', 'last seen', 'peer'].map((h) => el('th', { text: h })))),
          el('tbody', {}, list.map((a) => el('tr', { class: 'agent-row', data: { agent: a.name } },
            el('td', {}, el('a', { href: `/ui/agents/${encodeURIComponent(a.name)}`, text: a.name })),
            el('td', {}, healthBadge(a)),
            el('td', { class: 'mono', text: (a.queues || []).join(', ') }),
            el('td', { text: stateName(a.state) === 'disconnected' ? '' : `${(a.slots || 0) - (a.freeSlots || 0)} / ${a.slots || 0}` }),
            el('td', { class: 'mono', text: a.version || '' }),
            el('td', { text: fmtAgo(a.lastSeenAtUnixUs || a.lastHeartbeatAtUnixUs) }),
            el('td', { class: 'mono muted', text: a.peerAddress || '' }))))));
    }));
  }

  function drawCharts() {
    const points = app.stats;
    lineChart(tasksChart, [{ values: points.map((s) => (s.windowMs ? s.finished * 1000 / s.windowMs : 0)), color: '#2e9d4b', label: 'tasks/s' }]);
    const median = (xs) => { if (!xs.length) return null; const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
    lineChart(latencyChart, [
      { values: points.map((s) => median(s.dispatchLatencyMs || [])), color: '#1ea0d8', label: 'median' },
      { values: points.map((s) => ((s.dispatchLatencyMs || []).length ? Math.max(...s.dispatchLatencyMs) : null)), color: '#d93a3a', label: 'max' },
    ]);
  }

  function drawAll() { drawCards(); drawQueues(); drawAgents(); drawCharts(); }

  const redrawSoon = debounce(drawAll, 100);
  const ticker = setInterval(() => { drawAgents(); }, 1000);
  window.addEventListener('resize', debounce(drawCharts, 150));

  return {
    async load() {
      const list = await api('agents');
      agents.clear();
      for (const agent of list.agents || []) agents.set(agent.name, agent);
      drawAll();
    },
    agent(agent) {
      if (stateName(agent.state) === 'disconnected') agents.set(agent.name, agent);
      else agents.set(agent.name, agent);
      redrawSoon();
    },
    stats() { drawCards(); drawQueues(); drawCharts(); },
    stop() { clearInterval(ticker); },
  };
}

/** A line chart on a canvas: each series an array of numbers (or null for a gap). */
function lineChart(canvas, series) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 400, height = canvas.clientHeight || 160;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const pad = { left: 40, right: 8, top: 8, bottom: 18 };
  const values = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  const max = Math.max(1, ...values);
  const plotW = width - pad.left - pad.right, plotH = height - pad.top - pad.bottom;
  g.strokeStyle = '#e3e8ee';
  g.fillStyle = '#66727f';
  g.font = '11px system-ui, sans-serif';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad.top + plotH * (1 - i / 4);
    g.beginPath(); g.moveTo(pad.left, y); g.lineTo(width - pad.right, y); g.stroke();
    g.fillText(String(Number((max * i / 4).toPrecision(2))), 4, y + 4);
  }
  g.fillText(`last ${HISTORY_POINTS} s`, pad.left, height - 4);
  series.forEach((s, index) => {
    g.strokeStyle = s.color;
    g.lineWidth = 1.5;
    g.beginPath();
    let drawing = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) { drawing = false; return; }
      const x = pad.left + plotW * (i + HISTORY_POINTS - s.values.length) / (HISTORY_POINTS - 1);
      const y = pad.top + plotH * (1 - v / max);
      if (drawing) g.lineTo(x, y); else g.moveTo(x, y);
      drawing = true;
    });
    g.stroke();
    g.fillStyle = s.color;
    g.fillText(s.label, width - pad.right - 70, pad.top + 10 + index * 13);
  });
}

// ---------------------------------------------------------------------------------------
// DAG list

function dagsPage() {
  const body = el('tbody', {});
  main(el('h1', { text: 'DAGs' }),
    el('table', { id: 'dags' },
      el('thead', {}, el('tr', {}, ['DAG', 'description', 'schedule', 'latest version', 'active runs', 'next run', ''].map((h) => el('th', { text: h })))),
      body));

  function row(dag) {
    const id = dag.dagId;
    const pause = el('button', { type: 'button', text: dag.paused ? 'Unpause' : 'Pause' });
    pause.addEventListener('click', () => act(pause, `dags/${encodeURIComponent(id)}/${dag.paused ? 'unpause' : 'pause'}`, (r) => update(r.dag)));
    const trigger = el('button', { type: 'button', text: 'Trigger' });
    trigger.addEventListener('click', () => act(trigger, `dags/${encodeURIComponent(id)}/trigger`, (r) => location.assign(`/ui/runs/${encodeURIComponent(r.run.runId)}`)));
    return el('tr', { data: { dag: id } },
      el('td', {}, el('a', { href: `/ui/dags/${encodeURIComponent(id)}`, text: id }), dag.paused ? el('span', { class: 'muted', text: ' (paused)' }) : null),
      el('td', { text: dag.description }),
      el('td', { class: 'mono', text: dag.schedule || 'manual' }),
      el('td', {}, el('a', { href: `/ui/dags/${encodeURIComponent(id)}/versions`, text: `v${dag.latestVersion}` })),
      el('td', { text: String(dag.activeRuns || 0) }),
      el('td', { text: fmtTime(dag.nextRunAtUnixUs) }),
      el('td', {}, trigger, ' ', pause));
  }

  function update(dag) {
    const old = body.querySelector(`tr[data-dag="${CSS.escape(dag.dagId)}"]`);
    if (old) old.replaceWith(row(dag)); else load();
  }

  const load = async () => {
    const list = await api('dags');
    body.replaceChildren(...(list.dags || []).map(row));
    if (!(list.dags || []).length) body.append(el('tr', {}, el('td', { colspan: 7, class: 'muted', text: 'No DAG yet: tether dag apply FILE.yaml' })));
  };
  const reload = debounce(load, 500);
  return { load, dag: update, run: reload };
}

// ---------------------------------------------------------------------------------------
// Grid: tasks x recent runs, each cell coloured by the task's state

function gridPage(dagId) {
  const header = el('div', {});
  const table = el('table', { class: 'grid', id: 'grid' });
  const recent = el('tbody', {});
  main(header, legend(), el('div', { class: 'card', id: 'grid-card' }, table),
    el('h2', { text: 'Recent runs' }),
    el('table', { id: 'runs' }, el('thead', {}, el('tr', {}, ['run', 'state', 'version', 'trigger', 'created', 'took', 'tasks'].map((h) => el('th', { text: h })))), recent));
  let runs = []; // GetRunResponse objects, oldest first

  function cell(run, taskId, task) {
    const state = task ? stateName(task.state) || 'none' : 'none';
    const tries = task ? `, try ${task.tries || 0}/${task.maxTries || 1}` : '';
    return el('td', {}, el('a', {
      class: `cell st-${state}`, href: `/ui/runs/${encodeURIComponent(run.run.runId)}`,
      title: `${taskId} · ${run.run.runId} · ${state.replace(/_/g, ' ')}${tries}`,
      data: { run: run.run.runId, task: taskId, state },
    }));
  }

  function draw(dag, version) {
    const trigger = el('button', { type: 'button', class: 'primary', text: 'Trigger run' });
    trigger.addEventListener('click', () => act(trigger, `dags/${encodeURIComponent(dagId)}/trigger`));
    header.replaceChildren(
      el('h1', {}, el('a', { href: '/ui/dags', text: 'DAGs' }), ' / ', dagId),
      el('div', { class: 'toolbar' },
        el('span', { class: 'muted', text: `${dag.description || ''} · ${dag.schedule || 'manual runs only'}${dag.paused ? ' · paused' : ''}` }),
        el('a', { href: `/ui/dags/${encodeURIComponent(dagId)}/versions`, text: `version ${dag.latestVersion} (history)` }),
        el('span', { class: 'grow' }), trigger));
    const spec = (version && version.spec) || { tasks: [] };
    const taskIds = spec.tasks.map((t) => t.taskId);
    for (const run of runs) for (const t of run.taskInstances || []) if (!taskIds.includes(t.taskId)) taskIds.push(t.taskId);
    const head = el('tr', {}, el('th', { class: 'task', text: runs.length ? '' : 'no runs yet' }),
      runs.map((run) => el('th', {}, el('a', {
        class: `runhead st-${stateName(run.run.state)}`,
        href: `/ui/runs/${encodeURIComponent(run.run.runId)}`,
        title: `${run.run.runId} · ${stateName(run.run.state)} · ${fmtTime(run.run.createdAtUnixUs)}`,
        data: { runHead: run.run.runId, state: stateName(run.run.state) },
      }))));
    const rows = taskIds.map((taskId) => el('tr', { data: { taskRow: taskId } },
      el('th', { class: 'task', text: taskId }),
      runs.map((run) => cell(run, taskId, (run.taskInstances || []).find((t) => t.taskId === taskId)))));
    table.replaceChildren(el('thead', {}, head), el('tbody', {}, rows));
    drawRecent();
  }

  function drawRecent() {
    recent.replaceChildren(...runs.slice().reverse().map(({ run }) => el('tr', { data: { run: run.runId, state: stateName(run.state) } },
      el('td', {}, el('a', { href: `/ui/runs/${encodeURIComponent(run.runId)}`, text: run.runId })),
      el('td', {}, stateBadge(run.state)),
      el('td', { text: `v${run.dagVersion}` }),
      el('td', { text: stateName(run.trigger) }),
      el('td', { text: fmtTime(run.createdAtUnixUs) }),
      el('td', { text: fmtDuration(run.startedAtUnixUs, run.finishedAtUnixUs) }),
      el('td', { class: 'muted', text: Object.entries(run.taskCounts || {}).map(([k, v]) => `${v} ${k.replace(/_/g, ' ')}`).join(', ') }))));
  }

  let lastDag = null;
  const load = async () => {
    const grid = await api(`dags/${encodeURIComponent(dagId)}/grid?runs=25`);
    runs = (grid.runs || []).slice().reverse();
    lastDag = grid.dag;
    draw(grid.dag.dag, grid.dag.version);
  };
  const reload = debounce(load, 300);

  return {
    load,
    task(task) {
      const run = runs.find((r) => r.run.runId === task.runId);
      if (!run) return; // another DAG's run, or a new run: its `run` event reloads
      const instances = run.taskInstances || (run.taskInstances = []);
      const index = instances.findIndex((t) => t.taskId === task.taskId);
      if (index >= 0) instances[index] = { ...instances[index], state: task.state, tries: task.tries, maxTries: task.maxTries };
      else instances.push(task);
      const old = table.querySelector(`a.cell[data-run="${CSS.escape(task.runId)}"][data-task="${CSS.escape(task.taskId)}"]`);
      if (old) old.parentElement.replaceWith(cell(run, task.taskId, instances[index >= 0 ? index : instances.length - 1]));
      else reload();
    },
    run(run) {
      if (run.dagId !== dagId) return;
      const known = runs.find((r) => r.run.runId === run.runId);
      if (!known) { reload(); return; }
      known.run = { ...known.run, state: run.state, startedAtUnixUs: run.startedAtUnixUs, finishedAtUnixUs: run.finishedAtUnixUs };
      const head = table.querySelector(`a.runhead[data-run-head="${CSS.escape(run.runId)}"]`);
      if (head) { head.className = `runhead st-${stateName(run.state)}`; head.dataset.state = stateName(run.state); }
      drawRecent();
      if (stateName(run.state) !== 'running' && stateName(run.state) !== 'queued') reload();
    },
    dag(dag) { if (dag.dagId === dagId) reload(); },
  };
}

// ---------------------------------------------------------------------------------------
// A run's graph: tasks as nodes in layers by dependency depth, with state, tries, agent

function layout(specTasks) {
  const byId = new Map(specTasks.map((t) => [t.taskId, t]));
  const depth = new Map();
  const visiting = new Set();
  const depthOf = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0; // a cycle cannot be stored, but never loop on one
    visiting.add(id);
    const deps = ((byId.get(id) || {}).dependsOn || []).filter((d) => byId.has(d));
    const d = deps.length ? 1 + Math.max(...deps.map(depthOf)) : 0;
    depth.set(id, d);
    return d;
  };
  specTasks.forEach((t) => depthOf(t.taskId));
  const layers = [];
  for (const t of specTasks) (layers[depth.get(t.taskId)] ||= []).push(t.taskId);
  // Order each layer by the mean position of its upstream tasks (one barycentre pass).
  const position = new Map();
  layers.forEach((layer, li) => {
    if (li > 0) {
      const score = (id) => {
        const deps = (byId.get(id).dependsOn || []).filter((d) => position.has(d));
        return deps.length ? deps.reduce((n, d) => n + position.get(d), 0) / deps.length : 0;
      };
      layer.sort((a, b) => score(a) - score(b));
    }
    layer.forEach((id, i) => position.set(id, i));
  });
  return layers;
}

function runPage(runId) {
  const header = el('div', {});
  const graph = el('div', { class: 'graph', id: 'graph' });
  const details = el('div', {});
  main(header, legend(), graph, el('h2', { text: 'Task instances' }), details);
  let current = null, spec = null;

  function lastAttempt(task) {
    const attempts = task.attempts || [];
    return attempts[attempts.length - 1];
  }

  function drawGraph() {
    const tasks = new Map((current.taskInstances || []).map((t) => [t.taskId, t]));
    const specTasks = spec ? spec.tasks : [...tasks.keys()].map((id) => ({ taskId: id, dependsOn: [] }));
    const layers = layout(specTasks);
    const W = 190, H = 54, GX = 70, GY = 18;
    const tallest = Math.max(1, ...layers.map((l) => l.length));
    const width = layers.length * (W + GX) - GX + 40, height = tallest * (H + GY) - GY + 40;
    const at = new Map();
    layers.forEach((layer, li) => layer.forEach((id, i) => {
      const offset = (tallest - layer.length) * (H + GY) / 2;
      at.set(id, { x: 20 + li * (W + GX), y: 20 + offset + i * (H + GY) });
    }));
    const edges = [], nodes = [];
    for (const t of specTasks) {
      for (const dep of t.dependsOn || []) {
        const a = at.get(dep), b = at.get(t.taskId);
        if (!a || !b) continue;
        const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
        edges.push(svg('path', { class: 'edge', d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, 'marker-end': 'url(#arrow)' }));
      }
    }
    for (const t of specTasks) {
      const p = at.get(t.taskId);
      const task = tasks.get(t.taskId) || {};
      const state = stateName(task.state) || 'none';
      const attempt = lastAttempt(task);
      const light = ['none', 'queued', 'scheduled', 'up_for_retry'].includes(state);
      const sub = `${state.replace(/_/g, ' ')} · try ${task.tries || 0}/${task.maxTries || 1}${attempt && attempt.agentName ? ' · ' + attempt.agentName : ''}`;
      nodes.push(svg('g', { class: `node${light ? ' light' : ''}`, transform: `translate(${p.x},${p.y})`, 'data-task': t.taskId, 'data-state': state },
        svg('title', { text: `${t.taskId}\n${sub}${task.waitingReason ? '\n' + task.waitingReason : ''}` }),
        svg('rect', { width: W, height: H, class: `st-${state}`, fill: getComputedStyle(document.documentElement).getPropertyValue(`--st-${state}`).trim() || '#fff' }),
        svg('text', { x: 10, y: 22, text: t.taskId.length > 26 ? t.taskId.slice(0, 25) + '…' : t.taskId }),
        svg('text', { x: 10, y: 40, class: 'sub', text: sub.length > 34 ? sub.slice(0, 33) + '…' : sub })));
    }
    const defs = svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#9aa5b1' })));
    graph.replaceChildren(svg('svg', { width, height, viewBox: `0 0 ${width} ${height}` }, defs, edges, nodes));
  }

  function drawDetails() {
    const run = current.run;
    const active = ['running', 'queued'].includes(stateName(run.state));
    const cancel = active ? el('button', { type: 'button', text: 'Cancel run' }) : null;
    if (cancel) cancel.addEventListener('click', () => { if (confirm(`Cancel ${runId}?`)) act(cancel, `runs/${encodeURIComponent(runId)}/cancel`, load); });
    header.replaceChildren(
      el('h1', {}, el('a', { href: `/ui/dags/${encodeURIComponent(run.dagId)}`, text: run.dagId }), ' / ', runId, ' ', stateBadge(run.state)),
      el('div', { class: 'toolbar' },
        el('span', { class: 'muted', text: `version ${run.dagVersion} · ${stateName(run.trigger)} · created ${fmtTime(run.createdAtUnixUs)} · ${fmtDuration(run.startedAtUnixUs, run.finishedAtUnixUs)}` }),
        run.waitReason ? el('span', { class: 'error', text: run.waitReason }) : null,
        el('span', { class: 'grow' }), cancel),
      ...(run.note ? [el('p', { class: 'muted', text: run.note })] : []));
    details.replaceChildren(el('table', { id: 'tasks' },
      el('thead', {}, el('tr', {}, ['task', 'state', 'tries', 'queue', 'agent', 'attempts (agent · outcome · exit · time)', 'why it waits'].map((h) => el('th', { text: h })))),
      el('tbody', {}, (current.taskInstances || []).map((t) => el('tr', { data: { task: t.taskId } },
        el('td', { class: 'mono', text: t.taskId }),
        el('td', {}, stateBadge(t.state)),
        el('td', { text: `${t.tries || 0}/${t.maxTries || 1}${t.infrastructureAttempts ? ` +${t.infrastructureAttempts} lost` : ''}` }),
        el('td', { class: 'mono', text: t.queue }),
        el('td', {}, (lastAttempt(t) || {}).agentName ? el('a', { href: `/ui/agents/${encodeURIComponent(lastAttempt(t).agentName)}`, text: lastAttempt(t).agentName }) : ''),
        el('td', {}, (t.attempts || []).map((a) => el('div', { class: 'mono', text:
          `#${a.attempt} ${a.agentName} · ${stateName(a.outcome)}${a.exitCode !== undefined ? ` · exit ${a.exitCode}` : ''}${a.signal !== undefined ? ` · signal ${a.signal}` : ''} · ${fmtDuration(a.startedAtUnixUs || a.grantedAtUnixUs, a.finishedAtUnixUs)}${a.message ? ' · ' + a.message : ''}` }))),
        el('td', { class: 'muted', text: t.waitingReason || '' }))))));
  }

  const load = async () => {
    current = await api(`runs/${encodeURIComponent(runId)}`);
    if (!spec) {
      const dag = await api(`dags/${encodeURIComponent(current.run.dagId)}?version=${current.run.dagVersion}`);
      spec = dag.version && dag.version.spec;
    }
    drawDetails();
    drawGraph();
  };
  const reload = debounce(load, 300);
  return {
    load,
    task(task) {
      if (task.runId !== runId || !current) return;
      const old = (current.taskInstances || []).find((t) => t.taskId === task.taskId);
      if (old) Object.assign(old, { state: task.state, tries: task.tries });
      drawGraph();
      reload(); // attempts, agents and times come with the full read
    },
    run(run) { if (run.runId === runId) reload(); },
  };
}

// ---------------------------------------------------------------------------------------
// Version history, with a line diff of two versions' YAML

function diffLines(a, b) {
  // Longest common subsequence over lines; fine for DAG files (hundreds of lines).
  const n = a.length, m = b.length;
  if (n * m > 4e6) return [...a.map((l) => ['del', l]), ...b.map((l) => ['add', l])];
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) {
    lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { out.push(['ctx', a[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(['del', a[i++]]);
    else out.push(['add', b[j++]]);
  }
  while (i < n) out.push(['del', a[i++]]);
  while (j < m) out.push(['add', b[j++]]);
  return out;
}

function versionsPage(dagId) {
  const list = el('div', {});
  const diff = el('div', { id: 'diff' });
  const pickA = el('select', { id: 'version-a' }), pickB = el('select', { id: 'version-b' });
  main(el('h1', {}, el('a', { href: `/ui/dags/${encodeURIComponent(dagId)}`, text: dagId }), ' / versions'),
    list, el('h2', { text: 'Compare' }), el('div', { class: 'toolbar' }, 'from ', pickA, ' to ', pickB), diff);
  const yaml = new Map();

  async function specYaml(version) {
    if (!yaml.has(version)) {
      const dag = await api(`dags/${encodeURIComponent(dagId)}?version=${version}`);
      yaml.set(version, (dag.version && dag.version.specYaml) || '');
    }
    return yaml.get(version);
  }

  async function compare() {
    const a = Number(pickA.value), b = Number(pickB.value);
    if (!a || !b) { diff.replaceChildren(el('p', { class: 'muted', text: 'Only one version.' })); return; }
    const [left, right] = await Promise.all([specYaml(a), specYaml(b)]);
    const lines = diffLines(left.split('\n'), right.split('\n'));
    const changed = lines.filter(([k]) => k !== 'ctx').length;
    diff.replaceChildren(el('p', { class: 'muted', text: changed ? `${changed} lines differ` : 'The YAML is identical.' }),
      el('div', { class: 'diff' }, lines.map(([kind, line]) => el('div', { class: kind, text: `${kind === 'add' ? '+' : kind === 'del' ? '-' : ' '} ${line}` }))));
  }
  pickA.addEventListener('change', compare);
  pickB.addEventListener('change', compare);

  const load = async () => {
    const response = await api(`dags/${encodeURIComponent(dagId)}/versions`);
    const versions = response.versions || [];
    list.replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, ['version', 'applied', 'content hash', 'tasks'].map((h) => el('th', { text: h })))),
      el('tbody', {}, versions.map((v) => el('tr', {},
        el('td', { text: `v${v.version}` }),
        el('td', { text: fmtTime(v.createdAtUnixUs) }),
        el('td', { class: 'mono', text: (v.contentHash || '').slice(0, 16) }),
        el('td', { text: v.spec ? String((v.spec.tasks || []).length) : '' }))))));
    const options = (selected) => versions.map((v) => el('option', { value: v.version, text: `v${v.version}`, selected: v.version === selected }));
    const newest = versions[0] ? versions[0].version : 0;
    const previous = versions[1] ? versions[1].version : 0;
    pickA.replaceChildren(...options(previous || newest));
    pickB.replaceChildren(...options(newest));
    if (previous) await compare(); else diff.replaceChildren(el('p', { class: 'muted', text: 'Only one version so far.' }));
  };
  return { load, dag(dag) { if (dag.dagId === dagId) load(); } };
}

// ---------------------------------------------------------------------------------------
// Agent detail

function agentPage(name) {
  const body = el('div', {});
  main(el('h1', {}, el('a', { href: '/ui/', text: 'Agents' }), ' / ', name), body);
  let agent = null;

  function draw() {
    if (!agent) { body.replaceChildren(el('p', { class: 'muted', text: 'Not connected.' })); return; }
    const leaseRuns = (agent.leaseIds || []).map((id) => [id, id.split('/')[0]]);
    body.replaceChildren(
      el('dl', { class: 'kv card' },
        el('dt', { text: 'health' }), el('dd', {}, healthBadge(agent)),
        el('dt', { text: 'state' }), el('dd', { text: stateName(agent.state) }),
        el('dt', { text: 'version' }), el('dd', { class: 'mono', text: agent.version }),
        el('dt', { text: 'queues' }), el('dd', { class: 'mono', text: (agent.queues || []).join(', ') }),
        el('dt', { text: 'slots' }), el('dd', { text: `${(agent.slots || 0) - (agent.freeSlots || 0)} used of ${agent.slots || 0}` }),
        el('dt', { text: 'labels' }), el('dd', { class: 'mono', text: Object.entries(agent.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ') || '—' }),
        el('dt', { text: 'entrypoints' }), el('dd', { class: 'mono', text: (agent.entrypoints || []).join(', ') }),
        el('dt', { text: 'connected' }), el('dd', { text: `${fmtTime(agent.connectedAtUnixUs)} from ${agent.peerAddress || '?'}` }),
        el('dt', { text: 'last heartbeat' }), el('dd', { text: fmtAgo(agent.lastHeartbeatAtUnixUs) }),
        agent.disconnectDetail ? [el('dt', { text: 'last session ended' }),
          el('dd', { text: `${reasonName(agent.disconnectReason)}: ${agent.disconnectDetail}` })] : []),
      el('h2', { text: 'Leases' }),
      leaseRuns.length ? el('ul', {}, leaseRuns.map(([id, run]) => el('li', { class: 'mono' }, el('a', { href: `/ui/runs/${encodeURIComponent(run)}`, text: id }))))
        : el('p', { class: 'muted', text: 'No lease held.' }),
      el('h2', { text: 'Metrics (from heartbeats, since the server started)' }),
      el('table', {}, el('thead', {}, el('tr', {}, ['name', 'labels', 'value'].map((h) => el('th', { text: h })))),
        el('tbody', {}, (agent.metrics || []).map((m) => el('tr', {},
          el('td', { class: 'mono', text: m.name }),
          el('td', { class: 'mono', text: Object.entries(m.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ') }),
          el('td', { text: String(m.value) }))))));
  }

  const load = async () => {
    try { agent = await api(`agents/${encodeURIComponent(name)}`); } catch (e) { agent = null; }
    draw();
  };
  const ticker = setInterval(draw, 1000);
  return { load, agent(a) { if (a.name === name) { agent = stateName(a.state) === 'disconnected' ? a : a; load(); } }, stop() { clearInterval(ticker); } };
}

// ---------------------------------------------------------------------------------------
// Audit log (admins): newest first, a page at a time

const GRPC_CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL',
  'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

function auditPage() {
  const body = el('tbody', {});
  const more = el('button', { type: 'button', text: 'Older entries', hidden: true });
  main(el('h1', { text: 'Audit log' }),
    el('p', { class: 'muted', text: 'Every change made through the API or this dashboard, and every one refused for its role. Reads are not recorded.' }),
    el('table', { id: 'audit' },
      el('thead', {}, el('tr', {}, ['time', 'token', 'role', 'method', 'target', 'from', 'outcome', 'summary'].map((h) => el('th', { text: h })))),
      body),
    el('p', {}, more));
  let next = '';

  function row(entry) {
    const code = entry.statusCode || 0;
    const outcome = code === 0 ? 'OK' : `${GRPC_CODES[code] || code}: ${entry.statusMessage || ''}`;
    return el('tr', { data: { method: entry.method, code: String(code) } },
      el('td', { text: fmtTime(entry.atUnixUs) }),
      el('td', { class: 'mono', text: entry.tokenDescription ? `${entry.tokenId} (${entry.tokenDescription})` : entry.tokenId }),
      el('td', { text: String(entry.role || '').replace(/^TOKEN_ROLE_/, '').toLowerCase() }),
      el('td', { text: entry.surface === 'dashboard' ? `${entry.method} (dashboard)` : entry.method }),
      el('td', { class: 'mono', text: entry.target || '—' }),
      el('td', { class: 'mono', text: entry.peer || '—' }),
      el('td', { class: code === 0 ? '' : 'error', text: outcome }),
      el('td', { text: entry.summary || '' }));
  }

  const page = async (token) => {
    const list = await api(`audit?limit=100${token ? `&page_token=${encodeURIComponent(token)}` : ''}`);
    next = list.nextPageToken || '';
    more.hidden = !next;
    return (list.entries || []).map(row);
  };
  const load = async () => {
    body.replaceChildren(...await page(''));
    if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'Nothing recorded yet.' })));
  };
  more.addEventListener('click', async () => { body.append(...await page(next)); });
  return { load, run: debounce(load, 1000), dag: debounce(load, 1000) };
}

// ---------------------------------------------------------------------------------------
// Start

function route() {
  const parts = location.pathname.split('/').filter(Boolean).slice(1).map(decodeURIComponent);
  document.getElementById('nav-overview').classList.toggle('current', parts.length === 0 || parts[0] === 'agents');
  document.getElementById('nav-dags').classList.toggle('current', parts[0] === 'dags' || parts[0] === 'runs');
  document.getElementById('nav-audit').classList.toggle('current', parts[0] === 'audit');
  if (parts.length === 0 || (parts[0] === 'agents' && parts.length === 1)) return overviewPage();
  if (parts[0] === 'dags' && parts.length === 1) return dagsPage();
  if (parts[0] === 'dags' && parts.length === 2) return gridPage(parts[1]);
  if (parts[0] === 'dags' && parts[2] === 'versions') return versionsPage(parts[1]);
  if (parts[0] === 'runs') return runPage(parts[1]);
  if (parts[0] === 'agents') return agentPage(parts[1]);
  if (parts[0] === 'audit' && parts.length === 1) return auditPage();
  main(el('p', { class: 'error', text: 'No such page.' }));
  return null;
}

async function start() {
  document.getElementById('logout').addEventListener('click', async () => {
    try { await api('session', { method: 'DELETE' }); } finally { toLogin(); }
  });
  const session = await api('session');
  app.csrf = session.csrfToken;
  // A viewer's session is read-only: the server refuses its actions (403), so they are not offered.
  if (session.role === 'viewer') document.body.classList.add('read-only');
  document.getElementById('nav-audit').hidden = session.role !== 'admin';
  app.page = route();
  connectFeed();
  if (app.page && app.page.load) {
    try { await app.page.load(); } catch (e) { main(el('p', { class: 'error', text: e.message })); }
  }
}

document.addEventListener('DOMContentLoaded', () => { start().catch((e) => console.error(e)); });
