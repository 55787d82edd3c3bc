// Regenerates the screenshots in docs/screenshots/ (login, desktop list +
// chat, photos and files in a chat, the photo viewer, phone chat and list,
// group info, dark theme) against a running server with realistic data. Run through go test (see docs/web-client.md):
//   PARLEY_SCREENSHOTS=1 go test ./web -run TestScreenshots -v
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { BASE, launch, newDevice, apiUser, rest, sendOverWS, uploadMedia, uname, waitSynced, openChat } from './lib.mjs';
import { landscapePNG } from './png.mjs';

const OUT = resolve(process.env.PARLEY_SCREENSHOTS_DIR || join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'screenshots'));
mkdirSync(OUT, { recursive: true });

const browser = await launch();
try {
  const suffix = uname('').slice(-4);
  const mk = (name, display) => apiUser(`${name}${suffix}`, display);
  const alice = await mk('alice', 'Alice Martin');
  const bob = await mk('bob', 'Bob Chen');
  const carol = await mk('carol', 'Carol Diaz');
  const dan = await mk('dan', 'Dan Okafor');
  const erin = await mk('erin', 'Erin Walsh');

  const direct = async (a, b) => (await rest('POST', '/conversations', { type: 'direct', user_id: b.user_id }, a.token)).conversation_id;
  const ab = await direct(alice, bob);
  const ac = await direct(alice, carol);
  const ad = await direct(alice, dan);
  const ae = await direct(alice, erin);
  const group = (await rest('POST', '/groups', { name: 'Weekend trip 🏔️', members: [bob.user_id, carol.user_id, dan.user_id] }, alice.token)).conversation_id;

  const seeder = await newDevice(browser, { label: 'seed' });
  await seeder.page.goto(BASE + '/');
  const say = (u, conv, ...texts) => sendOverWS(seeder.page, u.token, conv, texts);
  const status = (u, conv, seq, st) => seeder.page.evaluate(async ({ token, conv, seq, st }) => {
    const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/api/v1/ws?token=${encodeURIComponent(token)}`);
    await new Promise((r) => { ws.onmessage = (e) => { if (JSON.parse(e.data).type === 'ready') r(); }; });
    ws.send(JSON.stringify({ type: 'message_status', conversation_id: conv, seq, status: st }));
    ws.send(JSON.stringify({ type: 'ping' }));
    await new Promise((r) => { ws.onmessage = (e) => { if (JSON.parse(e.data).type === 'pong') r(); }; });
    ws.close();
  }, { token: u.token, conv, seq, st });

  await say(erin, ae, 'Thanks for the book recommendation!');
  await say(alice, ae, 'Anytime 📚');
  await status(erin, ae, 2, 'read');
  await status(alice, ae, 2, 'read');
  await say(dan, ad, 'How was the lake? 🏞️');
  const lake = await uploadMedia(alice, landscapePNG(1200, 800, 'dusk'), 'lake-at-dusk.png');
  const morning = await uploadMedia(alice, landscapePNG(1200, 800, 'day'), 'next-morning.png');
  await say(alice, ad, { content_type: 'image', media_id: lake.media_id }, { content_type: 'image', media_id: morning.media_id, content: 'And the next morning ☀️' });
  await say(dan, ad, 'Wow 😍 they look great');
  const plan = await uploadMedia(dan, Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(182_000)]), 'Cabin booking confirmation.pdf');
  await say(dan, ad, { content_type: 'file', media_id: plan.media_id });
  const oggHead = Buffer.from('OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x13OpusHead', 'latin1');
  const note = await uploadMedia(dan, Buffer.concat([oggHead, randomBytes(24_000)]), 'voice-note.ogg');
  await say(dan, ad, { content_type: 'voice', media_id: note.media_id });
  await status(alice, ad, 6, 'read');
  await status(dan, ad, 3, 'read');
  await say(bob, ab, 'Hey Alice! Are we still on for Saturday?');
  await say(alice, ab, 'Yes! 10am at the trailhead 🥾', "I'll bring coffee");
  await say(bob, ab, 'Perfect. Carol said she might join too', 'Should I book the cabin for Sunday night?');
  await say(alice, ab, 'Please do — this is the one I mentioned: https://example.com/cabins/pine-lodge');
  await say(bob, ab, { content: 'Booked ✅\nCheck-in is after 3pm, and they have a wood stove.', content_type: 'text', reply_to_seq: 6 });
  await say(alice, ab, 'Amazing, thank you!', 'See you Saturday 🙌');
  await status(bob, ab, 9, 'delivered');
  await status(bob, ab, 8, 'read');
  await say(carol, group, "Who's driving on Saturday?");
  await say(dan, group, 'I can take 4 people in the van 🚐');
  await say(alice, group, 'Count me in!');
  await say(bob, group, 'Same here. I booked the cabin for Sunday night');
  await say(carol, group, 'Great, I’ll bring snacks');
  await status(bob, group, 5, 'read');
  await status(carol, group, 5, 'read');
  await status(dan, group, 4, 'read');
  await say(carol, ac, 'Did you see the forecast?', 'Sunny all weekend ☀️');

  // Alice on a desktop, Bob online (typing) in another browser.
  const bobDev = await newDevice(browser, { label: 'bob' });
  await bobDev.page.goto(BASE + '/');
  await bobDev.page.evaluate((s) => localStorage.setItem('parley.session', JSON.stringify(s)),
    { token: bob.token, user_id: bob.user_id, device_id: '', username: bob.username, display_name: bob.display_name });
  await bobDev.page.reload();
  await waitSynced(bobDev.page);

  const login = await newDevice(browser, { label: 'login', colorScheme: 'light' });
  await login.page.goto(BASE + '/');
  await login.page.locator('.auth-card').waitFor();
  await login.page.screenshot({ path: join(OUT, 'login.png') });

  const desk = await newDevice(browser, { label: 'alice', colorScheme: 'light', viewport: { width: 1280, height: 800 } });
  await desk.page.goto(BASE + '/');
  await desk.page.getByLabel('Username').fill(alice.username);
  await desk.page.getByLabel('Password').fill(alice.password);
  await desk.page.locator('form.auth-form button[type=submit]').click();
  await waitSynced(desk.page);
  await desk.page.locator('.notify-prompt button[aria-label="Dismiss"]').click();
  await openChat(desk.page, 'Bob Chen');
  await desk.page.locator('.chat-status', { hasText: 'online' }).waitFor();
  await openChat(bobDev.page, 'Alice Martin');
  await bobDev.page.getByRole('textbox', { name: 'Message' }).pressSequentially('Should I bring', { delay: 20 });
  await desk.page.locator('.typing-row.on').waitFor();
  await desk.page.mouse.move(900, 300);
  await desk.page.screenshot({ path: join(OUT, 'desktop-chat.png') });

  await desk.page.setViewportSize({ width: 1280, height: 960 }); // room for two photos, a document and a voice note
  await openChat(desk.page, 'Dan Okafor');
  await desk.page.locator('.msgs .media-image.loaded').nth(1).waitFor();
  await desk.page.locator('.msgs .file-card').waitFor();
  await desk.page.mouse.move(900, 300);
  await desk.page.waitForTimeout(600); // the thumbnails' fade to the full images
  await desk.page.screenshot({ path: join(OUT, 'desktop-media.png') });
  await desk.page.getByRole('button', { name: /^Open photo lake-at-dusk/ }).click();
  await desk.page.locator('dialog.lightbox .lightbox-stage.loaded').waitFor();
  await desk.page.waitForTimeout(500);
  await desk.page.screenshot({ path: join(OUT, 'photo-viewer.png') });
  await desk.page.keyboard.press('Escape');
  await desk.page.setViewportSize({ width: 1280, height: 800 });

  await openChat(desk.page, 'Weekend trip');
  await desk.page.locator('.chat-head .icon-btn[aria-label="Group info"]').click();
  await desk.page.locator('dialog.modal .member').nth(3).waitFor();
  await desk.page.screenshot({ path: join(OUT, 'group-info.png') });
  await desk.page.keyboard.press('Escape');

  const phone = await newDevice(browser, { label: 'phone', colorScheme: 'light', viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true });
  await phone.page.goto(BASE + '/');
  await phone.page.evaluate((s) => localStorage.setItem('parley.session', JSON.stringify(s)),
    { token: alice.token, user_id: alice.user_id, device_id: '', username: alice.username, display_name: alice.display_name });
  await phone.page.evaluate(() => localStorage.setItem('parley.notify.dismissed', '1'));
  await phone.page.reload();
  await waitSynced(phone.page);
  await phone.page.screenshot({ path: join(OUT, 'phone-list.png') });
  await openChat(phone.page, 'Weekend trip');
  await phone.page.locator('.msgs li.msg').nth(4).waitFor();
  await phone.page.screenshot({ path: join(OUT, 'phone-chat.png') });

  const dark = await newDevice(browser, { label: 'dark', colorScheme: 'dark', viewport: { width: 1280, height: 800 } });
  await dark.page.goto(BASE + '/');
  await dark.page.evaluate((s) => { localStorage.setItem('parley.session', JSON.stringify(s)); localStorage.setItem('parley.notify.dismissed', '1'); },
    { token: alice.token, user_id: alice.user_id, device_id: '', username: alice.username, display_name: alice.display_name });
  await dark.page.reload();
  await waitSynced(dark.page);
  await openChat(dark.page, 'Weekend trip');
  await dark.page.locator('.msgs li.msg').nth(4).waitFor();
  await dark.page.screenshot({ path: join(OUT, 'desktop-dark.png') });
  console.log(`screenshots written to ${OUT}`);
} finally {
  await browser.close();
}
