// Routes (operators): each route's model, provider, priority/weight and health, and a test.

import { admin } from "../api.js";
import { el, clear, poller, errorBox, announce } from "../ui.js";

export default async function routesPage(main) {
  main.append(el("h1", {}, "Routes"));
  const tbody = el("tbody", {});
  const results = new Map(); // route name → last test result text
  main.append(
    el(
      "div",
      { class: "scroll" },
      el(
        "table",
        { class: "table", "aria-label": "Routes" },
        el(
          "thead",
          {},
          el("tr", {}, ...["Route", "Model", "Provider", "Priority / weight", "Health", "Failures", "In flight", "Last error", "Test"].map((h) => el("th", { scope: "col" }, h))),
        ),
        tbody,
      ),
    ),
  );

  async function test(name, cell) {
    cell.textContent = "testing…";
    try {
      const r = await admin.post(`/admin/routes/${encodeURIComponent(name)}/test`);
      const text = `${r.ok ? "ok" : "failed"} in ${r.latency_ms} ms: ${r.detail}`;
      results.set(name, text);
      cell.textContent = text;
      announce(`Route ${name}: ${text}`);
    } catch (err) {
      cell.textContent = err.message;
    }
  }

  async function load() {
    const body = await admin.get("/admin/routes");
    clear(tbody);
    for (const r of body.data || []) {
      const result = el("div", { class: "small", "aria-live": "polite" }, results.get(r.name) || "");
      const button = el("button", { type: "button", "aria-label": `Test route ${r.name}` }, "Test");
      button.addEventListener("click", () => test(r.name, result));
      const health = String(r.health ?? "");
      tbody.append(
        el(
          "tr",
          { dataset: { route: r.name } },
          el("th", { scope: "row" }, r.name),
          el("td", {}, r.model),
          el("td", {}, r.provider),
          el("td", {}, `${r.priority ?? 0} / ${r.weight ?? 1}`),
          el("td", {}, el("span", { class: `badge ${health === "ok" ? "s-completed" : "s-failed"}` }, health || "?")),
          el("td", {}, r.consecutive_failures ?? 0),
          el("td", {}, `${r.in_flight ?? 0} / ${r.max_in_flight ?? "∞"}`),
          el("td", { class: "small" }, r.last_error || "—"),
          el("td", {}, button, result),
        ),
      );
    }
    if (!tbody.children.length) tbody.append(el("tr", {}, el("td", { colspan: "9" }, "No routes configured.")));
  }
  try {
    await load();
  } catch (err) {
    main.append(errorBox(err.message));
  }
  return poller(load, 5000);
}
