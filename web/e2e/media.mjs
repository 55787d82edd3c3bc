// Attachments between two browsers: a picture's blurred thumbnail reaches the
// other side with the message and opens full size in the viewer; a document
// arrives as a file card that downloads; a voice note gets an audio player;
// a cancelled upload leaves no message; a failed upload retries; paste and
// drag and drop send files too.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { T, launch, newDevice, uname, apiUser, rest, loginAs, openChat, steps } from './lib.mjs';
import { landscapePNG } from './png.mjs';

const own = '.msgs li.msg.own';
const other = '.msgs li.msg.other';

/** Bob's messages as the server stores them (history, oldest first). */
async function history(u, conv) {
  const page = await rest('GET', `/conversations/${conv}/messages?limit=200`, undefined, u.token);
  return page.messages.slice().sort((a, b) => a.seq - b.seq);
}

test('photos, files, voice notes and uploads in the web client', { timeout: 240_000 }, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const alice = await apiUser(uname('alice'), 'Alice Media');
  const bob = await apiUser(uname('bob'), 'Bob Media');
  const conv = (await rest('POST', '/conversations', { type: 'direct', user_id: bob.user_id }, alice.token)).conversation_id;
  const A = await newDevice(browser, { label: 'alice' });
  const B = await newDevice(browser, { label: 'bob', acceptDownloads: true });
  const step = steps(t);
  const png = landscapePNG(1200, 800);
  const attach = (files) => A.page.locator('input.file-input').setInputFiles(files);

  await step('both open the chat', async () => {
    await loginAs(A.page, alice);
    await loginAs(B.page, bob);
    await openChat(A.page, 'Bob Media');
    await openChat(B.page, 'Alice Media');
    await A.page.getByRole('button', { name: 'Attach files' }).waitFor();
  });

  await step('alice sends a picture: pending with a local preview, then sent', async () => {
    // When alice's picture is acked, and when bob's page first shows its thumbnail.
    await A.page.evaluate(() => new MutationObserver((_, obs) => {
      if (document.querySelector('.msgs li.msg.own:not([data-status="pending"]):not([data-status="failed"]) .media-image')) {
        window.__ackAt = Date.now();
        obs.disconnect();
      }
    }).observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-status'] }));
    await B.page.evaluate(() => new MutationObserver((_, obs) => {
      if (document.querySelector('.msgs li.msg.other .media-image img.media-thumb')) {
        window.__thumbAt = Date.now();
        window.__fullAtThumb = Boolean(document.querySelector('.msgs li.msg.other .media-image.loaded'));
        obs.disconnect();
      }
    }).observe(document.body, { childList: true, subtree: true }));
    await attach({ name: 'lake.png', mimeType: 'image/png', buffer: png });
    // First a preview with a caption field; nothing is sent before Send.
    const dlg = A.page.locator('dialog.modal-preview');
    await dlg.locator('img.photo-preview-img[src^="blob:"]').waitFor();
    assert.equal(await A.page.locator(`${own} .media-image`).count(), 0, 'sent before Send');
    await dlg.getByLabel('Caption').fill('The lake at dusk');
    await dlg.getByRole('button', { name: 'Send' }).click();
    // Shown at once, before the upload finishes, from the local file.
    const mine = A.page.locator(`${own} .media-image`).last();
    await mine.waitFor({ timeout: T.short });
    await A.page.locator(`${own}:not([data-status="pending"]) .media-image.loaded`).last().waitFor();
    const src = await A.page.locator(`${own} .media-image img.media-full`).last().getAttribute('src');
    assert.match(src, /^blob:/, 'the sender shows its own file, not a download');
  });

  await step('bob sees the blurred thumbnail at once and the full image in view', async () => {
    const thumb = B.page.locator(`${other} .media-image img.media-thumb`).last();
    await thumb.waitFor({ timeout: T.short });
    const ackAt = await A.page.evaluate(() => window.__ackAt);
    const { thumbAt, fullAtThumb } = await B.page.evaluate(() => ({ thumbAt: window.__thumbAt, fullAtThumb: window.__fullAtThumb }));
    assert.ok(ackAt && thumbAt, 'both moments were seen');
    assert.ok(thumbAt - ackAt < 3000, `thumbnail shown ${thumbAt - ackAt} ms after the ack`);
    assert.equal(fullAtThumb, false, 'the thumbnail shows before the full image has loaded');
    const thumbSrc = await thumb.getAttribute('src');
    assert.match(thumbSrc, /^data:image\/jpeg;base64,/, 'the thumbnail is the inline data: URL from the message');
    assert.ok(thumbSrc.length < 10 * 1024, `thumbnail ${thumbSrc.length} bytes`);
    assert.equal(await thumb.evaluate((el) => getComputedStyle(el).filter.includes('blur')), true, 'the thumbnail is blurred');
    console.log(`thumbnail (${thumbSrc.length} bytes) shown on bob's page ${thumbAt - ackAt} ms after alice's ack`);
    await B.page.locator(`${other} .media-image.loaded`).last().waitFor();
    const natural = await B.page.locator(`${other} .media-image img.media-full`).last().evaluate((img) => [img.naturalWidth, img.naturalHeight, img.src]);
    assert.deepEqual(natural.slice(0, 2), [1200, 800], 'the full image is the original');
    assert.match(natural[2], /\/api\/v1\/media\/[0-9A-Z]+\?token=/);
    // The box was sized from the message's width/height before anything loaded.
    const box = await B.page.locator(`${other} .media-image`).last().boundingBox();
    assert.ok(Math.abs(box.width / box.height - 1.5) < 0.02, `box ${box.width}×${box.height} keeps 3:2`);
    const stored = (await history(bob, conv)).at(-1);
    assert.equal(stored.content_type, 'image');
    assert.equal(stored.content, 'The lake at dusk', 'the caption is the message text');
    assert.equal(stored.media.name, 'lake.png');
    assert.equal(stored.media.thumbnail, thumbSrc);
    await B.page.locator('.conv-preview', { hasText: 'Photo' }).waitFor();
  });

  await step('bob opens the photo in the viewer and closes it', async () => {
    await B.page.getByRole('button', { name: /^Open photo lake\.png, 1200 × 800/ }).last().click();
    const box = B.page.locator('dialog.lightbox');
    await box.waitFor();
    await box.getByRole('heading', { name: 'lake.png' }).waitFor();
    await box.locator('.lightbox-stage.loaded').waitFor();
    assert.equal(await box.locator('img.lightbox-img').evaluate((img) => img.naturalWidth), 1200);
    assert.ok(await box.getByRole('link', { name: 'Download lake.png' }).isVisible());
    await B.page.keyboard.press('Escape');
    await box.waitFor({ state: 'detached' });
  });

  const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(30_000)]);
  await step('a document arrives as a file card that downloads', async () => {
    await attach({ name: 'minutes.pdf', mimeType: 'application/pdf', buffer: pdf });
    const card = B.page.locator(`${other} .file-card`, { hasText: 'minutes.pdf' });
    await card.waitFor();
    assert.match(await card.locator('.file-meta').textContent(), /^PDF · 30 KB$/);
    const [download] = await Promise.all([
      B.page.waitForEvent('download'),
      card.getByRole('link', { name: /^Download minutes\.pdf/ }).click(),
    ]);
    assert.equal(download.suggestedFilename(), 'minutes.pdf');
    assert.ok((await readFile(await download.path())).equals(pdf), 'the download is the file sent');
    await A.page.locator(`${own}:not([data-status="pending"]) .file-card`, { hasText: 'minutes.pdf' }).waitFor();
  });

  await step('a voice note gets an audio player', async () => {
    const ogg = Buffer.concat([Buffer.from('OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x13OpusHead', 'latin1'), randomBytes(4000)]);
    await attach({ name: 'voice.ogg', mimeType: 'audio/ogg', buffer: ogg });
    const player = B.page.locator(`${other} .voice-note audio.voice-player`).last();
    await player.waitFor();
    assert.match(await player.getAttribute('src'), /\/api\/v1\/media\/.+\?token=/);
    assert.equal((await history(bob, conv)).at(-1).content_type, 'voice');
  });

  await step('a cancelled upload leaves no message', async () => {
    const before = (await history(bob, conv)).length;
    const shownBefore = await B.page.locator(`${other}`).count();
    const held = [];
    await A.page.route('**/api/v1/uploads/*', (route) => {
      if (route.request().method() === 'PATCH') held.push(route); else route.continue();
    });
    await attach({ name: 'big.bin', mimeType: 'application/octet-stream', buffer: randomBytes(3 << 20) });
    const card = A.page.locator(`${own} .file-card`, { hasText: 'big.bin' });
    await card.locator('[role=progressbar]').waitFor();
    const deleted = A.page.waitForRequest((r) => r.method() === 'DELETE' && /\/api\/v1\/uploads\//.test(r.url()));
    await card.getByRole('button', { name: 'Cancel upload' }).click();
    await card.waitFor({ state: 'detached', timeout: T.short });
    await deleted;
    for (const r of held) await r.abort().catch(() => {});
    await A.page.unroute('**/api/v1/uploads/*');
    assert.equal(await A.page.evaluate(() => window.parley.outbox.size), 0, 'nothing left in the outbox');
    await A.page.waitForTimeout(1000); // nothing may arrive: give it the chance to
    assert.equal((await history(bob, conv)).length, before, 'no message stored');
    assert.equal(await B.page.locator(`${other}`).count(), shownBefore, 'bob saw nothing');
  });

  await step('a failed upload shows Retry, which resumes and sends it', async () => {
    await A.page.route('**/api/v1/uploads/*', (route) => {
      if (route.request().method() === 'PATCH') route.abort('connectionreset'); else route.continue();
    });
    await attach({ name: 'retry.png', mimeType: 'image/png', buffer: landscapePNG(300, 200) });
    await A.page.locator('dialog.modal-preview').getByRole('button', { name: 'Send' }).click();
    const li = A.page.locator(`${own}[data-status="failed"]`).last();
    await li.locator('.msg-fail', { hasText: 'Upload failed' }).waitFor({ timeout: T.normal });
    await A.page.unroute('**/api/v1/uploads/*');
    await li.getByRole('button', { name: 'Retry', exact: true }).click();
    await B.page.getByRole('button', { name: /^Open photo retry\.png/ }).waitFor();
    assert.equal((await history(bob, conv)).at(-1).media.name, 'retry.png');
  });

  await step('pasting an image and dropping a file send them', async () => {
    const small = landscapePNG(240, 160).toString('base64');
    await A.page.evaluate((b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'pasted.png', { type: 'image/png' }));
      const box = document.querySelector('.composer-input');
      box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    }, small);
    await A.page.locator('dialog.modal-preview').getByRole('button', { name: 'Send' }).click();
    await B.page.getByRole('button', { name: /^Open photo pasted\.png/ }).waitFor();
    await A.page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['dropped notes\n'], 'dropped.txt', { type: 'text/plain' }));
      const zone = document.querySelector('.chat-conv');
      zone.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
      window.__dropShown = !document.querySelector('.drop-zone').hidden;
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    assert.equal(await A.page.evaluate(() => window.__dropShown), true, 'the drop zone shows while dragging');
    assert.equal(await A.page.locator('.drop-zone').isHidden(), true);
    await B.page.locator(`${other} .file-card`, { hasText: 'dropped.txt' }).waitFor();
  });
});
