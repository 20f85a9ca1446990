"""Step 12: train it yourself. Your collate, loss and gradients are compared with minit5's (minit5/data.py collate,
minit5/trainer.py summed_loss), your optimizer step with the same step written out, the first steps of the
recipe with minit5's own trainer; then the reward: your T5, trained by your code, answers.

(PYTEST_DONT_REWRITE: a failed check shows its own message, not pytest's account of the expression.)"""

import json

import torch
import torch.nn.functional as F

from minit5.data import collate as reference_collate
from minit5.run_folder import read_metrics
from minit5.trainer import Trainer, summed_loss
from minit5.train_cli import parse_args as parse_train_args

from . import train_loop
from ._support import QUESTIONS, check_close, copy_weights, reference_model, save_hf_checkpoint, tiny_config

STEP = "step12_train"
TRAINING_RUNS = ("test_your_t5_trained_by_you_answers_jupiter",)  # marked `training` by conftest.py: a few minutes
EXAMPLES = [([5, 9, 12, 7, 1], [6, 8, 1]), ([4, 1], [7, 9, 11, 13, 1]), ([8, 3, 6, 1], [1])]  # (input, labels)


def test_collate_pads_inputs_and_labels(impl):
    for pad_id in (0, 2):  # T5's pad is 0; another id shows that the one given is used
        expected = reference_collate(EXAMPLES, pad_id=pad_id)
        got = impl.collate(EXAMPLES, pad_id)
        assert isinstance(got, dict) and set(got) >= set(expected), \
            f"collate should return a dict with {sorted(expected)}, got {sorted(got) if isinstance(got, dict) else got}"
        for key in ("input_ids", "attention_mask", "labels"):
            mine, theirs = got[key], expected[key]
            if isinstance(mine, torch.Tensor) and mine.dtype == theirs.dtype and torch.equal(mine, theirs):
                continue
            lines = [f"collate(examples, pad_id={pad_id})[{key!r}] is\n"
                     f"{mine.tolist() if isinstance(mine, torch.Tensor) else mine}\nexpected\n{theirs.tolist()}   "
                     f"(the examples: {EXAMPLES})"]
            if isinstance(mine, torch.Tensor) and mine.shape == theirs.shape:
                if key == "labels" and torch.equal(mine, theirs.masked_fill(theirs == -100, pad_id)):
                    lines.append(f"The labels are padded with pad_id ({pad_id}): pad them with -100, which means "
                                 f"\"not a target\", or the loss would teach the model to say pad after every answer.")
                elif torch.equal(mine.flip(1), _left_to_right(theirs, key, pad_id)):
                    lines.append("The padding is on the left: T5 pads on the right (the tokens start at position 0).")
                elif key == "attention_mask" and (mine == 1).all():
                    lines.append("The attention_mask is all ones: it must be 0 where the input is padding.")
                elif key == "input_ids" and torch.equal(mine, theirs.masked_fill(got["attention_mask"] == 0, 0)):
                    lines.append(f"The inputs are padded with 0, not with the pad_id given ({pad_id}).")
            elif isinstance(mine, torch.Tensor) and mine.dtype != theirs.dtype:
                lines.append(f"dtype {mine.dtype}, expected {theirs.dtype} (token ids are torch.long).")
            raise AssertionError("\n".join(lines))


def _left_to_right(padded, key, pad_id):
    """The same rows padded on the left instead, then flipped: what left padding looks like after .flip(1)."""
    fill = {"input_ids": pad_id, "attention_mask": 0, "labels": -100}[key]
    rows = []
    for row in padded.tolist():
        real = [t for t in row if t != fill] if key != "attention_mask" else [t for t in row if t == 1]
        rows.append(list(reversed([fill] * (len(row) - len(real)) + real)))
    return torch.tensor(rows)


def batch_and_models(impl, seed=0):
    config = tiny_config()
    ref = reference_model(config, seed=seed)
    yours = copy_weights(impl.T5(config), ref)
    return config, ref, yours, reference_collate(EXAMPLES, 0)


def test_loss_and_gradients_match_minit5(impl):
    config, ref, yours, batch = batch_and_models(impl)
    ref.train(), yours.train()  # dropout is 0 here: train mode changes nothing but is how training runs
    labels = batch["labels"]
    real_tokens = int((labels != -100).sum())
    expected = summed_loss(ref, batch) / real_tokens  # minit5's trainer: the sum over real tokens / their number
    expected.backward()
    loss = impl.seq2seq_loss(yours, batch)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0 and loss.requires_grad, (
        f"seq2seq_loss should return a 0-dim tensor that backward() can start from, got "
        f"{loss!r:.80}: do not call .item() or .detach() on it")
    with torch.no_grad():
        input_ids, mask = batch["input_ids"], batch["attention_mask"]
        shifted = ref.shift_right(labels)
        logits = ref(input_ids, mask, decoder_input_ids=shifted)[0]
        flat = logits.reshape(-1, config.vocab_size)
        mistakes = [
            ("the decoder reads the labels themselves, not the labels shifted right: at position t it sees the "
             "token it must predict, so the model learns to copy. Use shift_right(labels) as decoder_input_ids.",
             F.cross_entropy(ref(input_ids, mask, decoder_input_ids=labels.clamp(min=0))[0].reshape(
                 -1, config.vocab_size), labels.reshape(-1), ignore_index=-100)),
            ("the padding is counted: the -100 labels became targets (pad). Pass ignore_index=-100 to "
             "F.cross_entropy and keep the -100s in the labels.",
             F.cross_entropy(flat, labels.clamp(min=0).reshape(-1))),
            ("the loss is averaged per sequence, then over the batch: T5's loss is one mean over every real target "
             "token of the batch, so a long answer counts more than a short one.",
             torch.stack([F.cross_entropy(logits[i], labels[i], ignore_index=-100) for i in range(len(labels))]).mean()),
            ("the encoder reads the padding: pass batch['attention_mask'] to the model.",
             F.cross_entropy(ref(input_ids, None, decoder_input_ids=shifted)[0].reshape(-1, config.vocab_size),
                             labels.reshape(-1), ignore_index=-100)),
            ("the loss is the sum over the tokens, not their mean.", expected * real_tokens),
        ]
    check_close(loss.detach(), expected.detach(), "seq2seq_loss(model, batch)", atol=1e-5, mistakes=mistakes,
                hint="decoder_input_ids = model.shift_right(labels); logits = model(input_ids, attention_mask, "
                     "decoder_input_ids=...)[0]; F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), "
                     "ignore_index=-100).")
    loss.backward()
    theirs = dict(ref.named_parameters())
    for name, p in yours.named_parameters():
        assert p.grad is not None, (
            f"after seq2seq_loss(...).backward(), {name} has no gradient: the loss must be computed from the "
            f"model's output without leaving the graph (no torch.no_grad(), .detach() or .item()).")
        check_close(p.grad, theirs[name].grad, f"the gradient of {name}", atol=1e-5, rtol=1e-4,
                    hint="The loss value is right but this gradient is not: is part of the loss computed under "
                         "torch.no_grad() or from detached values?")


def sgd_steps(model, batch, steps, clip, zero_grad=True, clip_first=True):
    """What `steps` calls of train_step do with SGD (lr 0.5), written out; the options are the mistakes."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(steps):
        if zero_grad:
            optimizer.zero_grad()
        loss = summed_loss(model, batch) / int((batch["labels"] != -100).sum())
        loss.backward()
        if clip_first:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        losses.append(loss.item())
    return {name: p.detach().clone() for name, p in model.named_parameters()}, losses


def test_train_step_matches_the_steps_written_out(impl):
    """Two steps with plain SGD (lr 0.5) make each part of the step visible: a gradient that is not cleared
    adds up, an unclipped one moves the weights further (clip 0.5 is below this gradient's norm of about 3)."""
    config, ref, yours, batch = batch_and_models(impl, seed=1)
    clip = 0.5
    expected, expected_losses = sgd_steps(ref, batch, 2, clip)
    optimizer = torch.optim.SGD(yours.parameters(), lr=0.5)
    losses = [impl.train_step(yours, optimizer, batch, clip) for _ in range(2)]
    assert all(isinstance(x, float) for x in losses), \
        f"train_step should return the loss as a Python float (loss.item()), got {[type(x).__name__ for x in losses]}"
    problems = [name for name, p in yours.named_parameters() if not torch.allclose(p, expected[name], atol=1e-5)]
    if not problems and all(abs(a - b) < 1e-5 for a, b in zip(losses, expected_losses)):
        return
    lines = [f"after two train_step calls (SGD, lr 0.5, clip {clip}) your weights differ from the steps written "
             f"out in {len(problems)} parameters ({', '.join(problems[:3])}{' ...' if len(problems) > 3 else ''}); "
             f"your losses {[round(x, 5) for x in losses]}, expected {[round(x, 5) for x in expected_losses]}."]
    for explanation, options in [
            ("the gradients are not cleared between steps: backward() adds to .grad, so the second step moved by "
             "both batches' gradients. Call optimizer.zero_grad() at the start of train_step.", dict(zero_grad=False)),
            (f"the gradient is not clipped (or is clipped after optimizer.step(), which is too late): call "
             f"torch.nn.utils.clip_grad_norm_(model.parameters(), clip) between backward() and step().",
             dict(clip_first=False)),
            (f"the gradient is clipped to 1.0, not to the clip given ({clip}).", dict(clip=1.0))]:
        _, ref_again, _, _ = batch_and_models(impl, seed=1)
        wrong, _ = sgd_steps(ref_again, batch, 2, **{"clip": clip, **options})
        if all(torch.allclose(p, wrong[name], atol=1e-5) for name, p in yours.named_parameters()):
            lines.append(f"Your weights equal what this mistake gives: {explanation}")
            break
    else:
        if losses and abs(losses[0] - expected_losses[0]) > 1e-5:
            lines.append("The first loss already differs: make test_loss_and_gradients_match_minit5 pass first.")
    raise AssertionError("\n".join(lines))


def test_the_recipe_starts_as_minit5s_trainer_does(impl, tmp_path):
    """The first steps of the recipe, with your collate and train_step, against `python train.py` with the same
    settings: the same losses step by step, and falling. (The whole run is the reward test below.)"""
    steps = 8  # within the warmup (100 steps), where the learning rate does not depend on the run's length
    model, losses = impl.train(steps=steps, say=lambda *a, **k: None, progress=False)
    config_json = tmp_path / "config.json"
    train_loop.recipe_config().save(config_json)
    # the command the docs give for this recipe (train_command), as train.py reads it, with per-step logging
    settings = parse_train_args(train_loop.train_command(str(config_json), str(tmp_path / "run"), steps) + [
        "--log-every", "1", "--eval-every", str(10 ** 6), "--save-every", str(10 ** 6), "--eval-examples", "1"])
    Trainer(settings, log=lambda message: None).train()
    expected = [row["loss"] for row in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in row]
    assert len(expected) == steps and expected[-1] < expected[0], \
        f"minit5's trainer should log {steps} falling losses (the test setup is broken): {expected}"
    assert len(losses) == steps and all(abs(a - b) < 1e-4 * b for a, b in zip(losses, expected)), (
        f"the first {steps} steps of the recipe with your collate and train_step give the losses\n"
        f"{[round(x, 4) for x in losses]}\nminit5's trainer, on the same settings, weights and batches, gives\n"
        f"{[round(x, 4) for x in expected]}\nMake the other step 12 tests pass first; if they pass and this does "
        f"not, compare your train_step with minit5/trainer.py Trainer.train_step (which clips at --clip, then steps).")


def test_your_t5_trained_by_you_answers_jupiter(impl, tmp_path, say):
    """The reward: a fresh T5 of your own (steps 1-6), trained by your train_step for the whole recipe (a few
    minutes), saved with your names (step 7), loaded by your loader, answers with your greedy search (step 11)."""
    from importlib import import_module
    package = impl.__name__.rsplit(".", 1)[0]
    loading, answering = (import_module(f"{package}.{step}") for step in ("step07_load_checkpoint", "step11_answer"))
    say()
    with say.live():
        model, losses = impl.train()
    assert losses[-1] < losses[0] / 4, f"the loss did not fall: from {losses[0]:.3f} to {losses[-1]:.3f}"
    save_hf_checkpoint(model, tmp_path, loading.hf_name)
    (tmp_path / "losses.json").write_text(json.dumps(losses))
    for question, expected in QUESTIONS.items():
        got = answering.answer(tmp_path, question)
        assert expected in got, (
            f"your T5, trained by your code, answered {got!r} to {question!r} (expected {expected!r}); the loss "
            f"fell from {losses[0]:.3f} to {losses[-1]:.3f}. The reference solutions reach the answer with this "
            f"recipe; compare your run with theirs: python -m exercises.train_loop and python -m "
            f"exercises.train_loop --solutions.")
        say(f"  your T5, trained by your own code: {question} → {got}")
