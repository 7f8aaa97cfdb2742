#!/usr/bin/env python3
"""Every image's size and what its venv weighs, as one Markdown table for docs/benchmarks.md.

    python3 bench/image_sizes.py            # builds the images first (make build), then measures
    python3 bench/image_sizes.py --no-build # measures what is built

Size: the engine's `image inspect` (uncompressed, all layers, the shared base included).
venv: `du` of /opt/venv inside the image (the service's site-packages and harvis_common).
base: the shared harvis/python-base every service image starts from (counted once on disk).
The seven services' images and the artifact-renderer's (core-api's rendering worker).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import images  # noqa: E402
from fleet_services import SERVICES  # noqa: E402

GOALS_MB = {"core-api": 200, "voice-service": 1200}
ALL_GOAL_MB = 3000


def size_mb(engine: images.Engine, image: str) -> float:
    out = engine.run("image", "inspect", image, capture=True).stdout
    return int(json.loads(out)[0]["Size"]) / 1e6


def venv_mb(engine: images.Engine, image: str) -> float:
    out = engine.run("run", "--rm", "--entrypoint", "du", image, "-sk", "/opt/venv", capture=True).stdout
    return int(out.split()[0]) / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["make", "build"], cwd=str(ROOT), check=True)
    engine = images.Engine.find()
    base = size_mb(engine, images.image_name("python-base"))
    rows, total = [], base
    names = [svc.name for svc in SERVICES] + [images.RENDERER]
    for name in names:
        image = images.image_name(name)
        size, venv = size_mb(engine, image), venv_mb(engine, image)
        total += size - base  # the base's layers are stored once
        goal = GOALS_MB.get(name)
        rows.append(f"| {image} | {size:,.0f} MB | {venv:,.0f} MB | {f'≤ {goal:,} MB' if goal else ''} |")
    print("| Image | Size | venv (site-packages) | Goal |\n|---|---|---|---|")
    print(f"| {images.image_name('python-base')} (shared base) | {base:,.0f} MB | — | |")
    print("\n".join(rows))
    print(f"| all {len(names)} on disk (base once) | {total:,.0f} MB | | ≤ {ALL_GOAL_MB:,} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
