// The customer's side of the wire protocol, without any DOM: hello and resume
// over ws-conn.js's reconnecting socket, dedupe by seq, the session kept in sessionStorage.
// UIs listen to its events: state, conversation, entry, local, ack, failed,
// queued, typing, survey, rated, notice, feedback, feedback-failed.

import { ChatLog } from './log.js';
import { frameId } from './dom.js';
import { ReconnectingSocket } from './ws-conn.js';

const TYPING_EVERY_MS = 2500;

export class CustomerChat extends EventTarget {
  /**
   * @param {object} o
   * @param {string} o.wsUrl        ws://host/ws/customer
   * @param {string} [o.storageKey] sessionStorage key for {conversation, token, seq, survey, rated}
   * @param {object} [o.customer]   {id, name}; anonymous when absent
   * @param {string} [o.signature]  HMAC of customer.id, when the server requires it
   */
  constructor({ wsUrl, storageKey = 'gateway.chat', customer = null, signature = null, channel = 'web' }) {
    super();
    this.wsUrl = wsUrl;
    this.storageKey = storageKey;
    this.customer = customer && customer.id ? customer : null;
    this.signature = signature;
    this.channel = channel;
    this.session = this._load();
    this.log = new ChatLog((e) => e.from === 'customer');
    this.controls = []; // frames other than messages, waiting for a connection
    this.feedbackSent = new Map(); // feedback frame id -> {seq, helpful}, until acked or refused
    this.lastTyping = 0;
    this.resumeSent = false;
    this.socket = new ReconnectingSocket({
      url: wsUrl,
      hello: () => this._hello(),
      onState: (state) => this._emit('state', { state }),
      onFrame: (frame, { first }) => this._onFrame(frame, first),
      onClose: (code) => this._onClose(code),
    });
  }

  get ready() { return this.socket.ready; }

  /** idle, connecting, online, reconnecting or failed. */
  get state() { return this.socket.state; }

  get conversation() { return this.session ? this.session.conversation : null; }

  /** True when a survey is waiting for this customer's stars (survives a reload). */
  get surveyPending() { return !!(this.session && this.session.survey && !this.session.rated); }

  start() { this.socket.start(); }

  stop() { this.socket.stop(); }

  /** Send a message; it is shown at once and gets its seq from the ack. Returns the record. */
  send(text) {
    const record = this.log.addLocal(frameId('m'), text, { ts: Date.now() / 1000 });
    this._emit('local', { record });
    this._sendMessage(record);
    return record;
  }

  /** Send a refused or unsent message again, with the same id (the server dedupes by id). */
  retry(record) {
    record.failed = false;
    if (!this.log.local.has(record.id)) this.log.local.set(record.id, record);
    this._emit('retrying', { record });
    this._sendMessage(record);
  }

  typing() {
    const now = Date.now();
    if (!this.ready || now - this.lastTyping < TYPING_EVERY_MS) return;
    this.lastTyping = now;
    this._send({ type: 'typing' });
  }

  rate(score, comment) {
    const frame = { type: 'rate', id: frameId('r'), score, comment: comment || '' };
    this.rateId = frame.id;
    if (!this._send(frame)) this.controls.push(frame);
  }

  /** Whether bot answer `seq` of this conversation helped; sent once (the UI shows it as given). */
  feedback(seq, helpful) {
    const frame = { type: 'feedback', id: frameId('f'), seq, helpful: !!helpful };
    this.feedbackSent.set(frame.id, { seq, helpful: frame.helpful, frame });
    if (!this._send(frame)) this.controls.push(frame);
  }

  /** The verdict this tab gave on bot answer `seq` of the current conversation (true, false or undefined). */
  feedbackGiven(seq) {
    const given = this.session && this.session.feedback;
    return given ? given[seq] : undefined;
  }

  /** End the conversation (reason "customer"). */
  end() {
    const frame = { type: 'close' };
    if (!this._send(frame)) this.controls.push(frame);
  }

  // -- connection -------------------------------------------------------------

  _hello() {
    const hello = { type: 'hello', channel: this.channel };
    if (this.customer) hello.customer = this.customer;
    if (this.signature) hello.signature = this.signature;
    this.resumeSent = !!(this.session && this.session.conversation && this.session.token);
    if (this.resumeSent) {
      // A fresh page has shown nothing yet: ask for the whole history.
      hello.resume = { conversation: this.session.conversation, token: this.session.token, after: this.log.lastSeq };
    }
    return hello;
  }

  /** What a close means here; undefined leaves it to ws-conn.js (1012 / 1013 soon, else backoff). */
  _onClose(code) {
    if (code === 4401 && this.resumeSent) {
      // The stored conversation cannot be resumed (expired or foreign token): start afresh.
      this._saveSession(null);
      this.log.reset();
      this._emit('notice', { text: '之前的会话已失效，已为您开始新的会话' });
      return 'now';
    }
    if (code === 4401 || code === 4400) {
      this.socket.halt();
      this.socket.setState('failed');
      this._emit('notice', { text: '身份校验失败，无法连接客服', level: 'error' });
    }
    return undefined;
  }

  _emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  _send(frame) { return this.socket.send(frame); }

  _sendMessage(record) {
    this._send({ type: 'message', id: record.id, text: record.text });
  }

  // -- frames -----------------------------------------------------------------

  _onFrame(f, first) {
    switch (f.type) {
      case 'welcome': return this._onWelcome(f, first);
      case 'ack': return this._onAck(f);
      case 'message': case 'assigned': case 'transferred': case 'closed':
        return this._onEntry(f);
      case 'queued': return this._emit('queued', f);
      case 'typing': return this._emit('typing', f);
      case 'survey':
        this._saveSession({ ...this.session, survey: f.conversation || this.conversation, rated: false });
        return this._emit('survey', f);
      case 'error': return this._onError(f);
      default: return undefined;
    }
  }

  /** `first`: the first welcome on this socket (it is ready by now: sends go out). */
  _onWelcome(f, first) {
    const previous = this.conversation;
    if (previous !== f.conversation) {
      if (previous) this.log.reset();
      this._dropFeedback(); // verdicts name seqs of the last conversation: not of this one
      // A new conversation: a survey still open for the last one is dropped with it.
      this._saveSession({ conversation: f.conversation, token: f.token, seq: 0 });
      this._emit('conversation', { conversation: f.conversation, previous });
    } else if (f.token && f.token !== this.session.token) {
      this._saveSession({ ...this.session, token: f.token });
    }
    for (const entry of Array.isArray(f.messages) ? f.messages : []) this._onEntry(entry, true);
    if (first) {
      // What the last socket could not deliver: messages (same ids), then ratings etc.
      for (const record of this.log.pending()) if (!record.failed) this._sendMessage(record);
      // Verdicts sent but not acknowledged (a verdict again is harmless: it replaces itself).
      for (const fb of this.feedbackSent.values()) if (!this.controls.includes(fb.frame)) this._send(fb.frame);
      const controls = this.controls.splice(0);
      for (const frame of controls) this._send(frame);
    }
  }

  _onAck(f) {
    const fb = f.id ? this.feedbackSent.get(f.id) : undefined;
    if (fb) {
      this.feedbackSent.delete(f.id);
      this._saveSession({ ...this.session, feedback: { ...(this.session.feedback || {}), [fb.seq]: fb.helpful } });
      this._emit('feedback', { seq: fb.seq, helpful: fb.helpful });
      return;
    }
    if (f.id && f.id === this.rateId) {
      this.rateId = null;
      this._saveSession({ ...this.session, rated: true });
      this._emit('rated', f);
      return;
    }
    const record = this.log.ack(f.id, f.seq);
    if (!record) return;
    this._remember();
    this._emit('ack', { record });
  }

  _onEntry(entry, replay = false) {
    if (!entry || typeof entry !== 'object') return;
    const result = this.log.receive(entry);
    if (result.kind === 'dup') return;
    this._remember();
    if (result.kind === 'adopt') this._emit('ack', { record: result.record });
    else this._emit('entry', { entry, replay });
  }

  _onError(f) {
    const fb = f.id ? this.feedbackSent.get(f.id) : undefined;
    if (fb) {
      this.feedbackSent.delete(f.id);
      this._emit('feedback-failed', { seq: fb.seq, error: f });
      return;
    }
    const record = f.id ? this.log.fail(f.id) : null;
    if (record) {
      this._emit('failed', { record, error: f });
    } else if (f.id && f.id === this.rateId) {
      this.rateId = null;
      this._emit('rate-failed', f);
    } else {
      this._emit('error', f);
    }
  }

  _dropFeedback() {
    this.controls = this.controls.filter((frame) => frame.type !== 'feedback');
    for (const fb of this.feedbackSent.values()) this._emit('feedback-failed', { seq: fb.seq, error: null });
    this.feedbackSent.clear();
  }

  // -- session storage -----------------------------------------------------------

  _remember() {
    if (this.session && this.log.lastSeq > (this.session.seq || 0)) {
      this._saveSession({ ...this.session, seq: this.log.lastSeq });
    }
  }

  _load() {
    try {
      const raw = sessionStorage.getItem(this.storageKey);
      const s = raw ? JSON.parse(raw) : null;
      return s && typeof s.conversation === 'string' && typeof s.token === 'string' ? s : null;
    } catch {
      return null;
    }
  }

  _saveSession(session) {
    this.session = session;
    try {
      if (session) sessionStorage.setItem(this.storageKey, JSON.stringify(session));
      else sessionStorage.removeItem(this.storageKey);
    } catch { /* storage disabled: the chat still works, without resume */ }
  }
}
