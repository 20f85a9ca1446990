"""Step 12 of 12: train it yourself: the batch, the loss, one optimizer step.     about 45 minutes

Read first: docs/training.md, section 3 (The training step). minit5's answer: minit5/data.py collate,
minit5/trainer.py summed_loss and Trainer.train_step.
Test: python -m pytest exercises -k step12 -m "not training"    the fast tests (seconds)
      python -m pytest exercises -k step12                        and the reward: your code trains your T5
                                                                  (a few minutes on 2 CPU cores)

So far your T5 ran weights that someone else trained. Here your code trains it. A training pair is two lists of
token ids, a question and its answer, each ending with EOS; training shows the model a batch of pairs, measures
how surprised it is by each answer token (the loss), and moves every weight a little in the direction that makes
it less surprised (the gradient, then one optimizer step). exercises/train_loop.py runs your step 2,000 times on
the demo's data and draws the loss as it falls; at the end your T5 answers "Where is Ganymede?".
"""

import torch  # noqa: F401
import torch.nn.functional as F  # noqa: F401

from .step06_model import T5  # noqa: F401  (the training builds your model through this module)
from .train_loop import run_training


def collate(examples, pad_id: int) -> dict:
    """examples: a list of (input_ids, labels) pairs, each a list of token ids of its own length, ending with EOS.
    Returns a dict of three LongTensors, padded on the right to the longest input (S) and target (T) of the batch:

        input_ids       (B, S)  the inputs, then pad_id
        attention_mask  (B, S)  1 for a real input token, 0 for padding (the encoder must not read the padding)
        labels          (B, T)  the targets, then -100 ("not a target": the loss skips it, shift_right reads it
                                as pad)

    Hint: torch.full((B, S), pad_id, dtype=torch.long), then write each row's tokens into its start."""
    raise NotImplementedError("step 12: collate")


def seq2seq_loss(model, batch):
    """The training loss of a batch: the mean cross-entropy over every real target token (a 0-dim tensor that
    backward() works on).

    - Teacher forcing: the decoder reads the answer shifted right, [start, y1, ..., y(T-1)] (your T5.shift_right,
      step 6), and at each position predicts the next token, [y1, ..., yT]: all T positions in one pass.
    - The encoder reads input_ids with the attention_mask, so the padding stays hidden.
    - Padding (-100 in labels) is not a target: F.cross_entropy(logits (N, V), labels (N,), ignore_index=-100)
      averages over the other tokens only, across the whole batch (not per sequence).
    Write it out here: decoder_input_ids, then the logits of model(input_ids, attention_mask,
    decoder_input_ids=...), then the cross-entropy (step 6's T5.forward(labels=...) computes the same)."""
    raise NotImplementedError("step 12: seq2seq_loss")


def train_step(model, optimizer, batch, clip: float = 1.0) -> float:
    """One optimizer step on one batch; returns the loss as a Python float.

    1. optimizer.zero_grad(): backward() ADDS to each parameter's .grad, so clear the last step's first;
    2. loss = seq2seq_loss(model, batch); loss.backward() fills every .grad;
    3. torch.nn.utils.clip_grad_norm_(model.parameters(), clip): if the whole gradient's norm is above clip,
       scale it down to clip (one unlucky batch cannot throw the weights far); before the step, or it does nothing;
    4. optimizer.step(): move the weights (AdamW here; the learning-rate schedule is the loop's job)."""
    raise NotImplementedError("step 12: train_step")


def train(steps=None, say=print, progress: bool = True):
    """Train your T5 from T5's initialisation with your collate and train_step (already written: nothing to do
    here). Returns (model, the loss of every step)."""
    return run_training(T5, collate, train_step, steps=steps, say=say, progress=progress)
