"""Canonical weights: one framework-neutral format for the PyTorch, TensorFlow and Keras models.

Every algorithm in the book exists three times. To check that the three agree we load the *same*
weights into each and compare outputs; to move a trained model between frameworks a reader
exports it from one and loads it into another. Both go through one format.

**Canonical weights** are a ``dict[str, np.ndarray]``. A name is ``<layer path>.<param>``:

- the layer path is the chain of attribute names that leads from the model to the layer, with
  list (``nn.ModuleList``, ``nn.Sequential``, Python list) positions as numbers and dict keys as
  themselves, exactly what ``torch.nn.Module.named_modules()`` yields: ``blocks.0.conv``;
- the param is ``kernel``/``bias`` (conv, dense), ``gamma``/``beta`` (BatchNorm, LayerNorm),
  ``moving_mean``/``moving_variance`` (BatchNorm's running statistics, which are saved too:
  without them a model evaluated in inference mode would behave differently), or
  ``kernel``/``recurrent_kernel``/``bias`` (LSTM). A bidirectional LSTM has two sets, under
  ``<path>.forward`` and ``<path>.backward``.

So a PyTorch model and a Keras model whose attributes have the same names give the same names.

**Layouts are TensorFlow's**, because two of the three frameworks already use them:

=========================  ===========================  ==================================
layer                      canonical (TF, Keras)         PyTorch
=========================  ===========================  ==================================
conv kernel                ``(kh, kw, in, out)``         ``weight`` ``(out, in, kh, kw)``
dense kernel               ``(in, out)``                 ``weight`` ``(out, in)``
BatchNorm, LayerNorm       ``(C,)``                      ``(C,)``, named weight/bias/running_*
LSTM kernel                ``(in, 4H)``                  ``weight_ih`` ``(4H, in)``
LSTM recurrent_kernel      ``(H, 4H)``                   ``weight_hh`` ``(4H, H)``
LSTM bias                  ``(4H,)``                     ``bias_ih + bias_hh``
=========================  ===========================  ==================================

PyTorch stores a layer's weight output-first because it computes ``x @ W.T``; TensorFlow
computes ``x @ W``. The numbers are the same, only transposed, so the converters transpose.

**LSTMs** (``nn.LSTM`` with one layer, ``nn.LSTMCell``; ``keras.layers.LSTM``, ``LSTMCell``,
``Bidirectional``; ``common.tf_layers.LSTMCell``, ``BidirectionalLSTM``): all three order the
four gate blocks of the 4H axis the same way, input, forget, cell candidate, output. PyTorch
adds two biases, ``bias_ih + bias_hh``, where TensorFlow and Keras have one; only their sum ever
enters the gates, so the sum is exported, and importing sets ``bias_ih = bias, bias_hh = 0``: the
same function. (Its gradient is the gradient of either bias: both enter the same sum.)

**Flatten order.** A conv net ends with a map of C channels of H x W and flattens it into the
dense head. PyTorch's map is NCHW, so its flatten lists features in (C, H, W) order; TensorFlow's
is NHWC, giving (H, W, C). The dense kernel's input rows follow that order, so when a PyTorch
``nn.Linear`` reads a flattened conv map, ``nchw_flatten={"head": (C, H, W)}`` tells the
converters to permute its rows, and canonical kernels are always in (H, W, C) order. On
Omniglot's 28x28 Conv-4 the final map is 1x1x64 and both orders coincide; on mini-ImageNet's
84x84 it is 5x5x64 and forgetting the permutation silently gives a different network.

Loading is strict: a name the model lacks, a name the weights lack, or a shape that differs
raises :class:`common.errors.ConfigError` listing them; the model keeps its own dtype. Layers
this module knows nothing about are refused rather than skipped. Parameters you declare yourself
(a learned temperature, a per-step learning rate: an ``nn.Parameter``, ``tf.Variable`` or
``keras.Variable`` set as an attribute of your own module) are saved unchanged under their
attribute name; their layout is whatever you declared.

No framework is imported until a converter for it is called.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from common.errors import ConfigError, CorruptDataError
from common.files import write_with

FRAMEWORKS = ("torch", "tf", "keras")
_METADATA_KEY = "__metadata__"


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def save_weights(path, weights: Mapping[str, np.ndarray], metadata: dict | None = None) -> None:
    """Write ``weights`` (and JSON-serialisable ``metadata``) to one ``.npz`` file at ``path``.

    The file is written under a temporary name and renamed into place, so a crash mid-write
    never leaves a truncated file where a good one was.
    """
    arrays = {name: np.asarray(value) for name, value in weights.items()}
    if _METADATA_KEY in arrays:
        raise ConfigError(f"{_METADATA_KEY!r} is reserved for the metadata; rename that weight.")
    try:
        arrays[_METADATA_KEY] = np.array(json.dumps(metadata or {}, sort_keys=True))
    except TypeError as err:
        raise ConfigError(f"Weights metadata must be JSON-serialisable (str, numbers, lists, "
                          f"dicts): {err}.") from None
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_with(path, lambda f: np.savez(f, **arrays))  # all or nothing: never a half-written checkpoint


def load_weights(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_weights`: ``(weights, metadata)``, dtypes as saved.

    ``metadata`` is ``{}`` when none was saved; being JSON, tuples come back as lists.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            weights = {name: data[name] for name in data.files if name != _METADATA_KEY}
            metadata = (json.loads(str(data[_METADATA_KEY]))
                        if _METADATA_KEY in data.files else {})
    except FileNotFoundError:
        raise ConfigError(f"No weights file at {path}: check the path, or train the model "
                          f"first so that it saves one.") from None
    except (PermissionError, IsADirectoryError):
        raise  # the operating system's message says it best
    except Exception as err:  # not a zip, truncated, a bare .npy, bad JSON, ...
        raise CorruptDataError(f"{path} is not a weights file written by save_weights "
                               f"({type(err).__name__}: {err}); delete it and save again."
                               ) from None
    return weights, metadata


# A learner's state (its checkpoint) holds its model's canonical weights under this prefix, beside
# the optimizer's slots ("optimizer.<index>.<slot>") and its own counters: "model.blocks.0.conv.kernel".
MODEL_PREFIX = "model."


def model_state(weights: Mapping[str, Any], prefix: str = MODEL_PREFIX) -> dict:
    """A model's canonical weights as entries of a learner's state: ``model.<name>`` (or another
    prefix, for a learner whose trained network has another name: ``meta_learner.<name>``)."""
    return {prefix + name: value for name, value in weights.items()}


def model_weights(state: Mapping[str, Any], prefix: str = MODEL_PREFIX) -> dict:
    """The model's canonical weights out of a learner's state (its ``model.<name>`` entries, or
    those under ``prefix``)."""
    return {name[len(prefix):]: value for name, value in state.items() if name.startswith(prefix)}


# --------------------------------------------------------------------------------------------
# The shared machinery: a model is a list of slots, one per canonical name.
# --------------------------------------------------------------------------------------------


@dataclass
class _Slot:
    """One canonical entry of a live model: its name and shape, and how to read and write it."""

    name: str
    shape: tuple
    get: Callable[[], np.ndarray]  # -> a fresh canonical-layout copy
    set: Callable[[np.ndarray], None]  # canonical-layout array -> the model, in its dtype
    variable: Any = None  # the tensor or variable behind it
    layout: Callable[[np.ndarray], np.ndarray] = lambda a: a  # framework layout -> canonical


def _export(slots: list[_Slot]) -> dict[str, np.ndarray]:
    return {slot.name: slot.get() for slot in slots}


def _import(weights: Mapping[str, Any], slots: list[_Slot], model, framework: str) -> None:
    """Check every name and shape first, then write: a failed load leaves the model untouched."""
    expected = {slot.name: slot.shape for slot in slots}
    given = {name: tuple(np.shape(value)) for name, value in weights.items()}
    missing = [f"{n} {s}" for n, s in expected.items() if n not in given]
    extra = [f"{n} {s}" for n, s in given.items() if n not in expected]
    wrong = [f"{n}: weights {given[n]}, model {s}" for n, s in expected.items()
             if n in given and given[n] != s]
    if missing or extra or wrong:
        parts = [f"These weights do not fit the {framework} model {type(model).__name__}."]
        if missing:
            parts.append(f"In the model but not in the weights: {_listing(missing)}.")
        if extra:
            parts.append(f"In the weights but not in the model: {_listing(extra)}.")
        if wrong:
            parts.append(f"Shapes differ: {_listing(wrong)}.")
        parts.append("The weights were probably saved from another architecture or with other "
                     "settings (layer sizes, number of ways, image size): build the model with "
                     "the settings they were saved with (see the metadata load_weights returns), "
                     "or name the model's layers as the saving model did.")
        raise ConfigError(" ".join(parts))
    for slot in slots:
        slot.set(np.asarray(weights[slot.name]))


def _listing(items: list[str], limit: int = 12) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _members(obj):
    """``(name, value)`` for an object's public attributes, in the order they were set.

    Lists, tuples and dicts are opened up, their items named ``attr.0``, ``attr.1``, ``attr.key``
    as ``torch.nn.ModuleList``/``ModuleDict`` name theirs.
    """
    for name, value in vars(obj).items():
        if not name.startswith("_"):
            yield from _flatten(name, value)


def _flatten(name, value):
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _flatten(f"{name}.{i}", item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(f"{name}.{key}", item)
    else:
        yield name, value


def _named_nodes(root, children):
    """``(path, node)`` for root and everything below it, depth first, each node once.

    The same order and the same first-path-wins rule for shared layers as torch's
    ``named_modules()``.
    """
    seen = set()

    def visit(path, node):
        if id(node) in seen:
            return
        seen.add(id(node))
        yield path, node
        for name, child in children(node):
            yield from visit(_join(path, name), child)

    yield from visit("", root)


def _require_complete(slots, variables, model, framework):
    """Refuse to export or load a model part of whose trainable weights no name reaches."""
    covered = {id(slot.variable) for slot in slots}
    lost = [getattr(v, "path", None) or v.name for v in variables if id(v) not in covered]
    if lost:
        raise ConfigError(
            f"The {framework} model {type(model).__name__} has trainable variables that no "
            f"attribute path reaches: {_listing(lost)}. Keep every layer and variable in a "
            f"public attribute (or a list or dict in one) so it gets a canonical name.")


# --------------------------------------------------------------------------------------------
# PyTorch: transpose conv and linear weights; rename the normalisation parameters.
# --------------------------------------------------------------------------------------------


def _torch_slots(module, nchw_flatten) -> list[_Slot]:
    import torch
    from torch import nn

    nchw_flatten = dict(nchw_flatten or {})
    modules = dict(module.named_modules())
    not_linear = [name for name in nchw_flatten if not isinstance(modules.get(name), nn.Linear)]
    if not_linear:
        raise ConfigError(f"nchw_flatten names {not_linear}, which are not nn.Linear layers of "
                          f"{type(module).__name__}; its Linear layers are "
                          f"{[n for n, m in modules.items() if isinstance(m, nn.Linear)]}.")

    def slot(path, param, tensor, to=lambda a: a, back=lambda a: a):
        # ``to`` maps a torch-layout array to the canonical layout, ``back`` undoes it. The
        # canonical shape is that of ``to`` applied to an uninitialised array of torch's shape.
        def get():
            return np.array(to(tensor.detach().cpu().numpy()), copy=True, order="C")

        def put(array):
            with torch.no_grad():  # copy_ casts to the model's dtype and device
                tensor.copy_(torch.from_numpy(np.array(back(array), copy=True, order="C")))

        shape = to(np.empty(tuple(tensor.shape), dtype=np.uint8)).shape
        return _Slot(_join(path, param), tuple(shape), get, put, tensor, to)

    transposes = (lambda w: w.T), (lambda k: k.T)  # LSTM weights: (4H, in) <-> (in, 4H)

    def lstm_slots(path, m):
        # nn.LSTMCell names its tensors weight_ih, ...; nn.LSTM adds the layer, "_l0", and
        # "_l0_reverse" for the backward direction, which gets the canonical path.backward.
        if isinstance(m, nn.LSTM) and (m.num_layers != 1 or m.proj_size):
            raise ConfigError(f"{path or 'The model'} is an nn.LSTM with num_layers="
                              f"{m.num_layers}, proj_size={m.proj_size}; common.weights converts "
                              f"one-layer LSTMs without projection only (stack them instead).")
        if isinstance(m, nn.LSTMCell):
            directions = {path: ""}
        elif m.bidirectional:
            directions = {_join(path, "forward"): "_l0", _join(path, "backward"): "_l0_reverse"}
        else:
            directions = {path: "_l0"}
        out = []
        for prefix, suffix in directions.items():
            out.append(slot(prefix, "kernel", getattr(m, "weight_ih" + suffix), *transposes))
            out.append(slot(prefix, "recurrent_kernel", getattr(m, "weight_hh" + suffix), *transposes))
            if m.bias:
                out.append(lstm_bias(prefix, getattr(m, "bias_ih" + suffix), getattr(m, "bias_hh" + suffix)))
        return out

    def lstm_bias(path, bias_ih, bias_hh):
        # Export the sum, the one bias the gates see; import it as bias_ih = bias, bias_hh = 0.
        def get():
            return (bias_ih.detach() + bias_hh.detach()).cpu().numpy().copy()

        def put(array):
            with torch.no_grad():
                bias_ih.copy_(torch.from_numpy(np.array(array, copy=True)))
                bias_hh.zero_()

        return _Slot(_join(path, "bias"), tuple(bias_ih.shape), get, put, bias_ih)

    def conv_kernel(w):  # (out, in, kh, kw) -> (kh, kw, in, out)
        return w.transpose(2, 3, 1, 0)

    def conv_weight(k):  # (kh, kw, in, out) -> (out, in, kh, kw)
        return k.transpose(3, 2, 0, 1)

    def linear_layouts(path, layer):
        if path not in nchw_flatten:
            return (lambda w: w.T), (lambda k: k.T)
        c, h, w = nchw_flatten[path]
        out = layer.out_features
        if c * h * w != layer.in_features:
            raise ConfigError(f"nchw_flatten[{path!r}] = {(c, h, w)} has {c * h * w} features "
                              f"but that Linear layer reads {layer.in_features}.")

        def to(weight):  # (out, C*H*W) -> (out, C, H, W) -> (out, H, W, C) -> (H*W*C, out)
            return weight.reshape(out, c, h, w).transpose(0, 2, 3, 1).reshape(out, -1).T

        def back(kernel):  # (H*W*C, out) -> (out, H, W, C) -> (out, C, H, W) -> (out, C*H*W)
            return kernel.T.reshape(out, h, w, c).transpose(0, 3, 1, 2).reshape(out, -1)

        return to, back

    norms = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
             "running_var": "moving_variance"}
    batch_norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    slots = []
    for path, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            slots.append(slot(path, "kernel", m.weight, conv_kernel, conv_weight))
            if m.bias is not None:
                slots.append(slot(path, "bias", m.bias))
        elif isinstance(m, nn.Linear):
            slots.append(slot(path, "kernel", m.weight, *linear_layouts(path, m)))
            if m.bias is not None:
                slots.append(slot(path, "bias", m.bias))
        elif isinstance(m, (nn.LSTM, nn.LSTMCell)):
            slots.extend(lstm_slots(path, m))
        elif isinstance(m, (*batch_norms, nn.LayerNorm)):
            # Absent with affine=False / track_running_stats=False; num_batches_tracked is
            # bookkeeping for momentum=None and has no counterpart in TF or Keras.
            for attr, param in norms.items():
                if getattr(m, attr, None) is not None:
                    slots.append(slot(path, param, getattr(m, attr)))
        else:
            own = list(m.named_parameters(recurse=False))
            builtin = type(m).__module__.startswith("torch.")
            if own and builtin and not isinstance(m, (nn.ParameterList, nn.ParameterDict)):
                raise ConfigError(f"{path or 'The model'} is a {type(m).__name__}, which has no "
                                  f"canonical layout in common.weights; add a converter there.")
            slots.extend(slot(path, name, p) for name, p in own)
    return slots


# --------------------------------------------------------------------------------------------
# TensorFlow: common.tf_layers already use canonical names and layouts; every tf.Variable held
# in a public attribute is a slot, named by its attribute path.
# --------------------------------------------------------------------------------------------


def _tf_slots(module) -> list[_Slot]:
    import tensorflow as tf

    def children(m):
        return [(name, v) for name, v in _members(m) if isinstance(v, tf.Module)]

    def slot(name, var):
        def put(array):
            var.assign(np.asarray(array, dtype=var.dtype.as_numpy_dtype))

        return _Slot(name, tuple(var.shape), lambda: np.array(var.numpy(), copy=True), put,
                        variable=var)

    slots, seen = [], set()
    for path, m in _named_nodes(module, children):
        for name, v in _members(m):
            if isinstance(v, tf.Variable) and id(v) not in seen:
                seen.add(id(v))
                slots.append(slot(_join(path, name), v))
    _require_complete(slots, module.trainable_variables, module, "tf")
    return slots


# --------------------------------------------------------------------------------------------
# Keras 3: layouts and variable names are already canonical; only the paths need building.
# --------------------------------------------------------------------------------------------


def _keras_slots(model) -> list[_Slot]:
    import keras

    leaf_types = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.BatchNormalization,
                  keras.layers.LayerNormalization)
    lstm_types = (keras.layers.LSTM, keras.layers.LSTMCell)  # an LSTM layer keeps its weights in .cell

    def builtin(layer):
        return type(layer).__module__.startswith("keras.")

    def children(layer):
        if isinstance(layer, keras.layers.Bidirectional):  # the directions, named as in PyTorch
            return [("forward", layer.forward_layer), ("backward", layer.backward_layer)]
        if isinstance(layer, keras.Sequential):  # named by position, as nn.Sequential
            return [(str(i), sub) for i, sub in enumerate(layer.layers)]
        if isinstance(layer, keras.Model) and builtin(layer):  # functional: by layer name
            return [(sub.name, sub) for sub in layer.layers]
        if isinstance(layer, leaf_types + lstm_types):
            return []
        return [(name, v) for name, v in _members(layer) if isinstance(v, keras.layers.Layer)]

    def slot(name, var):
        def get():
            return np.array(keras.ops.convert_to_numpy(var.value), copy=True)

        def put(array):
            var.assign(np.asarray(array, dtype=var.dtype))

        return _Slot(name, tuple(var.shape), get, put, variable=var)

    slots = []
    for path, layer in _named_nodes(model, children):
        if isinstance(layer, leaf_types + lstm_types) and not layer.built:
            raise ConfigError(f"Keras layer {path or type(layer).__name__} has no weights "
                              f"yet: call the model once on a batch (or build() it) first.")
        if isinstance(layer, leaf_types):
            slots.extend(slot(_join(path, v.name), v) for v in layer.weights)
        elif isinstance(layer, lstm_types):
            cell = getattr(layer, "cell", layer)
            slots.extend(slot(_join(path, name), getattr(cell, name))
                         for name in ("kernel", "recurrent_kernel", "bias")
                         if getattr(cell, name, None) is not None)
        elif isinstance(layer, keras.layers.Bidirectional):
            pass  # no weights of its own: its two directions are visited as children
        elif builtin(layer) and not isinstance(layer, keras.Model) and layer.weights:
            raise ConfigError(f"{path or 'The model'} is a keras {type(layer).__name__}, which "
                              f"has no canonical layout in common.weights; add a converter there.")
        elif not builtin(layer):
            slots.extend(slot(_join(path, name), v) for name, v in _members(layer)
                         if isinstance(v, keras.Variable))
    _require_complete(slots, model.trainable_weights, model, "keras")
    return slots


# --------------------------------------------------------------------------------------------
# The entry points: a model of any framework, named by the framework.
# --------------------------------------------------------------------------------------------


def _framework(framework: str) -> str:
    if framework not in FRAMEWORKS:
        raise ConfigError(f"Unknown framework {framework!r}; use one of {', '.join(FRAMEWORKS)}.")
    return framework


def _slots(model, framework: str, nchw_flatten: Mapping[str, tuple] | None = None) -> list[_Slot]:
    if _framework(framework) == "torch":
        return _torch_slots(model, nchw_flatten)
    return _tf_slots(model) if framework == "tf" else _keras_slots(model)


def to_canonical(model, framework: str, nchw_flatten: Mapping[str, tuple] | None = None) -> dict[str, np.ndarray]:
    """Canonical weights of a ``framework`` model (copies, in the model's dtype): a
    ``torch.nn.Module``, a ``tf.Module`` tree built from ``common.tf_layers``, or a Keras 3 model or
    layer (built: its variables must exist).

    PyTorch only: ``nchw_flatten={"head": (C, H, W)}`` names the ``nn.Linear`` layers that read a
    flattened NCHW feature map, so their kernels come out in canonical (H, W, C) row order.
    """
    return _export(_slots(model, framework, nchw_flatten))


def from_canonical(weights, model, framework: str, nchw_flatten: Mapping[str, tuple] | None = None):
    """Load canonical weights into a ``framework`` model in place (``nchw_flatten`` as in
    :func:`to_canonical`); returns the model."""
    _import(weights, _slots(model, framework, nchw_flatten), model, framework)
    return model


def gradients_to_canonical(model, framework: str, gradients=None,
                           nchw_flatten: Mapping[str, tuple] | None = None) -> dict[str, np.ndarray]:
    """Gradients under canonical names and layouts, to compare them across frameworks.

    PyTorch: each parameter's ``.grad`` (after ``backward()``). TensorFlow and Keras: pass
    ``gradients``, the ``(gradient, variable)`` pairs of a ``GradientTape``. Only variables that
    received a gradient appear.
    """
    slots = _slots(model, framework, nchw_flatten)
    if framework == "torch":
        found = {id(slot.variable): (slot, slot.variable.grad) for slot in slots}
    else:
        by_variable = {id(slot.variable): slot for slot in slots}
        found = {id(v): (by_variable[id(v)], g) for g, v in gradients if id(v) in by_variable}
    return {slot.name: np.array(slot.layout(np.asarray(grad.detach().numpy() if framework == "torch" else grad)))
            for slot, grad in found.values() if grad is not None}
