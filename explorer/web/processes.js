// Processes: every process the gateway indexes (Type: Process), newest first,
// a page at a time, with its slot count and last activity from the SU.
// Search: an id, Name=Value (any tag), or a name.
import * as api from './api.js';
import { h, idLink, time, ago, tag, isID, errorBox, pool } from './ui.js';

export const pageSize = 20;

// filterFor turns the search text into GraphQL filters.
export function filterFor(q) {
  const tags = [{ name: 'Type', values: ['Process'] }];
  if (!q) return { tags };
  if (isID(q)) return { ids: [q], tags };
  const eq = q.indexOf('=');
  if (eq > 0) return { tags: tags.concat({ name: q.slice(0, eq).trim(), values: [q.slice(eq + 1).trim()] }) };
  return { tags: tags.concat({ name: 'Name', values: [q] }) };
}

export async function processesPage(main, _id, query, ctx) {
  const q = query.get('q') || '';
  const after = query.get('after') || '';
  main.append(h('h1', {}, 'Processes'));
  const form = h(
    'form',
    { class: 'inline', onsubmit: (ev) => {
      ev.preventDefault();
      const v = form.querySelector('input').value.trim();
      location.hash = '#/processes' + (v ? `?q=${encodeURIComponent(v)}` : '');
    } },
    h('input', { type: 'search', name: 'q', value: q, placeholder: 'id, name, or Tag=Value', 'aria-label': 'Search processes' }),
    h('button', { type: 'submit' }, 'Search')
  );
  main.append(form);
  if (q) main.append(h('p', { class: 'muted' }, `Processes matching “${q}”`));
  const table = await processTable(filterFor(q), after, ctx, (next) => `#/processes?${new URLSearchParams({ ...(q ? { q } : {}), after: next })}`);
  if (!ctx.live()) return;
  main.append(table);
  ctx.ready();
}

// processTable lists one page of processes matching filter, with a link to
// the next page (nextHref(cursor)).
export async function processTable(filter, after, ctx, nextHref) {
  let page;
  try {
    page = await api.transactions(filter, pageSize, after);
  } catch (e) {
    return errorBox(e);
  }
  if (!page.edges.length) return h('p', { class: 'empty' }, after ? 'No more processes.' : 'No processes found.');
  const body = h('tbody');
  const rows = page.edges.map(({ node }) => {
    const slots = h('td', { class: 'num' }, '…');
    const last = h('td', {}, '…');
    body.append(
      h('tr', { 'data-process': node.id },
        h('td', {}, tag(node.tags, 'Name') || h('span', { class: 'muted' }, '(no name)')),
        h('td', {}, idLink('process', node.id)),
        h('td', {}, idLink('module', tag(node.tags, 'Module'))),
        h('td', {}, idLink('wallet', node.owner.address)),
        slots, last)
    );
    return { node, slots, last };
  });
  // The SU's latest assignment gives the slot count and last activity: one
  // small read per listed process, a few at a time.
  pool(rows, 4, async ({ node, slots, last }) => {
    try {
      const l = await api.latestSlot(node.id);
      slots.textContent = String(l.slot + 1);
      if (l.slot >= 0) last.replaceChildren(time(l.timestamp), ' ', h('span', { class: 'muted' }, ago(l.timestamp)));
      else last.replaceChildren(h('span', { class: 'muted' }, 'no messages yet'));
    } catch (e) {
      slots.textContent = '?';
      last.replaceChildren(h('span', { class: 'muted', title: e.message }, 'not on this SU'));
    }
  });
  const table = h(
    'table',
    { class: 'list', id: 'processes' },
    h('thead', {}, h('tr', {}, ['Name', 'Process', 'Module', 'Owner', 'Slots', 'Last activity'].map((t) => h('th', {}, t)))),
    body
  );
  const nav = h('div', { class: 'pager' });
  if (after) nav.append(h('a', { href: '#', onclick: (ev) => { ev.preventDefault(); history.back(); } }, '← Previous'));
  if (page.pageInfo.hasNextPage) nav.append(h('a', { href: nextHref(page.edges[page.edges.length - 1].cursor), class: 'next' }, 'Next →'));
  return h('div', {}, table, nav);
}
