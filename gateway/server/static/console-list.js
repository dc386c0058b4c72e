// The list of held conversations. Rows are kept and updated in place (not
// rebuilt), so a click never lands on a row that was just replaced.

import { el, replace, fmtClock, fmtDuration } from './dom.js';
import { PRIORITIES, label, skillLabel } from './labels.js';

const LONG_WAIT_S = 60;

export class ConversationList {
  constructor(ul, empty, countEl, onOpen) {
    Object.assign(this, { ul, empty, countEl, onOpen });
    this.rows = new Map(); // id -> {li, name, badge, preview, wait, tags}
  }

  /** Add or refresh one conversation's row. */
  update(conv, { selected = false, fresh = false } = {}) {
    let row = this.rows.get(conv.id);
    if (!row) {
      row = {
        name: el('span', { class: 'name' }),
        unread: el('span', { class: 'unread', hidden: true }),
        preview: el('div', { class: 'preview' }),
        wait: el('span', { class: 'wait' }),
        tags: el('span', { class: 'tags' }),
      };
      row.li = el('li', {
        class: 'conv-item', tabindex: 0, role: 'button', dataset: { id: conv.id },
        onclick: () => this.onOpen(conv.id),
        onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); this.onOpen(conv.id); } },
      },
      el('div', { class: 'line1' }, row.name, row.unread, row.wait),
      el('div', { class: 'line2' }, row.tags, row.preview));
      this.rows.set(conv.id, row);
      this.ul.append(row.li);
    }
    if (fresh) {
      row.li.classList.remove('fresh');
      void row.li.offsetWidth; // restart the highlight animation
      row.li.classList.add('fresh');
    }
    row.li.classList.toggle('selected', selected);
    row.li.classList.toggle('closed', !!conv.closed);
    row.li.setAttribute('aria-current', selected ? 'true' : 'false');
    replace(row.name, conv.customerName());
    row.unread.hidden = conv.unread === 0;
    replace(row.unread, conv.unread > 99 ? '99+' : String(conv.unread));
    replace(row.tags,
      conv.priority !== 'normal' ? el('span', { class: `badge prio-${conv.priority}` }, label(PRIORITIES, conv.priority)) : null,
      conv.skill ? el('span', { class: 'badge light' }, skillLabel(conv.skill)) : null);
    const typing = conv.typingUntil > Date.now();
    replace(row.preview, typing ? '正在输入…' : conv.preview());
    row.preview.classList.toggle('is-typing', typing);
    this.tickRow(conv, row);
    this._count();
  }

  /** Refresh the waiting time only (every second). */
  tick(convs) {
    for (const conv of convs) {
      const row = this.rows.get(conv.id);
      if (row) this.tickRow(conv, row);
    }
  }

  tickRow(conv, row) {
    const since = conv.closed ? null : conv.waitingSince();
    if (since !== null) {
      const waited = Date.now() / 1000 - since;
      replace(row.wait, `等待 ${fmtDuration(waited)}`);
      row.wait.classList.toggle('long', waited >= LONG_WAIT_S);
      row.wait.title = '客户等待回复的时间';
    } else {
      replace(row.wait, conv.closed ? '已结束' : fmtClock(conv.lastTs()));
      row.wait.classList.remove('long');
      row.wait.title = '';
    }
  }

  remove(id) {
    const row = this.rows.get(id);
    if (row) row.li.remove();
    this.rows.delete(id);
    this._count();
  }

  clear() {
    for (const id of [...this.rows.keys()]) this.remove(id);
  }

  _count() {
    this.empty.hidden = this.rows.size > 0;
    replace(this.countEl, String(this.rows.size));
  }
}
