// The floating button and panel that widget.js puts on a shop page. It lives in
// a shadow root, so the shop's CSS and ours do not touch each other.

import { CustomerChat } from './chat-core.js';
import { mountChat } from './widget-ui.js';
import { el, replace } from './dom.js';

export function mountWidget({ base, wsUrl, title = '在线客服', customer = null, signature = null, texts = {} }) {
  const host = el('div', {
    id: 'gateway-chat-widget',
    style: 'position:fixed;right:20px;bottom:20px;z-index:2147483000;visibility:hidden',
  });
  const shadow = host.attachShadow({ mode: 'open' });
  const css = el('link', { rel: 'stylesheet', href: `${base}/static/widget.css` });
  const show = () => { host.style.visibility = 'visible'; };
  css.addEventListener('load', show);
  css.addEventListener('error', show);
  setTimeout(show, 3000);

  const badge = el('span', { class: 'gw-badge', hidden: true });
  const launcher = el('button', {
    class: 'gw-launcher', type: 'button', 'aria-label': title, 'aria-expanded': 'false', onclick: () => toggle(),
  }, chatIcon(), el('span', { class: 'gw-launcher-text' }, '客服'), badge);
  const panel = el('div', { class: 'gw-panel', role: 'dialog', 'aria-label': title, hidden: true });
  shadow.append(el('link', { rel: 'stylesheet', href: `${base}/static/chat.css` }), css, panel, launcher);
  document.body.append(host);

  const storageKey = `gateway.widget:${wsUrl}`;
  let chat = null;
  let ui = null;
  let unread = 0;

  function ensureChat() {
    if (chat) return;
    chat = new CustomerChat({ wsUrl, storageKey, customer, signature });
    ui = mountChat(panel, chat, { mode: 'widget', title, onClose: close, onActivity, texts });
    chat.start();
  }
  function open() {
    ensureChat();
    panel.hidden = false;
    host.classList.add('gw-open');
    launcher.setAttribute('aria-expanded', 'true');
    unread = 0;
    badge.hidden = true;
    ui.focus();
  }
  function close() {
    panel.hidden = true;
    host.classList.remove('gw-open');
    launcher.setAttribute('aria-expanded', 'false');
    launcher.focus();
  }
  function toggle() { if (panel.hidden) open(); else close(); }
  function onActivity() {
    if (!panel.hidden) return;
    unread += 1;
    replace(badge, unread > 99 ? '99+' : String(unread));
    badge.hidden = false;
  }

  // A conversation already going on in this tab reconnects at once, so replies count as unread.
  try { if (sessionStorage.getItem(storageKey)) ensureChat(); } catch { /* no storage */ }
  return { open, close };
}

/** A speech-bubble icon, built as SVG nodes (no markup string, no emoji font needed). */
function chatIcon() {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'gw-launcher-icon');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(NS, 'path');
  path.setAttribute('d', 'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z');
  path.setAttribute('fill', 'currentColor');
  path.setAttribute('fill-rule', 'evenodd');
  svg.append(path);
  return svg;
}
