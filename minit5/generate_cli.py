"""Ask a T5 model something:  python generate.py [--model DIR_OR_HUB_ID] [--adapter LORA_DIR] [PROMPT ...]

Prompts come from the arguments, else one per line from --file or standard input (one answer per line: a
blank line gets a blank answer); with no prompt on a terminal, an interactive loop starts. The default model is
the one `python train.py` writes. Greedy search unless --num-beams > 1 (beam search) or any of
--temperature/--top-k/--top-p is given (sampling). The same command after `pip install`: minit5-generate.
"""

import argparse
import sys
from pathlib import Path

from .loading import DEFAULT_MODEL, DTYPES, LoadError, check_options, load_for_inference


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prompts", nargs="*", help="prompts; none: read --file, standard input, or ask interactively")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model folder or hub id (default: {DEFAULT_MODEL})")
    p.add_argument("--file", help="read prompts from this file, one per line")
    p.add_argument("--adapter", help="a LoRA adapter folder (from train.py --lora-r, or from peft) to apply to --model")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--min-new-tokens", type=int, default=0, help="tokens to generate before EOS is allowed")
    p.add_argument("--num-beams", type=int, default=1)
    p.add_argument("--temperature", type=float, help="sample with this temperature")
    p.add_argument("--top-k", type=int, help="sample from the k most likely tokens")
    p.add_argument("--top-p", type=float, help="sample from the smallest set of tokens with this total probability")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling (default 0)")
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    p.add_argument("--batch-size", type=int, default=8, help="prompts generated together (default 8)")
    p.add_argument("--quantize", choices=["int8"], help="int8 weights for faster CPU decoding (minit5/quant.py)")
    p.add_argument("--compile", action="store_true",
                   help="compile the decoder step with torch.compile (minit5/compiled.py): tens of seconds once per "
                        "shape, then faster per token; pays off for many or long answers")
    return p.parse_args(argv)


def check_args(args):
    """Every setting checked before anything is loaded: a typo costs no loading time, and the error names the
    argument (with a broken model folder too). One line, as SystemExit."""
    def need(ok, message):
        if not ok:
            raise SystemExit(f"error: {message}")
    sampling = any(v is not None for v in (args.temperature, args.top_k, args.top_p))
    need(args.max_new_tokens >= 1, f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    need(0 <= args.min_new_tokens <= args.max_new_tokens,
         f"--min-new-tokens must be between 0 and --max-new-tokens ({args.max_new_tokens}), got {args.min_new_tokens}")
    need(args.num_beams >= 1, f"--num-beams must be at least 1, got {args.num_beams}")
    need(args.temperature is None or args.temperature > 0, f"--temperature must be > 0, got {args.temperature}")
    need(args.top_k is None or args.top_k >= 0, f"--top-k must be >= 0 (0 = off), got {args.top_k}")
    need(args.top_p is None or 0 < args.top_p <= 1, f"--top-p must be in (0, 1], got {args.top_p}")
    need(not (sampling and args.num_beams > 1),
         "sampling (--temperature/--top-k/--top-p) and beam search (--num-beams > 1) do not combine; use one")
    need(not (args.stream and args.num_beams > 1),
         "--stream prints tokens as greedy search or sampling picks them; beam search only knows its answer at "
         "the end, so drop --stream or --num-beams")
    need(args.batch_size >= 1, f"--batch-size must be at least 1, got {args.batch_size}")
    need(not (args.prompts and args.file), "give prompts as arguments or with --file, not both")
    need(not (args.quantize and args.compile),
         f"--compile does not support --quantize {args.quantize}; choose one of the two")
    try:
        check_options(args.device, args.dtype, args.quantize)  # the device, and what int8 needs
    except LoadError as e:
        raise SystemExit(f"error: {e}")


def read_prompts(args):
    """The prompts, one per input line (blank lines included, so answers line up with the input); None means
    interactive."""
    if args.prompts:
        return args.prompts
    if args.file:
        try:
            text = Path(args.file).read_bytes().decode("utf-8")
        except OSError as e:
            raise SystemExit(f"error: cannot read --file {args.file}: {e.strerror}")
        except UnicodeDecodeError as e:
            line = e.object[:e.start].count(b"\n") + 1
            raise SystemExit(f"error: --file {args.file} is not UTF-8 text (line {line}, byte {e.start}); "
                             f"save it as UTF-8")
        return text.splitlines()
    if sys.stdin.isatty():
        return None  # interactive
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise SystemExit(f"error: standard input is not UTF-8 text (line {line}, byte {e.start})")


def load(args):
    """(model, tokenizer) as the arguments say (minit5/loading.py), or SystemExit with one sentence."""
    try:
        return load_for_inference(args.model, adapter=args.adapter, dtype=args.dtype, device=args.device,
                                  quantize=args.quantize)
    except LoadError as e:
        raise SystemExit(f"error: {e}")


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    sampling = any(v is not None for v in (args.temperature, args.top_k, args.top_p))
    options = dict(max_new_tokens=args.max_new_tokens, min_new_tokens=args.min_new_tokens,
                   num_beams=args.num_beams, do_sample=sampling,
                   temperature=1.0 if args.temperature is None else args.temperature,
                   top_k=args.top_k or 0,
                   top_p=args.top_p if args.top_p is not None else 1.0, step="compiled" if args.compile else "fast")
    prompts = read_prompts(args)
    model, tokenizer = load(args)
    if args.compile:  # stderr, so that the answers on stdout stay the same
        print("compiling the decoder step for the first batch (about 20 s the first time on 2 CPU cores; torch caches "
              "it on disk for later runs)...", file=sys.stderr, flush=True)

    import torch
    generator = torch.Generator(device=args.device).manual_seed(args.seed)

    def answer(batch):
        if args.stream and len(batch) == 1 and batch[0].strip():
            input_ids, attention_mask = tokenizer.encode_batch(batch)
            produced, printed = [], ""

            def show(tokens):  # decode everything so far, print what is new (keeps multi-byte characters whole)
                nonlocal printed
                produced.append(int(tokens[0]))
                text = tokenizer.decode(produced)
                print(text[len(printed):], end="", flush=True)
                printed = text

            model.generate(input_ids, attention_mask, generator=generator, on_step=show, **options)
            print()
            return
        asked = [prompt for prompt in batch if prompt.strip()]  # a blank line gets a blank answer: outputs
        answers = iter(generate_answers(asked) if asked else [])  # stay one per input line
        for prompt in batch:
            print(next(answers) if prompt.strip() else "", flush=True)

    def generate_answers(batch):
        input_ids, attention_mask = tokenizer.encode_batch(batch)
        out = model.generate(input_ids, attention_mask, generator=generator, **options)
        return [tokenizer.decode(row[1:]) for row in out]

    try:
        if prompts is None:  # interactive
            print(f"minit5 · {args.model} · empty line or Ctrl-D to quit")
            while True:
                try:
                    prompt = input("> ")
                except EOFError:
                    break
                if not prompt.strip():
                    break
                answer([prompt])
            return
        step = 1 if args.stream else max(1, args.batch_size)
        for start in range(0, len(prompts), step):
            answer(prompts[start:start + step])
    except ValueError as e:  # bad generation settings, reported in one line
        raise SystemExit(f"error: {e}")
    except KeyboardInterrupt:
        raise SystemExit(130)


if __name__ == "__main__":
    main()
