"""Packed rows (data.collate_packed, T5(packed=True)): several examples share a row and each sees only itself,
so every example's logits, the loss and the gradients are those of one example a row."""

import random

import pytest
import torch
import torch.nn.functional as F

import minit5.data as D

pytestmark = pytest.mark.usefixtures("one_thread")


def random_examples(vocab_size: int, n: int = 9, seed: int = 0) -> list:
    rng = random.Random(seed)
    return [([rng.randrange(2, vocab_size) for _ in range(rng.randint(1, 12))] + [1],
             [rng.randrange(2, vocab_size) for _ in range(rng.randint(0, 5))] + [1]) for _ in range(n)]


def logits_and_loss(model, batch, packed: bool):
    examples = batch.get("decoder_attention_mask") if packed else None
    options = dict(decoder_attention_mask=examples, packed=True) if packed else {}
    logits, _ = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      decoder_input_ids=model.shift_right(batch["labels"], examples), **options)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=-100,
                           reduction="sum")
    return logits, loss


def per_example_logits(logits, batch, packed: bool) -> list:
    """Each example's logits (its target length, V), in the order the examples were given."""
    if not packed:
        return [logits[i, : int((labels != -100).sum())] for i, labels in enumerate(batch["labels"])]
    found = []
    for r, numbers in enumerate(batch["decoder_attention_mask"]):
        for number in range(1, int(numbers.max()) + 1):
            found.append((r, number, logits[r, numbers == number]))
    return found


def test_every_example_gets_the_logits_of_a_row_of_its_own(variant_model):
    model = variant_model.eval()
    examples = random_examples(model.config.vocab_size)
    padded, packed = D.collate(examples, 0), D.collate_packed(examples, 0, growth=2.0)
    assert packed["input_ids"].shape[0] < len(examples)  # rows really are shared
    with torch.no_grad():
        alone = per_example_logits(logits_and_loss(model, padded, False)[0], padded, False)
        shared = per_example_logits(logits_and_loss(model, packed, True)[0], packed, True)
    longest = max(len(source) for source, _ in examples), max(len(target) for _, target in examples)
    rows = D.pack_rows([len(source) for source, _ in examples], [len(target) for _, target in examples],
                       2 * longest[0], 2 * longest[1])
    assert len(shared) == len(examples)
    for r, number, logits in shared:
        i = rows[r][number - 1]  # the example the packed row holds at that place
        torch.testing.assert_close(logits, alone[i], rtol=1e-5, atol=1e-5 * float(alone[i].abs().max()))


def test_packed_loss_and_gradients_equal_the_padded_ones(variant_model):
    model = variant_model.train()
    examples = random_examples(model.config.vocab_size, seed=1)
    results = []
    for packed in (False, True):
        model.zero_grad()
        batch = D.collate_packed(examples, 0) if packed else D.collate(examples, 0)
        _, loss = logits_and_loss(model, batch, packed)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss_padded, grads_padded), (loss_packed, grads_packed) = results
    assert abs(loss_packed - loss_padded) <= 1e-5 * abs(loss_padded)
    for name, g in grads_padded.items():
        assert (grads_packed[name] - g).norm() <= 1e-5 * g.norm() + 1e-12, name


def test_an_example_does_not_see_its_neighbours(variant_model):
    """Changing the other examples of a row leaves this one's logits as they were."""
    model = variant_model.eval()
    first, second = random_examples(model.config.vocab_size, n=2, seed=2)
    other, = random_examples(model.config.vocab_size, n=1, seed=3)
    outputs = []
    for neighbour in (second, other):
        batch = D.collate_packed([first, neighbour], 0, growth=4.0)
        assert batch["input_ids"].shape[0] == 1  # both in one row
        with torch.no_grad():
            logits, _ = logits_and_loss(model, batch, True)
        outputs.append(logits[0, batch["decoder_attention_mask"][0] == number_of(batch, first)])
    torch.testing.assert_close(outputs[0], outputs[1])


def number_of(batch, example) -> int:
    """The example number that the (only) row gives this example: the one whose input ids are the example's."""
    ids, numbers = batch["input_ids"][0], batch["attention_mask"][0]
    for number in range(1, int(numbers.max()) + 1):
        if ids[numbers == number].tolist() == example[0]:
            return number
    raise AssertionError("example not in the row")


def test_pack_rows_first_fit_longest_first_within_both_capacities():
    inputs, targets = [5, 9, 3, 7, 2, 12, 1], [1, 1, 1, 1, 1, 1, 4]
    rows = D.pack_rows(inputs, targets, input_capacity=10, target_capacity=4)
    assert sorted(i for row in rows for i in row) == list(range(7))  # every example once
    assert rows[0] == [5]  # longer than the input capacity: a row of its own
    assert all(sum(inputs[i] for i in row) <= 10 and sum(targets[i] for i in row) <= 4 for row in rows[1:])
    # 12 | 9 | 7+3 | 5+2 | 1 (it would fit beside 9 by input, not by target)
    assert rows == [[5], [1], [3, 2], [0, 4], [6]]


def test_collate_packed_numbers_the_examples_and_keeps_every_label():
    examples = [([5, 6, 1], [7, 1]), ([8, 1], [9, 10, 1]), ([11, 12, 13, 14, 1], [1])]
    batch = D.collate_packed(examples, pad_id=0, growth=1.5)  # rows of up to 7 input and 4 target tokens
    assert batch["input_ids"].tolist() == [[11, 12, 13, 14, 1, 8, 1], [5, 6, 1, 0, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 2, 2], [1, 1, 1, 0, 0, 0, 0]]
    assert batch["labels"].tolist() == [[1, 9, 10, 1], [7, 1, -100, -100]]
    assert batch["decoder_attention_mask"].tolist() == [[1, 2, 2, 2], [1, 1, 0, 0]]
    with pytest.raises(D.DataError, match="no examples"):
        D.collate_packed([], 0)


def test_shift_right_starts_every_packed_example_afresh(variant_model):
    start = variant_model.config.decoder_start_token_id
    labels = torch.tensor([[7, 1, 9, 10, 1, -100]])
    numbers = torch.tensor([[1, 1, 2, 2, 2, 0]])
    shifted = variant_model.shift_right(labels, numbers)
    assert shifted.tolist() == [[start, 7, start, 9, 10, variant_model.config.pad_token_id]]


def test_packed_needs_both_masks(variant_model):
    ids = torch.tensor([[5, 1]])
    with pytest.raises(ValueError, match="packed=True"):
        variant_model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids, packed=True)


def test_a_packed_batch_one_target_token_long(variant_model):
    """Decoder length 1: no causal mask (causal_mask gives None); the example mask alone must do."""
    model = variant_model.eval()
    examples = [([5, 6, 1], [1])]
    padded, packed = D.collate(examples, 0), D.collate_packed(examples, 0)
    assert packed["labels"].shape == (1, 1)
    with torch.no_grad():
        alone, _ = logits_and_loss(model, padded, False)
        shared, _ = logits_and_loss(model, packed, True)
    torch.testing.assert_close(shared, alone, rtol=1e-5, atol=1e-5 * float(alone.abs().max()))
