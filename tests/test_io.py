import pytest
import torch
from torch import nn

import coreprune
from coreprune.errors import CheckpointError, OutputExistsError
from coreprune.io import load_with_metadata, save


def test_pruned_model_roundtrip(tmp_path):
    model = nn.Sequential(nn.Linear(8, 20), nn.ReLU(), nn.Linear(20, 3))
    small = coreprune.prune(model, "coreset", params_removed=0.5)
    path = save(small, tmp_path / "small.pt", {"seed": 0})
    back, meta = load_with_metadata(path)
    x = torch.randn(4, 8)
    torch.testing.assert_close(back(x), small(x))
    assert back[0].out_features == small[0].out_features < 20
    assert meta == {"seed": 0, "coreprune_version": coreprune.__version__,
                    "torch_version": torch.__version__}
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left


def test_never_overwrites(tmp_path):
    model = nn.Linear(2, 2)
    save(model, tmp_path / "m.pt")
    before = (tmp_path / "m.pt").read_bytes()
    with pytest.raises(OutputExistsError, match="m.pt exists"):
        save(nn.Linear(3, 3), tmp_path / "m.pt")
    assert (tmp_path / "m.pt").read_bytes() == before
    save(nn.Linear(3, 3), tmp_path / "m.pt", overwrite=True)


def test_corrupt_and_foreign_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        coreprune.load(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="bad.pt"):
        coreprune.load(tmp_path / "bad.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a coreprune checkpoint"):
        coreprune.load(tmp_path / "foreign.pt")


def test_shape_mismatch(tmp_path):
    model = nn.Linear(4, 2)
    payload = {"format": coreprune.io.FORMAT_V1, "model": model,
               "state_dict": nn.Linear(5, 2).state_dict(), "arch": None, "metadata": {}}
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not match"):
        coreprune.load(tmp_path / "mismatch.pt")


class OwnNet(nn.Module):
    """A model class of the user's own: not in the restricted loader's allowlist."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x)


class Payload:
    """Unpickling this would run code (touch a file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_loading_runs_no_code_from_the_file_unless_trusted(tmp_path):
    save(OwnNet(), tmp_path / "own.pt")
    with pytest.raises(CheckpointError, match=r"OwnNet, which would run code from the file; if "
                       r"you trust it, pass trusted=True \(--trust-pickle"):
        coreprune.load(tmp_path / "own.pt")
    assert isinstance(coreprune.load(tmp_path / "own.pt", trusted=True), OwnNet)
    marker = tmp_path / "ran"
    torch.save({"format": coreprune.io.FORMAT_V1, "model": Payload(str(marker))},
               tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="which would run code from the file"):
        coreprune.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_zoo_and_torchvision_models_load_without_trusting(tmp_path):
    import torchvision

    from coreprune.models import build_model

    vit = torchvision.models.VisionTransformer(32, 8, 1, 2, 16, 32, num_classes=3).eval()
    for model in (build_model("resnet20"), build_model("mlp", hidden=[8], activation="gelu"),
                  torchvision.models.resnet18(num_classes=3), vit):  # the ViT holds a partial
        save(model, tmp_path / "m.pt", {"n": 1}, overwrite=True)
        assert type(coreprune.load(tmp_path / "m.pt")) is type(model)


def test_a_partial_of_a_function_outside_the_allowed_classes_is_refused(tmp_path):
    import functools

    model = nn.Linear(2, 2)  # a torch.nn class, allowed
    model.hook = functools.partial(print, "ran")  # print is not an allowed class
    save(model, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="loading needs print, which would run code"):
        coreprune.load(tmp_path / "p.pt")


def test_a_zoo_vit_saved_before_its_heads_could_be_cut_still_runs(tmp_path):
    from coreprune.models import build_model

    torch.manual_seed(0)
    model = build_model("vit").eval()
    x = torch.randn(2, 1, 28, 28)
    ref = model(x)
    for block in model.blocks:  # the attention modules of earlier versions had no head_dim
        del block.attn.head_dim
    save(model, tmp_path / "old.pt", {"n": 1})
    torch.testing.assert_close(coreprune.load(tmp_path / "old.pt")(x), ref, rtol=0, atol=0)


def test_cli_refuses_an_untrusted_class_in_one_line(tmp_path, capsys):
    from coreprune.cli import main

    save(OwnNet(), tmp_path / "own.pt", {"dataset": "digits"})
    assert main(["eval", str(tmp_path / "own.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--trust-pickle" in err


def test_checkpoints_of_earlier_versions_with_a_torch_version_object_load(tmp_path):
    model = nn.Linear(2, 2)
    payload = {"format": coreprune.io.FORMAT_V1, "model": model, "state_dict": model.state_dict(),
               "arch": None, "metadata": {"torch_version": torch.__version__}}
    torch.save(payload, tmp_path / "old.pt")  # 0.3 saved torch.__version__ as it is
    assert load_with_metadata(tmp_path / "old.pt")[1]["torch_version"] == torch.__version__


def test_load_model_file_reads_modules_and_state_dicts_and_runs_no_code(tmp_path):
    from coreprune.io import load_model_file
    from coreprune.models import build_model

    torch.manual_seed(0)
    net = build_model("resnet20", in_channels=1, num_classes=7).eval()
    torch.save({"epoch": 3, "model_state_dict": net.state_dict()}, tmp_path / "train_ckpt.pt")
    model, meta = load_model_file(tmp_path / "train_ckpt.pt", "resnet20")
    x = torch.randn(2, 1, 32, 32)
    assert meta == {"model": "resnet20"} and torch.equal(model(x), net(x))
    torch.save(net, tmp_path / "whole.pt")  # a zoo class: the restricted loader builds it
    assert torch.equal(load_model_file(tmp_path / "whole.pt")[0](x), net(x))
    with pytest.raises(CheckpointError, match="pass --model NAME"):
        load_model_file(tmp_path / "train_ckpt.pt")
    with pytest.raises(CheckpointError, match="does not fit model 'resnet56'"):
        load_model_file(tmp_path / "train_ckpt.pt", "resnet56")
    marker = tmp_path / "ran"
    torch.save(Payload(str(marker)), tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="which would run code from the file"):
        load_model_file(tmp_path / "evil.pt", "resnet20")
    assert not marker.exists()
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="neither a model nor a state_dict"):
        load_model_file(tmp_path / "list.pt")


class OwnConvNet(nn.Module):
    """A CNN of the user's own class (BatchNorm, a bias-free conv the surgery may give a bias)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 12, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(12)
        self.c2 = nn.Conv2d(12, 10, 3, padding=1, bias=False)
        self.fc = nn.Linear(10, 4)

    def forward(self, x):
        h = torch.relu(self.c2(torch.relu(self.bn(self.c1(x)))))
        return self.fc(h.mean((2, 3)))


def test_own_architecture_loads_pruned_weights_without_unpickling_its_class(tmp_path):
    torch.manual_seed(0)
    net = OwnConvNet().eval()
    x = torch.randn(4, 3, 8, 8)
    small = coreprune.prune(net, keep_ratio=0.5, example_inputs=x[:1])
    assert small.c1.out_channels == 6 and small.c2.in_channels == 6
    save(small, tmp_path / "small.pt")
    with pytest.raises(CheckpointError, match=r"OwnConvNet, which would run code .* model="):
        coreprune.load(tmp_path / "small.pt")
    mine = coreprune.load(tmp_path / "small.pt", model=OwnConvNet())
    assert mine.c1.out_channels == 6 and mine.bn.num_features == 6 and mine.c2.in_channels == 6
    torch.testing.assert_close(mine.eval()(x), small(x))
    torch.testing.assert_close(coreprune.load(tmp_path / "small.pt", trusted=True)(x), small(x))
    # another architecture: one line naming what does not fit
    with pytest.raises(CheckpointError, match="has no place for|lacks"):
        coreprune.load(tmp_path / "small.pt", model=nn.Sequential(nn.Linear(3, 2)))


def test_depthwise_convolutions_stay_depthwise_when_reloaded_into_the_architecture(tmp_path):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v2(num_classes=4, width_mult=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    small = coreprune.prune(net, "l1", keep_ratio=0.5, example_inputs=x[:1])
    dw = small.features[2].conv[1][0]
    assert dw.groups == dw.in_channels == dw.out_channels < net.features[2].conv[1][0].groups
    save(small, tmp_path / "small.pt")
    mine = coreprune.load(tmp_path / "small.pt", model=torchvision.models.mobilenet_v2(
        num_classes=4, width_mult=0.25))
    assert mine.features[2].conv[1][0].groups == dw.groups
    torch.testing.assert_close(mine.eval()(x), small(x))


def test_grouped_convolutions_keep_their_groups_when_reloaded_into_the_architecture(tmp_path):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.regnet_x_400mf(num_classes=4).eval()
    x = torch.randn(2, 3, 32, 32)
    small = coreprune.prune(net, "l1", keep_ratio=0.5, example_inputs=x[:1])
    save(small, tmp_path / "small.pt")
    mine = coreprune.load(tmp_path / "small.pt", model=torchvision.models.regnet_x_400mf(
        num_classes=4)).eval()
    pairs = [(a, b) for a, b in zip(small.modules(), mine.modules(), strict=True)
             if isinstance(a, torch.nn.Conv2d) and a.groups > 1]
    assert pairs and all((a.groups, a.in_channels) == (b.groups, b.in_channels)
                         for a, b in pairs)
    torch.testing.assert_close(mine(x), small(x))


def test_the_stored_structure_holds_no_weights_and_runs_no_code(tmp_path):
    import io as stdlib_io

    import torchvision

    net = torchvision.models.resnet18(num_classes=10)
    save(net, tmp_path / "r18.pt")
    weights = stdlib_io.BytesIO()
    torch.save(net.state_dict(), weights)
    assert (tmp_path / "r18.pt").stat().st_size < 1.05 * len(weights.getvalue())
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(coreprune.load(tmp_path / "r18.pt").eval()(x), net.eval()(x))
    marker = tmp_path / "ran"
    evil = stdlib_io.BytesIO()
    torch.save(Payload(str(marker)), evil)
    torch.save({"format": coreprune.io.FORMAT, "module": evil.getvalue(),
                "state_dict": {}, "metadata": {}}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="which would run code from the file"):
        coreprune.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_a_timm_state_dict_builds_by_name():
    timm = pytest.importorskip("timm")
    from coreprune.models import build_model_for_state_dict

    net = timm.create_model("resnet10t", pretrained=False, num_classes=6).eval()
    built = build_model_for_state_dict("resnet10t", net.state_dict())
    x = torch.randn(1, 3, 32, 32)
    assert type(built) is type(net) and torch.equal(built(x), net(x))
