// @ts-check
/** The dashboard shell: takes the token from the URL fragment, opens the one live connection,
 * shows its state, routes between the repos view and a repo view (with its job drawer), and
 * shows server errors as toasts. */

import { Api } from './api.js';
import { fill, h } from './dom.js';
import { Live } from './live.js';
import { mountRepo } from './repo-view.js';
import { mountRepos } from './repos-view.js';

/**
 * What every view gets from the shell.
 * @typedef {object} Ctx
 * @property {Live} live
 * @property {Api} api
 * @property {(message: string, kind?: 'error' | 'info') => void} toast
 * @property {(crumbs: {label: string, href?: string}[]) => void} setCrumbs
 * @property {EventTarget} clock  fires `tick` every 15 s, to refresh relative times
 */

/**
 * @typedef {object} Route
 * @property {'repos' | 'repo'} name
 * @property {string} [repoId]
 * @property {string} [jobId]
 */

const TOKEN_KEY = 'gantry.token';

/**
 * The token arrives once in the fragment (`/#token=...`, which browsers never send to servers);
 * it moves to sessionStorage and the fragment is wiped from the address bar and history.
 * @returns {string | null}
 */
function takeToken() {
  const match = /^#(?:.*&)?token=([^&]*)/.exec(location.hash);
  if (match) {
    const token = decodeURIComponent(match[1]);
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, '', `${location.pathname}${location.search}`);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** @returns {Route} */
function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'repo' && parts[1]) {
    return { name: 'repo', repoId: parts[1], jobId: parts[2] === 'job' ? parts[3] : undefined };
  }
  return { name: 'repos' };
}

const main = /** @type {HTMLElement} */ (document.getElementById('main'));
const crumbs = /** @type {HTMLElement} */ (document.getElementById('crumbs'));
const conn = /** @type {HTMLElement} */ (document.getElementById('conn'));
const toasts = /** @type {HTMLElement} */ (document.getElementById('toasts'));

/**
 * @param {string} message
 * @param {'error' | 'info'} [kind]
 */
function toast(message, kind = 'error') {
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss' }, '✕');
  const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'toast-text' }, message), close);
  const dismiss = () => el.remove();
  close.addEventListener('click', dismiss);
  toasts.append(el);
  setTimeout(dismiss, kind === 'error' ? 9000 : 5000);
  while (toasts.childElementCount > 4) toasts.firstElementChild?.remove();
}

/** @param {{label: string, href?: string}[]} items */
function setCrumbs(items) {
  const sig = JSON.stringify(items);
  if (crumbs.dataset.sig === sig) return;
  crumbs.dataset.sig = sig;
  fill(crumbs, items.map((c, i) => [
    i ? h('span', { class: 'crumb-sep', 'aria-hidden': 'true' }, '/') : null,
    c.href ? h('a', { href: c.href }, c.label) : h('span', { 'aria-current': 'page' }, c.label),
  ]));
  document.title = items.length > 1 ? `${items[items.length - 1].label} · gantry` : 'gantry';
}

/** @param {string} [reason] */
function signIn(reason) {
  setCrumbs([]);
  conn.hidden = true;
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const form = h('form', { class: 'panel signin' },
    h('h1', null, 'Open the dashboard'),
    h('p', { class: 'muted' }, 'Use the dashboard URL that ', h('code', null, 'gantry serve'), ' prints (it carries the token), or paste the admin token here. It is kept for this tab only.'),
    reason ? h('p', { class: 'form-error', role: 'alert' }, reason) : null,
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'Token'), input),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn primary' }, 'Continue')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    location.reload();
  });
  fill(main, form);
  input.focus();
}

const STATE_LABEL = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
  unauthorized: 'Signed out',
};

/** @param {Live} live */
function indicator(live) {
  const label = h('span', { class: 'conn-label' });
  const detail = h('span', { class: 'conn-detail' });
  const retry = h('button', { type: 'button', class: 'btn small ghost', hidden: true }, 'Retry now');
  retry.addEventListener('click', () => live.retryNow());
  fill(conn, h('span', { class: 'dot', 'aria-hidden': 'true' }), label, detail, retry);
  /** @type {ReturnType<typeof setInterval> | undefined} */
  let countdown;
  const paint = () => {
    conn.dataset.state = live.state;
    label.textContent = STATE_LABEL[live.state];
    conn.title = live.state === 'live' ? 'Connected: changes appear as they happen' : '';
    const waiting = live.state === 'reconnecting' || live.state === 'offline';
    retry.hidden = !waiting;
    clearInterval(countdown);
    detail.textContent = '';
    if (waiting) {
      const tickDown = () => {
        const s = Math.max(0, Math.ceil((live.retryAt - Date.now()) / 1000));
        detail.textContent = live.socket ? 'trying…' : s > 0 ? `retry in ${s} s` : 'trying…';
      };
      tickDown();
      countdown = setInterval(tickDown, 500);
    }
  };
  live.addEventListener('state', paint);
  live.addEventListener('retry', paint);
  paint();
}

function start(/** @type {string} */ token) {
  const api = new Api(token);
  const live = new Live(token, { probe: () => api.probe() });
  const clock = new EventTarget();
  setInterval(() => clock.dispatchEvent(new Event('tick')), 15_000);
  /** @type {Ctx} */
  const ctx = { live, api, toast, setCrumbs, clock };

  const signOut = () => {
    sessionStorage.removeItem(TOKEN_KEY);
    live.stop();
    view?.destroy();
    view = null;
    signIn('The server refused the token. Open the dashboard URL that gantry serve printed.');
  };
  api.onUnauthorized = signOut;
  live.addEventListener('unauthorized', signOut);
  indicator(live);

  /** @type {{update?: (route: Route) => void, destroy: () => void} | null} */
  let view = null;
  /** @type {Route | null} */
  let current = null;
  const route = () => {
    if (!sessionStorage.getItem(TOKEN_KEY)) return;
    const next = parseRoute();
    if (view && current && next.name === current.name && next.repoId === current.repoId && view.update) {
      current = next;
      view.update(next);
      return;
    }
    view?.destroy();
    current = next;
    const root = h('div', { class: 'view' });
    fill(main, root);
    view = next.name === 'repo' ? mountRepo(root, ctx, next) : mountRepos(root, ctx);
    main.focus({ preventScroll: true });
  };
  window.addEventListener('hashchange', route);
  live.start();
  route();
}

const token = takeToken();
if (token) start(token);
else signIn();
