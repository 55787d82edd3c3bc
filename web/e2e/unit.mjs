// Unit tests of the client's pure modules (no browser needed).
import test from 'node:test';
import assert from 'node:assert/strict';
import { ConvWindow, receiptOf, activityTime, previewText, duration, fileSize } from '../static/js/store.js';
import { kindOf } from '../static/js/upload.js';
import { fromB64url, toB64url, subscriptionBody } from '../static/js/push.js';
import { initials, deviceName, presenceText, listTime, newMessageId, colorSlot } from '../static/js/util/format.js';

const msg = (seq, sender = 'u1') => ({ seq, sender_id: sender, timestamp: seq * 1000, content: `m${seq}`, content_type: 'text' });

test('ConvWindow keeps a contiguous range and drops duplicates', () => {
  const w = new ConvWindow(10); // positioned after seq 10 (known from the conversation list)
  assert.equal(w.hi, 10);
  assert.equal(w.lo, 11);
  assert.equal(w.insert(msg(11)), true);
  assert.equal(w.insert(msg(11)), false, 'duplicate by seq');
  assert.equal(w.insert(msg(9)), false, 'below the window and not adjacent');
  assert.equal(w.insert(msg(13)), true);
  assert.equal(w.hi, 11, 'a gap stops the cursor');
  assert.equal(w.gap, true);
  assert.equal(w.top, 13);
  assert.equal(w.insert(msg(12)), true);
  assert.equal(w.hi, 13);
  assert.equal(w.gap, false);
  assert.equal(w.insertOlder([msg(8), msg(10), msg(9)]), 3, 'older pages in any order');
  assert.equal(w.lo, 8);
  assert.deepEqual(w.messages().map((m) => m.seq), [8, 9, 10, 11, 12, 13]);
  assert.equal(w.hasOlder, true);
  assert.equal(w.insertOlder([msg(7), msg(6), msg(5), msg(4), msg(3), msg(2), msg(1)]), 7);
  assert.equal(w.hasOlder, false);
});

test('receipts: sent, delivered, read, and counts in groups', () => {
  const conv = {
    members: [
      { user_id: 'me', delivered_seq: 9, read_seq: 9 },
      { user_id: 'a', delivered_seq: 5, read_seq: 3 },
      { user_id: 'b', delivered_seq: 4, read_seq: 4 },
    ],
  };
  assert.deepEqual(receiptOf(conv, 'me', 3), { status: 'read', read: 2, delivered: 2, total: 2 });
  assert.deepEqual(receiptOf(conv, 'me', 4), { status: 'delivered', read: 1, delivered: 2, total: 2 });
  assert.deepEqual(receiptOf(conv, 'me', 5), { status: 'sent', read: 0, delivered: 1, total: 2 });
  assert.deepEqual(receiptOf(conv, 'me', 6), { status: 'sent', read: 0, delivered: 0, total: 2 });
});

test('receipts never go backwards when members leave (or leave and come back)', () => {
  const conv = {
    members: [
      { user_id: 'me', delivered_seq: 9, read_seq: 9 },
      { user_id: 'c', delivered_seq: 0, read_seq: 0 }, // removed and added back: new watermarks
    ],
    _former: {
      b: { user_id: 'b', delivered_seq: 5, read_seq: 5 }, // read up to 5, then left
      c: { user_id: 'c', delivered_seq: 4, read_seq: 4 },
      d: { user_id: 'd', delivered_seq: 2, read_seq: 1 }, // left before seq 3 was sent
    },
  };
  assert.deepEqual(receiptOf(conv, 'me', 4), { status: 'read', read: 2, delivered: 2, total: 2 });
  assert.deepEqual(receiptOf(conv, 'me', 5), { status: 'sent', read: 1, delivered: 1, total: 2 });
  assert.deepEqual(receiptOf(conv, 'me', 6), { status: 'sent', read: 0, delivered: 0, total: 1 });
  assert.deepEqual(receiptOf(conv, 'me', 1), { status: 'read', read: 3, delivered: 3, total: 3 }, 'members who left count for what they got');
});

test('formatting helpers', () => {
  assert.equal(initials('Alice Martin'), 'AM');
  assert.equal(initials('Weekend trip 🏔️'), 'WT');
  assert.equal(initials('bob'), 'B');
  assert.equal(initials('🎉'), '?');
  assert.equal(deviceName('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36'), 'Chrome on Linux');
  assert.equal(deviceName('Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1'), 'Safari on iOS');
  assert.equal(deviceName('Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0'), 'Firefox on Windows');
  const now = new Date(2026, 5, 15, 12, 0).getTime();
  assert.equal(presenceText({ status: 'online' }, now), 'online');
  assert.equal(presenceText({ status: 'offline', last_seen: now - 20_000 }, now), 'last seen just now');
  assert.equal(presenceText({ status: 'offline', last_seen: now - 5 * 60_000 }, now), 'last seen 5 min ago');
  assert.match(presenceText({ status: 'offline', last_seen: now - 3 * 3600_000 }, now), /^last seen today at /);
  assert.match(presenceText({ status: 'offline', last_seen: now - 24 * 3600_000 }, now), /^last seen yesterday at /);
  assert.equal(listTime(now - 24 * 3600_000, now), 'Yesterday');
  const a = newMessageId();
  assert.match(a, /^c[0-9a-z]+-[0-9a-f]{32}$/);
  assert.notEqual(a, newMessageId());
  assert.ok(colorSlot('x') >= 0 && colorSlot('x') < 8);
  assert.equal(previewText({ content_type: 'e2ee', content: {} }), 'Encrypted message');
  assert.equal(activityTime({ last_message: null, updated_at: 5, created_at: 1 }, 7), 7);
});

test('media helpers: kinds, sizes, durations, previews', () => {
  assert.equal(kindOf('image/png'), 'image');
  assert.equal(kindOf('video/mp4'), 'video');
  assert.equal(kindOf('audio/ogg'), 'voice');
  assert.equal(kindOf('application/pdf'), 'file');
  assert.equal(kindOf(''), 'file');
  assert.equal(fileSize(0), '0 B');
  assert.equal(fileSize(999), '999 B');
  assert.equal(fileSize(30_009), '30 KB');
  assert.equal(fileSize(9_500), '9.5 KB');
  assert.equal(fileSize(2_345_678), '2.3 MB');
  assert.equal(fileSize(104_857_600), '105 MB');
  assert.equal(duration(0), '0:00');
  assert.equal(duration(61_250), '1:01');
  assert.equal(duration(3_725_000), '1:02:05');
  assert.equal(previewText({ content_type: 'image', content: '' }), 'Photo');
  assert.equal(previewText({ content_type: 'image', content: 'Sunset' }), 'Photo: Sunset');
  assert.equal(previewText({ content_type: 'file', content: '', media: { name: 'minutes.pdf' } }), 'minutes.pdf');
  assert.equal(previewText({ content_type: 'voice', media: { duration_ms: 75_000 } }), 'Voice message (1:15)');
});

test('push helpers: base64url keys and the subscription body', () => {
  // A VAPID key as the server sends it (65 bytes, base64url, no padding) survives the round trip.
  const key = 'BBStDGFz7WWFWjJTkT9jKsQSYxYJvxjNJtorSTdz0MR7nbeXKb-QnrlO8W82CnzWbA4Z0prGZG9WgAkue9t5RF8';
  const bytes = fromB64url(key);
  assert.equal(bytes.length, 65);
  assert.equal(bytes[0], 4, 'an uncompressed point');
  assert.equal(toB64url(bytes), key);
  assert.equal(toB64url(bytes.buffer), key, 'an ArrayBuffer (PushSubscriptionOptions.applicationServerKey) too');
  assert.deepEqual([...fromB64url('_-8=')], [255, 239], 'padding and the URL alphabet');
  assert.equal(toB64url(new Uint8Array([251, 255])), '-_8');
  const json = { endpoint: 'https://push.example/abc', expirationTime: null, keys: { p256dh: 'BP', auth: 'au' } };
  assert.deepEqual(subscriptionBody(json), { platform: 'webpush', endpoint: 'https://push.example/abc', keys: { p256dh: 'BP', auth: 'au' } });
  assert.throws(() => subscriptionBody({ endpoint: 'https://push.example/abc', keys: {} }), /incomplete/);
});
