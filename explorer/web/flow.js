// The flow of a message: the tree of messages it caused across processes,
// built from the MU's crank trace (GET /?debug=1&message=) and drawn as an
// SVG graph with a small tidy-tree layout. Each node is a delivery (the
// user's message, an outbox message, spawn or assignment); its evaluation
// (the MU's pull of the CU result, and the result's Error) marks it failed or
// pending with the reason.
import * as api from './api.js';
import { h, short, idLink, time, pool } from './ui.js';

const W = 190, H = 62, GX = 24, GY = 56;
const deliveryKinds = new Set(['ingest', 'message', 'spawn', 'assign']);

// buildFlow turns trace steps into nodes and edges. Exported for tests of
// the page's logic from the browser.
export function buildFlow(steps) {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const nodes = new Map();
  for (const s of steps) {
    if (!deliveryKinds.has(s.kind)) continue;
    nodes.set(s.id, { step: s, id: s.ref, process: s.processId, kind: s.kind, children: [], evals: [], status: s.status,
      reason: s.status === 'done' ? '' : s.lastError || '' });
  }
  const roots = [];
  for (const n of nodes.values()) {
    let p = byId.get(n.step.parent);
    if (p && p.kind === 'pull') p = byId.get(p.parent);
    const parent = p && nodes.get(p.id);
    if (parent) {
      parent.children.push(n);
      n.parent = parent;
    } else roots.push(n);
  }
  // A pull is the evaluation of its parent delivery.
  for (const s of steps) {
    if (s.kind !== 'pull') continue;
    const n = nodes.get(s.parent);
    if (!n) continue;
    n.evals.push(s);
    if (s.status !== 'done' && n.status === 'done') {
      n.status = s.status;
      n.reason = s.lastError || (s.status === 'pending' ? 'waiting for the CU result' : '');
    }
  }
  for (const n of nodes.values()) {
    if (n.status === 'pending' && !n.reason) {
      n.reason = n.step.attempts ? `retrying (attempt ${n.step.attempts})` : 'queued';
    }
  }
  const edges = [];
  for (const n of nodes.values()) for (const c of n.children) edges.push([n, c]);
  return { nodes: [...nodes.values()], roots, edges };
}

// layout places leaves in consecutive columns and a parent over its children.
function layout(roots) {
  let col = 0, depthMax = 0;
  const place = (n, depth) => {
    n.depth = depth;
    depthMax = Math.max(depthMax, depth);
    if (!n.children.length) {
      n.col = col++;
      return;
    }
    n.children.forEach((c) => place(c, depth + 1));
    n.col = (n.children[0].col + n.children[n.children.length - 1].col) / 2;
  };
  roots.forEach((r) => place(r, 0));
  return { cols: Math.max(col, 1), rows: depthMax + 1 };
}

const ns = 'http://www.w3.org/2000/svg';
function s(tag, attrs = {}, ...kids) {
  const e = document.createElementNS(ns, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

// drawFlow draws the graph; names maps process ids to names; focus is the
// message whose page this is.
export function drawFlow(flow, names, focus) {
  const { cols, rows } = layout(flow.roots);
  const width = cols * (W + GX) + GX, height = rows * (H + GY) + GY / 2;
  const svg = s('svg', { id: 'flow-graph', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
    'aria-label': `flow of ${flow.nodes.length} messages` });
  svg.append(s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
    s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }))));
  const pos = (n) => ({ x: GX + n.col * (W + GX), y: GY / 2 + n.depth * (H + GY) });
  for (const [a, b] of flow.edges) {
    const p = pos(a), q = pos(b);
    const x1 = p.x + W / 2, y1 = p.y + H, x2 = q.x + W / 2, y2 = q.y;
    const my = (y1 + y2) / 2;
    svg.append(s('path', { class: `edge status-${b.status}`, d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`,
      'marker-end': 'url(#arrow)', 'data-from': a.id, 'data-to': b.id }));
  }
  for (const n of flow.nodes) {
    const p = pos(n);
    const g = s('g', { class: `node status-${n.status}${n.id === focus ? ' focus' : ''}`, transform: `translate(${p.x},${p.y})`,
      'data-id': n.id, 'data-process': n.process, 'data-kind': n.kind, 'data-status': n.status, tabindex: 0 });
    const title = `${n.kind} ${n.id}\nto process ${n.process}\n${n.status}${n.reason ? ': ' + n.reason : ''}`;
    g.append(
      s('title', {}, title),
      s('rect', { width: W, height: H, rx: 6 }),
      s('text', { x: 8, y: 17, class: 'kind' }, `${n.kind}${n.action ? ' · ' + n.action : ''}`),
      s('text', { x: 8, y: 34, class: 'mono' }, short(n.id)),
      s('text', { x: 8, y: 51, class: 'proc' }, `→ ${names.get(n.process) || short(n.process)}`)
    );
    if (n.status !== 'done') g.append(s('text', { x: W - 8, y: 17, 'text-anchor': 'end', class: 'mark' }, n.status === 'failed' ? '✗' : '…'));
    const go = () => (location.hash = n.kind === 'spawn' ? `#/process/${n.id}` : `#/message/${n.id}?process=${n.process}`);
    g.addEventListener('click', go);
    g.addEventListener('keydown', (ev) => ev.key === 'Enter' && go());
    svg.append(g);
  }
  return svg;
}

// flowSection loads the trace of the whole tree the message belongs to and
// draws it, the message itself highlighted.
export function flowSection(id, ctx) {
  const body = h('div', { id: 'flow' }, h('p', { class: 'muted' }, 'Loading the MU trace…'));
  (async () => {
    let { steps, truncated } = await api.trace(id);
    // A message caused by another one is traced under its root (pushedFor).
    const root = steps.length ? steps[0].pushedFor : '';
    if (root && root !== id) ({ steps, truncated } = await api.trace(root));
    if (!ctx.live()) return;
    if (!steps.length) {
      body.replaceChildren(h('p', { class: 'muted' }, 'The MU has no trace of this message (it did not pass through this MU).'));
      return;
    }
    const flow = buildFlow(steps);
    // Names of the processes, and each node's Action and result Error, from
    // the gateway and the CU (a bounded number of reads).
    const names = new Map();
    const pids = [...new Set(flow.nodes.map((n) => n.process))].slice(0, 100);
    try {
      const page = await api.transactions({ ids: pids }, 100);
      for (const { node } of page.edges) {
        const t = node.tags.find((t) => t.name === 'Name');
        if (t) names.set(node.id, t.value);
      }
    } catch {}
    const shown = flow.nodes.filter((n) => n.kind !== 'spawn').slice(0, 40);
    await pool(shown, 4, async (n) => {
      try {
        const m = await api.suMessage(n.id, n.process);
        const a = m.message && m.message.tags.find((t) => t.name === 'Action');
        if (a) n.action = a.value;
      } catch {}
      if (n.status !== 'done') return;
      try {
        const { result } = await api.result(n.process, n.id);
        if (result.Error) {
          n.status = 'failed';
          n.reason = String(result.Error).replace(/\u001b\[[0-9;]*m/g, '').trim();
        }
      } catch {}
    });
    if (!ctx.live()) return;
    body.replaceChildren(
      h('div', { class: 'graph' }, drawFlow(flow, names, id)),
      truncated ? h('p', { class: 'warn' }, 'The trace has more steps than the explorer reads (500): the graph is cut.') : '',
      stepsTable(flow)
    );
  })().catch((e) => ctx.live() && body.replaceChildren(h('div', { class: 'error' }, e.message)));
  return body;
}

function stepsTable(flow) {
  return h(
    'details',
    { class: 'steps' },
    h('summary', {}, `Steps (${flow.nodes.length} deliveries)`),
    h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, ['Kind', 'Message', 'Process', 'Status', 'Reason', 'Updated'].map((t) => h('th', {}, t)))),
      h('tbody', {}, flow.nodes.map((n) =>
        h('tr', { class: `status-${n.status}` }, h('td', {}, n.kind), h('td', {}, idLink(n.kind === 'spawn' ? 'process' : 'message', n.id, { query: n.kind === 'spawn' ? '' : `process=${n.process}` })),
          h('td', {}, idLink('process', n.process)), h('td', {}, n.status), h('td', { class: 'reason' }, n.reason || ''),
          h('td', {}, time(n.step.updatedAt)))
      )))
  );
}
