// A small graphgate client on plain `fetch`, for browsers and Node 18+ (no dependencies).
//
//   import { GraphGateClient } from './graphgate-client.mjs';
//   const client = new GraphGateClient({ url: 'https://api.example.com/graphql' });
//   await client.login('ada@example.com', 'correct horse');
//   const { data, errors } = await client.request('{ me { email } }');
//
// It attaches the access token to every request. When the server refuses the token
// (`extensions.code` TOKEN_EXPIRED / TOKEN_REVOKED, or the `WWW-Authenticate: Bearer
// error="invalid_token"` header) it refreshes once and retries once. Concurrent requests
// that hit an expired token share ONE refresh: a refresh token is single-use, and a second
// refresh with the same token would be reported as reuse and end the session.
// When the session cannot be refreshed (REFRESH_TOKEN_REUSED, SESSION_EXPIRED, ...), it
// forgets every token and calls `onSignedOut(code)`: the app shows its sign-in screen.
//
// Two-factor sign-in: when `login` answers MFA_REQUIRED, `login(email, password, device,
// { askCode })` calls `askCode(methods)` for a code from the authenticator app (or a
// recovery code) and sends it with the MFA token to `verifyMfa`; a wrong code asks again
// (the same MFA token; five wrong codes spend it). Without `askCode` it throws an error with
// `code: 'MFA_REQUIRED'` and `mfaToken`, for an app that asks on its own screen and then
// calls `verifyMfa(mfaToken, code, device)`.

const PAIR = 'accessToken refreshToken expiresIn refreshExpiresIn user { id email }';
const LOGIN = `mutation Login($email: String!, $password: String!, $device: String) {
  login(email: $email, password: $password, device: $device) { ${PAIR} }
}`;
const VERIFY_MFA = `mutation VerifyMfa($mfaToken: String!, $code: String!, $device: String) {
  verifyMfa(mfaToken: $mfaToken, code: $code, device: $device) { ${PAIR} }
}`;
const REFRESH = `mutation Refresh($refreshToken: String) {
  refresh(refreshToken: $refreshToken) { ${PAIR} }
}`;
const LOGOUT = 'mutation Logout { logout }';
const REFUSED_TOKEN = new Set(['TOKEN_EXPIRED', 'TOKEN_REVOKED', 'INVALID_TOKEN']);

/** The session is over; sign in again. `code` is the server's contract code. */
export class SignedOutError extends Error {
  constructor(code, message) {
    super(message || `signed out: ${code}`);
    this.name = 'SignedOutError';
    this.code = code;
  }
}

/** Where tokens are kept between page loads; the default keeps them in memory only. */
export function memoryStorage() {
  let tokens = null;
  return { load: () => tokens, save: (value) => { tokens = value; } };
}

function firstCode(body) {
  const error = (body && body.errors && body.errors[0]) || null;
  return (error && error.extensions && error.extensions.code) || null;
}

function tokenRefused(response, body) {
  const header = response.headers.get('WWW-Authenticate') || '';
  // In a browser, reading this header cross-origin needs Access-Control-Expose-Headers.
  if (/error="invalid_token"/.test(header)) return true;
  return (body.errors || []).some((e) => REFUSED_TOKEN.has(e.extensions && e.extensions.code));
}

export class GraphGateClient {
  /**
   * @param {object} options
   * @param {string} options.url the /graphql endpoint
   * @param {typeof fetch} [options.fetch] a fetch implementation (default: the global one)
   * @param {{load(): object|null, save(tokens: object|null): void}} [options.storage]
   * @param {(code: string) => void} [options.onSignedOut]
   */
  constructor({ url, fetch = globalThis.fetch, storage = memoryStorage(), onSignedOut } = {}) {
    this.url = url;
    this.fetch = fetch;
    this.storage = storage;
    this.onSignedOut = onSignedOut || (() => {});
    this.tokens = storage.load(); // { accessToken, refreshToken } or null
    this.inflightRefresh = null;
  }

  get signedIn() {
    return Boolean(this.tokens && this.tokens.accessToken);
  }

  async post(query, variables, accessToken) {
    const headers = {
      'Content-Type': 'application/json',
      Accept: 'application/graphql-response+json, application/json;q=0.9',
    };
    if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
    const response = await this.fetch(this.url, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables: variables || {} }),
      credentials: 'include', // a REFRESH_COOKIE deployment carries the refresh token here
    });
    const body = await response.json();
    return { response, body };
  }

  /** Run an operation as the signed-in user; refreshes once and retries once if needed. */
  async request(query, variables) {
    const used = this.tokens && this.tokens.accessToken;
    const { response, body } = await this.post(query, variables, used);
    if (!used || !tokenRefused(response, body)) return body;
    await this.refresh(used); // throws SignedOutError when the session is over
    return (await this.post(query, variables, this.tokens.accessToken)).body;
  }

  /**
   * Get a new pair. Everyone who saw `staleAccessToken` refused waits for the same refresh;
   * one who arrives after it finished just uses the new token.
   */
  refresh(staleAccessToken) {
    if (this.tokens && staleAccessToken && this.tokens.accessToken !== staleAccessToken) {
      return Promise.resolve(this.tokens);
    }
    if (!this.inflightRefresh) {
      this.inflightRefresh = this.rotate().finally(() => {
        this.inflightRefresh = null;
      });
    }
    return this.inflightRefresh;
  }

  async rotate() {
    const refreshToken = this.tokens && this.tokens.refreshToken;
    const { body } = await this.post(REFRESH, { refreshToken }, null);
    const code = firstCode(body);
    if (code) {
      // REFRESH_TOKEN_REUSED, SESSION_EXPIRED, TOKEN_REVOKED, INVALID_TOKEN: no way back.
      this.forget(code);
      throw new SignedOutError(code, body.errors[0].message);
    }
    return this.keep(body.data.refresh);
  }

  async login(email, password, device, { askCode } = {}) {
    const { body } = await this.post(LOGIN, { email, password, device }, null);
    const code = firstCode(body);
    if (code === 'MFA_REQUIRED') {
      const { mfaToken, methods } = body.errors[0].extensions;
      if (!askCode) {
        throw Object.assign(new Error(body.errors[0].message), { code, mfaToken, methods });
      }
      for (;;) {
        try {
          return await this.verifyMfa(mfaToken, await askCode(methods), device);
        } catch (error) {
          // A wrong code: ask again. Anything else (a spent MFA token, RATE_LIMITED): stop.
          if (error.code !== 'INVALID_CREDENTIALS' || /spent/.test(error.message)) throw error;
        }
      }
    }
    if (code) throw Object.assign(new Error(body.errors[0].message), { code });
    return this.keep(body.data.login);
  }

  /** The second step of a sign-in: the MFA token of MFA_REQUIRED and a code. */
  async verifyMfa(mfaToken, code, device) {
    const { body } = await this.post(VERIFY_MFA, { mfaToken, code, device }, null);
    const refused = firstCode(body);
    if (refused) throw Object.assign(new Error(body.errors[0].message), { code: refused });
    return this.keep(body.data.verifyMfa);
  }

  async logout() {
    const token = this.tokens && this.tokens.accessToken;
    this.forget(null);
    if (token) await this.post(LOGOUT, {}, token);
  }

  keep(pair) {
    // Every refresh rotates: the old refresh token is spent, store the new one at once.
    this.tokens = { accessToken: pair.accessToken, refreshToken: pair.refreshToken };
    this.storage.save(this.tokens);
    return pair;
  }

  forget(code) {
    this.tokens = null;
    this.storage.save(null);
    if (code) this.onSignedOut(code);
  }
}
