"""Ray for one run, shared by the engines that use it (`dedup.engine=ray`, `embed.engine=ray`).

A local cluster started for the run (its CPUs and object store from config) and shut down
at its end, or the cluster at a configured address. Ray is imported only here, inside
`cluster`, so nothing else pays for it when no engine asks for it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.errors import PipelineError, UserInputError

_SIZE = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20,
         "gib": 2**30}  # fmt: skip
# Passed to every worker of the run (a remote cluster's workers do not inherit the driver's
# environment): no model download, no telemetry, no tokenizer threads per worker.
PASSED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")
CONNECT_SECONDS = 5.0  # a host:port that does not answer a TCP connect by then is refused


def parse_size(value: Any, key: str) -> int:
    """Bytes from a size such as `1GB`, `512MiB` or `1000000`; `key` names the config key."""
    text = str(value).strip().lower().replace(" ", "")
    digits = text.rstrip("abgikm")
    unit = text[len(digits) :]
    try:
        number = float(digits)
    except ValueError:
        number = -1.0
    if unit not in _SIZE or number <= 0:
        raise UserInputError(f"config {key}={value!r}: expected a size such as 1GB")
    return int(number * _SIZE[unit])


def check_address(address: str, key: str) -> None:
    """Fail in seconds, naming `key`, when nothing listens at `address` (`host:port` or
    `ray://host:port`); `auto` is left to Ray. Without this, `ray.init` retries a dead
    address for minutes."""
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserInputError(
            f"config {key}={address!r}: expected host:port, ray://host:port or auto"
        )
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise UserInputError(
            f"config {key}={address!r}: no Ray cluster answers there ({exc}); "
            "start one (`ray start --head`) or set it to null for a local cluster"
        ) from exc


@contextmanager
def cluster(
    address: str | None, num_cpus: int, object_store_memory: int, engine_key: str
) -> Iterator[Any]:
    """Ray for the run: a local cluster (`num_cpus`, a small object store) or the one at
    `address`; shut down at the end unless the caller had started Ray already. `engine_key`
    (e.g. `dedup.engine`) names the setting in every error."""
    section = engine_key.rpartition(".")[0]
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry leaves the machine
    # A dataset freed after the run must not start a new cluster (Ray's auto-init).
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - the dev install has the extra
        raise UserInputError(
            f"{engine_key}=ray needs the ray extra: pip install 'prompt-pipeline[ray]'"
        ) from exc
    from pipeline.store.crypt import db_key

    if db_key() is not None:
        raise UserInputError(
            f"{engine_key}=ray: the store is encrypted at rest, but Ray's object store spills "
            f"records unencrypted; run with {engine_key}=local"
        )
    started = not ray.is_initialized()
    if started:
        passed = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        env = {"env_vars": passed} if passed else None
        if address:
            check_address(address, f"{section}.ray.address")
            try:
                ray.init(address=address, log_to_driver=False, runtime_env=env)
            except Exception as exc:  # Ray raises ConnectionError, ValueError, RuntimeError
                raise UserInputError(
                    f"config {section}.ray.address={address!r}: cannot join that Ray cluster: {exc}"
                ) from exc
        else:
            try:
                # "local": a new cluster, never one `ray start` left on this machine or
                # RAY_ADDRESS names (what Ray would join for address=None).
                ray.init(address="local", num_cpus=num_cpus,
                         object_store_memory=object_store_memory, include_dashboard=False,
                         log_to_driver=False, runtime_env=env)  # fmt: skip
            except Exception as exc:
                raise PipelineError(f"{engine_key}=ray: could not start a local Ray "
                                    f"cluster: {exc}") from exc  # fmt: skip
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
