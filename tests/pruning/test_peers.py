import pytest
import torch
from torch import nn

from coreprune.errors import InvalidArgumentError, UnsupportedModelError
from coreprune.metrics import count_params
from coreprune.models import build_model
from coreprune.pruning import Pruner
from coreprune.pruning.peers import PEERS, prune_with_torch_pruning


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_peer_prunes_to_coreprunes_structure(peer):
    model = build_model("resnet20", in_channels=1)
    x = torch.randn(2, 1, 32, 32)
    structure = Pruner("l1", params_removed=0.4).fit(model, x)
    ref = structure.transform(model)
    calib = (torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = prune_with_torch_pruning(model, peer, structure.groups_, structure.keep_counts_, x,
                                   calib)
    assert count_params(out) == count_params(ref) < count_params(model)
    assert out(x).shape == (2, 10)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_peer_errors_are_named():
    mlp = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 3))
    s = Pruner("l1", keep_ratio=0.5).fit(mlp)
    x = torch.randn(2, 6)
    with pytest.raises(UnsupportedModelError, match="BatchNorm"):
        prune_with_torch_pruning(mlp, "tp-bnscale", s.groups_, s.keep_counts_, x)
    with pytest.raises(InvalidArgumentError, match="calibration"):
        prune_with_torch_pruning(mlp, "tp-taylor", s.groups_, s.keep_counts_, x)
    with pytest.raises(InvalidArgumentError, match="unknown peer"):
        prune_with_torch_pruning(mlp, "tp-nope", s.groups_, s.keep_counts_, x)


def test_bnscale_scores_groups_without_batchnorm_by_magnitude():
    """EfficientNet's squeeze-and-excitation layers have no BatchNorm: Torch-Pruning's
    BNScaleImportance leaves them unscored (and unpruned); the peer scores them by L2 magnitude
    and prunes the structure asked for."""
    import torchvision

    model = torchvision.models.mobilenet_v3_small(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    structure = Pruner("l1", params_removed=0.4).fit(model, x)
    named = dict(model.named_modules())
    bare = [g for g, k in zip(structure.groups_, structure.keep_counts_, strict=True)
            if k < g.n_units and "fc1" in g.name]
    assert bare and all(not isinstance(named[g.name.replace("fc1", "fc2")], nn.BatchNorm2d)
                        for g in bare)
    out = prune_with_torch_pruning(model, "tp-bnscale", structure.groups_,
                                   structure.keep_counts_, x)
    assert count_params(out) == count_params(structure.transform(model))
    assert out(x).shape == (2, 10)


def test_peer_prunes_depthwise_blocks_and_gates_with_their_units():
    """MobileNet-V3's depthwise convs and squeeze-and-excitation gates ride with the units they
    carry: Torch-Pruning prunes them too, to coreprune's structure."""
    import torchvision

    model = torchvision.models.mobilenet_v3_small(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    structure = Pruner("l1", params_removed=0.4).fit(model, x)
    assert any(g.carriers for g in structure.groups_) and any(g.gates for g in structure.groups_)
    out = prune_with_torch_pruning(model, "tp-magnitude", structure.groups_,
                                   structure.keep_counts_, x)
    assert count_params(out) == count_params(structure.transform(model))
    assert out(x).shape == (2, 10)
