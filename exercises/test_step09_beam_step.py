"""Step 9: one step of beam search's bookkeeping, then the whole search (exercises/beam_loop.py around your step)
compared with minit5's beam search, which matches transformers' (tests/test_generate.py checks that).

(PYTEST_DONT_REWRITE: a failed check shows its own message, not pytest's account of the expression.)"""

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


FIELDS = ("scores", "parents", "tokens", "finished_scores", "finished_parents", "finished_tokens")


def differences(step, expected) -> list[str]:
    """One line per field of a BeamStep that differs from `expected` (a dict of some of the fields)."""
    problems = []
    for key, value in expected.items():
        mine = getattr(step, key, None)
        if not isinstance(mine, torch.Tensor) or mine.shape != value.shape or not torch.allclose(mine.double(), value.double()):
            problems.append(f"  {key}: {mine.tolist() if isinstance(mine, torch.Tensor) else mine}, expected {value.tolist()}")
    return problems


def by_hand(impl, length_penalty=1.0, last_step=False, eos_id=1):
    """beam_step on hand_made_step(), and what it should give. eos_id=3 swaps tokens 1 and 3 of the example."""
    log_probs, beam_scores = hand_made_step()
    if eos_id == 3:
        log_probs = log_probs[:, :, [0, 3, 2, 1, 4]]
    step = impl.beam_step(log_probs, beam_scores, num_beams=2, generated_len=3, eos_id=eos_id,
                          length_penalty=length_penalty, last_step=last_step)
    eos = eos_id
    if last_step:  # every candidate ends: the first num_beams finish, none runs on
        expected = dict(scores=torch.tensor([[-INF, -INF]]),
                        finished_scores=torch.tensor([[-1.1, -1.5, -INF, -INF]]) / 3 ** length_penalty,
                        finished_parents=torch.tensor([[0, 0, 1, 1]]), finished_tokens=torch.tensor([[eos, 2, 2, eos]]))
    else:
        expected = dict(scores=torch.tensor([[-1.5, -1.7]]), parents=torch.tensor([[0, 1]]),
                        tokens=torch.tensor([[2, 2]]),
                        finished_scores=torch.tensor([[-1.1 / 3 ** length_penalty, -INF, -INF, -INF]]),
                        finished_parents=torch.tensor([[0, 0, 1, 1]]), finished_tokens=torch.tensor([[eos, 2, 2, eos]]))
    return step, expected


def test_beam_step_by_hand(impl):
    step, expected = by_hand(impl)
    problems = differences(step, expected)
    if not problems:
        return
    lines = ["beam_step on the example in hand_made_step() (see its docstring):"] + problems
    scores, finished = getattr(step, "scores", None), getattr(step, "finished_scores", None)
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


def test_beam_step_length_penalty_and_eos_id_by_hand(impl):
    for length_penalty in (2.0, 0.5):
        step, expected = by_hand(impl, length_penalty=length_penalty)
        problems = differences(step, expected)
        if not problems:
            continue
        lines = [f"beam_step on hand_made_step() with length_penalty={length_penalty}:"] + problems
        finished = getattr(step, "finished_scores", None)
        if isinstance(finished, torch.Tensor) and finished.numel() == 4:
            if torch.isclose(finished[0, 0], torch.tensor(-1.1 / 3)):
                lines.append("length_penalty is ignored: the finished score is total / generated_len ** "
                             "length_penalty (with 2.0, longer answers are favoured more; with 0.5, less).")
            elif torch.isclose(finished[0, 0], torch.tensor(-1.1 / (3 * length_penalty))):
                lines.append("length_penalty multiplies the length: it is an exponent, total / generated_len ** "
                             "length_penalty.")
        raise AssertionError("\n".join(lines))
    step, expected = by_hand(impl, eos_id=3)
    problems = differences(step, expected)
    if problems:
        raise AssertionError("\n".join(
            ["beam_step on hand_made_step() with tokens 1 and 3 swapped and eos_id=3:"] + problems +
            ["A candidate ends when its token is eos_id (the argument), whatever number that is."]))


def test_beam_step_at_the_last_step_by_hand(impl):
    step, expected = by_hand(impl, last_step=True)
    problems = differences(step, expected)
    if not problems:
        return
    lines = ["beam_step on hand_made_step() with last_step=True (the length limit: every candidate ends here):"]
    lines += problems
    finished, scores = getattr(step, "finished_scores", None), getattr(step, "scores", None)
    if isinstance(finished, torch.Tensor) and finished.numel() == 4 and not torch.isfinite(finished[0, 1]):
        lines.append("last_step is ignored: at the last step every candidate ends, EOS or not, so the first "
                     "num_beams candidates all become finished hypotheses (done = (token == eos_id) | last_step).")
    if isinstance(scores, torch.Tensor) and torch.isfinite(scores).any():
        lines.append("At the last step no beam runs on: the running scores are all -inf.")
    raise AssertionError("\n".join(lines))


def test_beam_search_matches_minit5(impl):
    config = tiny_config()
    ref = make_eos_likely(reference_model(config, seed=5), margin=0.3)
    yours = copy_weights(impl.T5(config), ref)
    input_ids, attention_mask = prompts(config, batch=3)
    for num_beams, max_new_tokens, length_penalty in [(2, 6, 1.0), (3, 7, 1.0), (2, 6, 2.0), (3, 7, 0.5)]:
        expected = reference_generate(ref, input_ids, attention_mask, max_new_tokens=max_new_tokens,
                                      num_beams=num_beams, length_penalty=length_penalty, step="readable")
        got = impl.beam_search(yours, input_ids, attention_mask, num_beams=num_beams, max_new_tokens=max_new_tokens,
                               length_penalty=length_penalty)
        if isinstance(got, torch.Tensor) and torch.equal(got, expected):
            continue
        lines = [f"beam_search(num_beams={num_beams}, max_new_tokens={max_new_tokens}, length_penalty="
                 f"{length_penalty}) gave\n{got.tolist() if isinstance(got, torch.Tensor) else got}\n"
                 f"expected (minit5, equal to transformers)\n{expected.tolist()}"]
        failing = [name for name, kwargs in [("test_beam_step_by_hand", {}),
                                             ("test_beam_step_length_penalty_and_eos_id_by_hand",
                                              dict(length_penalty=2.0)),
                                             ("test_beam_step_length_penalty_and_eos_id_by_hand",
                                              dict(length_penalty=0.5)),
                                             ("test_beam_step_length_penalty_and_eos_id_by_hand", dict(eos_id=3)),
                                             ("test_beam_step_at_the_last_step_by_hand", dict(last_step=True))]
                   if differences(*by_hand(impl, **kwargs))]
        if failing:
            lines.append(f"Your beam_step fails {failing[0]}: make the hand-made examples pass first; their "
                         f"messages say what is wrong.")
        else:
            lines.append("Your beam_step passes every hand-made example, so look at what they do not cover: "
                         "finished_parents and finished_tokens list all 2 × num_beams candidates in rank order, "
                         "best first, and the running beams are the best num_beams candidates that do not end.")
        raise AssertionError("\n".join(lines))
