// @ts-check
/** REST calls with the bearer token. Every failure becomes an `ApiError` carrying the server's
 * own `{"error": {"code", "message"}}`, so views can show the server's sentence. */

/** @typedef {import('./types/ErrorBody').ErrorBody} ErrorBody */
/** @typedef {import('./types/Job').Job} Job */
/** @typedef {import('./types/JobResponse').JobResponse} JobResponse */
/** @typedef {import('./types/CreateRepoRequest').CreateRepoRequest} CreateRepoRequest */
/** @typedef {import('./types/CreateRepoResponse').CreateRepoResponse} CreateRepoResponse */
/** @typedef {import('./types/ActionRequest').ActionRequest} ActionRequest */
/** @typedef {import('./types/CreateTaskRequest').CreateTaskRequest} CreateTaskRequest */
/** @typedef {import('./types/TaskResponse').TaskResponse} TaskResponse */

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  /** @param {string} token */
  constructor(token) {
    this.token = token;
    /** Called when the server refuses the token. */
    this.onUnauthorized = () => {};
  }

  /**
   * @template T
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @returns {Promise<T>}
   */
  async request(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = { Authorization: `Bearer ${this.token}`, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        referrerPolicy: 'no-referrer',
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, 'network', 'The server cannot be reached. Check that gantry serve is running.');
    }
    const text = await response.text();
    /** @type {any} */
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!response.ok) {
      if (response.status === 401) this.onUnauthorized();
      /** @type {ErrorBody | null} */
      const error = json && json.error ? json : null;
      throw new ApiError(
        response.status,
        error?.error.code ?? `http_${response.status}`,
        error?.error.message ?? `The server answered ${response.status} ${response.statusText}.`,
      );
    }
    return json;
  }

  /**
   * Is the token accepted? Used after a WebSocket upgrade failed, where the browser hides why.
   * @returns {Promise<'ok' | 'unauthorized' | 'down'>}
   */
  async probe() {
    try {
      const response = await fetch('/v1/repos', {
        headers: { Authorization: `Bearer ${this.token}` },
        referrerPolicy: 'no-referrer',
        cache: 'no-store',
      });
      if (response.status === 401) return 'unauthorized';
      return response.ok ? 'ok' : 'down';
    } catch {
      return 'down';
    }
  }

  /**
   * @param {CreateRepoRequest} body
   * @returns {Promise<CreateRepoResponse>}
   */
  createRepo(body) {
    return this.request('POST', '/v1/repos', body);
  }

  /**
   * @param {string} repoId
   * @param {ActionRequest} body
   * @returns {Promise<JobResponse>}
   */
  act(repoId, body) {
    return this.request('POST', `/v1/repos/${encodeURIComponent(repoId)}/actions`, body);
  }

  /**
   * @param {string} jobId
   * @returns {Promise<JobResponse>}
   */
  cancel(jobId) {
    return this.request('POST', `/v1/jobs/${encodeURIComponent(jobId)}/cancel`);
  }

  /**
   * @param {string} repoId
   * @param {CreateTaskRequest} body
   * @returns {Promise<TaskResponse>}
   */
  createTask(repoId, body) {
    return this.request('POST', `/v1/repos/${encodeURIComponent(repoId)}/tasks`, body);
  }
}
