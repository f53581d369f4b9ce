// @ts-check
/** The repos view: every repo with its sync status and freshness, and the Add repo form. */

import { ApiError } from './api.js';
import { coalesce, fill, h, patch, reconcile, setText } from './dom.js';
import { SYNC_LABEL, ago, clock, plural } from './format.js';

/** @typedef {import('./types/Repo').Repo} Repo */
/** @typedef {import('./app.js').Ctx} Ctx */

/** Which form field a server validation code is about. */
const FIELD_OF_CODE = /** @type {Record<string, string>} */ ({
  invalid_repo_name: 'name',
  repo_exists: 'name',
  already_exists: 'name',
  invalid_remote_url: 'remote_url',
  invalid_branch_name: 'trunk',
});

/** A repo synced longer ago than this is marked stale. */
const STALE_MS = 24 * 3600 * 1000;

/**
 * @param {HTMLElement} root
 * @param {Ctx} ctx
 */
export function mountRepos(root, ctx) {
  ctx.setCrumbs([{ label: 'Repositories' }]);
  /** Repos from 201 answers, shown until the `repos` topic has them. @type {Map<string, Repo>} */
  const accepted = new Map();

  const count = h('span', { class: 'muted' });
  const list = h('ul', { class: 'repo-list', 'aria-label': 'Repositories' });
  const status = h('div', { class: 'panel-status' });
  const form = addRepoForm(ctx, (repo) => {
    accepted.set(repo.id, repo);
    render();
    location.hash = `#/repo/${encodeURIComponent(repo.id)}`;
  });
  fill(root,
    h('section', { class: 'page repos-page' },
      h('div', { class: 'page-head' },
        h('div', null, h('h1', null, 'Repositories'), count)),
      h('div', { class: 'repos-grid' },
        h('section', { class: 'panel', 'aria-labelledby': 'repos-title' },
          h('header', { class: 'panel-head' }, h('h2', { id: 'repos-title' }, 'Registered')),
          status,
          list),
        h('aside', { class: 'panel', 'aria-labelledby': 'add-repo-title' },
          h('header', { class: 'panel-head' }, h('h2', { id: 'add-repo-title' }, 'Add repo')),
          form))));

  const render = coalesce(() => {
    const topic = sub.topic;
    for (const id of accepted.keys()) if (topic.rows.has(id)) accepted.delete(id);
    /** @type {Repo[]} */
    const repos = [...accepted.values(), ...topic.rows.values()].sort((a, b) =>
      a.name.localeCompare(b.name));
    setText(count, topic.ready || repos.length ? plural(repos.length, 'repo') : '');
    if (topic.error) {
      setText(status, topic.error.message);
      status.dataset.kind = 'error';
    } else if (!topic.ready && !repos.length) {
      setText(status, 'Loading…');
      status.dataset.kind = 'loading';
    } else if (!repos.length) {
      setText(status, 'No repositories yet. Add one with the form, or start the server with --demo.');
      status.dataset.kind = 'empty';
    } else {
      setText(status, '');
      delete status.dataset.kind;
    }
    const now = Date.now();
    reconcile(list, repos, (r) => r.id, createRow, (el, repo) => updateRow(el, repo, now));
  });
  const sub = ctx.live.subscribe('repos', render);
  ctx.clock.addEventListener('tick', render);
  render();
  return {
    destroy() {
      sub.release();
      ctx.clock.removeEventListener('tick', render);
    },
  };
}

/** @param {Repo} repo */
function createRow(repo) {
  return h('li', { class: 'repo-row', dataset: { repoId: repo.id } });
}

/**
 * @param {HTMLElement} el
 * @param {Repo} repo
 * @param {number} now
 */
function updateRow(el, repo, now) {
  const fresh = ago(repo.branch_sync_at, now);
  const stale =
    repo.branch_sync_at != null && now - Date.parse(repo.branch_sync_at) > STALE_MS;
  patch(el, JSON.stringify([repo, fresh, stale]), () => {
    el.dataset.sync = repo.branch_sync_status;
    fill(el,
      h('div', { class: 'repo-main' },
        h('a', { class: 'repo-name', href: `#/repo/${encodeURIComponent(repo.id)}` }, repo.name),
        h('code', { class: 'repo-remote', title: repo.remote_url }, repo.remote_url)),
      h('span', { class: 'repo-trunk', title: 'trunk' }, h('span', { class: 'icon-branch', 'aria-hidden': 'true' }), repo.trunk),
      h('span', { class: 'sync-badge', dataset: { sync: repo.branch_sync_status } },
        h('span', { class: 'dot', 'aria-hidden': 'true' }), SYNC_LABEL[repo.branch_sync_status]),
      h('span', {
        class: stale ? 'freshness stale' : 'freshness',
        title: repo.branch_sync_at ? `branches refreshed ${clock(repo.branch_sync_at)}` : 'never refreshed',
      }, repo.branch_sync_at ? `refreshed ${fresh}` : 'never refreshed'),
      repo.branch_sync_status === 'error' && repo.branch_sync_error
        ? h('p', { class: 'repo-error' }, repo.branch_sync_error)
        : null);
  });
}

/**
 * @param {Ctx} ctx
 * @param {(repo: Repo) => void} onCreated
 */
function addRepoForm(ctx, onCreated) {
  /**
   * @param {string} name
   * @param {string} label
   * @param {Record<string, any>} attrs
   * @param {string} hint
   */
  const control = (name, label, attrs, hint) => {
    const id = `add-repo-${name}`;
    const input = h('input', { id, name, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': `${id}-msg`, ...attrs });
    const message = h('p', { class: 'hint', id: `${id}-msg`, dataset: { hint } }, hint);
    return { input, message, node: h('div', { class: 'field' }, h('label', { for: id }, label), input, message) };
  };
  const fields = {
    name: control('name', 'Name', { required: true, placeholder: 'web' }, 'Letters, digits, . _ -'),
    remote_url: control('remote_url', 'Remote URL', { required: true, placeholder: 'https://github.com/acme/web.git' }, 'https://, ssh:// or user@host:path'),
    trunk: control('trunk', 'Trunk', { placeholder: 'main' }, 'Defaults to main'),
  };
  const formError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Add repo');
  const form = h('form', { class: 'add-repo', novalidate: true },
    fields.name.node, fields.remote_url.node, fields.trunk.node, formError,
    h('div', { class: 'form-actions' }, submit));

  const clearErrors = () => {
    for (const f of Object.values(fields)) {
      f.input.removeAttribute('aria-invalid');
      f.message.textContent = f.message.dataset.hint ?? '';
      f.message.classList.remove('error');
    }
    formError.hidden = true;
  };
  /**
   * @param {string | undefined} name
   * @param {string} message
   */
  const showError = (name, message) => {
    const f = name ? fields[/** @type {keyof typeof fields} */ (name)] : undefined;
    if (f) {
      f.input.setAttribute('aria-invalid', 'true');
      f.message.textContent = message;
      f.message.classList.add('error');
      f.input.focus();
    } else {
      formError.textContent = message;
      formError.hidden = false;
    }
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors();
    const name = fields.name.input.value.trim();
    const remote = fields.remote_url.input.value.trim();
    const trunk = fields.trunk.input.value.trim();
    if (!name) return showError('name', 'A name is required.');
    if (!remote) return showError('remote_url', 'A remote URL is required.');
    submit.disabled = true;
    submit.setAttribute('aria-busy', 'true');
    try {
      const answer = await ctx.api.createRepo({ name, remote_url: remote, trunk: trunk || null });
      form.reset();
      ctx.toast(`Registered ${answer.repo.name}; its first sync is queued.`, 'info');
      onCreated(answer.repo);
    } catch (e) {
      const error = e instanceof ApiError ? e : new ApiError(0, 'unknown', String(e));
      showError(FIELD_OF_CODE[error.code], error.message);
    } finally {
      submit.disabled = false;
      submit.removeAttribute('aria-busy');
    }
  });
  return form;
}
