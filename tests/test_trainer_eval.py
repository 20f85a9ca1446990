"""evaluate() scores known right and wrong answers as it should, and the built-in demo task trains end to end."""

import json

import torch
import torch.nn.functional as F
from trainer_runs import losses, settings

from minit5 import T5, Tokenizer
from minit5 import data as D
from minit5.trainer import TrainConfig, Trainer


def test_evaluate_counts_right_and_wrong_answers(files, tmp_path, monkeypatch):
    pairs = [("Reverse apple.", "elppa"), ("Reverse river.", "revir"), ("Reverse stone.", "enots"),
             ("Reverse cloud.", "duolc"), ("Reverse maple.", "elpam")]
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps({"input": i, "target": t}) + "\n" for i, t in pairs))
    trainer = Trainer(TrainConfig(**settings(files, tmp_path / "out", eval_data=str(dev))), log=lambda m: None)
    tok = trainer.tokenizer
    # the "model" answers: right, right with spaces around (still right), wrong, a prefix (wrong), right
    answers = ["elppa", "  revir ", "stone", "duol", "elpam"]

    def scripted_generate(input_ids, attention_mask, max_new_tokens, **kwargs):
        rows = [[0] + tok.encode(a) for a in answers[:input_ids.shape[0]]]
        width = max(map(len, rows))
        return torch.tensor([r + [0] * (width - len(r)) for r in rows])

    monkeypatch.setattr(trainer.model, "generate", scripted_generate)
    result = trainer.evaluate()
    assert result["exact_match"] == 3 / 5
    assert trainer.model.training  # evaluate() puts the model back in training mode
    # eval_loss: the mean cross-entropy over every target token of the held-out pairs
    batch = D.collate(D.tokenize_pairs(pairs, tok)[0], tok.pad_id)
    with torch.no_grad():
        trainer.model.eval()
        logits, _ = trainer.model(batch["input_ids"], attention_mask=batch["attention_mask"],
                                  decoder_input_ids=trainer.model.shift_right(batch["labels"]))
    expected = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=-100)
    assert abs(result["eval_loss"] - expected.item()) <= 1e-5


def test_the_demo_task_runs_a_few_steps(tmp_path):
    out = tmp_path / "demo"
    trainer = Trainer(TrainConfig(out=str(out), steps=3, batch_size=8, eval_examples=4, log_every=1,
                                  save_every=1000, eval_every=1000), log=lambda m: None)
    result = trainer.train()
    assert sorted(losses(out)) == [1, 2, 3] and all(v > 0 for v in losses(out).values())
    assert set(result) >= {"eval_loss", "exact_match"}
    model, tok = T5.from_pretrained(out), Tokenizer.from_pretrained(out)  # what generate.py loads
    assert model.num_parameters() == trainer.model.num_parameters()
    ids, mask = tok.encode_batch(["Where is Ganymede?"])
    assert model.generate(ids, mask, max_new_tokens=4).shape[0] == 1
