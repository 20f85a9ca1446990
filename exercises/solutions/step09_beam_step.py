"""Step 9 (solution): one step of beam search's bookkeeping."""

from typing import NamedTuple

import torch

from exercises.beam_loop import run_beam_search
from .step06_model import T5  # noqa: F401  (the tests build your model through this module)
from .step08_greedy import new_cache


class BeamStep(NamedTuple):
    scores: torch.Tensor  # (B, beams) summed log-probs of the beams that run on
    parents: torch.Tensor  # (B, beams) which old beam each continues
    tokens: torch.Tensor  # (B, beams) the token each appends
    finished_scores: torch.Tensor  # (B, 2 * beams) normalised score of candidates that end here, -inf for others
    finished_parents: torch.Tensor  # (B, 2 * beams)
    finished_tokens: torch.Tensor  # (B, 2 * beams)


def beam_step(log_probs, beam_scores, num_beams: int, generated_len: int, eos_id: int, length_penalty: float = 1.0,
              last_step: bool = False) -> BeamStep:
    batch, beams, vocab = log_probs.shape
    totals = (log_probs + beam_scores[:, :, None]).view(batch, beams * vocab)  # every continuation of every beam
    cand_scores, cand_index = torch.topk(totals, 2 * num_beams)  # (B, 2 * beams), best first
    cand_parents, cand_tokens = cand_index // vocab, cand_index % vocab
    done = (cand_tokens == eos_id) | last_step
    # The best num_beams candidates that do not end run on.
    scores, keep = torch.topk(cand_scores.masked_fill(done, -float("inf")), num_beams)
    # An ending candidate becomes a finished hypothesis only if it ranks among the first num_beams.
    in_top = torch.arange(2 * num_beams) < num_beams
    finishes = done & in_top
    normalised = (cand_scores / generated_len ** length_penalty).masked_fill(~finishes, -float("inf"))
    return BeamStep(scores, cand_parents.gather(1, keep), cand_tokens.gather(1, keep), normalised, cand_parents,
                    cand_tokens)


def beam_search(model, input_ids, attention_mask=None, num_beams: int = 4, max_new_tokens: int = 20,
                length_penalty: float = 1.0):
    return run_beam_search(model, input_ids, attention_mask, num_beams, max_new_tokens, length_penalty,
                           beam_step, new_cache)
