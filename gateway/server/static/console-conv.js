// The open conversation in the console: info bar (orders, handoff reason, the
// customer's earlier conversations), history, reply box with canned replies,
// transfer and close (resolution, category, a pending case's follow-up time).

import { el, clear, replace, fmtClock, fmtDuration, placeBySeq } from './dom.js';
import { CHANNELS, PRIORITIES, RESOLUTIONS, categoryLabel, label, reasonText, skillLabel } from './labels.js';

const TYPING_EVERY_MS = 2500;
const CLOSED_BY = { ...RESOLUTIONS, customer: '客户结束', idle: '长时间无操作', timeout: '超时' };

export class ConversationView {
  /**
   * @param {HTMLElement} root  the <section class="conv"> of console.html
   * @param {object} on  send(text), typing(), transfer({skill}|{agent}),
   *   close({resolution, category?, follow_up_at?, note?}), warn(text), back()
   */
  constructor(root, on) {
    this.root = root;
    this.on = on;
    this.conv = null;
    this.me = null;
    this.localRows = new Map();
    this.lastTyping = 0;
    const $ = (sel) => root.querySelector(sel);
    this.title = $('.conv-title');
    this.info = $('.conv-info');
    this.history = $('.history');
    this.typing = $('.typing');
    this.ended = $('.ended');
    this.canned = $('.canned');
    this.input = $('.reply-input');
    this.form = $('.reply');
    this.transferTarget = $('.transfer-target');
    this.resolution = $('.resolution');
    this.category = $('.category');
    this.pendingFields = $('.pending-fields');
    this.followUpAt = $('.follow-up-at');
    this.followUpNote = $('.follow-up-note');

    $('.back').addEventListener('click', () => on.back());
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this._submit(); });
    this.input.addEventListener('keydown', (e) => {
      // Enter sends, Shift+Enter is a new line; never while an IME is composing.
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        this._submit();
      }
    });
    this.input.addEventListener('input', () => {
      const now = Date.now();
      if (this.input.value.trim() && now - this.lastTyping > TYPING_EVERY_MS) {
        this.lastTyping = now;
        on.typing();
      }
    });
    $('.transfer-btn').addEventListener('click', () => {
      const [kind, id] = this.transferTarget.value.split(':');
      if (!id) { this.transferTarget.focus(); return; }
      on.transfer(kind === 'skill' ? { skill: id } : { agent: id });
      this.transferTarget.value = '';
    });
    $('.close-btn').addEventListener('click', () => this._close());
    for (const [value, text] of Object.entries(RESOLUTIONS)) this.resolution.append(el('option', { value }, text));
    this.resolution.addEventListener('change', () => this._pendingShown());
  }

  /** Welcome data: who I am, canned replies, skills and colleagues for the transfer menu, close categories. */
  configure({ me, canned, skills, agents, categories = [] }) {
    this.me = me;
    clear(this.category);
    this.category.append(el('option', { value: '' }, '问题分类（可选）'),
      ...categories.map((c) => el('option', { value: c }, categoryLabel(c))));
    this.category.hidden = categories.length === 0;
    clear(this.canned);
    for (const text of canned) {
      this.canned.append(el('button', { class: 'canned-chip', type: 'button', title: text, onclick: () => this._insertCanned(text) }, text));
    }
    this.canned.hidden = canned.length === 0;
    clear(this.transferTarget);
    this.transferTarget.append(el('option', { value: '' }, '转接给…'));
    if (skills.length) {
      this.transferTarget.append(el('optgroup', { label: '技能组' },
        skills.map((s) => el('option', { value: `skill:${s}` }, `${skillLabel(s)}组`))));
    }
    const others = agents.filter((a) => a && a.id && a.id !== me.id);
    if (others.length) {
      this.transferTarget.append(el('optgroup', { label: '客服' },
        others.map((a) => el('option', { value: `agent:${a.id}` },
          `${a.name || a.id}（${(a.skills || []).map(skillLabel).join('/')}）`))));
    }
  }

  /** Show `conv` (a HeldConversation): the whole history and its local replies. */
  show(conv) {
    if (this.conv !== conv) this.input.value = '';
    this.conv = conv;
    this.localRows.clear();
    this.root.hidden = false;
    this.ended.hidden = true;
    this.form.hidden = false;
    this.root.querySelector('.conv-actions').hidden = false;
    this.resolution.value = 'resolved';
    this.category.value = '';
    this.followUpNote.value = '';
    this._pendingShown();
    this.renderInfo();
    clear(this.history);
    for (const entry of conv.entries) this._place(entry);
    for (const record of conv.log.pending()) this.localSent(record);
    this.typing.hidden = true;
    this.history.scrollTop = this.history.scrollHeight;
    this.input.focus();
  }

  hide() {
    this.conv = null;
    this.root.hidden = true;
  }

  isOpen(conv) { return !!conv && this.conv === conv && !this.root.hidden; }

  renderInfo() {
    const c = this.conv;
    replace(this.title,
      el('span', { class: 'cust-name' }, c.customerName()),
      c.customer.id && c.customer.name ? el('span', { class: 'cust-id' }, String(c.customer.id)) : null,
      el('span', { class: `badge prio-${c.priority}` }, label(PRIORITIES, c.priority)),
      c.skill ? el('span', { class: 'badge' }, skillLabel(c.skill)) : null,
      c.channel ? el('span', { class: 'badge light' }, label(CHANNELS, c.channel)) : null,
      c.reopenedFrom ? el('span', { class: 'badge reopened', title: `再次来访：${c.reopenedFrom}` }, '再次来访') : null);
    const times = [];
    if (c.createdAt) times.push(`创建于 ${fmtClock(c.createdAt)}`);
    if (c.queuedAt && c.assignedAt) times.push(`排队 ${fmtDuration(c.assignedAt - c.queuedAt)}`);
    replace(this.info,
      el('div', { class: 'info-row orders' }, el('span', { class: 'info-label' }, '订单号'),
        c.orders.length
          ? c.orders.map((o) => el('button', { class: 'order-chip', type: 'button', title: '点击复制', onclick: () => copy(o) }, o))
          : el('span', { class: 'muted' }, '无')),
      el('div', { class: 'info-row handoff' }, el('span', { class: 'info-label' }, '转人工原因'),
        el('span', { class: 'handoff-reason' }, handoffText(c) || '—'),
        extraReasons(c).map((r) => el('span', { class: 'reason-chip' }, reasonText(r)))),
      c.history.length ? customerHistory(c) : null,
      times.length ? el('div', { class: 'info-row muted' }, times.join(' · ')) : null);
  }

  /** The close controls as a `close` frame's fields (null, with a warning, when the follow-up time is bad). */
  _close() {
    const outcome = { resolution: this.resolution.value };
    if (this.category.value) outcome.category = this.category.value;
    if (outcome.resolution === 'pending') {
      const at = new Date(this.followUpAt.value).getTime() / 1000;
      if (!Number.isFinite(at) || at <= Date.now() / 1000) {
        this.on.warn('请选择一个将来的跟进时间');
        this.followUpAt.focus();
        return;
      }
      outcome.follow_up_at = Math.round(at);
      const note = this.followUpNote.value.trim();
      if (note) outcome.note = note;
    }
    this.on.close(outcome);
  }

  /** Pending shows the follow-up time (default: tomorrow 10:00) and note. */
  _pendingShown() {
    const pending = this.resolution.value === 'pending';
    this.pendingFields.hidden = !pending;
    if (pending && !this.followUpAt.value) {
      const d = new Date(Date.now() + 86400000);
      d.setHours(10, 0, 0, 0);
      this.followUpAt.value = localInput(d);
    }
  }

  /** A new log entry of the open conversation. */
  addEntry(entry) {
    this._place(entry);
    if (entry.type === 'message' && entry.from === 'customer') this.typing.hidden = true;
    this._scroll(entry.type === 'message' && entry.from === 'agent');
  }

  localSent(record) {
    const row = this._bubble({ from: 'agent', agent: { id: this.me.id, name: this.me.name }, text: record.text, ts: record.ts });
    row.dataset.local = '1';
    this.localRows.set(record.id, row);
    this.history.append(row);
    this._setMeta(row, record);
    this._scroll(true);
  }

  /** A local reply was stored (ack, or its entry came back first). */
  acked(record) {
    const row = this.localRows.get(record.id);
    if (!row) return;
    this.localRows.delete(record.id);
    delete row.dataset.local;
    row.dataset.seq = String(record.seq);
    this._setMeta(row, record);
  }

  failed(record, text) {
    const row = this.localRows.get(record.id);
    if (row) { record.error = text; this._setMeta(row, record); }
  }

  showTyping() {
    this.typing.hidden = false;
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => { this.typing.hidden = true; }, 4000);
  }

  /** The conversation left this agent: keep the history readable, disable the reply box. */
  setEnded(text) {
    replace(this.ended, text);
    this.ended.hidden = false;
    this.form.hidden = true;
    this.canned.hidden = true;
    this.typing.hidden = true;
    this.root.querySelector('.conv-actions').hidden = true;
  }

  _submit() {
    const text = this.input.value.trim();
    if (!text || !this.conv) return;
    this.input.value = '';
    this.on.send(text);
    this.input.focus();
  }

  _insertCanned(text) {
    const { input } = this;
    const start = input.selectionStart ?? input.value.length;
    const end = input.selectionEnd ?? input.value.length;
    input.value = input.value.slice(0, start) + text + input.value.slice(end);
    input.focus();
    input.selectionStart = input.selectionEnd = start + text.length;
  }

  _place(entry) {
    let node;
    if (entry.type === 'message') {
      node = entry.from === 'system' ? notice(String(entry.text ?? ''), entry.ts) : this._bubble(entry);
    } else if (entry.type === 'assigned') {
      node = notice(`已分配给 ${(entry.agent && entry.agent.name) || '客服'}`, entry.ts);
    } else if (entry.type === 'transferred') {
      node = notice('会话已转接', entry.ts);
    } else if (entry.type === 'closed') {
      node = notice(`会话已结束（${CLOSED_BY[entry.reason] || String(entry.reason ?? '')}）`, entry.ts);
    } else {
      return;
    }
    placeBySeq(this.history, node, entry.seq);
  }

  _bubble(entry) {
    const from = ['customer', 'bot', 'agent'].includes(entry.from) ? entry.from : 'system';
    const mine = from === 'agent' && entry.agent && this.me && entry.agent.id === this.me.id;
    let who = '客户';
    if (from === 'bot') who = '机器人';
    else if (from === 'agent') who = mine ? `${this.me.name || '我'}（我）` : (entry.agent && entry.agent.name) || '客服';
    const extra = [];
    if (from === 'bot' && entry.faq) extra.push(el('span', { class: 'faq-tag' }, `FAQ ${entry.faq}`));
    if (from === 'bot' && typeof entry.helpful === 'boolean') extra.push(helpfulTag(entry.helpful));
    const suggestions = Array.isArray(entry.suggestions) ? entry.suggestions.filter((s) => s && s.question) : [];
    if (suggestions.length) extra.push(el('div', { class: 'suggested' }, '推荐：', suggestions.map((s) => String(s.question)).join('；')));
    return el('div', { class: `msg from-${from}${mine ? ' mine' : ''}` },
      el('div', { class: 'who' }, who, el('span', { class: 'time' }, fmtClock(entry.ts))),
      el('div', { class: 'bubble' }, String(entry.text ?? '')),
      extra,
      el('div', { class: 'meta' }));
  }

  /** The customer judged bot message `seq` (live, after the history was drawn). */
  markHelpful(seq, helpful) {
    const row = this.history.querySelector(`.msg.from-bot[data-seq="${Number(seq)}"]`);
    if (!row) return;
    const old = row.querySelector('.helpful-tag');
    const tag = helpfulTag(helpful);
    if (old) old.replaceWith(tag);
    else row.querySelector('.meta').before(tag);
  }

  _setMeta(row, record) {
    const meta = row.querySelector('.meta');
    if (record.failed) {
      row.classList.add('failed');
      replace(meta, el('button', { class: 'retry', type: 'button', onclick: () => this.on.retry(record) }, `${record.error || '发送失败'}，点击重试`));
    } else {
      row.classList.remove('failed');
      replace(meta, record.seq === null ? '发送中…' : '');
    }
  }

  _scroll(force) {
    const h = this.history;
    if (force || h.scrollHeight - h.scrollTop - h.clientHeight < 150) h.scrollTop = h.scrollHeight;
  }
}

// The server joins the bot's reason codes with "、"; orders have their own row.
function handoffCodes(c) {
  return c.handoffReason.split('、').map((r) => r.trim()).filter((r) => r && !r.startsWith('order:'));
}

function handoffText(c) {
  return handoffCodes(c).map(reasonText).join('；');
}

function extraReasons(c) {
  const shown = new Set(c.handoffReason.split('、').map((r) => r.trim()));
  return c.reasons.filter((r) => !shown.has(r));
}

function helpfulTag(helpful) {
  return el('span', { class: `helpful-tag ${helpful ? 'helpful-yes' : 'helpful-no'}` },
    helpful ? '客户反馈：有帮助' : '客户反馈：没帮助');
}

/** The customer's last conversations (newest first), from the `history` of the conversation object. */
function customerHistory(c) {
  return el('details', { class: 'info-row cust-history' },
    el('summary', {}, el('span', { class: 'info-label' }, '历史会话'), `${c.history.length} 次`,
      c.history.some((h) => h.resolution === 'unresolved' || h.resolution === 'pending' || (h.rating && h.rating <= 2))
        ? el('span', { class: 'reason-chip' }, '有未解决或差评') : null),
    el('ul', { class: 'hist-list' }, c.history.map((h) => el('li', { class: 'hist-item', dataset: { id: String(h.id) } },
      el('span', { class: 'hist-time' }, fmtClock(h.closed_at)),
      h.resolution ? el('span', { class: `badge res-${h.resolution}` }, label(RESOLUTIONS, h.resolution)) : null,
      h.category ? el('span', { class: 'badge light' }, categoryLabel(h.category)) : null,
      typeof h.rating === 'number' ? el('span', { class: 'hist-rating', title: `评分 ${h.rating}` }, '★'.repeat(h.rating)) : null,
      el('span', { class: 'hist-first' }, String(h.first_message ?? ''))))));
}

/** A Date as a datetime-local input value (local time, minutes). */
function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function notice(text, ts) {
  return el('div', { class: 'msg from-system' }, el('div', { class: 'notice' }, text, ts ? el('span', { class: 'time' }, fmtClock(ts)) : null));
}

function copy(text) {
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).catch(() => {});
}
