"""A LangChain retriever over the project's search (extra `langchain`: langchain-core).

    from pipeline.integrations.langchain import PipelineRetriever
    retriever = PipelineRetriever.from_service("http://127.0.0.1:8000", key, k=5,
                                               filters=["metadata.tier=gold OR label=billing"])
    docs = retriever.invoke("refund for a damaged parcel")

Each `Document` has the record id as `id`, the prompt and response as `page_content`, and
the hit's fields as `metadata` (id, rid, score, scores, label, ..., the record's own
`metadata` dict): a RAG chain can cite the record it grounded on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from pipeline.integrations.source import HttpSource, LocalSource, document_parts
from pipeline.store.scope import Scope


class PipelineRetriever(BaseRetriever):
    """Vector, keyword or hybrid search of the kept records, with filters, as Documents."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    source: Any = Field(description="a LocalSource or an HttpSource")
    k: int = 10
    mode: str = "hybrid"
    filters: list[Any] = Field(default_factory=list, description="search filters, ANDed")

    @classmethod
    def from_project(
        cls, root: str | Path = ".", scope: Scope | None = None, **kwargs: Any
    ) -> PipelineRetriever:
        """Search the project under `root` in this process (within `scope`, default all)."""
        return cls(source=LocalSource.open(root, scope), **kwargs)

    @classmethod
    def from_service(
        cls, url: str, key: str, ca: str | Path | None = None, **kwargs: Any
    ) -> PipelineRetriever:
        """Search the HTTP service with an API key (the key's scope applies); `ca` verifies
        an https service's certificate (default: the system's roots)."""
        return cls(source=HttpSource(url, key, ca=ca), **kwargs)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        docs = []
        for hit in self.source.hits(query, self.k, self.mode, self.filters):
            record_id, text, meta = document_parts(hit)
            docs.append(Document(id=record_id, page_content=text, metadata=meta))
        return docs
