// monitoring.mjs — the monitoring pages of the ops web UI (#/monitoring, #/monitoring/NAME;
// issue 18, DESIGN §11) driven in headless Chromium against a real `moonbus ops`
// (build/asan/moonbus) on one bus (SQLite file or a RabbitMQ vhost of its own, see run.sh).
// Run through tests/browser/run.sh; prints TAP. What it proves, from the page only:
//   1. after reports arrive, the monitoring page lists each endpoint with its figures
//      (status, instances alive/total, throughput, percentiles, queue, memory, sparklines);
//   2. the endpoint page draws its five charts and its instances table;
//   3. the window selector asks for another window (the sparklines get one point a minute);
//   4. an instance that stops reporting turns dead on the page (no reload: the page's own
//      refresh) within 3 report periods + the refresh time, and a HeartbeatStopped event
//      shows in the events list;
//   5. an endpoint whose critical time is past its SLA shows red;
//   6. a stopped endpoint (its last report said stopping) shows stopped;
//   7. an endpoint named <script>…</script> is shown as text;
//   8. the page logged no error and no CSP violation; `moonbus ops` stops cleanly;
//   and saves a screenshot of the monitoring page (docs/monitoring.png with
//   MONITORING_SCREENSHOT=docs/monitoring.png). With OPS_SHOTS=DIR it also saves full-page
//   screenshots of the endpoint page there, for a look.
//
// The reports: until `moonbus run` hosts send moonbus.ops.Report themselves, a Lua process
// (stock lua5.4 with build/moonbus.so) sends hand-made reports (contract section C) every
// REPORT seconds for made-up instances to queue moonbus.ops. Everything the checks need from
// the reporters goes through reporters.start() / reporters.silence(endpoint) /
// reporters.quit(); with real hosts (bus.endpoint{ report = 1, sla = … }) only those three
// change: silence() kills one host and returns its instance id. The checks read figures
// as "some number", not exact values, so that they hold for real hosts as well.
// Never leaves a process behind: every child is killed at exit, whatever happened.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MOONBUS = path.resolve(ROOT, process.env.MOONBUS || 'build/asan/moonbus');
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'moonbus-monitoring.'));
const TRANSPORT = process.env.MOONBUS_BROWSER_TRANSPORT || 'sqlite://' + WORK + '/bus.db';
const SHOT = path.resolve(ROOT, process.env.MONITORING_SCREENSHOT || 'build/test-logs/browser-monitoring.png');
const env = { ...process.env, MOONBUS_TRANSPORT: TRANSPORT, MOONBUS_LOG: 'info',
  ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1' };
const REPORT = 1; /* seconds between two reports of an instance */
const REFRESH = 4; /* seconds: the UI's auto-refresh (REFRESH_MS of app.js) */
const SCRIPT_NAME = '<script>alert(1)</script>';

/* --- TAP ------------------------------------------------------------------------------- */

let count = 0;
let failures = 0;
function report(pass, what, diag) {
  count++;
  console.log((pass ? 'ok ' : 'not ok ') + count + ' - ' + what);
  if (!pass) {
    failures++;
    for (const line of String(diag || '').split('\n').slice(0, 20)) console.log('#   ' + line);
    for (const c of children) if (c.ended) console.log('#   (' + c.name + ' has ended: ' + c.ended + ')');
  }
}
async function test(what, fn) {
  try {
    await fn();
    report(true, what);
  } catch (e) {
    report(false, what, e && e.stack ? e.stack : e);
  }
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }
function equal(got, want, msg) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(msg + ': got ' + g + ', want ' + w);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what, seconds, fn) {
  const deadline = Date.now() + seconds * 1000;
  let last;
  for (;;) {
    try { const v = await fn(); if (v) return v; } catch (e) { if (e.fatal) throw e; last = e; }
    if (Date.now() > deadline) throw new Error('timed out after ' + seconds + ' s: ' + what + (last ? ' (' + last.message + ')' : ''));
    await sleep(200);
  }
}

/* --- processes --------------------------------------------------------------------------- */

const children = [];
function start(name, cmd, args, extraEnv) {
  const out = fs.openSync(path.join(WORK, name + '.log'), 'a');
  const child = spawn(cmd, args, { env: { ...env, ...(extraEnv || {}) }, cwd: WORK, stdio: ['ignore', out, out] });
  child.name = name;
  child.on('exit', (code, signal) => { child.ended = signal || 'exit status ' + code; });
  children.push(child);
  return child;
}
function log(name) {
  try { return fs.readFileSync(path.join(WORK, name + '.log'), 'utf8'); } catch (e) { return ''; }
}
function stopAll() {
  for (const c of children) if (c.exitCode === null) try { c.kill('SIGKILL'); } catch (e) { /* gone */ }
}
process.on('exit', stopAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { stopAll(); process.exit(1); });

/* --- the reporters: hand-made moonbus.ops.Report messages (contract section C) ------------ */

/* One Lua process sends a report for each of its instances every `interval` seconds until
 * WORK/quit exists; an instance falls silent when WORK/silence-INSTANCE exists, and one
 * with stop_after = N sends N reports, the last with stopping = true. Profiles: "fast"
 * (critical time ~10-25 ms) and "slow" (critical time ~250-500 ms). */
const REPORTER_LUA = `
local cjson = require "cjson"
local testing = require "moonbus.testing"
local bus = testing.fresh(os.getenv("MOONBUS_TRANSPORT"))
local spec = cjson.decode(os.getenv("REPORTER_SPEC"))
bus.message("moonbus.ops.Report")
bus.endpoint { name = spec.name, audit = false }
local function exists(p) local f = io.open(p) if f then f:close() return true end return false end
local function now() return os.date("!%Y-%m-%dT%H:%M:%S.000Z") end
local started = now()
-- 19 deltas (18 bounds + Inf): n1 observations in bucket i (1-based), n2 in the next one
local function buckets(i, n1, n2)
  local b = {} for k = 1, 19 do b[k] = 0 end
  b[i], b[i + 1] = n1, n2
  return b
end
local seqs = {}
local function report(inst)
  if exists(spec.work .. "/silence-" .. inst.instance) then return end
  local seq = (seqs[inst.instance] or 0) + 1
  if inst.stop_after ~= cjson.null and seq > inst.stop_after then return end
  seqs[inst.instance] = seq
  local slow = inst.profile == "slow"
  bus.send("moonbus.ops.Report", {
    version = 1, endpoint = inst.endpoint, instance = inst.instance, host = inst.host,
    pid = inst.pid, generation = 1, seq = seq, heartbeat = now(), started = started,
    interval = spec.interval, sla = inst.sla, stopping = seq == inst.stop_after,
    window = spec.interval, received = 50,
    outcomes = { success = 45, retried = 5, delayed = 0, error = 1, discarded = 0 },
    processing = { count = 51, sum = 0.03, buckets = buckets(3, 40, 11) },
    critical = slow and { count = 51, sum = 18, buckets = buckets(11, 30, 21) }
      or { count = 51, sum = 0.7, buckets = buckets(7, 40, 11) },
    reloads = { ok = 0, refused = 0 }, reconnects = 0, in_flight = 2, requests_pending = 0,
    lua_memory_bytes = 412345 + seq * 1024, shared_memory_bytes = 0,
    queues = { [inst.endpoint] = (seq * 7) % 23, error = 0 },
    types = { ["shop.Pay"] = { received = 50, success = 45, retried = 5, delayed = 0,
                               error = 1, discarded = 0 } },
  }, { to = "moonbus.ops" })
end
local function round() for _, inst in ipairs(spec.instances) do report(inst) end end
bus.after(0, round)
bus.every(spec.interval, round)
io.stdout:write("reporting\\n") io.stdout:flush()
testing.run_until(function() return exists(spec.work .. "/quit") end, 900)
`;

const reporters = {
  procs: 0,
  /* Starts a reporter process for instances [{endpoint, instance, sla, profile, stop_after}]. */
  async start(instances) {
    const name = 'reporter' + ++this.procs;
    fs.writeFileSync(path.join(WORK, 'reporter.lua'), REPORTER_LUA);
    const spec = { name: 'browser_' + name, work: WORK, interval: REPORT,
      instances: instances.map((i, k) => ({ host: 'box' + (k % 2 + 1), pid: 4000 + k + 10 * this.procs,
        sla: null, profile: 'fast', stop_after: null, ...i })) };
    const p = start(name, 'lua5.4', [path.join(WORK, 'reporter.lua')], { MOONBUS_LOG: 'warn',
      REPORTER_SPEC: JSON.stringify(spec), LUA_PATH: ROOT + '/modules/?.lua;;', LUA_CPATH: ROOT + '/build/?.so;;' });
    await waitFor(name + ' reports', 30, () => {
      if (p.exitCode !== null) throw Object.assign(new Error(name + ' exited: ' + log(name)), { fatal: true });
      return log(name).includes('reporting');
    });
  },
  /* Stops the reports of one instance of endpoint; returns its instance id. */
  silence(endpoint) {
    const instance = endpoint + '-b';
    fs.writeFileSync(path.join(WORK, 'silence-' + instance), '');
    return instance;
  },
  quit() { fs.writeFileSync(path.join(WORK, 'quit'), ''); },
};

/* --- the ops service -------------------------------------------------------------------- */

let BASE;
async function api(p) {
  const res = await fetch(BASE + p);
  if (!res.ok) throw new Error('GET ' + p + ': ' + res.status);
  return res.json();
}
async function startOps() {
  const ops = start('ops', MOONBUS, ['ops', '--listen', '127.0.0.1:0', '--transport', TRANSPORT,
    '--store', path.join(WORK, 'ops.db')]);
  const port = await waitFor('ops says where it serves', 30, () => {
    if (ops.exitCode !== null) throw Object.assign(new Error('moonbus ops exited: ' + log('ops')), { fatal: true });
    const m = /serving http:\/\/127\.0\.0\.1:(\d+)\//.exec(log('ops'));
    return m && m[1];
  });
  BASE = 'http://127.0.0.1:' + port;
  await waitFor('ops answers /api/info', 30, () => api('/api/info'));
}

/* --- page helpers ------------------------------------------------------------------------ */

let page;
const dialogs = [];
const pageErrors = [];
async function open(hash, kind) {
  const url = BASE + '/' + hash;
  if (page.url() === url) await page.reload();
  else await page.goto(url);
  await ready(kind);
}
/* With OPS_SHOTS=DIR, a full-page screenshot of what the page shows now (for a look). */
async function devShot(name) {
  if (!process.env.OPS_SHOTS) return;
  fs.mkdirSync(process.env.OPS_SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(process.env.OPS_SHOTS, name + '.png'), fullPage: true });
}
async function ready(kind) {
  await page.waitForSelector(`#view[data-page=${kind}][data-ready="1"]`, { timeout: 15000 });
}
/* The row of endpoint name on the monitoring page (CSS.escape: the name is foreign). */
function row(name) {
  return page.locator(`tr.monitor-row[data-endpoint="${name.replace(/["\\]/g, '\\$&')}"]`);
}
async function cell(name, cls) {
  return (await row(name).locator(`td.${cls} .figure`).textContent({ timeout: 1000 })).trim();
}
const DURATION = /^\d+(\.\d+)? (µs|ms|s)$/;

/* --- the tests -------------------------------------------------------------------------- */

async function figuresShow() {
  await open('#/monitoring', 'monitoring');
  const t0 = Date.now();
  await waitFor('sales is live with 2 of 2 instances and a throughput', 20, async () =>
    (await row('sales').getAttribute('data-status', { timeout: 1000 })) === 'live'
    && (await row('sales').locator('.instance-count').textContent()) === '2/2'
    && /^[1-9][\d.]*\/s$|^0\.\d*[1-9]\d*\/s$/.test(await cell('sales', 'throughput')));
  console.log('# sales showed with its figures after ' + ((Date.now() - t0) / 1000).toFixed(1) + ' s');
  assert(DURATION.test(await cell('sales', 'processing')), 'processing p95 is a duration: ' + await cell('sales', 'processing'));
  assert(/p50 .* · p99 /.test(await row('sales').locator('td.processing .sub').textContent()), 'p50 and p99 shown');
  assert(DURATION.test(await cell('sales', 'critical')), 'critical p95 is a duration: ' + await cell('sales', 'critical'));
  assert(/^\d+$/.test(await cell('sales', 'queue')), 'queue length is a count: ' + await cell('sales', 'queue'));
  assert(/^\d+ \/ \d+$/.test(await cell('sales', 'retries')), 'retried / errors: ' + await cell('sales', 'retries'));
  assert(/^\d+$/.test(await cell('sales', 'in-flight')), 'in flight: ' + await cell('sales', 'in-flight'));
  assert(/^\d+(\.\d+)? (B|KiB|MiB|GiB)$/.test(await cell('sales', 'memory')), 'Lua memory in bytes: ' + await cell('sales', 'memory'));
  assert(/^\d+$/.test(await cell('sales', 'reloads')), 'reloads: ' + await cell('sales', 'reloads'));
  assert(DURATION.test(await cell('sales', 'sla')), 'the SLA is a duration: ' + await cell('sales', 'sla'));
  assert(/^breach in /.test(await row('sales').locator('td.sla .time-to-breach').textContent()), 'time to breach shown');
  const sparks = await row('sales').locator('svg.spark').evaluateAll((svgs) => svgs.map((s) => ({
    series: s.dataset.series, points: +s.dataset.points,
    drawn: Array.from(s.querySelectorAll('path.line')).some((p) => p.getAttribute('d'))
      || s.querySelectorAll('circle.dot').length > 0 })));
  equal(sparks.map((s) => s.series), ['throughput', 'processing_p95', 'critical_p95', 'queue_length', 'retries'], 'the sparklines');
  for (const s of sparks) {
    equal(s.points, 5, 'points of the ' + s.series + ' sparkline (5 minutes)');
    assert(s.drawn, 'the ' + s.series + ' sparkline draws something');
  }
}

async function endpointPage() {
  await row('sales').locator('td.endpoint a').click();
  await ready('monitor-endpoint');
  equal(await page.textContent('#monitor-title'), 'sales', 'the title');
  const charts = await page.$$eval('figure.chart', (fs) => fs.map((f) => ({ name: f.dataset.chart,
    lines: Array.from(f.querySelectorAll('svg path.line')).filter((p) => p.getAttribute('d')).length,
    ticks: f.querySelectorAll('svg text.tick').length })));
  equal(charts.map((c) => c.name), ['throughput', 'processing', 'critical', 'queue', 'retries'], 'the charts');
  for (const c of charts) {
    assert(c.lines > 0 || (await page.locator(`figure.chart[data-chart=${c.name}] circle.dot`).count()) > 0,
      'the ' + c.name + ' chart draws its series');
    assert(c.ticks >= 3, 'the ' + c.name + ' chart has axis labels');
  }
  equal(await page.locator('figure.chart[data-chart=critical] line.limit').count(), 1, 'the SLA line on the critical chart');
  await devShot('monitor-endpoint');
  const rows = await page.$$eval('#instances tr.instance-row', (trs) => trs.map((r) => ({
    state: r.dataset.state, host: r.querySelector('td.host').textContent,
    pid: r.querySelector('td.pid').textContent, generation: r.querySelector('td.generation').textContent,
    seen: !!r.querySelector('td.last-seen time') })));
  equal(rows.length, 2, 'instance rows');
  for (const r of rows) {
    equal(r.state, 'alive', 'an instance state');
    assert(r.host && /^\d+$/.test(r.pid) && /^\d+$/.test(r.generation) && r.seen, 'host, pid, generation, last seen: ' + JSON.stringify(r));
  }
}

async function windowSelector() {
  await open('#/monitoring', 'monitoring');
  await page.selectOption('#monitor-window', '60');
  await waitFor('the hash asks for 60 minutes', 5, () => page.url().endsWith('#/monitoring?minutes=60'));
  await ready('monitoring');
  await waitFor('the sparklines cover 60 minutes', 10, async () =>
    (await row('sales').locator('svg.spark[data-series=throughput]').getAttribute('data-points', { timeout: 1000 })) === '60');
  equal(await page.inputValue('#monitor-window'), '60', 'the selector shows the window');
  await row('sales').locator('td.endpoint a').click();
  await ready('monitor-endpoint');
  assert(page.url().includes('minutes=60'), 'the endpoint link keeps the window: ' + page.url());
  await page.selectOption('#monitor-window', '1440');
  await waitFor('the endpoint page asks for 24 h', 5, () => page.url().includes('minutes=1440'));
  await ready('monitor-endpoint');
  await waitFor('the charts draw the 24 h window', 10, async () =>
    (await page.locator('figure.chart[data-chart=throughput] svg path.line').getAttribute('d', { timeout: 1000 })) !== null);
}

async function instanceTurnsDead() {
  await open('#/monitoring', 'monitoring');
  await waitFor('sales is live', 10, async () => (await row('sales').getAttribute('data-status', { timeout: 1000 })) === 'live');
  const instance = reporters.silence('sales');
  const t0 = Date.now();
  const limit = 3 * REPORT + REFRESH + 3; /* 3 report periods + the page's refresh + the last report's age */
  await waitFor('sales turns partial with 1 of 2 instances alive on the page', limit + 10, async () =>
    (await row('sales').getAttribute('data-status', { timeout: 1000 })) === 'partial'
    && (await row('sales').locator('.instance-count').textContent()) === '1/2');
  const secs = (Date.now() - t0) / 1000;
  console.log('# the silent instance showed dead after ' + secs.toFixed(1) + ' s (limit ' + limit + ' s)');
  assert(secs <= limit, 'dead on the page within ' + limit + ' s: took ' + secs.toFixed(1) + ' s');
  const ev = page.locator('#events li.event[data-type="moonbus.ops.HeartbeatStopped"]', { hasText: instance });
  await waitFor('a HeartbeatStopped event for ' + instance + ' in the events list', REFRESH + 6, async () => (await ev.count()) > 0);
  assert((await ev.first().textContent()).includes('sales'), 'the event names its endpoint');
  await row('sales').locator('td.endpoint a').click();
  await ready('monitor-endpoint');
  const states = await page.$$eval('#instances tr.instance-row', (trs) =>
    Object.fromEntries(trs.map((r) => [r.dataset.instance, r.dataset.state])));
  equal(states[instance], 'dead', 'the silent instance on the endpoint page');
  equal(Object.values(states).filter((s) => s === 'alive').length, 1, 'instances still alive');
  await devShot('monitor-endpoint-dead');
  await page.locator(`#instances tr.instance-row[data-instance="${instance}"] .badge.inst-dead`).waitFor({ timeout: 1000 });
  assert((await page.locator('#events li.event[data-type="moonbus.ops.HeartbeatStopped"]').count()) > 0,
    'the endpoint page lists its HeartbeatStopped event');
}

const RED = 'rgb(208, 49, 45)'; /* --red of style.css */
async function breachShowsRed() {
  await open('#/monitoring', 'monitoring');
  await waitFor('billing is breached', 15, async () => (await row('billing').getAttribute('data-breached', { timeout: 1000 })) === '1');
  const sla = row('billing').locator('td.sla');
  assert((await sla.getAttribute('class')).split(/\s+/).includes('breached'), 'its SLA cell is marked breached');
  equal(await sla.locator('.figure').evaluate((e) => getComputedStyle(e).color), RED, 'the colour of its SLA');
  equal((await sla.locator('.time-to-breach').textContent()).trim(), 'breached', 'its time to breach');
  equal(await row('sales').getAttribute('data-breached'), '0', 'sales (SLA 30 s) is not breached');
  assert(await row('sales').locator('td.sla .figure').evaluate((e, red) => getComputedStyle(e).color !== red, RED),
    'the SLA of sales is not red');
}

async function stoppedShows() {
  await open('#/monitoring', 'monitoring');
  await waitFor('batch (its last report said stopping) is stopped', 15, async () =>
    (await row('batch').getAttribute('data-status', { timeout: 1000 })) === 'stopped');
}

async function screenshot() {
  await page.setViewportSize({ width: 1280, height: 720 });
  await open('#/monitoring', 'monitoring');
  await page.mouse.move(640, 710);
  fs.mkdirSync(path.dirname(SHOT), { recursive: true });
  await page.screenshot({ path: SHOT });
  assert(fs.statSync(SHOT).size > 5000, 'the screenshot has content');
  await page.setViewportSize({ width: 1280, height: 800 });
}

async function scriptNameIsText() {
  await reporters.start([{ endpoint: SCRIPT_NAME, instance: 'evil-a' }]);
  await open('#/monitoring', 'monitoring');
  await row(SCRIPT_NAME).waitFor({ timeout: 15000 });
  equal(await row(SCRIPT_NAME).locator('td.endpoint a').textContent(), SCRIPT_NAME, 'the name as text');
  equal(await page.locator('#view script, #view img').count(), 0, 'script or img elements in the view');
  await row(SCRIPT_NAME).locator('td.endpoint a').click();
  await ready('monitor-endpoint');
  equal(await page.textContent('#monitor-title'), SCRIPT_NAME, 'the endpoint page title');
  equal(await page.locator('#view script').count(), 0, 'script elements on its page');
  await sleep(300);
  equal(dialogs, [], 'dialogs opened by the page');
}

async function stopOps() {
  const ops = children.find((c) => c.name === 'ops');
  ops.kill('SIGTERM');
  const code = await new Promise((resolve) => {
    if (ops.exitCode !== null) resolve(ops.exitCode);
    ops.once('exit', (c, sig) => resolve(c === null ? sig : c));
    setTimeout(() => resolve('still running after 20 s'), 20000);
  });
  equal(code, 0, 'the exit status');
  const bad = log('ops').split('\n').filter((l) => /AddressSanitizer|LeakSanitizer|runtime error:/.test(l));
  equal(bad, [], 'sanitizer lines in its log');
}

/* --- main ------------------------------------------------------------------------------- */

async function main() {
  console.log('# work: ' + WORK);
  let browser;
  await test('the ops service starts and instances report', async () => {
    await startOps();
    await reporters.start([
      { endpoint: 'sales', instance: 'sales-a', sla: 30 },
      { endpoint: 'sales', instance: 'sales-b', sla: 30 },
      { endpoint: 'billing', instance: 'billing-a', sla: 0.05, profile: 'slow' },
      { endpoint: 'shipping', instance: 'shipping-a' },
      { endpoint: 'batch', instance: 'batch-a', stop_after: 2 },
    ]);
  });
  if (failures) return;
  await test('chromium starts headless', async () => {
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push('console: ' + m.text()); });
  });
  if (failures) return;
  await test('the monitoring page shows an endpoint with its figures after reports arrive', figuresShow);
  await test('the endpoint page draws its five charts and its instances', endpointPage);
  await test('the window selector asks for 1 h and 24 h', windowSelector);
  await test('an instance that stops reporting turns dead within 3 report periods + refresh; HeartbeatStopped listed', instanceTurnsDead);
  await test('a breached SLA shows red', breachShowsRed);
  await test('an endpoint whose last report said stopping shows stopped', stoppedShows);
  await test('a screenshot of the monitoring page is saved to ' + path.relative(ROOT, SHOT), screenshot);
  await test('an endpoint named <script> is shown as text', scriptNameIsText);
  await test('the page logged no error (uncaught, failed load, CSP violation)', async () =>
    equal([...new Set(pageErrors)], [], 'errors'));
  reporters.quit();
  await test('moonbus ops stops cleanly at SIGTERM (exit 0, no sanitizer report)', stopOps);
  await browser.close();
}

try {
  await main();
} catch (e) {
  report(false, 'the browser tests ran to the end', e.stack);
}
reporters.quit();
stopAll();
for (const c of children) if (c.exitCode === null) await new Promise((r) => { c.once('exit', r); setTimeout(r, 3000); });
if (failures) {
  const keep = path.join(ROOT, 'build/test-logs/browser-monitoring');
  fs.rmSync(keep, { recursive: true, force: true });
  fs.mkdirSync(keep, { recursive: true });
  for (const f of fs.readdirSync(WORK)) if (f.endsWith('.log')) fs.copyFileSync(path.join(WORK, f), path.join(keep, f));
  console.log('# logs kept in ' + path.relative(ROOT, keep));
}
if (!process.env.KEEP_WORK) fs.rmSync(WORK, { recursive: true, force: true });
console.log('1..' + count);
process.exit(failures ? 1 : 0);
