// The agent's websocket: hello with id and token, reconnect with backoff.
// Events: state {state}, frame (every server frame), fatal {text} (bad sign-in),
// replaced (the same agent signed in elsewhere; no reconnect until start() again).

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];

export class AgentConnection extends EventTarget {
  constructor({ wsUrl, agent, token, status = 'online' }) {
    super();
    Object.assign(this, { wsUrl, agent, token, status });
    this.ws = null;
    this.ready = false;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.everWelcomed = false;
    this._onOnline = () => { if (!this.ws && !this.stopped) this._connect(); };
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this._onOnline);
    this._connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this._onOnline);
    clearTimeout(this.timer);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000); }
  }

  /** Send a frame now; false when not connected (the caller decides what to keep). */
  send(frame) {
    if (!this.ws || !this.ready) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  setStatus(status) {
    this.status = status;
    this.send({ type: 'status', status });
  }

  _connect() {
    clearTimeout(this.timer);
    this.ready = false;
    this._emit('state', { state: this.attempt ? 'reconnecting' : 'connecting' });
    let ws;
    try { ws = new WebSocket(this.wsUrl); } catch { this._retry(); return; }
    this.ws = ws;
    ws.onopen = () => {
      if (ws === this.ws) ws.send(JSON.stringify({ type: 'hello', agent: this.agent, token: this.token, status: this.status }));
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws || typeof ev.data !== 'string') return;
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (!frame || typeof frame !== 'object') return;
      if (frame.type === 'welcome') {
        this.ready = true;
        this.attempt = 0;
        this.everWelcomed = true;
        this._emit('state', { state: 'online' });
      }
      this._emit('frame', frame);
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.ready = false;
      if (this.stopped) return;
      if (ev.code === 4401 || ev.code === 4400) {
        this.stopped = true;
        this._emit('fatal', { text: this.everWelcomed ? '登录已失效，请重新登录' : '工号或令牌错误' });
        return;
      }
      if (ev.code === 1000) {
        // The server closes normally only to replace this socket by a newer sign-in of the
        // same agent (another tab or device); reconnecting would kick that one in turn.
        this.stopped = true;
        this._emit('replaced', { reason: ev.reason });
        return;
      }
      if (ev.code === 1012) this.attempt = 0;
      this._retry();
    };
  }

  _retry() {
    this._emit('state', { state: 'reconnecting' });
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.timer = setTimeout(() => this._connect(), base / 2 + Math.random() * base / 2);
  }

  _emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
}
