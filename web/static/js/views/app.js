// The logged-in app: connection banner, sidebar (conversation list) and chat
// pane. Two panes side by side on wide screens, one at a time on phones.
import { h, icon } from '../util/dom.js';
import { previewText } from '../store.js';
import { showNotification } from '../notify.js';
import { Sidebar } from './sidebar.js';
import { ChatView } from './chat.js';

export function mountApp(root, client) {
  const banner = h('div', { class: 'banner', role: 'status', hidden: true });
  const toasts = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
  const live = h('div', { class: 'sr-only', 'aria-live': 'polite', id: 'live-announcer' });
  const sidebar = new Sidebar(client, { open: (id) => openConversation(id) });
  // Back from a chat: undo the history entry opening it pushed, if it did.
  const back = () => { if (history.state && history.state.conv) history.back(); else openConversation(null); };
  const chat = new ChatView(client, { back, announce });
  const shell = h('div', { class: 'shell' }, banner, h('div', { class: 'panes' }, sidebar.el, chat.el), toasts, live);
  root.replaceChildren(shell);

  function openConversation(id) {
    const wasOpen = Boolean(client.activeId);
    client.open(id);
    const hash = id ? `#c=${encodeURIComponent(id)}` : '';
    if (location.hash !== hash) {
      // Going from the list into a chat adds a history entry, so that the
      // phone's back button returns to the list; switching chats replaces it.
      if (id && !wasOpen) history.pushState({ conv: id }, '', hash);
      else if (id) history.replaceState({ conv: id }, '', hash);
      else history.replaceState({}, '', location.pathname);
    }
    if (id) chat.focusComposer();
  }
  const fromHash = () => {
    const m = /^#c=(.+)$/.exec(location.hash);
    return m ? decodeURIComponent(m[1]) : null;
  };
  const onPop = () => client.open(fromHash());
  window.addEventListener('popstate', onPop);
  // A click on a push notification (sw.js) while this tab is open.
  const onWorkerMessage = (ev) => {
    const d = ev.data;
    if (d && d.type === 'open_conversation' && typeof d.conversation_id === 'string' && d.conversation_id) openConversation(d.conversation_id);
  };
  const workers = 'serviceWorker' in navigator ? navigator.serviceWorker : null;
  if (workers) workers.addEventListener('message', onWorkerMessage);
  const initial = fromHash();
  if (initial) client.open(initial);

  function announce(text) {
    live.textContent = '';
    setTimeout(() => { live.textContent = text; }, 30);
  }

  function toast(text) {
    const t = h('div', { class: 'toast' }, text);
    toasts.append(t);
    setTimeout(() => t.remove(), 6000);
  }

  // Connection banner.
  const startedAt = Date.now();
  let everSynced = false;
  let bannerTick = 0;
  function renderBanner() {
    clearTimeout(bannerTick);
    const c = client.conn;
    if (c.synced) everSynced = true;
    let text = '';
    let retry = false;
    let kind = 'info';
    if (!navigator.onLine) {
      text = "You're offline. Messages will be sent when you're back.";
      kind = 'warn';
    } else if (c.state === 'waiting') {
      const s = Math.max(0, Math.ceil((c.retryAt - Date.now()) / 1000));
      text = s > 0 ? `Connection lost. Reconnecting in ${s} s…` : 'Reconnecting…';
      retry = true;
      kind = 'warn';
      bannerTick = setTimeout(renderBanner, 1000);
    } else if (c.state === 'connecting' || !c.synced) {
      if (!everSynced && Date.now() - startedAt < 800) {
        bannerTick = setTimeout(renderBanner, 820 - (Date.now() - startedAt));
      } else {
        text = everSynced ? 'Reconnecting…' : 'Connecting…';
      }
    }
    banner.hidden = !text;
    banner.className = `banner banner-${kind}`;
    banner.dataset.state = c.state;
    // replaceChildren() would render a null as the text "null": only nodes.
    const parts = [icon(kind === 'warn' ? 'wifiOff' : 'clock'), h('span', null, text)];
    if (retry) parts.push(h('button', { type: 'button', class: 'btn btn-small btn-ghost', onclick: () => client.socket.reconnectNow() }, 'Retry now'));
    banner.replaceChildren(...parts);
  }

  // Title with the unread total.
  function renderTitle() {
    let n = 0;
    for (const c of client.convs.values()) if (!client.isReading(c.conversation_id)) n += client.unreadOf(c);
    document.title = n ? `(${n}) Parley` : 'Parley';
  }

  function render(dirty) {
    if (dirty.has('conn')) renderBanner();
    shell.classList.toggle('chat-open', Boolean(client.activeId));
    sidebar.update(dirty);
    chat.update(dirty);
    if (dirty.has('list')) renderTitle();
  }
  const onUpdate = (ev) => render(ev.detail);
  const onIncoming = (ev) => {
    const { conv, message, backlog } = ev.detail;
    const sender = client.users.name(message.sender_id);
    const text = previewText(message);
    if (document.visibilityState === 'hidden') {
      const group = conv.type === 'group';
      showNotification({
        title: group ? `${sender} in ${client.title(conv)}` : sender,
        body: text.length > 160 ? text.slice(0, 157) + '…' : text,
        tag: conv.conversation_id,
        onClick: () => openConversation(conv.conversation_id),
      });
    } else if (!backlog && conv.conversation_id === client.activeId) {
      announce(`${sender}: ${text}`);
    }
  };
  const onNotice = (ev) => toast(ev.detail.text);
  const onNet = () => renderBanner();
  client.addEventListener('update', onUpdate);
  client.addEventListener('incoming', onIncoming);
  client.addEventListener('notice', onNotice);
  window.addEventListener('online', onNet);
  window.addEventListener('offline', onNet);
  render(new Set(['conn', 'list', 'active', 'presence', 'users', 'me', 'push']));

  return {
    unmount() {
      client.removeEventListener('update', onUpdate);
      client.removeEventListener('incoming', onIncoming);
      client.removeEventListener('notice', onNotice);
      window.removeEventListener('online', onNet);
      window.removeEventListener('offline', onNet);
      window.removeEventListener('popstate', onPop);
      if (workers) workers.removeEventListener('message', onWorkerMessage);
      clearTimeout(bannerTick);
      chat.destroy();
      sidebar.destroy();
      shell.remove();
      if (location.hash) history.replaceState({}, '', location.pathname);
    },
  };
}
