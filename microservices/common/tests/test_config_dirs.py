"""harvis_common.config.checkout_state_dir: a service's default state directory, in a
checkout and in an image (where the package sits at /app/<package>)."""

from __future__ import annotations

from pathlib import Path

from harvis_common.config import checkout_state_dir


def test_in_a_checkout_it_is_the_checkouts_dev_dir(tmp_path: Path) -> None:
    settings = tmp_path / "repo" / "microservices" / "voice-service" / "voice_service" / "settings.py"
    assert checkout_state_dir(str(settings), "voice-audio") == tmp_path / "repo" / ".dev" / "voice-audio"


def test_in_an_image_it_is_under_data_and_never_fails() -> None:
    # /app/voice_service/settings.py has three parents: the old parents[3] raised IndexError.
    assert checkout_state_dir("/app/voice_service/settings.py", "voice-audio") == Path("/data/voice-audio")
    assert checkout_state_dir("/settings.py", "x") == Path("/data/x")
