"""The trace of one generation: what the explore page draws, step by step (no HTTP here; the server is explore.py).

    trace(model, tokenizer, "Where is Ganymede?", settings)  -> a dict that JSON can hold (docs/explore.md lists it)

    model.generate(..., watch=recorder) ─► GreedyRecorder   each step's top candidates (before, after the filters)
                                      └► BeamRecorder     the beam tree: every candidate of every step, and its fate
    cross_attention(model, prompt, answer) ─► (layers, heads, steps, prompt tokens): where each step looked

The completion is model.generate's own: the recorders only read the numbers that minit5/generate.py hands its
`watch` hook after every step. The cross-attention comes from one teacher-forced pass of the readable decoder
(minit5/model.py) over the chosen tokens, because the fast decoder step's fused attention does not return the
weights.
"""

from __future__ import annotations

import math
import time

import torch

from .generate import LONG_PROMPT


class Stopped(Exception):
    """Raised inside model.generate when trace's `stop` says so (the server: the client has gone)."""


# --------------------------------------------------------------------------------------------------
# Tokens as the page shows them
# --------------------------------------------------------------------------------------------------
def token_rows(tokenizer, ids: list[int]) -> list[dict]:
    """Each id with its piece and the text it adds. A byte of a multi-byte character adds "" until the
    character's last byte, which adds the whole character (decoded over a few tokens back, as streaming does)."""
    rows = []
    for i, token_id in enumerate(ids):
        start = max(0, i - 4)  # a UTF-8 character spans at most 4 bytes
        before = tokenizer.decode(ids[start:i], skip_special_tokens=False)
        after = tokenizer.decode(ids[start:i + 1], skip_special_tokens=False)
        text = after[len(before):] if after.startswith(before) else tokenizer.decode([token_id],
                                                                                       skip_special_tokens=False)
        rows.append(dict(id=token_id, piece=tokenizer.piece(token_id), text=text))
    return rows


def _candidates(tokenizer, ids, probs, chosen: int, filtered=None, scores=None) -> list[dict]:
    """One row per token id, most likely first. probs, filtered and scores are looked up by token id (a (V,)
    tensor or a dict): p is the model's probability; p_filtered the one sampled from (or None); logit if given."""
    rows = []
    for i in sorted(ids, key=lambda i: -float(probs[i])):
        row = dict(id=i, piece=tokenizer.piece(i), text=tokenizer.decode([i], skip_special_tokens=False),
                   p=round(float(probs[i]), 6), chosen=i == chosen)
        if scores is not None:
            row["logit"] = round(float(scores[i]), 4)
        row["p_filtered"] = None if filtered is None else round(float(filtered[i]), 6)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------
# Recording the decoding loop through generate's `watch` hook
# --------------------------------------------------------------------------------------------------
class GreedyRecorder:
    """Greedy search and sampling: keeps each step's distribution (top tokens only, to keep the trace small)."""

    def __init__(self, tokenizer, top: int, sampling: bool):
        self.tokenizer, self.top, self.sampling = tokenizer, top, sampling
        self.steps = []

    def __call__(self, numbers):  # numbers: scores, filtered (1, V), tokens (1,)
        scores = numbers["scores"][0]
        probs = scores.softmax(-1)
        filtered = numbers["filtered"][0].softmax(-1) if self.sampling else None
        chosen = int(numbers["tokens"][0])
        top = min(self.top, probs.numel())
        ids = set(probs.topk(top).indices.tolist()) | {chosen}
        if filtered is not None:  # the filtered distribution's top too, but not the tokens it removed
            best = filtered.topk(top)
            ids |= {i for i, p in zip(best.indices.tolist(), best.values.tolist()) if p > 0}
        kept = int((filtered > 0).sum()) if self.sampling else None  # tokens left after top-k/top-p
        self.steps.append(dict(candidates=_candidates(self.tokenizer, ids, probs, chosen, filtered, scores),
                               kept=kept))

    def step_details(self, completion: list[int]) -> list[dict]:
        return self.steps


class BeamRecorder:
    """Beam search: builds the beam tree. Node 0 is the decoder start; every candidate of every step becomes a
    node whose parent is the running beam it extends. Status: running (kept as a beam), ended (ended with </s>
    or at the length limit; "finished" if it is among the final finished hypotheses) or dropped."""

    def __init__(self, tokenizer, top: int, start_id: int):
        self.tokenizer, self.top = tokenizer, top
        self.nodes = [dict(id=0, parent=None, step=0, token=start_id, piece=tokenizer.piece(start_id), text="",
                           log_prob=0.0, score=0.0, status="running")]
        self.next = {}  # node id -> the top tokens that beam proposed at the next step
        self.running = [0]  # node of each running beam (at the start only beam 0 is live)
        self.last = None  # the last step's numbers: the finished hypotheses
        self.best_node = None  # the node where the best hypothesis ends (set by step_details)

    def __call__(self, numbers):
        log_probs = numbers["log_probs"]  # (beams, V): batch of one
        step = self.nodes[self.running[0]]["step"] + 1
        for beam, node in enumerate(self.running):
            best = log_probs[beam].topk(min(self.top, log_probs.shape[-1]))
            self.next[node] = [(int(i), float(v)) for v, i in zip(best.values, best.indices)]
        first = len(self.nodes)
        survive = set(numbers["survive"][0].tolist())
        for k, (beam, token, score, done) in enumerate(zip(*(numbers[key][0].tolist() for key in (
                "cand_beam", "cand_token", "cand_scores", "cand_done")))):
            status = "running" if k in survive else "ended" if done else "dropped"
            self.nodes.append(dict(id=len(self.nodes), parent=self.running[beam], step=step, token=token,
                                   piece=self.tokenizer.piece(token),
                                   text=self.tokenizer.decode([token], skip_special_tokens=False),
                                   log_prob=round(float(log_probs[beam, token]), 5), score=round(score, 5),
                                   status=status))
        self.running = [first + k for k in numbers["survive"][0].tolist()]
        self.last = numbers

    def path(self, node: int) -> list[int]:
        """The tokens from the start to this node (start token excluded)."""
        tokens = []
        while self.nodes[node]["parent"] is not None:
            tokens.append(self.nodes[node]["token"])
            node = self.nodes[node]["parent"]
        return tokens[::-1]

    def finished(self) -> list[dict]:
        """The finished hypotheses at the end, best first, each matched with its node in the tree."""
        ended = {tuple(self.path(n["id"])): n["id"] for n in self.nodes if n["status"] == "ended"}
        hypotheses = []
        last = self.last
        for j in range(last["finished"].shape[1]):
            score = float(last["finished_scores"][0, j])
            if not bool(last["is_finished"][0, j]) or score < -1e8:  # an empty slot
                continue
            length = int(last["finished_lengths"][0, j])
            ids = last["finished"][0, j, 1:1 + length].tolist()
            node = ended.get(tuple(ids))
            if node is not None:
                self.nodes[node]["status"] = "finished"
            hypotheses.append(dict(node=node, ids=ids, text=self.tokenizer.decode(ids), length=length,
                                   score=round(score, 5)))
        return hypotheses

    def step_details(self, completion: list[int]) -> list[dict]:
        """Per step of the best hypothesis: the top tokens its beam proposed, with probabilities."""
        node = next((n["id"] for n in self.nodes if n["status"] in ("ended", "finished")
                     and self.path(n["id"]) == completion), None)
        chain = []
        while node is not None and self.nodes[node]["parent"] is not None:
            chain.append(node)
            node = self.nodes[node]["parent"]
        details = []
        for node in reversed(chain):
            parent, chosen = self.nodes[node]["parent"], self.nodes[node]["token"]
            proposed = dict(self.next.get(parent, []))
            proposed[chosen] = self.nodes[node]["log_prob"]
            probs = {i: math.exp(v) for i, v in proposed.items()}
            details.append(dict(candidates=_candidates(self.tokenizer, probs, probs, chosen), kept=None))
        self.best_node = chain[0] if chain else None
        return details


# --------------------------------------------------------------------------------------------------
# Cross-attention of the chosen tokens
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def cross_attention(model, input_ids, decoder_input_ids):
    """Cross-attention probabilities of every decoder block for one teacher-forced pass: (layers, heads, T, S).
    Row t is the step that chose token t + 1: softmax(q·kᵀ + mask) of minit5/model.py Attention with
    context = the encoder output, recomputed in a hook because the attention itself returns only the mix."""
    maps = []

    def record(module, args):
        x, bias, context = args[:3]  # Block calls cross_attn(norm(x), cross_bias, encoder_output, ...)
        q = module.split_heads(module.q(x))  # (B, H, T, Dh)
        k = module.split_heads(module.k(context))  # (B, H, S, Dh)
        scores = (q @ k.transpose(-1, -2)).float()  # (B, H, T, S); no 1/sqrt(Dh): T5 does not scale
        if bias is not None:
            scores = scores + bias.float()  # the padding mask (cross-attention has no position bias)
        maps.append(scores.softmax(dim=-1)[0])

    hooks = [block.cross_attn.register_forward_pre_hook(record) for block in model.decoder.blocks]
    try:
        model(input_ids.to(model.device), decoder_input_ids=decoder_input_ids.to(model.device))
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack(maps)  # (layers, H, T, S)


# --------------------------------------------------------------------------------------------------
# The trace
# --------------------------------------------------------------------------------------------------
def trace(model, tokenizer, prompt: str, settings: dict, name: str = "", stop=None) -> dict:
    """Generate with model.generate and record every step; docs/explore.md lists the fields. settings: generate's
    keyword arguments (max_new_tokens, num_beams, do_sample, temperature, top_k, top_p, length_penalty,
    early_stopping) plus seed and top (how many candidates to show per step). stop: called before the first step
    and after every step; when it returns True the generation ends with Stopped. The hooks and the fast step's
    weights belong to the whole model, so one trace at a time per model (the server holds a lock)."""
    started = time.perf_counter()
    ids = tokenizer.encode(prompt)
    input_ids = torch.tensor([ids])  # (1, S)
    s = settings
    beams = s["num_beams"] > 1
    recorder = (BeamRecorder(tokenizer, s["top"], model.config.decoder_start_token_id) if beams
                else GreedyRecorder(tokenizer, s["top"], s["do_sample"]))

    def watch(numbers):
        recorder(numbers)
        if stop is not None and stop():
            raise Stopped

    if stop is not None and stop():  # e.g. a request that waited in the queue while its client left
        raise Stopped
    out = model.generate(input_ids, max_new_tokens=s["max_new_tokens"], num_beams=s["num_beams"],
                         do_sample=s["do_sample"], temperature=s["temperature"], top_k=s["top_k"], top_p=s["top_p"],
                         length_penalty=s["length_penalty"], early_stopping=s["early_stopping"],
                         generator=torch.Generator().manual_seed(s["seed"]), watch=watch)
    answer = out[0].tolist()  # [decoder start, token, ..., </s>]: a batch of one has no fill
    attention = cross_attention(model, input_ids, torch.tensor([answer[:-1]]))  # (L, H, T, S); 4 decimals below,
    # rounded in float64 so that JSON writes 0.0007, not float32's 0.000699999975040555
    completion = answer[1:]
    finished = recorder.finished() if beams else None
    details = recorder.step_details(completion)
    chosen = token_rows(tokenizer, completion)
    inputs = token_rows(tokenizer, answer[:-1])
    steps = []
    for t, (token, detail) in enumerate(zip(chosen, details)):
        steps.append(dict(step=t + 1, input=inputs[t], chosen=token, kept=detail["kept"],
                          candidates=detail["candidates"],
                          attention=attention[:, :, t].double().mul(1e4).round().div(1e4).tolist()))  # (L, H, S)
    result = dict(
        model=name, settings=settings,
        prompt=dict(text=prompt, tokens=token_rows(tokenizer, ids), length=len(ids), window=LONG_PROMPT),
        completion=dict(text=tokenizer.decode(completion), ids=completion),
        steps=steps,
        beams=dict(nodes=recorder.nodes, finished=finished, best=recorder.best_node) if beams else None,
    )
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result
