"""The sampler: from encoder input to generated tokens by greedy search, sampling or beam search.

The encoder runs once. The decoder then runs one token at a time, keeping the keys and values it has already
computed (model.LayerCache), so step t costs one position's work, not t positions'. The outputs have the
layout Hugging Face's `generate` returns for T5, so the two compare directly:

    [decoder_start, token, token, ..., EOS, fill, fill]     (B, 1 + steps) LongTensor

where rows that finished early are filled with pad (0) in greedy search and sampling, and with EOS (1) in beam
search (what transformers does; see docs/generation.md).
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
import torch.nn.functional as F

STEPS = ("readable", "fast", "compiled")  # generate(step=...): model.py's step, fast.py's, compiled.py's
LONG_PROMPT = 512  # T5 was pretrained on 512-token inputs (flan-T5 fine-tuned on up to 2,048); longer costs S² and may drift


class DecodeState:
    """Everything one decoding run keeps between steps: encoder output, its mask, and the decoder's cache.
    step() feeds one new token per row and returns the next-token logits in fp32."""

    def __init__(self, model, encoder_output, attention_mask, max_len: int):
        self.model = model
        self.encoder_output = encoder_output  # (B, S, D)
        self.attention_mask = attention_mask  # (B, S)
        self.cache = model.new_cache(max_len)
        self.batch, self.device = encoder_output.shape[0], encoder_output.device

    def step(self, tokens):  # tokens: (B, 1) -> logits (B, V)
        logits = self.model.decode(tokens, self.encoder_output, self.attention_mask, cache=self.cache)
        return logits[:, -1].float()

    def reorder_beams(self, rows):
        """Beam search: row i continues old row rows[i], a beam of the same prompt (same encoder output)."""
        for layer in self.cache:
            layer.select(rows, cross=False)


# ------------------------------------------------------------------------------------------------
# Logit processing, in Hugging Face's order: min length, then temperature -> top-k -> top-p.
# ------------------------------------------------------------------------------------------------
def block_eos(scores, eos_id: int):
    """min_new_tokens: EOS may not be chosen yet."""
    scores[:, eos_id] = -float("inf")
    return scores


def top_k_filter(scores, k: int):
    """Keep the k highest scores (ties with the k-th are kept too); the rest become -inf."""
    k = min(k, scores.shape[-1])
    kth_best = torch.topk(scores, k).values[:, -1:]  # (B, 1)
    return scores.masked_fill(scores < kth_best, -float("inf"))


def top_p_filter(scores, p: float, min_keep: int = 1):
    """Nucleus sampling: keep the smallest set of most likely tokens whose probability sums to at least p."""
    sorted_scores, order = torch.sort(scores, descending=False)  # least likely first
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative <= (1 - p)  # the unlikely tail whose total is at most 1 - p
    drop_sorted[:, -min_keep:] = False  # always keep the most likely token(s)
    drop = drop_sorted.scatter(1, order, drop_sorted)
    return scores.masked_fill(drop, -float("inf"))


def sample_filters(scores, temperature: float, top_k: int, top_p: float):
    if temperature != 1.0:
        scores = scores / temperature
    if top_k > 0:
        scores = top_k_filter(scores, top_k)
    if top_p < 1.0:
        scores = top_p_filter(scores, top_p)
    return scores


# ------------------------------------------------------------------------------------------------
# The entry point
# ------------------------------------------------------------------------------------------------
def check_arguments(input_ids, max_new_tokens, num_beams, do_sample, temperature, top_k, top_p, min_new_tokens):
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.dtype != torch.long:
        raise ValueError("input_ids must be a (batch, length) LongTensor of token ids")
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(f"the prompt is empty (input_ids has shape {tuple(input_ids.shape)}); give at least one token")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be an integer >= 1, got {num_beams!r}")
    if do_sample and num_beams > 1:
        raise ValueError("sampling with beams (do_sample=True, num_beams > 1) is not supported; use one or the other")
    if do_sample and not temperature > 0:
        raise ValueError(f"temperature must be > 0 when sampling, got {temperature!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    if not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {top_k!r}")
    if not isinstance(min_new_tokens, int) or not 0 <= min_new_tokens <= max_new_tokens:
        raise ValueError(f"min_new_tokens must be between 0 and max_new_tokens ({max_new_tokens}), got {min_new_tokens!r}")


@torch.no_grad()
def generate(model, input_ids, attention_mask=None, max_new_tokens: int = 32, num_beams: int = 1,
             do_sample: bool = False, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             length_penalty: float = 1.0, early_stopping: bool = False, min_new_tokens: int = 0,
             generator: torch.Generator | None = None, on_step: Callable | None = None,
             watch: Callable | None = None, step: str = "fast"):
    """Generate up to max_new_tokens tokens after the decoder start token. Returns (B, 1 + steps) token ids.

    on_step(tokens) is called with each step's new tokens (B,) as they are chosen (greedy and sampling only).
    watch(numbers) is called after every step with a dict of that step's tensors, to look inside the loop
    (minit5/explore.py draws them): see _greedy_or_sample and _beam_search for the keys.
    step picks who computes a decoder step (the same numbers each way; tests/test_fast.py, test_compiled.py):
      "readable"  model.py's decode with its LayerCache: the reference, slowest;
      "fast"      minit5/fast.py: fused weights, fewer and larger operations (the default);
      "compiled"  minit5/compiled.py's step through torch.compile: faster per token, after a first call that
                  compiles for tens of seconds (once per shape; cached on disk)."""
    check_arguments(input_ids, max_new_tokens, num_beams, do_sample, temperature, top_k, top_p, min_new_tokens)
    if step not in STEPS:
        raise ValueError(f"step must be one of {', '.join(map(repr, STEPS))}, got {step!r}")
    config = model.config
    input_ids = input_ids.to(model.device)
    if attention_mask is None:  # as transformers does: padding is wherever the pad id appears
        attention_mask = (input_ids != config.pad_token_id).long()
    attention_mask = attention_mask.to(model.device)
    if (attention_mask.sum(dim=1) == 0).any():
        raise ValueError("a prompt in the batch is empty (all padding); give each row at least one token")
    if input_ids.shape[1] > LONG_PROMPT:
        warnings.warn(f"the prompt has {input_ids.shape[1]} tokens; T5 models are trained on up to {LONG_PROMPT}, "
                      "so quality may drop and memory grows with the square of the length", stacklevel=2)

    encoder_output = model.encode(input_ids, attention_mask)  # (B, S, D), computed once
    State = DecodeState
    if step == "compiled":
        from .compiled import CompiledDecodeState as State
    elif step == "fast":
        from .fast import FastDecodeState as State
    if num_beams == 1:
        state = State(model, encoder_output, attention_mask, max_new_tokens)
        return _greedy_or_sample(state, config, max_new_tokens, min_new_tokens, do_sample, temperature, top_k,
                                 top_p, generator, on_step, watch)
    # Beam search: each prompt becomes num_beams rows (B * num_beams, ...).
    state = State(model, encoder_output.repeat_interleave(num_beams, dim=0),
                  attention_mask.repeat_interleave(num_beams, dim=0), max_new_tokens)
    return _beam_search(state, config, input_ids.shape[0], num_beams, max_new_tokens, min_new_tokens,
                        length_penalty, early_stopping, watch)


def _greedy_or_sample(state, config, max_new_tokens, min_new_tokens, do_sample, temperature, top_k, top_p,
                      generator, on_step, watch=None):
    """watch gets, each step: scores (B, V), the model's logits (EOS blocked while min_new_tokens says so);
    filtered (B, V), what is sampled from after temperature/top-k/top-p (scores itself in greedy search); tokens (B,)."""
    batch, device = state.batch, state.device
    tokens = torch.full((batch, 1), config.decoder_start_token_id, dtype=torch.long, device=device)
    steps = [tokens[:, 0]]
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    for step in range(max_new_tokens):
        scores = state.step(tokens)  # (B, V) fp32 logits for the next token
        if step < min_new_tokens:
            scores = block_eos(scores, config.eos_token_id)
        if do_sample:
            filtered = sample_filters(scores, temperature, top_k, top_p)
            probs = F.softmax(filtered, dim=-1)
            next_tokens = torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)
        else:
            filtered = scores
            next_tokens = scores.argmax(dim=-1)
        next_tokens = next_tokens.masked_fill(finished, config.pad_token_id)  # finished rows: pad
        steps.append(next_tokens)
        if on_step is not None:
            on_step(next_tokens)
        if watch is not None:
            watch(dict(scores=scores, filtered=filtered, tokens=next_tokens))
        finished |= next_tokens == config.eos_token_id
        if finished.all():
            break
        tokens = next_tokens[:, None]
    return torch.stack(steps, dim=1)  # (B, 1 + steps)


def _beam_search(state, config, batch, num_beams, max_new_tokens, min_new_tokens, length_penalty, early_stopping,
                 watch=None):
    """Beam search with transformers' rules (the vectorised version in transformers 5).

    Each step, every running beam proposes every token; the 2*num_beams best continuations by summed log-prob
    are kept. Those ending in EOS (or at the length limit) become finished hypotheses if they rank in the top
    num_beams, scored sum_logprob / generated_length**length_penalty; the best num_beams of the others run on.
    An example is done when it has num_beams finished hypotheses and (early_stopping) right away, or (default)
    once its best running beam can no longer beat the worst finished one at the current length.

    watch gets, each step: log_probs (B*beams, V) of every running beam; the candidates, (B, 2*beams) each:
    cand_beam (the running beam extended), cand_token, cand_scores (summed log-probs), cand_done; survive (B, beams),
    the candidates that run on; and the finished hypotheses so far: finished (B, beams, max_new_tokens + 1),
    finished_scores, finished_lengths, is_finished (B, beams)."""
    device = state.device
    eos, length = config.eos_token_id, max_new_tokens + 1  # output length includes the start token
    keep = 2 * num_beams  # candidates per step: enough that num_beams survive even if num_beams end in EOS
    NEG = -1.0e9  # "impossible" as a finite number, so sums stay comparable

    # Running beams and finished hypotheses, per example: (B, beams, length) sequences and (B, beams) scores.
    running = torch.full((batch, num_beams, length), eos, dtype=torch.long, device=device)  # EOS is the fill
    running[:, :, 0] = config.decoder_start_token_id
    running_scores = torch.zeros(batch, num_beams, device=device)
    running_scores[:, 1:] = NEG  # all beams start identical: let only the first one propose at step 1
    finished = running.clone()
    finished_scores = torch.full((batch, num_beams), NEG, device=device)
    finished_lengths = torch.zeros(batch, num_beams, dtype=torch.long, device=device)
    is_finished = torch.zeros(batch, num_beams, dtype=torch.bool, device=device)
    can_improve = torch.ones(batch, 1, dtype=torch.bool, device=device)
    in_top_beams = torch.arange(keep, device=device) < num_beams  # (keep,)
    batch_offset = torch.arange(batch, device=device)[:, None] * num_beams  # (B, 1): flat row of beam 0

    for cur_len in range(1, length):  # cur_len = tokens so far, including the start token
        logits = state.step(running[:, :, cur_len - 1].reshape(-1, 1))  # (B*beams, V)
        log_probs = F.log_softmax(logits, dim=-1)
        if cur_len - 1 < min_new_tokens:
            log_probs = block_eos(log_probs, eos)
        vocab = log_probs.shape[-1]
        totals = (log_probs.view(batch, num_beams, vocab) + running_scores[:, :, None]).view(batch, -1)
        cand_scores, cand_index = torch.topk(totals, keep)  # (B, keep), best first
        cand_beam, cand_token = cand_index // vocab, cand_index % vocab
        cand_seqs = running.gather(1, cand_beam[:, :, None].expand(-1, -1, length)).clone()
        cand_seqs[:, :, cur_len] = cand_token
        cand_done = (cand_token == eos) | (cur_len + 1 >= length)  # (B, keep)

        # The best num_beams candidates that are not done keep running.
        survive_scores, survive = torch.topk(cand_scores + cand_done.float() * NEG, num_beams)
        running = cand_seqs.gather(1, survive[:, :, None].expand(-1, -1, length))
        running_scores = survive_scores
        parent = cand_beam.gather(1, survive)  # (B, beams): which old beam each new one continues

        # Done candidates among the top num_beams join the finished hypotheses if they rank high enough.
        newly_finished = cand_done & in_top_beams[None, :]
        normalised = cand_scores / (cur_len ** length_penalty)  # generated tokens so far, EOS included
        if early_stopping:  # an example with num_beams finished hypotheses takes no more
            normalised += (is_finished.all(dim=1, keepdim=True)).float() * NEG
        normalised += (~can_improve).float() * NEG
        normalised += (~newly_finished) * NEG
        merged_scores = torch.cat([finished_scores, normalised], dim=1)  # (B, beams + keep)
        best = torch.topk(merged_scores, num_beams)[1]
        finished = torch.cat([finished, cand_seqs], dim=1).gather(1, best[:, :, None].expand(-1, -1, length))
        finished_scores = merged_scores.gather(1, best)
        finished_lengths = torch.cat([finished_lengths, torch.full_like(cand_token, cur_len)], dim=1).gather(1, best)
        is_finished = torch.cat([is_finished, newly_finished], dim=1).gather(1, best)

        state.reorder_beams((parent + batch_offset).view(-1))  # reorder the cache to follow the surviving beams
        if watch is not None:
            watch(dict(log_probs=log_probs, cand_beam=cand_beam, cand_token=cand_token, cand_scores=cand_scores,
                       cand_done=cand_done, survive=survive, finished=finished, finished_scores=finished_scores,
                       finished_lengths=finished_lengths, is_finished=is_finished))

        # Can the best running beam still beat the worst finished hypothesis? (judged at the current length)
        best_possible = running_scores[:, :1] / (cur_len ** length_penalty)
        worst_finished = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True).values, NEG)
        can_improve = can_improve & (best_possible > worst_finished).any(dim=-1, keepdim=True)
        all_full = bool(is_finished.all()) and early_stopping
        if not can_improve.any() or all_full or bool(cand_done.all()):
            break

    best_lengths = finished_lengths[:, 0]  # (B,) generated tokens of each example's best hypothesis
    return finished[:, 0, : 1 + int(best_lengths.max())]
