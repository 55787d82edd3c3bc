// The message composer: Enter sends, Shift+Enter adds a line. Sends `typing`
// while the user types (refreshed every 3 s) and `stopped` on send, on blur,
// when the text is cleared, or after a pause. Drafts are kept per chat.
// Files come from the attach button, from pasting (a copied image or file,
// when the clipboard holds no text) and from dropping (chat.js).
import { h, icon } from '../util/dom.js';
import { kindOf } from '../upload.js';
import { previewDialog } from './dialogs.js';

const TYPING_REFRESH = 3000;
const TYPING_IDLE = 5000;
const MAX_BYTES = 65536;
const AUTO_SIZED = typeof CSS !== 'undefined' && CSS.supports('field-sizing', 'content');

export class Composer {
  constructor(client, { sent }) {
    this.client = client;
    this.onSent = sent;
    this.convId = null;
    this.drafts = new Map();
    this.typingSentAt = 0;
    this.typingOn = false;
    this.input = h('textarea', {
      class: 'composer-input', rows: '1', placeholder: 'Message', 'aria-label': 'Message',
      autocomplete: 'off', enterkeyhint: 'send', dir: 'auto',
    });
    this.sendBtn = h('button', { type: 'submit', class: 'send', 'aria-label': 'Send', title: 'Send (Enter)', disabled: true }, icon('send'));
    this.note = h('div', { class: 'composer-note', role: 'status' });
    this.fileInput = h('input', { type: 'file', multiple: true, class: 'file-input', tabindex: '-1', 'aria-hidden': 'true' });
    this.attachBtn = h('button', {
      type: 'button', class: 'attach', 'aria-label': 'Attach files', title: 'Attach a photo, video or file',
      onclick: () => this.fileInput.click(),
    }, icon('paperclip'));
    this.form = h('form', { class: 'composer', 'aria-label': 'Write a message' }, this.attachBtn, this.fileInput, this.input, this.sendBtn);
    this.el = h('div', { class: 'composer-wrap' }, this.note, this.form);
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.send(); });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        this.send();
      }
    });
    this.input.addEventListener('input', () => this.changed());
    this.fileInput.addEventListener('change', () => {
      this.sendFiles([...this.fileInput.files]);
      this.fileInput.value = '';
    });
    this.input.addEventListener('paste', (e) => {
      const dt = e.clipboardData;
      if (!dt || !dt.files || !dt.files.length || dt.types.includes('text/plain')) return;
      e.preventDefault();
      this.sendFiles([...dt.files]);
    });
    this.input.addEventListener('blur', () => this.stopTyping());
  }

  setConversation(id) {
    if (this.convId) {
      this.stopTyping();
      this.drafts.set(this.convId, this.input.value);
    }
    this.convId = id;
    this.input.value = (id && this.drafts.get(id)) || '';
    this.note.textContent = '';
    this.resize();
    this.sendBtn.disabled = !this.input.value.trim();
  }

  /**
   * Send each file as its own message (empty files are refused here: the
   * server would too). Photos are shown first with a caption field
   * (previewDialog): sent from there, or not at all.
   */
  sendFiles(files) {
    if (!this.convId || !files.length) return;
    const convId = this.convId;
    const empty = files.filter((f) => f.size === 0);
    const photos = files.filter((f) => f.size > 0 && kindOf(f.type || '') === 'image');
    const others = files.filter((f) => f.size > 0 && !photos.includes(f));
    for (const f of others) this.client.sendFile(convId, f);
    this.note.textContent = empty.length ? `${empty.map((f) => f.name || 'A file').join(', ')}: empty, not sent.` : '';
    if (others.length) this.onSent();
    if (photos.length) {
      previewDialog(photos, (caption) => {
        photos.forEach((f, i) => this.client.sendFile(convId, f, i === 0 ? caption : ''));
        this.onSent();
      });
    }
  }

  setEnabled(on) {
    this.attachBtn.disabled = !on;
    this.input.disabled = !on;
    if (!on) this.sendBtn.disabled = true;
  }

  focus() {
    // Do not pop up the keyboard on phones just because a chat was opened.
    if (window.matchMedia('(pointer: fine)').matches) this.input.focus({ preventScroll: true });
  }

  resize() {
    if (AUTO_SIZED) return; // CSS field-sizing grows the box by itself
    // CSSOM writes are allowed by the page's CSP (style attributes in markup are not).
    this.input.style.height = 'auto';
    if (!this.input.scrollHeight) { this.input.style.height = ''; return; } // not laid out (hidden)
    this.input.style.height = `${Math.min(this.input.scrollHeight, 180)}px`;
  }

  changed() {
    this.resize();
    const text = this.input.value;
    const tooLong = new TextEncoder().encode(text).length > MAX_BYTES;
    this.note.textContent = tooLong ? 'This message is over 64 KB and will not be accepted.' : '';
    this.sendBtn.disabled = !text.trim();
    if (!this.convId) return;
    if (text.trim()) {
      const now = Date.now();
      if (!this.typingOn || now - this.typingSentAt >= TYPING_REFRESH) {
        if (this.client.sendTyping(this.convId, 'typing')) {
          this.typingOn = true;
          this.typingSentAt = now;
        }
      }
      clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE);
    } else {
      this.stopTyping();
    }
  }

  stopTyping() {
    clearTimeout(this.idleTimer);
    if (!this.typingOn) return;
    this.typingOn = false;
    if (this.convId) this.client.sendTyping(this.convId, 'stopped');
  }

  send() {
    const text = this.input.value;
    if (!text.trim() || !this.convId) return;
    this.stopTyping();
    this.client.send(this.convId, text.replace(/\s+$/, ''));
    this.input.value = '';
    this.drafts.delete(this.convId);
    this.note.textContent = '';
    this.sendBtn.disabled = true;
    this.resize();
    this.input.focus({ preventScroll: true });
    this.onSent();
  }

  destroy() { this.stopTyping(); }
}
