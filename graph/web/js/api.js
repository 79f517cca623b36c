// GraphQL over HTTP: Apollo's automatic persisted queries for JSON requests, and the GraphQL
// multipart request spec for uploads.

const ENDPOINT = "/graphql";
const CLIENT_HEADERS = { "apollographql-client-name": "rollcall-web" };

// A request that reached the server and came back with errors.
export class GraphQLFailure extends Error {
  constructor(errors) {
    super(errors.map((error) => error.message).join("; "));
    this.errors = errors;
    this.code = errors[0]?.extensions?.code ?? "INTERNAL_ERROR";
    // The input field a validation error is about (e.g. "period"), when it names one.
    this.field = errors[0]?.extensions?.field ?? null;
  }
}

// The server could not be reached at all: the page goes offline.
export class NetworkFailure extends Error {}

// What a person is told about a failed request.
export function describeFailure(error) {
  if (error instanceof NetworkFailure) {
    return "The server cannot be reached. Check your connection and try again.";
  }
  return error.message || "Something went wrong.";
}

const hashes = new Map();

async function sha256(text) {
  // crypto.subtle exists only in secure contexts (https, localhost, 127.0.0.1).
  if (!globalThis.crypto?.subtle) return null;
  if (!hashes.has(text)) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    const hex = Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0"));
    hashes.set(text, hex.join(""));
  }
  return hashes.get(text);
}

async function post(body, headers) {
  let response;
  try {
    response = await fetch(ENDPOINT, { method: "POST", body, headers, credentials: "omit" });
  } catch (error) {
    throw new NetworkFailure(error.message);
  }
  let payload;
  try {
    payload = await response.json();
  } catch {
    throw new NetworkFailure(`The server answered ${response.status} without GraphQL.`);
  }
  return payload;
}

function authorization(token) {
  return token ? { authorization: `Bearer ${token}` } : {};
}

function unwrap(payload) {
  if (payload.errors?.length) throw new GraphQLFailure(payload.errors);
  return payload.data;
}

// Runs `query` with `variables`: the hash alone first, the document only when the server
// does not know the hash yet (PERSISTED_QUERY_NOT_FOUND).
export async function request(query, variables = {}, { token } = {}) {
  const headers = { "content-type": "application/json", ...CLIENT_HEADERS, ...authorization(token) };
  const digest = await sha256(query);
  if (digest === null) return unwrap(await post(JSON.stringify({ query, variables }), headers));
  const extensions = { persistedQuery: { version: 1, sha256Hash: digest } };
  const first = await post(JSON.stringify({ variables, extensions }), headers);
  if (first.errors?.some((error) => error.extensions?.code === "PERSISTED_QUERY_NOT_FOUND")) {
    return unwrap(await post(JSON.stringify({ query, variables, extensions }), headers));
  }
  return unwrap(first);
}

// One file as variable `fileVariable` of `query`, per the GraphQL multipart request spec.
export async function upload(query, variables, fileVariable, file, { token } = {}) {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query, variables: { ...variables, [fileVariable]: null } }));
  form.append("map", JSON.stringify({ 0: [`variables.${fileVariable}`] }));
  form.append("0", file, file.name);
  // The server refuses multipart requests without this header (CSRF protection).
  const headers = { "apollo-require-preflight": "true", ...CLIENT_HEADERS, ...authorization(token) };
  return unwrap(await post(form, headers));
}
