// The customer chat UI, shared by the page (/) and the embeddable widget.
// Everything from the network goes in as text (dom.js builds no HTML).

import { el, append, replace, fmtClock, placeBySeq } from './dom.js';
import { skillLabel, errorText, CLOSE_REASONS } from './labels.js';

const STATE_TEXT = {
  connecting: '正在连接客服…',
  reconnecting: '网络已断开，正在重新连接…',
  failed: '无法连接客服，请稍后刷新页面重试',
};
const STAR_HINTS = ['', '非常不满意', '不满意', '一般', '满意', '非常满意'];
const HUMAN_TEXT = '转人工';
const TYPING_SHOW_MS = 4000;
const PLACEHOLDER = '请输入您的问题…';
// Texts a page may replace (mountChat's `texts`; the widget's data-text-* attributes).
export const DEFAULT_TEXTS = {
  helpful: '有帮助',
  unhelpful: '没帮助',
  feedbackDone: '已反馈',
};

/**
 * Build the chat into `root` and drive it from `chat` (a CustomerChat).
 * @param {object} opts  mode 'page' | 'widget'; onClose (widget: collapse); onActivity(entry) for unread badges;
 *                       texts: any of DEFAULT_TEXTS to replace
 */
export function mountChat(root, chat, { mode = 'page', title = '在线客服', onClose = null, onActivity = null, texts = {} } = {}) {
  const T = { ...DEFAULT_TEXTS };
  for (const [key, value] of Object.entries(texts || {})) if (key in T && typeof value === 'string' && value) T[key] = value;
  const rows = new Map(); // local record id -> row
  const verdicts = new Map(); // bot answer seq -> its 有帮助 / 没帮助 row, until the verdict is stored
  let closed = false;
  let needDivider = false;
  let typingTimer = null;

  const agentLine = el('div', { class: 'gw-sub' }, '智能助手为您服务');
  const humanBtn = el('button', { class: 'gw-human', type: 'button', onclick: () => sendText(HUMAN_TEXT) }, '转人工');
  const header = el('header', { class: 'gw-head' },
    el('div', { class: 'gw-avatar', 'aria-hidden': 'true' }, '客'),
    el('div', { class: 'gw-titles' }, el('div', { class: 'gw-title' }, title), agentLine),
    humanBtn,
    mode === 'widget' ? el('button', { class: 'gw-close', type: 'button', 'aria-label': '收起', onclick: () => onClose && onClose() }, '×') : null);
  const status = el('div', { class: 'gw-status', role: 'status', hidden: true });
  const queue = el('div', { class: 'gw-queue', role: 'status', hidden: true });
  const messages = el('div', { class: 'gw-messages', role: 'log', 'aria-live': 'polite' },
    el('div', { class: 'gw-intro' },
      '您好，我是智能客服小助手。可以问我发货时间、退换货、物流查询等问题；需要人工服务请点“转人工”。'));
  const typing = el('div', { class: 'gw-typing', hidden: true },
    el('span', { class: 'gw-dots', 'aria-hidden': 'true' }, el('i'), el('i'), el('i')), '客服正在输入…');
  const rating = buildRating((score, comment) => chat.rate(score, comment));
  const input = el('textarea', {
    class: 'gw-input', rows: 1, maxlength: 4000, 'aria-label': '输入消息',
    placeholder: PLACEHOLDER,
  });
  const form = el('form', { class: 'gw-composer', onsubmit: (e) => { e.preventDefault(); submit(); } },
    input, el('button', { class: 'gw-send', type: 'submit' }, '发送'));
  const app = el('div', { class: `gw-chat gw-mode-${mode}` }, header, status, queue, messages, typing, rating.node, form);
  root.append(app);

  input.addEventListener('keydown', (e) => {
    // Enter sends; but not while an input method is composing Chinese characters.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submit();
    }
  });
  input.addEventListener('input', () => {
    autosize(input);
    if (input.value.trim()) chat.typing();
  });

  function submit() {
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    autosize(input);
    sendText(text);
    input.focus();
  }

  function sendText(text) {
    if (closed || needDivider) divider();
    chat.send(text);
  }

  function divider() {
    closed = false;
    needDivider = false;
    rating.hide();
    setAgent(null);
    input.placeholder = PLACEHOLDER;
    messages.append(el('div', { class: 'gw-divider' }, el('span', null, '新的会话')));
  }

  function setAgent(name) {
    replace(agentLine, name ? `客服 ${name} 为您服务` : closed ? '会话已结束' : '智能助手为您服务');
    humanBtn.hidden = !!name;
  }

  function scrollDown(force) {
    const near = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 120;
    if (force || near) messages.scrollTop = messages.scrollHeight;
  }

  function notice(text, ts, cls = '') {
    return el('div', { class: `gw-row gw-from-system ${cls}` },
      el('div', { class: 'gw-notice' }, text, ts ? el('span', { class: 'gw-notice-time' }, fmtClock(ts)) : null));
  }

  function bubble(entry) {
    const from = ['customer', 'bot', 'agent'].includes(entry.from) ? entry.from : 'system';
    if (from === 'system') return notice(String(entry.text ?? ''), entry.ts);
    const who = from === 'bot' ? '智能助手' : from === 'agent' ? agentName(entry.agent) : null;
    const suggestions = (Array.isArray(entry.suggestions) ? entry.suggestions : [])
      .filter((s) => s && s.question);
    const chips = suggestions.length
      ? el('div', { class: 'gw-chips' },
        suggestions.map((s) => el('button', {
          class: 'gw-chip', type: 'button', onclick: () => sendText(String(s.question)),
        }, String(s.question))))
      : null;
    return el('div', { class: `gw-row gw-from-${from}` },
      who ? el('div', { class: 'gw-name' }, who) : null,
      el('div', { class: 'gw-bubble' }, String(entry.text ?? '')),
      chips,
      from === 'bot' && entry.faq && typeof entry.seq === 'number' ? verdict(entry.seq) : null,
      el('div', { class: 'gw-meta' }, fmtClock(entry.ts)));
  }

  // 有帮助 / 没帮助 under a bot answer: one click sends the verdict once, then 已反馈.
  function verdict(seq) {
    const box = el('div', { class: 'gw-feedback' });
    if (chat.feedbackGiven(seq) !== undefined) return append(box, done());
    const send = (helpful) => {
      yes.disabled = true;
      no.disabled = true;
      chat.feedback(seq, helpful);
    };
    const yes = el('button', { class: 'gw-fb gw-fb-yes', type: 'button', onclick: () => send(true) }, T.helpful);
    const no = el('button', { class: 'gw-fb gw-fb-no', type: 'button', onclick: () => send(false) }, T.unhelpful);
    verdicts.set(seq, { box, yes, no });
    return append(box, [yes, no]);
  }

  function done() {
    return el('span', { class: 'gw-fb-done' }, T.feedbackDone);
  }

  function renderEntry(entry) {
    let node;
    if (entry.type === 'message') {
      node = bubble(entry);
      if (entry.from === 'agent') hideTyping();
    } else if (entry.type === 'assigned') {
      const name = agentName(entry.agent);
      node = notice(`客服 ${name} 已接入，为您服务`, entry.ts, 'gw-assigned');
      queue.hidden = true;
      setAgent(name);
    } else if (entry.type === 'transferred') {
      node = notice('正在为您转接其他客服，请稍候…', entry.ts);
      replace(agentLine, '正在转接…');
    } else if (entry.type === 'closed') {
      node = notice(CLOSE_REASONS[entry.reason] || '会话已结束', entry.ts, 'gw-closed');
      closed = true;
      queue.hidden = true;
      hideTyping();
      setAgent(null);
      input.placeholder = '会话已结束，发送新消息将开始新的会话';
    } else {
      return;
    }
    placeBySeq(messages, node, entry.seq);
  }

  function hideTyping() {
    clearTimeout(typingTimer);
    typing.hidden = true;
  }

  function setMeta(row, record) {
    const meta = row.querySelector('.gw-meta');
    if (record.failed) {
      row.classList.add('gw-failed');
      replace(meta, el('button', { class: 'gw-retry', type: 'button', onclick: () => chat.retry(record) },
        `${record.error || '发送失败'}，点击重试`));
    } else if (record.seq === null) {
      row.classList.remove('gw-failed');
      replace(meta, '发送中…');
    } else {
      row.classList.remove('gw-failed');
      replace(meta, fmtClock(record.ts));
    }
  }

  chat.addEventListener('state', ({ detail }) => {
    const text = STATE_TEXT[detail.state];
    status.hidden = !text;
    status.classList.toggle('gw-status-error', detail.state === 'failed');
    if (text) replace(status, text);
  });
  chat.addEventListener('conversation', ({ detail }) => {
    if (detail.previous && (closed || needDivider)) divider();
    // A verdict names a seq of the conversation it was given in: the last one's answers take none now.
    for (const v of verdicts.values()) v.box.remove();
    verdicts.clear();
  });
  chat.addEventListener('feedback', ({ detail }) => {
    const v = verdicts.get(detail.seq);
    if (!v) return;
    verdicts.delete(detail.seq);
    replace(v.box, done());
  });
  chat.addEventListener('feedback-failed', ({ detail }) => {
    const v = verdicts.get(detail.seq);
    if (!v) return;
    v.yes.disabled = false; // try again
    v.no.disabled = false;
  });
  chat.addEventListener('local', ({ detail: { record } }) => {
    const row = el('div', { class: 'gw-row gw-from-customer', dataset: { local: '1' } },
      el('div', { class: 'gw-bubble' }, record.text), el('div', { class: 'gw-meta' }));
    rows.set(record.id, row);
    setMeta(row, record);
    messages.append(row);
    scrollDown(true);
  });
  chat.addEventListener('ack', ({ detail: { record } }) => {
    const row = rows.get(record.id);
    if (!row) return;
    rows.delete(record.id);
    delete row.dataset.local;
    row.dataset.seq = String(record.seq);
    setMeta(row, record);
  });
  chat.addEventListener('failed', ({ detail: { record, error } }) => {
    record.error = errorText(error);
    const row = rows.get(record.id);
    if (row) setMeta(row, record);
  });
  chat.addEventListener('retrying', ({ detail: { record } }) => {
    const row = rows.get(record.id);
    if (row) setMeta(row, record);
  });
  chat.addEventListener('entry', ({ detail: { entry, replay } }) => {
    renderEntry(entry);
    scrollDown(replay);
    if (!replay && onActivity && entry.from !== 'customer') onActivity(entry);
  });
  chat.addEventListener('queued', ({ detail }) => {
    const pos = Number(detail.position) || 0;
    const team = detail.skill ? `${skillLabel(detail.skill)}客服` : '客服';
    replace(queue, pos <= 1
      ? `正在为您接通${team}，您排在第 1 位`
      : `${team}繁忙，您当前排在第 ${pos} 位，请稍候`);
    queue.hidden = closed;
  });
  chat.addEventListener('typing', ({ detail }) => {
    if (detail.from && detail.from !== 'agent') return;
    typing.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
    scrollDown(false);
  });
  chat.addEventListener('survey', () => { rating.show(); });
  chat.addEventListener('rated', () => {
    rating.hide();
    messages.append(notice('感谢您的评价！', null, 'gw-rated'));
    scrollDown(true);
  });
  chat.addEventListener('rate-failed', (ev) => { rating.failed(errorText(ev.detail)); });
  chat.addEventListener('notice', ({ detail }) => {
    messages.append(notice(detail.text, null, detail.level === 'error' ? 'gw-error' : ''));
    scrollDown(true);
  });
  chat.addEventListener('error', ({ detail }) => {
    messages.append(notice(errorText(detail), null, 'gw-error'));
    scrollDown(true);
  });

  if (chat.surveyPending) rating.show();
  return { node: app, focus: () => input.focus() };
}

function agentName(agent) {
  return (agent && agent.name) ? String(agent.name) : '客服';
}

function autosize(textarea) {
  textarea.style.height = 'auto';
  textarea.style.height = `${Math.min(textarea.scrollHeight, 120)}px`;
}

function buildRating(onSubmit) {
  let score = 0;
  const hint = el('div', { class: 'gw-star-hint' }, '请点击星星评分');
  const stars = [1, 2, 3, 4, 5].map((n) => el('button', {
    class: 'gw-star', type: 'button', role: 'radio', 'aria-checked': 'false', 'aria-label': `${n} 星`,
    dataset: { score: n }, onclick: () => pick(n),
    onmouseenter: () => paint(n), onmouseleave: () => paint(score),
  }, '★'));
  const comment = el('textarea', { class: 'gw-comment', rows: 2, maxlength: 500, placeholder: '还有什么想告诉我们的？（选填）' });
  const submitBtn = el('button', { class: 'gw-rate-submit', type: 'button', disabled: true, onclick: submit }, '提交评价');
  const error = el('div', { class: 'gw-rate-error', hidden: true });
  const node = el('div', { class: 'gw-rating', hidden: true },
    el('div', { class: 'gw-rating-title' }, '请为本次服务评分'),
    el('div', { class: 'gw-stars', role: 'radiogroup', 'aria-label': '评分' }, stars),
    hint, comment, error,
    el('div', { class: 'gw-rating-actions' },
      el('button', { class: 'gw-rate-skip', type: 'button', onclick: () => { node.hidden = true; } }, '暂不评价'),
      submitBtn));

  function paint(n) {
    stars.forEach((s, i) => s.classList.toggle('gw-on', i < n));
    replace(hint, n ? STAR_HINTS[n] : '请点击星星评分');
  }
  function pick(n) {
    score = n;
    stars.forEach((s, i) => s.setAttribute('aria-checked', String(i + 1 === n)));
    paint(n);
    submitBtn.disabled = false;
  }
  function submit() {
    if (!score) return;
    submitBtn.disabled = true;
    replace(submitBtn, '提交中…');
    error.hidden = true;
    onSubmit(score, comment.value.trim());
  }
  return {
    node,
    show() { node.hidden = false; },
    hide() { node.hidden = true; },
    failed(text) {
      submitBtn.disabled = false;
      replace(submitBtn, '提交评价');
      replace(error, text);
      error.hidden = false;
    },
  };
}

