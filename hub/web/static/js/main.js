// Entry point: session check, sign-in and sign-out, and the window.hubConsole hooks.
// The page is the same for everybody: GET /api/v1/session decides between the sign-in form and
// the console.

import { api } from "./api.js";
import { ConsoleApp } from "./console.js";

const testMode = new URLSearchParams(location.search).get("test") === "1";
const LOGIN_NOTICE_KEY = "hubConsole.loginNotice";
const $ = (id) => document.getElementById(id);

let app = null;
let lockedUntil = 0;
let lockTimer = null;
let bootTimer = null;

/** Hooks for automation and tests; names are part of the console's contract. */
window.hubConsole = {
  get ready() { return !!(app && app.ready); },
  get lastSeq() { return app && app.link ? app.link.lastSeq : -1; },
  get link() { return app && app.link ? app.link.state : "down"; },
  get audience() { return app ? app.audience ?? null : null; },
  get identity() { return app ? app.identity ?? null : null; },
  get applyTimes() { return app ? app.applyTimes : []; },
  get applySyncTimes() { return app ? app.applySyncTimes : []; },
  get testMode() { return testMode; },
  get map() { return app ? app.map : null; }, // the Leaflet map, for automation (view changes)
  trackIds() { return app ? app.trackIds() : []; },
  allTrackIds() { return app ? app.allTrackIds() : []; },
  select(id) { return app ? app.select(id) : false; },
};

function setLoginMessage(text) {
  const el = $("login-message");
  el.textContent = text || "";
  el.hidden = !text;
}

function showLogin(message) {
  $("console-view").hidden = true;
  $("login-view").hidden = false;
  setLoginMessage(message);
  $("login-identity").focus();
}

function openConsole(session) {
  if (app) return;
  clearTimeout(bootTimer);
  $("login-view").hidden = true;
  $("console-view").hidden = false;
  app = new ConsoleApp({
    session: session || {},
    testMode,
    onSessionLost: () => {
      try { sessionStorage.setItem(LOGIN_NOTICE_KEY, "Your session has ended: sign in again."); } catch (_e) { /* ignore */ }
      location.reload();
    },
  });
  app.start();
}

function lockLogin(seconds) {
  const button = $("login-submit");
  lockedUntil = Date.now() + seconds * 1000;
  clearInterval(lockTimer);
  const update = () => {
    const left = Math.ceil((lockedUntil - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(lockTimer);
      button.disabled = false;
      setLoginMessage("You can try again now.");
      return;
    }
    button.disabled = true;
    setLoginMessage(`Too many attempts: try again in ${left} s.`);
  };
  update();
  lockTimer = setInterval(update, 1000);
}

async function onSubmit(e) {
  e.preventDefault();
  if (Date.now() < lockedUntil) return;
  const button = $("login-submit");
  const password = $("login-password");
  button.disabled = true;
  setLoginMessage("");
  try {
    let session = await api.login($("login-identity").value.trim(), password.value);
    if (!session || !session.audience) session = await api.session();
    password.value = "";
    button.disabled = false;
    openConsole(session);
  } catch (err) {
    password.value = "";
    button.disabled = false;
    if (err.status === 401) setLoginMessage("Identity or password not accepted.");
    else if (err.status === 429) lockLogin(err.retryAfterS ?? 30);
    else if (err.status === 0) setLoginMessage("The hub cannot be reached.");
    else setLoginMessage(`Sign-in failed (HTTP ${err.status}).`);
    password.focus();
  }
}

async function onLogout() {
  $("logout").disabled = true;
  if (app) app.stop();
  try {
    await api.logout();
  } catch (err) {
    console.warn("logout", err.message);
  }
  location.reload();
}

async function boot() {
  try {
    openConsole(await api.session());
  } catch (err) {
    if (app) return;
    if (err.status === 401) {
      let notice = "";
      try {
        notice = sessionStorage.getItem(LOGIN_NOTICE_KEY) || "";
        sessionStorage.removeItem(LOGIN_NOTICE_KEY);
      } catch (_e) { /* ignore */ }
      showLogin(notice);
    } else {
      showLogin(err.status === 0 ? "The hub cannot be reached: retrying…" : `The hub answered HTTP ${err.status}: retrying…`);
      bootTimer = setTimeout(boot, 3000);
    }
  }
}

if (!window.L || !window.ms || !window.topojson || !window.mgrs) {
  document.body.textContent = "The console's libraries did not load (see /static/vendor/).";
} else {
  $("login-form").addEventListener("submit", onSubmit);
  $("logout").addEventListener("click", onLogout);
  boot();
}
