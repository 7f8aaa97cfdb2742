"""Where voice-service keeps state: generated audio files on disk (`files.py`) and the
durable TTS job queue in PostgreSQL (`jobs.py`, table voice_jobs: `migrations/`)."""
