"""Reading and writing ONNX files: external data, opset, and the input/output signature for the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

# protobuf refuses messages over 2 GiB; above this size weights go to a side file `<name>_data`
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def external_data_name(onnx_name: str) -> str:
    """The side file that holds the weights of a large model, e.g. 'model.onnx' -> 'model.onnx_data'."""
    return f"{onnx_name}_data"


def needs_external_data(model: Any) -> bool:
    """Whether a ModelProto is too large for a single protobuf file."""
    try:
        return model.ByteSize() > EXTERNAL_DATA_THRESHOLD
    except (ValueError, OverflowError):  # protobuf cannot even size a message past 2 GiB
        return True


def save_model(model: Any, path: Path) -> list[Path]:
    """Save a ModelProto, putting weights in a side file when it is too large; return the files written."""
    import onnx

    if needs_external_data(model):
        data = external_data_name(path.name)
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data)
        return [path, path.with_name(data)]
    onnx.save_model(model, str(path))
    return [path]


def place_graph(chosen: Path, target: Path) -> None:
    """Put a graph at `target`: moved as it is, or re-saved when its weights live in a side file (so the side file
    gets the target's name)."""
    import shutil

    if side_files(chosen):
        import onnx

        save_model(onnx.load(str(chosen)), target)
    else:
        shutil.move(str(chosen), str(target))


def _tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def side_files(path: Path) -> list[Path]:
    """The external-data files an ONNX file refers to (empty for a self-contained file)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names = set()
    for tensor in _tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            names.update(entry.value for entry in tensor.external_data if entry.key == "location")
    return [path.with_name(name) for name in sorted(names)]


def opset(path: Path) -> int:
    """The default-domain opset an ONNX file was written with."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ValueError(f"{path} declares no default-domain opset.")


def _value_info(value: Any) -> dict[str, Any]:
    import onnx

    tensor = value.type.tensor_type
    try:
        type_name = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
    except (KeyError, ValueError, TypeError):
        type_name = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
    shape: list[Any] = []
    for dim in tensor.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(int(dim.dim_value))
        else:
            shape.append(dim.dim_param or None)
    return {"name": value.name, "type": type_name, "shape": shape}


def signature(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The graph's inputs and outputs as {"inputs": [{name, type, shape}], "outputs": [...]}."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    return {
        "inputs": [_value_info(v) for v in graph.input if v.name not in initializers],
        "outputs": [_value_info(v) for v in graph.output],
    }
