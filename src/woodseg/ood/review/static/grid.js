"use strict";
// A screen of tiles: each starts as its saved decision, or keep (reject when flagged as a likely positive);
// toggles are local until the screen is accepted in one batch.
(() => {
  const W = Woodseg;
  const data = W.pageData();
  const grid = document.getElementById("grid");
  const tiles = data.tiles.map((t) => ({
    ...t,
    locked: t.state === "rejected-elsewhere",
    choice: ["keep", "reject", "skip"].includes(t.own) ? t.own : (t.flagged ? "reject" : "keep"),
  }));
  let focus = 0;
  let camOn = W.camWanted();

  function renderCamState() {
    const state = !camOn ? "off" : data.cam ? "unavailable" : "on";
    grid.dataset.cam = state;
    document.getElementById("cam-state").textContent = state === "on" ? "on (red = strongest " + data.class_name + " evidence)" : state;
    const note = document.getElementById("cam-note");
    note.hidden = state !== "unavailable";
    note.textContent = state === "unavailable" ? data.cam : "";
  }

  function render() {
    grid.replaceChildren();
    tiles.forEach((t, i) => {
      const el = document.createElement("figure");
      el.className = "tile choice-" + (t.locked ? "locked" : t.choice) + (i === focus ? " focus" : "") +
        (t.own === t.choice ? " saved" : "");
      el.dataset.candidate = t.id;
      el.dataset.choice = t.locked ? "locked" : t.choice;
      const frame = document.createElement("div");
      frame.className = "frame";
      const im = document.createElement("img");
      im.src = "/image/" + t.image + "?max=" + tileMax();
      im.alt = t.entry;
      im.addEventListener("load", () => {
        const scale = Math.min(im.clientWidth / im.naturalWidth, im.clientHeight / im.naturalHeight);
        im.classList.toggle("pixelated", scale * (window.devicePixelRatio || 1) >= 2);
      });
      frame.append(im);
      if (camOn && !data.cam) {
        const cam = document.createElement("img");
        cam.className = "cam";
        cam.src = "/cam/" + t.id;
        cam.alt = "";
        frame.append(cam);
      }
      const cap = document.createElement("figcaption");
      const label = t.locked ? "rejected under " + t.rejected_in.join(", ") : t.choice + (t.own === t.choice ? " ✓" : "");
      cap.textContent = "p=" + t.p.toFixed(3) + " · " + label + (t.flagged ? " · flagged" : "");
      el.append(frame, cap);
      el.addEventListener("click", () => { focus = i; toggle(i); });
      grid.append(el);
    });
    const focused = grid.children[focus];
    if (focused && document.body.dataset.ready) focused.scrollIntoView({ block: "nearest" });
  }

  function tileMax() {
    const w = (grid.firstElementChild ? grid.firstElementChild.clientWidth : 320) * (window.devicePixelRatio || 1);
    return w <= 320 ? 320 : w <= 640 ? 640 : 1024;
  }

  function toggleCam() {
    camOn = !camOn;
    W.setCamWanted(camOn);
    if (camOn && data.cam) W.flash(data.cam, "warn");
    renderCamState();
    render();
  }

  function toggle(i, to) {
    const t = tiles[i];
    if (!t || t.locked) return;
    t.choice = to || (t.choice === "keep" ? "reject" : "keep");
    render();
  }

  function columns() {
    const els = grid.children;
    if (!els.length) return 1;
    const top = els[0].offsetTop;
    let n = 0;
    while (n < els.length && els[n].offsetTop === top) n++;
    return Math.max(1, n);
  }

  function go(href) { if (href) location.href = href; }
  const nextLink = document.getElementById("next-page");
  const prevLink = document.getElementById("prev-page");

  function accept() {
    const items = tiles.filter((t) => !t.locked && t.choice !== t.own)
      .map((t) => ({ candidate: t.id, decision: t.choice, base_seq: t.seq }));
    const after = () => go(nextLink ? nextLink.href : location.href);
    if (!items.length) { after(); return; }
    W.enqueue(() => W.api("/api/decisions/batch", { reviewer: W.reviewer(), items: items, client: W.client }))
      .then((res) => {
        if (res.results.some((r) => r.conflict)) W.flash("Some tiles had been changed elsewhere; your decisions are the latest.", "warn");
        after();
      })
      .catch((err) => W.flash("Screen not saved (" + err.message + "). Try again.", "error"));
  }

  document.addEventListener("keydown", (ev) => {
    if (W.isTyping(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key, cols = columns();
    let moved = true;
    if (k === "ArrowRight") focus = Math.min(tiles.length - 1, focus + 1);
    else if (k === "ArrowLeft") focus = Math.max(0, focus - 1);
    else if (k === "ArrowDown") focus = Math.min(tiles.length - 1, focus + cols);
    else if (k === "ArrowUp") focus = Math.max(0, focus - cols);
    else moved = false;
    if (moved) { ev.preventDefault(); render(); return; }
    if (k === " " || k === "x") { ev.preventDefault(); toggle(focus); }
    else if (k === "s") toggle(focus, "skip");
    else if (k === "a") { tiles.forEach((t) => { if (!t.locked) t.choice = "keep"; }); render(); }
    else if (k === "Enter") { ev.preventDefault(); if (!ev.repeat) accept(); }
    else if (k === "]") go(nextLink && nextLink.href);
    else if (k === "[") go(prevLink && prevLink.href);
    else if (k === "v") go("/review/" + encodeURIComponent(data.class_name));
    else if (k === "c") toggleCam();
    else if (k === "?") W.toggleKeys();
    else if (k === "Escape") W.toggleKeys(false);
  });
  document.getElementById("accept").addEventListener("click", accept);
  W.renderProgress(data.progress);
  W.loadPace(data.class_name);
  renderCamState();
  render();
  document.body.dataset.ready = "1";
})();
