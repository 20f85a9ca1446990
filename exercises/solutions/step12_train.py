"""Step 12 (solution): train it yourself: the batch, the loss, one optimizer step."""

import torch
import torch.nn.functional as F

from exercises.train_loop import run_training
from .step06_model import T5  # noqa: F401  (the training builds your model through this module)


def collate(examples, pad_id: int) -> dict:
    longest_input = max(len(input_ids) for input_ids, _ in examples)
    longest_target = max(len(labels) for _, labels in examples)
    input_ids = torch.full((len(examples), longest_input), pad_id, dtype=torch.long)  # (B, S)
    attention_mask = torch.zeros((len(examples), longest_input), dtype=torch.long)
    labels = torch.full((len(examples), longest_target), -100, dtype=torch.long)  # (B, T): -100 = not a target
    for row, (source, target) in enumerate(examples):
        input_ids[row, :len(source)] = torch.tensor(source)
        attention_mask[row, :len(source)] = 1
        labels[row, :len(target)] = torch.tensor(target)
    return dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


def seq2seq_loss(model, batch):
    labels = batch["labels"]  # (B, T)
    decoder_input_ids = model.shift_right(labels)  # [start, y1, ..., y(T-1)], -100 read as pad
    logits, _ = model(batch["input_ids"], batch["attention_mask"], decoder_input_ids=decoder_input_ids)  # (B, T, V)
    # One mean over every real target token of the batch; -100 (padding) is neither predicted nor counted.
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def train_step(model, optimizer, batch, clip: float = 1.0) -> float:
    optimizer.zero_grad(set_to_none=True)  # gradients add up in .grad: start from nothing
    loss = seq2seq_loss(model, batch)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)  # scale the whole gradient down to norm `clip`
    optimizer.step()
    return loss.item()


def train(steps=None, say=print, progress: bool = True):
    return run_training(T5, collate, train_step, steps=steps, say=say, progress=progress)
