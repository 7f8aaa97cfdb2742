"""voice-service's HTTP API: its routes, their request models and what they depend on."""
