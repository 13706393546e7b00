"""The deployment files: every Kubernetes manifest validates offline against the Kubernetes
schemas (kubernetes-validate bundles them), the settings they give are ones the app accepts,
and the shutdown ordering holds (the grace period outlasts SHUTDOWN_DELAY +
SHUTDOWN_TIMEOUT). The HAProxy configuration parses (where haproxy is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from api.settings import load_settings
from api.settings_doc import env_name, setting_fields
from tests.helpers.env import PRODUCTION_NEEDS, ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
MANIFESTS = sorted(KUBERNETES.glob("*.yaml"))
KUBERNETES_VERSION = "1.30.0"  # the oldest minor still supported upstream when written
SECRET_KEYS = {
    "JWT_SECRET",
    "JWT_REFRESH_SECRET",
    "METRICS_TOKEN",
    "DATABASE_URL",
    "REDIS_URL",
    "MFA_ENCRYPTION_KEY",  # production refuses MFA enrolment without it
}


def resources() -> dict[str, dict[str, Any]]:
    """Every manifest's documents, by kind."""
    found: dict[str, dict[str, Any]] = {}
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                found[document["kind"]] = document
    return found


def pod_specs() -> list[dict[str, Any]]:
    kinds = resources()
    return [kinds[kind]["spec"]["template"]["spec"] for kind in ("Deployment", "Job")]


def test_the_expected_manifests_are_there() -> None:
    kinds = set(resources())
    expected = {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"}
    assert expected | {"PodDisruptionBudget", "Job"} <= kinds


@pytest.mark.parametrize("path", MANIFESTS, ids=[path.name for path in MANIFESTS])
def test_every_manifest_validates_strictly(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if document:
            # strict: an unknown field (a typo such as `readinesProbe`) is an error too.
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_typo_in_a_manifest_is_caught() -> None:
    deployment = resources()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_configmap_names_real_settings_that_load_in_production() -> None:
    data = resources()["ConfigMap"]["data"]
    known = {env_name(field.name) for field in setting_fields()}
    assert set(data) - known == set()
    assert not set(data) & SECRET_KEYS  # secrets come from the Secret, by reference
    secrets = {
        "JWT_SECRET": "k8s-check-access-secret-0123456789-abcdefgh",
        "JWT_REFRESH_SECRET": "k8s-check-refresh-secret-0123456789-abcdef",
        "METRICS_TOKEN": PRODUCTION_NEEDS["METRICS_TOKEN"],
        "DATABASE_URL": "postgres://graphgate:pw@postgres:5432/graphgate",
        "REDIS_URL": "redis://redis:6379/0",
    }
    settings = load_settings(environ={**data, **secrets}, env_file=None)
    assert settings.app_env == "production" and settings.ready_without_redis


def test_the_grace_period_outlasts_the_delay_and_the_drain() -> None:
    data = resources()["ConfigMap"]["data"]
    needed = int(data["SHUTDOWN_DELAY"]) + int(data["SHUTDOWN_TIMEOUT"])
    spec = resources()["Deployment"]["spec"]
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > needed
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # The delay outlasts the readiness probe's time to notice (period x failures).
    probe = spec["template"]["spec"]["containers"][0]["readinessProbe"]
    assert int(data["SHUTDOWN_DELAY"]) > probe["periodSeconds"] * probe["failureThreshold"]


def test_probes_point_at_the_health_endpoints() -> None:
    container = resources()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_as_non_root_on_a_read_only_root_filesystem(kind: str) -> None:
    spec = resources()[kind]["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    for container in spec["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"requests", "limits"} <= set(container["resources"])
        refs = {ref.get("secretRef", {}).get("name") for ref in container["envFrom"]}
        assert "graphgate-secrets" in refs


def test_the_migration_job_runs_migrate_with_the_deployments_image() -> None:
    kinds = resources()
    job = kinds["Job"]["spec"]["template"]["spec"]["containers"][0]
    api = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["python", "-m", "api", "migrate"]
    assert job["image"] == api["image"]


def test_the_haproxy_configuration_parses() -> None:
    binary = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None
    )
    if binary is None:
        pytest.skip("HAProxy is not installed (CI installs Debian's package: .ci/setup-proxy)")
    env = {
        **os.environ,
        "API1_ADDR": "127.0.0.1:1",
        "API2_ADDR": "127.0.0.1:2",
        "PROXY_BIND": "127.0.0.1:8080",  # only parsed (-c): nothing binds
    }
    config = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
    done = subprocess.run(
        [binary, "-c", "-f", str(config)], env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_its_replicas_behind_the_rigs_haproxy_configuration() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    replicas = {
        name for name, service in services.items() if "replicas" in service.get("profiles", [])
    }
    assert {"api1", "api2", "proxy"} <= replicas
    mounts = services["proxy"]["volumes"]
    assert "./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in mounts
    proxy_address = services["proxy"]["networks"]["replicas"]["ipv4_address"]
    for name in ("api1", "api2"):
        environment = services[name]["environment"]
        assert environment["TRUSTED_PROXIES"] == proxy_address
        assert int(environment["SHUTDOWN_DELAY"]) >= 1


def test_only_the_ingress_controller_may_reach_the_pods() -> None:
    """TRUSTED_PROXIES names a range, and every pod of a cluster can reach every other pod: any
    pod in the range could send its own X-Forwarded-For straight to a replica (a fresh per-IP
    bucket per request, any address in the sessions and the audit log). A NetworkPolicy lets
    in only the ingress controller's namespace (and Prometheus for /metrics, its own rule)."""
    policy = resources()["NetworkPolicy"]
    api = resources()["Deployment"]["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["podSelector"]["matchLabels"] == api
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    for rule in policy["spec"]["ingress"]:
        assert rule["from"], rule  # an empty `from` lets every source in
        for source in rule["from"]:
            assert "ipBlock" not in source and source["namespaceSelector"]["matchLabels"], source


def test_trusted_proxies_is_no_whole_private_network() -> None:
    """10.0.0.0/8 trusts every host of a typical VPC: a client inside it (a VPN user, another
    service) goes through the ingress with its own address trusted, so the walk back through
    X-Forwarded-For reaches the entries it wrote itself."""
    import ipaddress

    settings = resources()["ConfigMap"]["data"]
    for entry in settings["TRUSTED_PROXIES"].split(","):
        network = ipaddress.ip_network(entry.strip())
        assert network.prefixlen >= (16 if network.version == 4 else 48), entry


def test_the_secret_recipe_makes_every_secret_the_app_reads() -> None:
    """The README's `kubectl create secret` names every secret setting: one left out is either
    missing in production (MFA enrolment answers SERVICE_UNAVAILABLE without its key) or put
    into the plain ConfigMap by whoever adds it later."""
    recipe = (KUBERNETES / "README.md").read_text(encoding="utf-8")
    for name in SECRET_KEYS:
        assert f"--from-literal={name}=" in recipe, name
