// Renders a message's content. Text is inserted as text (never as HTML) with
// links made clickable. Other content types get a placeholder here: media,
// voice and end-to-end encryption add their renderers to RENDERERS.
import { h, icon } from '../util/dom.js';

const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]}]/gi;
const EMOJI_ONLY = /^(?:\p{Extended_Pictographic}(?:\uFE0F|\u200D\p{Extended_Pictographic}|\p{Emoji_Modifier})*\s*){1,3}$/u;

function linkify(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(h('a', { href: m[0], target: '_blank', rel: 'noopener noreferrer nofollow' }, m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function placeholder(iconName, label) {
  return h('span', { class: 'content-placeholder' }, icon(iconName), label);
}

export const RENDERERS = {
  text: (m) => {
    const text = typeof m.content === 'string' ? m.content : '';
    const big = text.length <= 24 && EMOJI_ONLY.test(text.trim());
    return h('div', { class: big ? 'text text-emoji' : 'text', dir: 'auto' }, linkify(text));
  },
  e2ee: () => placeholder('lock', 'Encrypted message (not supported in this browser yet)'),
  image: () => placeholder('paperclip', 'Photo'),
  video: () => placeholder('paperclip', 'Video'),
  voice: () => placeholder('paperclip', 'Voice message'),
  file: () => placeholder('paperclip', 'File'),
};

export function renderContent(m) {
  const r = RENDERERS[m.content_type] || (() => placeholder('info', 'Unsupported message'));
  return r(m);
}
