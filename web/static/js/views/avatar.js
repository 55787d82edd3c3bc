// Round avatars with initials and a colour derived from the id; an optional
// presence dot.
import { h } from '../util/dom.js';
import { initials, colorSlot } from '../util/format.js';

export function avatar(name, id, { size = 'md', online = false, group = false } = {}) {
  return h('span', { class: `avatar avatar-${size} c${colorSlot(id)}${group ? ' avatar-group' : ''}`, 'aria-hidden': 'true' },
    initials(name),
    online ? h('span', { class: 'presence-dot' }) : null);
}
