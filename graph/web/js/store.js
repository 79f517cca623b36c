// What the pages keep in localStorage: each page's session (token and viewer) and the student
// page's last good data with the time it was fetched, so that the dashboard can be shown offline.

// One session per page: a teacher signed in to the register is no student on the student page.
export const SESSIONS = { student: "rollcall.session", teacher: "rollcall.teacher-session" };
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

export function loadSession(key = SESSIONS.student) {
  const session = read(key);
  return session?.token ? session : null;
}

export function saveSession(session, key = SESSIONS.student) {
  write(key, session);
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

// Logging out of either page forgets everything: the next person at this computer sees nothing.
export function forget() {
  for (const key of Object.values(SESSIONS)) localStorage.removeItem(key);
  localStorage.removeItem(SNAPSHOT_KEY);
}
