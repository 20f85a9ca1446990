// minit5 explore: draws what POST /api/generate returns (docs/explore.md describes every field).
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;     // GET /api/info: the model, defaults, limits
let trace = null;    // the last POST /api/generate answer
let selected = 0;    // the step shown in detail (0-based)
let playing = null;  // the timer of "play"
let startStep = null;  // ?step=N in the address: the step to show first

// ---------------------------------------------------------------- small helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "style") node.style.cssText = value;  // CSSOM: the server's CSP refuses style attributes
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// A token as the page shows it: its text with visible spaces, or its piece when it adds no text alone
// (one byte of a multi-byte character, shown as <0xE6>).
function label(token) {
  if (!token.text) return token.piece;
  return token.text.replace(/ /g, "␣").replace(/\n/g, "⏎").replace(/\t/g, "⇥");
}

function percent(p) {
  if (p === null || p === undefined) return "";
  if (p >= 0.1) return (100 * p).toFixed(1) + "%";
  return p > 0 ? (100 * p).toPrecision(2) + "%" : "0";
}

function tokenChip(token, extra = "") {
  const chip = el("span", {class: "token " + extra + (token.text ? "" : " byte"),
                           title: `id ${token.id} · piece ${token.piece}`}, el("b", {text: label(token)}));
  if (!extra.includes("inline")) chip.append(el("i", {text: token.id}));  // inline chips: the id is beside them
  return chip;
}

// ---------------------------------------------------------------- the form
function mode() { return document.querySelector("input[name=mode]:checked").value; }

function request() {
  const number = (id) => Number($(id).value);
  const body = {prompt: $("prompt").value, max_new_tokens: number("max_new_tokens")};
  if (mode() === "sample") {
    Object.assign(body, {do_sample: true, temperature: number("temperature"), top_k: number("top_k"),
                         top_p: number("top_p"), seed: number("seed")});
  } else if (mode() === "beam") {
    Object.assign(body, {num_beams: number("num_beams"), length_penalty: number("length_penalty")});
  }
  return body;
}

function showMode() { $("settings").className = "settings mode-" + mode(); }

// The form's state in the address, so that a trace can be shared or reloaded.
function saveToAddress(body) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(body)) params.set(key, value);
  history.replaceState(null, "", "?" + params.toString());
}

function loadFromAddress() {
  const params = new URLSearchParams(location.search);
  if (!params.has("prompt")) return false;
  $("prompt").value = params.get("prompt");
  for (const key of ["max_new_tokens", "num_beams", "length_penalty", "temperature", "top_k", "top_p", "seed"]) {
    if (params.has(key)) $(key).value = params.get(key);
  }
  if (params.has("step")) startStep = Number(params.get("step")) - 1;
  const chosen = params.get("do_sample") === "true" ? "sample" : Number(params.get("num_beams") || 1) > 1 ? "beam"
               : "greedy";
  document.querySelector(`input[name=mode][value=${chosen}]`).checked = true;
  showMode();
  return true;
}

async function run(event) {
  if (event) event.preventDefault();
  const body = request();
  $("run").disabled = true;
  $("status").className = "";
  $("status").textContent = "thinking…";
  try {
    const response = await fetch("/api/generate", {method: "POST", headers: {"Content-Type": "application/json"},
                                                   body: JSON.stringify(body)});
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    saveToAddress(body);
    trace = answer;
    selected = Number.isInteger(startStep) ? Math.max(0, Math.min(trace.steps.length - 1, startStep)) : 0;
    startStep = null;
    draw();
    $("status").textContent = `${trace.steps.length} steps in ${trace.seconds.toFixed(2)} s`;
  } catch (error) {
    $("status").className = "error";
    $("status").textContent = error.message;
  } finally {
    $("run").disabled = false;
  }
}

// ---------------------------------------------------------------- panel 1: the prompt
function drawPrompt() {
  const prompt = trace.prompt;
  const share = Math.min(1, prompt.length / prompt.window);
  const over = prompt.length > prompt.window;
  $("prompt-length").replaceChildren(
    el("span", {text: `${prompt.length} tokens of the ${prompt.window}-token training window` +
                      (over ? " — longer than the model was trained on: expect drift" : "")}),
    el("span", {class: "window"}, el("span", {class: over ? "fill over" : "fill", style: `width:${100 * share}%`})));
  $("prompt-tokens").replaceChildren(...prompt.tokens.map((t) => tokenChip(t)));
}

// ---------------------------------------------------------------- panel 2: the steps
function drawSteps() {
  $("completion").textContent = trace.completion.text || "(no text: only special tokens)";
  $("completion").setAttribute("data-ids", trace.completion.ids.join(" "));
  $("step-strip").replaceChildren(...trace.steps.map((step, i) => {
    const chip = tokenChip(step.chosen, i === selected ? "selected" : i > selected && playing ? "later" : "");
    chip.addEventListener("click", () => select(i));
    return chip;
  }));
  drawDetail();
}

function drawDetail() {
  const step = trace.steps[selected];
  const s = trace.settings;
  const sampling = s.do_sample;
  let how;
  if (trace.beams) {
    how = "Beam search: these are the tokens that the answer's beam proposed at this step. Across all beams, the " +
          `${2 * s.num_beams} best continuations by summed log-probability go on (the tree below).`;
  } else if (sampling) {
    const filters = [`temperature ${s.temperature}`, s.top_k ? `top-k ${s.top_k}` : "", s.top_p < 1 ? `top-p ${s.top_p}` : ""]
      .filter(Boolean).join(", ");
    how = `Sampling: ${filters} leave ${step.kept} of ${info.config.vocab_size} tokens; the chosen token was drawn from ` +
          "the right-hand column (seed " + s.seed + ").";
  } else {
    how = "Greedy search takes the most likely token.";
  }
  const header = el("tr", {}, el("th", {text: "#"}), el("th", {text: "token"}), el("th", {text: "id"}),
                    el("th", {text: sampling ? "model's probability" : "probability"}));
  if (sampling) header.append(el("th", {text: "after temperature / top-k / top-p"}));
  if (!trace.beams) header.append(el("th", {text: "logit"}));
  const rows = step.candidates.map((c, rank) => {
    const row = el("tr", {class: c.chosen ? "chosen" : ""},
                   el("td", {text: rank + 1}), el("td", {}, tokenChip(c, "inline")), el("td", {text: c.id}),
                   bar(c.p));
    if (sampling) row.append(c.p_filtered > 0 ? bar(c.p_filtered, "after") : el("td", {class: "removed", text: "filtered out"}));
    if (!trace.beams) row.append(el("td", {class: "num", text: c.logit.toFixed(2)}));
    return row;
  });
  $("step-detail").replaceChildren(
    el("p", {class: "step-title"},
       `Step ${step.step} of ${trace.steps.length}: the decoder reads `, tokenChip(step.input, "inline"),
       " and chooses ", tokenChip(step.chosen, "inline selected"), "."),
    el("p", {class: "how", text: how}),
    el("table", {class: "candidates"}, el("thead", {}, header), el("tbody", {}, ...rows)));
}

function bar(p, extra = "") {
  return el("td", {class: "bar " + extra}, el("span", {class: "fill", style: `width:${Math.max(0.5, 100 * p)}%`}),
            el("span", {class: "value", text: percent(p)}));
}

// ---------------------------------------------------------------- panel 3: cross-attention
function attentionRow(step) {
  // step.attention: [layer][head][prompt token]; average what the selectors say
  const layer = $("layer").value, head = $("head").value;
  const layers = layer === "mean" ? step.attention : [step.attention[Number(layer)]];
  const length = trace.prompt.length;
  const row = new Array(length).fill(0);
  let count = 0;
  for (const heads of layers) {
    for (const weights of head === "mean" ? heads : [heads[Number(head)]]) {
      for (let j = 0; j < length; j++) row[j] += weights[j];
      count++;
    }
  }
  return row.map((v) => v / count);
}

function fillSelectors() {
  const c = info.config;
  const options = (n, name) => [el("option", {value: "mean", text: `mean of all ${n}`}),
                                ...Array.from({length: n}, (_, i) => el("option", {value: i, text: `${name} ${i}`}))];
  const keep = [$("layer").value, $("head").value];
  $("layer").replaceChildren(...options(c.num_decoder_layers, "block"));
  $("head").replaceChildren(...options(c.num_heads, "head"));
  if (keep[0]) $("layer").value = keep[0];
  if (keep[1]) $("head").value = keep[1];
}

function drawAttention() {
  const prompt = trace.prompt.tokens;
  const rows = trace.steps.map(attentionRow);
  const largest = Math.max(1e-9, ...rows.flat());
  const grid = el("div", {class: "grid", style: `grid-template-columns: max-content repeat(${prompt.length}, minmax(1.6em, 1fr))`});
  grid.append(el("span", {class: "corner", text: "step ↓ / prompt →"}));
  for (const token of prompt) {  // short labels stay upright; longer ones (<0xE4>, ▁Ganymede) run vertically
    const text = label(token);
    grid.append(el("span", {class: [...text].length > 2 ? "col vertical" : "col", title: `id ${token.id}`, text}));
  }
  rows.forEach((row, i) => {
    const step = trace.steps[i];
    const rowClass = i === selected ? " selected" : i > selected && playing ? " later" : "";
    const head = el("span", {class: "rowhead" + rowClass, text: `${i + 1} ${label(step.chosen)}`});
    head.addEventListener("click", () => select(i));
    grid.append(head);
    row.forEach((w, j) => {
      const cell = el("span", {class: "cell" + rowClass, title: `step ${i + 1} → ${label(prompt[j])}: ${w.toFixed(3)}`,
                               style: `background: rgba(37, 99, 235, ${(w / largest).toFixed(3)})`});
      cell.addEventListener("click", () => select(i));
      grid.append(cell);
    });
  });
  $("attention-grid").replaceChildren(grid);
  $("attention-note").textContent = `darkest = ${largest.toFixed(2)}; each row sums to 1`;
  const mine = rows[selected].map((w, j) => [w, j]).sort((a, b) => b[0] - a[0]).slice(0, 3);
  $("attention-top").replaceChildren(`Step ${selected + 1} (choosing `, tokenChip(trace.steps[selected].chosen, "inline"),
    ") looks most at ", ...mine.flatMap(([w, j], k) => [k ? ", " : "", tokenChip(prompt[j], "inline"), ` ${w.toFixed(2)}`]),
    ".");
}

// ---------------------------------------------------------------- panel 4: the beam tree
function drawBeams() {
  const panel = $("beam-panel");
  if (!trace.beams) { panel.hidden = true; return; }
  panel.hidden = false;
  const {nodes, finished, best} = trace.beams;
  const onPath = new Set();
  for (let n = best; n !== null && n !== undefined; n = nodes[n].parent) onPath.add(n);
  // layout: one column per step, the candidates of a step top to bottom, best first
  const across = 92, down = 26, pad = 8;
  const position = {};
  const rowsOf = {};
  for (const node of nodes) {
    const row = rowsOf[node.step] = (rowsOf[node.step] ?? -1) + 1;
    position[node.id] = [pad + node.step * across, pad + row * down];
  }
  const width = pad * 2 + (Math.max(...nodes.map((n) => n.step)) + 1) * across;
  const height = pad * 2 + (Math.max(...Object.values(rowsOf)) + 1) * down;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  for (const node of nodes) {
    if (node.parent === null) continue;
    const [x0, y0] = position[node.parent], [x1, y1] = position[node.id];
    add("path", {d: `M${x0 + 74} ${y0 + 10} C${x0 + 84} ${y0 + 10} ${x1 - 10} ${y1 + 10} ${x1} ${y1 + 10}`,
                 class: "edge " + node.status + (onPath.has(node.id) ? " best" : "")});
  }
  for (const node of nodes) {
    const [x, y] = position[node.id];
    const group = add("g", {class: "node " + node.status + (onPath.has(node.id) ? " best" : ""),
                            transform: `translate(${x} ${y})`});
    const title = document.createElementNS(svgNS, "title");
    title.textContent = `step ${node.step}: ${node.piece} (id ${node.token}), log p ${node.log_prob.toFixed(3)}, ` +
                        `sum ${node.score.toFixed(3)}, ${node.status}`;
    group.append(title);
    const rect = document.createElementNS(svgNS, "rect");
    Object.entries({width: 74, height: 20, rx: 4}).forEach(([k, v]) => rect.setAttribute(k, v));
    const text = document.createElementNS(svgNS, "text");
    text.setAttribute("x", 4);
    text.setAttribute("y", 14);
    const name = node.step === 0 ? "start" : label(node);
    const score = Math.abs(node.score) < 0.05 ? "0.0" : node.score.toFixed(1);  // not "-0.0"
    text.textContent = (name.length > 7 ? name.slice(0, 6) + "…" : name) + (node.step ? ` ${score}` : "");
    group.append(rect, text);
  }
  $("beam-tree").replaceChildren(svg);
  const lp = trace.settings.length_penalty;
  $("finished-note").textContent = `Finished hypotheses, best first: score = summed log-probability / ` +
    `length^${lp} (length_penalty ${lp}); the answer is the first.`;
  $("finished").replaceChildren(
    el("tr", {}, el("th", {text: "#"}), el("th", {text: "text"}), el("th", {text: "tokens"}), el("th", {text: "score"})),
    ...finished.map((h, i) => el("tr", {class: i === 0 ? "chosen" : ""}, el("td", {text: i + 1}),
                                 el("td", {text: h.text || "(no text)"}), el("td", {text: h.length}),
                                 el("td", {class: "num", text: (Math.abs(h.score) < 5e-4 ? 0 : h.score).toFixed(3)}))));
}

// ---------------------------------------------------------------- drawing and stepping
function draw() {
  for (const id of ["prompt-panel", "steps-panel", "attention-panel"]) $(id).hidden = false;
  drawPrompt();
  drawSteps();
  drawAttention();
  drawBeams();
}

function select(i) {
  if (!trace) return;
  selected = Math.max(0, Math.min(trace.steps.length - 1, i));
  drawSteps();
  drawAttention();
}

function play() {
  if (!trace) return;
  if (playing) { clearInterval(playing); playing = null; $("play").textContent = "▶ play"; select(selected); return; }
  $("play").textContent = "■ stop";
  playing = setInterval(() => {
    if (selected >= trace.steps.length - 1) { play(); return; }
    select(selected + 1);
  }, 700);
  select(0);
}

// ---------------------------------------------------------------- start
async function start() {
  $("form").addEventListener("submit", run);
  $("prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(e); });
  for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", showMode);
  for (const button of document.querySelectorAll("[data-example]")) {
    button.addEventListener("click", () => { $("prompt").value = button.dataset.example; run(); });
  }
  $("layer").addEventListener("change", () => trace && drawAttention());
  $("head").addEventListener("change", () => trace && drawAttention());
  $("play").addEventListener("click", play);
  document.addEventListener("keydown", (e) => {
    if (!trace || ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) return;
    if (e.key === "ArrowRight") select(selected + 1);
    if (e.key === "ArrowLeft") select(selected - 1);
  });
  try {
    info = await (await fetch("/api/info")).json();
  } catch (error) {
    $("model-line").textContent = "cannot reach the server: " + error.message;
    return;
  }
  const c = info.config;
  $("model-line").textContent = `${info.model}: ${(info.parameters / 1e6).toFixed(1)}M parameters, ` +
    `${c.num_layers}+${c.num_decoder_layers} blocks, ${c.num_heads} heads, d_model ${c.d_model}, ${info.tokenizer}`;
  $("max_new_tokens").max = info.limits.max_new_tokens;
  $("num_beams").max = info.limits.num_beams;
  $("top_k").max = c.vocab_size;
  fillSelectors();
  showMode();
  if (loadFromAddress()) run();
}

start();
