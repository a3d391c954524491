// Tasks: the key's tasks newest first, filtered and searched by the server, paged by
// cursor (so page 500 costs what page 1 costs); and one task's detail.

import { api } from "../api.js";
import { el, clear, fmtTime, fmtAgo, statusBadge, progressBar, taskCost, isFinished, errorBox, dl, poller, announce } from "../ui.js";

const PAGE_SIZE = 20;

function durationOf(t) {
  const s = t.seconds ?? t.duration;
  return s === undefined || s === null ? "—" : `${s} s`;
}

function preview(t) {
  if (t.thumbnail_url) return el("img", { src: t.thumbnail_url, alt: "", loading: "lazy", width: "96", height: "54" });
  return el("span", { class: "thumb-empty", "aria-hidden": "true" });
}

export async function tasksPage(main) {
  main.append(el("h1", {}, "Tasks"));
  const models = ((await api.get("/v1/models").catch(() => null)) || {}).data || [];
  const status = el(
    "select",
    { id: "tasks-status" },
    el("option", { value: "" }, "any status"),
    ...["queued", "in_progress", "completed", "failed"].map((s) => el("option", { value: s }, s.replace("_", " "))),
  );
  const model = el("select", { id: "tasks-model" }, el("option", { value: "" }, "any model"), ...models.map((m) => el("option", { value: m.id }, m.id)));
  const search = el("input", { id: "tasks-search", type: "search", placeholder: "prompt words or a task id", autocomplete: "off" });
  const filters = el(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter tasks" },
    el("div", { class: "field" }, el("label", { for: "tasks-status" }, "Status"), status),
    el("div", { class: "field" }, el("label", { for: "tasks-model" }, "Model"), model),
    el("div", { class: "field grow" }, el("label", { for: "tasks-search" }, "Search tasks"), search),
    el("button", { type: "submit" }, "Search"),
  );
  const list = el("ol", { class: "task-list", "aria-label": "Task list" });
  const newer = el("button", { type: "button" }, "Newer tasks");
  const older = el("button", { type: "button" }, "Older tasks");
  const pageInfo = el("span", { class: "muted", "aria-live": "polite" });
  const pager = el("nav", { class: "pager", "aria-label": "Pages of tasks" }, newer, pageInfo, older);
  main.append(filters, list, pager);

  // cursors[i] is the `after` of page i (null for the first page)
  let cursors = [null];
  let page = 0;
  let lastBody = null;

  function query() {
    const p = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (status.value) p.set("status", status.value);
    if (model.value) p.set("model", model.value);
    if (search.value.trim()) p.set("q", search.value.trim());
    if (cursors[page]) p.set("after", cursors[page]);
    return `/v1/videos?${p}`;
  }

  function row(t) {
    const when = el("time", { datetime: new Date((t.created_at || 0) * 1000).toISOString(), title: fmtTime(t.created_at) }, fmtAgo(t.created_at));
    const link = el("a", { href: `#/tasks/${encodeURIComponent(t.id)}`, "aria-label": `Open task ${t.id}` }, t.prompt ? t.prompt.slice(0, 80) : t.id);
    return el(
      "li",
      { class: "task-row", dataset: { id: t.id } },
      el("span", { class: "c-preview" }, preview(t)),
      el("span", { class: "c-main" }, link, el("span", { class: "muted small" }, `${t.id} · ${t.model}`)),
      el("span", { class: "c-time" }, when),
      el("span", { class: "c-status" }, statusBadge(t)),
      el("span", { class: "c-progress" }, progressBar(t, `Progress of ${t.id}`)),
      el("span", { class: "c-duration" }, durationOf(t)),
      el("span", { class: "c-cost" }, taskCost(t)),
    );
  }

  async function load(announceIt = false) {
    const body = await api.get(query());
    lastBody = body;
    const data = (body && body.data) || [];
    clear(list);
    if (!data.length) list.append(el("li", { class: "empty" }, page === 0 ? "No tasks match." : "No older tasks."));
    for (const t of data) list.append(row(t));
    cursors[page + 1] = body.has_more ? body.last_id : undefined;
    newer.disabled = page === 0;
    older.disabled = !body.has_more;
    pageInfo.textContent = `Page ${page + 1}`;
    if (announceIt) announce(`${data.length} tasks shown, page ${page + 1}`);
  }

  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    cursors = [null];
    page = 0;
    load(true);
  });
  for (const control of [status, model]) control.addEventListener("change", () => filters.requestSubmit());
  newer.addEventListener("click", () => {
    if (page > 0) {
      page -= 1;
      load(true);
    }
  });
  older.addEventListener("click", () => {
    if (cursors[page + 1]) {
      page += 1;
      load(true);
    }
  });
  await load();
  // Live: refresh the page shown while any of its tasks is unfinished, or on page 1.
  return poller(async () => {
    const data = (lastBody && lastBody.data) || [];
    if (page === 0 || data.some((t) => !isFinished(t.status))) await load();
  }, 3000);
}

export async function taskDetailPage(main, id) {
  const back = el("p", {}, el("a", { href: "#/tasks" }, "← All tasks"));
  const heading = el("h1", {}, `Task ${id}`);
  const body = el("div", { class: "detail" });
  main.append(back, heading, body);
  let task = null;

  async function render() {
    task = await api.get(`/v1/videos/${encodeURIComponent(id)}`);
    const timeline = await api.get(`/v1/videos/${encodeURIComponent(id)}/timeline`).catch(() => null);
    clear(body);
    const media = el("section", { class: "card", "aria-label": "Result" });
    const url = task.video_url || task.url;
    if (task.status === "completed" && url) {
      media.append(el("video", { src: url, controls: true, playsinline: true, preload: "metadata", poster: task.thumbnail_url || null, "aria-label": `Video of ${task.id}` }));
    } else {
      media.append(el("p", {}, statusBadge(task), " ", progressBar(task, `Progress of ${task.id}`), ` ${task.progress ?? 0}%`));
    }
    const actions = el("div", { class: "actions wrap" });
    const downloads = [
      ["Download video", task.video_url || task.url, "video.mp4"],
      ["Download thumbnail", task.thumbnail_url, "thumbnail"],
      ["Download last frame", task.last_frame_url, "last-frame.png"],
    ];
    for (const [label, href, name] of downloads) {
      if (href) actions.append(el("a", { class: "button", href, download: `${task.id}-${name}` }, label));
    }
    if (!isFinished(task.status)) {
      actions.append(el("button", { type: "button", class: "danger", onclick: () => remove("Cancel") }, "Cancel task"));
    } else {
      actions.append(el("button", { type: "button", class: "danger", onclick: () => remove("Delete") }, "Delete task"));
    }
    media.append(actions);
    body.append(media);

    if (task.error) {
      body.append(
        el("section", { class: "card", "aria-label": "Error" }, el("h2", {}, "Error"), dl([["Code", task.error.code], ["Message", task.error.message]])),
      );
    }
    body.append(
      el(
        "section",
        { class: "card", "aria-label": "Request" },
        el("h2", {}, "Request"),
        dl([
          ["Prompt", task.prompt],
          ["Model", task.model],
          ["Ratio", task.ratio],
          ["Resolution", task.resolution],
          ["Size", task.size],
          ["Duration", durationOf(task)],
          ["Seed", task.seed ?? "—"],
          ["Audio", task.generate_audio === undefined ? "—" : task.generate_audio ? "on" : "off"],
          ["Created", fmtTime(task.created_at)],
          ["Completed", fmtTime(task.completed_at)],
        ]),
        el("details", {}, el("summary", {}, "The task as JSON"), el("pre", {}, JSON.stringify(task, redactUrls, 2))),
      ),
    );
    const b = task.billing_detail || {};
    body.append(
      el(
        "section",
        { class: "card", "aria-label": "Billing" },
        el("h2", {}, "Billing"),
        dl([
          ["State", b.state],
          ["Cost", taskCost(task)],
          ["Tokens", task.usage && task.usage.completion_tokens],
        ]),
        timeline && timeline.ledger && timeline.ledger.length
          ? el(
              "table",
              { class: "table" },
              el("caption", { class: "visually-hidden" }, "Ledger rows of this task"),
              el("thead", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "Kind"), el("th", {}, "Amount"))),
              el("tbody", {}, timeline.ledger.map((r) => el("tr", {}, el("td", {}, fmtTime(r.created_at)), el("td", {}, r.kind), el("td", {}, `${r.amount} ${r.currency}`)))),
            )
          : null,
      ),
    );
    if (timeline && Array.isArray(timeline.events)) {
      body.append(
        el(
          "section",
          { class: "card", "aria-label": "Timeline" },
          el("h2", {}, "Timeline"),
          el(
            "ol",
            { class: "timeline" },
            timeline.events.map((e) => el("li", {}, el("time", {}, fmtTime(e.at)), " ", el("strong", {}, e.type), " ", e.detail || "")),
          ),
        ),
      );
    }
  }

  // Cancel keeps the task (failed, code "cancelled", hold refunded); delete removes it
  // and its files for good (docs/api.md §1.3).
  async function remove(verb) {
    const what = verb === "Cancel" ? "Cancel this task? Its hold is refunded." : "Delete this task, its video and its files for good?";
    if (!window.confirm(what)) return;
    try {
      if (verb === "Cancel") {
        await api.post(`/v1/videos/${encodeURIComponent(id)}/cancel`);
        announce("Task cancelled");
        await render();
      } else {
        await api.del(`/v1/videos/${encodeURIComponent(id)}`);
        announce("Task deleted");
        location.hash = "#/tasks";
      }
    } catch (err) {
      body.prepend(errorBox(err.message));
    }
  }

  try {
    await render();
  } catch (err) {
    body.append(errorBox(err.message));
    return null;
  }
  return poller(async () => {
    if (task && !isFinished(task.status)) await render();
  }, 1500);
}

// Signed links are long and change every minute: show them shortened in the JSON view.
function redactUrls(key, value) {
  if (typeof value === "string" && /_url$|^url$/.test(key) && value.length > 60) return `${value.slice(0, 57)}…`;
  return value;
}
