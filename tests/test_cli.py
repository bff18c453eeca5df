import json

import pytest
import torch

from coreprune.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    ckpt = d / "lenet.pt"
    assert main(["train", "--dataset", "digits", "--epochs", "3", "--out", str(ckpt),
                 "--json", str(d / "train.json")]) == 0
    return d, ckpt


def test_train_prune_eval_end_to_end(trained, capsys):
    d, ckpt = trained
    before = ckpt.read_bytes()
    assert json.loads((d / "train.json").read_text())["accuracy"] > 50
    out = d / "small.pt"
    assert main(["prune", str(ckpt), "--method", "coreset", "--ratio", "0.8",
                 "--finetune-epochs", "1", "--out", str(out), "--json", str(d / "p.json")]) == 0
    rec = json.loads((d / "p.json").read_text())
    for key in ("model", "dataset", "method", "seed", "params_removed", "flops_removed",
                "acc_unpruned", "acc_pruned", "acc_finetuned"):
        assert key in rec
    assert rec["params_removed"] >= 0.8
    assert [lr["kept"] for lr in rec["layers"]] and rec["layers"][0]["total_sensitivity"] > 0
    assert ckpt.read_bytes() == before  # input never modified
    assert main(["eval", str(out), "--json", str(d / "e.json")]) == 0
    ev = json.loads((d / "e.json").read_text())
    assert ev["params"] == rec["after"]["params"]
    assert "total sensitivity" in capsys.readouterr().out


def test_errors_are_one_line_and_exit_2(trained, capsys):
    d, ckpt = trained
    assert main(["prune", str(ckpt), "--ratio", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coreprune: error:") and "params_removed" in err
    assert err.count("\n") == 1
    assert main(["prune", str(ckpt), "--out", str(ckpt)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["eval", str(d / "missing.pt")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["prune", str(ckpt), "--method", "tp-magnitude", "--compensate", "bn-mean",
                 "--finetune-epochs", "0", "--out", str(d / "tp.pt")]) == 2
    assert "not to the Torch-Pruning peer 'tp-magnitude'" in capsys.readouterr().err
    assert not (d / "tp.pt").exists()


@pytest.mark.parametrize("flags, name", [(["--compensate", "bn-mean"], "bn-mean"),
                                         (["--no-compensate"], "none"),
                                         (["--compensate", "merge"], "merge"), ([], "reconstruct")])
def test_compensate_flag_is_recorded(trained, flags, name):
    d, ckpt = trained
    out = d / f"c-{name}.json"
    assert main(["prune", str(ckpt), "--ratio", "0.5", *flags, "--finetune-epochs", "0",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["settings"]["compensate"] == name


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_without_cuda(trained, capsys):
    _, ckpt = trained
    assert main(["eval", str(ckpt), "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_methods_lists_registry(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ("coreset", "coreset-theory", "mussay", "l1", "l2", "random"):
        assert name in out
