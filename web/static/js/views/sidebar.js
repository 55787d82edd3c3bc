// The sidebar: who I am, actions (notifications among them when the server
// offers Web Push), the notification prompt, a filter and the conversation
// list (most recent first, unread badges, presence, typing).
import { h, icon, reconcile } from '../util/dom.js';
import { listTime } from '../util/format.js';
import { peerOf, previewText } from '../store.js';
import { notifyPermission, askNotifyPermission } from '../notify.js';
import { avatar } from './avatar.js';
import { newChatDialog, newGroupDialog, confirmDialog, notificationsDialog } from './dialogs.js';

export class Sidebar {
  constructor(client, { open }) {
    this.client = client;
    this.openConv = open;
    this.filter = '';
    this.meBox = h('div', { class: 'me' });
    const btn = (name, label, onclick) => h('button', { type: 'button', class: 'icon-btn', 'aria-label': label, title: label, onclick }, icon(name));
    this.notifyBox = h('div', { class: 'notify-prompt', hidden: true });
    this.bell = btn('bell', 'Notifications', () => notificationsDialog(client));
    this.bell.hidden = true; // until the server says it offers Web Push
    this.search = h('input', {
      type: 'search', class: 'search-input', placeholder: 'Search chats', 'aria-label': 'Search chats',
      oninput: () => { this.filter = this.search.value.trim().toLowerCase(); this.renderList(); },
    });
    this.list = h('ul', { class: 'conv-list', 'aria-label': 'Chats' });
    this.empty = h('div', { class: 'list-empty', hidden: true });
    this.el = h('aside', { class: 'sidebar', 'aria-label': 'Chats' },
      h('header', { class: 'side-head' },
        this.meBox,
        h('div', { class: 'side-actions' },
          btn('edit', 'New chat', () => newChatDialog(client, open)),
          btn('users', 'New group', () => newGroupDialog(client, open)),
          this.bell,
          btn('logout', 'Log out', () => this.logout()))),
      this.notifyBox,
      h('div', { class: 'search' }, icon('search'), this.search),
      h('nav', { class: 'conv-scroll', 'aria-label': 'Conversation list' }, this.list, this.empty));
    this.notifyDismissed = localStorage.getItem('parley.notify.dismissed') === '1';
    this.renderMe();
    this.renderNotify();
    this.renderBell();
  }

  async logout() {
    const pending = this.client.outbox.size;
    const ok = await confirmDialog({
      title: 'Log out?',
      text: pending ? `${pending} unsent message${pending === 1 ? ' is' : 's are'} still waiting and will be lost.` : 'You can log in again at any time.',
      confirm: 'Log out',
      danger: Boolean(pending),
    });
    if (ok) this.client.logout();
  }

  renderMe() {
    const s = this.client.session;
    const name = s.display_name || s.username;
    this.meBox.replaceChildren(avatar(name, s.user_id, { size: 'sm' }),
      h('div', { class: 'me-text' }, h('span', { class: 'me-name' }, name), h('span', { class: 'me-user muted' }, `@${s.username}`)));
  }

  renderNotify() {
    const show = notifyPermission() === 'default' && !this.notifyDismissed;
    this.notifyBox.hidden = !show;
    if (!show) return;
    this.notifyBox.replaceChildren(
      icon('bell'),
      h('span', null, 'Get notified about new messages'),
      h('button', {
        type: 'button', class: 'btn btn-small btn-primary',
        onclick: async () => {
          const push = this.client.push;
          if (push.offered && push.state !== 'unsupported') {
            // The same consent covers push: notified while Parley is closed too.
            if (!await push.enable() && push.state === 'error') this.client.notice(push.error);
          } else {
            await askNotifyPermission();
          }
          this.renderNotify();
        },
      }, 'Turn on'),
      h('button', {
        type: 'button', class: 'icon-btn icon-btn-small', 'aria-label': 'Dismiss', title: 'Dismiss',
        onclick: () => { this.notifyDismissed = true; localStorage.setItem('parley.notify.dismissed', '1'); this.renderNotify(); },
      }, icon('close')));
  }

  renderBell() {
    const push = this.client.push;
    this.bell.hidden = !push.offered;
    this.bell.classList.toggle('is-on', push.state === 'on');
    const label = `Notifications: ${push.state === 'on' ? 'on' : push.state === 'blocked' ? 'blocked' : push.state === 'unsupported' ? 'not supported' : 'off'}`;
    this.bell.setAttribute('aria-label', label);
    this.bell.title = label;
  }

  update(dirty) {
    if (dirty.has('push')) { this.renderBell(); this.renderNotify(); }
    if (dirty.has('me') || dirty.has('users')) this.renderMe();
    if (dirty.has('list') || dirty.has('presence') || dirty.has('users') || dirty.has('active')) this.renderList();
  }

  renderList() {
    const c = this.client;
    const convs = c.sortedConversations().filter((conv) => !this.filter || c.title(conv).toLowerCase().includes(this.filter));
    reconcile(this.list, convs.map((conv) => this.item(conv)));
    this.empty.hidden = convs.length > 0;
    if (!convs.length) {
      this.empty.replaceChildren(this.filter
        ? h('p', null, 'No chats match your search.')
        : c.listLoaded
          ? h('div', null, h('p', { class: 'empty-title' }, 'No chats yet'),
            h('p', { class: 'muted' }, 'Start one with someone’s username, or create a group.'),
            h('button', { type: 'button', class: 'btn btn-primary', onclick: () => newChatDialog(c, this.openConv) }, icon('edit'), 'New chat'))
          : h('p', { class: 'muted' }, 'Loading chats…'));
    }
  }

  item(conv) {
    const c = this.client;
    const id = conv.conversation_id;
    const title = c.title(conv);
    const peer = peerOf(conv, c.me);
    const online = peer ? c.presence.get(peer.user_id)?.status === 'online' : false;
    const unread = c.isReading(id) ? 0 : c.unreadOf(conv); // the open chat is being read now
    const typers = c.typingIn(id);
    const outbox = c.outbox.forConversation(id);
    const lastOut = outbox[outbox.length - 1];
    // A conversation heard of through conversation_updated may lack
    // last_message: the window may hold it; without either, no hint.
    const last = conv.last_message || c.windows.get(id)?.get(conv.last_seq) || null;
    let preview;
    let previewKind = '';
    let time = last ? last.timestamp : conv.created_at;
    if (typers.length) {
      preview = conv.type === 'group' ? `${c.users.name(typers[0])} is typing…` : 'typing…';
      previewKind = 'typing';
    } else if (lastOut && (!last || lastOut.timestamp >= last.timestamp)) {
      preview = lastOut.content || previewText(lastOut);
      previewKind = lastOut.state === 'failed' ? 'failed' : 'pending';
      time = lastOut.timestamp;
    } else if (last) {
      const who = last.sender_id === c.me ? 'You: ' : conv.type === 'group' ? `${c.users.name(last.sender_id)}: ` : '';
      preview = who + previewText(last);
    } else if (conv.last_seq > 0) {
      preview = '';
    } else if (conv._events && conv._events.length) {
      preview = conv._events[conv._events.length - 1].text;
      previewKind = 'hint';
    } else {
      preview = conv.type === 'group' ? 'Group created' : 'Say hello 👋';
      previewKind = 'hint';
    }
    const active = id === c.activeId;
    const sig = JSON.stringify([title, preview, previewKind, time, unread, online, active, conv.type, listTime(time)]);
    return {
      key: id,
      sig,
      build: () => h('li', { class: 'conv-li' },
        h('button', {
          type: 'button',
          class: `conv${active ? ' active' : ''}${unread ? ' has-unread' : ''}`,
          'aria-current': active ? 'true' : null,
          dataset: { conversationId: id },
          'aria-label': `${title}${conv.type === 'group' ? ', group' : ''}${online ? ', online' : ''}${unread ? `, ${unread} unread` : ''}. ${preview}`,
          onclick: () => this.openConv(id),
        },
        avatar(title, conv.type === 'group' ? id : peer ? peer.user_id : id, { online, group: conv.type === 'group' }),
        h('span', { class: 'conv-main' },
          h('span', { class: 'conv-top' },
            h('span', { class: 'conv-name' }, title),
            h('span', { class: 'conv-time' }, listTime(time))),
          h('span', { class: 'conv-bottom' },
            h('span', { class: `conv-preview ${previewKind}` },
              previewKind === 'pending' ? icon('clock', 'preview-icon') : previewKind === 'failed' ? icon('alert', 'preview-icon') : null,
              preview),
            unread ? h('span', { class: 'badge', 'aria-hidden': 'true' }, unread > 99 ? '99+' : String(unread)) : null)))),
    };
  }

  destroy() {}
}
