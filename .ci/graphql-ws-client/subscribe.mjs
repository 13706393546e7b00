// Subscribes to graphgate's noteEvents with graphql-ws, the reference client of the
// GraphQL over WebSocket protocol (graphql-transport-ws), and reports what happens.
//
//   GRAPHGATE_TOKEN=<access token> node subscribe.mjs ws://127.0.0.1:8000/graphql [--timeout=30]
//
// The token travels in connectionParams as {"Authorization": "Bearer <token>"}; it is read
// from the environment so that it shows neither in the process list nor in the output.
// Prints one JSON object per line on stdout:
//   {"connected": true}                      the server acknowledged connection_init
//   {"next": {"data": ..., "errors": ...}}   one result of the subscription
//   {"error": ...}                           the subscription failed (a close counts)
//   {"complete": true}                       the server completed the subscription
//   {"closed": <code>, "reason": "..."}      the socket closed; the program then exits 0
//   {"timeout": <seconds>}                   nothing closed the socket in time; exits 3
// Exits 2 on bad usage.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const EVENTS = 'subscription { noteEvents { kind note { id title body owner { id email } } } }';

const args = process.argv.slice(2);
const url = args.find((arg) => !arg.startsWith('--'));
const timeoutArg = args.find((arg) => arg.startsWith('--timeout='));
const timeoutSeconds = timeoutArg ? Number(timeoutArg.slice('--timeout='.length)) : 30;
const token = process.env.GRAPHGATE_TOKEN ?? '';
if (!url || !Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
  console.error('usage: GRAPHGATE_TOKEN=<token> node subscribe.mjs <ws url> [--timeout=seconds]');
  process.exit(2);
}

const say = (object) => process.stdout.write(`${JSON.stringify(object)}\n`);

// A close event from `ws` or anything else thrown at us, as plain JSON.
const describe = (problem) =>
  problem && typeof problem === 'object' && 'code' in problem && 'reason' in problem
    ? { code: problem.code, reason: String(problem.reason) }
    : { message: String(problem instanceof Error ? problem.message : problem) };

let client;
const giveUp = setTimeout(() => {
  say({ timeout: timeoutSeconds });
  process.exit(3);
}, timeoutSeconds * 1000);

const finish = () => {
  clearTimeout(giveUp);
  client?.dispose();
  // Nothing else should keep node alive now; this only guards against a stray handle.
  setTimeout(() => process.exit(0), 1000).unref();
};

client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  lazy: false, // connect now, so a refused token shows at once
  retryAttempts: 0, // a closed socket is the end: report it, never reconnect
  onNonLazyError: () => {}, // reported by `closed` and the subscription's `error` below
  on: {
    connected: () => say({ connected: true }),
    closed: (event) => {
      const { code, reason } = describe(event);
      say({ closed: code ?? null, reason: reason ?? '' });
      finish();
    },
  },
});

client.subscribe(
  { query: EVENTS },
  {
    next: (result) => say({ next: result }),
    error: (problem) => say({ error: describe(problem) }),
    complete: () => say({ complete: true }),
  },
);
