// @ts-check
/** Tiny DOM helpers: element creation and keyed list reconciliation (nodes are reused by key, so
 * focus and running animations survive live updates). No `innerHTML` anywhere: every server
 * string is set as text. */

/** @typedef {Node | string | number | null | undefined | false} Child */
/** @typedef {Child | ChildList} Children */
/** @typedef {Array<Children>} ChildList */

/**
 * Creates an element. Attributes: `class`, `dataset`, `on<event>` listeners, the properties
 * `value`, `checked`, `selected`; anything else is set as an attribute (`true` as empty).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...Children} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value == null || value === false) continue;
      if (name === 'class') el.className = value;
      else if (name === 'dataset') Object.assign(el.dataset, value);
      else if (name.startsWith('on') && typeof value === 'function') {
        el.addEventListener(name.slice(2), value);
      } else if (name === 'value' || name === 'checked' || name === 'selected') {
        /** @type {any} */ (el)[name] = value;
      } else el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/**
 * @param {Element | DocumentFragment} parent
 * @param {Children[]} children
 */
export function append(parent, children) {
  for (const child of /** @type {Child[]} */ (/** @type {any[]} */ (children).flat(Infinity))) {
    if (child == null || child === false) continue;
    parent.append(typeof child === 'number' ? String(child) : child);
  }
}

/**
 * Replaces an element's children.
 * @param {Element} el
 * @param {...Children} children
 */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * Sets `data-*` values that differ: writing an attribute, even to its value, makes the browser
 * re-match styles, and views re-render hundreds of rows per pushed change.
 * @param {HTMLElement} el
 * @param {Record<string, string>} values
 */
export function setData(el, values) {
  let seen = dataSeen.get(el);
  if (!seen) dataSeen.set(el, (seen = {}));
  for (const [key, value] of Object.entries(values)) {
    if (seen[key] !== value) {
      seen[key] = value;
      el.dataset[key] = value;
    }
  }
}

/** @type {WeakMap<HTMLElement, Record<string, string>>} */
const dataSeen = new WeakMap();

/**
 * Sets an element's text when it differs (a write always invalidates layout).
 * @param {HTMLElement} el
 * @param {string} text
 */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** @type {WeakMap<Element, string>} */
const signatures = new WeakMap();

/**
 * Runs `paint` only when `signature` differs from the element's previous one: updates that
 * change nothing touch no DOM.
 * @param {Element} el
 * @param {string} signature
 * @param {() => void} paint
 */
export function patch(el, signature, paint) {
  if (signatures.get(el) === signature) return;
  signatures.set(el, signature);
  paint();
}

/**
 * Makes `parent`'s element children the nodes of `items`, in order, reusing nodes by key.
 * @template T
 * @param {Element} parent
 * @param {T[]} items
 * @param {(item: T) => string} key
 * @param {(item: T) => HTMLElement} create
 * @param {(el: HTMLElement, item: T) => void} update
 */
export function reconcile(parent, items, key, create, update) {
  const keys = items.map(key);
  // The common case of a live update: the same rows in the same order. Update them in place.
  const last = lists.get(parent);
  if (
    last &&
    last.keys.length === keys.length &&
    last.keys.every((k, i) => k === keys[i]) &&
    last.els.every((el) => el.parentNode === parent) &&
    parent.childElementCount === keys.length
  ) {
    items.forEach((item, i) => update(last.els[i], item));
    return;
  }
  /** @type {Map<string, HTMLElement>} */
  const old = new Map();
  for (const child of Array.from(parent.children)) {
    if (child instanceof HTMLElement && child.dataset.key != null) old.set(child.dataset.key, child);
    else child.remove();
  }
  let cursor = parent.firstElementChild;
  /** @type {HTMLElement[]} */
  const els = [];
  items.forEach((item, i) => {
    const k = keys[i];
    let el = old.get(k);
    if (el) old.delete(k);
    else {
      el = create(item);
      el.dataset.key = k;
    }
    update(el, item);
    if (el === cursor) cursor = cursor.nextElementSibling;
    else parent.insertBefore(el, cursor);
    els.push(el);
  });
  for (const el of old.values()) el.remove();
  lists.set(parent, { keys, els });
}

/** The keys and nodes each reconciled list was last given. @type {WeakMap<Element, {keys: string[], els: HTMLElement[]}>} */
const lists = new WeakMap();

/**
 * Re-runs `fn` at most once per task, however many changes arrive in it: every pushed message is
 * rendered on its own, so no state (a short `running`) is ever skipped. Under a storm of
 * messages (more than 20 renders in a row less than 50 ms apart) it renders at most every 50 ms.
 * @param {() => void} fn
 * @returns {() => void}
 */
export function coalesce(fn) {
  let queued = false;
  let last = 0;
  let burst = 0;
  const run = () => {
    queued = false;
    last = performance.now();
    fn();
  };
  return () => {
    if (queued) return;
    queued = true;
    burst = performance.now() - last < 50 ? burst + 1 : 0;
    if (burst > 20) setTimeout(run, 50);
    else queueMicrotask(run);
  };
}

// ---- Widgets shared by the views ----

/** @typedef {import('./types/Job').Job} Job */

/**
 * A job's live status badge: `queued`, `running 2/5`, `completed`, `error`, `cancelled`.
 * @param {Job} job
 */
export function jobBadgeText(job) {
  if (job.status === 'running') {
    if (job.cancel_requested) return 'cancelling';
    const p = job.progress;
    return p && p.total > 0 ? `running ${Math.min(p.step, p.total)}/${p.total}` : 'running';
  }
  return job.status;
}

/**
 * @param {Job} job
 * @returns {HTMLSpanElement}
 */
export function jobBadge(job) {
  const el = h('span', { class: 'badge' });
  updateJobBadge(el, job);
  return el;
}

/**
 * @param {HTMLElement} el
 * @param {Job} job
 */
export function updateJobBadge(el, job) {
  el.dataset.status = job.status;
  el.dataset.jobId = job.id;
  const title =
    job.status === 'running' ? job.progress?.text ?? 'running' : job.message ?? job.status;
  el.title = title;
  fill(el, h('span', { class: 'dot', 'aria-hidden': 'true' }), jobBadgeText(job));
}

/**
 * A progress bar for a running job (role progressbar, width via a CSS variable: the CSP forbids
 * inline style attributes, not the CSSOM).
 * @param {Job} job
 */
export function progressBar(job) {
  const p = job.progress;
  const total = p && p.total > 0 ? p.total : 0;
  const step = p ? Math.min(p.step, total || p.step) : 0;
  const bar = h('div', {
    class: total ? 'progress' : 'progress indeterminate',
    role: 'progressbar',
    'aria-valuemin': 0,
    'aria-valuemax': total || 1,
    'aria-valuenow': total ? step : null,
    'aria-label': p?.text ?? 'running',
  }, h('span', { class: 'progress-fill' }));
  if (total) bar.style.setProperty('--pct', `${Math.round((100 * step) / total)}%`);
  return bar;
}
