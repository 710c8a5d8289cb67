"""The answer-only loss equals the model's own causal-LM loss (and gradient) on real padded batches."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from pipeline.train.collator import SampleEncoder, pad_batch
from pipeline.train.loss import answer_only_loss, first_labelled_position
from pipeline.train.trainer import load_rows


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
