// The federation dashboard. No framework and no third-party code: the page is served by the
// controller under a Content-Security-Policy that allows only this script and this origin.
// Every value from the server is written with textContent, never parsed as HTML.
'use strict';

const TOKEN_KEY = 'federation-controller.token';
const ROWS_URL = '/dashboard/v1/federations?watch=true';
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 15000;

const state = {
  rows: new Map(), // "namespace/name" -> row
  filter: '',
  selected: null, // the fleet whose timeline is open
  job: null, // its latest progress JSON
  jobGone: false,
  skewMs: 0, // server clock minus this browser's clock
  timelineAbort: null,
  timelineFollowing: false, // a progress stream is open or being opened
  tableQueued: false,
};

const $ = (id) => document.getElementById(id);

class AuthNeeded extends Error {
  constructor(message, token) {
    super(message);
    this.token = token; // the token the refused request carried (null: none)
  }
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// --- Server-sent events over fetch: EventSource cannot send an Authorization header, and the
// token must not travel in the URL (it would land in access logs).

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error_msg || response.statusText;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function streamEvents(url, signal, onOpen, onEvent) {
  const headers = { Accept: 'text/event-stream' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { headers, signal, cache: 'no-store' });
  if (response.status === 401) throw new AuthNeeded(await errorMessage(response), token);
  if (!response.ok) throw new Error(await errorMessage(response));
  onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      // Line ends may be CRLF or CR; a CR at the end may be half of a CRLF split across reads.
      buffer = (buffer + value).replace(/\r\n/g, '\n').replace(/\r(?!$)/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue; // heartbeat
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') name = text;
          else if (field === 'data') data.push(text);
        }
        if (data.length > 0) onEvent(name, JSON.parse(data.join('\n')));
      }
    }
  } finally {
    // A parse error or an abort must not leave the connection open.
    reader.cancel().catch(() => {});
  }
}

// --- Token: asked for once, kept only in this tab's session storage.

let loginWaiters = [];

function askForToken(message) {
  const waiting = new Promise((resolve) => loginWaiters.push(resolve));
  // Already asking (both streams were refused at once): keep the message shown.
  if (!$('login').hidden && !message) return waiting;
  $('login').hidden = false;
  $('overview').hidden = true;
  $('timeline').hidden = true;
  const error = $('login-error');
  error.hidden = !message;
  error.textContent = message || '';
  $('token').focus();
  return waiting;
}

function onLogin(event) {
  event.preventDefault();
  const token = $('token').value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token').value = '';
  $('login').hidden = true;
  $('overview').hidden = false;
  $('timeline').hidden = state.selected === null;
  $('forget-token').hidden = false;
  const waiters = loginWaiters;
  loginWaiters = [];
  waiters.forEach((resolve) => resolve());
}

// A 401: the first time, ask; with a token, it was refused: forget it and ask. A request sent
// before the user signed in carries no token (or an older one): just try again.
async function handleAuth(error) {
  const stored = sessionStorage.getItem(TOKEN_KEY);
  if (stored && stored !== error.token) return;
  sessionStorage.removeItem(TOKEN_KEY);
  $('forget-token').hidden = true;
  await askForToken(error.token ? `The token was refused: ${error.message}` : '');
}

// --- The table, from the row stream.

function setConnection(kind, text) {
  const node = $('connection');
  node.dataset.state = kind;
  node.textContent = text;
}

async function followRows() {
  let delay = RECONNECT_MIN_MS;
  for (;;) {
    try {
      await streamEvents(
        ROWS_URL,
        undefined,
        () => {
          // The stream starts with every row as `added`: start from a clean table.
          state.rows.clear();
          delay = RECONNECT_MIN_MS;
          setConnection('live', 'live');
          renderTable();
        },
        (name, row) => {
          const key = `${row.namespace}/${row.name}`;
          if (name === 'deleted') state.rows.delete(key);
          else state.rows.set(key, row);
          queueTable();
          if (row.clusterGroupID === state.selected) onSelectedRowChange(row, name);
        },
      );
      setConnection('connecting', 'reconnecting…');
    } catch (error) {
      if (error instanceof AuthNeeded) {
        setConnection('connecting', 'signing in…');
        await handleAuth(error);
        continue;
      }
      setConnection('error', `disconnected: ${error.message}; retrying`);
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, RECONNECT_MAX_MS);
  }
}

function age(created, now) {
  if (!created) return '';
  const seconds = Math.max(0, Math.floor((now - Date.parse(created)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}

function meter(done, total, label) {
  const wrap = el('div', 'meter');
  wrap.setAttribute('role', 'progressbar');
  wrap.setAttribute('aria-valuemin', '0');
  wrap.setAttribute('aria-valuemax', String(total));
  wrap.setAttribute('aria-valuenow', String(done));
  const fill = el('div', 'meter-fill');
  fill.style.width = `${total > 0 ? (100 * done) / total : 0}%`;
  wrap.append(fill, el('span', 'meter-label', label));
  return wrap;
}

// A burst of events redraws the table once.
function queueTable() {
  if (state.tableQueued) return;
  state.tableQueued = true;
  setTimeout(() => {
    state.tableQueued = false;
    renderTable();
  }, 50);
}

function renderTable() {
  const body = $('federations').tBodies[0];
  const now = Date.now() + state.skewMs;
  const rows = [...state.rows.values()].sort(
    (a, b) => a.clusterGroupID.localeCompare(b.clusterGroupID),
  );
  const counts = {};
  rows.forEach((row) => { counts[row.phase] = (counts[row.phase] || 0) + 1; });
  const shown = rows.filter((row) => !state.filter || row.phase === state.filter);
  const fresh = shown.map((row) => {
    const tr = el('tr');
    tr.dataset.fleet = row.clusterGroupID;
    tr.dataset.phase = row.phase;
    tr.tabIndex = 0;
    if (row.clusterGroupID === state.selected) tr.classList.add('selected');
    const phase = el('td');
    phase.append(el('span', `phase phase-${row.phase}`, row.phase));
    if (row.phase === 'Failed' && row.reason) phase.append(el('span', 'reason', row.reason));
    const progress = el('td', 'progress');
    progress.append(meter(row.succeeded, row.total, `${row.succeeded}/${row.total}`));
    tr.append(
      el('td', 'fleet', row.clusterGroupID),
      el('td', 'name', `${row.namespace}/${row.name}`),
      phase,
      progress,
      el('td', `health health-${row.health}`, row.health),
      el('td', 'current-step', row.currentStep || ''),
      el('td', 'age', age(row.created, now)),
    );
    return tr;
  });
  body.replaceChildren(...fresh);
  $('empty').hidden = shown.length > 0;
  const filter = $('phase-filter');
  for (const option of filter.options) {
    const phase = option.value;
    const count = phase ? counts[phase] || 0 : rows.length;
    option.textContent = `${phase || 'All'} (${count})`;
  }
  $('summary').textContent = `${shown.length} of ${rows.length} shown`;
}

// --- The timeline of one job, from the progress stream.

// `2023-07-31 13:16:20.715779 +0000 UTC` (Go's time format) -> milliseconds since the epoch.
function goTime(text) {
  if (!text) return null;
  const iso = text.replace(' +0000 UTC', 'Z').replace(' ', 'T');
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms;
}

function duration(ms) {
  if (ms === null || ms < 0) return '';
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes}m${Math.floor(seconds % 60)}s`;
}

function openTimeline(fleet) {
  state.selected = fleet;
  state.job = null;
  state.jobGone = false;
  history.replaceState(null, '', `#fleet=${encodeURIComponent(fleet)}`);
  $('timeline').hidden = false;
  $('timeline-title').textContent = fleet;
  renderTable();
  renderTimeline();
  followProgress(fleet);
}

function closeTimeline() {
  if (state.timelineAbort) state.timelineAbort.abort();
  state.timelineAbort = null;
  state.timelineFollowing = false;
  state.selected = null;
  state.job = null;
  history.replaceState(null, '', location.pathname);
  $('timeline').hidden = true;
  renderTable();
}

async function followProgress(fleet) {
  if (state.timelineAbort) state.timelineAbort.abort();
  const abort = new AbortController();
  state.timelineAbort = abort;
  state.timelineFollowing = true;
  state.jobGone = false;
  const url = `/v1/clustergroups/${encodeURIComponent(fleet)}/federations/progress?watch=true`;
  let delay = RECONNECT_MIN_MS;
  try {
    while (!abort.signal.aborted) {
      try {
        await streamEvents(url, abort.signal, () => { delay = RECONNECT_MIN_MS; }, (name, job) => {
          if (name === 'deleted') {
            state.jobGone = true;
          } else {
            state.jobGone = false;
            state.job = job;
            const serverNow = goTime(job.metadata.annotations.currentTimestamp);
            if (serverNow !== null) state.skewMs = serverNow - Date.now();
          }
          renderTimeline();
        });
        // The stream ends when the job is Success or Failed (or gone): the timeline stays as
        // it is until the table shows the job moving again (a retry or a new run). Ended
        // otherwise (a replica restarting), it is opened again.
        const phase = state.job && state.job.status.phase;
        if (state.jobGone || phase === 'Success' || phase === 'Failed') return;
      } catch (error) {
        if (abort.signal.aborted) return;
        if (error instanceof AuthNeeded) {
          await handleAuth(error);
          continue;
        }
        $('timeline-reason').textContent = `Could not follow ${fleet}: ${error.message}`;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  } finally {
    if (state.timelineAbort === abort) state.timelineFollowing = false;
  }
}

function onSelectedRowChange(row, name) {
  // Several enablements may name a fleet (the oldest owns it): one going is not the end.
  if (name === 'deleted') {
    if (selectedRow() === null) state.jobGone = true;
    renderTimeline();
    return;
  }
  const moving = row.phase !== 'Success' && row.phase !== 'Failed';
  if (moving && !state.timelineFollowing && state.selected) followProgress(state.selected);
  else renderTimeline();
}

// The row of the job shown: the enablement the progress stream names, among those naming the
// selected fleet.
function selectedRow() {
  const owner = state.job && state.job.spec.resourceName;
  let any = null;
  for (const row of state.rows.values()) {
    if (row.clusterGroupID !== state.selected) continue;
    if (row.name === owner) return row;
    any = any || row;
  }
  return any;
}

function renderTimeline() {
  if (state.selected === null) return;
  const job = state.job;
  const list = $('timeline-steps');
  const phase = $('timeline-phase');
  const reason = $('timeline-reason');
  if (state.jobGone) {
    phase.textContent = 'Deleted';
    phase.className = 'phase phase-Deleted';
    reason.textContent = 'This enablement no longer exists.';
    list.replaceChildren();
    return;
  }
  if (!job) {
    phase.textContent = '';
    reason.textContent = 'Loading…';
    list.replaceChildren();
    return;
  }
  const row = selectedRow();
  const jobPhase = job.status.phase || 'Pending';
  phase.textContent = `${jobPhase} · ${job.spec.type}`;
  phase.className = `phase phase-${jobPhase}`;
  reason.textContent = [job.status.reason, row && row.message].filter(Boolean).join(': ');

  const now = Date.now() + state.skewMs;
  const steps = job.spec.subJobs || [];
  const starts = steps.map((s) => goTime(s.status.startTime)).filter((t) => t !== null);
  const jobStart = goTime(job.status.startTime);
  const t0 = Math.min(...starts, jobStart === null ? Infinity : jobStart);
  const finished = jobPhase === 'Success' || jobPhase === 'Failed';
  const ends = steps.map((s) => goTime(s.status.completionTime)).filter((t) => t !== null);
  const jobEnd = goTime(job.status.completionTime);
  const t1 = finished ? Math.max(...ends, jobEnd === null ? -Infinity : jobEnd, t0 + 1) : now;
  const span = Math.max(t1 - t0, 1);
  const started = Number.isFinite(t0);

  const messages = new Map((row ? row.steps : []).map((s) => [s.type, s.message]));
  list.replaceChildren(...steps.map((step) => {
    const stepPhase = step.status.phase || 'Pending';
    const li = el('li', `step step-${stepPhase}`);
    li.dataset.type = step.spec.type;
    li.dataset.phase = stepPhase;
    const start = goTime(step.status.startTime);
    const end = goTime(step.status.completionTime) ?? (stepPhase === 'Running' ? now : null);
    const track = el('div', 'track');
    if (started && start !== null) {
      const bar = el('div', `bar bar-${stepPhase}`);
      const stop = end ?? start;
      bar.style.left = `${(100 * (start - t0)) / span}%`;
      bar.style.width = `${Math.max((100 * (stop - start)) / span, 0.5)}%`;
      track.append(bar);
    }
    const took = start !== null && end !== null ? duration(end - start) : '';
    li.append(
      el('span', 'step-name', step.spec.type),
      el('span', `phase phase-${stepPhase}`, stepPhase),
      track,
      el('span', 'step-duration', took),
    );
    const message = messages.get(step.spec.type);
    if (stepPhase === 'Failed') {
      const failure = el('p', 'step-failure');
      failure.append(
        el('strong', 'step-reason', step.status.reason || 'Failed'),
        el('span', 'step-message', message ? `: ${message}` : ''),
      );
      li.append(failure);
    } else if (step.status.reason || message) {
      li.append(el('p', 'step-note', [step.status.reason, message].filter(Boolean).join(': ')));
    }
    return li;
  }));
  $('axis-start').textContent = started ? new Date(t0).toLocaleTimeString() : 'not started';
  $('axis-end').textContent = started ? `${duration(t1 - t0)}${finished ? '' : ' so far'}` : '';
}

// --- Wiring.

function start() {
  $('login').addEventListener('submit', onLogin);
  $('forget-token').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  $('forget-token').hidden = !sessionStorage.getItem(TOKEN_KEY);
  $('phase-filter').addEventListener('change', (event) => {
    state.filter = event.target.value;
    renderTable();
  });
  const open = (event) => {
    const tr = event.target.closest('tr[data-fleet]');
    if (tr) openTimeline(tr.dataset.fleet);
  };
  const body = $('federations').tBodies[0];
  body.addEventListener('click', open);
  body.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') open(event);
  });
  $('timeline-close').addEventListener('click', closeTimeline);
  // Running bars grow and ages tick without waiting for the next event.
  setInterval(() => {
    if (state.selected !== null && state.timelineFollowing) renderTimeline();
  }, 500);
  setInterval(renderTable, 5000);
  followRows();
  const wanted = new URLSearchParams(location.hash.slice(1)).get('fleet');
  if (wanted) openTimeline(wanted);
}

start();
