"""Step 9 of 11: one step of beam search's bookkeeping.                     about 45 minutes

Read first: docs/generation.md, section 5 (Beam search). minit5's answer: minit5/generate.py _beam_search.
Test: python -m pytest exercises -k step09

exercises/beam_loop.py holds the loop, written for you; it calls your beam_step once per token. Beam search keeps
num_beams running hypotheses per example. Each step:

1. every running beam proposes every token: total = beam's summed log-prob + the token's log-prob;
2. over all beams × tokens, take the best 2 × num_beams candidates (so that num_beams can still run on even if
   up to num_beams of them end with EOS);
3. the best num_beams candidates that do not end (token != EOS, and not the last step) run on;
4. a candidate that ends becomes a finished hypothesis only if it ranks among the first num_beams candidates;
   its score is normalised by length: total / generated_len ** length_penalty.
"""

from typing import NamedTuple

import torch

from .beam_loop import run_beam_search
from .step06_model import T5  # noqa: F401  (the tests build your model through this module)
from .step08_greedy import new_cache


class BeamStep(NamedTuple):
    scores: torch.Tensor  # (B, beams) summed log-probs of the beams that run on, best first
    parents: torch.Tensor  # (B, beams) which old beam (0 .. beams-1) each continues
    tokens: torch.Tensor  # (B, beams) the token each appends
    finished_scores: torch.Tensor  # (B, 2 * beams) per candidate, in rank order: its normalised score if it
    #                                 becomes a finished hypothesis here, else -inf
    finished_parents: torch.Tensor  # (B, 2 * beams) each candidate's beam
    finished_tokens: torch.Tensor  # (B, 2 * beams) each candidate's token


def beam_step(log_probs, beam_scores, num_beams: int, generated_len: int, eos_id: int, length_penalty: float = 1.0,
              last_step: bool = False) -> BeamStep:
    """log_probs: (B, beams, V) this step's log-probs for each running beam; beam_scores: (B, beams) their summed
    log-probs so far (-inf for beams that do not exist yet). generated_len: tokens after the start token once this
    step's token is added (EOS included). last_step: every candidate ends here (the length limit).

    Hints: add beam_scores[:, :, None], view as (B, beams * V), torch.topk(..., 2 * num_beams) gives scores and
    flat indices; index // V is the beam, index % V the token. masked_fill(done, -inf) before a second topk picks
    the runners. torch.arange(2 * num_beams) < num_beams marks the candidates allowed to finish."""
    raise NotImplementedError("step 9: beam_step")


def beam_search(model, input_ids, attention_mask=None, num_beams: int = 4, max_new_tokens: int = 20,
                length_penalty: float = 1.0):
    """Beam search with your beam_step and your cache (already written: nothing to do here)."""
    return run_beam_search(model, input_ids, attention_mask, num_beams, max_new_tokens, length_penalty,
                           beam_step, new_cache)
