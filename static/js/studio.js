/* Bunbase Studio — small progressive-enhancement helpers.
 * No dependencies besides htmx 2 (optional: everything degrades without it).
 * All behaviour is attached through event delegation on `document`, so
 * content swapped in by htmx works without re-initialisation.
 *
 *  - [data-theme-toggle]            toggles light/dark (localStorage "bunbase-theme")
 *  - [data-confirm="message"]       on a form, submit button, link or hx-* element:
 *                                   asks in <dialog id="confirm-dialog"> first.
 *                                   Optional [data-confirm-label="Delete"] sets the OK text.
 *  - [data-copy="text"]             copies the text
 *  - [data-copy-target="#id"]       copies the target's value / textContent
 *  - [data-live] (with hx-trigger="every 5s"): a results container that refreshes itself;
 *    a poll is skipped while the tab is hidden, rows are selected (.rt-select), the confirm
 *    dialog is open, a [data-track-edits] form has unsaved edits, or a field inside it has focus
 *  - .rt-select / .rt-select-all checkboxes: selection count and the bulk buttons'
 *    [data-confirm-template] ("{n}", "{jobs}")
 *  - select[data-autosubmit]: submits its form on change
 *  - <meta name="csrf-token">       sent as X-CSRFToken on every htmx request
 *  - toasts: .toast[data-autohide] fade out; [data-toast-close] dismisses;
 *    an htmx response header `HX-Trigger: {"toast": {"message": "...", "category": "success"}}`
 *    (or document.dispatchEvent(new CustomEvent("bunbase:toast", {detail: {...}})))
 *    shows a toast client-side.
 */
(function () {
  "use strict";

  var THEME_KEY = "bunbase-theme";
  var root = document.documentElement;

  function $(sel, ctx) {
    try { return (ctx || document).querySelector(sel); } catch (e) { return null; }
  }

  function closest(el, sel) {
    return el && el.nodeType === 1 && typeof el.closest === "function" ? el.closest(sel) : null;
  }

  /* ------------------------------------------------------------ theme */
  function storedTheme() {
    try { return localStorage.getItem(THEME_KEY); } catch (e) { return null; }
  }

  function systemPrefersDark() {
    return !!(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
  }

  function effectiveTheme() {
    var t = root.dataset.theme;
    if (t === "light" || t === "dark") return t;
    return systemPrefersDark() ? "dark" : "light";
  }

  function applyTheme(theme) {
    if (theme === "light" || theme === "dark") root.dataset.theme = theme;
    else delete root.dataset.theme;
    var pressed = String(effectiveTheme() === "dark");
    var toggles = document.querySelectorAll("[data-theme-toggle]");
    for (var i = 0; i < toggles.length; i++) toggles[i].setAttribute("aria-pressed", pressed);
  }

  function toggleTheme() {
    var next = effectiveTheme() === "dark" ? "light" : "dark";
    try { localStorage.setItem(THEME_KEY, next); } catch (e) { /* private mode */ }
    applyTheme(next);
  }

  /* ------------------------------------------------------------ confirm */
  var dialog = null;
  var pending = null; // function(ok:boolean)

  function getDialog() {
    if (dialog && document.body.contains(dialog)) return dialog;
    dialog = document.getElementById("confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") { dialog = null; return null; }
    dialog.addEventListener("close", function () {
      var cb = pending;
      pending = null;
      if (cb) cb(dialog.returnValue === "ok");
    });
    dialog.addEventListener("click", function (evt) {
      var t = evt.target;
      if (closest(t, "[data-confirm-ok]")) { evt.preventDefault(); dialog.close("ok"); }
      else if (closest(t, "[data-confirm-cancel]")) { evt.preventDefault(); dialog.close("cancel"); }
      else if (t === dialog) { dialog.close("cancel"); } // backdrop click
    });
    return dialog;
  }

  /** Ask for confirmation; calls done(true|false). Falls back to window.confirm. */
  function askConfirm(message, source, done) {
    var dlg = getDialog();
    if (!dlg) { done(window.confirm(message)); return; }
    if (dlg.open) { done(false); return; }
    var msgEl = $("[data-confirm-message]", dlg);
    if (msgEl) msgEl.textContent = message;
    var titleEl = $("[data-confirm-title]", dlg);
    if (titleEl) {
      if (!titleEl.dataset.defaultText) titleEl.dataset.defaultText = titleEl.textContent;
      titleEl.textContent = (source && source.getAttribute("data-confirm-title")) || titleEl.dataset.defaultText;
    }
    var okBtn = $("[data-confirm-ok]", dlg);
    if (okBtn) {
      if (!okBtn.dataset.defaultText) okBtn.dataset.defaultText = okBtn.textContent;
      okBtn.textContent = (source && source.getAttribute("data-confirm-label")) || okBtn.dataset.defaultText;
    }
    dlg.returnValue = "";
    pending = done;
    dlg.showModal();
    var cancel = $("[data-confirm-cancel]", dlg);
    if (cancel) cancel.focus();
  }

  var HX_ATTRS = ["hx-get", "hx-post", "hx-put", "hx-patch", "hx-delete",
                  "data-hx-get", "data-hx-post", "data-hx-put", "data-hx-patch", "data-hx-delete"];

  function isHtmxDriven(el) {
    if (!el || !window.htmx) return false;
    for (var i = 0; i < HX_ATTRS.length; i++) if (el.hasAttribute(HX_ATTRS[i])) return true;
    var boosted = closest(el, "[hx-boost],[data-hx-boost]");
    if (boosted) {
      var v = boosted.getAttribute("hx-boost") || boosted.getAttribute("data-hx-boost");
      if (v === "true") return true;
    }
    return false;
  }

  // Native (non-htmx) form submissions.
  var bypassConfirm = false;
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (!form || form.tagName !== "FORM") return;
    if (bypassConfirm) { bypassConfirm = false; return; }
    var submitter = evt.submitter || null;
    var source = submitter && submitter.hasAttribute("data-confirm") ? submitter
               : form.hasAttribute("data-confirm") ? form : null;
    if (!source) return;
    if (isHtmxDriven(form) || isHtmxDriven(submitter)) return; // handled in htmx:confirm
    evt.preventDefault();
    evt.stopImmediatePropagation();
    askConfirm(source.getAttribute("data-confirm"), source, function (ok) {
      if (!ok) return;
      bypassConfirm = true;
      if (typeof form.requestSubmit === "function") {
        var done = false;
        try { form.requestSubmit(submitter || undefined); done = true; } catch (e) { /* fall through */ }
        bypassConfirm = false; // requestSubmit dispatches synchronously (or not at all if invalid)
        if (done) return;
      }
      bypassConfirm = false;
      if (submitter && submitter.name) {
        var h = document.createElement("input");
        h.type = "hidden"; h.name = submitter.name; h.value = submitter.value;
        form.appendChild(h);
      }
      HTMLFormElement.prototype.submit.call(form);
    });
  }, true);

  // Clicks: theme toggle, copy, toast close, and confirm on plain links / non-submit buttons.
  document.addEventListener("click", function (evt) {
    var t = evt.target;

    var themeBtn = closest(t, "[data-theme-toggle]");
    if (themeBtn) { evt.preventDefault(); toggleTheme(); return; }

    var copyBtn = closest(t, "[data-copy],[data-copy-target]");
    if (copyBtn) { evt.preventDefault(); doCopy(copyBtn); return; }

    var closeBtn = closest(t, "[data-toast-close]");
    if (closeBtn) { dismissToast(closest(closeBtn, ".toast")); return; }

    var link = closest(t, "a[data-confirm][href]");
    if (link && !isHtmxDriven(link)) {
      if (evt.metaKey || evt.ctrlKey || evt.shiftKey || evt.button !== 0) return;
      evt.preventDefault();
      askConfirm(link.getAttribute("data-confirm"), link, function (ok) {
        if (ok) window.location.assign(link.href);
      });
    }
  }, false);

  // htmx requests (htmx 2: htmx:confirm is fired before every request).
  document.addEventListener("htmx:confirm", function (evt) {
    var d = evt.detail || {};
    var elt = d.elt;
    if (!elt || typeof d.issueRequest !== "function") return;
    var source = null;
    var trig = d.triggeringEvent;
    if (trig && trig.submitter && trig.submitter.hasAttribute && trig.submitter.hasAttribute("data-confirm")) {
      source = trig.submitter;
    } else if (elt.hasAttribute && elt.hasAttribute("data-confirm")) {
      source = elt;
    }
    if (!source) return;
    evt.preventDefault();
    askConfirm(source.getAttribute("data-confirm"), source, function (ok) {
      if (ok) d.issueRequest(true);
    });
  });

  /* ------------------------------------------------------------ live regions */
  function liveIdle() {
    if (document.visibilityState !== "visible") return false;
    var dlg = document.getElementById("confirm-dialog");
    if (dlg && dlg.open) return false;
    if (document.querySelector(".rt-select:checked, form[data-dirty]")) return false;
    var a = document.activeElement;
    if (a && a.closest && a.closest("[data-live]") && (/^(TEXTAREA|SELECT)$/.test(a.tagName) ||
        (a.tagName === "INPUT" && !/^(checkbox|radio|submit|button|hidden)$/.test(a.type)))) return false;
    return true;
  }

  // A refresh never swaps away what the operator is working on (no eval: the CSP forbids it).
  document.addEventListener("htmx:confirm", function (evt) {
    var elt = evt.detail && evt.detail.elt;
    if (elt && elt.hasAttribute && elt.hasAttribute("data-live") && !liveIdle()) evt.preventDefault();
  });

  function syncSelection(form) {
    var boxes = form.querySelectorAll(".rt-select");
    var n = 0;
    for (var i = 0; i < boxes.length; i++) if (boxes[i].checked) n++;
    var all = form.querySelector(".rt-select-all");
    if (all) { all.checked = n > 0 && n === boxes.length; all.indeterminate = n > 0 && n < boxes.length; }
    var label = form.querySelector("[data-selected-count]");
    if (label) label.textContent = n ? n + " selected" : "";
    var buttons = form.querySelectorAll("[data-confirm-template]");
    for (var j = 0; j < buttons.length; j++) {
      var b = buttons[j];
      b.disabled = n === 0;
      b.setAttribute("data-confirm", b.getAttribute("data-confirm-template")
        .replace("{n}", String(n)).replace("{jobs}", n === 1 ? "job" : "jobs"));
    }
  }

  document.addEventListener("change", function (evt) {
    var t = evt.target;
    if (!t || !t.classList) return;
    if (t.matches && t.matches("select[data-autosubmit]") && t.form) {
      if (typeof t.form.requestSubmit === "function") t.form.requestSubmit(); else t.form.submit();
      return;
    }
    if (!t.classList.contains("rt-select") && !t.classList.contains("rt-select-all")) return;
    var form = t.form || t.closest("form");
    if (!form) return;
    if (t.classList.contains("rt-select-all")) {
      var boxes = form.querySelectorAll(".rt-select");
      for (var i = 0; i < boxes.length; i++) boxes[i].checked = t.checked;
    }
    syncSelection(form);
  });

  document.addEventListener("input", function (evt) {
    var form = evt.target && evt.target.closest ? evt.target.closest("form[data-track-edits]") : null;
    if (form) form.setAttribute("data-dirty", "");
  });

  /* ------------------------------------------------------------ CSRF */
  document.addEventListener("htmx:configRequest", function (evt) {
    var meta = $('meta[name="csrf-token"]');
    var token = meta ? meta.getAttribute("content") : "";
    if (token && evt.detail && evt.detail.headers) evt.detail.headers["X-CSRFToken"] = token;
  });

  /* ------------------------------------------------------------ copy */
  function textOf(el) {
    if (!el) return "";
    if ("value" in el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT")) return el.value;
    return el.textContent || "";
  }

  function legacyCopy(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.style.position = "fixed"; ta.style.top = "-1000px"; ta.style.opacity = "0";
    document.body.appendChild(ta);
    ta.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(ta);
    return ok;
  }

  function flashCopied(btn, ok) {
    if (btn._copyTimer) clearTimeout(btn._copyTimer);
    else btn._copyHTML = btn.innerHTML;
    btn.textContent = ok ? "Copied" : "Copy failed";
    btn.classList.add("is-copied");
    btn._copyTimer = setTimeout(function () {
      btn.innerHTML = btn._copyHTML;
      btn.classList.remove("is-copied");
      btn._copyTimer = null;
    }, 1400);
  }

  function doCopy(btn) {
    var text;
    if (btn.hasAttribute("data-copy-target")) text = textOf($(btn.getAttribute("data-copy-target")));
    else text = btn.getAttribute("data-copy") || "";
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { flashCopied(btn, true); },
        function () { flashCopied(btn, legacyCopy(text)); }
      );
    } else {
      flashCopied(btn, legacyCopy(text));
    }
  }

  /* ------------------------------------------------------------ toasts */
  function dismissToast(toast) {
    if (!toast || toast.classList.contains("is-leaving")) return;
    toast.classList.add("is-leaving");
    setTimeout(function () { if (toast.parentNode) toast.parentNode.removeChild(toast); }, 220);
  }

  function scheduleAutohide(scope) {
    var toasts = (scope || document).querySelectorAll(".toast[data-autohide]");
    for (var i = 0; i < toasts.length; i++) {
      (function (toast) {
        if (toast._hideTimer) return;
        var ms = parseInt(toast.getAttribute("data-autohide"), 10) || 6000;
        toast._hideTimer = setTimeout(function () { dismissToast(toast); }, ms);
      })(toasts[i]);
    }
  }

  function showToast(message, category) {
    if (!message) return;
    var box = document.getElementById("toasts");
    if (!box) {
      box = document.createElement("div");
      box.id = "toasts"; box.className = "toasts";
      box.setAttribute("aria-live", "polite");
      document.body.appendChild(box);
    }
    var cat = String(category || "info").replace(/[^a-z_-]/gi, "") || "info";
    var toast = document.createElement("div");
    toast.className = "toast toast-" + cat;
    toast.setAttribute("role", cat === "error" || cat === "danger" ? "alert" : "status");
    if (cat !== "error" && cat !== "danger") toast.setAttribute("data-autohide", "6000");
    var body = document.createElement("div");
    body.className = "toast-body";
    body.textContent = message;
    var close = document.createElement("button");
    close.type = "button"; close.className = "toast-close";
    close.setAttribute("data-toast-close", ""); close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    toast.appendChild(body); toast.appendChild(close);
    box.appendChild(toast);
    scheduleAutohide(box);
  }

  function onToastEvent(evt) {
    var d = evt.detail || {};
    if (typeof d === "string") { showToast(d, "info"); return; }
    if (d.value && typeof d.value === "object") d = d.value;
    else if (typeof d.value === "string") { showToast(d.value, "info"); return; }
    showToast(d.message || d.text, d.category || d.level);
  }
  document.addEventListener("toast", onToastEvent);
  document.addEventListener("bunbase:toast", onToastEvent);

  window.BunbaseStudio = { toast: showToast, confirm: askConfirm, toggleTheme: toggleTheme, idle: liveIdle };

  /* ------------------------------------------------------------ init */
  function init() {
    applyTheme(storedTheme() || root.dataset.theme);
    scheduleAutohide(document);
  }

  document.addEventListener("htmx:afterSettle", function (evt) {
    scheduleAutohide(evt.target && evt.target.querySelectorAll ? evt.target : document);
  });

  if (window.matchMedia) {
    var mq = window.matchMedia("(prefers-color-scheme: dark)");
    var onChange = function () { applyTheme(storedTheme() || root.dataset.theme); };
    if (mq.addEventListener) mq.addEventListener("change", onChange);
    else if (mq.addListener) mq.addListener(onChange);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
