// Service worker: Web Push notifications (nothing else: no fetch handler, no
// caching). A classic script, not a module, so that every browser with Web
// Push can run it. Served at /sw.js, its scope is the whole app.
//
// The server's payload (internal/push/payload.go) never holds message text:
//   {"type":"message","conversation_id","title","body","count","badge","seq","tag"}
//   {"type":"clear","conversation_id","badge","seq","tag"}
// A message shows (or replaces) the conversation's one notification; a clear
// closes it, because the conversation was read on another device.
'use strict';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** The payload as JSON, or null when it is missing or not ours. */
function payloadOf(event) {
  if (!event.data) return null;
  try {
    const p = event.data.json();
    return p && typeof p === 'object' && typeof p.type === 'string' ? p : null;
  } catch {
    return null;
  }
}

function setBadge(n) {
  const nav = self.navigator;
  if (!Number.isInteger(n) || n < 0 || !nav || !nav.setAppBadge) return Promise.resolve();
  return (n > 0 ? nav.setAppBadge(n) : nav.clearAppBadge()).catch(() => {});
}

/** The notifications shown for a conversation. */
async function shownFor(tag, convId) {
  const list = await self.registration.getNotifications(tag ? { tag } : undefined);
  return list.filter((n) => tag || (n.data && n.data.conversation_id === convId));
}

async function onPush(p) {
  const convId = String(p.conversation_id || '');
  const tag = String(p.tag || convId);
  const seq = Number.isInteger(p.seq) ? p.seq : 0;
  if (p.type === 'clear') {
    // Read on another device up to seq: take the conversation's notification
    // away, unless it stands for messages after that.
    for (const n of await shownFor(tag, convId)) if (!seq || !(n.data && n.data.seq > seq)) n.close();
    await setBadge(p.badge);
    return;
  }
  if (p.type !== 'message') return; // a kind this worker does not know
  const shown = await shownFor(tag, convId);
  // Delivery is at least once: a repeat (or a late older push) must not
  // replace what is shown nor alert again.
  if (seq && shown.some((n) => n.data && n.data.seq >= seq)) return;
  const count = Number.isInteger(p.count) && p.count > 0 ? p.count : 1;
  await self.registration.showNotification(String(p.title || 'Parley'), {
    // Only what the server sent: who wrote and how many, never the text.
    body: String(p.body || (count > 1 ? `${count} new messages` : 'New message')),
    // One notification per conversation: a newer one replaces it ...
    tag: tag || undefined,
    // ... and alerts again (sound, vibration), since it stands for new messages.
    renotify: Boolean(tag && shown.length),
    icon: 'icon.svg',
    timestamp: Date.now(),
    data: { conversation_id: convId, seq, count },
  });
  await setBadge(p.badge);
}

self.addEventListener('push', (event) => {
  const p = payloadOf(event);
  if (!p) return;
  event.waitUntil(onPush(p));
});

/** Focus a tab of the app on the conversation, or open one. */
async function openConversation(convId) {
  const scope = new URL(self.registration.scope);
  const url = new URL(convId ? `#c=${encodeURIComponent(convId)}` : '', scope).href;
  // The app's own pages, not other pages of the origin (/healthz, media).
  const app = (c) => { const u = new URL(c.url); return u.pathname === scope.pathname || u.pathname === `${scope.pathname}index.html`; };
  const tabs = (await self.clients.matchAll({ type: 'window', includeUncontrolled: true })).filter(app);
  const tab = tabs.find((c) => c.focused) || tabs.find((c) => c.visibilityState === 'visible') || tabs[0];
  if (tab) {
    tab.postMessage({ type: 'open_conversation', conversation_id: convId });
    try { return await tab.focus(); } catch { return tab; } // focus() is allowed only in a real click
  }
  return self.clients.openWindow(url);
}

self.addEventListener('notificationclick', (event) => {
  const n = event.notification;
  n.close();
  const convId = n.data && n.data.conversation_id;
  event.waitUntil(openConversation(convId || ''));
});
