// Scrolling up loads older history page by page (120 messages seeded over the
// protocol), in order and without duplicates; the jump-to-latest button
// counts new messages while scrolled up.
import test from 'node:test';
import assert from 'node:assert/strict';
import { T, launch, newDevice, apiUser, rest, sendOverWS, uname, loginAs, openChat, shownTexts, waitTexts, steps } from './lib.mjs';

test('infinite scroll upwards through 120 messages', { timeout: 240_000 }, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const step = steps(t);
  const alice = await apiUser(uname('alice'), 'Alice Seeder');
  const bob = await apiUser(uname('bob'), 'Bob Reader');
  const conv = (await rest('POST', '/conversations', { type: 'direct', user_id: bob.user_id }, alice.token)).conversation_id;
  const seed = await newDevice(browser, { label: 'seed' });
  const { page } = await newDevice(browser, { label: 'bob', viewport: { width: 1100, height: 700 } });
  const all = Array.from({ length: 120 }, (_, i) => `msg ${i + 1}`);

  await step('seed 120 messages over REST + WebSocket', async () => {
    await seed.page.goto(process.env.PARLEY_URL + '/');
    const acks = await sendOverWS(seed.page, alice.token, conv, all);
    assert.equal(acks.length, 120);
    assert.deepEqual(acks.map((x) => x.seq), all.map((_, i) => i + 1));
  });

  await step('the chat opens on the newest page', async () => {
    await loginAs(page, bob);
    await page.locator('.conv .badge', { hasText: '99+' }).waitFor();
    await openChat(page, 'Alice Seeder');
    const shown = await waitTexts(page, (x) => x.includes('msg 120'), 'the newest message');
    assert.ok(shown.length < 120, `only recent pages at first (${shown.length})`);
    assert.deepEqual(shown, all.slice(120 - shown.length));
    const sc = page.locator('.scroller');
    const atBottom = await sc.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 5);
    assert.ok(atBottom, 'starts at the bottom');
  });

  await step('scrolling up loads everything, in order, once', async () => {
    const sc = page.locator('.scroller');
    const deadline = Date.now() + T.long;
    let shown = [];
    while (Date.now() < deadline) {
      await sc.evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
      shown = await shownTexts(page);
      if (shown[0] === 'msg 1') break;
      await page.waitForTimeout(150); // let the page load; bounded by the deadline
    }
    assert.deepEqual(shown, all);
    await page.locator('.history-status', { hasText: 'beginning of the conversation' }).waitFor();
    const seqs = await page.$$eval('.msgs li.msg', (els) => els.map((e) => Number(e.dataset.seq)));
    assert.deepEqual(seqs, all.map((_, i) => i + 1));
  });

  await step('jump to latest counts new messages while scrolled up', async () => {
    const sc = page.locator('.scroller');
    await sc.evaluate((el) => { el.scrollTop = el.scrollHeight / 3; el.dispatchEvent(new Event('scroll')); });
    await page.locator('button.jump').waitFor();
    await sendOverWS(seed.page, alice.token, conv, ['msg 121', 'msg 122']);
    await page.locator('button.jump .badge', { hasText: '2' }).waitFor();
    await page.locator('button.jump').click();
    await page.locator('button.jump').waitFor({ state: 'hidden' });
    const atBottom = await sc.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 5);
    assert.ok(atBottom, 'scrolled to the bottom');
    const shown = await shownTexts(page);
    assert.deepEqual(shown.slice(-3), ['msg 120', 'msg 121', 'msg 122']);
  });

  await step('a long absence: sync is truncated and the rest is fetched', async () => {
    await page.evaluate(() => window.parley.socket.stop());
    const more = Array.from({ length: 150 }, (_, i) => `msg ${123 + i}`);
    await sendOverWS(seed.page, alice.token, conv, more);
    await page.evaluate(() => window.parley.socket.start());
    const shown = await waitTexts(page, (x) => x.includes('msg 272'), 'all 150 missed messages', T.long);
    assert.deepEqual(shown, Array.from({ length: 272 }, (_, i) => `msg ${i + 1}`));
  });

  await step('a frame lost on the way is fetched to fill the gap', async () => {
    // A second device for bob whose socket loses one new_message frame.
    const dev = await newDevice(browser, { label: 'bob-lossy' });
    await dev.page.routeWebSocket(/\/api\/v1\/ws/, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((m) => server.send(m));
      server.onMessage((m) => {
        if (typeof m === 'string' && m.includes('"new_message"') && m.includes('"msg 274"')) return; // dropped
        ws.send(m);
      });
    });
    await loginAs(dev.page, bob);
    await openChat(dev.page, 'Alice Seeder');
    await waitTexts(dev.page, (x) => x.includes('msg 272'), 'the latest page');
    await sendOverWS(seed.page, alice.token, conv, ['msg 273', 'msg 274', 'msg 275']);
    const shown = await waitTexts(dev.page, (x) => x.includes('msg 275') && x.includes('msg 274'), 'the gap filled');
    assert.deepEqual(shown.slice(-4), ['msg 272', 'msg 273', 'msg 274', 'msg 275']);
    assert.equal(new Set(shown).size, shown.length, 'no duplicates');
  });
});
