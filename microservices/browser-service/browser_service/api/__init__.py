"""HTTP API of browser-service: /api/browser/* and /api/screen-analyze."""
