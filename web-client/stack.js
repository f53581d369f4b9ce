// @ts-check
/** The stack as a tree, and the rules the dashboard derives from it. Pure functions, no DOM:
 * unit-tested with `node --test` (tests/stack.test.js). */

/** @typedef {import('./types/Branch').Branch} Branch */
/** @typedef {import('./types/Job').Job} Job */

/**
 * One line of the drawn tree.
 * @typedef {object} TreeRow
 * @property {string} name
 * @property {Branch | null} branch  null for a trunk that has no branch row
 * @property {number} depth  0 for the trunk
 * @property {boolean[]} guides  per ancestor level below the trunk: does a line continue there?
 * @property {boolean} last  the last child of its parent
 * @property {number} children
 * @property {boolean} orphan  tracked, but its parent is unknown
 */

/**
 * @param {string} a
 * @param {string} b
 */
const byName = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The tracked branches as a tree under the trunk (parent first, children sorted by name), and the
 * untracked branches beside it.
 * @param {Iterable<Branch>} branches
 * @param {string} trunk
 * @returns {{rows: TreeRow[], untracked: Branch[]}}
 */
export function buildTree(branches, trunk) {
  /** @type {Map<string, Branch>} */
  const rowsByName = new Map();
  for (const b of branches) rowsByName.set(b.name, b);
  /** @type {Map<string, string[]>} */
  const children = new Map();
  /** @type {Set<string>} */
  const orphans = new Set();
  const tracked = [...rowsByName.values()].filter((b) => b.tracked && b.name !== trunk);
  for (const b of tracked) {
    let parent = b.parent ?? trunk;
    if (parent !== trunk && !rowsByName.get(parent)?.tracked) {
      orphans.add(b.name);
      parent = trunk;
    }
    const list = children.get(parent) ?? [];
    list.push(b.name);
    children.set(parent, list);
  }
  for (const list of children.values()) list.sort(byName);

  /** @type {TreeRow[]} */
  const rows = [];
  /** @type {Set<string>} */
  const seen = new Set([trunk]);
  /**
   * @param {string} name
   * @param {number} depth
   * @param {boolean[]} guides
   * @param {boolean} last
   */
  const visit = (name, depth, guides, last) => {
    const kids = (children.get(name) ?? []).filter((k) => !seen.has(k));
    for (const k of kids) seen.add(k);
    rows.push({
      name,
      branch: rowsByName.get(name) ?? null,
      depth,
      guides,
      last,
      children: kids.length,
      orphan: orphans.has(name),
    });
    const childGuides = depth === 0 ? [] : [...guides, !last];
    kids.forEach((k, i) => visit(k, depth + 1, childGuides, i === kids.length - 1));
  };
  visit(trunk, 0, [], true);
  // Branches on a parent cycle are unreachable from the trunk: show them rather than hide them.
  for (const b of tracked) {
    if (!seen.has(b.name)) {
      seen.add(b.name);
      rows.push({ name: b.name, branch: b, depth: 1, guides: [], last: true, children: 0, orphan: true });
    }
  }
  const untracked = [...rowsByName.values()]
    .filter((b) => !b.tracked && b.name !== trunk)
    .sort((a, b) => byName(a.name, b.name));
  return { rows, untracked };
}

/**
 * A branch and every tracked branch stacked on it, directly or not.
 * @param {Iterable<Branch>} branches
 * @param {string} name
 * @returns {Set<string>}
 */
export function subtree(branches, name) {
  /** @type {Map<string, string[]>} */
  const children = new Map();
  for (const b of branches) {
    if (!b.tracked || !b.parent) continue;
    const list = children.get(b.parent) ?? [];
    list.push(b.name);
    children.set(b.parent, list);
  }
  const result = new Set([name]);
  const stack = [name];
  while (stack.length) {
    const next = /** @type {string} */ (stack.pop());
    for (const child of children.get(next) ?? []) {
      if (!result.has(child)) {
        result.add(child);
        stack.push(child);
      }
    }
  }
  return result;
}

/**
 * The parents a branch may be moved onto: the trunk and every tracked branch outside its own
 * subtree (which excludes itself). Trunk first, then by name.
 * @param {Iterable<Branch>} branches
 * @param {string} name
 * @param {string} trunk
 * @returns {string[]}
 */
export function validParents(branches, name, trunk) {
  const list = [...branches];
  const own = subtree(list, name);
  const others = list
    .filter((b) => b.tracked && b.name !== trunk && !own.has(b.name))
    .map((b) => b.name)
    .sort(byName);
  return name === trunk ? others : [trunk, ...others];
}

/**
 * Newest first: by creation time, then by id (ids are time-ordered).
 * @param {Job} a
 * @param {Job} b
 */
export function newestFirst(a, b) {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/**
 * The jobs of a repo, sorted newest first and indexed.
 * @typedef {object} JobIndex
 * @property {Job[]} sorted
 * @property {Map<string, Job>} byId
 * @property {Map<string, Job>} latestByBranch  the newest job that names each branch
 * @property {Map<string, Job>} activeByBranch  the newest queued or running job naming each branch
 */

/**
 * @param {Iterable<Job>} jobs
 * @returns {JobIndex}
 */
export function indexJobs(jobs) {
  const sorted = [...jobs].sort(newestFirst);
  /** @type {Map<string, Job>} */
  const byId = new Map();
  /** @type {Map<string, Job>} */
  const latestByBranch = new Map();
  /** @type {Map<string, Job>} */
  const activeByBranch = new Map();
  for (const job of sorted) {
    byId.set(job.id, job);
    if (!job.branch) continue;
    if (!latestByBranch.has(job.branch)) latestByBranch.set(job.branch, job);
    if ((job.status === 'queued' || job.status === 'running') && !activeByBranch.has(job.branch)) {
      activeByBranch.set(job.branch, job);
    }
  }
  return { sorted, byId, latestByBranch, activeByBranch };
}

/** How long a finished job keeps its badge on its branch's row. */
export const RECENT_MS = 30 * 60 * 1000;

/**
 * The job whose badge a branch row shows: the newest queued or running job naming it, else the
 * job the branch row says is working on it, else its newest job if that finished recently.
 * @param {Branch | null} branch
 * @param {string} name
 * @param {JobIndex} jobs
 * @param {number} [now]
 * @returns {Job | null}
 */
export function branchJob(branch, name, jobs, now = Date.now()) {
  const mine = jobs.activeByBranch.get(name);
  if (mine) return mine;
  const latest = jobs.latestByBranch.get(name) ?? null;
  const active = branch?.active_job_id ? jobs.byId.get(branch.active_job_id) ?? null : null;
  if (active && (active.status === 'queued' || active.status === 'running')) return active;
  if (latest) {
    const finished = Date.parse(latest.completed_at ?? latest.updated_at);
    if (now - finished < RECENT_MS) return latest;
  }
  return null;
}
