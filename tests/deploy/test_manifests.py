"""The Kubernetes manifests render for every region and validate against the real schemas.

Rendering uses kustomize (``kubectl kustomize``), validation the Kubernetes
OpenAPI schemas shipped by ``kubernetes-validate``, and the Prometheus config
and alert rules are checked by ``promtool`` itself.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REGIONS = ["us-east", "eu-west", "ap-south"]
K8S_VERSION = "1.32.0"
# Prometheus Operator CRDs: kubernetes-validate has no schema for them; their
# content is checked below (rules by promtool, ServiceMonitor by shape).
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def render(region: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with built-in kustomize) is required to render deploy/"
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "overlays" / region)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=REGIONS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_resource_validates_against_kubernetes_schemas(rendered) -> None:  # type: ignore[no-untyped-def]
    _, docs = rendered
    for doc in docs:
        if doc["kind"] in OPERATOR_KINDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_region_wiring(rendered) -> None:  # type: ignore[no-untyped-def]
    region, docs = rendered
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    assert namespaces == {f"clutchcall-{region}"}
    config = by_kind(docs, "ConfigMap")
    region_cm = next(cm for name, cm in config.items() if name.startswith("clutchcall-region"))
    assert region_cm["data"]["region"] == region
    deployments = by_kind(docs, "Deployment")
    assert {"clutchcall-origin", "clutchcall-pop"} <= set(deployments)
    # Only the home region runs Redis; the others reach it by an ExternalName.
    redis_svc = by_kind(docs, "Service")["clutchcall-redis"]
    if region == "us-east":
        assert "clutchcall-redis" in deployments
    else:
        assert "clutchcall-redis" not in deployments
        assert redis_svc["spec"]["type"] == "ExternalName"


def test_pods_are_hardened_and_probed(rendered) -> None:  # type: ignore[no-untyped-def]
    _, docs = rendered
    for name, dep in by_kind(docs, "Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod["containers"]:
            assert c["readinessProbe"] and c["livenessProbe"], name
            assert all(p.get("name") for p in c["ports"]), f"{name}: unnamed port"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["resources"]["requests"], name
        if name in ("clutchcall-origin", "clutchcall-pop"):
            assert pod["terminationGracePeriodSeconds"] >= 20  # GOAWAY drain on SIGTERM
            probe = pod["containers"][0]["readinessProbe"]["httpGet"]
            assert probe == {"path": "/readyz", "port": "metrics"}


def test_pops_have_disruption_budget_and_autoscaler(rendered) -> None:  # type: ignore[no-untyped-def]
    _, docs = rendered
    pdb = by_kind(docs, "PodDisruptionBudget")["clutchcall-pop"]
    hpa = by_kind(docs, "HorizontalPodAutoscaler")["clutchcall-pop"]
    pops = by_kind(docs, "Deployment")["clutchcall-pop"]
    assert pdb["spec"]["selector"]["matchLabels"] == pops["spec"]["selector"]["matchLabels"]
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "clutchcall-pop"


def test_prometheus_component(rendered) -> None:  # type: ignore[no-untyped-def]
    _, docs = rendered
    monitor = by_kind(docs, "ServiceMonitor")["clutchcall"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [
        s
        for s in by_kind(docs, "Service").values()
        if selector.items() <= s["metadata"]["labels"].items()
    ]
    assert {s["metadata"]["name"] for s in scraped} == {
        "clutchcall-origin-metrics",
        "clutchcall-pop-metrics",
    }
    for svc in scraped:
        assert any(
            p["name"] == monitor["spec"]["endpoints"][0]["port"] for p in svc["spec"]["ports"]
        )
    rule = by_kind(docs, "PrometheusRule")["clutchcall"]
    rules_file = yaml.safe_load((DEPLOY / "components/prometheus/rules.yml").read_text())
    assert rule["spec"] == rules_file, "prometheusrule.yaml drifted from rules.yml"


@pytest.mark.parametrize("what", ["config", "rules"])
def test_promtool_accepts_config_and_rules(what: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required"
    folder = DEPLOY / "components/prometheus"
    target = "prometheus.yml" if what == "config" else "rules.yml"
    result = subprocess.run(
        [promtool, "check", what, target], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _container_args(docs: list[dict[str, Any]], deployment: str) -> list[str]:
    dep = by_kind(docs, "Deployment")[deployment]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    # Kubernetes expands $(VAR) from the container env; any value will do here.
    return [a.replace("$(POD_NAME)", "pod-0").replace("$(POD_IP)", "10.0.0.7") for a in args]


@pytest.mark.parametrize(
    ("deployment", "role"), [("clutchcall-origin", "origin"), ("clutchcall-pop", "pop")]
)
def test_container_args_and_config_load_with_the_real_cli(
    rendered,
    deployment: str,
    role: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """The manifests cannot drift from the CLI: their args parse and their TOML loads."""
    from cli.main import build_parser
    from mesh.settings import settings_from_args

    region, docs = rendered
    args = _container_args(docs, deployment)
    config = tmp_path / "clutchcall.toml"
    config.write_text((DEPLOY / "base/clutchcall.toml").read_text())
    args = [f"--config={config}" if a.startswith("--config=") else a for a in args]
    parsed = build_parser().parse_args(args)
    assert parsed.command == role
    if role == "origin":
        from origin.settings import OriginNodeSettings as cls
    else:
        from mesh.settings import PopSettings as cls  # type: ignore[assignment]
    env = {"CLUTCHCALL_REGION": region, "CLUTCHCALL_REDIS": "redis://clutchcall-redis:6379/0"}
    settings = settings_from_args(cls, role, parsed, env=env)
    assert settings.region == region
    assert settings.redis == "redis://clutchcall-redis:6379/0"
    assert settings.node_id == "pod-0" and settings.advertise == "10.0.0.7:4443"
    assert (
        settings.drain_timeout
        < by_kind(docs, "Deployment")[deployment]["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ]
    )
