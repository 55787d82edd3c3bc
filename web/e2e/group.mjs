// A group of three in three browser contexts: creating it, exchanging
// messages (same order everywhere), "read by N" with per-member detail,
// rename, remove and add members, leave; each change a line in the chat.
import test from 'node:test';
import assert from 'node:assert/strict';
import { BASE, T, launch, newDevice, registerUI, uname, openChat, startDirectUI, sendUI, waitTexts, waitStatus, steps } from './lib.mjs';

test('group chat with three people', { timeout: 240_000 }, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const step = steps(t);
  const a = await newDevice(browser, { label: 'alice' });
  const b = await newDevice(browser, { label: 'bob' });
  const c = await newDevice(browser, { label: 'carol' });
  const names = { a: uname('alice'), b: uname('bob'), c: uname('carol') };

  await step('three people register', async () => {
    await registerUI(a.page, names.a, 'Alice');
    await registerUI(b.page, names.b, 'Bob');
    await registerUI(c.page, names.c, 'Carol');
  });

  await step('alice creates a group with bob and carol', async () => {
    const p = a.page;
    await p.locator('.side-head').getByRole('button', { name: 'New group' }).click();
    await p.getByLabel('Group name').fill('Project X');
    const members = p.getByLabel('Members');
    await members.fill(names.b);
    await members.press('Enter');
    await p.locator('.chip', { hasText: 'Bob' }).waitFor();
    await members.fill(names.c); // left in the box: resolved on submit
    await p.getByRole('button', { name: 'Create group' }).click();
    await p.locator('.chat-name', { hasText: 'Project X' }).waitFor();
    await p.locator('.chat-status', { hasText: '3 members' }).waitFor();
    await b.page.locator('.conv-name', { hasText: 'Project X' }).waitFor();
    await c.page.locator('.conv-name', { hasText: 'Project X' }).waitFor();
  });

  await step('messages reach everyone in the same order', async () => {
    await sendUI(a.page, 'Hi team');
    await openChat(b.page, 'Project X');
    await waitTexts(b.page, (x) => x.includes('Hi team'), 'bob sees alice');
    await sendUI(b.page, 'Hi from Bob');
    await openChat(c.page, 'Project X');
    await waitTexts(c.page, (x) => x.includes('Hi from Bob'), 'carol sees bob');
    await sendUI(c.page, 'Hi from Carol');
    const want = ['Hi team', 'Hi from Bob', 'Hi from Carol'];
    for (const d of [a, b, c]) assert.deepEqual(await waitTexts(d.page, (x) => x.length === 3, 'three messages'), want);
    // Others' messages carry the sender's name.
    await a.page.locator('.msg.other .sender', { hasText: 'Bob' }).waitFor();
    await a.page.locator('.msg.other .sender', { hasText: 'Carol' }).waitFor();
  });

  await step('read by N, with who read it on click', async () => {
    await waitStatus(a.page, 'Hi team', 'read');
    const own = a.page.locator('.msgs li.msg.own', { hasText: 'Hi team' });
    await own.locator('.read-by', { hasText: 'Read by 2' }).click();
    const dlg = a.page.locator('dialog.modal');
    await dlg.locator('.receipt-section.read .member-name', { hasText: 'Bob' }).waitFor();
    await dlg.locator('.receipt-section.read .member-name', { hasText: 'Carol' }).waitFor();
    assert.match(await dlg.locator('.receipt-section.read .section-title').textContent(), /Read by · 2/);
    await a.page.keyboard.press('Escape');
    await dlg.waitFor({ state: 'detached' });
  });

  await step('only admins see rename and add; alice renames', async () => {
    await b.page.locator('.chat-head').getByRole('button', { name: 'Group info', exact: true }).click();
    await b.page.locator('dialog.modal .member').nth(2).waitFor();
    assert.equal(await b.page.locator('dialog.modal form.inline-form').isVisible(), false);
    assert.equal(await b.page.locator('dialog.modal .remove').count(), 0);
    await b.page.keyboard.press('Escape');

    await a.page.locator('.chat-head').getByRole('button', { name: 'Group info', exact: true }).click();
    const dlg = a.page.locator('dialog.modal');
    await dlg.getByLabel('Group name').fill('Project Y');
    await dlg.getByRole('button', { name: 'Rename' }).click();
    await dlg.locator('.info-name', { hasText: 'Project Y' }).waitFor();
    await b.page.locator('.chat-name', { hasText: 'Project Y' }).waitFor();
    await c.page.locator('.conv-name', { hasText: 'Project Y' }).waitFor();
    // The change is a line in the chat, for the one who made it and the others.
    await a.page.locator('.msgs li.sys', { hasText: 'You renamed the group “Project Y”' }).waitFor();
    await b.page.locator('.msgs li.sys', { hasText: 'The group was renamed “Project Y”' }).waitFor();
  });

  await step('alice removes carol, then adds her back', async () => {
    const dlg = a.page.locator('dialog.modal');
    await dlg.getByRole('button', { name: 'Remove Carol' }).click();
    await a.page.locator('dialog.modal-small').getByRole('button', { name: 'Remove' }).click();
    await dlg.locator('.member', { hasText: 'Carol' }).waitFor({ state: 'detached' });
    await c.page.locator('.conv-name', { hasText: 'Project Y' }).waitFor({ state: 'detached' });
    await c.page.locator('.chat-placeholder').waitFor();
    await c.page.locator('.toast', { hasText: 'no longer a member' }).waitFor();

    const add = dlg.getByLabel('Add people');
    await add.fill(names.c);
    await add.press('Enter');
    await dlg.locator('.chip', { hasText: 'Carol' }).waitFor();
    await dlg.getByRole('button', { name: 'Add', exact: true }).click();
    await a.page.locator('dialog.modal .member', { hasText: 'Carol' }).waitFor();
    await a.page.keyboard.press('Escape');
    await c.page.locator('.conv-name', { hasText: 'Project Y' }).waitFor();
    await openChat(c.page, 'Project Y');
    await waitTexts(c.page, (x) => x.includes('Hi team'), 'carol sees history again');
    await a.page.locator('.msgs li.sys', { hasText: 'You removed Carol' }).waitFor();
    await a.page.locator('.msgs li.sys', { hasText: 'You added Carol' }).waitFor();
    await b.page.locator('.msgs li.sys', { hasText: 'Carol is no longer in the group' }).waitFor();
    await b.page.locator('.msgs li.sys', { hasText: 'Carol was added' }).waitFor();
  });

  await step('carol blocks bob: his group messages are hidden from her', async () => {
    const p = c.page;
    await startDirectUI(p, names.b);
    await p.locator('.chat-head').getByRole('button', { name: 'Contact info', exact: true }).click();
    const dlg = p.locator('dialog.modal').first();
    await dlg.getByRole('button', { name: 'Block', exact: true }).click();
    await p.locator('dialog.modal-small').getByRole('button', { name: 'Block' }).click();
    await dlg.getByRole('button', { name: 'Unblock', exact: true }).waitFor();
    await p.keyboard.press('Escape');
    await openChat(p, 'Project Y');
    await sendUI(b.page, 'Spam from Bob');
    await waitTexts(a.page, (x) => x.includes('Spam from Bob'), 'alice still sees bob');
    await sendUI(a.page, 'After the spam');
    const shown = await waitTexts(p, (x) => x.includes('After the spam'), 'carol sees alice');
    assert.equal(shown.includes('Spam from Bob'), false, 'carol does not see the blocked user');
  });

  await step('bob leaves the group; what he read stays read', async () => {
    // Carol is away: alice's next message is read by bob only.
    await c.page.goto(`${BASE}/healthz`);
    await sendUI(a.page, 'Read by Bob only');
    await waitTexts(b.page, (x) => x.includes('Read by Bob only'), 'bob reads it');
    const only = a.page.locator('.msgs li.msg.own', { hasText: 'Read by Bob only' });
    await only.locator('.read-by', { hasText: 'Read by 1' }).waitFor();

    await b.page.locator('.chat-head').getByRole('button', { name: 'Group info', exact: true }).click();
    await b.page.getByRole('button', { name: 'Leave group' }).click();
    await b.page.locator('dialog.modal-small').getByRole('button', { name: 'Leave' }).click();
    await b.page.locator('.conv-name', { hasText: 'Project Y' }).waitFor({ state: 'detached' });
    await b.page.locator('.chat-placeholder').waitFor();
    await a.page.locator('.chat-status', { hasText: '2 members' }).waitFor({ timeout: T.normal });
    await a.page.locator('.msgs li.sys', { hasText: 'Bob is no longer in the group' }).waitFor();
    // His leaving takes no receipt back: still "Read by 1", not a bare ✓.
    assert.equal(await only.locator('.read-by').textContent(), 'Read by 1');
    const hi = a.page.locator('.msgs li.msg.own', { hasText: 'Hi team' });
    assert.equal(await hi.getAttribute('data-status'), 'read', 'Hi team was read by everyone at the time');

    await c.page.goto(`${BASE}/`);
    await openChat(c.page, 'Project Y');
    await sendUI(a.page, 'Bye Bob');
    await waitTexts(c.page, (x) => x.includes('Bye Bob'), 'carol still gets messages');
  });

  await step('on a phone: one pane at a time, with a back button', async () => {
    const p = c.page;
    await p.setViewportSize({ width: 390, height: 800 });
    await p.locator('.chat-head .back').click();
    await p.locator('.sidebar').waitFor({ state: 'visible' });
    await p.locator('.chat-pane').waitFor({ state: 'hidden' });
    await openChat(p, 'Project Y');
    await p.locator('.sidebar').waitFor({ state: 'hidden' });
    await p.locator('.chat-head .back').waitFor({ state: 'visible' });
    await p.goBack(); // the phone's own back button
    await p.locator('.sidebar').waitFor({ state: 'visible' });
    await p.locator('.chat-pane').waitFor({ state: 'hidden' });
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    assert.equal(overflow, false, 'no horizontal scrolling');
  });
});
