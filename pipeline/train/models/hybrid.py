"""Sentence embeddings and hashed n-grams, trained jointly: the default model.

The frozen MiniLM vector knows what a prompt means; word statistics know which template
or phrasing it uses. On the bundled sample and the t0 template holdout each alone loses to
the other on some classes (the linear probe lost to the TF-IDF baseline): an MLP over the
embedding and a linear map over TF-IDF-weighted hashed n-grams, their logits summed and
trained together, beats both (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.train.inputs import InputKind
from pipeline.train.lexical import LexicalSettings
from pipeline.train.models.probe import ProbeHead


class HybridHead(nn.Module):
    """(n, input_dim + lexical width) -> logits: MLP(embedding) + Linear(TF-IDF(counts))."""

    input_kind = InputKind.EMBEDDING_LEXICAL

    def __init__(
        self,
        num_labels: int,
        input_dim: int = 384,
        hidden_dim: int = 256,
        dropout: float = 0.1,
        n_features: int = 1 << 18,
        word_ngrams: Sequence[int] = (1, 2),
        char_ngrams: Sequence[int] | None = None,
        lexical_lr_scale: float = 30.0,
        lexical_init: str = "zeros",
        lexical_init_c: float = 10.0,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.lexical = LexicalSettings(
            n_features=n_features,
            word_ngrams=(int(word_ngrams[0]), int(word_ngrams[1])),
            char_ngrams=(int(char_ngrams[0]), int(char_ngrams[1])) if char_ngrams else None,
        )
        self.embedding_head = ProbeHead(num_labels, input_dim, hidden_dim, dropout)
        self.lexical_head = nn.Linear(self.lexical.width, num_labels)
        nn.init.zeros_(self.lexical_head.weight)  # start from the embedding's opinion alone
        nn.init.zeros_(self.lexical_head.bias)
        # Fitted on the train split before training (`fit_inputs`), saved in the checkpoint.
        self.register_buffer("idf", torch.ones(self.lexical.width))
        self.lexical_lr_scale = lexical_lr_scale
        self.lexical_init = lexical_init
        self.lexical_init_c = lexical_init_c

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        embedding, counts = features[:, : self.input_dim], features[:, self.input_dim :]
        tfidf = counts * self.idf
        # Row-normalised like scikit-learn's TfidfVectorizer: long prompts do not dominate.
        tfidf = tfidf / tfidf.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return self.embedding_head(embedding) + self.lexical_head(tfidf)

    def fit_inputs(self, train_features: Any, labels: np.ndarray | None = None) -> None:
        """Inverse document frequencies of the lexical columns over the train rows (CSR);
        with `lexical_init: logistic`, the linear part starts from a converged logistic
        regression on the same TF-IDF rows (the baseline's solution, then trained on)."""
        counts = train_features[:, self.input_dim :].tocsc()
        df = np.diff(counts.indptr)  # rows with a non-zero count, per column
        n = counts.shape[0]
        idf = np.log((1.0 + n) / (1.0 + df)) + 1.0  # scikit-learn's smooth_idf formula
        self.idf.copy_(torch.from_numpy(idf.astype(np.float32)))
        if self.lexical_init == "logistic" and labels is not None:
            self._init_from_logistic(counts.tocsr(), idf, labels)

    def _init_from_logistic(self, counts: Any, idf: np.ndarray, labels: np.ndarray) -> None:
        import scipy.sparse as sp
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import normalize

        tfidf = normalize(counts @ sp.diags(idf.astype(np.float32)), norm="l2")
        lr = LogisticRegression(C=self.lexical_init_c, max_iter=1000, class_weight="balanced")
        lr.fit(tfidf, labels)
        weight = np.zeros(tuple(self.lexical_head.weight.shape), np.float32)
        bias = np.zeros(weight.shape[0], np.float32)
        if len(lr.classes_) == 2:  # scikit-learn keeps one row for two classes
            weight[lr.classes_[1]], bias[lr.classes_[1]] = lr.coef_[0], lr.intercept_[0]
        else:
            weight[lr.classes_], bias[lr.classes_] = lr.coef_, lr.intercept_
        with torch.no_grad():
            self.lexical_head.weight.copy_(torch.from_numpy(weight))
            self.lexical_head.bias.copy_(torch.from_numpy(bias))

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The linear part learns faster and without weight decay, as a converged LR would."""
        return [
            {"params": list(self.embedding_head.parameters()), "lr": lr},
            {
                "params": list(self.lexical_head.parameters()),
                "lr": lr * self.lexical_lr_scale,
                "weight_decay": 0.0,
            },
        ]
