// Runs graphql-http's auditServer against the URL given and prints one JSON line per audit:
// {"name": "MUST …", "status": "ok" | "warn" | "error", "reason": …}.
// Usage: node audit.mjs http://127.0.0.1:8000/graphql
import { auditServer } from "graphql-http";

const results = await auditServer({ url: process.argv[2] });
for (const result of results) {
  console.log(JSON.stringify({ name: result.name, status: result.status, reason: result.reason ?? null }));
}
