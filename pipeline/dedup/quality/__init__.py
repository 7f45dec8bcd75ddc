"""Quality filters of the dedup stage: text measures, the filters built on them, language id."""
