// Setting a password by emailed link: asking for the link from the sign-in card, and choosing
// the password when the page opens as /#reset=<token>. The token rides in the fragment, which
// the browser never sends to a server; it is dropped from the address bar once read.

import { describeFailure, request } from "./api.js";
import { byId } from "./dom.js";
import * as queries from "./queries.js";

const TOKEN = /^#reset=([A-Za-z0-9_-]{16,200})$/;
const MIN_LENGTH = 12;

export function resetToken(hash) {
  const match = TOKEN.exec(hash);
  return match ? match[1] : null;
}

function say(id, message, ok) {
  const element = byId(id);
  element.hidden = !message;
  element.textContent = message ?? "";
  element.classList.toggle("form-ok", Boolean(ok));
  element.classList.toggle("form-error", !ok);
}

// Uses the sign-in card's school code and email: one place to type them.
async function requestLink() {
  const tenant = byId("login-tenant").value.trim();
  const email = byId("login-email").value.trim();
  if (!tenant || !email) {
    say("forgot-message", "Fill in your school code and email first.", false);
    return;
  }
  const submit = byId("forgot-submit");
  submit.disabled = true;
  try {
    await request(queries.REQUEST_PASSWORD_RESET, { tenant, email });
    say(
      "forgot-message",
      "If the school has an account with this email, a link to set its password is on its way. It works once, within the hour.",
      true,
    );
  } catch (failure) {
    say("forgot-message", describeFailure(failure), false);
  } finally {
    submit.disabled = false;
  }
}

async function choosePassword(event, token, done) {
  event.preventDefault();
  const form = event.target;
  const password = form.elements.password.value;
  if (password.length < MIN_LENGTH) {
    say("reset-message", `Choose at least ${MIN_LENGTH} characters.`, false);
    return;
  }
  if (password !== form.elements.confirm.value) {
    say("reset-message", "The two passwords differ.", false);
    return;
  }
  const submit = byId("reset-submit");
  submit.disabled = true;
  try {
    await request(queries.RESET_PASSWORD, { token, newPassword: password });
    form.reset();
    done("Your password is set: sign in with it.");
  } catch (failure) {
    say("reset-message", describeFailure(failure), false);
  } finally {
    submit.disabled = false;
  }
}

// The forms' behaviour. A reset link opens the password form, whether the page loads with it
// or is already open (a link followed in the same tab only changes the fragment); once the
// password is set, or the form is left, ``finish(message)`` takes over: every session of the
// account has ended, so the page signs out. Returns whether the page opened with a link.
export function setUpPasswordForms(finish) {
  byId("forgot-submit").addEventListener("click", requestLink);
  const view = byId("reset-view");
  let token = null;
  const close = (message) => {
    view.hidden = true;
    finish(message);
  };
  byId("reset-form").addEventListener("submit", (event) => choosePassword(event, token, close));
  byId("reset-cancel").addEventListener("click", () => close());
  const open = () => {
    token = resetToken(window.location.hash);
    if (token === null) return false;
    history.replaceState(null, "", window.location.pathname + window.location.search);
    for (const other of document.querySelectorAll("main > section")) other.hidden = other !== view;
    byId("session").hidden = true;
    byId("reset-message").hidden = true;
    byId("reset-form").reset();
    byId("reset-password").focus();
    return true;
  };
  window.addEventListener("hashchange", open);
  return open();
}
