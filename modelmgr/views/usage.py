"""Usage of a version for its page: totals per slot and per-minute plots (uPlot specs);
for a language model also tokens, time to first token and tokens/s."""

from __future__ import annotations

import json
from typing import Any


def _spec(x: list, series: list[tuple[str, list]], *, unit: str, empty: str) -> str:
    """The JSON our charts read (static/js/modelmgr.js): x in epoch seconds, series."""
    return json.dumps(
        {
            "x": x,
            "unit": unit,
            "empty": empty,
            "series": [{"label": label, "values": values} for label, values in series],
        }
    )


def usage_for_version(version) -> dict[str, Any]:
    """Totals per slot (all time) and the last 24 h as latency and request plots (and the
    generation plots of a language model)."""
    from modelmgr.deploy.stats import stats_for_version

    stats = stats_for_version(version=version)
    labels = stats["plot"]["labels"]
    columns = dict(zip(labels, stats["plot"]["data"], strict=False))
    x = columns.get("time", [])
    empty = "No requests in the last 24 hours."
    llm = {}
    if stats["llm"]:
        llm = {
            "ttft_plot": _spec(
                x,
                [
                    ("p50", columns.get("ttft p50 ms", [])),
                    ("p95", columns.get("ttft p95 ms", [])),
                ],
                unit="ms",
                empty=empty,
            ),
            "speed_plot": _spec(
                x,
                [
                    ("p50", columns.get("tokens/s p50", [])),
                    ("p95", columns.get("tokens/s p95", [])),
                ],
                unit="tok/s",
                empty=empty,
            ),
            "tokens_plot": _spec(
                x,
                [
                    ("prompt", columns.get("prompt tokens", [])),
                    ("generated", columns.get("generated tokens", [])),
                ],
                unit="tokens/min",
                empty=empty,
            ),
        }
    return {
        "llm": llm,
        "totals": stats["totals"],
        "latency_plot": _spec(
            x,
            [("p50", columns.get("p50 ms", [])), ("p95", columns.get("p95 ms", []))],
            unit="ms",
            empty=empty,
        ),
        "requests_plot": _spec(
            x,
            [
                ("requests", columns.get("requests", [])),
                ("errors", columns.get("errors", [])),
                ("refused", columns.get("refused", [])),
            ],
            unit="req/min",
            empty=empty,
        ),
    }
