// One conversation's log as a client sees it: entries are deduplicated by seq,
// and a message this client sent (rendered before the server stored it) is
// matched with its log entry by the ack, or, after a reconnect, by its text.
// Pure logic, no DOM and no socket.

export class ChatLog {
  /** @param {(entry: object) => boolean} isOwn  true for entries this client wrote */
  constructor(isOwn) {
    this.isOwn = isOwn;
    this.seen = new Set();
    this.lastSeq = 0;
    this.local = new Map(); // id -> record, until the server has given it a seq
  }

  /** Forget the seqs (a new conversation starts at 1); unsent local records stay. */
  reset() {
    this.seen.clear();
    this.lastSeq = 0;
  }

  /** A message this client is sending: {id, text, seq: null, failed: false}. */
  addLocal(id, text, extra = {}) {
    const record = { id, text, seq: null, failed: false, ...extra };
    this.local.set(id, record);
    return record;
  }

  /** Records sent but not yet stored (to send again, same id, after a reconnect). */
  pending() {
    return [...this.local.values()];
  }

  /** The server stored local message `id` as `seq`. Returns the record, or null (a repeated ack). */
  ack(id, seq) {
    const record = this.local.get(id);
    if (!record) return null;
    this.local.delete(id);
    record.seq = seq;
    record.failed = false;
    this._see(seq);
    return record;
  }

  /** The server refused local message `id`. Returns the record or null. */
  fail(id) {
    const record = this.local.get(id);
    if (record) record.failed = true;
    return record || null;
  }

  /**
   * A log entry arrived. Returns {kind: 'dup'} (already shown), {kind: 'adopt', record}
   * (it is one of our local messages: show it as stored) or {kind: 'new'}.
   */
  receive(entry) {
    if (typeof entry.seq !== 'number') return { kind: 'new' };
    if (this.seen.has(entry.seq)) return { kind: 'dup' };
    this._see(entry.seq);
    if (entry.type === 'message' && this.isOwn(entry)) {
      for (const record of this.local.values()) {
        if (record.text === entry.text) {
          this.local.delete(record.id);
          record.seq = entry.seq;
          record.failed = false;
          return { kind: 'adopt', record };
        }
      }
    }
    return { kind: 'new' };
  }

  _see(seq) {
    this.seen.add(seq);
    if (seq > this.lastSeq) this.lastSeq = seq;
  }
}
