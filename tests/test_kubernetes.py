"""deploy/kubernetes: every manifest validates offline against a current Kubernetes, and agrees
with the app: probe paths and ports exist, env names are settings, the pods are locked down."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from owaction.cli import build_parser
from owaction.config import VARIABLES, load_settings
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.37.0"
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
SETTING_NAMES = {v.env for v in VARIABLES}


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


RESOURCES = [doc for name in KUSTOMIZATION["resources"] for doc in documents(name)]
SECRET_EXAMPLE = documents("secret.example.yaml")[0]
CONFIG = next(d for d in RESOURCES if d["kind"] == "ConfigMap")["data"]
WORKLOADS = [d for d in RESOURCES if d["kind"] in ("Deployment", "Job")]
DEPLOYMENTS = {d["metadata"]["name"]: d for d in RESOURCES if d["kind"] == "Deployment"}


def pod(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def container(workload: dict) -> dict:
    (only,) = pod(workload)["containers"]
    return only


def settings():
    """The settings a pod gets: the ConfigMap over the defaults."""
    return load_settings({**CONFIG, "MODULE_SECRET_KEY": TEST_SECRET})


def port_number(cont: dict, port) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in cont["ports"] if p["name"] == port)


def ids(doc: dict) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def test_the_kustomization_lists_every_manifest():
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml",
                                                       "secret.example.yaml"}
    assert sorted(KUSTOMIZATION["resources"]) == sorted(manifests)
    from owaction import __version__

    assert KUSTOMIZATION["images"] == [{"name": "owaction", "newTag": __version__}]


@pytest.mark.parametrize("doc", [*RESOURCES, SECRET_EXAMPLE], ids=ids)
def test_each_manifest_validates_strictly_against_current_kubernetes(doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_misspelt_field_fails_validation():
    text = (K8S / "rest.yaml").read_text().replace("readinessProbe", "readynessProbe", 1)
    broken = next(yaml.safe_load_all(text))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_every_env_name_is_a_setting_and_secrets_only_come_from_the_secret():
    secret_names = set(SECRET_EXAMPLE["stringData"])
    assert set(CONFIG) <= SETTING_NAMES, set(CONFIG) - SETTING_NAMES
    assert secret_names <= SETTING_NAMES, secret_names - SETTING_NAMES
    secret_settings = {v.env for v in VARIABLES if v.secret} | {"DATABASE_URL"}
    missing, extra = sorted(secret_settings - secret_names), sorted(secret_names - secret_settings)
    assert not missing and not extra, (
        f"deploy/kubernetes/secret.example.yaml must list every secret setting: missing "
        f"{missing}, not secret {extra}")
    assert not set(CONFIG) & secret_settings
    for workload in WORKLOADS:
        cont = container(workload)
        assert cont["envFrom"] == [{"configMapRef": {"name": "owaction-config"}},
                                   {"secretRef": {"name": SECRET_EXAMPLE["metadata"]["name"]}}]
        for entry in cont.get("env", []):
            assert entry["name"] in SETTING_NAMES, entry["name"]
    settings()  # the ConfigMap's values parse


def probes(workload: dict) -> list[dict]:
    cont = container(workload)
    return [cont[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in cont]


def test_every_http_probe_path_is_a_route_and_every_port_is_the_one_the_role_listens_on(tmp_path):
    from owaction.rest import create_app

    s = settings()
    app = create_app(load_settings({**CONFIG, "MODULE_SECRET_KEY": TEST_SECRET,
                                    "DATA_DIR": str(tmp_path),
                                    "DATABASE_URL": f"sqlite://{tmp_path}/k.sqlite"}))
    try:
        routes = {rule.rule for rule in app.url_map.iter_rules() if "GET" in rule.methods}
    finally:
        app.extensions["owaction"].service.close()
    listens = {"rest": s.rest_port, "grpc": s.grpc_port}
    metrics = {"grpc": s.grpc_metrics_port, "worker": s.worker_metrics_port}
    for name, deployment in DEPLOYMENTS.items():
        role = container(deployment)["args"][0]
        cont = container(deployment)
        declared = {p["containerPort"] for p in cont.get("ports", [])}
        assert declared == {p for p in (listens.get(role), metrics.get(role)) if p}, name
        assert probes(deployment), name
        for probe in probes(deployment):
            if "httpGet" in probe:
                assert probe["httpGet"]["path"] in routes
                assert port_number(cont, probe["httpGet"]["port"]) == s.rest_port
            elif "grpc" in probe:
                assert probe["grpc"]["port"] == s.grpc_port
                assert probe["grpc"].get("service", "") == ""  # the server reports ""
            elif "tcpSocket" in probe:
                assert port_number(cont, probe["tcpSocket"]["port"]) == listens[role]
            else:
                argv = probe["exec"]["command"]
                assert argv[:3] == ["python", "-m", "owaction"]
                parsed = build_parser().parse_args(argv[3:])
                assert parsed.command == "healthcheck" and parsed.role == role
        # Readiness (and startup) may follow the database; liveness must not restart a pod
        # because the database is down.
        live = cont["livenessProbe"]
        assert live.get("httpGet", {}).get("path") != "/health" and "grpc" not in live


def test_services_hpas_pdbs_and_the_network_policy_point_at_real_pods_and_ports():
    labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in DEPLOYMENTS.items()}
    for svc in (d for d in RESOURCES if d["kind"] == "Service"):
        selector = svc["spec"]["selector"].items()
        (target,) = [n for n, lab in labels.items() if selector <= lab.items()]
        cont = container(DEPLOYMENTS[target])
        for port in svc["spec"]["ports"]:
            assert port_number(cont, port["targetPort"]) == port["port"]
            assert port["appProtocol"] == ("grpc" if port["name"] == "grpc" else "http")
    hpa_targets = {d["spec"]["scaleTargetRef"]["name"] for d in RESOURCES
                   if d["kind"] == "HorizontalPodAutoscaler"}
    assert hpa_targets == {"owaction-rest", "owaction-grpc"}
    for name in hpa_targets:  # utilisation is measured against requests
        assert container(DEPLOYMENTS[name])["resources"]["requests"]["cpu"]
    pdb_selectors = [d["spec"]["selector"]["matchLabels"] for d in RESOURCES
                     if d["kind"] == "PodDisruptionBudget"]
    assert sorted(labels.values(), key=str) == sorted(pdb_selectors, key=str)
    (policy,) = [d for d in RESOURCES if d["kind"] == "NetworkPolicy"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels["owaction-rest"].items()
    s = settings()
    allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == {s.rest_port, s.grpc_port, s.grpc_metrics_port, s.worker_metrics_port}
    sources = [rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
               for rule in policy["spec"]["ingress"]]
    assert sorted(sources) == ["prometheus", "router"]


@pytest.mark.parametrize("workload", WORKLOADS, ids=ids)
def test_pods_are_non_root_read_only_unprivileged_and_write_only_to_volumes(workload):
    spec = pod(workload)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001  # the image's user
    cont = container(workload)
    assert cont["securityContext"] == {"allowPrivilegeEscalation": False,
                                       "readOnlyRootFilesystem": True,
                                       "capabilities": {"drop": ["ALL"]}}
    mounts = {m["mountPath"] for m in cont["volumeMounts"]}
    assert {CONFIG["DATA_DIR"], CONFIG["LOG_DIR"]} <= mounts
    assert cont["resources"]["requests"] and cont["resources"]["limits"]["memory"]
    assert container(workload)["image"] == "owaction"  # the kustomization sets the tag
    assert cont["args"][0] in {"rest", "grpc", "worker", "migrate"}


def test_termination_grace_covers_the_prestop_and_the_drain():
    s = settings()
    drain = {"rest": s.web_graceful_timeout, "grpc": s.grpc_grace}
    for deployment in DEPLOYMENTS.values():
        cont = container(deployment)
        role = cont["args"][0]
        pre_stop = cont.get("lifecycle", {}).get("preStop", {}).get("exec", {})
        delay = int(pre_stop["command"][1]) if pre_stop else 0
        grace = pod(deployment)["terminationGracePeriodSeconds"]
        assert grace > delay + drain.get(role, s.worker_poll_interval), role


def test_the_migration_job_runs_the_image_migrate_command():
    (job,) = [d for d in RESOURCES if d["kind"] == "Job"]
    assert container(job)["args"] == ["migrate"]
    entry = (ROOT / "deploy" / "docker-entrypoint.sh").read_text()
    assert "migrate)" in entry and "db migrate" in entry
