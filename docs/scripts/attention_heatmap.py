"""Cross-attention heat map: which prompt tokens each answer token looked at, per decoder layer.

    python docs/scripts/attention_heatmap.py "Where is Ganymede?"              the demo model in out/demo
    python docs/scripts/attention_heatmap.py --model DIR "Where is Ganymede?"  any T5 folder (or hub id)
    python docs/scripts/attention_heatmap.py --random "Where is Ganymede?"     a random tiny model (noise)

The answer is generated greedily; then one teacher-forced decoder pass over it records, in every decoder block,
softmax(q·kᵀ + mask) of the cross-attention (minit5/explore.py cross_attention, which reads minit5/model.py
Attention called with context = encoder output), averaged over heads. Writes docs/img/cross_attention.png (or --out). Needs matplotlib.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, add_model_arguments, load, need_matplotlib  # noqa: E402

from minit5.explore import cross_attention  # noqa: E402  (the numbers the explore page shows)


def label(tokenizer, token_id: int) -> str:
    text = tokenizer.decode([token_id], skip_special_tokens=False)
    return text.replace(" ", "␣") if text else f"#{token_id}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p, max_new_tokens=12)
    p.add_argument("--out", default=str(ROOT / "docs/img/cross_attention.png"))
    args = p.parse_args()
    plt = need_matplotlib()
    model, tokenizer, description = load(args.model, args.random)

    input_ids = torch.tensor([tokenizer.encode(args.prompt)])  # (1, S)
    answer = model.generate(input_ids, max_new_tokens=args.max_new_tokens)  # (1, 1 + steps), starts with <pad>
    maps = cross_attention(model, input_ids, answer[:, :-1])  # row t: the step that produced answer[t + 1]
    mean = maps.mean(dim=1)  # (layers, T, S): averaged over heads

    src = [label(tokenizer, i) for i in input_ids[0].tolist()]
    out = [label(tokenizer, i) for i in answer[0, 1:].tolist()]
    layers = mean.shape[0]
    cols = min(layers, 4)
    rows = (layers + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(0.32 * len(src) * cols + 1.5, 0.32 * len(out) * rows + 1.6),
                             squeeze=False)
    for layer, ax in enumerate(axes.flat):
        if layer >= layers:
            ax.axis("off")
            continue
        image = ax.imshow(mean[layer].numpy(), cmap="viridis", vmin=0, aspect="auto")
        ax.set_title(f"decoder block {layer}", fontsize=9)
        ax.set_xticks(range(len(src)), src, fontsize=8, rotation=90)
        ax.set_yticks(range(len(out)), out, fontsize=8)
        if layer % cols == 0:
            ax.set_ylabel("generated token")
        ax.set_xlabel("prompt token")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    answer_text = tokenizer.decode(answer[0])
    fig.suptitle(f"cross-attention (mean over heads) of {description}\nprompt {args.prompt!r} → answer "
                 f"{answer_text!r}", fontsize=9)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"answer {answer_text!r}; wrote {args.out}")


if __name__ == "__main__":
    main()
