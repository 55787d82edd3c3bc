// Modal dialogs (native <dialog>: focus is trapped, Escape closes): new chat,
// new group, chat info (members, rename, add, remove, leave), message info
// (who read a group message), notifications (Web Push) and confirmations.
import { h, icon, reconcile } from '../util/dom.js';
import { presenceText, plural, clock } from '../util/format.js';
import { memberOf, peerOf, previewText } from '../store.js';
import { avatar } from './avatar.js';

let seq = 0;

export function openDialog({ title, body, className = '', onClose }) {
  const id = `dlg-${++seq}`;
  const dialog = h('dialog', { class: `modal ${className}`, 'aria-labelledby': id },
    h('header', { class: 'modal-head' },
      h('h2', { id }, title),
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close', title: 'Close', onclick: () => dialog.close() }, icon('close'))),
    h('div', { class: 'modal-body' }, body));
  dialog.addEventListener('click', (e) => { if (e.target === dialog) dialog.close(); }); // the backdrop
  dialog.addEventListener('close', () => { dialog.remove(); if (onClose) onClose(); });
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

function errorOf(e) {
  if (!e) return '';
  if (e.status === 403) return 'Only group admins can do that.';
  if (e.status === 422 && /max|size|large/i.test(e.message)) return 'The group would be too large.';
  return e.message || 'Something went wrong.';
}

export function newChatDialog(client, open) {
  const input = h('input', { id: 'new-chat-user', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', required: true, placeholder: 'username', 'aria-describedby': 'new-chat-err' });
  const err = h('p', { class: 'form-error', id: 'new-chat-err', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Start chat');
  const form = h('form', { class: 'stack' },
    h('div', { class: 'field' }, h('label', { for: 'new-chat-user' }, 'Username'),
      h('div', { class: 'input-prefix' }, h('span', { 'aria-hidden': 'true' }, '@'), input)),
    err, h('div', { class: 'modal-actions' }, submit));
  const dialog = openDialog({ title: 'New chat', body: form });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    err.textContent = '';
    try {
      const id = await client.startDirect(input.value);
      dialog.close();
      open(id);
    } catch (ex) {
      err.textContent = errorOf(ex);
      submit.disabled = false;
      input.focus();
    }
  });
  input.focus();
}

/** A list of people picked by username (resolved as they are added). */
function memberPicker(client, { exclude = () => [], inputId }) {
  const picked = new Map();
  const chips = h('ul', { class: 'chips', 'aria-label': 'People added' });
  const input = h('input', { id: inputId, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', placeholder: 'Add by username, then Enter' });
  const err = h('p', { class: 'form-error', role: 'alert' });
  const render = () => reconcile(chips, [...picked.values()].map((u) => ({
    key: u.user_id, sig: u.display_name,
    build: () => h('li', { class: 'chip' }, avatar(u.display_name, u.user_id, { size: 'xs' }), u.display_name,
      h('button', { type: 'button', class: 'chip-x', 'aria-label': `Remove ${u.display_name}`, onclick: () => { picked.delete(u.user_id); render(); input.focus(); } }, icon('close'))),
  })));
  async function resolve() {
    const names = input.value.split(/[\s,]+/).filter(Boolean);
    if (!names.length) return true;
    err.textContent = '';
    for (const n of names) {
      try {
        const u = await client.findUser(n);
        if (u.user_id === client.me || exclude().includes(u.user_id)) {
          err.textContent = u.user_id === client.me ? 'You are in it already.' : `${u.display_name} is already a member.`;
          continue;
        }
        picked.set(u.user_id, u);
      } catch (e) {
        err.textContent = e.message;
        input.value = names.slice(names.indexOf(n)).join(' ');
        render();
        return false;
      }
    }
    input.value = '';
    render();
    return !err.textContent;
  }
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ',') {
      if (!input.value.trim()) return;
      e.preventDefault();
      resolve();
    } else if (e.key === 'Backspace' && !input.value && picked.size) {
      picked.delete([...picked.keys()].pop());
      render();
    }
  });
  const el = h('div', { class: 'picker' }, chips, input, err);
  const clear = () => { picked.clear(); input.value = ''; err.textContent = ''; render(); };
  return { el, input, resolve, clear, ids: () => [...picked.keys()], get size() { return picked.size; } };
}

export function newGroupDialog(client, open) {
  const name = h('input', { id: 'group-name', required: true, maxlength: '128', placeholder: 'e.g. Weekend trip', autocomplete: 'off' });
  const picker = memberPicker(client, { inputId: 'group-members' });
  const err = h('p', { class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create group');
  const form = h('form', { class: 'stack' },
    h('div', { class: 'field' }, h('label', { for: 'group-name' }, 'Group name'), name),
    h('div', { class: 'field' }, h('label', { for: 'group-members' }, 'Members'), picker.el),
    err, h('div', { class: 'modal-actions' }, submit));
  const dialog = openDialog({ title: 'New group', body: form });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    if (!name.value.trim()) { err.textContent = 'Give the group a name.'; name.focus(); return; }
    submit.disabled = true;
    if (!(await picker.resolve())) { submit.disabled = false; picker.input.focus(); return; }
    try {
      const id = await client.createGroup(name.value, picker.ids());
      dialog.close();
      open(id);
    } catch (ex) {
      err.textContent = errorOf(ex);
      submit.disabled = false;
    }
  });
  name.focus();
}

export function confirmDialog({ title, text, confirm = 'OK', danger = false }) {
  return new Promise((resolve) => {
    let result = false;
    const ok = h('button', { type: 'button', class: `btn ${danger ? 'btn-danger' : 'btn-primary'}`, onclick: () => { result = true; dialog.close(); } }, confirm);
    const cancel = h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => dialog.close() }, 'Cancel');
    const dialog = openDialog({
      title, className: 'modal-small',
      body: h('div', { class: 'stack' }, h('p', null, text), h('div', { class: 'modal-actions' }, cancel, ok)),
      onClose: () => resolve(result),
    });
    cancel.focus();
  });
}

/** Contact info (direct) or group info, kept live while open. */
export function infoDialog(client, convId) {
  const conv = client.convs.get(convId);
  if (!conv) return;
  const group = conv.type === 'group';
  const top = h('div', { class: 'info-top' });
  const members = h('ul', { class: 'member-list', 'aria-label': 'Members' });
  const membersTitle = h('h3', { class: 'section-title' });
  const err = h('p', { class: 'form-error', role: 'alert' });
  const parts = [top];
  let renameBox = null;
  let addBox = null;
  let blockButton = null;
  const isAdmin = () => { const c = client.convs.get(convId); return Boolean(c && memberOf(c, client.me)?.role === 'admin'); };

  if (group) {
    const nameIn = h('input', { id: 'rename-input', maxlength: '128', value: conv.name || '', autocomplete: 'off' });
    const save = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Rename');
    renameBox = h('form', { class: 'inline-form' }, h('label', { for: 'rename-input', class: 'sr-only' }, 'Group name'), nameIn, save);
    renameBox.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!nameIn.value.trim()) return;
      save.disabled = true;
      err.textContent = '';
      try { await client.rename(convId, nameIn.value); } catch (ex) { err.textContent = errorOf(ex); }
      save.disabled = false;
    });
    const picker = memberPicker(client, { inputId: 'add-members-input', exclude: () => (client.convs.get(convId)?.members || []).map((m) => m.user_id) });
    const add = h('button', { type: 'submit', class: 'btn btn-primary' }, icon('userPlus'), 'Add');
    addBox = h('form', { class: 'add-members' }, h('label', { for: 'add-members-input', class: 'section-title' }, 'Add people'), picker.el, h('div', { class: 'modal-actions' }, add));
    addBox.addEventListener('submit', async (e) => {
      e.preventDefault();
      add.disabled = true;
      err.textContent = '';
      if (await picker.resolve() && picker.size) {
        try {
          await client.addMembers(convId, picker.ids());
          picker.clear();
        } catch (ex) { err.textContent = errorOf(ex); }
      }
      add.disabled = false;
    });
    parts.push(renameBox, membersTitle, members, addBox, err,
      h('div', { class: 'modal-actions modal-actions-split' },
        h('button', {
          type: 'button', class: 'btn btn-danger-ghost leave',
          onclick: async () => {
            const ok = await confirmDialog({ title: 'Leave group?', text: `You will no longer get messages from ${client.title(client.convs.get(convId))}.`, confirm: 'Leave', danger: true });
            if (!ok) return;
            try { await client.removeMember(convId, client.me); dialog.close(); } catch (ex) { err.textContent = errorOf(ex); }
          },
        }, icon('logout'), 'Leave group')));
    client.subscribePresence(conv.members.map((m) => m.user_id));
  } else {
    const peer = peerOf(conv, client.me);
    if (peer) {
      const blockBtn = h('button', {
        type: 'button', class: 'btn btn-danger-ghost block-user',
        onclick: async () => {
          const on = !client.isBlocked(peer.user_id);
          if (on) {
            const ok = await confirmDialog({ title: 'Block?', text: `${client.title(conv)} will no longer be able to message you, see when you are online or that you are typing.`, confirm: 'Block', danger: true });
            if (!ok) return;
          }
          err.textContent = '';
          try { await client.setBlocked(peer.user_id, on); } catch (ex) { err.textContent = errorOf(ex); }
        },
      });
      blockButton = blockBtn;
      parts.push(err, h('div', { class: 'modal-actions' }, blockBtn));
    }
  }

  function render() {
    const c = client.convs.get(convId);
    if (!c) { dialog.close(); return; }
    const title = client.title(c);
    const peer = peerOf(c, client.me);
    const admin = isAdmin();
    if (group) {
      top.replaceChildren(avatar(title, convId, { size: 'xl', group: true }),
        h('div', { class: 'info-name' }, title), h('div', { class: 'muted' }, plural(c.members.length, 'member')));
      renameBox.hidden = !admin;
      addBox.hidden = !admin;
      membersTitle.textContent = `Members · ${c.members.length}`;
      reconcile(members, c.members.map((m) => {
        const u = client.users.get(m.user_id);
        const name = m.user_id === client.me ? `${client.users.name(m.user_id)} (you)` : client.users.name(m.user_id, '…');
        const p = presenceText(client.presence.get(m.user_id));
        const canRemove = admin && m.user_id !== client.me;
        return {
          key: m.user_id,
          sig: JSON.stringify([name, u && u.username, m.role, p, canRemove]),
          build: () => h('li', { class: 'member', dataset: { userId: m.user_id } },
            avatar(client.users.name(m.user_id, '?'), m.user_id, { size: 'sm', online: client.presence.get(m.user_id)?.status === 'online' }),
            h('span', { class: 'member-text' }, h('span', { class: 'member-name' }, name),
              h('span', { class: 'muted' }, [u && u.username ? `@${u.username}` : '', p].filter(Boolean).join(' · '))),
            m.role === 'admin' ? h('span', { class: 'role' }, 'admin') : null,
            canRemove ? h('button', {
              type: 'button', class: 'btn btn-small btn-ghost remove', 'aria-label': `Remove ${name}`,
              onclick: async () => {
                const ok = await confirmDialog({ title: 'Remove member?', text: `Remove ${name} from ${title}?`, confirm: 'Remove', danger: true });
                if (!ok) return;
                try { await client.removeMember(convId, m.user_id); } catch (ex) { err.textContent = errorOf(ex); }
              },
            }, 'Remove') : null),
        };
      }));
    } else {
      const u = peer && client.users.get(peer.user_id);
      const p = peer && client.presence.get(peer.user_id);
      top.replaceChildren(avatar(title, peer ? peer.user_id : convId, { size: 'xl', online: p?.status === 'online' }),
        h('div', { class: 'info-name' }, title),
        h('div', { class: 'muted' }, u && u.username ? `@${u.username}` : ''),
        h('div', { class: `info-presence ${p?.status === 'online' ? 'online' : ''}` }, presenceText(p)));
      if (blockButton && peer) blockButton.textContent = client.isBlocked(peer.user_id) ? 'Unblock' : 'Block';
    }
  }

  const onUpdate = (ev) => {
    const d = ev.detail;
    if (d.has(`conv:${convId}`) || d.has('users') || d.has('presence') || d.has('blocks')) render();
  };
  client.addEventListener('update', onUpdate);
  const dialog = openDialog({
    title: group ? 'Group info' : 'Contact info',
    className: 'modal-info',
    body: h('div', { class: 'stack' }, parts),
    onClose: () => client.removeEventListener('update', onUpdate),
  });
  render();
}

/** Who got and who read one of my messages in a group. */
export function receiptDialog(client, convId, msgSeq) {
  const box = h('div', { class: 'stack receipts' });
  function render() {
    const c = client.convs.get(convId);
    if (!c) { dialog.close(); return; }
    const m = client.windows.get(convId)?.get(msgSeq);
    const others = c.members.filter((x) => x.user_id !== client.me);
    const read = others.filter((x) => x.read_seq >= msgSeq);
    const delivered = others.filter((x) => x.read_seq < msgSeq && x.delivered_seq >= msgSeq);
    const waiting = others.filter((x) => x.delivered_seq < msgSeq && x.read_seq < msgSeq);
    const section = (label, cls, list, iconName) => h('section', { class: `receipt-section ${cls}` },
      h('h3', { class: 'section-title' }, icon(iconName), `${label} · ${list.length}`),
      list.length
        ? h('ul', { class: 'member-list' }, list.map((x) => h('li', { class: 'member' },
          avatar(client.users.name(x.user_id), x.user_id, { size: 'sm' }),
          h('span', { class: 'member-name' }, client.users.name(x.user_id, '…')))))
        : h('p', { class: 'muted' }, '—'));
    box.replaceChildren(
      m ? h('blockquote', { class: 'receipt-quote' }, previewText(m), h('span', { class: 'muted' }, ` · ${clock(m.timestamp)}`)) : null,
      section('Read by', 'read', read, 'read'),
      section('Delivered to', 'delivered', delivered, 'checks'),
      section('Not delivered yet', 'waiting', waiting, 'check'));
  }
  const onUpdate = (ev) => { if (ev.detail.has(`conv:${convId}`) || ev.detail.has('users')) render(); };
  client.addEventListener('update', onUpdate);
  const dialog = openDialog({ title: 'Message info', body: box, className: 'modal-small', onClose: () => client.removeEventListener('update', onUpdate) });
  render();
}

const PUSH_TEXT = {
  on: 'On: this device is notified of new messages while Parley is closed.',
  off: 'Off: turn them on to hear about new messages while Parley is closed.',
  blocked: "Blocked: notifications are turned off for this site in the browser's settings. Allow them there to turn them on here.",
  unsupported: "This browser can't receive push notifications. (On iPhone and iPad, add Parley to the Home Screen first.)",
  error: 'Off: turning them on failed.',
};

/** Web Push for this device: its state, and turning it on (after a click) or off. */
export function notificationsDialog(client) {
  const push = client.push;
  const status = h('p', { class: 'push-status', role: 'status' });
  const err = h('p', { class: 'form-error', role: 'alert' });
  const enable = h('button', { type: 'button', class: 'btn btn-primary', onclick: () => push.enable() }, icon('bell'), 'Enable notifications');
  const off = h('button', { type: 'button', class: 'btn', onclick: () => push.disable() }, 'Turn off');
  function render() {
    const s = push.state;
    if (!push.offered) { dialog.close(); return; }
    status.dataset.state = s;
    const text = s === 'working' ? `Turning notifications ${push.turning}…` : PUSH_TEXT[s] || s;
    status.replaceChildren(icon(s === 'on' ? 'bell' : s === 'error' ? 'alert' : 'bellOff'), h('span', null, text));
    err.textContent = s === 'error' || s === 'off' ? push.error : '';
    enable.hidden = !(s === 'off' || s === 'error' || (s === 'working' && push.turning === 'on'));
    enable.disabled = s === 'working';
    off.hidden = s !== 'on';
  }
  const onUpdate = (ev) => { if (ev.detail.has('push')) render(); };
  client.addEventListener('update', onUpdate);
  const dialog = openDialog({
    title: 'Notifications',
    className: 'modal-small',
    body: h('div', { class: 'stack' }, status,
      h('p', { class: 'muted' }, 'A notification says who wrote and how many messages, never what they wrote.'),
      err, h('div', { class: 'modal-actions' }, off, enable)),
    onClose: () => client.removeEventListener('update', onUpdate),
  });
  render();
  (enable.hidden ? (off.hidden ? dialog.querySelector('.modal-head .icon-btn') : off) : enable).focus();
}

/**
 * Photos about to be sent: shown as they are, with a caption (sent with
 * the first one). send(caption) is called on Send; Cancel or Escape sends
 * nothing.
 */
export function previewDialog(files, send) {
  const urls = files.map((f) => URL.createObjectURL(f));
  const caption = h('input', { id: 'photo-caption', class: 'input', autocomplete: 'off', maxlength: '4096', placeholder: 'Add a caption…', 'aria-label': 'Caption' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, icon('send'), files.length > 1 ? `Send ${files.length} photos` : 'Send');
  const form = h('form', { class: 'stack photo-preview' },
    h('div', { class: 'photo-preview-list' }, urls.map((u, i) => h('img', { class: 'photo-preview-img', src: u, alt: `Preview of ${files[i].name || 'the photo'}` }))),
    caption,
    h('div', { class: 'modal-actions' },
      h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => dialog.close() }, 'Cancel'),
      submit));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    dialog.close();
    send(caption.value.trim());
  });
  const dialog = openDialog({
    title: files.length > 1 ? `Send ${files.length} photos` : 'Send a photo',
    body: form,
    className: 'modal-preview',
    onClose: () => { for (const u of urls) URL.revokeObjectURL(u); },
  });
  caption.focus();
  return dialog;
}
