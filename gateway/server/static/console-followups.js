// The agent's pending cases (closed "pending", not ended yet): when each is due, due and overdue
// ones marked, and the two ways to end one (已解决 / 未解决: a `close` of that conversation).

import { el, replace, fmtClock, fmtDuration } from './dom.js';
import { categoryLabel } from './labels.js';

const OVERDUE_AFTER_S = 3600; // due for longer than this: overdue

export class FollowUpList {
  /**
   * @param {HTMLElement} root  the <details class="follow-ups"> of console.html
   * @param {object} on  finish(conversation, resolution)
   */
  constructor(root, on) {
    this.root = root;
    this.on = on;
    this.ul = root.querySelector('.fu-list');
    this.empty = root.querySelector('.fu-empty');
    this.count = root.querySelector('.fu-count');
    this.dueCount = root.querySelector('.fu-due-count');
    this.items = new Map(); // conversation -> {item, li, state}
  }

  /** The whole list (welcome.follow_ups). */
  set(items) {
    this.clear();
    for (const item of Array.isArray(items) ? items : []) this.add(item);
  }

  /** One case joined the list (a `follow_up` frame), or changed. */
  add(item) {
    if (!item || !item.conversation) return;
    const id = String(item.conversation);
    this.remove(id);
    const row = { item, state: el('span', { class: 'fu-state' }) };
    const name = customerName(item.customer, id);
    row.li = el('li', { class: 'fu-item', dataset: { id } },
      el('div', { class: 'line1' }, el('span', { class: 'name' }, name),
        item.category ? el('span', { class: 'badge light' }, categoryLabel(item.category)) : null, row.state),
      el('div', { class: 'fu-when muted' }, `约定 ${fmtClock(item.follow_up_at)} 跟进`),
      item.note ? el('div', { class: 'fu-note' }, String(item.note)) : null,
      el('div', { class: 'fu-actions' },
        el('button', { type: 'button', class: 'fu-resolved', onclick: () => this.on.finish(id, 'resolved') }, '已解决'),
        el('button', { type: 'button', class: 'fu-unresolved', onclick: () => this.on.finish(id, 'unresolved') }, '未解决')));
    this.items.set(id, row);
    // soonest first
    const next = [...this.ul.children].find((li) => {
      const other = this.items.get(li.dataset.id);
      return other && other.item.follow_up_at > item.follow_up_at;
    });
    this.ul.insertBefore(row.li, next || null);
    this.tick();
  }

  /** The server says the time has come (`follow_up_due`). Returns the case's customer name, if listed. */
  markDue(conversation) {
    const row = this.items.get(String(conversation));
    if (!row) return null;
    row.forced = true;
    this.tick();
    return customerName(row.item.customer, String(conversation));
  }

  remove(conversation) {
    const row = this.items.get(String(conversation));
    if (!row) return;
    row.li.remove();
    this.items.delete(String(conversation));
    this.tick();
  }

  clear() {
    for (const id of [...this.items.keys()]) this.remove(id);
  }

  /** Refresh each case's state (every second): not yet due, due, overdue. */
  tick() {
    const now = Date.now() / 1000;
    let due = 0;
    for (const row of this.items.values()) {
      const late = now - row.item.follow_up_at;
      let state = 'waiting';
      if (late >= OVERDUE_AFTER_S) state = 'overdue';
      else if (late >= 0 || row.forced) state = 'due';
      if (state !== 'waiting') due += 1;
      row.li.dataset.state = state;
      if (state === 'overdue') replace(row.state, `已逾期 ${fmtDuration(late)}`);
      else if (state === 'due') replace(row.state, '已到期');
      else replace(row.state, `还有 ${fmtDuration(-late)}`);
    }
    this.empty.hidden = this.items.size > 0;
    replace(this.count, String(this.items.size));
    replace(this.dueCount, due ? `${due} 个到期` : '');
    this.root.classList.toggle('has-due', due > 0);
  }
}

/** As the conversation list names a customer: the name, else the id, else 访客 and the id's end (anonymous). */
function customerName(customer, fallback) {
  const c = customer && typeof customer === 'object' ? customer : {};
  if (c.name) return String(c.name);
  if (c.id && !String(c.id).startsWith('anon-')) return String(c.id);
  return `访客 ${String(c.id || fallback).slice(-4)}`;
}
