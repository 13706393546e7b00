// Drives client.mjs against a running graphgate and prints one JSON object: what was sent
// over the wire and what came back. tests/ecosystem/test_apollo_client.py reads it.
//
//   node demo.mjs apq      <graphql url> <email>   APQ: miss, register, then hashes only
//   node demo.mjs trusted  <graphql url> <email>   manifest ids only; a hand-written query
//   node demo.mjs refresh  <graphql url> <email> <n> [wait seconds]
//                                                   n concurrent requests with an expired
//                                                   token: one refresh, n answers
import { ME, REGISTER, TokenStore, makeClient } from "./client.mjs";

const [scenario, uri, email, ...rest] = process.argv.slice(2);
const password = "correct horse battery";

const wire = [];
async function watchedFetch(url, options = {}) {
  const method = options.method ?? "GET";
  const body = typeof options.body === "string" ? options.body : "";
  const target = new URL(String(url));
  const sent = body ? JSON.parse(body) : Object.fromEntries(target.searchParams);
  const extensions =
    typeof sent.extensions === "string" ? JSON.parse(sent.extensions) : sent.extensions;
  const response = await fetch(url, options);
  wire.push({
    method,
    bytes: body.length + target.search.length,
    operation: sent.operationName ?? null,
    query: typeof sent.query === "string",
    hash: extensions?.persistedQuery?.sha256Hash ?? null,
    status: response.status,
  });
  return response;
}

const codes = (error) =>
  (error?.errors ?? []).map((e) => e.extensions?.code ?? null).filter(Boolean);

async function signUp(client, tokens) {
  const { data } = await client.mutate({ mutation: REGISTER, variables: { email, password } });
  tokens.set(data.register);
}

async function apq() {
  const { client, tokens } = makeClient({ uri, mode: "apq", fetch: watchedFetch, useGET: true });
  await signUp(client, tokens);
  const first = await client.query({ query: ME });
  const second = await client.query({ query: ME });
  return { me: [first.data.me.email, second.data.me.email], wire };
}

async function trusted() {
  const { client, tokens } = makeClient({ uri, mode: "manifest", fetch: watchedFetch });
  await signUp(client, tokens);
  const me = await client.query({ query: ME });
  // A document the app never shipped, sent as plain GraphQL over HTTP.
  const response = await fetch(uri, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/graphql-response+json" },
    body: JSON.stringify({ query: "query Mine { me { id email roles } }" }),
  });
  const handWritten = { status: response.status, body: await response.json() };
  return { me: me.data.me.email, wire, handWritten };
}

async function refresh() {
  const n = Number(rest[0] ?? 5);
  const wait = Number(rest[1] ?? 0);
  const tokens = new TokenStore();
  const { client } = makeClient({ uri, mode: "manifest", tokens, fetch: watchedFetch });
  await signUp(client, tokens);
  await new Promise((resolve) => setTimeout(resolve, wait * 1000)); // let the token expire
  const expiredToken = tokens.accessToken;
  const results = await Promise.allSettled(
    // Apollo merges identical in-flight queries: turned off so that n requests really fail.
    Array.from({ length: n }, () =>
      client.query({ query: ME, context: { queryDeduplication: false } }),
    ),
  );
  return {
    refreshes: tokens.refreshes,
    rotated: tokens.accessToken !== expiredToken,
    results: results.map((r) =>
      r.status === "fulfilled" ? r.value.data.me.email : { error: codes(r.reason) },
    ),
    wire,
  };
}

const scenarios = { apq, trusted, refresh };
try {
  const output = await scenarios[scenario]();
  process.stdout.write(JSON.stringify(output) + "\n");
} catch (error) {
  process.stdout.write(JSON.stringify({ failed: String(error), codes: codes(error), wire }) + "\n");
  process.exitCode = 1;
}
