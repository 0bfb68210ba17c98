"""The trained Pipeline as one ONNX graph, preprocessing included, and how to feed it.

Both model families export to the same interface: one ``[rows, 1]`` input per feature
column (float32 for numerics, string for categories, NaN for a missing number) and two
outputs, ``label`` (int64) and ``probabilities`` (float32, ``[rows, 2]``). The serving
code builds its inputs with :func:`feeds_from_columns`, so training and serving share
one definition of the model's input and nothing is re-implemented in ``bentos/``.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.params import SchemaParams

if TYPE_CHECKING:  # the serving image needs neither: onnx and pandas are export-time only
    import onnx
    import pandas as pd

OPSET = {"": 17, "ai.onnx.ml": 3}
OUTPUT_LABEL = "label"
OUTPUT_PROBABILITIES = "probabilities"


def feeds_from_columns(
    columns: Mapping[str, Sequence[Any] | np.ndarray],
    numeric: Sequence[str],
    categorical: Sequence[str],
) -> dict[str, np.ndarray]:
    """Build ONNX Runtime inputs from column values.

    Args:
        columns: Values per feature column (``None``/NaN for a missing number).
        numeric: Numeric feature names.
        categorical: Categorical feature names.

    Returns:
        One ``[rows, 1]`` array per feature: float32 for numerics, str for categories.
    """
    feeds = {name: np.asarray(columns[name], dtype=np.float32).reshape(-1, 1) for name in numeric}
    for name in categorical:
        feeds[name] = np.asarray(columns[name], dtype=str).reshape(-1, 1)
    return feeds


def feeds_from_frame(frame: pd.DataFrame, schema: SchemaParams) -> dict[str, np.ndarray]:
    """ONNX Runtime inputs for the feature columns of a validated table."""
    columns = {name: frame[name].to_numpy() for name in schema.features}
    return feeds_from_columns(columns, schema.numeric_features, schema.categorical_features)


def _initial_types(schema: SchemaParams) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    return [(name, FloatTensorType([None, 1])) for name in schema.numeric_features] + [
        (name, StringTensorType([None, 1])) for name in schema.categorical_features
    ]


def _torch_classifier_onnx(classifier: Any, n_inputs: int) -> onnx.ModelProto:
    import onnx
    import torch

    class Head(torch.nn.Module):
        """Logit to the (label, probabilities) outputs of skl2onnx classifiers."""

        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module

        def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            positive = torch.sigmoid(self.module(features))
            probabilities = torch.stack([1.0 - positive, positive], dim=1)
            return (positive >= 0.5).to(torch.int64), probabilities

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the torch.export one, which
        # needs onnxscript; for a plain MLP both give the same graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Head(classifier.module_).eval(),
            (torch.zeros(2, n_inputs),),
            buffer,  # type: ignore[arg-type]  # file-like objects are accepted (torch docs)
            dynamo=False,
            input_names=["features"],
            output_names=[OUTPUT_LABEL, OUTPUT_PROBABILITIES],
            dynamic_axes={"features": {0: "rows"}, OUTPUT_LABEL: {0: "rows"}},
            opset_version=OPSET[""],
        )
    return onnx.load_model_from_string(buffer.getvalue())


def export_onnx(model: Any, schema: SchemaParams) -> onnx.ModelProto:
    """Convert a fitted ``Pipeline(preprocess -> classifier)`` to one ONNX graph.

    scikit-learn classifiers convert whole with skl2onnx. For the torch MLP, the
    preprocessor converts with skl2onnx, the MLP with ``torch.onnx``, and the two graphs
    are joined, so the preprocessing travels inside the model file.

    Args:
        model: The fitted pipeline from the train stage.
        schema: The ``data.schema`` section of params.yaml.

    Returns:
        The ONNX model.
    """
    import onnx
    from skl2onnx import to_onnx

    preprocess, classifier = model.named_steps["preprocess"], model.named_steps["classifier"]
    types = _initial_types(schema)
    if hasattr(classifier, "module_"):
        front = to_onnx(preprocess, initial_types=types, target_opset=OPSET)
        width = int(classifier.n_features_in_)
        back = _torch_classifier_onnx(classifier, width)
        back = onnx.compose.add_prefix(back, "mlp_", rename_inputs=False, rename_outputs=False)
        merged = onnx.compose.merge_models(
            front, back, io_map=[(front.graph.output[0].name, "features")]
        )
        onnx.checker.check_model(merged)
        return _canonical(merged)
    options = {id(classifier): {"zipmap": False}}
    converted: onnx.ModelProto = to_onnx(
        model, initial_types=types, options=options, target_opset=OPSET
    )
    return _canonical(converted)


def _canonical(model: onnx.ModelProto) -> onnx.ModelProto:
    """Sort the opset imports, which skl2onnx lists in set order.

    Their order follows Python's string hashing (``PYTHONHASHSEED``), so without this the
    same fitted model exported twice could give two files, two digests and two model
    versions.
    """
    opsets = sorted(model.opset_import, key=lambda opset: opset.domain)
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    return model


class OnnxClassifier:
    """An ONNX Runtime session over an exported model.

    Args:
        model: Serialized ONNX bytes or a path to the file.
        threads: Intra-op threads (default: the CPUs this process may use).
    """

    def __init__(self, model: bytes | str | os.PathLike[str], threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        source = model if isinstance(model, bytes) else os.fspath(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def predict_proba(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """Probability of the positive class per row.

        Args:
            feeds: Inputs from :func:`feeds_from_columns`.

        Returns:
            float64 probabilities, shape (rows,).
        """
        (probabilities,) = self.session.run([OUTPUT_PROBABILITIES], dict(feeds))
        return np.asarray(probabilities, dtype=np.float64)[:, 1]
