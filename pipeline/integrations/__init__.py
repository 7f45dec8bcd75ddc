"""Retrievers for the frameworks RAG applications are written in (optional extras).

`pipeline.integrations.langchain.PipelineRetriever` (extra `langchain`) and
`pipeline.integrations.llamaindex.PipelineLlamaIndexRetriever` (extra `llamaindex`) search
either the project's files in process (`LocalSource`) or the HTTP service with an API key
(`HttpSource`), through `pipeline.integrations.source`; docs/integrations.md.
"""
