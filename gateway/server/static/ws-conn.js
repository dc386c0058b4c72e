// One websocket that comes back: connect, hello on open, reconnect with backoff
// and jitter, and what each close code means. The customer chat (chat-core.js,
// page and widget) and the agent console (agent-conn.js) both talk through it;
// what differs between them (the hello, resume data, close codes of their own)
// comes in as hooks. No DOM: it runs in the page, in the widget's host page
// (loaded cross-origin from the gateway) and in the console alike.

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];

// The server asks for a quick return: 1012 it is restarting (or draining), 1013 this
// client read too slowly and was dropped. Both come back at the first backoff step,
// and resume what they missed.
export const RECONNECT_SOON = new Set([1012, 1013]);
// Refused sign-in (4401) or hello (4400): trying the same again cannot help.
export const REFUSED = new Set([4400, 4401]);

/** The default for a close code: 'stop', 'soon' (backoff reset) or 'retry' (next backoff step). */
export function closeAction(code) {
  if (REFUSED.has(code)) return 'stop';
  if (RECONNECT_SOON.has(code)) return 'soon';
  return 'retry';
}

export class ReconnectingSocket {
  /**
   * @param {object} o
   * @param {string} o.url                 ws:// or wss:// URL
   * @param {() => object} o.hello         the hello frame, built at each open (resume data goes here)
   * @param {(frame: object, info: {first: boolean}) => void} o.onFrame
   *        every JSON object from the server; for a `welcome`, `first` is true when it is the
   *        first since this socket opened (the socket is ready, and sends go out, by then)
   * @param {(state: string) => void} [o.onState]
   *        'connecting' | 'reconnecting' | 'online' | 'idle', and what the owner sets with setState()
   * @param {(code: number, reason: string) => (string|undefined)} [o.onClose]
   *        may return 'stop', 'retry', 'soon' or 'now' (connect again at once) to override
   *        closeAction(code); it may also halt() the socket itself first, to tell its
   *        listeners with the socket already stopped
   * @param {number[]} [o.backoffMs]       delays by attempt; each waits between half and all of it
   */
  constructor({ url, hello, onFrame, onState = () => {}, onClose = () => undefined, backoffMs = BACKOFF_MS }) {
    Object.assign(this, { url, hello, onFrame, onState, onClose, backoffMs });
    this.ws = null;
    this.ready = false;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.state = 'idle';
    this._onOnline = () => { if (!this.ws && !this.stopped) this._connect(); };
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this._onOnline);
    this._connect();
  }

  /** Close for good (until start() again); the state becomes 'idle'. */
  stop() {
    this.halt();
    this.setState('idle');
  }

  /** Close for good, the state left as it is (for a close hook that reports its own). */
  halt() {
    this.stopped = true;
    window.removeEventListener('online', this._onOnline);
    clearTimeout(this.timer);
    if (this.ws) { const ws = this.ws; this.ws = null; this.ready = false; ws.close(1000); }
  }

  /** Send a frame now; false when not connected (the caller decides what to keep). */
  send(frame) {
    if (!this.ws || !this.ready) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  _connect() {
    clearTimeout(this.timer);
    this.ready = false;
    this.setState(this.attempt ? 'reconnecting' : 'connecting');
    let ws;
    try { ws = new WebSocket(this.url); } catch { this._retry(); return; }
    this.ws = ws;
    ws.onopen = () => {
      if (ws === this.ws) ws.send(JSON.stringify(this.hello()));
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws || typeof ev.data !== 'string') return;
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (!frame || typeof frame !== 'object') return;
      let first = false;
      if (frame.type === 'welcome') {
        first = !this.ready;
        this.ready = true;
        this.attempt = 0;
        this.setState('online');
      }
      this.onFrame(frame, { first });
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.ready = false;
      if (this.stopped) return;
      const action = this.onClose(ev.code, ev.reason) || closeAction(ev.code);
      if (this.stopped) return; // the hook stopped it
      if (action === 'stop') { this.halt(); return; }
      if (action === 'now') { this.attempt = 0; this._connect(); return; }
      if (action === 'soon') this.attempt = 0;
      this._retry();
    };
  }

  _retry() {
    this.setState('reconnecting');
    const base = this.backoffMs[Math.min(this.attempt, this.backoffMs.length - 1)];
    this.attempt += 1;
    this.timer = setTimeout(() => this._connect(), base / 2 + Math.random() * base / 2);
  }
}
