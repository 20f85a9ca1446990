"""Greedy decoding one token at a time, showing what the model considered at each step.

    python docs/scripts/trace_generation.py "Where is Ganymede?"                 the demo model in out/demo
    python docs/scripts/trace_generation.py --model DIR "Where is Ganymede?"     any T5 folder (or hub id)
    python docs/scripts/trace_generation.py --random "Where is Ganymede?"        a random tiny model (noise)

It runs the loop of minit5/generate.py by hand: the encoder once, then DecodeState.step (the decoder with its
KV cache) once per token, printing the 3 most likely next tokens and the one greedy search picks (the most
likely). At the end it checks that model.generate gives the same tokens.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_model_arguments, load, token_text  # noqa: E402

from minit5.generate import DecodeState  # noqa: E402


def trace(model, tokenizer, prompt: str, max_new_tokens: int = 20, top: int = 3) -> list[str]:
    config = model.config
    input_ids = torch.tensor([tokenizer.encode(prompt)])  # (1, S), ends with </s>
    attention_mask = torch.ones_like(input_ids)
    lines = [f"prompt {prompt!r}: {input_ids.shape[1]} tokens {input_ids[0].tolist()}"]
    with torch.no_grad():
        encoder_output = model.encode(input_ids, attention_mask)  # (1, S, D): computed once
        lines.append(f"encoder output: {tuple(encoder_output.shape)}, computed once")
        state = DecodeState(model, encoder_output, attention_mask, max_new_tokens)
        token = torch.tensor([[config.decoder_start_token_id]])  # the decoder starts from <pad> = 0
        chosen = [token.item()]
        lines.append(f"{'step':>4}  {'decoder input':<18}{'top-3 next tokens, probability':<{23 * top}}chosen")
        for step in range(1, max_new_tokens + 1):
            logits = state.step(token)  # (1, V): fp32 logits for the next token; the cache grows by one
            probs = logits.softmax(dim=-1)[0]
            best = probs.topk(top)
            candidates = "".join(f"{token_text(tokenizer, int(i)) + f' {p:.3f}':<22} "
                                 for p, i in zip(best.values.tolist(), best.indices.tolist()))
            next_id = int(logits.argmax(dim=-1))  # greedy: the most likely token
            lines.append(f"{step:>4}  {token_text(tokenizer, token.item()):<18}{candidates}"
                         f"{token_text(tokenizer, next_id)}")
            chosen.append(next_id)
            if next_id == config.eos_token_id:
                break
            token = torch.tensor([[next_id]])
        reference = model.generate(input_ids, attention_mask, max_new_tokens=max_new_tokens)[0].tolist()
    lines.append(f"answer: {tokenizer.decode(chosen)!r}  ({len(chosen) - 1} steps; "
                 f"model.generate gives {'the same' if reference == chosen else 'DIFFERENT'} tokens)")
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p, max_new_tokens=20)
    args = p.parse_args()
    model, tokenizer, description = load(args.model, args.random)
    print(f"model: {description}")
    print("\n".join(trace(model, tokenizer, args.prompt, args.max_new_tokens)))


if __name__ == "__main__":
    main()
