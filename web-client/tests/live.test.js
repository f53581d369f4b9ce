// Unit tests of the live link's protocol rules: snapshot, diff chains, gap detection, resume.

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

globalThis.window ??= /** @type {any} */ ({ addEventListener() {} });
globalThis.location ??= /** @type {any} */ ({ protocol: 'http:', host: '127.0.0.1:1' });
const { Live, rowKey, backoff } = await import('../live.js');

let live;
let sent;
beforeEach(() => {
  live = new Live('token', { url: 'ws://127.0.0.1:1/v1/ws' });
  sent = [];
  live.send = (m) => sent.push(m);
});

function subscribed(name) {
  const changes = [];
  const { topic } = live.subscribe(name, (t) => changes.push(new Map(t.rows)));
  live.sendSubscribe(topic);
  return { topic, changes };
}

test('a snapshot fills the topic and diffs chained on prev apply in order', () => {
  const { topic, changes } = subscribed('repo/r/jobs');
  live.receive({ type: 'snapshot', id: topic.requestId, topic: 'repo/r/jobs', epoch: 'e', position: 10, rows: [{ id: 'j1', status: 'queued' }], reset: false });
  live.receive({ type: 'diff', topic: 'repo/r/jobs', epoch: 'e', position: 12, prev: 10, committed_at: '', ops: [{ op: 'upsert', key: 'j1', row: { id: 'j1', status: 'running' } }] });
  live.receive({ type: 'diff', topic: 'repo/r/jobs', epoch: 'e', position: 15, prev: 12, committed_at: '', ops: [{ op: 'remove', key: 'j1' }] });
  assert.deepEqual(changes.map((m) => m.get('j1')?.status ?? null), ['queued', 'running', null]);
  assert.deepEqual(topic.cursor, { epoch: 'e', position: 15 });
});

test('a gap in prev resubscribes from the last applied position and ignores the rest until answered', () => {
  const { topic } = subscribed('repos');
  live.receive({ type: 'snapshot', id: topic.requestId, topic: 'repos', epoch: 'e', position: 3, rows: [], reset: false });
  sent.length = 0;
  live.receive({ type: 'diff', topic: 'repos', epoch: 'e', position: 9, prev: 7, committed_at: '', ops: [{ op: 'upsert', key: 'x', row: { id: 'x' } }] });
  assert.equal(topic.rows.size, 0, 'the diff after the gap is not applied');
  assert.deepEqual(sent.map((m) => m.type), ['unsubscribe', 'subscribe']);
  assert.deepEqual(sent[1].since, { epoch: 'e', position: 3 });
  assert.equal(live.gaps, 1);
  // A straggler of the old subscription is ignored; the resumed answer re-arms the chain.
  live.receive({ type: 'diff', topic: 'repos', epoch: 'e', position: 11, prev: 9, committed_at: '', ops: [] });
  live.receive({ type: 'resumed', id: sent[1].id, topic: 'repos', epoch: 'e', position: 3 });
  live.receive({ type: 'diff', topic: 'repos', epoch: 'e', position: 7, prev: 3, committed_at: '', ops: [{ op: 'upsert', key: 'y', row: { id: 'y' } }] });
  assert.deepEqual([...topic.rows.keys()], ['y']);
});

test('a reconnect resumes every topic with its cursor; a reset snapshot replaces the rows', () => {
  const { topic } = subscribed('repo/r/branches');
  live.receive({ type: 'snapshot', id: topic.requestId, topic: 'repo/r/branches', epoch: 'e', position: 5, rows: [{ name: 'a' }, { name: 'b' }], reset: false });
  assert.deepEqual([...topic.rows.keys()], ['a', 'b']);
  sent.length = 0;
  for (const t of live.topics.values()) live.sendSubscribe(t);
  assert.deepEqual(sent[0], { type: 'subscribe', id: topic.requestId, topic: 'repo/r/branches', since: { epoch: 'e', position: 5 } });
  live.receive({ type: 'snapshot', id: topic.requestId, topic: 'repo/r/branches', epoch: 'e2', position: 1, rows: [{ name: 'c' }], reset: true });
  assert.deepEqual([...topic.rows.keys()], ['c']);
});

test('row keys follow the server: branch names, ids, and zero-padded progress lines', () => {
  assert.equal(rowKey('repo/r/branches', { name: 'feature/x' }), 'feature/x');
  assert.equal(rowKey('repo/r/jobs', { id: 'j' }), 'j');
  assert.equal(rowKey('job/j', { id: 'j' }), 'j');
  assert.equal(rowKey('job/j', { job_id: 'j', seq: 42, attempt: 1, text: '' }), 'j/lines/00000042');
});

test('backoff grows to 8 s with jitter', () => {
  assert.ok(backoff(0) <= 250 && backoff(0) >= 150);
  for (let i = 0; i < 50; i++) assert.ok(backoff(20) <= 8000 && backoff(20) >= 4800);
});
