"""An analysed screen described by a vision model (harvis_common.llm), when
SCREEN_DESCRIBE_MODEL is set."""

from __future__ import annotations

import asyncio
import base64

from .settings import Settings

DESCRIBE_PROMPT = (
    "Describe this screenshot for someone who cannot see it: what application or page it shows, "
    "its main content, and the controls a user could act on. Be concise."
)


async def describe(settings: Settings, image: bytes) -> tuple[str | None, str | None]:
    """(description, None) or (None, reason): a failing model never fails the OCR."""
    from harvis_common.llm import LLMError, create_llm_client

    timeout = settings.screen_describe_timeout_s
    try:
        client = create_llm_client(
            settings.screen_describe_provider,
            settings.screen_describe_url,
            read_timeout_s=timeout,
            request_timeout_s=timeout,
        )
    except ValueError as exc:
        return None, str(exc)
    message = {"role": "user", "content": DESCRIBE_PROMPT, "images": [base64.b64encode(image).decode()]}
    try:
        result = await asyncio.wait_for(client.chat([message], settings.screen_describe_model), timeout)
        return result.content.strip() or None, None
    except LLMError as exc:
        return None, str(exc)
    except TimeoutError:
        return None, f"the vision model did not answer within {timeout:g} s"
    finally:
        await client.close()
