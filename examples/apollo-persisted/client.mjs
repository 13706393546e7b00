// Apollo Client (4.x) against graphgate: persisted documents and token refresh as links.
//
//   refreshOnExpired -> bearer -> PersistedQueryLink -> HttpLink
//
// - PersistedQueryLink, in one of two modes:
//     "apq":      automatic persisted queries: the hash first, the full text once when the
//                 server answers PersistedQueryNotFound (it then keeps the text);
//     "manifest": ids from persisted-query-manifest.json (written by
//                 @apollo/generate-persisted-query-manifest from src/): only ids are sent,
//                 which is all a server in TRUSTED_DOCUMENTS_MODE=only accepts.
// - refreshOnExpired: when an answer carries TOKEN_EXPIRED, refresh the token pair ONCE for
//   every request that failed meanwhile (single flight: N concurrent failures, one refresh
//   call, one rotation), then send each failed request again with the new access token.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { generatePersistedQueryIdsFromManifest } from "@apollo/persisted-query-lists";
import { Observable } from "rxjs";

const here = new URL(".", import.meta.url);
const source = (name) => readFileSync(new URL(`src/${name}.graphql`, here), "utf8");
const withPair = (name) => gql(source(name) + source("pair"));

export const REGISTER = withPair("register");
export const LOGIN = withPair("login");
export const REFRESH = withPair("refresh");
export const ME = gql(source("me"));

export const sha256 = (text) => createHash("sha256").update(text).digest("hex");

export function loadManifest() {
  return JSON.parse(readFileSync(new URL("persisted-query-manifest.json", here), "utf8"));
}

/** Where the client keeps its tokens; `refreshes` counts refresh calls actually made. */
export class TokenStore {
  accessToken = null;
  refreshToken = null;
  refreshes = 0;

  set(pair) {
    this.accessToken = pair.accessToken;
    this.refreshToken = pair.refreshToken;
  }
}

/** Adds `Authorization: Bearer <access token>` to each attempt (retries read it again). */
export function bearerLink(tokens) {
  return new ApolloLink((operation, forward) => {
    if (tokens.accessToken) {
      operation.setContext(({ headers = {} }) => ({
        headers: { ...headers, authorization: `Bearer ${tokens.accessToken}` },
      }));
    }
    return forward(operation);
  });
}

const expired = (result) =>
  Array.isArray(result?.errors) &&
  result.errors.some((error) => error?.extensions?.code === "TOKEN_EXPIRED");

/**
 * On TOKEN_EXPIRED: one refresh for all the requests failing at the same time, then each
 * request once more. `refresh()` must return the new pair (it runs outside this link).
 */
export function refreshOnExpiredLink(tokens, refresh) {
  let inFlight = null; // the one refresh under way, shared by every waiting request

  function refreshOnce(usedToken) {
    if (tokens.accessToken !== usedToken) return Promise.resolve(); // refreshed meanwhile
    if (!inFlight) {
      tokens.refreshes += 1;
      inFlight = refresh()
        .then((pair) => tokens.set(pair))
        .finally(() => {
          inFlight = null;
        });
    }
    return inFlight;
  }

  return new ApolloLink((operation, forward) => {
    return new Observable((observer) => {
      let subscription;
      let retried = false;
      let waiting = false;

      const attempt = () => {
        const usedToken = tokens.accessToken;
        subscription = forward(operation).subscribe({
          next: (result) => {
            if (!retried && expired(result)) {
              retried = true; // once: a second TOKEN_EXPIRED goes to the caller
              waiting = true;
              refreshOnce(usedToken).then(
                () => {
                  waiting = false;
                  attempt();
                },
                (error) => observer.error(error),
              );
              return;
            }
            observer.next(result);
          },
          error: (error) => observer.error(error),
          complete: () => {
            if (!waiting) observer.complete();
          },
        });
      };
      attempt();
      return () => subscription?.unsubscribe();
    });
  });
}

/**
 * A client of `uri`. mode: "apq" or "manifest"; fetch: optional, to watch the wire.
 * useGET: hashed queries over GET (the CDN-caching use; mutations always POST).
 */
export function makeClient({ uri, mode, tokens = new TokenStore(), fetch, useGET = false }) {
  const persisted =
    mode === "manifest"
      ? new PersistedQueryLink(generatePersistedQueryIdsFromManifest({ loadManifest }))
      : new PersistedQueryLink({ sha256, useGETForHashedQueries: useGET });
  const http = new HttpLink({ uri, fetch });
  const transport = ApolloLink.from([bearerLink(tokens), persisted, http]);
  // Refresh through the same transport, outside the refresh link (no recursion).
  const refresher = new ApolloClient({ link: transport, cache: new InMemoryCache() });
  async function refresh() {
    const { data } = await refresher.mutate({
      mutation: REFRESH,
      variables: { refreshToken: tokens.refreshToken },
    });
    return data.refresh;
  }
  const client = new ApolloClient({
    link: ApolloLink.from([refreshOnExpiredLink(tokens, refresh), transport]),
    cache: new InMemoryCache(),
    defaultOptions: { query: { fetchPolicy: "network-only" } },
  });
  return { client, tokens };
}
