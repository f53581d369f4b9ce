// @ts-check
/**
 * The one WebSocket of the dashboard. It carries every subscription, keeps each topic's rows
 * (snapshot + diffs), checks every diff's `prev` against the topic's cursor, resumes each topic
 * with `since` after a reconnect, and resubscribes a topic whose chain has a gap.
 *
 * Views never poll: they subscribe to topics and re-render when a topic changes.
 */

/** @typedef {import('./types/ServerMessage').ServerMessage} ServerMessage */
/** @typedef {import('./types/ClientMessage').ClientMessage} ClientMessage */
/** @typedef {import('./types/Cursor').Cursor} Cursor */
/** @typedef {import('./types/Op').Op} Op */
/** @typedef {'connecting' | 'live' | 'reconnecting' | 'offline' | 'unauthorized'} LinkState */

/** Close codes 4000-4099 (and the usual network ones) mean "reconnect and resume". */
const TERMINAL_TOKEN = 4100;
const TERMINAL_PROTOCOL = 4101;
const KEEPALIVE_MS = 20_000;
const KEEPALIVE_TIMEOUT_MS = 10_000;
/** A topic nobody looks at any more stays subscribed this long, so going back is instant. */
const LINGER_MS = 15_000;
/** Failed attempts in a row after which the link is shown as offline (it keeps trying). */
const OFFLINE_AFTER = 8;

/**
 * The key of a row within its topic, as the server's diffs name it.
 * @param {string} topic
 * @param {any} row
 * @returns {string}
 */
export function rowKey(topic, row) {
  if (topic.startsWith('job/') && typeof row.seq === 'number' && 'job_id' in row) {
    return `${row.job_id}/lines/${String(row.seq).padStart(8, '0')}`;
  }
  if (topic.endsWith('/branches')) return row.name;
  return row.id;
}

/**
 * Backoff before reconnect attempt `n` (0-based): 250 ms doubling to 8 s, with jitter.
 * @param {number} n
 */
export function backoff(n) {
  const base = Math.min(8000, 250 * 2 ** Math.min(n, 6));
  return Math.round(base * (0.6 + Math.random() * 0.4));
}

/** One subscribed topic and the rows it holds. */
export class Topic {
  /** @param {string} name */
  constructor(name) {
    this.name = name;
    /** @type {Map<string, any>} */
    this.rows = new Map();
    /** @type {Cursor | null} */
    this.cursor = null;
    /** Whether rows reflect the server (a snapshot or `resumed` arrived on this connection). */
    this.ready = false;
    /** The id of the subscribe request whose answer is awaited. */
    this.requestId = 0;
    /** @type {{code: string, message: string} | null} */
    this.error = null;
    /** @type {Set<(topic: Topic) => void>} */
    this.listeners = new Set();
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.lingerTimer = undefined;
    /** Bumped on every change, so views can skip work on topics that did not change. */
    this.version = 0;
  }

  notify() {
    this.version += 1;
    for (const listener of this.listeners) listener(this);
  }
}

export class Live extends EventTarget {
  /**
   * @param {string} token
   * @param {{url?: string, probe?: () => Promise<'ok' | 'unauthorized' | 'down'>}} [options]
   */
  constructor(token, options = {}) {
    super();
    this.token = token;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.url = options.url ?? `${scheme}//${location.host}/v1/ws`;
    this.probe = options.probe;
    /** @type {LinkState} */
    this.state = 'connecting';
    /** @type {Map<string, Topic>} */
    this.topics = new Map();
    /** @type {WebSocket | null} */
    this.socket = null;
    this.nextId = 1;
    this.failures = 0;
    this.opened = false;
    this.stopped = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.keepaliveTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.deadTimer = undefined;
    /** When the next attempt happens (ms since epoch), for the indicator. */
    this.retryAt = 0;
    this.gaps = 0;
    window.addEventListener('online', () => this.retryNow());
    window.addEventListener('offline', () => {
      if (this.state !== 'live') this.setState('offline');
    });
  }

  /** @param {LinkState} state */
  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new Event('state'));
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.socket?.close(1000, 'bye');
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    this.opened = false;
    // Browsers cannot set headers on a WebSocket: the token goes in the query, over this
    // origin only (the CSP allows no other), and is never written to the console.
    const socket = new WebSocket(`${this.url}?access_token=${encodeURIComponent(this.token)}`);
    this.socket = socket;
    socket.addEventListener('open', () => {
      if (socket !== this.socket) return;
      this.opened = true;
      this.failures = 0;
      this.setState('live');
      for (const topic of this.topics.values()) this.sendSubscribe(topic);
      this.armKeepalive();
    });
    socket.addEventListener('message', (event) => {
      if (socket !== this.socket) return;
      this.heard();
      /** @type {ServerMessage} */
      let message;
      try {
        message = JSON.parse(String(event.data));
      } catch {
        return;
      }
      this.receive(message);
    });
    socket.addEventListener('close', (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.onClosed(event.code);
    });
  }

  /** @param {number} code */
  async onClosed(code) {
    clearTimeout(this.keepaliveTimer);
    clearTimeout(this.deadTimer);
    for (const topic of this.topics.values()) topic.ready = false;
    if (this.stopped) return;
    if (code === TERMINAL_TOKEN) {
      this.setState('unauthorized');
      this.dispatchEvent(new Event('unauthorized'));
      return;
    }
    const neverOpened = !this.opened;
    this.failures += 1;
    // A refused upgrade looks like any other failure to a browser: ask the REST API whether it
    // was the token.
    if (neverOpened && this.probe && this.failures % 3 === 1) {
      const verdict = await this.probe();
      if (verdict === 'unauthorized') {
        this.setState('unauthorized');
        this.dispatchEvent(new Event('unauthorized'));
        return;
      }
      // "Retry now" may have opened a socket while the probe was out.
      if (this.socket || this.stopped) return;
    }
    const offline = !navigator.onLine || this.failures > OFFLINE_AFTER || code === TERMINAL_PROTOCOL;
    this.setState(offline ? 'offline' : 'reconnecting');
    const delay = code === TERMINAL_PROTOCOL ? 30_000 : backoff(this.failures - 1);
    this.retryAt = Date.now() + delay;
    this.dispatchEvent(new Event('retry'));
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Reconnect at once (the indicator's button, or the browser coming back online). */
  retryNow() {
    if (this.socket || this.stopped || this.state === 'unauthorized') return;
    this.connect();
  }

  armKeepalive() {
    clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = setTimeout(() => {
      this.send({ type: 'ping', id: this.nextId++ });
      clearTimeout(this.deadTimer);
      // A half-open connection never closes by itself: no answer in time, start over.
      this.deadTimer = setTimeout(() => this.socket?.close(4002, 'no pong'), KEEPALIVE_TIMEOUT_MS);
    }, KEEPALIVE_MS);
  }

  heard() {
    clearTimeout(this.deadTimer);
    this.armKeepalive();
  }

  /** @param {ClientMessage} message */
  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }

  /** @param {Topic} topic */
  sendSubscribe(topic) {
    topic.requestId = this.nextId++;
    topic.ready = false;
    this.send({ type: 'subscribe', id: topic.requestId, topic: topic.name, since: topic.cursor });
  }

  /**
   * Start (or share) a subscription. The listener runs on every change of the topic's rows and
   * when it becomes ready or fails. Returns the topic and a function that releases it.
   * @param {string} name
   * @param {(topic: Topic) => void} listener
   * @returns {{topic: Topic, release: () => void}}
   */
  subscribe(name, listener) {
    let topic = this.topics.get(name);
    if (!topic) {
      topic = new Topic(name);
      this.topics.set(name, topic);
      if (this.socket && this.opened) this.sendSubscribe(topic);
    }
    clearTimeout(topic.lingerTimer);
    topic.listeners.add(listener);
    const t = topic;
    return {
      topic: t,
      release: () => {
        t.listeners.delete(listener);
        if (t.listeners.size > 0) return;
        clearTimeout(t.lingerTimer);
        t.lingerTimer = setTimeout(() => {
          if (t.listeners.size > 0 || this.topics.get(t.name) !== t) return;
          this.topics.delete(t.name);
          this.send({ type: 'unsubscribe', id: this.nextId++, topic: t.name });
        }, LINGER_MS);
      },
    };
  }

  /** @param {ServerMessage} message */
  receive(message) {
    switch (message.type) {
      case 'snapshot': {
        const topic = this.topics.get(message.topic);
        if (!topic || message.id !== topic.requestId) return;
        topic.rows = new Map(message.rows.map((row) => [rowKey(topic.name, row), row]));
        topic.cursor = { epoch: message.epoch, position: message.position };
        topic.ready = true;
        topic.error = null;
        topic.notify();
        return;
      }
      case 'resumed': {
        const topic = this.topics.get(message.topic);
        if (!topic || message.id !== topic.requestId) return;
        topic.cursor = { epoch: message.epoch, position: message.position };
        topic.ready = true;
        topic.error = null;
        topic.notify();
        return;
      }
      case 'diff': {
        const topic = this.topics.get(message.topic);
        // Frames of an older subscription of this topic (before a resubscribe) are left alone.
        if (!topic || !topic.ready || !topic.cursor) return;
        if (message.epoch !== topic.cursor.epoch || message.prev !== topic.cursor.position) {
          if (message.position <= topic.cursor.position && message.epoch === topic.cursor.epoch) {
            return; // already applied
          }
          // A gap: something was missed. Resubscribe from the last applied position.
          this.gaps += 1;
          this.send({ type: 'unsubscribe', id: this.nextId++, topic: topic.name });
          this.sendSubscribe(topic);
          return;
        }
        for (const op of message.ops) {
          if (op.op === 'upsert') topic.rows.set(op.key, op.row);
          else topic.rows.delete(op.key);
        }
        topic.cursor = { epoch: message.epoch, position: message.position };
        topic.notify();
        return;
      }
      case 'error': {
        if (message.id == null) return;
        for (const topic of this.topics.values()) {
          if (topic.requestId === message.id) {
            topic.error = { code: message.code, message: message.message };
            topic.notify();
          }
        }
        return;
      }
      default:
        return;
    }
  }
}
