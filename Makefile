# Harvis: `make dev` runs the fleet natively, `make test` runs every test.
# Both install what they need (venvs in ~/.cache/harvis, nginx from Debian).
PY ?= python3
COMPOSE ?= docker compose

# build-<service> goes through the pattern rule below (a phony target would skip it).
.PHONY: dev setup test lint bench up up-gpu down logs build

dev:            ## run every service natively behind nginx on :9000
	$(PY) scripts/fleet.py dev

setup:          ## install venvs and system packages without starting anything
	$(PY) scripts/fleet.py setup

test:           ## lint, static checks, unit tests per service, end-to-end through nginx
	$(PY) scripts/fleet.py test

lint:
	$(PY) scripts/fleet.py test lint

bench:          ## the self-contained benchmarks: gateway, MCP, sandboxes, browser, footprint, memory (docs/benchmarks.md)
	$(PY) scripts/fleet.py bench

up: build       ## the fleet in containers (docker or podman; needs a .env, see README)
	$(COMPOSE) up -d

up-gpu: build   ## the same with the GPU voice image (NVIDIA GPU and container toolkit)
	$(PY) scripts/images.py build voice --variant gpu
	$(COMPOSE) -f docker-compose.yaml -f docker-compose.gpu.yaml up -d

down:
	$(COMPOSE) down

logs:
	$(COMPOSE) logs -f --tail=200

# Images: the shared base (microservices/base/Dockerfile) first, then the service(s), with
# whichever engine is here (scripts/images.py), and the docker sandbox backend's images
# harvis/sandbox-<language> (microservices/sandbox/Dockerfile). build-voice VOICE_VARIANT=gpu: the GPU image.
build:          ## build every image (the seven services, the artifact-renderer, the sandbox images)
	$(PY) scripts/images.py build

build-%:        ## build one image: build-core, build-research, build-voice, build-browser, build-mcp, build-n8n, build-vibe; build-sandbox: the sandbox images
	$(PY) scripts/images.py build $*
