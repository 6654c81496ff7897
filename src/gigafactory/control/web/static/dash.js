// The dashboard's only script (deferred; plotly.js, where a page charts, is deferred before it).
// - charts: each .chart holds its figure as JSON, drawn here;
// - live regions: elements with data-live are replaced in place from a fresh copy of the page, every
//   body[data-refresh] seconds while the tab is visible, so the scroll position stays where the reader left it;
// - logs: pre.log opens at its end (the newest lines); pre[data-follow] is polled while the job runs, and
//   stays at the end if the reader is there;
// - buttons with data-post call the API (the session cookie authorises them, exactly as a token would).
"use strict";
(function () {
  const dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;

  function drawCharts(root) {
    if (typeof Plotly === "undefined") return;
    root.querySelectorAll(".chart[data-figure]").forEach(function (el) {
      const src = document.getElementById(el.dataset.figure);
      if (!src) return;
      const fig = JSON.parse(src.textContent);
      const layout = fig.layout || {};
      if (dark) {
        layout.paper_bgcolor = "rgba(0,0,0,0)";
        layout.plot_bgcolor = "rgba(0,0,0,0)";
        layout.font = Object.assign({}, layout.font, { color: "#e4e7eb" });
        ["xaxis", "yaxis"].forEach(function (ax) {
          layout[ax] = Object.assign({}, layout[ax], { gridcolor: "#2b333e", zerolinecolor: "#3e4856" });
        });
      }
      Plotly.react(el, fig.data, layout, { displaylogo: false, responsive: true });
    });
  }

  function atEnd(el) {
    return el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
  }

  function openLogsAtEnd() {
    document.querySelectorAll("pre.log").forEach(function (el) { el.scrollTop = el.scrollHeight; });
  }

  function follow(el) {
    const every = 2000;
    let last = el.textContent;
    function tick() {
      if (!el.dataset.follow) return;
      if (document.hidden) { setTimeout(tick, every); return; }
      fetch(el.dataset.follow, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) { delete el.dataset.follow; return null; }
        return r.text();
      }).then(function (text) {
        if (text === null || text === undefined) return;
        if (text !== last) {
          const stay = atEnd(el);
          el.textContent = text || "(empty)";
          last = text;
          if (stay) el.scrollTop = el.scrollHeight;
        }
        const state = document.getElementById("job-state");
        if (state && !["running", "pending", "submitted"].includes(state.textContent.trim())) {
          delete el.dataset.follow;  // one last read after the job ended, then stop
          return;
        }
        setTimeout(tick, every);
      }).catch(function () { setTimeout(tick, every * 5); });
    }
    setTimeout(tick, every);
  }

  // One refresh of the live regions; resolves to false once the page is gone (signed out, deleted).
  function refreshOnce() {
    return fetch(location.href, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok || r.redirected) return null;  // signed out, or gone: stop; the next click tells why
      return r.text();
    }).then(function (html) {
      if (!html) return false;
      const fresh = new DOMParser().parseFromString(html, "text/html");
      document.querySelectorAll("[data-live]").forEach(function (el) {
        const next = fresh.getElementById(el.id);
        if (next && next.innerHTML !== el.innerHTML) {
          el.innerHTML = next.innerHTML;
          drawCharts(el);
        }
      });
      return true;
    });
  }
  window.gfRefresh = refreshOnce;  // (the browser tests call it rather than wait for the timer)

  function refreshLive() {
    const seconds = Number(document.body.dataset.refresh || 0);
    if (!seconds) return;
    function tick() {
      if (document.hidden) { setTimeout(tick, seconds * 1000); return; }
      refreshOnce().then(function (more) { if (more) setTimeout(tick, seconds * 1000); })
        .catch(function () { setTimeout(tick, seconds * 5000); });
    }
    setTimeout(tick, seconds * 1000);
  }

  function actions() {
    document.addEventListener("click", function (ev) {
      const b = ev.target.closest("button[data-post]");
      if (!b) return;
      ev.preventDefault();
      if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
      b.disabled = true;
      const out = document.getElementById("action-result");
      fetch(b.dataset.post, { method: "POST", credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
        .then(function (res) {
          let text;
          if (!res.ok) text = res.body.error ? res.body.error.message : "refused";
          else if (res.body.ids) {
            text = "submitted as job " + res.body.ids[0];
            if (b.dataset.go) { location.href = "/jobs/" + res.body.ids[0]; return; }
          } else text = "asked: job " + res.body.id + " will be cancelled";
          if (out) { out.textContent = text; out.hidden = false; out.className = res.ok ? "warn" : "error"; }
          b.disabled = res.ok && !res.body.ids;
        })
        .catch(function () { b.disabled = false; });
    });
  }

  drawCharts(document);
  openLogsAtEnd();
  document.querySelectorAll("pre[data-follow]").forEach(follow);
  refreshLive();
  actions();
})();
