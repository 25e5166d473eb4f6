// Process: its tags, its schedule a page of slots at a time (newest first)
// with each message's result, its patch@1.0 state, cron ticks, attestations,
// and a read-only dry-run console. The schedule follows new slots live.
import * as api from './api.js';
import { h, section, idLink, time, ago, tag, tagsTable, kv, errorBox, bytes, utf8Length, pool, ansi, outputText } from './ui.js';
import { resultView } from './result.js';

export const slotsPerPage = 50;
const pollMs = 2000;

export async function processPage(main, pid, query, ctx) {
  const [proc, first] = await Promise.all([api.suProcess(pid), api.latestSlot(pid)]);
  if (!ctx.live()) return;
  const name = tag(proc.tags, 'Name');
  main.append(
    h('h1', {}, 'Process ', name ? h('span', { class: 'name', id: 'process-name' }, name) : ''),
    h('div', { class: 'subtitle' }, idLink('process', pid, { full: true }))
  );
  const slotCount = h('span', { id: 'slot-count' }, '…');
  const lastSeen = h('span', {}, '…');
  main.append(
    section(
      'Overview',
      kv([
        ['Owner', idLink('wallet', proc.owner.address, { full: true })],
        ['Module', idLink('module', tag(proc.tags, 'Module'), { full: true })],
        ['Scheduler', idLink('wallet', tag(proc.tags, 'Scheduler'), { full: true })],
        ['Spawned', time(proc.timestamp)],
        ['Slots', slotCount],
        ['Last activity', lastSeen],
        tag(proc.tags, 'Cron-Interval') && ['Cron interval', tag(proc.tags, 'Cron-Interval')],
      ]),
      h('details', {}, h('summary', {}, `Tags (${proc.tags.length})`), tagsTable(proc.tags))
    )
  );

  // ---- schedule ----
  const sched = h('div', { id: 'schedule' });
  main.append(section('Schedule', sched));
  const want = query.has('slot') ? Math.max(0, Number(query.get('slot')) | 0) : null;
  let latest = -1;
  let shownTop = -1;
  const setLatest = (l) => {
    slotCount.textContent = String(l.slot + 1);
    if (l.slot >= 0) lastSeen.replaceChildren(time(l.timestamp), ' ', h('span', { class: 'muted' }, ago(l.timestamp)));
    else lastSeen.replaceChildren(h('span', { class: 'muted' }, 'no messages yet'));
    return l.slot;
  };
  latest = setLatest(first);
  const render = async (top, fresh) => {
    const table = await scheduleTable(pid, top, latest, fresh, ctx);
    if (!ctx.live()) return;
    sched.replaceChildren(table);
    shownTop = top;
  };
  await render(want === null ? latest : Math.min(want, latest), new Set());
  if (!ctx.live()) return;
  ctx.ready();

  // ---- the rest loads after the schedule is shown ----
  if (ctx.cfg.units.some((u) => u.name === 'hb')) main.append(patchSection(pid, ctx));
  if (tag(proc.tags, 'Cron-Interval')) main.append(cronSection(pid, ctx));
  main.append(attestationSection(pid, ctx));
  main.append(dryRunSection(pid, proc.owner.address));

  // Live: follow the SU's latest slot; on the newest page, show new slots.
  let busy = false;
  const timer = setInterval(async () => {
    if (busy || !ctx.live()) return;
    busy = true;
    try {
      const n = setLatest(await api.latestSlot(pid));
      if (n > latest) {
        const fresh = new Set();
        for (let s = latest + 1; s <= n; s++) fresh.add(s);
        const following = want === null && shownTop === latest;
        latest = n;
        if (following) await render(latest, fresh);
      }
    } catch {
      // The SU is briefly unreachable: the next tick tries again.
    } finally {
      busy = false;
    }
  }, pollMs);
  return () => clearInterval(timer);
}

// scheduleTable shows slots [top-49, top] newest first, with their results.
async function scheduleTable(pid, top, latest, fresh, ctx) {
  if (top < 0) return h('p', { class: 'empty' }, 'No messages scheduled yet.');
  const from = Math.max(0, top - slotsPerPage + 1);
  const page = await api.schedule(pid, from, top);
  const edges = page.edges.slice().reverse();
  const pager = pagerFor(pid, from, top, latest);
  if (!edges.length) return h('div', {}, pager, h('p', { class: 'empty' }, 'No messages in these slots.'));
  const rows = new Map();
  const body = h('tbody');
  for (const { node } of edges) {
    const m = node.message, a = node.assignment;
    const slot = Number(tag(a.tags, 'Nonce'));
    const fromProc = tag(m.tags, 'From-Process');
    const status = h('td', { class: 'status' }, h('span', { class: 'muted' }, '…'));
    const detail = h('tr', { class: 'detail', hidden: true }, h('td', { colspan: 7 }));
    const tr = h(
      'tr',
      { 'data-slot': slot, 'data-id': m.id, class: fresh.has(slot) ? 'new' : '' },
      h('td', { class: 'num' }, h('a', { href: `#/message/${m.id}?process=${pid}`, class: 'slot' }, String(slot))),
      h('td', {}, time(tag(a.tags, 'Timestamp'))),
      h('td', {}, idLink('message', m.id, { query: `process=${pid}` })),
      h('td', {}, fromProc ? ['process ', idLink('process', fromProc)] : idLink('wallet', m.owner.address)),
      h('td', { class: 'action' }, tag(m.tags, 'Action') || h('span', { class: 'muted' }, tag(m.tags, 'Type') || '—')),
      h('td', { class: 'num' }, bytes(utf8Length(m.data))),
      status
    );
    tr.addEventListener('click', (ev) => {
      if (ev.target.closest('a,button')) return;
      detail.hidden = !detail.hidden;
    });
    body.append(tr, detail);
    rows.set(slot, { id: m.id, ts: Number(tag(a.tags, 'Timestamp')), status, detail, tr });
  }
  const table = h(
    'table',
    { class: 'list schedule' },
    h('thead', {}, h('tr', {}, ['Slot', 'Time', 'Message', 'From', 'Action', 'Size', 'Result'].map((t) => h('th', {}, t)))),
    body
  );
  // Results: the CU's stored results of these slots in one read; those it
  // does not list (errors, or not evaluated yet) one by one, a few at a time.
  const first = rows.get(from) || [...rows.values()].at(-1);
  const last = rows.get(top) || [...rows.values()][0];
  const show = (slot, r) => {
    const row = rows.get(slot);
    if (!row) return;
    row.status.replaceChildren(r.Error ? h('span', { class: 'badge bad' }, 'error') : h('span', { class: 'badge ok' }, 'ok'),
      ' ', h('span', { class: 'muted snippet' }, r.Error ? clip(String(r.Error).replace(/\u001b\[[0-9;]*m/g, '').replace(/\s+/g, ' ').trim(), 80) : outputSnippet(r)));
    row.tr.classList.toggle('failed', !!r.Error);
    row.detail.firstChild.replaceChildren(resultView(r));
    row.done = true;
  };
  const loadResults = async () => {
    try {
      const from = first.ts && Number(first.tr.dataset.slot) > 0 ? api.cursor(first.ts, Number(first.tr.dataset.slot) - 1) : '';
      const res = await api.results(pid, from, api.cursor(last.ts, Number(last.tr.dataset.slot)), slotsPerPage * 4);
      for (const e of res.edges) {
        const c = api.parseCursor(e.cursor);
        if (c && !c.cron) show(c.ordinate, e.node);
      }
    } catch {
      // Fall through to one read per slot.
    }
    if (!ctx.live()) return;
    const missing = [...rows.entries()].filter(([, r]) => !r.done).reverse();
    await pool(missing, 2, async ([slot, r]) => {
      if (!ctx.live()) return;
      r.status.replaceChildren(h('span', { class: 'muted' }, 'evaluating…'));
      try {
        show(slot, (await api.result(pid, r.id)).result);
      } catch (e) {
        r.status.replaceChildren(h('span', { class: 'badge warn', title: e.message }, 'no result'));
      }
    });
  };
  loadResults();
  return h('div', {}, pager, table, pagerFor(pid, from, top, latest));
}

function clip(s, n) {
  return s.length > n ? s.slice(0, n) + '…' : s;
}

function outputSnippet(r) {
  const t = outputText(r.Output).replace(/\u001b\[[0-9;]*m/g, '').replace(/\s+/g, ' ').trim();
  const parts = [];
  if (t) parts.push(clip(t, 60));
  if (r.Messages && r.Messages.length) parts.push(`${r.Messages.length} msg`);
  if (r.Spawns && r.Spawns.length) parts.push(`${r.Spawns.length} spawn`);
  if (r.Assignments && r.Assignments.length) parts.push(`${r.Assignments.length} assign`);
  return parts.join(' · ');
}

function pagerFor(pid, from, top, latest) {
  const link = (label, slot, cls) =>
    h('a', { href: `#/process/${pid}${slot === null ? '' : `?slot=${slot}`}`, class: cls }, label);
  const nav = h('div', { class: 'pager' });
  if (top < latest) {
    nav.append(link('⇤ Latest', null, 'latest'), link('← Newer', Math.min(latest, top + slotsPerPage), 'newer'));
  }
  nav.append(h('span', { class: 'muted' }, `slots ${from}–${top} of ${latest + 1}`));
  if (from > 0) {
    nav.append(link('Older →', from - 1, 'older'), link('First ⇥', Math.min(latest, slotsPerPage - 1), 'first'));
  }
  const go = h('form', { class: 'inline goto', onsubmit: (ev) => {
    ev.preventDefault();
    const v = Number(go.querySelector('input').value);
    if (Number.isFinite(v)) location.hash = `#/process/${pid}?slot=${Math.max(0, Math.min(latest, v | 0))}`;
  } }, h('input', { type: 'number', min: 0, max: latest, placeholder: 'slot', 'aria-label': 'Go to slot' }), h('button', {}, 'Go'));
  nav.append(go);
  return nav;
}

function patchSection(pid, ctx) {
  const body = h('div', { id: 'patch-state' }, h('p', { class: 'muted' }, 'Loading…'));
  api.patchState(pid).then(
    (state) => {
      if (!ctx.live()) return;
      const keys = Object.keys(state || {});
      if (!keys.length) {
        body.replaceChildren(h('p', { class: 'muted' }, "This process exposes no state. In aos: Send({ device = 'patch@1.0', key = value })."));
        return;
      }
      body.replaceChildren(
        h('table', { class: 'tags' }, h('tbody', {}, keys.sort().map((k) =>
          h('tr', { 'data-key': k }, h('th', {}, k), h('td', {}, h('pre', {}, typeof state[k] === 'string' ? state[k] : JSON.stringify(state[k], null, 2))))
        )))
      );
    },
    (e) => ctx.live() && body.replaceChildren(errorBox(e))
  );
  return section('State (patch@1.0)', h('p', { class: 'muted' }, 'What the process exposed through patch@1.0 messages, as GET /{process}~process@1.0/now answers.'), body);
}

function cronSection(pid, ctx) {
  const body = h('div', { id: 'cron' }, h('p', { class: 'muted' }, 'Loading…'));
  const since = Date.now() - 10 * 60 * 1000;
  api.cron(pid, since, 20).then(
    (page) => {
      if (!ctx.live()) return;
      if (!page.edges.length) {
        body.replaceChildren(h('p', { class: 'muted' }, 'No cron ticks in the last 10 minutes.'));
        return;
      }
      body.replaceChildren(
        h('table', { class: 'list' },
          h('thead', {}, h('tr', {}, ['Tick', 'Time', 'After slot', 'Output', 'Messages'].map((t) => h('th', {}, t)))),
          h('tbody', {}, page.edges.map((e) => {
            const c = api.parseCursor(e.cursor) || {};
            return h('tr', { class: 'cron-tick' }, h('td', {}, h('code', {}, c.cron || '')), h('td', {}, time(c.timestamp)),
              h('td', { class: 'num' }, String(c.ordinate)), h('td', {}, h('pre', { class: 'output' }, ansi(outputText(e.node.Output)))),
              h('td', { class: 'num' }, String((e.node.Messages || []).length)));
          })))
      );
    },
    (e) => ctx.live() && body.replaceChildren(errorBox(e))
  );
  return section('Cron ticks', h('p', { class: 'muted' }, 'Results of the cron messages of the last 10 minutes (GET /cron on the CU).'), body);
}

function attestationSection(pid, ctx) {
  const body = h('div', { id: 'attestations' }, h('p', { class: 'muted' }, 'Loading…'));
  api.transactions({ tags: [{ name: 'Type', values: ['Attestation'] }, { name: 'Process', values: [pid] }] }, 10).then(
    (page) => {
      if (!ctx.live()) return;
      if (!page.edges.length) {
        body.replaceChildren(h('p', { class: 'muted' }, 'No attestations of this process on the gateway.'));
        return;
      }
      body.replaceChildren(h('ul', {}, page.edges.map(({ node }) =>
        h('li', {}, idLink('id', node.id), ' of message ', idLink('message', tag(node.tags, 'Message'), { query: `process=${pid}` }),
          tag(node.tags, 'Slot') ? ` (slot ${tag(node.tags, 'Slot')})` : '', ' by ', idLink('wallet', node.owner.address)))));
    },
    // A gateway that cannot answer is not an error of this page.
    () => ctx.live() && body.replaceChildren(h('p', { class: 'muted' }, 'Attestations could not be listed.'))
  );
  return section('Attestations', body);
}

function dryRunSection(pid, owner) {
  const out = h('div', { id: 'dry-run-result' });
  const form = h(
    'form',
    { class: 'dry-run', onsubmit: async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const tags = [];
      if (f.get('action')) tags.push({ name: 'Action', value: String(f.get('action')) });
      for (const line of String(f.get('tags') || '').split('\n')) {
        const i = line.indexOf('=');
        if (i > 0) tags.push({ name: line.slice(0, i).trim(), value: line.slice(i + 1).trim() });
      }
      out.replaceChildren(h('p', { class: 'muted' }, 'Running…'));
      try {
        const r = await api.dryRun(pid, { Id: '1234', Target: pid, Owner: String(f.get('owner') || owner), From: String(f.get('owner') || owner), Anchor: '0', Data: String(f.get('data') || ''), Tags: tags });
        out.replaceChildren(resultView(r));
      } catch (e) {
        out.replaceChildren(errorBox(e));
      }
    } },
    h('label', {}, 'Action ', h('input', { name: 'action', value: 'Eval' })),
    h('label', {}, 'From ', h('input', { name: 'owner', value: owner, title: 'the Owner and From of the dry-run message (default: the process owner, whom aos lets Eval)' })),
    h('label', { class: 'wide' }, 'Data ', h('textarea', { name: 'data', rows: 3, placeholder: 'return #Inbox' })),
    h('label', { class: 'wide' }, 'More tags (Name=Value, one a line) ', h('textarea', { name: 'tags', rows: 2 })),
    h('button', { type: 'submit' }, 'Dry-run')
  );
  return section(
    'Dry-run console (read-only)',
    h('p', { class: 'readonly' }, 'Evaluates a message against a copy of the process state on the CU (POST /dry-run). Nothing is scheduled, sent or saved.'),
    form,
    out
  );
}
