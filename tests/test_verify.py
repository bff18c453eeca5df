import json

import pytest
import torch
from torch import nn

from coreprune import CheckpointError, io
from coreprune.cli import main
from coreprune.experiment import _report_stats
from coreprune.pruning import Pruner
from coreprune.verify import verify_checkpoint_record, verify_layers


def small_layer_model():
    """Linear(4, 60) -> ReLU -> Linear(60, 3): 12 units matter, 48 barely (outgoing 1e-4)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 60), nn.ReLU(), nn.Linear(60, 3))
    with torch.no_grad():
        m[2].weight[:, 12:] *= 1e-4
    return m


def test_measured_error_below_bound_on_a_small_layer():
    m = small_layer_model()
    pruner = Pruner("coreset", keep_ratio=0.25, projection=None)
    pruned = pruner.fit_transform(m)
    rec = _report_stats(pruner)
    (check,) = verify_checkpoint_record(pruned, rec, m, torch.randn(2, 4), steps=50)
    assert check.units == 60 and check.kept == 15
    assert 0 < check.error_ascent <= check.bound < 0.05  # a non-trivial bound, and it holds
    assert check.within_bound


def test_sampled_coreset_reports_sampling_eps():
    m = small_layer_model()
    pruner = Pruner("coreset-theory", keep_ratio=0.5, seed=3)
    pruned = pruner.fit_transform(m)
    (check,) = verify_checkpoint_record(pruned, _report_stats(pruner), m, torch.randn(2, 4),
                                        steps=20)
    assert check.eps_sampling is not None and check.eps_sampling > 0
    assert check.within_bound


def test_wrong_original_is_named():
    m = small_layer_model()
    pruner = Pruner("l1", keep_ratio=0.5)
    pruned = pruner.fit_transform(m)
    rec = _report_stats(pruner)
    other = nn.Sequential(nn.Linear(4, 50), nn.ReLU(), nn.Linear(50, 3))
    with pytest.raises(CheckpointError, match="ORIGINAL has"):
        verify_checkpoint_record(pruned, rec, other, torch.randn(2, 4))
    with pytest.raises(CheckpointError, match="'2'"):
        verify_layers(m, [{**rec["layers"][0], "name": "2"}], torch.randn(2, 4))
    with pytest.raises(CheckpointError, match="no pruning record"):
        verify_checkpoint_record(pruned, None, m, torch.randn(2, 4))


def test_cli_verify(tmp_path, capsys):
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--out",
                 str(tmp_path / "m.pt")]) == 0
    assert main(["prune", str(tmp_path / "m.pt"), "--ratio", "0.5", "--finetune-epochs", "0",
                 "--method", "coreset", "--out", str(tmp_path / "p.pt"), "--seed", "4"]) == 0
    _, meta = io.load_with_metadata(tmp_path / "p.pt")
    rec = meta["pruned"]
    assert rec["seed"] == 4 and rec["settings"]["projection"] == 8
    assert rec["settings"]["scaling"] == "outgoing"
    assert len(rec["layers"][0]["indices"]) == rec["layers"][0]["kept"]
    assert meta["torch_version"] == torch.__version__
    capsys.readouterr()
    code = main(["verify", str(tmp_path / "p.pt"), str(tmp_path / "m.pt"), "--steps", "10",
                 "--json", str(tmp_path / "v.json")])
    out = capsys.readouterr().out
    assert code == 0 and "err ascent" in out and "bound" in out and "pred. err recon." in out
    layers = json.loads((tmp_path / "v.json").read_text())["layers"]
    # the default reconstructs: each layer's predicted error is reported, below dropping's
    assert all(0 <= c["predicted_error"] < c["predicted_error_drop"] for c in layers)
    # the default (greedy selection) verifies too: the coreset bound of the units it kept
    assert main(["prune", str(tmp_path / "m.pt"), "--ratio", "0.5", "--finetune-epochs", "0",
                 "--out", str(tmp_path / "g.pt")]) == 0
    assert main(["verify", str(tmp_path / "g.pt"), str(tmp_path / "m.pt"), "--steps", "5"]) == 0
    # the original passed as the pruned model: no record, one-line error
    assert main(["verify", str(tmp_path / "m.pt"), str(tmp_path / "m.pt")]) == 2
    assert "no pruning record" in capsys.readouterr().err


def test_verify_conv_and_coupled_groups():
    from coreprune.models import build_model

    m = build_model("resnet20", in_channels=1).eval()
    x = torch.randn(2, 1, 32, 32)
    pruner = Pruner("coreset", params_removed=0.5, prune_coupled=True)
    pruned = pruner.fit_transform(m, x)
    checks = verify_checkpoint_record(pruned, _report_stats(pruner), m, x, steps=10)
    assert len(checks) == len(pruner.groups_) and all(c.within_bound for c in checks)
    assert all(0 <= c.error_random <= c.error_ascent for c in checks)
