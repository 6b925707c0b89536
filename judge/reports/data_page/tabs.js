// The data page's tabs: kept examples, rejected examples, answers side by side, curation scores.
// Each tab's view is built the first time it is shown; the first tab is rendered at once.

function sampleNote(table, what) {
  if (!table.sampled) return null;
  return el("p", { class: "note", "data-note": "sample" },
    `This run holds ${fmt(table.total)} ${what}; so that the page stays responsive it holds a random sample of `
    + `${fmt(table.on_page)} of them (seed ${table.seed}). Counts, filters and searches below are over the sample. `
    + "All of them: factory.examples(run) in Python, or python -m factory export.");
}

// ---- kept examples -----------------------------------------------------------------------------

function conversation(col, i) {
  const parts = [];
  const system = col("system")(i);
  if (system) parts.push(textBlock("system", system));
  const turns = col("turns")(i);
  if (turns) turns.forEach((t, k) => parts.push(textBlock(k % 2 ? "assistant" : "user", t)));
  else {
    parts.push(textBlock("user", col("instruction")(i)));
    if (col("input")(i)) parts.push(textBlock("user · input", col("input")(i), "user"));
    parts.push(textBlock("assistant", col("output")(i)));
  }
  return parts;
}

function curationFacts(score) {
  if (!score) return null;
  const { table, row } = score;
  const c = columnsOf(table);
  return el("div", null, el("h4", { text: `curation ${table.name}` }), facts([
    ["overall", c("overall")(row) === null ? c("status")(row) : String(c("overall")(row))],
    ["why not scored", c("error")(row)],
    ...table.criteria.map((name) => [name, String(c("c." + name)(row) ?? "—")]),
    ["judge", c("judge")(row)], ["rubric", c("rubric")(row)], ["cost", c("cost_text")(row)],
    ["rationale", c("why")(row)],
  ]));
}

function scoresByExample(table) {  // example id -> row of a curation's table
  const ids = table.cols.id, out = new Map();
  for (let r = 0; r < table.n; r++) out.set(ids[r], r);
  return out;
}

function examplesView(t) {
  const col = columnsOf(t);
  const ids = t.cols.id;
  const curations = DATA.curation.map((c) => ({ table: c, rows: scoresByExample(c) }));
  let current = curations[0] || null;
  const score = (i) => {
    if (!current) return null;
    const r = current.rows.get(ids[i]);
    return r === undefined ? null : current.table.cols.overall[r];
  };
  const turns = (i) => { const x = col("turns")(i); return x ? x.length / 2 : 1; };
  const text = (i) => [ids[i], col("system")(i), col("instruction")(i), col("input")(i), col("output")(i),
                       (col("turns")(i) || []).join("\n"), col("seeds")(i), col("key")(i)].filter(Boolean).join("\n");
  const columns = [
    { label: "id", cell: (i) => ids[i], cls: "mono", width: "150px", sort: 0 },
    { label: "lang", cell: (i) => col("lang")(i) || "", width: "52px" },
    { label: "instruction", cell: (i) => [turns(i) > 1 ? el("span", { class: "tag turns", text: `${turns(i)} turns` }) : null,
                                          preview(col("instruction")(i))], width: "34%" },
    { label: "answer", cell: (i) => preview(col("output")(i)), width: "30%" },
    { label: "length", cell: (i) => fmt(col("len")(i)), cls: "num", width: "70px", sort: 1 },
    { label: "cost", cell: (i) => col("cost_text")(i) || "unknown", cls: "num", width: "96px", sort: 2 },
  ];
  if (current) {
    columns.push({ label: "score", cell: (i) => (score(i) === null ? "—" : String(score(i))), cls: "num", width: "60px",
                   sort: 3 });
  }
  columns.push({ label: "model", cell: (i) => col("model")(i) || "", width: "110px" });
  const toolbar = curations.length > 1 ? [el("label", null, "scores of", el("select", {
    onchange: (e) => { current = curations[Number(e.target.value)]; view.refreshSort(); } },
    curations.map((c, k) => el("option", { value: k }, c.table.name))))] : [];
  const view = ListView({
    n: t.n, total: t.total, search: text, empty: `No kept examples yet: just generate --run ${RUN} ...`,
    notes: [sampleNote(t, "kept examples")],
    filters: [{ label: "language", get: col("lang") }, { label: "recipe", get: col("recipe") },
              { label: "model", get: col("model") }],
    ranges: [{ label: "length", get: col("len") }, { label: "cost $", get: col("cost") },
             ...(current ? [{ label: "score", get: score }] : [])],
    sorts: [{ label: "id", get: (i) => ids[i] }, { label: "length", get: col("len"), desc: true },
            { label: "cost", get: col("cost"), desc: true }, ...(current ? [{ label: "score", get: score, desc: true }] : []),
            { label: "turns", get: turns, desc: true }],
    columns, toolbar,
    detail: (i) => el("div", null, conversation(col, i), facts([
      ["id", ids[i]], ["recipe", col("recipe")(i)], ["model", col("model")(i)], ["seed ids", col("seeds")(i)],
      ["request key", col("key")(i)], ["cost (its share of the request)", col("cost_text")(i) || "unknown"],
      ["language", col("lang")(i)], ["length", fmt(col("len")(i)) + " characters"]]),
      curations.map((c) => {
        const r = c.rows.get(ids[i]);
        return r === undefined ? null : curationFacts({ table: c.table, row: r });
      })),
  });
  return view;
}

// ---- rejected examples -------------------------------------------------------------------------

function rejectedView(t) {
  const col = columnsOf(t);
  const ids = t.cols.id;
  return ListView({
    n: t.n, total: t.total, empty: "Nothing was rejected.", notes: [sampleNote(t, "rejected items")],
    search: (i) => [ids[i], col("reason")(i), col("detail")(i), col("text")(i), col("key")(i)].filter(Boolean).join("\n"),
    filters: [{ label: "reason", get: col("reason") }, { label: "model", get: col("model") }],
    ranges: [{ label: "length", get: col("len") }],
    sorts: [{ label: "reason", get: col("reason") }, { label: "length", get: col("len"), desc: true },
            { label: "request cost", get: col("cost"), desc: true }],
    columns: [
      { label: "id", cell: (i) => ids[i], cls: "mono", width: "150px" },
      { label: "reason", cell: (i) => el("span", { class: "tag reason", text: col("reason")(i) }), width: "110px", sort: 0 },
      { label: "detail", cell: (i) => preview(col("detail")(i), 120), width: "24%" },
      { label: "text", cell: (i) => preview(col("text")(i)), width: "38%" },
      { label: "length", cell: (i) => fmt(col("len")(i)), cls: "num", width: "70px", sort: 1 },
      { label: "request cost", cell: (i) => col("cost_text")(i) || "—", cls: "num", width: "96px", sort: 2 },
    ],
    detail: (i) => el("div", null, facts([["reason", col("reason")(i)], ["detail", col("detail")(i)]]),
      textBlock("the rejected text", col("text")(i), "system"),
      facts([["id", ids[i]], ["recipe", DATA.recipe], ["model", col("model")(i)], ["request key", col("key")(i)],
             ["request cost (the whole request)", col("cost_text")(i)]])),
  });
}

// ---- curation scores ---------------------------------------------------------------------------

function curationView(t, examples) {
  const col = columnsOf(t);
  const ids = t.cols.id;
  const exampleRow = new Map();
  examples.cols.id.forEach((id, i) => exampleRow.set(id, i));
  const ex = columnsOf(examples);
  const instruction = (i) => { const r = exampleRow.get(ids[i]); return r === undefined ? null : ex("instruction")(r); };
  return ListView({
    n: t.n, empty: "This curation holds no scores.",
    search: (i) => [ids[i], col("why")(i), col("error")(i), instruction(i)].filter(Boolean).join("\n"),
    filters: [{ label: "status", get: col("status") }, { label: "judge", get: col("judge") },
              { label: "rubric", get: col("rubric") }],
    ranges: [{ label: "overall", get: col("overall") }, { label: "cost $", get: col("cost") }],
    sorts: [{ label: "overall", get: col("overall"), desc: true }, { label: "cost", get: col("cost"), desc: true },
            ...t.criteria.map((c) => ({ label: c, get: col("c." + c), desc: true }))],
    columns: [
      { label: "example", cell: (i) => ids[i], cls: "mono", width: "150px" },
      { label: "overall", cell: (i) => (col("overall")(i) === null ? col("status")(i) : String(col("overall")(i))),
        cls: "num", width: "76px", sort: 0 },
      ...t.criteria.map((c, k) => ({ label: c, cell: (i) => String(col("c." + c)(i) ?? "—"), cls: "num", width: "90px",
                                     sort: 2 + k })),
      { label: "instruction", cell: (i) => preview(instruction(i) || "", 140) },
      { label: "rationale", cell: (i) => preview(col("why")(i), 140) },
      { label: "cost", cell: (i) => col("cost_text")(i) || "unknown", cls: "num", width: "82px", sort: 1 },
    ],
    detail: (i) => {
      const r = exampleRow.get(ids[i]);
      return el("div", null, curationFacts({ table: t, row: i }),
        r === undefined ? el("p", { class: "empty", text: "This example is not on the page (not kept, or outside the sample)." })
                        : conversation(ex, r));
    },
  });
}
