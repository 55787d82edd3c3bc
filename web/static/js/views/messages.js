// Builds the message list of a conversation as keyed items for reconcile():
// day separators, bubbles grouped by sender, ticks, and pending or failed
// messages from the outbox at the end.
import { h, icon } from '../util/dom.js';
import { clock, dayKey, dayLabel, fullTime, colorSlot, plural } from '../util/format.js';
import { receiptOf } from '../store.js';
import { renderContent, isVisual } from './content.js';
import { avatar } from './avatar.js';
import { quoteBlock, quoteState } from './quote.js';

const RUN_GAP = 5 * 60_000; // a pause this long starts a new sender group

const TICKS = {
  pending: { icon: 'clock', label: 'Sending' },
  sent: { icon: 'check', label: 'Sent' },
  delivered: { icon: 'checks', label: 'Delivered' },
  read: { icon: 'read', label: 'Read' }, // a shape of its own, not only a colour
  failed: { icon: 'alert', label: 'Not sent' },
};

export function failureText(e) {
  const err = e.error || {};
  if (err.upload) return uploadFailureText(err);
  switch (err.status) {
    case 429: return 'Not sent: you are sending messages too fast.';
    case 413: return 'Not sent: this message is too long (64 KB at most).';
    case 403: return 'Not sent: you can no longer send messages here.';
    case 404: return 'Not sent: this conversation no longer exists.';
    case 400: return `Not sent: the server refused it${err.message ? ` (${err.message})` : ''}.`;
    default: return `Not sent${err.message ? `: ${err.message}` : '.'}`;
  }
}

function uploadFailureText(err) {
  if (err.code === 'upload_lost') return 'Not sent: the upload was interrupted. Attach the file again.';
  switch (err.status) {
    case 0: return 'Upload failed: can’t reach the server.';
    case 413: return 'Not sent: this file is over the server’s size limit.';
    case 422: return `Not sent: the server refused this file${err.message ? ` (${err.message})` : ''}.`;
    case 503: return 'Not sent: this server does not accept files.';
    default: return `Upload failed${err.message ? `: ${err.message}` : '.'}`;
  }
}

/** The message shape of an outbox entry (an attachment's with its upload state). */
function outboxMessage(client, e) {
  const m = {
    sender_id: client.me, content: e.content, content_type: e.content_type, timestamp: e.timestamp,
    client_message_id: e.message_id, media_id: e.media_id, media: e.media,
  };
  if (e.state === 'uploading') m.upload = { id: e.message_id, state: 'uploading', progress: e.progress || 0 };
  else if (e.state === 'failed' && e.error && e.error.upload) m.upload = { id: e.message_id, state: 'failed' };
  return m;
}

/**
 * items(client, conv, actions) → [{key, sig, build}]
 * actions: {retry(id), discard(id), receipts(seq), jumpTo(seq)}
 */
export function messageItems(client, conv, actions, now = Date.now()) {
  const me = client.me;
  const id = conv.conversation_id;
  const group = conv.type === 'group';
  const w = client.windows.get(id);
  // A blocked user's messages in a group are hidden (direct ones cannot exist).
  const entries = (w ? w.messages() : []).filter((m) => !(group && client.isBlocked(m.sender_id))).map((m) => ({ m, out: null }));
  for (const e of client.outbox.forConversation(id)) {
    entries.push({ m: outboxMessage(client, e), out: e });
  }
  // What media renderers need: URLs (the token is a query parameter: <img> sends no headers) and actions.
  const att = client.attachments;
  const env = {
    url: (mediaId) => att.url(mediaId),
    local: (m) => att.localURL(m),
    open: (m) => actions.openMedia(m),
    cancel: (messageId) => actions.discard(messageId),
  };
  const items = [];
  let prevDay = '';
  // Group changes seen here ("Carol was added"), placed among the messages by time.
  const events = (conv._events || []).slice();
  const system = (upTo) => {
    while (events.length && events[0].at <= upTo) {
      const ev = events.shift();
      const day = dayKey(ev.at);
      if (day !== prevDay) {
        const label = dayLabel(ev.at, now);
        items.push({ key: `day:${day}`, sig: label, build: () => h('li', { class: 'day' }, h('span', null, label)) });
        prevDay = day;
      }
      items.push({ key: `sys:${ev.key}`, sig: ev.text, build: () => h('li', { class: 'sys', role: 'note' }, h('span', null, ev.text)) });
    }
  };
  for (let i = 0; i < entries.length; i++) {
    const { m, out } = entries[i];
    system(m.timestamp - 1);
    const prev = entries[i - 1] ? entries[i - 1].m : null;
    const next = entries[i + 1] ? entries[i + 1].m : null;
    const day = dayKey(m.timestamp);
    if (day !== prevDay) {
      const label = dayLabel(m.timestamp, now);
      items.push({ key: `day:${day}`, sig: label, build: () => h('li', { class: 'day' }, h('span', null, label)) });
      prevDay = day;
    }
    const sameRun = (a, b) => a && b && a.sender_id === b.sender_id && dayKey(a.timestamp) === dayKey(b.timestamp) && Math.abs(b.timestamp - a.timestamp) < RUN_GAP;
    const first = !sameRun(prev, m);
    const last = !sameRun(m, next);
    items.push(bubble(client, conv, m, out, { first, last, group, actions, env, now, w }));
  }
  system(Infinity);
  return items;
}

function bubble(client, conv, m, out, { first, last, group, actions, env, now, w }) {
  const own = m.sender_id === client.me;
  let status = '';
  let receipt = null;
  if (own) {
    if (out) status = out.state === 'failed' ? 'failed' : 'pending';
    else {
      receipt = receiptOf(conv, client.me, m.seq);
      status = receipt.status;
    }
  }
  const canRetry = out && out.state === 'failed' && (!out.error || !out.error.upload || client.attachments.canRetry(out));
  const retryReady = canRetry ? !out.retryAt || out.retryAt <= now : false;
  const wait = out && out.state === 'failed' && out.retryAt > now ? Math.ceil((out.retryAt - now) / 1000) : 0;
  // The display name with the @username beside it: display names are not
  // unique, so another user could call itself "alice".
  const handle = client.users.get(m.sender_id)?.username;
  const senderName = !own && group && first ? client.users.name(m.sender_id) + (handle ? ` @${handle}` : '') : '';
  const showAvatar = !own && group && last;
  const readBy = own && group && receipt && last && receipt.read > 0 ? receipt.read : 0;
  const key = own && m.client_message_id ? `c:${m.client_message_id}` : `s:${m.seq}`;
  const quote = Number.isInteger(m.reply_to_seq) && m.reply_to_seq > 0 ? quoteState(w, m.reply_to_seq) : null;
  const quoteSig = quote && [quote.state, quote.sender, quote.text, quote.sender && client.users.name(quote.sender)];
  const sig = JSON.stringify([m.seq, m.content, m.content_type, status, receipt && [receipt.read, receipt.delivered, receipt.total],
    first, last, senderName, showAvatar, readBy, out && out.error, retryReady, wait,
    m.media_id, m.media && [m.media.width, m.media.thumbnail ? m.media.thumbnail.length : 0], m.upload && m.upload.state, quoteSig]);
  const visual = isVisual(m);
  return {
    key,
    sig,
    build() {
      const t = TICKS[status];
      let ticks = null;
      if (own && t) {
        const label = group && receipt ? `${t.label}. Read by ${receipt.read} of ${receipt.total}, delivered to ${receipt.delivered}.` : t.label;
        // Sent, delivered and read differ in shape, say which on hover, and
        // open the message info on a click or tap (direct chats too).
        ticks = receipt
          ? h('button', { type: 'button', class: `ticks tick-${status}`, 'aria-label': `${label} Show details`, title: `${label} Click for message info.`, onclick: () => actions.receipts(m.seq) }, icon(t.icon))
          : h('span', { class: `ticks tick-${status}`, role: 'img', 'aria-label': label, title: label }, icon(t.icon));
      }
      const meta = h('span', { class: 'meta' },
        h('time', { datetime: new Date(m.timestamp).toISOString(), title: fullTime(m.timestamp) }, clock(m.timestamp)),
        ticks);
      const li = h('li', {
        class: `msg ${own ? 'own' : 'other'}${first ? ' first' : ''}${last ? ' last' : ''}`,
        dataset: { seq: m.seq ?? '', status: status || 'received', sender: m.sender_id },
      },
      !own && group ? h('span', { class: 'msg-avatar' }, showAvatar ? avatar(client.users.name(m.sender_id), m.sender_id, { size: 'xs' }) : null) : null,
      h('div', { class: 'msg-col' },
        h('div', { class: `bubble${status === 'failed' ? ' bubble-failed' : ''}${visual ? ' bubble-media' : ''}${m.media_id || m.upload ? ` bubble-${m.content_type}` : ''}` },
          senderName ? h('span', { class: `sender c${colorSlot(m.sender_id)}` }, senderName) : null,
          quote ? quoteBlock(quote, (u) => (u === client.me ? 'You' : client.users.name(u)), actions.jumpTo) : null,
          renderContent(m, env),
          meta),
        readBy ? h('button', { type: 'button', class: 'read-by', onclick: () => actions.receipts(m.seq) }, `Read by ${readBy}`) : null,
        out && out.state === 'failed' ? failure(out, retryReady, wait, actions, canRetry) : null));
      return li;
    },
  };
}

function failure(out, retryReady, wait, actions, showRetry) {
  return h('div', { class: 'msg-fail', role: 'alert' },
    icon('alert'),
    h('span', null, failureText(out), wait ? ` You can retry in ${plural(wait, 'second')}.` : ''),
    h('span', { class: 'msg-fail-actions' },
      showRetry ? h('button', { type: 'button', class: 'btn btn-small btn-ghost retry', disabled: !retryReady, onclick: () => actions.retry(out.message_id) }, icon('retry'), 'Retry') : null,
      h('button', { type: 'button', class: 'btn btn-small btn-ghost discard', onclick: () => actions.discard(out.message_id) }, 'Delete')));
}
