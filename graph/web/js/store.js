// What the page keeps in localStorage: the session (token and viewer) and the last good data
// with the time it was fetched, so that the dashboard can be shown offline.

const SESSION_KEY = "rollcall.session";
const SNAPSHOT_KEY = "rollcall.snapshot";
const STALE_AFTER_MS = 24 * 60 * 60 * 1000;

function read(key) {
  try {
    return JSON.parse(localStorage.getItem(key));
  } catch {
    return null;
  }
}

function write(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the page works, only without its offline copy.
  }
}

export function loadSession() {
  const session = read(SESSION_KEY);
  return session?.token ? session : null;
}

export function saveSession(session) {
  write(SESSION_KEY, session);
}

// The snapshot belongs to one user: another user's never shows.
export function loadSnapshot(userId) {
  const snapshot = read(SNAPSHOT_KEY);
  if (!snapshot || snapshot.userId !== userId || !snapshot.data) return null;
  return snapshot;
}

export function saveSnapshot(userId, data, savedAt = new Date()) {
  const snapshot = { userId, savedAt: savedAt.toISOString(), data };
  write(SNAPSHOT_KEY, snapshot);
  return snapshot;
}

export function isStale(snapshot, now = Date.now()) {
  return now - Date.parse(snapshot.savedAt) > STALE_AFTER_MS;
}

// Logging out forgets everything: the next person at this computer sees nothing of it.
export function forget() {
  localStorage.removeItem(SESSION_KEY);
  localStorage.removeItem(SNAPSHOT_KEY);
}
