"""The answer-only loss equals the model's own causal-LM loss (and gradient) on real padded batches; its first-line
weighting equals a weighted mean computed from the model's full logits."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from pipeline.model.collator import SampleEncoder, pad_batch
from pipeline.model.loss import answer_only_loss, first_labelled_position, first_line_weights, line_break_token_id
from pipeline.stages.train.trainer import load_rows


def test_first_labelled_position():
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, -100, -100, 7, 8]])
    assert first_labelled_position(labels) == 2
    assert first_labelled_position(torch.full((2, 4), -100)) == 4


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_answer_only_loss_matches_model_loss(family, tiny_qwen3_vl, tiny_qwen2_5_vl, train_dataset_dir):
    path = tiny_qwen3_vl if family == "qwen3_vl" else tiny_qwen2_5_vl
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    rows = load_rows(train_dataset_dir, "train")
    encoder = SampleEncoder(processor)
    # Three rows padded to one length: padding must not change the loss.
    batch = pad_batch([encoder.encode(rows[i]["messages"]) for i in range(3)], processor.tokenizer.pad_token_id)

    reference = model(**batch).loss
    reference.backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    loss, outputs = answer_only_loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    # Logits were computed only from the position before the first answer token on.
    assert outputs.logits.shape[1] == batch["labels"].shape[1] - first_labelled_position(batch["labels"]) + 1
    for name, param in model.named_parameters():
        if name in ref_grads:
            torch.testing.assert_close(param.grad, ref_grads[name], rtol=1e-4, atol=1e-6)

    n_tokens = int((batch["labels"][:, 1:] != -100).sum())
    summed, _ = answer_only_loss(model, batch, num_items_in_batch=torch.tensor(n_tokens))
    torch.testing.assert_close(summed, reference, rtol=1e-5, atol=1e-6)


def test_first_line_weights_by_hand():
    nl = 9
    labels = torch.tensor([[-100, -100, 5, 6, nl, 7, nl, 8], [-100, 4, nl, 3, -100, -100, -100, -100]])
    weights = first_line_weights(labels, nl, 3.0)
    # Row 0: first line (5, 6, \n) x3, then 1; total 12 over 6 labelled tokens -> scaled by 1/2.
    # Row 1: (4, \n) x3, 3 x1; total 7 over 3 tokens -> scaled by 3/7.
    expected = torch.tensor(
        [[0, 0, 1.5, 1.5, 1.5, 0.5, 0.5, 0.5], [0, 9 / 7, 9 / 7, 3 / 7, 0, 0, 0, 0]], dtype=torch.float32
    )
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(first_line_weights(labels, nl, 1.0), (labels != -100).float())


def test_first_line_weighted_loss_matches_full_logits(tiny_qwen3_vl, train_dataset_dir):
    processor = AutoProcessor.from_pretrained(tiny_qwen3_vl)
    model = AutoModelForImageTextToText.from_pretrained(tiny_qwen3_vl)
    rows = load_rows(train_dataset_dir, "train")
    encoder = SampleEncoder(processor)
    batch = pad_batch([encoder.encode(rows[i]["messages"]) for i in range(2)], processor.tokenizer.pad_token_id)
    nl = line_break_token_id(processor.tokenizer)
    assert processor.tokenizer.decode([nl]) == "\n"

    with torch.no_grad():
        loss, _ = answer_only_loss(model, batch, first_line_weight=5.0, line_break_id=nl)
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    # Independent: full logits, per-token cross-entropy, weights from the answer text's own lines.
    reference, norm = 0.0, 0
    for row in range(2):
        labels = batch["labels"][row]
        positions = torch.nonzero(labels != -100)[:, 0]
        ce = torch.nn.functional.cross_entropy(logits[row, positions - 1], labels[positions], reduction="none")
        text_tokens = [processor.tokenizer.decode([int(t)]) for t in labels[positions]]
        first_line = text_tokens.index("\n") + 1
        w = torch.ones(len(positions))
        w[:first_line] = 5.0
        w = w * len(positions) / w.sum()
        reference += float((w * ce).sum())
        norm += len(positions)
    torch.testing.assert_close(loss, torch.tensor(reference / norm), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        summed, _ = answer_only_loss(model, batch, torch.tensor(norm), first_line_weight=5.0, line_break_id=nl)
    torch.testing.assert_close(summed, loss, rtol=1e-5, atol=1e-6)
