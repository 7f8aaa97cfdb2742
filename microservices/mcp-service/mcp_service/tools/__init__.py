"""The tool families; each module's `register(registry)` adds its tools."""
