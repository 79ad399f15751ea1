import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { COLD_PHASES, complete, startTracedEcho, type TraceJson, type TracedEcho } from './traces-fixture.ts';

// Debian's chromium, driven by playwright-core: no browser download, no network beyond loopback.
const CHROMIUM = process.env.HEARTH_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let env: TracedEcho;
let browser: BrowserContext;
let profile: string;
let page: Page;
let cold: TraceJson;
let warm: TraceJson;
const problems: string[] = [];

before(async () => {
  await fs.access(CHROMIUM).catch(() => {
    throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (infra/install.sh does)`);
  });
  env = await startTracedEcho('ui-traces');
  const first = await env.call('/');
  assert.equal(first.headers.get('x-hearth-start'), 'cold');
  const second = await env.call('/');
  assert.equal(second.headers.get('x-hearth-start'), 'warm');
  const idOf = (res: Response) => res.headers.get('x-call-id');
  const forCall = (callId: string | null) => (t: TraceJson) => t.spans.some((s) => s.name === 'worker.invoke' && s.attributes['faas.invocation_id'] === callId);
  const chain = ['gateway.invoke', 'queue.wait', 'worker.invoke', 'pool.acquire', 'function.invoke'];
  cold = await env.waitForTrace((t) => forCall(idOf(first))(t) && complete([...chain, ...COLD_PHASES])(t));
  warm = await env.waitForTrace((t) => forCall(idOf(second))(t) && complete(chain)(t));

  profile = await fs.mkdtemp(path.join(os.tmpdir(), `${env.prefix}-chromium-`));
  browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    // The first load, before a key is entered, is refused on purpose.
    if (msg.type() === 'error' && !/status of 401/.test(msg.text())) problems.push(`console: ${msg.text()} (${msg.location().url})`);
  });
});

after(async () => {
  await browser?.close();
  if (profile) await fs.rm(profile, { recursive: true, force: true });
  await env?.cleanup();
});

test('without a key the page says how to get one', async () => {
  const res = await page.goto(`${env.stack.gatewayUrl}/ui/traces?function=${env.fnName}`);
  assert.equal(res?.status(), 200);
  assert.match(res?.headers()['content-security-policy'] ?? '', /script-src 'self'/);
  await page.locator('#status.error').waitFor({ timeout: 15_000 });
  assert.match(await page.locator('#status').innerText(), /needs an API key/);
  assert.equal(await page.locator('article.trace').count(), 0);
});

test('with the key it draws the recent traces as waterfalls and the startup comparison', async () => {
  await page.fill('#api-key', env.stack.apiKey);
  await page.click('button[type=submit]');
  const coldCard = page.locator(`article.trace[data-trace-id="${cold.traceId}"]`);
  const warmCard = page.locator(`article.trace[data-trace-id="${warm.traceId}"]`);
  await coldCard.waitFor({ timeout: 15_000 });
  await warmCard.waitFor({ timeout: 15_000 });

  // One row per span, in the order the store gives (parents first), each with a drawn bar.
  const rows = await coldCard.locator('g.span-row').evaluateAll((gs) =>
    gs.map((g) => ({ name: g.getAttribute('data-span-name'), depth: Number(g.getAttribute('data-depth')), width: Number(g.querySelector('rect.bar')?.getAttribute('width')) })),
  );
  assert.deepEqual(rows.map((r) => r.name), cold.spans.map((s) => s.name));
  assert.deepEqual(rows.map((r) => r.depth), cold.spans.map((s) => s.depth));
  assert.ok(rows.every((r) => r.width > 0), JSON.stringify(rows));
  for (const phase of COLD_PHASES) assert.ok(rows.some((r) => r.name === phase), `cold waterfall lacks ${phase}`);
  assert.equal(await coldCard.locator('.badge').innerText(), 'cold');

  const warmRows = await warmCard.locator('g.span-row').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-span-name')));
  assert.ok(warmRows.includes('function.invoke'));
  assert.ok(!warmRows.some((n) => COLD_PHASES.includes(n ?? '')), warmRows.join(', '));
  assert.equal(await warmCard.locator('.badge').innerText(), 'warm');

  const groups = await page.locator('#startup-chart g.group').evaluateAll((gs) =>
    gs.map((g) => ({ start: g.getAttribute('data-start'), phases: [...g.querySelectorAll('rect[data-phase]')].map((r) => r.getAttribute('data-phase')) })),
  );
  const coldGroup = groups.find((g) => g.start === 'cold');
  const warmGroup = groups.find((g) => g.start === 'warm');
  assert.ok(coldGroup && warmGroup, JSON.stringify(groups));
  for (const phase of COLD_PHASES) assert.ok(coldGroup.phases.includes(phase), `startup chart: cold lacks ${phase}`);
  assert.ok(!warmGroup.phases.some((p) => COLD_PHASES.includes(p ?? '')));

  if (process.env.HEARTH_UI_SCREENSHOT) await page.screenshot({ path: process.env.HEARTH_UI_SCREENSHOT, fullPage: true });
});

test('the key stays in the browser: a reload shows the traces again', async () => {
  await page.reload();
  await page.locator(`article.trace[data-trace-id="${cold.traceId}"]`).waitFor({ timeout: 15_000 });
  assert.equal(await page.inputValue('#api-key'), env.stack.apiKey);
  assert.deepEqual(problems, [], 'no script errors or CSP violations');
});
