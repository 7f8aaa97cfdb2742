"""Screen analysis: Tesseract OCR (Debian's tesseract-ocr through pytesseract)
returning the text and each line's bounding box. Blocking: run it in a thread."""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

import pytesseract
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 40_000_000
# Small images (element crops, thumbnails) are enlarged 2x before OCR. Whole screens are not:
# on 1280-wide Chromium screenshots (11-40 px text) and rendered 10-13 px text, 2x took 1.4-2.3x
# the time and read no more lines exactly.
UPSCALE_BELOW_WIDTH = 800
_DATA_URL = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)


class ImageError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decode_base64_image(value: str, max_bytes: int) -> bytes:
    value = _DATA_URL.sub("", value.strip(), count=1)
    if len(value) > (max_bytes * 4) // 3 + 8:
        raise ImageError(413, f"image larger than {max_bytes} bytes")
    try:
        data = base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(400, "image is not valid base64") from exc
    if not data:
        raise ImageError(400, "image is empty")
    if len(data) > max_bytes:
        raise ImageError(413, f"image larger than {max_bytes} bytes")
    return data


def open_image(data: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(400, "not an image (PNG, JPEG, WebP, GIF or BMP expected)") from exc
    if img.width * img.height > MAX_PIXELS:
        raise ImageError(413, f"image has {img.width}x{img.height} pixels; at most {MAX_PIXELS} are accepted")
    try:
        img.load()
    except (OSError, Image.DecompressionBombError) as exc:
        raise ImageError(400, "the image could not be decoded") from exc
    return img


def analyze(data: bytes, lang: str = "eng", timeout_s: float = 60) -> dict[str, Any]:
    img = open_image(data)
    width, height = img.size
    gray = img.convert("L")
    scale = 2 if width < UPSCALE_BELOW_WIDTH else 1
    if scale != 1:
        gray = gray.resize((width * scale, height * scale), Image.Resampling.LANCZOS)
    try:
        raw = pytesseract.image_to_data(gray, lang=lang, output_type=pytesseract.Output.DICT, timeout=timeout_s)
    except RuntimeError as exc:  # pytesseract's timeout
        raise ImageError(504, f"OCR took longer than {timeout_s:g} s") from exc
    except pytesseract.TesseractError as exc:
        raise ImageError(400, f"OCR failed: {exc.message[:200]}") from exc

    lines: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
    for i, word in enumerate(raw["text"]):
        word = (word or "").strip()
        conf = float(raw["conf"][i])
        if not word or conf < 0:
            continue
        key = (raw["block_num"][i], raw["par_num"][i], raw["line_num"][i])
        lines.setdefault(key, []).append(
            {
                "text": word,
                "x": round(raw["left"][i] / scale),
                "y": round(raw["top"][i] / scale),
                "width": round(raw["width"][i] / scale),
                "height": round(raw["height"][i] / scale),
                "confidence": round(conf, 1),
            }
        )
    # Tesseract's layout analysis sometimes cuts one visual line into blocks ("Label:" | "value"):
    # a line fragment that starts just right of an earlier one on the same row joins it.
    merged: list[dict[str, Any]] = []
    for (block, _par, _line), words in sorted(lines.items()):
        box = _box(words)
        for prev in merged:
            overlap = min(prev["y1"], box["y1"]) - max(prev["y0"], box["y0"])
            gap = box["x0"] - prev["x1"]
            tall = max(prev["y1"] - prev["y0"], box["y1"] - box["y0"])
            if overlap >= 0.5 * min(prev["y1"] - prev["y0"], box["y1"] - box["y0"]) and 0 <= gap <= 2.5 * tall:
                prev["words"].extend(words)
                prev.update(_box(prev["words"]))
                break
        else:
            merged.append({"block": block, "words": list(words), **box})
    elements = []
    text_parts: list[str] = []
    last_block = None
    for line in merged:
        words = line["words"]
        line_text = " ".join(w["text"] for w in words)
        if last_block is not None and line["block"] != last_block:
            text_parts.append("")
        last_block = line["block"]
        text_parts.append(line_text)
        elements.append(
            {
                "type": "text_line",
                "text": line_text,
                "x": line["x0"],
                "y": line["y0"],
                "width": line["x1"] - line["x0"],
                "height": line["y1"] - line["y0"],
                "confidence": round(sum(w["confidence"] for w in words) / len(words), 1),
                "words": words,
            }
        )
    return {"text": "\n".join(text_parts), "elements": elements, "width": width, "height": height}


def _box(words: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "x0": min(w["x"] for w in words),
        "y0": min(w["y"] for w in words),
        "x1": max(w["x"] + w["width"] for w in words),
        "y1": max(w["y"] + w["height"] for w in words),
    }
