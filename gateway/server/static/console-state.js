// What the console knows about one held conversation (no DOM): its log
// (deduplicated by seq), local replies waiting for their ack, unread count,
// and how long the customer has been waiting for an answer.

import { ChatLog } from './log.js';

export class HeldConversation {
  constructor(data, meId) {
    this.id = String(data.id);
    this.meId = meId;
    this.log = new ChatLog((e) => e.from === 'agent' && !!e.agent && e.agent.id === meId);
    this.entries = []; // log entries in seq order
    this.unread = 0;
    this.closed = null; // the closed entry, once there is one
    this.typingUntil = 0;
    this.update(data);
    // Unanswered customer messages of a new assignment count as unread.
    this.unread = this.unansweredCount();
  }

  /** Take the fields of an `assigned` / welcome conversation object; merge its messages. */
  update(data) {
    this.customer = data.customer && typeof data.customer === 'object' ? data.customer : {};
    this.channel = data.channel || '';
    this.skill = data.skill || '';
    this.priority = data.priority || 'normal';
    const meta = data.meta && typeof data.meta === 'object' ? data.meta : {};
    this.orders = Array.isArray(meta.orders) ? meta.orders.map(String) : [];
    this.handoffReason = meta.handoff_reason ? String(meta.handoff_reason) : '';
    this.reasons = Array.isArray(meta.reasons) ? meta.reasons.map(String) : [];
    this.history = Array.isArray(data.history) ? data.history.filter((h) => h && h.id) : []; // earlier conversations
    this.reopenedFrom = data.reopened_from ? String(data.reopened_from) : '';
    this.createdAt = typeof data.created_at === 'number' ? data.created_at : null;
    this.queuedAt = typeof data.queued_at === 'number' ? data.queued_at : null;
    const added = [];
    for (const entry of Array.isArray(data.messages) ? data.messages : []) {
      const r = this.addEntry(entry);
      if (r.kind !== 'dup') added.push({ entry, ...r });
    }
    return added;
  }

  /** A log entry arrived: {kind: 'dup' | 'new' | 'adopt', record?}. */
  addEntry(entry) {
    if (!entry || typeof entry !== 'object') return { kind: 'dup' };
    const r = this.log.receive(entry);
    if (r.kind === 'dup') return r;
    this._insert(entry);
    if (entry.type === 'closed') this.closed = entry;
    return r;
  }

  /** The agent's reply was stored as `seq`. */
  ack(id, seq, ts) {
    const record = this.log.ack(id, seq);
    if (record) {
      this._insert({ type: 'message', from: 'agent', agent: { id: this.meId }, text: record.text, seq, ts: ts ?? record.ts });
    }
    return record;
  }

  _insert(entry) {
    let i = this.entries.length;
    while (i > 0 && this.entries[i - 1].seq > entry.seq) i -= 1;
    this.entries.splice(i, 0, entry);
  }

  get assignedAt() {
    for (let i = this.entries.length - 1; i >= 0; i -= 1) {
      if (this.entries[i].type === 'assigned') return this.entries[i].ts;
    }
    return null;
  }

  /** ts of the oldest customer message no agent has answered yet, or null. */
  waitingSince() {
    let since = null;
    for (const e of this.entries) {
      if (e.type !== 'message') continue;
      if (e.from === 'customer') { if (since === null) since = e.ts; }
      else if (e.from === 'agent') since = null;
    }
    return since;
  }

  unansweredCount() {
    let n = 0;
    for (const e of this.entries) {
      if (e.type !== 'message') continue;
      if (e.from === 'customer') n += 1;
      else if (e.from === 'agent') n = 0;
    }
    return n;
  }

  /** Last message text for the list. */
  preview() {
    for (let i = this.entries.length - 1; i >= 0; i -= 1) {
      const e = this.entries[i];
      if (e.type === 'message' && typeof e.text === 'string') return e.text;
    }
    return '';
  }

  lastTs() {
    const e = this.entries[this.entries.length - 1];
    return e ? e.ts : this.createdAt;
  }

  customerName() {
    const c = this.customer;
    if (c.name) return String(c.name);
    // Anonymous web visitors get a server id like "anon-8be59fd6…": show a short tag.
    if (c.id && !String(c.id).startsWith('anon-')) return String(c.id);
    return `访客 ${String(c.id || this.id).slice(-4)}`;
  }
}
