// The page itself: the header (run, when written, a link to the overview report) and the tabs.
// It renders twice: start() on the head (each table's first rows) as soon as the browser has read
// it, finish() on the whole data once that is parsed. window.__viewer exposes the state and the
// timings the benchmark and the tests read.

let current = null;  // the tab shown, kept when the whole data replaces the head

function boot() {
  const tabs = [
    { key: "examples", label: "Kept examples", count: DATA.examples.total, make: () => examplesView(DATA.examples) },
    { key: "rejected", label: "Rejected", count: DATA.rejected.total, make: () => rejectedView(DATA.rejected) },
    { key: "answers", label: "Answers", count: DATA.answers.questions.length, make: () => answersView(DATA.answers) },
    { key: "curation", label: "Curation", count: DATA.curation.reduce((s, c) => s + c.n, 0), make: curationTab },
  ];
  const main = el("main");
  const buttons = tabs.map((t) => el("button", { role: "tab", "data-tab": t.key, "aria-selected": "false",
                                                 onclick: () => show(t) },
                                     t.label, el("span", { class: "count", text: fmt(t.count) })));
  const meta = el("div", { class: "meta" }, `written ${DATA.written} by `, el("code", { text: `just view --run ${DATA.path}` }),
    DATA.index_html ? [" · ", el("a", { href: "index.html" }, "the run's report")] : null);
  document.getElementById("app").replaceChildren(
    el("header", null, el("h1", { text: `${RUN} — the data` }), meta, el("nav", { role: "tablist" }, buttons)), main);
  const built = new Map();

  function show(tab) {
    buttons.forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === tab.key)));
    if (!built.has(tab.key)) {
      const view = tab.make();
      built.set(tab.key, view);
      view.apply();
    }
    main.replaceChildren(...banners(), built.get(tab.key).root);
    V.tab = current = tab.key;
  }
  V.show = (key) => show(tabs.find((t) => t.key === key));

  // The tab shown before the whole data came, else the one the address names, else the first with rows.
  const first = tabs.find((t) => t.key === current) || tabs.find((t) => "#" + t.key === location.hash)
    || tabs.find((t) => t.count > 0) || tabs[0];
  show(first);
}

function banners() {
  const out = [];
  if (DATA.simulated) {
    out.push(el("p", { class: "banner", "data-note": "simulated" }, el("b", { text: "Simulated run. " }),
      "These texts and scores come from the local simulator (python -m factory simulate), not from a model."));
  }
  if (DATA.partial) out.push(el("p", { class: "note", "data-note": "loading" }, "Reading the whole run: the first rows are "
    + "shown; search, filters and sorts come once every row is read."));
  for (const note of DATA.notes) out.push(el("p", { class: "note", text: note }));
  return out;
}

function curationTab() {
  if (!DATA.curation.length) {
    const root = el("section", { class: "view" }, el("p", { class: "empty",
      text: `No curation of this run's examples yet (a curation writes ${RUN}/curation/NAME/scores.jsonl).` }));
    return { root, apply() {} };
  }
  const views = DATA.curation.map((t) => curationView(t, DATA.examples));
  const holder = el("div");
  const root = el("section", { class: "view" });
  const pick = (k) => { holder.replaceChildren(views[k].root); views[k].apply(); };
  if (views.length > 1) {
    root.append(el("div", { class: "toolbar" }, el("label", null, "curation", el("select", {
      onchange: (e) => pick(Number(e.target.value)) }, DATA.curation.map((c, k) => el("option", { value: k }, c.name))))));
  }
  root.append(holder);
  return { root, apply: () => pick(0) };
}

function render(id) {
  try {
    DATA = JSON.parse(document.getElementById(id).textContent);
    RUN = DATA.run;
    boot();
  } catch (e) {
    V.error = String((e && e.stack) || e);
    console.error(e);
    document.getElementById("app").append(el("p", { class: "banner", text: "The page failed to render: " + e }));
    throw e;
  }
}

V.start = () => {
  render("viewer-head");
  V.firstRenderMs = performance.now();
};

V.finish = () => {
  const t = performance.now();
  render("viewer-data");
  V.readyMs = performance.now();
  V.fullRenderMs = V.readyMs - t;
  V.ready = true;
  scheduleIndexing(() => { V.indexReady = true; V.indexMs = performance.now(); });
};
