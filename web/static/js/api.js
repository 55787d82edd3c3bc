// REST client for /api/v1. Every failure is an ApiError with the server's
// status and code (status 0 means the network failed).

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = 0, body = null) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // ms
    this.body = body;
  }
}

const BASE = '/api/v1';

/**
 * createApi(getToken, onUnauthorized) → the calls of the wire contract.
 * onUnauthorized runs when an authenticated call answers 401.
 */
export function createApi(getToken = () => null, onUnauthorized = () => {}) {
  async function req(method, path, body, { auth = true, timeout = 20000 } = {}) {
    const headers = { Accept: 'application/json' };
    const token = auth ? getToken() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeout);
    let res;
    try {
      res = await fetch(BASE + path, {
        method, headers, signal: ctl.signal, cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, 'network', "Can't reach the server. Check your connection.");
    } finally {
      clearTimeout(timer);
    }
    if (res.status === 204) return null;
    let data = null;
    try { data = await res.json(); } catch { /* empty or not JSON */ }
    if (!res.ok) {
      const err = data && data.error ? data.error : {};
      const retry = Number(res.headers.get('Retry-After')) * 1000 || 0;
      const e = new ApiError(res.status, err.code || 'http', err.message || res.statusText, retry, data);
      if (res.status === 401 && auth && token) onUnauthorized(e);
      throw e;
    }
    return data;
  }
  const q = (params) => {
    const s = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v != null) s.set(k, String(v));
    const str = s.toString();
    return str ? `?${str}` : '';
  };
  const id = encodeURIComponent;

  return {
    register: (username, password, display_name) =>
      req('POST', '/auth/register', { username, password, display_name: display_name || undefined }, { auth: false }),
    login: (username, password, device_name, device_id) =>
      req('POST', '/auth/login', { username, password, device_name, device_id }, { auth: false }),
    logout: () => req('POST', '/auth/logout', undefined, { timeout: 5000 }),
    me: () => req('GET', '/users/me'),
    user: (userId) => req('GET', `/users/${id(userId)}`),
    findUser: async (username) => (await req('GET', `/users${q({ username })}`)).users || [],
    conversations: async () => (await req('GET', '/conversations')).conversations || [],
    conversation: (convId) => req('GET', `/conversations/${id(convId)}`),
    messages: (convId, { before, after, limit = 50 } = {}) =>
      req('GET', `/conversations/${id(convId)}/messages${q({ before, after, limit })}`),
    createDirect: (userId) => req('POST', '/conversations', { type: 'direct', user_id: userId }),
    createGroup: (name, members) => req('POST', '/groups', { name, members }),
    addMembers: (groupId, userIds) => req('POST', `/groups/${id(groupId)}/members`, { user_ids: userIds }),
    removeMember: (groupId, userId) => req('DELETE', `/groups/${id(groupId)}/members/${id(userId)}`),
    renameGroup: (groupId, name) => req('PATCH', `/groups/${id(groupId)}`, { name }),
    blocks: async () => (await req('GET', '/users/me/blocks')).user_ids || [],
    block: (userId) => req('POST', '/users/me/blocks', { user_id: userId }),
    unblock: (userId) => req('DELETE', `/users/me/blocks/${id(userId)}`),
    report: (convId, seq, reason) => req('POST', '/reports', { conversation_id: convId, seq, reason }),
    vapidKey: () => req('GET', '/push/vapid-public-key'),
    subscribePush: (subscription) => req('POST', '/push/subscriptions', subscription),
    unsubscribePush: (subId) => req('DELETE', `/push/subscriptions/${id(subId)}`, undefined, { timeout: 5000 }),
  };
}
