"""Answer-only language-model loss: compute logits only where labels can carry loss.

With the Qwen vocabulary (~152k tokens) the output projection and its softmax dominate the cost of a step for
small models: a 1-second clip's prompt is ~200 tokens and the answer ~330, so projecting the prompt positions too
wastes ~40 % of the step. The loss is the usual mean token cross-entropy over labelled positions, identical to
the model's own (tested), only cheaper.
"""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = -100


def first_labelled_position(labels: Any) -> int:
    """Smallest sequence index holding a label != -100 in any row of `labels` (B, L); L if there is none."""
    import torch

    labelled = labels != IGNORE_INDEX
    if not bool(labelled.any()):
        return labels.shape[1]
    return int(torch.nonzero(labelled.any(dim=0))[0, 0])


def answer_only_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> tuple[Any, Any]:
    """Causal-LM loss of `model` on `inputs` (with `labels`), projecting only the positions that predict a label.

    Returns:
        (loss, outputs): loss is the mean over labelled tokens (or the sum / `num_items_in_batch` when given, as
        transformers does under gradient accumulation); outputs hold logits for the kept positions only.
    """
    import torch.nn.functional as F

    inputs = dict(inputs)
    labels = inputs.pop("labels")
    length = labels.shape[1]
    # Position p predicts token p + 1, so the first labelled token at f needs logits from f - 1 on.
    keep = max(length - first_labelled_position(labels) + 1, 1)
    outputs = model(**inputs, logits_to_keep=keep)
    logits = outputs.logits[:, :-1, :].float()
    targets = labels[:, length - keep + 1 :].to(logits.device)
    reduction = "sum" if num_items_in_batch is not None else "mean"
    loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction=reduction
    )
    if num_items_in_batch is not None:
        loss = loss / num_items_in_batch
    return loss, outputs


def answer_only_trainer_class() -> type:
    """A transformers `Trainer` subclass whose training loss is `answer_only_loss`."""
    from transformers import Trainer

    class AnswerOnlyTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "labels" not in inputs or self.label_smoother is not None or self.compute_loss_func is not None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # Mirror Trainer's scaling rules: normalise by the token count across the accumulated batch exactly
            # when the stock loss would (it then skips its own division by the accumulation steps).
            scaled = self.model_accepts_loss_kwargs and num_items_in_batch is not None
            loss, outputs = answer_only_loss(model, inputs, num_items_in_batch if scaled else None)
            if scaled and self.args.average_tokens_across_devices:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            return (loss, outputs) if return_outputs else loss

    return AnswerOnlyTrainer
