"""deploy/k8s: every manifest is valid for a pinned Kubernetes release, and agrees with the code.

Validity is kubernetes-validate's: the API's own JSON schemas for that release, bundled with it
(no cluster, no network), in strict mode, where a field the API does not have is an error.
Agreement: the ConfigMap's config.yaml loads with the router's own loader in the environment the
Deployment gives the pod; that environment names only variables the router reads, and every key
it needs comes from the Secret; the container ports are the ones the router listens on; the
probes' paths answer as a kubelet expects; the grace period outlasts the router's own stop.
Nothing here runs a cluster: scheduling, the image's start in a pod, and the Services' balancing
are not exercised.
"""

from __future__ import annotations

import configparser
import copy
import functools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml
from access_support import start_redis
from support import ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY, REPO_ROOT

from ai_router.cli import CHILD_STOP_SECONDS, _parser
from ai_router.config import ConfigError, Settings, load_settings
from ai_router.http_api.app import create_app

K8S_DIR = REPO_ROOT / "deploy" / "k8s"
# The oldest minor release still supported upstream (December 2026: 1.35, 1.36, 1.37).
KUBERNETES_VERSION = "1.35"
SECRET_NAME = "ai-router-keys"
FILLED_SECRET = {
    "OPENAI_API_KEY": OPENAI_TEST_KEY,
    "ANTHROPIC_API_KEY": ANTHROPIC_TEST_KEY,
    "AI_ROUTER_ADMIN_KEY": "rk-test-admin-0123456789abcdef",
    "AI_ROUTER_APP_KEY": "rk-test-app-0123456789abcdef",
}
POD_NAME = "ai-router-5d8f9c7b6-x2k4q"
PROBE_KINDS = ("startupProbe", "livenessProbe", "readinessProbe")


# --- reading the manifests -----------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    return data


def listed_files() -> list[str]:
    files: list[str] = kustomization()["resources"]
    return files


@functools.cache  # parsed once: the tests read, never change, what this returns
def documents(file_name: str) -> list[dict[str, Any]]:
    text = (K8S_DIR / file_name).read_text()
    return [document for document in yaml.safe_load_all(text) if document]


def resources() -> Iterator[dict[str, Any]]:
    for file_name in listed_files():
        yield from documents(file_name)


def resource(kind: str, name: str) -> dict[str, Any]:
    found = [r for r in resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r} among the listed manifests"
    return found[0]


def router_pod() -> dict[str, Any]:
    spec: dict[str, Any] = resource("Deployment", "ai-router")["spec"]["template"]["spec"]
    return spec


def router_container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = router_pod()["containers"]
    (container,) = [c for c in containers if c["name"] == "ai-router"]
    return container


def router_env() -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in router_container()["env"]}


def container_ports(container: Mapping[str, Any]) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container["ports"]}


def secret_data() -> dict[str, str]:
    data: dict[str, str] = resource("Secret", SECRET_NAME)["stringData"]
    return data


def pod_environment(secret: Mapping[str, str], config_dir: Path) -> dict[str, str]:
    """The router container's environment as the kubelet builds it: `secret` as the Secret's
    data, and `config_dir` standing for where the ConfigMap is mounted (its files written
    there). The image's own ENV is left out: the Deployment sets every variable it relies on."""
    (mount,) = [m for m in router_container()["volumeMounts"] if m["name"] == "config"]
    (volume,) = [v for v in router_pod()["volumes"] if v["name"] == "config"]
    config_map = resource("ConfigMap", volume["configMap"]["name"])
    for file_name, text in config_map["data"].items():
        (config_dir / file_name).write_text(text)
    environment = {}
    for name, variable in router_env().items():
        if "value" in variable:
            value = variable["value"]
        elif "secretKeyRef" in variable["valueFrom"]:
            reference = variable["valueFrom"]["secretKeyRef"]
            assert reference["name"] == SECRET_NAME
            value = secret[reference["key"]]
        else:
            assert variable["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            value = POD_NAME
        environment[name] = value
    assert environment["CONFIG_PATH"].startswith(mount["mountPath"] + "/")
    environment["CONFIG_PATH"] = environment["CONFIG_PATH"].replace(mount["mountPath"], str(config_dir))
    return environment


def pod_settings(tmp_path: Path, secret: Mapping[str, str] = FILLED_SECRET) -> Settings:
    return load_settings(environ=pod_environment(secret, tmp_path))


class RecordingEnviron(Mapping[str, str]):
    """An environment that notes every name the code looks up in it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


# os.environ.get("NAME"), os.environ["NAME"], os.environ.setdefault("NAME", ...), os.getenv("NAME")
_ENVIRON_READ = re.compile(
    r"""(?:environ\.get|environ\.setdefault|getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""
)


def variables_the_processes_read() -> set[str]:
    """Names read straight from os.environ by the router's code and gunicorn.conf.py (gunicorn's
    WEB_CONCURRENCY, LOG_LEVEL...), beyond those the config loader looks up."""
    sources = [*(REPO_ROOT / "ai_router").rglob("*.py"), REPO_ROOT / "gunicorn.conf.py"]
    names = set()
    for source in sources:
        for match in _ENVIRON_READ.finditer(source.read_text()):
            names.add(match.group(1) or match.group(2))
    return names


# --- the files -----------------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_in_the_folder() -> None:
    in_folder = {path.name for path in K8S_DIR.iterdir()} - {"kustomization.yaml"}

    assert kustomization()["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization()["kind"] == "Kustomization"
    assert sorted(listed_files()) == sorted(in_folder)
    assert len(set(listed_files())) == len(listed_files())


@pytest.mark.parametrize("file_name", listed_files())
def test_each_listed_manifest_is_valid_for_the_pinned_kubernetes_strictly(file_name: str) -> None:
    for document in documents(file_name):
        # Raises on a schema violation, or on a kind it has no schema for; returns the release
        # whose schema was used, which must be the pinned one, not an older stand-in.
        validated = kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        assert validated == KUBERNETES_VERSION, f"{file_name}: {document['kind']}"


def test_strict_validation_refuses_a_field_kubernetes_does_not_have() -> None:
    deployment = copy.deepcopy(resource("Deployment", "ai-router"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")

    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_everything_goes_in_the_namespace_the_kustomization_names() -> None:
    (namespace,) = [r for r in resources() if r["kind"] == "Namespace"]

    assert kustomization()["namespace"] == namespace["metadata"]["name"] == "ai-router"
    assert all("namespace" not in r["metadata"] for r in resources())


# --- the router's config and environment ---------------------------------------------------------


def test_the_configmap_config_loads_with_the_routers_loader_in_the_pods_environment(
    tmp_path: Path,
) -> None:
    settings = pod_settings(tmp_path)

    assert settings.source == str(tmp_path / "config.yaml")
    assert settings.server.host == "0.0.0.0"
    assert settings.server.replica_name == POD_NAME
    assert settings.state.backend == "redis"
    assert {name: p.api_key is not None for name, p in settings.providers.items()} == {
        "openai": True,
        "anthropic": True,
    }
    assert [key.name for key in settings.auth.keys] == ["app"]
    assert all(key.key is not None for key in settings.auth.keys)
    assert settings.auth.admin_key is not None
    assert not settings.auth.allow_unauthenticated


def test_with_the_secret_as_committed_the_router_refuses_to_start(tmp_path: Path) -> None:
    """Placeholders left empty never make a router that serves anyone unauthenticated."""
    assert set(secret_data().values()) == {""}

    with pytest.raises(ConfigError, match="AI_ROUTER_APP_KEY is not set"):
        pod_settings(tmp_path, secret_data())


def test_every_variable_the_deployment_sets_is_one_the_router_reads(tmp_path: Path) -> None:
    environ = RecordingEnviron(pod_environment(FILLED_SECRET, tmp_path))
    load_settings(environ=environ)
    read = environ.asked | variables_the_processes_read()

    assert set(router_env()) - read == set()
    # The check has teeth: a misspelt name is not among them.
    assert {"REDIS_URL", "WEB_CONCURRENCY", "LOG_LEVEL"} <= read
    assert "REDIS_URI" not in read and "WEB_CONCURENCY" not in read


def test_every_key_the_config_names_comes_from_the_secret(tmp_path: Path) -> None:
    settings = pod_settings(tmp_path)
    needed = {provider.api_key_env for provider in settings.providers.values()}
    needed |= {key.key_env for key in settings.auth.keys if key.key_env is not None}
    if settings.auth.admin_key_env is not None:
        needed.add(settings.auth.admin_key_env)
    from_secret = {
        name: variable["valueFrom"]["secretKeyRef"]
        for name, variable in router_env().items()
        if "secretKeyRef" in variable.get("valueFrom", {})
    }

    assert needed == set(from_secret) == set(secret_data())
    assert all(ref == {"name": SECRET_NAME, "key": name} for name, ref in from_secret.items())


# --- ports, probes, the command, stopping --------------------------------------------------------


def test_the_container_ports_are_the_ports_the_router_listens_on(tmp_path: Path) -> None:
    server = pod_settings(tmp_path).server

    # `serve` puts its gRPC server's metrics in the HTTP port's /metrics: no port of their own.
    assert container_ports(router_container()) == {
        "http": server.http_port,
        "grpc": server.grpc_port,
    }


def test_the_services_reach_the_router_pods_on_named_ports() -> None:
    labels = router_labels()
    named = container_ports(router_container())
    targets = {
        "ai-router-http": "http",
        "ai-router-grpc": "grpc",
        "ai-router-grpc-headless": "grpc",
    }

    for name, port_name in targets.items():
        spec = resource("Service", name)["spec"]
        assert spec["selector"] == labels, name
        assert [port["targetPort"] for port in spec["ports"]] == [port_name], name
        assert port_name in named
    assert resource("Service", "ai-router-grpc-headless")["spec"]["clusterIP"] == "None"


def router_labels() -> dict[str, str]:
    deployment = resource("Deployment", "ai-router")
    labels: dict[str, str] = deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels
    return labels


def test_the_probes_are_on_the_http_port_at_the_routers_health_paths() -> None:
    container = router_container()
    probes = {kind: container[kind]["httpGet"] for kind in PROBE_KINDS}

    assert probes == {
        "startupProbe": {"path": "/healthz", "port": "http"},
        "livenessProbe": {"path": "/healthz", "port": "http"},
        "readinessProbe": {"path": "/readyz", "port": "http"},
    }


def test_the_probes_paths_answer_as_the_kubelet_expects(tmp_path: Path) -> None:
    """The router's own HTTP app, with the pod's config and a real Redis: alive and ready with
    the Secret filled; alive but not ready (so out of the Services) without a provider key, or
    with Redis gone."""
    redis = start_redis(tmp_path)
    try:
        no_provider = {**FILLED_SECRET, "OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""}
        assert probe_answers(FILLED_SECRET, redis.url, tmp_path) == {
            "startupProbe": (200, "ok"),
            "livenessProbe": (200, "ok"),
            "readinessProbe": (200, "ready"),
        }
        assert probe_answers(no_provider, redis.url, tmp_path) == {
            "startupProbe": (200, "ok"),
            "livenessProbe": (200, "ok"),
            "readinessProbe": (503, "no provider is usable"),
        }
        redis.stop()
        gone = probe_answers(FILLED_SECRET, redis.url, tmp_path)
        assert gone["livenessProbe"] == (200, "ok")
        assert gone["readinessProbe"] == (503, "state store unavailable")
    finally:
        redis.stop()


def probe_answers(
    secret: Mapping[str, str], redis_url: str, config_dir: Path
) -> dict[str, tuple[int, str]]:
    """Each probe's GET on the HTTP app of a router with the pod's environment (Redis moved to
    `redis_url`): its status and the answer's `status`."""
    environment = pod_environment(secret, config_dir)
    environment["REDIS_URL"] = redis_url
    client = create_app(load_settings(environ=environment)).test_client()
    answers = {}
    for kind in PROBE_KINDS:
        response = client.get(router_container()[kind]["httpGet"]["path"])
        answers[kind] = (response.status_code, str(response.get_json()["status"]))
    return answers


def test_the_command_is_the_installed_cli_serving_without_the_simulator() -> None:
    command = router_container()["command"]
    setup = configparser.ConfigParser()
    setup.read(REPO_ROOT / "setup.cfg")

    assert f"{command[0]} = ai_router.cli:main" in setup["options.entry_points"]["console_scripts"]
    arguments = _parser().parse_args(command[1:])
    assert (arguments.command, arguments.simulator) == ("serve", "never")


def test_the_grace_period_outlasts_the_routers_graceful_stop(tmp_path: Path) -> None:
    """The preStop sleep, then the router's longest graceful stop (server.http_grace_seconds),
    then the time `serve` gives a child before killing it: all within the grace period."""
    pod = router_pod()
    pre_stop = router_container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    server = pod_settings(tmp_path).server

    assert pod["terminationGracePeriodSeconds"] > (
        pre_stop + server.longest_stop_seconds + CHILD_STOP_SECONDS
    )


# --- scaling, disruptions, Redis -----------------------------------------------------------------


def test_the_autoscaler_and_the_disruption_budget_act_on_the_router() -> None:
    hpa = resource("HorizontalPodAutoscaler", "ai-router")["spec"]
    pdb = resource("PodDisruptionBudget", "ai-router")["spec"]
    requests = router_container()["resources"]["requests"]

    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ai-router"}
    assert "replicas" not in resource("Deployment", "ai-router")["spec"]  # the HPA owns it
    # A CPU utilization target is a share of the CPU request: there must be one.
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"] and "cpu" in requests
    assert "memory" in requests
    assert pdb["selector"]["matchLabels"] == router_labels()
    assert pdb["maxUnavailable"] < hpa["minReplicas"]
    spread = router_pod()["topologySpreadConstraints"]
    assert [constraint["labelSelector"]["matchLabels"] for constraint in spread] == [router_labels()]


# What each process of a pod holds at rest (VmRSS of each process of `ai-router serve` with the
# ConfigMap's config and WEB_CONCURRENCY=2, after boot), and what each open stream adds (make
# bench-full, make bench-grpc-streams): docs/PERFORMANCE.md, 2026-12-04.
MIB = 1024 * 1024
SERVE_RSS = 38.7 * MIB  # `ai-router serve`, the parent of the rest
GUNICORN_MASTER_RSS = 41.4 * MIB
HTTP_WORKER_RSS = 124.0 * MIB
HTTP_STREAM_RSS = 42.4 * 1024
GRPC_SERVER_RSS = 131.2 * MIB
GRPC_STREAM_RSS = 73.4 * 1024
_QUANTITY = re.compile(r"(\d+)(Mi|Gi)")


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity in the two units these manifests use."""
    match = _QUANTITY.fullmatch(quantity)
    assert match, f"{quantity!r}: write memory in Mi or Gi"
    return int(match.group(1)) * {"Mi": MIB, "Gi": 1024 * MIB}[match.group(2)]


def test_the_memory_limit_holds_every_stream_the_pod_accepts_with_room_to_spare(
    tmp_path: Path,
) -> None:
    """A pod that fills both front doors up to their limits must refuse more (503,
    RESOURCE_EXHAUSTED), not be killed by the kernel with every stream it holds; the request
    must cover the processes at rest, where the scheduler places the pod."""
    server = pod_settings(tmp_path).server
    workers = int(router_env()["WEB_CONCURRENCY"]["value"])
    resources = router_container()["resources"]
    at_rest = SERVE_RSS + GUNICORN_MASTER_RSS + workers * HTTP_WORKER_RSS + GRPC_SERVER_RSS
    full = (
        at_rest
        + workers * server.http_max_concurrent * HTTP_STREAM_RSS
        + server.grpc_concurrency_limit * GRPC_STREAM_RSS
    )

    assert memory_bytes(resources["requests"]["memory"]) >= at_rest
    assert memory_bytes(resources["limits"]["memory"]) >= 1.25 * full


def test_the_routers_and_their_init_container_reach_the_one_redis(tmp_path: Path) -> None:
    url = urlsplit(router_env()["REDIS_URL"]["value"])
    (init,) = router_pod()["initContainers"]
    redis_deployment = resource("Deployment", "ai-router-redis")
    redis_service = resource("Service", "ai-router-redis")["spec"]
    (port,) = redis_service["ports"]
    (redis_container,) = redis_deployment["spec"]["template"]["spec"]["containers"]

    assert pod_settings(tmp_path).state.url == router_env()["REDIS_URL"]["value"]
    assert {v["name"]: v["value"] for v in init["env"]} == {"REDIS_URL": url.geturl()}
    assert (url.scheme, url.hostname, url.port) == ("redis", "ai-router-redis", port["port"])
    assert port["targetPort"] in container_ports(redis_container)
    assert redis_service["selector"] == redis_deployment["spec"]["template"]["metadata"]["labels"]
    assert redis_service["selector"] != router_labels()
    assert redis_deployment["spec"]["replicas"] == 1
