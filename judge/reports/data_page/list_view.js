// The data page's core: safe element building, the columnar tables, and one list view (search,
// filters, ranges, sort, pages) that the examples, rejected and curation tabs share.
//
// Model output is untrusted input: every text reaches the page through text nodes (el() below,
// textContent); nothing here parses a string as markup, and no attribute takes a URL from the data.

const PREVIEW = 200;  // characters of a text a table cell shows; the row's details show all of it
const PAGE_SIZES = [25, 50, 100, 200];
const INDEX_CHUNK = 4000;  // rows lower-cased for search per idle slice

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const fmt = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"));

function preview(text, limit = PREVIEW) {
  if (!text) return "";
  const flat = text.length > limit * 4 ? text.slice(0, limit * 4) : text;
  const one = flat.replace(/\s+/g, " ").trim();
  return one.length > limit ? one.slice(0, limit) + "…" : one;
}

// A table as the page embeds it: {n, cols: {name: [...]}, dicts: {name: [values]}}; a coded column
// holds indexes into its dict. col(name) reads row i's value either way.
function columnsOf(table) {
  return (name) => {
    const values = table.cols[name] || [];
    const dict = table.dicts[name];
    return dict ? (i) => (values[i] === null || values[i] === undefined ? null : dict[values[i]]) : (i) => values[i] ?? null;
  };
}

function textBlock(role, text, cls) {
  return el("div", { class: "turn " + (cls || role) }, el("div", { class: "role", text: role }),
            el("div", { class: "text", text: text }));
}

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter((p) => p[1] !== null && p[1] !== undefined && p[1] !== "")
    .map(([k, v]) => [el("dt", { text: k }), el("dd", { class: /key|id|seed/.test(k) ? "mono" : null }, v)]));
}

// Search indexes are built in idle slices after the first render, so that the first render stays
// quick and a search later finds its index ready; a search before that finishes the rest at once.
const indexQueue = [];
function scheduleIndexing(done) {
  const step = () => {
    const view = indexQueue.find((v) => !v.indexed());
    if (!view) { done(); return; }
    view.buildIndex(view.indexedUpTo() + INDEX_CHUNK);
    setTimeout(step, 0);
  };
  setTimeout(step, 0);
}

// spec: {n, search(i) -> text, filters: [{label, get(i) -> string|null}], ranges: [{label, get(i) -> number|null}],
//        sorts: [{label, get(i) -> number|string|null, desc}], columns: [{label, cell(i), cls, sort, width}],
//        detail(i) -> Node, toolbar: [extra Nodes], empty: text}
function ListView(spec) {
  const n = spec.n;
  const state = { q: "", filters: spec.filters.map(() => ""), ranges: spec.ranges.map(() => [null, null]),
                  sort: -1, desc: false, page: 0, size: 50 };
  const open = new Set();
  const hay = new Array(n);
  let built = 0;
  let matches = null;
  const sortKeys = new Map();

  const view = {
    indexed: () => built >= n,
    indexedUpTo: () => built,
    buildIndex(upTo) {
      const end = Math.min(n, upTo);
      for (; built < end; built++) hay[built] = spec.search(built).toLowerCase();
    },
  };
  indexQueue.push(view);

  const root = el("section", { class: "view" });
  const status = el("div", { class: "status", role: "status" });
  const body = el("div");
  const pager = el("div", { class: "pager" });

  function sortKey(k) {
    if (!sortKeys.has(k)) {
      const get = spec.sorts[k].get;
      const keys = new Array(n);
      for (let i = 0; i < n; i++) keys[i] = get(i);
      sortKeys.set(k, keys);
    }
    return sortKeys.get(k);
  }

  function compute() {
    const terms = state.q.toLowerCase().split(/\s+/).filter(Boolean);
    if (terms.length) view.buildIndex(n);
    const filters = spec.filters.map((f, k) => [f.get, state.filters[k]]).filter(([, want]) => want !== "");
    const ranges = spec.ranges.map((r, k) => [r.get, ...state.ranges[k]]).filter(([, lo, hi]) => lo !== null || hi !== null);
    const out = new Int32Array(n);
    let m = 0;
    rows: for (let i = 0; i < n; i++) {
      for (const [get, want] of filters) if (get(i) !== want) continue rows;
      for (const [get, lo, hi] of ranges) {
        const v = get(i);
        if (v === null || v === undefined || (lo !== null && v < lo) || (hi !== null && v > hi)) continue rows;
      }
      if (terms.length) {
        const h = hay[i];
        for (const t of terms) if (!h.includes(t)) continue rows;
      }
      out[m++] = i;
    }
    matches = out.subarray(0, m);
    if (state.sort >= 0) {
      const keys = sortKey(state.sort);
      const dir = state.desc ? -1 : 1;
      const order = Array.from(matches);
      order.sort((a, b) => {
        const x = keys[a], y = keys[b];
        if (x === null || x === undefined) return y === null || y === undefined ? a - b : 1;  // unknowns last
        if (y === null || y === undefined) return -1;
        return (x < y ? -dir : x > y ? dir : 0) || a - b;
      });
      matches = Int32Array.from(order);
    }
  }

  function renderRows() {
    const pages = Math.max(1, Math.ceil(matches.length / state.size));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * state.size;
    const shown = matches.subarray(start, start + state.size);
    const of = DATA.partial ? ` (the first rows of ${fmt(spec.total ?? n)}: reading the rest)`
      : matches.length === n ? "" : ` (of ${fmt(n)})`;
    status.textContent = matches.length
      ? `${fmt(start + 1)}–${fmt(start + shown.length)} of ${fmt(matches.length)} rows${of}`
      : `no row matches${of}`;
    const head = el("tr", null, spec.columns.map((c) => el("th", {
      class: [c.cls, c.sort !== undefined ? "sortable" : null].filter(Boolean).join(" ") || null,
      style: c.width ? `width: ${c.width}` : null,
      title: c.sort !== undefined ? "sort by " + c.label : null,
      onclick: c.sort === undefined ? null  // a second click reverses; a first sorts the column's own way
        : () => { setSort(c.sort, state.sort === c.sort ? !state.desc : !!spec.sorts[c.sort].desc); },
    }, c.label + (state.sort === c.sort && c.sort !== undefined ? (state.desc ? " ▼" : " ▲") : ""))));
    const rows = [];
    for (const i of shown) {
      const tr = el("tr", { class: "row" + (open.has(i) ? " open" : ""), "data-row": i },
                    spec.columns.map((c) => el("td", { class: c.cls || null }, c.cell(i))));
      rows.push(tr);
      if (open.has(i)) rows.push(el("tr", { class: "detail" }, el("td", { colspan: spec.columns.length }, spec.detail(i))));
      tr.addEventListener("click", () => { open.has(i) ? open.delete(i) : open.add(i); renderRows(); });
    }
    body.replaceChildren(matches.length || n ? el("table", null, el("thead", null, head), el("tbody", null, rows))
                                             : el("p", { class: "empty", text: spec.empty }));
    pager.replaceChildren(
      el("button", { onclick: () => { state.page = Math.max(0, state.page - 1); renderRows(); },
                     disabled: state.page === 0 }, "‹ previous"),
      el("span", null, `page ${fmt(state.page + 1)} of ${fmt(pages)}`),
      el("button", { onclick: () => { state.page = Math.min(pages - 1, state.page + 1); renderRows(); },
                     disabled: state.page >= pages - 1 }, "next ›"),
      el("label", null, " rows per page ",
        el("select", { onchange: (e) => { state.size = Number(e.target.value); state.page = 0; renderRows(); } },
        PAGE_SIZES.map((s) => el("option", { value: s, selected: s === state.size }, String(s))))));
  }

  function apply() {
    const t = performance.now();
    compute();
    renderRows();
    V.lastApplyMs = performance.now() - t;
  }

  function setSort(k, desc) {
    state.sort = k;
    state.desc = desc;
    sortSelect.value = String(k);
    apply();
  }

  const counted = (get) => {  // a filter's values, most frequent first, with their counts
    const counts = new Map();
    for (let i = 0; i < n; i++) { const v = get(i); if (v !== null && v !== undefined) counts.set(v, (counts.get(v) || 0) + 1); }
    return [...counts].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
  };
  const number = (value) => (value.trim() === "" || Number.isNaN(Number(value)) ? null : Number(value));
  const search = el("input", { type: "search", placeholder: "search every text (all words must match)", "aria-label": "search",
                               oninput: (e) => { state.q = e.target.value; state.page = 0; apply(); } });
  const sortSelect = el("select", { "aria-label": "sort", onchange: (e) => {
    const k = Number(e.target.value); setSort(k, k >= 0 && !!spec.sorts[k].desc); } },
    el("option", { value: -1 }, "file order"), spec.sorts.map((s, k) => el("option", { value: k }, s.label)));
  const controls = [
    search,
    spec.filters.map((f, k) => el("label", null, f.label, el("select", {
      "data-filter": f.label, onchange: (e) => { state.filters[k] = e.target.value; state.page = 0; apply(); } },
      el("option", { value: "" }, "all"), counted(f.get).map(([v, c]) => el("option", { value: v }, `${v} (${fmt(c)})`))))),
    spec.ranges.map((r, k) => el("label", null, r.label,
      el("input", { type: "number", placeholder: "min", step: "any", "data-range": r.label + " min",
                    oninput: (e) => { state.ranges[k][0] = number(e.target.value); state.page = 0; apply(); } }),
      el("input", { type: "number", placeholder: "max", step: "any", "data-range": r.label + " max",
                    oninput: (e) => { state.ranges[k][1] = number(e.target.value); state.page = 0; apply(); } }))),
    el("label", null, "sort", sortSelect,
       el("button", { title: "reverse the order",
                      onclick: () => { if (state.sort >= 0) setSort(state.sort, !state.desc); } }, "⇅")),
    spec.toolbar || [],
  ];
  const toolbar = el("div", { class: "toolbar" }, controls);
  if (DATA.partial) toolbar.querySelectorAll("input, select, button").forEach((c) => { c.disabled = true; });
  root.append(...(spec.notes || []).filter(Boolean), toolbar, status, body, pager);
  return { root, apply, search, refreshSort() { sortKeys.clear(); apply(); } };
}
