// Tiny DOM helper. It only ever creates elements and text nodes: nothing that
// came from the network can become markup, because no HTML string is parsed.

const FORBIDDEN_ATTRS = new Set(['innerhtml', 'outerhtml', 'srcdoc']);

/**
 * el('div', {class: 'x', onclick: fn, dataset: {seq: 3}}, 'text', childNode, [more])
 * Strings and numbers become text nodes; null/undefined/false are skipped.
 */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    const lower = key.toLowerCase();
    if (FORBIDDEN_ATTRS.has(lower)) throw new Error(`el(): refusing to set ${key}`);
    if (lower.startsWith('on')) {
      if (typeof value !== 'function') throw new Error(`el(): ${key} must be a function`);
      node.addEventListener(lower.slice(2), value);
    } else if (key === 'class') {
      node.className = value;
    } else if (key === 'dataset') {
      for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
    } else if (key === 'text') {
      node.textContent = String(value);
    } else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'hidden') {
      node[key] = value;
    } else {
      node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(node, children);
  return node;
}

/** Append children (strings become text nodes). */
export function append(node, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Remove every child of a node. */
export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

/** Replace the children of a node. */
export function replace(node, ...children) {
  clear(node);
  return append(node, children);
}

const pad = (n) => String(n).padStart(2, '0');

/** Unix seconds -> "14:05" (today) or "11-27 14:05". */
export function fmtClock(ts) {
  if (typeof ts !== 'number' || !Number.isFinite(ts)) return '';
  const d = new Date(ts * 1000);
  const now = new Date();
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === now.toDateString()) return hm;
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
}

/** Seconds -> "45秒", "3分05秒", "1小时02分". */
export function fmtDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}秒`;
  if (s < 3600) return `${Math.floor(s / 60)}分${pad(s % 60)}秒`;
  return `${Math.floor(s / 3600)}小时${pad(Math.floor((s % 3600) / 60))}分`;
}

/** A short random id for client frames (at most 64 chars on the wire). */
export function frameId(prefix) {
  const rnd = (globalThis.crypto && crypto.randomUUID)
    ? crypto.randomUUID().replace(/-/g, '').slice(0, 16)
    : Math.random().toString(36).slice(2, 14);
  return `${prefix}-${Date.now().toString(36)}${rnd}`;
}

/**
 * Insert a node into a list whose children carry data-seq, keeping seq order;
 * nodes without a seq (local, not yet acknowledged) stay at the end.
 */
export function placeBySeq(container, node, seq) {
  if (typeof seq === 'number') {
    node.dataset.seq = String(seq);
    for (const child of container.children) {
      const s = child.dataset && child.dataset.seq;
      if (s !== undefined && s !== '' && Number(s) > seq) {
        container.insertBefore(node, child);
        return node;
      }
      if ((s === undefined || s === '') && child.dataset && child.dataset.local === '1') {
        container.insertBefore(node, child);
        return node;
      }
    }
  }
  container.append(node);
  return node;
}
