"""Model zoo: LeNet-300-100, multi-layer perceptrons of any width and activation, CIFAR-style
VGG-16 (BatchNorm) and ResNet-20/56/110, and a small vision transformer.

Each model declares ``example_input_shape`` so that it can be traced without an explicit
example batch. torchvision's ResNet-18/50, MobileNet-V2, MobileNet-V3-Small, EfficientNet-B0,
ShuffleNet-V2 x0.5 and VGG-16 are in the zoo as ``tv_resnet18``, ... (their stem given
``in_channels`` input channels for one-channel images; weights are never downloaded).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import CheckpointError, InvalidArgumentError

if TYPE_CHECKING:
    from .data import Split

__all__ = ["LeNet300100", "MLP", "VGG16", "CifarResNet", "ViT", "build_model",
           "build_model_for_images", "build_model_for_split",
           "MODELS", "MLP_ACTIVATIONS"]


class LeNet300100(nn.Sequential):
    """LeNet-300-100: 784-300-100-10 fully connected with ReLU (Han et al. 2015)."""

    def __init__(self, in_features: int = 784, num_classes: int = 10,
                 image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__(nn.Flatten(), nn.Linear(in_features, 300), nn.ReLU(),
                         nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, num_classes))
        self.example_input_shape = image_shape
        self.arch = {"name": "lenet300", "in_features": in_features, "num_classes": num_classes,
                     "image_shape": list(image_shape)}


MLP_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "elu": nn.ELU, "leaky_relu": nn.LeakyReLU,
}


class MLP(nn.Sequential):
    """A multi-layer perceptron on flattened images: ``in-h1-...-hL-classes`` with one
    activation (a key of :data:`MLP_ACTIVATIONS`) after every hidden layer."""

    def __init__(self, in_features: int = 784, hidden: tuple[int, ...] | list[int] = (500, 300),
                 activation: str = "relu", num_classes: int = 10,
                 image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        if activation not in MLP_ACTIVATIONS:
            raise InvalidArgumentError(f"unknown activation {activation!r}; choose from "
                                       f"{sorted(MLP_ACTIVATIONS)}")
        widths = [int(h) for h in hidden]
        if not widths or min(widths) < 1:
            raise InvalidArgumentError(f"hidden must be a non-empty list of positive widths, "
                                       f"got {hidden!r}")
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_features
        for h in widths:
            layers += [nn.Linear(prev, h), MLP_ACTIVATIONS[activation]()]
            prev = h
        super().__init__(*layers, nn.Linear(prev, num_classes))
        self.example_input_shape = image_shape
        self.arch = {"name": "mlp", "in_features": in_features, "hidden": widths,
                     "activation": activation, "num_classes": num_classes,
                     "image_shape": list(image_shape)}


_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"]


class VGG16(nn.Module):
    """VGG-16 with BatchNorm for 32x32 inputs (the CIFAR variant: one 512-d linear classifier)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, int(v), 3, padding=1, bias=False),
                           nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                c = int(v)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)
        self.example_input_shape = (in_channels, 32, 32)
        self.arch = {"name": "vgg16", "in_channels": in_channels, "num_classes": num_classes}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class BasicBlock(nn.Module):
    """ResNet basic block; the shortcut is a 1x1 conv + BN when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) of He et al. 2016 for 32x32 inputs: 16/32/64 channels, n blocks a stage."""

    def __init__(self, depth: int = 56, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise InvalidArgumentError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        blocks: list[nn.Module] = []
        c = 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(BasicBlock(c, width, 2 if (stage > 0 and i == 0) else 1))
                c = width
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        self.example_input_shape = (in_channels, 32, 32)
        self.arch = {"name": f"resnet{depth}", "in_channels": in_channels,
                     "num_classes": num_classes}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.pool(self.layers(x))
        return self.fc(torch.flatten(x, 1))


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (as timm's ViT)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise InvalidArgumentError(f"the width {dim} is not a multiple of {heads} heads")
        self.heads, self.head_dim = heads, dim // heads  # heads may be pruned, head_dim stays
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "head_dim" not in self.__dict__:  # saved before heads could be cut (0.4 and earlier)
            self.head_dim = self.qkv.out_features // 3 // self.heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(a.transpose(1, 2).reshape(b, t, -1))


class TransformerBlock(nn.Module):
    """A pre-LayerNorm transformer block: ``x + attn(ln1(x))``, then
    ``x + fc2(gelu(fc1(ln2(x))))`` (the FFN; ``fc1``'s outputs are its neurons)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(dim), SelfAttention(dim, heads)
        self.ln2, self.fc1, self.act, self.fc2 = (nn.LayerNorm(dim), nn.Linear(dim, mlp_dim),
                                                  nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class ViT(nn.Module):
    """A small vision transformer: non-overlapping patches (a strided convolution), learned
    position embeddings, ``depth`` pre-LayerNorm blocks, a final LayerNorm, the mean over
    tokens and a linear classifier. The default (28x28 one-channel images, 7x7 patches: 16
    tokens of width 64, 4 blocks of 4 heads, FFN 256) trains on 2 CPU cores in minutes."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 patch_size: int = 7, dim: int = 64, depth: int = 4, heads: int = 4,
                 mlp_dim: int = 256) -> None:
        super().__init__()
        if image_size % patch_size:
            raise InvalidArgumentError(f"image_size {image_size} is not a multiple of "
                                       f"patch_size {patch_size}")
        tokens = (image_size // patch_size) ** 2
        self.patch = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*(TransformerBlock(dim, heads, mlp_dim)
                                      for _ in range(depth)))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_classes)
        self.example_input_shape = (in_channels, image_size, image_size)
        self.arch = {"name": "vit", "in_channels": in_channels, "num_classes": num_classes,
                     "image_size": image_size, "patch_size": patch_size, "dim": dim,
                     "depth": depth, "heads": heads, "mlp_dim": mlp_dim}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.norm(self.blocks(x)).mean(1))


def _torchvision(name: str) -> Callable[..., nn.Module]:
    def make(in_channels: int = 3, num_classes: int = 1000, image_size: int = 224) -> nn.Module:
        import torchvision

        model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
        if in_channels != 3:
            _replace_stem(model, in_channels)
        model.example_input_shape = (in_channels, image_size, image_size)
        model.arch = {"name": f"tv_{name}", "in_channels": in_channels,
                      "num_classes": num_classes}
        return model

    return make


def _replace_stem(model: nn.Module, in_channels: int) -> None:
    """Give ``model``'s first convolution (in module order) ``in_channels`` input channels,
    freshly initialised as torchvision initialises it (Kaiming normal, fan out); every other
    layer is unchanged. For torchvision's ImageNet models on one-channel images."""
    for name, child in model.named_modules():
        if isinstance(child, nn.Conv2d):
            stem = nn.Conv2d(in_channels, child.out_channels, child.kernel_size, child.stride,
                             child.padding, child.dilation, child.groups,
                             child.bias is not None, child.padding_mode)
            nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")
            if stem.bias is not None:
                nn.init.zeros_(stem.bias)
            model.set_submodule(name, stem)
            return
    raise InvalidArgumentError(f"{type(model).__name__} has no convolution to give "
                               f"{in_channels} input channels")


MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet300": lambda in_channels=1, num_classes=10, image_size=28: LeNet300100(
        in_channels * image_size * image_size, num_classes, (in_channels, image_size, image_size)),
    "mlp": lambda in_channels=1, num_classes=10, image_size=28, hidden=(500, 300),
    activation="relu": MLP(in_channels * image_size * image_size, hidden, activation, num_classes,
                           (in_channels, image_size, image_size)),
    "vgg16": lambda in_channels=3, num_classes=10: VGG16(in_channels, num_classes),
    "vit": ViT,
    "resnet20": lambda in_channels=3, num_classes=10: CifarResNet(20, in_channels, num_classes),
    "resnet56": lambda in_channels=3, num_classes=10: CifarResNet(56, in_channels, num_classes),
    "resnet110": lambda in_channels=3, num_classes=10: CifarResNet(110, in_channels, num_classes),
    "tv_resnet18": _torchvision("resnet18"),
    "tv_resnet50": _torchvision("resnet50"),
    "tv_mobilenet_v2": _torchvision("mobilenet_v2"),
    "tv_mobilenet_v3_small": _torchvision("mobilenet_v3_small"),
    "tv_efficientnet_b0": _torchvision("efficientnet_b0"),
    "tv_shufflenet_v2_x0_5": _torchvision("shufflenet_v2_x0_5"),
    "tv_vgg16": _torchvision("vgg16"),
}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build zoo model ``name`` (see :data:`MODELS`) with freshly initialised weights."""
    if name not in MODELS:
        raise InvalidArgumentError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    try:
        return MODELS[name](**kwargs)
    except TypeError as exc:
        raise InvalidArgumentError(f"bad arguments for model {name!r}: {exc}") from None


def build_model_for_images(name: str, in_channels: int, image_size: int,
                           **model_args: Any) -> nn.Module:
    """Zoo model ``name`` for square images of shape (in_channels, image_size, image_size):
    the fully connected models' first layer takes the flattened image; the CNNs are
    size-agnostic. ``model_args``: further arguments (an MLP's ``hidden`` and ``activation``,
    ``num_classes``: the zoo's own models default to 10, torchvision's to 1000, so give the
    data's; :func:`build_model_for_split` reads it from the labels)."""
    if name in ("lenet300", "mlp", "vit") or name.startswith("tv_"):
        return build_model(name, in_channels=in_channels, image_size=image_size, **model_args)
    return build_model(name, in_channels=in_channels, **model_args)


def build_model_for_split(name: str, split: Split, **model_args: Any) -> nn.Module:
    """Zoo model ``name`` for the images and labels of ``split``: :func:`build_model_for_images`
    with its channels, image size and number of classes (labels 0..C-1: ``C = max + 1``, unless
    ``model_args`` names ``num_classes``)."""
    return build_model_for_images(name, int(split.x.shape[1]), int(split.x.shape[2]),
                                  **{"num_classes": int(split.y.max()) + 1, **model_args})


def build_model_for_state_dict(name: str, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Model ``name`` with the weights of ``state_dict`` (a user's ``model.state_dict()``).

    ``name``: a zoo name (:data:`MODELS`; its input channels and classes read from the state
    dict's first and last weights, an MLP's widths from every weight), a torchvision
    classification model name (``resnet18``, ``tv_resnet18``, ...; classes from the last
    weight) or, when timm is installed, a timm model name.

    Raises:
        InvalidArgumentError: an unknown name.
        CheckpointError: the state dict does not fit the architecture (first mismatch named).
    """
    weights = [v for k, v in state_dict.items() if k.endswith("weight") and v.dim() >= 2]
    if not weights:
        raise CheckpointError("the state_dict holds no layer weights")
    classes, first = int(weights[-1].shape[0]), weights[0]
    model = None
    if name in MODELS:
        kwargs: dict[str, Any] = {"num_classes": classes}
        if name in ("lenet300", "mlp"):
            side = int(round((first.shape[1]) ** 0.5))
            if side * side != first.shape[1]:
                raise CheckpointError(f"{name}: the first layer reads {first.shape[1]} inputs, "
                                      "not a square one-channel image")
            kwargs["image_size"] = side
            if name == "mlp":
                kwargs["hidden"] = tuple(int(w.shape[0]) for w in weights[:-1])
        else:
            kwargs["in_channels"] = int(first.shape[1])
        model = build_model(name, **kwargs)
    else:
        import torchvision

        if name in torchvision.models.list_models(module=torchvision.models):
            model = torchvision.models.get_model(name, weights=None, num_classes=classes)
        else:
            try:
                import timm
            except ImportError:
                timm = None
            if timm is not None and name in timm.list_models():
                model = timm.create_model(name, pretrained=False, num_classes=classes)
    if model is None:
        raise InvalidArgumentError(
            f"unknown model {name!r}: give a zoo name ({', '.join(sorted(MODELS))}), a "
            "torchvision classification model (e.g. resnet18) or a timm model (with timm "
            "installed)")
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:240]
        raise CheckpointError(f"the state_dict does not fit model {name!r}: {detail}") from None
    return model.eval()
