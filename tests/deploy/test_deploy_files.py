"""Static checks of the deployment files (Docker is not runnable here: nothing is built or started).

Compose services build from Dockerfiles and targets that exist; every queue has a consumer;
Kubernetes workloads have probes (web on /health/*), GPU workers land on GPU nodes, every worker
Deployment has an HPA; every environment variable the deploy files set is read by settings.py or
documented in the README; the Grafana dashboard only queries metrics the code exports; the hashed
lock files hold pyproject.toml's pins at the same versions and hash every entry."""

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deepmed_web.celery import QUEUES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _k8s() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _kind(kind: str) -> list[dict]:
    return [d for d in _k8s() if d["kind"] == kind]


def _queues_of(command: list[str]) -> set[str]:
    return set(command[command.index("-Q") + 1].split(","))


def _dockerfile_cmd(path: Path, target: str | None) -> list[str]:
    """The CMD of a Dockerfile stage (or the last CMD of a single-stage file)."""
    stage, cmd = None, None
    for line in path.read_text().splitlines():
        if m := re.match(r"FROM \S+(?: AS (\S+))?", line):
            stage = m.group(1)
        elif line.startswith("CMD ") and (target is None or stage == target):
            cmd = json.loads(line[4:])
    return cmd


def _compose_command(service: dict) -> list[str]:
    """A compose service's command: its own, or its image's CMD."""
    if "command" in service:
        return service["command"]
    build = service["build"]
    return _dockerfile_cmd(DEPLOY / build["context"] / build["dockerfile"], build.get("target"))


def test_compose_runs_inference_in_a_worker_of_its_own_and_the_background_queues_niced():
    """One worker-cpu process took inference, llm, augmentation and default in turn: a study's
    prediction waited behind every queued explanation (~0.3 s of CPU each)."""
    services = _compose()["services"]
    cpu_workers = [
        s for name, s in services.items() if name.startswith("worker-") and "gpu" not in s.get("profiles", [])
    ]
    commands = [_compose_command(s) for s in cpu_workers]
    inference = [c for c in commands if "inference" in _queues_of(c)]
    assert len(inference) == 1 and _queues_of(inference[0]) == {"inference"}
    assert inference[0][0] == "celery"
    for command in commands:
        if "inference" not in _queues_of(command):
            assert command[:3] == ["nice", "-n", "10"], command


def test_compose_services_build_from_existing_dockerfiles_and_targets():
    services = _compose()["services"]
    assert {
        "web",
        "worker-cpu",
        "worker-gpu",
        "beat",
        "postgres",
        "redis",
        "mlflow",
        "azurite",
        "prometheus",
        "grafana",
    } <= set(services)
    built = 0
    for name, service in services.items():
        build = service.get("build")
        if build is None:
            assert "image" in service, name
            continue
        dockerfile = (DEPLOY / build["context"] / build["dockerfile"]).resolve()
        assert dockerfile.is_file(), (name, dockerfile)
        if "target" in build:
            assert re.search(rf"^FROM \S+ AS {build['target']}$", dockerfile.read_text(), re.M), (name, build["target"])
        built += 1
    assert built >= 5


def test_compose_references_resolve():
    compose = _compose()
    services = compose["services"]
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, (name, dep)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), (name, source)
            else:
                assert source in compose["volumes"], (name, source)


def test_every_queue_has_a_worker_in_compose_and_kubernetes():
    services = _compose()["services"]
    compose_queues = set()
    for name in ("worker-cpu", "worker-background", "worker-training", "worker-gpu"):
        compose_queues |= _queues_of(_compose_command(services[name]))
    assert compose_queues == set(QUEUES)
    gpu = _dockerfile_cmd(DEPLOY / "docker" / "Dockerfile.gpu", None)
    assert _queues_of(gpu) == {"training", "inference", "llm"}
    assert (DEPLOY / "docker" / "Dockerfile.gpu").read_text().startswith("# ") and "FROM nvidia/cuda:" in (
        DEPLOY / "docker" / "Dockerfile.gpu"
    ).read_text()
    k8s_queues = set()
    for deployment in _kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if "-Q" in container.get("command", []):
                k8s_queues |= _queues_of(container["command"])
    assert k8s_queues == set(QUEUES)


def test_a_host_or_cluster_without_a_gpu_has_a_worker_for_every_queue():
    """Training (image runs, tabular experiments, the explainer's fine-tune) was consumed only by the
    GPU worker: on a CPU-only install every training job stayed queued until the sweeper failed it."""
    services = _compose()["services"]
    cpu_queues = set()
    for service in services.values():
        if service.get("command") and "gpu" not in service.get("profiles", []) and "-Q" in service["command"]:
            cpu_queues |= _queues_of(service["command"])
    assert cpu_queues == set(QUEUES)
    k8s_cpu_queues = set()
    for deployment in _kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        if pod.get("nodeSelector"):  # GPU nodes only
            continue
        for container in pod["containers"]:
            if "-Q" in container.get("command", []):
                k8s_cpu_queues |= _queues_of(container["command"])
    assert k8s_cpu_queues == set(QUEUES)


def test_kubernetes_workloads_have_probes_and_web_probes_health():
    deployments = {d["metadata"]["name"]: d for d in _kind("Deployment")}
    assert {"web", "worker-gpu", "beat", "mlflow"} <= set(deployments)
    for name, deployment in deployments.items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert "livenessProbe" in container, name
            if name != "beat":  # beat serves nothing: liveness only
                assert "readinessProbe" in container, name
    web = deployments["web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert web["readinessProbe"]["httpGet"]["path"].startswith("/health/ready")


def test_gpu_workers_select_gpu_nodes_and_every_worker_scales_on_its_queue():
    deployments = {d["metadata"]["name"]: d for d in _kind("Deployment")}
    gpu = deployments["worker-gpu"]["spec"]["template"]["spec"]
    assert gpu["nodeSelector"] and gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    workers = {name for name in deployments if name.startswith("worker-")}
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in _kind("HorizontalPodAutoscaler")}
    assert workers <= set(hpas)
    for name in workers:
        [metric] = hpas[name]["spec"]["metrics"]
        assert metric["external"]["metric"]["name"] == "deepmed_celery_queue_length"
        assert metric["external"]["metric"]["selector"]["matchLabels"]["queue"] in QUEUES
    for target in hpas:
        assert target in deployments


def _deploy_env_names() -> set[str]:
    names = set()
    for service in _compose()["services"].values():
        env = service.get("environment") or {}
        names |= set(env if isinstance(env, dict) else (e.split("=")[0] for e in env))
    for doc in _k8s():
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "deepmed-config":
            names |= set(doc["data"])
        if doc["kind"] == "Secret":
            names |= set(doc["stringData"])
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            names |= {e["name"] for e in container.get("env", [])}
    for dockerfile in (DEPLOY / "docker").glob("Dockerfile*"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("ENV "):
                names |= set(re.findall(r"([A-Z][A-Z0-9_]+)=", line))
    names |= set(
        yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())["jobs"]["test"]["services"]["postgres"]["env"]
    )
    return names


# Generic image/build plumbing, not configuration of DeepMed or its services.
IMAGE_BUILD_ENV = {
    "PATH",
    "DEBIAN_FRONTEND",
    "PIP_NO_CACHE_DIR",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "POD_NAME",
}


def test_every_env_var_in_the_deploy_files_is_read_by_settings_or_documented():
    settings_names = set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', (ROOT / "deepmed_web/settings.py").read_text()))
    readme = (ROOT / "README.md").read_text()
    names = _deploy_env_names()
    assert {"DATABASE_URL", "REDIS_URL", "AZURE_STORAGE_CONNECTION_STRING", "SECRET_KEY"} <= names
    unknown = sorted(n for n in names - settings_names - IMAGE_BUILD_ENV if f"`{n}`" not in readme)
    assert not unknown, f"set in deploy files but neither read by settings.py nor documented in README: {unknown}"


def test_prometheus_scrapes_web_and_workers_and_loads_its_alerts():
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"deepmed-web", "deepmed-worker"} <= set(jobs)
    services = _compose()["services"]
    for job in jobs.values():
        for sd in job.get("dns_sd_configs", []):
            assert set(sd["names"]) <= set(services)
    alerts = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    assert any(rule["alert"] == "DeepMedModelDrift" for group in alerts["groups"] for rule in group["rules"])


METRIC = re.compile(r"\b((?:deepmed|django)_[a-z_]+?)(?:_bucket|_count|_sum)?\b")


@pytest.mark.django_db
def test_grafana_dashboard_queries_metrics_the_code_exports(client, champion, queued_study):
    """Every deepmed_/django_ metric of the dashboard appears on /metrics once something happened."""
    from workers.inference import run_inference

    dashboard = json.loads((DEPLOY / "grafana/dashboards/deepmed.json").read_text())
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("request rate", "latency", "queue depth", "inference", "label", "agreement", "drift", "gpu"):
        assert topic in titles, topic
    wanted = {m for p in dashboard["panels"] for t in p["targets"] for m in METRIC.findall(t["expr"])}
    run_inference(str(queued_study.pk))
    exported = client.get("/metrics").content.decode()
    missing = sorted(m for m in wanted if f"# TYPE {m} " not in exported)
    assert not missing, missing


LOCK_ENTRY = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?: --hash=sha256:[0-9a-f]{64})*)")


def _lock(name: str) -> dict[str, tuple[str, frozenset[str]]]:
    """A pip-compile lock file as {canonical name: (version, sha256 hashes)}; every entry pinned and hashed."""
    text = (ROOT / "requirements" / name).read_text()
    entries = {}
    for line in re.sub(r"\s*\\\n\s*", " ", text).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = LOCK_ENTRY.fullmatch(line)
        assert m, f"{name}: not a pinned package with hashes: {line[:120]}"
        assert m.group(3), f"{name}: {m.group(1)}=={m.group(2)} has no --hash"
        entries[canonicalize_name(m.group(1))] = (m.group(2), frozenset(re.findall(r"sha256:(\w+)", m.group(3))))
    return entries


def _pyproject_pins(extra: str | None = None) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    pins = {}
    for text in requirements:
        req = Requirement(text)
        if canonicalize_name(req.name) == canonicalize_name(project["name"]):
            continue  # dev = deepmed[test]
        [spec] = req.specifier
        assert spec.operator == "==", f"pyproject.toml pins every dependency with ==: {text}"
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_lock_files_hash_every_entry_and_name_their_regeneration_command():
    for name in ("lock.txt", "lock-test.txt"):
        assert "#    bash deploy/lock.sh" in (ROOT / "requirements" / name).read_text()[:400], name
        entries = _lock(name)
        assert {"torch", "torchvision", "django", "pip", "setuptools"} <= set(entries), name
    bootstrap = (DEPLOY / "bootstrap.sh").read_text()
    assert "--require-hashes" in bootstrap and "--no-deps" in bootstrap


def test_lock_files_hold_pyprojects_pins_at_the_same_version():
    base, test = _lock("lock.txt"), _lock("lock-test.txt")
    for lock_name, lock, pins in (
        ("lock.txt", base, _pyproject_pins()),
        ("lock-test.txt", test, {**_pyproject_pins(), **_pyproject_pins("test")}),
    ):
        wrong = {n: (v, lock[n][0] if n in lock else None) for n, v in pins.items() if lock.get(n, (None,))[0] != v}
        assert not wrong, f"pyproject.toml pin vs {lock_name} (run deploy/lock.sh): {wrong}"
    # bootstrap.sh takes an up-to-date test install for the base set too: same versions and hashes.
    moved = sorted(n for n in base if test.get(n) != base[n])
    assert not moved, f"lock.txt entries not identical in lock-test.txt: {moved}"


def test_images_install_the_hashed_lock_before_the_project():
    """The images get the tested dependency set (requirements/lock.txt, hashes required), then
    DeepMed itself without dependencies: nothing unpinned is resolved at build time."""
    for name in ("Dockerfile", "Dockerfile.gpu"):
        text = (DEPLOY / "docker" / name).read_text()
        lock = text.index("pip install --require-hashes -r requirements/lock.txt")
        project = text.index("pip install --no-deps --no-build-isolation .")
        assert lock < project, name
        assert not re.search(r"pip install (--upgrade pip|\.)(\s|$)", text), name
    assert "requirements" not in (ROOT / ".dockerignore").read_text().split()
