// The photo viewer: a modal <dialog> (focus trapped, Escape closes) showing
// the full image over the blurred thumbnail until it has loaded, with the
// file name, size, a download link and the caption.
import { h, icon } from '../util/dom.js';
import { fileSize } from '../store.js';

let seq = 0;

/**
 * openLightbox({src, thumb, name, size, width, height, caption, download, sender, time})
 * src: the full image URL; download: a URL that downloads it (or null).
 */
export function openLightbox({ src, thumb, name, size, width, height, caption, download, sender, time }) {
  const id = `lightbox-${++seq}`;
  const title = name || 'Photo';
  const img = h('img', { class: 'lightbox-img', src, alt: caption || title, decoding: 'async' });
  // The frame is the picture's box: its own size at most, scaled down to fit.
  const frame = h('div', { class: 'lightbox-frame' },
    thumb ? h('img', { class: 'lightbox-thumb', src: thumb, alt: '', 'aria-hidden': 'true' }) : null,
    img,
    h('span', { class: 'lightbox-spinner spinner', 'aria-hidden': 'true' }));
  if (width && height) {
    frame.classList.add('sized');
    frame.style.setProperty('--ar', `${width} / ${height}`);
    frame.style.setProperty('--iw', `${width}px`);
    frame.style.setProperty('--r', String(width / height));
  }
  const stage = h('div', { class: 'lightbox-stage' }, frame);
  const done = () => stage.classList.add('loaded');
  img.addEventListener('load', done);
  img.addEventListener('error', () => stage.classList.add('broken'));
  if (img.complete && img.naturalWidth) done();
  const details = [sender, time, width && height ? `${width} × ${height}` : '', size ? fileSize(size) : ''].filter(Boolean).join(' · ');
  const close = h('button', { type: 'button', class: 'icon-btn lightbox-btn', 'aria-label': 'Close', title: 'Close (Esc)', onclick: () => dialog.close() }, icon('close'));
  const dialog = h('dialog', { class: 'lightbox', 'aria-labelledby': id },
    h('header', { class: 'lightbox-bar' },
      h('div', { class: 'lightbox-title' },
        h('h2', { id, dir: 'auto' }, title),
        details ? h('p', null, details) : null),
      download ? h('a', { class: 'icon-btn lightbox-btn', href: download, download: name || 'photo', 'aria-label': `Download ${title}`, title: 'Download' }, icon('download')) : null,
      close),
    stage,
    caption ? h('p', { class: 'lightbox-caption', dir: 'auto' }, caption) : null);
  // A click outside the picture (on the dark backdrop) closes.
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog || e.target === stage || e.target.classList.contains('lightbox-caption')) dialog.close();
  });
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
  return dialog;
}
