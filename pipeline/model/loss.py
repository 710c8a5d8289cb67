"""Answer-only language-model loss: compute logits only where labels can carry loss, optionally weighting the
answer's first line.

With the Qwen vocabulary (~152k tokens) the output projection and its softmax dominate the cost of a step for
small models: a 1-second clip's prompt is ~200 tokens and the answer ~330, so projecting the prompt positions too
wastes a large share of the step (docs/RESULTS.md). The loss is the usual mean token cross-entropy over labelled
positions, identical to the model's own (tested), only cheaper.

First-line weighting: the answer's first line (the motion 1/30 s after the clip) is where the video's evidence
enters; the 29 lines after it mostly continue it, and their decimals hold most of the token loss (docs/RESULTS.md,
"Learning proof"). `first_line_weight` > 1 scales that line's tokens up
within each answer; weights are renormalised per answer to average 1, so the loss keeps the scale (and the
gradient-accumulation arithmetic) of the plain token mean.
"""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = -100
"""Label of a position that carries no loss (transformers' and torch's convention); the collator writes it."""


def first_labelled_position(labels: Any) -> int:
    """Smallest sequence index holding a label != -100 in any row of `labels` (B, L); L if there is none."""
    import torch

    labelled = labels != IGNORE_INDEX
    if not bool(labelled.any()):
        return labels.shape[1]
    return int(torch.nonzero(labelled.any(dim=0))[0, 0])


def first_line_weights(labels: Any, line_break_id: int, first_line_weight: float) -> Any:
    """Per-token loss weights (B, L) float: labelled tokens up to and including each row's first `line_break_id`
    get `first_line_weight`, later labelled tokens 1, unlabelled 0; each row is then scaled so its labelled tokens
    average 1 (a row's total weight equals its labelled-token count)."""
    import torch

    labelled = labels != IGNORE_INDEX
    breaks = (labels == line_break_id) & labelled
    on_first_line = (torch.cumsum(breaks.int(), dim=1) - breaks.int()) == 0
    weights = torch.where(on_first_line, float(first_line_weight), 1.0) * labelled
    count = labelled.sum(dim=1, keepdim=True)
    return weights * (count / weights.sum(dim=1, keepdim=True).clamp_min(1e-12))


def answer_only_loss(
    model: Any,
    inputs: dict[str, Any],
    num_items_in_batch: Any = None,
    first_line_weight: float = 1.0,
    line_break_id: int | None = None,
) -> tuple[Any, Any]:
    """Causal-LM loss of `model` on `inputs` (with `labels`), projecting only the positions that predict a label.

    With `first_line_weight` != 1 (needs `line_break_id`), the answer's first line is weighted as described in the
    module docstring.

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
    per_token = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    ).view(targets.shape)
    if first_line_weight != 1.0:
        if line_break_id is None:
            raise ValueError("first_line_weight needs line_break_id")
        per_token = per_token * first_line_weights(targets, line_break_id, first_line_weight)
    total = per_token.sum()
    if num_items_in_batch is not None:
        return total / num_items_in_batch, outputs
    return total / (targets != IGNORE_INDEX).sum(), outputs


def line_break_token_id(tokenizer: Any) -> int:
    """Id of the single token that encodes "\\n" (the answer's line separator).

    Raises:
        ValueError: the tokenizer splits or merges "\\n" differently.
    """
    ids = tokenizer.encode("\n", add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"the tokenizer encodes a line break as {len(ids)} tokens; first-line weighting needs one")
    return int(ids[0])


def answer_only_trainer_class(first_line_weight: float = 1.0, line_break_id: int | None = None) -> type:
    """A transformers `Trainer` subclass whose training loss is `answer_only_loss` (with the given weighting)."""
    from transformers import Trainer

    class AnswerOnlyTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "labels" not in inputs or self.label_smoother is not None or self.compute_loss_func is not None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # Mirror Trainer's scaling rules: normalise by the token count across the accumulated batch exactly
            # when the stock loss would (it then skips its own division by the accumulation steps).
            scaled = self.model_accepts_loss_kwargs and num_items_in_batch is not None
            loss, outputs = answer_only_loss(
                model, inputs, num_items_in_batch if scaled else None, first_line_weight, line_break_id
            )
            if scaled and self.args.average_tokens_across_devices:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            return (loss, outputs) if return_outputs else loss

    return AnswerOnlyTrainer
