// Agent console entry: sign-in, the agent socket, and the wiring between the
// held conversations (console-state.js) and the views.

import { el, replace, frameId } from './dom.js';
import { AgentConnection } from './agent-conn.js';
import { HeldConversation } from './console-state.js';
import { ConversationList } from './console-list.js';
import { ConversationView } from './console-conv.js';
import { FollowUpList } from './console-followups.js';
import { startStats } from './console-stats.js';
import { Notifier } from './notify.js';
import { UNASSIGN_REASONS, errorText } from './labels.js';

const SIGNIN_KEY = 'gateway.agent';
const TITLE = '客服工作台';
const $ = (sel) => document.querySelector(sel);

const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const base = location.pathname.replace(/[^/]*$/, '');
const WS_URL = `${scheme}//${location.host}${base}ws/agent`;

const notifier = new Notifier();
const convs = new Map(); // id -> HeldConversation
let conn = null;
let stats = null;
let me = null;
let openId = null;
let cred = null;

const list = new ConversationList($('.conv-list'), $('.list-empty'), $('.conv-count'), (id) => openConversation(id));
const view = new ConversationView($('.conv'), {
  send: (text) => sendReply(text),
  retry: (record) => { record.failed = false; conn.send({ type: 'message', id: record.id, conversation: openId, text: record.text }); },
  typing: () => openId && conn.send({ type: 'typing', conversation: openId }),
  transfer: (target) => openId && sendControl({ type: 'transfer', id: frameId('t'), conversation: openId, ...target }),
  close: (outcome) => openId && sendControl({ type: 'close', id: frameId('k'), conversation: openId, ...outcome }),
  warn: (text) => toast(text, 'error'),
  back: () => { document.body.classList.remove('show-conv'); },
});
// A pending case ends when its agent closes it again, resolved or not.
const followUps = new FollowUpList($('.follow-ups'), {
  finish: (conversation, resolution) => sendControl({ type: 'close', id: frameId('k'), conversation, resolution }),
});

// -- sign-in ------------------------------------------------------------------

function loadCred() {
  try {
    const c = JSON.parse(sessionStorage.getItem(SIGNIN_KEY) || 'null');
    return c && c.agent && c.token ? c : null;
  } catch { return null; }
}

function saveCred(c) {
  try {
    if (c) sessionStorage.setItem(SIGNIN_KEY, JSON.stringify(c));
    else sessionStorage.removeItem(SIGNIN_KEY);
  } catch { /* storage off: sign in again after a reload */ }
}

function showSignin(errorText = '') {
  $('#app').hidden = true;
  $('#signin').hidden = false;
  const err = $('.signin-error');
  err.hidden = !errorText;
  replace(err, errorText);
  const form = $('.signin-card');
  if (cred) form.agent.value = cred.agent;
  (form.agent.value ? form.token : form.agent).focus();
  notifier.setTitle(TITLE);
}

$('.signin-card').addEventListener('submit', (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  notifier.unlock(); // a click: the one chance to allow the beep later
  cred = { agent: form.agent.value.trim(), token: form.token.value, status: 'online' };
  form.token.value = '';
  saveCred(cred);
  start();
});

$('.signout').addEventListener('click', () => {
  signOut('');
});
$('.signout-replaced').addEventListener('click', () => {
  $('.replaced').hidden = true;
  signOut('');
});
$('.resume-here').addEventListener('click', () => {
  $('.replaced').hidden = true;
  notifier.unlock();
  conn.start();
});

function signOut(message) {
  if (conn) conn.stop();
  if (stats) stats.stop();
  conn = null;
  stats = null;
  saveCred(null);
  convs.clear();
  list.clear();
  followUps.clear();
  view.hide();
  openId = null;
  me = null;
  $('.placeholder').hidden = false;
  document.body.classList.remove('show-conv');
  showSignin(message);
}

// -- connection ---------------------------------------------------------------

function start() {
  $('#signin').hidden = true;
  $('#app').hidden = false;
  replace($('.me-name'), cred.agent);
  setStatusButtons(cred.status || 'online');
  conn = new AgentConnection({ wsUrl: WS_URL, agent: cred.agent, token: cred.token, status: cred.status || 'online' });
  conn.addEventListener('state', ({ detail }) => {
    const text = { connecting: '连接中…', reconnecting: '网络断开，重连中…', online: '已连接' }[detail.state] || '';
    const node = $('.conn-state');
    replace(node, text);
    node.dataset.state = detail.state;
  });
  conn.addEventListener('fatal', ({ detail }) => signOut(detail.text));
  conn.addEventListener('replaced', () => {
    replace($('.conn-state'), '已在其他窗口登录');
    $('.conn-state').dataset.state = 'replaced';
    $('.replaced').hidden = false;
  });
  conn.addEventListener('frame', ({ detail }) => onFrame(detail));
  conn.start();
}

function onFrame(f) {
  switch (f.type) {
    case 'welcome': return onWelcome(f);
    case 'assigned': return onAssigned(f.conversation);
    case 'unassigned': return onUnassigned(f);
    case 'ack': return onAck(f);
    case 'typing': return onTyping(f);
    case 'feedback': return onFeedback(f);
    case 'follow_up': return followUps.add(f);
    case 'follow_up_due': return onFollowUpDue(f);
    case 'follow_up_done': return followUps.remove(f.conversation);
    case 'error': return onError(f);
    case 'message': case 'closed': return onEntry(f);
    default:
      if (typeof f.seq === 'number' && typeof f.conversation === 'string') onEntry(f);
      return undefined;
  }
}

function onWelcome(f) {
  const first = !me;
  me = f.agent && typeof f.agent === 'object' ? f.agent : { id: cred.agent, name: cred.agent };
  replace($('.me-name'), me.name ? `${me.name}（${me.id}）` : me.id);
  const skills = Array.isArray(f.skills) ? f.skills.map(String) : [];
  view.configure({
    me,
    canned: Array.isArray(f.canned) ? f.canned.map(String) : [],
    skills,
    agents: Array.isArray(f.agents) ? f.agents : [],
    categories: Array.isArray(f.categories) ? f.categories.map(String) : [],
  });
  followUps.set(f.follow_ups);
  if (f.status === 'online' || f.status === 'away') {
    setStatusButtons(f.status);
    cred = { ...cred, status: f.status };
    saveCred(cred);
  }
  const held = new Set();
  const fresh = [];
  for (const data of Array.isArray(f.conversations) ? f.conversations : []) {
    if (!data || !data.id) continue;
    const id = String(data.id);
    held.add(id);
    const known = convs.has(id);
    const conv = upsert(data, !known);
    if (!known) fresh.push(conv);
  }
  // Conversations waiting for this agent come in the welcome, not as `assigned`.
  if (fresh.length) alertNew(fresh.length === 1 ? `新会话：${fresh[0].customerName()}` : `您有 ${fresh.length} 个新会话`);
  for (const id of [...convs.keys()]) {
    if (!held.has(id)) dropConversation(id, '会话已不在您名下');
  }
  // Replies typed while offline go out now, with their ids (the server dedupes).
  for (const conv of convs.values()) {
    for (const record of conv.log.pending()) {
      if (!record.failed) conn.send({ type: 'message', id: record.id, conversation: conv.id, text: record.text });
    }
  }
  if (first) {
    if (stats) stats.stop();
    stats = startStats($('.stats'), { agent: cred.agent, token: cred.token, skills });
  }
  updateTitle();
}

function upsert(data, fresh) {
  const id = String(data.id);
  let conv = convs.get(id);
  if (conv) {
    const added = conv.update(data);
    if (view.isOpen(conv)) {
      view.renderInfo();
      for (const a of added) {
        if (a.kind === 'adopt') view.acked(a.record);
        else view.addEntry(a.entry);
      }
    }
  } else {
    conv = new HeldConversation(data, me.id);
    convs.set(id, conv);
  }
  list.update(conv, { selected: id === openId, fresh });
  return conv;
}

function onAssigned(data) {
  if (!data || typeof data !== 'object' || !data.id) return;
  const conv = upsert(data, true);
  if (view.isOpen(conv)) conv.unread = 0;
  list.update(conv, { selected: conv.id === openId, fresh: true });
  alertNew(`新会话：${conv.customerName()}`);
  updateTitle();
}

function alertNew(text) {
  notifier.beep();
  notifier.flash(`【${text}】`);
  toast(text);
}

function onEntry(f) {
  const conv = convs.get(String(f.conversation));
  if (!conv) return;
  const r = conv.addEntry(f);
  if (r.kind === 'dup') return;
  const open = view.isOpen(conv);
  if (r.kind === 'adopt') {
    if (open) view.acked(r.record);
  } else if (open) {
    view.addEntry(f);
  }
  if (f.type === 'message' && f.from === 'customer') {
    conv.typingUntil = 0;
    if (!open || document.hidden) conv.unread += 1;
  }
  list.update(conv, { selected: conv.id === openId });
  updateTitle();
}

function onAck(f) {
  for (const conv of convs.values()) {
    if (!conv.log.local.has(f.id)) continue;
    const record = conv.ack(f.id, f.seq, f.ts);
    if (record && view.isOpen(conv)) view.acked(record);
    list.update(conv, { selected: conv.id === openId });
    return;
  }
}

function onFeedback(f) {
  const conv = convs.get(String(f.conversation));
  const entry = conv && conv.entries.find((e) => e.seq === f.entry_seq && e.from === 'bot');
  if (!entry || typeof f.helpful !== 'boolean') return;
  entry.helpful = f.helpful;
  if (view.isOpen(conv)) view.markHelpful(entry.seq, f.helpful);
}

function onFollowUpDue(f) {
  const name = followUps.markDue(f.conversation);
  if (!name) return;
  notifier.beep();
  notifier.flash(`【跟进提醒：${name}】`);
  toast(`跟进提醒：${name} 的约定时间到了`);
}

function onTyping(f) {
  const conv = convs.get(String(f.conversation));
  if (!conv) return;
  conv.typingUntil = Date.now() + 4000;
  if (view.isOpen(conv)) view.showTyping();
  list.update(conv, { selected: conv.id === openId });
}

function onError(f) {
  if (f.id) {
    for (const conv of convs.values()) {
      const record = conv.log.fail(f.id);
      if (!record) continue;
      if (view.isOpen(conv)) view.failed(record, errorText(f));
      return;
    }
  }
  toast(errorText(f), 'error');
}

function onUnassigned(f) {
  const reason = UNASSIGN_REASONS[f.reason] || '已离开';
  dropConversation(String(f.conversation), `会话${reason}`);
}

function dropConversation(id, text) {
  const conv = convs.get(id);
  if (!conv) return;
  convs.delete(id);
  list.remove(id);
  if (view.isOpen(conv)) view.setEnded(`${conv.customerName()} 的${text}`);
  else toast(`${conv.customerName()}：${text}`);
  updateTitle();
}

// -- actions ------------------------------------------------------------------

function openConversation(id) {
  const conv = convs.get(id);
  if (!conv) return;
  const previous = openId;
  openId = id;
  conv.unread = 0;
  if (previous && previous !== id && convs.has(previous)) list.update(convs.get(previous), { selected: false });
  list.update(conv, { selected: true });
  view.show(conv);
  document.body.classList.add('show-conv');
  $('.placeholder').hidden = true;
  updateTitle();
}

function sendReply(text) {
  const conv = convs.get(openId);
  if (!conv) return;
  const record = conv.log.addLocal(frameId('x'), text, { ts: Date.now() / 1000 });
  view.localSent(record);
  conn.send({ type: 'message', id: record.id, conversation: conv.id, text });
}

function sendControl(frame) {
  if (!conn.send(frame)) toast('网络未连接，请稍后再试', 'error');
}

function setStatusButtons(status) {
  for (const b of document.querySelectorAll('.status-switch button')) {
    b.setAttribute('aria-pressed', String(b.dataset.status === status));
  }
  document.body.dataset.status = status;
}

for (const b of document.querySelectorAll('.status-switch button')) {
  b.addEventListener('click', () => {
    notifier.unlock();
    const status = b.dataset.status;
    setStatusButtons(status);
    cred = { ...cred, status };
    saveCred(cred);
    if (conn) conn.setStatus(status);
  });
}

$('.sound-toggle').addEventListener('click', (e) => {
  notifier.soundOn = !notifier.soundOn;
  if (notifier.soundOn) { notifier.unlock(); notifier.beep(); }
  e.currentTarget.setAttribute('aria-pressed', String(notifier.soundOn));
  replace(e.currentTarget, notifier.soundOn ? '提示音 开' : '提示音 关');
});

document.addEventListener('visibilitychange', () => {
  if (document.hidden || !openId) return;
  const conv = convs.get(openId);
  if (conv && conv.unread) { conv.unread = 0; list.update(conv, { selected: true }); updateTitle(); }
});

// -- little things --------------------------------------------------------------

function updateTitle() {
  let unread = 0;
  for (const conv of convs.values()) unread += conv.unread;
  const who = me ? ` - ${me.name || me.id}` : '';
  notifier.setTitle(unread ? `(${unread}) ${TITLE}${who}` : `${TITLE}${who}`);
}

function toast(text, kind = 'info') {
  const node = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
  $('.toasts').append(node);
  setTimeout(() => node.remove(), 3500);
}

setInterval(() => { list.tick(convs.values()); followUps.tick(); }, 1000);

cred = loadCred();
if (cred) start();
else showSignin();
