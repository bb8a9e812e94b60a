/* app.js — the moonbus ops web UI: one page, hash routes, every view drawn from the JSON API
 * (/work/ops-api.md, DESIGN §10; the monitoring pages: DESIGN §11). Plain JS, no framework,
 * no build step. Charts are SVG made element by element (createElementNS), no library.
 *
 * Never: puts data into innerHTML. Every text that came from the server (a type, a header, a
 * body, an exception) goes through textContent or an attribute; the conversation diagram is
 * the server's SVG, parsed with DOMParser and imported node by node (scripts and on*
 * attributes dropped).
 *
 * Routes: #/groups?by=exception|type|endpoint|queue (default)   #/groups/ID?by=...&page=N
 *         #/messages/ID   #/archived?page=N   #/search?q=...&page=N   #/conversations/ID
 *         #/endpoints   #/monitoring?minutes=5|60|1440   #/monitoring/ENDPOINT?minutes=N (default 60)
 *
 * What the browser tests rely on (keep these stable):
 *   #view[data-page=groups|group|message|archived|search|conversation|endpoints|monitoring|
 *        monitor-endpoint]
 *        [data-ready="1"] once the view's data is drawn (set to "0" while loading)
 *   #nav a[data-route=groups|archived|endpoints|monitoring] (.active on the current one)
 *   #search-form, #search-input (submit → #/search?q=)
 *   #flash[data-kind=info|error] — the last notice
 *   #progress[data-state=running|done][data-operation][data-total][data-done][data-failed]
 *        with its <progress>; button[name=progress-close]
 *   groups:       #group-by (select), #failed-total[data-total], button[name=retry-all],
 *                 button[name=archive-all],
 *                 tr.group-row[data-group=ID] > td.title a, td.count, td.first, td.last,
 *                 button[name=retry-group], button[name=archive-group]; #groups-empty
 *   message list: table#messages tr.msg-row[data-id=ID][data-status=S] > input.select-row,
 *                 td.type, td.exception; #select-all; button[name=retry-selected|
 *                 archive-selected|restore-selected|delete-selected]; #pager
 *                 button[name=prev|next], .page-info; #messages-total[data-total];
 *                 group page: #group-title, button[name=retry-group|archive-group];
 *                 archived page: button[name=restore-all]
 *   message:      #message[data-id][data-status], .badge.status-S, #summary, table#headers
 *                 tr[data-header=NAME] > td.value, pre#body, pre#exception, pre#trace,
 *                 ul#history li[data-what], a#conversation-link, a#edited-to-link,
 *                 a#edited-from-link, #problem, button[name=retry|archive|restore|delete],
 *                 textarea#edit-body, textarea#edit-headers, button[name=edit-retry],
 *                 #flash a#edit-result-link (the new id, after an edit and retry)
 *   search:       table#results tr.result-row[data-id] a.message-link; #results-empty
 *   conversation: #diagram svg (the server's: g.lifeline[data-endpoint], g.msg[data-id]),
 *                 table#conversation tr.msg-row[data-id][data-status]
 *   endpoints:    table#endpoints tr.endpoint-row[data-endpoint=NAME] > td.processed,
 *                 td.failed, ul.instances li[data-instance][data-alive]
 *   monitoring:   select#monitor-window (option values 5, 60, 1440: minutes);
 *                 table#monitoring tr.monitor-row[data-endpoint=NAME][data-status=live|partial|
 *                 dead|stopped][data-breached=0|1] > td.endpoint a.endpoint-link,
 *                 td.status .badge.mon-STATUS + .instance-count[data-alive][data-total] ("1/2"),
 *                 td.throughput|processing|critical|queue|retries|in-flight|memory|reloads|sla
 *                 each with .figure (the value) and .sub (processing: p50 · p99; sla:
 *                 .time-to-breach[data-seconds] "breach in …" or "breached"); td.sla.breached
 *                 is red; svg.spark[data-series=throughput|processing_p95|critical_p95|
 *                 queue_length|retries][data-points=N] > path.line; #monitoring-empty;
 *                 events: ul#events li.event[data-type=moonbus.ops.TYPE] (a .ev-TYPE class),
 *                 #events-empty
 *   endpoint:     #monitor-endpoint[data-endpoint][data-status][data-breached], #monitor-title,
 *                 dl#figures dd.throughput|processing|critical|queue|outcomes|in-flight|memory|
 *                 reloads|sla(.breached); #charts figure.chart[data-chart=throughput|processing|
 *                 critical|queue|retries] > svg.chart (path.line, circle.dot, text.tick,
 *                 line.limit = the SLA on critical); table#instances tr.instance-row
 *                 [data-instance][data-state=alive|dead|stopped] > td.state .badge.inst-STATE,
 *                 td.instance, td.host, td.pid, td.generation, td.last-seen, td.started,
 *                 td.interval; its events as on the monitoring page (this endpoint's only)
 *   dialogs:      #confirm-dialog .confirm-text, button[name=confirm-ok|confirm-cancel];
 *                 #token-dialog form#token-form input#token-input,
 *                 button[name=token-save|token-cancel]
 *   times:        <time datetime=ISO title=ISO> showing local time
 */
'use strict';

const TOKEN_KEY = 'moonbus.ops.token';
const POLL_MS = 250;
const REFRESH_MS = 4000;
const PER_PAGE = 50;
const GROUP_BYS = ['exception', 'type', 'endpoint', 'queue'];
const STATUSES = ['unresolved', 'retrying', 'resolved', 'archived', 'processed', 'failed'];

/* --- DOM helpers: the only way this file makes elements ------------------------------- */

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = String(v);
    else if (k === 'data') for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = String(dv);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  append(e, children);
  return e;
}

function append(parent, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return parent;
}

const $ = (sel, root) => (root || document).querySelector(sel);
const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const enc = encodeURIComponent;

function timeEl(iso) {
  if (!iso) return el('span', { class: 'muted', text: '—' });
  const d = new Date(iso);
  const shown = isNaN(d.getTime()) ? iso : d.toLocaleString();
  return el('time', { datetime: iso, title: iso, text: shown });
}

function badge(status) {
  const s = STATUSES.includes(status) ? status : 'other';
  return el('span', { class: 'badge status-' + s, text: status || '?' });
}

function msgLink(id, text) {
  return el('a', { href: '#/messages/' + enc(id), class: 'message-link', text: text || id });
}

function shortId(id) {
  return id && id.length > 13 ? id.slice(0, 8) + '…' + id.slice(-4) : id || '';
}

function button(name, text, onclick, cls) {
  return el('button', { type: 'button', name, class: cls || null, onclick }, text);
}

/* --- notices, dialogs --------------------------------------------------------------------- */

function flash(text, kind, link) {
  const f = $('#flash');
  f.replaceChildren();
  append(f, [el('span', { text }, link), button('flash-close', '×', () => { f.hidden = true; }, 'link')]);
  f.dataset.kind = kind || 'info';
  f.hidden = false;
}

function modal(id, build) {
  const old = document.getElementById(id);
  if (old) old.remove();
  const box = el('div', { class: 'modal', role: 'dialog', 'aria-modal': 'true' });
  const back = el('div', { id, class: 'modal-backdrop' }, box);
  build(box, () => back.remove());
  document.body.append(back);
  return back;
}

function confirmBox(text, okText) {
  return new Promise((resolve) => {
    modal('confirm-dialog', (box, close) => {
      const done = (v) => { close(); resolve(v); };
      append(box, [el('p', { class: 'confirm-text', text }),
        el('div', { class: 'actions' },
          button('confirm-cancel', 'Cancel', () => done(false)),
          button('confirm-ok', okText || 'OK', () => done(true), 'primary'))]);
      setTimeout(() => $('button[name=confirm-ok]', box).focus(), 0);
    });
  });
}

/* One prompt for every request that met a 401 meanwhile: they all wait for the same token. */
let tokenPrompt = null;
function askToken(why) {
  if (!tokenPrompt) {
    tokenPrompt = promptToken(why).finally(() => { tokenPrompt = null; });
  }
  return tokenPrompt;
}

function promptToken(why) {
  return new Promise((resolve, reject) => {
    modal('token-dialog', (box, close) => {
      const input = el('input', { id: 'token-input', type: 'password', autocomplete: 'off',
        placeholder: 'token' });
      const form = el('form', { id: 'token-form' },
        el('h3', { text: 'Token required' }),
        el('p', { text: why }),
        el('label', { for: 'token-input', text: 'Bearer token of this ops service' }), input,
        el('div', { class: 'actions' },
          button('token-cancel', 'Cancel', () => { close(); reject(new Error('cancelled')); }),
          el('button', { type: 'submit', name: 'token-save', class: 'primary' }, 'Use token')));
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        if (!input.value.trim()) return;
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        close();
        resolve();
        /* requests of a render that a refresh superseded meanwhile are dropped: draw the
         * page afresh with the token */
        setTimeout(() => render(false), 0);
      });
      box.append(form);
      setTimeout(() => input.focus(), 0);
    });
  });
}

/* --- the API --------------------------------------------------------------------------- */

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function request(method, path, body, asText) {
  for (;;) {
    const headers = { Accept: asText ? '*/*' : 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = null;
    if (!asText) try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (res.status === 401) {
      const now = sessionStorage.getItem(TOKEN_KEY);
      if (now && now !== token) continue; /* a newer token came meanwhile: use it */
      if (now) sessionStorage.removeItem(TOKEN_KEY);
      await askToken(token ? 'The token was refused; enter it again.'
        : 'This ops service needs its token (it listens beyond this machine).');
      continue;
    }
    if (!res.ok) {
      let msg = (data && data.error) || '';
      if (!msg) try { msg = JSON.parse(text).error; } catch (e) { msg = ''; }
      throw new ApiError(res.status, msg || res.status + ' ' + res.statusText);
    }
    return asText ? text : data;
  }
}

const apiGet = (path) => request('GET', path);
const apiPost = (path, body) => request('POST', path, body || {});

/* --- bulk operations and their progress --------------------------------------------------- */

let operationsRunning = 0;

function showProgress(op, label) {
  const p = $('#progress');
  p.hidden = false;
  p.dataset.state = op.state || 'running';
  p.dataset.operation = op.id || '';
  p.dataset.total = op.total || 0;
  p.dataset.done = op.done || 0;
  p.dataset.failed = op.failed || 0;
  const bar = $('progress', p);
  bar.max = Math.max(1, op.total || 0);
  bar.value = Math.min(bar.max, op.done || 0);
  $('.progress-label', p).textContent = label;
  let count = (op.done || 0) + ' / ' + (op.total || 0);
  if (op.failed) count += ', ' + op.failed + ' failed';
  if (op.state === 'done') count += op.error ? ' — ' + op.error : ' — done';
  $('.progress-count', p).textContent = count;
}

/* Polls operation id every POLL_MS until it is done (the page stays live: each poll is a
 * fetch awaited between timers), showing it in #progress. */
async function pollOperation(id, total, label) {
  let op = { id, total, done: 0, state: 'running' };
  showProgress(op, label);
  while (op.state !== 'done') {
    await sleep(POLL_MS);
    op = await apiGet('/api/operations/' + enc(id));
    showProgress(op, label);
  }
  return op;
}

/* POSTs action with body, follows the operation to its end, then redraws the view. */
async function runOperation(action, body, label) {
  operationsRunning++;
  try {
    const started = await apiPost('/api/errors/' + action, body);
    const op = await pollOperation(started.operation, started.total, label);
    if (op.error) flash(label + ': ' + op.error, 'error');
    else flash(label + ': ' + op.done + ' of ' + op.total + ' done'
      + (op.failed ? ', ' + op.failed + ' failed' : ''), 'info');
    return op;
  } catch (e) {
    if (e.message !== 'cancelled') flash(label + ': ' + e.message, 'error');
    return null;
  } finally {
    operationsRunning--;
    selected.clear();
    currentKey = null; /* redraw even if the list looks the same: the boxes are unticked */
    await render(true);
  }
}

/* --- routing ---------------------------------------------------------------------------- */

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const q = h.indexOf('?');
  const path = q < 0 ? h : h.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : h.slice(q + 1));
  const parts = path.split('/').filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch (e) { return p; }
  });
  return { parts, params, key: h };
}

function hashWith(params) {
  const { parts, params: cur } = parseHash();
  const next = new URLSearchParams(cur);
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === '') next.delete(k); else next.set(k, String(v));
  }
  const qs = next.toString();
  return '#/' + parts.map(enc).join('/') + (qs ? '?' + qs : '');
}

const pages = {
  groups: (r) => (r.parts.length > 1 ? pageGroup(r) : pageGroups(r)),
  messages: (r) => pageMessage(r),
  archived: (r) => pageArchived(r),
  search: (r) => pageSearch(r),
  conversations: (r) => pageConversation(r),
  endpoints: (r) => pageEndpoints(r),
  monitoring: (r) => (r.parts.length > 1 ? pageMonitorEndpoint(r) : pageMonitoring(r)),
};
const noAutoRefresh = new Set(['message', 'search']);

let renderGen = 0;
let currentRoute = null;
let currentKey = null;
const selected = new Set();

/* Draws the current route. A refresh (again = true) keeps the old content until the new data
 * is in, and leaves the DOM alone when the data did not change. */
async function render(again) {
  const gen = ++renderGen;
  const route = parseHash();
  const view = $('#view');
  const name = route.parts[0] || 'groups';
  if (!again || route.key !== currentRoute) {
    selected.clear();
    currentKey = null;
    view.dataset.ready = '0';
    view.replaceChildren(el('p', { class: 'muted', text: 'Loading…' }));
  }
  for (const a of $$('#nav a')) a.classList.toggle('active', a.dataset.route === name);
  const q = $('#search-input');
  if (document.activeElement !== q) q.value = name === 'search' ? route.params.get('q') || '' : '';
  let out;
  try {
    out = await (pages[name] || pageNotFound)(route);
  } catch (e) {
    if (e.message === 'cancelled') return;
    out = { page: name, key: 'error:' + e.message,
      node: el('div', { class: 'error-box', text: 'Could not load this page: ' + e.message }) };
  }
  if (gen !== renderGen) return;
  currentRoute = route.key;
  view.dataset.page = out.page;
  if (out.key !== currentKey || !again) {
    currentKey = out.key;
    view.replaceChildren(out.node);
  }
  view.dataset.ready = '1';
}

function pageNotFound() {
  return { page: 'notfound', key: 'nf', node: el('p', { text: 'No such page.' }) };
}

/* --- groups ------------------------------------------------------------------------------- */

async function pageGroups(r) {
  const by = GROUP_BYS.includes(r.params.get('by')) ? r.params.get('by') : 'exception';
  const groups = await apiGet('/api/errors/groups?by=' + by);
  const select = el('select', { id: 'group-by', name: 'by',
    onchange: (ev) => { location.hash = '#/groups?by=' + ev.target.value; } },
  GROUP_BYS.map((b) => el('option', { value: b, selected: b === by }, b)));
  const total = groups.reduce((n, g) => n + (g.count || 0), 0);
  const rows = groups.map((g) => el('tr', { class: 'group-row', data: { group: g.id } },
    el('td', { class: 'title' }, el('a', { href: '#/groups/' + enc(g.id) + '?by=' + by,
      text: g.title || '(no title)' })),
    el('td', { class: 'count num', text: g.count }),
    el('td', { class: 'first' }, timeEl(g.first_at)),
    el('td', { class: 'last' }, timeEl(g.last_at)),
    el('td', { class: 'row-actions' },
      button('retry-group', 'Retry group', () => groupAction('retry', g, by)),
      button('archive-group', 'Archive group', () => groupAction('archive', g, by)))));
  const node = el('section', null,
    el('div', { class: 'toolbar' },
      el('h2', { text: 'Failed messages' }),
      el('span', { id: 'failed-total', class: 'pill', data: { total }, text: total + ' unresolved' }),
      el('label', { class: 'grow' }, 'Group by ', select),
      button('retry-all', 'Retry all', () => allAction('retry', total), 'primary'),
      button('archive-all', 'Archive all', () => allAction('archive', total))),
    groups.length === 0
      ? el('p', { id: 'groups-empty', class: 'empty', text: 'No failed messages. All is well.' })
      : el('table', { id: 'groups', class: 'grid' },
        el('thead', null, el('tr', null, el('th', { text: 'Group' }),
          el('th', { class: 'num', text: 'Count' }), el('th', { text: 'First seen' }),
          el('th', { text: 'Last seen' }), el('th', { text: '' }))),
        el('tbody', null, rows)));
  return { page: 'groups', key: JSON.stringify(groups) + by, node };
}

async function groupAction(action, g, by) {
  const verb = action === 'retry' ? 'Retry' : 'Archive';
  if (!(await confirmBox(verb + ' the ' + g.count + ' messages of "' + g.title + '"?', verb))) return;
  await runOperation(action, { group: g.id, by }, verb + ' group');
}

async function allAction(action, n) {
  const verb = action === 'retry' ? 'Retry' : 'Archive';
  if (!(await confirmBox(verb + ' all ' + n + ' unresolved messages?', verb + ' all'))) return;
  await runOperation(action, { all: true }, verb + ' all');
}

/* --- lists of failed messages (a group, the archive) --------------------------------------- */

function pageOf(r) {
  const p = parseInt(r.params.get('page') || '1', 10);
  return p > 0 ? p : 1;
}

function pager(data) {
  const pages = Math.max(1, Math.ceil((data.total || 0) / (data.per_page || PER_PAGE)));
  const page = data.page || 1;
  const prev = button('prev', '‹ Previous', () => { location.hash = hashWith({ page: page - 1 }); });
  const next = button('next', 'Next ›', () => { location.hash = hashWith({ page: page + 1 }); });
  prev.disabled = page <= 1;
  next.disabled = page >= pages;
  return el('div', { id: 'pager' }, prev,
    el('span', { class: 'page-info', text: 'page ' + page + ' of ' + pages }), next);
}

function messagesTable(items, cols) {
  const all = el('input', { type: 'checkbox', id: 'select-all', title: 'Select all on this page',
    checked: items.length > 0 && items.every((m) => selected.has(m.id)) });
  all.addEventListener('change', () => {
    for (const m of items) if (all.checked) selected.add(m.id); else selected.delete(m.id);
    for (const box of $$('input.select-row', all.closest('table'))) box.checked = all.checked;
  });
  const rows = items.map((m) => {
    const box = el('input', { type: 'checkbox', class: 'select-row', checked: selected.has(m.id),
      'aria-label': 'select ' + m.id });
    box.addEventListener('change', () => {
      if (box.checked) selected.add(m.id); else selected.delete(m.id);
      all.checked = items.every((x) => selected.has(x.id));
    });
    return el('tr', { class: 'msg-row', data: { id: m.id, status: m.status } },
      el('td', { class: 'check' }, box),
      el('td', { class: 'id mono' }, msgLink(m.id, shortId(m.id))),
      el('td', { class: 'type', text: m.type || '' }),
      cols.includes('endpoint') && el('td', { class: 'endpoint', text: m.endpoint || '' }),
      el('td', { class: 'at' }, timeEl(m.failed_at)),
      el('td', { class: 'exception', title: m.exception || '', text: m.exception || '' }),
      el('td', { class: 'attempts num', text: m.attempts === undefined ? '' : m.attempts }),
      el('td', { class: 'status' }, badge(m.status)));
  });
  return el('table', { id: 'messages', class: 'grid' },
    el('thead', null, el('tr', null, el('th', { class: 'check' }, all), el('th', { text: 'Id' }),
      el('th', { text: 'Type' }), cols.includes('endpoint') && el('th', { text: 'Endpoint' }),
      el('th', { text: 'Failed at' }), el('th', { text: 'Exception' }),
      el('th', { class: 'num', text: 'Tries' }), el('th', { text: 'Status' }))),
    el('tbody', null, rows));
}

function selectedAction(action, label) {
  return async () => {
    const ids = Array.from(selected);
    if (ids.length === 0) { flash('Select messages first.', 'error'); return; }
    if (action === 'delete' && !(await confirmBox('Delete ' + ids.length
      + ' messages for good? This cannot be undone.', 'Delete'))) return;
    await runOperation(action, { ids }, label + ' ' + ids.length);
  };
}

function listBody(data, empty) {
  return [
    el('p', { id: 'messages-total', class: 'muted', data: { total: data.total },
      text: data.total + ' message' + (data.total === 1 ? '' : 's') }),
    data.items.length === 0 ? el('p', { class: 'empty', text: empty })
      : messagesTable(data.items, ['endpoint']),
    pager(data)];
}

async function pageGroup(r) {
  const id = r.parts[1];
  const by = GROUP_BYS.includes(r.params.get('by')) ? r.params.get('by') : 'exception';
  const page = pageOf(r);
  const [groups, data] = await Promise.all([apiGet('/api/errors/groups?by=' + by),
    apiGet('/api/errors?by=' + by + '&group=' + enc(id) + '&page=' + page + '&per_page=' + PER_PAGE)]);
  const g = groups.find((x) => x.id === id) || { id, title: id, count: data.total };
  const node = el('section', null,
    el('p', { class: 'crumbs' }, el('a', { href: '#/groups?by=' + by, text: 'Failed messages' }),
      ' › grouped by ' + by),
    el('h2', { id: 'group-title', class: 'wrap', text: g.title || id }),
    el('div', { class: 'toolbar' },
      button('retry-selected', 'Retry selected', selectedAction('retry', 'Retry'), 'primary'),
      button('archive-selected', 'Archive selected', selectedAction('archive', 'Archive')),
      button('delete-selected', 'Delete selected', selectedAction('delete', 'Delete'), 'danger'),
      el('span', { class: 'grow' }),
      button('retry-group', 'Retry group', () => groupAction('retry', g, by)),
      button('archive-group', 'Archive group', () => groupAction('archive', g, by))),
    listBody(data, 'No unresolved messages left in this group.'));
  return { page: 'group', key: JSON.stringify(data) + JSON.stringify(g), node };
}

async function pageArchived(r) {
  const page = pageOf(r);
  const data = await apiGet('/api/errors?status=archived&page=' + page + '&per_page=' + PER_PAGE);
  const node = el('section', null,
    el('div', { class: 'toolbar' },
      el('h2', { class: 'grow', text: 'Archived messages' }),
      button('restore-selected', 'Restore selected', selectedAction('restore', 'Restore'), 'primary'),
      button('delete-selected', 'Delete selected', selectedAction('delete', 'Delete'), 'danger'),
      button('restore-all', 'Restore all', async () => {
        if (!(await confirmBox('Restore all ' + data.total + ' archived messages?', 'Restore all'))) return;
        await runOperation('restore', { all: true }, 'Restore all');
      })),
    listBody(data, 'Nothing archived.'));
  return { page: 'archived', key: JSON.stringify(data), node };
}

/* --- one message ------------------------------------------------------------------------ */

function prettyBody(body) {
  if (body === null || body === undefined) return '';
  try { return JSON.stringify(JSON.parse(body), null, 2); } catch (e) { return String(body); }
}

function summaryRow(label, value) {
  if (value === null || value === undefined || value === '') return null;
  return [el('dt', { text: label }), el('dd', null, value)];
}

async function pageMessage(r) {
  const id = r.parts[1];
  let m;
  try {
    m = await apiGet('/api/messages/' + enc(id));
  } catch (e) {
    if (e.status !== 404) throw e;
    return { page: 'message', key: '404',
      node: el('p', { class: 'error-box', text: 'No message ' + id + ' in the store (yet).' }) };
  }
  const node = el('section', { id: 'message', data: { id: m.id, status: m.status } },
    el('div', { class: 'toolbar' },
      el('h2', { class: 'wrap', text: m.type || '(no type)' }), badge(m.status),
      el('span', { class: 'grow' }), messageButtons(m)),
    m.problem ? el('div', { id: 'problem', class: 'error-box',
      text: 'Ingestion could not parse this message: ' + m.problem }) : null,
    el('dl', { id: 'summary' }, summary(m)),
    m.exception ? [el('h3', { text: 'Exception' }), el('pre', { id: 'exception', text: m.exception })] : null,
    m.trace ? [el('h3', { text: 'Lua traceback' }), el('pre', { id: 'trace', text: m.trace })] : null,
    el('h3', { text: 'Body' }), el('pre', { id: 'body', text: prettyBody(m.body) }),
    el('h3', { text: 'Headers' }), headersTable(m.headers || {}),
    m.status === 'unresolved' ? editor(m) : null,
    el('h3', { text: 'History' }), historyList(m.history || []));
  return { page: 'message', key: JSON.stringify(m), node };
}

function summary(m) {
  const link = (href, id, text) => el('a', { href, id, class: 'mono', text });
  return [
    summaryRow('Id', el('span', { class: 'mono', text: m.id })),
    summaryRow('Kind', m.kind),
    summaryRow('Source', m.source === 'audit' ? 'audit copy (processed)' : m.source),
    summaryRow('Endpoint', m.endpoint),
    summaryRow('Queue', m.queue),
    summaryRow('Failed at', m.failed_at ? timeEl(m.failed_at) : null),
    summaryRow('Attempts', m.attempts),
    summaryRow('Group', m.group ? el('a', { href: '#/groups/' + enc(m.group) + '?by=exception',
      text: m.group_title || m.group }) : null),
    summaryRow('Conversation', m.conversation_id
      ? link('#/conversations/' + enc(m.conversation_id), 'conversation-link', m.conversation_id) : null),
    summaryRow('Related to', m.related_to ? msgLink(m.related_to) : null),
    summaryRow('Correlation id', m.correlation_id),
    summaryRow('Reply to', m.reply_to),
    summaryRow('Edited from', m.edited_from
      ? link('#/messages/' + enc(m.edited_from), 'edited-from-link', m.edited_from) : null),
    summaryRow('Edited and retried as', m.edited_to
      ? link('#/messages/' + enc(m.edited_to), 'edited-to-link', m.edited_to) : null),
  ];
}

function messageButtons(m) {
  const one = (action, label) => () => runOperation(action, { ids: [m.id] }, label);
  const st = m.status;
  return el('span', { class: 'buttons' },
    (st === 'unresolved' || st === 'retrying') && m.source !== 'audit'
      && button('retry', 'Retry', one('retry', 'Retry'), 'primary'),
    st === 'unresolved' && button('archive', 'Archive', one('archive', 'Archive')),
    st === 'archived' && button('restore', 'Restore', one('restore', 'Restore'), 'primary'),
    (st === 'unresolved' || st === 'archived') && button('delete', 'Delete', async () => {
      if (!(await confirmBox('Delete message ' + m.id + ' for good?', 'Delete'))) return;
      await runOperation('delete', { ids: [m.id] }, 'Delete');
    }, 'danger'));
}

function headersTable(headers) {
  const names = Object.keys(headers).sort();
  return el('table', { id: 'headers', class: 'grid kv' },
    el('tbody', null, names.map((k) => el('tr', { data: { header: k } },
      el('th', { class: 'name mono', text: k }),
      el('td', { class: 'value mono', text: headers[k] === null ? '' : String(headers[k]) })))));
}

function historyList(items) {
  if (items.length === 0) return el('p', { class: 'muted', text: 'No history.' });
  return el('ul', { id: 'history' }, items.map((h) => el('li', { data: { what: h.what } },
    timeEl(h.at), ' ', el('strong', { text: h.what }),
    h.who ? el('span', { class: 'muted', text: ' by ' + h.who }) : null,
    h.detail ? el('span', { class: 'detail', text: ' — ' + h.detail }) : null)));
}

/* The headers an operator may edit: moonbus.* ones belong to the bus. */
function editableHeaders(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers || {})) if (!k.startsWith('moonbus.')) out[k] = v;
  return out;
}

/* What to send for edited headers: changed or new ones with their value, removed ones null. */
function headerChanges(before, text) {
  const after = JSON.parse(text);
  if (!after || typeof after !== 'object' || Array.isArray(after)) throw new Error('not an object');
  const changes = {};
  for (const [k, v] of Object.entries(after)) if (before[k] !== v) changes[k] = String(v);
  for (const k of Object.keys(before)) if (!(k in after)) changes[k] = null;
  return changes;
}

function editor(m) {
  const body = el('textarea', { id: 'edit-body', rows: 12, spellcheck: 'false' });
  body.value = prettyBody(m.body);
  const before = editableHeaders(m.headers);
  const hdrs = el('textarea', { id: 'edit-headers', rows: 4, spellcheck: 'false' });
  hdrs.value = JSON.stringify(before, null, 2);
  const go = async () => {
    const req = { body: body.value };
    try { JSON.parse(body.value); } catch (e) {
      flash('The body is not JSON: ' + e.message, 'error'); return;
    }
    try {
      const changes = headerChanges(before, hdrs.value);
      if (Object.keys(changes).length) req.headers = changes;
    } catch (e) {
      flash('The headers are not a JSON object: ' + e.message, 'error'); return;
    }
    if (!(await confirmBox('Send the edited message as a new message (a new id) to '
      + (m.queue || m.endpoint || 'its queue') + '? The original is marked resolved.', 'Send'))) return;
    operationsRunning++;
    try {
      const res = await apiPost('/api/errors/' + enc(m.id) + '/edit-retry', req);
      if (res.operation) await pollOperation(res.operation, 1, 'Edit and retry');
      const link = el('a', { id: 'edit-result-link', href: '#/messages/' + enc(res.id), text: res.id });
      currentKey = null;
      await render(true);
      flash('Sent as a new message: ', 'info', link);
    } catch (e) {
      if (e.message !== 'cancelled') flash('Edit and retry: ' + e.message, 'error');
    } finally {
      operationsRunning--;
    }
  };
  return el('section', { id: 'edit', class: 'card' },
    el('h3', { text: 'Edit and retry' }),
    el('p', { class: 'muted', text: 'Sends a corrected copy with a new id; the original stays, linked.' }),
    el('label', { for: 'edit-body', text: 'Body (JSON)' }), body,
    el('label', { for: 'edit-headers', text: 'Headers (JSON object; moonbus.* headers belong to the bus; remove a key to drop it)' }), hdrs,
    el('div', { class: 'actions' }, button('edit-retry', 'Edit and retry…', go, 'primary')));
}

/* --- search --------------------------------------------------------------------------- */

async function pageSearch(r) {
  const q = (r.params.get('q') || '').trim();
  if (!q) return { page: 'search', key: '', node: el('p', { class: 'muted', text: 'Type in the search box.' }) };
  const page = pageOf(r);
  const data = await apiGet('/api/search?q=' + enc(q) + '&page=' + page + '&per_page=' + PER_PAGE);
  const rows = data.items.map((m) => el('tr', { class: 'result-row', data: { id: m.id } },
    el('td', { class: 'id mono' }, msgLink(m.id, shortId(m.id))),
    el('td', { class: 'type', text: m.type || '' }),
    el('td', { class: 'source', text: m.source || '' }),
    el('td', { class: 'endpoint', text: m.endpoint || '' }),
    el('td', { class: 'at' }, timeEl(m.at)),
    el('td', { class: 'status' }, badge(m.status)),
    el('td', { class: 'conversation' }, m.conversation_id ? el('a', {
      href: '#/conversations/' + enc(m.conversation_id), text: 'conversation' }) : null)));
  const node = el('section', null,
    el('h2', null, 'Search: ', el('span', { class: 'mono', text: q })),
    el('p', { class: 'muted', text: data.total + ' match' + (data.total === 1 ? '' : 'es') }),
    data.items.length === 0 ? el('p', { id: 'results-empty', class: 'empty', text: 'Nothing found.' })
      : el('table', { id: 'results', class: 'grid' },
        el('thead', null, el('tr', null, ['Id', 'Type', 'Source', 'Endpoint', 'At', 'Status', '']
          .map((t) => el('th', { text: t })))),
        el('tbody', null, rows)),
    pager(data));
  return { page: 'search', key: JSON.stringify(data), node };
}

/* --- conversation ------------------------------------------------------------------------ */

/* The server's SVG, parsed as XML and imported; nothing executable survives the copy. */
function importSvg(text) {
  const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
  const root = doc.documentElement;
  if (!root || root.localName !== 'svg' || doc.getElementsByTagName('parsererror').length) {
    return el('p', { class: 'error-box', text: 'The diagram could not be read.' });
  }
  for (const n of Array.from(root.querySelectorAll('script, foreignObject, iframe'))) n.remove();
  for (const n of [root, ...root.querySelectorAll('*')]) {
    for (const a of Array.from(n.attributes)) {
      const v = a.value.trim().toLowerCase();
      if (a.name.toLowerCase().startsWith('on') || v.startsWith('javascript:')) n.removeAttribute(a.name);
    }
  }
  return document.importNode(root, true);
}

async function pageConversation(r) {
  const id = r.parts[1];
  const [conv, svg] = await Promise.all([apiGet('/api/conversations/' + enc(id)),
    request('GET', '/api/conversations/' + enc(id) + '/diagram.svg', undefined, true)]);
  const diagram = el('div', { id: 'diagram', class: 'card' }, importSvg(svg));
  diagram.addEventListener('click', (ev) => {
    const g = ev.target.closest && ev.target.closest('g.msg[data-id]');
    if (g) location.hash = '#/messages/' + enc(g.getAttribute('data-id'));
  });
  const rows = conv.items.map((m, i) => el('tr', { class: 'msg-row', data: { id: m.id, status: m.status } },
    el('td', { class: 'num', text: i + 1 }),
    el('td', { class: 'id mono' }, msgLink(m.id, shortId(m.id))),
    el('td', { class: 'type', text: m.type || '' }),
    el('td', { class: 'kind', text: m.kind || '' }),
    el('td', { class: 'from', text: m.from || '(outside)' }),
    el('td', { class: 'to', text: m.to || '' }),
    el('td', { class: 'at' }, timeEl(m.at)),
    el('td', { class: 'status' }, badge(m.status))));
  const node = el('section', null,
    el('h2', null, 'Conversation ', el('span', { class: 'mono small', text: id })),
    el('p', { class: 'muted', text: conv.total + ' message' + (conv.total === 1 ? '' : 's')
      + (conv.total > conv.items.length ? ' (' + conv.items.length + ' shown)' : '') }),
    diagram,
    el('table', { id: 'conversation', class: 'grid' },
      el('thead', null, el('tr', null, ['#', 'Id', 'Type', 'Kind', 'From', 'To', 'At', 'Status']
        .map((t) => el('th', { text: t })))),
      el('tbody', null, rows)));
  return { page: 'conversation', key: JSON.stringify(conv) + svg.length, node };
}

/* --- endpoints ------------------------------------------------------------------------- */

async function pageEndpoints() {
  const eps = await apiGet('/api/endpoints');
  const rows = eps.map((e) => el('tr', { class: 'endpoint-row', data: { endpoint: e.name } },
    el('td', { class: 'name', text: e.name }),
    el('td', { class: 'last' }, timeEl(e.last_seen)),
    el('td', { class: 'processed num', text: e.processed === undefined ? '' : e.processed }),
    el('td', { class: 'failed num', text: e.failed === undefined ? '' : e.failed }),
    el('td', null, el('ul', { class: 'instances' }, (e.instances || []).map((i) =>
      el('li', { data: { instance: i.instance, alive: i.alive ? '1' : '0' } },
        el('span', { class: 'badge ' + (i.alive ? 'alive' : 'dead'), text: i.alive ? 'alive' : 'silent' }),
        ' ', el('span', { class: 'mono', text: i.instance }),
        i.host ? el('span', { class: 'muted', text: ' on ' + i.host }) : null,
        ' · ', timeEl(i.last_seen)))))));
  const node = el('section', null,
    el('h2', { text: 'Endpoints' }),
    eps.length === 0 ? el('p', { class: 'empty', text: 'No endpoint has reported yet.' })
      : el('table', { id: 'endpoints', class: 'grid' },
        el('thead', null, el('tr', null, el('th', { text: 'Endpoint' }), el('th', { text: 'Last seen' }),
          el('th', { class: 'num', text: 'Processed' }), el('th', { class: 'num', text: 'Failed' }),
          el('th', { text: 'Instances' }))),
        el('tbody', null, rows)));
  return { page: 'endpoints', key: JSON.stringify(eps), node };
}

/* --- monitoring (DESIGN §11: /api/monitoring, /api/events) --------------------------------- */

const SVG_NS = 'http://www.w3.org/2000/svg';
const WINDOWS = [[5, '5 min'], [60, '1 h'], [1440, '24 h']];
const MON_STATES = ['live', 'partial', 'dead', 'stopped'];
const INSTANCE_STATES = ['alive', 'dead', 'stopped'];
const EVENTS_SHOWN = 20;

/* A number from the API, or null (the API's data is foreign: a string is not a number). */
function num(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/* At most three significant digits, no trailing zeros: 0.0123 → "0.0123", 12.34 → "12.3". */
function sig3(x) {
  const a = Math.abs(x);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return String(Number(x.toFixed(digits)));
}

/* Seconds as µs, ms, s, min, h or d, whichever reads best: 0.00042 → "420 µs". */
function fmtDuration(v) {
  const s = num(v);
  if (s === null) return '—';
  const a = Math.abs(s);
  if (a === 0) return '0 s';
  if (a < 0.0009995) return sig3(s * 1e6) + ' µs';
  if (a < 0.9995) return sig3(s * 1e3) + ' ms';
  if (a < 59.95) return sig3(s) + ' s';
  const whole = (n, unit, rest, restUnit) => n + ' ' + unit + (rest ? ' ' + rest + ' ' + restUnit : '');
  if (a < 3600) { const t = Math.round(a); return whole(Math.floor(t / 60), 'min', t % 60, 's'); }
  if (a < 86400) { const t = Math.round(a / 60); return whole(Math.floor(t / 60), 'h', t % 60, 'min'); }
  const t = Math.round(a / 3600);
  return whole(Math.floor(t / 24), 'd', t % 24, 'h');
}

/* Bytes in B, KiB, MiB or GiB. */
function fmtBytes(v) {
  const b = num(v);
  if (b === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let x = b, i = 0;
  while (Math.abs(x) >= 1024 && i < units.length - 1) { x /= 1024; i++; }
  return (i === 0 ? String(Math.round(x)) : sig3(x)) + ' ' + units[i];
}

/* A count: 1234 → "1234", 56789 → "56.8k", 1.2e6 → "1.2M". */
function fmtCount(v) {
  const n = num(v);
  if (n === null) return '—';
  const a = Math.abs(n);
  if (a >= 1e9) return sig3(n / 1e9) + 'G';
  if (a >= 1e6) return sig3(n / 1e6) + 'M';
  if (a >= 1e4) return sig3(n / 1e3) + 'k';
  return Number.isInteger(n) ? String(n) : sig3(n);
}

/* Messages per second. */
function fmtRate(v) {
  const r = num(v);
  return r === null ? '—' : (r >= 1e4 ? fmtCount(r) : sig3(r)) + '/s';
}

function windowOf(r, dflt) {
  const m = parseInt(r.params.get('minutes') || '', 10);
  return m >= 1 && m <= 1440 ? m : dflt;
}

function windowSelect(minutes) {
  const opts = WINDOWS.slice();
  if (!opts.some(([m]) => m === minutes)) opts.push([minutes, minutes + ' min']);
  return el('label', null, 'Window ', el('select', { id: 'monitor-window', name: 'minutes',
    onchange: (ev) => { location.hash = hashWith({ minutes: ev.target.value }); } },
  opts.map(([m, label]) => el('option', { value: m, selected: m === minutes }, label))));
}

function monStatusBadge(status) {
  const s = MON_STATES.includes(status) ? status : 'other';
  return el('span', { class: 'badge mon-' + s, text: status || '?' });
}

function instanceCounts(ep) {
  const list = Array.isArray(ep.instances) ? ep.instances : [];
  return { alive: list.filter((i) => i && i.state === 'alive').length, total: list.length };
}

function monitorLink(name, minutes) {
  return el('a', { href: '#/monitoring/' + enc(name) + (minutes ? '?minutes=' + minutes : ''),
    class: 'endpoint-link', text: name });
}

/* --- SVG, made element by element ---------------------------------------------------- */

function svgEl(tag, attrs, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) if (c) e.append(c);
  return e;
}

/* The path of values (null breaks the line) in a box: x(i), y(v) map to pixels. */
function linePath(values, x, y) {
  let d = '';
  let pen = false;
  values.forEach((v, i) => {
    const n = num(v);
    if (n === null) { pen = false; return; }
    d += (pen ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(n).toFixed(1);
    pen = true;
  });
  return d;
}

/* Points that have no neighbour on either side, drawn as dots (a path of one point shows nothing). */
function lonePoints(values) {
  return values.map((v, i) => (num(v) !== null && num(values[i - 1]) === null
    && num(values[i + 1]) === null ? i : -1)).filter((i) => i >= 0);
}

function seriesMax(series) {
  let max = 0;
  for (const s of series) for (const v of s.values) if (num(v) !== null && v > max) max = v;
  return max;
}

/* A small line chart without axes: series = [{values, cls}], one scale for all of them. */
function sparkline(name, series, title) {
  const W = 96, H = 22, P = 2;
  const n = Math.max(0, ...series.map((s) => s.values.length));
  const max = seriesMax(series);
  const x = (i) => (n <= 1 ? W / 2 : P + (i * (W - 2 * P)) / (n - 1));
  const y = (v) => H - P - (max > 0 ? (v / max) * (H - 2 * P) : 0);
  const svg = svgEl('svg', { class: 'spark', viewBox: `0 0 ${W} ${H}`, width: W, height: H,
    role: 'img', 'aria-label': title, 'data-series': name, 'data-points': n },
  svgEl('title', { text: title }),
  svgEl('line', { class: 'base', x1: P, x2: W - P, y1: H - P + 0.5, y2: H - P + 0.5 }));
  for (const s of series) {
    svg.append(svgEl('path', { class: 'line ' + (s.cls || ''), d: linePath(s.values, x, y) }));
    for (const i of lonePoints(s.values)) {
      svg.append(svgEl('circle', { class: 'dot ' + (s.cls || ''), cx: x(i), cy: y(s.values[i]), r: 2 }));
    }
  }
  return svg;
}

/* The smallest 1, 2, 2.5 or 5 × 10^k at least v. */
function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v * (1 - 1e-9)) return m * p;
  return 10 * p;
}

/* The scale of a chart whose values reach max: a round step, 1 to 4 of them (whole numbers
 * for counts). */
function scaleOf(max, whole) {
  let step = niceCeil(max > 0 ? max / 4 : 1);
  if (whole) step = Math.max(1, Math.ceil(step));
  const ticks = Math.max(1, Math.min(4, Math.ceil((max * (1 - 1e-9)) / step)));
  return { step, ticks, top: step * ticks };
}

function clockOf(iso) {
  const d = new Date(iso);
  return isNaN(d.getTime()) ? String(iso || '') : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/* A chart with axes: spec = {name, title, minutes: [ISO], series: [{label, values, cls}],
 * fmt (a value's label), line: {value, label} (a level to show, e.g. the SLA) or null}. */
function chart(spec) {
  const W = 560, H = 190, L = 64, R = 14, T = 12, B = 28;
  const n = spec.minutes.length;
  const lineValue = spec.line ? num(spec.line.value) : null;
  const { step, ticks: yTicks, top } = scaleOf(Math.max(seriesMax(spec.series), lineValue || 0), spec.whole);
  const x = (i) => (n <= 1 ? L + (W - L - R) / 2 : L + (i * (W - L - R)) / (n - 1));
  const y = (v) => T + (H - T - B) * (1 - Math.min(v, top) / top);
  const svg = svgEl('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': spec.title, preserveAspectRatio: 'xMidYMid meet' });
  for (let k = 0; k <= yTicks; k++) {
    const v = step * k, yy = y(v) + 0.5;
    svg.append(svgEl('line', { class: k ? 'grid' : 'axis', x1: L, x2: W - R, y1: yy, y2: yy }),
      svgEl('text', { class: 'tick y', x: L - 6, y: yy + 4, 'text-anchor': 'end', text: spec.fmt(v) }));
  }
  svg.append(svgEl('line', { class: 'axis', x1: L + 0.5, x2: L + 0.5, y1: T, y2: H - B }));
  const ticks = n <= 1 ? [0] : [...new Set([0, Math.floor((n - 1) / 2), n - 1])];
  for (const i of ticks) {
    if (i >= n) continue;
    const anchor = n <= 1 ? 'middle' : i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle';
    svg.append(svgEl('text', { class: 'tick x', x: x(i), y: H - B + 18, 'text-anchor': anchor,
      text: clockOf(spec.minutes[i]) }));
  }
  if (lineValue !== null) {
    svg.append(svgEl('line', { class: 'limit', x1: L, x2: W - R, y1: y(lineValue), y2: y(lineValue) }),
      svgEl('text', { class: 'limit-label', x: W - R - 2, y: y(lineValue) - 4, 'text-anchor': 'end',
        text: spec.line.label }));
  }
  for (const s of spec.series) {
    svg.append(svgEl('path', { class: 'line ' + (s.cls || ''), d: linePath(s.values, x, y) }));
    /* a dot per minute while there is room, each with its value as a tooltip */
    if (n > 120) continue;
    s.values.forEach((v, i) => {
      if (num(v) === null) return;
      svg.append(svgEl('circle', { class: 'dot ' + (s.cls || ''), cx: x(i), cy: y(v), r: n > 30 ? 1.5 : 2.5 },
        svgEl('title', { text: clockOf(spec.minutes[i]) + '  ' + (s.label ? s.label + ' ' : '') + spec.fmt(v) })));
    });
  }
  if (n === 0) {
    svg.append(svgEl('text', { class: 'tick', x: (L + W - R) / 2, y: H / 2, 'text-anchor': 'middle',
      text: 'no data in this window' }));
  }
  const legend = spec.series.length > 1 ? el('div', { class: 'legend' }, spec.series.map((s) =>
    el('span', null, el('i', { class: 'swatch ' + (s.cls || '') }), s.label))) : null;
  return el('figure', { class: 'chart card', data: { chart: spec.name } },
    el('figcaption', { text: spec.title }), legend, svg);
}

/* The arrays of the series of ep (each as long as its minutes; what is missing is null). */
function seriesOf(ep) {
  const s = ep.series && typeof ep.series === 'object' ? ep.series : {};
  const minutes = Array.isArray(s.minutes) ? s.minutes.map(String) : [];
  const get = (k) => {
    const a = Array.isArray(s[k]) ? s[k] : [];
    return minutes.map((_, i) => num(a[i]));
  };
  return { minutes, throughput: get('throughput'), processing_p95: get('processing_p95'),
    critical_p95: get('critical_p95'), queue_length: get('queue_length'), retried: get('retried'),
    error: get('error') };
}

function pct(q, k) {
  return q && typeof q === 'object' ? num(q[k]) : null;
}

/* What the figures of ep say, for the table row and the endpoint page alike. */
function figuresOf(ep) {
  const f = ep.figures && typeof ep.figures === 'object' ? ep.figures : {};
  return {
    throughput: num(f.throughput), received: num(f.received), success: num(f.success),
    retried: num(f.retried), delayed: num(f.delayed), error: num(f.error), discarded: num(f.discarded),
    p50: pct(f.processing, 'p50'), p95: pct(f.processing, 'p95'), p99: pct(f.processing, 'p99'),
    c50: pct(f.critical, 'p50'), c95: pct(f.critical, 'p95'), c99: pct(f.critical, 'p99'),
    queue: num(f.queue_length), inFlight: num(f.in_flight), pending: num(f.requests_pending),
    memory: num(f.lua_memory_bytes), reloads: num(f.reloads), reconnects: num(f.reconnects),
  };
}

function slaCell(ep) {
  const sla = num(ep.sla);
  if (sla === null) return el('td', { class: 'sla muted', text: '—' });
  const breached = ep.breached === true;
  const ttb = num(ep.time_to_breach);
  return el('td', { class: 'sla' + (breached ? ' breached' : '') },
    el('div', { class: 'figure', text: fmtDuration(sla) }),
    el('div', { class: 'sub time-to-breach', data: { seconds: ttb === null ? '' : ttb } },
      breached ? 'breached' : ttb === null ? '' : 'breach in ' + fmtDuration(ttb)));
}

function figureCell(cls, text, sub, spark) {
  return el('td', { class: cls + ' num' }, el('div', { class: 'figure', text }),
    sub ? el('div', { class: 'sub', text: sub }) : null, spark);
}

function monitorRow(ep, minutes) {
  const f = figuresOf(ep);
  const s = seriesOf(ep);
  const { alive, total } = instanceCounts(ep);
  const breached = ep.breached === true;
  return el('tr', { class: 'monitor-row' + (breached ? ' breached' : ''),
    data: { endpoint: ep.endpoint, status: ep.status, breached: breached ? '1' : '0' } },
  el('td', { class: 'endpoint' }, monitorLink(ep.endpoint === undefined || ep.endpoint === null ? '?' : String(ep.endpoint), minutes)),
  el('td', { class: 'status' }, monStatusBadge(ep.status), ' ',
    el('span', { class: 'instance-count', data: { alive, total }, title: 'instances alive / all',
      text: alive + '/' + total })),
  figureCell('throughput', fmtRate(f.throughput), null,
    sparkline('throughput', [{ values: s.throughput }], 'throughput per minute (msg/s)')),
  figureCell('processing', fmtDuration(f.p95), 'p50 ' + fmtDuration(f.p50) + ' · p99 ' + fmtDuration(f.p99),
    sparkline('processing_p95', [{ values: s.processing_p95 }], 'processing time p95 per minute')),
  figureCell('critical', fmtDuration(f.c95), null,
    sparkline('critical_p95', [{ values: s.critical_p95 }], 'critical time p95 per minute')),
  figureCell('queue', fmtCount(f.queue), null,
    sparkline('queue_length', [{ values: s.queue_length }], 'queue length per minute')),
  figureCell('retries', fmtCount(f.retried) + ' / ' + fmtCount(f.error), null,
    sparkline('retries', [{ values: s.retried, cls: 'retried' }, { values: s.error, cls: 'error' }],
      'retried (amber) and errors (red) per minute')),
  figureCell('in-flight', fmtCount(f.inFlight)),
  figureCell('memory', fmtBytes(f.memory)),
  figureCell('reloads', fmtCount(f.reloads)),
  slaCell(ep));
}

function eventLine(ev, minutes) {
  const b = ev.body && typeof ev.body === 'object' ? ev.body : {};
  const type = String(ev.type || b.event || '?');
  const short = type.replace(/^moonbus\.ops\./, '');
  const str = (v) => (v === null || v === undefined ? '' : String(v));
  const ep = b.endpoint !== undefined && b.endpoint !== null
    ? monitorLink(str(b.endpoint), minutes) : el('span', { class: 'muted', text: '?' });
  const inst = b.instance ? [' instance ', el('span', { class: 'mono', text: str(b.instance) }),
    b.host ? ' on ' + str(b.host) : ''] : [];
  let detail;
  switch (short) {
  case 'HeartbeatStopped':
    detail = [ep, inst, ' stopped reporting (every ' + fmtDuration(num(b.interval)) + ')'];
    break;
  case 'HeartbeatRestored':
    detail = [ep, inst, ' reports again after ' + fmtDuration(num(b.down_seconds))];
    break;
  case 'SlaBreached':
    detail = [ep, ' breached its SLA of ' + fmtDuration(num(b.sla)) + ': critical p95 '
      + fmtDuration(num(b.critical_p95)) + ', queue ' + fmtCount(num(b.queue_length))
      + ', ' + fmtRate(num(b.throughput))];
    break;
  case 'MessageFailed':
    detail = [str(b.type) + ' failed in ', ep, ': ', el('span', { class: 'exception', text: str(b.exception) }),
      b.id ? [' ', msgLink(str(b.id), shortId(str(b.id)))] : null];
    break;
  default:
    detail = [el('span', { class: 'mono', text: JSON.stringify(b).slice(0, 200) })];
  }
  return el('li', { class: 'event ev-' + (/^\w+$/.test(short) ? short : 'other'), data: { type } },
    timeEl(ev.at || b.at), ' ', el('strong', { class: 'type', text: short }), ' ',
    el('span', { class: 'detail' }, detail));
}

/* The recent alerts ({events} of /api/events), or a note when this ops service has none. */
async function fetchEvents() {
  try {
    const data = await apiGet('/api/events?page=1&per_page=' + (EVENTS_SHOWN * 5));
    return Array.isArray(data && data.events) ? data.events : [];
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}

function eventsList(events, minutes, endpoint) {
  if (events === null) return el('p', { class: 'muted', text: 'This ops service keeps no events.' });
  const mine = endpoint === undefined ? events
    : events.filter((ev) => ev && ev.body && typeof ev.body === 'object' && ev.body.endpoint === endpoint);
  if (mine.length === 0) return el('p', { id: 'events-empty', class: 'empty small', text: 'No alerts.' });
  return el('ul', { id: 'events', class: 'card' }, mine.slice(0, EVENTS_SHOWN).map((ev) => eventLine(ev || {}, minutes)));
}

/* A page's data with the server's clock left out: a refresh redraws only when something changed. */
function monitorKey(...parts) {
  return JSON.stringify(parts, (k, v) => (k === 'now' ? undefined : v));
}

async function pageMonitoring(r) {
  const minutes = windowOf(r, 5);
  const [data, events] = await Promise.all([apiGet('/api/monitoring?minutes=' + minutes), fetchEvents()]);
  const eps = Array.isArray(data && data.endpoints) ? data.endpoints : [];
  const link = r.params.get('minutes') ? minutes : null;
  const heads = [['Endpoint'], ['Status'], ['Throughput', 'num'], ['Processing p95', 'num', 'p50 and p99 below'],
    ['Critical p95', 'num'], ['Queue', 'num'], ['Retried / errors', 'num'], ['In flight', 'num'],
    ['Lua memory', 'num'], ['Reloads', 'num'], ['SLA', 'num', 'and time to breach']];
  const node = el('section', null,
    el('div', { class: 'toolbar' }, el('h2', { class: 'grow', text: 'Monitoring' }), windowSelect(minutes)),
    eps.length === 0
      ? el('p', { id: 'monitoring-empty', class: 'empty',
        text: 'No endpoint has reported yet (hosts send a report every `report` seconds).' })
      : el('table', { id: 'monitoring', class: 'grid' },
        el('thead', null, el('tr', null, heads.map(([t, cls, title]) =>
          el('th', { class: cls || null, title: title || null, text: t })))),
        el('tbody', null, eps.map((ep) => monitorRow(ep || {}, link)))),
    el('h3', { text: 'Events' }), eventsList(events, link));
  return { page: 'monitoring', key: monitorKey(data, events, minutes), node };
}

function figureList(ep) {
  const f = figuresOf(ep);
  const { alive, total } = instanceCounts(ep);
  const sla = num(ep.sla);
  const row = (label, value, cls) => [el('dt', { text: label }), el('dd', { class: cls || null }, value)];
  return el('dl', { id: 'figures', class: 'figures' },
    row('Status', [monStatusBadge(ep.status), ' ', alive + ' of ' + total + ' instances alive']),
    row('Throughput', fmtRate(f.throughput), 'throughput'),
    row('Processing', 'p50 ' + fmtDuration(f.p50) + ' · p95 ' + fmtDuration(f.p95) + ' · p99 '
      + fmtDuration(f.p99), 'processing'),
    row('Critical time', 'p50 ' + fmtDuration(f.c50) + ' · p95 ' + fmtDuration(f.c95) + ' · p99 '
      + fmtDuration(f.c99), 'critical'),
    row('Queue length', fmtCount(f.queue), 'queue'),
    row('Outcomes', fmtCount(f.received) + ' received: ' + fmtCount(f.success) + ' success, '
      + fmtCount(f.retried) + ' retried, ' + fmtCount(f.delayed) + ' delayed, ' + fmtCount(f.error)
      + ' errors, ' + fmtCount(f.discarded) + ' discarded', 'outcomes'),
    row('In flight', fmtCount(f.inFlight) + ' handlers, ' + fmtCount(f.pending) + ' requests pending', 'in-flight'),
    row('Lua memory', fmtBytes(f.memory), 'memory'),
    row('Reloads', fmtCount(f.reloads) + ' (reconnects ' + fmtCount(f.reconnects) + ')', 'reloads'),
    row('SLA', sla === null ? 'none' : fmtDuration(sla) + (ep.breached === true ? ' — breached'
      : num(ep.time_to_breach) !== null ? ' — breach in ' + fmtDuration(ep.time_to_breach) : ''),
    'sla' + (ep.breached === true ? ' breached' : '')));
}

function instancesTable(ep) {
  const list = (Array.isArray(ep.instances) ? ep.instances : []).filter((i) => i && typeof i === 'object');
  if (list.length === 0) return el('p', { class: 'empty small', text: 'No instances.' });
  const str = (v) => (v === null || v === undefined ? '' : String(v));
  return el('table', { id: 'instances', class: 'grid' },
    el('thead', null, el('tr', null, ['State', 'Instance', 'Host', 'Pid', 'Generation', 'Last seen',
      'Started', 'Reports every'].map((t) => el('th', { text: t })))),
    el('tbody', null, list.map((i) => {
      const state = INSTANCE_STATES.includes(i.state) ? i.state : 'other';
      return el('tr', { class: 'instance-row', data: { instance: str(i.instance), state: str(i.state) } },
        el('td', { class: 'state' }, el('span', { class: 'badge inst-' + state, text: str(i.state) || '?' })),
        el('td', { class: 'instance mono', text: str(i.instance) }),
        el('td', { class: 'host', text: str(i.host) }),
        el('td', { class: 'pid', text: str(i.pid) }),
        el('td', { class: 'generation', text: str(i.generation) }),
        el('td', { class: 'last-seen' }, timeEl(typeof i.last_seen === 'string' ? i.last_seen : null)),
        el('td', { class: 'started' }, timeEl(typeof i.started === 'string' ? i.started : null)),
        el('td', { class: 'interval', text: num(i.interval) === null ? '' : fmtDuration(i.interval) }));
    })));
}

/* One endpoint's object. A name holding "/" cannot be a path segment of the API (the server
 * decodes %2F before routing): that one is taken from the list of all. */
async function monitoringOf(name, minutes) {
  if (!name.includes('/')) return apiGet('/api/monitoring/' + enc(name) + '?minutes=' + minutes);
  const all = await apiGet('/api/monitoring?minutes=' + minutes);
  const ep = (Array.isArray(all && all.endpoints) ? all.endpoints : []).find((x) => x && x.endpoint === name);
  if (!ep) throw new ApiError(404, 'no such endpoint');
  return ep;
}

async function pageMonitorEndpoint(r) {
  const name = r.parts[1];
  const minutes = windowOf(r, 60);
  let ep;
  const evp = fetchEvents();
  try {
    ep = await monitoringOf(name, minutes);
  } catch (e) {
    if (e.status !== 404) throw e;
    return { page: 'monitor-endpoint', key: '404',
      node: el('p', { class: 'error-box', text: 'No endpoint ' + name + ' has reported (yet).' }) };
  }
  const events = await evp;
  ep = ep && typeof ep === 'object' ? ep : {};
  const s = seriesOf(ep);
  const sla = num(ep.sla);
  const charts = [
    chart({ name: 'throughput', title: 'Throughput (successes per second)', minutes: s.minutes,
      series: [{ values: s.throughput }], fmt: fmtRate }),
    chart({ name: 'processing', title: 'Processing time p95', minutes: s.minutes,
      series: [{ values: s.processing_p95 }], fmt: fmtDuration }),
    chart({ name: 'critical', title: 'Critical time p95', minutes: s.minutes,
      series: [{ values: s.critical_p95 }], fmt: fmtDuration,
      line: sla === null ? null : { value: sla, label: 'SLA ' + fmtDuration(sla) } }),
    chart({ name: 'queue', title: 'Queue length', minutes: s.minutes,
      series: [{ values: s.queue_length }], fmt: fmtCount, whole: true }),
    chart({ name: 'retries', title: 'Retried vs errors (per minute)', minutes: s.minutes,
      series: [{ label: 'retried', values: s.retried, cls: 'retried' },
        { label: 'errors', values: s.error, cls: 'error' }], fmt: fmtCount, whole: true }),
  ];
  const node = el('section', { id: 'monitor-endpoint', data: { endpoint: name, status: ep.status,
    breached: ep.breached === true ? '1' : '0' } },
  el('p', { class: 'crumbs' }, el('a', { href: '#/monitoring', text: 'Monitoring' }), ' › endpoint'),
  el('div', { class: 'toolbar' }, el('h2', { id: 'monitor-title', class: 'wrap', text: name }),
    monStatusBadge(ep.status), el('span', { class: 'grow' }), windowSelect(minutes)),
  figureList(ep),
  el('div', { id: 'charts' }, charts),
  el('h3', { text: 'Instances' }), instancesTable(ep),
  el('h3', { text: 'Events' }), eventsList(events, r.params.get('minutes') ? minutes : null, name));
  return { page: 'monitor-endpoint', key: monitorKey(ep, events, minutes), node };
}

/* --- start ------------------------------------------------------------------------------ */

function autoRefresh() {
  setTimeout(async () => {
    const view = $('#view');
    const busy = operationsRunning > 0 || $('.modal-backdrop') || document.hidden
      || noAutoRefresh.has(view.dataset.page) || view.dataset.ready !== '1';
    if (!busy) { try { await render(true); } catch (e) { /* the next round tries again */ } }
    autoRefresh();
  }, REFRESH_MS);
}

async function showInfo() {
  try {
    const info = await apiGet('/api/info');
    $('#info').textContent = 'v' + info.version + (info.transport ? ' · ' + info.transport : '');
    $('#info').title = 'store: ' + (info.store || '?');
  } catch (e) { $('#info').textContent = ''; }
}

function start() {
  $('#search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = $('#search-input').value.trim();
    if (!q) return;
    const hash = '#/search?q=' + enc(q);
    if (location.hash === hash) render(false); /* the same search again: no hashchange */
    else location.hash = hash;
  });
  $('#progress button[name=progress-close]').addEventListener('click', () => { $('#progress').hidden = true; });
  window.addEventListener('hashchange', () => {
    /* a finished operation's bar and the last notice belong to the page they were made on */
    if ($('#progress').dataset.state === 'done') $('#progress').hidden = true;
    $('#flash').hidden = true;
    render(false);
  });
  if (!location.hash) history.replaceState(null, '', '#/groups');
  render(false);
  showInfo();
  autoRefresh();
}

document.addEventListener('DOMContentLoaded', start);
