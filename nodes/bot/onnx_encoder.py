"""all-MiniLM-L6-v2 on ONNX Runtime: a graph built from the safetensors weights at start, no export, no torch.

The graph is BERT in ONNX Runtime's fused CPU kernels (`Attention`, `SkipLayerNormalization`, `BiasGelu`
from its com.microsoft domain) plus the mean pooling and L2 normalization of sentence-transformers, so one
short question is about twice as fast as the numpy forward pass on one core. The weights go to the session
as arrays beside the graph (external initializers), not inside it: the graph is a few kilobytes, nothing
serializes 90 MB of protobuf, and building both takes a few tenths of a second (about what numpy takes to
get its weights ready), so nothing is cached on disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from safetensors.numpy import load_file

from .embedding import MiniLMEncoder, checked_model_dir

OPSET = 18
"""ai.onnx opset: LayerNormalization (17) and reductions that take their axes as an input (18)."""
IR_VERSION = 8
"""Pinned, not the onnx package's newest: onnxruntime refuses IR versions newer than it knows."""


class OnnxSentenceEncoder(MiniLMEncoder):
    """all-MiniLM-L6-v2's forward pass in one ONNX Runtime session on one thread."""

    def __init__(self, model_dir: Path | None = None) -> None:
        model_dir = checked_model_dir(model_dir)
        super().__init__(model_dir)
        graph, weights = minilm_graph(load_file(model_dir / "model.safetensors"), self.config)
        options = ort.SessionOptions()
        # One thread: each node is a process on a machine of few cores, and a second thread only
        # fights the other nodes for them (as OPENBLAS_NUM_THREADS=1 does for numpy).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The session copies them (and packs the matrices for its products): ours go once it is made.
        options.add_external_initializers(
            list(weights), [ort.OrtValue.ortvalue_from_numpy(a) for a in weights.values()]
        )
        self._session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.runtime = f"onnxruntime {ort.__version__}"

    def _forward(self, token_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self._session.run(None, {"input_ids": token_ids, "attention_mask": mask})[0]


def minilm_graph(weights: dict[str, np.ndarray], config: dict) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The model with its weights left out, and those weights (float32, laid out for the graph) by name.

    Inputs: input_ids (int64) and attention_mask (int32, 1 for a token, 0 for padding), both
    (batch, length); output: embedding (batch, hidden), mean-pooled over the tokens and L2-normalized.
    """
    w = {name: array.astype(np.float32, copy=False) for name, array in weights.items()}
    eps = float(config["layer_norm_eps"])
    graph = _GraphBuilder()
    x = _embeddings(graph, w, eps)
    for i in range(config["num_hidden_layers"]):
        x = _layer(graph, w, f"encoder.layer.{i}.", x, heads=config["num_attention_heads"], eps=eps)
    _mean_pooled_unit_vectors(graph, x, output="embedding")
    inputs = [helper.make_tensor_value_info(name, kind, ["batch", "length"])
              for name, kind in (("input_ids", TensorProto.INT64), ("attention_mask", TensorProto.INT32))]  # fmt: skip
    outputs = [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", config["hidden_size"]])]
    model = helper.make_model(
        helper.make_graph(graph.nodes, "all-MiniLM-L6-v2", inputs, outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)],
        ir_version=IR_VERSION,
    )
    return model, graph.weights


def _embeddings(graph: _GraphBuilder, w: dict[str, np.ndarray], eps: float) -> str:
    """Each token's word and position embeddings, summed and normalized."""
    # One sentence: token type 0 throughout, so its embedding joins the position table once, here.
    positions = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
    zero = graph.constant("zero", [0])
    length = graph.node("Shape", ["input_ids"], start=1, end=2)
    words = graph.node("Gather", [graph.weight("word", w["embeddings.word_embeddings.weight"]), "input_ids"])
    embedded = graph.node(
        "Add", [words, graph.node("Slice", [graph.weight("position", positions), zero, length, zero])]
    )
    return graph.node("LayerNormalization", [embedded, *graph.pair("embeddings.LayerNorm", w)], axis=-1, epsilon=eps)


def _layer(graph: _GraphBuilder, w: dict[str, np.ndarray], p: str, x: str, *, heads: int, eps: float) -> str:
    """One BERT layer: self-attention, then the feed-forward block, each added to its input and normalized."""
    qkv = [f"{p}attention.self.{part}" for part in ("query", "key", "value")]  # one product for all three
    qkv_weight = graph.weight(p + "qkv.weight", np.concatenate([w[name + ".weight"] for name in qkv]).T)
    qkv_bias = graph.weight(p + "qkv.bias", np.concatenate([w[name + ".bias"] for name in qkv]))
    context = graph.node("Attention", [x, qkv_weight, qkv_bias, "attention_mask"], com=True, num_heads=heads)
    x = graph.dense_residual_norm(context, x, p + "attention.output", w, eps)
    hidden = graph.node("MatMul", [x, graph.weight(p + "intermediate.weight", w[p + "intermediate.dense.weight"].T)])
    bias = graph.weight(p + "intermediate.bias", w[p + "intermediate.dense.bias"])
    hidden = graph.node("BiasGelu", [hidden, bias], com=True)  # BERT's exact (erf) GELU
    return graph.dense_residual_norm(hidden, x, p + "output", w, eps)


def _mean_pooled_unit_vectors(graph: _GraphBuilder, x: str, *, output: str) -> None:
    """The mean over the real tokens, then unit length: sentence-transformers' Pooling and Normalize."""
    node, const = graph.node, graph.constant
    mask = node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    tokens = const("token_axis", [1])
    masked = node("Mul", [x, node("Unsqueeze", [mask, const("hidden_axis", [2])])])
    count = node("Max", [node("ReduceSum", [mask, tokens], keepdims=1), const("tiny_count", 1e-9)])
    pooled = node("Div", [node("ReduceSum", [masked, tokens], keepdims=0), count])
    norm = node("Max", [node("ReduceL2", [pooled, tokens], keepdims=1), const("tiny_norm", 1e-12)])
    node("Div", [pooled, norm], output=output)


class _GraphBuilder:
    """Nodes in order, small constants inside the graph, weights outside it (handed to the session)."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.weights: dict[str, np.ndarray] = {}

    def node(self, op: str, inputs: list[str], *, output: str | None = None, com: bool = False, **attributes) -> str:
        """Add one node; its output's name."""
        output = output or f"{op.lower()}_{len(self.nodes)}"
        domain = "com.microsoft" if com else None
        self.nodes.append(helper.make_node(op, inputs, [output], domain=domain, **attributes))
        return output

    def constant(self, name: str, value: list[int] | float) -> str:
        if not any(t.name == name for t in self.initializers):
            array = np.array(value, dtype=np.int64 if isinstance(value, list) else np.float32)
            self.initializers.append(onnx.numpy_helper.from_array(array, name))
        return name

    def weight(self, name: str, array: np.ndarray) -> str:
        """A weight the graph names but does not hold: the array goes to the session beside it."""
        array = np.ascontiguousarray(array, dtype=np.float32)
        tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=array.shape)
        tensor.data_location = TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="in-memory")
        self.initializers.append(tensor)
        self.weights[name] = array
        return name

    def pair(self, name: str, w: dict[str, np.ndarray]) -> tuple[str, str]:
        return self.weight(name + ".weight", w[name + ".weight"]), self.weight(name + ".bias", w[name + ".bias"])

    def dense_residual_norm(self, x: str, residual: str, name: str, w: dict[str, np.ndarray], eps: float) -> str:
        """LayerNorm(x W + b + residual): BERT's block ending, a product and one fused kernel."""
        product = self.node("MatMul", [x, self.weight(name + ".weight", w[name + ".dense.weight"].T)])
        gamma, beta = self.pair(name + ".LayerNorm", w)
        bias = self.weight(name + ".bias", w[name + ".dense.bias"])
        return self.node("SkipLayerNormalization", [product, residual, gamma, beta, bias], com=True, epsilon=eps)
