"use strict";
// One candidate at a time. A key press updates the card and moves on at once; its POST follows in order.
(() => {
  const W = Woodseg;
  const data = W.pageData();
  const cls = data.class_name;
  const cands = data.candidates;
  const $ = (id) => document.getElementById(id);
  const card = $("card"), done = $("done"), img = $("card-img"), box = $("imgbox"), stage = $("stage");
  const camImg = $("cam-img");
  const DECISION_KEYS = { k: "keep", 1: "keep", r: "reject", x: "reject", 2: "reject", s: "skip", 3: "skip" };
  let native = false; // z: 1:1 pixels instead of fitting the viewer
  let camOn = W.camWanted();

  // The next candidate in one of ``states`` at or after ``from``, wrapping to the start: an open candidate
  // earlier in the queue is never reported as "the end".
  function nextOpen(from, states) {
    const want = states || ["unreviewed"];
    for (let k = 0; k < cands.length; k++) {
      const i = (from + k) % cands.length;
      if (want.includes(cands[i].state)) return i;
    }
    return cands.length;
  }
  let idx = nextOpen(0);
  if (idx >= cands.length) idx = nextOpen(0, ["skip"]);

  function count(state) { return cands.filter((c) => c.state === state).length; }

  function doneText() {
    const open = count("unreviewed"), skipped = count("skip"), kept = count("keep");
    const p = W.lastProgress || data.progress;
    let text;
    if (open > 0) {
      text = "You are past the last candidate. " + open + " candidate" + (open === 1 ? " is" : "s are") +
        " still unreviewed in " + cls + ": press n to go to the next one.";
    } else if (skipped > 0) {
      text = "No unreviewed candidate left in " + cls + "; " + skipped + " skipped one" + (skipped === 1 ? " is" : "s are") +
        " still open: press n to go through " + (skipped === 1 ? "it" : "them") + ".";
    } else {
      text = "Every candidate of " + cls + " is decided: " + kept + " kept, " + count("reject") + " rejected, " +
        count("rejected-elsewhere") + " rejected under another class.";
    }
    if (p && p.reached) {
      text += " The target is reached (" + p.kept + " kept of n = " + p.target_n + "): you can stop; candidates left " +
        "unreviewed are not exported (ood_list.txt lists kept images only).";
    } else if (p) {
      text += " Kept so far: " + p.kept + " of n = " + p.target_n + ".";
    }
    return text;
  }

  // Fit the image to the viewer (scaling small ones up, crisp when enlarged 2x or more), or show it 1:1.
  function imageMax() {
    if (native) return 4096;
    const need = Math.max(box.clientWidth, box.clientHeight) * (window.devicePixelRatio || 1);
    return need <= 1024 ? 1024 : 2048;
  }

  function layout() {
    const nw = img.naturalWidth, nh = img.naturalHeight;
    if (!nw || !nh) return;
    const bw = box.clientWidth, bh = box.clientHeight;
    const scale = native ? 1 / (window.devicePixelRatio || 1) : Math.min(bw / nw, bh / nh);
    stage.style.width = Math.round(nw * scale) + "px";
    stage.style.height = Math.round(nh * scale) + "px";
    const enlarged = scale * (window.devicePixelRatio || 1) >= 2;
    img.classList.toggle("pixelated", enlarged);
    box.classList.toggle("native", native);
    card.dataset.scale = scale.toFixed(3);
    card.dataset.view = native ? "1:1" : "fit";
    $("view-mode").textContent = native ? "1:1" + (nw * scale > bw || nh * scale > bh ? " (Shift+arrows pan)" : "")
      : "fit, " + scale.toFixed(1) + "×";
  }

  function renderCam(c) {
    const note = $("cam-note");
    let state;
    if (!camOn) state = "off";
    else if (data.cam) state = "unavailable";
    else {
      const src = "/cam/" + c.id;
      if (camImg.getAttribute("src") !== src) {
        camImg.hidden = true;
        camImg.setAttribute("src", src);
        state = "loading";
      } else state = camImg.complete && camImg.naturalWidth ? "on" : (camImg.dataset.failed === src ? "unavailable" : "loading");
    }
    camImg.hidden = state !== "on";
    card.dataset.cam = state;
    $("cam-state").textContent = state === "on" ? "on, red = high" : state;
    if (state === "unavailable" && data.cam) { note.textContent = data.cam; note.hidden = false; }
    else if (state !== "unavailable") note.hidden = true;
  }

  camImg.addEventListener("load", () => { if (camOn) { camImg.hidden = false; card.dataset.cam = "on"; $("cam-state").textContent = "on, red = high"; } });
  camImg.addEventListener("error", () => {
    const src = camImg.getAttribute("src");
    camImg.dataset.failed = src;
    card.dataset.cam = "unavailable";
    $("cam-state").textContent = "unavailable";
    fetch(src, { credentials: "same-origin" }).then((r) => r.json()).then((d) => {
      $("cam-note").textContent = d.detail || "no CAM for this candidate";
      $("cam-note").hidden = false;
    }).catch(() => undefined);
  });

  function toggleCam() {
    camOn = !camOn;
    W.setCamWanted(camOn);
    if (camOn && data.cam) W.flash(data.cam, "warn");
    render();
  }

  function describe(c) {
    if (c.state === "rejected-elsewhere") return "rejected under " + c.rejected_in.join(", ");
    return c.state + (c.pending ? " (saving…)" : "");
  }

  function render() {
    const finished = idx >= cands.length;
    card.hidden = finished;
    done.hidden = !finished;
    if (finished) { $("done-text").textContent = doneText(); return; }
    const c = cands[idx];
    const src = "/image/" + c.image + "?max=" + imageMax();
    if (img.getAttribute("src") !== src) {
      stage.style.visibility = "hidden"; // no flash of the previous image's size
      img.setAttribute("src", src);
    } else layout();
    renderCam(c);
    $("card-p").textContent = c.p.toFixed(3);
    $("card-pos").textContent = (idx + 1) + " / " + cands.length + " (rank " + c.rank + " by p(c))";
    const st = $("card-state");
    st.textContent = describe(c);
    st.className = "state state-" + c.state;
    $("card-flag").hidden = !c.flagged;
    const notes = [];
    if (c.rejected_in.length && c.state !== "rejected-elsewhere") notes.push("rejected under " + c.rejected_in.join(", "));
    if (c.kept_in.length) notes.push("kept under " + c.kept_in.join(", "));
    $("card-elsewhere").textContent = notes.join(" · ");
    $("card-entry").textContent = c.entry;
    card.dataset.candidate = c.id;
    card.dataset.state = c.state;
    card.dataset.index = idx;
    for (let k = 1; k <= 3 && idx + k < cands.length; k++) {
      const pre = new Image();
      pre.src = "/image/" + cands[idx + k].image + "?max=" + imageMax();
    }
  }

  function decide(decision) {
    if (idx >= cands.length) return;
    const c = cands[idx];
    const before = { own: c.own, state: c.state };
    c.own = decision;
    c.state = decision;
    c.pending = (c.pending || 0) + 1;
    idx = nextOpen(idx + 1); // move first: a fast second key press must hit the next card
    render();
    W.enqueue(() => W.api("/api/decisions", {
      candidate: c.id, decision: decision, reviewer: W.reviewer(), base_seq: c.seq, client: W.client,
    })).then((res) => {
      c.seq = res.seq;
      c.state = res.state;
      c.pending -= 1;
      if (res.conflict) W.flash("Someone else had changed this candidate since this page loaded; both decisions are in the log, yours is the latest.", "warn");
      W.lastProgress = res.progress;
      W.renderProgress(res.progress);
      W.renderPace(res.pace);
      render();
    }).catch((err) => {
      c.pending -= 1;
      c.own = before.own;
      c.state = before.state;
      idx = cands.indexOf(c); // back to the card whose decision was lost, so one key press redoes it
      W.flash("Decision not saved (" + err.message + "). Please decide again.", "error");
      render();
    });
  }

  function undo() {
    W.enqueue(() => W.api("/api/undo", { reviewer: W.reviewer(), class_name: cls, client: W.client }))
      .then((res) => {
        if (!res.undone) { W.flash("Nothing to undo in this class.", "info"); return; }
        const i = cands.findIndex((c) => c.id === res.candidate);
        if (i >= 0) {
          Object.assign(cands[i], res.candidate_state, { pending: 0 });
          idx = i;
        }
        W.flash("Undone: " + res.undone + (res.superseded ? " (someone decided since; their decision stays)" : ""), "info");
        W.lastProgress = res.progress;
        W.renderProgress(res.progress);
        render();
      }).catch((err) => W.flash("Undo failed (" + err.message + ")", "error"));
  }

  async function refresh() {
    try {
      await W.idle();
      const res = await W.api("/api/classes/" + encodeURIComponent(cls) + "/candidates");
      const byId = new Map(res.candidates.map((c) => [c.id, c]));
      for (const c of cands) {
        const fresh = byId.get(c.id);
        if (fresh && !c.pending) Object.assign(c, fresh);
      }
      W.lastProgress = res.progress;
      W.renderProgress(res.progress);
      render();
    } catch (err) { /* the next decision reports errors */ }
  }

  document.addEventListener("keydown", (ev) => {
    if (W.isTyping(ev)) return;
    const key = ev.key;
    if ((ev.ctrlKey || ev.metaKey) && key.toLowerCase() === "z") { ev.preventDefault(); undo(); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.shiftKey && key.startsWith("Arrow")) { // pan a 1:1 image
      ev.preventDefault();
      const dx = { ArrowLeft: -1, ArrowRight: 1 }[key] || 0, dy = { ArrowUp: -1, ArrowDown: 1 }[key] || 0;
      box.scrollBy(dx * box.clientWidth * 0.25, dy * box.clientHeight * 0.25);
      return;
    }
    if (DECISION_KEYS[key]) {
      ev.preventDefault();
      if (!ev.repeat) decide(DECISION_KEYS[key]);
    } else if (key === "ArrowRight" || key === "l") {
      ev.preventDefault(); idx = Math.min(cands.length, idx + 1); render();
    } else if (key === "ArrowLeft" || key === "h") {
      ev.preventDefault(); idx = Math.max(0, idx - 1); render();
    } else if (key === "n") {
      idx = nextOpen(idx + 1);
      if (idx >= cands.length) idx = nextOpen(idx + 1, ["skip"]);
      render();
    } else if (key === "z") {
      native = !native; render();
      if (native) box.scrollTo((box.scrollWidth - box.clientWidth) / 2, (box.scrollHeight - box.clientHeight) / 2);
    } else if (key === "c") {
      toggleCam();
    } else if (key === "u") {
      undo();
    } else if (key === "g") {
      location.href = "/grid/" + encodeURIComponent(cls) + "?page=" + Math.floor(Math.min(idx, cands.length - 1) / 24);
    } else if (key === "?") {
      W.toggleKeys();
    } else if (key === "Escape") {
      W.toggleKeys(false);
    }
  });
  for (const b of document.querySelectorAll("button[data-decision]")) {
    b.addEventListener("click", () => { decide(b.dataset.decision); b.blur(); });
  }
  $("undo").addEventListener("click", (ev) => { undo(); ev.currentTarget.blur(); });
  img.addEventListener("load", () => {
    layout();
    stage.style.visibility = "";
    if (native) box.scrollTo((box.scrollWidth - box.clientWidth) / 2, (box.scrollHeight - box.clientHeight) / 2);
  });
  window.addEventListener("resize", layout);
  img.addEventListener("error", () => {
    stage.style.visibility = "";
    if (idx < cands.length) W.flash("This image could not be loaded (see the server log); skip it (s) or reject it (r).", "warn");
  });
  window.addEventListener("focus", refresh);
  setInterval(refresh, 20000);
  W.renderProgress(data.progress);
  W.loadPace(cls);
  render();
  document.body.dataset.ready = "1";
})();
