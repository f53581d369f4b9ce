// Unit tests of the stack rules the dashboard draws and offers (no browser needed).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { branchJob, buildTree, indexJobs, subtree, validParents } from '../stack.js';

const T0 = '2026-01-01T00:00:00Z';

function branch(name, parent, extra = {}) {
  return {
    repo_id: 'r', name, head_sha: `${name}-sha`, parent, base_sha: null, tracked: parent !== null,
    ahead: 1, behind: 0, needs_restack: false, conflicts_with_trunk: false,
    diff_stat: { files_changed: 1, insertions: 1, deletions: 0 }, active_job_id: null, conflict: null,
    first_seen_at: T0, last_seen_at: T0, updated_at: T0, ...extra,
  };
}

function job(id, branchName, status, created_at, extra = {}) {
  return {
    id, repo_id: 'r', kind: 'restack_subtree', branch: branchName, parent: null, status, message: null,
    progress: null, attempt: 1, max_attempts: 3, cancel_requested: false, created_at, updated_at: created_at,
    started_at: null, completed_at: status === 'completed' ? created_at : null, result: null, ...extra,
  };
}

// main
// ├─ a
// │  ├─ b
// │  │  └─ c
// │  └─ d
// └─ e
// (untracked: u)
const demo = [
  branch('main', null, { tracked: false }),
  branch('a', 'main'), branch('b', 'a'), branch('c', 'b'), branch('d', 'a'), branch('e', 'main'),
  branch('u', null),
];

test('the tree lists parents before children, with guides for the drawn lines', () => {
  const { rows, untracked } = buildTree(demo, 'main');
  assert.deepEqual(rows.map((r) => `${'  '.repeat(r.depth)}${r.name}`), ['main', '  a', '    b', '      c', '    d', '  e']);
  const c = rows.find((r) => r.name === 'c');
  assert.deepEqual(c.guides, [true, true], 'a and b both have siblings below them');
  assert.equal(c.last, true);
  assert.equal(rows.find((r) => r.name === 'b').last, false);
  assert.deepEqual(untracked.map((b) => b.name), ['u']);
});

test('branches whose parent is unknown or on a cycle still appear, marked', () => {
  const { rows } = buildTree([branch('x', 'gone'), branch('p', 'q'), branch('q', 'p')], 'main');
  assert.deepEqual(rows.map((r) => r.name).sort(), ['main', 'p', 'q', 'x']);
  assert.ok(rows.find((r) => r.name === 'x').orphan);
});

test('a subtree holds the branch and everything stacked on it', () => {
  assert.deepEqual([...subtree(demo, 'a')].sort(), ['a', 'b', 'c', 'd']);
  assert.deepEqual([...subtree(demo, 'c')], ['c']);
});

test('valid parents: trunk and tracked branches outside the own subtree, never itself', () => {
  assert.deepEqual(validParents(demo, 'b', 'main'), ['main', 'a', 'd', 'e']);
  assert.deepEqual(validParents(demo, 'a', 'main'), ['main', 'e']);
  assert.deepEqual(validParents(demo, 'u', 'main'), ['main', 'a', 'b', 'c', 'd', 'e']);
});

test('a row shows its newest active job, else its active_job_id, else a recent finished one', () => {
  const now = Date.parse('2026-01-01T01:00:00Z');
  const jobs = indexJobs([
    job('j1', 'a', 'completed', '2026-01-01T00:50:00Z'),
    job('j2', 'a', 'queued', '2026-01-01T00:59:00Z'),
    job('j3', null, 'running', '2026-01-01T00:58:00Z', { kind: 'restack_repo' }),
    job('j4', 'e', 'completed', '2025-12-31T00:00:00Z'),
  ]);
  assert.equal(branchJob(demo[1], 'a', jobs, now)?.id, 'j2');
  assert.equal(branchJob({ ...demo[2], active_job_id: 'j3' }, 'b', jobs, now)?.id, 'j3');
  assert.equal(branchJob(demo[5], 'e', jobs, now), null, 'a day-old job no longer badges its row');
  assert.deepEqual(jobs.sorted.map((j) => j.id), ['j2', 'j3', 'j1', 'j4']);
});

test('building the tree of 300 branches and 1,000 jobs stays cheap', () => {
  const many = [branch('main', null, { tracked: false })];
  for (let i = 0; i < 300; i++) many.push(branch(`b${i}`, i % 10 === 0 ? 'main' : `b${i - 1}`));
  const jobs = [];
  for (let i = 0; i < 1000; i++) jobs.push(job(`j${String(i).padStart(4, '0')}`, `b${i % 300}`, 'completed', new Date(Date.parse(T0) + i * 1000).toISOString()));
  const started = performance.now();
  for (let round = 0; round < 20; round++) {
    const { rows } = buildTree(many, 'main');
    const index = indexJobs(jobs);
    for (const r of rows) branchJob(r.branch, r.name, index);
  }
  const each = (performance.now() - started) / 20;
  assert.ok(each < 25, `one render's data work took ${each.toFixed(1)} ms`);
});
