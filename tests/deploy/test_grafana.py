"""The Grafana dashboard (deploy/components/prometheus/grafana-dashboard.json) queries only
metrics our nodes really export, loads with Grafana's own schema models, and ships in the
kustomize Prometheus component as a ConfigMap the Grafana sidecar picks up.

The exported names come from scraping a real ``clutchcall up`` (control plane, origin and
POP); the metric names of each panel query come from parsing its PromQL
(``promql-parser``). The JSON is loaded with ``grafana-foundation-sdk`` (Grafana's
generated models of the dashboard schema and of every panel and data-query plugin).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as gdash
from grafana_foundation_sdk.models import prometheus as gprom
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.test_up_watch_publish import running_up
from tests.deploy.test_manifests import REGIONS, render

DASHBOARD = (
    Path(__file__).resolve().parents[2]
    / "deploy"
    / "components"
    / "prometheus"
    / "grafana-dashboard.json"
)
# What Grafana substitutes before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$region": ".*"}


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dash["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _queries(dash: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in _panels(dash):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"]
            # label_values(metric, label) is Grafana's, not PromQL: check its metric.
            assert query.startswith("label_values(") and query.endswith(")"), query
            yield f"variable {var['name']}", query[len("label_values(") : -1].split(",")[0]


def metric_names(expr: str) -> set[str]:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def exported_names(text: str) -> set[str]:
    """Every series name a scrape may hold: histogram families with their
    _bucket/_sum/_count, counters with _total, even before a first sample."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "histogram":
            names.update(f"{family.name}{s}" for s in ("_bucket", "_sum", "_count"))
        elif family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def test_metric_names_are_parsed_from_promql() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le) (rate(a_bucket[$__rate_interval]) * on(instance)"
        ' group_left(region) b{region=~"$region"})) / ignoring(x) c'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c"}
    with pytest.raises(ValueError):
        metric_names("sum by (le (rate(a[5m]))")


def test_dashboard_loads_with_grafana_schema_models() -> None:
    raw = _dashboard()
    register_default_plugins()
    model = gdash.Dashboard.from_json(raw)
    again = json.loads(JSONEncoder().encode(model))
    assert again["uid"] == raw["uid"] and again["title"] == raw["title"]
    kept = [(p["type"], p["title"], [t.get("expr") for t in p.get("targets") or []])
            for p in again["panels"]]  # fmt: skip
    assert kept == [
        (p["type"], p["title"], [t["expr"] for t in p.get("targets", [])]) for p in raw["panels"]
    ]
    ids = [p["id"] for p in raw["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in model.panels or []:
        if isinstance(panel, gdash.RowPanel):
            continue
        # Each panel's options are those of its plugin's schema, each query a Prometheus one.
        plugin = importlib.import_module(f"grafana_foundation_sdk.models.{panel.type_val}")
        assert isinstance(panel.options, plugin.Options), (panel.title, type(panel.options))
        assert panel.targets, panel.title
        for target in panel.targets:
            assert isinstance(target, gprom.Dataquery), (panel.title, type(target))
        grid = panel.grid_pos
        assert grid is not None and grid.x + grid.w <= 24, panel.title


@pytest.mark.parametrize("region", REGIONS)
def test_the_component_ships_the_dashboard_as_a_labelled_configmap(region: str) -> None:
    docs = render(region)
    maps = [d for d in docs if d["kind"] == "ConfigMap"
            and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]  # fmt: skip
    assert [m["metadata"]["name"] for m in maps] == ["clutchcall-grafana-dashboard"]
    assert json.loads(maps[0]["data"]["grafana-dashboard.json"]) == _dashboard()


@pytest.mark.e2e
@pytest.mark.timeout(150)
def test_every_queried_metric_is_exported_by_our_nodes(tmp_path: Path) -> None:
    # On both QUIC stacks: a few panels are one stack's (aioquic counts the Retries it
    # sends and its half-open handshakes; picoquic does neither), the rest both.
    exported: set[str] = set()
    for stack in ("picoquic", "aioquic"):
        (tmp_path / stack).mkdir()
        with running_up(tmp_path / stack, "--quic-stack", stack) as info:
            # One API request, so the control plane's labelled request metrics have samples.
            assert httpx.get(f"{info['base_url']}/healthz", timeout=5).status_code == 200
            for key in ("metrics_url", "origin_metrics_url", "pop_metrics_url"):
                response = httpx.get(info[key], timeout=5)
                assert response.status_code == 200, key
                exported |= exported_names(response.text)
    queried: dict[str, set[str]] = {}
    for title, expr in _queries(_dashboard()):
        for name in metric_names(expr):
            queried.setdefault(name, set()).add(title)
    assert len(queried) >= 30
    missing = {name: sorted(titles) for name, titles in queried.items() if name not in exported}
    assert not missing, f"panels query metrics no node exports: {missing}"
