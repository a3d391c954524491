// Usage: balance, spend and seconds per day and per model (charts and tables), and the
// key's ledger.

import { api } from "../api.js";
import { el, clear, fmtMoney, fmtTime, dl, poller } from "../ui.js";
import { barChart, legend } from "../chart.js";

export function usageCharts(usage) {
  const days = (usage && usage.data) || [];
  const models = (usage && usage.models) || [];
  const labels = days.map((d) => d.date);
  const per = (field) =>
    models.map((m) => ({ name: m, values: days.map((d) => Number(((d.models || {})[m] || {})[field] || 0)) }));
  const spend = per("amount");
  const seconds = per("seconds");
  const cur = usage.currency || "USD";
  return el(
    "div",
    { class: "charts" },
    el(
      "figure",
      { class: "card", "aria-labelledby": "chart-spend" },
      el("figcaption", { id: "chart-spend" }, `Spend per day (${cur})`),
      barChart({ title: "Spend per day", labels, series: spend, format: (v) => v.toFixed(2) }),
      legend(models),
    ),
    el(
      "figure",
      { class: "card", "aria-labelledby": "chart-seconds" },
      el("figcaption", { id: "chart-seconds" }, "Seconds of video per day"),
      barChart({ title: "Seconds of video per day", labels, series: seconds, format: (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)) }),
      legend(models),
    ),
  );
}

export function perModelTable(usage) {
  const rows = (usage && usage.per_model) || [];
  return el(
    "table",
    { class: "table", "aria-label": "Usage per model" },
    el("thead", {}, el("tr", {}, el("th", {}, "Model"), el("th", {}, "Tasks"), el("th", {}, "Seconds"), el("th", {}, "Spend"))),
    el(
      "tbody",
      {},
      rows.length
        ? rows.map((r) => el("tr", {}, el("td", {}, r.model), el("td", {}, r.tasks), el("td", {}, r.seconds), el("td", {}, fmtMoney(r.amount, usage.currency))))
        : el("tr", {}, el("td", { colspan: "4" }, "No tasks in this period.")),
    ),
  );
}

export function ledgerTable(label) {
  const body = el("tbody", {});
  const table = el(
    "table",
    { class: "table", "aria-label": label },
    el("thead", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "Kind"), el("th", {}, "Amount"), el("th", {}, "Task"), el("th", {}, "Note"))),
    body,
  );
  const add = (rows) => {
    for (const r of rows) {
      const link = r.task_id ? el("a", { href: `#/tasks/${encodeURIComponent(r.task_id)}` }, r.task_id) : "—";
      body.append(el("tr", {}, el("td", {}, fmtTime(r.created_at)), el("td", {}, r.kind), el("td", {}, fmtMoney(r.amount, r.currency)), el("td", {}, link), el("td", {}, r.note || "")));
    }
  };
  return { table, add, reset: () => clear(body) };
}

export default async function usagePage(main) {
  main.append(el("h1", {}, "Usage"));
  const account = el("section", { class: "card", "aria-label": "Balance" });
  const daysSelect = el("select", { id: "usage-days" }, ...[7, 30, 90].map((d) => el("option", { value: String(d), selected: d === 30 }, `last ${d} days`)));
  const charts = el("div", {});
  const ledger = ledgerTable("Ledger");
  const more = el("button", { type: "button" }, "Older ledger rows");
  main.append(
    account,
    el("div", { class: "field inline" }, el("label", { for: "usage-days" }, "Period"), daysSelect),
    charts,
    el("section", { class: "card", "aria-labelledby": "ledger-title" }, el("h2", { id: "ledger-title" }, "Ledger"), el("div", { class: "scroll" }, ledger.table), more),
  );
  let before = null;

  async function loadAccount() {
    const a = await api.get("/v1/account");
    clear(account).append(
      el("h2", {}, "Balance"),
      dl([
        ["Balance", a.balance === null ? "unlimited (no prepaid balance)" : fmtMoney(a.balance, a.currency)],
        ["Key", `${a.name || "(no name)"} · ${a.prefix}…`],
        ["Group", a.group],
        ["Unfinished tasks", a.unfinished_tasks],
      ]),
    );
  }
  async function loadUsage() {
    const usage = await api.get(`/v1/usage?days=${daysSelect.value}`);
    clear(charts).append(
      usageCharts(usage),
      el("section", { class: "card", "aria-labelledby": "per-model-title" }, el("h2", { id: "per-model-title" }, "Per model"), el("div", { class: "scroll" }, perModelTable(usage))),
    );
  }
  async function loadLedger(reset) {
    if (reset) {
      before = null;
      ledger.reset();
    }
    const p = new URLSearchParams({ limit: "50" });
    if (before) p.set("before", String(before));
    const body = await api.get(`/v1/ledger?${p}`);
    ledger.add(body.data || []);
    before = body.has_more ? body.last_id : null;
    more.hidden = !before;
  }
  daysSelect.addEventListener("change", () => loadUsage());
  more.addEventListener("click", () => loadLedger(false));
  await Promise.all([loadAccount(), loadUsage(), loadLedger(true)]);
  return poller(async () => {
    await Promise.all([loadAccount(), loadUsage()]);
  }, 10000);
}
