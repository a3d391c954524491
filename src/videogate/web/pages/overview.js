// Overview (operators): tasks per status now, the last 24 h, the queue, time to complete.

import { admin } from "../api.js";
import { el, clear, poller } from "../ui.js";
import { barChart, legend } from "../chart.js";

function stat(label, value) {
  return el("div", { class: "stat" }, el("div", { class: "stat-value" }, value ?? "—"), el("div", { class: "stat-label" }, label));
}

function secs(v) {
  return v === null || v === undefined ? "—" : `${Number(v).toFixed(1)} s`;
}

export default async function overviewPage(main) {
  main.append(el("h1", {}, "Overview"));
  const body = el("div", {});
  main.append(body);
  async function load() {
    const o = await admin.get("/admin/overview");
    const by = o.tasks_by_status || {};
    const last = o.last_24h || {};
    const hours = last.per_hour || [];
    const ttc = o.time_to_complete_seconds || {};
    const labels = hours.map((h) => new Date(h.hour * 1000).toISOString().slice(5, 13).replace("T", " ") + "h");
    clear(body).append(
      el(
        "section",
        { class: "stats", "aria-label": "Now" },
        stat("Queue depth", o.queue_depth),
        stat("In progress", o.in_progress),
        stat("Completed, 24 h", last.succeeded),
        stat("Failed, 24 h", last.failed),
        stat("Time to complete p50", secs(ttc.p50)),
        stat("Time to complete p95", secs(ttc.p95)),
      ),
      el(
        "figure",
        { class: "card", "aria-labelledby": "chart-24h" },
        el("figcaption", { id: "chart-24h" }, "Completions and failures per hour, last 24 h"),
        barChart({
          title: "Completions and failures per hour",
          labels,
          series: [
            { name: "completed", values: hours.map((h) => h.succeeded || 0) },
            { name: "failed", values: hours.map((h) => h.failed || 0) },
          ],
        }),
        legend(["completed", "failed"]),
      ),
      el(
        "section",
        { class: "card", "aria-labelledby": "by-status" },
        el("h2", { id: "by-status" }, "Tasks per status"),
        el(
          "table",
          { class: "table", "aria-label": "Tasks per status" },
          el("tbody", {}, Object.entries(by).map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, v)))),
        ),
      ),
    );
  }
  await load();
  return poller(load, 5000);
}
