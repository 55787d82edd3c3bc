// Users by id: fetched once with GET /users/{id}, cached in memory and in
// localStorage so names show at once after a reload.

const KEY = 'parley.users';

export class Users {
  constructor(api, onChange) {
    this.api = api;
    this.onChange = onChange;
    this.map = new Map();
    this.inflight = new Map();
    try {
      for (const u of JSON.parse(localStorage.getItem(KEY) || '[]')) if (u && u.user_id) this.map.set(u.user_id, u);
    } catch { /* ignore */ }
    this.fresh = new Set(); // fetched during this page's life
  }

  put(u) {
    if (!u || !u.user_id) return;
    const old = this.map.get(u.user_id);
    this.map.set(u.user_id, { user_id: u.user_id, username: u.username, display_name: u.display_name || u.username });
    this.fresh.add(u.user_id);
    if (!old || old.display_name !== u.display_name || old.username !== u.username) this.persist();
  }

  persist() {
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => {
      try { localStorage.setItem(KEY, JSON.stringify([...this.map.values()].slice(-2000))); } catch { /* full */ }
    }, 200);
  }

  /** The cached user (or null), fetching it in the background if needed. */
  get(id) {
    if (!id) return null;
    if (!this.fresh.has(id)) this.fetch(id);
    return this.map.get(id) || null;
  }

  name(id, fallback = 'Someone') {
    const u = this.get(id);
    return u ? u.display_name || u.username : fallback;
  }

  fetch(id) {
    if (this.inflight.has(id)) return this.inflight.get(id);
    const p = this.api.user(id).then((u) => {
      this.put(u);
      this.onChange(id);
      return u;
    }).catch((e) => {
      if (e.status === 404) { this.fresh.add(id); this.map.set(id, { user_id: id, username: '', display_name: 'Deleted user' }); this.onChange(id); }
      return null;
    }).finally(() => {
      // Retry later on a network failure, not in a loop.
      setTimeout(() => this.inflight.delete(id), this.fresh.has(id) ? 0 : 10_000);
    });
    this.inflight.set(id, p);
    return p;
  }

  clear() {
    this.map.clear();
    this.fresh.clear();
    try { localStorage.removeItem(KEY); } catch { /* ignore */ }
  }
}
