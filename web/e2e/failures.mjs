// Failures the user must see: a 429 (run against a server with a message
// rate of 5 per minute) shows "Not sent" with a Retry button that works once
// the limit allows; a 413; and a revoked session returns to the login screen.
import test from 'node:test';
import assert from 'node:assert/strict';
import { T, launch, newDevice, apiUser, rest, uname, loginAs, openChat, sendUI, waitStatus, waitTexts, steps } from './lib.mjs';

test('failed sends and ended sessions', { timeout: 240_000 }, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const step = steps(t);
  const alice = await apiUser(uname('alice'), 'Alice');
  const bob = await apiUser(uname('bob'), 'Bob');
  await rest('POST', '/conversations', { type: 'direct', user_id: bob.user_id }, alice.token);
  const { page } = await newDevice(browser, { label: 'alice' });
  const bobDev = await newDevice(browser, { label: 'bob' });

  await step('open the chat', async () => {
    await loginAs(page, alice);
    await loginAs(bobDev.page, bob);
    await openChat(page, 'Bob');
    await openChat(bobDev.page, 'Alice');
  });

  await step('a 413 shows a failure with Retry and Delete', async () => {
    await page.getByRole('textbox', { name: 'Message' }).fill('x'.repeat(70_000));
    await page.locator('.composer-note', { hasText: 'over 64 KB' }).waitFor();
    await page.getByRole('textbox', { name: 'Message' }).press('Enter');
    const fail = page.locator('li.msg.own[data-status="failed"] .msg-fail', { hasText: 'too long' });
    await fail.waitFor();
    await fail.getByRole('button', { name: 'Retry' }).waitFor();
    await fail.getByRole('button', { name: 'Delete' }).click();
    await page.locator('li.msg.own[data-status="failed"]').waitFor({ state: 'detached' });
    // Far too large to even send (the socket would be closed): refused locally the same way.
    await page.getByRole('textbox', { name: 'Message' }).fill('y'.repeat(300_000));
    await page.getByRole('textbox', { name: 'Message' }).press('Enter');
    const local = page.locator('li.msg.own[data-status="failed"] .msg-fail', { hasText: 'too long' });
    await local.waitFor();
    await local.getByRole('button', { name: 'Delete' }).click();
    await page.locator('li.msg.own[data-status="failed"]').waitFor({ state: 'detached' });
    assert.equal(await page.evaluate(() => window.parley.socket.ready), true, 'the socket stayed open');
  });

  await step('a 429 shows a failure, Retry succeeds once allowed', async () => {
    let sent = 0;
    for (let i = 1; i <= 8; i++) {
      await sendUI(page, `burst ${i}`);
      sent = i;
      const outcome = await Promise.race([
        page.locator('li.msg.own[data-status="failed"]').waitFor().then(() => 'failed'),
        page.locator('li.msg.own:not([data-status="pending"]):not([data-status="failed"])', { hasText: `burst ${i}` }).waitFor().then(() => 'ok'),
      ]);
      if (outcome === 'failed') break;
    }
    const failed = page.locator('li.msg.own[data-status="failed"]');
    await failed.waitFor({ timeout: T.short });
    const text = await failed.locator('.text').textContent();
    assert.equal(text, `burst ${sent}`);
    const fail = failed.locator('.msg-fail');
    assert.match(await fail.textContent(), /too fast/);
    const retry = fail.getByRole('button', { name: 'Retry' });
    assert.equal(await retry.isDisabled(), true, 'Retry waits for retry_after');
    await page.locator('.conv-preview.failed').waitFor();
    // retry_after at 5 messages a minute is about 12 s; click() waits for the button to be enabled.
    await retry.click({ timeout: 30_000 });
    await waitStatus(page, text, 'read', T.normal);
    await waitTexts(bobDev.page, (x) => x.filter((m) => m === text).length === 1, 'bob gets it once');
  });

  await step('a revoked session goes back to the login screen', async () => {
    await rest('POST', '/auth/logout', undefined, alice.token);
    await page.locator('.auth-notice', { hasText: 'session ended' }).waitFor({ timeout: T.normal });
    assert.equal(await page.getByLabel('Username').inputValue(), alice.username);
  });
});
