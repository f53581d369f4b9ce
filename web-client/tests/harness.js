// Test harness: a real `gantry serve --demo` on a loopback port, and Debian's Chromium driven by
// playwright-core. Nothing here is shipped to browsers.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const WEB_CLIENT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = path.resolve(WEB_CLIENT, '..');

/** The gantry binary: $GANTRY_BIN, else $CARGO_TARGET_DIR/debug/gantry, else target/debug/gantry. */
export function gantryBinary() {
  if (process.env.GANTRY_BIN) return process.env.GANTRY_BIN;
  const target = process.env.CARGO_TARGET_DIR
    ? path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR)
    : path.join(REPO_ROOT, 'target');
  return path.join(target, 'debug', 'gantry');
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value, or fails after `timeout` ms. */
export async function until(what, check, timeout = 30_000, every = 100) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(every);
  }
}

/** A gantry server process that can be killed and started again on the same data dir and port. */
export class GantryServer {
  constructor({ dataDir, port, token, extraArgs = [] }) {
    this.dataDir = dataDir;
    this.port = port;
    this.token = token;
    this.extraArgs = extraArgs;
    this.url = `http://127.0.0.1:${port}`;
    this.logFile = path.join(dataDir, '..', 'server.log');
    this.child = null;
  }

  static async create({ demo = true } = {}) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-web-e2e-'));
    const dataDir = path.join(root, 'data');
    const port = await freePort();
    const token = `e2e-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    const server = new GantryServer({ dataDir, port, token, extraArgs: demo ? ['--demo'] : [] });
    server.root = root;
    await server.start();
    return server;
  }

  async start() {
    const bin = gantryBinary();
    if (!fs.existsSync(bin)) throw new Error(`no gantry binary at ${bin}: run cargo build first`);
    const log = fs.openSync(this.logFile, 'a');
    const env = { ...process.env, GANTRY_TOKEN: this.token, RUST_LOG: process.env.RUST_LOG ?? 'warn' };
    delete env.GANTRY_TEST_HANDLERS;
    this.child = spawn(bin, [
      'serve', '--data-dir', this.dataDir, '--bind', `127.0.0.1:${this.port}`, '--lease-secs', '3', ...this.extraArgs,
    ], { env, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const child = this.child;
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.exited = exited;
    await until('the server to answer /healthz', async () => {
      if (child.exitCode !== null) throw new Error(`gantry exited with ${child.exitCode}:\n${this.log()}`);
      const r = await fetch(`${this.url}/healthz`).catch(() => null);
      return r?.ok;
    }, 60_000, 50);
  }

  /** SIGKILL: no goodbye, no shutdown handling. */
  async kill(signal = 'SIGKILL') {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill(signal);
    await this.exited;
    this.child = null;
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    const done = await Promise.race([this.exited, sleep(15_000).then(() => null)]);
    if (!done) await this.kill();
    this.child = null;
  }

  log() {
    try {
      return fs.readFileSync(this.logFile, 'utf8').slice(-8000);
    } catch {
      return '';
    }
  }

  cleanup() {
    if (this.root && !process.env.KEEP_E2E_DIR) fs.rmSync(this.root, { recursive: true, force: true });
  }

  /** A REST call; answers {status, body}. */
  async api(method, pathname, body) {
    const response = await fetch(`${this.url}${pathname}`, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
  }
}

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Debian's Chromium with a fresh profile. */
export async function launchBrowser({ colorScheme = 'light', viewport = { width: 1600, height: 1000 } } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    colorScheme,
    reducedMotion: 'no-preference',
  });
  const close = async () => {
    await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, close };
}

/** Creates a branch that exists only on the remote (pushed behind gantry's back). */
export function pushRemoteOnlyBranch(remote, branch, workDir) {
  const clone = path.join(workDir, `clone-${Date.now()}`);
  const git = (...args) => execFileSync('git', args, {
    cwd: clone,
    env: { ...process.env, GIT_AUTHOR_NAME: 'e2e', GIT_AUTHOR_EMAIL: 'e2e@example.invalid', GIT_COMMITTER_NAME: 'e2e', GIT_COMMITTER_EMAIL: 'e2e@example.invalid' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  execFileSync('git', ['clone', '--quiet', remote, clone], { stdio: ['ignore', 'pipe', 'pipe'] });
  git('checkout', '--quiet', '-b', branch, 'origin/main');
  fs.writeFileSync(path.join(clone, 'remote-only.txt'), 'made outside gantry\n');
  git('add', 'remote-only.txt');
  git('commit', '--quiet', '-m', 'remote-only work');
  git('push', '--quiet', 'origin', `${branch}:refs/heads/${branch}`);
  fs.rmSync(clone, { recursive: true, force: true });
}
