"use strict";
// One candidate at a time. A key press updates the card and moves on at once; its POST follows in order.
(() => {
  const W = Woodseg;
  const data = W.pageData();
  const cls = data.class_name;
  const cands = data.candidates;
  const $ = (id) => document.getElementById(id);
  const card = $("card"), done = $("done"), img = $("card-img");
  const DECISION_KEYS = { k: "keep", 1: "keep", r: "reject", x: "reject", 2: "reject", s: "skip", 3: "skip" };

  function nextOpen(from) {
    for (let i = from; i < cands.length; i++) if (cands[i].state === "unreviewed") return i;
    return cands.length;
  }
  let idx = nextOpen(0);
  if (idx >= cands.length) {
    const skipped = cands.findIndex((c) => c.state === "skip");
    if (skipped >= 0) idx = skipped;
  }

  function describe(c) {
    if (c.state === "rejected-elsewhere") return "rejected under " + c.rejected_in.join(", ");
    return c.state + (c.pending ? " (saving…)" : "");
  }

  function render() {
    const finished = idx >= cands.length;
    card.hidden = finished;
    done.hidden = !finished;
    if (finished) return;
    const c = cands[idx];
    const src = "/image/" + c.image + "?max=900";
    if (img.getAttribute("src") !== src) img.setAttribute("src", src);
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
      pre.src = "/image/" + cands[idx + k].image + "?max=900";
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
      W.renderProgress(res.progress);
      render();
    }).catch((err) => {
      c.pending -= 1;
      c.own = before.own;
      c.state = before.state;
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
      W.renderProgress(res.progress);
      render();
    } catch (err) { /* the next decision reports errors */ }
  }

  document.addEventListener("keydown", (ev) => {
    if (W.isTyping(ev)) return;
    const key = ev.key;
    if ((ev.ctrlKey || ev.metaKey) && key.toLowerCase() === "z") { ev.preventDefault(); undo(); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (DECISION_KEYS[key]) {
      ev.preventDefault();
      if (!ev.repeat) decide(DECISION_KEYS[key]);
    } else if (key === "ArrowRight" || key === "l") {
      ev.preventDefault(); idx = Math.min(cands.length, idx + 1); render();
    } else if (key === "ArrowLeft" || key === "h") {
      ev.preventDefault(); idx = Math.max(0, idx - 1); render();
    } else if (key === "n") {
      idx = nextOpen(idx + 1); render();
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
  img.addEventListener("error", () => {
    if (idx < cands.length) W.flash("This image could not be loaded (see the server log); skip it (s) or reject it (r).", "warn");
  });
  window.addEventListener("focus", refresh);
  setInterval(refresh, 20000);
  W.renderProgress(data.progress);
  render();
  document.body.dataset.ready = "1";
})();
