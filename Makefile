# Harvis: `make dev` runs the fleet natively, `make test` runs every test.
# Both install what they need (venvs in ~/.cache/harvis, nginx from Debian).
PY ?= python3
COMPOSE ?= docker compose

.PHONY: dev setup test lint bench up down logs build \
        build-core build-research build-voice build-browser build-mcp build-n8n build-vibe

dev:            ## run every service natively behind nginx on :9000
	$(PY) scripts/fleet.py dev

setup:          ## install venvs and system packages without starting anything
	$(PY) scripts/fleet.py setup

test:           ## lint, static checks, unit tests per service, end-to-end through nginx
	$(PY) scripts/fleet.py test

lint:
	$(PY) scripts/fleet.py test lint

bench:          ## gateway throughput and per-service install footprint (see docs/benchmarks.md)
	$(PY) scripts/fleet.py bench

up:             ## the fleet in Docker (needs a Docker engine and a .env)
	$(COMPOSE) up -d --build

down:
	$(COMPOSE) down

logs:
	$(COMPOSE) logs -f --tail=200

build:
	$(COMPOSE) build

build-core:
	$(COMPOSE) build core-api
build-research:
	$(COMPOSE) build research-service
build-voice:
	$(COMPOSE) build voice-service
build-browser:
	$(COMPOSE) build browser-service
build-mcp:
	$(COMPOSE) build mcp-service
build-n8n:
	$(COMPOSE) build n8n-integration
build-vibe:
	$(COMPOSE) build vibe-coding
