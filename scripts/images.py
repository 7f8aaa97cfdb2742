#!/usr/bin/env python3
"""Build Harvis's images with whichever engine this machine has (docker or podman).

    python3 scripts/images.py build                 # the shared base, all seven services, the sandbox images
    python3 scripts/images.py build voice           # the base, then voice-service (`make build-voice`)
    python3 scripts/images.py build voice --variant gpu
    python3 scripts/images.py build sandbox         # only the sandbox images (`make build-sandbox`)
    python3 scripts/images.py sizes                 # each image's size, as a Markdown table

The shared part of every image is `harvis/python-base` (microservices/base/Dockerfile), built
first from `python:3.11-slim-bookworm`. The sandbox images `harvis/sandbox-<language>`
(microservices/sandbox/Dockerfile: what vibe-coding's docker backend runs users' code in) are
built from that same python image, tagged with the version and `latest` (the backend's default
VIBE_DOCKER_IMAGE). Where no registry is reachable (a private network,
this project's CI) the python image itself is made from Debian's packages with mmdebstrap
and imported, once: Debian's python3 is the same 3.11. pip inside the builds gets this
machine's CA bundle as the build secret `pip_ca` (never a layer of an image).

Environment: HARVIS_CONTAINER_ENGINE (docker|podman), HARVIS_VERSION (tag, default dev),
HARVIS_PYTHON_IMAGE (use this python image as is). Stdlib only, like the native runner.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICRO = ROOT / "microservices"
sys.path.insert(0, str(ROOT / "scripts"))

from fleet_services import SERVICES, Service  # noqa: E402

PYTHON_IMAGE = "python:3.11-slim-bookworm"
DEBIAN_PYTHON = "localhost/harvis/debian-python:bookworm"
DEBIAN_PACKAGES = "python3,ca-certificates"  # pip and venv: only in the build image
# crun refuses some hosts' hybrid cgroup layout and raising nofile isn't allowed everywhere:
# podman runs with runc and modest ulimits unless the user has their own containers.conf.
PODMAN_CONF = ROOT / "deploy" / "podman" / "containers.conf"
# What the tests need to build and run the images with podman (Debian), installed by the
# test runner: runc (see above), catatonit for `init: true`, the network plugins podman's
# setup wants even when containers use the host network, mmdebstrap for the python image.
CONTAINER_PACKAGES = ("podman", "runc", "catatonit", "containernetworking-plugins", "mmdebstrap")
# vibe-coding's languages (vibe_coding/sandbox/base.py), each a target of the sandbox Dockerfile.
SANDBOX_LANGUAGES = ("python", "node", "bash")
SANDBOX_DOCKERFILE = MICRO / "sandbox" / "Dockerfile"
# core-api's rendering worker in an image of its own (built with core-api's): the core-api
# image carries none of the rendering libraries.
RENDERER = "artifact-renderer"
RENDERER_DOCKERFILE = MICRO / "core-api" / "Dockerfile.renderer"
CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def say(msg: str) -> None:
    print(f"[images] {msg}", flush=True)


def tag() -> str:
    return os.environ.get("HARVIS_VERSION", "dev")


def image_name(name: str) -> str:
    return f"harvis/{name}:{tag()}"


class Engine:
    def __init__(self, name: str) -> None:
        self.name = name
        self.env = dict(os.environ)
        if name == "podman" and "CONTAINERS_CONF" not in self.env and shutil.which("runc"):
            self.env["CONTAINERS_CONF"] = str(PODMAN_CONF)

    @classmethod
    def find(cls) -> Engine:
        """The first engine that answers: a docker client without a daemon doesn't count."""
        wanted = os.environ.get("HARVIS_CONTAINER_ENGINE")
        for name in [wanted] if wanted else ["docker", "podman"]:
            if shutil.which(name):
                engine = cls(name)
                try:
                    if engine.run("info", check=False, capture=True, timeout=30).returncode == 0:
                        return engine
                except subprocess.TimeoutExpired:
                    pass
        sys.exit("images: no working container engine: install docker or podman (Debian: apt-get install podman runc)")

    def run(self, *args: str, check: bool = True, capture: bool = False, timeout: float | None = None):
        return subprocess.run(
            [self.name, *args], env=self.env, check=check, capture_output=capture, text=True, timeout=timeout
        )

    def exists(self, image: str) -> bool:
        return self.run("image", "inspect", image, check=False, capture=True).returncode == 0

    def build(self, dockerfile: Path, image: str, build_args: dict[str, str], target: str | None = None) -> None:
        args = ["build", "-f", str(dockerfile), "-t", image, *(["--target", target] if target else [])]
        if self.name == "podman":
            # Docker's image format keeps HEALTHCHECK (OCI drops it); host network: the build's
            # pip and apt reach the registries the way this machine does.
            args += ["--format", "docker", "--network", "host"]
        bundle = next((b for b in (os.environ.get("PIP_CERT"), *CA_BUNDLES) if b and Path(b).is_file()), None)
        if bundle:
            args += ["--secret", f"id=pip_ca,src={bundle}"]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        self.run(*args, str(MICRO))


def python_image(engine: Engine) -> str:
    """The image the base starts from: the official one if it is here or can be pulled,
    else one made from Debian's packages (built once, then reused)."""
    if os.environ.get("HARVIS_PYTHON_IMAGE"):
        return os.environ["HARVIS_PYTHON_IMAGE"]
    for image in (PYTHON_IMAGE, DEBIAN_PYTHON):
        if engine.exists(image):
            return image
    try:
        if engine.run("pull", PYTHON_IMAGE, check=False, capture=True, timeout=180).returncode == 0:
            return PYTHON_IMAGE
    except subprocess.TimeoutExpired:
        pass
    say(f"{PYTHON_IMAGE} can't be pulled: making {DEBIAN_PYTHON} from Debian's packages (mmdebstrap)")
    if not shutil.which("mmdebstrap"):
        subprocess.run(["apt-get", "install", "-y", "-q", "mmdebstrap"], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        tar = Path(tmp) / "python.tar"
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                # merged /usr without the usrmerge package (and the perl it needs)
                "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
                f"--include={DEBIAN_PACKAGES}",
                # What the official slim image leaves out too: documentation, manuals, translations.
                *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale")),
                "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                "--aptopt=APT::Install-Recommends false",
                "bookworm",
                str(tar),
            ],
            check=True,
        )
        engine.run("import", str(tar), DEBIAN_PYTHON, capture=True)
    return DEBIAN_PYTHON


def sandbox_images(language: str) -> list[str]:
    """The tags of one sandbox image: the version's, and `latest`, which VIBE_DOCKER_IMAGE names."""
    return [image_name(f"sandbox-{language}"), f"harvis/sandbox-{language}:latest"]


def build_sandboxes(engine: Engine, python: str) -> None:
    for language in SANDBOX_LANGUAGES:
        image, *more = sandbox_images(language)
        say(f"building {image}")
        engine.build(SANDBOX_DOCKERFILE, image, {"PYTHON_IMAGE": python}, target=language)
        for other in more:
            engine.run("tag", image, other)


def build_base(engine: Engine, python: str) -> dict[str, str]:
    """The two shared images; returns the build args that point a service's stages at them."""
    args = {}
    for target, name, arg in (("runtime", "python-base", "BASE_IMAGE"), ("build", "python-build", "BUILD_IMAGE")):
        say(f"building {image_name(name)}")
        engine.build(MICRO / "base" / "Dockerfile", image_name(name), {"PYTHON_IMAGE": python}, target=target)
        args[arg] = image_name(name)
    return args


def resolve(names: list[str]) -> list[Service]:
    """Service names or their short forms (`voice`, `core`, `n8n`)."""
    out = []
    for name in names:
        found = [s for s in SERVICES if s.name == name or s.name.split("-")[0] == name]
        if len(found) != 1:
            sys.exit(f"images: no service {name!r} (one of {', '.join(s.name for s in SERVICES)})")
        out.append(found[0])
    return out or list(SERVICES)


def build(names: list[str], variant: str) -> None:
    """`names` empty: everything; `sandbox` among them: the sandbox images too."""
    engine = Engine.find()
    python = python_image(engine)
    sandboxes = not names or "sandbox" in names
    services = [n for n in names if n != "sandbox"]
    if names and not services:
        build_sandboxes(engine, python)
        return
    base = build_base(engine, python)
    for svc in resolve(services):
        args, name = dict(base), svc.name
        if svc.name == "voice-service":
            args["VOICE_VARIANT"] = variant
            if variant == "gpu":
                name = "voice-service-gpu"  # docker-compose.gpu.yaml's image; the CPU one stays
        say(f"building {image_name(name)}")
        engine.build(MICRO / svc.directory / "Dockerfile", image_name(name), args)
        if svc.name == "core-api":
            say(f"building {image_name(RENDERER)}")
            engine.build(RENDERER_DOCKERFILE, image_name(RENDERER), base)
    if sandboxes:
        build_sandboxes(engine, python)


def sizes() -> dict[str, int]:
    engine = Engine.find()
    out = {}
    names = [svc.name for svc in SERVICES] + [RENDERER] + [f"sandbox-{lang}" for lang in SANDBOX_LANGUAGES]
    for name in names:
        proc = engine.run("image", "inspect", image_name(name), check=False, capture=True)
        if proc.returncode == 0:
            out[name] = int(json.loads(proc.stdout)[0]["Size"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the base and the named services (default: all, and the sandbox images)")
    b.add_argument("services", nargs="*")
    b.add_argument("--variant", choices=("cpu", "gpu"), default=os.environ.get("VOICE_VARIANT", "cpu"))
    sub.add_parser("sizes", help="image sizes as a Markdown table")
    args = parser.parse_args()
    if args.cmd == "build":
        build(args.services, args.variant)
    else:
        found = sizes()
        print("| Image | Size |\n|---|---|")
        for name, size in found.items():
            print(f"| {image_name(name)} | {size / 1e6:,.0f} MB |")
        print(f"| all {len(found)} | {sum(found.values()) / 1e6:,.0f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
