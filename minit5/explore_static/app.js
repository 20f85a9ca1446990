// minit5 explore: draws what POST /api/generate returns (docs/explore.md describes every field), in English or
// in Chinese (LANGUAGES below).
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;     // GET /api/info: the model, defaults, limits
let trace = null;    // the last POST /api/generate answer
let selected = 0;    // the step shown in detail (0-based)
let playing = null;  // the timer of "play"
let startStep = null;  // ?step=N in the address: the step to show first
let language = "en";   // "en" or "zh": chosen by pickLanguage(), changed by the 中文 / English switch

// ---------------------------------------------------------------- the page's two languages
// The page's fixed words: index.html marks each element with data-text="key" and holds the English; this table
// holds both, so that switching back and forth needs no reload. One term per concept, as in docs/zh/glossary.md.
const LANGUAGES = {
  en: {
    "title": "minit5 · see it think", "tagline": "see it think", "loading": "loading the model…",
    "json-behind": "the JSON behind this page:", "prompt": "Prompt",
    "prompt-hint": "(English or Chinese; Ctrl+Enter runs it)", "try": "try:", "example": "Where is Ganymede?",
    "greedy": "greedy search", "sampling": "sampling", "beam": "beam search", "num-beams": "beams",
    "length-penalty": "length penalty", "temperature": "temperature", "seed": "seed",
    "max-new-tokens": "max new tokens", "generate": "Generate",
    "panel-prompt": "1 · The prompt as the model sees it", "panel-steps": "2 · The completion, step by step",
    "panel-attention": "3 · Cross-attention: where each step looks in the prompt", "panel-beams": "4 · The beam tree",
    "guide": "guide", "code": "code", "completion": "completion:", "decoder-block": "decoder block", "head": "head",
    "key-running": "kept as a beam", "key-finished": "finished hypothesis", "key-ended": "ended, not kept",
    "key-dropped": "dropped", "key-best": "the answer's path.", "key-numbers": "Numbers: summed log-probability.",
    "play": "▶ play", "stop": "■ stop", "play-title": "show the steps one by one",
  },
  zh: {
    "title": "minit5 · 看它思考", "tagline": "看它思考", "loading": "正在加载模型……",
    "json-behind": "本页背后的 JSON：", "prompt": "提示", "prompt-hint": "（中英文都可以；按 Ctrl+Enter 运行）",
    "try": "试试：", "example": "伽尼米德在哪里？",
    "greedy": "贪心搜索", "sampling": "采样", "beam": "束搜索", "num-beams": "束数", "length-penalty": "长度惩罚",
    "temperature": "温度", "seed": "随机种子", "max-new-tokens": "最多生成的词元数", "generate": "生成",
    "panel-prompt": "1 · 模型眼中的提示", "panel-steps": "2 · 逐步写出的补全",
    "panel-attention": "3 · 交叉注意力：每一步看向提示的哪里", "panel-beams": "4 · 束搜索树",
    "guide": "指南", "code": "代码", "completion": "补全：", "decoder-block": "解码器块", "head": "注意力头",
    "key-running": "保留为一条束", "key-finished": "完成的假设", "key-ended": "已结束、未保留",
    "key-dropped": "被淘汰", "key-best": "答案所在的路径。", "key-numbers": "数字是累计对数概率。",
    "play": "▶ 播放", "stop": "■ 停止", "play-title": "一步一步地播放",
  },
};

// The guide links (data-guide="key"): index.html holds the English page; the Chinese page is docs/zh/ with the
// heading that the link should open at. The code links are the same in both languages.
const GUIDE_ZH = {
  "explore-api": ["docs/zh/explore.md", "POST /api/generate", "docs/zh/explore.md"],
  "architecture-1": ["docs/zh/architecture.md", "## 1. 嵌入", "architecture 第 1 节：嵌入"],
  "architecture-6": ["docs/zh/architecture.md", "## 6. 交叉注意力", "architecture 第 6 节：交叉注意力"],
  "generation-1": ["docs/zh/generation.md", "## 1. 解码循环", "generation 第 1 节：解码循环"],
  "generation-4": ["docs/zh/generation.md", "## 4. 采样", "第 4 节：采样"],
  "generation-5": ["docs/zh/generation.md", "## 5. 束搜索", "generation 第 5 节：束搜索"],
};
const GUIDE_EN = {};  // filled from index.html on first use, to switch back

function t(key) { return LANGUAGES[language][key] ?? LANGUAGES.en[key] ?? key; }
const zh = () => language === "zh";
const known = (code) => typeof code === "string" && Object.hasOwn(LANGUAGES, code);

// The language to start in: ?lang= in the address, then the reader's last choice on this page, then the first of
// the browser's languages that is Chinese or English; English otherwise.
function pickLanguage() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (known(asked)) return asked;
  try {
    const saved = localStorage.getItem("minit5-explore-language");
    if (known(saved)) return saved;
  } catch (error) { /* storage refused (private mode): use the browser's languages */ }
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ""];
  for (const tag of wanted) {
    const code = String(tag).toLowerCase();
    if (code.startsWith("zh")) return "zh";
    if (code.startsWith("en")) return "en";
  }
  return "en";
}

// Put every fixed word, the guide links and what is drawn into the current language.
function showLanguage() {
  document.documentElement.lang = zh() ? "zh-CN" : "en";
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-text]")) node.textContent = t(node.dataset.text);
  for (const link of document.querySelectorAll("a[data-guide]")) {
    const key = link.dataset.guide;
    GUIDE_EN[key] ??= [link.getAttribute("href"), link.textContent];
    if (zh() && GUIDE_ZH[key]) {
      const [page, find, text] = GUIDE_ZH[key];
      link.href = `/source/${page}?find=${encodeURIComponent(find)}#found`;
      link.textContent = text;
    } else {
      link.href = GUIDE_EN[key][0];
      link.textContent = GUIDE_EN[key][1];
    }
  }
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === language));
  }
  $("play").textContent = playing ? t("stop") : t("play");
  $("play").title = t("play-title");
  if (info) { showModel(); fillSelectors(); }
  if (trace) { draw(); showDone(); }
}

function switchLanguage(wanted) {
  if (!known(wanted) || wanted === language) return;
  const example = t("example");
  language = wanted;
  try { localStorage.setItem("minit5-explore-language", wanted); } catch (error) { /* not kept: fine */ }
  if (!trace && $("prompt").value === example) $("prompt").value = t("example");  // untouched: ask in the new language
  const params = new URLSearchParams(location.search);
  params.set("lang", wanted);
  history.replaceState(null, "", "?" + params.toString());
  showLanguage();
}

// ---------------------------------------------------------------- small helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "style") Object.assign(node.style, value);  // CSSOM, not a style="" attribute: CSP allows it
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
                           title: `id ${token.id} · ${zh() ? "片段" : "piece"} ${token.piece}`}, el("b", {text: label(token)}));
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
  params.set("lang", language);
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
  $("status").textContent = zh() ? "思考中……" : "thinking…";
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
    showDone();
  } catch (error) {
    $("status").className = "error";
    $("status").textContent = error.message;
  } finally {
    $("run").disabled = false;
  }
}

function showDone() {
  $("status").className = "";
  $("status").textContent = zh() ? `${trace.steps.length} 步，用时 ${trace.seconds.toFixed(2)} 秒`
                                 : `${trace.steps.length} steps in ${trace.seconds.toFixed(2)} s`;
}

// ---------------------------------------------------------------- panel 1: the prompt
function drawPrompt() {
  const prompt = trace.prompt;
  const share = Math.min(1, prompt.length / prompt.window);
  const over = prompt.length > prompt.window;
  $("prompt-length").replaceChildren(
    el("span", {text: zh() ? `${prompt.length} 个词元；训练时的窗口是 ${prompt.window} 个词元` +
                             (over ? "。提示比模型训练时的长，结果可能变差" : "")
                           : `${prompt.length} tokens of the ${prompt.window}-token training window` +
                             (over ? " — longer than the model was trained on: expect drift" : "")}),
    el("span", {class: "window"}, el("span", {class: over ? "fill over" : "fill", style: {width: `${100 * share}%`}})));
  $("prompt-tokens").replaceChildren(...prompt.tokens.map((t) => tokenChip(t)));
}

// ---------------------------------------------------------------- panel 2: the steps
function drawSteps() {
  $("completion").textContent = trace.completion.text || (zh() ? "（没有文字：只有特殊词元）"
                                                                  : "(no text: only special tokens)");
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
    how = zh() ? `束搜索：这些是答案所在的那条束在这一步提出的词元。所有束的候选放在一起，按累计对数概率取最好的 ` +
                 `${2 * s.num_beams} 个继续往下走（见下面的树）。`
               : "Beam search: these are the tokens that the answer's beam proposed at this step. Across all beams, " +
                 `the ${2 * s.num_beams} best continuations by summed log-probability go on (the tree below).`;
  } else if (sampling) {
    const filters = [zh() ? `温度 ${s.temperature}` : `temperature ${s.temperature}`, s.top_k ? `top-k ${s.top_k}` : "",
                     s.top_p < 1 ? `top-p ${s.top_p}` : ""].filter(Boolean).join(zh() ? "、" : ", ");
    how = zh() ? `采样：经过${filters}之后，${info.config.vocab_size} 个词元里还剩 ${step.kept} 个；选中的词元是按右边一列` +
                 `的概率抽出来的（随机种子 ${s.seed}）。`
               : `Sampling: ${filters} leave ${step.kept} of ${info.config.vocab_size} tokens; the chosen token was ` +
                 `drawn from the right-hand column (seed ${s.seed}).`;
  } else {
    how = zh() ? "贪心搜索：取概率最大的词元。" : "Greedy search takes the most likely token.";
  }
  const header = el("tr", {}, el("th", {text: "#"}), el("th", {text: zh() ? "词元" : "token"}), el("th", {text: "id"}),
                    el("th", {text: sampling ? (zh() ? "模型给出的概率" : "model's probability")
                                             : (zh() ? "概率" : "probability")}));
  if (sampling) header.append(el("th", {text: zh() ? "经过温度 / top-k / top-p 之后" : "after temperature / top-k / top-p"}));
  if (!trace.beams) header.append(el("th", {text: "logit"}));
  const rows = step.candidates.map((c, rank) => {
    const row = el("tr", {class: c.chosen ? "chosen" : ""},
                   el("td", {text: rank + 1}), el("td", {}, tokenChip(c, "inline")), el("td", {text: c.id}),
                   bar(c.p));
    if (sampling) row.append(c.p_filtered > 0 ? bar(c.p_filtered, "after")
                                    : el("td", {class: "removed", text: zh() ? "已被过滤" : "filtered out"}));
    if (!trace.beams) row.append(el("td", {class: "num", text: c.logit.toFixed(2)}));
    return row;
  });
  const title = zh()
    ? [`第 ${step.step} 步（共 ${trace.steps.length} 步）：解码器读入 `, tokenChip(step.input, "inline"),
       "，选出 ", tokenChip(step.chosen, "inline selected"), "。"]
    : [`Step ${step.step} of ${trace.steps.length}: the decoder reads `, tokenChip(step.input, "inline"),
       " and chooses ", tokenChip(step.chosen, "inline selected"), "."];
  $("step-detail").replaceChildren(
    el("p", {class: "step-title"}, ...title),
    el("p", {class: "how", text: how}),
    el("table", {class: "candidates"}, el("thead", {}, header), el("tbody", {}, ...rows)));
}

function bar(p, extra = "") {
  return el("td", {class: "bar " + extra}, el("span", {class: "fill", style: {width: `${Math.max(0.5, 100 * p)}%`}}),
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
  const options = (n, name) => [el("option", {value: "mean", text: zh() ? `全部 ${n} 个取平均` : `mean of all ${n}`}),
                                ...Array.from({length: n}, (_, i) => el("option", {value: i, text: `${name} ${i}`}))];
  const keep = [$("layer").value, $("head").value];
  $("layer").replaceChildren(...options(c.num_decoder_layers, zh() ? "块" : "block"));
  $("head").replaceChildren(...options(c.num_heads, zh() ? "头" : "head"));
  if (keep[0]) $("layer").value = keep[0];
  if (keep[1]) $("head").value = keep[1];
}

function drawAttention() {
  const prompt = trace.prompt.tokens;
  const rows = trace.steps.map(attentionRow);
  const largest = Math.max(1e-9, ...rows.flat());
  const grid = el("div", {class: "grid",
                          style: {gridTemplateColumns: `max-content repeat(${prompt.length}, minmax(1.6em, 1fr))`}});
  grid.append(el("span", {class: "corner", text: zh() ? "步 ↓ / 提示 →" : "step ↓ / prompt →"}));
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
      const cell = el("span", {class: "cell" + rowClass,
                               title: zh() ? `第 ${i + 1} 步 → ${label(prompt[j])}：${w.toFixed(3)}`
                                           : `step ${i + 1} → ${label(prompt[j])}: ${w.toFixed(3)}`,
                               style: {background: `rgba(37, 99, 235, ${(w / largest).toFixed(3)})`}});
      cell.addEventListener("click", () => select(i));
      grid.append(cell);
    });
  });
  $("attention-grid").replaceChildren(grid);
  $("attention-note").textContent = zh() ? `颜色最深 = ${largest.toFixed(2)}；每一行之和为 1`
                                         : `darkest = ${largest.toFixed(2)}; each row sums to 1`;
  const mine = rows[selected].map((w, j) => [w, j]).sort((a, b) => b[0] - a[0]).slice(0, 3);
  const most = mine.flatMap(([w, j], k) => [k ? (zh() ? "、" : ", ") : "", tokenChip(prompt[j], "inline"),
                                            ` ${w.toFixed(2)}`]);
  const chosen = tokenChip(trace.steps[selected].chosen, "inline");
  $("attention-top").replaceChildren(...(zh() ? [`第 ${selected + 1} 步（选出 `, chosen, "）最关注 ", ...most, "。"]
                                              : [`Step ${selected + 1} (choosing `, chosen, ") looks most at ", ...most, "."]));
}

// ---------------------------------------------------------------- panel 4: the beam tree
const STATUS_ZH = {running: "保留为一条束", finished: "完成的假设", ended: "已结束、未保留", dropped: "被淘汰"};

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
    title.textContent = zh() ? `第 ${node.step} 步：${node.piece}（id ${node.token}），对数概率 ${node.log_prob.toFixed(3)}，` +
                               `累计 ${node.score.toFixed(3)}，${STATUS_ZH[node.status] ?? node.status}`
                             : `step ${node.step}: ${node.piece} (id ${node.token}), log p ${node.log_prob.toFixed(3)}, ` +
                               `sum ${node.score.toFixed(3)}, ${node.status}`;
    group.append(title);
    const rect = document.createElementNS(svgNS, "rect");
    Object.entries({width: 74, height: 20, rx: 4}).forEach(([k, v]) => rect.setAttribute(k, v));
    const text = document.createElementNS(svgNS, "text");
    text.setAttribute("x", 4);
    text.setAttribute("y", 14);
    const name = node.step === 0 ? (zh() ? "起点" : "start") : label(node);
    const score = Math.abs(node.score) < 0.05 ? "0.0" : node.score.toFixed(1);  // not "-0.0"
    text.textContent = (name.length > 7 ? name.slice(0, 6) + "…" : name) + (node.step ? ` ${score}` : "");
    group.append(rect, text);
  }
  $("beam-tree").replaceChildren(svg);
  const lp = trace.settings.length_penalty;
  $("finished-note").textContent = zh()
    ? `完成的假设，得分从高到低：得分 = 累计对数概率 / 长度^${lp}（length_penalty ${lp}）；第一个就是答案。`
    : `Finished hypotheses, best first: score = summed log-probability / length^${lp} (length_penalty ${lp}); ` +
      "the answer is the first.";
  const columns = zh() ? ["#", "文本", "词元数", "得分"] : ["#", "text", "tokens", "score"];
  $("finished").replaceChildren(
    el("tr", {}, ...columns.map((name) => el("th", {text: name}))),
    ...finished.map((h, i) => el("tr", {class: i === 0 ? "chosen" : ""}, el("td", {text: i + 1}),
                                 el("td", {text: h.text || (zh() ? "（没有文字）" : "(no text)")}), el("td", {text: h.length}),
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
  if (playing) { clearInterval(playing); playing = null; $("play").textContent = t("play"); select(selected); return; }
  $("play").textContent = t("stop");
  playing = setInterval(() => {
    if (selected >= trace.steps.length - 1) { play(); return; }
    select(selected + 1);
  }, 700);
  select(0);
}

// ---------------------------------------------------------------- start
function showModel() {
  const c = info.config;
  $("model-line").textContent = zh()
    ? `${info.model}：${Math.round(info.parameters / 1e4).toLocaleString("en")} 万个参数，${c.num_layers}+${c.num_decoder_layers} ` +
      `个块，${c.num_heads} 个注意力头，d_model ${c.d_model}，${info.tokenizer}`
    : `${info.model}: ${(info.parameters / 1e6).toFixed(1)}M parameters, ` +
      `${c.num_layers}+${c.num_decoder_layers} blocks, ${c.num_heads} heads, d_model ${c.d_model}, ${info.tokenizer}`;
}

async function start() {
  language = pickLanguage();
  if (language !== "en") $("prompt").value = t("example");
  showLanguage();
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => switchLanguage(button.dataset.lang));
  }
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
    $("model-line").textContent = (zh() ? "连不上服务器：" : "cannot reach the server: ") + error.message;
    return;
  }
  showModel();
  const c = info.config;
  $("max_new_tokens").max = info.limits.max_new_tokens;
  $("num_beams").max = info.limits.num_beams;
  $("top_k").max = c.vocab_size;
  fillSelectors();
  showMode();
  if (loadFromAddress()) run();
}

start();
