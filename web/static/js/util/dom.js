// Small DOM helpers: element creation, SVG icons and keyed list reconciliation.
// No framework: views build elements with h() and patch lists with reconcile().

/**
 * h('button', {class: 'x', onclick: fn, 'aria-label': 'Send'}, child, ...)
 * Attributes named on* become listeners; true sets a boolean attribute;
 * null/false/undefined are skipped. Children may be nodes, strings or arrays.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replace every child of el. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const SVG = 'http://www.w3.org/2000/svg';
const circle = (cx, cy, r) => `M${cx - r} ${cy}a${r} ${r} 0 1 0 ${2 * r} 0a${r} ${r} 0 1 0 ${-2 * r} 0`;

// Stroke icons on a 24x24 grid (feather-like), plus a few filled ones.
const ICONS = {
  send: { fill: true, d: ['M3.4 20.4 21.85 12.4a.45.45 0 0 0 0-.8L3.4 3.6a.45.45 0 0 0-.63.5L4.6 11l9.4 1-9.4 1-1.83 6.9a.45.45 0 0 0 .63.5Z'] },
  check: { box: '0 0 18 12', d: ['M1.5 6.5 5 10l7-8'] },
  checks: { box: '0 0 18 12', d: ['M1 6.5 4.5 10l7-8', 'M8.2 8.6 9.6 10l7-8'] },
  // Read: the two checks in a closed ring, told from "delivered" without colour.
  read: { box: '0 0 26 14', d: ['M5 7.5 8 10.5l6-7', 'M11.2 9.1l1.4 1.4 6-7', 'M7 1h12a6 6 0 0 1 0 12H7A6 6 0 0 1 7 1Z'] },
  clock: { d: [circle(12, 12, 9), 'M12 7v5l3 2'] },
  alert: { d: [circle(12, 12, 9), 'M12 7.5v5', 'M12 16.2v.3'] },
  back: { d: ['M19 12H5', 'm12 19-7-7 7-7'] },
  info: { d: [circle(12, 12, 9), 'M12 16v-4.5', 'M12 8v.2'] },
  edit: { d: ['M12 20h9', 'M16.5 3.5a2.12 2.12 0 0 1 3 3L7 19l-4 1 1-4Z'] },
  users: { d: ['M16 21v-2a4 4 0 0 0-4-4H6a4 4 0 0 0-4 4v2', circle(9, 7, 4), 'M22 21v-2a4 4 0 0 0-3-3.87', 'M16 3.13a4 4 0 0 1 0 7.75'] },
  logout: { d: ['M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4', 'm16 17 5-5-5-5', 'M21 12H9'] },
  down: { d: ['M12 5v14', 'm19 12-7 7-7-7'] },
  close: { d: ['M18 6 6 18', 'm6 6 12 12'] },
  search: { d: [circle(11, 11, 7), 'm21 21-4.35-4.35'] },
  bell: { d: ['M18 8A6 6 0 0 0 6 8c0 7-3 9-3 9h18s-3-2-3-9', 'M13.73 21a2 2 0 0 1-3.46 0'] },
  bellOff: { d: ['M13.73 21a2 2 0 0 1-3.46 0', 'M18.63 13A17.89 17.89 0 0 1 18 8', 'M6.26 6.26A5.86 5.86 0 0 0 6 8c0 7-3 9-3 9h14', 'M18 8a6 6 0 0 0-9.33-5', 'm2 2 20 20'] },
  chat: { d: ['M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2Z'] },
  userPlus: { d: ['M16 21v-2a4 4 0 0 0-4-4H6a4 4 0 0 0-4 4v2', circle(9, 7, 4), 'M19 8v6', 'M22 11h-6'] },
  retry: { d: ['M21 12a9 9 0 1 1-2.64-6.36', 'M21 3v6h-6'] },
  trash: { d: ['M3 6h18', 'M8 6V4h8v2', 'M19 6l-1 14H6L5 6'] },
  wifiOff: { d: ['m2 2 20 20', 'M8.5 16.5a5 5 0 0 1 7 0', 'M5 12.9a10 10 0 0 1 5.2-2.8', 'M19 12.9a10 10 0 0 0-2.2-1.5', 'M2 8.8a15 15 0 0 1 4.2-2.6', 'M22 8.8A15 15 0 0 0 10.7 5', 'M12 20h.01'] },
  lock: { d: ['M5 11h14v10H5z', 'M8 11V7a4 4 0 0 1 8 0v4'] },
  paperclip: { d: ['m21.4 11.05-9.19 9.19a6 6 0 0 1-8.49-8.49l9.19-9.19a4 4 0 0 1 5.66 5.66l-9.2 9.19a2 2 0 0 1-2.83-2.83l8.49-8.48'] },
  download: { d: ['M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4', 'm7 10 5 5 5-5', 'M12 15V3'] },
  file: { d: ['M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8Z', 'M14 2v6h6'] },
  image: { d: ['M5 3h14a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2Z', circle(8.5, 8.5, 1.5), 'm21 15-5-5L5 21'] },
  video: { d: ['m23 7-7 5 7 5Z', 'M3 5h11a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H3a2 2 0 0 1-2-2V7a2 2 0 0 1 2-2Z'] },
  mic: { d: ['M12 2a3 3 0 0 0-3 3v7a3 3 0 0 0 6 0V5a3 3 0 0 0-3-3Z', 'M19 10v2a7 7 0 0 1-14 0v-2', 'M12 19v3'] },
  upload: { d: ['M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4', 'm17 8-5-5-5 5', 'M12 3v12'] },
};

/** An inline SVG icon, aria-hidden (label the control that holds it). */
export function icon(name, cls = '') {
  const def = ICONS[name];
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', def.box || '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', `icon icon-${name}${def.fill ? ' icon-fill' : ''}${cls ? ' ' + cls : ''}`);
  for (const d of def.d) {
    const p = document.createElementNS(SVG, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

/**
 * Patch parent's children to match items [{key, sig, build}] in order.
 * An element whose key and sig are unchanged is kept as is (focus, selection
 * and listeners survive); a changed sig rebuilds that element only.
 */
export function reconcile(parent, items) {
  const old = new Map();
  for (const el of parent.children) if (el._key != null) old.set(el._key, el);
  const keep = new Set();
  let prev = null;
  for (const item of items) {
    let el = old.get(item.key);
    if (!el || el._sig !== item.sig) {
      el = item.build();
      el._key = item.key;
      el._sig = item.sig;
    }
    keep.add(el);
    const want = prev ? prev.nextSibling : parent.firstChild;
    if (want !== el) parent.insertBefore(el, want);
    prev = el;
  }
  for (const el of [...parent.children]) if (!keep.has(el)) el.remove();
}
