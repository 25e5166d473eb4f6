// Network: the units, their addresses and versions, uptime, and live
// counters from the units' /metrics with a chart of the last minutes.
import * as api from './api.js';
import { h, section, idLink, duration, errorBox } from './ui.js';

const pollMs = 2000;
const keep = 150; // points: 5 minutes at one every 2 s

// The counters shown: [label, unit, metric, kind]; a rate is per second
// between two polls, a gauge is the value now.
const counters = [
  ['Messages scheduled /s', 'su', 'su_scheduled_total', 'rate'],
  ['Messages evaluated /s', 'cu', 'ao_cu_messages_evaluated_total', 'rate'],
  ['MU steps done /s', 'mu', 'mu_tasks_done_total', 'rate'],
  ['MU queue (pending steps)', 'mu', 'mu_tasks_pending', 'gauge'],
  ['SU outbox (unpublished)', 'su', 'su_outbox_pending', 'gauge'],
  ['SU active processes', 'su', 'su_processes_active', 'gauge'],
  ['CU live instances', 'cu', 'ao_cu_live_instances', 'gauge'],
  ['CU evictions', 'cu', 'ao_cu_evictions_total', 'gauge'],
  ['CU live memory (MiB)', 'cu', 'ao_cu_live_memory_bytes', 'mib'],
  ['Cron monitors', 'mu', 'mu_monitors', 'gauge'],
];

// sum adds every series of a metric (labels summed away).
function sum(m, name) {
  let v = 0, found = false;
  for (const [k, x] of Object.entries(m || {})) {
    if (k === name || k.startsWith(name + '{')) {
      v += x;
      found = true;
    }
  }
  return found ? v : null;
}

export async function networkPage(main, _id, _q, ctx) {
  const cfg = ctx.cfg;
  main.append(h('h1', {}, 'Network'));
  const unitsBody = h('tbody');
  const up = h('span', { id: 'uptime' });
  main.append(
    section(
      'Units',
      h('p', {}, 'aonode ', h('strong', { id: 'version' }, cfg.version || 'unknown'), ' · up ', up, ' · started ',
        new Date(cfg.started).toLocaleString()),
      h('table', { class: 'list', id: 'units' }, h('thead', {}, h('tr', {}, h('th', {}, 'Unit'), h('th', {}, 'URL'),
        h('th', {}, 'Address'), h('th', {}, 'Status'))), unitsBody)
    )
  );
  const skew = Date.now() - cfg.now;
  const tick = () => (up.textContent = duration(Date.now() - skew - cfg.started));
  tick();

  const rows = {};
  for (const u of cfg.units) {
    rows[u.name] = { addr: h('td', { class: 'addr' }, '…'), status: h('td', { class: 'status' }, '…') };
    unitsBody.append(h('tr', { 'data-unit': u.name }, h('td', {}, u.label), h('td', {}, h('code', {}, u.url)), rows[u.name].addr, rows[u.name].status));
  }
  const setUnit = (name, addr, status, detail = '') => {
    if (!rows[name]) return;
    rows[name].addr.replaceChildren(addr ? idLink('wallet', addr) : h('span', { class: 'muted' }, '—'));
    rows[name].status.replaceChildren(h('span', { class: `badge ${status === 'up' ? 'ok' : 'bad'}` }, status), detail ? ' ' + detail : '');
  };
  const probes = [
    api.gatewayInfo().then((i) => setUnit('gateway', '', 'up', `height ${i.height}, ${i.network}`), (e) => setUnit('gateway', '', 'down', e.message)),
    api.suInfo().then((i) => setUnit('su', i.address, 'up', 'scheduler address'), (e) => setUnit('su', '', 'down', e.message)),
    api.cuInfo().then((i) => setUnit('cu', i.address, 'up'), (e) => setUnit('cu', '', 'down', e.message)),
    api.muAddress().then((a) => setUnit('mu', a, 'up', 'signs pushed messages'), (e) => setUnit('mu', '', 'down', e.message)),
  ];
  if (rows.hb) {
    probes.push(fetch('/api/hb/~meta@1.0/info').then(async (r) => {
      if (!r.ok) throw new Error(`answered ${r.status}`);
      const i = await r.json();
      setUnit('hb', i.address, 'up', i.protocol || '');
    }).catch((e) => setUnit('hb', '', 'down', e.message)));
  }

  const values = {};
  const grid = h('div', { class: 'counters', id: 'counters' });
  for (const [label, , metric] of counters) {
    values[metric] = h('div', { class: 'value', 'data-metric': metric }, '…');
    grid.append(h('div', { class: 'counter' }, values[metric], h('div', { class: 'label' }, label)));
  }
  const chart = h('div', { id: 'chart' });
  main.append(section('Live', grid, h('h3', {}, 'Messages per second since this page opened (last 5 minutes)'), chart));

  const history = [];
  let prev = null;
  const poll = async () => {
    const now = Date.now();
    const m = {};
    await Promise.all(['su', 'cu', 'mu'].map((u) => api.metrics(u).then((x) => (m[u] = x), () => (m[u] = null))));
    if (!ctx.live()) return;
    const point = { t: now };
    for (const [, unit, metric, kind] of counters) {
      const v = sum(m[unit], metric);
      let shown = '—';
      if (v !== null) {
        if (kind === 'rate') {
          const pv = prev && prev.m[unit] ? sum(prev.m[unit], metric) : null;
          if (pv !== null) {
            const r = Math.max(0, (v - pv) / ((now - prev.t) / 1000));
            point[metric] = r;
            shown = r.toFixed(1);
          } else shown = '0.0';
        } else if (kind === 'mib') shown = (v / (1 << 20)).toFixed(1);
        else shown = String(v);
      }
      values[metric].textContent = shown;
      values[metric].title = v === null ? 'not reported' : `${metric} = ${v}`;
    }
    if (prev) {
      history.push(point);
      if (history.length > keep) history.shift();
      chart.replaceChildren(drawChart(history));
    }
    prev = { t: now, m };
  };
  await Promise.all(probes);
  await poll();
  ctx.ready();
  const timer = setInterval(() => {
    tick();
    poll();
  }, pollMs);
  return () => clearInterval(timer);
}

// drawChart draws scheduled and evaluated messages per second as two lines.
function drawChart(points) {
  const W = 600, H = 120, pad = 24;
  const series = [
    ['su_scheduled_total', 'scheduled', 'var(--accent)'],
    ['ao_cu_messages_evaluated_total', 'evaluated', 'var(--ok)'],
  ];
  let max = 1;
  for (const p of points) for (const [k] of series) max = Math.max(max, p[k] || 0);
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1);
  const x = (t) => pad + ((t - t0) / (t1 - t0)) * (W - 2 * pad);
  const y = (v) => H - pad - (v / max) * (H - 2 * pad);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'chart');
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  el('line', { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, class: 'axis' });
  el('text', { x: 2, y: pad, class: 'tick' }, max.toFixed(max < 10 ? 1 : 0));
  el('text', { x: 2, y: H - pad, class: 'tick' }, '0');
  series.forEach(([k, label, color], i) => {
    const d = points.map((p, j) => `${j ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p[k] || 0).toFixed(1)}`).join('');
    // CSS variables work in style, not in presentation attributes.
    el('path', { d, fill: 'none', style: `stroke: ${color}`, 'stroke-width': 2, 'data-series': label });
    el('text', { x: W - pad - 160 + i * 85, y: 12, style: `fill: ${color}`, class: 'legend' }, '● ' + label);
  });
  return svg;
}

export { errorBox };
