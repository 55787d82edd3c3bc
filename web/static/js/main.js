// Entry point: the login screen or the app, with the session in localStorage
// so a reload stays logged in.
import { Client } from './client.js';
import { renderLogin } from './views/login.js';
import { mountApp } from './views/app.js';

const KEY = 'parley.session';
const root = document.getElementById('app');
let current = null;

function loadSession() {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) || 'null');
    return s && s.token && s.user_id ? s : null;
  } catch {
    return null;
  }
}

function showLogin(notice = '', username = '') {
  if (current) current.unmount();
  document.title = 'Parley';
  current = renderLogin(root, {
    notice,
    username,
    onSession(session) {
      localStorage.setItem(KEY, JSON.stringify(session));
      showApp(session);
    },
  });
}

function showApp(session) {
  if (current) current.unmount();
  const client = new Client(session);
  client.addEventListener('ended', (ev) => {
    localStorage.removeItem(KEY);
    const expired = ev.detail.reason === 'expired';
    showLogin(expired ? 'Your session ended. Log in again to continue.' : '', expired ? session.username : '');
  });
  current = mountApp(root, client);
  client.start();
  window.parley = client; // for the browser console and the end-to-end tests
}

// Logging out in another tab revokes the token; follow it here too.
window.addEventListener('storage', (ev) => {
  if (ev.key === KEY && !ev.newValue && window.parley && !window.parley.ended) window.parley.sessionEnded('logout');
});

const session = loadSession();
if (session) showApp(session);
else showLogin();
