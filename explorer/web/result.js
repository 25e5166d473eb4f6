// A CU result as aos shows it: the printed Output (with aos's colours), the
// outbox (Messages, Spawns, Assignments), the Error and the gas used.
import { h, ansi, outputText, idLink, tag, tagsTable } from './ui.js';

export function resultView(r, { compact = false } = {}) {
  if (!r) return h('p', { class: 'muted' }, 'No result yet.');
  const box = h('div', { class: 'result' });
  if (r.Error) {
    box.append(h('div', { class: 'result-error', 'data-error': '1' }, h('strong', {}, 'Error '), ansi(String(r.Error))));
  }
  const out = outputText(r.Output);
  if (out) box.append(h('pre', { class: 'output' }, ansi(out)));
  else if (!r.Error) box.append(h('p', { class: 'muted' }, 'No output.'));
  const prompt = r.Output && typeof r.Output === 'object' && r.Output.prompt;
  if (prompt && !compact) box.append(h('div', { class: 'prompt' }, ansi(prompt)));
  const list = (title, items, render) => {
    if (!items || !items.length) return;
    box.append(h('h4', {}, `${title} (${items.length})`), h('ul', { class: 'outbox' }, items.map((x) => h('li', {}, render(x)))));
  };
  list('Messages', r.Messages, (m) => [
    'to ', idLink('process', m.Target),
    tag(m.Tags, 'Action') ? [' · Action ', h('code', {}, tag(m.Tags, 'Action'))] : '',
    m.Data ? [' · ', h('code', { class: 'data' }, String(m.Data).slice(0, 120))] : '',
    compact ? '' : h('details', {}, h('summary', {}, 'tags'), tagsTable(m.Tags)),
  ]);
  list('Spawns', r.Spawns, (s) => [
    'spawn', tag(s.Tags, 'Name') ? [' ', h('strong', {}, tag(s.Tags, 'Name'))] : '',
    tag(s.Tags, 'Module') ? [' of module ', idLink('module', tag(s.Tags, 'Module'))] : '',
    compact ? '' : h('details', {}, h('summary', {}, 'tags'), tagsTable(s.Tags)),
  ]);
  list('Assignments', r.Assignments, (a) => [
    'assign ', idLink('message', a.Message), ' to ', (a.Processes || []).map((p) => [idLink('process', p), ' ']),
  ]);
  if (r.GasUsed !== undefined) box.append(h('div', { class: 'gas muted' }, `Gas used ${r.GasUsed}`));
  return box;
}
