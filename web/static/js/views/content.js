// Renders a message's content. Text is inserted as text (never as HTML) with
// links made clickable. Media messages carry a `media` object (type, size,
// dimensions, name and a small data: URL thumbnail): a photo shows its
// thumbnail blurred at once and the full image once it is in view; videos
// play in place (poster: the thumbnail), voice notes in an <audio> player,
// other files as a card with a download link. An attachment still uploading
// (m.upload) shows its local preview with progress and a cancel button.
import { h, icon } from '../util/dom.js';
import { duration, fileSize } from '../store.js';

const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]}]/gi;
const EMOJI_ONLY = /^(?:\p{Extended_Pictographic}(?:\uFE0F|\u200D\p{Extended_Pictographic}|\p{Emoji_Modifier})*\s*){1,3}$/u;

// Box of a picture in the chat, in CSS px.
const BOX = { maxW: 330, maxH: 360, minW: 140 }; // and a min-height in app.css

// Full images this page has shown: a rebuilt bubble shows them at once.
const LOADED = new Set();

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

function caption(m) {
  const text = typeof m.content === 'string' ? m.content.trim() : '';
  return text ? h('div', { class: 'text media-caption', dir: 'auto' }, linkify(text)) : null;
}

function mediaOf(m) {
  return { content_type: '', size: 0, ...(m.media || {}), media_id: m.media_id || (m.media && m.media.media_id) || '' };
}

/** The display size of a picture of w × h, as CSS variables on el. */
function sizeBox(el, w, hgt, fallback = [4, 3]) {
  const [W, H] = w > 0 && hgt > 0 ? [w, hgt] : fallback;
  const scale = Math.min(1, BOX.maxW / W, BOX.maxH / H); // never upscaled past the image's own size
  const width = Math.round(Math.min(BOX.maxW, Math.max(BOX.minW, W * scale)));
  // CSSOM writes are allowed by the page's CSP (style attributes in markup are not).
  el.style.setProperty('--w', `${width}px`);
  el.style.setProperty('--ar', `${W} / ${H}`);
  return el;
}

/** Progress (uploading) or failure overlay of an attachment being sent. */
function uploadOverlay(m, env) {
  const up = m.upload;
  if (!up) return null;
  if (up.state === 'uploading') {
    return h('div', { class: 'upload-overlay' },
      progressRing(up),
      h('button', { type: 'button', class: 'upload-cancel', 'aria-label': 'Cancel upload', title: 'Cancel', onclick: (ev) => { ev.stopPropagation(); env.cancel(up.id); } }, icon('close')));
  }
  return h('div', { class: 'upload-overlay failed' }, h('span', { class: 'upload-failed-icon' }, icon('alert')));
}

function progressRing(up) {
  const pct = Math.round((up.progress || 0) * 100);
  const ring = h('span', {
    class: 'upload-ring', role: 'progressbar', 'aria-label': 'Uploading', 'aria-valuemin': '0', 'aria-valuemax': '100',
    'aria-valuenow': String(pct), dataset: { upload: up.id },
  });
  ring.innerHTML = '<svg viewBox="0 0 36 36" aria-hidden="true"><circle class="ring-bg" cx="18" cy="18" r="15.5"/><circle class="ring-fg" cx="18" cy="18" r="15.5" pathLength="100"/></svg>';
  setProgress(ring, up.progress || 0);
  return ring;
}

/** Move a progress ring or bar (found by data-upload) to fraction 0..1. */
export function setProgress(el, fraction) {
  const pct = Math.round(fraction * 100);
  el.style.setProperty('--p', String(Math.max(0, Math.min(100, fraction * 100))));
  el.setAttribute('aria-valuenow', String(pct));
}

function image(m, env) {
  const md = mediaOf(m);
  const name = md.name || '';
  const local = env.local(m);
  const full = local || env.url(md.media_id);
  const fig = sizeBox(h('figure', { class: 'media media-image' }), md.width, md.height);
  const thumb = md.thumbnail
    ? h('img', { class: 'media-thumb', src: md.thumbnail, alt: '', 'aria-hidden': 'true', draggable: 'false' })
    : h('span', { class: 'media-thumb media-thumb-empty', 'aria-hidden': 'true' }, icon('image'));
  let img = null;
  if (full) {
    img = h('img', { class: 'media-full', src: full, alt: name ? `Photo: ${name}` : 'Photo', decoding: 'async', draggable: 'false', loading: local ? null : 'lazy' });
    if (LOADED.has(full) || (img.complete && img.naturalWidth)) fig.classList.add('loaded');
    img.addEventListener('load', () => { LOADED.add(full); fig.classList.add('loaded'); });
    img.addEventListener('error', () => fig.classList.add('broken'));
  }
  const dims = md.width && md.height ? `, ${md.width} × ${md.height}` : '';
  const open = h('button', {
    type: 'button', class: 'media-open', 'aria-label': `Open photo${name ? ` ${name}` : ''}${dims}`,
    onclick: () => env.open(m),
  }, thumb, img);
  fig.append(open);
  const over = uploadOverlay(m, env);
  if (over) fig.append(over);
  return h('div', { class: 'media-wrap' }, fig, caption(m));
}

function video(m, env) {
  const md = mediaOf(m);
  const name = md.name || '';
  const src = env.local(m) || env.url(md.media_id);
  const fig = sizeBox(h('figure', { class: 'media media-video' }), md.width, md.height, [16, 9]);
  if (m.upload || !src) {
    // Uploading: the local file as a still, or the poster.
    if (md.thumbnail) fig.append(h('img', { class: 'media-thumb sharp', src: md.thumbnail, alt: '' }));
    else fig.append(h('span', { class: 'media-thumb media-thumb-empty', 'aria-hidden': 'true' }, icon('video')));
  } else {
    fig.append(h('video', {
      class: 'media-player', src, controls: true, preload: md.thumbnail ? 'none' : 'metadata', playsinline: true,
      poster: md.thumbnail || null, 'aria-label': `Video${name ? ` ${name}` : ''}${md.duration_ms ? `, ${duration(md.duration_ms)}` : ''}`,
    }));
  }
  if (md.duration_ms && (m.upload || !md.thumbnail)) fig.append(h('span', { class: 'media-badge' }, icon('video'), duration(md.duration_ms)));
  const over = uploadOverlay(m, env);
  if (over) fig.append(over);
  return h('div', { class: 'media-wrap' }, fig, caption(m));
}

function voice(m, env) {
  const md = mediaOf(m);
  const src = env.local(m) || env.url(md.media_id);
  const len = md.duration_ms ? duration(md.duration_ms) : '';
  const up = m.upload;
  return h('div', { class: 'media-wrap' },
    h('div', { class: 'voice-note' },
      h('span', { class: 'voice-icon', 'aria-hidden': 'true' }, icon('mic')),
      up && up.state === 'uploading'
        ? h('span', { class: 'voice-uploading' }, progressBar(up), cancelButton(up, env))
        : src ? h('audio', { class: 'voice-player', src, controls: true, preload: 'metadata', 'aria-label': `Voice message${len ? `, ${len}` : ''}` }) : null,
      len ? h('span', { class: 'voice-len' }, len) : null),
    caption(m));
}

function progressBar(up) {
  const bar = h('span', {
    class: 'upload-bar', role: 'progressbar', 'aria-label': 'Uploading', 'aria-valuemin': '0', 'aria-valuemax': '100',
    dataset: { upload: up.id },
  }, h('span', { class: 'upload-bar-fill' }));
  setProgress(bar, up.progress || 0);
  return bar;
}

function cancelButton(up, env) {
  return h('button', { type: 'button', class: 'icon-btn icon-btn-small upload-cancel-inline', 'aria-label': 'Cancel upload', title: 'Cancel', onclick: () => env.cancel(up.id) }, icon('close'));
}

function extOf(name, type) {
  const m = /\.([a-z0-9]{1,5})$/i.exec(name || '');
  if (m) return m[1].toUpperCase();
  const sub = (type || '').split('/')[1] || '';
  return sub && sub.length <= 5 ? sub.toUpperCase() : 'FILE';
}

function file(m, env) {
  const md = mediaOf(m);
  const name = md.name || 'File';
  const ext = extOf(md.name, md.content_type);
  const up = m.upload;
  const uploading = up && up.state === 'uploading';
  const href = !up && md.media_id ? env.url(md.media_id) : null;
  return h('div', { class: 'media-wrap' },
    h('div', { class: 'file-card' },
      h('span', { class: 'file-icon', 'aria-hidden': 'true' }, icon('file'), h('span', { class: 'file-ext' }, ext.slice(0, 4))),
      h('span', { class: 'file-text' },
        h('span', { class: 'file-name', title: name, dir: 'auto' }, name),
        uploading ? progressBar(up) : h('span', { class: 'file-meta' }, [ext, fileSize(md.size)].filter(Boolean).join(' · '))),
      uploading ? cancelButton(up, env)
        : href ? h('a', { class: 'icon-btn file-download', href, download: name, 'aria-label': `Download ${name}, ${fileSize(md.size)}`, title: 'Download' }, icon('download'))
          : null),
    caption(m));
}

export const RENDERERS = {
  text: (m) => {
    const text = typeof m.content === 'string' ? m.content : '';
    const big = text.length <= 24 && EMOJI_ONLY.test(text.trim());
    return h('div', { class: big ? 'text text-emoji' : 'text', dir: 'auto' }, linkify(text));
  },
  e2ee: () => placeholder('lock', 'Encrypted message (not supported in this browser yet)'),
  image,
  video,
  voice,
  file,
};

// What renderers get besides the message: media URLs and actions. Views pass
// their own (messages.js); this one renders without a client.
const NO_ENV = { url: () => null, local: () => null, open: () => {}, cancel: () => {} };

export function renderContent(m, env = NO_ENV) {
  const r = RENDERERS[m.content_type] || (() => placeholder('info', 'Unsupported message'));
  return r(m, env);
}

/** Whether a message is a photo edge to edge in its bubble (no caption; the time on the picture). */
export function isVisual(m) {
  return m.content_type === 'image' && !(typeof m.content === 'string' && m.content.trim());
}
