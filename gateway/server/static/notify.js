// New-assignment alerts: a short WebAudio beep (no sound file) and a flashing
// tab title until the agent looks at the page again.

export class Notifier {
  constructor() {
    this.ctx = null;
    this.soundOn = true;
    this.baseTitle = document.title;
    this.flashTimer = null;
    const stop = () => { if (!document.hidden) this.stopFlash(); };
    window.addEventListener('focus', stop);
    document.addEventListener('visibilitychange', stop);
  }

  /** Call from a click/keypress: browsers only let audio start after a user gesture. */
  unlock() {
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      if (!this.ctx) this.ctx = new Ctx();
      if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    } catch { /* no audio: the title flash remains */ }
  }

  beep() {
    if (!this.soundOn) return;
    this.unlock();
    const ctx = this.ctx;
    if (!ctx) return;
    const t0 = ctx.currentTime + 0.01;
    [[880, 0], [1320, 0.16]].forEach(([freq, at]) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = 'sine';
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t0 + at);
      gain.gain.exponentialRampToValueAtTime(0.25, t0 + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + at + 0.14);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t0 + at);
      osc.stop(t0 + at + 0.15);
    });
  }

  setTitle(title) {
    this.baseTitle = title;
    if (!this.flashTimer) document.title = title;
  }

  /** Alternate the tab title with `text` while the page is hidden or unfocused. */
  flash(text) {
    if (!document.hidden && document.hasFocus()) return;
    this.stopFlash();
    let on = false;
    this.flashTimer = setInterval(() => {
      on = !on;
      document.title = on ? text : this.baseTitle;
    }, 1000);
    document.title = text;
  }

  stopFlash() {
    if (!this.flashTimer) return;
    clearInterval(this.flashTimer);
    this.flashTimer = null;
    document.title = this.baseTitle;
  }
}
