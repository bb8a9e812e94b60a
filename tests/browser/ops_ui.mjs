// ops_ui.mjs — the ops web UI driven in headless Chromium against a real `moonbus ops`
// (build/asan/moonbus) and real endpoint hosts on one SQLite bus in a scratch directory.
// Run through tests/browser/run.sh; prints TAP. What it proves, from the page only (the API
// is read only to wait for ingestion and to learn an id):
//   1. a failed message appears in its group on the groups page within seconds;
//   2. after its handler is fixed by rewriting the script (hot reload), "retry" on the
//      message page gets it handled, and it leaves the list;
//   3. a group retry of 500 messages shows progress and ends with 0 left;
//   4. search finds a message by a header value and by a word of its body;
//   5. the conversation page of a three-hop flow with one failure draws its arrows in causal
//      order with the failed one red (the SVG's elements and classes, not pixels);
//   6. a body holding <script> is shown as text (no script element, no dialog);
//   7. edit and retry sends a new message, the original resolved, the two linked;
//   8. `moonbus ops` stops cleanly at SIGTERM;
//   9. off loopback (with --token-file) the page asks for the token, refuses a wrong one and
//      keeps the right one for the session;
//   and saves a screenshot of the groups page (docs/ops.png with OPS_SCREENSHOT=docs/ops.png).
// With OPS_SHOTS=DIR it also saves full-page screenshots of other pages there, for a look.
// Never leaves a process behind: every child is killed at exit, whatever happened (the
// harness, shared with monitoring.mjs, is lib.mjs).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ROOT, WORK, TRANSPORT, env, init, report, test, assert, equal, fatal, sleep, waitFor, children,
  host, log, running, luaEnv, write, api, startOps, stopOps, launch, page, dialogs, pageErrors,
  ready, open, devShot, screenshotTo, run, failures,
} from './lib.mjs';

init('moonbus-browser');
/* The README's picture is docs/ops.png: OPS_SCREENSHOT=docs/ops.png refreshes it (by
 * default a run leaves the tree alone). */
const SHOT = path.resolve(ROOT, process.env.OPS_SCREENSHOT || 'build/test-logs/browser-ops.png');

/* Runs Lua (stock lua5.4 with build/moonbus.so) on a fresh bus named browser_sender, whose
 * routes send each flow's first command to its endpoint; `code` runs in a timer. */
function send(code) {
  const lua = `
    local testing = require "moonbus.testing"
    local bus = testing.fresh(os.getenv("MOONBUS_TRANSPORT"))
    require "contracts"
    bus.endpoint { name = "browser_sender", audit = false, routes = {
      ["shop.Pay"] = "shop", ["xss.Show"] = "shop", ["bulk.Do"] = "bulk", ["flow.Start"] = "alpha" } }
    local done, failure = false, nil
    bus.after(0, function()
      local ok, err = pcall(function() ${code} end)
      failure, done = not ok and tostring(err) or nil, true
    end)
    assert(testing.run_until(function() return done end, 300), "not sent in time")
    assert(not failure, failure)`;
  return new Promise((resolve, reject) => {
    execFile('lua5.4', ['-e', lua], { env: { ...env, MOONBUS_LOG: 'error', ...luaEnv([WORK]) } },
    (err, stdout, stderr) => (err ? reject(new Error('send failed: ' + stderr + stdout)) : resolve(stdout)));
  });
}

/* --- the endpoints -------------------------------------------------------------------- */

const CONTRACTS = `local bus = require "moonbus"
bus.command("shop.Pay", { order = "string", note = "string?" })
bus.command("xss.Show", { text = "string" })
bus.command("bulk.Do", { n = "number" })
bus.command("flow.Start")
bus.command("flow.Step")
bus.command("flow.Final")
`;
function endpoint(name, routes, handlers) {
  write(name + '/endpoint.lua', `local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "${name}", retries = { immediate = 0, delayed = 0 }, routes = { ${routes} } }
require "${name}_handlers"
`);
  write(name + '/' + name + '_handlers.lua', 'local bus = require "moonbus"\n' + handlers);
}
const SHOP_BROKEN = `bus.handle("shop.Pay", function(p) error("card declined for order " .. p.order) end)
bus.handle("xss.Show", function(x) error("cannot show " .. x.text) end)`;
const SHOP_FIXED = `bus.handle("shop.Pay", function(p) bus.log.info("paid %s", p.order) end)
bus.handle("xss.Show", function(x) error("cannot show " .. x.text) end)`;
const BULK_BROKEN = 'bus.handle("bulk.Do", function(d) error("bulk handler is broken") end)';
const BULK_FIXED = 'bus.handle("bulk.Do", function(d) end)';

async function startEndpoints() {
  write('contracts.lua', CONTRACTS);
  endpoint('shop', '', SHOP_BROKEN);
  endpoint('bulk', '', BULK_BROKEN);
  endpoint('alpha', '["flow.Step"] = "beta"', 'bus.handle("flow.Start", function() bus.send("flow.Step", {}) end)');
  endpoint('beta', '["flow.Final"] = "gamma"', 'bus.handle("flow.Step", function() bus.send("flow.Final", {}) end)');
  endpoint('gamma', '', 'bus.handle("flow.Final", function() error("gamma cannot finish the flow") end)');
  for (const name of ['shop', 'bulk', 'alpha', 'beta', 'gamma']) host(name, ['run', name]);
  for (const c of children) await running(c);
}

async function reload(name, handlers, generation) {
  write(name + '/' + name + '_handlers.lua', 'local bus = require "moonbus"\n' + handlers);
  await waitFor(name + ' reloads as generation ' + generation, 20,
    () => log(name).includes('generation ' + generation + ' swapped'));
}

/* --- page helpers ------------------------------------------------------------------------ */

/* The group row whose title contains text, on the groups page (which refreshes itself). */
function groupRow(text) {
  return page.locator('tr.group-row', { has: page.locator('td.title', { hasText: text }) });
}
async function errorsOf(type, status) {
  return api('/api/errors?type=' + encodeURIComponent(type) + '&status=' + (status || 'unresolved'));
}

/* --- the tests -------------------------------------------------------------------------- */

async function failedMessageAppears() {
  await open('#/groups', 'groups');
  const t0 = Date.now();
  await send('bus.send("shop.Pay", { order = "A-1" })');
  await groupRow('card declined').waitFor({ timeout: 15000 });
  const secs = (Date.now() - t0) / 1000;
  console.log('# the failed message showed on the groups page after ' + secs.toFixed(1) + ' s');
  equal(await groupRow('card declined').locator('td.count').textContent(), '1', 'its group count');
}

async function retryAfterFix() {
  await reload('shop', SHOP_FIXED, 2);
  await groupRow('card declined').locator('td.title a').click();
  await ready('group');
  const row = page.locator('tr.msg-row').first();
  const id = await row.getAttribute('data-id');
  await row.locator('a.message-link').click();
  await ready('message');
  equal(await page.getAttribute('#message', 'data-id'), id, 'the message page shows the message');
  assert((await page.textContent('#exception')).includes('card declined for order A-1'), 'the exception is shown');
  await page.click('button[name=retry]');
  await page.waitForSelector('#progress[data-state=done]', { timeout: 15000 });
  await waitFor('the retried message is resolved on its page', 30, async () => {
    await open('#/messages/' + id, 'message');
    return (await page.getAttribute('#message', 'data-status')) === 'resolved';
  });
  await open('#/groups', 'groups');
  equal(await groupRow('card declined').count(), 0, 'rows of its group left on the groups page');
}

async function groupRetryOf500() {
  const N = 500;
  await send(`for i = 1, ${N} do bus.send("bulk.Do", { n = i }) end`);
  await open('#/groups', 'groups');
  await waitFor('500 failed bulk.Do in one group on the page', 180, async () =>
    (await groupRow('bulk handler is broken').locator('td.count').textContent({ timeout: 1000 })) === String(N));
  await reload('bulk', BULK_FIXED, 2);
  /* Every change of the progress bar, recorded in the page as it happens. */
  await page.evaluate(() => {
    window.progressSeen = [];
    const p = document.querySelector('#progress');
    new MutationObserver(() => window.progressSeen.push({ state: p.dataset.state,
      done: +p.dataset.done, total: +p.dataset.total, hidden: p.hidden }))
      .observe(p, { attributes: true });
  });
  await groupRow('bulk handler is broken').locator('button[name=retry-group]').click();
  await page.click('#confirm-dialog button[name=confirm-ok]');
  await page.waitForSelector('#progress[data-state=done]', { timeout: 120000 });
  const seen = await page.evaluate(() => window.progressSeen);
  const running = seen.filter((s) => s.state === 'running' && !s.hidden);
  assert(running.length > 0, 'the progress bar showed the operation running: ' + JSON.stringify(seen.slice(0, 5)));
  equal(running[0].total, N, 'the operation total');
  equal([await page.getAttribute('#progress', 'data-done'), await page.getAttribute('#progress', 'data-total')],
    [String(N), String(N)], 'the bar at the end (done, total)');
  await devShot('group-retried');
  console.log('# progress samples: ' + seen.length + ', done values while running: '
    + [...new Set(running.map((s) => s.done))].slice(0, 12).join(' '));
  await waitFor('the group is gone from the page', 15, async () => (await groupRow('bulk handler is broken').count()) === 0);
  await waitFor('no bulk.Do is unresolved or retrying', 120, async () =>
    (await errorsOf('bulk.Do')).total === 0 && (await errorsOf('bulk.Do', 'retrying')).total === 0);
}

async function searchFinds() {
  await send('bus.send("shop.Pay", { order = "S-1", note = "the zanzibar parcel" }, { headers = { customer = "acme-4711" } })');
  const find = async (q) => {
    await page.fill('#search-input', q);
    await page.press('#search-input', 'Enter');
    await ready('search');
    const ids = await page.$$eval('tr.result-row', (rows) => rows.map((r) => r.dataset.id));
    const types = await page.$$eval('tr.result-row td.type', (tds) => tds.map((t) => t.textContent));
    return ids.length && types.every((t) => t === 'shop.Pay') ? ids : null;
  };
  await open('#/groups', 'groups');
  const byHeader = await waitFor('search by the header value finds it', 30, () => find('acme-4711'));
  const byWord = await waitFor('search by a word of the body finds it', 15, () => find('zanzibar'));
  equal(byWord, byHeader, 'the same message by header and by body');
  await page.locator('tr.result-row a.message-link').first().click();
  await ready('message');
  equal(await page.textContent('#headers tr[data-header="customer"] td.value'), 'acme-4711', 'its header on its page');
}

async function conversationDiagram() {
  await send('bus.send("flow.Start", {})');
  const failed = await waitFor('flow.Final failed', 60, async () => (await errorsOf('flow.Final')).items[0]);
  const conv = failed.conversation_id;
  assert(conv, 'the failed message has a conversation id');
  await waitFor('the conversation has its three messages', 60, async () =>
    (await api('/api/conversations/' + encodeURIComponent(conv))).total >= 3);
  await open('#/messages/' + encodeURIComponent(failed.id), 'message');
  await page.click('#conversation-link');
  await ready('conversation');
  const arrows = await page.$$eval('#diagram svg g.msg', (gs) => gs.map((g) => ({
    id: g.getAttribute('data-id'), cls: (g.getAttribute('class') || '').split(/\s+/),
    label: (g.querySelector('text') || {}).textContent })));
  equal(arrows.map((a) => a.label), ['flow.Start', 'flow.Step', 'flow.Final'], 'the arrows top to bottom');
  equal(arrows.map((a) => a.cls.includes('failed')), [false, false, true], 'which arrows are failed (red)');
  equal(arrows[2].id, failed.id, 'the red arrow is the failed message');
  const lifelines = await page.$$eval('#diagram svg g.lifeline', (gs) => gs.map((g) => g.getAttribute('data-endpoint')));
  for (const e of ['alpha', 'beta', 'gamma']) assert(lifelines.includes(e), 'a lifeline for ' + e + ': ' + lifelines);
  await devShot('conversation');
  const rows = await page.$$eval('table#conversation tr.msg-row', (trs) => trs.map((r) => r.dataset.id));
  equal(rows, arrows.map((a) => a.id), 'the table lists the messages in the diagram order');
}

async function scriptBodyIsText() {
  const evil = '<script>alert(1)</script>';
  await send(`bus.send("xss.Show", { text = "${evil}" })`);
  const m = await waitFor('the xss.Show failure is ingested', 30, async () => (await errorsOf('xss.Show')).items[0]);
  await open('#/groups', 'groups');
  await groupRow('cannot show').waitFor({ timeout: 15000 });
  await open('#/messages/' + encodeURIComponent(m.id), 'message');
  await devShot('message');
  assert((await page.textContent('#body')).includes(evil), 'the body shows <script> as text');
  assert((await page.textContent('#exception')).includes(evil), 'the exception shows <script> as text');
  equal(await page.locator('#view script, #view img').count(), 0, 'script or img elements in the view');
  await sleep(500);
  equal(dialogs, [], 'dialogs opened by the page');
}

/* On the page of the xss.Show failure still open: edit its body and send it again. */
async function editAndRetry() {
  const id = await page.getAttribute('#message', 'data-id');
  await page.fill('#edit-body', '{"text": "plain words"}');
  await page.click('button[name=edit-retry]');
  await page.click('#confirm-dialog button[name=confirm-ok]');
  const link = page.locator('#edit-result-link');
  await link.waitFor({ timeout: 15000 });
  const newId = await link.textContent();
  assert(newId && newId !== id, 'a new id: ' + newId);
  await waitFor('the original is resolved and links to the new message', 20, async () => {
    await open('#/messages/' + encodeURIComponent(id), 'message');
    return (await page.getAttribute('#message', 'data-status')) === 'resolved'
      && (await page.locator('#edited-to-link').textContent()) === newId;
  });
  /* the new message fails too (the handler refuses every text): it links back */
  await waitFor('the new message is ingested with a link to the original', 30, async () => {
    await open('#/messages/' + encodeURIComponent(newId), 'message');
    return (await page.locator('#edited-from-link').textContent({ timeout: 1000 })) === id;
  });
  assert((await page.textContent('#body')).includes('plain words'), 'the new body');
}

async function screenshot() {
  await page.setViewportSize({ width: 1280, height: 720 });
  await reload('bulk', 'bus.handle("bulk.Do", function(d) error("stock of item " .. d.n .. " is exhausted") end)', 3);
  await send('for i = 1, 7 do bus.send("flow.Start", {}) end for i = 1, 23 do bus.send("bulk.Do", { n = i }) end');
  await open('#/groups', 'groups');
  await waitFor('the flow group counts 8 and the stock group 23', 60, async () =>
    (await groupRow('gamma cannot finish').locator('td.count').textContent({ timeout: 1000 })) === '8'
    && (await groupRow('is exhausted').locator('td.count').textContent({ timeout: 1000 })) === '23');
  await page.mouse.move(640, 700); /* no row highlighted by the pointer */
  await screenshotTo(SHOT);
}

/* An ops service off loopback (0.0.0.0, reached at this machine's first non-loopback
 * address) with a token: the page asks for it, refuses a wrong one, and works with it. */
async function tokenOffLoopback(ip) {
  const tokenFile = path.join(WORK, 'token');
  fs.writeFileSync(tokenFile, 'browser-test-token\n');
  const ops2 = host('ops2', ['ops', '--listen', '0.0.0.0:0', '--transport', TRANSPORT,
    '--store', path.join(WORK, 'ops2.db'), '--token-file', tokenFile]);
  const port = await waitFor('the second ops says where it serves', 30, () => {
    if (ops2.exitCode !== null) throw fatal('ops2 exited: ' + log('ops2'));
    const m = /serving http:\/\/[^:/]+:(\d+)\//.exec(log('ops2'));
    return m && m[1];
  });
  await page.goto('http://' + ip + ':' + port + '/#/groups');
  await page.waitForSelector('#token-dialog #token-input', { timeout: 15000 });
  equal(await page.getAttribute('#view', 'data-ready'), '0', 'the view before the token');
  await page.fill('#token-input', 'wrong-token');
  await page.click('button[name=token-save]');
  await page.waitForSelector('#token-dialog :text("refused")', { timeout: 15000 });
  await page.fill('#token-input', 'browser-test-token');
  await page.click('button[name=token-save]');
  await page.waitForSelector('#view[data-page=groups][data-ready="1"]', { timeout: 15000 });
  equal(await page.evaluate(() => sessionStorage.getItem('moonbus.ops.token')), 'browser-test-token',
    'the token kept in sessionStorage');
  await page.click('#nav a[data-route=archived]');
  await ready('archived');
  equal(await page.locator('#token-dialog').count(), 0, 'token dialogs once the token is kept');
  ops2.kill('SIGTERM');
}

function firstNonLoopbackIPv4() {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list || []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

/* --- main ------------------------------------------------------------------------------- */

async function main() {
  let browser;
  await test('the ops service and five endpoint hosts start', async () => {
    await startEndpoints();
    await startOps();
  });
  if (failures) return;
  await test('chromium starts headless', async () => { browser = await launch(); });
  if (failures) return;
  await test('a failed message appears in its group within seconds', failedMessageAppears);
  await test('retry from the message page after a hot-reload fix: handled, it leaves the list', retryAfterFix);
  await test('a group retry of 500 messages shows progress and ends with 0 left', groupRetryOf500);
  await test('search finds a message by a header value and by a word of its body', searchFinds);
  await test('the conversation diagram of a three-hop flow: causal order, the failed arrow red', conversationDiagram);
  await test('a body holding <script> is shown as text', scriptBodyIsText);
  await test('edit and retry: a new message with the new body, the original resolved, both linked', editAndRetry);
  await test('a screenshot of the groups page is saved to ' + path.relative(ROOT, SHOT), screenshot);
  await test('the page logged no error (uncaught, failed load, CSP violation)', async () =>
    equal(pageErrors, [], 'errors'));
  await test('moonbus ops stops cleanly at SIGTERM (exit 0, no sanitizer report)', stopOps);
  const ip = firstNonLoopbackIPv4();
  if (ip) await test('off loopback the page asks for the token, refuses a wrong one, keeps the right one', () => tokenOffLoopback(ip));
  else report(true, 'off loopback the page asks for the token # SKIP no non-loopback IPv4 address');
  await browser.close();
}

await run(main, 'browser');
