// graphgate's GraphiQL page: GraphiQL plus a sign-in panel.
//
// Sign in runs the `login` mutation and puts "Authorization: Bearer <access token>" into
// GraphiQL's headers (when `login` answers MFA_REQUIRED, the panel asks for a code from the
// authenticator app, or a recovery code, and sends it with the MFA token to `verifyMfa`, or,
// when `methods` has "passkey", offers a passkey instead); the access token is refreshed (the
// `refresh` mutation, which rotates the refresh token) shortly before it expires; sign out
// runs `logout` and clears both. A passkey (graphgate-passkey.js does the browser's part)
// signs in without a password (startPasskeySignIn, then finishPasskeySignIn) and is added
// with startPasskeyRegistration and finishPasskeyRegistration.
// The refresh token lives in sessionStorage (this tab only), never in localStorage, and
// GraphiQL is told not to persist headers, so no token outlives the tab.
(function () {
  'use strict';

  const endpoint = window.location.origin + window.location.pathname;
  const store = window.sessionStorage;
  const STORE_REFRESH = 'graphgate.refreshToken';
  const STORE_EMAIL = 'graphgate.email';
  const PAIR = 'accessToken refreshToken expiresIn user { email }';
  const LOGIN = `mutation GraphiQLSignIn($email: String!, $password: String!) {
  login(email: $email, password: $password, device: "GraphiQL") { ${PAIR} }
}`;
  const VERIFY_MFA = `mutation GraphiQLVerifyMfa($mfaToken: String!, $code: String!) {
  verifyMfa(mfaToken: $mfaToken, code: $code, device: "GraphiQL") { ${PAIR} }
}`;
  // Each passkey step is a pair: a challenge (aliased `challenge`), then the browser's answer
  // to it (aliased `answer`).
  const PASSKEY_SIGN_IN = {
    start: `mutation GraphiQLPasskeyChallenge($email: String, $mfaToken: String) {
  challenge: startPasskeySignIn(email: $email, mfaToken: $mfaToken) { challengeId options }
}`,
    finish: `mutation GraphiQLPasskeySignIn($challengeId: String!, $credential: JSON!) {
  answer: finishPasskeySignIn(challengeId: $challengeId, credential: $credential, device: "GraphiQL") { ${PAIR} }
}`,
  };
  const PASSKEY_ADD = {
    start: `mutation GraphiQLPasskeyOptions {
  challenge: startPasskeyRegistration { challengeId options }
}`,
    finish: `mutation GraphiQLAddPasskey($challengeId: String!, $credential: JSON!) {
  answer: finishPasskeyRegistration(challengeId: $challengeId, credential: $credential) { id name }
}`,
  };
  const REFRESH = `mutation GraphiQLRefresh($token: String) {
  refresh(refreshToken: $token) { ${PAIR} }
}`;
  const LOGOUT = 'mutation GraphiQLSignOut { logout }';
  const DEFAULT_QUERY = `# Sign in with the bar above: it puts "Authorization: Bearer <access token>"
# into the Headers tab below and refreshes the token before it expires.
query Me {
  me {
    id
    email
    roles
  }
}
`;

  const auth = {
    accessToken: null,
    refreshToken: store.getItem(STORE_REFRESH),
    email: store.getItem(STORE_EMAIL),
    expiresAt: 0, // ms since epoch
    refreshAt: 0, // ms since epoch: a little before expiry
    timer: null,
    inflight: null, // the one refresh in flight, shared by everyone who needs it
    mfaToken: null, // between login's MFA_REQUIRED and verifyMfa; kept in memory only
    mfaMethods: [], // what that MFA_REQUIRED offered: "totp", "recovery_code", "passkey"
    issued: new Set(), // access tokens this panel put into the headers
  };

  const $ = (id) => document.getElementById(id);
  const form = $('signin');
  const signedOut = form.querySelector('.gg-signed-out');
  const signedIn = form.querySelector('.gg-signed-in');
  const codeStep = form.querySelector('.gg-code');
  const passkey = window.GraphgatePasskey;
  const buttons = () => [...form.querySelectorAll('button')];

  function status(text, ok) {
    $('gg-status').textContent = text || '';
    $('gg-status').classList.toggle('gg-ok', Boolean(ok));
  }

  async function call(query, variables, token) {
    const headers = {
      'Content-Type': 'application/json',
      Accept: 'application/graphql-response+json, application/json;q=0.9',
    };
    if (token) headers.Authorization = 'Bearer ' + token;
    const response = await fetch(endpoint, {
      method: 'POST',
      headers,
      credentials: 'same-origin',
      body: JSON.stringify({ query, variables }),
    });
    return response.json();
  }

  function failure(body) {
    const error = (body.errors || [])[0];
    if (!error) return null;
    const code = (error.extensions || {}).code;
    return code ? `${error.message} (${code})` : error.message;
  }

  // ---- GraphiQL, whose Headers editor the panel writes into
  let applyAuthorization = null;

  function withAuthorization(text, token) {
    let headers = {};
    try {
      const parsed = text && text.trim() ? JSON.parse(text) : {};
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) headers = parsed;
    } catch (_) {
      headers = {}; // unreadable headers are replaced rather than sent half-right
    }
    for (const name of Object.keys(headers)) {
      if (name.toLowerCase() === 'authorization') delete headers[name];
    }
    if (token) headers.Authorization = 'Bearer ' + token;
    return Object.keys(headers).length ? JSON.stringify(headers, null, 2) : '';
  }

  function render() {
    const on = Boolean(auth.accessToken);
    const asking = !on && Boolean(auth.mfaToken);
    signedOut.hidden = on || asking;
    codeStep.hidden = !asking;
    const codes = auth.mfaMethods.some((m) => m !== 'passkey');
    $('gg-code').hidden = $('gg-verify').hidden = asking && !codes;
    $('gg-passkey-verify').hidden = !auth.mfaMethods.includes('passkey');
    $('gg-email').required = $('gg-password').required = !asking;
    signedIn.hidden = !on;
    $('gg-who').textContent = auth.email || '';
    if (applyAuthorization) applyAuthorization(auth.accessToken);
    showExpiry();
  }

  function showExpiry() {
    if (!auth.accessToken) return;
    const seconds = Math.max(0, Math.round((auth.refreshAt - Date.now()) / 1000));
    $('gg-expiry').textContent = `· token refreshes in ${seconds}s`;
  }
  window.setInterval(showExpiry, 1000);

  function adopt(pair) {
    auth.accessToken = pair.accessToken;
    auth.issued.add(pair.accessToken);
    auth.email = pair.user.email;
    // null when the refresh token travels in an HttpOnly cookie (REFRESH_COOKIE): keep none.
    auth.refreshToken = pair.refreshToken;
    if (pair.refreshToken) store.setItem(STORE_REFRESH, pair.refreshToken);
    else store.removeItem(STORE_REFRESH);
    store.setItem(STORE_EMAIL, auth.email);
    const lifetime = pair.expiresIn * 1000;
    auth.expiresAt = Date.now() + lifetime;
    // Refresh at 80% of the lifetime (at most a minute early): never with an expired token.
    auth.refreshAt = auth.expiresAt - Math.min(60000, lifetime * 0.2);
    window.clearTimeout(auth.timer);
    auth.timer = window.setTimeout(refresh, Math.max(0, auth.refreshAt - Date.now()));
    render();
  }

  function forget(message) {
    window.clearTimeout(auth.timer);
    auth.accessToken = null;
    auth.refreshToken = null;
    auth.expiresAt = auth.refreshAt = 0;
    auth.issued.clear();
    store.removeItem(STORE_REFRESH);
    store.removeItem(STORE_EMAIL);
    render();
    status(message || '');
  }

  function refresh() {
    if (!auth.inflight) {
      auth.inflight = (async () => {
        try {
          const body = await call(REFRESH, { token: auth.refreshToken });
          const problem = failure(body);
          if (problem) forget('Signed out: ' + problem);
          else adopt(body.data.refresh);
        } catch (error) {
          status('Refresh failed, retrying: ' + error.message);
          auth.timer = window.setTimeout(refresh, 5000);
        } finally {
          auth.inflight = null;
        }
      })();
    }
    return auth.inflight;
  }

  async function firstStep() {
    const body = await call(LOGIN, { email: $('gg-email').value, password: $('gg-password').value });
    const error = (body.errors || [])[0];
    const extensions = (error && error.extensions) || {};
    $('gg-password').value = '';
    if (extensions.code === 'MFA_REQUIRED') {
      // The password was right; the MFA token and a code (verifyMfa) or a passkey make the pair.
      auth.mfaToken = extensions.mfaToken;
      auth.mfaMethods = extensions.methods || ['totp', 'recovery_code'];
      render();
      const codes = auth.mfaMethods.some((m) => m !== 'passkey');
      const withPasskey = auth.mfaMethods.includes('passkey');
      if (codes) {
        const or = withPasskey ? ', or use a passkey' : '';
        status(`Enter the code from your authenticator app (or a recovery code)${or}`);
        $('gg-code').focus();
      } else {
        status('Use your passkey to finish signing in');
        $('gg-passkey-verify').focus();
      }
    } else if (error) {
      status(failure(body));
    } else {
      adopt(body.data.login);
      status('Signed in', true);
    }
  }

  async function secondStep() {
    const body = await call(VERIFY_MFA, { mfaToken: auth.mfaToken, code: $('gg-code').value });
    const error = (body.errors || [])[0];
    $('gg-code').value = '';
    if (!error) {
      endMfa();
      adopt(body.data.verifyMfa);
      status('Signed in', true);
      return;
    }
    keepOrEndMfa(error);
    status(failure(body));
  }

  function endMfa() {
    auth.mfaToken = null;
    auth.mfaMethods = [];
  }

  // A wrong code or passkey may be retried with the same MFA token; a spent one means start again.
  function keepOrEndMfa(error) {
    if ((error.extensions || {}).code !== 'INVALID_CREDENTIALS' || /spent/.test(error.message)) {
      endMfa();
      render();
    }
  }

  $('gg-cancel').addEventListener('click', () => {
    endMfa();
    render();
    status('');
  });

  // ---- Passkeys: ask the server for a challenge, let the browser answer it, send the answer.

  // One ceremony at a time (the browser allows one), with every button of the panel disabled.
  async function ceremony(work) {
    for (const button of buttons()) button.disabled = true;
    status('');
    try {
      await work();
    } finally {
      for (const button of buttons()) button.disabled = false;
    }
  }

  // The server's challenge, the browser's credential for it, the server's answer:
  // { answer } or { problem: the GraphQL body refused }, or null when the browser refused (the
  // status line then says why).
  async function challengeAndAnswer(steps, variables, token, browser) {
    const started = await call(steps.start, variables, token);
    if (failure(started)) return { problem: started };
    const { challengeId, options } = started.data.challenge;
    let credential;
    try {
      credential = await browser(options);
    } catch (error) {
      status('Passkey: ' + passkey.explain(error));
      return null;
    }
    const finished = await call(steps.finish, { challengeId, credential }, token);
    return failure(finished) ? { problem: finished } : { answer: finished.data.answer };
  }

  async function passkeySignIn() {
    const asking = Boolean(auth.mfaToken);
    // Discoverable: with no email the authenticator offers every passkey it holds for this site.
    const email = $('gg-email').value.trim();
    const variables = asking ? { mfaToken: auth.mfaToken } : { email: email || null };
    const done = await challengeAndAnswer(PASSKEY_SIGN_IN, variables, null, passkey.get);
    if (!done) return;
    if (done.problem) {
      if (asking) keepOrEndMfa(done.problem.errors[0]);
      status('Passkey sign-in refused: ' + failure(done.problem));
      return;
    }
    endMfa();
    $('gg-password').value = '';
    adopt(done.answer);
    status('Signed in with a passkey', true);
  }

  async function addPasskey() {
    if (auth.accessToken && Date.now() >= auth.refreshAt) await refresh();
    const done = await challengeAndAnswer(PASSKEY_ADD, null, auth.accessToken, passkey.create);
    if (!done) return;
    if (done.problem) {
      const code = (done.problem.errors[0].extensions || {}).code;
      const again = code === 'FRESH_LOGIN_REQUIRED' ? ': sign out and in again first' : '';
      status('Passkey not added: ' + failure(done.problem) + again);
      return;
    }
    // The session's tokens stay as they are (amr): the passkey counts from the next sign-in.
    status(`Passkey added: ${done.answer.name}`, true);
  }

  function onClick(id, work) {
    $(id).addEventListener('click', () =>
      ceremony(work).catch((error) => status('Passkey: ' + error.message))
    );
  }
  onClick('gg-passkey-signin', passkeySignIn);
  onClick('gg-passkey-verify', passkeySignIn);
  onClick('gg-passkey-add', addPasskey);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = $('gg-signin');
    button.disabled = true;
    status('');
    $('gg-verify').disabled = true;
    try {
      if (auth.mfaToken) await secondStep();
      else await firstStep();
    } catch (error) {
      status('Sign-in failed: ' + error.message);
    } finally {
      button.disabled = false;
      $('gg-verify').disabled = false;
    }
  });

  $('gg-signout').addEventListener('click', async () => {
    const token = auth.accessToken;
    forget('Signed out');
    if (token) {
      try {
        await call(LOGOUT, null, token);
      } catch (_) {
        // The local sign-out already happened; the session ends at its expiry at the latest.
      }
    }
  });

  // For a subscription, GraphiQL's toolkit opens a graphql-ws client with the request's
  // headers as the connection_init payload: {"Authorization": "Bearer <token>"}, as the
  // server expects. A sleeping laptop delays timers: refresh before a request rather than
  // send a stale token.
  const baseFetcher = GraphiQL.createFetcher({
    url: endpoint,
    subscriptionUrl: endpoint.replace(/^http/, 'ws'),
  });

  async function fetcher(params, options) {
    if (auth.accessToken && Date.now() >= auth.refreshAt) await refresh();
    const headers = { ...((options && options.headers) || {}) };
    for (const name of Object.keys(headers)) {
      const value = String(headers[name]);
      const token = value.startsWith('Bearer ') ? value.slice(7) : null;
      // Swap in the current token only where the panel put one of its own.
      if (name.toLowerCase() === 'authorization' && token && auth.issued.has(token)) {
        headers[name] = auth.accessToken ? 'Bearer ' + auth.accessToken : value;
      }
    }
    return baseFetcher(params, { ...(options || {}), headers });
  }

  function GraphiQLWithSignIn() {
    const [headers, setHeaders] = React.useState(() => withAuthorization('', auth.accessToken));
    React.useEffect(() => {
      applyAuthorization = (token) => setHeaders((current) => withAuthorization(current, token));
      return () => {
        applyAuthorization = null;
      };
    }, []);
    return React.createElement(GraphiQL, {
      fetcher,
      defaultQuery: DEFAULT_QUERY,
      headers,
      onEditHeaders: setHeaders,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: 'headers',
      inputValueDeprecation: true,
      plugins: [GraphiQLPluginExplorer.explorerPlugin()],
    });
  }

  ReactDOM.createRoot($('graphiql')).render(React.createElement(GraphiQLWithSignIn));
  render();
  // A reload within the tab: the stored refresh token brings the session back.
  if (auth.refreshToken) refresh();
})();
