"""deploy/k8s: valid Kubernetes objects, and pieces that fit together.

Schema validation is offline, against the schemas ``kubernetes-validate``
bundles (strict: an unknown field is an error). The other checks are the
mistakes a schema cannot see and a user would meet as pods that never
connect: the workers' ``--supervisor`` must name the supervisor's Service and
the pipeline's listen port, every placement must match some pool's
``--labels``, headless Services must select their StatefulSet's pods, probes
must point at the port the worker serves them on, and the pipeline in the
ConfigMap must load (with keys where the Secrets would mount them).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from va_actors.runtime.config import load_pipeline
from va_actors.runtime.transport import create_keypair, load_keypair, public_keys

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
DOCS = REPO / "docs" / "deploy.md"


def _objects() -> list[tuple[str, dict[str, Any]]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    found = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            if doc:
                found.append((name, doc))
    return found


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in _objects() if doc["kind"] == kind]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    return dict(containers[0])


def _option(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def _pipeline_text() -> str:
    (config,) = [d for d in _by_kind("ConfigMap") if d["metadata"]["name"] == "va-pipeline"]
    return str(config["data"]["pipeline.toml"])


def test_every_manifest_is_valid_for_kubernetes() -> None:
    objects = _objects()
    assert {doc["kind"] for _, doc in objects} >= {"Deployment", "StatefulSet", "Service",
                                                    "ConfigMap"}
    for name, doc in objects:
        try:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc.message} "
                        f"at {'.'.join(map(str, exc.path))}")


def test_a_broken_manifest_is_caught() -> None:
    """The check above can fail: a misspelt field is refused."""
    (deployment,) = _by_kind("Deployment")
    deployment["spec"]["replica"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(),
                                     strict=True)


def test_workers_register_with_the_supervisor_service_on_the_pipeline_port() -> None:
    (service,) = [s for s in _by_kind("Service") if s["metadata"]["name"] == "va-supervisor"]
    (deployment,) = _by_kind("Deployment")
    listen = tomllib.loads(_pipeline_text())["transport"]["listen"]
    port = int(listen.rsplit(":", 1)[1])
    assert [p["port"] for p in service["spec"]["ports"]] == [port]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    for pool in _by_kind("StatefulSet"):
        args = _container(pool)["args"]
        assert _option(args, "--supervisor") == f"tcp://va-supervisor:{port}"


def test_every_placement_matches_a_worker_pool() -> None:
    pools = [dict(kv.split("=", 1) for kv in _option(_container(s)["args"], "--labels")
                  .split(",")) for s in _by_kind("StatefulSet")]
    actors = tomllib.loads(_pipeline_text())["actor"]
    placed = [a for a in actors if "placement" in a]
    assert placed
    for actor in placed:
        wanted = actor["placement"]["labels"]
        assert any(wanted.items() <= pool.items() for pool in pools), (actor["name"], pools)


def test_each_pool_has_a_headless_service_probes_and_its_own_key() -> None:
    services = {s["metadata"]["name"]: s for s in _by_kind("Service")}
    docs = DOCS.read_text()
    for pool in _by_kind("StatefulSet"):
        service = services[pool["spec"]["serviceName"]]
        assert service["spec"]["clusterIP"] == "None"
        labels = pool["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        container = _container(pool)
        health = int(_option(container["args"], "--health-port"))
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert ports[container["readinessProbe"]["httpGet"]["port"]] == health
        assert _option(container["args"], "--name") == "$(POD_NAME)"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pool["spec"]["template"]["spec"]["volumes"]}
        key = _option(container["args"], "--keys")
        (holder,) = [n for n, path in mounts.items() if key.startswith(path + "/")]
        secret = volumes[holder]["secret"]["secretName"]
        assert f"create secret generic {secret}" in docs, secret


def test_the_gpu_pool_requests_gpus() -> None:
    gpu = [s for s in _by_kind("StatefulSet")
           if "gpu=1" in _option(_container(s)["args"], "--labels")]
    assert gpu
    for pool in gpu:
        resources = _container(pool)["resources"]
        assert int(resources["requests"]["nvidia.com/gpu"]) >= 1
        assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"]


def test_the_supervisor_has_probes_and_every_secret_is_documented() -> None:
    (deployment,) = _by_kind("Deployment")
    container = _container(deployment)
    assert container["readinessProbe"]["exec"]["command"][:2] == ["va-launch", "status"]
    docs = DOCS.read_text()
    for volume in deployment["spec"]["template"]["spec"]["volumes"]:
        if "secret" in volume:
            assert f"create secret generic {volume['secret']['secretName']}" in docs


def test_the_pipeline_in_the_config_map_loads(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """With the keys where the Secrets mount them (here: in tmp_path) and POD_IP set.

    The loader reads every key and checks every file a parameter names.
    """
    for name in ("supervisor", "cpu", "gpu"):
        create_keypair(tmp_path / "keys", name)
    (tmp_path / "keys" / "workers").mkdir()
    for name in ("cpu", "gpu"):
        (tmp_path / "keys" / f"{name}.key").rename(tmp_path / "keys" / "workers" / f"{name}.key")
    text = re.sub(r'"/keys/supervisor/', f'"{tmp_path}/keys/', _pipeline_text())
    text = text.replace('"/keys/workers"', f'"{tmp_path}/keys/workers"')
    text = text.replace('"/app/', f'"{REPO}/')  # the image holds the repository at /app
    (tmp_path / "pipeline.toml").write_text(text)
    monkeypatch.setenv("POD_IP", "10.1.2.3")
    config = load_pipeline(tmp_path / "pipeline.toml")
    assert config.transport is not None
    assert config.transport.advertise == "10.1.2.3"
    trusted = {key for source in config.transport.trust for key in public_keys(source)}
    assert trusted == {load_keypair(tmp_path / "keys" / f"{n}.key_secret").public
                       for n in ("cpu", "gpu")}
