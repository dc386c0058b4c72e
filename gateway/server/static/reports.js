// The reports page: sign in with the admin token (or a supervisor's id and token), pick a period,
// GET /api/reports, and draw the figures with uPlot (static/vendor/, served by the gateway itself).
// Every text goes in as a text node (dom.js); the charts draw on canvas.

import { el, replace, fmtDuration } from './dom.js';
import { SKILLS, CHANNELS, label } from './labels.js';

const KEY = 'gateway.reports';
const $ = (sel) => document.querySelector(sel);
const uPlot = window.uPlot;

const CATEGORIES = { quality: '质量', logistics: '物流', usage: '使用', service: '服务', other: '其他' };
const GROUP_TITLES = { day: '按天', agent: '按客服（最后接待的客服）', skill: '按技能组', channel: '按渠道', category: '按问题类别' };
const BLUE = '#1677ff';
const ORANGE = '#fa8c16';
const GREEN = '#52c41a';
const GOLD = '#faad14';

let cred = null;
const plots = new Map(); // chart name -> uPlot

// -- formatting -----------------------------------------------------------------

const pct = (x) => (x === null || x === undefined ? '—' : `${(x * 100).toFixed(1)}%`);
const secs = (x) => (x === null || x === undefined ? '—' : fmtDuration(x));
const num = (x, digits = 2) => (x === null || x === undefined ? '—' : Number(x).toFixed(digits));

function groupLabel(by, key) {
  if (key === '-') return '（无）';
  if (by === 'skill') return label(SKILLS, key);
  if (by === 'channel') return label(CHANNELS, key);
  if (by === 'category') return label(CATEGORIES, key);
  return String(key);
}

function bucketLabel(le) {
  if (le === '+Inf') return '更长';
  return le < 60 ? `≤${le}秒` : `≤${le / 60}分`;
}

// -- sign-in ------------------------------------------------------------------------

function loadCred() {
  try {
    const c = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    return c && c.token ? c : null;
  } catch { return null; }
}

function saveCred(c) {
  try {
    if (c) sessionStorage.setItem(KEY, JSON.stringify(c));
    else sessionStorage.removeItem(KEY);
  } catch { /* storage off: sign in again after a reload */ }
}

function showSignin(error = '') {
  $('#app').hidden = true;
  $('#signin').hidden = false;
  const err = $('.signin-error');
  err.hidden = !error;
  replace(err, error);
}

function showApp() {
  $('#signin').hidden = true;
  $('#app').hidden = false;
  replace($('.who'), cred.agent ? `主管 ${cred.agent}` : '管理员');
}

// -- the API --------------------------------------------------------------------------

class Refused extends Error {}

async function fetchReport(params) {
  const headers = { Authorization: `Bearer ${cred.token}`, Accept: 'application/json' };
  if (cred.agent) headers['X-Agent-Id'] = cred.agent;
  const res = await fetch(`api/reports?${new URLSearchParams(params)}`, { headers });
  if (res.status === 401 || res.status === 403) throw new Refused('令牌错误或没有查看报表的权限');
  let body = null;
  try { body = await res.json(); } catch { body = null; }
  if (!res.ok) {
    const message = body && body.message ? body.message : `HTTP ${res.status}`;
    throw new Error(res.status === 503 ? `档案库暂不可用，请稍后再试（${message}）` : message);
  }
  return body;
}

// -- charts ---------------------------------------------------------------------------------

function plotWidth(box) {
  return Math.max(260, Math.floor(box.clientWidth || box.parentElement.clientWidth || 500));
}

/** Categorical x (0..n-1 shown as labels); each series: {label, values, color, bars?, format?, scale?}. */
function drawChart(name, labels, series, { xLabel = '', yRange, yFormat } = {}) {
  const figure = document.querySelector(`.chart[data-chart="${name}"]`);
  const box = figure.querySelector('.plot');
  const old = plots.get(name);
  if (old) old.destroy();
  replace(box);
  delete figure.dataset.drawn;
  const xs = labels.map((_, i) => i);
  const fmtY = yFormat || ((v) => String(v));
  const opts = {
    width: plotWidth(box),
    height: 240,
    scales: {
      x: { time: false, range: () => [-0.6, Math.max(labels.length, 1) - 0.4] },
      y: { range: yRange || ((u, min, max) => [0, max > 0 ? Math.ceil(max * 1.15) : 1]) },
    },
    axes: [
      { values: (u, splits) => splits.map((v) => (Number.isInteger(v) && labels[v] !== undefined ? labels[v] : '')),
        incrs: [1, 2, 3, 5, 7, 10, 14, 30, 60], space: 44, grid: { show: false } },
      { values: (u, splits) => splits.map(fmtY), size: 52 },
    ],
    legend: { show: true },
    cursor: { points: { show: false } },
    series: [
      { label: xLabel, value: (u, v) => (v === null || labels[v] === undefined ? '—' : labels[v]) },
      ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: s.bars ? 1 : 2,
        fill: s.bars ? `${s.color}cc` : undefined,
        paths: s.bars ? uPlot.paths.bars({ size: [0.6, 48] }) : undefined,
        points: { show: !s.bars, size: 5 },
        spanGaps: false,
        value: (u, v) => (v === null || v === undefined ? '—' : (s.format || fmtY)(v)),
      })),
    ],
    hooks: { draw: [() => { figure.dataset.drawn = '1'; }] },
  };
  plots.set(name, new uPlot(opts, [xs, ...series.map((s) => s.values)], box));
}

function drawCharts(report) {
  const days = report.rows || [];
  const dayLabels = days.map((r) => r.key.slice(5)); // MM-DD
  drawChart('volume', dayLabels, [
    { label: '会话', values: days.map((r) => r.conversations), color: BLUE, bars: true },
    { label: '转人工', values: days.map((r) => r.handoffs), color: ORANGE },
  ], { xLabel: '日期' });
  const fr = report.totals.first_response;
  drawChart('first-response', fr.histogram.map((b) => bucketLabel(b.le)), [
    { label: '会话数', values: fr.histogram.map((b) => b.count), color: BLUE, bars: true },
  ], { xLabel: '首次响应' });
  drawChart('sla', dayLabels, [
    { label: `${report.target_s}秒内首次响应`,
      values: days.map((r) => (r.first_response.within_target_share === null ? null
        : Math.round(r.first_response.within_target_share * 1000) / 10)),
      color: GREEN },
  ], { xLabel: '日期', yRange: () => [0, 100], yFormat: (v) => `${v}%` });
  const sat = report.totals.satisfaction;
  drawChart('satisfaction', ['1星', '2星', '3星', '4星', '5星'], [
    { label: '评价数', values: ['1', '2', '3', '4', '5'].map((k) => sat.distribution[k]), color: GOLD, bars: true },
  ], { xLabel: '评分' });
}

// -- cards and table ------------------------------------------------------------------------

function card(k, v, s = '') {
  return el('div', { class: 'card' }, el('div', { class: 'k' }, k), el('div', { class: 'v' }, v),
    s ? el('div', { class: 's' }, s) : null);
}

function drawCards(report) {
  const t = report.totals;
  const fr = t.first_response;
  const fu = t.follow_ups;
  replace($('.cards'),
    card('会话', String(t.conversations), `仅机器人 ${pct(t.bot_only_share)}`),
    card('转人工', String(t.handoffs), `转接 ${num(t.transfers.per_conversation)} 次/会话`),
    card('首次响应 P50 / P90', `${secs(fr.p50_s)} / ${secs(fr.p90_s)}`, `${fr.answered} 个有客服回复`),
    card(`${report.target_s}秒内首次响应`, pct(fr.within_target_share), `${fr.within_target} 达标，${fr.unanswered_late} 超时无人回复`),
    card('平均响应时长', secs(t.response_time.avg_s), `${t.response_time.responses} 次回复`),
    card('平均处理时长', secs(t.handle_time.avg_s), '接入到结束'),
    card('解决率', pct(t.resolution.rate), `${t.resolution.resolved} / ${t.resolution.closed_by_agent}`),
    card('首次解决率', pct(t.fcr.rate), `${t.fcr.count} 个`),
    card('满意度', num(t.satisfaction.average), `评价率 ${pct(t.satisfaction.response_rate)}`),
    card('待跟进', String(fu.open), `逾期 ${fu.overdue}，已完成 ${fu.done}`),
  );
  replace($('.period-text'), `${report.from.slice(0, 10)} 至 ${report.to.slice(0, 10)}（不含）`);
}

const COLUMNS = [
  ['会话', (f) => String(f.conversations)],
  ['仅机器人', (f) => pct(f.bot_only_share)],
  ['转人工', (f) => String(f.handoffs)],
  ['首响 P50', (f) => secs(f.first_response.p50_s)],
  ['首响 P90', (f) => secs(f.first_response.p90_s)],
  ['达标率', (f) => pct(f.first_response.within_target_share)],
  ['平均响应', (f) => secs(f.response_time.avg_s)],
  ['平均处理', (f) => secs(f.handle_time.avg_s)],
  ['解决率', (f) => pct(f.resolution.rate)],
  ['首次解决率', (f) => pct(f.fcr.rate)],
  ['转接/会话', (f) => num(f.transfers.per_conversation)],
  ['满意度', (f) => num(f.satisfaction.average)],
  ['评价率', (f) => pct(f.satisfaction.response_rate)],
  ['跟进 待/逾期/完成', (f) => `${f.follow_ups.open}/${f.follow_ups.overdue}/${f.follow_ups.done}`],
];

function drawTable(report) {
  const section = $('.groups');
  if (!report || !report.by) { section.hidden = true; return; }
  const head = el('tr', null, el('th', null, GROUP_TITLES[report.by] || report.by), COLUMNS.map(([name]) => el('th', null, name)));
  const rows = report.rows.map((r) => el('tr', { dataset: { key: r.key } },
    el('td', null, groupLabel(report.by, r.key)), COLUMNS.map(([, cell]) => el('td', null, cell(r)))));
  const total = el('tr', { class: 'total' }, el('td', null, '合计'), COLUMNS.map(([, cell]) => el('td', null, cell(report.totals))));
  replace($('.group-table'), el('thead', null, head), el('tbody', null, rows, total));
  replace($('.groups-title'), GROUP_TITLES[report.by] || report.by);
  section.hidden = false;
}

// -- wiring ---------------------------------------------------------------------------------

function notice(text) {
  const n = $('.notice');
  n.hidden = !text;
  replace(n, text || '');
}

function isoDay(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

function defaultPeriod() {
  const form = $('.period');
  if (form.elements.from.value && form.elements.to.value) return;
  const to = new Date();
  to.setDate(to.getDate() + 1); // through today
  const from = new Date(to);
  from.setDate(from.getDate() - 30);
  form.elements.from.value = isoDay(from);
  form.elements.to.value = isoDay(to);
}

async function load() {
  const form = $('.period');
  const period = { from: form.elements.from.value, to: form.elements.to.value };
  const by = form.elements.by.value;
  notice('');
  document.body.dataset.state = 'loading';
  try {
    const daily = await fetchReport({ ...period, by: 'day' });
    drawCards(daily);
    drawCharts(daily);
    drawTable(by === 'day' ? daily : by ? await fetchReport({ ...period, by }) : null);
    document.body.dataset.state = 'ready';
  } catch (e) {
    document.body.dataset.state = 'error';
    if (e instanceof Refused) {
      cred = null;
      saveCred(null);
      showSignin(e.message);
      return;
    }
    notice(`无法读取报表：${e.message}`);
  }
}

$('.signin-card').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target;
  cred = { agent: f.elements.agent.value.trim(), token: f.elements.token.value };
  saveCred(cred);
  showApp();
  load();
});

$('.period').addEventListener('submit', (ev) => {
  ev.preventDefault();
  load();
});

$('.signout').addEventListener('click', () => {
  cred = null;
  saveCred(null);
  showSignin();
});

let resizeTimer = 0;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    for (const [name, u] of plots) {
      const box = document.querySelector(`.chart[data-chart="${name}"] .plot`);
      u.setSize({ width: plotWidth(box), height: 240 });
    }
  }, 150);
});

defaultPeriod();
cred = loadCred();
if (cred) {
  showApp();
  load();
} else {
  showSignin();
}
