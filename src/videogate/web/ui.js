// Small DOM helpers. Text always goes in as text (never as HTML), so nothing the API
// returns can become markup or script.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

export function announce(message) {
  const region = document.getElementById("announce");
  if (!region) return;
  region.textContent = "";
  // a fresh text node, so screen readers read a repeated message again
  setTimeout(() => {
    region.textContent = message;
  }, 30);
}

export function fmtTime(epoch) {
  if (!epoch) return "—";
  const d = new Date(epoch * 1000);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function fmtAgo(epoch) {
  if (!epoch) return "—";
  const s = Math.max(0, Math.round(Date.now() / 1000 - epoch));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return fmtTime(epoch);
}

export function fmtMoney(amount, currency = "USD") {
  if (amount === null || amount === undefined) return "unlimited";
  const n = Number(amount);
  if (!Number.isFinite(n)) return String(amount);
  const digits = Math.abs(n) > 0 && Math.abs(n) < 0.01 ? 4 : 2;
  return `${n.toFixed(digits)} ${currency}`;
}

// The cost of a task from its billing_detail, read defensively.
export function taskCost(task) {
  const b = (task && task.billing_detail) || {};
  const cur = b.currency || "USD";
  if (b.state === "settled") return fmtMoney(b.amount, cur);
  if (b.state === "refunded") return `refunded (${fmtMoney(b.refunded_amount ?? 0, cur)})`;
  if (b.estimated_amount !== undefined) return `≈ ${fmtMoney(b.estimated_amount, cur)} held`;
  return "—";
}

const STATUS_TEXT = {
  submitted: "queued",
  queued: "queued",
  in_progress: "in progress",
  running: "in progress",
  fetching: "in progress",
  completed: "completed",
  succeeded: "completed",
  failed: "failed",
  cancelled: "cancelled",
  expired: "expired",
};

export function isFinished(status) {
  return ["completed", "succeeded", "failed", "cancelled", "expired"].includes(status);
}

export function statusBadge(task) {
  let status = task.status || "unknown";
  // /v1 shows cancelled and expired tasks as failed with an error code: say which.
  const code = task.error && task.error.code;
  if (status === "failed" && (code === "cancelled" || code === "expired")) status = code;
  const text = STATUS_TEXT[status] || status;
  return el("span", { class: `badge s-${text.replace(/\s/g, "-")}` }, text);
}

export function progressBar(task, label) {
  const value = Number(task.progress ?? 0);
  return el("progress", { max: "100", value: String(Math.max(0, Math.min(100, value))), "aria-label": label });
}

export function field(labelText, control, { hint, id, error } = {}) {
  const fid = id || control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = fid;
  const errId = `${fid}-error`;
  const hintId = `${fid}-hint`;
  const described = [hint ? hintId : null, errId].filter(Boolean).join(" ");
  control.setAttribute("aria-describedby", described);
  return el(
    "div",
    { class: "field" },
    el("label", { for: fid }, labelText),
    control,
    hint ? el("div", { class: "hint", id: hintId }, hint) : null,
    el("div", { class: "error", id: errId, role: "alert" }, error || ""),
  );
}

export function setFieldError(container, controlId, message) {
  const slot = container.querySelector(`#${CSS.escape(controlId)}-error`);
  const control = container.querySelector(`#${CSS.escape(controlId)}`);
  if (slot) slot.textContent = message || "";
  if (control) {
    if (message) control.setAttribute("aria-invalid", "true");
    else control.removeAttribute("aria-invalid");
  }
  return Boolean(slot);
}

export function errorBox(message) {
  return el("p", { class: "error-box", role: "alert" }, message);
}

export function dl(pairs) {
  const list = el("dl", { class: "pairs" });
  for (const [k, v] of pairs) {
    list.append(el("dt", {}, k), el("dd", {}, v === null || v === undefined || v === "" ? "—" : v));
  }
  return list;
}

// A repeating refresh that stops when the page is left or the tab is hidden.
export function poller(fn, ms) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (document.visibilityState !== "hidden") {
      try {
        await fn();
      } catch (err) {
        console.warn("refresh failed:", err.message);
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}
