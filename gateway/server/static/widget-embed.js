// The floating button and panel that widget.js puts on a shop page. It lives in
// a shadow root, so the shop's CSS and ours do not touch each other.

import { CustomerChat } from './chat-core.js';
import { mountChat } from './widget-ui.js';
import { el, replace } from './dom.js';

export function mountWidget({ base, wsUrl, title = '在线客服', customer = null, signature = null }) {
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
  }, el('span', { class: 'gw-launcher-icon', 'aria-hidden': 'true' }, '💬'), el('span', { class: 'gw-launcher-text' }, '客服'), badge);
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
    ui = mountChat(panel, chat, { mode: 'widget', title, onClose: close, onActivity });
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
