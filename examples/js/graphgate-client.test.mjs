// Drives graphgate-client.mjs against a live server whose access tokens live 2 seconds:
//
//   GRAPHGATE_URL=http://127.0.0.1:8000/graphql ACCESS_TOKEN_TTL=2 node --test graphgate-client.test.mjs
//
// (The server needs ACCESS_TOKEN_TTL=2 and JWT_LEEWAY=0; tests/ecosystem/test_examples.py starts one.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { GraphGateClient, SignedOutError } from './graphgate-client.mjs';

const url = process.env.GRAPHGATE_URL;
const ttl = Number(process.env.ACCESS_TOKEN_TTL || '2');
assert.ok(url, 'set GRAPHGATE_URL to the /graphql endpoint of a running graphgate');

/** A fetch that counts the refresh mutations it sends. */
function countingFetch() {
  const counted = { refreshes: 0 };
  const wrapped = async (input, init) => {
    if (init && typeof init.body === 'string' && init.body.includes('refresh(refreshToken')) {
      counted.refreshes += 1;
    }
    return fetch(input, init);
  };
  return { counted, fetch: wrapped };
}

async function register(email, password) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      query: 'mutation R($e: String!, $p: String!) { register(email: $e, password: $p) { accessToken } }',
      variables: { e: email, p: password },
    }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
}

const expire = () => sleep(ttl * 1000 + 600); // a live server: real time must pass

test('attaches the token, refreshes once on expiry, shares one refresh', async () => {
  await register('node@example.com', 'correct horse');
  const { counted, fetch: countedFetch } = countingFetch();
  const client = new GraphGateClient({ url, fetch: countedFetch });
  await client.login('node@example.com', 'correct horse', 'node test');

  const first = await client.request('query Me { me { email } }');
  assert.equal(first.data.me.email, 'node@example.com');
  assert.equal(counted.refreshes, 0);
  const before = client.tokens;

  await expire();
  // Five requests at once all meet TOKEN_EXPIRED; exactly one refresh serves all of them.
  const answers = await Promise.all(
    Array.from({ length: 5 }, () => client.request('query Me { me { email } }')),
  );
  for (const answer of answers) {
    assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
    assert.equal(answer.data.me.email, 'node@example.com');
  }
  assert.equal(counted.refreshes, 1);
  assert.notEqual(client.tokens.accessToken, before.accessToken);
  assert.notEqual(client.tokens.refreshToken, before.refreshToken); // rotated

  // Again after the next expiry: the rotated refresh token works in its turn.
  await expire();
  const later = await client.request('query Me { me { email } }');
  assert.equal(later.data.me.email, 'node@example.com');
  assert.equal(counted.refreshes, 2);

  await client.logout();
  assert.equal(client.signedIn, false);
});

test('a stolen refresh token used first ends the session: the client signs out', async () => {
  await register('victim@example.com', 'correct horse');
  const signedOut = [];
  const client = new GraphGateClient({ url, onSignedOut: (code) => signedOut.push(code) });
  await client.login('victim@example.com', 'correct horse');

  // Someone else spends the refresh token first.
  const thief = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      query: 'mutation($t: String) { refresh(refreshToken: $t) { accessToken } }',
      variables: { t: client.tokens.refreshToken },
    }),
  });
  assert.ok((await thief.json()).data.refresh.accessToken);

  await expire();
  await assert.rejects(client.request('{ me { email } }'), (error) => {
    assert.ok(error instanceof SignedOutError);
    assert.equal(error.code, 'REFRESH_TOKEN_REUSED');
    return true;
  });
  assert.deepEqual(signedOut, ['REFRESH_TOKEN_REUSED']);
  assert.equal(client.tokens, null);
});

test('the WWW-Authenticate header alone is enough to trigger the refresh', async () => {
  await register('header@example.com', 'correct horse');
  const client = new GraphGateClient({ url });
  await client.login('header@example.com', 'correct horse');
  // A revoked-looking token: the server answers INVALID_TOKEN with the header; the client
  // refreshes with its (valid) refresh token and retries with the new access token.
  client.tokens = { ...client.tokens, accessToken: client.tokens.accessToken + 'x' };
  const answer = await client.request('{ me { email } }');
  assert.equal(answer.data.me.email, 'header@example.com');
});

test('two-factor sign-in: asks for the code, again after a wrong one', async (t) => {
  const email = process.env.GRAPHGATE_MFA_EMAIL;
  const recoveryCode = process.env.GRAPHGATE_MFA_RECOVERY_CODE;
  if (!email || !recoveryCode) return t.skip('no enrolled user given (GRAPHGATE_MFA_*)');
  const client = new GraphGateClient({ url });
  await assert.rejects(client.login(email, 'correct horse', 'node test'), (error) => {
    assert.equal(error.code, 'MFA_REQUIRED');
    assert.ok(error.mfaToken);
    assert.deepEqual(error.methods, ['totp', 'recovery_code']);
    return true;
  });
  const asked = [];
  const answers = ['000000', recoveryCode];
  await client.login(email, 'correct horse', 'node test', {
    askCode: async (methods) => {
      asked.push(methods);
      return answers.shift();
    },
  });
  assert.equal(asked.length, 2);
  assert.ok(client.signedIn);
  const me = await client.request('query Me { me { email mfa { recoveryCodesLeft } } }');
  assert.equal(me.data.me.mfa.recoveryCodesLeft, 9);
});
