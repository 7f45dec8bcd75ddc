"""A LlamaIndex retriever over the project's search (extra `llamaindex`: llama-index-core).

    from pipeline.integrations.llamaindex import PipelineLlamaIndexRetriever
    retriever = PipelineLlamaIndexRetriever.from_project(".", k=5, filters=["label=support"])
    nodes = retriever.retrieve("refund for a damaged parcel")

Each `NodeWithScore` holds a `TextNode` whose `id_` is the record id, whose text is the
prompt and response and whose `metadata` is the hit's fields; its `score` is the hit's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from pipeline.integrations.source import HttpSource, LocalSource, document_parts
from pipeline.store.scope import Scope


class PipelineLlamaIndexRetriever(BaseRetriever):
    """Vector, keyword or hybrid search of the kept records, with filters, as scored nodes."""

    def __init__(
        self,
        source: LocalSource | HttpSource,
        k: int = 10,
        mode: str = "hybrid",
        filters: Sequence[Any] = (),
        **kwargs: Any,
    ) -> None:
        self.source, self.k, self.mode, self.filters = source, k, mode, list(filters)
        super().__init__(**kwargs)

    @classmethod
    def from_project(
        cls, root: str | Path = ".", scope: Scope | None = None, **kwargs: Any
    ) -> PipelineLlamaIndexRetriever:
        """Search the project under `root` in this process (within `scope`, default all)."""
        return cls(LocalSource.open(root, scope), **kwargs)

    @classmethod
    def from_service(
        cls, url: str, key: str, ca: str | Path | None = None, **kwargs: Any
    ) -> PipelineLlamaIndexRetriever:
        """Search the HTTP service with an API key (the key's scope applies); `ca` verifies
        an https service's certificate (default: the system's roots)."""
        return cls(HttpSource(url, key, ca=ca), **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        out = []
        for hit in self.source.hits(query_bundle.query_str, self.k, self.mode, self.filters):
            record_id, text, meta = document_parts(hit)
            # The hit's fields describe the record; they are not text for an embedder or LLM.
            node = TextNode(
                id_=record_id,
                text=text,
                metadata=meta,
                excluded_embed_metadata_keys=list(meta),
                excluded_llm_metadata_keys=[key for key in meta if key != "id"],
            )
            out.append(NodeWithScore(node=node, score=float(hit["score"])))
        return out
