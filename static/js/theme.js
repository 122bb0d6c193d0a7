/* Apply the saved theme before first paint (no flash). Loaded synchronously in <head>. */
(function () {
  try {
    var t = localStorage.getItem("bunbase-theme");
    if (t === "light" || t === "dark") document.documentElement.dataset.theme = t;
  } catch (e) { /* private mode */ }
})();
