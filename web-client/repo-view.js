// @ts-check
/** The repo view: the stack tree with per-branch actions and live job badges, the job panel and
 * the tasks. Everything on it follows four topics: `repos`, `repo/{id}/branches`,
 * `repo/{id}/jobs` and `repo/{id}/tasks`. */

import { ApiError } from './api.js';
import { field, openDialog } from './dialogs.js';
import { coalesce, fill, h, jobBadge, patch, progressBar, reconcile, setData, setText, updateJobBadge } from './dom.js';
import { KIND_LABEL, SYNC_LABEL, TASK_LABEL, ago, clock, isActive, plural, shortSha } from './format.js';
import { mountJobDrawer } from './job-view.js';
import { branchJob, buildTree, indexJobs, subtree, validParents } from './stack.js';

/** @typedef {import('./types/Repo').Repo} Repo */
/** @typedef {import('./types/Job').Job} Job */
/** @typedef {import('./types/Branch').Branch} Branch */
/** @typedef {import('./types/Task').Task} Task */
/** @typedef {import('./types/ActionRequest').ActionRequest} ActionRequest */
/** @typedef {import('./stack.js').TreeRow} TreeRow */
/** @typedef {import('./stack.js').JobIndex} JobIndex */
/** @typedef {import('./app.js').Ctx} Ctx */
/** @typedef {import('./app.js').Route} Route */

const JOB_PAGE = 40;
const TASK_PAGE = 50;

/** @type {Record<string, (job: Job) => boolean>} */
const JOB_FILTERS = {
  all: () => true,
  active: (job) => isActive(job.status),
  failed: (job) => job.status === 'error',
};

/**
 * @param {HTMLElement} root
 * @param {Ctx} ctx
 * @param {Route} route
 */
export function mountRepo(root, ctx, route) {
  const repoId = /** @type {string} */ (route.repoId);
  const repoHref = `#/repo/${encodeURIComponent(repoId)}`;
  /** Jobs from 202 answers, shown until the jobs topic has them. @type {Map<string, Job>} */
  const accepted = new Map();
  /** Tasks from 201 answers, likewise. @type {Map<string, Task>} */
  const acceptedTasks = new Map();
  const ui = { filter: '', jobFilter: 'all', jobLimit: JOB_PAGE, taskLimit: TASK_PAGE };
  /** @type {JobIndex} */
  let jobs = indexJobs([]);
  /** Derived data of the last render, keyed by the topic versions it came from. */
  const cache = { jobsKey: '', treeKey: '', tree: buildTree([], 'main') };
  /** @type {Repo | undefined} */
  let repo;

  // ---- skeleton ----
  const title = h('h1', { class: 'repo-title' }, '…');
  const sub = h('div', { class: 'repo-sub' });
  const syncButton = h('button', { class: 'btn', type: 'button' }, 'Sync');
  const restackAllButton = h('button', { class: 'btn', type: 'button' }, 'Restack all');
  const newTaskButton = h('button', { class: 'btn primary', type: 'button' }, 'New task');
  const summary = h('span', { class: 'panel-meta' });
  const filter = h('input', {
    type: 'search', class: 'filter', placeholder: 'Filter branches', 'aria-label': 'Filter branches',
    'aria-keyshortcuts': '/', autocomplete: 'off', spellcheck: 'false',
  });
  const tree = h('ul', { class: 'tree', 'aria-label': 'Stack' });
  const untrackedHead = h('h3', { class: 'subhead', hidden: true }, 'Untracked branches');
  const untrackedList = h('ul', { class: 'tree untracked', 'aria-label': 'Untracked branches' });
  const treeStatus = h('div', { class: 'panel-status' });
  const jobCounts = h('div', { class: 'seg', role: 'group', 'aria-label': 'Show jobs' });
  const jobList = h('ul', { class: 'job-list', 'aria-label': 'Jobs' });
  const jobStatus = h('div', { class: 'panel-status' });
  const moreJobs = h('button', { class: 'btn ghost more', type: 'button', hidden: true });
  const taskList = h('ul', { class: 'task-list', 'aria-label': 'Tasks' });
  const taskStatus = h('div', { class: 'panel-status' });
  const moreTasks = h('button', { class: 'btn ghost more', type: 'button', hidden: true });
  const taskCount = h('span', { class: 'panel-meta' });
  const drawerSlot = h('div', { class: 'drawer-slot' });

  /** @type {Record<string, HTMLButtonElement>} */
  const filterButtons = {};
  for (const [key, label] of [['all', 'All'], ['active', 'Active'], ['failed', 'Failed']]) {
    const b = h('button', { type: 'button', class: 'seg-btn', 'aria-pressed': String(key === ui.jobFilter), dataset: { filter: key } }, label);
    b.addEventListener('click', () => {
      ui.jobFilter = key;
      ui.jobLimit = JOB_PAGE;
      for (const [k, other] of Object.entries(filterButtons)) other.setAttribute('aria-pressed', String(k === key));
      render();
    });
    filterButtons[key] = b;
    jobCounts.append(b);
  }

  fill(root,
    h('section', { class: 'page repo-page' },
      h('div', { class: 'repo-head' },
        h('div', { class: 'repo-ident' }, title, sub),
        h('div', { class: 'repo-actions', role: 'group', 'aria-label': 'Repo actions' },
          syncButton, restackAllButton, newTaskButton)),
      h('div', { class: 'repo-grid' },
        h('section', { class: 'panel stack-panel', 'aria-labelledby': 'stack-title' },
          h('header', { class: 'panel-head' },
            h('h2', { id: 'stack-title' }, 'Stack'), summary, h('div', { class: 'spacer' }), filter),
          h('div', { class: 'tree-head', 'aria-hidden': 'true' },
            h('span', null, 'Branch'), h('span', null, 'Ahead / behind'), h('span', null, 'State'),
            h('span', null, 'Job'), h('span', { class: 'right' }, 'Actions')),
          treeStatus, tree, untrackedHead, untrackedList),
        h('div', { class: 'side' },
          h('section', { class: 'panel jobs-panel', 'aria-labelledby': 'jobs-title' },
            h('header', { class: 'panel-head' }, h('h2', { id: 'jobs-title' }, 'Jobs'), h('div', { class: 'spacer' }), jobCounts),
            jobStatus, jobList, moreJobs),
          h('section', { class: 'panel tasks-panel', 'aria-labelledby': 'tasks-title' },
            h('header', { class: 'panel-head' }, h('h2', { id: 'tasks-title' }, 'Tasks'), taskCount),
            taskStatus, taskList, moreTasks)))),
    drawerSlot);

  // ---- actions ----
  /**
   * Enqueues an action; the 202 answer's job shows at once, then pushed diffs take over.
   * @param {ActionRequest} body
   * @returns {Promise<Job>}
   */
  const enqueue = async (body) => {
    const { job } = await ctx.api.act(repoId, body);
    if (!jobsTopic.topic.rows.has(job.id)) accepted.set(job.id, job);
    render();
    return job;
  };
  /**
   * For buttons: enqueue, and show a server refusal as a toast with its message.
   * @param {HTMLElement} button
   * @param {ActionRequest} body
   */
  const act = async (button, body) => {
    if (button.getAttribute('aria-busy') === 'true') return;
    button.setAttribute('aria-busy', 'true');
    try {
      await enqueue(body);
    } catch (e) {
      ctx.toast(e instanceof Error ? e.message : String(e), 'error');
    } finally {
      button.removeAttribute('aria-busy');
    }
  };
  syncButton.addEventListener('click', () => act(syncButton, { kind: 'sync_repo', branch: null, parent: null }));
  restackAllButton.addEventListener('click', () => act(restackAllButton, { kind: 'restack_repo', branch: null, parent: null }));
  newTaskButton.addEventListener('click', () => taskDialog(''));

  const branchRows = () => /** @type {Branch[]} */ ([...branchesTopic.topic.rows.values()]);
  const trunk = () => repo?.trunk ?? 'main';

  /** @param {string} name */
  const reparentDialog = (name) => {
    const branches = branchRows();
    const current = branches.find((b) => b.name === name)?.parent ?? null;
    const moving = subtree(branches, name).size - 1;
    const parents = validParents(branches, name, trunk());
    const select = h('select', { name: 'parent', required: true },
      parents.map((p) => h('option', { value: p, disabled: p === current }, p === current ? `${p} (current parent)` : p)));
    const firstFree = parents.find((p) => p !== current);
    if (firstFree) select.value = firstFree;
    openDialog({
      title: `Reparent ${name}`,
      description: moving
        ? `Moves ${name} and the ${plural(moving, 'branch', 'branches')} stacked on it onto a new parent. Branches inside its own subtree are not offered.`
        : `Moves ${name} onto a new parent. Branches inside its own subtree are not offered.`,
      fields: () => [field('New parent', select)],
      submit: 'Reparent',
      onSubmit: async (data) => {
        await enqueue({ kind: 'reparent_branch', branch: name, parent: String(data.get('parent')) });
      },
    });
  };

  /** @param {string} name */
  const registerDialog = (name) => {
    const parents = validParents(branchRows(), name, trunk());
    const select = h('select', { name: 'parent' },
      h('option', { value: '' }, 'Guess from history'),
      parents.map((p) => h('option', { value: p }, p)));
    openDialog({
      title: `Register ${name}`,
      description: 'Tracks the branch as part of the stack. Leave the parent to be guessed from its commits.',
      fields: () => [field('Parent', select)],
      submit: 'Register',
      onSubmit: async (data) => {
        const parent = String(data.get('parent') ?? '');
        await enqueue({ kind: 'register_existing_branch', branch: name, parent: parent || null });
      },
    });
  };

  /** @param {string} branch */
  const taskDialog = (branch) => {
    const listId = `branches-${repoId}`;
    const titleInput = h('input', { name: 'title', required: true, autocomplete: 'off', placeholder: 'What needs doing?', autofocus: true });
    const branchInput = h('input', { name: 'branch', required: true, autocomplete: 'off', spellcheck: 'false', list: listId, value: branch, placeholder: 'feature/x' });
    const names = branchRows().map((b) => b.name).sort();
    openDialog({
      title: branch ? `New task on ${branch}` : 'New task',
      description: 'A branch gantry does not know yet is fetched and registered in the background; the task waits in pending branch-attach meanwhile.',
      fields: () => [
        field('Title', titleInput),
        field('Branch', branchInput, 'An existing branch, or one that is only on the remote.'),
        h('datalist', { id: listId }, names.map((n) => h('option', { value: n }))),
      ],
      submit: 'Create task',
      onSubmit: async (data) => {
        const title = String(data.get('title') ?? '').trim();
        const name = String(data.get('branch') ?? '').trim();
        if (!title) throw new ApiError(0, 'missing_title', 'Give the task a title.');
        if (!name) throw new ApiError(0, 'missing_branch', 'Name the branch the task works on.');
        const { task } = await ctx.api.createTask(repoId, { title, branch: name, allow_shared_branch: false });
        if (!tasksTopic.topic.rows.has(task.id)) acceptedTasks.set(task.id, task);
        render();
      },
    });
  };

  /**
   * @param {HTMLButtonElement} button
   * @param {string} jobId
   */
  const cancel = async (button, jobId) => {
    if (button.getAttribute('aria-busy') === 'true') return;
    button.setAttribute('aria-busy', 'true');
    try {
      const { job } = await ctx.api.cancel(jobId);
      if (!jobsTopic.topic.rows.has(job.id)) accepted.set(job.id, job);
      render();
    } catch (e) {
      ctx.toast(e instanceof Error ? e.message : String(e), 'error');
    } finally {
      button.removeAttribute('aria-busy');
    }
  };

  // ---- branch rows ----
  /** @param {TreeRow} row */
  const createBranchRow = (row) => {
    const name = row.name;
    const li = h('li', { class: 'brow', dataset: { branch: name } });
    const guides = h('span', { class: 'guides', 'aria-hidden': 'true' });
    const label = h('span', { class: 'bname-text' }, name);
    const sha = h('code', { class: 'sha' });
    const stat = h('span', { class: 'diffstat' });
    const conflict = h('span', { class: 'bconflict', hidden: true });
    const nameCell = h('div', { class: 'bcell bname' }, guides,
      h('div', { class: 'bname-col' }, label, h('div', { class: 'bmeta' }, sha, stat, conflict)));
    const ab = h('div', { class: 'bcell bab' });
    const flags = h('div', { class: 'bcell bflags' });
    const jobCell = h('div', { class: 'bcell bjob' });
    const actions = h('div', { class: 'bcell bactions', role: 'group', 'aria-label': `Actions for ${name}` });
    li.append(nameCell, ab, flags, jobCell, actions);
    sha.addEventListener('animationend', () => sha.classList.remove('flash'));
    rowParts.set(li, { guides, sha, stat, conflict, ab, flags, jobCell, actions, lastSha: '' });
    return li;
  };

  /**
   * @param {string} kind  which set of buttons
   * @param {string} name
   */
  const actionButtons = (kind, name) => {
    /**
     * @param {string} label
     * @param {string} hint
     * @param {(b: HTMLButtonElement) => void} onClick
     */
    const button = (label, hint, onClick) => {
      const b = h('button', { type: 'button', class: 'btn small', title: hint }, label);
      b.addEventListener('click', () => onClick(b));
      return b;
    };
    const task = button('Task…', `Create a task on ${name}`, () => taskDialog(name));
    if (kind === 'tracked') {
      return [
        button('Restack subtree', `Restack ${name} and every branch stacked on it`, (b) =>
          act(b, { kind: 'restack_subtree', branch: name, parent: null })),
        button('Rebase', `Rebase ${name} onto its parent's tip`, (b) =>
          act(b, { kind: 'rebase_branch', branch: name, parent: null })),
        button('Reparent…', `Move ${name} onto another parent`, () => reparentDialog(name)),
        task,
      ];
    }
    if (kind === 'untracked') {
      return [button('Register…', `Track ${name} as part of the stack`, () => registerDialog(name)), task];
    }
    return [task];
  };

  /**
   * @param {HTMLElement} li
   * @param {TreeRow} row
   * @param {number} now
   */
  const updateBranchRow = (li, row, now) => {
    const parts = /** @type {RowParts} */ (rowParts.get(li));
    const b = row.branch;
    const job = branchJob(b, row.name, jobs, now);
    const kind = row.depth === 0 ? 'trunk' : b?.tracked ? 'tracked' : 'untracked';
    setData(li, { kind, depth: String(row.depth) });
    const dim = Boolean(/** @type {any} */ (row).dim);
    if (li.classList.contains('dim') !== dim) li.classList.toggle('dim', dim);
    patch(parts.guides, `${row.depth}|${row.guides.join()}|${row.last}`, () => {
      const nodes = row.guides.map((on) => h('span', { class: on ? 'g on' : 'g' }));
      if (row.depth > 0) nodes.push(h('span', { class: row.last ? 'g elbow last' : 'g elbow' }));
      else nodes.push(h('span', { class: 'g root' }));
      fill(parts.guides, nodes);
    });
    const head = b?.head_sha ?? '';
    if (head !== parts.lastSha) {
      if (parts.lastSha) parts.sha.classList.add('flash');
      parts.lastSha = head;
      parts.sha.textContent = shortSha(head);
      parts.sha.title = head ? `head ${head}${b?.base_sha ? `\nbase ${b.base_sha}` : ''}` : '';
      li.dataset.head = head;
    }
    const d = b?.diff_stat;
    patch(parts.stat, d ? `${d.insertions}|${d.deletions}|${d.files_changed}|${row.depth}` : '-', () => {
      if (!d || row.depth === 0) return fill(parts.stat);
      fill(parts.stat,
        h('span', { class: 'ins' }, `+${d.insertions}`), ' ',
        h('span', { class: 'del' }, `−${d.deletions}`), ' ',
        h('span', { class: 'files' }, plural(d.files_changed, 'file')));
    });
    /** @type {string[]} */
    let files = b?.conflict?.files ?? [];
    if (!files.length && job && job.result) {
      files = job.result.conflicts.find((c) => c.branch === row.name)?.files ?? [];
    }
    patch(parts.conflict, files.join('\n'), () => {
      parts.conflict.hidden = !files.length;
      fill(parts.conflict, files.length ? ['conflict in ', h('code', null, files.join(', '))] : []);
    });
    patch(parts.ab, b ? `${b.ahead}|${b.behind}|${row.depth}` : '-', () => {
      if (!b || row.depth === 0) return fill(parts.ab);
      fill(parts.ab,
        h('span', { class: 'ahead', title: `${plural(b.ahead, 'commit')} of its own` }, `↑${b.ahead}`),
        h('span', { class: b.behind ? 'behind some' : 'behind', title: `${plural(b.behind, 'parent commit')} missing` }, `↓${b.behind}`));
    });
    const flagKey = b ? `${kind}|${b.needs_restack}|${b.conflicts_with_trunk}|${Boolean(b.conflict)}|${row.orphan}` : kind;
    patch(parts.flags, flagKey, () => {
      /** @type {HTMLElement[]} */
      const chips = [];
      if (kind === 'trunk') chips.push(h('span', { class: 'chip trunk' }, 'trunk'));
      else if (kind === 'untracked') chips.push(h('span', { class: 'chip muted' }, 'untracked'));
      if (b && kind !== 'trunk') {
        if (b.needs_restack) chips.push(h('span', { class: 'chip warn' }, 'needs restack'));
        if (b.conflict) chips.push(h('span', { class: 'chip danger', title: b.conflict.files.join('\n') }, 'conflict'));
        else if (b.conflicts_with_trunk) chips.push(h('span', { class: 'chip danger', title: 'a restack would conflict' }, 'conflicts with trunk'));
        if (row.orphan) chips.push(h('span', { class: 'chip warn' }, 'parent missing'));
        if (kind === 'tracked' && !chips.length) chips.push(h('span', { class: 'chip ok' }, 'up to date'));
      }
      fill(parts.flags, chips);
    });
    const jobKey = job ? `${job.id}|${job.status}|${job.updated_at}|${job.cancel_requested}|${job.progress?.step}` : '';
    patch(parts.jobCell, jobKey, () => {
      li.dataset.jobStatus = job ? job.status : '';
      if (!job) return fill(parts.jobCell);
      const existing = parts.jobCell.querySelector('a.badge-link');
      const badge = existing?.firstElementChild;
      if (existing instanceof HTMLAnchorElement && badge instanceof HTMLElement) {
        existing.href = `${repoHref}/job/${encodeURIComponent(job.id)}`;
        updateJobBadge(badge, job);
        existing.setAttribute('aria-label', `${KIND_LABEL[job.kind]} job: ${job.status}`);
      } else {
        fill(parts.jobCell, h('a', {
          class: 'badge-link', href: `${repoHref}/job/${encodeURIComponent(job.id)}`,
          'aria-label': `${KIND_LABEL[job.kind]} job: ${job.status}`,
        }, jobBadge(job)));
      }
    });
    patch(parts.actions, kind, () => fill(parts.actions, actionButtons(kind, row.name)));
  };

  // ---- job items ----
  /** @param {Job} job */
  const createJobItem = (job) => {
    const li = h('li', { class: 'job', dataset: { jobId: job.id } });
    const head = h('div', { class: 'job-line' });
    const body = h('div', { class: 'job-body' });
    const cancelButton = h('button', { type: 'button', class: 'btn small danger-ghost', hidden: true }, 'Cancel');
    cancelButton.addEventListener('click', () => cancel(cancelButton, job.id));
    li.append(head, body, h('div', { class: 'job-actions' }, cancelButton));
    jobParts.set(li, { head, body, cancelButton });
    return li;
  };

  /**
   * @param {HTMLElement} li
   * @param {Job} job
   * @param {number} now
   */
  const updateJobItem = (li, job, now) => {
    const parts = /** @type {JobParts} */ (jobParts.get(li));
    setData(li, { status: job.status });
    const selected = route.jobId === job.id;
    if (li.classList.contains('selected') !== selected) li.classList.toggle('selected', selected);
    const when = job.completed_at ?? job.started_at ?? job.created_at;
    patch(parts.head, `${job.status}|${job.updated_at}|${ago(when, now)}|${job.cancel_requested}|${job.progress?.step}`, () => {
      fill(parts.head,
        jobBadge(job),
        h('a', { class: 'job-title', href: `${repoHref}/job/${encodeURIComponent(job.id)}` }, KIND_LABEL[job.kind]),
        job.branch ? h('code', { class: 'job-branch', title: job.branch }, job.branch) : h('span', { class: 'job-branch muted' }, 'whole repo'),
        h('time', { class: 'job-time', datetime: when, title: clock(when) }, ago(when, now)));
    });
    patch(parts.body, `${job.status}|${job.updated_at}|${job.progress?.step}|${job.progress?.text}`, () => {
      /** @type {HTMLElement[]} */
      const nodes = [];
      if (job.status === 'running') {
        nodes.push(h('div', { class: 'job-progress' }, progressBar(job),
          h('span', { class: 'progress-text' }, job.progress
            ? `${job.progress.total ? `${job.progress.step}/${job.progress.total} · ` : ''}${job.progress.text}`
            : 'starting…')));
      }
      if (job.message && job.status !== 'running' && job.status !== 'queued') {
        nodes.push(h('p', { class: job.status === 'error' ? 'job-message error' : 'job-message' }, job.message));
      }
      const conflicts = job.result?.conflicts ?? [];
      if (conflicts.length) {
        nodes.push(h('ul', { class: 'conflicts', 'aria-label': 'Conflicts' },
          conflicts.map((c) => h('li', null,
            h('code', null, c.branch), ' conflicts in ',
            c.files.map((f, i) => [i ? ', ' : '', h('code', { class: 'file' }, f)]),
            c.blocked?.length ? h('span', { class: 'blocked' }, ` · blocked ${c.blocked.join(', ')}`) : null))));
      }
      fill(parts.body, nodes);
    });
    patch(parts.cancelButton, `${job.status}|${job.cancel_requested}`, () => {
      parts.cancelButton.hidden = !isActive(job.status) || job.cancel_requested;
      parts.cancelButton.setAttribute('aria-label', `Cancel ${KIND_LABEL[job.kind]}${job.branch ? ` of ${job.branch}` : ''}`);
    });
  };

  // ---- task items ----
  /** @param {Task} task */
  const createTaskItem = (task) => h('li', { class: 'task', dataset: { taskId: task.id } });
  /**
   * @param {HTMLElement} li
   * @param {Task} task
   * @param {number} now
   */
  const updateTaskItem = (li, task, now) => {
    patch(li, `${task.status}|${task.updated_at}|${task.head_sha}|${ago(task.updated_at, now)}`, () => {
      li.dataset.status = task.status;
      fill(li,
        h('div', { class: 'task-line' },
          h('span', { class: 'task-badge', dataset: { status: task.status } },
            h('span', { class: 'dot', 'aria-hidden': 'true' }), TASK_LABEL[task.status] ?? task.status),
          h('span', { class: 'task-title' }, task.title)),
        h('div', { class: 'task-meta' },
          h('code', { class: 'task-branch' }, task.branch),
          task.head_sha ? h('code', { class: 'sha' }, shortSha(task.head_sha)) : null,
          task.attach_job_id ? h('a', { href: `${repoHref}/job/${encodeURIComponent(task.attach_job_id)}` }, 'attach job') : null,
          h('time', { datetime: task.updated_at, title: clock(task.updated_at) }, ago(task.updated_at, now))),
        task.status_message ? h('p', { class: task.status === 'attach_failed' ? 'task-message error' : 'task-message' }, task.status_message) : null);
    });
  };

  /** @type {WeakMap<HTMLElement, RowParts>} */
  const rowParts = new WeakMap();
  /** @type {WeakMap<HTMLElement, JobParts>} */
  const jobParts = new WeakMap();

  moreJobs.addEventListener('click', () => {
    ui.jobLimit += JOB_PAGE * 5;
    render();
  });
  moreTasks.addEventListener('click', () => {
    ui.taskLimit += TASK_PAGE * 5;
    render();
  });
  filter.addEventListener('input', () => {
    ui.filter = filter.value.trim().toLowerCase();
    render();
  });
  filter.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && filter.value) {
      event.stopPropagation();
      filter.value = '';
      ui.filter = '';
      render();
    }
  });
  /** @param {KeyboardEvent} event */
  const onKey = (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    if (event.key === '/' && !event.ctrlKey && !event.metaKey && !target.closest('input, textarea, select, dialog')) {
      event.preventDefault();
      filter.focus();
    }
  };
  document.addEventListener('keydown', onKey);

  // ---- render ----
  /** @param {{message: string} | null} error @param {boolean} ready @param {number} n @param {HTMLElement} el @param {string} empty */
  const statusLine = (error, ready, n, el, empty) => {
    if (error) {
      setText(el, error.message);
      el.dataset.kind = 'error';
    } else if (!ready && !n) {
      setText(el, 'Loading…');
      el.dataset.kind = 'loading';
    } else if (!n) {
      setText(el, empty);
      el.dataset.kind = 'empty';
    } else {
      setText(el, '');
      delete el.dataset.kind;
    }
  };

  const render = coalesce(() => {
    const now = Date.now();
    repo = reposTopic.topic.rows.get(repoId);
    // header
    ctx.setCrumbs([{ label: 'Repositories', href: '#/' }, { label: repo?.name ?? repoId }]);
    setText(title, repo?.name ?? (reposTopic.topic.ready ? 'Unknown repo' : '…'));
    if (repo) {
      const r = repo;
      patch(sub, `${JSON.stringify(r)}|${ago(r.branch_sync_at, now)}`, () => fill(sub,
        h('code', { class: 'repo-remote', title: r.remote_url }, r.remote_url),
        h('span', { class: 'repo-trunk', title: 'trunk' }, h('span', { class: 'icon-branch', 'aria-hidden': 'true' }), r.trunk),
        h('span', { class: 'sync-badge', dataset: { sync: r.branch_sync_status } }, h('span', { class: 'dot', 'aria-hidden': 'true' }), SYNC_LABEL[r.branch_sync_status]),
        h('span', { class: 'freshness', title: r.branch_sync_at ? clock(r.branch_sync_at) : '' },
          r.branch_sync_at ? `branches refreshed ${ago(r.branch_sync_at, now)}` : 'branches never refreshed'),
        r.branch_sync_status === 'error' && r.branch_sync_error ? h('span', { class: 'repo-error' }, r.branch_sync_error) : null));
    } else if (reposTopic.topic.ready) {
      fill(sub, h('span', { class: 'repo-error' }, 'This repo does not exist or is not visible to this token.'));
    }

    // jobs (indexed again only when the topic or the accepted answers changed)
    const jobsRows = jobsTopic.topic.rows;
    for (const id of accepted.keys()) if (jobsRows.has(id)) accepted.delete(id);
    const jobsKey = `${jobsTopic.topic.version}|${[...accepted.keys()].join()}`;
    if (jobsKey !== cache.jobsKey) {
      cache.jobsKey = jobsKey;
      jobs = indexJobs([...accepted.values(), ...jobsRows.values()]);
    }

    // tree (rebuilt only when the branches or the trunk changed)
    const branches = branchRows();
    const treeKey = `${branchesTopic.topic.version}|${trunk()}`;
    if (treeKey !== cache.treeKey) {
      cache.treeKey = treeKey;
      cache.tree = buildTree(branches, trunk());
    }
    const { rows, untracked } = cache.tree;
    let shown = rows;
    let shownUntracked = untracked.map((b) => /** @type {TreeRow} */ ({
      name: b.name, branch: b, depth: 1, guides: [], last: true, children: 0, orphan: false,
    }));
    if (ui.filter) {
      const q = ui.filter;
      const matches = new Set(rows.filter((r) => r.name.toLowerCase().includes(q)).map((r) => r.name));
      // Keep the ancestors of a match, dimmed, so the match stays in its place in the stack.
      const keep = new Set(matches);
      const byName = new Map(branches.map((b) => [b.name, b]));
      for (const name of matches) {
        let parent = byName.get(name)?.parent;
        for (let guard = 0; parent && guard < 1000 && !keep.has(parent); guard++) {
          keep.add(parent);
          parent = byName.get(parent)?.parent;
        }
      }
      keep.add(trunk());
      shown = rows.filter((r) => keep.has(r.name)).map((r) => ({ ...r, dim: !matches.has(r.name) }));
      shownUntracked = shownUntracked.filter((r) => r.name.toLowerCase().includes(q));
    }
    const tracked = rows.length - 1;
    const needs = branches.filter((b) => b.tracked && b.needs_restack).length;
    const conflicts = branches.filter((b) => b.tracked && (b.conflict || b.conflicts_with_trunk)).length;
    setText(summary, branchesTopic.topic.ready || branches.length
      ? [plural(tracked, 'tracked branch', 'tracked branches'),
        needs ? `${needs} need${needs === 1 ? 's' : ''} restack` : '',
        conflicts ? plural(conflicts, 'conflict') : '',
        untracked.length ? `${untracked.length} untracked` : ''].filter(Boolean).join(' · ')
      : '');
    statusLine(branchesTopic.topic.error, branchesTopic.topic.ready, branches.length, treeStatus,
      repo?.branch_sync_status === 'pending' || repo?.branch_sync_status === 'syncing'
        ? 'The first sync is under way; branches appear as soon as it lands.'
        : 'No branches yet. Sync the repo to read them.');
    if (!branches.length && !branchesTopic.topic.ready) shown = [];
    reconcile(tree, branches.length ? shown : [], (r) => r.name, createBranchRow, (el, r) => updateBranchRow(el, r, now));
    untrackedHead.hidden = shownUntracked.length === 0;
    reconcile(untrackedList, shownUntracked, (r) => r.name, createBranchRow, (el, r) => updateBranchRow(el, r, now));

    // job panel
    const counts = {
      all: jobs.sorted.length,
      active: jobs.sorted.filter(JOB_FILTERS.active).length,
      failed: jobs.sorted.filter(JOB_FILTERS.failed).length,
    };
    for (const [key, button] of Object.entries(filterButtons)) {
      const label = { all: 'All', active: 'Active', failed: 'Failed' }[key];
      patch(button, `${counts[/** @type {keyof typeof counts} */ (key)]}`, () => fill(button, label ?? key, h('span', { class: 'count' }, counts[/** @type {keyof typeof counts} */ (key)])));
    }
    const filtered = jobs.sorted.filter(JOB_FILTERS[ui.jobFilter]);
    // Active jobs first, then history; newest first within each.
    const ordered = [...filtered.filter((j) => isActive(j.status)), ...filtered.filter((j) => !isActive(j.status))];
    const page = ordered.slice(0, ui.jobLimit);
    statusLine(jobsTopic.topic.error, jobsTopic.topic.ready, page.length, jobStatus,
      ui.jobFilter === 'all' ? 'No jobs yet.' : `No ${ui.jobFilter} jobs.`);
    reconcile(jobList, page, (j) => j.id, createJobItem, (el, j) => updateJobItem(el, j, now));
    const rest = ordered.length - page.length;
    moreJobs.hidden = rest <= 0;
    if (rest > 0) setText(moreJobs, `Show ${Math.min(rest, JOB_PAGE * 5)} more of ${rest} older jobs`);

    // tasks
    const taskRows = tasksTopic.topic.rows;
    for (const id of acceptedTasks.keys()) if (taskRows.has(id)) acceptedTasks.delete(id);
    /** @type {Task[]} */
    const tasks = [...acceptedTasks.values(), ...taskRows.values()].sort((a, b) =>
      a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0);
    const pending = tasks.filter((t) => t.status === 'pending_branch_attach').length;
    setText(taskCount, tasks.length ? `${tasks.length}${pending ? ` · ${pending} attaching` : ''}` : '');
    statusLine(tasksTopic.topic.error, tasksTopic.topic.ready, tasks.length, taskStatus, 'No tasks yet.');
    reconcile(taskList, tasks.slice(0, ui.taskLimit), (t) => t.id, createTaskItem, (el, t) => updateTaskItem(el, t, now));
    moreTasks.hidden = tasks.length <= ui.taskLimit;
    if (tasks.length > ui.taskLimit) setText(moreTasks, `Show ${Math.min(tasks.length - ui.taskLimit, TASK_PAGE * 5)} more tasks`);

    drawer?.update(jobs);
  });

  const reposTopic = ctx.live.subscribe('repos', render);
  const branchesTopic = ctx.live.subscribe(`repo/${repoId}/branches`, render);
  const jobsTopic = ctx.live.subscribe(`repo/${repoId}/jobs`, render);
  const tasksTopic = ctx.live.subscribe(`repo/${repoId}/tasks`, render);
  ctx.clock.addEventListener('tick', render);

  /** @type {ReturnType<typeof mountJobDrawer> | null} */
  let drawer = null;
  /** @param {Route} next */
  const openDrawer = (next) => {
    if (drawer && drawer.jobId === next.jobId) return;
    drawer?.destroy();
    drawer = null;
    if (next.jobId) {
      drawer = mountJobDrawer(drawerSlot, ctx, {
        repoHref,
        jobId: next.jobId,
        jobs: () => jobs,
        cancel,
      });
    }
  };
  openDrawer(route);
  render();

  return {
    /** @param {Route} next */
    update(next) {
      route = next;
      openDrawer(next);
      render();
    },
    destroy() {
      drawer?.destroy();
      reposTopic.release();
      branchesTopic.release();
      jobsTopic.release();
      tasksTopic.release();
      ctx.clock.removeEventListener('tick', render);
      document.removeEventListener('keydown', onKey);
    },
  };
}

/**
 * @typedef {object} RowParts
 * @property {HTMLElement} guides
 * @property {HTMLElement} sha
 * @property {HTMLElement} stat
 * @property {HTMLElement} conflict
 * @property {HTMLElement} ab
 * @property {HTMLElement} flags
 * @property {HTMLElement} jobCell
 * @property {HTMLElement} actions
 * @property {string} lastSha
 */

/**
 * @typedef {object} JobParts
 * @property {HTMLElement} head
 * @property {HTMLElement} body
 * @property {HTMLButtonElement} cancelButton
 */
