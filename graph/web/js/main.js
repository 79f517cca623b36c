// The student dashboard page: sign in, the dashboard kept live over a websocket, and the last
// good data from localStorage whenever the API cannot be reached.

import { GraphQLFailure, NetworkFailure, request, upload } from "./api.js";
import { rateChart } from "./chart.js";
import { byId, h, safeHref, setText } from "./dom.js";
import {
  FILE_STATUS_LABELS,
  STANDING_HINTS,
  STANDING_LABELS,
  STATUS_LABELS,
  TREND_LABELS,
  addDays,
  ago,
  dateTime,
  fileSize,
  mondayOf,
  ordinal,
  percent,
  schoolToday,
  shortDate,
  weekday,
} from "./format.js";
import { LiveConnection, socketUrl } from "./live.js";
import { announce, flash, loginHandler, showLoginCard } from "./page.js";
import { setUpPasswordForms } from "./password.js";
import * as queries from "./queries.js";
import { SESSIONS, forget, isStale, loadSession, loadSnapshot, saveSnapshot } from "./store.js";

const HISTORY_WEEKS = 12;
const REFRESH_DEBOUNCE_MS = 400;
const CLOCK_TICK_MS = 30_000;
// A pushed dashboard that differs in these means new marks: the week and the chart change too.
const COUNT_FIELDS = ["totalClasses", "presentDays", "absentDays", "sickDays", "leaveDays"];

const state = {
  session: null,
  snapshot: null,
  // Whether the API answered the last request (and the browser says it is online).
  online: navigator.onLine,
  live: "connecting",
  // Whether the websocket was ever acknowledged, and whether its next push is its first.
  wasLive: false,
  firstPush: false,
  connection: null,
  refreshing: null,
  refreshAgain: false,
  // The Monday of the week the grid shows when the student browsed away from the current one.
  browsedWeek: null,
  // Counts week requests: an answer that a later click overtook is dropped.
  weekRequests: 0,
  refreshTimer: null,
};

// ---- network state ---------------------------------------------------------------------

function setOnline(online) {
  state.online = online;
  for (const element of document.querySelectorAll("[data-online-only]")) {
    element.disabled = !online;
  }
  renderWeekNav();
  renderConnection();
  renderFreshness();
}

function renderConnection() {
  const indicator = byId("connection");
  let label = "Live";
  let status = "live";
  if (!state.online) {
    label = "Offline";
    status = "offline";
  } else if (state.live !== "live") {
    label = "Reconnecting…";
    status = "connecting";
  }
  indicator.dataset.state = status;
  setText("connection-text", label);
}

function renderFreshness() {
  const snapshot = state.snapshot;
  const offlineBanner = byId("offline-banner");
  offlineBanner.hidden = state.online || !state.session;
  if (!state.online) {
    setText(
      "offline-text",
      snapshot
        ? `Showing your data saved ${dateTime(snapshot.savedAt)} (${ago(snapshot.savedAt)}). ` +
            "Uploading certificates and changing settings are disabled until you are back online."
        : "No saved data is available yet: connect once to see your dashboard.",
    );
  }
  const stale = Boolean(snapshot && isStale(snapshot));
  byId("stale-banner").hidden = !stale;
  if (stale) {
    setText("stale-text", `It was saved ${ago(snapshot.savedAt)} and may not show your current attendance.`);
  }
  byId("updated").textContent = snapshot ? `Updated ${ago(snapshot.savedAt)}` : "";
  byId("updated").title = snapshot ? dateTime(snapshot.savedAt) : "";
}

// ---- data --------------------------------------------------------------------------------

function variables() {
  const today = schoolToday(state.session.viewer.tenant.timezone);
  return { weekStart: mondayOf(today), weeks: HISTORY_WEEKS };
}

async function refresh() {
  if (!state.session) return;
  if (state.refreshing) {
    // The read in flight may have started before whatever asked for this one.
    state.refreshAgain = true;
    return;
  }
  const session = state.session;
  state.refreshing = (async () => {
    try {
      const data = await request(queries.DASHBOARD, variables(), { token: session.token });
      if (state.session !== session) return; // logged out meanwhile: keep nothing
      showError(null);
      state.snapshot = saveSnapshot(session.viewer.id, data);
      setOnline(true);
      render(state.snapshot.data);
      if (state.browsedWeek) showWeek(state.browsedWeek);
      // The API answers: a socket waiting out its backoff may try again now.
      state.connection?.retryNow();
    } catch (error) {
      if (state.session === session) handleFailure(error);
    } finally {
      state.refreshing = null;
      if (state.refreshAgain) {
        state.refreshAgain = false;
        refresh();
      }
    }
  })();
  await state.refreshing;
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refresh, REFRESH_DEBOUNCE_MS);
}

function handleFailure(error) {
  if (error instanceof NetworkFailure) {
    setOnline(false);
    return;
  }
  if (error instanceof GraphQLFailure && error.code === "UNAUTHENTICATED") {
    logout("Your session has ended: please sign in again.");
    return;
  }
  showError(error.message || "Something went wrong.");
}

function showError(message) {
  const element = byId("page-error");
  element.hidden = !message;
  element.textContent = message ?? "";
}

// ---- rendering ---------------------------------------------------------------------------

function render(data) {
  renderDashboard(data.studentDashboard);
  if (!state.browsedWeek) renderWeek(data.weeklyAttendance);
  renderChart(data.attendanceHistory);
  renderNotifications(data.notifications, data.unread.totalCount);
  renderCertificates(data.medicalCertificates);
  renderPreferences(data.notificationPreferences);
  renderFreshness();
}

function renderViewer(viewer) {
  setText("school-name", viewer.tenant.name);
  setText("viewer-email", viewer.email);
  setText("student-name", viewer.student.name);
  setText("student-meta", `Class ${viewer.student.classroom.name} · ${viewer.tenant.name}`);
}

function renderDashboard(dashboard) {
  setText("rate-value", percent(dashboard.attendanceRate));
  const badge = byId("standing-badge");
  badge.textContent = STANDING_LABELS[dashboard.standing] ?? dashboard.standing;
  badge.dataset.standing = dashboard.standing;
  setText("standing-hint", STANDING_HINTS[dashboard.standing] ?? "");
  setText("average-value", percent(dashboard.classAverage));
  const difference = dashboard.attendanceRate - dashboard.classAverage;
  setText(
    "average-compare",
    Math.abs(difference) < 0.05
      ? "You are at the class average"
      : `You are ${Math.abs(difference).toFixed(1)} points ${difference > 0 ? "above" : "below"} it`,
  );
  setText("rank-value", ordinal(dashboard.ranking));
  setText("class-size", `of ${dashboard.classSize}`);
  setText("percentile", `Ahead of ${Math.round(dashboard.percentile)}% of your classmates`);
  const trend = byId("trend-value");
  trend.dataset.trend = dashboard.trend;
  trend.textContent = TREND_LABELS[dashboard.trend] ?? dashboard.trend;
  setText("count-total", dashboard.totalClasses);
  setText("count-present", dashboard.presentDays);
  setText("count-absent", dashboard.absentDays);
  setText("count-sick", dashboard.sickDays);
  setText("count-leave", dashboard.leaveDays);
}

function renderWeek(week) {
  const today = schoolToday(state.session.viewer.tenant.timezone);
  const days = week.days.filter(
    (day, index) => index < 5 || day.records.length > 0, // weekends only when marked
  );
  const periods = Math.max(
    state.session.viewer.tenant.periodsPerDay,
    ...week.days.flatMap((day) => day.records.map((record) => record.period)),
  );
  const header = h(
    "tr",
    null,
    h(
      "th",
      { scope: "col", class: "period-head" },
      h("span", { class: "period-word", text: "Period" }),
      h("span", { class: "period-mark", "aria-hidden": "true", text: "#" }),
    ),
    days.map((day) =>
      h(
        "th",
        { scope: "col", class: day.date === today ? "today" : null },
        h("span", { class: "weekday", text: weekday(day.date) }),
        h("span", { class: "day-date", text: shortDate(day.date) }),
      ),
    ),
  );
  const rows = [];
  for (let period = 1; period <= periods; period += 1) {
    rows.push(
      h(
        "tr",
        null,
        h("th", { scope: "row", text: period }),
        days.map((day) => {
          const record = day.records.find((item) => item.period === period);
          if (!record) {
            return h("td", { class: day.date === today ? "today" : null }, h("span", { class: "empty", text: "—" }));
          }
          return h(
            "td",
            { class: day.date === today ? "today" : null },
            h("span", { class: `status status-${record.status.toLowerCase()}`, text: STATUS_LABELS[record.status] }),
            h("span", { class: "subject", text: record.subject.name }),
          );
        }),
      ),
    );
  }
  const table = h(
    "table",
    { class: "week-table" },
    h("caption", { class: "visually-hidden", text: `Week of ${shortDate(week.weekStart)} to ${shortDate(week.weekEnd)}, by period` }),
    h("thead", null, header),
    h("tbody", null, rows),
  );
  byId("week").replaceChildren(table);
  setText("week-title", `Week of ${shortDate(week.weekStart)}`);
  setText(
    "week-summary",
    week.totalClasses
      ? `${week.presentCount} of ${week.totalClasses} periods present (${percent(week.attendanceRate)})`
      : "No periods marked in this week",
  );
}

function currentWeek() {
  return mondayOf(schoolToday(state.session.viewer.tenant.timezone));
}

// Earlier weeks are read from the API: only the current one is kept for offline use.
function renderWeekNav() {
  if (!state.session) return;
  const browsing = Boolean(state.browsedWeek);
  byId("week-previous").disabled = !state.online;
  byId("week-next").disabled = !state.online || !browsing;
  byId("week-current").hidden = !browsing;
}

async function showWeek(weekStart) {
  const ticket = ++state.weekRequests;
  if (weekStart >= currentWeek()) {
    state.browsedWeek = null;
    if (state.snapshot) renderWeek(state.snapshot.data.weeklyAttendance);
    renderWeekNav();
    return;
  }
  const session = state.session;
  try {
    const data = await request(queries.WEEK, { weekStart }, { token: session.token });
    if (state.session !== session || ticket !== state.weekRequests) return;
    state.browsedWeek = weekStart;
    renderWeek(data.weeklyAttendance);
    renderWeekNav();
  } catch (error) {
    if (state.session === session) handleFailure(error);
  }
}

function browseWeeks(weeks) {
  showWeek(addDays(state.browsedWeek ?? currentWeek(), 7 * weeks));
}

function renderChart(points) {
  const tenant = state.session.viewer.tenant;
  const chart = rateChart(points, { warning: tenant.warningThreshold, mahroom: tenant.mahroomThreshold });
  byId("chart").replaceChildren(chart);
}

function renderNotifications(connection, unread) {
  const badge = byId("unread-count");
  badge.hidden = unread === 0;
  badge.textContent = `${unread} unread`;
  byId("mark-all-read").hidden = unread === 0;
  const items = connection.edges.map(({ node }) => notificationItem(node));
  if (!items.length) items.push(h("li", { class: "empty-state", text: "No notifications yet." }));
  byId("notifications").replaceChildren(...items);
}

function notificationItem(notification) {
  return h(
    "li",
    { class: `notification severity-${notification.severity.toLowerCase()}`, "data-read": notification.read },
    h("span", { class: "severity-dot", "aria-hidden": "true" }),
    h(
      "div",
      { class: "notification-body" },
      h("p", { class: "notification-title", text: notification.title }),
      h("p", { class: "notification-message", text: notification.message }),
      h("p", { class: "muted small" }, h("time", { datetime: notification.createdAt, text: ago(notification.createdAt) })),
    ),
    notification.read
      ? null
      : h("button", {
          type: "button",
          class: "button ghost small",
          "data-online-only": true,
          disabled: !state.online,
          "aria-label": `Mark “${notification.title}” as read`,
          text: "Mark read",
          onclick: () => markRead(notification.id),
        }),
  );
}

function renderCertificates(connection) {
  const items = connection.edges.map(({ node }) => {
    const href = node.downloadUrl ? safeHref(node.downloadUrl) : null;
    return h(
      "li",
      { class: "certificate" },
      h(
        "div",
        { class: "certificate-main" },
        href
          ? h("a", { href, class: "certificate-name", rel: "noopener", text: node.fileName })
          : h("span", { class: "certificate-name", text: node.fileName }),
        h("span", { class: "muted small", text: `${shortDate(node.coversFrom)} – ${shortDate(node.coversTo)} · ${fileSize(node.size)}` }),
        node.rejectionReason ? h("span", { class: "small rejection", text: node.rejectionReason }) : null,
      ),
      h("span", { class: `badge file-${node.status.toLowerCase()}`, text: FILE_STATUS_LABELS[node.status] ?? node.status }),
    );
  });
  if (!items.length) items.push(h("li", { class: "empty-state", text: "No certificates uploaded." }));
  byId("certificates").replaceChildren(...items);
}

function renderPreferences(preferences) {
  for (const input of byId("preferences-form").querySelectorAll("input[type=checkbox]")) {
    input.checked = Boolean(preferences[input.name]);
  }
}

// ---- actions -----------------------------------------------------------------------------

async function mutate(query, vars) {
  try {
    const data = await request(query, vars, { token: state.session.token });
    setOnline(true);
    return data;
  } catch (error) {
    handleFailure(error);
    return null;
  }
}

async function markRead(id) {
  if (await mutate(queries.MARK_READ, { id })) await refresh();
}

async function markAllRead() {
  if (await mutate(queries.MARK_ALL_READ, {})) await refresh();
}

async function changePreference(event) {
  const input = event.target;
  const status = byId("preferences-status");
  status.textContent = "Saving…";
  const data = await mutate(queries.UPDATE_PREFERENCES, { input: { [input.name]: input.checked } });
  if (!data) {
    input.checked = !input.checked;
    status.textContent = "Not saved.";
    return;
  }
  status.textContent = "Saved.";
  if (state.snapshot) {
    state.snapshot.data.notificationPreferences = data.updateNotificationPreferences;
    state.snapshot = saveSnapshot(state.session.viewer.id, state.snapshot.data, new Date(state.snapshot.savedAt));
  }
}

async function uploadCertificate(event) {
  event.preventDefault();
  const form = event.target;
  const status = byId("upload-status");
  const file = form.elements.file.files[0];
  if (!file) {
    status.textContent = "Choose a file first.";
    return;
  }
  const input = {
    coversFrom: form.elements.coversFrom.value,
    coversTo: form.elements.coversTo.value,
    description: form.elements.description.value.trim() || null,
  };
  byId("upload-submit").disabled = true;
  status.textContent = `Uploading ${file.name}…`;
  status.dataset.tone = "";
  try {
    const data = await upload(queries.UPLOAD_CERTIFICATE, { input }, "file", file, { token: state.session.token });
    status.textContent = `Uploaded ${data.uploadMedicalCertificate.fileName}: it is scanned for viruses, then reviewed.`;
    status.dataset.tone = "success";
    form.reset();
    setDefaultDates();
    await refresh();
  } catch (error) {
    status.dataset.tone = "error";
    status.textContent = error instanceof NetworkFailure ? "You are offline: the file was not sent." : error.message;
    handleFailure(error);
  } finally {
    byId("upload-submit").disabled = false;
  }
}

function setDefaultDates() {
  const today = schoolToday(state.session.viewer.tenant.timezone);
  const form = byId("upload-form");
  form.elements.coversFrom.value = addDays(today, -1);
  form.elements.coversTo.value = today;
  form.elements.coversFrom.max = today;
  form.elements.coversTo.max = today;
}

// ---- live updates ------------------------------------------------------------------------

function connectLive() {
  const connection = new LiveConnection({
    url: socketUrl(),
    token: state.session.token,
    onStatus: (status) => {
      const was = state.live;
      state.live = status;
      if (status === "live") {
        // Marks made while the socket was down are not replayed: read everything again (the
        // first connection needs no second read, unless the API had not answered).
        if (state.wasLive || !state.online) scheduleRefresh();
        state.wasLive = true;
        state.firstPush = true;
      }
      // Down: find out whether the API itself is reachable (else the page goes offline).
      if (status === "down" && was === "live") scheduleRefresh();
      renderConnection();
    },
    onForbidden: () => logout("Your session has ended: please sign in again."),
  });
  const error = (errors) => showError(`Live updates stopped: ${errors[0]?.message ?? "refused"}`);
  connection.subscribe(queries.DASHBOARD_UPDATED, {}, { next: dashboardPushed, error });
  connection.subscribe(queries.NOTIFICATION_RECEIVED, {}, { next: notificationPushed, error });
  connection.start();
  state.connection = connection;
}

function dashboardPushed({ data }) {
  // The first push of a connection is the dashboard as it is, read anyway on (re)connecting.
  const first = state.firstPush;
  state.firstPush = false;
  const dashboard = data?.dashboardUpdated;
  if (!dashboard || !state.snapshot) return;
  const shown = state.snapshot.data.studentDashboard;
  const marksChanged = !first && COUNT_FIELDS.some((field) => shown[field] !== dashboard[field]);
  state.snapshot.data.studentDashboard = dashboard;
  state.snapshot = saveSnapshot(state.session.viewer.id, state.snapshot.data);
  renderDashboard(dashboard);
  renderFreshness();
  if (marksChanged) {
    flash(byId("rate-value"));
    announce(`Your attendance was updated: ${percent(dashboard.attendanceRate)}.`);
    scheduleRefresh();
  }
}

function notificationPushed({ data }) {
  const notification = data?.notificationReceived;
  if (!notification || !state.snapshot) return;
  const snapshot = state.snapshot.data;
  snapshot.notifications.edges = [{ node: notification }, ...snapshot.notifications.edges].slice(0, 10);
  snapshot.notifications.totalCount += 1;
  if (!notification.read) snapshot.unread.totalCount += 1;
  state.snapshot = saveSnapshot(state.session.viewer.id, snapshot);
  renderNotifications(snapshot.notifications, snapshot.unread.totalCount);
  announce(`New notification: ${notification.title}`);
  // A review changed a certificate's status.
  if (notification.type === "FILE_APPROVED" || notification.type === "FILE_REJECTED") scheduleRefresh();
}

// ---- session -----------------------------------------------------------------------------

function showLogin(message) {
  byId("offline-banner").hidden = true;
  byId("stale-banner").hidden = true;
  showLoginCard("dashboard-view", message);
}

function start(session) {
  state.session = session;
  byId("login-view").hidden = true;
  byId("dashboard-view").hidden = false;
  byId("session").hidden = false;
  renderViewer(session.viewer);
  setDefaultDates();
  state.snapshot = loadSnapshot(session.viewer.id);
  if (state.snapshot) render(state.snapshot.data);
  setOnline(navigator.onLine);
  if (navigator.onLine) refresh();
  connectLive();
}

function logout(message) {
  state.connection?.close();
  state.connection = null;
  state.wasLive = false;
  state.refreshAgain = false;
  clearTimeout(state.refreshTimer);
  state.session = null;
  state.snapshot = null;
  state.browsedWeek = null;
  forget();
  showLogin(message);
}

// ---- start -------------------------------------------------------------------------------

function main() {
  byId("login-form").addEventListener(
    "submit",
    loginHandler({
      accepts: (user) => Boolean(user.student),
      refusal: "This page shows a student's own attendance: teachers take the register at /teacher.",
      sessionKey: SESSIONS.student,
      showLogin,
      start,
    }),
  );
  byId("logout").addEventListener("click", () => logout());
  byId("mark-all-read").addEventListener("click", markAllRead);
  byId("week-previous").addEventListener("click", () => browseWeeks(-1));
  byId("week-next").addEventListener("click", () => browseWeeks(1));
  byId("week-current").addEventListener("click", () => showWeek(currentWeek()));
  byId("upload-form").addEventListener("submit", uploadCertificate);
  byId("preferences-form").addEventListener("change", changePreference);
  window.addEventListener("offline", () => {
    if (state.session) setOnline(false);
  });
  window.addEventListener("online", () => {
    if (!state.session) return;
    refresh();
    state.connection?.retryNow();
  });
  setInterval(() => {
    if (state.session) renderFreshness();
  }, CLOCK_TICK_MS);
  if ("serviceWorker" in navigator) {
    // Keeps the page itself available offline; the data comes from localStorage.
    navigator.serviceWorker.register("/sw.js").catch(() => {});
  }
  if (setUpPasswordForms((message) => (state.session ? logout(message) : showLogin(message)))) return;
  const session = loadSession();
  if (session) start(session);
  else showLogin();
}

main();
