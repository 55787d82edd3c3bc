// The client engine: state of one logged-in device and the protocol around it
// (sync with cursors, gap filling, duplicate dropping, outbox and acks,
// receipts, typing, presence). Views read its state and call its methods; it
// announces changes with an 'update' event carrying the set of dirty topics:
//   'list' (conversation list), 'conv:<id>' (one conversation and its
//   messages), 'presence', 'users', 'conn', 'me', 'push' (Web Push state).
// It also emits 'incoming' ({conv, message, backlog}) for each new message
// from someone else, 'notice' ({text}) and 'ended' ({reason}).

import { createApi } from './api.js';
import { Socket } from './socket.js';
import { Outbox } from './outbox.js';
import { Users } from './users.js';
import { ConvWindow, memberOf, peerOf, activityTime } from './store.js';
import { Attachments } from './attachments.js';
import { Push } from './push.js';

const SYNC_LIMIT = 100; // messages per conversation asked for in `sync`
const TYPING_TTL = 5000; // others' typing expires without a refresh
const GAP_WAIT = 800; // a gap may close by itself (ack and push race): wait before fetching
const RESEND_AFTER = 15000; // resend an unacknowledged message after this long
const LOCAL_SIZE_LIMIT = 256 * 1024; // bigger texts are refused without sending (the server's limit is 64 KiB)

export class Client extends EventTarget {
  constructor(session) {
    super();
    this.session = session; // {token, user_id, device_id, username, display_name}
    this.me = session.user_id;
    this.api = createApi(() => this.session.token, () => this.sessionEnded('expired'));
    this.users = new Users(this.api, () => this.changed('users', 'list'));
    this.outbox = new Outbox(this.me);
    this.attachments = new Attachments(this); // uploads of files being sent
    this.push = new Push(this.api, session, () => this.changed('push')); // Web Push for this device
    this.convs = new Map(); // id → Conversation (+ _snap, _addedAt)
    this.windows = new Map(); // id → ConvWindow
    this.presence = new Map(); // user id → {status, last_seen}
    this.typing = new Map(); // conversation id → Map(user id → expiresAt)
    this.activeId = null;
    this.listLoaded = false;
    this.syncing = false;
    this.ended = false;
    this.conn = { state: 'connecting', retryAt: 0, synced: false };
    this.dirty = new Set();
    this.chain = Promise.resolve();
    this.receiptQueue = new Set();
    this.gapTimers = new Map();
    this.filling = new Map();
    this.fetching = new Map();
    this.subscribed = new Set();
    this.localChanges = new Map(); // conversation id → group changes made here and not answered yet
    const wsURL = () => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/ws?token=${encodeURIComponent(this.session.token)}`;
    this.socket = new Socket(wsURL, {
      onFrame: (f) => { this.chain = this.chain.then(() => this.handle(f)).catch((e) => console.error('parley: frame', f.type, e)); },
      onState: (state, info) => this.onSocketState(state, info),
      onClose: (code, wasReady) => this.onSocketClose(code, wasReady),
    });
    this.onVisibility = () => {
      if (document.visibilityState === 'visible') {
        this.socket.reconnectNow();
        if (this.activeId) {
          this.queueReceipts(this.activeId);
          this.push.dismiss(this.activeId);
        }
      }
    };
    this.onOnline = () => { this.socket.reconnectNow(); this.changed('conn'); };
    this.onOffline = () => this.changed('conn');
  }

  // ---- lifecycle -------------------------------------------------------

  start() {
    const s = this.session;
    this.users.put({ user_id: s.user_id, username: s.username, display_name: s.display_name });
    this.api.me().then((u) => {
      this.users.put(u);
      Object.assign(this.session, { username: u.username, display_name: u.display_name });
      this.changed('me');
    }).catch(() => {});
    this.api.blocks().then((ids) => { this.blocked = new Set(ids); this.changed('blocks', 'list'); }).catch(() => {});
    this.socket.start();
    this.push.start();
    this.timers = [
      setInterval(() => this.resendStale(), 5000),
      setInterval(() => this.changed('presence'), 30_000), // "last seen 5 min ago" moves on
    ];
    document.addEventListener('visibilitychange', this.onVisibility);
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
  }

  stop() {
    this.socket.stop();
    for (const t of this.timers || []) clearInterval(t);
    for (const t of this.gapTimers.values()) clearTimeout(t);
    clearTimeout(this.receiptTimer);
    document.removeEventListener('visibilitychange', this.onVisibility);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
  }

  sessionEnded(reason) {
    if (this.ended) return;
    this.ended = true;
    this.stop();
    this.push.ended(); // the token is dead: this browser stops receiving pushes
    this.dispatchEvent(new CustomEvent('ended', { detail: { reason } }));
  }

  async logout() {
    // While the token still works: delete the push subscription on the server
    // and unsubscribe the browser (the server also forgets the device's
    // subscriptions on logout; the browser's must go too).
    await this.push.logout();
    try { await this.api.logout(); } catch { /* the token is dropped locally anyway */ }
    for (const e of this.outbox.items) this.attachments.cancel(e.message_id);
    this.outbox.clear();
    this.users.clear();
    this.sessionEnded('logout');
  }

  // ---- change notification ------------------------------------------------

  changed(...topics) {
    for (const t of topics) this.dirty.add(t);
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      const dirty = this.dirty;
      this.dirty = new Set();
      this.dispatchEvent(new CustomEvent('update', { detail: dirty }));
    });
  }

  notice(text) { this.dispatchEvent(new CustomEvent('notice', { detail: { text } })); }

  // ---- socket ------------------------------------------------------------

  onSocketState(state, info) {
    this.conn = { state, retryAt: info && info.retryAt || 0, synced: false };
    this.changed('conn');
  }

  onSocketClose(code, wasReady) {
    this.syncing = false;
    this.typing.clear();
    // Without a socket we hear of no presence change: what we knew may be
    // stale, so it is unknown until the next connection subscribes again
    // (the server then sends the current state).
    this.presence.clear();
    this.changed('presence');
    if (code === 4440) { this.sessionEnded('expired'); return; }
    if (code === 1009) {
      // A frame over the server's limit: fail the big messages instead of resending them forever.
      for (const e of this.outbox.pending()) {
        if (new TextEncoder().encode(e.content).length > 65536) this.outbox.fail(e.message_id, { status: 413, code: 'too_large', message: 'message too large' });
      }
    }
    // A refused upgrade (401) looks like a network error to a browser: ask REST.
    if (!wasReady) this.api.me().catch(() => {});
    this.changed('conn', 'list', ...[...this.convs.keys()].map((id) => `conv:${id}`));
  }

  async handle(f) {
    if (this.ended) return;
    switch (f.type) {
      case 'ready': return this.onReady(f);
      case 'new_message': return this.onMessage(f);
      case 'ack': return this.onAck(f);
      case 'message_status': return this.onStatus(f);
      case 'typing': return this.onTyping(f);
      case 'presence': return this.onPresence(f);
      case 'sync_complete': return this.onSyncComplete(f);
      case 'conversation_updated': return this.onConversationUpdated(f);
      case 'error': return this.onErrorFrame(f);
      default: return undefined; // newer servers may send more: ignore
    }
  }

  async onReady() {
    this.subscribed.clear();
    if (!this.listLoaded) {
      try {
        await this.loadConversations();
      } catch (e) {
        if (e.status !== 401) this.socket.closed(1006); // retry the whole connection
        return;
      }
    } else {
      this.loadConversations().catch(() => {});
    }
    this.syncing = true;
    this.socket.send({ type: 'sync', cursors: this.cursors(), limit: SYNC_LIMIT });
    const peers = [];
    for (const c of this.convs.values()) { const p = peerOf(c, this.me); if (p) peers.push(p.user_id); }
    this.subscribePresence(peers);
    this.flushOutbox();
  }

  /** Per conversation, the highest contiguous seq this page has seen. */
  cursors() {
    const out = {};
    for (const id of this.convs.keys()) {
      const w = this.windows.get(id);
      if (w) out[id] = w.hi;
    }
    return out;
  }

  onSyncComplete(f) {
    this.syncing = false;
    for (const [id, last] of Object.entries(f.conversations || {})) {
      const c = this.convs.get(id);
      if (!c) { this.fetchConversation(id); continue; }
      if (last > c.last_seq) c.last_seq = last;
      const w = this.windows.get(id);
      if (w && w.hi < last) this.fillGap(id);
    }
    for (const id of f.truncated || []) this.fillGap(id);
    for (const id of this.convs.keys()) this.receiptQueue.add(id);
    this.queueReceipts();
    this.conn = { ...this.conn, synced: true };
    this.changed('conn', 'list');
  }

  // ---- conversations -------------------------------------------------------

  async loadConversations() {
    const asked = Date.now();
    const list = await this.api.conversations();
    const seen = new Set();
    for (const c of list) {
      seen.add(c.conversation_id);
      this.mergeConversation(c, true);
    }
    for (const [id, c] of this.convs) if (!seen.has(id) && c._addedAt < asked) this.dropConversation(id, '');
    this.listLoaded = true;
    this.changed('list');
  }

  fetchConversation(id) {
    if (this.fetching.has(id)) return this.fetching.get(id);
    const p = this.api.conversation(id).then((c) => this.mergeConversation(c, true)).catch((e) => {
      if (e.status === 403 || e.status === 404) this.dropConversation(id, '');
      return null;
    }).finally(() => this.fetching.delete(id));
    this.fetching.set(id, p);
    return p;
  }

  /**
   * Take a server Conversation. authoritative: its unread_count is this
   * user's (REST), not the shared copy of a conversation_updated frame.
   */
  mergeConversation(srv, authoritative) {
    const id = srv.conversation_id;
    const mine = memberOf(srv, this.me);
    if (!mine) { this.dropConversation(id, ''); return null; }
    let c = this.convs.get(id);
    if (!c) {
      c = { ...srv, members: srv.members.map((m) => ({ ...m })), _addedAt: Date.now() };
      this.convs.set(id, c);
      if (!this.windows.has(id)) {
        // Ask sync for what this user's devices have not been given yet (at most SYNC_LIMIT);
        // older history loads from REST when the chat is opened.
        const hi = Math.min(srv.last_seq, Math.max(mine.delivered_seq, srv.last_seq - SYNC_LIMIT));
        this.windows.set(id, new ConvWindow(hi));
      }
      const peer = peerOf(c, this.me);
      if (peer) this.subscribePresence([peer.user_id]);
    } else {
      const old = new Map(c.members.map((m) => [m.user_id, m]));
      // Members who leave keep the receipts they gave: a message they read
      // stays read (store.js receiptOf).
      const stay = new Set(srv.members.map((m) => m.user_id));
      for (const m of c.members) {
        if (stay.has(m.user_id) || m.user_id === this.me) continue;
        const f = (c._former ||= {})[m.user_id] || { user_id: m.user_id, delivered_seq: 0, read_seq: 0 };
        c._former[m.user_id] = { user_id: m.user_id, delivered_seq: Math.max(f.delivered_seq, m.delivered_seq), read_seq: Math.max(f.read_seq, m.read_seq) };
      }
      c.members = srv.members.map((m) => {
        const o = old.get(m.user_id);
        return o ? { ...m, delivered_seq: Math.max(m.delivered_seq, o.delivered_seq), read_seq: Math.max(m.read_seq, o.read_seq) } : { ...m };
      });
      c.type = srv.type;
      c.name = srv.name;
      c.created_at = srv.created_at;
      c.updated_at = Math.max(c.updated_at || 0, srv.updated_at || 0);
      if (srv.last_seq >= c.last_seq) {
        c.last_seq = srv.last_seq;
        if (srv.last_message) c.last_message = srv.last_message;
      }
    }
    if (authoritative || !c._snap) {
      // The server counted unread against its own read_seq: keep both together.
      c._snap = { S: srv.last_seq, U: authoritative ? srv.unread_count : 0, R: mine.read_seq };
    }
    for (const m of c.members) this.users.get(m.user_id);
    this.changed('list', `conv:${id}`);
    return c;
  }

  dropConversation(id, reason) {
    const c = this.convs.get(id);
    if (!c) return;
    this.convs.delete(id);
    this.windows.delete(id);
    this.typing.delete(id);
    // Unsent messages there can no longer be sent.
    for (const e of this.outbox.forConversation(id)) {
      this.attachments.cancel(e.message_id);
      this.outbox.remove(e.message_id);
    }
    if (this.activeId === id) this.activeId = null;
    if (reason) this.notice(reason);
    this.changed('list', `conv:${id}`, 'active');
  }

  onConversationUpdated(f) {
    const srv = f.conversation;
    if (!srv) return;
    const id = f.conversation_id || srv.conversation_id;
    const known = this.convs.get(id);
    if (!memberOf(srv, this.me)) {
      const name = known ? this.title(known) : 'the group';
      this.dropConversation(id, known && f.change === 'member_removed' ? `You are no longer a member of ${name}.` : '');
      return;
    }
    if (known) this.noteChanges(known, srv);
    const merged = this.mergeConversation(srv, false);
    if (!known && merged && f.change === 'created' && srv.type === 'direct' && !(srv.last_seq > 0)) merged._quiet = true;
    if (!known) this.fetchConversation(id); // for this user's own unread count
  }

  /**
   * Group changes as lines in the chat ("Carol was added", "Bob is no longer in the group"): the
   * difference between what we knew and a conversation_updated. The frame
   * does not name who made the change; changes made here say "You ...".
   * Kept in memory only (the server does not store them yet).
   */
  noteChanges(known, srv) {
    if (known.type !== 'group' || this.localChanges.get(known.conversation_id)) return; // that one writes its own line
    const name = (u) => this.users.name(u, 'Someone');
    const had = new Set(known.members.map((m) => m.user_id));
    const has = new Set(srv.members.map((m) => m.user_id));
    for (const u of has) if (!had.has(u)) this.noteEvent(known.conversation_id, `${name(u)} was added`);
    for (const u of had) if (!has.has(u)) this.noteEvent(known.conversation_id, `${name(u)} is no longer in the group`);
    if (srv.name && srv.name !== known.name) this.noteEvent(known.conversation_id, `The group was renamed “${srv.name}”`);
  }

  /** Add a system line to a conversation's timeline (views/messages.js). */
  noteEvent(convId, text) {
    const c = this.convs.get(convId);
    if (!c) return;
    const at = Math.max(Date.now(), c.last_message ? c.last_message.timestamp + 1 : 0);
    (c._events ||= []).push({ at, text, key: `${at}:${c._events.length}` });
    this.changed('list', `conv:${convId}`);
  }

  /** Unread messages: the server's count at the last snapshot, moved on locally. */
  unreadOf(c) {
    const me = memberOf(c, this.me);
    const w = this.windows.get(c.conversation_id);
    const read = me ? me.read_seq : 0;
    if (read >= c.last_seq) return 0;
    const { S, U, R } = c._snap || { S: 0, U: 0, R: 0 };
    let n = 0;
    if (read < S) {
      if (read <= R) n = U;
      else if (w && w.lo <= read + 1 && w.hi >= S) {
        for (let s = read + 1; s <= S; s++) { const m = w.get(s); if (m && m.sender_id !== this.me) n++; }
      } else n = Math.min(U, S - read);
    }
    if (w) {
      const list = w.messages();
      for (let i = list.length - 1; i >= 0 && list[i].seq > Math.max(S, read); i--) if (list[i].sender_id !== this.me) n++;
    }
    return n;
  }

  title(c) {
    if (!c) return '';
    if (c.type === 'group') return c.name || 'Group';
    const p = peerOf(c, this.me);
    return p ? this.users.name(p.user_id, 'Loading…') : 'Direct chat';
  }

  /**
   * Conversations for the list, most recently active first. A direct chat
   * someone else just started with us (conversation_updated "created", no
   * message yet: _quiet) is listed with its first message, not as an empty
   * "Say hello"; ours, an open one and one with unsent messages always are.
   */
  sortedConversations() {
    const outboxAt = new Map();
    for (const e of this.outbox.items) outboxAt.set(e.conversation_id, Math.max(outboxAt.get(e.conversation_id) || 0, e.timestamp));
    const listed = (c) => !c._quiet || c.last_seq > 0 || c._startedHere || c.conversation_id === this.activeId || outboxAt.has(c.conversation_id);
    return [...this.convs.values()].filter(listed).sort((a, b) =>
      activityTime(b, outboxAt.get(b.conversation_id)) - activityTime(a, outboxAt.get(a.conversation_id)));
  }

  // ---- messages --------------------------------------------------------------

  isReading(id) {
    return id != null && id === this.activeId && document.visibilityState === 'visible';
  }

  onMessage(m) {
    const id = m.conversation_id;
    if (!id || !Number.isInteger(m.seq)) return;
    let w = this.windows.get(id);
    if (!w) { w = new ConvWindow(m.seq - 1); this.windows.set(id, w); }
    const c = this.convs.get(id);
    if (!c) this.fetchConversation(id);
    if (m.sender_id === this.me && m.client_message_id && this.outbox.remove(m.client_message_id)) {
      this.changed(`conv:${id}`); // our own message, acked while we were away
    }
    if (!w.insert(m)) return; // duplicate, dropped by seq
    this.clearTyping(id, m.sender_id);
    if (c) {
      const snapS = c._snap ? c._snap.S : 0;
      if (m.seq >= c.last_seq) { c.last_seq = m.seq; c.last_message = m; }
      const mine = memberOf(c, this.me);
      if (m.sender_id !== this.me && m.seq > snapS && (!mine || m.seq > mine.read_seq)) {
        this.dispatchEvent(new CustomEvent('incoming', { detail: { conv: c, message: m, backlog: this.syncing } }));
      }
    }
    if (w.gap) this.scheduleGapFill(id);
    this.queueReceipts(id);
    this.changed('list', `conv:${id}`);
  }

  scheduleGapFill(id) {
    if (this.gapTimers.has(id)) return;
    this.gapTimers.set(id, setTimeout(() => {
      this.gapTimers.delete(id);
      const w = this.windows.get(id);
      if (w && w.gap) this.fillGap(id);
    }, GAP_WAIT));
  }

  /** Fetch with after= until the window reaches the conversation's last seq. */
  fillGap(id) {
    if (this.filling.has(id)) { this.filling.set(id, true); return; }
    this.filling.set(id, false);
    (async () => {
      for (let round = 0; round < 100; round++) {
        const w = this.windows.get(id);
        const c = this.convs.get(id);
        if (!w || this.ended) break;
        const target = Math.max(w.top, c ? c.last_seq : 0);
        if (w.hi >= target) {
          if (!this.filling.get(id)) break;
          this.filling.set(id, false); // asked again meanwhile: look once more
          continue;
        }
        const res = await this.api.messages(id, { after: w.hi, limit: 200 });
        for (const m of res.messages || []) this.onMessage(m);
        if (!res.messages || !res.messages.length) break;
      }
    })().catch((e) => {
      if (e.status === 403 || e.status === 404) this.dropConversation(id, '');
    }).finally(() => this.filling.delete(id));
  }

  /** Load a page of older history; resolves true if anything was added. */
  async loadOlder(id) {
    const w = this.windows.get(id);
    if (!w || w.loadingOlder || !w.hasOlder || w.noOlder) return false;
    w.loadingOlder = true;
    w.olderError = null;
    this.changed(`conv:${id}`);
    try {
      const res = await this.api.messages(id, { before: w.lo, limit: 50 });
      const n = w.insertOlder(res.messages || []);
      if (!res.has_more || !n) w.noOlder = !res.has_more;
      return n > 0;
    } catch (e) {
      w.olderError = e;
      return false;
    } finally {
      w.loadingOlder = false;
      this.changed(`conv:${id}`);
    }
  }

  open(id) {
    if (this.activeId === id) return;
    const prev = this.activeId;
    this.activeId = id;
    if (prev) this.changed(`conv:${prev}`);
    if (id) {
      const w = this.windows.get(id);
      if (w && w.size < 30 && w.hasOlder) this.loadOlder(id);
      this.queueReceipts(id);
      if (document.visibilityState === 'visible') this.push.dismiss(id); // read here: its notification is stale
    }
    this.changed('list', 'active', id ? `conv:${id}` : 'none');
  }

  // ---- sending -----------------------------------------------------------

  send(convId, content) {
    const e = this.outbox.add(convId, content, 'text');
    if (new TextEncoder().encode(content).length > LOCAL_SIZE_LIMIT) {
      // Far over the server's 64 KiB: a frame this big would get the socket
      // closed (1009) on every retry. Fail it here as the server would (413).
      this.outbox.fail(e.message_id, { status: 413, code: 'too_large', message: 'message too large' });
    } else {
      this.sendEntry(e);
    }
    this.changed('list', `conv:${convId}`);
    return e;
  }

  /** Send a file (photo, video, voice note, document): uploaded first, then sent. */
  sendFile(convId, file, caption = '') { return this.attachments.send(convId, file, caption); }

  sendEntry(e) {
    if (e.state === 'uploading') return; // sent when its upload completes
    const ok = this.socket.send({
      type: 'send_message',
      message_id: e.message_id,
      conversation_id: e.conversation_id,
      content: e.content,
      content_type: e.content_type,
      media_id: e.media_id || undefined,
      timestamp: e.timestamp,
    });
    if (ok) e.sentAt = Date.now();
  }

  flushOutbox() {
    for (const e of this.outbox.pending()) this.sendEntry(e);
  }

  resendStale() {
    if (!this.socket.ready) return;
    const now = Date.now();
    for (const e of this.outbox.pending()) if (!e.sentAt || now - e.sentAt > RESEND_AFTER) this.sendEntry(e);
  }

  retry(messageId) {
    const big = this.outbox.get(messageId);
    if (big && new TextEncoder().encode(big.content).length > LOCAL_SIZE_LIMIT) return; // still too large
    if (big && big.error && big.error.upload) {
      // The upload failed: resume it (where the server left off) if the file is still here.
      if (!this.attachments.canRetry(big)) return;
      this.attachments.start(big);
      this.changed('list', `conv:${big.conversation_id}`);
      return;
    }
    const e = this.outbox.retry(messageId);
    if (!e) return;
    this.sendEntry(e);
    this.changed('list', `conv:${e.conversation_id}`);
  }

  /** Delete an unsent message; an attachment's upload is cancelled (and deleted on the server). */
  discard(messageId) {
    const e = this.outbox.get(messageId);
    if (!e) return;
    this.attachments.cancel(messageId);
    this.outbox.remove(messageId);
    this.changed('list', `conv:${e.conversation_id}`);
  }

  onAck(a) {
    const e = this.outbox.get(a.message_id);
    if (!e) return; // a repeated ack: already settled
    this.outbox.remove(a.message_id);
    this.onMessage({
      message_id: a.server_message_id,
      client_message_id: a.message_id,
      conversation_id: a.conversation_id,
      seq: a.seq,
      sender_id: this.me,
      sender_device_id: this.session.device_id,
      content: e.content,
      content_type: e.content_type,
      media_id: e.media_id,
      media: e.media_id && e.media ? { media_id: e.media_id, ...e.media } : undefined,
      timestamp: a.timestamp,
    });
    this.changed('list', `conv:${a.conversation_id}`);
  }

  onErrorFrame(f) {
    if (f.status === 440) { this.sessionEnded('expired'); return; }
    const e = f.ref ? this.outbox.get(f.ref) : null;
    if (!e) {
      if (this.syncing && !f.ref && f.status >= 500) {
        this.socket.closed(1006); // the sync failed: reconnect and sync again
        return;
      }
      if (f.status !== 429) console.warn('parley: server error', f.status, f.code, f.message);
      return;
    }
    if (f.status >= 500) {
      e.sentAt = Date.now() - RESEND_AFTER + 3000; // not stored: try again in a few seconds
      return;
    }
    const retryAt = f.status === 429 ? Date.now() + (Number(f.retry_after) || 1000) : 0;
    this.outbox.fail(e.message_id, { status: f.status, code: f.code, message: f.message }, retryAt);
    this.changed('list', `conv:${e.conversation_id}`);
  }

  // ---- receipts ------------------------------------------------------------

  queueReceipts(id) {
    if (id) this.receiptQueue.add(id);
    clearTimeout(this.receiptTimer);
    this.receiptTimer = setTimeout(() => this.flushReceipts(), 100);
  }

  /** Send delivered/read watermarks that moved forward (never backward). */
  flushReceipts() {
    if (!this.socket.ready) return; // kept queued: sent after the next sync
    for (const id of this.receiptQueue) {
      const c = this.convs.get(id);
      const w = this.windows.get(id);
      const mine = c && memberOf(c, this.me);
      if (!mine || !w || w.hi < 1) continue;
      const top = Math.min(w.hi, c.last_seq || w.hi);
      if (this.isReading(id)) {
        if (top > mine.read_seq) {
          this.socket.send({ type: 'message_status', conversation_id: id, seq: top, status: 'read' });
          mine.read_seq = top;
          mine.delivered_seq = Math.max(mine.delivered_seq, top);
          this.changed('list', `conv:${id}`);
        }
      } else if (top > mine.delivered_seq) {
        this.socket.send({ type: 'message_status', conversation_id: id, seq: top, status: 'delivered' });
        mine.delivered_seq = top;
      }
    }
    this.receiptQueue.clear();
  }

  onStatus(f) {
    const c = this.convs.get(f.conversation_id);
    const m = c && memberOf(c, f.user_id);
    if (!m) return;
    if (f.status === 'read') {
      m.read_seq = Math.max(m.read_seq, f.seq);
      m.delivered_seq = Math.max(m.delivered_seq, f.seq);
    } else if (f.status === 'delivered') {
      m.delivered_seq = Math.max(m.delivered_seq, f.seq);
    }
    this.changed('list', `conv:${f.conversation_id}`);
  }

  // ---- typing and presence -------------------------------------------------

  sendTyping(convId, state) {
    return this.socket.send({ type: 'typing', conversation_id: convId, state });
  }

  onTyping(f) {
    if (f.user_id === this.me || !this.convs.has(f.conversation_id)) return;
    let m = this.typing.get(f.conversation_id);
    if (f.state === 'typing') {
      if (!m) this.typing.set(f.conversation_id, (m = new Map()));
      m.set(f.user_id, Date.now() + TYPING_TTL);
      setTimeout(() => this.expireTyping(f.conversation_id), TYPING_TTL + 50);
    } else if (m) {
      m.delete(f.user_id);
    }
    this.changed('list', `conv:${f.conversation_id}`);
  }

  expireTyping(convId) {
    const m = this.typing.get(convId);
    if (!m) return;
    const now = Date.now();
    let changed = false;
    for (const [u, t] of m) if (t <= now) { m.delete(u); changed = true; }
    if (changed) this.changed('list', `conv:${convId}`);
  }

  clearTyping(convId, userId) {
    const m = this.typing.get(convId);
    if (m && m.delete(userId)) this.changed('list', `conv:${convId}`);
  }

  /** User ids typing in a conversation now. */
  typingIn(convId) {
    const m = this.typing.get(convId);
    if (!m) return [];
    const now = Date.now();
    return [...m].filter(([, t]) => t > now).map(([u]) => u);
  }

  subscribePresence(ids) {
    if (!this.socket.ready) return;
    const fresh = [...new Set(ids)].filter((id) => id && id !== this.me && !this.subscribed.has(id));
    if (!fresh.length) return;
    for (const id of fresh) this.subscribed.add(id);
    this.socket.send({ type: 'presence_subscribe', user_ids: fresh.slice(0, 1000) });
  }

  onPresence(f) {
    this.presence.set(f.user_id, { status: f.status, last_seen: f.last_seen });
    this.changed('presence', 'list');
  }

  // ---- directory and groups -------------------------------------------------

  async findUser(username) {
    const name = username.trim().replace(/^@/, '').toLowerCase();
    if (!name) throw new Error('Enter a username.');
    const [u] = await this.api.findUser(name);
    if (!u) throw new Error(`No user named “${name}”.`);
    this.users.put(u);
    return u;
  }

  async startDirect(username) {
    const u = await this.findUser(username);
    if (u.user_id === this.me) throw new Error("That's you. Pick someone else.");
    const c = await this.api.createDirect(u.user_id);
    const merged = this.mergeConversation(c, true);
    merged._startedHere = true;
    return merged.conversation_id;
  }

  async createGroup(name, userIds) {
    const ids = [...new Set(userIds)].filter((id) => id !== this.me);
    const c = await this.api.createGroup(name.trim(), ids);
    return this.mergeConversation(c, true).conversation_id;
  }

  /**
   * Run a group change made here: its conversation_updated may arrive before
   * the answer, so the line it leaves in the chat ("You added Carol") is
   * written here, from the state before the change, and not from the frame.
   */
  async localChange(convId, fn) {
    this.localChanges.set(convId, (this.localChanges.get(convId) || 0) + 1);
    try {
      return await fn();
    } finally {
      const n = this.localChanges.get(convId) - 1;
      if (n > 0) this.localChanges.set(convId, n); else this.localChanges.delete(convId);
    }
  }

  async addMembers(convId, userIds) {
    const before = this.convs.get(convId);
    const had = new Set(before ? before.members.map((m) => m.user_id) : []);
    const c = await this.localChange(convId, () => this.api.addMembers(convId, [...new Set(userIds)]));
    this.mergeConversation(c, false);
    const added = c.members.filter((m) => !had.has(m.user_id)).map((m) => this.users.name(m.user_id, 'someone'));
    if (added.length) this.noteEvent(convId, `You added ${added.join(', ')}`);
  }

  async removeMember(convId, userId) {
    const gone = memberOf(this.convs.get(convId), userId);
    await this.localChange(convId, () => this.api.removeMember(convId, userId));
    if (userId === this.me) {
      this.dropConversation(convId, '');
      return;
    }
    const c = this.convs.get(convId);
    if (c) {
      if (gone) (c._former ||= {})[userId] = { user_id: userId, delivered_seq: gone.delivered_seq, read_seq: gone.read_seq };
      c.members = c.members.filter((m) => m.user_id !== userId);
      if (gone) this.noteEvent(convId, `You removed ${this.users.name(userId, 'someone')}`);
      this.changed('list', `conv:${convId}`);
    }
  }

  /** Blocking: the users the caller blocks; their group messages are hidden. */
  isBlocked(userId) { return Boolean(this.blocked && this.blocked.has(userId)); }

  async setBlocked(userId, on) {
    await (on ? this.api.block(userId) : this.api.unblock(userId));
    if (!this.blocked) this.blocked = new Set();
    if (on) this.blocked.add(userId); else this.blocked.delete(userId);
    this.changed('blocks', 'list');
  }

  async rename(convId, name) {
    const before = this.convs.get(convId);
    const old = before ? before.name : '';
    const c = await this.localChange(convId, () => this.api.renameGroup(convId, name.trim()));
    this.mergeConversation(c, false);
    if (c.name !== old) this.noteEvent(convId, `You renamed the group “${c.name}”`);
  }
}
