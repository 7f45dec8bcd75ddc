"""GET /monitor (admin keys): the `pipeline monitor` report over the prediction log."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query

from pipeline.api.deps import Admin, Service
from pipeline.api.routes import RESPONSES

router = APIRouter(tags=["admin"], responses=RESPONSES)


@router.get("/monitor")
def monitor(
    _: Admin,
    service: Service,
    window: Annotated[str | None, Query(max_length=20, description="e.g. 15m, 1h, 1d")] = None,
    since: Annotated[str | None, Query(max_length=40, description="ISO time or 6h")] = None,
    until: Annotated[str | None, Query(max_length=40, description="ISO time")] = None,
) -> dict[str, Any]:
    """Per window: label PSI and chi-square, embedding MMD, confidence, live accuracy;
    `status` is "drift" when a window crossed a conf/monitor threshold."""
    from pipeline.monitor.report import monitor_report, parse_since
    from pipeline.monitor.settings import MonitorSettings, parse_duration

    if window:
        parse_duration(window, "window")
    start = parse_since(since) if since else None
    end = parse_since(until) if until else None
    settings = MonitorSettings.from_cfg(service.config.monitor)
    paths = service.config.paths
    service.predictions.flush()
    reference = service.monitor_reference.get(
        paths.records, settings, embedder=service.predictions.embedder
    )
    report = monitor_report(paths.service_db, reference, settings, window, start, end)
    return json.loads(json.dumps(report, default=str))
