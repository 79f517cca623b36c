// The teacher's register: sign in, choose a class, subject, date and period, tap students to
// change their status, submit. Other teachers' marks of the chosen class arrive over the
// websocket and show in place.

import { GraphQLFailure, describeFailure, request } from "./api.js";
import { byId, h, setText } from "./dom.js";
import { STATUS_CYCLE, STATUS_LABELS, nextStatus, schoolToday, shortDate, weekday } from "./format.js";
import { LiveConnection, socketUrl } from "./live.js";
import { announce, flash, loginHandler, showLoginCard } from "./page.js";
import * as queries from "./queries.js";
import { SESSIONS, forget, loadSession } from "./store.js";

// The roles markAttendance accepts; anyone else is sent elsewhere at sign-in.
const MARKERS = new Set(["TEACHER", "ADMIN"]);
const ENDED = "Your session has ended: please sign in again.";
// An error's extensions.field, as the choice controls name it.
const CHOICE_FIELDS = {
  classroomId: "register-class",
  subjectId: "register-subject",
  date: "register-date",
  period: "register-period",
};

// What the page holds of a session, as it is before sign-in and again after logout.
function signedOut() {
  return {
    session: null,
    connection: null,
    live: "connecting",
    // Whether the websocket was ever acknowledged: a later acknowledgement is a reconnection.
    wasLive: false,
    // The chosen class with its subjects and students, once read; its subscription's id.
    classroom: null,
    subscription: null,
    // The statuses shown for the chosen period, and their buttons, by student id.
    statuses: new Map(),
    buttons: new Map(),
    // Marks seen in this session (submitted here or pushed), by periodKey, then student.
    known: new Map(),
  };
}

const state = {
  ...signedOut(),
  // Counts class and period reads: an answer that a later choice overtook is dropped.
  classRequests: 0,
  periodRequests: 0,
  // Students tapped since the period was shown: a period read that lands later keeps them.
  tapped: new Set(),
  submitting: false,
};

// ---- the choice ----------------------------------------------------------------------------

function currentChoice() {
  return {
    classroomId: byId("register-class").value,
    subjectId: byId("register-subject").value,
    date: byId("register-date").value,
    period: Number(byId("register-period").value),
  };
}

function periodKey({ classroomId, date, period }) {
  return `${classroomId}|${date}|${period}`;
}

function options(select, items, chosen) {
  select.replaceChildren(...items.map(({ value, label }) => h("option", { value, text: label })));
  if (items.some((item) => item.value === chosen)) select.value = chosen;
}

function setPeriods(periodsPerDay) {
  const periods = Array.from({ length: periodsPerDay }, (_, index) => String(index + 1));
  options(
    byId("register-period"),
    periods.map((period) => ({ value: period, label: `Period ${period}` })),
    byId("register-period").value,
  );
}

function setToday() {
  const today = schoolToday(state.session.viewer.tenant.timezone);
  const input = byId("register-date");
  input.max = today; // the API refuses marks for days to come
  input.value = today;
}

function dayLabel(isoDate) {
  return `${weekday(isoDate)} ${shortDate(isoDate)}`;
}

// ---- reading classes -------------------------------------------------------------------------

async function allClasses(token) {
  const classes = [];
  let after = null;
  do {
    const { classrooms } = await request(queries.REGISTER_CLASSES, { after }, { token });
    classes.push(...classrooms.edges.map((edge) => edge.node));
    after = classrooms.pageInfo.hasNextPage ? classrooms.pageInfo.endCursor : null;
  } while (after);
  return classes;
}

// The class with every student, a page of a hundred at a time.
async function wholeClass(id, token) {
  let found = null;
  let after = null;
  do {
    const { classroom } = await request(queries.REGISTER_CLASS, { id, after }, { token });
    if (!classroom) throw new Error("This class no longer exists.");
    const page = classroom.students;
    if (!found) found = { id: classroom.id, name: classroom.name, subjects: classroom.subjects, students: [] };
    found.students.push(...page.edges.map((edge) => edge.node));
    after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
  } while (after);
  return found;
}

async function showClasses() {
  const session = state.session;
  try {
    const classes = await allClasses(session.token);
    if (state.session !== session) return;
    if (!classes.length) {
      byId("roster").replaceChildren(h("li", { class: "empty-state", text: "You have no class to mark yet." }));
      renderSubmit();
      return;
    }
    options(
      byId("register-class"),
      classes.map((classroom) => ({ value: classroom.id, label: classroom.name })),
      null,
    );
    await chooseClass();
  } catch (error) {
    if (state.session === session) handleFailure(error);
  }
}

async function chooseClass() {
  const id = byId("register-class").value;
  const ticket = ++state.classRequests;
  const session = state.session;
  state.classroom = null;
  options(byId("register-subject"), [], null);
  renderRoster();
  follow(id);
  try {
    const classroom = await wholeClass(id, session.token);
    if (state.session !== session || ticket !== state.classRequests) return;
    state.classroom = classroom;
    options(
      byId("register-subject"),
      classroom.subjects.map((subject) => ({ value: subject.id, label: subject.name })),
      null,
    );
    showPeriod();
  } catch (error) {
    if (state.session === session && ticket === state.classRequests) handleFailure(error);
  }
}

// The chosen period as this page last saw it, everyone else present; then as the API has it,
// so that taking a register again starts from its marks, not from all present.
function showPeriod() {
  const choice = currentChoice();
  const seen = state.known.get(periodKey(choice)) ?? new Map();
  state.statuses = new Map(
    (state.classroom?.students ?? []).map((student) => [student.id, seen.get(student.id) ?? "PRESENT"]),
  );
  state.tapped = new Set();
  clearInvalid();
  setStatusLine("", "");
  renderRoster();
  if (state.classroom && choice.date && choice.period) readPeriod(choice);
}

// ``fresh``: the read is newer than anything this page saw (after a reconnection).
async function readPeriod(choice, fresh = false) {
  const ticket = ++state.periodRequests;
  const session = state.session;
  try {
    const data = await request(
      queries.REGISTER_PERIOD,
      { classroomId: choice.classroomId, date: choice.date, period: choice.period },
      { token: session.token },
    );
    if (state.session !== session || ticket !== state.periodRequests) return;
    const key = periodKey(choice);
    if (!state.known.has(key)) state.known.set(key, new Map());
    const known = state.known.get(key);
    for (const { studentId, status } of data.periodAttendance) {
      // Otherwise a push or a submission seen meanwhile is newer than this read.
      if (fresh || !known.has(studentId)) known.set(studentId, status);
      if (!state.statuses.has(studentId) || state.tapped.has(studentId)) continue;
      state.statuses.set(studentId, known.get(studentId));
      showStatus(studentId);
    }
    renderSummary();
    if (data.periodAttendance.length > 0) setStatusLine("Already marked: these are its marks.", "");
  } catch (error) {
    if (state.session === session && ticket === state.periodRequests) handleFailure(error);
  }
}

// ---- rendering ---------------------------------------------------------------------------------

function renderViewer(viewer) {
  setText("school-name", viewer.tenant.name);
  setText("viewer-email", viewer.email);
  const admin = viewer.role === "ADMIN";
  setText("register-class-label", admin ? "Class" : "My classes");
  setText("register-meta", `${admin ? "Admin" : "Teacher"} · ${viewer.tenant.name}`);
}

function renderConnection() {
  const live = state.live === "live";
  byId("connection").dataset.state = live ? "live" : "connecting";
  setText("connection-text", live ? "Live" : state.wasLive ? "Reconnecting…" : "Connecting…");
}

function renderRoster() {
  const classroom = state.classroom;
  state.buttons = new Map();
  let items;
  if (!classroom) {
    items = [h("li", { class: "empty-state", text: "Loading the class…" })];
  } else if (!classroom.students.length) {
    items = [h("li", { class: "empty-state", text: "This class has no students." })];
  } else {
    items = classroom.students.map((student) => h("li", null, studentButton(student)));
  }
  byId("roster").replaceChildren(...items);
  setText("roster-title", classroom ? `${classroom.name} · ${classroom.students.length} students` : "Students");
  renderSummary();
  renderSubmit();
}

function studentButton(student) {
  const button = h(
    "button",
    { type: "button", class: "mark", "data-student-id": student.id, onclick: () => cycle(student.id) },
    h("span", { class: "mark-name", text: student.name }),
    h("span", { class: "status" }),
  );
  state.buttons.set(student.id, button);
  showStatus(student.id);
  return button;
}

function showStatus(studentId) {
  const button = state.buttons.get(studentId);
  if (!button) return;
  const status = state.statuses.get(studentId);
  button.dataset.status = status;
  const badge = button.querySelector(".status");
  badge.className = `status status-${status.toLowerCase()}`;
  badge.textContent = STATUS_LABELS[status];
}

// "9 present · 1 absent · 0 sick · 0 leave"
function countsText(statuses) {
  const counts = Object.fromEntries(STATUS_CYCLE.map((status) => [status, 0]));
  for (const status of statuses) counts[status] += 1;
  return STATUS_CYCLE.map((status) => `${counts[status]} ${STATUS_LABELS[status].toLowerCase()}`).join(" · ");
}

function renderSummary() {
  setText("roster-summary", state.statuses.size ? countsText(state.statuses.values()) : "");
}

function renderSubmit() {
  const choice = currentChoice();
  byId("register-submit").disabled =
    state.submitting || !state.classroom?.students.length || !choice.subjectId || !choice.date;
}

function setStatusLine(message, tone) {
  const line = byId("register-status");
  line.textContent = message;
  line.dataset.tone = tone;
}

function showError(message) {
  const element = byId("page-error");
  element.hidden = !message;
  element.textContent = message ?? "";
}

function clearInvalid() {
  for (const element of document.querySelectorAll("[aria-invalid]")) element.removeAttribute("aria-invalid");
}

// The control an error's extensions.field names: a choice, or a student (marks[3].studentId).
function markInvalid(field) {
  let element = CHOICE_FIELDS[field] ? byId(CHOICE_FIELDS[field]) : null;
  const student = /^marks\[(\d+)\]/.exec(field ?? "");
  if (student) element = state.buttons.get(state.classroom?.students[Number(student[1])]?.id);
  if (!element) return;
  element.setAttribute("aria-invalid", "true");
  element.focus();
}

// ---- actions -----------------------------------------------------------------------------------

function cycle(studentId) {
  state.tapped.add(studentId);
  state.statuses.set(studentId, nextStatus(state.statuses.get(studentId)));
  showStatus(studentId);
  renderSummary();
  setStatusLine("Not submitted yet.", "");
}

function allPresent() {
  for (const studentId of state.statuses.keys()) {
    state.tapped.add(studentId);
    state.statuses.set(studentId, "PRESENT");
    showStatus(studentId);
  }
  renderSummary();
  setStatusLine("Not submitted yet.", "");
}

async function submit() {
  const choice = currentChoice();
  const classroom = state.classroom;
  const session = state.session;
  const marks = classroom.students.map((student) => ({ studentId: student.id, status: state.statuses.get(student.id) }));
  state.submitting = true;
  renderSubmit();
  clearInvalid();
  setStatusLine("Saving…", "");
  try {
    const data = await request(queries.MARK_ATTENDANCE, { input: { ...choice, marks } }, { token: session.token });
    if (state.session !== session) return;
    const written = new Map(data.markAttendance.records.map((record) => [record.studentId, record.status]));
    state.known.set(periodKey(choice), written);
    const message =
      `Saved: ${classroom.name}, period ${choice.period} on ${dayLabel(choice.date)}: ` +
      `${countsText(written.values())}.`;
    setStatusLine(message, "success");
    announce(message);
  } catch (error) {
    if (state.session !== session) return;
    if (error instanceof GraphQLFailure && error.code === "UNAUTHENTICATED") {
      logout(ENDED);
      return;
    }
    setStatusLine(`Not saved: ${describeFailure(error)}`, "error");
    markInvalid(error.field);
  } finally {
    state.submitting = false;
    if (state.session === session) renderSubmit();
  }
}

function handleFailure(error) {
  if (error instanceof GraphQLFailure && error.code === "UNAUTHENTICATED") {
    logout(ENDED);
    return;
  }
  showError(describeFailure(error));
}

// ---- live updates --------------------------------------------------------------------------

function connectLive() {
  const connection = new LiveConnection({
    url: socketUrl(),
    token: state.session.token,
    onStatus: (status) => {
      state.live = status;
      if (status === "live") {
        // Marks made while the socket was down are not replayed: the period is read again.
        byId("live-note").hidden = !state.wasLive;
        if (state.wasLive && state.classroom) readPeriod(currentChoice(), true);
        state.wasLive = true;
      }
      renderConnection();
    },
    onForbidden: () => logout(ENDED),
  });
  connection.start();
  state.connection = connection;
}

// One subscription, to the chosen class's marks.
function follow(classroomId) {
  const connection = state.connection;
  if (state.subscription) connection.unsubscribe(state.subscription);
  state.subscription = connection.subscribe(
    queries.ATTENDANCE_UPDATED,
    { classroomId },
    { next: marked, error: (errors) => showError(`Live updates stopped: ${errors[0]?.message ?? "refused"}`) },
  );
}

function marked({ data }) {
  const mark = data?.attendanceUpdated;
  if (!mark || !state.session) return;
  // This page's own marks are shown already, from the mutation's answer; echoing them could
  // undo a tap made since.
  if (mark.markedBy === state.session.viewer.id) return;
  const key = periodKey(mark);
  if (!state.known.has(key)) state.known.set(key, new Map());
  state.known.get(key).set(mark.studentId, mark.status);
  if (key !== periodKey(currentChoice()) || !state.statuses.has(mark.studentId)) return;
  state.statuses.set(mark.studentId, mark.status);
  showStatus(mark.studentId);
  renderSummary();
  const button = state.buttons.get(mark.studentId);
  flash(button);
  const name = button.querySelector(".mark-name").textContent;
  announce(`Another teacher marked ${name} ${STATUS_LABELS[mark.status].toLowerCase()} (${mark.subject.name}).`);
}

// ---- session -----------------------------------------------------------------------------------

function showLogin(message) {
  showLoginCard("register-view", message);
}

function start(session) {
  state.session = session;
  byId("login-view").hidden = true;
  byId("register-view").hidden = false;
  byId("session").hidden = false;
  showError(null);
  renderViewer(session.viewer);
  setPeriods(session.viewer.tenant.periodsPerDay);
  setToday();
  renderConnection();
  connectLive();
  showClasses();
}

function logout(message) {
  state.connection?.close();
  Object.assign(state, signedOut());
  state.classRequests += 1; // a class read still in flight is dropped
  byId("register-class").replaceChildren();
  byId("register-subject").replaceChildren();
  byId("roster").replaceChildren();
  byId("live-note").hidden = true;
  setStatusLine("", "");
  forget();
  showLogin(message);
}

// ---- start -------------------------------------------------------------------------------------

function main() {
  byId("login-form").addEventListener(
    "submit",
    loginHandler({
      accepts: (user) => MARKERS.has(user.role),
      refusal: "Only teachers and admins take the register: students see their attendance at /.",
      sessionKey: SESSIONS.teacher,
      showLogin,
      start,
    }),
  );
  byId("logout").addEventListener("click", () => logout());
  byId("register-choice").addEventListener("submit", (event) => event.preventDefault());
  byId("register-choice").addEventListener("change", (event) => {
    if (event.target.id === "register-class") chooseClass();
    else if (event.target.id === "register-subject") renderSubmit();
    else showPeriod();
  });
  byId("all-present").addEventListener("click", allPresent);
  byId("register-submit").addEventListener("click", submit);
  const session = loadSession(SESSIONS.teacher);
  if (session) start(session);
  else showLogin();
}

main();
