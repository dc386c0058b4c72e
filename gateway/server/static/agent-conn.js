// The agent's websocket: hello with id and token, reconnect with backoff (ws-conn.js).
// Events: state {state}, frame (every server frame), fatal {text} (bad sign-in),
// replaced (the same agent signed in elsewhere; no reconnect until start() again).

import { ReconnectingSocket } from './ws-conn.js';

export class AgentConnection extends EventTarget {
  constructor({ wsUrl, agent, token, status = 'online' }) {
    super();
    Object.assign(this, { wsUrl, agent, token, status });
    this.everWelcomed = false;
    this.socket = new ReconnectingSocket({
      url: wsUrl,
      hello: () => ({ type: 'hello', agent: this.agent, token: this.token, status: this.status }),
      onState: (state) => this._emit('state', { state }),
      onFrame: (frame) => {
        if (frame.type === 'welcome') this.everWelcomed = true;
        this._emit('frame', frame);
      },
      onClose: (code, reason) => this._onClose(code, reason),
    });
  }

  get ready() { return this.socket.ready; }

  start() { this.socket.start(); }

  stop() { this.socket.stop(); }

  /** Send a frame now; false when not connected (the caller decides what to keep). */
  send(frame) { return this.socket.send(frame); }

  setStatus(status) {
    this.status = status;
    this.send({ type: 'status', status });
  }

  // 4401/4400 and 1000 stop it (the socket is halted before listeners hear of it);
  // the rest is ws-conn.js's default: 1012 / 1013 soon, anything else with backoff.
  _onClose(code, reason) {
    if (code === 4401 || code === 4400) {
      this.socket.halt();
      this._emit('fatal', { text: this.everWelcomed ? '登录已失效，请重新登录' : '工号或令牌错误' });
    } else if (code === 1000) {
      // The server closes normally only to replace this socket by a newer sign-in of the
      // same agent (another tab or device); reconnecting would kick that one in turn.
      this.socket.halt();
      this._emit('replaced', { reason });
    }
  }

  _emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
}
