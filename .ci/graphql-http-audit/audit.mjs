// The GraphQL over HTTP audit of graphql-http (the spec's reference suite) against a live server.
//
//   node audit.mjs http://127.0.0.1:8000/graphql [--json]
//
// Prints one line per audit: "ok", "warn" (a SHOULD not met), "notice" (a MAY) or
// "error" (a MUST not met), with the reason. Exits 1 when any MUST fails, 2 on bad usage.
// With --json the last line is a JSON array of {id, name, status, reason} for tests.
import { auditServer } from 'graphql-http';

const args = process.argv.slice(2);
const url = args.find((arg) => !arg.startsWith('--'));
const asJson = args.includes('--json');
if (!url) {
  console.error('usage: node audit.mjs <graphql url> [--json]');
  process.exit(2);
}

const results = await auditServer({ url });
const rows = [];
for (const result of results) {
  let reason = '';
  if (result.status !== 'ok') {
    reason = result.reason;
    // The body helps to see why; a failed audit's response is still unread.
    try {
      const body = await result.response.text();
      reason += ` (HTTP ${result.response.status}, ${result.response.headers.get('content-type') ?? 'no content type'}: ${body.slice(0, 200)})`;
    } catch {
      // already read by the audit itself
    }
  }
  rows.push({ id: result.id, name: result.name, status: result.status, reason });
  console.log(`${result.status.padEnd(6)} ${result.id} ${result.name}${reason ? `\n       ${reason}` : ''}`);
}

const count = (status) => rows.filter((row) => row.status === status).length;
console.log(
  `\n${count('ok')} ok, ${count('warn')} warn, ${count('notice')} notice, ${count('error')} error (MUST failures)`,
);
if (asJson) console.log(JSON.stringify(rows));
process.exit(count('error') > 0 ? 1 : 0);
