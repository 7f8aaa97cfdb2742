"""deploy/kubernetes: both overlays render with `kubectl kustomize` (Debian's kubectl 1.32, which
`fleet.py test static` installs), every object validates strictly against the Kubernetes 1.32
schemas (kubernetes-validate), and the manifests keep the fleet's policy: probes on the real
health routes, requests and limits, non-root with every capability dropped and seccomp on,
ClusterIP Services behind the one entry, NetworkPolicies that select real workloads, every
ConfigMap and Secret reference resolvable, agreement with docker-compose.yaml on images,
ports, health paths and environment names (the seven services and the artifact-renderer, which
renders what core-api queues and is reached by Prometheus alone), and session pinning:
core-api's URL list for each session-holding StatefulSet names its pods, one per replica, in
ordinal order."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from fleet_services import HEALTH_PATH, NGINX_PORT, READY_PATH, SERVICES
from harvis_static import MICRO, ROOT, compose, health_urls, healthcheck_text, is_secret, service_env, tool

K8S = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.32.0"
# Kinds no Kubernetes schema covers: custom resources of operators the overlays rely on.
CRD_KINDS = {
    ("postgresql.cnpg.io/v1", "Cluster"): "CloudNativePG's CRD: kubernetes-validate has only the built-in "
    "API's schemas; test_postgres_cluster checks the fields the services rely on",
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}


class Worker(NamedTuple):
    """An app container compose runs that is not in the fleet table: no user or service calls it
    (no Service), it serves /health, /ready and /metrics on `port` (compose's healthcheck's)."""

    name: str
    port: int


# core-api's rendering worker (its own image); core-api renders nothing in containers.
RENDERER = Worker("artifact-renderer", 8007)
WORKERS = (RENDERER,)
APPS = (*SERVICES, *WORKERS)  # every container of ours, each from its compose service
OURS = {svc.name: svc for svc in APPS}
STATELESS = ("core-api", "research-service", "mcp-service", "n8n-integration", RENDERER.name)
# Services whose sessions live in one pod: StatefulSets, pinned by the gateway (docs/scaling.md).
SESSIONS = ("browser-service", "vibe-coding")
POD_INDEX = "metadata.labels['apps.kubernetes.io/pod-index']"
# Containers allowed a writable root, and why (the manifests' comments say more).
WRITABLE_ROOT = {
    "browser-service": "Chromium writes outside its profile directory; not verified read-only",
    "vibe-coding": "bubblewrap sandboxes; not verified read-only",
    "n8n": "n8n writes caches under its home; not verified read-only",
}
# Pods a NetworkPolicy may name that these manifests don't run.
EXTERNAL_PEERS = {"frontend": "the Next.js front end, deployed separately"}
INTERNET_EGRESS = {"research-service", "browser-service", "mcp-service", "n8n-integration"}


def _generator():
    spec = importlib.util.spec_from_file_location("harvis_k8s_generate", K8S / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    done = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def objects(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered(overlay) if d["kind"] == kind}


def workloads(overlay: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered(overlay) if d["kind"] in WORKLOAD_KINDS}


def pod_label_sets(overlay: str) -> list[dict[str, str]]:
    """The labels of every pod the overlay makes, CloudNativePG's instances included."""
    sets = [w["spec"]["template"]["metadata"]["labels"] for w in workloads(overlay).values()]
    for cluster in objects(overlay, "Cluster").values():
        inherited = cluster["spec"].get("inheritedMetadata", {}).get("labels", {})
        sets.append({"cnpg.io/cluster": cluster["metadata"]["name"], **inherited})
    return sets


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors are used: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def containers(overlay: str):
    for name, w in workloads(overlay).items():
        pod = w["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            yield name, pod, c


def walk_refs(node: Any, key: str):
    if isinstance(node, dict):
        if key in node:
            yield node[key]
        for value in node.values():
            yield from walk_refs(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from walk_refs(value, key)


# ---------------------------------------------------------------- generated files


def test_base_is_what_generate_writes() -> None:
    """base/ is generate.py's output from docker-compose.yaml and nginx/render.py, and each
    overlay's session-replicas.yaml its output from SESSION_REPLICAS."""
    done = subprocess.run(
        [sys.executable, str(K8S / "generate.py"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr + "\nrun: python3 deploy/kubernetes/generate.py"


def test_nginx_config_is_render_py_output() -> None:
    """The ConfigMap's server block is render.py's, but for the resolver (the cluster's DNS, not
    docker's 127.0.0.11); its main config differs only in paths (a read-only container)."""
    spec = importlib.util.spec_from_file_location("harvis_nginx_render", ROOT / "nginx" / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    gen = _generator()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp).resolve()
        render.render(out, listen=str(NGINX_PORT), core_api="core-api:8000", frontend=gen.FRONTEND)
        server = (out / "conf.d" / "harvis.conf").read_text().splitlines()
        main = (out / "nginx.conf").read_text().replace(str(out), "OUT").splitlines()
    ours = (K8S / "base" / "nginx" / "harvis.conf").read_text().splitlines()
    diff = [(a, b) for a, b in zip(server, ours, strict=True) if a != b]
    assert [a.split()[:2] for a, _ in diff] == [["resolver", "127.0.0.11"]], diff
    assert diff[0][1].split()[1] == gen.CLUSTER_DNS
    assert "server core-api:8000;" in "\n".join(ours)
    ours_main = (K8S / "base" / "nginx" / "nginx.conf").read_text().splitlines()
    differ = [(a, b) for a, b in zip(main, ours_main, strict=True) if a != b]
    assert all(("OUT" in a and "/tmp/" in b) or "conf.d" in b for a, b in differ), differ


def test_nginx_config_loads(tmp_path: Path) -> None:
    """`nginx -t` accepts the ConfigMap's config, moved under tmp_path (the cluster's names, which
    don't resolve here, replaced by addresses)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    base = K8S / "base" / "nginx"
    main = (base / "nginx.conf").read_text()
    assert main.count(" /tmp/") == 6 and main.count(" /etc/harvis-nginx/") == 1  # pid, 5 temp paths; include
    main = main.replace(" /tmp/", f" {tmp_path}/").replace(" /etc/harvis-nginx/", f" {tmp_path}/")
    (tmp_path / "nginx.conf").write_text(main)
    server = (base / "harvis.conf").read_text().replace(_generator().CLUSTER_DNS, "127.0.0.1")
    (conf_d / "harvis.conf").write_text(server.replace("server core-api:8000;", "server 127.0.0.1:8000;"))
    done = subprocess.run([nginx, "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- rendering and schemas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_objects_validate_against_kubernetes_schemas(overlay: str) -> None:
    import kubernetes_validate

    skipped, failures = [], []
    for doc in rendered(overlay):
        kind = (doc["apiVersion"], doc["kind"])
        if kind in CRD_KINDS:
            skipped.append(kind)
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc}")
    assert not failures, "\n".join(failures)
    assert set(skipped) <= set(CRD_KINDS)
    assert (overlay == "prod") == bool(skipped), skipped


def test_postgres_cluster() -> None:
    """The CloudNativePG Cluster (no schema here): what the services and policies rely on."""
    (cluster,) = objects("prod", "Cluster").values()
    spec = cluster["spec"]
    assert spec["instances"] >= 2
    assert spec["bootstrap"]["initdb"]["database"] == spec["bootstrap"]["initdb"]["owner"] == "harvis"
    assert "CREATE EXTENSION IF NOT EXISTS vector" in spec["bootstrap"]["initdb"]["postInitApplicationSQL"]
    assert spec["inheritedMetadata"]["labels"]["harvis.dev/store"] == "postgres"
    assert set(spec) <= {"instances", "imageName", "primaryUpdateStrategy", "inheritedMetadata", "bootstrap"} | {
        "storage",
        "resources",
    }
    # The app Secret CloudNativePG makes is <cluster>-app: what DATABASE_URL reads.
    secrets = yaml.safe_load((K8S / "secrets.yaml").read_text())
    assert f"{cluster['metadata']['name']}-app" in secrets


# ---------------------------------------------------------------- policy


def _port_number(container: dict[str, Any], port: str | int) -> int:
    if isinstance(port, int):
        return port
    (found,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return found


def test_health_routes_exist() -> None:
    """The paths the probes use are routes: every service's (harvis_common.health) and nginx's."""
    health = (MICRO / "common" / "harvis_common" / "health.py").read_text()
    for path in (HEALTH_PATH, READY_PATH):
        assert f'@router.get("{path}")' in health
    assert f"location = {HEALTH_PATH} {{" in (ROOT / "nginx" / "harvis.conf.template").read_text()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_probes_on_real_routes(overlay: str) -> None:
    for name, _, c in containers(overlay):
        assert "livenessProbe" in c and "readinessProbe" in c, name
        if name in OURS:
            port = OURS[name].port
            for probe, path in (("startupProbe", HEALTH_PATH), ("livenessProbe", HEALTH_PATH)):
                assert c[probe]["httpGet"]["path"] == path, (name, probe)
                assert _port_number(c, c[probe]["httpGet"]["port"]) == port, (name, probe)
            assert c["readinessProbe"]["httpGet"]["path"] == READY_PATH, name
            assert _port_number(c, c["readinessProbe"]["httpGet"]["port"]) == port, name
        elif name == "nginx":
            # nginx's /health is core-api's: readiness only; liveness is nginx's own socket.
            assert c["readinessProbe"]["httpGet"]["path"] == HEALTH_PATH
            assert _port_number(c, c["readinessProbe"]["httpGet"]["port"]) == NGINX_PORT
            assert _port_number(c, c["livenessProbe"]["tcpSocket"]["port"]) == NGINX_PORT
        elif name == "n8n":
            (_, path) = health_urls(healthcheck_text(compose()["services"]["n8n"]))[0]
            assert c["livenessProbe"]["httpGet"]["path"] == c["readinessProbe"]["httpGet"]["path"] == path
    slow = {n: c["startupProbe"] for n, _, c in containers(overlay) if n in ("voice-service", "browser-service")}
    for name, probe in slow.items():
        assert probe["periodSeconds"] * probe["failureThreshold"] >= 300, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(overlay: str) -> None:
    for name, _, c in containers(overlay):
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c.get("resources", {}).get(kind, {})), (name, kind)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down(overlay: str) -> None:
    for name, pod, c in containers(overlay):
        sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
        assert sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, name
        assert sc.get("allowPrivilegeEscalation") is False, name
        assert sc.get("privileged", False) is False, name
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
        assert not sc.get("capabilities", {}).get("add"), name
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", name
        if name in OURS or name == "nginx":
            assert sc.get("runAsUser", psc.get("runAsUser")) == 10001, name
        assert sc.get("readOnlyRootFilesystem") is (name not in WRITABLE_ROOT), name
        if sc.get("readOnlyRootFilesystem"):
            assert "/tmp" in {m["mountPath"] for m in c.get("volumeMounts", [])}, name
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(key), (name, key)
        assert not [v for v in pod.get("volumes", []) if "hostPath" in v], name
        assert pod.get("automountServiceAccountToken") is False, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nginx_is_the_only_entry(overlay: str) -> None:
    services = objects(overlay, "Service")
    for name, svc in services.items():
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", name
        assert "externalIPs" not in svc["spec"], name
    ingresses = objects(overlay, "Ingress")
    if overlay == "prod":
        assert ingresses, "prod exposes nginx through an Ingress"
    backends = {b["name"] for b in walk_refs(list(ingresses.values()), "service")}
    assert backends <= {"nginx"}, backends


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_select_real_workloads(overlay: str) -> None:
    labels = pod_label_sets(overlay)
    policies = objects(overlay, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny.get("ingress") and not deny.get("egress")
    for name, policy in policies.items():
        selector = policy["spec"]["podSelector"]
        if selector:
            assert any(matches(selector, ls) for ls in labels), f"{name}: {selector} selects no pod"
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            for peer in rule.get("from", []) + rule.get("to", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    sel = peer["podSelector"]
                    if sel.get("matchLabels", {}).get("app.kubernetes.io/name") in EXTERNAL_PEERS:
                        continue
                    assert any(matches(sel, ls) for ls in labels), f"{name}: peer {sel} selects no pod"
    # Every pod of ours has its own policy (beyond the default deny).
    for workload in workloads(overlay).values():
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        own = [
            n for n, p in policies.items() if p["spec"]["podSelector"] and matches(p["spec"]["podSelector"], pod_labels)
        ]
        assert own, workload["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_fetching_services_reach_the_internet(overlay: str) -> None:
    reach = set()
    for policy in objects(overlay, "NetworkPolicy").values():
        for rule in policy["spec"].get("egress", []):
            if any("ipBlock" in peer for peer in rule.get("to", [])) or not rule.get("to"):
                ports = {p["port"] for p in rule.get("ports", [])}
                if (
                    ports
                    and ports <= {443, 6443}
                    and "cnpg.io/cluster" in policy["spec"]["podSelector"].get("matchLabels", {})
                ):
                    continue  # CloudNativePG's instances -> the Kubernetes API
                reach.add(policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
                for peer in rule.get("to", []):
                    assert "10.0.0.0/8" in peer["ipBlock"].get("except", []) or peer["ipBlock"]["cidr"] == "::/0"
    assert reach == INTERNET_EGRESS


def _selected(selector: dict[str, Any]) -> str | None:
    """The workload a selector names (PostgreSQL's pods by their store label, in both overlays)."""
    labels = selector.get("matchLabels", {})
    return "postgres" if labels.get("harvis.dev/store") == "postgres" else labels.get("app.kubernetes.io/name")


def _paths(policies: dict[str, Any], direction: str) -> set[tuple[str, str, int]]:
    out = set()
    key = "to" if direction == "egress" else "from"
    for policy in policies.values():
        me = _selected(policy["spec"]["podSelector"])
        for rule in policy["spec"].get(direction, []):
            for peer in rule.get(key, []):
                other = _selected(peer.get("podSelector", {}))
                if me and other and "namespaceSelector" not in peer:
                    for p in rule.get("ports", []):
                        out.add((me, other, p["port"]) if direction == "egress" else (other, me, p["port"]))
    return out


def test_network_paths_are_the_architecture() -> None:
    """Each allowed pod-to-pod path is allowed on both ends (egress and ingress), and the
    paths are those of the brief: nginx -> core-api -> services, services -> what compose
    gives them, voice -> research, n8n <-> n8n-integration only."""
    policies = objects("dev", "NetworkPolicy")
    egress, ingress = _paths(policies, "egress"), _paths(policies, "ingress")
    assert egress - {("nginx", "frontend", 3000)} == ingress
    services = compose()["services"]
    expected = {("nginx", "core-api", 8000), ("voice-service", "research-service", 8001)}
    expected |= {("n8n-integration", "n8n", 5678), ("n8n", "n8n-integration", 5690)}
    for svc in APPS:
        env = service_env(services[svc.name])
        if svc.name != "core-api" and not isinstance(svc, Worker):  # nobody calls a worker
            expected.add(("core-api", svc.name, svc.port))
            if "CORE_API_URL" in env:
                expected.add((svc.name, "core-api", 8000))
        if "REDIS_URL" in env:
            expected.add((svc.name, "redis", 6379))
        if any(v and "//ollama:" in v for v in env.values()):
            expected.add((svc.name, "ollama", 11434))
        if "DATABASE_URL" in env:
            expected.add((svc.name, "postgres", 5432))
    assert ingress == expected
    # n8n: reachable from n8n-integration only, and reaches nothing else.
    assert {(a, b) for a, b, _ in ingress if "n8n" in (a, b)} == {
        ("n8n-integration", "n8n"),
        ("n8n", "n8n-integration"),
    }


PROMETHEUS_PEER = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_scrapes_every_app_pod(overlay: str) -> None:
    """Each pod of ours (services and workers) is annotated for scraping /metrics on its own
    port (docs/observability.md), and its NetworkPolicy lets Prometheus pods reach that port."""
    wl, policies = workloads(overlay), objects(overlay, "NetworkPolicy")
    for svc in APPS:
        annotations = wl[svc.name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", svc.name
        assert annotations["prometheus.io/port"] == str(svc.port), svc.name
        assert annotations["prometheus.io/path"] == "/metrics", svc.name
        rules = policies[svc.name]["spec"]["ingress"]
        assert {"from": [PROMETHEUS_PEER], "ports": [{"protocol": "TCP", "port": svc.port}]} in rules, svc.name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_artifact_renderer_renders_what_core_api_queues(overlay: str) -> None:
    """core-api only queues (ARTIFACT_RENDER_WORKERS "0" from its own ConfigMap, which a setting in
    harvis-settings can't change); the artifact-renderer renders, with the database core-api uses
    (the same Secret reference, per overlay) and the setting from harvis-settings (unset there:
    its default). Nobody calls it: no Service selects it, Prometheus alone may reach it (on its
    port), and it reaches PostgreSQL alone (DNS aside, as every pod)."""
    wl = workloads(overlay)
    core = {e["name"]: e for e in _container(wl["core-api"])["env"]}
    ours = {e["name"]: e for e in _container(wl[RENDERER.name])["env"]}
    assert core["ARTIFACT_RENDER_WORKERS"]["valueFrom"] == {
        "configMapKeyRef": {"name": "core-api-env", "key": "ARTIFACT_RENDER_WORKERS"}
    }
    assert objects(overlay, "ConfigMap")["core-api-env"]["data"]["ARTIFACT_RENDER_WORKERS"] == "0"
    assert ours["ARTIFACT_RENDER_WORKERS"]["valueFrom"] == {
        "configMapKeyRef": {"name": "harvis-settings", "key": "ARTIFACT_RENDER_WORKERS", "optional": True}
    }
    assert ours["DATABASE_URL"] == core["DATABASE_URL"]
    assert "secretKeyRef" in ours["DATABASE_URL"]["valueFrom"]
    assert all("valueFrom" in e for e in ours.values()), "settings by reference, never literals"
    pod_labels = wl[RENDERER.name]["spec"]["template"]["metadata"]["labels"]
    for svc in objects(overlay, "Service").values():
        assert not matches({"matchLabels": svc["spec"].get("selector", {})}, pod_labels), svc["metadata"]["name"]
    policies = objects(overlay, "NetworkPolicy")
    spec = policies[RENDERER.name]["spec"]
    assert spec["ingress"] == [{"from": [PROMETHEUS_PEER], "ports": [{"protocol": "TCP", "port": RENDERER.port}]}]
    assert spec["egress"] == [
        {
            "to": [{"podSelector": {"matchLabels": {"harvis.dev/store": "postgres"}}}],
            "ports": [{"protocol": "TCP", "port": 5432}],
        }
    ]
    # No other policy opens a path to or from it (but the database's, and the ones for all pods).
    for name, policy in policies.items():
        if name in (RENDERER.name, "default-deny", "allow-dns"):
            continue
        peers = [
            p
            for r in policy["spec"].get("ingress", []) + policy["spec"].get("egress", [])
            for p in r.get("from", []) + r.get("to", [])
        ]
        names = {_selected(p.get("podSelector", {})) for p in peers}
        if name == "postgres":
            assert RENDERER.name in names
        else:
            assert RENDERER.name not in names, name
            assert not matches(policy["spec"]["podSelector"], pod_labels), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_references_resolve(overlay: str) -> None:
    maps = objects(overlay, "ConfigMap")
    for name, _, c in containers(overlay):
        for ref in walk_refs(c, "configMapKeyRef"):
            assert ref["name"] in maps, (name, ref)
            if not ref.get("optional"):
                assert ref["key"] in maps[ref["name"]].get("data", {}), (name, ref)
        for ref in walk_refs(c.get("envFrom", []), "configMapRef"):
            assert ref["name"] in maps, (name, ref)
    for name, w in workloads(overlay).items():
        for vol in w["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in vol:
                cm = maps.get(vol["configMap"]["name"])
                assert cm, (name, vol)
                for item in vol["configMap"].get("items", []):
                    assert item["key"] in cm["data"], (name, item)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_references_are_listed_in_secrets_yaml(overlay: str) -> None:
    """No Secret is rendered (values come from the operator); every reference is in
    deploy/kubernetes/secrets.yaml, required there exactly when the reference is not optional,
    and every entry there is referenced."""
    assert not objects(overlay, "Secret"), "the manifests carry no Secret values"
    listed = yaml.safe_load((K8S / "secrets.yaml").read_text())
    refs: set[tuple[str, str, bool]] = set()
    for _, _, c in containers(overlay):
        for ref in walk_refs(c, "secretKeyRef"):
            refs.add((ref["name"], ref["key"], bool(ref.get("optional"))))
        for entry in c.get("env", []):
            assert not (is_secret(entry["name"]) and "value" in entry), f"literal secret {entry['name']}"
    for name, key, optional in refs:
        assert name in listed and key in listed[name]["keys"], (name, key)
        entry = listed[name]["keys"][key]
        assert entry["required"] is not optional, (name, key)
        assert overlay in entry["overlays"], (name, key)
    expected = {(n, k) for n, s in listed.items() for k, e in s["keys"].items() if overlay in e["overlays"]}
    assert expected == {(n, k) for n, k, _ in refs}
    tls = {t["secretName"] for i in objects(overlay, "Ingress").values() for t in i["spec"].get("tls", [])}
    assert tls == {n for n, s in listed.items() if not s["keys"] and overlay in s.get("overlays", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_replicas_autoscaling_and_disruption_budgets(overlay: str) -> None:
    deployments = workloads(overlay)
    hpas = objects(overlay, "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == set(STATELESS)
    for hpa in hpas.values():
        target = hpa["spec"]["scaleTargetRef"]
        assert deployments[target["name"]]["kind"] == target["kind"] == "Deployment"
    for name, w in deployments.items():
        if overlay == "dev":
            assert w["spec"]["replicas"] == 1, name
        elif name in STATELESS or name == "nginx":
            assert w["spec"]["replicas"] >= 2, name
    if overlay == "prod":
        assert all(h["spec"]["minReplicas"] >= 2 for h in hpas.values())
    else:
        assert all(h["spec"]["maxReplicas"] == 1 for h in hpas.values())
    # Session-holding services are StatefulSets (a pod owns its sessions): one pod each in dev,
    # two in prod (test_sessions_are_pinned_to_pods checks core-api's lists of them).
    for name in SESSIONS:
        assert deployments[name]["kind"] == "StatefulSet", name
        assert deployments[name]["spec"]["replicas"] == (1 if overlay == "dev" else 2), name
    pdbs = objects(overlay, "PodDisruptionBudget").values()
    for name, w in deployments.items():
        pod_labels = w["spec"]["template"]["metadata"]["labels"]
        assert any(matches(p["spec"]["selector"], pod_labels) for p in pdbs), name


def _session_setting(name: str) -> str:
    """core-api's setting that compose points at a service (BROWSER_SERVICE_URL, ...)."""
    env = service_env(compose()["services"]["core-api"])
    (key,) = [k for k, v in env.items() if v == f"http://{name}:{OURS[name].port}"]
    return key


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (found,) = [
        c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == workload["metadata"]["name"]
    ]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_sessions_are_pinned_to_pods(overlay: str) -> None:
    """For each StatefulSet of ours (its pods own sessions): core-api's URL setting for it lists
    exactly `replicas` URLs, entry i naming pod i through the StatefulSet's headless Service on the
    container's port (so the gateway sends a session whose id carries ordinal i to pod i); the pod
    takes REPLICA_ORDINAL from its pod-index label; the headless Service publishes ready pods only;
    no HPA scales it (the list would not follow); core-api's pod template names the counts, so a
    change of them rolls core-api."""
    wl = workloads(overlay)
    stateful = {n: w for n, w in wl.items() if n in OURS and w["kind"] == "StatefulSet"}
    assert set(stateful) == set(SESSIONS)
    core_env = objects(overlay, "ConfigMap")["core-api-env"]["data"]
    core = wl["core-api"]
    core_refs = {e["name"]: e.get("valueFrom", {}) for e in _container(core)["env"]}
    services = objects(overlay, "Service")
    scaled = {
        (h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"])
        for h in objects(overlay, "HorizontalPodAutoscaler").values()
    }
    counts = {}
    for name, sts in stateful.items():
        replicas = sts["spec"]["replicas"]
        counts[name] = replicas
        container = _container(sts)
        port = _port_number(container, "http")
        assert port == OURS[name].port
        headless = services[sts["spec"]["serviceName"]]
        assert headless["spec"]["clusterIP"] == "None", name
        assert headless["spec"]["publishNotReadyAddresses"] is False, name
        assert matches({"matchLabels": headless["spec"]["selector"]}, sts["spec"]["template"]["metadata"]["labels"])
        setting = _session_setting(name)
        assert core_refs[setting] == {"configMapKeyRef": {"name": "core-api-env", "key": setting}}, setting
        urls = core_env[setting].split(",")
        assert len(urls) == replicas, (setting, urls)
        svc_name = headless["metadata"]["name"]
        assert urls == [f"http://{name}-{i}.{svc_name}:{port}" for i in range(replicas)], (setting, urls)
        env = {e["name"]: e for e in container["env"]}
        assert env["REPLICA_ORDINAL"] == {
            "name": "REPLICA_ORDINAL",
            "valueFrom": {"fieldRef": {"fieldPath": POD_INDEX}},
        }
        assert ("StatefulSet", name) not in scaled, name
        assert 1 <= replicas <= 4096, name  # an id carries 12 bits of ordinal
    annotation = core["spec"]["template"]["metadata"]["annotations"]["harvis.dev/session-replicas"]
    assert annotation == ",".join(f"{n}={counts[n]}" for n in sorted(counts))
    # The overlay takes its counts from the generated patch (one number each: generate.py).
    kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    assert {"path": "session-replicas.yaml"} in kustomization["patches"]
    assert not {r["name"] for r in kustomization.get("replicas", [])} & set(SESSIONS)
    assert _generator().SESSION_REPLICAS[overlay] == counts


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_session_state_is_per_pod(overlay: str) -> None:
    """vibe-coding's workspace directory is a volume per pod (a volumeClaimTemplate,
    ReadWriteOnce), which a restarted pod of the same ordinal mounts again; browser profiles,
    which die with their sessions, are an emptyDir."""
    wl = workloads(overlay)
    vibe = wl["vibe-coding"]
    workspace_dir = objects(overlay, "ConfigMap")["vibe-coding-env"]["data"]["VIBE_WORKSPACE_DIR"]
    (mount,) = [m for m in _container(vibe)["volumeMounts"] if m["mountPath"] == workspace_dir]
    (claim,) = [c for c in vibe["spec"]["volumeClaimTemplates"] if c["metadata"]["name"] == mount["name"]]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert mount["name"] not in {v["name"] for v in vibe["spec"]["template"]["spec"].get("volumes", [])}
    browser = wl["browser-service"]
    profile_dir = compose()["services"]["browser-service"]["environment"]["BROWSER_PROFILE_DIR"]
    (mount,) = [m for m in _container(browser)["volumeMounts"] if m["mountPath"] == profile_dir]
    (volume,) = [v for v in browser["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume and "volumeClaimTemplates" not in browser["spec"]


# ---------------------------------------------------------------- agreement with compose


@cache
def component_images() -> dict[str, str]:
    comp = yaml.safe_load((K8S / "components" / "images" / "kustomization.yaml").read_text())
    return {i["name"]: i["newTag"] for i in comp["images"]}


def test_images_come_from_one_place() -> None:
    """No tag is written in the base or the overlays' manifests: the images component sets them
    all, ours (the seven services and the artifact-renderer) share one tag, and the others are
    the ones docker-compose.yaml runs."""
    for path in [*(K8S / "base").glob("*.yaml"), *(K8S / "overlays").rglob("*.yaml")]:
        for doc in yaml.safe_load_all(path.read_text()):
            for image in walk_refs(doc, "image"):
                if isinstance(image, str):
                    assert ":" not in image, f"{path}: {image} (tags go in components/images)"
    tags = component_images()
    assert len({tags[f"harvis/{svc.name}"] for svc in APPS}) == 1
    services = compose()["services"]
    for name in ("nginx", "redis", "n8n", "ollama", "postgres"):
        image, _, tag = services[name]["image"].partition(":")
        assert tags[image] == tag, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_images_match_compose(overlay: str) -> None:
    services = compose()["services"]
    by_container = {c["name"]: c["image"] for _, _, c in containers(overlay)}
    harvis_tag = component_images()["harvis/core-api"]
    # Every image compose builds runs here: the fleet's services and the workers.
    built = {n for n, s in services.items() if str(s.get("image", "")).startswith("harvis/")}
    assert built == set(OURS), built ^ set(OURS)
    for svc in APPS:
        image = services[svc.name]["image"].split(":")[0]
        assert by_container[svc.name] == f"{image}:{harvis_tag}", svc.name
    for name in ("nginx", "redis", "n8n", "ollama") + (("postgres",) if overlay == "dev" else ()):
        assert by_container[name] == services[name]["image"], name


@pytest.mark.parametrize("svc", APPS, ids=[s.name for s in APPS])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_agrees_with_compose(overlay: str, svc: Any) -> None:
    """Ports, health path, environment names and values, volumes: as docker-compose.yaml has them,
    but for session pinning (test_sessions_are_pinned_to_pods): a StatefulSet's pods also get
    REPLICA_ORDINAL, and core-api's URLs of them list their pods. A worker has no Service."""
    theirs = compose()["services"][svc.name]
    (container,) = [c for n, _, c in containers(overlay) if n == svc.name]
    gen = _generator()
    # Port and health path: compose's healthcheck URL.
    ((port, path),) = health_urls(healthcheck_text(theirs))
    assert (port, path) == (svc.port, HEALTH_PATH)
    assert container["ports"][0]["containerPort"] == port
    if isinstance(svc, Worker):
        assert svc.name not in objects(overlay, "Service"), "nobody calls it: Prometheus scrapes its pods"
    else:
        service = objects(overlay, "Service")[svc.name]
        assert {p["port"] for p in service["spec"]["ports"]} >= {port}
    # Environment: the same names; explicit values equal (defaults applied); secrets by reference.
    env = service_env(theirs)
    ours = {e["name"]: e for e in container["env"]}
    extra = set()
    if svc.name in SESSIONS:  # compose runs one replica (0); a pod's ordinal is its index
        assert env.pop("REPLICA_ORDINAL", None) == "0"
        extra = {"REPLICA_ORDINAL"}
    assert set(ours) == set(env) | extra, set(ours) ^ (set(env) | extra)
    pinned = {_session_setting(n) for n in SESSIONS} if svc.name == "core-api" else set()
    config = objects(overlay, "ConfigMap")[f"{svc.name}-env"]["data"]
    for name, value in env.items():
        ref = ours[name]["valueFrom"]
        if value is None:
            assert next(iter(ref.values()))["optional"] is True, name
        elif gen.is_required_secret(value):
            assert "secretKeyRef" in ref and not ref["secretKeyRef"].get("optional"), name
        else:
            assert ref["configMapKeyRef"] == {"name": f"{svc.name}-env", "key": name}, name
            if name not in pinned:
                assert config[name] == gen.resolve(value), name
    # Volumes: compose's named volumes, at the same paths, as PVCs (an emptyDir where generate.py
    # says nothing in it outlives the pod: EPHEMERAL).
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    workload = workloads(overlay)[svc.name]
    claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
    claims |= set(objects(overlay, "PersistentVolumeClaim"))
    empty = {v["name"] for v in workload["spec"]["template"]["spec"].get("volumes", []) if "emptyDir" in v}
    for spec in theirs.get("volumes", []):
        volume, mount = spec.split(":")[:2]
        assert mounts.get(volume) == mount, (svc.name, volume)
        assert volume in (empty if volume in gen.EPHEMERAL else claims), (svc.name, volume)


def test_docs_link_the_manifests() -> None:
    scaling = (ROOT / "docs" / "scaling.md").read_text()
    assert "deploy/kubernetes" in scaling
    assert "docs/scaling.md" in (ROOT / "README.md").read_text()
    assert re.search(r"\b100\b", scaling) and "1 000" in scaling
