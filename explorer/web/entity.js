// Module and wallet pages, and the lookup of a bare id (which kind is it?).
import * as api from './api.js';
import { h, section, idLink, time, tag, tagsTable, kv, bytes, errorBox } from './ui.js';
import { processTable, pageSize } from './processes.js';

// resolvePage finds what an id is: a process, a message on the SU, a module
// or another gateway item, else a wallet.
export async function resolvePage(main, id, query, ctx) {
  const page = await api.transactions({ ids: [id] }, 1).catch(() => null);
  if (!ctx.live()) return;
  const node = page && page.edges.length ? page.edges[0].node : null;
  const type = node ? tag(node.tags, 'Type') : '';
  if (type === 'Process') return void location.replace(`#/process/${id}`);
  if (type === 'Module') return void location.replace(`#/module/${id}`);
  if (!node || type === 'Message') {
    const m = await api.suMessage(id).catch(() => null);
    if (!ctx.live()) return;
    if (m && m.edges) return void location.replace(`#/process/${id}`);
    if (m && m.message) return void location.replace(`#/message/${id}?process=${tag(m.assignment.tags, 'Process')}`);
  }
  if (node) return itemPage(main, node, ctx);
  return void location.replace(`#/wallet/${id}`);
}

// itemPage shows any other gateway item (an assignment, an attestation, a checkpoint).
function itemPage(main, node, ctx) {
  main.append(
    h('h1', {}, 'Item ', h('span', { class: 'name' }, tag(node.tags, 'Type') || '')),
    h('div', { class: 'subtitle' }, idLink('id', node.id, { full: true })),
    section('Item', kv([
      ['Owner', idLink('wallet', node.owner.address, { full: true })],
      node.recipient && ['Target', idLink('id', node.recipient, { full: true })],
      ['Size', bytes(node.data.size)],
      ['Block', node.block ? [String(node.block.height), ' · ', time(node.block.timestamp, { seconds: true })] : 'pending'],
      ['Data', h('a', { href: `/api/gateway/${node.id}`, target: '_blank' }, 'raw data')],
    ]), tagsTable(node.tags))
  );
  ctx.ready();
}

export async function modulePage(main, id, query, ctx) {
  const page = await api.transactions({ ids: [id] }, 1);
  if (!ctx.live()) return;
  main.append(h('h1', {}, 'Module'), h('div', { class: 'subtitle' }, idLink('module', id, { full: true })));
  if (!page.edges.length) {
    main.append(errorBox(`The gateway holds no item ${id}`));
    ctx.ready();
    return;
  }
  const node = page.edges[0].node;
  main.append(
    section('What it is', kv([
      ['Format', tag(node.tags, 'Module-Format') || '—'],
      ['Size', bytes(node.data.size)],
      ['Memory limit', tag(node.tags, 'Memory-Limit') || '—'],
      ['Compute limit', tag(node.tags, 'Compute-Limit') || '—'],
      ['Published by', idLink('wallet', node.owner.address, { full: true })],
      ['Block', node.block ? [String(node.block.height), ' · ', time(node.block.timestamp, { seconds: true })] : 'pending'],
    ]), h('details', {}, h('summary', {}, `Tags (${node.tags.length})`), tagsTable(node.tags)))
  );
  const after = query.get('after') || '';
  const table = await processTable({ tags: [{ name: 'Type', values: ['Process'] }, { name: 'Module', values: [id] }] }, after, ctx,
    (next) => `#/module/${id}?after=${encodeURIComponent(next)}`);
  if (!ctx.live()) return;
  main.append(section('Processes using it', table));
  ctx.ready();
}

export async function walletPage(main, addr, query, ctx) {
  main.append(h('h1', {}, 'Wallet'), h('div', { class: 'subtitle' }, idLink('wallet', addr, { full: true })));
  const procAfter = query.get('pafter') || '';
  const sentAfter = query.get('after') || '';
  const owned = await processTable({ owners: [addr], tags: [{ name: 'Type', values: ['Process'] }] }, procAfter, ctx,
    (next) => `#/wallet/${addr}?pafter=${encodeURIComponent(next)}`);
  if (!ctx.live()) return;
  main.append(section('Processes it owns', owned));
  const sent = h('div', { id: 'sent' });
  main.append(section('What it signed (newest first)', sent));
  try {
    const page = await api.transactions({ owners: [addr] }, pageSize, sentAfter);
    if (!ctx.live()) return;
    if (!page.edges.length) sent.append(h('p', { class: 'empty' }, 'Nothing on the gateway.'));
    else {
      sent.append(
        h('table', { class: 'list' },
          h('thead', {}, h('tr', {}, ['Item', 'Type', 'Action', 'Target', 'Size', 'Block'].map((t) => h('th', {}, t)))),
          h('tbody', {}, page.edges.map(({ node }) => {
            const type = tag(node.tags, 'Type');
            const kind = type === 'Process' ? 'process' : type === 'Module' ? 'module' : type === 'Message' ? 'message' : 'id';
            return h('tr', {}, h('td', {}, idLink(kind, node.id, { query: kind === 'message' && node.recipient ? `process=${node.recipient}` : '' })),
              h('td', {}, type || '—'), h('td', {}, tag(node.tags, 'Action') || ''),
              h('td', {}, node.recipient ? idLink('process', node.recipient) : ''), h('td', { class: 'num' }, bytes(node.data.size)),
              h('td', {}, node.block ? String(node.block.height) : 'pending'));
          })))
      );
      if (page.pageInfo.hasNextPage) {
        sent.append(h('div', { class: 'pager' }, h('a', { class: 'next', href: `#/wallet/${addr}?after=${encodeURIComponent(page.edges[page.edges.length - 1].cursor)}` }, 'Older →')));
      }
    }
  } catch (e) {
    sent.append(errorBox(e));
  }
  ctx.ready();
}
