// Formatting of names, times and ids for people.

const MIN = 60_000;
const DAY = 86_400_000;

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const weekdayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const shortDateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const longDayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
const fullDateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });

export const startOfDay = (t) => { const d = new Date(t); d.setHours(0, 0, 0, 0); return d.getTime(); };
export const dayKey = (t) => { const d = new Date(t); return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`; };

export const clock = (t) => timeFmt.format(t);
export const fullTime = (t) => fullFmt.format(t);

/** Time in the conversation list: 14:05, Yesterday, Mon, 3 Mar, 3 Mar 2024. */
export function listTime(t, now = Date.now()) {
  if (!t) return '';
  const today = startOfDay(now);
  if (t >= today) return clock(t);
  if (t >= today - DAY) return 'Yesterday';
  if (t >= today - 6 * DAY) return weekdayFmt.format(t);
  if (new Date(t).getFullYear() === new Date(now).getFullYear()) return shortDateFmt.format(t);
  return fullDateFmt.format(t);
}

/** Day separator label: Today, Yesterday, Monday 3 March, 3 Mar 2024. */
export function dayLabel(t, now = Date.now()) {
  const today = startOfDay(now);
  if (t >= today) return 'Today';
  if (t >= today - DAY) return 'Yesterday';
  if (new Date(t).getFullYear() === new Date(now).getFullYear()) return longDayFmt.format(t);
  return fullDateFmt.format(t);
}

/** "online", "last seen just now", "last seen 5 min ago", "last seen yesterday at 14:05". */
export function presenceText(p, now = Date.now()) {
  if (!p) return '';
  if (p.status === 'online') return 'online';
  const t = p.last_seen;
  if (!t) return 'offline';
  const ago = now - t;
  if (ago < MIN) return 'last seen just now';
  if (ago < 60 * MIN) return `last seen ${Math.floor(ago / MIN)} min ago`;
  const today = startOfDay(now);
  if (t >= today) return `last seen today at ${clock(t)}`;
  if (t >= today - DAY) return `last seen yesterday at ${clock(t)}`;
  return `last seen ${shortDateFmt.format(t)}`;
}

export function initials(name) {
  // Letters and digits only: no emoji or punctuation in avatars.
  const parts = String(name || '?').split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  if (!parts.length) return '?';
  const first = [...(parts[0] || '?')][0] || '?';
  const second = parts.length > 1 ? [...parts[parts.length - 1]][0] : '';
  return (first + (second || '')).toUpperCase();
}

/** A stable colour slot 0..7 for an id (avatars, sender names). */
export function colorSlot(id) {
  let x = 0;
  for (const ch of String(id)) x = (x * 31 + ch.charCodeAt(0)) >>> 0;
  return x % 8;
}

/** A client message id: random, 128 bits, works outside secure contexts too. */
export function newMessageId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return 'c' + Date.now().toString(36) + '-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** "Chrome on Linux", from the user agent. */
export function deviceName(ua = navigator.userAgent) {
  const browser = /Edg\//.test(ua) ? 'Edge'
    : /OPR\//.test(ua) ? 'Opera'
    : /Firefox\//.test(ua) ? 'Firefox'
    : /Chrom(e|ium)\//.test(ua) ? 'Chrome'
    : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const os = /Android/.test(ua) ? 'Android'
    : /iPhone|iPad|iPod/.test(ua) ? 'iOS'
    : /Windows/.test(ua) ? 'Windows'
    : /Mac OS X|Macintosh/.test(ua) ? 'macOS'
    : /CrOS/.test(ua) ? 'ChromeOS'
    : /Linux/.test(ua) ? 'Linux' : 'the web';
  return `${browser} on ${os}`;
}

export function plural(n, one, many = one + 's') { return `${n} ${n === 1 ? one : many}`; }
