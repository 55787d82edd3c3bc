// Two people chat 1:1 in two browser contexts: ticks, typing, presence,
// offline catch-up without loss or duplicates, the outbox across a reload,
// and logging out.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, T, launch, newDevice, wire, registerUI, waitSynced, uname, openChat, startDirectUI, sendUI,
  waitTexts, waitStatus, rest, steps,
} from './lib.mjs';

/** Record every status an own message shows (ticks), in order. */
async function recordStatuses(page) {
  await page.evaluate(() => {
    window.__statuses = {};
    const note = (li) => {
      const text = li.querySelector('.text')?.textContent;
      if (!text) return;
      const list = (window.__statuses[text] ||= []);
      if (list[list.length - 1] !== li.dataset.status) list.push(li.dataset.status);
    };
    new MutationObserver((records) => {
      for (const r of records) {
        for (const n of r.addedNodes) if (n.nodeType === 1 && n.matches('li.msg.own')) note(n);
        if (r.type === 'attributes' && r.target.matches('li.msg.own')) note(r.target);
      }
    }).observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-status'] });
  });
}

test('direct chat between two browsers', { timeout: 240_000 }, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const alice = await newDevice(browser, { label: 'alice' });
  const bob = await newDevice(browser, { label: 'bob' });
  const aliceName = uname('alice');
  const bobName = uname('bob');
  const hello = 'Hello Bob 👋';
  const step = steps(t);

  await step('both register and stay logged in', async () => {
    await registerUI(alice.page, aliceName, 'Alice Liddell');
    await registerUI(bob.page, bobName, 'Bob Builder');
    const s = await alice.page.evaluate(() => JSON.parse(localStorage.getItem('parley.session')));
    assert.ok(s.token && s.device_id, 'session kept in localStorage');
    const me = await rest('GET', '/users/me', undefined, s.token);
    assert.equal(me.devices[0].device_name, 'Chrome on Linux');
  });

  await step('alice starts a chat by username and sees bob online', async () => {
    await startDirectUI(alice.page, bobName);
    await alice.page.locator('.chat-name', { hasText: 'Bob Builder' }).waitFor();
    await alice.page.locator('.chat-status', { hasText: 'online' }).waitFor();
    await alice.page.locator('.conv .presence-dot').waitFor();
  });

  await step('ticks go sent → delivered → read', async () => {
    await recordStatuses(alice.page);
    await sendUI(alice.page, hello);
    await waitStatus(alice.page, hello, 'delivered');
    // Bob has not opened the chat: an unread badge, the preview, not read yet.
    await bob.page.locator('.conv .badge', { hasText: '1' }).waitFor();
    await bob.page.locator('.conv-preview', { hasText: hello }).waitFor();
    await openChat(bob.page, 'Alice Liddell');
    await waitTexts(bob.page, (x) => x.includes(hello), 'bob sees hello');
    await waitStatus(alice.page, hello, 'read');
    await alice.page.locator('.msgs li.msg.own .tick-read').first().waitFor();
    const seen = await alice.page.evaluate((t) => window.__statuses[t], hello);
    const order = seen.filter((s) => s !== 'pending');
    assert.deepEqual(order, ['sent', 'delivered', 'read'], `status sequence ${JSON.stringify(seen)}`);
    await bob.page.locator('.conv .badge').waitFor({ state: 'detached' });
  });

  await step('typing shows on the other side and stops', async () => {
    const box = bob.page.getByRole('textbox', { name: 'Message' });
    await box.click();
    await box.pressSequentially('Hi Al', { delay: 30 });
    await alice.page.locator('.chat-status.typing', { hasText: 'typing…' }).waitFor();
    await alice.page.locator('.typing-row.on').waitFor();
    await box.pressSequentially('ice!', { delay: 30 });
    await box.press('Enter');
    await waitTexts(alice.page, (x) => x.includes('Hi Alice!'), 'alice sees the reply');
    await alice.page.locator('.chat-status.typing').waitFor({ state: 'detached', timeout: T.short });
    await alice.page.locator('.chat-status', { hasText: 'online' }).waitFor();
  });

  const offline = ['offline 1', 'offline 2', 'offline 3', 'offline 4', 'offline 5'];
  await step('bob goes away; alice keeps writing', async () => {
    await bob.page.close();
    await alice.page.locator('.chat-status', { hasText: 'last seen' }).waitFor({ timeout: T.normal });
    for (const text of offline) await sendUI(alice.page, text);
    for (const text of offline) await waitStatus(alice.page, text, 'sent');
  });

  await step('bob comes back and sees everything once, in order', async () => {
    bob.page = await bob.context.newPage();
    wire(bob.page, 'bob2');
    await bob.page.goto(BASE + '/');
    await waitSynced(bob.page);
    await bob.page.locator('.conv .badge', { hasText: '5' }).waitFor();
    await alice.page.locator('.chat-status', { hasText: 'online' }).waitFor();
    for (const text of offline) await waitStatus(alice.page, text, 'delivered');
    await openChat(bob.page, 'Alice Liddell');
    const want = [hello, 'Hi Alice!', ...offline];
    const got = await waitTexts(bob.page, (x) => x.length >= want.length && x.includes('offline 5'), 'bob catches up');
    assert.deepEqual(got, want);
    for (const text of offline) await waitStatus(alice.page, text, 'read');
    // Day separator and sender grouping.
    assert.equal(await bob.page.locator('.msgs li.day').count(), 1);
    assert.equal(await bob.page.locator('.msgs li.day').textContent(), 'Today');
  });

  await step('Shift+Enter adds a line, Enter sends', async () => {
    const box = bob.page.getByRole('textbox', { name: 'Message' });
    await box.click();
    await box.pressSequentially('line one');
    await box.press('Shift+Enter');
    await box.pressSequentially('line two');
    assert.equal(await box.inputValue(), 'line one\nline two');
    await box.press('Enter');
    assert.equal(await box.inputValue(), '');
    await waitTexts(alice.page, (x) => x.includes('line one\nline two'), 'a two-line message');
  });

  await step('a hidden tab notifies and does not mark messages read', async () => {
    await bob.page.evaluate(() => {
      window.__notes = [];
      window.Notification = class {
        static permission = 'granted';
        static requestPermission() { return Promise.resolve('granted'); }
        constructor(title, opts) { window.__notes.push({ title, body: opts.body, tag: opts.tag }); }
        close() {}
      };
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await sendUI(alice.page, 'are you there?');
    await waitStatus(alice.page, 'are you there?', 'delivered');
    // Bob's device decided delivered, not read, in the same receipt flush.
    const convId = await alice.page.evaluate(() => window.parley.activeId);
    const state = await bob.page.evaluate((id) => ({
      notes: window.__notes,
      read: window.parley.convs.get(id).members.find((m) => m.user_id === window.parley.me).read_seq,
      last: window.parley.convs.get(id).last_seq,
    }), convId);
    assert.ok(state.read < state.last, 'not read while hidden');
    assert.deepEqual(state.notes, [{ title: 'Alice Liddell', body: 'are you there?', tag: convId }]);
    await bob.page.evaluate(() => {
      delete document.visibilityState;
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await waitStatus(alice.page, 'are you there?', 'read');
  });

  await step('a message typed offline survives a reload and is sent once', async () => {
    const { context, page } = alice;
    await page.evaluate(() => window.parley.socket.stop());
    await sendUI(page, 'written offline');
    await page.locator('.msgs li.msg.own[data-status="pending"]', { hasText: 'written offline' }).waitFor();
    const before = await page.evaluate(() => JSON.parse(localStorage.getItem(`parley.outbox.${window.parley.me}`)));
    assert.equal(before.length, 1);
    await page.reload();
    await waitSynced(page);
    await waitStatus(page, 'written offline', 'read');
    await waitTexts(bob.page, (x) => x.includes('written offline'), 'bob gets it');
    const token = await page.evaluate(() => window.parley.session.token);
    const convId = await page.evaluate(() => window.parley.activeId);
    const res = await rest('GET', `/conversations/${convId}/messages?limit=50`, undefined, token);
    const copies = res.messages.filter((m) => m.content === 'written offline');
    assert.equal(copies.length, 1, 'stored once');
    assert.equal(copies[0].client_message_id, before[0].message_id, 'sent with the outbox message_id');
    const after = await page.evaluate(() => localStorage.getItem(`parley.outbox.${window.parley.me}`));
    assert.equal(after, '[]');
    assert.equal(context.pages().length, 1);
  });

  await step('a dropped connection shows a banner and recovers', async () => {
    const { page } = alice;
    await page.evaluate(() => window.parley.socket.closed(1001));
    await page.locator('.banner:not([hidden])').waitFor({ timeout: T.short });
    await waitSynced(page);
    await page.locator('.banner').waitFor({ state: 'hidden' });
    await sendUI(page, 'after reconnect');
    await waitStatus(page, 'after reconnect', 'read');
  });

  await step('logging out returns to the login screen for good', async () => {
    const { page } = alice;
    const token = await page.evaluate(() => window.parley.session.token);
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.locator('dialog.modal').getByRole('button', { name: 'Log out' }).click();
    await page.locator('.auth-card').waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('parley.session')), null);
    await assert.rejects(rest('GET', '/users/me', undefined, token), /401/);
    await page.reload();
    await page.locator('.auth-card').waitFor();
  });
});
