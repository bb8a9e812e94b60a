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
// The reports: real hosts (`moonbus run DIR`, bus.endpoint{ report = 1, sla = … }) send
// them, fed a command every 0.1 s by one more host so that their figures are not zero;
// billing (sla = 0.001) spends ~5 ms on each, so its SLA is breached; batch gets SIGTERM
// 2.5 s after it runs (its last report says stopping); silence() kills one host with
// SIGKILL and returns its instance id (read from its "running ... (instance ID, ...)" line).
// Only the endpoint named <script>…</script> reports by hand (a Lua process sending
// moonbus.ops.Report, contract section C): no real endpoint can have that name.
// Everything the checks need from the reporters goes through reporters.start() /
// reporters.silence(endpoint) / reporters.quit(). The checks read figures as "some
// number", not exact values.
// Never leaves a process behind: every child is killed at exit, whatever happened (the
// harness, shared with ops_ui.mjs, is lib.mjs).
import path from 'node:path';
import {
  ROOT, WORK, init, test, assert, equal, fatal, sleep, waitFor, start, host, log, running, luaEnv,
  write, startOps, stopOps, launch, page, dialogs, pageErrors, ready, open, devShot, screenshotTo,
  run, failures,
} from './lib.mjs';

init('moonbus-monitoring');
const SHOT = path.resolve(ROOT, process.env.MONITORING_SCREENSHOT || 'build/test-logs/browser-monitoring.png');
const REPORT = 1; /* seconds between two reports of an instance */
const REFRESH = 4; /* seconds: the UI's auto-refresh (REFRESH_MS of app.js) */
const SCRIPT_NAME = '<script>alert(1)</script>';

/* --- the reporters ---------------------------------------------------------------------- */

/* An endpoint host handles mon.Work: "fast" at once, "slow" busy for ~5 ms (past a tiny SLA). */
function endpointScript(e) {
  const sla = e.sla == null ? '' : ', sla = ' + e.sla;
  const work = e.profile === 'slow' ? 'local t = os.clock() + 0.005 while os.clock() < t do end' : '';
  return `local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "${e.endpoint}", report = ${REPORT}${sla}, audit = false,
  retries = { immediate = 0, delayed = 0 } }
bus.handle("mon.Work", function() ${work} end)
`;
}
/* The feeder sends a mon.Work to each target every 0.1 s. */
function feederScript(targets) {
  return `local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "browser_feeder", report = false, audit = false }
local targets = { ${targets.map((t) => '"' + t + '"').join(', ')} }
bus.every(0.1, function()
  for _, t in ipairs(targets) do bus.send("mon.Work", {}, { to = t }) end
end)
`;
}

/* The hand-made reporter: one Lua process sends a report for one instance of an endpoint
 * every REPORT seconds until WORK/quit exists. */
const REPORTER_LUA = `
local cjson = require "cjson"
local testing = require "moonbus.testing"
local bus = testing.fresh(os.getenv("MOONBUS_TRANSPORT"))
local spec = cjson.decode(os.getenv("REPORTER_SPEC"))
bus.message("moonbus.ops.Report")
bus.endpoint { name = "browser_reporter", audit = false }
local function exists(p) local f = io.open(p) if f then f:close() return true end return false end
local function now() return os.date("!%Y-%m-%dT%H:%M:%S.000Z") end
local started, seq = now(), 0
local function report()
  seq = seq + 1
  local zero = {} for k = 1, 19 do zero[k] = 0 end
  local hist = { count = 0, sum = 0, buckets = zero }
  bus.send("moonbus.ops.Report", {
    version = 1, endpoint = spec.endpoint, instance = spec.instance, host = "box1", pid = 4000,
    generation = 1, seq = seq, heartbeat = now(), started = started, interval = spec.interval,
    sla = cjson.null, stopping = false, window = spec.interval, received = 0,
    outcomes = { success = 0, retried = 0, delayed = 0, error = 0, discarded = 0 },
    processing = hist, critical = hist, reloads = { ok = 0, refused = 0 }, reconnects = 0,
    in_flight = 0, requests_pending = 0, lua_memory_bytes = 1024, shared_memory_bytes = 0,
    queues = {}, types = {},
  }, { to = "moonbus.ops" })
end
bus.after(0, report)
bus.every(spec.interval, report)
io.stdout:write("reporting\\n") io.stdout:flush()
testing.run_until(function() return exists(spec.work .. "/quit") end, 900)
`;

const reporters = {
  hosts: [], /* { endpoint, instance, child } of the real hosts, in start order */
  others: [], /* the feeder and the hand-made reporter */
  /* Starts a host for each of instances [{endpoint, sla, profile, stop_after}] (one that
   * stops cleanly at SIGTERM after stop_after seconds, its last report saying stopping),
   * then the feeder; or, for {endpoint, handmade: true}, a hand-made reporter. */
  async start(instances) {
    write('contracts.lua', 'local bus = require "moonbus"\nbus.command("mon.Work")\n');
    for (const e of instances.filter((i) => i.handmade)) await this.handmade(e.endpoint);
    const real = instances.filter((i) => !i.handmade);
    if (!real.length) return;
    const started = real.map((e) => {
      write(e.endpoint + '/endpoint.lua', endpointScript(e));
      const name = e.endpoint + '-' + (this.hosts.filter((h) => h.endpoint === e.endpoint).length + 1);
      const h = { endpoint: e.endpoint, child: host(name, ['run', e.endpoint]), stop_after: e.stop_after };
      this.hosts.push(h);
      return h;
    });
    for (const h of started) h.instance = await running(h.child);
    for (const h of started) {
      if (h.stop_after) setTimeout(() => h.child.kill('SIGTERM'), h.stop_after * REPORT * 1000 + 500);
    }
    const fed = [...new Set(real.filter((e) => !e.stop_after).map((e) => e.endpoint))];
    write('feeder/endpoint.lua', feederScript(fed));
    const feeder = host('feeder', ['run', 'feeder']);
    this.others.push(feeder);
    await running(feeder);
  },
  async handmade(endpoint) {
    write('reporter.lua', REPORTER_LUA);
    const spec = { endpoint, instance: 'handmade-1', work: WORK, interval: REPORT };
    const p = start('reporter', 'lua5.4', [WORK + '/reporter.lua'], { MOONBUS_LOG: 'warn',
      REPORTER_SPEC: JSON.stringify(spec), ...luaEnv() });
    this.others.push(p);
    await waitFor('the hand-made reporter reports', 30, () => {
      if (p.exitCode !== null) throw fatal('the reporter exited: ' + log('reporter'));
      return log('reporter').includes('reporting');
    });
  },
  /* Kills the last host of endpoint still running (SIGKILL: no last report); returns its
   * instance id. */
  silence(endpoint) {
    const h = this.hosts.filter((x) => x.endpoint === endpoint && x.child.exitCode === null).pop();
    h.child.kill('SIGKILL');
    return h.instance;
  },
  quit() {
    write('quit', '');
    for (const c of [...this.others, ...this.hosts.map((h) => h.child)]) {
      if (c.exitCode === null) try { c.kill('SIGTERM'); } catch (e) { /* gone */ }
    }
  },
};

/* --- page helpers ------------------------------------------------------------------------ */

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
  await screenshotTo(SHOT);
  await page.setViewportSize({ width: 1280, height: 800 });
}

async function scriptNameIsText() {
  await reporters.start([{ endpoint: SCRIPT_NAME, handmade: true }]);
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

/* --- main ------------------------------------------------------------------------------- */

async function main() {
  let browser;
  await test('the ops service starts and instances report', async () => {
    await startOps();
    await reporters.start([
      { endpoint: 'sales', sla: 30 },
      { endpoint: 'sales', sla: 30 },
      { endpoint: 'billing', sla: 0.001, profile: 'slow' },
      { endpoint: 'shipping' },
      { endpoint: 'batch', stop_after: 2 },
    ]);
  });
  if (failures) return;
  await test('chromium starts headless', async () => { browser = await launch(); });
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

await run(async () => {
  try {
    await main();
  } finally {
    reporters.quit();
  }
}, 'browser-monitoring');
