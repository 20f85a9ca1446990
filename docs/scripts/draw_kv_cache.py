"""The KV cache growing step by step while the model answers, recorded from minit5's own cache.

    python docs/scripts/draw_kv_cache.py "Where is Ganymede?"              the demo model in out/demo
    python docs/scripts/draw_kv_cache.py --model DIR "Where is Ganymede?"  any T5 folder (or hub id)
    python docs/scripts/draw_kv_cache.py --random                          a random tiny model

Greedy decoding with minit5/generate.py DecodeState (the readable step of minit5/model.py): after every step the
script reads block 0's minit5/model.py LayerCache: how many self-attention positions are filled (LayerCache.length,
of the max_len preallocated), and whether the cross-attention keys/values (LayerCache.cross) exist yet.
Writes docs/img/kv_cache.png (with --zh, Chinese labels: docs/img/zh/kv_cache.png).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (add_model_arguments, description_zh, figure_path, in_language, load,  # noqa: E402
                    need_matplotlib, save_figure, token_text, use_chinese_font)

from minit5.generate import DecodeState  # noqa: E402


def record(model, tokenizer, prompt: str, max_new_tokens: int):
    """([(decoder input token text, cached positions after the step, cross cached before the step?)],
    prompt token texts, max_len, cache buffer shape, the answer)."""
    input_ids = torch.tensor([tokenizer.encode(prompt)])  # (1, S)
    mask = torch.ones_like(input_ids)
    steps, chosen = [], []
    with torch.no_grad():
        state = DecodeState(model, model.encode(input_ids, mask), mask, max_new_tokens)
        token = torch.tensor([[model.config.decoder_start_token_id]])
        for _ in range(max_new_tokens):
            cross_before = state.cache[0].cross is not None
            logits = state.step(token)
            steps.append((token_text(tokenizer, token.item()).strip("'"), state.cache[0].length, cross_before))
            token = logits.argmax(dim=-1, keepdim=True)
            chosen.append(token.item())
            if token.item() == model.config.eos_token_id:
                break
    prompt_tokens = [token_text(tokenizer, i).strip("'") for i in input_ids[0].tolist()]
    return steps, prompt_tokens, state.cache[0].max_len, state.cache[0].keys.shape, tokenizer.decode(chosen)


def draw(steps, prompt_tokens, max_len, shape, description, prompt, answer, out: Path, zh: bool = False):
    plt = need_matplotlib()
    if zh:
        use_chinese_font(plt)
    tr = in_language(zh)
    from matplotlib.patches import Patch, Rectangle

    n, source_len = len(steps), len(prompt_tokens)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.42 * n + 2.2),
                                      gridspec_kw=dict(width_ratios=[source_len, max_len + 4]))
    colours = {"old": "#8fb8e8", "new": "#f39c4a", "empty": "#f2f2f2", "cross_new": "#a686e0", "cross_old": "#d9ccf3"}
    for row, (token, length, cross_before) in enumerate(steps):
        y = n - 1 - row
        for pos in range(max_len):
            kind = "new" if pos == length - 1 else ("old" if pos < length else "empty")
            right.add_patch(Rectangle((pos, y), 0.92, 0.85, facecolor=colours[kind], edgecolor="0.7", linewidth=0.4))
        right.text(pos + 1.4, y + 0.42, tr(f"{length} cached", f"已缓存 {length} 个"), va="center", fontsize=8)
        right.text(length - 1 + 0.46, y + 0.42, token, ha="center", va="center", fontsize=8 if len(token) < 3 else 5.5)
        for pos in range(source_len):
            kind = "cross_old" if cross_before else "cross_new"
            left.add_patch(Rectangle((pos, y), 0.92, 0.85, facecolor=colours[kind], edgecolor="0.7", linewidth=0.4))
    for ax in (left, right):
        ax.set_ylim(-0.2, n)
        ax.set_yticks([n - 1 - r + 0.42 for r in range(n)], [tr(f"step {r + 1}", f"第 {r + 1} 步") for r in range(n)], fontsize=8)
        ax.tick_params(length=0)
        for side in ("top", "right", "left", "bottom"):
            ax.spines[side].set_visible(False)
    left.set_xlim(0, source_len)
    left.set_xticks([p + 0.46 for p in range(source_len)], prompt_tokens, fontsize=7)
    left.set_xlabel(tr(f"prompt positions (S = {source_len})", f"提示的位置（S = {source_len}）"))
    left.set_title(tr("cross-attention keys/values\n(LayerCache.cross): made at step 1, then reused",
                      "交叉注意力的键/值\n（LayerCache.cross）：第 1 步算好，之后一直复用"), fontsize=9)
    right.set_xlim(0, max_len + 4)
    right.set_xticks([p + 0.46 for p in range(max_len)], range(max_len), fontsize=7)
    right.set_xlabel(tr(f"decoder positions: buffer of max_len = {max_len} preallocated at step 1",
                        f"解码器的位置：第 1 步预先分配 max_len = {max_len} 的缓冲区"))
    right.set_title(tr("self-attention keys/values (LayerCache.keys, .values): one position written per step",
                       "自注意力的键/值（LayerCache.keys、.values）：每步写入一个位置"), fontsize=9)
    right.legend(handles=[Patch(facecolor=colours["new"], label=tr("written this step (the token fed in)",
                                                                   "本步写入（输入的词元）")),
                          Patch(facecolor=colours["old"], label=tr("cached earlier, read again", "之前缓存的，再读一遍")),
                          Patch(facecolor=colours["empty"], edgecolor="0.7",
                                label=tr("allocated, not yet used", "已分配，尚未使用"))],
                 loc="lower right", fontsize=8, frameon=False, bbox_to_anchor=(1.0, -0.02 - 2.2 / (0.42 * n + 2.2)))
    fig.suptitle(tr(f"KV cache of decoder block 0, {description}: {prompt!r} → {answer!r}\n"
                    f"buffer shape (B, H, max_len, Dh) = {tuple(shape)}",
                    f"第 0 个解码器块的键值缓存，{description}：{prompt!r} → {answer!r}\n"
                    f"缓冲区形状 (B, H, max_len, Dh) = {tuple(shape)}"), fontsize=10)
    fig.tight_layout()
    save_figure(fig, out, trim=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p, max_new_tokens=12)
    p.add_argument("--zh", action="store_true", help="Chinese labels, for docs/zh/ (docs/img/zh/kv_cache.png)")
    p.add_argument("--out", help="where to draw (default: docs/img/kv_cache.png, with --zh docs/img/zh/...)")
    args = p.parse_args()
    model, tokenizer, description = load(args.model, args.random)
    if args.zh:
        description = description_zh(args.model, args.random)
    steps, prompt_tokens, max_len, shape, answer = record(model.eval(), tokenizer, args.prompt, args.max_new_tokens)
    draw(steps, prompt_tokens, max_len, shape, description, args.prompt, answer,
         Path(args.out or figure_path("kv_cache.png", args.zh)), zh=args.zh)


if __name__ == "__main__":
    main()
