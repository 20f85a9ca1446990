"""A beam-search tree with its scores, recorded from a real 4-beam run of minit5/generate.py.

    python docs/scripts/draw_beam_tree.py "Which planet comes after Mars?"        the demo model in out/demo
    python docs/scripts/draw_beam_tree.py --model DIR --num-beams 4 "..."         any T5 folder (or hub id)
    python docs/scripts/draw_beam_tree.py --random                                a random tiny model

The script runs minit5/generate.py _beam_search itself, with a decoding state that records what the search does:
the token each running beam feeds in at each step, the log-probabilities the model returns for it, and the
parent of every beam after the step (DecodeState.reorder_beams). From these it draws each running beam as a
path, labelled with its score (the sum of log-probabilities), and marks the finished hypotheses: the candidates
among the top num_beams of a step that end with </s> (or reach --max-new-tokens). It checks that the best path equals what
model.generate(num_beams=...) returns. Writes docs/img/beam_tree.png (with --zh, Chinese labels:
docs/img/zh/beam_tree.png).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (add_model_arguments, description_zh, figure_path, in_language, load,  # noqa: E402
                    need_matplotlib, save_figure, token_text, use_chinese_font)

from minit5.generate import DecodeState, _beam_search  # noqa: E402


class RecordingState(DecodeState):
    """DecodeState that remembers, per step, the fed tokens, the log-probabilities and the beams' parents."""

    def __init__(self, *args):
        super().__init__(*args)
        self.fed, self.log_probs, self.parents = [], [], []

    def step(self, tokens):  # tokens: (beams, 1)
        logits = super().step(tokens)
        self.fed.append(tokens[:, 0].tolist())
        self.log_probs.append(F.log_softmax(logits, dim=-1))
        return logits

    def reorder_beams(self, rows):
        self.parents.append(rows.tolist())
        super().reorder_beams(rows)


def run(model, tokenizer, prompt: str, num_beams: int, max_new_tokens: int):
    input_ids = torch.tensor([tokenizer.encode(prompt)])
    mask = torch.ones_like(input_ids)
    with torch.no_grad():
        encoded = model.encode(input_ids, mask).repeat_interleave(num_beams, dim=0)
        state = RecordingState(model, encoded, mask.repeat_interleave(num_beams, dim=0), max_new_tokens)
        best = _beam_search(state, model.config, 1, num_beams, max_new_tokens, 0, 1.0, False)
        reference = model.generate(input_ids, mask, num_beams=num_beams, max_new_tokens=max_new_tokens)
    assert torch.equal(best, reference), (best, reference)
    return state, best[0].tolist()


def tree(state, num_beams: int, eos: int, max_new_tokens: int):
    """The search as a tree. Nodes {(step, slot): (token, score, parent node)}: the running beam in that slot after
    `step` tokens (fed to the model at step + 1), with its summed log-probability. Leaves [(step, parent node,
    token, score, normalised score)]: the finished hypotheses, i.e. the candidates among the top num_beams of a
    step that end with </s> or reach max_new_tokens (the rule of _beam_search; length_penalty 1)."""
    nodes = {(0, 0): (None, 0.0, None)}  # every beam starts as the decoder start token; only slot 0 proposes
    leaves = []
    scores = torch.tensor([0.0] + [-1e9] * (num_beams - 1))
    for t, log_probs in enumerate(state.log_probs):  # step t + 1 extends the nodes of step t
        totals = log_probs + scores[:, None]  # (beams, V)
        vocab = log_probs.shape[-1]
        top = torch.topk(totals.view(-1), 2 * num_beams)
        for rank, (score, index) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
            beam, token = divmod(index, vocab)
            if rank < num_beams and (token == eos or t + 1 == max_new_tokens):
                leaves.append((t + 1, (t, beam), token, score, score / (t + 1)))
        if t + 1 >= len(state.fed):
            break
        new_scores = []
        for b, parent in enumerate(state.parents[t]):
            token = state.fed[t + 1][b]
            nodes[(t + 1, b)] = (token, float(totals[parent, token]), (t, parent))
            new_scores.append(float(totals[parent, token]))
        scores = torch.tensor(new_scores)
    return nodes, leaves


def tokens_of(nodes, key) -> list[int]:
    """The tokens generated on the way to a node (without the start token)."""
    out = []
    while key is not None and nodes[key][0] is not None:
        out.append(nodes[key][0])
        key = nodes[key][2]
    return out[::-1]


def draw(state, best, tokenizer, num_beams, eos, max_new_tokens, description, prompt, out: Path, zh: bool = False):
    plt = need_matplotlib()
    if zh:
        use_chinese_font(plt)
    tr = in_language(zh)
    nodes, finished = tree(state, num_beams, eos, max_new_tokens)
    steps = max([t for t, _ in nodes] + [leaf[0] for leaf in finished]) + 1
    fig, ax = plt.subplots(figsize=(11, 1.1 * num_beams + 2.6))
    # keep only nodes that some later node or leaf descends from, plus the last step's beams
    y_of = {key: num_beams - 1 - key[1] for key in nodes}
    for key, (token, score, parent) in nodes.items():
        t, b = key
        if parent is not None:
            ax.plot([parent[0], t], [y_of[parent], y_of[key]], color="0.6", linewidth=1, zorder=1)
        text = tr("start", "起点") if token is None else token_text(tokenizer, token).strip("'")
        ax.scatter([t], [y_of[key]], s=260, color="#a9c8f0", edgecolor="0.3", zorder=2)
        width = sum(2 if ord(c) >= 0x2E80 else 1 for c in text)  # a Chinese character is two letters wide
        ax.text(t, y_of[key], text, ha="center", va="center", fontsize=8 if width < 3 else 6, zorder=3)
        if parent is not None:
            ax.text(t, y_of[key] - 0.33, f"{score:.2f}", ha="center", fontsize=6.5, color="0.25")
    shown = 0
    for t, parent, token, score, normalised in finished:
        if score < -50:  # impossible candidates (-1e9 beams at step 1)
            continue
        y = y_of[parent] + 0.45
        ax.plot([parent[0], t], [y_of[parent], y], color="#c0392b", linewidth=0.8, linestyle=":", zorder=1)
        ax.scatter([t], [y], s=90, marker="s", color="#f5b7b1", edgecolor="#c0392b", zorder=2)
        ax.text(t, y, token_text(tokenizer, token).strip("'"), ha="center", va="center", fontsize=5, zorder=3)
        ax.text(t, y + 0.13, f"{score:.2f} ÷ {t} = {normalised:.2f}", ha="center", va="bottom", fontsize=6.5,
                color="#c0392b")
        shown += 1
    ax.set_xlim(-0.5, steps - 0.3)
    ax.set_ylim(-0.8, num_beams - 0.2)
    ax.set_yticks(range(num_beams), [tr(f"beam {num_beams - 1 - i}", f"束 {num_beams - 1 - i}") for i in range(num_beams)], fontsize=8)
    ax.set_xticks(range(steps), range(steps))
    ax.set_xlabel(tr("step (tokens generated so far)", "步数（已生成的词元数）"))
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    answer = tokenizer.decode(best)
    ax.set_title(tr(f"beam search, {num_beams} beams, {description}: {prompt!r} → {answer!r}\n"
                    "blue: running beams with their score (sum of log-probabilities); red: finished hypotheses, "
                    "score ÷ length (length_penalty 1)",
                    f"束搜索，{num_beams} 条束，{description}：{prompt!r} → {answer!r}\n"
                    "蓝色：运行中的束及其得分（对数概率之和）；红色：完成的假设，得分 ÷ 长度（length_penalty 1）"),
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, out, f"answer {answer!r}; {shown} finished hypotheses drawn")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p, max_new_tokens=12)
    p.add_argument("--num-beams", type=int, default=4)
    p.add_argument("--zh", action="store_true", help="Chinese labels, for docs/zh/ (docs/img/zh/beam_tree.png)")
    p.add_argument("--out", help="where to draw (default: docs/img/beam_tree.png, with --zh docs/img/zh/...)")
    args = p.parse_args()
    model, tokenizer, description = load(args.model, args.random)
    if args.zh:
        description = description_zh(args.model, args.random)
    state, best = run(model.eval(), tokenizer, args.prompt, args.num_beams, args.max_new_tokens)
    draw(state, best, tokenizer, args.num_beams, model.config.eos_token_id, args.max_new_tokens, description,
         args.prompt, Path(args.out or figure_path("beam_tree.png", args.zh)), zh=args.zh)


if __name__ == "__main__":
    main()
