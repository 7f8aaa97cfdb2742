#!/usr/bin/env python3
"""Write the kustomize base (deploy/kubernetes/base/) from docker-compose.yaml, the fleet table
(scripts/fleet_services.py) and nginx/render.py, so the manifests can't drift from them, and each
overlay's session-replicas.yaml from SESSION_REPLICAS below:

    python3 deploy/kubernetes/generate.py          # rewrite base/ and overlays/*/session-replicas.yaml
    python3 deploy/kubernetes/generate.py --check  # exit 1 if they are not what it would write

tests/static/test_kubernetes.py runs the check. What compose does not say (replicas, resources,
probes' timing, which volumes are per pod) is in the tables below, each number with its source.
Needs PyYAML (the tools venv has it).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BASE = HERE / "base"
sys.path.insert(0, str(ROOT / "scripts"))
from fleet_services import HEALTH_PATH, NGINX_PORT, READY_PATH, SERVICES  # noqa: E402


class Worker(NamedTuple):
    """An app process compose runs that is not in the fleet table: nobody calls it (no Service,
    no route), it serves /health, /ready and /metrics only, on the port compose's healthcheck
    uses; the native fleet doesn't run it."""

    name: str  # its compose service (and image: harvis/<name>)
    port: int


# core-api's rendering worker (core_api/artifacts/renderer.py, image core-api/Dockerfile.renderer):
# claims the artifacts core-api queues in PostgreSQL (FOR UPDATE SKIP LOCKED), woken by NOTIFY, so
# any number of replicas; core-api renders nothing in containers (ARTIFACT_RENDER_WORKERS=0).
WORKERS = (Worker("artifact-renderer", 8007),)

UID = 10001  # the harvis user of microservices/base/Dockerfile
SECRET = "harvis-secrets"  # one Secret, made by the operator: see deploy/kubernetes/secrets.yaml
SETTINGS = "harvis-settings"  # optional pass-through settings (compose's bare names)
PART_OF = "harvis"
# Names that hold credentials (as tests/static/harvis_static.is_secret says).
_SECRET_RE = re.compile(r"(SECRET|PASSWORD|PASSWD|PRIVATE_KEY|PUBLIC_KEY|API_KEY|ENCRYPTION_KEY|_TOKEN$)")
_INTERP = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")

# Resources: requests / limits per container, and where each number comes from. docs/benchmarks.md
# measured a browser session's memory, the gateway's CPU per request, sandbox and voice CPU use,
# install footprints, and every service's memory (bench/memory.py, "Memory per service": `make
# dev` natively, idle and after a light load of one user through nginx, 2026-12-07). Memory
# requests are that measurement under load with headroom, limits well above it. The basis is RSS
# for one-process containers (a container's memory counts the pages its process maps, its own
# copies of the libraries included; natively PSS splits those with the other services) and PSS
# for process trees (Chromium's processes share most of their pages: RSS would count them once
# per process). Where no measurement covers a number it says "an estimate"; `kubectl top pod` on
# a real cluster should confirm them.
RESOURCES: dict[str, tuple[dict[str, str], dict[str, str], str]] = {
    "core-api": (
        {"cpu": "250m", "memory": "192Mi"},
        {"cpu": "1", "memory": "512Mi"},
        "CPU: the gateway spends ~300 us of CPU per request (benchmarks.md, Gateway hop: ~1 300-1 900 "
        "req/s on 2 cores), so 250m carries a few hundred req/s. Memory: 87 MiB RSS idle, 117 MiB "
        "after chats and three artifacts rendered (benchmarks.md, Memory per service: measured natively, "
        "where core-api renders in-process; an upper bound here, where the artifact-renderer renders); "
        "the request keeps the headroom it had for renders.",
    ),
    "artifact-renderer": (
        {"cpu": "250m", "memory": "160Mi"},
        {"cpu": "1", "memory": "384Mi"},
        "Memory: 66 MiB RSS idle, 113 MiB at the peak of a 1 000-row spreadsheet and 20-page DOCX "
        "and PDF renders, one render thread (benchmarks.md, Artifacts: `bench/artifacts.py "
        "--renderer`, this process as the image runs it); the request adds a second render at once "
        "(ARTIFACT_RENDER_WORKERS=2), the limit leaves room for the largest specs the limits allow. "
        "CPU: those renders take 31-138 ms each (same bench); renders are threads of one Python "
        "process (the GIL), so about one core at most: the limit. The HPA adds replicas when "
        "renders keep it busy.",
    ),
    "research-service": (
        {"cpu": "250m", "memory": "768Mi"},
        {"cpu": "2", "memory": "1536Mi"},
        "CPU: knowledge-base ingestion is the MiniLM forward pass, CPU-bound on both cores "
        "(benchmarks.md, Knowledge base: 29-38 chunks/s on 2 cores). Memory: 473 MiB RSS idle (the "
        "MiniLM embedder and ONNX Runtime load at start), 494-572 MiB after web searches and an "
        "upload (benchmarks.md, Memory per service: measured); the limit leaves room for large "
        "uploads and RESEARCH_FETCH_CONCURRENCY pages of up to RESEARCH_MAX_PAGE_BYTES in flight.",
    ),
    "voice-service": (
        {"cpu": "1", "memory": "1Gi"},
        {"cpu": "2", "memory": "2Gi"},
        "CPU: VOICE_WHISPER_THREADS=2 per transcription, VOICE_MAX_CONCURRENCY=2 (benchmarks.md, "
        "Voice: RTF 0.12-0.14 on 2 threads). Memory: 110 MiB RSS idle, 566-589 MiB once Whisper "
        "base and Piper are loaded, peaks of 600-790 MiB while transcribing (benchmarks.md, Memory "
        "per service: measured, one request at a time); the limit covers two at once.",
    ),
    "browser-service": (
        {"cpu": "500m", "memory": "1Gi"},
        {"cpu": "2", "memory": "3Gi"},
        "Memory: the service 71 MiB RSS; its first Chromium session ~410 MiB PSS (10 processes; "
        "benchmarks.md, Memory per service: measured), each further one ~160 MB PSS (benchmarks.md, "
        "Browser: measured), so BROWSER_MAX_SESSIONS=4 is ~0.95 GiB, plus /dev/shm (a 1 GiB "
        "memory-backed emptyDir, compose's shm_size, counted against this limit). CPU: 2 cores drive "
        "fewer sessions than memory allows (benchmarks.md).",
    ),
    "mcp-service": (
        {"cpu": "100m", "memory": "128Mi"},
        {"cpu": "1", "memory": "512Mi"},
        "CPU: one worker answers 158-253 REST req/s (benchmarks.md, MCP tool calls: measured). "
        "Memory: 101 MiB RSS idle, 102 MiB after file tool calls (benchmarks.md, Memory per service: "
        "measured); a tool's output is bounded by MCP_MAX_OUTPUT_BYTES (1 MB).",
    ),
    "n8n-integration": (
        {"cpu": "100m", "memory": "256Mi"},
        {"cpu": "1", "memory": "768Mi"},
        "Memory: 86 MiB RSS idle, 193 MiB once its MiniLM embedder has loaded (on the first review or "
        "prompt-built workflow, or at a start that seeds the examples; benchmarks.md, Memory per "
        "service: measured). The egress proxy for n8n's requests is light.",
    ),
    "vibe-coding": (
        {"cpu": "500m", "memory": "256Mi"},
        {"cpu": "2", "memory": "4Gi"},
        "CPU: 42-152 sandboxed executions/s on 2 cores (benchmarks.md, Sandboxed execution: measured). "
        "Memory: the service 76 MiB RSS idle, 86 MiB with a terminal open (its sandbox ~7 MiB RSS; "
        "benchmarks.md, Memory per service: measured); VIBE_MAX_CONCURRENT=16 sandboxes of small "
        "programs fit the request (an estimate), and each sandboxed process may take "
        "VIBE_EXEC_MEMORY_MB=1024 of address space, so the limit bounds a few heavy ones.",
    ),
    "nginx": (
        {"cpu": "100m", "memory": "64Mi"},
        {"cpu": "1", "memory": "256Mi"},
        "Memory: 21-23 MiB RSS for the master and two workers (benchmarks.md, Memory per service: "
        "measured); nginx proxies without buffering (proxy_buffering off). worker_processes auto "
        "starts one worker per CPU the node has.",
    ),
    "redis": (
        {"cpu": "50m", "memory": "64Mi"},
        {"cpu": "500m", "memory": "512Mi"},
        "An estimate: rate-limit counters, revocation fan-out and the research cache only.",
    ),
    "n8n": (
        {"cpu": "250m", "memory": "768Mi"},
        {"cpu": "1", "memory": "1536Mi"},
        "Memory: 370-540 MiB RSS at idle (its first minute after a start is the highest), 425 MiB "
        "after workflows ran (Node.js, its task runner and SQLite; benchmarks.md, Memory per service: "
        "measured natively, n8n 2.8).",
    ),
    "ollama": (
        {"cpu": "1", "memory": "2Gi"},
        {"cpu": "4", "memory": "8Gi"},
        "An estimate for a small model on CPU; size it to the models you pull (the model file plus its "
        "context's KV cache: make dev's demo model, Gemma 3 270M with a 4096-token context in "
        "llama.cpp, holds 1.3 GiB once it has answered; benchmarks.md, Memory per service).",
    ),
}

# Stateful: a StatefulSet whose pods own sessions. Each pod learns its ordinal (REPLICA_ORDINAL,
# from the pod-index label) and puts it in the session ids it mints (harvis_common.replicas);
# core-api's URL setting for the service (BROWSER_SERVICE_URL, VIBE_CODING_URL) lists the pods,
# position i naming pod i through the headless Service, and the gateway sends a request naming a
# session to the pod its id names. No HPA: the URL list is fixed when core-api starts.
STATEFUL = {"browser-service", "vibe-coding"}
# How many pods of each, per overlay: the one number the StatefulSet's replicas and core-api's
# URL list both come from. generate.py writes overlays/<overlay>/session-replicas.yaml from it
# (the base has one pod each). To scale: change the number here, rerun generate.py, apply;
# core-api rolls by itself (its pod template carries the counts). Every overlay is listed.
SESSION_REPLICAS = {
    "dev": {"browser-service": 1, "vibe-coding": 1},
    "prod": {"browser-service": 2, "vibe-coding": 2},
}
# The label StatefulSet pods carry with their ordinal (Kubernetes 1.28+, GA in 1.32).
POD_INDEX = "metadata.labels['apps.kubernetes.io/pod-index']"
# core-api's pod-template annotation that names the counts: changing them rolls core-api, which
# reads its URL lists (a ConfigMap) only when it starts.
SESSION_ANNOTATION = "harvis.dev/session-replicas"
# Stateless (behind the gateway; the renderer's jobs are in PostgreSQL): HPAs (base 1..4; prod
# patches the floor to 2).
AUTOSCALED = ("core-api", "research-service", "mcp-service", "n8n-integration", "artifact-renderer")
# Slow starters (model loads, Chromium): a startupProbe that allows them 5 minutes.
SLOW_START = {"voice-service", "browser-service"}
# readOnlyRootFilesystem, or why not.
WRITABLE_ROOT = {
    "browser-service": "Chromium and chromedriver write crash reports, font caches and per-run files "
    "outside the profile directory; not verified with a read-only root (the image tests run it writable).",
    "vibe-coding": "bubblewrap builds each sandbox's root from mounts and setpriv switches to per-session "
    "uids; not verified with a read-only root (the image tests run it writable).",
}
# Volumes: compose's named volume -> (access mode, size). mcp's workspaces are shared by its
# replicas (ReadWriteMany; the dev overlay makes it ReadWriteOnce for one replica). A StatefulSet's
# volumes are per pod (volumeClaimTemplates): vibe-coding's workspaces stay with their pod's
# ordinal, so a restarted pod finds its sessions' files again.
VOLUMES = {
    "voice-audio": ("ReadWriteOnce", "10Gi"),
    "mcp-workspaces": ("ReadWriteMany", "10Gi"),
    "vibe-workspaces": ("ReadWriteOnce", "20Gi"),
    "n8n-data": ("ReadWriteOnce", "5Gi"),
    "ollama-models": ("ReadWriteOnce", "50Gi"),
}
# Compose's named volumes that are an emptyDir here (size limit, why): nothing in them outlives
# the pod's sessions.
EPHEMERAL = {
    "browser-profiles": (
        "5Gi",
        "each session's profile is made fresh and wiped on close (and a restarted service wipes what "
        "a dead one left); the sessions die with the pod (their Chromium), so nothing is kept",
    ),
}


def labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name}


def is_secret(name: str) -> bool:
    return bool(_SECRET_RE.search(name))


def load_compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def resolve(value: str) -> str:
    """A compose value with its defaults applied: `${X:-d}` -> d, `${X}` -> ''."""
    return _INTERP.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "", value)


def is_required_secret(value: str) -> bool:
    return any(m.group(2) in (":?", "?") for m in _INTERP.finditer(value))


def env_entries(service: str, env: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Compose's environment as Kubernetes env: explicit values from the service's ConfigMap,
    required secrets (compose's `${X:?}`) from harvis-secrets, bare names from harvis-settings or
    harvis-secrets with optional: true (unset there -> unset in the container, as with compose)."""
    entries, config = [], {}
    for name, value in env.items():
        if value is None:
            kind = "secretKeyRef" if is_secret(name) else "configMapKeyRef"
            ref = {"name": SECRET if is_secret(name) else SETTINGS, "key": name, "optional": True}
            entries.append({"name": name, "valueFrom": {kind: ref}})
        elif is_required_secret(str(value)):
            entries.append({"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": name}}})
        else:
            config[name] = resolve(str(value))
            ref = {"name": f"{service}-env", "key": name}
            entries.append({"name": name, "valueFrom": {"configMapKeyRef": ref}})
    return entries, config


def security(read_only: bool, uid: int = UID) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": read_only,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security(uid: int = UID) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(name: str) -> dict[str, Any]:
    requests, limits, _ = RESOURCES[name]
    return {"requests": requests, "limits": limits}


def http_probe(path: str, port: str, period: int, failures: int, timeout: int = 4) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def pvc(name: str) -> dict[str, Any]:
    mode, size = VOLUMES[name]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": [mode], "resources": {"requests": {"storage": size}}},
    }


def service(name: str, ports: list[tuple[str, int]], headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "ClusterIP",
        "selector": labels(name),
        "ports": [{"name": pname, "port": port, "targetPort": pname} for pname, port in ports],
    }
    if headless:
        spec["clusterIP"] = "None"
        # A pod's name resolves only while it is ready. The gateway knows nothing of readiness:
        # it round-robins new sessions over the list and fails over when a connect fails (a name
        # that doesn't resolve is one), so a starting or not-ready pod gets no new sessions. Its
        # pinned sessions can't go elsewhere either way, and readiness is what they need too
        # (Chromium; the database and the sandbox for vibe-coding), so publishing a not-ready
        # pod would win them nothing.
        spec["publishNotReadyAddresses"] = False
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": headless_name(name) if headless else name},
        "spec": spec,
    }


def headless_name(name: str) -> str:
    """The StatefulSet's governing (headless) Service: pod i is `<name>-i.<name>-pods`."""
    return f"{name}-pods"


def pod_urls(name: str, port: int, replicas: int) -> str:
    """core-api's URL setting for a StatefulSet: its pods' stable names, position i = ordinal i.
    Short names: core-api runs in the same namespace (its search path adds `<ns>.svc...`)."""
    return ",".join(f"http://{name}-{i}.{headless_name(name)}:{port}" for i in range(replicas))


def session_settings(core_env: dict[str, Any]) -> dict[str, Any]:
    """core-api's settings that name a StatefulSet (compose's `http://<service>:<port>`) -> it."""
    found = {
        key: svc
        for key, value in core_env.items()
        for svc in SERVICES
        if svc.name in STATEFUL and value == f"http://{svc.name}:{svc.port}"
    }
    assert sorted(s.name for s in found.values()) == sorted(STATEFUL), found
    return found


def session_counts(counts: dict[str, int]) -> str:
    return ",".join(f"{name}={counts[name]}" for name in sorted(counts))


def pdb(name: str) -> dict[str, Any]:
    # maxUnavailable (not minAvailable): with one replica a drain can still evict it.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(name)}},
    }


def workload(kind: str, name: str, pod: dict[str, Any], claims: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": labels(name)},
        "template": {"metadata": {"labels": labels(name)}, "spec": pod},
    }
    if kind == "StatefulSet":
        spec["serviceName"] = f"{name}-pods"
        spec["podManagementPolicy"] = "Parallel"
        if claims:
            spec["volumeClaimTemplates"] = claims
    elif any("persistentVolumeClaim" in v for v in pod.get("volumes", [])):
        # A ReadWriteOnce volume can't be attached to the old and the new pod at once.
        spec["strategy"] = {"type": "Recreate"}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def app_service(svc: Any, compose_svc: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    name = svc.name
    compose_env = dict(compose_svc.get("environment") or {})
    if name in STATEFUL:
        compose_env.pop("REPLICA_ORDINAL", None)  # compose's one replica is 0; a pod's is its index (below)
    env, config = env_entries(name, compose_env)
    read_only = name not in WRITABLE_ROOT
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    claims = []
    for spec in compose_svc.get("volumes") or []:
        vol, path = spec.split(":")[:2]
        mounts.append({"name": vol, "mountPath": path})
        if vol in EPHEMERAL:
            volumes.append({"name": vol, "emptyDir": {"sizeLimit": EPHEMERAL[vol][0]}})
        elif name in STATEFUL:
            claims.append({"metadata": {"name": vol}, "spec": pvc(vol)["spec"]})
        else:
            volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": vol}})
    if "shm_size" in compose_svc:
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}})
    ports = [("http", svc.port)]
    if name == "n8n-integration":
        ports.append(("egress-proxy", 5690))  # N8N_EGRESS_PROXY_PORT's default: n8n's only way out
    startup_failures = 60 if name in SLOW_START else 30
    container: dict[str, Any] = {
        "name": name,
        "image": f"harvis/{name}",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": p, "containerPort": port, "protocol": "TCP"} for p, port in ports],
        "env": env,
        "envFrom": [],
        "startupProbe": http_probe(HEALTH_PATH, "http", 5, startup_failures),
        "livenessProbe": http_probe(HEALTH_PATH, "http", 30, 3, timeout=5),
        "readinessProbe": http_probe(READY_PATH, "http", 10, 3, timeout=5),
        "resources": resources(name),
        "securityContext": security(read_only),
        "volumeMounts": mounts,
    }
    del container["envFrom"]
    worker = isinstance(svc, Worker)
    if worker:  # its port: the one compose checks its health on
        assert f"127.0.0.1:{svc.port}{HEALTH_PATH}" in str(compose_svc["healthcheck"]["test"]), name
    if name in STATEFUL:
        # The pod's ordinal, which it puts in the session ids it mints (harvis_common.replicas).
        env.append({"name": "REPLICA_ORDINAL", "valueFrom": {"fieldRef": {"fieldPath": POD_INDEX}}})
    if name == "core-api":
        for key, target in session_settings(compose_svc["environment"]).items():
            config[key] = pod_urls(target.name, target.port, 1)
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security(),
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "volumes": volumes,
    }
    if name == "vibe-coding":
        # compose's systempaths=unconfined: bubblewrap mounts a fresh /proc per run, which the
        # runtime's masked /proc paths forbid. Kubernetes allows an unmasked /proc only in a user
        # namespace (hostUsers: false; feature gates UserNamespacesSupport and ProcMountType,
        # beta in 1.32). See deploy/kubernetes/README.md for the seccomp caveat.
        pod["hostUsers"] = False
        container["securityContext"]["procMount"] = "Unmasked"
    kind = "StatefulSet" if name in STATEFUL else "Deployment"
    docs = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{name}-env"},
            "data": config,
        },
        workload(kind, name, pod, claims),
        # A worker gets no Service: nobody calls it, and Prometheus scrapes pods (annotations below).
        *([] if worker else [service(name, ports)]),
        pdb(name),
    ]
    if name in STATEFUL:
        docs.append(service(name, ports, headless=True))
    else:
        docs += [pvc(v.split(":")[0]) for v in compose_svc.get("volumes") or []]
    pod_tmpl = docs[1]["spec"]["template"]
    pod_tmpl["metadata"]["annotations"] = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(svc.port),
        "prometheus.io/path": "/metrics",
    }
    if name == "core-api":
        pod_tmpl["metadata"]["annotations"][SESSION_ANNOTATION] = session_counts(dict.fromkeys(STATEFUL, 1))
    why = "" if read_only else f"\n# readOnlyRootFilesystem: false. {WRITABLE_ROOT[name]}"
    header = f"# {name}: generated by deploy/kubernetes/generate.py from docker-compose.yaml.\n"
    header += f"# Resources: {RESOURCES[name][2]}{why}\n"
    if name in STATEFUL:
        example = pod_urls(name, svc.port, 2).replace(",", ", ")
        header += (
            "# StatefulSet: each session lives in one pod. The pod puts its ordinal (REPLICA_ORDINAL, "
            "from its apps.kubernetes.io/pod-index label) in the session ids it mints; core-api "
            f"lists the pods by their stable names, position = ordinal ({example}, "
            "...), and sends each session's requests to its pod. The headless Service "
            f"{headless_name(name)} gives those names, to ready pods only (publishNotReadyAddresses: "
            "false: a pod that isn't ready gets no new sessions; its own can't move anyway). The "
            "ClusterIP Service is for tools (port-forward), not the gateway. Replicas: "
            "SESSION_REPLICAS in generate.py (overlays/<overlay>/session-replicas.yaml), never an HPA.\n"
        )
        for vol in (v.split(":")[0] for v in compose_svc.get("volumes") or []):
            if vol in EPHEMERAL:
                header += f"# {vol}: an emptyDir: {EPHEMERAL[vol][1]}.\n"
            else:
                header += f"# {vol}: one volume per pod (volumeClaimTemplates), kept with its ordinal.\n"
    if worker:
        header += (
            "# A worker: no user or service calls it, so no Service; Prometheus scrapes its pods "
            f"(the annotations) on {svc.port}, its only ingress (NetworkPolicy {name}); its only egress "
            "is PostgreSQL (and DNS). Stateless: jobs are claimed in PostgreSQL (FOR UPDATE SKIP LOCKED) "
            "and a job's NOTIFY wakes it, so any number of replicas (the HPA; prod runs two at least); "
            "a job whose pod died is claimed again once its lease (ARTIFACT_RENDER_TIMEOUT_S + 30 s) "
            "ends.\n"
        )
    if name == "core-api":
        header += (
            "# It renders no artifact (ARTIFACT_RENDER_WORKERS=0, as compose): the artifact-renderer "
            "Deployment renders what it queues.\n"
            "# Its URL settings for the StatefulSets list their pods (one here; the overlays' "
            f"session-replicas.yaml). The pod annotation {SESSION_ANNOTATION} names the counts, so "
            "a change rolls core-api, which reads the lists when it starts.\n"
        )
    return docs, header


def nginx_config() -> dict[str, str]:
    """nginx/render.py's output, with the paths a read-only container needs: pid and temp
    files in /tmp (an emptyDir), the config from a ConfigMap in /etc/harvis-nginx, and the
    cluster DNS (not docker's 127.0.0.11) for the front end's per-request lookups."""
    spec = importlib.util.spec_from_file_location("harvis_nginx_render", ROOT / "nginx" / "render.py")
    assert spec and spec.loader
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp).resolve()
        render.render(out, listen=str(NGINX_PORT), core_api="core-api:8000", frontend=FRONTEND)
        main = (out / "nginx.conf").read_text()
        server = (out / "conf.d" / "harvis.conf").read_text()
    main = main.replace(f"pid {out}/nginx.pid;", "pid /tmp/nginx.pid;")
    main = main.replace(f"{out}/tmp/", "/tmp/").replace(f"{out}/conf.d/", "/etc/harvis-nginx/conf.d/")
    assert str(out) not in main, main
    server = server.replace("resolver 127.0.0.11 ", f"resolver {CLUSTER_DNS} ", 1)
    return {"nginx.conf": main, "harvis.conf": server}


# The front end's Service, resolved per request by nginx's own resolver (no search domains):
# fully qualified, in the namespace the overlays use.
NAMESPACE = "harvis"
FRONTEND = f"frontend.{NAMESPACE}.svc.cluster.local:3000"
CLUSTER_DNS = "kube-dns.kube-system.svc.cluster.local"


def nginx(compose_svc: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    name = "nginx"
    container = {
        "name": name,
        "image": compose_svc["image"].split(":")[0],
        "imagePullPolicy": "IfNotPresent",
        "command": ["nginx", "-c", "/etc/harvis-nginx/nginx.conf", "-g", "daemon off;"],
        "ports": [{"name": "http", "containerPort": NGINX_PORT, "protocol": "TCP"}],
        # Liveness: nginx itself (its /health is core-api's, which must not restart nginx).
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 30, "failureThreshold": 3},
        "readinessProbe": http_probe(HEALTH_PATH, "http", 10, 3),
        "resources": resources(name),
        "securityContext": security(True),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "config", "mountPath": "/etc/harvis-nginx", "readOnly": True},
        ],
    }
    pod = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security(),
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
            {
                "name": "config",
                "configMap": {
                    "name": "nginx-config",
                    "items": [
                        {"key": "nginx.conf", "path": "nginx.conf"},
                        {"key": "harvis.conf", "path": "conf.d/harvis.conf"},
                    ],
                },
            },
        ],
    }
    docs = [workload("Deployment", name, pod), service(name, [("http", NGINX_PORT)]), pdb(name)]
    header = (
        "# nginx: the only entry (the prod overlay puts an Ingress in front; the Service stays ClusterIP).\n"
        "# Its config: nginx/render.py's output (base/nginx/, written by generate.py).\n"
        f"# Resources: {RESOURCES[name][2]}\n"
    )
    return docs, header


def infra(compose: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """Redis, n8n and Ollama as compose runs them (PostgreSQL is the overlays': in-cluster in
    dev, a CloudNativePG cluster in prod)."""
    docs: list[dict[str, Any]] = []
    redis = compose["redis"]
    docs += [
        workload(
            "Deployment",
            "redis",
            {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": pod_security(999),  # the image's redis user
                "containers": [
                    {
                        "name": "redis",
                        "image": redis["image"].split(":")[0],
                        "command": redis["command"],
                        "ports": [{"name": "redis", "containerPort": 6379, "protocol": "TCP"}],
                        "livenessProbe": {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 10},
                        "readinessProbe": {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 10},
                        "resources": resources("redis"),
                        "securityContext": security(True, 999),
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/data"},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "100Mi"}},
                ],
            },
        ),
        service("redis", [("redis", 6379)]),
    ]
    n8n = compose["n8n"]
    n8n_env = [{"name": k, "valueFrom": {"configMapKeyRef": {"name": "n8n-env", "key": k}}} for k in n8n["environment"]]
    docs += [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "n8n-env"},
            "data": {k: resolve(str(v)) for k, v in n8n["environment"].items()},
        },
        workload(
            "Deployment",
            "n8n",
            {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,  # n8n reads N8N_PORT: a Service link would set it
                "securityContext": pod_security(1000),  # the image's node user
                "containers": [
                    {
                        "name": "n8n",
                        "image": n8n["image"].split(":")[0],
                        "ports": [{"name": "http", "containerPort": 5678, "protocol": "TCP"}],
                        "env": n8n_env,
                        "startupProbe": http_probe("/healthz", "http", 5, 24),
                        "livenessProbe": http_probe("/healthz", "http", 15, 5),
                        "readinessProbe": http_probe("/healthz", "http", 15, 3),
                        "resources": resources("n8n"),
                        # Not verified read-only: n8n writes caches under its home as well as ~/.n8n.
                        "securityContext": security(False, 1000),
                        "volumeMounts": [
                            {"name": "n8n-data", "mountPath": "/home/node/.n8n"},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "n8n-data", "persistentVolumeClaim": {"claimName": "n8n-data"}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                ],
            },
        ),
        service("n8n", [("http", 5678)]),
        pvc("n8n-data"),
    ]
    ollama = compose["x-ollama"] if "x-ollama" in compose else compose["ollama"]
    docs += [
        workload(
            "Deployment",
            "ollama",
            {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": pod_security(),
                "containers": [
                    {
                        "name": "ollama",
                        "image": ollama["image"].split(":")[0],
                        "ports": [{"name": "http", "containerPort": 11434, "protocol": "TCP"}],
                        "env": [
                            {"name": "OLLAMA_HOST", "value": ollama["environment"]["OLLAMA_HOST"]},
                            # compose runs it as root with /root/.ollama; here as uid 10001.
                            {"name": "OLLAMA_MODELS", "value": "/models"},
                            {"name": "HOME", "value": "/tmp"},
                        ],
                        "livenessProbe": {"exec": {"command": ["ollama", "list"]}, "periodSeconds": 30},
                        "readinessProbe": {"exec": {"command": ["ollama", "list"]}, "periodSeconds": 30},
                        "resources": resources("ollama"),
                        "securityContext": security(True),
                        "volumeMounts": [
                            {"name": "ollama-models", "mountPath": "/models"},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "ollama-models", "persistentVolumeClaim": {"claimName": "ollama-models"}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                ],
            },
        ),
        service("ollama", [("http", 11434)]),
        pvc("ollama-models"),
    ]
    docs += [pdb(n) for n in ("redis", "n8n", "ollama")]
    header = (
        "# Redis, n8n and Ollama as docker-compose.yaml runs them (generated by generate.py).\n"
        f"# Resources: redis: {RESOURCES['redis'][2]} n8n: {RESOURCES['n8n'][2]} "
        f"ollama: {RESOURCES['ollama'][2]}\n"
        "# GPU: add `nvidia.com/gpu` limits and a node selector to ollama in an overlay.\n"
    )
    return docs, header


def hpas() -> tuple[list[dict[str, Any]], str]:
    docs = [
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": 1,
                "maxReplicas": 4,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                    }
                ],
            },
        }
        for name in AUTOSCALED
    ]
    header = (
        "# The stateless services scale on CPU (their work is CPU-bound: docs/scaling.md).\n"
        "# The prod overlay raises the floor to 2 and the ceiling.\n"
    )
    return docs, header


# ---------------------------------------------------------------- network policies


def _peer(name: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": labels(name)}}


POSTGRES_PEER = {"podSelector": {"matchLabels": {"harvis.dev/store": "postgres"}}}
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
# The internet, not the cluster: private, shared, link-local (cloud metadata) ranges excepted.
INTERNET = [
    {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16",
                                                 "172.16.0.0/12", "192.168.0.0/16"]}},
    {"ipBlock": {"cidr": "::/0", "except": ["fc00::/7", "fe80::/10"]}},
]  # fmt: skip


def _tcp(port: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port}]


def network_policies(compose: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    port = {svc.name: svc.port for svc in (*SERVICES, *WORKERS)}
    port.update({"redis": 6379, "n8n": 5678, "ollama": 11434, "nginx": NGINX_PORT})
    ingress: dict[str, list[dict[str, Any]]] = {name: [] for name in port}
    egress: dict[str, list[dict[str, Any]]] = {name: [] for name in port}
    postgres_clients: list[str] = []

    def allow(src: str, dst: str, dst_port: int | None = None) -> None:
        p = _tcp(dst_port or port[dst])
        egress[src].append({"to": [_peer(dst)], "ports": p})
        ingress[dst].append({"from": [_peer(src)], "ports": p})

    allow("nginx", "core-api")
    # nginx -> the optional Next.js front end (deployed separately, labelled frontend).
    egress["nginx"].append({"to": [_peer("frontend")], "ports": _tcp(3000)})
    ingress["nginx"].append({"ports": _tcp(NGINX_PORT)})  # the entry: from the Ingress controller
    for svc in SERVICES:
        env = compose[svc.name].get("environment") or {}
        values = {k: str(v) for k, v in env.items() if v is not None}
        if svc.name != "core-api":
            allow("core-api", svc.name)
            if "CORE_API_URL" in env:
                allow(svc.name, "core-api")
        if "DATABASE_URL" in env:
            postgres_clients.append(svc.name)
            egress[svc.name].append({"to": [POSTGRES_PEER], "ports": _tcp(5432)})
        if "REDIS_URL" in env:
            allow(svc.name, "redis")
        if any("//ollama:" in v for v in values.values()):
            allow(svc.name, "ollama")
    for w in WORKERS:  # nobody calls them: their egress only (compose's URLs; none to core-api)
        env = compose[w.name].get("environment") or {}
        assert not {"CORE_API_URL", "REDIS_URL"} & set(env), f"{w.name}: add its paths here"
        if "DATABASE_URL" in env:
            postgres_clients.append(w.name)
            egress[w.name].append({"to": [POSTGRES_PEER], "ports": _tcp(5432)})
    allow("voice-service", "research-service")  # mic-chat's research mode (RESEARCH_SERVICE_URL)
    allow("n8n-integration", "n8n")  # N8N_URL
    allow("n8n", "n8n-integration", 5690)  # n8n's only way out: the vetting proxy
    for name in ("research-service", "browser-service", "mcp-service", "n8n-integration"):
        egress[name].append({"to": INTERNET})  # what they fetch: their SSRF policy decides
    # Prometheus (docs/observability.md) scrapes /metrics on each service's own port.
    for svc in (*SERVICES, *WORKERS):
        ingress[svc.name].append(
            {
                "from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": labels("prometheus")}}],
                "ports": _tcp(svc.port),
            }
        )
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "allow-dns"},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"to": [DNS_PEER], "ports": [{"protocol": "UDP", "port": 53}, *_tcp(53)]}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "postgres"},
            "spec": {
                "podSelector": POSTGRES_PEER["podSelector"],
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [_peer(n) for n in postgres_clients], "ports": _tcp(5432)}],
            },
        },
    ]
    for name in port:
        spec: dict[str, Any] = {"podSelector": {"matchLabels": labels(name)}, "policyTypes": ["Ingress", "Egress"]}
        spec["ingress"] = ingress[name]
        spec["egress"] = egress[name]
        docs.append(
            {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name}, "spec": spec}
        )
    header = (
        "# NetworkPolicies (generated by generate.py): deny everything, then allow the architecture's\n"
        "# paths: nginx -> core-api -> each service; each service -> core-api's internal API\n"
        "# (CORE_API_URL), PostgreSQL (DATABASE_URL), Redis (REDIS_URL), Ollama (an ollama URL) as\n"
        "# compose gives them; the artifact-renderer -> PostgreSQL only, reached by Prometheus only;\n"
        "# voice -> research; n8n-integration <-> n8n only; the internet (not the\n"
        "# cluster's private ranges) for research, browser, mcp and n8n-integration, whose SSRF policy\n"
        "# decides what; DNS for all. An external LLM (LLM_PROVIDER=openai) needs an extra egress rule.\n"
    )
    return docs, header


# ---------------------------------------------------------------- files


def wrap(header: str) -> str:
    """Comment lines wrapped at 100 columns."""
    lines = []
    for line in header.splitlines():
        text = line.removeprefix("# ")
        lines += (
            textwrap.wrap(text, 98, initial_indent="# ", subsequent_indent="#   ", break_on_hyphens=False)
            if len(line) > 100
            else [line]
        )
    return "\n".join(lines) + "\n"


def dump(docs: list[dict[str, Any]], header: str) -> str:
    header = wrap(header)
    body = "---\n".join(yaml.safe_dump(d, sort_keys=False, width=1000) for d in docs)
    return header + "---\n" + body


def files() -> dict[str, str]:
    compose = load_compose()
    services = compose["services"]
    out: dict[str, str] = {}
    for svc in (*SERVICES, *WORKERS):
        docs, header = app_service(svc, services[svc.name])
        out[f"{svc.name}.yaml"] = dump(docs, header)
    docs, header = nginx(services["nginx"])
    out["nginx.yaml"] = dump(docs, header)
    for key, text in nginx_config().items():
        out[f"nginx/{key}"] = text
    docs, header = infra({**services, "x-ollama": compose.get("x-ollama")})
    out["infra.yaml"] = dump(docs, header)
    docs, header = hpas()
    out["hpa.yaml"] = dump(docs, header)
    docs, header = network_policies(services)
    out["networkpolicies.yaml"] = dump(docs, header)
    settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": SETTINGS}, "data": {}}
    out["settings.yaml"] = dump(
        [settings],
        "# Optional settings every service may read (compose's bare names, passed from .env there):\n"
        "# add keys here (LOG_LEVEL, DEFAULT_MODEL, ...); a key that is absent leaves the variable unset,\n"
        "# so the service's default applies (docs/configuration.md lists them all).\n",
    )
    resources_list = [*sorted(k for k in out if k.endswith(".yaml"))]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{"pairs": {"app.kubernetes.io/part-of": PART_OF}, "includeSelectors": False}],
        "resources": resources_list,
        "configMapGenerator": [{"name": "nginx-config", "files": ["nginx/nginx.conf", "nginx/harvis.conf"]}],
    }
    out["kustomization.yaml"] = "# Generated by deploy/kubernetes/generate.py.\n" + yaml.safe_dump(
        kustomization, sort_keys=False
    )
    return out


SESSION_PATCH = "session-replicas.yaml"


def session_patch(overlay: str) -> str:
    """overlays/<overlay>/session-replicas.yaml: each StatefulSet's replicas and core-api's URL
    list for it, from SESSION_REPLICAS[overlay] (one number each, so they can't disagree)."""
    counts = SESSION_REPLICAS[overlay]
    assert set(counts) == STATEFUL, counts
    core_env = load_compose()["services"]["core-api"]["environment"]
    docs: list[dict[str, Any]] = [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name}, "spec": {"replicas": counts[name]}}
        for name in sorted(counts)
    ]
    urls = {key: pod_urls(svc.name, svc.port, counts[svc.name]) for key, svc in session_settings(core_env).items()}
    docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "core-api-env"}, "data": urls})
    docs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "core-api"},
            "spec": {"template": {"metadata": {"annotations": {SESSION_ANNOTATION: session_counts(counts)}}}},
        }
    )
    header = (
        f"# Generated by deploy/kubernetes/generate.py from SESSION_REPLICAS['{overlay}']: don't edit;\n"
        "# change the number there and rerun it. How many pods of each session-holding StatefulSet,\n"
        "# and core-api's list of their URLs (position i: pod i, whose sessions carry ordinal i), from\n"
        "# the one number. Applying a change rolls core-api (its annotation changes). Scaling down\n"
        "# ends the sessions of the pods removed (the gateway answers 410 for them).\n"
    )
    return dump(docs, header)


def overlay_files() -> dict[str, str]:
    """The generated file of each overlay (paths relative to deploy/kubernetes/)."""
    overlays = {p.name for p in (HERE / "overlays").iterdir() if (p / "kustomization.yaml").exists()}
    missing = overlays - set(SESSION_REPLICAS)
    assert not missing, f"overlays {sorted(missing)}: add them to SESSION_REPLICAS in generate.py"
    return {f"overlays/{o}/{SESSION_PATCH}": session_patch(o) for o in sorted(SESSION_REPLICAS)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report differences instead of writing")
    args = parser.parse_args()
    wanted = {f"base/{k}": v for k, v in files().items()} | overlay_files()
    present = {f"base/{p.relative_to(BASE)}" for p in BASE.rglob("*") if p.is_file()} if BASE.exists() else set()
    stale = sorted(present - set(wanted))
    changed = sorted(k for k, v in wanted.items() if not (HERE / k).exists() or (HERE / k).read_text() != v)
    if args.check:
        for name in changed + stale:
            print(f"out of date: deploy/kubernetes/{name}")
        return 1 if changed or stale else 0
    for name in changed:
        (HERE / name).parent.mkdir(parents=True, exist_ok=True)
        (HERE / name).write_text(wanted[name])
    for name in stale:
        (HERE / name).unlink()
    print(f"{len(changed)} written, {len(stale)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
