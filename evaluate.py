"""Score a model on held-out pairs:  python evaluate.py --model DIR [--adapter DIR] --data dev.jsonl --out DIR

    python evaluate.py --model google/flan-t5-small --data dev.jsonl --out out/eval-base
    python evaluate.py --model google/flan-t5-small --adapter out/lora --data dev.jsonl --out out/eval-lora

Each input is answered greedily (or with --num-beams); the answers are scored against the targets with exact match
and ROUGE-1/2/L F1 (minit5/evaluate.py). --out gets scores.json and predictions.jsonl (input, target, prediction
and its scores, one example per line); the scores are printed too. --data is .jsonl with input/target fields, or
.tsv, as for train.py.
"""

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder or hub id (with --adapter: the base model)")
    p.add_argument("--adapter", help="a LoRA adapter folder (from train.py --lora-r, or from peft) to apply")
    p.add_argument("--data", required=True, help="held-out pairs: .jsonl with input/target fields, or .tsv")
    p.add_argument("--out", required=True, help="folder for scores.json and predictions.jsonl")
    p.add_argument("--limit", type=int, help="score only the first N examples")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--max-input-length", type=int, default=512, help="inputs are cut to this many tokens")
    p.add_argument("--num-beams", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for flag in ("limit", "max_new_tokens", "max_input_length", "num_beams", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            sys.exit(f"error: --{flag.replace('_', '-')} must be at least 1, got {value}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        sys.exit(f"error: --out {out} is a file; pass a folder")

    import torch

    from minit5 import T5
    from minit5.checkpoint import CheckpointError, atomic_write, write_json
    from minit5.data import DataError, read_pairs
    from minit5.evaluate import example_scores, predict
    from minit5.lora import AdapterError, load_adapter, merge_lora
    from minit5.tokenizer import Tokenizer, TokenizerError

    try:
        pairs = read_pairs(args.data)[:args.limit]
        model = T5.from_pretrained(args.model, dtype=getattr(torch, args.dtype), device=args.device)
        tokenizer = Tokenizer.from_pretrained(args.model)
        if args.adapter:
            merge_lora(load_adapter(model, args.adapter))  # merged: decoding runs at full speed
    except (DataError, CheckpointError, TokenizerError, AdapterError) as e:
        sys.exit(f"error: {e}")

    inputs, targets = [source for source, _ in pairs], [target for _, target in pairs]
    predictions = predict(model, tokenizer, inputs, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                          num_beams=args.num_beams, max_input_length=args.max_input_length, progress=True)
    rows = [dict(input=i, target=t, prediction=p, **example_scores(p, t)) for i, t, p in zip(inputs, targets,
                                                                                           predictions)]
    result = {key: sum(row[key] for row in rows) / len(rows) for key in ("exact_match", "rouge1", "rouge2", "rougeL")}

    out.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write(out / "predictions.jsonl", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    write_json(out / "scores.json", dict(**result, examples=len(rows), model=args.model, adapter=args.adapter,
                                         data=args.data, num_beams=args.num_beams,
                                         max_new_tokens=args.max_new_tokens))
    print(f"{len(rows)} examples · " + " · ".join(f"{k} {100 * v:.2f}" for k, v in result.items()))
    print(f"wrote {out / 'scores.json'} and {out / 'predictions.jsonl'}")


if __name__ == "__main__":
    main()
