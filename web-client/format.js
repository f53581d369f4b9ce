// @ts-check
/** Words and numbers as the dashboard shows them. */

/** @typedef {import('./types/JobKind').JobKind} JobKind */
/** @typedef {import('./types/JobStatus').JobStatus} JobStatus */
/** @typedef {import('./types/TaskStatus').TaskStatus} TaskStatus */
/** @typedef {import('./types/BranchSyncStatus').BranchSyncStatus} BranchSyncStatus */

/** @type {Record<JobKind, string>} */
export const KIND_LABEL = {
  sync_repo: 'Sync',
  restack_repo: 'Restack all',
  restack_subtree: 'Restack subtree',
  rebase_branch: 'Rebase',
  reparent_branch: 'Reparent',
  register_existing_branch: 'Register',
};

/** @type {Record<TaskStatus, string>} */
export const TASK_LABEL = {
  pending_branch_attach: 'pending branch-attach',
  ready: 'ready',
  attach_failed: 'attach failed',
};

/** @type {Record<BranchSyncStatus, string>} */
export const SYNC_LABEL = {
  pending: 'not synced yet',
  syncing: 'syncing',
  synced: 'synced',
  error: 'sync failed',
};

/** @param {JobStatus} status */
export function isActive(status) {
  return status === 'queued' || status === 'running';
}

/** @param {string | null | undefined} sha */
export function shortSha(sha) {
  return sha ? sha.slice(0, 7) : '—';
}

/**
 * "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago".
 * @param {string | null | undefined} iso
 * @param {number} [now]
 */
export function ago(iso, now = Date.now()) {
  if (!iso) return 'never';
  const seconds = Math.round((now - Date.parse(iso)) / 1000);
  if (seconds < 5) return 'just now';
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

/**
 * "850 ms", "4.2 s", "3 min 12 s".
 * @param {number} ms
 */
export function duration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/**
 * A time as local wall-clock text, for titles and the job detail.
 * @param {string | null | undefined} iso
 */
export function clock(iso) {
  if (!iso) return '—';
  return CLOCK.format(new Date(iso));
}

/** One formatter for every timestamp (creating one per call is slow). */
const CLOCK = new Intl.DateTimeFormat(undefined, {
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

const TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });

/**
 * Wall-clock time of day, for progress lines.
 * @param {string} iso
 */
export function timeOfDay(iso) {
  return TIME.format(new Date(iso));
}

/**
 * @param {number} n
 * @param {string} one
 * @param {string} [many]
 */
export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}
