// Log in / create account. Resolves a session {token, user_id, device_id,
// expires_at, username, display_name} through onSession.
import { h, icon } from '../util/dom.js';
import { deviceName } from '../util/format.js';
import { createApi } from '../api.js';

const api = createApi();

function explain(e, mode) {
  switch (e.status) {
    case 0: return e.message;
    case 401: return 'Wrong username or password.';
    case 409: return 'That username is taken. Try another one.';
    case 422: return mode === 'register'
      ? 'Usernames are 3–32 characters: lowercase letters, digits, “_”, “.” or “-”. Passwords need at least 8 characters.'
      : e.message;
    case 429: return `Too many attempts. Try again in ${Math.max(1, Math.ceil(e.retryAfter / 1000))} s.`;
    default: return e.message || 'Something went wrong. Try again.';
  }
}

export function renderLogin(root, { onSession, notice = '', username = '' }) {
  let mode = 'login';
  const device = deviceName();
  const err = h('p', { class: 'form-error', role: 'alert', id: 'auth-error' });
  const userIn = h('input', { id: 'auth-username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false', value: username, 'aria-describedby': 'auth-error' });
  const nameIn = h('input', { id: 'auth-display', name: 'display_name', autocomplete: 'name', maxlength: '64' });
  const passIn = h('input', { id: 'auth-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, minlength: '8', 'aria-describedby': 'auth-error' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Log in');
  const nameRow = h('div', { class: 'field', hidden: true },
    h('label', { for: 'auth-display' }, 'Display name ', h('span', { class: 'muted' }, '(optional)')), nameIn);
  const tabLogin = h('button', { type: 'button', class: 'tab', id: 'tab-login', 'aria-pressed': 'true', onclick: () => setMode('login') }, 'Log in');
  const tabRegister = h('button', { type: 'button', class: 'tab', id: 'tab-register', 'aria-pressed': 'false', onclick: () => setMode('register') }, 'Create account');
  const hint = h('p', { class: 'field-hint', id: 'user-hint', hidden: true }, 'Lowercase letters, digits, “_”, “.” and “-”; 3 to 32 characters.');

  function setMode(m) {
    mode = m;
    const reg = m === 'register';
    tabLogin.setAttribute('aria-pressed', String(!reg));
    tabRegister.setAttribute('aria-pressed', String(reg));
    nameRow.hidden = !reg;
    hint.hidden = !reg;
    passIn.autocomplete = reg ? 'new-password' : 'current-password';
    submit.textContent = reg ? 'Create account' : 'Log in';
    err.textContent = '';
    userIn.focus();
  }

  const form = h('form', { class: 'auth-form', novalidate: true, 'aria-labelledby': 'auth-title' },
    h('div', { class: 'field' }, h('label', { for: 'auth-username' }, 'Username'), userIn, hint),
    nameRow,
    h('div', { class: 'field' }, h('label', { for: 'auth-password' }, 'Password'), passIn),
    err,
    submit);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const username = userIn.value.trim().toLowerCase();
    const password = passIn.value;
    if (!username || !password) { err.textContent = 'Enter a username and a password.'; return; }
    if (mode === 'register' && password.length < 8) { err.textContent = 'Passwords need at least 8 characters.'; passIn.focus(); return; }
    submit.disabled = true;
    err.textContent = '';
    form.setAttribute('aria-busy', 'true');
    try {
      let profile = null;
      if (mode === 'register') profile = await api.register(username, password, nameIn.value.trim());
      const s = await api.login(username, password, device);
      onSession({
        token: s.token, user_id: s.user_id, device_id: s.device_id, expires_at: s.expires_at,
        username, display_name: profile ? profile.display_name : username,
      });
    } catch (e) {
      err.textContent = explain(e, mode);
      submit.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });

  const view = h('div', { class: 'auth' },
    h('div', { class: 'auth-card' },
      h('div', { class: 'brand' },
        h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, icon('chat')),
        h('h1', { id: 'auth-title' }, 'Parley'),
        h('p', { class: 'muted' }, 'Private, self-hosted chat.')),
      notice ? h('p', { class: 'auth-notice', role: 'status' }, notice) : null,
      h('div', { class: 'tabs', role: 'group', 'aria-label': 'Account' }, tabLogin, tabRegister),
      form,
      h('p', { class: 'auth-device muted' }, `This device will be listed as “${device}”.`)));
  root.replaceChildren(view);
  (username ? passIn : userIn).focus();
  return { unmount() { view.remove(); } };
}
