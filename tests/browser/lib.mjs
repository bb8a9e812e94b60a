// lib.mjs — the harness the browser tests (ops_ui.mjs, monitoring.mjs) share: TAP output
// (test / assert / equal), waiting (sleep / waitFor), child processes in a scratch
// directory (start / host / log / stopAll, every one killed at exit whatever happened),
// files written as editors save them, `moonbus ops` started and stopped, headless Chromium
// with a page whose errors, console errors (CSP violations among them) and dialogs are
// recorded, and the end of a run (logs kept on failure, the TAP plan, the exit status).
// Call init(prefix) first: it makes the scratch directory and picks the bus. What a test
// checks stays in its own script; nothing here asserts anything about the UI.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MOONBUS = path.resolve(ROOT, process.env.MOONBUS || 'build/asan/moonbus');
export let WORK;
export let TRANSPORT;
export let env;

/* Makes the scratch directory (os.tmpdir()/PREFIX.XXXXXX) and picks the bus:
 * MOONBUS_BROWSER_TRANSPORT (run.sh sets it to a vhost of its own when
 * MOONBUS_TEST_TRANSPORT names a broker), else a new SQLite file there. */
export function init(prefix) {
  WORK = fs.mkdtempSync(path.join(os.tmpdir(), prefix + '.'));
  TRANSPORT = process.env.MOONBUS_BROWSER_TRANSPORT || 'sqlite://' + WORK + '/bus.db';
  env = { ...process.env, MOONBUS_TRANSPORT: TRANSPORT, MOONBUS_LOG: 'info',
    ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1' };
  console.log('# work: ' + WORK);
}

/* --- TAP ------------------------------------------------------------------------------- */

export let count = 0;
export let failures = 0;
export function report(pass, what, diag) {
  count++;
  console.log((pass ? 'ok ' : 'not ok ') + count + ' - ' + what);
  if (!pass) {
    failures++;
    for (const line of String(diag || '').split('\n').slice(0, 20)) console.log('#   ' + line);
    for (const c of children) if (c.ended) console.log('#   (' + c.name + ' has ended: ' + c.ended + ')');
  }
}
export async function test(what, fn) {
  try {
    await fn();
    report(true, what);
  } catch (e) {
    report(false, what, e && e.stack ? e.stack : e);
  }
}
export function assert(cond, msg) { if (!cond) throw new Error(msg); }
export function equal(got, want, msg) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(msg + ': got ' + g + ', want ' + w);
}
/* An error that ends a waitFor at once (a process it waits for has exited). */
export function fatal(msg) { return Object.assign(new Error(msg), { fatal: true }); }
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export async function waitFor(what, seconds, fn) {
  const deadline = Date.now() + seconds * 1000;
  let last;
  for (;;) {
    try { const v = await fn(); if (v) return v; } catch (e) { if (e.fatal) throw e; last = e; }
    if (Date.now() > deadline) throw new Error('timed out after ' + seconds + ' s: ' + what + (last ? ' (' + last.message + ')' : ''));
    await sleep(200);
  }
}

/* --- processes --------------------------------------------------------------------------- */

export const children = [];
/* Runs cmd in WORK (so that scripts are named DIR/file.lua in errors and screenshots), its
 * output in WORK/NAME.log. */
export function start(name, cmd, args, extraEnv) {
  const out = fs.openSync(path.join(WORK, name + '.log'), 'a');
  const child = spawn(cmd, args, { env: { ...env, ...(extraEnv || {}) }, cwd: WORK, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  child.name = name;
  child.on('exit', (code, signal) => { child.ended = signal || 'exit status ' + code; });
  children.push(child);
  return child;
}
/* `moonbus ARGS...` (build/asan/moonbus, or $MOONBUS). */
export function host(name, args, extraEnv) { return start(name, MOONBUS, args, extraEnv); }
export function log(name) {
  try { return fs.readFileSync(path.join(WORK, name + '.log'), 'utf8'); } catch (e) { return ''; }
}
/* Waits until a `moonbus run` host has logged its "running ... (instance ID, ...)" line;
 * returns its instance id. */
export async function running(child) {
  return waitFor(child.name + ' is running', 30, () => {
    if (child.exitCode !== null) throw fatal(child.name + ' exited: ' + log(child.name));
    const m = / running .* \(instance ([^,]+),/.exec(log(child.name));
    return m && m[1];
  });
}
export function stopAll() {
  for (const c of children) if (c.exitCode === null) try { c.kill('SIGKILL'); } catch (e) { /* gone */ }
}
process.on('exit', stopAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { stopAll(); process.exit(1); });

/* The environment for stock lua5.4 with build/moonbus.so and modules/ (and dirs first). */
export function luaEnv(dirs) {
  return { LUA_PATH: (dirs || []).map((d) => d + '/?.lua;').join('') + ROOT + '/modules/?.lua;;',
    LUA_CPATH: ROOT + '/build/?.so;;' };
}

/* Writes WORK/file as editors save: a new file renamed over the old one. */
export function write(file, text) {
  const p = path.join(WORK, file);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p + '.tmp', text);
  fs.renameSync(p + '.tmp', p);
}

/* --- the ops service -------------------------------------------------------------------- */

export let BASE;
export async function api(p) {
  const res = await fetch(BASE + p);
  if (!res.ok) throw new Error('GET ' + p + ': ' + res.status);
  return res.json();
}
export async function startOps() {
  const ops = host('ops', ['ops', '--listen', '127.0.0.1:0', '--transport', TRANSPORT,
    '--store', path.join(WORK, 'ops.db')]);
  const port = await waitFor('ops says where it serves', 30, () => {
    if (ops.exitCode !== null) throw fatal('moonbus ops exited: ' + log('ops'));
    const m = /serving http:\/\/127\.0\.0\.1:(\d+)\//.exec(log('ops'));
    return m && m[1];
  });
  BASE = 'http://127.0.0.1:' + port;
  await waitFor('ops answers /api/info', 30, () => api('/api/info'));
}
/* SIGTERM to ops: it exits 0 with no sanitizer line in its log. */
export async function stopOps() {
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

/* --- the browser and its page ------------------------------------------------------------ */

export let page;
export const dialogs = [];
export const pageErrors = [];
/* Headless Chromium (Debian's) with one 1280x800 page; returns the browser. */
export async function launch() {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push('console: ' + m.text()); });
  return browser;
}
export async function ready(kind) {
  await page.waitForSelector(`#view[data-page=${kind}][data-ready="1"]`, { timeout: 15000 });
}
export async function open(hash, kind) {
  const url = BASE + '/' + hash;
  /* the same address again is no navigation at all (no hashchange): load it afresh */
  if (page.url() === url) await page.reload();
  else await page.goto(url);
  await ready(kind);
}
/* With OPS_SHOTS=DIR, a full-page screenshot of what the page shows now (for a look). */
export async function devShot(name) {
  if (!process.env.OPS_SHOTS) return;
  fs.mkdirSync(process.env.OPS_SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(process.env.OPS_SHOTS, name + '.png'), fullPage: true });
}
/* Saves a screenshot of the page to file (its directory made), and checks it has content. */
export async function screenshotTo(file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.screenshot({ path: file });
  assert(fs.statSync(file).size > 5000, 'the screenshot has content');
}

/* --- the end of a run ------------------------------------------------------------------- */

/* Runs main; whatever happened, kills every child, keeps the logs of a failed run in
 * build/test-logs/KEEP, removes WORK (unless KEEP_WORK is set), prints the plan and exits. */
export async function run(main, keep) {
  try {
    await main();
  } catch (e) {
    report(false, 'the browser tests ran to the end', e.stack);
  }
  stopAll();
  for (const c of children) if (c.exitCode === null) await new Promise((r) => { c.once('exit', r); setTimeout(r, 3000); });
  if (failures) {
    const dir = path.join(ROOT, 'build/test-logs', keep);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    for (const f of fs.readdirSync(WORK)) if (f.endsWith('.log')) fs.copyFileSync(path.join(WORK, f), path.join(dir, f));
    console.log('# logs kept in ' + path.relative(ROOT, dir));
  }
  if (!process.env.KEEP_WORK) fs.rmSync(WORK, { recursive: true, force: true });
  console.log('1..' + count);
  process.exit(failures ? 1 : 0);
}
