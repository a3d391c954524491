// Gallery: finished videos as thumbnails that play on hover, focus or click.

import { api } from "../api.js";
import { el, errorBox } from "../ui.js";

export default async function galleryPage(main) {
  main.append(el("h1", {}, "Gallery"));
  const grid = el("ul", { class: "gallery", "aria-label": "Finished videos" });
  const more = el("button", { type: "button" }, "Load more videos");
  main.append(grid, el("div", { class: "actions" }, more));
  let after = null;

  function tile(t) {
    const url = t.video_url || t.url;
    const img = t.thumbnail_url ? el("img", { src: t.thumbnail_url, alt: "", loading: "lazy" }) : el("span", { class: "thumb-empty" });
    const button = el("button", { type: "button", class: "tile", "aria-label": `Play ${t.prompt ? t.prompt.slice(0, 60) : t.id}` }, img);
    let video = null;
    const play = () => {
      if (!url) return;
      if (!video) {
        video = el("video", { src: url, muted: true, loop: true, playsinline: true, preload: "auto", "aria-label": `Video of ${t.id}` });
        video.muted = true;
        button.replaceChildren(video);
      }
      video.play().catch(() => {});
    };
    const pause = () => {
      if (video) video.pause();
    };
    button.addEventListener("mouseenter", play);
    button.addEventListener("focus", play);
    button.addEventListener("mouseleave", pause);
    button.addEventListener("blur", pause);
    button.addEventListener("click", () => {
      play();
      if (video) video.controls = true;
    });
    return el(
      "li",
      { dataset: { id: t.id } },
      button,
      el("div", { class: "tile-caption" }, el("a", { href: `#/tasks/${encodeURIComponent(t.id)}` }, t.prompt ? t.prompt.slice(0, 50) : t.id), el("span", { class: "muted small" }, `${t.seconds ?? t.duration ?? "?"} s · ${t.model}`)),
    );
  }

  async function load() {
    const p = new URLSearchParams({ limit: "24", status: "completed" });
    if (after) p.set("after", after);
    const body = await api.get(`/v1/videos?${p}`);
    const data = (body && body.data) || [];
    for (const t of data) if (t.status === "completed") grid.append(tile(t));
    after = body.has_more ? body.last_id : null;
    more.hidden = !after;
    if (!grid.children.length) grid.append(el("li", { class: "empty" }, "No finished videos yet: make one on the Generate page."));
  }
  more.addEventListener("click", () => load().catch((e) => main.append(errorBox(e.message))));
  await load();
  return null;
}
