"""Stage entry points: each `run(cfg, root) -> report` does the work; the CLI in
`pipeline/commands/` reads params.yaml and prints `summaries`."""
