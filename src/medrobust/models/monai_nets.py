"""MONAI's networks as medrobust models: ``monai:<Name>`` builds the ``nn.Module`` class ``Name`` of
``monai.networks.nets`` (DenseNet121, EfficientNetBN, BasicUNet, DynUNet, SwinUNETR, ResNet, …).

MONAI (extra ``medrobust[monai]``) is imported only when such a name is built. The dataset's facts are passed
under the constructor's own argument names (:func:`data_arguments`): spatial dimensions, input channels, number of
outputs and, for networks that take it, the input size. ``model.options`` holds the remaining constructor
arguments, as plain YAML values. Three defaults differ from MONAI's:

- ``pretrained`` is ``False`` and may not be set: weights would be downloaded each time the model is rebuilt, and
  a run must rebuild from its own record (start from another run with ``train.init`` instead);
- DynUNet's ``kernel_size``, ``strides`` and ``upsample_kernel_size``, when not given, follow nnU-Net's rule from
  the input size (:func:`dynunet_plan`);
- outputs that are tuples or lists (ViT, SegResNetVAE, BasicUNetPlusPlus) or stacked deep-supervision heads
  (DynUNet in training mode) are reduced to the main logits by :class:`MonaiNet`; the auxiliary heads get no loss.

Every model is checked once when built: a forward pass on one zero input of the dataset's size must give
``(1, K)`` logits or ``(1, K, *size)`` maps, so a network that cannot take the input size fails with one line.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from medrobust.data.imageio import one_line
from medrobust.errors import ConfigError, DataError, UnknownNameError
from medrobust.registry import Entry, check_options, suggest

PREFIX = "monai"
# Constructor arguments that medrobust fills in from the dataset, by what they mean (first match wins).
IN_CHANNELS = ("in_channels", "n_input_channels")
NUM_OUTPUTS = ("out_channels", "num_classes", "classes")
IMAGE_SIZE = ("img_size", "image_size", "input_image_size")
DYNUNET = "DynUNet"  # nnU-Net's network: planned from the input size, deep-supervision heads stacked on dim 1
# Networks returning a list whose *last* element is the full-depth output (the others return it first).
LAST_OUTPUT = frozenset({"BasicUNetPlusPlus"})
BUILD_ERRORS = (TypeError, ValueError, AssertionError, KeyError, AttributeError, IndexError, NotImplementedError,
                RuntimeError)  # fmt: skip
# nnU-Net's planning rule (Isensee et al., Nature Methods 2021): halve an axis while its feature map stays ≥ 4.
MIN_FEATURE_SIZE = 4
MAX_DOWNSAMPLINGS = 5


def import_nets() -> ModuleType:
    """``monai.networks.nets``, or a one-line :class:`ConfigError` naming the extra to install."""
    try:
        return importlib.import_module("monai.networks.nets")
    except ImportError:
        raise ConfigError(f"{PREFIX}:<Name> models need MONAI: pip install 'medrobust[monai]'") from None


def network_names(nets: ModuleType) -> list[str]:
    """The ``nn.Module`` classes of ``monai.networks.nets`` under their own names (aliases such as ``Densenet121``
    left out), sorted."""
    return sorted(n for n in dir(nets) if _is_module_class(getattr(nets, n)) and getattr(nets, n).__name__ == n)


def _is_module_class(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, nn.Module)


def resolve(name: str) -> Entry[nn.Module]:
    """The registry entry of ``monai:<name>`` (for :meth:`~medrobust.registry.Registry.register_family`).

    Raises:
        UnknownNameError: ``name`` is not an ``nn.Module`` class of ``monai.networks.nets``.
    """
    nets = import_nets()
    cls = getattr(nets, name, None) if name and not name.startswith("_") else None
    if not _is_module_class(cls):
        raise UnknownNameError(
            f"unknown MONAI network {name!r}{suggest(name, network_names(nets))} "
            f"(name an nn.Module class of monai.networks.nets, e.g. {PREFIX}:DenseNet121)"
        )
    network: type[nn.Module] = cls  # type: ignore[assignment]

    def factory(
        *,
        in_channels: int,
        num_outputs: int,
        spatial_dims: int = 2,
        image_size: Sequence[int] | None = None,
        **options: Any,
    ) -> nn.Module:
        return build(network, in_channels, num_outputs, spatial_dims, image_size, options)

    factory.__doc__ = f"MONAI's {network.__name__}, built by :func:`build`."
    return Entry(f"{PREFIX}:{name}", factory, f"MONAI's {network.__name__}")


def build(
    network: type[nn.Module],
    in_channels: int,
    num_outputs: int,
    spatial_dims: int,
    image_size: Sequence[int] | None,
    options: dict[str, Any],
) -> nn.Module:
    """Build ``network`` for the data and check it on one input of ``image_size`` (when known).

    Args:
        network: an ``nn.Module`` class of ``monai.networks.nets``.
        in_channels: image channels ``C``; ``num_outputs``: logits or output maps ``K``.
        spatial_dims: 2 (images) or 3 (volumes).
        image_size: the input's spatial size (``(H, W)`` or ``(D, H, W)``), or ``None`` when unknown.
        options: the other constructor arguments (``model.options``).

    Returns:
        A :class:`MonaiNet` around the network.
    """
    name = f"{PREFIX}:{network.__name__}"
    filled = data_arguments(network, in_channels, num_outputs, spatial_dims, image_size)
    check_user_options(network, filled, options)
    arguments = {**default_arguments(network, image_size, options), **filled, **options}
    try:
        net = network(**arguments)
    except BUILD_ERRORS as err:
        raise ConfigError(f"{name} rejected its options {options} ({one_line(err)})") from None
    stacked = bool(arguments.get("deep_supervision")) and network.__name__ == DYNUNET
    model = MonaiNet(net, last=network.__name__ in LAST_OUTPUT, stacked=stacked)
    if image_size is not None:
        check_forward(model, name, in_channels, num_outputs, tuple(image_size))
    return model


def check_user_options(network: type[nn.Module], filled: dict[str, Any], options: dict[str, Any]) -> None:
    """One-line :class:`ConfigError` for an option that the data sets, ``pretrained: true``, or a name that
    ``network``'s constructor does not take (with "did you mean …?")."""
    name = f"{PREFIX}:{network.__name__}"
    for key in options:
        if key in filled:
            raise ConfigError(f"model option {key!r} of {name} is set from the dataset; remove it")
    if options.get("pretrained"):
        raise ConfigError(f"{name}: pretrained weights are not supported (they would be downloaded on every load); "
                          "start from a trained run with --set train.init=RUN instead")  # fmt: skip
    check_options(f"model {name!r}", network, options)


def data_arguments(
    network: type[nn.Module], in_channels: int, num_outputs: int, spatial_dims: int, image_size: Sequence[int] | None
) -> dict[str, Any]:
    """The constructor arguments medrobust sets from the data, under the names ``network`` uses.

    ``spatial_dims``; the first of :data:`IN_CHANNELS` and of :data:`NUM_OUTPUTS`; with a known size, the first of
    :data:`IMAGE_SIZE` and ``in_shape = (C, *size)``.

    Raises:
        ConfigError: ``network`` takes no input-channel or output-count argument (it is not a classifier or a
            dense predictor).
    """
    params = inspect.signature(network).parameters
    name = f"{PREFIX}:{network.__name__}"
    channels = next((p for p in IN_CHANNELS if p in params), None)
    outputs = next((p for p in NUM_OUTPUTS if p in params), None)
    if outputs is None or (channels is None and "in_shape" not in params):
        raise ConfigError(f"{name} has no argument for the input channels or the number of outputs (looked for "
                          f"{', '.join(IN_CHANNELS + NUM_OUTPUTS)}); it cannot classify or segment")  # fmt: skip
    out: dict[str, Any] = {outputs: num_outputs}
    if channels is not None:
        out[channels] = in_channels
    if "spatial_dims" in params:
        out["spatial_dims"] = spatial_dims
    if image_size is not None:
        size = next((p for p in IMAGE_SIZE if p in params), None)
        if size is not None:
            out[size] = list(image_size)
        if "in_shape" in params:
            out["in_shape"] = [in_channels, *image_size]
    return out


def default_arguments(
    network: type[nn.Module], image_size: Sequence[int] | None, options: dict[str, Any]
) -> dict[str, Any]:
    """medrobust's defaults for arguments not in ``options``: ``pretrained=False`` and DynUNet's plan."""
    params = inspect.signature(network).parameters
    out: dict[str, Any] = {"pretrained": False} if "pretrained" in params else {}
    plan_keys = ("kernel_size", "strides", "upsample_kernel_size")
    if network.__name__ == DYNUNET and not all(k in options for k in plan_keys):
        if image_size is None:
            raise ConfigError(f"{PREFIX}:{DYNUNET} needs {', '.join(plan_keys)} in model.options when the input size "
                              "is unknown")  # fmt: skip
        out.update(zip(plan_keys, dynunet_plan(image_size)))
    return out


def dynunet_plan(image_size: Sequence[int]) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """nnU-Net-style DynUNet ``kernel_size``, ``strides`` and ``upsample_kernel_size`` for inputs of ``image_size``.

    Each level halves every axis whose size is even and whose half is still ≥ :data:`MIN_FEATURE_SIZE` (4), for
    at most :data:`MAX_DOWNSAMPLINGS` (5) levels; kernels are 3 on every axis; the first level has stride 1 and the
    decoder's transposed convolutions undo the strides. E.g. 64×64 → strides ``[1,1], [2,2]×4`` (to 4×4);
    28×28 → ``[1,1], [2,2]×2`` (to 7×7, which is odd).
    """
    sizes = list(image_size)
    strides = [[1] * len(sizes)]
    while len(strides) <= MAX_DOWNSAMPLINGS:
        step = [2 if s % 2 == 0 and s // 2 >= MIN_FEATURE_SIZE else 1 for s in sizes]
        if max(step) == 1:
            break
        strides.append(step)
        sizes = [s // t for s, t in zip(sizes, step)]
    return [[3] * len(sizes) for _ in strides], strides, strides[1:]


def check_forward(model: nn.Module, name: str, in_channels: int, num_outputs: int, size: tuple[int, ...]) -> None:
    """Run ``model`` (in eval mode, without gradients) on one zero input of ``size``; a one-line
    :class:`ConfigError` if it fails or gives neither ``(1, K)`` logits nor ``(1, K, *size)`` maps."""
    x = torch.zeros(1, in_channels, *size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except BUILD_ERRORS as err:
        raise ConfigError(f"{name} cannot take inputs of size {'×'.join(map(str, size))} ({one_line(err)}); "
                          "change its options or the dataset's size") from None  # fmt: skip
    finally:
        model.train(was_training)
    if out.ndim < 2 or out.shape[1] != num_outputs or out.shape[2:] not in ((), size):
        raise ConfigError(f"{name} gives outputs of shape {tuple(out.shape)} for inputs {tuple(x.shape)}; medrobust "
                          f"needs (N, {num_outputs}) logits or (N, {num_outputs}, {', '.join(map(str, size))}) maps; "
                          "check its options")  # fmt: skip


class MonaiNet(nn.Module):
    """A MONAI network whose output is reduced to its main logits tensor.

    Args:
        net: the MONAI network.
        last: a tuple or list output's main element is the last (BasicUNetPlusPlus) rather than the first.
        stacked: in training mode the output stacks deep-supervision heads on dim 1 (DynUNet with
            ``deep_supervision``); keep the first, full-resolution one.

    Shape:
        - x: ``(N, C, *spatial)`` (already normalised; wrap with :class:`~medrobust.models.Normalize`).
        - output: ``(N, K)`` or ``(N, K, *spatial)``.
    """

    def __init__(self, net: nn.Module, *, last: bool = False, stacked: bool = False) -> None:
        super().__init__()
        self.net = net
        self.index = -1 if last else 0
        self.stacked = stacked

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        if isinstance(out, (tuple, list)):
            out = out[self.index]
        if not isinstance(out, Tensor):
            raise DataError(f"{type(self.net).__name__} returned a {type(out).__name__}, not a logits tensor")
        return out[:, 0] if self.stacked and self.training else out
