// The outbox: messages typed but not yet acknowledged, kept in localStorage so
// that neither a reconnect nor a reload loses them. Every retry reuses the
// entry's message_id, the server's idempotency key. An attachment's entry is
// 'uploading' until its file is uploaded (it then has a media_id and a media
// object, and is sent like any other message).

import { newMessageId } from './util/format.js';

export class Outbox {
  constructor(userId) {
    this.key = `parley.outbox.${userId}`;
    this.items = [];
    try {
      const raw = JSON.parse(localStorage.getItem(this.key) || '[]');
      if (Array.isArray(raw)) this.items = raw.filter((e) => e && e.message_id && e.conversation_id);
    } catch { /* corrupt: start empty */ }
    for (const e of this.items) e.sentAt = 0; // nothing is in flight after a reload
  }

  save() {
    try {
      localStorage.setItem(this.key, JSON.stringify(this.items.map(({ sentAt, progress, ...e }) => e)));
    } catch { /* storage full or disabled: keep in memory */ }
  }

  add(conversationId, content, contentType = 'text', extra = {}) {
    const e = {
      message_id: newMessageId(),
      conversation_id: conversationId,
      content,
      content_type: contentType,
      timestamp: Date.now(),
      state: 'pending', // pending | failed | uploading
      error: null, // {status, code, message, upload?}
      retryAt: 0,
      sentAt: 0,
      ...extra, // attachments: media_id, media {content_type, size, name, width?, height?, thumbnail?}
    };
    this.items.push(e);
    this.save();
    return e;
  }

  get(id) { return this.items.find((e) => e.message_id === id) || null; }
  forConversation(convId) { return this.items.filter((e) => e.conversation_id === convId); }
  pending() { return this.items.filter((e) => e.state === 'pending'); }
  get size() { return this.items.length; }

  remove(id) {
    const n = this.items.length;
    this.items = this.items.filter((e) => e.message_id !== id);
    if (this.items.length !== n) this.save();
    return this.items.length !== n;
  }

  fail(id, error, retryAt = 0) {
    const e = this.get(id);
    if (!e) return null;
    e.state = 'failed';
    e.error = error;
    e.retryAt = retryAt;
    this.save();
    return e;
  }

  retry(id) {
    const e = this.get(id);
    if (!e) return null;
    e.state = 'pending';
    e.error = null;
    e.retryAt = 0;
    e.sentAt = 0;
    this.save();
    return e;
  }

  clear() {
    this.items = [];
    try { localStorage.removeItem(this.key); } catch { /* ignore */ }
  }
}
