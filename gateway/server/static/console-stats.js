// The live panel: queue length per skill and agents online, from GET /api/stats every 3 s.

import { el, replace } from './dom.js';
import { STATUSES, label, skillLabel } from './labels.js';

const EVERY_MS = 3000;

export function startStats(root, { agent, token, skills = [] }) {
  const queues = root.querySelector('.stats-queues');
  const online = root.querySelector('.stats-online');
  const agents = root.querySelector('.stats-agents');
  const updated = root.querySelector('.stats-updated');
  let timer = null;
  let stopped = false;
  let knownSkills = skills;

  async function poll() {
    const abort = new AbortController();
    const timeout = setTimeout(() => abort.abort(), EVERY_MS - 500);
    try {
      const res = await fetch('api/stats', {
        headers: { Authorization: `Bearer ${token}`, 'X-Agent-Id': agent },
        cache: 'no-store',
        signal: abort.signal,
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      if (!stopped) render(await res.json());
    } catch {
      if (!stopped) { replace(updated, '统计暂不可用'); updated.classList.add('error'); }
    } finally {
      clearTimeout(timeout);
      if (!stopped) timer = setTimeout(poll, EVERY_MS);
    }
  }

  function render(data) {
    const q = data && typeof data.queues === 'object' && data.queues ? data.queues : {};
    const names = [...new Set([...knownSkills, ...Object.keys(q)])];
    replace(queues, names.map((s) => {
      const n = Number(q[s]) || 0;
      return el('li', { class: n > 0 ? 'busy' : '', dataset: { skill: s } },
        el('span', null, `${skillLabel(s)}排队`), el('strong', null, String(n)));
    }));
    replace(online, `在线客服 ${Number(data.agents_online) || 0} 人`);
    const list = Array.isArray(data.agents) ? data.agents : [];
    replace(agents, list.map((a) => el('li', { class: `agent status-${String(a.status)}` },
      el('span', { class: 'dot', title: label(STATUSES, a.status) }),
      el('span', { class: 'agent-name' }, String(a.name || a.id)),
      el('span', { class: 'agent-load' }, `${Number(a.held) || 0}/${Number(a.capacity) || 0}`))));
    const now = new Date();
    replace(updated, `更新于 ${now.toLocaleTimeString('zh-CN', { hour12: false })}`);
    updated.classList.remove('error');
  }

  poll();
  return {
    setSkills(s) { knownSkills = s; },
    stop() { stopped = true; clearTimeout(timer); },
  };
}
