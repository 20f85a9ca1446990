"""minit5 against transformers on real flan-T5 weights: tokenizer ids, logits, greedy and beam-search tokens.

    python docs/scripts/check_real_weights.py                      downloads google/flan-t5-small (~300 MB) once
    python docs/scripts/check_real_weights.py --hub google/flan-t5-base
    python docs/scripts/check_real_weights.py --model DIR          a folder you downloaded, e.g. with
                                                                   `hf download google/flan-t5-small --local-dir DIR`

Needs transformers (pip install -e ".[test]") and, to download, huggingface_hub (pip install -e ".[hub]").
Without a connection it prints one line saying it skipped, and exits 0. Exit 1 means a check failed.
Both models run in fp32 on the CPU; transformers with eager attention and use_cache=False (see docs/parity.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

PROMPTS = [
    "Translate English to German: How old are you?",
    "Where is Ganymede?",
    "Answer the following question. What is the boiling point of water in Celsius?",
    "Is this review positive or negative? I loved this movie, the actors were great.",
    "summarize: The tower is 324 metres tall, about the same height as an 81-storey building, "
    "and the tallest structure in Paris.",
]
LOGIT_TOLERANCE = 1e-4  # max |diff| relative to the largest |logit| (real activations are large; see docs/parity.md)


def fetch(hub_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        sys.exit(f'error: downloading {hub_id} needs huggingface_hub: pip install -e ".[hub]" (or pass --model DIR)')
    from minit5.checkpoint import HUB_FILES
    try:
        return Path(snapshot_download(hub_id, allow_patterns=HUB_FILES))
    except Exception as e:  # offline, proxy, unknown repo: all mean "cannot check here"
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        reason = reason if len(reason) <= 120 else reason[:119] + "…"
        print(f"skipped: could not download {hub_id} ({reason}); run this with internet access, or pass --model DIR")
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a local Hugging Face folder (config.json, weights, tokenizer files)")
    p.add_argument("--hub", default="google/flan-t5-small", help="hub id to download when --model is not given")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--num-beams", type=int, default=4)
    args = p.parse_args()
    if args.max_new_tokens < 1 or args.num_beams < 1:  # before any download or loading
        sys.exit(f"error: --max-new-tokens and --num-beams must be at least 1, got {args.max_new_tokens} "
                 f"and {args.num_beams}")

    try:
        import torch
        import transformers
        from transformers import AutoTokenizer, T5ForConditionalGeneration
    except ImportError as e:
        sys.exit(f'error: {e}; this check compares with transformers: pip install -e ".[test]"')
    transformers.logging.set_verbosity_error()
    from minit5 import T5, Tokenizer
    from minit5.checkpoint import CheckpointError
    from minit5.tokenizer import TokenizerError

    folder = Path(args.model) if args.model else fetch(args.hub)
    if folder is None:
        return 0
    if not folder.is_dir():
        sys.exit(f"error: {folder} is not a folder")
    torch.manual_seed(0)
    failures = []

    def report(name, ok, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'}  {name}{': ' + detail if detail else ''}")
        if not ok:
            failures.append(name)

    # 1. tokenizer: the same ids, the same padded batch
    try:
        tokenizer = Tokenizer.from_pretrained(folder)
    except TokenizerError as e:
        sys.exit(f"error: {e}")
    try:
        hf_tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as e:  # without tokenizer.json, transformers converts spiece.model with extra packages
        if not (folder / "tokenizer.json").exists() and (folder / "spiece.model").exists():
            sys.exit(f"error: {folder} has spiece.model but no tokenizer.json; transformers reads that only with "
                     f"sentencepiece and protobuf installed (pip install sentencepiece protobuf), minit5 needs neither")
        sys.exit(f"error: transformers cannot load the tokenizer in {folder}: "
                 f"{(str(e).strip().splitlines() or [type(e).__name__])[0]}")
    same_ids = all(tokenizer.encode(text) == hf_tokenizer(text)["input_ids"] for text in PROMPTS)
    report("tokenizer ids", same_ids, f"{len(PROMPTS)} prompts")
    input_ids, attention_mask = tokenizer.encode_batch(PROMPTS)  # (B, S), right-padded with 0
    hf_batch = hf_tokenizer(PROMPTS, padding=True, return_tensors="pt")
    report("padded batch", torch.equal(input_ids, hf_batch["input_ids"])
           and torch.equal(attention_mask, hf_batch["attention_mask"]), f"shape {tuple(input_ids.shape)}")

    # 2. the models: logits teacher-forced on transformers' greedy answers, then generated tokens
    try:
        model = T5.from_pretrained(folder)
    except CheckpointError as e:
        sys.exit(f"error: {e}")
    hf = T5ForConditionalGeneration.from_pretrained(folder, attn_implementation="eager").eval()
    gen = dict(max_new_tokens=args.max_new_tokens, do_sample=False)
    with torch.no_grad():
        ref_greedy = hf.generate(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **gen)
        ref_logits = hf(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=ref_greedy,
                        use_cache=False).logits
        logits, _ = model(input_ids, attention_mask=attention_mask, decoder_input_ids=ref_greedy)
        diff, scale = (logits - ref_logits).abs().max().item(), ref_logits.abs().max().item()
        report("logits", diff <= LOGIT_TOLERANCE * scale,
               f"max |diff| {diff:.2e}, largest |logit| {scale:.1f}, relative {diff / scale:.1e}")

        greedy = model.generate(input_ids, attention_mask, max_new_tokens=args.max_new_tokens)
        report("greedy tokens", greedy.shape == ref_greedy.shape and torch.equal(greedy, ref_greedy))
        ref_beam = hf.generate(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                               num_beams=args.num_beams, **gen)
        beam = model.generate(input_ids, attention_mask, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams)
        report(f"beam-{args.num_beams} tokens", beam.shape == ref_beam.shape and torch.equal(beam, ref_beam))
    for prompt, row in zip(PROMPTS, greedy):
        print(f"      {prompt[:60]!r} -> {tokenizer.decode(row)!r}")
    print(f"{'all checks passed' if not failures else 'FAILED: ' + ', '.join(failures)} "
          f"({folder}, torch {torch.__version__}, transformers {transformers.__version__})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
