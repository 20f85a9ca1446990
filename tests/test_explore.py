"""minit5/explore.py, the "see it think" page: its JSON endpoint on a real server (the completion is
model.generate's, the numbers add up, bad requests get a 4xx and the server keeps serving) and the page itself in
headless Chromium.

The browser test needs Debian's chromium (`apt-get install chromium`; .ci/run installs it). Without it the test
fails, unless MINIT5_SKIP_BROWSER=1 says to skip it on purpose.
"""

import html.parser
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import torch

from minit5 import T5, T5Config, Tokenizer
from minit5.explore import QUEUE, ExploreServer, Explorer
from minit5.trace import cross_attention

ROOT = Path(__file__).resolve().parents[1]
GANYMEDE = "Where is Ganymede?"


def tiny_model(seed: int = 0, eos_margin: float = 0.6):
    """A random byte-level T5 (2+2 blocks, 4 heads) whose EOS logit sits about eos_margin below the best one, so
    that generations end at varied steps (a random model almost never says EOS)."""
    torch.manual_seed(seed)
    model = T5(T5Config(vocab_size=384, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2,
                        feed_forward_proj="gated-gelu", tie_word_embeddings=False)).eval()
    g = torch.Generator().manual_seed(11)
    input_ids, labels = torch.randint(3, 259, (8, 12), generator=g), torch.randint(3, 259, (8, 12), generator=g)
    seen = []
    hook = model.decoder.register_forward_hook(lambda module, args, out: seen.append(out))
    with torch.no_grad():
        logits, _ = model(input_ids, labels=labels)
        hook.remove()
        states = seen[0].reshape(-1, seen[0].shape[-1])  # (B*T, D): what the output layer reads
        target = (logits.max(-1).values - eos_margin).reshape(-1, 1)
        model.lm_head.weight[1] = torch.linalg.lstsq(states, target).solution[:, 0]
    return model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explore_model")
    tiny_model().save_pretrained(folder)
    Tokenizer.byte_level().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def server(folder):
    explorer = Explorer(T5.from_pretrained(folder), Tokenizer.from_pretrained(folder), str(folder))
    server = ExploreServer(explorer, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server, method: str, path: str, body=None, headers=None):
    """(status, decoded JSON or text) of one request on a fresh connection. body: a dict (sent as JSON) or bytes."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=60)
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    if body is not None:  # as the page sends it (tests/test_explore_safety.py: other content types are refused)
        headers = {"Content-Type": "application/json", **(headers or {})}
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        return response.status, json.loads(data)
    return response.status, data.decode("utf-8")


def generate(server, **body):
    status, answer = request(server, "POST", "/api/generate", body)
    assert status == 200, answer
    return answer


def reference(folder, prompt, settings):
    """What model.generate gives for these settings, on a model loaded afresh: the generated ids."""
    model, tokenizer = T5.from_pretrained(folder), Tokenizer.from_pretrained(folder)
    kwargs = {k: v for k, v in settings.items() if k not in ("seed", "top")}
    out = model.generate(torch.tensor([tokenizer.encode(prompt)]), generator=torch.Generator().manual_seed(
        settings["seed"]), **kwargs)
    return out[0, 1:].tolist(), model, tokenizer


# ---------------------------------------------------------------- the trace is model.generate's
CASES = {
    "greedy": dict(prompt=GANYMEDE, max_new_tokens=12),
    "greedy-to-limit": dict(prompt="2 + 2 =", max_new_tokens=12),
    "sampling": dict(prompt=GANYMEDE, max_new_tokens=12, do_sample=True, temperature=0.8, top_k=20, top_p=0.9,
                     seed=5),
    "sampling-hot": dict(prompt="伽尼米德在哪里？", max_new_tokens=8, do_sample=True, temperature=3.0, seed=1),
    "beam": dict(prompt=GANYMEDE, max_new_tokens=12, num_beams=3),
    "beam-lp-early": dict(prompt="2 + 2 =", max_new_tokens=10, num_beams=4, length_penalty=0.5, early_stopping=True),
}


@pytest.fixture(scope="module")
def traces(server):
    return {name: generate(server, **body) for name, body in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_completion_equals_model_generate(folder, traces, name):
    trace = traces[name]
    ids, model, tokenizer = reference(folder, CASES[name]["prompt"], trace["settings"])
    assert trace["completion"]["ids"] == ids
    assert trace["completion"]["text"] == tokenizer.decode(ids)
    assert [step["chosen"]["id"] for step in trace["steps"]] == ids
    prompt_ids = tokenizer.encode(CASES[name]["prompt"])
    assert [t["id"] for t in trace["prompt"]["tokens"]] == prompt_ids
    assert trace["prompt"]["length"] == len(prompt_ids) and trace["prompt"]["window"] == 512


def test_the_cases_cover_early_ends_and_the_length_limit(traces):
    ends = {name: (len(t["steps"]), t["completion"]["ids"][-1] == 1) for name, t in traces.items()}
    assert ends["greedy"][1] and ends["beam"][1], ends  # ended by </s> before the limit
    assert ends["greedy-to-limit"] == (12, False), ends


@pytest.mark.parametrize("name", list(CASES))
def test_step_distributions_add_up(folder, traces, name):
    trace = traces[name]
    settings = trace["settings"]
    model, tokenizer = T5.from_pretrained(folder), Tokenizer.from_pretrained(folder)
    answer = [0] + trace["completion"]["ids"]
    with torch.no_grad():  # the model's own distribution along the chosen tokens, recomputed independently
        logits, _ = model(torch.tensor([tokenizer.encode(CASES[name]["prompt"])]),
                          decoder_input_ids=torch.tensor([answer[:-1]]))
    probs = logits[0].softmax(-1)  # (T, V)
    for t, step in enumerate(trace["steps"]):
        candidates = step["candidates"]
        chosen = [c for c in candidates if c["chosen"]]
        assert len(chosen) == 1 and chosen[0]["id"] == step["chosen"]["id"], step["step"]
        assert step["input"]["id"] == answer[t]
        assert sum(c["p"] for c in candidates) <= 1 + 1e-4
        assert len({c["id"] for c in candidates}) == len(candidates)
        for c in candidates:  # the probabilities shown are the model's at this step
            assert abs(c["p"] - float(probs[t, c["id"]])) < 1e-4, (step["step"], c)
        if settings["do_sample"]:
            assert sum(c["p_filtered"] for c in candidates) <= 1 + 1e-4
            assert chosen[0]["p_filtered"] > 0  # a token the filters removed is never drawn
            assert 1 <= step["kept"] <= (settings["top_k"] or 384)
        else:
            assert all(c["p_filtered"] is None for c in candidates)
        if not settings["do_sample"] and settings["num_beams"] == 1:  # greedy: the most likely token
            assert chosen[0]["p"] == max(c["p"] for c in candidates)


def test_filters_change_the_distribution(traces):
    step = traces["sampling"]["steps"][0]
    kept = [c for c in step["candidates"] if c["p_filtered"] > 0]
    assert step["kept"] <= 20  # top-k 20
    assert any(c["p_filtered"] > c["p"] for c in kept)  # what survives the filters gets the mass of the rest


@pytest.mark.parametrize("name", list(CASES))
def test_attention_rows_sum_to_one(traces, name):
    trace = traces[name]
    for step in trace["steps"]:
        attention = torch.tensor(step["attention"])  # (layers, heads, prompt tokens)
        assert attention.shape == (2, 4, trace["prompt"]["length"])
        assert torch.allclose(attention.sum(-1), torch.ones(2, 4), atol=1e-3), step["step"]
        assert (attention >= 0).all()


def test_cross_attention_is_the_one_the_model_uses(folder):
    """The recorded probabilities, times the values, projected by o, give what each cross-attention returned."""
    model, tokenizer = T5.from_pretrained(folder), Tokenizer.from_pretrained(folder)
    input_ids = torch.tensor([tokenizer.encode(GANYMEDE)])
    decoder_input_ids = torch.tensor([[0, 90, 101, 102]])
    maps = cross_attention(model, input_ids, decoder_input_ids)  # (layers, H, T, S)
    outputs, contexts = [], []

    def keep(module, args, out):  # what each cross-attention read (the encoder output) and returned
        outputs.append(out)
        contexts.append(args[2])

    hooks = [block.cross_attn.register_forward_hook(keep) for block in model.decoder.blocks]
    with torch.no_grad():
        model(input_ids, decoder_input_ids=decoder_input_ids)
        for hook in hooks:
            hook.remove()
        for layer, block in enumerate(model.decoder.blocks):
            attn = block.cross_attn
            v = attn.split_heads(attn.v(contexts[layer]))  # (1, H, S, Dh)
            mixed = (maps[layer][None] @ v).transpose(1, 2).reshape(1, 4, -1)  # (1, T, H*Dh)
            assert torch.allclose(attn.o(mixed), outputs[layer], atol=1e-5), layer


def test_beam_tree(traces):
    for name in ("beam", "beam-lp-early"):
        trace = traces[name]
        beams, settings = trace["beams"], trace["settings"]
        nodes = beams["nodes"]
        assert nodes[0]["parent"] is None and nodes[0]["step"] == 0
        for node in nodes[1:]:  # every candidate extends a beam that was running one step earlier
            parent = nodes[node["parent"]]
            assert parent["status"] == "running" and parent["step"] == node["step"] - 1
            assert node["score"] == pytest.approx(parent["score"] + node["log_prob"], abs=1e-3)
        steps = max(n["step"] for n in nodes)
        for step in range(1, steps + 1):
            at_step = [n for n in nodes if n["step"] == step]
            assert len(at_step) == 2 * settings["num_beams"]  # the 2 × beams candidates of that step
            assert sum(n["status"] == "running" for n in at_step) <= settings["num_beams"]
        path, node = [], beams["best"]  # the best node's path is the completion
        while nodes[node]["parent"] is not None:
            path.append(nodes[node]["token"])
            node = nodes[node]["parent"]
        assert path[::-1] == trace["completion"]["ids"]
        finished = beams["finished"]
        assert finished[0]["ids"] == trace["completion"]["ids"] and finished[0]["node"] == beams["best"]
        assert [h["score"] for h in finished] == sorted((h["score"] for h in finished), reverse=True)
        assert 1 <= len(finished) <= settings["num_beams"]
        for h in finished:
            assert nodes[h["node"]]["status"] == "finished"
            lp = settings["length_penalty"]
            assert h["score"] == pytest.approx(nodes[h["node"]]["score"] / h["length"] ** lp, abs=1e-3)


# ---------------------------------------------------------------- bad requests
def too_many_tokens():
    return "伽" * 400  # 400 characters, 1,200 byte tokens: over the 1,024-token limit


BAD = [  # (what, method, path, body, headers, status)
    ("malformed JSON", "POST", "/api/generate", b'{"prompt": "Where', {}, 400),
    ("not UTF-8", "POST", "/api/generate", b'{"prompt": "\xff\xfe"}', {}, 400),
    ("a JSON list", "POST", "/api/generate", b"[1, 2]", {}, 400),
    ("no prompt", "POST", "/api/generate", {}, {}, 400),
    ("an empty prompt", "POST", "/api/generate", {"prompt": "   "}, {}, 400),
    ("a prompt that is a number", "POST", "/api/generate", {"prompt": 5}, {}, 400),
    ("an unknown field", "POST", "/api/generate", {"prompt": "x", "beams": 4}, {}, 400),
    ("a million characters", "POST", "/api/generate", {"prompt": "a" * 1_000_000}, {}, 413),
    ("5,000 characters", "POST", "/api/generate", {"prompt": "a" * 5000}, {}, 413),
    ("1,200 tokens", "POST", "/api/generate", {"prompt": too_many_tokens()}, {}, 413),
    ("max_new_tokens 0", "POST", "/api/generate", {"prompt": "x", "max_new_tokens": 0}, {}, 400),
    ("max_new_tokens 100000", "POST", "/api/generate", {"prompt": "x", "max_new_tokens": 100000}, {}, 400),
    ("max_new_tokens as text", "POST", "/api/generate", {"prompt": "x", "max_new_tokens": "5"}, {}, 400),
    ("max_new_tokens 3.5", "POST", "/api/generate", {"prompt": "x", "max_new_tokens": 3.5}, {}, 400),
    ("num_beams 9", "POST", "/api/generate", {"prompt": "x", "num_beams": 9}, {}, 400),
    ("num_beams true", "POST", "/api/generate", {"prompt": "x", "num_beams": True}, {}, 400),
    ("temperature 0", "POST", "/api/generate", {"prompt": "x", "do_sample": True, "temperature": 0}, {}, 400),
    ("temperature NaN", "POST", "/api/generate", b'{"prompt": "x", "temperature": NaN}', {}, 400),
    ("temperature 1e9", "POST", "/api/generate", {"prompt": "x", "temperature": 1e9}, {}, 400),
    ("top_p 0", "POST", "/api/generate", {"prompt": "x", "top_p": 0}, {}, 400),
    ("top_p 1.5", "POST", "/api/generate", {"prompt": "x", "top_p": 1.5}, {}, 400),
    ("top_k -1", "POST", "/api/generate", {"prompt": "x", "top_k": -1}, {}, 400),
    ("top_k over the vocabulary", "POST", "/api/generate", {"prompt": "x", "top_k": 385}, {}, 400),
    ("do_sample as text", "POST", "/api/generate", {"prompt": "x", "do_sample": "yes"}, {}, 400),
    ("sampling with beams", "POST", "/api/generate", {"prompt": "x", "do_sample": True, "num_beams": 2}, {}, 400),
    ("a negative seed", "POST", "/api/generate", {"prompt": "x", "seed": -1}, {}, 400),
    ("top 0", "POST", "/api/generate", {"prompt": "x", "top": 0}, {}, 400),
    ("GET the endpoint", "GET", "/api/generate", None, {}, 405),
    ("PUT", "PUT", "/api/generate", b"{}", {}, 405),
    ("POST elsewhere", "POST", "/api/nothing", b"{}", {}, 404),
    ("an unknown page", "GET", "/nothing", None, {}, 404),
    ("a file outside the static folder", "GET", "/static/../explore.py", None, {}, 404),
    ("a file outside the package", "GET", "/source/../../etc/passwd", None, {}, 404),
    ("a source that is not code", "GET", "/source/minit5/explore_static/app.js", None, {}, 404),
]


SAYS = {"a million characters": "request body", "5,000 characters": "5,001 tokens", "1,200 tokens": "1,201 tokens",
        "max_new_tokens 100000": "max_new_tokens must be between 1 and 256", "top_p 1.5": "top_p must be in (0.0, 1.0]",
        "an unknown field": "unknown field 'beams'", "malformed JSON": "not valid JSON"}  # the message names the problem


@pytest.mark.parametrize("what, method, path, body, headers, status", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_4xx_with_a_message(server, what, method, path, body, headers, status):
    got, answer = request(server, method, path, body, headers)
    assert got == status, answer
    assert isinstance(answer, dict) and isinstance(answer["error"], str) and len(answer["error"]) > 10, answer
    assert SAYS.get(what, "") in answer["error"]
    assert request(server, "GET", "/api/info")[0] == 200  # and the server still answers


def test_a_request_without_content_length_gets_411(server):
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.putrequest("POST", "/api/generate")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    connection.send(b"0\r\n\r\n")
    response = connection.getresponse()
    assert response.status == 411 and "Content-Length" in json.loads(response.read())["error"]
    connection.close()


def test_many_requests_at_once(server):
    """While QUEUE generations run or wait, the next one gets 429; the waiting ones then complete."""
    results = []

    def ask():
        results.append(request(server, "POST", "/api/generate", {"prompt": GANYMEDE, "max_new_tokens": 3}))

    with server.explorer.lock:  # hold the model: the requests queue behind it
        threads = [threading.Thread(target=ask) for _ in range(QUEUE)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while server.busy < QUEUE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.busy == QUEUE
        status, answer = request(server, "POST", "/api/generate", {"prompt": GANYMEDE})
        assert status == 429 and "busy" in answer["error"]
    for thread in threads:
        thread.join(60)
    assert [status for status, _ in results] == [200] * QUEUE
    # a burst with nobody holding the model: every answer is a 200 or a 429, and the server still serves
    burst = [threading.Thread(target=ask) for _ in range(3 * QUEUE)]
    results.clear()
    for thread in burst:
        thread.start()
    for thread in burst:
        thread.join(60)
    assert len(results) == 3 * QUEUE and {status for status, _ in results} <= {200, 429}
    assert server.busy == 0
    assert generate(server, prompt=GANYMEDE, max_new_tokens=2)["completion"]["ids"]


# ---------------------------------------------------------------- the page, its links, the command line
def test_the_page_and_its_links(server):
    status, page = request(server, "GET", "/")
    assert status == 200 and 'id="attention-grid"' in page and "/static/app.js" in page
    for name in ("app.js", "style.css"):
        assert request(server, "GET", f"/static/{name}")[0] == 200
    links = re.findall(r'href="(/source/[^"]+)"', page)
    assert len(links) >= 8
    for link in links:  # every panel's link to the guide and the code finds its section or definition
        status, target = request(server, "GET", link.replace("&amp;", "&"))
        assert status == 200 and 'id="found"' in target, link


def test_missing_demo_model_gives_the_train_hint(tmp_path):
    result = subprocess.run([sys.executable, "-m", "minit5.explore"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode != 0
    assert "no model at out/demo" in result.stderr and "python train.py" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- the page in a real browser
def render(chromium, server, tmp_path, query: dict, languages: str | None = None) -> str:
    """The page's DOM after it loaded with these settings in its address (it fills the form and submits it), in a
    browser whose languages are `languages` (e.g. "zh-CN,zh"; None: headless Chromium's default, en-US). The page
    must break no rule of its Content-Security-Policy (no inline script, style attribute or event handler)."""
    url = server.url + "?" + urllib.parse.urlencode(query)
    flags = [f"--accept-lang={languages}"] if languages else []
    dom, log = chromium.dump_dom(url, tmp_path / "profile", flags)
    refused = [line for line in log.splitlines() if "Content Security Policy" in line]
    assert not refused, refused  # Chromium logs every blocked inline script or style on stderr
    return dom


class Elements(html.parser.HTMLParser):
    """id -> (attributes, text inside); and how many elements carry each class."""

    def __init__(self, dom):
        super().__init__()
        self.by_id, self.classes, self.open = {}, {}, []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in (attrs.get("class") or "").split():
            self.classes[name] = self.classes.get(name, 0) + 1
        if tag in ("br", "img", "input", "meta", "link", "rect", "path"):  # no closing tag to wait for
            return
        self.open.append((tag, attrs, []))

    def handle_endtag(self, tag):
        while self.open:
            open_tag, attrs, text = self.open.pop()
            if "id" in attrs:
                self.by_id[attrs["id"]] = (attrs, "".join(text))
            if self.open:
                self.open[-1][2].extend(text)
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self.open:
            self.open[-1][2].append(data)


# The page in each of its languages: chosen by the browser's languages, or by ?lang= in the address (which the
# 中文 / English switch writes), the address winning. Each row: the browser's languages, the address's lang, the
# language expected, and words the page must then show.
LANGUAGE_CASES = {
    "english-browser": (None, None, "en", dict(status="steps in", step="Step 1 of", empty="(no text: only special tokens)")),
    "chinese-browser": ("zh-CN,zh", None, "zh", dict(status="步，用时", step="第 1 步（共", empty="（没有文字：只有特殊词元）")),
    "chinese-browser-asks-english": ("zh-CN,zh", "en", "en", dict(status="steps in", step="Step 1 of",
                                                                  empty="(no text: only special tokens)")),
    "english-browser-asks-chinese": ("en-US,en", "zh", "zh", dict(status="步，用时", step="第 1 步（共",
                                                                  empty="（没有文字：只有特殊词元）")),
}


@pytest.mark.parametrize("case", list(LANGUAGE_CASES))
def test_the_page_in_a_browser(chromium, server, folder, tmp_path, case):
    languages, asked, expected, words = LANGUAGE_CASES[case]
    query = {"prompt": GANYMEDE, "max_new_tokens": 12, **({"lang": asked} if asked else {})}
    dom = render(chromium, server, tmp_path, query, languages)
    page = Elements(dom)
    ids, _, tokenizer = reference(folder, GANYMEDE, dict(max_new_tokens=12, num_beams=1, do_sample=False,
                                                        temperature=1.0, top_k=0, top_p=1.0, seed=0,
                                                        length_penalty=1.0, early_stopping=False))
    status = page.by_id["status"]
    assert words["status"] in status[1] and "error" not in status[0].get("class", ""), status
    attrs, text = page.by_id["completion"]
    assert attrs["data-ids"] == " ".join(map(str, ids))  # the completion shown is model.generate's
    assert text == (tokenizer.decode(ids) or words["empty"])
    prompt_length = len(tokenizer.encode(GANYMEDE))
    assert page.classes["cell"] == len(ids) * prompt_length  # the attention grid: steps × prompt tokens
    assert page.classes["rowhead"] == len(ids)
    assert "attention-grid" in page.by_id and words["step"] in page.by_id["step-detail"][1]
    assert page.by_id["prompt-tokens"][1].startswith("W")
    assert page.by_id["beam-panel"][0].get("hidden") is not None  # no beam tree in greedy search
    # the language: the page's own lang, the switch, the fixed words and the guide links
    assert re.search(r'<html lang="' + ("zh-CN" if expected == "zh" else "en") + '"', dom)
    pressed = re.findall(r'<button type="button" data-lang="(\w+)"[^>]*aria-pressed="true"', dom)
    assert pressed == [expected], pressed
    assert ("补全：" in dom) == (expected == "zh") and ("completion:" in dom) == (expected == "en")
    guides = re.findall(r'<a data-guide="[\w-]+" href="(/source/[^"]+)"', dom)
    assert len(guides) == 6
    assert all(link.startswith("/source/docs/zh/" if expected == "zh" else "/source/docs/") for link in guides)
    if expected == "en":
        assert not any("/docs/zh/" in link for link in guides)
    for link in guides:  # each guide link finds its section in the page of the reader's language
        status, target = request(server, "GET", link.replace("&amp;", "&"))
        assert status == 200 and 'id="found"' in target, link


@pytest.mark.parametrize("languages, words", [(None, ("steps in", "Finished hypotheses", "score")),
                                               ("zh-CN,zh", ("步，用时", "完成的假设", "得分"))], ids=["en", "zh"])
def test_the_beam_tree_in_a_browser(chromium, server, tmp_path, languages, words):
    page = Elements(render(chromium, server, tmp_path, {"prompt": GANYMEDE, "num_beams": 3, "max_new_tokens": 12}, languages))
    assert words[0] in page.by_id["status"][1], page.by_id["status"]
    assert page.by_id["beam-panel"][0].get("hidden") is None
    assert page.classes["node"] >= 1 + 2 * 3 and page.classes.get("finished", 0) >= 1
    assert words[1] in page.by_id["finished-note"][1] and words[2] in page.by_id["finished"][1]
