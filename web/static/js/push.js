// Web Push for this device: the service worker (sw.js) shows the server's
// notifications while no tab of Parley is open. Nothing is asked or
// subscribed until the user agrees with a click; logging out deletes the
// subscription on the server and unsubscribes the browser.
//
// state (what the views show):
//   'checking'    the server was not asked yet        } the option is
//   'unavailable' the server offers no Web Push        } hidden
//   'unsupported' this browser cannot receive push (no service worker, Push API or notifications)
//   'blocked'     notifications are denied for this site in the browser
//   'off', 'working', 'on'
//   'error'       the last attempt failed; error says why

const KEY = 'parley.push'; // {user_id, device_id, subscription_id, endpoint}: what this session agreed to
const SUBSCRIBE_TIMEOUT = 30_000; // Chromium's subscribe() waits forever when its push service is unreachable
const UNSUBSCRIBE_TIMEOUT = 5_000;
const WORKER_TIMEOUT = 30_000; // installing and activating sw.js
const RECHECK = 30_000; // the server could not be asked: ask again after this long

/** base64url (padding optional) → bytes. */
export function fromB64url(s) {
  const b64 = String(s).replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** bytes (ArrayBuffer or view) → base64url without padding. */
export function toB64url(buf) {
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf instanceof ArrayBuffer ? buf : buf.buffer);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The body of POST /api/v1/push/subscriptions for a PushSubscription's toJSON(). */
export function subscriptionBody(json) {
  const keys = json && json.keys;
  if (!json || !json.endpoint || !keys || !keys.p256dh || !keys.auth) throw new Error('the browser gave an incomplete push subscription');
  return { platform: 'webpush', endpoint: json.endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } };
}

export const pushSupported = () => typeof window !== 'undefined' && window.isSecureContext &&
  'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window &&
  typeof ServiceWorkerRegistration !== 'undefined' && 'showNotification' in ServiceWorkerRegistration.prototype;

class Timeout extends Error {}

/** p, or a Timeout after ms (p itself keeps running). */
function within(p, ms, what) {
  let timer;
  return Promise.race([p, new Promise((_, reject) => { timer = setTimeout(() => reject(new Timeout(what)), ms); })])
    .finally(() => clearTimeout(timer));
}

/** Why subscribing failed, in words for the user. */
function explain(e) {
  if (e instanceof Timeout && e.message === 'service worker') return 'The service worker did not start. Reload the page and try again.';
  if (e instanceof Timeout) return "The browser's push service did not answer. Check the connection and try again.";
  if (e && e.status === 0) return "Can't reach the server. Check your connection.";
  if (e && e.status) return `The server refused the subscription: ${e.message}`;
  if (e && e.name === 'AbortError') return `This browser could not subscribe (${e.message}). In a private window push notifications cannot work.`;
  if (e && e.name === 'NotAllowedError') return 'Notifications were not allowed.';
  return `Push notifications could not be turned on: ${(e && e.message) || e}`;
}

export class Push {
  /** api: createApi(); session: {user_id, device_id}; onChange() after every state change. */
  constructor(api, session, onChange) {
    this.api = api;
    this.session = session;
    this.onChange = onChange;
    this.state = 'checking';
    this.error = '';
    this.turning = 'on'; // while 'working': turning 'on' or 'off'
    this.key = ''; // the server's VAPID public key (base64url)
    this.timeout = SUBSCRIBE_TIMEOUT; // for subscribe(); the end-to-end tests shorten it
    this.stopped = false;
    this.queue = Promise.resolve(); // one operation at a time
  }

  /** Whether the views offer the option (the server has Web Push). */
  get offered() { return this.state !== 'checking' && this.state !== 'unavailable'; }

  set(state, error = '') {
    this.state = state;
    this.error = error;
    this.onChange();
  }

  serial(fn) {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => {});
    return run;
  }

  saved() {
    try {
      const s = JSON.parse(localStorage.getItem(KEY) || 'null');
      return s && s.user_id === this.session.user_id && s.device_id === this.session.device_id ? s : null;
    } catch {
      return null;
    }
  }

  resting() {
    return Notification.permission === 'denied' ? 'blocked' : 'off';
  }

  // ---- lifecycle -----------------------------------------------------------

  /**
   * At start: does the server offer Web Push? A subscription this session
   * agreed to is renewed (the server keeps its id); one left by another
   * session is dropped. Never asks for permission.
   */
  start() {
    return this.serial(async () => {
      if (this.stopped) return;
      try {
        this.key = (await this.api.vapidKey()).key;
      } catch (e) {
        if (e.status === 404 || e.status === 422 || e.status === 501) { this.set('unavailable'); return; }
        if (e.status !== 401) this.recheck = setTimeout(() => this.start(), RECHECK); // offline or a server hiccup
        return;
      }
      if (!this.key) { this.set('unavailable'); return; }
      if (!pushSupported()) { this.set('unsupported'); return; }
      let reg;
      try {
        reg = await navigator.serviceWorker.getRegistration();
      } catch {
        this.set('unsupported'); // e.g. Firefox's private windows refuse service workers
        return;
      }
      this.watchPermission();
      const saved = this.saved();
      const sub = reg ? await reg.pushManager.getSubscription().catch(() => null) : null;
      if (!saved) {
        // Nobody in this session agreed: a browser subscription left behind
        // by an earlier one (a crash before logout finished) goes.
        localStorage.removeItem(KEY);
        if (sub) await within(sub.unsubscribe(), UNSUBSCRIBE_TIMEOUT, 'unsubscribe').catch(() => {});
        this.set(this.resting());
        return;
      }
      if (Notification.permission !== 'granted') {
        // Taken back in the browser's settings: follow it.
        await this.forget();
        this.set(this.resting());
        return;
      }
      await this.subscribe();
    });
  }

  /** The session is over and its token is dead: the browser stops receiving. */
  ended() {
    this.stopped = true;
    clearTimeout(this.recheck);
    if (!pushSupported()) return;
    localStorage.removeItem(KEY);
    navigator.serviceWorker.getRegistration().then((reg) => reg && reg.pushManager.getSubscription())
      .then((sub) => sub && sub.unsubscribe()).catch(() => {});
  }

  /**
   * Before logging out (the token still works): DELETE on the server,
   * unsubscribe here. Not queued behind an operation under way: a subscribe
   * still waiting sees stopped and undoes itself.
   */
  async logout() {
    this.stopped = true;
    clearTimeout(this.recheck);
    await this.forget();
  }

  /** Follow the permission when the user changes it in the browser's settings. */
  watchPermission() {
    if (this.watching || !navigator.permissions) return;
    this.watching = true;
    navigator.permissions.query({ name: 'notifications' }).then((status) => {
      status.addEventListener('change', () => this.serial(async () => {
        if (this.stopped) return;
        if (this.state === 'on' && Notification.permission !== 'granted') {
          await this.forget();
          this.set(this.resting());
        } else if (this.state === 'off' || this.state === 'blocked' || (this.state === 'error' && Notification.permission === 'denied')) {
          this.set(this.resting());
        }
      }));
    }).catch(() => {});
  }

  // ---- what the user asks for ------------------------------------------------

  /** From a click: ask for permission, subscribe, give the server the subscription. */
  enable() {
    if (!pushSupported()) { this.set('unsupported'); return Promise.resolve(false); }
    // Asked at once, inside the click: browsers allow the prompt only there.
    const asked = Notification.requestPermission().catch(() => Notification.permission);
    this.turning = 'on';
    this.set('working');
    return this.serial(async () => {
      const perm = await asked;
      if (this.stopped) return false;
      if (perm !== 'granted') {
        this.set(this.resting(), perm === 'denied' ? '' : 'Notifications were not allowed.');
        return false;
      }
      return this.subscribe();
    });
  }

  /** Turn push off for this device. */
  disable() {
    this.turning = 'off';
    this.set('working');
    return this.serial(async () => {
      await this.forget();
      if (!this.stopped) this.set(this.resting());
    });
  }

  // ---- the work ----------------------------------------------------------------

  async subscribe() {
    this.turning = 'on';
    this.set('working');
    let pending = null;
    let sub = null;
    try {
      const reg = await this.register();
      sub = await reg.pushManager.getSubscription();
      if (sub && sub.options && sub.options.applicationServerKey && toB64url(sub.options.applicationServerKey) !== this.key) {
        await sub.unsubscribe(); // made for another server key (the server's was replaced)
        sub = null;
      }
      if (!sub) {
        pending = reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: fromB64url(this.key) });
        sub = await within(pending, this.timeout, 'subscribe');
      }
      if (this.stopped) { await sub.unsubscribe().catch(() => {}); return false; }
      await this.tellServer(sub);
      return true;
    } catch (e) {
      const saved = this.saved();
      if (sub && saved && saved.endpoint === sub.endpoint && (e.status === 0 || e.status >= 500)) {
        this.set('on'); // only the renewal failed (offline at start): the server has it already
        return true;
      }
      if (!this.stopped) this.set('error', explain(e));
      if (e instanceof Timeout && pending) this.late(pending);
      return false;
    }
  }

  /**
   * A subscribe() that answered after we gave up: finish it if the user
   * still wants push, drop it if they turned it off or logged out meanwhile
   * (another attempt under way handles it itself).
   */
  late(pending) {
    pending.then((sub) => this.serial(async () => {
      if (this.stopped || this.state === 'off' || this.state === 'blocked') {
        await sub.unsubscribe().catch(() => {});
        return;
      }
      if (this.state !== 'error') return;
      try {
        await this.tellServer(sub);
      } catch (e) {
        this.set('error', explain(e));
      }
    }), () => {});
  }

  async tellServer(sub) {
    const body = subscriptionBody(sub.toJSON());
    const res = await this.api.subscribePush(body);
    localStorage.setItem(KEY, JSON.stringify({
      user_id: this.session.user_id, device_id: this.session.device_id,
      subscription_id: res.subscription_id, endpoint: body.endpoint,
    }));
    this.set('on');
  }

  /** The service worker that shows the notifications, active. */
  async register() {
    await navigator.serviceWorker.register('sw.js', { scope: './' });
    return within(navigator.serviceWorker.ready, WORKER_TIMEOUT, 'service worker');
  }

  /** Delete the server's subscription (while the token works) and the browser's. */
  async forget() {
    const saved = this.saved();
    localStorage.removeItem(KEY);
    if (saved && saved.subscription_id) {
      // Failing here is not fatal: the browser's unsubscribe below makes the
      // push service answer 404/410, and the server then deletes it.
      await this.api.unsubscribePush(saved.subscription_id).catch(() => {});
    }
    if (!pushSupported()) return;
    try {
      const reg = await navigator.serviceWorker.getRegistration();
      const sub = reg && await reg.pushManager.getSubscription();
      if (sub) await within(sub.unsubscribe(), UNSUBSCRIBE_TIMEOUT, 'unsubscribe');
    } catch { /* nothing more to do */ }
  }

  /** Close the notifications of a conversation being read here. */
  async dismiss(convId) {
    if (!convId || !pushSupported()) return;
    try {
      const reg = await navigator.serviceWorker.getRegistration();
      if (!reg) return;
      for (const n of await reg.getNotifications()) if (n.data && n.data.conversation_id === convId) n.close();
    } catch { /* none to close */ }
  }
}
