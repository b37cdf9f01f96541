"""``metrics.json`` as the report reads it (:func:`videogen.report.render_html`, :func:`~videogen.report.render_markdown`)
and as the KFP metrics are taken from it (:func:`videogen.evaluate.scalar_metrics`).

metrics.json is written by evaluate itself, so its shape is fixed; what varies from run to run is its numbers. The
input picks, for each number of a real (trimmed) metrics.json (``fuzz/metrics_template.json``), a value the
computations can give (NaN, infinities, zero, negative zero, huge, negative, or the original). Lists keep their
length: evaluate writes every per-window series with at least one window. The contract is stricter than the other readers': whatever the numbers, the report renders (no error)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import atheris

from videogen import evaluate, report

TEMPLATE = json.loads((Path(__file__).with_name("metrics_template.json")).read_text())
FLOATS = (math.nan, math.inf, -math.inf, 0.0, -0.0, 1e300, -1e300, -1.0, 5e-324)
INTS = (0, -1, 1, 2**63, -(2**63))


def _mutate(value, fdp: atheris.FuzzedDataProvider):
    """``value`` with its numbers replaced as the input says."""
    if isinstance(value, dict):
        return {key: _mutate(item, fdp) for key, item in value.items()}
    if isinstance(value, list):
        return [_mutate(item, fdp) for item in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    choices = FLOATS if isinstance(value, float) else INTS
    pick = fdp.ConsumeIntInRange(0, 2 * len(choices))  # the upper half keeps the original
    return choices[pick] if pick < len(choices) else value


def test_one_input(data: bytes) -> None:
    metrics = _mutate(copy.deepcopy(TEMPLATE), atheris.FuzzedDataProvider(data))
    evaluate.scalar_metrics(metrics)
    report.render_markdown(metrics, {}, {}, None)
    report.render_html(metrics, {}, {}, None, [], [], None)


if __name__ == "__main__":
    from fuzz import driver

    driver.main(test_one_input)
