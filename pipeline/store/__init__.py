"""The DuckDB store. All SQL of the project lives in this package.

`db` opens connections with clear errors; `schema` holds the table definitions; each other
module holds the queries of one area (records, search filters, the service's tables).
"""
