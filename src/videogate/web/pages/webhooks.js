// Webhooks (operators): delivery attempts with their outcome, and resending an event.

import { admin } from "../api.js";
import { el, clear, fmtTime, poller } from "../ui.js";

export default async function webhooksPage(main) {
  main.append(el("h1", {}, "Webhooks"));
  const taskFilter = el("input", { id: "webhooks-task", type: "search", placeholder: "a task id", autocomplete: "off" });
  const form = el(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter webhook attempts" },
    el("div", { class: "field grow" }, el("label", { for: "webhooks-task" }, "Task"), taskFilter),
    el("button", { type: "submit" }, "Show attempts"),
  );
  const tbody = el("tbody", {});
  const status = el("p", { role: "status", class: "muted" });
  main.append(
    form,
    status,
    el(
      "div",
      { class: "scroll" },
      el(
        "table",
        { class: "table", "aria-label": "Webhook attempts" },
        el("thead", {}, el("tr", {}, ...["When", "Task", "Event", "State", "URL", "Result", "Time", "Resend"].map((h) => el("th", { scope: "col" }, h)))),
        tbody,
      ),
    ),
  );

  async function resend(eventId) {
    const r = await admin.post(`/admin/webhooks/events/${eventId}/resend`);
    status.textContent = `Event ${r.id} (${r.status}) of ${r.task_id} queued for delivery.`;
    await load();
  }

  async function load() {
    const p = new URLSearchParams({ limit: "100" });
    if (taskFilter.value.trim()) p.set("task", taskFilter.value.trim());
    const body = await admin.get(`/admin/webhooks?${p}`);
    clear(tbody);
    const seen = new Set();
    for (const a of body.data || []) {
      // one resend button per event: on its newest attempt
      const first = !seen.has(a.event_id);
      seen.add(a.event_id);
      const result = a.status_code ? `HTTP ${a.status_code}` : a.error || "—";
      const ok = a.status_code >= 200 && a.status_code < 300;
      tbody.append(
        el(
          "tr",
          {},
          el("td", {}, fmtTime(a.created_at)),
          el("td", {}, el("a", { href: `#/webhooks`, onclick: (e) => { e.preventDefault(); taskFilter.value = a.task_id; load(); } }, a.task_id)),
          el("td", {}, `${a.event_id} · ${a.event_status}`),
          el("td", {}, a.event_state),
          el("td", { class: "small url" }, a.url),
          el("td", {}, el("span", { class: `badge ${ok ? "s-completed" : "s-failed"}` }, result)),
          el("td", {}, a.duration_ms === null || a.duration_ms === undefined ? "—" : `${a.duration_ms} ms`),
          el("td", {}, first ? el("button", { type: "button", "aria-label": `Resend event ${a.event_id}`, onclick: () => resend(a.event_id) }, "Resend") : ""),
        ),
      );
    }
    if (!tbody.children.length) tbody.append(el("tr", {}, el("td", { colspan: "8" }, "No delivery attempts yet.")));
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    load();
  });
  await load();
  return poller(load, 5000);
}
