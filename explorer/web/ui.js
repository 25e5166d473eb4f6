// Small DOM helpers shared by the pages: element building, id links with a
// copy button, local times with the raw value on hover, tags, and aos's ANSI
// colours rendered as spans.

// h builds an element: h('a', {href: '#/'}, 'text', child, ...).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function short(id) {
  if (!id || id.length <= 14) return id || '';
  return `${id.slice(0, 6)}…${id.slice(-4)}`;
}

// copyButton copies text to the clipboard (with a fallback for pages served
// over plain http to another machine, where navigator.clipboard is absent).
export function copyButton(text) {
  return h(
    'button',
    {
      class: 'copy',
      title: 'Copy ' + text,
      'aria-label': 'copy',
      'data-copy': text,
      onclick: async (ev) => {
        ev.preventDefault();
        ev.stopPropagation();
        const b = ev.currentTarget;
        try {
          await navigator.clipboard.writeText(text);
        } catch {
          const t = h('textarea', {}, text);
          document.body.append(t);
          t.select();
          document.execCommand('copy');
          t.remove();
        }
        b.classList.add('copied');
        setTimeout(() => b.classList.remove('copied'), 800);
      },
    },
    h('span', { class: 'copy-icon' })
  );
}

// idLink links an id to its page; full shows all 43 characters.
export function idLink(kind, id, { full = false, label = '', query = '' } = {}) {
  if (!id) return h('span', { class: 'muted' }, '—');
  const href = `#/${kind}/${encodeURIComponent(id)}${query ? '?' + query : ''}`;
  return h(
    'span',
    { class: 'id' },
    h('a', { href, title: id, class: `link-${kind}`, 'data-id': id }, label || (full ? id : short(id))),
    copyButton(id)
  );
}

// time shows a millisecond (or second) timestamp in local time, the raw value on hover.
export function time(raw, { seconds = false } = {}) {
  if (raw === undefined || raw === null || raw === '') return h('span', { class: 'muted' }, '—');
  const ms = Number(raw) * (seconds ? 1000 : 1);
  if (!Number.isFinite(ms)) return h('span', {}, String(raw));
  const d = new Date(ms);
  return h('time', { datetime: d.toISOString(), title: `${raw} (${d.toISOString()})` }, d.toLocaleString());
}

export function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function duration(ms) {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return (d ? `${d}d ` : '') + (d || hh ? `${hh}h ` : '') + `${m}m ${s % 60}s`;
}

export function tag(tags, name) {
  const t = (tags || []).find((t) => t.name === name);
  return t ? t.value : '';
}

const idRe = /^[A-Za-z0-9_-]{43}$/;
export const isID = (s) => idRe.test(s);

// tagsTable shows tags; values that are ids link to a lookup.
export function tagsTable(tags) {
  if (!tags || !tags.length) return h('p', { class: 'muted' }, 'No tags');
  return h(
    'table',
    { class: 'tags' },
    h(
      'tbody',
      {},
      tags.map((t) =>
        h('tr', {}, h('th', {}, t.name), h('td', {}, isID(t.value) ? idLink('id', t.value, { full: true }) : t.value))
      )
    )
  );
}

const ansiColors = { 30: 'black', 31: 'red', 32: 'green', 33: 'yellow', 34: 'blue', 35: 'magenta', 36: 'cyan', 37: 'white' };

// ansi renders text with ANSI SGR codes (as aos prints) as coloured spans.
export function ansi(text) {
  const out = h('span', { class: 'ansi' });
  let cls = [];
  const re = /\u001b\[([0-9;]*)m/g;
  let last = 0, m;
  const push = (s) => {
    if (s) out.append(cls.length ? h('span', { class: cls.join(' ') }, s) : s);
  };
  while ((m = re.exec(text))) {
    push(text.slice(last, m.index));
    last = re.lastIndex;
    for (const c of (m[1] || '0').split(';').map(Number)) {
      if (c === 0) cls = [];
      else if (c === 1) cls.push('ansi-bold');
      else if (ansiColors[c]) cls = cls.filter((x) => !x.startsWith('ansi-c-')).concat('ansi-c-' + ansiColors[c]);
      else if (ansiColors[c - 60]) cls = cls.filter((x) => !x.startsWith('ansi-c-')).concat('ansi-c-bright-' + ansiColors[c - 60]);
    }
  }
  push(text.slice(last));
  return out;
}

// outputText is what aos prints of a result's Output: its data (a string, or
// a JSON value aos would serialize), else the whole Output.
export function outputText(output) {
  if (output === undefined || output === null) return '';
  if (typeof output === 'string') return output;
  if ('data' in output) {
    const d = output.data;
    if (typeof d === 'string') return d;
    if (d && typeof d === 'object' && 'output' in d) return String(d.output);
    return JSON.stringify(d, null, 2);
  }
  return JSON.stringify(output, null, 2);
}

export function errorBox(e) {
  return h('div', { class: 'error', role: 'alert' }, String(e && e.message ? e.message : e));
}

export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...children);
}

export function kv(rows) {
  return h(
    'dl',
    { class: 'kv' },
    rows.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])
  );
}

export function bytes(n) {
  if (n === undefined || n === null || n === '') return '—';
  n = Number(n);
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

export function utf8Length(s) {
  return new TextEncoder().encode(s || '').length;
}

// pool runs fn over items with at most n at once.
export async function pool(items, n, fn) {
  let i = 0;
  const worker = async () => {
    while (i < items.length) {
      const k = i++;
      await fn(items[k], k);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}
