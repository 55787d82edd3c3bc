// The quote block of a reply: who wrote the quoted message and a line of
// it, or why it cannot be shown ("deleted", "not loaded"). A click jumps to
// the quoted message. Built to carry more states later (edited, a thread's
// root): quoteState() decides, quoteBlock() draws.
import { h, icon } from '../util/dom.js';
import { previewText } from '../store.js';
import { colorSlot } from '../util/format.js';

/**
 * What a reply to seq can show: {state: 'shown'|'deleted'|'missing', seq,
 * sender (user id), text}. window is the conversation's ConvWindow.
 */
export function quoteState(window, seq) {
  const q = window ? window.get(seq) : null;
  if (!q) return { state: 'missing', seq, sender: '', text: '' };
  if (q.deleted) return { state: 'deleted', seq, sender: q.sender_id, text: '' };
  const text = previewText(q).replace(/\s+/g, ' ').trim();
  return { state: 'shown', seq, sender: q.sender_id, text: text.length > 120 ? `${text.slice(0, 119)}…` : text };
}

const EMPTY = { deleted: 'This message was deleted', missing: 'Message not loaded' };

/** The block: quoteState() q, names(userId) → display name, onJump(seq). */
export function quoteBlock(q, names, onJump) {
  const who = q.sender ? names(q.sender) : '';
  const body = q.state === 'shown' ? q.text : EMPTY[q.state];
  return h('button', {
    type: 'button',
    class: `quote quote-${q.state}`,
    dataset: { quoteSeq: String(q.seq) },
    'aria-label': `Reply to ${who ? `${who}: ` : ''}${body}. Show the message`,
    onclick: (ev) => { ev.stopPropagation(); onJump(q.seq); },
  },
  who ? h('span', { class: `quote-sender sender c${colorSlot(q.sender)}` }, who) : null,
  h('span', { class: 'quote-text', dir: 'auto' }, q.state === 'shown' ? null : icon('info', 'quote-icon'), body));
}
