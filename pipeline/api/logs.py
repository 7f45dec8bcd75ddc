"""The server's logging: uvicorn's own configuration, with URLs redacted in the access log.

uvicorn logs every request's full path with its query string. The service takes no secret
in a URL (the request guard refuses a key there with 400), but a client that sends one has
already put it in the request line: the access log keeps the path, drops the query string
and masks anything shaped like an API key in the path.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from pipeline.service.keys import KEY_PREFIX

_KEY_SHAPED = re.compile(re.escape(KEY_PREFIX) + r"([0-9A-Za-z]+)_[0-9A-Za-z_-]+")
_PATH_ARG = 2  # uvicorn.access: (client, method, path with query, http version, status)


def redact_url(path: str) -> str:
    """The path of a request line without its query string, with key-shaped parts masked."""
    path, sep, _ = path.partition("?")
    path = _KEY_SHAPED.sub(lambda m: f"{KEY_PREFIX}{m.group(1)}_[redacted]", path)
    return path + ("?[query redacted]" if sep else "")


class RedactUrl(logging.Filter):
    """A filter for `uvicorn.access` that rewrites the logged path with `redact_url`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > _PATH_ARG and isinstance(args[_PATH_ARG], str):
            record.args = (*args[:_PATH_ARG], redact_url(args[_PATH_ARG]), *args[_PATH_ARG + 1 :])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's default logging config plus the access-log redaction (for `uvicorn.run`,
    which applies it in every worker process)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_url"] = {"()": f"{__name__}.RedactUrl"}
    config["loggers"]["uvicorn.access"]["filters"] = ["redact_url"]
    return config
