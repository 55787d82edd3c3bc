// Client-side state helpers: the per-conversation message window and the
// derived facts views need (names, ticks, activity time).

/**
 * The messages of one conversation that this page holds: every seq from lo
 * up to hi is present (hi is the cursor: the highest contiguous seq seen);
 * messages above hi wait for the gap below them to be filled.
 */
export class ConvWindow {
  constructor(hi = 0) {
    this.bySeq = new Map();
    this.hi = hi;
    this.lo = hi + 1;
    this.loadingOlder = false;
    this.sorted = null;
  }

  get hasOlder() { return this.lo > 1; }
  get size() { return this.bySeq.size; }
  get gap() { for (const s of this.bySeq.keys()) if (s > this.hi + 1) return true; return false; }
  get top() { let t = this.hi; for (const s of this.bySeq.keys()) if (s > t) t = s; return t; }

  /** Add a message; false for a duplicate (same seq) or one below the window. */
  insert(m) {
    const seq = m.seq;
    if (!Number.isInteger(seq) || seq < 1) return false;
    if (this.bySeq.has(seq)) return false;
    if (seq < this.lo) {
      if (seq !== this.lo - 1) return false; // older history only extends the window downwards
      this.lo = seq;
    } else if (seq <= this.hi) {
      return false; // already seen (the window was positioned above it)
    }
    this.bySeq.set(seq, m);
    while (this.bySeq.has(this.hi + 1)) this.hi++;
    this.sorted = null;
    return true;
  }

  /** Insert older history: any order, extending lo downwards. */
  insertOlder(messages) {
    const list = [...messages].sort((a, b) => b.seq - a.seq);
    let n = 0;
    for (const m of list) if (this.insert(m)) n++;
    return n;
  }

  messages() {
    if (!this.sorted) this.sorted = [...this.bySeq.values()].sort((a, b) => a.seq - b.seq);
    return this.sorted;
  }

  get(seq) { return this.bySeq.get(seq); }
}

export const memberOf = (conv, userId) => (conv && conv.members || []).find((m) => m.user_id === userId) || null;

export const otherMembers = (conv, me) => (conv.members || []).filter((m) => m.user_id !== me);

/** The other user of a direct conversation. */
export const peerOf = (conv, me) => conv.type === 'direct' ? (otherMembers(conv, me)[0] || null) : null;

/**
 * Receipt state of one of my messages: 'sent', 'delivered' (every other
 * member got it) or 'read' (every other member read it), plus counts.
 * Members who have left since (conv._former: user id → their last
 * watermarks) still count if they got the message: a receipt, once given,
 * is never taken back, and the counts are of the members at the time.
 */
export function receiptOf(conv, me, seq) {
  const former = conv._former || {};
  const others = otherMembers(conv, me).map((m) => {
    const f = former[m.user_id]; // left and came back: the best of both
    return f ? { ...m, read_seq: Math.max(m.read_seq, f.read_seq), delivered_seq: Math.max(m.delivered_seq, f.delivered_seq) } : m;
  });
  const current = new Set(others.map((m) => m.user_id));
  for (const f of Object.values(former)) if (!current.has(f.user_id) && f.user_id !== me && f.delivered_seq >= seq) others.push(f);
  let read = 0;
  let delivered = 0;
  for (const m of others) {
    if (m.read_seq >= seq) { read++; delivered++; } else if (m.delivered_seq >= seq) delivered++;
  }
  const n = others.length;
  const status = n > 0 && read === n ? 'read' : n > 0 && delivered === n ? 'delivered' : 'sent';
  return { status, read, delivered, total: n };
}

/** When the conversation was last active, for ordering the list. */
export function activityTime(conv, outboxTime = 0) {
  return Math.max(conv.last_message ? conv.last_message.timestamp : 0, conv.updated_at || 0, conv.created_at || 0, outboxTime);
}

/** 75_000 → "1:15". */
export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** 2_345_678 → "2.2 MB". */
export function fileSize(n) {
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1000) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  do { v /= 1000; u++; } while (v >= 1000 && u < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** The text of a message for previews and notifications. */
export function previewText(m) {
  if (!m) return '';
  switch (m.content_type) {
    case 'text': return typeof m.content === 'string' ? m.content : '';
    case 'image': return m.content ? `Photo: ${m.content}` : 'Photo';
    case 'video': return m.content ? `Video: ${m.content}` : 'Video';
    case 'voice': return m.media && m.media.duration_ms ? `Voice message (${duration(m.media.duration_ms)})` : 'Voice message';
    case 'file': return m.content || (m.media && m.media.name) || 'File';
    case 'e2ee': return 'Encrypted message';
    default: return 'Message';
  }
}
