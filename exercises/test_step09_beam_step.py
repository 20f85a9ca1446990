"""Step 9: one step of beam search's bookkeeping, then the whole search (exercises/beam_loop.py around your step)
compared with minit5's beam search, which matches transformers' (tests/test_generate.py checks that)."""

import torch

from minit5.generate import generate as reference_generate

from ._support import copy_weights, make_eos_likely, prompts, reference_model, tiny_config

STEP = "step09_beam_step"
INF = float("inf")


def hand_made_step():
    """Two beams, five tokens, EOS = 1. The four best candidates (2 × beams), best first:
        -1.1  beam 0 + EOS    rank 0: ends here, a finished hypothesis scored -1.1 / 3 generated tokens
        -1.5  beam 0 + 2      runs on
        -1.7  beam 1 + 2      runs on
        -2.4  beam 1 + EOS    rank 3: ends, but ranks below num_beams, so it is dropped"""
    beam_scores = torch.tensor([[-1.0, -1.5]])
    log_probs = torch.tensor([[[-9.0, -0.1, -0.5, -2.0, -9.0],
                               [-9.0, -0.9, -0.2, -9.0, -9.0]]])
    return log_probs, beam_scores


def test_beam_step_by_hand(impl):
    log_probs, beam_scores = hand_made_step()
    step = impl.beam_step(log_probs, beam_scores, num_beams=2, generated_len=3, eos_id=1, length_penalty=1.0)
    got = {k: getattr(step, k) for k in ("scores", "parents", "tokens", "finished_scores", "finished_parents",
                                         "finished_tokens")}
    expected = dict(scores=torch.tensor([[-1.5, -1.7]]), parents=torch.tensor([[0, 1]]), tokens=torch.tensor([[2, 2]]),
                    finished_scores=torch.tensor([[-1.1 / 3, -INF, -INF, -INF]]),
                    finished_parents=torch.tensor([[0, 0, 1, 1]]), finished_tokens=torch.tensor([[1, 2, 2, 1]]))
    problems = []
    for key, value in expected.items():
        mine = got[key]
        if not isinstance(mine, torch.Tensor) or mine.shape != value.shape or not torch.allclose(mine.double(), value.double()):
            problems.append(f"  {key}: {mine.tolist() if isinstance(mine, torch.Tensor) else mine}, expected {value.tolist()}")
    if not problems:
        return
    lines = ["beam_step on the example in hand_made_step() (see its docstring):"] + problems
    scores, finished = got["scores"], got["finished_scores"]
    if isinstance(scores, torch.Tensor) and scores.numel() == 2 and torch.isinf(scores).any():
        lines.append("A running beam got -inf: you probably took only num_beams candidates. Take 2 × num_beams, so "
                     "that num_beams beams can run on even when some candidates end with EOS.")
    if isinstance(finished, torch.Tensor) and finished.numel() == 4:
        if torch.isfinite(finished[0, 3]):
            lines.append("The EOS candidate at rank 3 was kept: a candidate ending here counts only if it ranks among "
                         "the first num_beams.")
        if torch.isclose(finished[0, 0], torch.tensor(-1.1)):
            lines.append("The finished score is not length-normalised: divide the summed log-prob by "
                         "generated_len ** length_penalty.")
        elif torch.isclose(finished[0, 0], torch.tensor(-1.1 / 4)):
            lines.append("The length counts the start token: generated_len is the tokens after it, EOS included.")
    raise AssertionError("\n".join(lines))


def test_beam_search_matches_minit5(impl):
    config = tiny_config()
    ref = make_eos_likely(reference_model(config, seed=5), margin=0.3)
    yours = copy_weights(impl.T5(config), ref)
    input_ids, attention_mask = prompts(config, batch=3)
    for num_beams, max_new_tokens in [(2, 6), (3, 7)]:
        expected = reference_generate(ref, input_ids, attention_mask, max_new_tokens=max_new_tokens,
                                      num_beams=num_beams, step="readable")
        got = impl.beam_search(yours, input_ids, attention_mask, num_beams=num_beams, max_new_tokens=max_new_tokens)
        assert isinstance(got, torch.Tensor) and torch.equal(got, expected), (
            f"beam_search(num_beams={num_beams}) gave\n{got.tolist() if isinstance(got, torch.Tensor) else got}\n"
            f"expected (minit5, equal to transformers)\n{expected.tolist()}\n"
            f"If test_beam_step_by_hand passes, check that finished_parents/finished_tokens list all 2 × num_beams "
            f"candidates in rank order, best first.")
