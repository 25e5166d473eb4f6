// The explorer's router: #/path/ID?query picks a page; each page renders into
// <main> and may return a cleanup (to stop its live updates) when left.
import * as api from './api.js';
import { h, errorBox, isID } from './ui.js';
import { networkPage } from './network.js';
import { processesPage } from './processes.js';
import { processPage } from './process.js';
import { messagePage } from './message.js';
import { modulePage, walletPage, resolvePage } from './entity.js';

const routes = {
  '': networkPage,
  network: networkPage,
  processes: processesPage,
  process: processPage,
  message: messagePage,
  module: modulePage,
  wallet: walletPage,
  id: resolvePage,
};

let cleanup = null;
let generation = 0;
let cfg = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  const [page = '', ...rest] = path.split('/');
  return { page, id: decodeURIComponent(rest.join('/')), query: new URLSearchParams(query) };
}

async function route() {
  if (cleanup) {
    try {
      cleanup();
    } catch {}
    cleanup = null;
  }
  const gen = ++generation;
  const { page, id, query } = parseHash();
  const main = document.getElementById('main');
  main.replaceChildren();
  main.dataset.page = page || 'network';
  main.removeAttribute('data-ready');
  for (const a of document.querySelectorAll('nav a[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === (page || 'network'));
  }
  const fn = routes[page];
  const ctx = {
    cfg,
    // live is false once the user left the page: late answers are dropped.
    live: () => gen === generation,
    // ready marks the page as rendered (tests and benchmarks wait for it).
    ready: () => {
      if (gen === generation) main.dataset.ready = '1';
    },
  };
  if (!fn) {
    main.append(errorBox(`No page ${page}`));
    ctx.ready();
    return;
  }
  try {
    const c = await fn(main, id, query, ctx);
    if (gen === generation) cleanup = c || null;
    else if (c) c();
  } catch (e) {
    if (gen === generation) {
      main.append(errorBox(e));
      ctx.ready();
    }
  }
}

function search(ev) {
  ev.preventDefault();
  const input = document.getElementById('search');
  const q = input.value.trim();
  if (!q) return;
  input.value = '';
  if (isID(q)) location.hash = `#/id/${encodeURIComponent(q)}`;
  else location.hash = `#/processes?q=${encodeURIComponent(q)}`;
}

async function start() {
  try {
    cfg = await api.config();
  } catch (e) {
    document.getElementById('main').append(errorBox(e));
    return;
  }
  document.getElementById('search-form').addEventListener('submit', search);
  window.addEventListener('hashchange', route);
  route();
}

start();

export { h };
