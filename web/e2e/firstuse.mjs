// What a newcomer meets first in a 1:1 chat (issue 19): a reply shows the
// message it quotes and jumps to it, sent/delivered/read ticks differ in
// shape (not only colour) and open the message info, a direct chat reaches
// the other person with its first message, and while our own
// connection is down the banner says so cleanly and presence is unknown
// rather than a stale "online".
import test from 'node:test';
import assert from 'node:assert/strict';
import { BASE, T, launch, newDevice, apiUser, rest, uname, loginAs, openChat, sendOverWS, waitTexts, waitStatus, steps } from './lib.mjs';

test('first use: replies, ticks, presence while disconnected', { timeout: 180_000 }, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const step = steps(t);
  const alice = await apiUser(uname('alice'), 'Alice');
  const bob = await apiUser(uname('bob'), 'Bob');
  const conv = await rest('POST', '/conversations', { type: 'direct', user_id: bob.user_id }, alice.token);
  const convId = conv.conversation_id;
  const a = await newDevice(browser, { label: 'alice' });
  const b = await newDevice(browser, { label: 'bob' });

  await step('a reply shows the quoted message and jumps to it', async () => {
    await a.page.goto(`${BASE}/healthz`);
    await sendOverWS(a.page, alice.token, convId, ['Lunch at noon?', 'Or one?']);
    await loginAs(a.page, alice);
    await loginAs(b.page, bob);
    await openChat(a.page, 'Bob');
    await sendOverWS(b.page, bob.token, convId, [{ content: 'Noon works', content_type: 'text', reply_to_seq: 1 }]);
    await waitTexts(a.page, (x) => x.includes('Noon works'), 'the reply');
    const reply = a.page.locator('.msgs li.msg', { has: a.page.locator('.text', { hasText: 'Noon works' }) });
    const quote = reply.locator('.quote');
    await quote.waitFor();
    assert.equal(await quote.locator('.quote-sender').textContent(), 'You');
    assert.equal(await quote.locator('.quote-text').textContent(), 'Lunch at noon?');
    await quote.click();
    await a.page.locator('.msgs li.msg.flash[data-seq="1"]').waitFor({ timeout: T.short });
  });

  await step('delivered and read differ in shape and say which on hover', async () => {
    await b.page.locator('.conv', { hasText: 'Alice' }).waitFor();
    // Bob's page goes to another page: alice's next message is delivered (to
    // his other device, the seeder socket) but not read.
    await b.page.goto(`${BASE}/healthz`);
    await a.page.getByRole('textbox', { name: 'Message' }).fill('Bring the map');
    await a.page.getByRole('textbox', { name: 'Message' }).press('Enter');
    await waitStatus(a.page, 'Bring the map', 'sent');
    const own = a.page.locator('.msgs li.msg.own', { hasText: 'Bring the map' });
    // Delivered once a device of bob's says so.
    await b.page.evaluate(({ token, convId }) => new Promise((resolve) => {
      const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/api/v1/ws?token=${encodeURIComponent(token)}`);
      ws.onmessage = (ev) => {
        if (JSON.parse(ev.data).type !== 'ready') return;
        ws.send(JSON.stringify({ type: 'message_status', conversation_id: convId, seq: 4, status: 'delivered' }));
        setTimeout(() => { ws.close(); resolve(); }, 300);
      };
    }), { token: bob.token, convId });
    await waitStatus(a.page, 'Bring the map', 'delivered');
    const delivered = await own.locator('.ticks svg').getAttribute('class');
    assert.match(await own.locator('.ticks').getAttribute('title'), /^Delivered/);
    // Bob reads it.
    await loginAs(b.page, bob);
    await openChat(b.page, 'Alice');
    await waitStatus(a.page, 'Bring the map', 'read');
    const read = await own.locator('.ticks svg').getAttribute('class');
    assert.match(await own.locator('.ticks').getAttribute('title'), /^Read/);
    assert.notEqual(read.replace(/\s+/g, ' '), delivered.replace(/\s+/g, ' '), 'read and delivered use the same icon');
    // The message info (also in direct chats) lists the reader.
    await own.locator('.ticks').click();
    const dlg = a.page.locator('dialog.modal');
    await dlg.locator('.receipt-section.read .member-name', { hasText: 'Bob' }).waitFor();
    await a.page.keyboard.press('Escape');
    await dlg.waitFor({ state: 'detached' });
  });

  await step('a direct chat reaches the other person with its first message, not before', async () => {
    const carol = await apiUser(uname('carol'), 'Carol');
    const cd = await newDevice(browser, { label: 'carol' });
    await loginAs(cd.page, carol);
    const started = await rest('POST', '/conversations', { type: 'direct', user_id: carol.user_id }, alice.token);
    await cd.page.waitForFunction((id) => window.parley.convs.has(id), started.conversation_id);
    await cd.page.waitForTimeout(300); // a render that would list it has run; not an assertion on time
    assert.equal(await cd.page.locator('.conv', { hasText: 'Alice' }).count(), 0, 'an empty chat was listed');
    await sendOverWS(cd.page, alice.token, started.conversation_id, ['Hi Carol']);
    await cd.page.locator('.conv', { hasText: 'Alice' }).locator('.conv-preview', { hasText: 'Hi Carol' }).waitFor();
    await cd.context.close();
  });

  await step('offline: a clean banner, presence unknown; back online: presence again', async () => {
    const p = a.page;
    await p.locator('.chat-status', { hasText: 'online' }).waitFor();
    await p.locator('.conv', { hasText: 'Bob' }).locator('.presence-dot').waitFor();
    await a.context.setOffline(true);
    await p.evaluate(() => window.parley.socket.closed(1006));
    const banner = p.locator('.banner:not([hidden])');
    await banner.waitFor({ timeout: T.short });
    await p.locator('.banner', { hasText: "You're offline" }).waitFor({ timeout: T.short });
    const text = await banner.textContent();
    assert.ok(!/null|undefined/.test(text), `banner text: ${JSON.stringify(text)}`);
    // Our socket is down: bob's "online" is not known any more.
    await p.waitForFunction(() => !document.querySelector('.conv .presence-dot'), null, { timeout: T.short });
    const status = await p.locator('.chat-status').textContent();
    assert.ok(!/online/.test(status), `header still says ${JSON.stringify(status)}`);
    await a.context.setOffline(false);
    await p.evaluate(() => window.dispatchEvent(new Event('online')));
    await p.locator('.banner').waitFor({ state: 'hidden', timeout: T.normal });
    await p.locator('.chat-status', { hasText: 'online' }).waitFor();
    await p.locator('.conv', { hasText: 'Bob' }).locator('.presence-dot').waitFor();
  });
});
