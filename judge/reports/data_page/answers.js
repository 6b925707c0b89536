// The answers tab: per question, two labels' answers side by side (base against the adapter by
// default: the pair the judge compared), each turn with its single score and the judge's rationale,
// then the pairwise verdicts of that turn. Cards, ten a page.

function answersView(A) {
  const qs = A.questions;
  const labels = A.labels;
  const combos = A.pairs.filter(([a, b]) => labels.includes(a) && labels.includes(b));
  for (let x = 0; x < labels.length; x++) for (let y = x + 1; y < labels.length; y++) {
    const same = ([a, b]) => (a === labels[x] && b === labels[y]) || (a === labels[y] && b === labels[x]);
    if (!combos.some(same)) combos.push([labels[x], labels[y]]);
  }
  const state = { q: "", category: "", pair: 0, sort: "order", page: 0, size: 10 };
  const root = el("section", { class: "view" });
  const status = el("div", { class: "status", role: "status" });
  const body = el("div");
  const pager = el("div", { class: "pager" });
  const hay = qs.map((q) => [q.id, q.category, ...(q.turns || []), ...Object.values(q.answers).flat(),
                             ...q.single.map((s) => s.why), ...q.pair.map((p) => p.why)].filter(Boolean).join("\n").toLowerCase());
  const sides = () => (combos.length ? combos[state.pair] : labels.slice(0, 1));
  const meanScore = (q, label) => {
    const xs = q.single.filter((s) => s.model === label && s.score !== null).map((s) => s.score);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
  };

  function verdicts(q, turn) {
    const [a, b] = sides();
    return q.pair.filter((p) => p.turn === turn && ((p.model === b && p.baseline === a) || (p.model === a && p.baseline === b)))
      .map((p) => {
        const winner = p.winner === "model" ? p.model : p.winner === "baseline" ? p.baseline : null;
        const outcome = p.status !== "scored" ? el("span", { text: "unscored (no readable verdict)" })
          : winner ? el("span", { class: winner === b ? "win" : "loss", text: `${winner} wins` }) : el("span", { text: "tie" });
        return el("div", { class: "verdict" }, el("b", { text: `pairwise (${p.judge}): ` }), outcome,
          p.consistent === false ? " · the two orders disagreed" : "", p.cost ? ` · ${p.cost}` : "",
          p.why ? el("details", null, el("summary", { text: "the judge's rationale" }),
                     el("div", { class: "text why", text: p.why })) : null);
      });
  }

  function side(q, label, turn) {
    const answer = (q.answers[label] || [])[turn - 1];
    const graded = q.single.filter((s) => s.model === label && s.turn === turn);
    return el("div", { "data-label": label }, el("span", { class: "label", text: label }),
      graded.map((s) => el("span", { class: "score", title: `${s.mode} score by ${s.judge}`,
                                     text: s.score === null ? "unscored" : `${s.score} / 10` })),
      el("div", { class: "text", text: answer === undefined ? "(no answer)" : answer }),
      graded.filter((s) => s.why || s.error).map((s) => el("details", null, el("summary", { text: "the judge's rationale" }),
        el("div", { class: "text why", text: s.why || s.error }))));
  }

  function card(q) {
    const [a, b] = sides();
    const turns = Math.max(q.turns ? q.turns.length : 0, ...Object.values(q.answers).map((t) => t.length), 1);
    const parts = [el("h3", null, el("span", { class: "mono", text: q.id }), " ",
                      q.category ? el("span", { class: "tag", text: q.category }) : null,
                      q.lang ? el("span", { class: "tag", text: q.lang }) : null)];
    for (let turn = 1; turn <= turns; turn++) {
      const text = q.turns ? q.turns[turn - 1] : null;
      parts.push(el("div", { class: "question" }, el("div", { class: "role", text: `question, turn ${turn}` }),
                    el("div", { class: "text", text: text || "(the question's text is not in the run's question files)" })));
      const shown = b === undefined ? [a] : [a, b];
      parts.push(el("div", { class: "side", style: `--sides: ${shown.length}` }, shown.map((label) => side(q, label, turn))));
      parts.push(...verdicts(q, turn));
      if (q.reference && q.reference[turn - 1]) {
        parts.push(el("details", null, el("summary", { text: "reference answer" }),
                      el("div", { class: "text", text: q.reference[turn - 1] })));
      }
    }
    return el("div", { class: "card", "data-question": q.id }, parts);
  }

  function apply() {
    const t = performance.now();
    const terms = state.q.toLowerCase().split(/\s+/).filter(Boolean);
    let rows = qs.map((q, i) => i).filter((i) => (!state.category || qs[i].category === state.category)
                                              && terms.every((term) => hay[i].includes(term)));
    const [a, b] = sides();
    const keys = { order: null, right: (q) => meanScore(q, b), left: (q) => meanScore(q, a),
                   gap: (q) => (meanScore(q, b) === null || meanScore(q, a) === null ? null : meanScore(q, b) - meanScore(q, a)) };
    if (keys[state.sort]) {
      const key = keys[state.sort];
      rows = rows.map((i) => [i, key(qs[i])])  // highest first, questions without the score last
        .sort((x, y) => (x[1] === null) - (y[1] === null) || (y[1] - x[1]) || x[0] - y[0]).map((x) => x[0]);
    }
    const pages = Math.max(1, Math.ceil(rows.length / state.size));
    state.page = Math.min(state.page, pages - 1);
    const shown = rows.slice(state.page * state.size, (state.page + 1) * state.size);
    status.textContent = rows.length ? `${fmt(state.page * state.size + 1)}–${fmt(state.page * state.size + shown.length)} of `
      + `${fmt(rows.length)} questions` + (rows.length === qs.length ? "" : ` (of ${fmt(qs.length)})`) : "no question matches";
    body.replaceChildren(...shown.map((i) => card(qs[i])));
    pager.replaceChildren(
      el("button", { onclick: () => { state.page--; apply(); }, disabled: state.page === 0 }, "‹ previous"),
      el("span", null, `page ${fmt(state.page + 1)} of ${fmt(pages)}`),
      el("button", { onclick: () => { state.page++; apply(); }, disabled: state.page >= pages - 1 }, "next ›"));
    V.lastApplyMs = performance.now() - t;
  }

  if (!qs.length) {
    root.append(el("p", { class: "empty",
                          text: `No answers yet: python -m trainer answer --run ${RUN} --questions FILE --label base` }));
    return { root, apply() {} };
  }
  const categories = [...new Set(qs.map((q) => q.category).filter(Boolean))].sort();
  const sortNames = { order: "question order", right: "score of the right side", left: "score of the left side",
                      gap: "right minus left" };
  root.append(el("div", { class: "toolbar" },
    el("input", { type: "search", placeholder: "search questions, answers, rationales", "aria-label": "search",
                  oninput: (e) => { state.q = e.target.value; state.page = 0; apply(); } }),
    el("label", null, "category", el("select", { onchange: (e) => { state.category = e.target.value; state.page = 0; apply(); } },
      el("option", { value: "" }, "all"), categories.map((c) => el("option", { value: c }, c)))),
    combos.length ? el("label", null, "side by side",
      el("select", { onchange: (e) => { state.pair = Number(e.target.value); apply(); } },
      combos.map(([x, y], k) => el("option", { value: k }, `${x} | ${y}`)))) : null,
    el("label", null, "sort", el("select", { onchange: (e) => { state.sort = e.target.value; apply(); } },
      Object.entries(sortNames).map(([k, v]) => el("option", { value: k }, v))))),
    status, body, pager);
  return { root, apply };
}
