// Web Push in the web client, in a Chromium with a profile on disk (private
// windows have no Push API). Its push service is a local stand-in
// (pushservice.mjs) that Chromium registers with, so pushManager.subscribe()
// really runs and the subscription really reaches parleyd. Notifications
// come from parleyd itself: a second subscription of the same device points
// at a local receiver, which decrypts what the server sent; those exact
// bytes are delivered to the service worker through the DevTools protocol
// (ServiceWorker.deliverPushMessage), as the browser's push service would.
//
// The server runs with a 2 s push window and loopback endpoints allowed
// (web/browser_test.go).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BASE, T, launch, launchProfile, newDevice, apiUser, rest, uname, loginAs, waitSynced, sendOverWS, steps, wire } from './lib.mjs';
import { startGCM, startReceiver } from './pushservice.mjs';

const SECRET = 'pineapple pizza plans'; // message text that must never reach a notification

/** The state the client shows, once it is one of want. */
async function waitPushState(page, want, timeout = T.normal) {
  const list = Array.isArray(want) ? want : [want];
  await page.waitForFunction((l) => window.parley && l.includes(window.parley.push.state), list, { timeout })
    .catch(async (e) => {
      const now = await page.evaluate(() => window.parley && [window.parley.push.state, window.parley.push.error]).catch(() => null);
      throw new Error(`push state is ${JSON.stringify(now)}, not ${list.join('/')}: ${e.message}`);
    });
}

/** The notifications the service worker shows, as plain objects. */
function notifications(page) {
  return page.evaluate(async () => {
    const reg = await navigator.serviceWorker.getRegistration();
    if (!reg) return [];
    return (await reg.getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag, renotify: n.renotify, data: n.data }));
  });
}

/** What the browser's push manager holds (null: no subscription). */
function browserSubscription(page) {
  return page.evaluate(async () => {
    const reg = await navigator.serviceWorker.getRegistration();
    const sub = reg && await reg.pushManager.getSubscription();
    return sub ? sub.toJSON() : null;
  });
}

/** Open a socket as token (from inside page) and wait until userId is reported offline. */
function waitOffline(page, token, userId, timeout = T.normal) {
  return page.evaluate(({ token, userId, timeout }) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/api/v1/ws?token=${encodeURIComponent(token)}`);
    const timer = setTimeout(() => { ws.close(); reject(new Error(`${userId} still online after ${timeout} ms`)); }, timeout);
    ws.onmessage = (ev) => {
      const f = JSON.parse(ev.data);
      if (f.type === 'ready') ws.send(JSON.stringify({ type: 'presence_subscribe', user_ids: [userId] }));
      if (f.type === 'presence' && f.user_id === userId && f.status === 'offline') { clearTimeout(timer); ws.close(); resolve(); }
    };
    ws.onerror = () => { clearTimeout(timer); reject(new Error('websocket error')); };
  }), { token, userId, timeout });
}

/** Mark a conversation read up to seq from a socket as token. */
function markRead(page, token, conversationId, seq) {
  return page.evaluate(({ token, conversationId, seq }) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/api/v1/ws?token=${encodeURIComponent(token)}`);
    ws.onmessage = (ev) => {
      if (JSON.parse(ev.data).type !== 'ready') return;
      ws.send(JSON.stringify({ type: 'message_status', conversation_id: conversationId, seq, status: 'read' }));
      setTimeout(() => { ws.close(); resolve(); }, 300); // the frame is read before the close
    };
    ws.onerror = () => reject(new Error('websocket error'));
  }), { token, conversationId, seq });
}

/** Poll fn until it returns true. */
async function until(fn, what, timeout = T.normal) {
  const deadline = Date.now() + timeout;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100)); // polling interval, not an assertion
  }
}

/** Requests the page made to the push API, in order, with their answers. */
function recordPushCalls(page) {
  const calls = [];
  page.on('response', (res) => {
    const u = new URL(res.url());
    if (u.pathname.startsWith('/api/v1/push/') || u.pathname === '/api/v1/auth/logout') {
      calls.push({ method: res.request().method(), path: u.pathname, status: res.status(), body: res.request().postData() });
    }
  });
  return calls;
}

test('web push: consent, notifications from the server, clear, click, off and logout', { timeout: 240_000 }, async (t) => {
  const gcm = await startGCM();
  const rx = await startReceiver();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-push-'));
  const context = await launchProfile(dir, gcm.args);
  t.after(async () => {
    await context.close();
    gcm.close();
    rx.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const step = steps(t);

  const alice = await apiUser(uname('alice'), 'Alice');
  const bob = await apiUser(uname('bob'), 'Bob');
  const alice2 = await rest('POST', '/auth/login', { username: alice.username, password: alice.password, device_name: 'phone' });
  const conv = await rest('POST', '/conversations', { type: 'direct', user_id: bob.user_id }, alice.token);
  const convId = conv.conversation_id;
  const { key: vapidKey } = await rest('GET', '/push/vapid-public-key', undefined, alice.token);

  const page = context.pages()[0] || await context.newPage();
  wire(page, 'alice');
  const calls = recordPushCalls(page);
  // A second tab of the origin without the app: bob's and alice's other
  // device's sockets, and the DevTools session that delivers pushes.
  const aux = await context.newPage();
  aux.on('pageerror', (e) => console.log(`[aux] pageerror: ${e.message}`));
  await aux.goto(BASE + '/healthz');
  const cdp = await context.newCDPSession(aux);
  const registrations = new Map();
  cdp.on('ServiceWorker.workerRegistrationUpdated', (ev) => {
    for (const r of ev.registrations) registrations.set(r.registrationId, r);
  });
  await cdp.send('ServiceWorker.enable');
  await page.bringToFront(); // the app's tab is the visible one
  const deliver = async (data) => {
    const reg = [...registrations.values()].find((r) => !r.isDeleted && r.scopeURL === BASE + '/');
    assert.ok(reg, `a service worker registration for ${BASE}/: ${JSON.stringify([...registrations.values()])}`);
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: BASE, registrationId: reg.registrationId, data });
  };
  // Chromium's DevTools deliverPushMessage answers before the push event
  // runs and throws the delivery status away (ServiceWorkerHandler::
  // DeliverPushMessage binds a callback that ignores it): a push the worker
  // could not take (say its start timed out on a loaded machine) is lost
  // without an error. A real push service keeps a message until the browser
  // took it, and so does this stand-in: it delivers again until the effect
  // shows. The worker ignores repeats by seq (checked below).
  const deliverUntil = async (data, pred, what) => {
    const deadline = Date.now() + T.normal;
    let last;
    for (let attempt = 1; ; attempt++) {
      await deliver(data);
      const next = Math.min(deadline, Date.now() + 3000);
      while (Date.now() < next) {
        last = await notifications(page);
        if (pred(last)) return last;
        await page.waitForTimeout(100); // polling interval, not an assertion
      }
      if (Date.now() >= deadline) throw new Error(`timed out waiting for ${what} after ${attempt} deliveries; shown: ${JSON.stringify(last)}`);
      console.log(`push: ${what} not seen 3 s after delivery ${attempt}: delivering again`);
    }
  };
  const waitNotifications = async (pred, what) => {
    const deadline = Date.now() + T.normal;
    let last;
    for (;;) {
      last = await notifications(page);
      if (pred(last)) return last;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; shown: ${JSON.stringify(last)}`);
      await page.waitForTimeout(100); // polling interval, not an assertion
    }
  };
  const dialogStatus = () => page.locator('dialog.modal .push-status');
  const openSettings = async () => {
    await page.locator('.side-head').getByRole('button', { name: /^Notifications/ }).click();
    await dialogStatus().waitFor();
  };
  let subId = '';

  await step('nothing is asked or subscribed before a click', async () => {
    await loginAs(page, alice, { prompt: true });
    await waitPushState(page, 'off'); // the client has started: asked the server, looked for a subscription
    assert.equal(await page.evaluate(() => Notification.permission), 'default', 'no permission was asked for');
    assert.deepEqual(await page.evaluate(async () => (await navigator.serviceWorker.getRegistrations()).length), 0, 'no service worker yet');
    assert.equal(gcm.registrations.length, 0, 'no push subscription');
    assert.equal(calls.filter((c) => c.method !== 'GET').length, 0, `no subscription sent: ${JSON.stringify(calls)}`);
    await page.locator('.notify-prompt', { hasText: 'Get notified' }).waitFor();
    await openSettings();
    assert.equal(await dialogStatus().getAttribute('data-state'), 'off');
    await page.locator('dialog.modal').getByRole('button', { name: 'Enable notifications' }).waitFor();
    assert.match(await page.locator('dialog.modal').textContent(), /never what they wrote/);
  });

  await step('a refused permission shows "blocked", and follows the browser when allowed', async () => {
    // Headless Chromium answers the permission prompt with "denied" at once.
    await page.locator('dialog.modal').getByRole('button', { name: 'Enable notifications' }).click();
    await page.locator('dialog.modal .push-status[data-state="blocked"]').waitFor();
    assert.equal(await page.locator('dialog.modal').getByRole('button', { name: 'Enable notifications' }).isVisible(), false);
    assert.equal(await page.evaluate(() => Notification.permission), 'denied');
    assert.equal(gcm.registrations.length, 0, 'no subscription without permission');
    await page.locator('.side-head').getByRole('button', { name: 'Notifications: blocked' }).waitFor();
    // Allowed in the site settings (here by the test): the option comes back.
    await context.grantPermissions(['notifications'], { origin: BASE });
    await page.locator('dialog.modal .push-status[data-state="off"]').waitFor();
  });

  await step('a push service that does not answer shows an error; its late answer turns push on', async () => {
    gcm.stall = true;
    await page.evaluate(() => { window.parley.push.timeout = 3000; });
    await page.locator('dialog.modal').getByRole('button', { name: 'Enable notifications' }).click();
    await page.locator('dialog.modal .push-status[data-state="working"]').waitFor();
    await page.locator('dialog.modal .push-status[data-state="error"]').waitFor({ timeout: T.normal });
    assert.match(await page.locator('dialog.modal .form-error').textContent(), /did not answer/);
    assert.equal(calls.filter((c) => c.method === 'POST').length, 0, 'nothing sent to the server yet');
    // The worker is installed and active under the app's CSP.
    const sw = await page.evaluate(async () => {
      const reg = await navigator.serviceWorker.getRegistration();
      return reg && { scope: reg.scope, active: reg.active && reg.active.state, script: reg.active && reg.active.scriptURL };
    });
    assert.deepEqual(sw, { scope: BASE + '/', active: 'activated', script: BASE + '/sw.js' });
    gcm.release();
    await page.locator('dialog.modal .push-status[data-state="on"]').waitFor({ timeout: T.normal });
    assert.equal(gcm.registrations.length, 1);
    assert.equal(gcm.registrations[0].form.sender, vapidKey, "subscribed with the server's VAPID key");
    const post = calls.find((c) => c.method === 'POST' && c.path === '/api/v1/push/subscriptions');
    assert.equal(post && post.status, 201, JSON.stringify(calls));
    const sub = await browserSubscription(page);
    assert.ok(sub.endpoint.endsWith(gcm.registrations[0].token), `endpoint ${sub.endpoint}`);
    assert.deepEqual(JSON.parse(post.body), { platform: 'webpush', endpoint: sub.endpoint, keys: sub.keys });
    const saved = await page.evaluate(() => JSON.parse(localStorage.getItem('parley.push')));
    subId = saved.subscription_id;
    assert.ok(subId);
    // The server has it, bound to this device: the same endpoint again keeps its id.
    const again = await rest('POST', '/push/subscriptions', { platform: 'webpush', endpoint: sub.endpoint, keys: sub.keys }, alice.token);
    assert.equal(again.subscription_id, subId);
    await page.locator('.side-head').getByRole('button', { name: 'Notifications: on' }).waitFor();
    await page.locator('dialog.modal').getByRole('button', { name: 'Close' }).click();
    await page.locator('.notify-prompt').waitFor({ state: 'hidden' });
  });

  let first;
  let second;
  await step("the server's push shows who wrote, never the text; the next one replaces it", async () => {
    await rest('POST', '/push/subscriptions', { platform: 'webpush', endpoint: rx.endpoint, keys: rx.keys }, alice.token);
    await page.goto(BASE + '/healthz'); // Parley closed: alice has no socket, so she gets pushes
    await waitOffline(aux, bob.token, alice.user_id);
    await sendOverWS(aux, bob.token, convId, [`${SECRET} 1`]);
    [first] = await rx.wait(1, T.normal);
    assert.equal(first.json.type, 'message');
    assert.equal(first.json.conversation_id, convId);
    assert.equal(first.json.body, 'Bob sent you a message');
    assert.ok(!first.text.includes('pizza'), 'the payload has no message text');
    let shown = await deliverUntil(first.text, (l) => l.length === 1, 'one notification');
    assert.deepEqual(shown.map(({ title, body, tag }) => ({ title, body, tag })), [{ title: 'Parley', body: 'Bob sent you a message', tag: first.json.tag }]);
    assert.equal(first.json.tag, convId, 'the tag is the conversation');
    assert.equal(shown[0].data.conversation_id, convId);
    assert.ok(!JSON.stringify(shown).includes('pizza'), 'no message text in the notification');

    // Two more within the window: one notification counting all three replaces the first.
    await sendOverWS(aux, bob.token, convId, [`${SECRET} 2`, `${SECRET} 3`]);
    second = (await rx.wait(2, T.normal))[1];
    assert.equal(second.json.body, 'Bob sent you 3 messages');
    assert.ok(second.json.seq > first.json.seq);
    shown = await deliverUntil(second.text, (l) => l.length === 1 && l[0].body === 'Bob sent you 3 messages', 'the notification replaced');
    assert.equal(shown[0].tag, convId);
    assert.equal(shown[0].renotify, true, 'a replacement for new messages alerts again');

    // The first push again (delivery is at least once): the newer one stays.
    await deliver(first.text);
    await page.waitForTimeout(500); // give a wrong replacement time to show
    shown = await notifications(page);
    assert.deepEqual(shown.map((n) => n.body), ['Bob sent you 3 messages']);
  });

  await step('reading on another device clears the notification', async () => {
    await markRead(aux, alice2.token, convId, second.json.seq);
    const clear = (await rx.wait(3, T.normal))[2];
    assert.deepEqual({ type: clear.json.type, conversation_id: clear.json.conversation_id, badge: clear.json.badge, tag: clear.json.tag },
      { type: 'clear', conversation_id: convId, badge: 0, tag: convId });
    await deliverUntil(clear.text, (l) => l.length === 0, 'the notification closed');
  });

  await step('clicking a notification opens its conversation in the open tab', async () => {
    await page.goto(BASE + '/');
    await waitSynced(page);
    await deliverUntil(second.text, (l) => l.length === 1, 'a notification');
    assert.equal(await page.locator('.chat-name').count(), 0, 'no chat open yet');
    // No real click in headless Chromium: dispatch the worker's own event.
    const sw = context.serviceWorkers().find((w) => w.url() === BASE + '/sw.js');
    assert.ok(sw, 'the service worker is running');
    await sw.evaluate(async () => {
      const [n] = await self.registration.getNotifications();
      self.dispatchEvent(new NotificationEvent('notificationclick', { notification: n }));
    });
    await page.locator('.chat-name', { hasText: 'Bob' }).waitFor();
    assert.equal(await page.evaluate(() => location.hash), `#c=${encodeURIComponent(convId)}`);
    await waitNotifications((l) => l.length === 0, 'the clicked notification closed');
  });

  await step('turning push off deletes the subscription on the server and in the browser', async () => {
    await waitPushState(page, 'on'); // renewed at start, same id
    assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('parley.push')).subscription_id), subId);
    await openSettings();
    await page.locator('dialog.modal').getByRole('button', { name: 'Turn off' }).click();
    await page.locator('dialog.modal .push-status[data-state="off"]').waitFor();
    // Playwright reports a response to node asynchronously: possibly after
    // the page has already shown its outcome.
    await until(() => calls.some((c) => c.method === 'DELETE'), 'the DELETE response to be recorded');
    const del = calls.find((c) => c.method === 'DELETE');
    assert.deepEqual(del && { path: del.path, status: del.status }, { path: `/api/v1/push/subscriptions/${subId}`, status: 204 });
    assert.equal(await browserSubscription(page), null);
    await until(() => gcm.deletions.length === 1, 'the browser to unsubscribe from its push service');
    assert.equal(await page.evaluate(() => localStorage.getItem('parley.push')), null);
    await assert.rejects(rest('DELETE', `/push/subscriptions/${subId}`, undefined, alice.token), /404/, 'the server no longer has it');
    await page.locator('dialog.modal').getByRole('button', { name: 'Close' }).click();
  });

  await step('logging out deletes the subscription and unsubscribes before the token is dropped', async () => {
    await openSettings();
    await page.locator('dialog.modal').getByRole('button', { name: 'Enable notifications' }).click();
    await page.locator('dialog.modal .push-status[data-state="on"]').waitFor();
    const id = await page.evaluate(() => JSON.parse(localStorage.getItem('parley.push')).subscription_id);
    assert.ok(id && id !== subId, 'a new subscription');
    assert.equal(gcm.registrations.length, 2);
    await page.locator('dialog.modal').getByRole('button', { name: 'Close' }).click();
    calls.length = 0;
    await page.locator('.side-head').getByRole('button', { name: 'Log out' }).click();
    await page.locator('dialog.modal').getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Create account' }).waitFor();
    await until(() => calls.length >= 2, 'both responses to be recorded'); // see the DELETE above
    assert.deepEqual(calls.map((c) => `${c.method} ${c.path} ${c.status}`),
      [`DELETE /api/v1/push/subscriptions/${id} 204`, 'POST /api/v1/auth/logout 204']);
    assert.equal(await browserSubscription(page), null);
    await until(() => gcm.deletions.length === 2, 'the browser to unsubscribe from its push service');
    assert.equal(await page.evaluate(() => localStorage.getItem('parley.push')), null);
  });
});

test('web push where it cannot work: a private window, a server without it', { timeout: 120_000 }, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const step = steps(t);
  const carol = await apiUser(uname('carol'), 'Carol');

  await step('a private window cannot subscribe: the error is shown, the app goes on', async () => {
    const { context, page } = await newDevice(browser, { label: 'private' });
    await context.grantPermissions(['notifications'], { origin: BASE });
    const calls = recordPushCalls(page);
    await loginAs(page, carol);
    await waitPushState(page, 'off');
    await page.locator('.side-head').getByRole('button', { name: /^Notifications/ }).click();
    await page.locator('dialog.modal').getByRole('button', { name: 'Enable notifications' }).click();
    await page.locator('dialog.modal .push-status[data-state="error"]').waitFor();
    assert.match(await page.locator('dialog.modal .form-error').textContent(), /could not subscribe/);
    assert.equal(calls.filter((c) => c.method === 'POST').length, 0, 'nothing sent to the server');
    await page.locator('dialog.modal').getByRole('button', { name: 'Close' }).click();
    assert.equal(await page.evaluate(() => window.parley.socket.ready), true, 'the app still works');
    await context.close();
  });

  await step('a server without Web Push: the option is hidden', async () => {
    const { context, page } = await newDevice(browser, { label: 'nopush' });
    // What parleyd answers when push is off (a store without the outbox).
    await page.route('**/api/v1/push/vapid-public-key', (route) => route.fulfill({
      status: 404, contentType: 'application/json',
      body: JSON.stringify({ error: { status: 404, code: 'not_found', message: 'push notifications are not available on this server' } }),
    }));
    await loginAs(page, carol);
    await waitPushState(page, 'unavailable');
    assert.equal(await page.locator('.side-head').getByRole('button', { name: /^Notifications/ }).count(), 0);
    await context.close();
  });
});
