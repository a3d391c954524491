// The console shell: sign-in, navigation (the part after "#" names the page), and the
// page lifecycle (each page may return a function that stops its polling).

import { session, whenRefused, checkKey, checkAdmin, localKey, ApiError } from "./api.js";
import { el, clear, announce, errorBox } from "./ui.js";
import generatePage from "./pages/generate.js";
import { tasksPage, taskDetailPage } from "./pages/tasks.js";
import galleryPage from "./pages/gallery.js";
import usagePage from "./pages/usage.js";
import overviewPage from "./pages/overview.js";
import keysPage from "./pages/keys.js";
import routesPage from "./pages/routes.js";
import webhooksPage from "./pages/webhooks.js";

const USER_PAGES = [
  ["generate", "Generate", generatePage],
  ["tasks", "Tasks", tasksPage],
  ["gallery", "Gallery", galleryPage],
  ["usage", "Usage", usagePage],
];
const ADMIN_PAGES = [
  ["overview", "Overview", overviewPage],
  ["keys", "Keys", keysPage],
  ["routes", "Routes", routesPage],
  ["webhooks", "Webhooks", webhooksPage],
];

let stopPage = null;
let signOutReason = "";

function pagesFor(s) {
  return [...(s.key ? USER_PAGES : []), ...(s.admin ? ADMIN_PAGES : [])];
}

function parseHash() {
  const raw = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  const [name, ...rest] = raw.split("/");
  return { name: name || "", arg: rest.join("/") || null };
}

function renderNav(s, current) {
  const nav = document.getElementById("nav");
  clear(nav);
  const who = document.getElementById("who");
  clear(who);
  if (!s.key && !s.admin) return;
  const list = el("ul", {});
  for (const [name, label] of pagesFor(s)) {
    const link = el("a", { href: `#/${name}` }, label);
    if (name === current) link.setAttribute("aria-current", "page");
    list.append(el("li", {}, link));
  }
  nav.append(list);
  const parts = [];
  if (s.account) parts.push(s.account.name ? `${s.account.name} (${s.account.prefix}…)` : `${s.account.prefix}…`);
  if (s.admin) parts.push("operator");
  who.append(
    el("span", { class: "muted" }, parts.join(" · ")),
    el("button", { type: "button", class: "link", onclick: () => signOut("You are signed out.") }, "Sign out"),
  );
}

export function signOut(message) {
  session.clear();
  signOutReason = message || "";
  if (location.hash !== "#/" && location.hash !== "") location.hash = "#/";
  else route();
}

whenRefused((err) => {
  signOut(`You were signed out: the server refused your credentials (${err.message}).`);
});

function signInPage(main) {
  const keyInput = el("input", { id: "signin-key", type: "password", autocomplete: "off", spellcheck: "false" });
  const adminInput = el("input", { id: "signin-admin", type: "password", autocomplete: "off", spellcheck: "false" });
  const status = el("div", { role: "alert", class: "error" });
  const submit = el("button", { type: "submit", class: "primary" }, "Sign in");
  const form = el(
    "form",
    { class: "card narrow", "aria-labelledby": "signin-title" },
    el("h1", { id: "signin-title" }, "Sign in"),
    el("p", { class: "muted" }, "Use an API key to generate and see your videos; operators add the admin token to manage keys, routes and webhooks."),
    el("div", { class: "field" }, el("label", { for: "signin-key" }, "API key"), keyInput),
    el("div", { class: "field" }, el("label", { for: "signin-admin" }, "Admin token"), adminInput),
    status,
    el("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "";
    const key = keyInput.value.trim();
    const token = adminInput.value.trim();
    if (!key && !token) {
      status.textContent = "Enter an API key, the admin token, or both.";
      return;
    }
    submit.disabled = true;
    try {
      await signIn(key, token);
    } catch (err) {
      status.textContent = err.message;
    } finally {
      submit.disabled = false;
    }
  });
  const children = [];
  if (signOutReason) children.push(el("p", { class: "notice", role: "status" }, signOutReason));
  children.push(form);
  if (["127.0.0.1", "localhost", "[::1]"].includes(location.hostname)) {
    const localStatus = el("div", { role: "alert", class: "error" });
    const button = el("button", { type: "button" }, "Sign in with the local key");
    button.addEventListener("click", async () => {
      localStatus.textContent = "";
      button.disabled = true;
      try {
        await signIn(await localKey(), "");
      } catch (err) {
        localStatus.textContent = err.message;
      } finally {
        button.disabled = false;
      }
    });
    children.push(
      el(
        "section",
        { class: "card narrow", "aria-labelledby": "local-title" },
        el("h2", { id: "local-title" }, "On this machine"),
        el("p", { class: "muted" }, "Use the local key that make run printed, without copying it."),
        button,
        localStatus,
      ),
    );
  }
  main.append(...children);
  keyInput.focus();
}

async function signIn(key, token) {
  const value = { key: null, admin: null, account: null };
  if (key) {
    try {
      value.account = await checkKey(key);
      value.key = key;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw new Error(`That API key was refused: ${err.message}`);
      throw err;
    }
  }
  if (token) {
    try {
      await checkAdmin(token);
      value.admin = token;
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        throw new Error(`That admin token was refused: ${err.message}`);
      }
      throw err;
    }
  }
  session.set(value);
  signOutReason = "";
  announce("Signed in.");
  const first = pagesFor(value)[0][0];
  if (location.hash === `#/${first}`) route();
  else location.hash = `#/${first}`;
}

async function route() {
  if (stopPage) {
    try {
      stopPage();
    } catch {
      /* a page that failed to stop must not block the next one */
    }
    stopPage = null;
  }
  const main = document.getElementById("main");
  clear(main);
  const s = session.get();
  const { name, arg } = parseHash();
  if (!s.key && !s.admin) {
    renderNav(s, "");
    document.title = "Sign in · videogate";
    signInPage(main);
    return;
  }
  const pages = pagesFor(s);
  let entry = pages.find(([n]) => n === name);
  if (!entry) {
    entry = pages[0];
    history.replaceState(null, "", `#/${entry[0]}`);
  }
  const [pageName, label, render] = entry;
  renderNav(s, pageName);
  document.title = `${label} · videogate`;
  try {
    const fn = pageName === "tasks" && arg ? taskDetailPage : render;
    const result = await fn(main, arg);
    if (typeof result === "function") stopPage = result;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return; // signed out already
    main.append(errorBox(`This page could not load: ${err.message}`));
  }
}

window.addEventListener("hashchange", () => {
  route();
  document.getElementById("main").focus({ preventScroll: true });
});
route();
