// Shared helpers for the browser tests: launching Debian's Chromium through
// playwright-core, driving the UI, and talking to the server directly (REST
// from node, WebSocket from inside a page) to seed data.
import { chromium } from 'playwright-core';

export const BASE = process.env.PARLEY_URL;
if (!BASE) {
  console.error('PARLEY_URL is not set: run these scripts through `go test ./web/` (web/browser_test.go).');
  process.exit(2);
}

export const T = { short: 5_000, normal: 15_000, long: 45_000 };

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  // Hidden or occluded test windows must not throttle timers.
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'];

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 60_000,
    args: [...ARGS, '--disable-background-networking'],
  });
}

/**
 * A browser with a profile on disk in dir (one device). Unlike launch()'s
 * contexts, which are private windows, it has the Push API; extraArgs point
 * its push service somewhere.
 */
export async function launchProfile(dir, extraArgs = [], opts = {}) {
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 60_000,
    viewport: { width: 1280, height: 800 },
    args: [...ARGS, ...extraArgs],
    ...opts,
  });
  context.setDefaultTimeout(T.normal);
  return context;
}

/** A fresh browser context (its own localStorage: one device) with one page. */
export async function newDevice(browser, opts = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...opts });
  context.setDefaultTimeout(T.normal);
  const page = await context.newPage();
  wire(page, opts.label || 'page');
  return { context, page };
}

/** Print the page's console errors and failures with a label. */
export function wire(page, label) {
  page.on('pageerror', (e) => console.log(`[${label}] pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.log(`[${label}] console.${m.type()}: ${m.text()}`); });
}

let counter = 0;
/** A username unique to this run. */
export function uname(base) {
  counter++;
  return `${base}${Date.now().toString(36).slice(-5)}${counter}`.toLowerCase().slice(0, 32);
}

/** Register through the UI and wait for the app. */
export async function registerUI(page, username, displayName, password = 'correct horse') {
  await page.goto(BASE + '/');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Display name').fill(displayName);
  await page.getByLabel('Password').fill(password);
  await page.locator('form.auth-form button[type=submit]').click();
  await waitSynced(page);
}

/** Wait until the app is connected and synced. */
export async function waitSynced(page, timeout = T.normal) {
  await page.waitForFunction(() => window.parley && window.parley.conn.synced && window.parley.listLoaded, null, { timeout });
}

/** Open a chat from the list by its title. */
export async function openChat(page, title) {
  await page.locator('.conv', { has: page.locator('.conv-name', { hasText: title }) }).first().click();
  await page.locator('.chat-name', { hasText: title }).waitFor();
}

export async function startDirectUI(page, username) {
  await page.locator('.side-head').getByRole('button', { name: 'New chat' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByRole('button', { name: 'Start chat' }).click();
  await page.locator('dialog.modal').waitFor({ state: 'detached' });
}

export async function sendUI(page, text) {
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.fill(text);
  await box.press('Enter');
}

/** Texts of the messages shown in the open chat, in order. */
export function shownTexts(page) {
  return page.$$eval('.msgs li.msg .text', (els) => els.map((e) => e.textContent));
}

/** Wait until predicate(texts) holds for the open chat's messages. */
export async function waitTexts(page, predicate, what, timeout = T.normal) {
  const deadline = Date.now() + timeout;
  let last = [];
  for (;;) {
    last = await shownTexts(page);
    if (predicate(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; shown: ${JSON.stringify(last)}`);
    await page.waitForTimeout(100); // polling interval, not an assertion
  }
}

/** The data-status of the own message with this text. */
export function statusOf(page, text) {
  return page.locator('.msgs li.msg.own', { has: page.locator('.text', { hasText: text }) }).last();
}

export async function waitStatus(page, text, status, timeout = T.normal) {
  await page.locator(`.msgs li.msg.own[data-status="${status}"]`, { has: page.locator('.text', { hasText: text }) }).last().waitFor({ timeout });
}

// ---- direct protocol access (seeding) ---------------------------------------

export async function rest(method, path, body, token) {
  const res = await fetch(BASE + '/api/v1' + path, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return data;
}

export async function apiUser(username, display, password = 'correct horse') {
  const u = await rest('POST', '/auth/register', { username, password, display_name: display });
  const s = await rest('POST', '/auth/login', { username, password, device_name: 'seeder' });
  return { ...u, token: s.token, device_id: s.device_id, password };
}

/**
 * Log a page in as an apiUser() without the form (its token in
 * localStorage), the notification prompt dismissed unless prompt is set.
 */
export async function loginAs(page, u, { prompt = false } = {}) {
  await page.goto(BASE + '/');
  await page.evaluate(({ s, prompt }) => {
    localStorage.setItem('parley.session', JSON.stringify(s));
    if (!prompt) localStorage.setItem('parley.notify.dismissed', '1');
  }, { s: { token: u.token, user_id: u.user_id, device_id: u.device_id, username: u.username, display_name: u.display_name }, prompt });
  await page.reload();
  await waitSynced(page);
}

/** Upload a file as u (POST /api/v1/media); returns the media object. */
export async function uploadMedia(u, buffer, name) {
  const res = await fetch(`${BASE}/api/v1/media?name=${encodeURIComponent(name)}`, {
    method: 'POST', headers: { Authorization: `Bearer ${u.token}` }, body: buffer,
  });
  const data = await res.json();
  if (res.status !== 201) throw new Error(`upload ${name}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

/**
 * Send messages over a WebSocket opened inside page (node 20 has no
 * WebSocket), waiting for every ack. Returns the acks. A message is a text,
 * or {content, content_type, media_id} (e.g. an uploadMedia() answer's id).
 */
export async function sendOverWS(page, token, conversationId, texts, timeout = T.long) {
  return page.evaluate(async ({ token, conversationId, texts, timeout }) => {
    const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/api/v1/ws?token=${encodeURIComponent(token)}`);
    const acks = [];
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`seeding timed out after ${acks.length} acks`)), timeout);
      let i = 0;
      const next = () => {
        if (i >= texts.length) { clearTimeout(timer); ws.close(); resolve(); return; }
        const m = typeof texts[i] === 'string' ? { content: texts[i], content_type: 'text' } : { content: '', ...texts[i] };
        ws.send(JSON.stringify({ type: 'send_message', message_id: `seed-${Date.now()}-${i}-${Math.random()}`, conversation_id: conversationId, ...m }));
        i++;
      };
      ws.onmessage = (ev) => {
        const f = JSON.parse(ev.data);
        if (f.type === 'ready') next();
        else if (f.type === 'ack') { acks.push(f); next(); } else if (f.type === 'error') { clearTimeout(timer); reject(new Error(JSON.stringify(f))); }
      };
      ws.onerror = () => { clearTimeout(timer); reject(new Error('websocket error')); };
    });
    return acks;
  }, { token, conversationId, texts, timeout });
}

/**
 * steps(t) → step(name, fn): sequential subtests where a failure skips the
 * rest (they depend on each other).
 */
export function steps(t) {
  let failed = false;
  return (name, fn) => t.test(name, { skip: failed ? 'an earlier step failed' : false }, async (tt) => {
    try {
      await fn(tt);
    } catch (e) {
      failed = true;
      throw e;
    }
  });
}
