// @ts-check
/** The job detail drawer: the job's live progress lines (topic `job/{id}`) and its result, i.e.
 * which branches moved from which commit to which, and any conflicts. */

import { coalesce, fill, h, jobBadge, patch, progressBar, reconcile, setText } from './dom.js';
import { KIND_LABEL, clock, duration, isActive, shortSha, timeOfDay } from './format.js';

/** @typedef {import('./types/Job').Job} Job */
/** @typedef {import('./types/ProgressLine').ProgressLine} ProgressLine */
/** @typedef {import('./stack.js').JobIndex} JobIndex */
/** @typedef {import('./app.js').Ctx} Ctx */

/** Lines kept in the DOM; older ones are summarised. */
const MAX_LINES = 2000;

/**
 * @param {HTMLElement} slot
 * @param {Ctx} ctx
 * @param {object} options
 * @param {string} options.repoHref  where closing goes
 * @param {string} options.jobId
 * @param {() => JobIndex} options.jobs  the repo's jobs, for a row before `job/{id}` answers
 * @param {(button: HTMLButtonElement, jobId: string) => void} options.cancel
 */
export function mountJobDrawer(slot, ctx, { repoHref, jobId, jobs, cancel }) {
  const heading = h('h2', { id: 'drawer-title', tabindex: '-1' }, 'Job');
  const badgeSlot = h('div', { class: 'drawer-badge' });
  const close = h('a', { class: 'btn ghost icon', href: repoHref, 'aria-label': 'Close job detail', title: 'Close (Esc)' }, '✕');
  const facts = h('dl', { class: 'facts' });
  const live = h('div', { class: 'drawer-live' });
  const result = h('section', { class: 'drawer-section', 'aria-labelledby': 'result-title' });
  const lineCount = h('span', { class: 'panel-meta' });
  const lines = h('ol', { class: 'lines', 'aria-label': 'Progress lines', tabindex: '0' });
  const truncated = h('p', { class: 'muted small', hidden: true });
  const status = h('div', { class: 'panel-status' });
  const cancelButton = h('button', { type: 'button', class: 'btn danger-ghost', hidden: true }, 'Cancel job');
  cancelButton.addEventListener('click', () => cancel(cancelButton, jobId));

  const drawer = h('aside', { class: 'drawer', 'aria-labelledby': 'drawer-title', dataset: { jobId } },
    h('header', { class: 'drawer-head' }, h('div', { class: 'drawer-title' }, badgeSlot, heading), cancelButton, close),
    h('div', { class: 'drawer-scroll' },
      status, facts, live, result,
      h('section', { class: 'drawer-section', 'aria-labelledby': 'lines-title' },
        h('header', { class: 'section-head' }, h('h3', { id: 'lines-title' }, 'Progress'), lineCount),
        truncated, lines)));
  fill(slot, drawer);
  heading.focus({ preventScroll: true });

  /** @param {KeyboardEvent} event */
  const onKey = (event) => {
    if (event.key !== 'Escape' || event.defaultPrevented) return;
    if (document.querySelector('dialog[open]')) return;
    const target = /** @type {HTMLElement} */ (event.target);
    if (target.closest('input, textarea, select')) return;
    location.hash = repoHref;
  };
  document.addEventListener('keydown', onKey);

  const render = coalesce(() => {
    const t = topic.topic;
    /** @type {Job | undefined} */
    const job = t.rows.get(jobId) ?? jobs().byId.get(jobId);
    if (t.error && !job) {
      setText(status, t.error.message);
      status.dataset.kind = 'error';
    } else if (!job) {
      setText(status, 'Loading…');
      status.dataset.kind = 'loading';
    } else {
      setText(status, '');
      delete status.dataset.kind;
    }
    if (job) renderJob(job);
    renderLines(t.rows);
  });

  /** @param {Job} job */
  const renderJob = (job) => {
    drawer.dataset.status = job.status;
    setText(heading, `${KIND_LABEL[job.kind]}${job.branch ? ` · ${job.branch}` : ''}`);
    patch(badgeSlot, `${job.status}|${job.updated_at}`, () => fill(badgeSlot, jobBadge(job)));
    cancelButton.hidden = !isActive(job.status) || job.cancel_requested;
    patch(facts, JSON.stringify([job.status, job.attempt, job.started_at, job.completed_at, job.parent]), () => {
      const ended = job.completed_at ? Date.parse(job.completed_at) : null;
      const started = job.started_at ? Date.parse(job.started_at) : null;
      /** @type {([string, any] | null)[]} */
      const candidates = [
        ['Job', h('code', null, job.id)],
        ['Kind', h('code', null, job.kind)],
        ['Branch', job.branch ? h('code', null, job.branch) : 'whole repo'],
        job.parent ? ['Parent', h('code', null, job.parent)] : null,
        ['Attempt', job.attempt ? `${job.attempt} of ${job.max_attempts}` : `not started (max ${job.max_attempts})`],
        ['Queued', clock(job.created_at)],
        ['Started', clock(job.started_at)],
        ['Finished', clock(job.completed_at)],
        started && ended ? ['Took', duration(ended - started)] : null,
      ];
      const items = /** @type {[string, any][]} */ (candidates.filter((x) => x !== null));
      fill(facts, items.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
    });
    patch(live, JSON.stringify([job.status, job.progress, job.message, job.cancel_requested]), () => {
      /** @type {HTMLElement[]} */
      const nodes = [];
      if (job.status === 'running') {
        nodes.push(h('div', { class: 'job-progress' }, progressBar(job),
          h('span', { class: 'progress-text' }, job.progress
            ? `${job.progress.total ? `${job.progress.step}/${job.progress.total} · ` : ''}${job.progress.text}`
            : 'starting…')));
      }
      if (job.cancel_requested && isActive(job.status)) nodes.push(h('p', { class: 'job-message' }, 'Cancel requested: it stops at its next safe point.'));
      if (job.message) nodes.push(h('p', { class: job.status === 'error' ? 'job-message error' : 'job-message' }, job.message));
      fill(live, nodes);
    });
    patch(result, JSON.stringify([job.status, job.result]), () => {
      const r = job.result;
      /** @type {any[]} */
      const nodes = [h('header', { class: 'section-head' }, h('h3', { id: 'result-title' }, 'Result'))];
      if (!r) {
        nodes.push(h('p', { class: 'muted' }, isActive(job.status) ? 'Not finished yet.' : 'No result recorded.'));
      } else {
        if (r.moved.length) {
          nodes.push(h('table', { class: 'moved' },
            h('caption', { class: 'sr-only' }, 'Branches moved'),
            h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Branch'), h('th', { scope: 'col' }, 'From'), h('th', { scope: 'col' }, ''), h('th', { scope: 'col' }, 'To'))),
            h('tbody', null, r.moved.map((m) => h('tr', { dataset: { branch: m.branch } },
              h('td', null, h('code', null, m.branch)),
              h('td', null, h('code', { class: 'sha', title: m.from }, shortSha(m.from))),
              h('td', { class: 'arrow', 'aria-hidden': 'true' }, '→'),
              h('td', null, h('code', { class: 'sha', title: m.to }, shortSha(m.to))))))));
        } else {
          nodes.push(h('p', { class: 'muted' }, 'No branch moved.'));
        }
        if (r.conflicts.length) {
          nodes.push(h('ul', { class: 'conflicts', 'aria-label': 'Conflicts' }, r.conflicts.map((c) =>
            h('li', null,
              h('code', null, c.branch), ' stopped at ', h('code', { class: 'sha', title: c.commit }, shortSha(c.commit)),
              ' with conflicts in ',
              c.files.map((f, i) => [i ? ', ' : '', h('code', { class: 'file' }, f)]),
              c.blocked?.length ? h('div', { class: 'blocked' }, `Not restacked because they sit on it: ${c.blocked.join(', ')}`) : null))));
        }
        if (r.merged?.length) nodes.push(h('p', null, `Merged into trunk and no longer tracked: ${r.merged.join(', ')}`));
      }
      fill(result, nodes);
    });
  };

  /** @param {Map<string, any>} rows */
  const renderLines = (rows) => {
    /** @type {[string, ProgressLine][]} */
    const all = [];
    for (const [key, row] of rows) if (key.includes('/lines/')) all.push([key, row]);
    all.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const shown = all.slice(-MAX_LINES);
    truncated.hidden = shown.length === all.length;
    setText(truncated, `${all.length - shown.length} earlier lines not shown.`);
    setText(lineCount, all.length ? `${all.length} line${all.length === 1 ? '' : 's'}` : '');
    const atBottom = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 24;
    // A retried job's lines start over: mark where each later attempt begins.
    /** @type {Set<string>} */
    const starts = new Set();
    shown.forEach(([key, line], i) => {
      if (i > 0 && shown[i - 1][1].attempt !== line.attempt) starts.add(key);
    });
    reconcile(lines, shown, ([key]) => key, ([key, line]) => {
      return h('li', { class: starts.has(key) ? 'line attempt-start' : 'line', dataset: { attempt: line.attempt } },
        h('time', { datetime: line.at, title: clock(line.at) }, timeOfDay(line.at)),
        h('span', { class: 'line-step' }, line.total ? `${line.step}/${line.total}` : ''),
        h('span', { class: 'line-text' }, line.text));
    }, () => {});
    if (atBottom) lines.scrollTop = lines.scrollHeight;
  };

  const topic = ctx.live.subscribe(`job/${jobId}`, render);
  render();

  return {
    jobId,
    /** @param {JobIndex} _jobs */
    update(_jobs) {
      render();
    },
    destroy() {
      topic.release();
      document.removeEventListener('keydown', onKey);
      slot.replaceChildren();
    },
  };
}
