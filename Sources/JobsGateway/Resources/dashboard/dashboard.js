// The jobs dashboard: plain JavaScript, no framework, no build step.
//
// It talks to the gateway's JSON API (docs/api.md) with `Authorization: Bearer
// <key>` when an API key is set, lists jobs with GET /jobs, and keeps the list
// live from GET /events, a Server-Sent Events stream read with fetch() (an
// EventSource cannot send the Authorization header). The open job's details
// follow GET /jobs/{id}/events.
'use strict';

(() => {
  const KEY_STORAGE = 'jobs-dashboard.api-key';
  const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
  const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
  const STATUS_LABELS = {
    queued: 'Queued', running: 'Running', succeeded: 'Succeeded', failed: 'Failed', cancelled: 'Cancelled',
  };
  const RECONNECT_MS = 1000;
  const STREAM_IDLE_MS = 75000; // no byte (not even a keep-alive) for this long: reconnect
  const WORKERS_REFRESH_MS = 2000; // workers send a heartbeat every 2 s

  const $ = (id) => document.getElementById(id);

  const state = {
    apiKey: readStoredKey(),
    running: false,            // the app (lists, streams, timers) is started
    identity: null,            // GET /whoami
    scopes: new Set(),
    jobTypes: [],
    filters: { statuses: [], type: '' },
    jobs: new Map(),           // id -> latest snapshot shown
    rows: new Map(),           // id -> <tr>
    nextCursor: null,
    listLoaded: false,
    listGeneration: 0,
    listError: null,
    stream: null,              // the /events subscription
    detail: null,              // { id, snapshot, stream }
    pendingCancels: new Set(),
    touched: new Set(),
    workersTimer: null,
    tickTimer: null,
    lastFocus: null,
  };

  // ---------------------------------------------------------------- helpers

  function readStoredKey() {
    try { return localStorage.getItem(KEY_STORAGE) || ''; } catch { return ''; }
  }

  function storeKey(key) {
    try {
      if (key) localStorage.setItem(KEY_STORAGE, key); else localStorage.removeItem(KEY_STORAGE);
    } catch { /* storage unavailable: the key lasts for this page only */ }
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'text') node.textContent = value;
      else if (name === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svgIcon(pathData, className = 'icon') {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    svg.setAttribute('class', className);
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', pathData);
    svg.append(path);
    return svg;
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  function shortID(id) {
    return id.length > 12 ? id.slice(0, 8) : id;
  }

  function queryString(params) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value === undefined || value === null || value === '') continue;
      if (Array.isArray(value)) value.forEach((v) => search.append(name, v));
      else search.append(name, String(value));
    }
    const text = search.toString();
    return text ? `?${text}` : '';
  }

  const numberFormat = new Intl.NumberFormat(undefined);
  function formatNumber(n) { return numberFormat.format(n); }

  function parseTime(value) {
    if (!value) return NaN;
    return Date.parse(value);
  }

  function formatRelative(value) {
    const t = parseTime(value);
    if (Number.isNaN(t)) return '—';
    const seconds = Math.round((Date.now() - t) / 1000);
    if (seconds < 5) return 'just now';
    if (seconds < 60) return `${seconds} s ago`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ago`;
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return `${hours} h ago`;
    return new Date(t).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false });
  }

  // "Nov 23, 16:40:00.120" in local time (the year too when it is not this one).
  function formatAbsolute(value) {
    const t = parseTime(value);
    if (Number.isNaN(t)) return '';
    const d = new Date(t);
    const pad = (n, w = 2) => String(n).padStart(w, '0');
    const dateOptions = { month: 'short', day: 'numeric' };
    if (d.getFullYear() !== new Date().getFullYear()) dateOptions.year = 'numeric';
    const date = d.toLocaleDateString(undefined, dateOptions);
    return `${date}, ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  // Text with `code` spans (as job type summaries have) as nodes.
  function richText(text) {
    const nodes = [];
    String(text || '').split(/(`[^`]+`)/).forEach((piece) => {
      if (!piece) return;
      if (piece.length > 2 && piece.startsWith('`') && piece.endsWith('`')) nodes.push(el('code', {}, piece.slice(1, -1)));
      else nodes.push(document.createTextNode(piece));
    });
    return nodes;
  }

  function formatDuration(ms) {
    if (!Number.isFinite(ms) || ms < 0) return '—';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${String(m % 60).padStart(2, '0')} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }

  function can(scope) {
    return state.scopes.has('admin') || state.scopes.has(scope);
  }

  function isTerminal(snapshot) {
    return TERMINAL.has(snapshot.status);
  }

  // Newest first by createdAt, then by id (descending) for a stable order.
  function compareNewestFirst(a, b) {
    const ta = parseTime(a.createdAt), tb = parseTime(b.createdAt);
    if (ta !== tb) return tb - ta;
    return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
  }

  const statusRank = { queued: 0, running: 1, succeeded: 2, failed: 3, cancelled: 4 };

  // The gateway's own order of a job's snapshots (SnapshotOrder in JobsCore):
  // an ended state beats a live one, then the later attempt, then the state's
  // rank and the sequence within the attempt. Not updatedAt: workers and
  // gateways stamp it with their own clocks, and a worker's clock a few
  // milliseconds behind would make its `running` and `succeeded` look older
  // than the gateway's `queued`.
  function orderKey(snapshot) {
    const rank = statusRank[snapshot.status] ?? 0;
    return isTerminal(snapshot) ? [1, snapshot.attempt, snapshot.sequence, rank]
                                : [0, snapshot.attempt, rank, snapshot.sequence];
  }

  // Is `incoming` older than `current` (so it must not replace it)? Snapshots
  // equal in that order differ only in marks one gateway added (a cancel
  // request, a stall), and its clock orders those.
  function isStale(incoming, current) {
    const a = orderKey(incoming), b = orderKey(current);
    for (let i = 0; i < a.length; i++) {
      if (a[i] !== b[i]) return a[i] < b[i];
    }
    return parseTime(incoming.updatedAt) < parseTime(current.updatedAt);
  }

  function matchesFilters(snapshot) {
    const { statuses, type } = state.filters;
    if (statuses.length && !statuses.includes(snapshot.status)) return false;
    if (type && snapshot.type !== type) return false;
    return true;
  }

  function decodePointer(pointer) {
    return String(pointer).split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  }

  // ------------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  function authHeaders(extra = {}) {
    const headers = { ...extra };
    if (state.apiKey) headers.Authorization = `Bearer ${state.apiKey}`;
    return headers;
  }

  async function readProblem(response) {
    let text = '';
    try { text = await response.text(); } catch { /* body unreadable */ }
    try {
      const body = JSON.parse(text);
      if (body && typeof body === 'object') {
        return { status: response.status, title: body.title || response.statusText, ...body };
      }
    } catch { /* not JSON */ }
    return {
      type: 'about:blank',
      status: response.status,
      title: response.statusText || `HTTP ${response.status}`,
      detail: text.trim().slice(0, 300) || `The gateway answered ${response.status}.`,
    };
  }

  function unreachable(error) {
    return new ApiError(0, {
      title: 'Gateway unreachable',
      detail: `The request did not reach the gateway (${error.message || error}).`,
    });
  }

  async function api(path, { method = 'GET', body, signal } = {}) {
    const headers = authHeaders({ Accept: 'application/json' });
    const init = { method, headers, signal, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (error.name === 'AbortError') throw error;
      throw unreachable(error);
    }
    if (response.ok) {
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    }
    const problem = await readProblem(response);
    if (response.status === 401) onUnauthorized(problem);
    throw new ApiError(response.status, problem);
  }

  // Shows an error the user should know about; 401 has its own prompt.
  function reportError(error, context) {
    if (!error || error.name === 'AbortError') return;
    if (error instanceof ApiError) {
      if (error.status === 401) return;
      const p = error.problem;
      if (error.status === 403) {
        showBanner('Not allowed:', capitalize(p.detail || 'this API key lacks the permission for that action.'), 'forbidden');
      } else {
        showBanner(context ? `${context}: ${p.title}.` : `${p.title}.`, capitalize(p.detail || ''), 'error');
      }
      return;
    }
    console.error(error);
    showBanner(context || 'Unexpected error', String(error.message || error), 'error');
  }

  // --------------------------------------------------------- SSE over fetch

  // A Server-Sent Events parser (the WHATWG event stream format): feed it
  // decoded text; it calls onEvent({type, data, lastEventId}) per frame.
  class SSEParser {
    constructor(lastEventId, onEvent, onRetry) {
      this.buffer = '';
      this.data = [];
      this.type = '';
      this.pendingID = null;
      this.lastEventId = lastEventId;
      this.onEvent = onEvent;
      this.onRetry = onRetry;
    }

    push(text) {
      this.buffer += text;
      let start = 0;
      const buffer = this.buffer;
      for (let i = 0; i < buffer.length; i++) {
        const c = buffer[i];
        if (c !== '\n' && c !== '\r') continue;
        if (c === '\r' && i + 1 === buffer.length) break; // maybe \r\n split across chunks
        const line = buffer.slice(start, i);
        if (c === '\r' && buffer[i + 1] === '\n') i++;
        start = i + 1;
        this.line(line);
      }
      this.buffer = buffer.slice(start);
    }

    line(line) {
      if (line === '') { this.dispatch(); return; }
      if (line[0] === ':') return; // comment: a keep-alive
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
      switch (field) {
        case 'event': this.type = value; break;
        case 'data': this.data.push(value); break;
        case 'id': if (!value.includes('\0')) this.pendingID = value; break;
        case 'retry': if (/^\d+$/.test(value)) this.onRetry?.(Number(value)); break;
        default: break;
      }
    }

    dispatch() {
      if (this.pendingID !== null) { this.lastEventId = this.pendingID; this.pendingID = null; }
      const type = this.type || 'message';
      const data = this.data.join('\n');
      const hasFrame = this.type !== '' || this.data.length > 0;
      this.type = '';
      this.data = [];
      if (hasFrame) this.onEvent({ type, data, lastEventId: this.lastEventId });
    }
  }

  // Reads one SSE response until it ends, the signal aborts, or it stays idle
  // too long. Resolves with the last event id; rejects with ApiError on an
  // error status.
  async function readEventStream(path, { signal, lastEventId, onOpen, onEvent, onRetry }) {
    const attempt = new AbortController();
    const abort = () => attempt.abort();
    signal.addEventListener('abort', abort, { once: true });
    let idleTimer = null;
    const armIdle = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => attempt.abort(), STREAM_IDLE_MS);
    };
    const headers = authHeaders({ Accept: 'text/event-stream' });
    if (lastEventId) headers['Last-Event-ID'] = lastEventId;
    const parser = new SSEParser(lastEventId, onEvent, onRetry);
    try {
      let response;
      try {
        armIdle();
        response = await fetch(path, { headers, signal: attempt.signal, cache: 'no-store' });
      } catch (error) {
        if (error.name === 'AbortError') return parser.lastEventId;
        throw unreachable(error);
      }
      if (!response.ok) {
        const problem = await readProblem(response);
        if (response.status === 401) onUnauthorized(problem);
        throw new ApiError(response.status, problem);
      }
      onOpen?.();
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          armIdle();
          parser.push(decoder.decode(value, { stream: true }));
        }
      } catch (error) {
        if (error.name !== 'AbortError') console.warn('event stream interrupted', path, error);
      }
      return parser.lastEventId;
    } finally {
      clearTimeout(idleTimer);
      signal.removeEventListener('abort', abort);
    }
  }

  // Keeps a stream open: reconnects after each end or failure, sending
  // Last-Event-ID, until stop() or `shouldContinue` says no.
  function openStream(pathFn, handlers) {
    const controller = new AbortController();
    const sub = {
      lastEventId: null,
      opened: false,
      stop: () => controller.abort(),
      get stopped() { return controller.signal.aborted; },
    };
    (async () => {
      let delay = RECONNECT_MS;
      while (!controller.signal.aborted) {
        handlers.onConnecting?.(sub.opened);
        try {
          sub.lastEventId = await readEventStream(pathFn(), {
            signal: controller.signal,
            lastEventId: sub.lastEventId,
            onOpen: () => {
              // A reconnect without an event id to resume from can't have the
              // server replay what was missed: the handler must catch up itself.
              const blind = sub.opened && !sub.lastEventId;
              sub.opened = true;
              handlers.onOpen?.({ blind });
            },
            onEvent: (event) => {
              sub.lastEventId = event.lastEventId;
              handlers.onEvent(event);
            },
            onRetry: (ms) => { delay = Math.max(250, Math.min(ms, 30000)); },
          });
          if (controller.signal.aborted) break;
          if (handlers.shouldContinue && !handlers.shouldContinue()) { controller.abort(); break; }
          handlers.onDisconnect?.(null);
          await sleep(delay, controller.signal);
        } catch (error) {
          if (controller.signal.aborted) break;
          if (error instanceof ApiError && error.status === 401) { controller.abort(); break; }
          const keepTrying = handlers.onDisconnect?.(error) !== false;
          if (!keepTrying) { controller.abort(); break; }
          // Refused outright (4xx): back off longer than after a dropped connection.
          const wait = error instanceof ApiError && error.status >= 400 && error.status < 500 ? 10000 : delay;
          await sleep(wait, controller.signal);
        }
      }
    })();
    return sub;
  }

  // ---------------------------------------------------------------- banner

  function showBanner(title, detail, kind = 'error') {
    const banner = $('problem-banner');
    $('problem-title').textContent = title;
    $('problem-detail').textContent = detail;
    banner.dataset.kind = kind;
    banner.hidden = false;
  }

  function hideBanner() {
    $('problem-banner').hidden = true;
  }

  function toast(message, kind = 'info') {
    const node = el('div', { class: 'toast', 'data-kind': kind, role: kind === 'error' ? 'alert' : 'status' }, message);
    $('toasts').append(node);
    setTimeout(() => {
      node.classList.add('toast-leaving');
      setTimeout(() => node.remove(), 300);
    }, kind === 'error' ? 7000 : 4000);
  }

  function setConnection(kind, text) {
    const node = $('connection');
    node.dataset.state = kind;
    document.body.dataset.stream = kind;
    $('connection-text').textContent = text;
  }

  // ------------------------------------------------------------------ auth

  function showAuth({ title = 'API key required', message, error, dismissable }) {
    const overlay = $('auth-overlay');
    $('auth-title').textContent = title;
    overlay.dataset.dismissable = String(Boolean(dismissable));
    $('auth-message').textContent = message;
    const errorNode = $('api-key-error');
    errorNode.textContent = error || '';
    errorNode.hidden = !error;
    $('api-key-input').setAttribute('aria-invalid', error ? 'true' : 'false');
    $('api-key-cancel').hidden = !dismissable;
    $('api-key-forget').hidden = !state.apiKey;
    const wasHidden = overlay.hidden;
    overlay.hidden = false;
    setInert(true);
    if (wasHidden) {
      $('api-key-input').value = '';
      setTimeout(() => $('api-key-input').focus(), 0);
    }
  }

  function hideAuth() {
    $('auth-overlay').hidden = true;
    setInert(!$('job-detail').hidden);
  }

  function setInert(on) {
    for (const node of [document.querySelector('.topbar'), $('app'), $('problem-banner')]) {
      node.inert = on;
    }
  }

  function onUnauthorized(problem) {
    stopApp();
    document.body.dataset.auth = 'required';
    setConnection('offline', 'Signed out');
    $('identity').hidden = true;
    const hadKey = Boolean(state.apiKey);
    showAuth({
      message: hadKey
        ? 'The gateway refused the saved API key. Enter a valid key to continue.'
        : 'This gateway requires an API key. It is kept in this browser\u2019s local storage and sent as a bearer token.',
      error: hadKey ? capitalize(problem.detail || 'The API key was refused (401).') : '',
      dismissable: false,
    });
  }

  async function authenticate() {
    document.body.dataset.auth = 'checking';
    setConnection('connecting', 'Connecting…');
    let identity;
    try {
      identity = (await api('whoami')).body || {};
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return false;
      reportError(error, 'Could not reach the gateway');
      setConnection('offline', 'Offline');
      document.body.dataset.auth = 'error';
      setTimeout(() => { if (!state.running && document.body.dataset.auth === 'error') authenticate(); }, 5000);
      return false;
    }
    applyIdentity(identity);
    hideAuth();
    hideBanner();
    startApp();
    return true;
  }

  function applyIdentity(identity) {
    state.identity = identity;
    const disabled = identity.authentication === 'disabled';
    state.scopes = new Set(disabled ? ['admin'] : (identity.scopes || []));
    document.body.dataset.auth = disabled ? 'disabled' : 'ok';
    document.body.dataset.scopes = [...state.scopes].join(' ');
    document.body.dataset.canCancel = String(can('cancel'));
    const identityNode = $('identity');
    identityNode.replaceChildren();
    if (disabled) {
      identityNode.append(el('span', { class: 'identity-name' }, 'Authentication off'));
    } else {
      const scopes = [...state.scopes].sort();
      identityNode.append(
        el('span', { class: 'identity-name', title: 'API key name' }, identity.name || 'API key'),
        el('span', { class: 'identity-scopes', title: `Scopes: ${scopes.join(', ')}` }, scopes.join(' · ')),
      );
    }
    identityNode.hidden = false;
    $('change-key-button').hidden = disabled;
    $('change-key-button').title = disabled ? '' : `Signed in as ${identity.name || 'API key'} (${[...state.scopes].sort().join(', ')}). Change the API key.`;
    $('submit-panel').hidden = !can('submit');
    $('new-job-button').hidden = !can('submit');
    for (const [id, snapshot] of state.jobs) updateRow(state.rows.get(id), snapshot);
  }

  function bindAuth() {
    $('api-key-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const input = $('api-key-input');
      const key = input.value.trim();
      if (!key) {
        $('api-key-error').textContent = 'Enter an API key.';
        $('api-key-error').hidden = false;
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return;
      }
      const save = $('api-key-save');
      save.disabled = true;
      save.textContent = 'Checking…';
      const previous = state.apiKey;
      state.apiKey = key;
      storeKey(key);
      stopApp();
      try {
        const ok = await authenticate();
        if (!ok && document.body.dataset.auth === 'required') {
          $('api-key-error').textContent = 'The gateway refused this key (401). Check it and try again.';
          $('api-key-error').hidden = false;
          input.setAttribute('aria-invalid', 'true');
          input.select();
        } else if (!ok && previous && previous !== key) {
          // Unreachable gateway: keep the new key; the retry will use it.
        }
      } finally {
        save.disabled = false;
        save.textContent = 'Save key';
      }
    });
    $('api-key-cancel').addEventListener('click', () => hideAuth());
    $('api-key-forget').addEventListener('click', () => {
      state.apiKey = '';
      storeKey('');
      stopApp();
      hideAuth();
      authenticate();
    });
    $('change-key-button').addEventListener('click', () => {
      showAuth({
        title: 'Change API key',
        message: 'Enter another API key. It replaces the one kept in this browser.',
        dismissable: true,
      });
    });
  }

  // ------------------------------------------------------------- app life

  function startApp() {
    if (state.running) return;
    state.running = true;
    loadJobTypes();
    refreshWorkers();
    state.workersTimer = setInterval(refreshWorkers, WORKERS_REFRESH_MS);
    state.tickTimer = setInterval(tick, 1000);
    relist({ clear: true });
    subscribe();
    openDetailFromHash();
  }

  function stopApp() {
    state.running = false;
    state.stream?.stop();
    state.stream = null;
    // The open detail (if any) stays on screen; startApp reopens it from the URL.
    state.detail?.stream?.stop();
    state.detail = null;
    clearInterval(state.workersTimer);
    clearInterval(state.tickTimer);
    state.listGeneration++;
  }

  // Updates relative times and running durations once a second.
  function tick() {
    for (const node of document.querySelectorAll('[data-rel-time]')) {
      node.textContent = formatRelative(node.dataset.relTime);
    }
    if (state.detail?.snapshot && !$('job-detail').hidden) renderDetail(state.detail.snapshot);
  }

  // ------------------------------------------------------------- job list

  function filterParams() {
    return { status: state.filters.statuses, type: state.filters.type };
  }

  async function relist({ clear }) {
    const generation = ++state.listGeneration;
    state.touched = new Set(); // jobs the stream changed since this re-list began
    if (clear) {
      state.jobs.clear();
      state.rows.clear();
      $('jobs-body').replaceChildren();
    }
    state.listLoaded = false;
    state.listError = null;
    state.nextCursor = null;
    updateListChrome();
    try {
      // No `limit`: the gateway's default page fits whatever --max-page-size it runs with.
      const { body } = await api(`jobs${queryString(filterParams())}`);
      if (generation !== state.listGeneration) return;
      const listed = new Set(body.jobs.map((s) => s.id));
      if (!clear) {
        // A reset: drop rows the fresh list no longer has, unless the stream
        // changed them since this re-list began.
        for (const [id, snapshot] of state.jobs) {
          if (!listed.has(id) && !state.touched.has(id)) removeRow(id);
        }
      }
      for (const snapshot of body.jobs) mergeSnapshot(snapshot, 'list');
      state.nextCursor = body.nextCursor || null;
      state.listLoaded = true;
    } catch (error) {
      if (generation !== state.listGeneration) return;
      state.listLoaded = true;
      state.listError = error instanceof ApiError ? (error.problem.detail || error.problem.title) : String(error.message || error);
      reportError(error, 'Could not list jobs');
    }
    updateListChrome();
  }

  async function loadMore() {
    if (!state.nextCursor) return;
    const generation = state.listGeneration;
    const button = $('load-more');
    button.disabled = true;
    button.textContent = 'Loading…';
    try {
      const { body } = await api(`jobs${queryString({ ...filterParams(), cursor: state.nextCursor })}`);
      if (generation !== state.listGeneration) return;
      for (const snapshot of body.jobs) mergeSnapshot(snapshot, 'list');
      state.nextCursor = body.nextCursor || null;
    } catch (error) {
      reportError(error, 'Could not load more jobs');
    } finally {
      button.disabled = false;
      button.textContent = 'Load more';
      updateListChrome();
    }
  }

  // The stream is filtered by type only, and statuses here (mergeSnapshot
  // inserts only matching jobs): a row that leaves the status filter stays
  // shown with its new status until the list is reloaded, rather than
  // vanishing under the reader's eyes.
  function subscribe() {
    state.stream?.stop();
    const filters = { type: state.filters.type };
    const sub = openStream(() => `events${queryString(filters)}`, {
      onConnecting: (reconnecting) => setConnection('connecting', reconnecting ? 'Reconnecting…' : 'Connecting…'),
      onOpen: ({ blind }) => {
        setConnection('live', 'Live');
        if (blind && sub === state.stream) relist({ clear: false });
      },
      onDisconnect: (error) => {
        if (error instanceof ApiError && error.status === 403) {
          setConnection('error', 'No live updates');
          reportError(error);
          return false;
        }
        setConnection('connecting', 'Reconnecting…');
        return true;
      },
      onEvent: (event) => {
        if (sub !== state.stream) return;
        if (event.type === 'reset') { relist({ clear: false }); return; }
        if (event.type !== 'job' && event.type !== 'message') return;
        let snapshot;
        try { snapshot = JSON.parse(event.data); } catch { console.warn('unreadable event', event.data); return; }
        if (snapshot && snapshot.id) mergeSnapshot(snapshot, 'stream');
      },
    });
    state.stream = sub;
  }

  function oldestShown() {
    let oldest = null;
    for (const snapshot of state.jobs.values()) {
      if (!oldest || compareNewestFirst(snapshot, oldest) > 0) oldest = snapshot;
    }
    return oldest;
  }

  // Puts a snapshot into the list: replaces the row of the same job unless it
  // is older, or inserts a new row in createdAt order when it belongs there.
  function mergeSnapshot(snapshot, source) {
    if (source !== 'list') state.touched.add(snapshot.id);
    const current = state.jobs.get(snapshot.id);
    if (current) {
      if (isStale(snapshot, current)) return;
      state.jobs.set(snapshot.id, snapshot);
      updateRow(state.rows.get(snapshot.id), snapshot, current);
    } else if (source === 'list' || matchesFilters(snapshot)) {
      if (source !== 'list' && state.listLoaded && state.nextCursor) {
        // Older than every job shown while older pages exist: it belongs to a page not loaded.
        const oldest = oldestShown();
        if (oldest && compareNewestFirst(snapshot, oldest) > 0) return;
      }
      state.jobs.set(snapshot.id, snapshot);
      insertRow(snapshot, source !== 'list');
      updateListChrome();
    }
    if (state.detail && state.detail.id === snapshot.id) {
      const shown = state.detail.snapshot;
      if (!shown || !isStale(snapshot, shown)) {
        state.detail.snapshot = snapshot;
        renderDetail(snapshot);
      }
    }
  }

  function removeRow(id) {
    state.jobs.delete(id);
    state.rows.get(id)?.remove();
    state.rows.delete(id);
  }

  function insertRow(snapshot, highlight) {
    const row = createRow(snapshot);
    updateRow(row, snapshot);
    const body = $('jobs-body');
    let before = null;
    for (const other of body.children) {
      const otherSnapshot = state.jobs.get(other.dataset.jobId);
      if (otherSnapshot && compareNewestFirst(snapshot, otherSnapshot) < 0) { before = other; break; }
    }
    body.insertBefore(row, before);
    state.rows.set(snapshot.id, row);
    if (highlight) {
      row.classList.add('row-new');
      setTimeout(() => row.classList.remove('row-new'), 2500);
    }
  }

  function createRow(snapshot) {
    const row = el('tr', { class: 'job-row', dataset: { jobId: snapshot.id } });
    const badge = el('span', { class: 'badge', 'data-role': 'badge' });
    const flags = el('span', { class: 'flags', 'data-role': 'flags' });
    const open = el('button', {
      type: 'button', class: 'job-open', 'data-action': 'open', 'data-role': 'open',
    });
    const idLine = el('span', { class: 'job-id mono', 'data-role': 'id', title: snapshot.id }, shortID(snapshot.id));
    const bar = el('div', {
      class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'data-role': 'progress',
    }, el('div', { class: 'progress-fill' }));
    const progressText = el('span', { class: 'progress-text', 'data-role': 'progress-text' });
    const created = el('time', { 'data-role': 'created' });
    const worker = el('span', { class: 'worker mono', 'data-role': 'worker' });
    const cancel = el('button', {
      type: 'button', class: 'button button-danger-ghost button-small', 'data-action': 'cancel', 'data-role': 'cancel',
    }, 'Cancel');
    row.append(
      el('td', { class: 'col-status' }, badge, flags),
      el('td', { class: 'col-job' }, open, idLine),
      el('td', { class: 'col-progress' }, el('div', { class: 'progress-wrap' }, bar, progressText)),
      el('td', { class: 'col-created' }, created),
      el('td', { class: 'col-worker' }, worker),
      el('td', { class: 'col-actions' }, cancel),
    );
    return row;
  }

  function part(row, role) {
    return row.querySelector(`[data-role="${role}"]`);
  }

  function renderProgress(bar, textNode, snapshot) {
    const progress = snapshot.progress;
    const fill = bar.firstElementChild;
    const label = `Progress of job ${shortID(snapshot.id)}`;
    bar.setAttribute('aria-label', label);
    bar.dataset.status = snapshot.status;
    if (progress && Number.isFinite(progress.total) && progress.total > 0) {
      const current = Math.max(0, Math.min(progress.current ?? 0, progress.total));
      bar.setAttribute('aria-valuemax', String(progress.total));
      bar.setAttribute('aria-valuenow', String(progress.current ?? 0));
      bar.setAttribute('aria-valuetext', `${progress.current ?? 0} of ${progress.total}${progress.message ? `: ${progress.message}` : ''}`);
      bar.dataset.mode = 'determinate';
      fill.style.width = `${(current / progress.total) * 100}%`;
      textNode.textContent = `${formatNumber(progress.current ?? 0)} / ${formatNumber(progress.total)}`;
      textNode.title = progress.message || '';
    } else {
      bar.removeAttribute('aria-valuenow');
      bar.removeAttribute('aria-valuemax');
      if (snapshot.status === 'running') {
        bar.dataset.mode = 'indeterminate';
        bar.setAttribute('aria-valuetext', progress?.message || 'running');
        fill.style.width = '';
        textNode.textContent = progress ? formatNumber(progress.current ?? 0) : '';
      } else if (snapshot.status === 'succeeded') {
        bar.dataset.mode = 'complete';
        bar.setAttribute('aria-valuetext', 'done');
        fill.style.width = '100%';
        textNode.textContent = '';
      } else if (snapshot.status === 'queued') {
        bar.dataset.mode = 'empty';
        bar.setAttribute('aria-valuetext', 'waiting');
        fill.style.width = '0%';
        textNode.textContent = '';
      } else {
        // Ended without reporting progress: nothing to show.
        bar.dataset.mode = 'none';
        bar.setAttribute('aria-valuetext', 'no progress reported');
        fill.style.width = '0%';
        textNode.textContent = '';
      }
      textNode.title = progress?.message || '';
    }
  }

  function renderFlags(container, snapshot) {
    container.replaceChildren();
    if (snapshot.stalled) container.append(el('span', { class: 'flag flag-stalled', title: 'Its worker stopped sending heartbeats' }, 'stalled'));
    if (snapshot.cancelRequested && !isTerminal(snapshot)) container.append(el('span', { class: 'flag flag-cancel' }, 'cancelling'));
    if (snapshot.attempt > 1) container.append(el('span', { class: 'flag', title: `Attempt ${snapshot.attempt}` }, `try ${snapshot.attempt}`));
  }

  function updateRow(row, snapshot) {
    if (!row) return;
    row.dataset.status = snapshot.status;
    row.dataset.type = snapshot.type;
    row.classList.toggle('is-stalled', Boolean(snapshot.stalled));
    const badge = part(row, 'badge');
    badge.dataset.status = snapshot.status;
    badge.textContent = STATUS_LABELS[snapshot.status] || snapshot.status;
    renderFlags(part(row, 'flags'), snapshot);
    const open = part(row, 'open');
    open.textContent = snapshot.type;
    open.setAttribute('aria-label', `Open ${snapshot.type} job ${shortID(snapshot.id)}`);
    renderProgress(part(row, 'progress'), part(row, 'progress-text'), snapshot);
    const created = part(row, 'created');
    created.dateTime = snapshot.createdAt;
    created.dataset.relTime = snapshot.createdAt;
    created.title = formatAbsolute(snapshot.createdAt);
    created.textContent = formatRelative(snapshot.createdAt);
    const worker = part(row, 'worker');
    worker.textContent = snapshot.workerID || '—';
    worker.title = snapshot.workerID || '';
    updateCancelButton(part(row, 'cancel'), snapshot);
  }

  function updateCancelButton(button, snapshot) {
    if (!button) return;
    button.hidden = isTerminal(snapshot) || !can('cancel');
    const pending = state.pendingCancels.has(snapshot.id);
    const requested = snapshot.cancelRequested;
    button.disabled = pending || requested;
    button.textContent = pending || requested ? 'Cancelling…' : 'Cancel';
    button.setAttribute('aria-label', `${requested ? 'Cancelling' : 'Cancel'} job ${shortID(snapshot.id)}`);
  }

  function updateListChrome() {
    const count = state.jobs.size;
    $('jobs-empty').hidden = !state.listLoaded || count > 0;
    $('jobs-loading').hidden = state.listLoaded || count > 0;
    $('jobs-table').dataset.empty = String(count === 0);
    $('load-more').hidden = !state.nextCursor;
    const emptyTitle = $('jobs-empty').querySelector('.empty-title');
    const filtered = state.filters.statuses.length > 0 || state.filters.type !== '';
    emptyTitle.textContent = state.listError ? 'Jobs could not be listed'
      : filtered ? 'No jobs match these filters' : 'No jobs yet';
    $('jobs-empty').querySelector('.muted').textContent = state.listError
      ? capitalize(state.listError)
      : 'Jobs matching the filters appear here as soon as they are submitted.';
    $('jobs-count').textContent = (state.listLoaded && !state.listError) || count
      ? `${formatNumber(count)} shown${state.nextCursor ? ', more below' : ''}`
      : '';
  }

  async function cancelJob(id) {
    if (state.pendingCancels.has(id)) return;
    state.pendingCancels.add(id);
    refreshCancelButtons(id);
    try {
      const { body } = await api(`jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
      if (body) mergeSnapshot(body, 'action');
      toast(body?.status === 'cancelled' ? `Job ${shortID(id)} cancelled` : `Cancel requested for job ${shortID(id)}`, 'success');
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) {
        toast(error.problem.detail || 'The job already ended.', 'error');
        refreshJob(id);
      } else if (error instanceof ApiError && error.status === 404) {
        toast(error.problem.detail || 'No such job.', 'error');
      } else {
        reportError(error, 'Could not cancel the job');
      }
    } finally {
      state.pendingCancels.delete(id);
      refreshCancelButtons(id);
    }
  }

  function refreshCancelButtons(id) {
    const snapshot = state.jobs.get(id) || (state.detail?.id === id ? state.detail.snapshot : null);
    if (!snapshot) return;
    const row = state.rows.get(id);
    if (row) updateCancelButton(part(row, 'cancel'), snapshot);
    if (state.detail?.id === id) updateCancelButton($('job-detail').querySelector('[data-action="cancel"]'), snapshot);
  }

  async function refreshJob(id) {
    try {
      const { body } = await api(`jobs/${encodeURIComponent(id)}`);
      if (body) mergeSnapshot(body, 'action');
    } catch (error) {
      reportError(error);
    }
  }

  function bindList() {
    $('jobs-body').addEventListener('click', (event) => {
      const row = event.target.closest('tr[data-job-id]');
      if (!row) return;
      const action = event.target.closest('[data-action]');
      if (action?.dataset.action === 'cancel') {
        event.stopPropagation();
        cancelJob(row.dataset.jobId);
        return;
      }
      if (event.target.closest('a, input, select')) return;
      openDetail(row.dataset.jobId);
    });
    $('load-more').addEventListener('click', loadMore);
    $('filters').addEventListener('change', () => {
      const form = $('filters');
      state.filters = {
        statuses: [...form.querySelectorAll('input[name="status"]:checked')].map((i) => i.value),
        type: $('filter-type').value,
      };
      if (!state.running) return;
      relist({ clear: true });
      subscribe();
    });
    $('filters').addEventListener('submit', (event) => event.preventDefault());
  }

  // ------------------------------------------------------------ job types

  async function loadJobTypes() {
    try {
      const { body } = await api('job-types');
      state.jobTypes = (body.jobTypes || []).slice().sort((a, b) => a.name.localeCompare(b.name));
    } catch (error) {
      reportError(error, 'Could not load the job types');
      $('submit-type').replaceChildren(el('option', { value: '' }, 'Job types unavailable'));
      $('submit-type').disabled = true;
      $('submit-params').hidden = true;
      return;
    }
    const filter = $('filter-type');
    const selected = filter.value;
    filter.replaceChildren(el('option', { value: '' }, 'All types'),
      ...state.jobTypes.map((t) => el('option', { value: t.name }, t.name)));
    filter.value = state.jobTypes.some((t) => t.name === selected) ? selected : '';

    const select = $('submit-type');
    const previous = select.value;
    select.replaceChildren(...state.jobTypes.map((t) => el('option', { value: t.name }, t.name)));
    if (!state.jobTypes.length) {
      select.append(el('option', { value: '' }, 'No job types'));
      select.disabled = true;
    } else {
      select.disabled = false;
      const preferred = state.jobTypes.find((t) => t.name === previous)
        || state.jobTypes.find((t) => Object.keys(t.paramsSchema?.properties || {}).length > 0)
        || state.jobTypes[0];
      select.value = preferred.name;
    }
    renderParamsFields();
  }

  // -------------------------------------------------------------- submit

  function selectedJobType() {
    return state.jobTypes.find((t) => t.name === $('submit-type').value) || null;
  }

  function describeConstraints(property) {
    const parts = [];
    const { minimum, maximum } = property;
    if (property.type === 'integer' || property.type === 'number') {
      const kind = property.type === 'integer' ? 'integer' : 'number';
      if (minimum !== undefined && maximum !== undefined) parts.push(`${kind} · ${formatNumber(minimum)}–${formatNumber(maximum)}`);
      else if (minimum !== undefined) parts.push(`${kind} · ≥ ${formatNumber(minimum)}`);
      else if (maximum !== undefined) parts.push(`${kind} · ≤ ${formatNumber(maximum)}`);
      else parts.push(kind);
    }
    if (property.type === 'string') {
      if (!Array.isArray(property.enum)) parts.push('text');
      if (property.maxLength !== undefined) parts.push(`≤ ${formatNumber(property.maxLength)} chars`);
      if (property.pattern) parts.push(`matches ${property.pattern}`);
    }
    if (property.type === 'boolean') parts.push('true / false');
    return parts.join(' · ');
  }

  function renderParamsFields() {
    const container = $('submit-params-fields');
    container.replaceChildren();
    const jobType = selectedJobType();
    $('submit-type-summary').replaceChildren(...richText(jobType?.summary));
    clearSubmitErrors();
    const schema = jobType?.paramsSchema || {};
    const properties = schema.properties || {};
    const required = new Set(schema.required || []);
    const names = Object.keys(properties);
    // Required first, then by name: a JSON object's key order is not reliable.
    names.sort((a, b) => (Number(required.has(b)) - Number(required.has(a))) || a.localeCompare(b));
    $('submit-params').hidden = !jobType;
    if (!names.length) {
      container.append(el('p', { class: 'hint no-params' }, 'This job type takes no parameters.'));
      return;
    }
    for (const name of names) container.append(paramField(name, properties[name] || {}, required.has(name)));
  }

  function paramField(name, property, isRequired) {
    const id = `param-${name}`;
    const hintID = `${id}-hint`;
    const errorID = `${id}-error`;
    const constraints = describeConstraints(property);
    const label = el('div', { class: 'field-label' },
      el('label', { for: id }, name,
        isRequired ? el('span', { class: 'required', 'aria-hidden': 'true' }, ' *') : null),
      constraints ? el('span', { class: 'constraint', id: `${id}-constraint`, title: constraints }, constraints) : null);
    const common = {
      id, name: id, 'data-param': name, 'data-kind': property.type,
      'aria-describedby': `${constraints ? `${id}-constraint ` : ''}${hintID} ${errorID}`, required: isRequired || undefined,
    };
    let input;
    if (property.type === 'boolean') {
      if (isRequired) {
        input = el('input', { ...common, type: 'checkbox', class: 'checkbox' });
      } else {
        input = el('select', common,
          el('option', { value: '' }, 'default'),
          el('option', { value: 'true' }, 'true'),
          el('option', { value: 'false' }, 'false'));
      }
    } else if (property.type === 'string' && Array.isArray(property.enum)) {
      input = el('select', common,
        isRequired ? null : el('option', { value: '' }, 'default'),
        ...property.enum.map((v) => el('option', { value: v }, v)));
    } else if (property.type === 'integer' || property.type === 'number') {
      input = el('input', {
        ...common, type: 'number',
        inputmode: property.type === 'integer' ? 'numeric' : 'decimal',
        step: property.type === 'integer' ? '1' : 'any',
        min: property.minimum, max: property.maximum,
        placeholder: property.description?.match(/default ([^)\s]+)/)?.[1],
      });
    } else {
      input = el('input', {
        ...common, type: 'text', autocomplete: 'off', spellcheck: 'false',
        maxlength: property.maxLength,
      });
    }
    const field = el('div', { class: `field${property.type === 'boolean' && isRequired ? ' field-checkbox' : ''}`, 'data-field': name },
      label, input,
      el('p', { id: hintID, class: 'hint' }, ...richText(property.description)),
      el('p', { id: errorID, class: 'field-error', hidden: true }));
    if (property.type === 'boolean' && isRequired) {
      // A required boolean is a checkbox before its label.
      const labelNode = label.querySelector('label');
      label.insertBefore(input, labelNode);
    }
    return field;
  }

  // Reads the form into a request body, checking what the schema allows;
  // returns { body, errors } with errors as [{ pointer, detail }].
  function readSubmitForm() {
    const errors = [];
    const jobType = selectedJobType();
    if (!jobType) {
      errors.push({ pointer: '/type', detail: 'Choose a job type.' });
      return { errors };
    }
    const schema = jobType.paramsSchema || {};
    const properties = schema.properties || {};
    const required = new Set(schema.required || []);
    const params = {};
    for (const [name, property] of Object.entries(properties)) {
      const input = document.getElementById(`param-${name}`);
      if (!input) continue;
      const pointer = `/params/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      if (property.type === 'boolean') {
        if (input.type === 'checkbox') params[name] = input.checked;
        else if (input.value !== '') params[name] = input.value === 'true';
        continue;
      }
      const raw = input.value;
      if (property.type === 'integer' || property.type === 'number') {
        const text = raw.trim();
        if (text === '') {
          if (input.validity?.badInput) errors.push({ pointer, detail: 'must be a number' });
          else if (required.has(name)) errors.push({ pointer, detail: 'is required' });
          continue;
        }
        const n = Number(text);
        if (!Number.isFinite(n)) { errors.push({ pointer, detail: 'must be a number' }); continue; }
        if (property.type === 'integer' && !Number.isInteger(n)) { errors.push({ pointer, detail: 'must be a whole number' }); continue; }
        if (property.minimum !== undefined && n < property.minimum) { errors.push({ pointer, detail: `must be at least ${formatNumber(property.minimum)}` }); continue; }
        if (property.maximum !== undefined && n > property.maximum) { errors.push({ pointer, detail: `must be at most ${formatNumber(property.maximum)}` }); continue; }
        params[name] = n;
        continue;
      }
      // string
      if (raw === '') {
        if (required.has(name)) errors.push({ pointer, detail: 'is required' });
        continue;
      }
      if (property.maxLength !== undefined && [...raw].length > property.maxLength) {
        errors.push({ pointer, detail: `must be at most ${formatNumber(property.maxLength)} characters` });
        continue;
      }
      if (Array.isArray(property.enum) && !property.enum.includes(raw)) {
        errors.push({ pointer, detail: `must be one of ${property.enum.join(', ')}` });
        continue;
      }
      if (property.pattern) {
        let regex = null;
        try { regex = new RegExp(property.pattern, 'u'); } catch { /* the gateway checks it */ }
        if (regex && !regex.test(raw)) { errors.push({ pointer, detail: `must match the pattern ${property.pattern}` }); continue; }
      }
      params[name] = raw;
    }
    const body = { type: jobType.name };
    if (Object.keys(params).length) body.params = params;

    const integerOption = (name, min, max) => {
      const input = $(`submit-${name}`);
      const text = input.value.trim();
      if (text === '') {
        if (input.validity?.badInput) errors.push({ pointer: `/${name}`, detail: 'must be a whole number' });
        return;
      }
      const n = Number(text);
      if (!Number.isInteger(n)) errors.push({ pointer: `/${name}`, detail: 'must be a whole number' });
      else if (n < min || n > max) errors.push({ pointer: `/${name}`, detail: `must be between ${formatNumber(min)} and ${formatNumber(max)}` });
      else body[name] = n;
    };
    integerOption('maxAttempts', 1, 100);
    integerOption('timeoutMs', 1, 604800000);
    const orderingKey = $('submit-orderingKey').value;
    if (orderingKey !== '') {
      if ([...orderingKey].length > 255) errors.push({ pointer: '/orderingKey', detail: 'must be at most 255 characters' });
      else body.orderingKey = orderingKey;
    }
    return { body, errors };
  }

  function fieldForPointer(pointer) {
    const parts = decodePointer(pointer);
    if (parts.length === 1 && parts[0] === 'type') return $('submit-type');
    if (parts.length === 1 && ['maxAttempts', 'timeoutMs', 'orderingKey'].includes(parts[0])) return $(`submit-${parts[0]}`);
    if (parts.length === 2 && parts[0] === 'params') return document.getElementById(`param-${parts[1]}`);
    return null;
  }

  function clearSubmitErrors() {
    for (const node of $('submit-form').querySelectorAll('.field-error')) { node.hidden = true; node.textContent = ''; }
    for (const node of $('submit-form').querySelectorAll('[aria-invalid="true"]')) node.removeAttribute('aria-invalid');
    $('submit-error').hidden = true;
    $('submit-error').textContent = '';
  }

  // Shows errors next to their fields; returns those that have no field.
  function showFieldErrors(errors) {
    const unplaced = [];
    let first = null;
    for (const error of errors) {
      const field = fieldForPointer(error.pointer ?? '');
      const errorNode = field && document.getElementById(`${field.id}-error`);
      if (!errorNode) { unplaced.push(error); continue; }
      errorNode.textContent = errorNode.textContent ? `${errorNode.textContent}; ${error.detail}` : capitalize(error.detail);
      errorNode.hidden = false;
      field.setAttribute('aria-invalid', 'true');
      if (field.closest('details')) field.closest('details').open = true;
      first = first || field;
    }
    first?.focus();
    return unplaced;
  }

  function capitalize(text) {
    const s = String(text || '');
    return s ? s[0].toUpperCase() + s.slice(1) : s;
  }

  function showFormError(message, extra = []) {
    const node = $('submit-error');
    node.replaceChildren(el('span', {}, message));
    if (extra.length) {
      node.append(el('ul', {}, ...extra.map((e) => el('li', {}, e.pointer ? `${e.pointer}: ${e.detail}` : e.detail))));
    }
    node.hidden = false;
  }

  async function submitJob(event) {
    event.preventDefault();
    clearSubmitErrors();
    const { body, errors } = readSubmitForm();
    if (errors.length) {
      const unplaced = showFieldErrors(errors);
      showFormError('Fix the highlighted fields.', unplaced);
      return;
    }
    const button = $('submit-button');
    button.disabled = true;
    button.textContent = 'Submitting…';
    try {
      const { status, body: snapshot } = await api('jobs', { method: 'POST', body });
      $('submit-form').dataset.lastJobId = snapshot.id;
      mergeSnapshot(snapshot, 'submit');
      const hidden = !matchesFilters(snapshot) ? ' (hidden by the current filters)' : '';
      toast(`${status === 200 ? 'Existing' : 'Submitted'} ${snapshot.type} job ${shortID(snapshot.id)}${hidden}`, 'success');
    } catch (error) {
      if (error instanceof ApiError && error.status !== 401 && error.status !== 403 && error.status !== 0) {
        const problem = error.problem;
        const unplaced = showFieldErrors(Array.isArray(problem.errors) ? problem.errors : []);
        showFormError(problem.detail || problem.title, unplaced.filter((e) => e.detail && !(problem.detail || '').includes(e.detail)));
      } else if (error instanceof ApiError && error.status === 403) {
        showFormError(error.problem.detail || 'This API key may not submit jobs.');
        reportError(error);
      } else if (error instanceof ApiError && error.status === 0) {
        showFormError(error.problem.detail);
      } else {
        reportError(error, 'Could not submit the job');
      }
    } finally {
      button.disabled = false;
      button.textContent = 'Submit job';
    }
  }

  function bindSubmit() {
    $('submit-type').addEventListener('change', renderParamsFields);
    $('submit-form').addEventListener('submit', submitJob);
    const clearFieldError = (event) => {
      const field = event.target;
      if (field.getAttribute('aria-invalid') === 'true') {
        field.removeAttribute('aria-invalid');
        const errorNode = document.getElementById(`${field.id}-error`);
        if (errorNode) { errorNode.hidden = true; errorNode.textContent = ''; }
        if (!$('submit-form').querySelector('[aria-invalid="true"]')) $('submit-error').hidden = true;
      }
    };
    $('submit-form').addEventListener('input', clearFieldError);
    $('submit-form').addEventListener('change', clearFieldError);
    $('new-job-button').addEventListener('click', () => {
      $('submit-panel').scrollIntoView({ behavior: 'smooth', block: 'start' });
      $('submit-type').focus({ preventScroll: true });
    });
  }

  // -------------------------------------------------------------- workers

  async function refreshWorkers() {
    if (!state.running || document.hidden || state.workersLoading) return;
    state.workersLoading = true;
    try { await loadWorkers(); } finally { state.workersLoading = false; }
  }

  async function loadWorkers() {
    let workers;
    try {
      workers = (await api('workers')).body?.workers || [];
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) {
        $('workers-empty').textContent = capitalize(error.problem.detail || 'This API key may not list workers.');
        $('workers-empty').hidden = false;
        $('workers-list').replaceChildren();
        return;
      }
      if (error.name !== 'AbortError') console.warn('workers', error);
      return;
    }
    renderWorkers(workers);
  }

  function renderWorkers(workers) {
    const list = $('workers-list');
    const sorted = workers.slice().sort((a, b) => (Number(b.alive) - Number(a.alive)) || a.workerID.localeCompare(b.workerID));
    list.replaceChildren(...sorted.map(workerItem));
    $('workers-empty').textContent = 'No worker has sent a heartbeat yet.';
    $('workers-empty').hidden = sorted.length > 0;
    const alive = sorted.filter((w) => w.alive);
    const running = alive.reduce((n, w) => n + (w.runningJobs?.length || 0), 0);
    const capacity = alive.reduce((n, w) => n + (w.concurrency || 0), 0);
    $('workers-summary').textContent = sorted.length
      ? `${alive.length} alive · ${formatNumber(running)} / ${formatNumber(capacity)} slots busy`
      : '';
  }

  function workerItem(worker) {
    const running = worker.runningJobs?.length || 0;
    const concurrency = worker.concurrency || 0;
    const ratio = concurrency > 0 ? Math.min(1, running / concurrency) : 0;
    const stateName = worker.alive ? 'alive' : worker.stopped ? 'stopped' : 'silent';
    const stateLabel = worker.alive ? 'Alive' : worker.stopped ? 'Stopped' : 'Not responding';
    const meter = el('div', {
      class: 'meter', role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': String(concurrency),
      'aria-valuenow': String(running), 'aria-label': `Load of ${worker.workerID}`,
      'aria-valuetext': `${running} of ${concurrency} slots busy`,
      'data-level': ratio >= 0.9 ? 'high' : ratio >= 0.6 ? 'medium' : 'low',
    }, el('div', { class: 'meter-fill', style: `width: ${ratio * 100}%` }));
    const heartbeat = el('time', {
      datetime: worker.lastHeartbeatAt, 'data-rel-time': worker.lastHeartbeatAt, title: formatAbsolute(worker.lastHeartbeatAt),
    }, formatRelative(worker.lastHeartbeatAt));
    return el('li', { class: 'worker-card', dataset: { workerId: worker.workerID, alive: String(Boolean(worker.alive)), state: stateName } },
      el('div', { class: 'worker-head' },
        el('span', { class: 'worker-dot', 'aria-hidden': 'true' }),
        el('span', { class: 'worker-name mono', title: worker.workerID }, worker.workerID),
        el('span', { class: 'worker-state' }, stateLabel)),
      el('div', { class: 'worker-load' }, meter,
        el('span', { class: 'worker-load-text' }, `${formatNumber(running)} / ${formatNumber(concurrency)} running`)),
      el('div', { class: 'worker-meta' },
        el('span', { class: 'worker-types' }, ...(worker.jobTypes || []).map((t) => el('span', { class: 'tag' }, t))),
        el('span', { class: 'muted small' }, 'heartbeat ', heartbeat)));
  }

  // --------------------------------------------------------------- detail

  const DETAIL_FIELDS = [
    ['status', 'Status'], ['attempt', 'Attempt'], ['worker', 'Worker'], ['cancelRequested', 'Cancel requested'],
    ['stalled', 'Stalled'], ['timeout', 'Timeout'], ['orderingKey', 'Ordering key'], ['idempotencyKey', 'Idempotency key'],
  ];
  const TIMING_FIELDS = [
    ['createdAt', 'Created'], ['startedAt', 'Started'], ['finishedAt', 'Finished'], ['updatedAt', 'Updated'],
    ['waited', 'Waited'], ['ran', 'Ran for'],
  ];

  function buildDetailSkeleton(id) {
    const body = $('detail-body');
    const dl = (fields, role) => el('dl', { class: 'facts', 'data-role': role },
      ...fields.flatMap(([key, label]) => [
        el('dt', { 'data-fact': key }, label),
        el('dd', { 'data-fact-value': key }),
      ]));
    const cancel = el('button', {
      type: 'button', class: 'button button-danger', 'data-action': 'cancel', 'data-job-id': id,
    }, 'Cancel');
    body.replaceChildren(
      el('div', { class: 'detail-status' },
        el('span', { class: 'badge badge-large', 'data-role': 'badge' }),
        el('span', { class: 'flags', 'data-role': 'flags' }),
        el('span', { class: 'spacer' }),
        cancel),
      el('section', { class: 'detail-section', 'data-section': 'progress' },
        el('h3', {}, 'Progress'),
        el('div', { class: 'progress progress-large', role: 'progressbar', 'aria-valuemin': '0', 'data-role': 'progress' },
          el('div', { class: 'progress-fill' })),
        el('p', { class: 'progress-caption' },
          el('span', { 'data-role': 'progress-text', class: 'progress-text' }),
          el('span', { 'data-role': 'progress-message', class: 'muted' }))),
      el('section', { class: 'detail-section', 'data-section': 'error', hidden: true },
        el('h3', {}, 'Error'),
        el('div', { class: 'error-box' },
          el('code', { 'data-role': 'error-code' }),
          el('p', { 'data-role': 'error-message' }))),
      el('section', { class: 'detail-section' }, el('h3', {}, 'Overview'), dl(DETAIL_FIELDS, 'facts')),
      el('section', { class: 'detail-section' }, el('h3', {}, 'Timings'), dl(TIMING_FIELDS, 'timings')),
      el('section', { class: 'detail-section' }, el('h3', {}, 'Params'), el('pre', { class: 'json', 'data-role': 'params', tabindex: '0' })),
      el('section', { class: 'detail-section', 'data-section': 'result' }, el('h3', {}, 'Result'), el('pre', { class: 'json', 'data-role': 'result', tabindex: '0' })),
    );
  }

  // Writes text only when it changed, so a selection in it survives updates.
  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }

  function setFact(name, value, { hidden = false, title } = {}) {
    const drawer = $('job-detail');
    const dt = drawer.querySelector(`[data-fact="${name}"]`);
    const dd = drawer.querySelector(`[data-fact-value="${name}"]`);
    if (!dt || !dd) return;
    dt.hidden = hidden;
    dd.hidden = hidden;
    if (value instanceof Node) dd.replaceChildren(value); else setText(dd, value);
    if (title) dd.title = title; else dd.removeAttribute('title');
  }

  function timeFact(name, value) {
    if (!value) { setFact(name, '—'); return; }
    setFact(name, formatAbsolute(value), { title: value });
  }

  function renderDetail(snapshot) {
    const drawer = $('job-detail');
    if (drawer.hidden || drawer.dataset.jobId !== snapshot.id) return;
    drawer.dataset.status = snapshot.status;
    $('detail-title').textContent = `${snapshot.type} job`;
    $('detail-id').textContent = snapshot.id;
    const q = (role) => drawer.querySelector(`[data-role="${role}"]`);
    const badge = q('badge');
    badge.dataset.status = snapshot.status;
    badge.textContent = STATUS_LABELS[snapshot.status] || snapshot.status;
    renderFlags(q('flags'), snapshot);
    updateCancelButton(drawer.querySelector('[data-action="cancel"]'), snapshot);
    renderProgress(q('progress'), q('progress-text'), snapshot);
    drawer.querySelector('[data-section="progress"]').hidden = q('progress').dataset.mode === 'none';
    q('progress-message').textContent = snapshot.progress?.message || (snapshot.status === 'queued' ? 'Waiting for a worker' : '');

    const errorSection = drawer.querySelector('[data-section="error"]');
    errorSection.hidden = !snapshot.error;
    if (snapshot.error) {
      q('error-code').textContent = snapshot.error.code || 'error';
      q('error-message').textContent = snapshot.error.message || '';
    }

    setFact('status', STATUS_LABELS[snapshot.status] || snapshot.status);
    setFact('attempt', snapshot.maxAttempts ? `${snapshot.attempt} of ${snapshot.maxAttempts}` : String(snapshot.attempt));
    setFact('worker', snapshot.workerID || '—');
    setFact('cancelRequested', snapshot.cancelRequested ? 'Yes' : 'No');
    setFact('stalled', snapshot.stalled ? 'Yes — its worker stopped sending heartbeats' : 'No');
    setFact('timeout', snapshot.timeoutMs ? formatDuration(snapshot.timeoutMs) : 'None', { title: snapshot.timeoutMs ? `${snapshot.timeoutMs} ms` : undefined });
    setFact('orderingKey', snapshot.orderingKey || '', { hidden: !snapshot.orderingKey });
    setFact('idempotencyKey', snapshot.idempotencyKey || '', { hidden: !snapshot.idempotencyKey });

    timeFact('createdAt', snapshot.createdAt);
    timeFact('startedAt', snapshot.startedAt);
    timeFact('finishedAt', snapshot.finishedAt);
    timeFact('updatedAt', snapshot.updatedAt);
    const created = parseTime(snapshot.createdAt), started = parseTime(snapshot.startedAt), finished = parseTime(snapshot.finishedAt);
    setFact('waited', Number.isNaN(started) ? (isTerminal(snapshot) ? '—' : `${formatDuration(Date.now() - created)} so far`) : formatDuration(started - created));
    setFact('ran', Number.isNaN(started) ? '—'
      : Number.isNaN(finished) ? (isTerminal(snapshot) ? '—' : `${formatDuration(Date.now() - started)} so far`)
        : formatDuration(finished - started));

    setText(q('params'), JSON.stringify(snapshot.params ?? {}, null, 2));
    const resultSection = drawer.querySelector('[data-section="result"]');
    resultSection.hidden = snapshot.result === undefined && !isTerminal(snapshot);
    setText(q('result'), snapshot.result === undefined
      ? (snapshot.status === 'succeeded' ? 'No result' : '—')
      : JSON.stringify(snapshot.result, null, 2));
    for (const row of state.rows.values()) row.classList.toggle('is-selected', row.dataset.jobId === snapshot.id);
  }

  function openDetail(id, { fromHash = false } = {}) {
    if (state.detail?.id === id && !$('job-detail').hidden) return;
    closeDetail({ keepHash: true, restoreFocus: false });
    if (!fromHash) history.replaceState(null, '', `#job=${encodeURIComponent(id)}`);
    state.lastFocus = document.activeElement;
    const drawer = $('job-detail');
    drawer.dataset.jobId = id;
    delete drawer.dataset.status;
    $('detail-title').textContent = 'Job';
    $('detail-id').textContent = id;
    buildDetailSkeleton(id);
    drawer.querySelector('[data-action="cancel"]').hidden = true;
    drawer.classList.add('is-loading');
    drawer.hidden = false;
    $('detail-backdrop').hidden = false;
    document.body.classList.add('has-drawer');
    setInert(true);
    $('detail-close').focus();

    const detail = { id, snapshot: null, stream: null };
    state.detail = detail;
    const known = state.jobs.get(id);
    if (known) { detail.snapshot = known; drawer.classList.remove('is-loading'); renderDetail(known); }

    detail.stream = openStream(() => `jobs/${encodeURIComponent(id)}/events`, {
      onEvent: (event) => {
        if (state.detail !== detail) return;
        if (event.type === 'reset') { refreshJob(id); return; }
        let snapshot;
        try { snapshot = JSON.parse(event.data); } catch { return; }
        if (!snapshot || snapshot.id !== id) return;
        drawer.classList.remove('is-loading');
        mergeSnapshot(snapshot, 'detail');
      },
      // The server ends the stream once the job is final.
      shouldContinue: () => state.detail === detail && !(detail.snapshot && isTerminal(detail.snapshot)),
      onDisconnect: (error) => {
        if (error instanceof ApiError && error.status === 404) {
          showDetailProblem(error.problem.detail || 'No job has this id.');
          return false;
        }
        if (error instanceof ApiError && error.status === 403) {
          showDetailProblem(error.problem.detail || 'This API key may not read this job.');
          return false;
        }
        return true;
      },
    });
  }

  function showDetailProblem(message) {
    const drawer = $('job-detail');
    drawer.classList.remove('is-loading');
    $('detail-title').textContent = 'Job not available';
    $('detail-body').replaceChildren(el('div', { class: 'detail-problem', role: 'alert' }, message));
  }

  function closeDetail({ keepHash = false, restoreFocus = true } = {}) {
    const drawer = $('job-detail');
    state.detail?.stream?.stop();
    state.detail = null;
    if (drawer.hidden) return;
    drawer.hidden = true;
    drawer.removeAttribute('data-job-id');
    $('detail-backdrop').hidden = true;
    document.body.classList.remove('has-drawer');
    setInert(!$('auth-overlay').hidden);
    for (const row of state.rows.values()) row.classList.remove('is-selected');
    if (!keepHash && location.hash.startsWith('#job=')) history.replaceState(null, '', location.pathname + location.search);
    if (restoreFocus && state.lastFocus && document.contains(state.lastFocus)) state.lastFocus.focus();
  }

  function openDetailFromHash() {
    const match = location.hash.match(/^#job=(.+)$/);
    if (match) openDetail(decodeURIComponent(match[1]), { fromHash: true });
  }

  function bindDetail() {
    $('detail-close').addEventListener('click', () => closeDetail());
    $('detail-backdrop').addEventListener('click', () => closeDetail());
    $('job-detail').addEventListener('click', (event) => {
      const action = event.target.closest('[data-action="cancel"]');
      if (action && state.detail) cancelJob(state.detail.id);
    });
    document.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape') return;
      if (!$('auth-overlay').hidden) {
        if ($('auth-overlay').dataset.dismissable === 'true') hideAuth();
      } else if (!$('job-detail').hidden) {
        closeDetail();
      }
    });
    window.addEventListener('hashchange', () => {
      if (!state.running) return;
      if (location.hash.startsWith('#job=')) openDetailFromHash(); else closeDetail({ keepHash: true });
    });
  }

  // ----------------------------------------------------------------- boot

  function boot() {
    $('problem-dismiss').addEventListener('click', hideBanner);
    bindAuth();
    bindList();
    bindSubmit();
    bindDetail();
    updateListChrome();
    authenticate();
  }

  // A small hook for debugging from the console, and for the browser test.
  window.jobsDashboard = { state, isStale };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
