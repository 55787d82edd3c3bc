// The chat pane: header (name, presence or typing), the message list with
// infinite scroll upwards and a jump-to-latest button, and the composer.
// Files dropped anywhere on an open chat are sent to it.
import { h, icon, reconcile } from '../util/dom.js';
import { presenceText, plural, clock } from '../util/format.js';
import { peerOf } from '../store.js';
import { avatar } from './avatar.js';
import { messageItems } from './messages.js';
import { setProgress } from './content.js';
import { openLightbox } from './lightbox.js';
import { Composer } from './composer.js';
import { infoDialog, receiptDialog } from './dialogs.js';

const NEAR_BOTTOM = 80; // px: closer than this counts as "at the latest message"
const LOAD_OLDER_AT = 400; // px from the top: fetch the previous page

export class ChatView {
  constructor(client, { back, announce }) {
    this.client = client;
    this.back = back;
    this.announce = announce;
    this.convId = null;
    this.stick = true;
    this.newBelow = 0;
    this.lastSeen = 0; // highest seq rendered while at the bottom
    this.head = h('header', { class: 'chat-head' });
    this.historyStatus = h('div', { class: 'history-status', 'aria-live': 'polite' });
    this.ol = h('ol', { class: 'msgs', 'aria-label': 'Messages' });
    this.emptyHint = h('div', { class: 'chat-empty-hint', hidden: true });
    this.scroller = h('div', { class: 'scroller', tabindex: '0', 'aria-label': 'Message history' }, this.historyStatus, this.emptyHint, this.ol);
    this.jump = h('button', { type: 'button', class: 'jump', hidden: true, 'aria-label': 'Jump to latest messages', onclick: () => this.scrollToBottom(true) }, icon('down'));
    this.typingRow = h('div', { class: 'typing-row', 'aria-hidden': 'true' });
    this.composer = new Composer(client, { sent: () => { this.stick = true; this.render(); } });
    this.body = h('div', { class: 'chat-body' }, this.scroller, this.typingRow, this.jump);
    this.dropZone = h('div', { class: 'drop-zone', hidden: true, 'aria-hidden': 'true' },
      h('div', { class: 'drop-zone-inner' }, icon('upload'), h('span', null, 'Drop files to send')));
    this.convBox = h('div', { class: 'chat-conv', hidden: true }, this.head, this.body, this.composer.el, this.dropZone);
    this.placeholder = h('div', { class: 'chat-placeholder' },
      h('div', { class: 'placeholder-art', 'aria-hidden': 'true' }, icon('chat')),
      h('h2', null, 'Your messages'),
      h('p', { class: 'muted' }, 'Pick a chat on the left, or start a new one.'));
    this.el = h('main', { class: 'chat-pane', 'aria-label': 'Chat' }, this.placeholder, this.convBox);
    this.scroller.addEventListener('scroll', () => this.onScroll(), { passive: true });
    // The reader taking over ends an automatic scroll.
    for (const ev of ['wheel', 'touchstart', 'keydown', 'pointerdown']) {
      this.scroller.addEventListener(ev, () => { this.autoScroll = false; }, { passive: true });
    }
    this.setupDrop();
    this.onProgress = (ev) => {
      const { id, conv, fraction } = ev.detail;
      if (conv !== this.convId) return;
      for (const el of this.ol.querySelectorAll(`[data-upload="${CSS.escape(id)}"]`)) setProgress(el, fraction);
    };
    client.addEventListener('progress', this.onProgress);
    this.resizeObs = new ResizeObserver(() => { if (this.stick) this.scroller.scrollTop = this.scroller.scrollHeight; });
    this.resizeObs.observe(this.scroller);
    this.tick = setInterval(() => { if (this.convId) this.renderHeader(); }, 30_000);
  }

  focusComposer() { this.composer.focus(); }

  /** Drag and drop of files onto the open chat. */
  setupDrop() {
    let depth = 0;
    const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
    const show = (on) => { this.dropZone.hidden = !on; this.convBox.classList.toggle('dropping', on); };
    this.convBox.addEventListener('dragenter', (e) => {
      if (!hasFiles(e) || !this.convId) return;
      e.preventDefault();
      depth++;
      show(true);
    });
    this.convBox.addEventListener('dragover', (e) => {
      if (!hasFiles(e) || !this.convId) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
    });
    this.convBox.addEventListener('dragleave', (e) => {
      if (!hasFiles(e)) return;
      depth = Math.max(0, depth - 1);
      if (!depth) show(false);
    });
    this.convBox.addEventListener('drop', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      show(false);
      this.composer.sendFiles([...e.dataTransfer.files]);
    });
  }

  /** Open a photo message in the viewer. */
  openMedia(m) {
    const c = this.client;
    const md = m.media || {};
    const local = c.attachments.localURL(m);
    const remote = c.attachments.url(m.media_id);
    const src = local || remote;
    if (!src) return;
    openLightbox({
      src, thumb: md.thumbnail, name: md.name, size: md.size, width: md.width, height: md.height,
      caption: typeof m.content === 'string' ? m.content.trim() : '',
      download: remote, sender: m.sender_id === c.me ? 'You' : c.users.name(m.sender_id), time: m.timestamp ? clock(m.timestamp) : '',
    });
  }

  update(dirty) {
    const id = this.client.activeId;
    if (id !== this.convId) { this.switchTo(id); return; }
    if (!id) return;
    if (dirty.has(`conv:${id}`) || dirty.has('users') || dirty.has('presence') || dirty.has('list') || dirty.has('conn')) this.render();
  }

  switchTo(id) {
    this.composer.setConversation(id);
    this.convId = id;
    this.stick = true;
    this.newBelow = 0;
    this.lastSeen = 0;
    this.ol.replaceChildren();
    this.placeholder.hidden = Boolean(id);
    this.convBox.hidden = !id;
    if (id) this.render();
  }

  render() {
    const conv = this.client.convs.get(this.convId);
    if (!conv) {
      this.head.replaceChildren(this.backButton(), h('div', { class: 'chat-title' }, h('span', { class: 'chat-name' }, this.client.listLoaded ? 'Chat not found' : 'Loading…')));
      this.composer.setEnabled(false);
      return;
    }
    this.composer.setEnabled(true);
    this.renderHeader();
    this.renderMessages(conv);
    this.renderTyping(conv);
  }

  backButton() {
    return h('button', { type: 'button', class: 'icon-btn back', 'aria-label': 'Back to chats', title: 'Back', onclick: () => this.back() }, icon('back'));
  }

  statusText(conv) {
    const c = this.client;
    const typers = c.typingIn(conv.conversation_id);
    if (conv.type === 'direct') {
      if (typers.length) return { text: 'typing…', kind: 'typing' };
      const peer = peerOf(conv, c.me);
      const p = peer && c.presence.get(peer.user_id);
      return { text: presenceText(p), kind: p && p.status === 'online' ? 'online' : '' };
    }
    if (typers.length === 1) return { text: `${c.users.name(typers[0])} is typing…`, kind: 'typing' };
    if (typers.length > 1) return { text: `${typers.length} people are typing…`, kind: 'typing' };
    const names = conv.members.map((m) => (m.user_id === c.me ? 'you' : c.users.name(m.user_id, '…')));
    return { text: `${plural(conv.members.length, 'member')}: ${names.join(', ')}`, kind: '' };
  }

  renderHeader() {
    const c = this.client;
    const conv = c.convs.get(this.convId);
    if (!conv) return;
    const title = c.title(conv);
    const peer = peerOf(conv, c.me);
    const online = peer ? c.presence.get(peer.user_id)?.status === 'online' : false;
    const st = this.statusText(conv);
    const sig = JSON.stringify([title, st, online, conv.type]);
    if (this.head._sig === sig) return;
    this.head._sig = sig;
    const open = () => infoDialog(c, conv.conversation_id);
    this.head.replaceChildren(
      this.backButton(),
      h('button', { type: 'button', class: 'chat-title', onclick: open, 'aria-label': `${title}: ${conv.type === 'group' ? 'group info' : 'contact info'}` },
        avatar(title, peer ? peer.user_id : conv.conversation_id, { online, group: conv.type === 'group' }),
        h('span', { class: 'chat-title-text' },
          h('span', { class: 'chat-name' }, title),
          h('span', { class: `chat-status ${st.kind}`, 'aria-live': 'polite' }, st.text))),
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': conv.type === 'group' ? 'Group info' : 'Contact info', title: 'Info', onclick: open }, icon('info')));
  }

  renderTyping(conv) {
    const c = this.client;
    const typers = c.typingIn(conv.conversation_id);
    this.typingRow.classList.toggle('on', typers.length > 0);
    if (!typers.length) { this.typingRow.replaceChildren(); return; }
    this.typingRow.replaceChildren(
      h('span', { class: 'dots' }, h('i'), h('i'), h('i')),
      conv.type === 'group'
        ? `${typers.map((u) => c.users.name(u)).join(', ')} ${typers.length > 1 ? 'are' : 'is'} typing`
        : `${c.title(conv)} is typing`);
  }

  renderMessages(conv) {
    const c = this.client;
    const id = conv.conversation_id;
    const sc = this.scroller;
    const w = c.windows.get(id);
    const atBottom = this.stick;
    // Keep what the reader looks at in place when history is prepended.
    let anchorKey = null;
    let anchorTop = 0;
    if (!atBottom) {
      for (const el of this.ol.children) {
        if (el.offsetTop + el.offsetHeight > sc.scrollTop) { anchorKey = el._key; anchorTop = el.offsetTop - sc.scrollTop; break; }
      }
    }
    const now = Date.now();
    const actions = {
      retry: (mid) => c.retry(mid),
      discard: (mid) => c.discard(mid),
      receipts: (seq) => receiptDialog(c, id, seq),
      openMedia: (m) => this.openMedia(m),
      jumpTo: (seq) => this.jumpTo(seq),
    };
    reconcile(this.ol, messageItems(c, conv, actions, now));

    // History status at the top.
    let status = '';
    if (w && w.loadingOlder) status = 'Loading earlier messages…';
    else if (w && w.olderError) status = 'Couldn’t load earlier messages. Scroll up to try again.';
    else if (w && (!w.hasOlder || w.noOlder) && w.size) status = 'This is the beginning of the conversation.';
    this.historyStatus.textContent = status;
    this.historyStatus.classList.toggle('loading', Boolean(w && w.loadingOlder));
    const empty = (!w || (!w.size && !w.hasOlder)) && !c.outbox.forConversation(id).length;
    this.emptyHint.hidden = !empty;
    if (empty) this.emptyHint.replaceChildren(h('p', null, 'No messages yet.'), h('p', { class: 'muted' }, conv.type === 'group' ? 'Say hello to the group.' : 'Say hello 👋'));

    // Scroll: follow the bottom, or keep the anchor still.
    const top = w ? w.top : 0;
    if (atBottom) {
      sc.scrollTop = sc.scrollHeight;
      this.lastSeen = top;
      this.newBelow = 0;
    } else {
      if (anchorKey != null) {
        const el = [...this.ol.children].find((e) => e._key === anchorKey);
        if (el) sc.scrollTop = el.offsetTop - anchorTop;
      }
      if (top > this.lastSeen && w) {
        for (let s = this.lastSeen + 1; s <= top; s++) { const m = w.get(s); if (m && m.sender_id !== c.me) this.newBelow++; }
        this.lastSeen = top;
      }
    }
    this.renderJump();
    // Countdown for a rate-limited message's Retry button.
    clearTimeout(this.retryTimer);
    if (c.outbox.forConversation(id).some((e) => e.state === 'failed' && e.retryAt > now)) {
      this.retryTimer = setTimeout(() => this.render(), 1000);
    }
    // Not enough to scroll yet: load more history.
    if (w && w.hasOlder && !w.noOlder && !w.loadingOlder && !w.olderError && sc.scrollHeight <= sc.clientHeight + LOAD_OLDER_AT) {
      c.loadOlder(id);
    }
  }

  /** Scroll to the message seq (a reply's quote was clicked) and flash it. */
  jumpTo(seq) {
    const li = this.ol.querySelector(`li.msg[data-seq="${CSS.escape(String(seq))}"]`);
    if (!li) {
      this.announce('That message is not loaded. Scroll up to load earlier messages.');
      return;
    }
    this.stick = false;
    li.scrollIntoView({ block: 'center', behavior: 'smooth' });
    li.classList.remove('flash');
    void li.offsetWidth; // restart the animation
    li.classList.add('flash');
    setTimeout(() => li.classList.remove('flash'), 1600);
  }

  renderJump() {
    const sc = this.scroller;
    const far = sc.scrollHeight - sc.scrollTop - sc.clientHeight > 300;
    this.jump.hidden = !far && !this.newBelow;
    this.jump.replaceChildren(icon('down'), this.newBelow ? h('span', { class: 'badge' }, String(this.newBelow)) : null);
    this.jump.setAttribute('aria-label', this.newBelow ? `Jump to latest: ${plural(this.newBelow, 'new message')}` : 'Jump to latest messages');
  }

  onScroll() {
    const sc = this.scroller;
    const dist = sc.scrollHeight - sc.scrollTop - sc.clientHeight;
    // While a smooth scroll to the bottom runs, we are still "at the bottom":
    // restoring an anchor would cancel the animation half way.
    if (this.autoScroll && dist >= NEAR_BOTTOM) return;
    this.autoScroll = false;
    this.stick = dist < NEAR_BOTTOM;
    if (this.stick) {
      this.newBelow = 0;
      const w = this.client.windows.get(this.convId);
      if (w) this.lastSeen = w.top;
    }
    this.renderJump();
    const w = this.client.windows.get(this.convId);
    if (sc.scrollTop < LOAD_OLDER_AT && w && w.hasOlder && !w.noOlder && !w.loadingOlder) {
      w.olderError = null;
      this.client.loadOlder(this.convId);
    }
  }

  scrollToBottom(smooth) {
    this.stick = true;
    this.newBelow = 0;
    const w = this.client.windows.get(this.convId);
    if (w) this.lastSeen = w.top; // what is below now counts as seen
    this.autoScroll = Boolean(smooth);
    clearTimeout(this.autoScrollTimer);
    if (smooth) {
      this.autoScrollTimer = setTimeout(() => {
        this.autoScroll = false;
        // A smooth scroll that a busy browser has not finished: arrive now.
        if (this.stick) this.scroller.scrollTop = this.scroller.scrollHeight;
        this.onScroll();
      }, 1500);
    }
    this.scroller.scrollTo({ top: this.scroller.scrollHeight, behavior: smooth ? 'smooth' : 'auto' });
    this.renderJump();
  }

  destroy() {
    clearInterval(this.tick);
    clearTimeout(this.retryTimer);
    clearTimeout(this.autoScrollTimer);
    this.resizeObs.disconnect();
    this.client.removeEventListener('progress', this.onProgress);
    this.composer.destroy();
  }
}
