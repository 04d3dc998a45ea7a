"use strict";
// Shared helpers: the reviewer name, JSON calls sent strictly in key-press order, progress, messages.
const Woodseg = (() => {
  const KEY = "woodseg.reviewer";
  const input = document.getElementById("reviewer");
  if (input) {
    const stored = localStorage.getItem(KEY);
    if (stored) input.value = stored;
    input.addEventListener("change", () => {
      const v = input.value.trim();
      if (v) localStorage.setItem(KEY, v);
    });
    input.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === "Escape") input.blur(); });
  }
  let client = sessionStorage.getItem("woodseg.client");
  if (!client) {
    client = "tab-" + Math.random().toString(36).slice(2, 10);
    sessionStorage.setItem("woodseg.client", client);
  }

  function reviewer() {
    return (input && input.value.trim()) || "reviewer";
  }

  async function api(path, body) {
    const opts = body === undefined
      ? { credentials: "same-origin" }
      : { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    const res = await fetch(path, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const msg = (data && data.detail) || res.statusText;
      throw new Error(res.status + ": " + msg);
    }
    return data;
  }

  // Requests go out one after another, in the order the keys were pressed.
  let chain = Promise.resolve();
  function enqueue(fn) {
    const p = chain.then(fn);
    chain = p.catch(() => undefined);
    return p;
  }
  function idle() { return chain; }

  let flashTimer = null;
  function flash(msg, kind) {
    const el = document.getElementById("flash");
    if (!el) return;
    el.textContent = msg;
    el.className = "flash " + (kind || "info");
    el.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 10000 : 4000);
  }

  function fmt(x, digits) {
    if (x === null || x === undefined) return "–";
    return Number(x).toFixed(digits);
  }

  function renderProgress(p) {
    const el = document.getElementById("progress");
    if (!el || !p) return;
    el.replaceChildren();
    const meter = document.createElement("meter");
    meter.min = 0; meter.max = p.target_n; meter.value = Math.min(p.kept, p.target_n);
    el.append(meter);
    const text = document.createElement("span");
    text.id = "progress-text";
    const cost = p.expected_cost === null ? (p.r === null ? "–" : "∞") : fmt(p.expected_cost, 1);
    const more = p.expected_remaining === null ? "" : " (≈ " + fmt(p.expected_remaining, 1) + " more)";
    text.textContent = " kept " + p.kept + " / " + p.target_n + " · reviewed " + p.reviewed + " · rejected " + p.rejected +
      " · skipped " + p.skipped + " · rejected elsewhere " + p.auto_rejected + " · left " + p.remaining +
      " · r = " + fmt(p.r, 2) + " · expected cost n/(1−r) = " + cost + more;
    text.dataset.kept = p.kept;
    text.dataset.reviewed = p.reviewed;
    text.dataset.rejected = p.rejected;
    el.append(text);
    const banner = document.getElementById("target-banner");
    if (banner) banner.hidden = !p.reached;
    const bannerKept = document.getElementById("banner-kept");
    if (bannerKept) bannerKept.textContent = p.kept;
    document.body.classList.toggle("reached", !!p.reached);
  }

  // The reviewer's pace (looks per minute, from the decision log) and the time left to the target at it.
  function renderPace(pace) {
    const el = document.getElementById("pace");
    if (!el || !pace) return;
    el.dataset.rate = pace.looks_per_minute === null ? "" : pace.looks_per_minute;
    el.dataset.minutesLeft = pace.minutes_left === null || pace.minutes_left === undefined ? "" : pace.minutes_left;
    if (pace.looks_per_minute === null) {
      el.textContent = "pace: decide a few candidates to see your looks per minute and the time left";
      return;
    }
    let left = "";
    if (pace.looks_left === 0) left = " · target reached";
    else if (pace.minutes_left !== null && pace.minutes_left !== undefined) {
      const m = pace.minutes_left;
      const t = m < 1 ? "under a minute" : m < 90 ? "≈ " + Math.round(m) + " min" : "≈ " + (m / 60).toFixed(1) + " h";
      left = " · " + t + " to the target at this pace (≈ " + Math.ceil(pace.looks_left) + " more looks)";
    } else if (pace.class_name) left = " · time to the target unknown (every look so far was rejected)";
    el.textContent = "your pace: " + fmt(pace.looks_per_minute, 1) + " looks/min" + left;
  }

  function loadPace(className) {
    const q = "/api/pace?reviewer=" + encodeURIComponent(reviewer()) + (className ? "&class_name=" + encodeURIComponent(className) : "");
    return api(q).then(renderPace).catch(() => undefined);
  }

  function isTyping(ev) {
    const t = ev.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable);
  }

  function toggleKeys(force) {
    const el = document.getElementById("keys");
    if (el) el.hidden = force === undefined ? !el.hidden : !force;
  }

  function pageData() {
    const el = document.getElementById("page-data");
    return el ? JSON.parse(el.textContent) : null;
  }

  // CAM overlays on or off, remembered across pages and reloads.
  const CAM_KEY = "woodseg.cam";
  function camWanted() { return localStorage.getItem(CAM_KEY) === "1"; }
  function setCamWanted(on) { localStorage.setItem(CAM_KEY, on ? "1" : "0"); }

  return { api, enqueue, idle, flash, reviewer, client, renderProgress, renderPace, loadPace, isTyping, toggleKeys,
    pageData, camWanted, setCamWanted };
})();
