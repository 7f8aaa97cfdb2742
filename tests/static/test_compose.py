"""docker-compose.yaml: valid against the compose spec, and in agreement with the fleet
table, the Dockerfiles, the services' Settings classes and .env.example."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from fleet_services import HEALTH_PATH, NGINX_PORT, by_name
from harvis_static import (
    COMPOSE_FILE,
    INFRA_SERVICES,
    REQUIRED_SECRETS,
    SERVICES,
    Service,
    compose,
    compose_strings,
    depends_on,
    env_example,
    health_urls,
    healthcheck_text,
    interpolations,
    is_secret,
    published_ports,
    service_env,
    service_networks,
    settings_fields,
    tool,
)

NETWORK = "ollama-n8n-network"
RENDERER = "artifact-renderer"  # core-api's rendering worker, in an image of its own
ids = [s.name for s in SERVICES]


def services() -> dict:
    return compose()["services"]


def app(svc: Service) -> dict:
    assert svc.name in services(), f"{svc.name} is in scripts/fleet_services.py but not in docker-compose.yaml"
    return services()[svc.name]


def test_valid_against_the_compose_spec() -> None:
    proc = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_version_key() -> None:
    assert "version" not in compose(), "the compose spec has no `version:`; compose v2 warns about it"


# ---------------------------------------------------------------- the fleet


def test_app_services_are_the_fleet() -> None:
    built = {name for name, s in services().items() if "build" in s or str(s.get("image", "")).startswith("harvis/")}
    assert built == {s.name for s in SERVICES} | {RENDERER}
    unknown = set(services()) - built - INFRA_SERVICES
    assert not unknown, f"services neither in the fleet table nor known infrastructure: {unknown}"


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_build_and_image(svc: Service) -> None:
    s = app(svc)
    assert s["build"] == {
        "context": "./microservices",
        "dockerfile": f"{svc.directory}/Dockerfile",
        # The shared images (microservices/base/Dockerfile) under the same tag; `make build` makes them first.
        "args": {
            "BUILD_IMAGE": "harvis/python-build:${HARVIS_VERSION:-dev}",
            "BASE_IMAGE": "harvis/python-base:${HARVIS_VERSION:-dev}",
        },
    }
    assert s["image"] == f"harvis/{svc.name}:${{HARVIS_VERSION:-dev}}"


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_healthcheck_hits_the_service_port(svc: Service) -> None:
    text = healthcheck_text(app(svc))
    assert health_urls(text) == [(svc.port, HEALTH_PATH)], text
    assert "urllib" in text


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_service_name_is_the_internal_auth_audience(svc: Service) -> None:
    env = service_env(app(svc))
    assert env.get("SERVICE_NAME") == svc.name, "tokens are minted for the fleet name: SERVICE_NAME must match"


def test_the_artifact_renderer_renders_what_core_api_queues() -> None:
    """core-api's image has no rendering libraries, so core-api renders nothing in containers
    (a value in .env can't change that); the renderer gets the artifacts' settings, the
    database and no secret of core-api's, like every app service, checked on its own port."""
    assert service_env(services()["core-api"])["ARTIFACT_RENDER_WORKERS"] == "0"
    s = services()[RENDERER]
    assert s["build"]["dockerfile"] == "core-api/Dockerfile.renderer"
    assert s["image"] == f"harvis/{RENDERER}:${{HARVIS_VERSION:-dev}}"
    env = service_env(s)
    artifacts = {k for k in settings_fields("core-api") if k.startswith("ARTIFACT_")}
    assert artifacts | {"DATABASE_URL", "DB_POOL_MAX", "LOG_LEVEL"} <= set(env)
    assert env["ARTIFACT_RENDER_WORKERS"] is None, "from .env, else the renderer's default"
    assert env["SERVICE_NAME"] == RENDERER
    assert not [k for k in env if is_secret(k)], "it needs no key: it only reads and writes the database"
    assert depends_on(s) == {"postgres": {"condition": "service_healthy"}}
    assert health_urls(healthcheck_text(s)) == [(8007, HEALTH_PATH)]
    assert s["cap_drop"] == ["ALL"] and s["read_only"] is True and "ports" not in s


def test_core_api_routes_to_each_service_by_compose_dns() -> None:
    core = settings_fields("core-api")
    env = service_env(services()["core-api"])
    for svc in SERVICES:
        if not svc.url_env:
            continue
        assert svc.url_env in core, f"core-api's Settings has no {svc.url_env.lower()} (fleet table names it)"
        assert env.get(svc.url_env) == f"http://{svc.name}:{svc.port}", svc.url_env


# ---------------------------------------------------------------- settings ↔ compose ↔ .env.example


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_every_setting_reaches_the_container(svc: Service) -> None:
    """No env_file: each service's environment must name every setting it reads,
    else a value written in .env never reaches it."""
    env = service_env(app(svc))
    missing = sorted(set(settings_fields(svc.name)) - set(env))
    assert not missing, (
        f"{svc.name} reads {missing} but docker-compose.yaml does not pass them: add `NAME:` (pass-through "
        f"from .env) or an explicit value to services.{svc.name}.environment"
    )


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_urls_and_dirs_are_explicit(svc: Service) -> None:
    """Native defaults (127.0.0.1 URLs, relative dirs) are wrong inside a container."""
    env = service_env(app(svc))
    for name in settings_fields(svc.name):
        if name.endswith("_URL"):
            value = env.get(name)
            assert value, f"{svc.name}: {name} must be set explicitly (a compose service name, not 127.0.0.1)"
            assert "127.0.0.1" not in value and "localhost" not in value, f"{svc.name}: {name}={value}"
        if name.endswith("_DIR"):
            value = env.get(name)
            assert value and value.startswith("/"), f"{svc.name}: {name} must be an absolute path in the image"
            mounts = [str(v).split(":")[1] for v in app(svc).get("volumes") or [] if isinstance(v, str)]
            assert any(value == m or value.startswith(m.rstrip("/") + "/") for m in mounts), (
                f"{svc.name}: {name}={value} is not on a volume ({mounts}): its data would die with the container"
            )


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_database_and_redis(svc: Service) -> None:
    s, fields = app(svc), settings_fields(svc.name)
    env, deps = service_env(s), depends_on(s)
    if svc.needs_database or "DATABASE_URL" in fields:
        assert "DATABASE_URL" in env
        assert deps.get("postgres", {}).get("condition") == "service_healthy"
    if "DATABASE_URL" in env:
        assert re.fullmatch(
            r"postgresql://harvis:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432/harvis", env["DATABASE_URL"]
        )
    if "REDIS_URL" in fields:
        assert env.get("REDIS_URL", "").startswith("redis://redis:6379")
        assert deps.get("redis", {}).get("condition") == "service_healthy"


def test_dependencies_wait_for_health() -> None:
    assert set(depends_on(services()["core-api"])) >= {"postgres", "redis"}
    assert set(depends_on(services()["nginx"])) == {"core-api"}
    for name, s in services().items():
        for dep, spec in depends_on(s).items():
            assert dep in services(), f"{name} depends on unknown {dep}"
            assert spec.get("condition") == "service_healthy", f"{name} -> {dep}: use condition: service_healthy"


def test_every_compose_variable_is_in_env_example() -> None:
    documented = set(env_example())
    used = {i.name for i in interpolations(compose_strings())}
    for s in services().values():
        used |= {k for k, v in service_env(s).items() if v is None}  # pass-through names
    missing = sorted(used - documented)
    assert not missing, f"docker-compose.yaml uses {missing}: document them in .env.example"


def test_no_env_file() -> None:
    """`env_file: .env` would give every container every secret in .env (the private key too)."""
    for name, s in services().items():
        assert "env_file" not in s, f"{name}: list its variables under environment: instead of env_file"


# ---------------------------------------------------------------- secrets


def test_required_secrets_refuse_to_start_without_a_value() -> None:
    uses = [i for i in interpolations(compose_strings()) if i.name in REQUIRED_SECRETS]
    assert {i.name for i in uses} == set(REQUIRED_SECRETS)
    for i in uses:
        assert i.op == ":?" and i.arg.strip(), f"{i.text}: use ${{{i.name}:?message}} (no default, no empty value)"


def test_no_secret_has_a_default() -> None:
    for i in interpolations(compose_strings()):
        if is_secret(i.name):
            assert i.op in {":?", "?"}, f"{i.text}: a secret takes no default"
    for name, s in services().items():
        for key, value in service_env(s).items():
            if is_secret(key) and value is not None:
                assert value.startswith("${") and value.endswith("}"), f"{name}: {key} is written in the file"


def test_private_key_and_jwt_secret_only_in_core_api() -> None:
    for name, s in services().items():
        env = service_env(s)
        for secret in ("INTERNAL_AUTH_PRIVATE_KEY", "JWT_SECRET"):
            assert (secret in env) == (name == "core-api"), f"{secret} must go to core-api only (found in {name})"
        if name != "postgres":
            assert "POSTGRES_PASSWORD" not in env, f"{name}: gets the database password only inside DATABASE_URL"


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_services_get_the_public_key(svc: Service) -> None:
    value = service_env(app(svc)).get("INTERNAL_AUTH_PUBLIC_KEY") or ""
    assert value.startswith("${INTERNAL_AUTH_PUBLIC_KEY:?")


# ---------------------------------------------------------------- network, ports, health, volumes


def test_only_nginx_publishes_and_only_9000() -> None:
    for name, s in services().items():
        ports = published_ports(s)
        if name == "nginx":
            assert ports == [(str(NGINX_PORT), str(NGINX_PORT))], ports
        else:
            assert not ports, f"{name} publishes {ports}: only nginx faces the outside"


def test_network_is_created_by_compose() -> None:
    nets = compose().get("networks") or {}
    assert NETWORK in nets, f"top-level networks must define {NETWORK}"
    assert not (nets[NETWORK] or {}).get("external"), f"{NETWORK} is created by compose, not external"
    # n8n runs users' workflows: it sits alone with n8n-integration (whose vetting proxy is its
    # only way out) on an internal network, never on the fleet's.
    assert (nets.get("n8n-sandbox") or {}).get("internal") is True, "n8n-sandbox must be internal"
    expected = {"n8n": {"n8n-sandbox"}, "n8n-integration": {NETWORK, "n8n-sandbox"}}
    for name, s in services().items():
        assert service_networks(s) == expected.get(name, {NETWORK}), f"{name}: networks {service_networks(s)}"


def test_every_service_has_a_healthcheck() -> None:
    for name, s in services().items():
        hc = s.get("healthcheck") or {}
        assert hc.get("test") and not hc.get("disable"), f"{name} has no healthcheck"
    assert "pg_isready" in healthcheck_text(services()["postgres"])
    assert "redis-cli ping" in healthcheck_text(services()["redis"])
    assert health_urls(healthcheck_text(services()["nginx"])) == [(NGINX_PORT, HEALTH_PATH)]


def test_ollama_variants_share_one_address() -> None:
    variants = {n: s for n, s in services().items() if n.startswith("ollama")}
    assert set(variants) == {"ollama", "ollama-gpu"}
    profiles = [tuple(s.get("profiles") or ()) for s in variants.values()]
    assert all(len(p) == 1 for p in profiles) and len(set(profiles)) == 2, "one profile each, distinct"
    for name, s in variants.items():
        aliases = (s["networks"][NETWORK] or {}).get("aliases") or []
        assert name == "ollama" or "ollama" in aliases, f"{name} must answer as http://ollama:11434"
    devices = services()["ollama-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices and devices[0]["driver"] == "nvidia"
    assert "COMPOSE_PROFILES" in env_example(), "document which profile picks the Ollama variant"


def test_named_volumes_are_declared_and_used() -> None:
    declared = set(compose().get("volumes") or {})
    used = set()
    for s in services().values():
        for v in s.get("volumes") or []:
            source = v.get("source") if isinstance(v, dict) else str(v).split(":")[0]
            if source and not source.startswith((".", "/", "~")):
                used.add(source)
    assert used == declared, f"declared {sorted(declared)} vs used {sorted(used)}"
    assert "postgres-data" in declared and "ollama-models" in declared


def test_nginx_renders_the_template() -> None:
    nginx = services()["nginx"]
    mounts = [str(v) for v in nginx.get("volumes") or []]
    assert any(m.startswith("./nginx/harvis.conf.template:/etc/nginx/templates/") for m in mounts), mounts
    for m in mounts:
        source = m.split(":")[0]
        if source.startswith("./"):
            # A missing bind-mount source would be created as an empty directory.
            assert (COMPOSE_FILE.parent / source).exists(), f"nginx mounts {source}, which does not exist"
    env = service_env(nginx)
    core = by_name("core-api")
    assert env.get("CORE_API_UPSTREAM") == f"{core.name}:{core.port}"
    assert "FRONTEND_UPSTREAM" in env


def test_the_gpu_override_builds_and_runs_the_gpu_voice_image() -> None:
    """docker-compose.gpu.yaml (make up-gpu): voice-service's GPU variant, its own tag, the GPUs."""
    gpu_file = COMPOSE_FILE.with_name("docker-compose.gpu.yaml")
    proc = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(gpu_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    override = yaml.safe_load(gpu_file.read_text())["services"]
    assert set(override) == {"voice-service"}
    voice = override["voice-service"]
    assert voice["build"]["args"] == {"VOICE_VARIANT": "gpu"}
    assert voice["image"] == "harvis/voice-service-gpu:${HARVIS_VERSION:-dev}"  # what scripts/images.py tags
    devices = voice["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert voice["environment"]["VOICE_WHISPER_DEVICE"] == "cuda"
