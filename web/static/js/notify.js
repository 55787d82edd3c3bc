// Desktop notifications for messages that arrive while the tab is hidden.
// Permission is only ever asked from a click (browsers require a gesture).

export const notifySupported = () => 'Notification' in window && window.isSecureContext;

export const notifyPermission = () => (notifySupported() ? Notification.permission : 'unsupported');

export async function askNotifyPermission() {
  if (!notifySupported()) return 'unsupported';
  try { return await Notification.requestPermission(); } catch { return Notification.permission; }
}

/** Show one notification; the tag collapses them per conversation. */
export function showNotification({ title, body, tag, onClick }) {
  if (notifyPermission() !== 'granted') return null;
  try {
    const n = new Notification(title, { body, tag, icon: 'icon.svg', renotify: Boolean(tag) });
    n.onclick = () => { window.focus(); if (onClick) onClick(); n.close(); };
    return n;
  } catch {
    return null; // e.g. Android Chrome wants a service worker: push will cover it
  }
}
