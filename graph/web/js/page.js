// What both pages do alike: the sign-in card, the screen reader's announcements and the flash
// of a value that changed in place.

import { describeFailure, request } from "./api.js";
import { byId, setText } from "./dom.js";
import * as queries from "./queries.js";
import { saveSession } from "./store.js";

export function announce(message) {
  setText("announcer", message);
}

export function flash(element) {
  element.classList.remove("flash");
  // Restart the animation when two updates come close together.
  void element.offsetWidth;
  element.classList.add("flash");
}

// The sign-in card in place of the page's own view (its id), with `message` if any.
export function showLoginCard(view, message) {
  byId("session").hidden = true;
  byId(view).hidden = true;
  byId("login-view").hidden = false;
  setText("school-name", "");
  const error = byId("login-error");
  error.hidden = !message;
  error.textContent = message ?? "";
  byId("login-tenant").focus();
}

// The sign-in form's submit handler. A viewer the page is not for (`accepts` says no) is shown
// `refusal`; anyone else's session is kept under `sessionKey` and the page `start`s with it.
export function loginHandler({ accepts, refusal, sessionKey, showLogin, start }) {
  return async (event) => {
    event.preventDefault();
    const form = event.target;
    const error = byId("login-error");
    const submit = byId("login-submit");
    submit.disabled = true;
    error.hidden = true;
    try {
      const { login: signedIn } = await request(queries.LOGIN, {
        tenant: form.elements.tenant.value.trim(),
        email: form.elements.email.value.trim(),
        password: form.elements.password.value,
      });
      const { token, user } = signedIn;
      if (!accepts(user)) {
        showLogin(refusal);
        return;
      }
      form.reset();
      const session = { token, viewer: user };
      saveSession(session, sessionKey);
      start(session);
      byId("main").focus();
    } catch (failure) {
      error.hidden = false;
      error.textContent = describeFailure(failure);
    } finally {
      submit.disabled = false;
    }
  };
}
