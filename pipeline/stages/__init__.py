"""Stage entry points: each `run(cfg, root) -> report` does the work; `main()` reads params.yaml."""
