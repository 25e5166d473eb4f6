// Message: the item (tags, data, signature check), its assignment and link in
// the process's hash chain, its result (with attestations where the CU gives
// them), and its flow across processes.
import * as api from './api.js';
import { h, section, idLink, time, tag, tagsTable, kv, errorBox, bytes, utf8Length, copyButton } from './ui.js';
import { resultView } from './result.js';
import { flowSection } from './flow.js';
import { resolvePage } from './entity.js';

export async function messagePage(main, id, query, ctx) {
  let m;
  try {
    m = await api.suMessage(id, query.get('process') || '');
  } catch (e) {
    // Not scheduled on this SU: maybe a module, a wallet, or another item.
    if (e.status === 400 || e.status === 404) return resolvePage(main, id, query, ctx);
    throw e;
  }
  if (!ctx.live()) return;
  if (m.edges) {
    // A process id: the SU answered its schedule.
    location.replace(`#/process/${encodeURIComponent(id)}`);
    return;
  }
  const msg = m.message, a = m.assignment;
  const pid = tag(a.tags, 'Process');
  const slot = Number(tag(a.tags, 'Nonce'));
  main.append(
    h('h1', {}, 'Message', tag(msg.tags, 'Action') ? [' ', h('span', { class: 'name' }, tag(msg.tags, 'Action'))] : ''),
    h('div', { class: 'subtitle' }, idLink('message', id, { full: true, query: `process=${pid}` }))
  );
  const sig = h('span', { id: 'signature' }, h('span', { class: 'muted' }, 'checking…'));
  const fromProc = tag(msg.tags, 'From-Process');
  main.append(
    section(
      'Item',
      kv([
        ['Process', idLink('process', pid, { full: true })],
        ['From', fromProc ? ['process ', idLink('process', fromProc, { full: true })] : idLink('wallet', msg.owner.address, { full: true })],
        fromProc && ['Signed by', idLink('wallet', msg.owner.address, { full: true })],
        ['Signature', sig],
        ['Size', bytes(utf8Length(msg.data))],
      ]),
      h('h3', {}, `Tags (${msg.tags.length})`),
      tagsTable(msg.tags),
      h('h3', {}, 'Data'),
      dataView(msg.data)
    )
  );
  api.verify(id).then(
    (v) => {
      const cls = v.status === 'valid' ? 'ok' : v.status === 'invalid' ? 'bad' : 'warn';
      sig.replaceChildren(h('span', { class: `badge ${cls}`, 'data-status': v.status }, v.status), v.type ? ` ${v.type}` : '', v.reason ? h('span', { class: 'muted' }, ' ' + v.reason) : '');
    },
    (e) => sig.replaceChildren(h('span', { class: 'badge warn' }, 'unchecked'), h('span', { class: 'muted' }, ' ' + e.message))
  );

  const link = h('span', { id: 'chain-link' }, slot > 0 ? h('span', { class: 'muted' }, 'checking…') : 'first slot: SHA-256 of the process id');
  main.append(
    section(
      'Assignment',
      kv([
        ['Slot', h('strong', { id: 'slot' }, String(slot))],
        ['Scheduled', time(tag(a.tags, 'Timestamp'))],
        ['Block height', String(Number(tag(a.tags, 'Block-Height')))],
        ['Epoch', tag(a.tags, 'Epoch')],
        ['Assignment', idLink('id', a.id, { full: true })],
        ['Scheduler', idLink('wallet', a.owner.address, { full: true })],
        ['Hash-Chain', h('code', {}, tag(a.tags, 'Hash-Chain'))],
        ['Chain link', link],
        ['Neighbours', [slot > 0 ? h('a', { href: `#/process/${pid}?slot=${slot - 1}`, class: 'prev' }, '← slot ' + (slot - 1)) : '',
          ' ', h('a', { href: `#/process/${pid}?slot=${slot}` }, 'in the schedule')]],
      ])
    )
  );
  if (slot > 0) chainLink(pid, slot, tag(a.tags, 'Hash-Chain'), link);

  const res = h('div', { id: 'result' }, h('p', { class: 'muted' }, 'Evaluating…'));
  const att = h('div', { id: 'attestation' });
  main.append(section('Result', res, att));
  main.append(section('Flow', h('p', { class: 'muted' }, 'The messages this one caused, across processes, from the MU trace. Click a node to open it.'), flowSection(id, ctx)));
  ctx.ready();

  try {
    const { result, attestation } = await api.result(pid, id);
    if (!ctx.live()) return;
    res.replaceChildren(resultView(result));
    attestations(pid, id, attestation, att, ctx);
  } catch (e) {
    if (ctx.live()) res.replaceChildren(errorBox(e));
  }
}

function dataView(data) {
  const text = data || '';
  if (!text) return h('p', { class: 'muted' }, 'No data.');
  const max = 4096;
  const pre = h('pre', { class: 'data' }, text.length > max ? text.slice(0, max) : text);
  if (text.length <= max) return pre;
  return h('div', {}, pre, h('button', { onclick: (ev) => { pre.textContent = text; ev.currentTarget.remove(); } }, `Show all ${text.length} characters`));
}

// chainLink checks Hash-Chain = SHA-256(previous assignment id ‖ previous
// Hash-Chain) with the previous slot from the SU (WebCrypto; pages served
// over plain http to another machine cannot, and say so).
async function chainLink(pid, slot, hashChain, el) {
  try {
    const prev = (await api.schedule(pid, slot - 1, slot - 1)).edges[0].node;
    const prevMsg = h('span', {}, 'follows slot ', String(slot - 1), ' ', idLink('message', prev.message.id, { query: `process=${pid}` }));
    if (!crypto.subtle) {
      el.replaceChildren(prevMsg, h('span', { class: 'muted' }, ' (not checked: WebCrypto needs https or localhost)'));
      return;
    }
    const raw = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
    const buf = new Uint8Array(64);
    buf.set(raw(prev.assignment.id), 0);
    buf.set(raw(tag(prev.assignment.tags, 'Hash-Chain')), 32);
    const sum = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
    const b64 = btoa(String.fromCharCode(...sum)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const ok = b64 === hashChain;
    el.replaceChildren(h('span', { class: `badge ${ok ? 'ok' : 'bad'}`, 'data-status': ok ? 'valid' : 'invalid' }, ok ? 'linked' : 'broken'), ' ', prevMsg);
  } catch (e) {
    el.replaceChildren(h('span', { class: 'muted' }, 'not checked: ' + e.message));
  }
}

// attestations shows what exists and says nothing is wrong when none does:
// the CU's ao-attestation header and GET /attestation, and gateway items
// tagged Type: Attestation for this message.
async function attestations(pid, id, header, el, ctx) {
  const items = [];
  const fromCU = await api.attestation(pid, id).catch(() => null);
  if (fromCU && fromCU.id) {
    items.push(h('div', { class: 'attestation', 'data-id': fromCU.id }, kv([
      ['Attestation', [h('code', {}, fromCU.id), copyButton(fromCU.id), ' ',
        h('a', { href: `/api/cu/attestation/${encodeURIComponent(id)}?process-id=${encodeURIComponent(pid)}`, download: `${fromCU.id}.ans104` }, 'signed item')]],
      ['Signed by the CU', idLink('wallet', fromCU.owner, { full: true })],
      ['Slot', String(fromCU.slot)],
      ['Result SHA-256', h('code', {}, fromCU.resultSha256)],
      ['Memory SHA-256', h('code', {}, fromCU.memorySha256)],
      ['Gas used', String(fromCU.gasUsed)],
    ])));
  } else if (header) {
    items.push(h('p', {}, 'The CU names attestation ', h('code', {}, header), copyButton(header)));
  }
  try {
    const page = await api.transactions({ tags: [{ name: 'Type', values: ['Attestation'] }, { name: 'Message', values: [id] }] }, 10);
    for (const { node } of page.edges) {
      items.push(h('p', {}, 'Published on the gateway: ', idLink('id', node.id, { full: true }), ' by ', idLink('wallet', node.owner.address)));
    }
  } catch {}
  if (!ctx.live()) return;
  el.replaceChildren(h('h3', {}, 'Attestation'), ...(items.length ? items : [h('p', { class: 'muted' }, 'None given for this result.')]));
}
