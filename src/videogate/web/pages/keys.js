// Keys and groups (operators): create (secret shown once), revoke, top up, set limits,
// balances and each key's ledger.

import { admin } from "../api.js";
import { el, clear, fmtMoney, fmtTime, errorBox, announce, copyText, poller } from "../ui.js";
import { ledgerTable } from "./usage.js";

function intOrNull(value) {
  const v = String(value).trim();
  return v === "" ? null : Number(v);
}

export default async function keysPage(main) {
  main.append(el("h1", {}, "Keys and groups"));
  const groups = ((await admin.get("/admin/groups")) || {}).data || [];

  // Create ------------------------------------------------------------------------------
  const name = el("input", { id: "key-name", autocomplete: "off" });
  const group = el("select", { id: "key-group" }, groups.map((g) => el("option", { value: g.name }, g.name)));
  const balance = el("input", { id: "key-balance", inputmode: "decimal", placeholder: "unlimited" });
  const rpm = el("input", { id: "key-rpm", type: "number", min: "1", placeholder: "group's" });
  const maxUnfinished = el("input", { id: "key-max-unfinished", type: "number", min: "1", placeholder: "group's" });
  const createError = el("div", { class: "error", role: "alert" });
  const created = el("div", { "aria-live": "polite" });
  const createForm = el(
    "form",
    { class: "card", "aria-labelledby": "create-key-title" },
    el("h2", { id: "create-key-title" }, "Create a key"),
    el(
      "div",
      { class: "grid5" },
      el("div", { class: "field" }, el("label", { for: "key-name" }, "Key name"), name),
      el("div", { class: "field" }, el("label", { for: "key-group" }, "Group"), group),
      el("div", { class: "field" }, el("label", { for: "key-balance" }, "Starting balance"), balance),
      el("div", { class: "field" }, el("label", { for: "key-rpm" }, "Requests per minute"), rpm),
      el("div", { class: "field" }, el("label", { for: "key-max-unfinished" }, "Max unfinished tasks"), maxUnfinished),
    ),
    createError,
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Create key")),
    created,
  );
  createForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    createError.textContent = "";
    const body = { name: name.value.trim(), group: group.value };
    if (balance.value.trim()) body.balance = balance.value.trim();
    if (rpm.value) body.requests_per_minute = Number(rpm.value);
    if (maxUnfinished.value) body.max_unfinished_tasks = Number(maxUnfinished.value);
    try {
      const k = await admin.post("/admin/keys", body);
      const secret = el("code", { class: "secret" }, k.key);
      const copied = el("span", { role: "status", class: "muted" });
      clear(created).append(
        el(
          "div",
          { class: "notice" },
          el("p", {}, `Key ${k.name || k.id} created. Copy the secret now: it is not shown again.`),
          secret,
          " ",
          el("button", { type: "button", onclick: async () => (copied.textContent = (await copyText(k.key)) ? "Copied." : "Copy failed: select the key and copy it by hand.") }, "Copy key"),
          " ",
          el("button", { type: "button", class: "link", onclick: () => clear(created) }, "Hide key"),
          " ",
          copied,
        ),
      );
      announce(`Key ${k.name || k.id} created`);
      createForm.reset();
      await load();
    } catch (err) {
      createError.textContent = err.message;
    }
  });

  // List ----------------------------------------------------------------------------------
  const tbody = el("tbody", {});
  const panel = el("div", { "aria-live": "polite" });
  const listError = el("div", { role: "alert" });
  main.append(
    createForm,
    el(
      "section",
      { class: "card", "aria-labelledby": "keys-title" },
      el("h2", { id: "keys-title" }, "Keys"),
      listError,
      el(
        "div",
        { class: "scroll" },
        el(
          "table",
          { class: "table", "aria-label": "Keys" },
          el("thead", {}, el("tr", {}, ...["Key", "Group", "Balance", "Limits", "Created", "State", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
          tbody,
        ),
      ),
      panel,
    ),
    el(
      "section",
      { class: "card", "aria-labelledby": "groups-title" },
      el("h2", { id: "groups-title" }, "Groups"),
      el(
        "div",
        { class: "scroll" },
        el(
        "table",
        { class: "table", "aria-label": "Groups" },
        el("thead", {}, el("tr", {}, ...["Group", "Price multiplier", "Requests per minute", "Max unfinished tasks"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, groups.map((g) => el("tr", {}, el("th", { scope: "row" }, g.name), el("td", {}, g.price_multiplier), el("td", {}, g.requests_per_minute ?? "none"), el("td", {}, g.max_unfinished_tasks ?? "none")))),
        ),
      ),
    ),
  );

  function label(k) {
    return k.name || k.id;
  }

  async function act(fn) {
    listError.textContent = "";
    try {
      await fn();
      await load();
    } catch (err) {
      clear(listError).append(errorBox(err.message));
    }
  }

  function topupForm(k) {
    const amount = el("input", { id: "topup-amount", inputmode: "decimal", required: true });
    const note = el("input", { id: "topup-note" });
    const form = el(
      "form",
      { class: "card inset", "aria-label": `Top up ${label(k)}` },
      el("h3", {}, `Top up ${label(k)}`),
      el("div", { class: "field" }, el("label", { for: "topup-amount" }, "Amount"), amount),
      el("div", { class: "field" }, el("label", { for: "topup-note" }, "Note"), note),
      el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Add to balance"), el("button", { type: "button", onclick: () => clear(panel) }, "Close")),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      act(async () => {
        const r = await admin.post(`/admin/keys/${encodeURIComponent(k.id)}/topup`, { amount: amount.value.trim(), note: note.value.trim() || null });
        announce(`Balance of ${label(k)} is now ${r.balance}`);
        clear(panel);
      });
    });
    clear(panel).append(form);
    amount.focus();
  }

  function limitsForm(k) {
    const r = el("input", { id: "limits-rpm", type: "number", min: "1", value: k.requests_per_minute ?? "", placeholder: "group's" });
    const m = el("input", { id: "limits-max-unfinished", type: "number", min: "1", value: k.max_unfinished_tasks ?? "", placeholder: "group's" });
    const form = el(
      "form",
      { class: "card inset", "aria-label": `Limits of ${label(k)}` },
      el("h3", {}, `Limits of ${label(k)}`),
      el("div", { class: "field" }, el("label", { for: "limits-rpm" }, "Requests per minute limit"), r),
      el("div", { class: "field" }, el("label", { for: "limits-max-unfinished" }, "Unfinished tasks limit"), m),
      el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Save limits"), el("button", { type: "button", onclick: () => clear(panel) }, "Close")),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      act(async () => {
        await admin.patch(`/admin/keys/${encodeURIComponent(k.id)}`, { requests_per_minute: intOrNull(r.value), max_unfinished_tasks: intOrNull(m.value) });
        announce(`Limits of ${label(k)} saved`);
        clear(panel);
      });
    });
    clear(panel).append(form);
    r.focus();
  }

  async function showLedger(k) {
    const ledger = ledgerTable(`Ledger of ${label(k)}`);
    const body = await admin.get(`/admin/keys/${encodeURIComponent(k.id)}/ledger?limit=100`);
    ledger.add(body.data || []);
    clear(panel).append(
      el("div", { class: "card inset" }, el("h3", {}, `Ledger of ${label(k)}`), el("div", { class: "scroll" }, ledger.table), el("button", { type: "button", onclick: () => clear(panel) }, "Close")),
    );
  }

  async function load() {
    const body = await admin.get("/admin/keys");
    const keys = (body.data || []).slice().reverse(); // newest first
    clear(tbody);
    for (const k of keys) {
      const limits = `${k.requests_per_minute ?? "group"} rpm · ${k.max_unfinished_tasks ?? "group"} unfinished`;
      const actions = el("div", { class: "actions wrap" });
      if (!k.revoked) {
        actions.append(
          el("button", { type: "button", "aria-label": `Top up ${label(k)}`, onclick: () => topupForm(k) }, "Top up"),
          el("button", { type: "button", "aria-label": `Set limits of ${label(k)}`, onclick: () => limitsForm(k) }, "Limits"),
          el(
            "button",
            {
              type: "button",
              class: "danger",
              "aria-label": `Revoke ${label(k)}`,
              onclick: () => {
                if (window.confirm(`Revoke ${label(k)}? Clients using it are refused at once.`)) {
                  act(async () => {
                    await admin.post(`/admin/keys/${encodeURIComponent(k.id)}/revoke`);
                    announce(`${label(k)} revoked`);
                  });
                }
              },
            },
            "Revoke",
          ),
        );
      }
      actions.append(el("button", { type: "button", "aria-label": `Ledger of ${label(k)}`, onclick: () => act(() => showLedger(k)) }, "Ledger"));
      tbody.append(
        el(
          "tr",
          { dataset: { key: k.id } },
          el("th", { scope: "row" }, el("div", {}, k.name || "(no name)"), el("div", { class: "muted small" }, `${k.id} · ${k.prefix}…`)),
          el("td", {}, k.group),
          el("td", {}, k.balance === null ? "unlimited" : fmtMoney(k.balance)),
          el("td", { class: "small" }, limits),
          el("td", {}, fmtTime(k.created_at)),
          el("td", {}, el("span", { class: `badge ${k.revoked ? "s-failed" : "s-completed"}` }, k.revoked ? "revoked" : "active")),
          el("td", {}, actions),
        ),
      );
    }
  }
  await load();
  return poller(load, 10000);
}
