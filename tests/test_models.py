import pytest
import torch
from torch import nn

from coreprune.data import Split
from coreprune.errors import InvalidArgumentError
from coreprune.models import (
    _replace_stem,
    build_model_for_images,
    build_model_for_split,
    build_model_for_state_dict,
)


@pytest.mark.parametrize("name", ["tv_mobilenet_v2", "tv_mobilenet_v3_small", "tv_resnet18",
                                  "tv_shufflenet_v2_x0_5"])
def test_torchvision_zoo_models_take_one_channel_images(name):
    torch.manual_seed(0)
    model = build_model_for_images(name, 1, 32, num_classes=10).eval()
    stem = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert stem.in_channels == 1 and model.example_input_shape == (1, 32, 32)
    assert model.arch["in_channels"] == 1
    x = torch.randn(2, 1, 32, 32)
    rebuilt = build_model_for_state_dict(name, model.state_dict())
    assert torch.equal(rebuilt(x), model(x))


def test_stem_replacement_takes_the_first_convolution_in_module_order():
    nested = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3)), nn.Conv2d(4, 5, 1))
    _replace_stem(nested, 1)
    assert nested[0][0].in_channels == 1 and nested[1].in_channels == 4
    with pytest.raises(InvalidArgumentError, match="no convolution"):
        _replace_stem(nn.Sequential(nn.Linear(3, 2)), 1)


def test_a_model_for_a_split_takes_its_classes_from_the_labels():
    split = Split(torch.randn(3, 1, 32, 32), torch.tensor([0, 3, 1]))
    x = torch.randn(2, 1, 32, 32)
    assert build_model_for_split("tv_resnet18", split).eval()(x).shape == (2, 4)
    assert build_model_for_split("tv_resnet18", split, num_classes=3).eval()(x).shape == (2, 3)
    assert build_model_for_images("tv_resnet18", 1, 32, num_classes=3)(x).shape == (2, 3)
