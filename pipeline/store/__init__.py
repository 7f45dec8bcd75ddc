"""The DuckDB store. All SQL of the project lives in this package.

`db` opens connections with clear errors; `schema` holds the table definitions; `rows` is
the one SELECT list and row decoder of a record; each other
module holds the queries of one area (records, search filters, the service's tables).
"""
