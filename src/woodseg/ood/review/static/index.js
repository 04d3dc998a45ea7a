"use strict";
(() => {
  const W = Woodseg;
  const button = document.getElementById("write-export");
  if (button) {
    button.addEventListener("click", () => {
      W.api("/api/export", {})
        .then((res) => W.flash("Wrote " + res.num_images + " images to " + res.ood_list + " and " + res.manifest, "info"))
        .catch((err) => W.flash("Export failed (" + err.message + ")", "error"));
    });
  }
  document.body.dataset.ready = "1";
})();
