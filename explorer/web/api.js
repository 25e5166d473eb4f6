// Reads of the units' public HTTP APIs, through the explorer's read-only
// proxy (/api/{gateway,su,cu,mu,hb}/...). Every function returns plain data
// or throws an Error whose message says which unit answered what.

export class UnitError extends Error {
  constructor(unit, status, msg) {
    super(`${unit} answered ${status}: ${msg}`);
    this.unit = unit;
    this.status = status;
  }
}

async function call(unit, path, opts = {}) {
  let resp;
  try {
    resp = await fetch(unit ? `/api/${unit}${path}` : path, opts);
  } catch (e) {
    throw new UnitError(unit || 'explorer', 0, `unreachable (${e.message})`);
  }
  return resp;
}

async function json(unit, path, opts) {
  const resp = await call(unit, path, opts);
  const text = await resp.text();
  let body;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!resp.ok) {
    throw new UnitError(unit, resp.status, (body && body.error) || text.slice(0, 200) || resp.statusText);
  }
  if (body === null && text) throw new UnitError(unit, resp.status, 'not JSON: ' + text.slice(0, 100));
  return { body, headers: resp.headers };
}

export async function config() {
  return (await json('', '/api/config')).body;
}

// ---- gateway ----

const txFields = `id owner { address } recipient tags { name value } data { size type } block { height timestamp }`;

// gql runs a GraphQL transactions query; filter holds its arguments.
export async function transactions(filter, first = 20, after = '') {
  const args = [`first: ${first | 0}`];
  if (after) args.push(`after: ${JSON.stringify(after)}`);
  if (filter.ids) args.push(`ids: ${JSON.stringify(filter.ids)}`);
  if (filter.owners) args.push(`owners: ${JSON.stringify(filter.owners)}`);
  if (filter.recipients) args.push(`recipients: ${JSON.stringify(filter.recipients)}`);
  if (filter.tags) {
    const tags = filter.tags.map((t) => `{ name: ${JSON.stringify(t.name)}, values: ${JSON.stringify(t.values)} }`);
    args.push(`tags: [${tags.join(', ')}]`);
  }
  const query = `{ transactions(${args.join(', ')}) { pageInfo { hasNextPage } edges { cursor node { ${txFields} } } } }`;
  const { body } = await json('gateway', '/graphql', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ query }),
  });
  if (body.errors && body.errors.length) throw new UnitError('gateway', 200, body.errors[0].message);
  return body.data.transactions;
}

export async function gatewayInfo() {
  return (await json('gateway', '/info')).body;
}

// ---- SU ----

export async function suProcess(pid) {
  return (await json('su', `/processes/${enc(pid)}`)).body;
}

// latestSlot returns the newest slot of pid and its time, or {slot: -1} for
// a process with an empty schedule (a legacy process whose first message
// has not come yet).
export async function latestSlot(pid) {
  try {
    const { body } = await json('su', `/${enc(pid)}/latest`);
    const t = (name) => (body.assignment.tags.find((x) => x.name === name) || {}).value;
    return { slot: Number(t('Nonce')), timestamp: Number(t('Timestamp')) };
  } catch (e) {
    if (e.status === 400 && /not available/.test(e.message)) return { slot: -1, timestamp: 0 };
    throw e;
  }
}

// schedule returns slots [from, to] of pid (nonce mode, both inclusive).
export async function schedule(pid, from, to) {
  const q = new URLSearchParams({ 'to-nonce': String(to), limit: String(to - from + 1) });
  if (from > 0) q.set('from-nonce', String(from - 1));
  return (await json('su', `/${enc(pid)}?${q}`)).body;
}

// suMessage finds a message (and its assignment) in any schedule of the SU;
// for a process id the SU answers a schedule page instead.
export async function suMessage(id, pid = '') {
  const q = pid ? `?process-id=${enc(pid)}` : '';
  return (await json('su', `/${enc(id)}${q}`)).body;
}

export async function suInfo() {
  return (await json('su', '/')).body;
}

// ---- CU ----

export function cursor(timestamp, ordinate) {
  return btoa(JSON.stringify({ timestamp, ordinate: String(ordinate), sort: 'ASC' }));
}

export function parseCursor(c) {
  try {
    const o = JSON.parse(atob(c));
    return { timestamp: o.timestamp, ordinate: Number(o.ordinate), cron: o.cron || '' };
  } catch {
    return null;
  }
}

// results lists stored results between two CU cursors (from exclusive, to
// inclusive); the CU lists only results without an Error.
export async function results(pid, from, to, limit) {
  const q = new URLSearchParams({ sort: 'ASC', limit: String(limit) });
  if (from) q.set('from', from);
  if (to) q.set('to', to);
  return (await json('cu', `/results/${enc(pid)}?${q}`)).body;
}

// result evaluates up to the message (the CU computes on demand) and returns
// the result and its attestation id (header ao-attestation) when the CU gives one.
export async function result(pid, id) {
  const { body, headers } = await json('cu', `/result/${enc(id)}?process-id=${enc(pid)}`);
  return { result: body, attestation: headers.get('ao-attestation') || '' };
}

export async function cron(pid, fromMs, limit) {
  const q = new URLSearchParams({ from: String(fromMs), limit: String(limit) });
  return (await json('cu', `/cron/${enc(pid)}?${q}`)).body;
}

export async function dryRun(pid, msg) {
  return (
    await json('cu', `/dry-run?process-id=${enc(pid)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(msg),
    })
  ).body;
}

// attestation is the CU's signed attestation of a result, or null where the
// CU does not give one.
export async function attestation(pid, id) {
  const resp = await call('cu', `/attestation/${enc(id)}?process-id=${enc(pid)}`, { headers: { Accept: 'application/json' } });
  if (!resp.ok) return null;
  try {
    return await resp.json();
  } catch {
    return null;
  }
}

export async function cuInfo() {
  return (await json('cu', '/')).body;
}

// ---- MU ----

// trace returns the MU's crank steps about a message (the steps that handled
// it and every step pushed for it), up to maxPages pages of 100.
export async function trace(id, maxPages = 5) {
  const steps = [];
  let more = false;
  for (let page = 1; page <= maxPages; page++) {
    const { body } = await json('mu', `/?debug=1&message=${enc(id)}&page-size=100&page=${page}`);
    for (const e of body.edges) steps.push(e.node);
    more = body.pageInfo.hasNextPage;
    if (!more) break;
  }
  return { steps, truncated: more };
}

export async function muAddress() {
  const resp = await call('mu', '/');
  if (!resp.ok) throw new UnitError('mu', resp.status, resp.statusText);
  return resp.headers.get('ao-mu-address') || '';
}

// ---- AO-Core ----

export async function patchState(pid) {
  return (await json('hb', `/${enc(pid)}~process@1.0/now`)).body;
}

// ---- metrics ----

// metrics parses a unit's Prometheus text into name{labels} -> value.
export async function metrics(unit) {
  const resp = await call(unit, '/metrics');
  if (!resp.ok) throw new UnitError(unit, resp.status, resp.statusText);
  const out = {};
  for (const line of (await resp.text()).split('\n')) {
    if (!line || line[0] === '#') continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

export async function verify(id) {
  return (await json('', `/api/verify/${enc(id)}`)).body;
}

function enc(s) {
  return encodeURIComponent(s);
}
