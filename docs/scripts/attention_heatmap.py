"""Cross-attention heat map: which prompt tokens each answer token looked at, per decoder layer.

    python docs/scripts/attention_heatmap.py                      the demo model in out/demo, a held-out prompt
    python docs/scripts/attention_heatmap.py --model DIR "Where is Ganymede?"  any T5 folder (or hub id)
    python docs/scripts/attention_heatmap.py --random             a random tiny model (noise)

The answer is generated greedily; then one teacher-forced decoder pass over it records, in every decoder block,
softmax(q·kᵀ + mask) of the cross-attention (minit5/trace.py cross_attention, the numbers the explore page shows,
which reads minit5/model.py Attention called with context = encoder output), averaged over heads. The default
prompt uses the demo's held-out phrasing of the moon task (never seen in training). One panel per decoder block,
stacked, on one colour scale. Writes docs/img/cross_attention.png (or --out; with --zh, Chinese labels:
docs/img/zh/cross_attention.png). Needs matplotlib.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (add_model_arguments, description_zh, figure_path, in_language, load,  # noqa: E402
                    need_matplotlib, save_figure, use_chinese_font)

from minit5.trace import cross_attention  # noqa: E402  (the numbers the explore page shows)

HELD_OUT_PROMPT = "Tell me the planet Ganymede orbits."  # the moon task's held-out phrasing (minit5/data.py)


def label(tokenizer, token_id: int) -> str:
    text = tokenizer.decode([token_id], skip_special_tokens=False)
    return text.replace(" ", "␣") if text else f"#{token_id}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p, max_new_tokens=12)
    p.set_defaults(prompt=HELD_OUT_PROMPT)
    p.add_argument("--zh", action="store_true", help="Chinese labels, for docs/zh/ (docs/img/zh/cross_attention.png)")
    p.add_argument("--out", help="where to draw (default: docs/img/cross_attention.png, with --zh docs/img/zh/...)")
    args = p.parse_args()
    plt = need_matplotlib()
    if args.zh:
        use_chinese_font(plt)
    tr = in_language(args.zh)
    model, tokenizer, description = load(args.model, args.random)
    if args.zh:
        description = description_zh(args.model, args.random)

    input_ids = torch.tensor([tokenizer.encode(args.prompt)])  # (1, S)
    answer = model.generate(input_ids, max_new_tokens=args.max_new_tokens)  # (1, 1 + steps), starts with <pad>
    with torch.no_grad():
        maps = cross_attention(model, input_ids, answer[:, :-1])  # row t: the step that produced answer[t + 1]
    mean = maps.mean(dim=1)  # (layers, T, S): averaged over heads

    src = [label(tokenizer, i) for i in input_ids[0].tolist()]
    out = [label(tokenizer, i) for i in answer[0, 1:].tolist()]
    layers = mean.shape[0]
    vmax = float(mean.max())  # one colour scale for every panel, so that blocks can be compared
    fig, axes = plt.subplots(layers, 1, figsize=(max(6.0, 0.27 * len(src) + 2.2), (0.3 * len(out) + 0.75) * layers + 1.3),
                             squeeze=False, sharex=True)
    for layer, ax in enumerate(axes[:, 0]):
        image = ax.imshow(mean[layer].numpy(), cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
        ax.set_title(tr(f"decoder block {layer}", f"解码器第 {layer} 块"), fontsize=10, loc="left")
        ax.set_yticks(range(len(out)), out, fontsize=9)
        ax.set_ylabel(tr("answer token", "回答的词元"), fontsize=9)
    axes[-1, 0].set_xticks(range(len(src)), src, fontsize=9)
    axes[-1, 0].set_xlabel(tr("prompt token", "提示的词元"))
    fig.colorbar(image, ax=axes[:, 0].tolist(), fraction=0.025, pad=0.015,
                 label=tr("attention weight (mean over heads)", "注意力权重（各头平均）"))
    answer_text = tokenizer.decode(answer[0])
    fig.suptitle(tr(f"cross-attention (mean over heads) of {description}\nprompt {args.prompt!r} → answer "
                    f"{answer_text!r}",
                    f"{description}的交叉注意力（各头平均）\n提示 {args.prompt!r} → 回答 {answer_text!r}"), fontsize=9)
    save_figure(fig, args.out or figure_path("cross_attention.png", args.zh), f"answer {answer_text!r}", trim=True)


if __name__ == "__main__":
    main()
