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
    assert err == "coreprune: error: --ratio must lie in [0, 1), got 1.5\n"
    assert main(["prune", str(ckpt), "--keep-ratio", "0"]) == 2
    assert "--keep-ratio must lie in (0, 1], got 0" in capsys.readouterr().err
    assert main(["prune", str(ckpt), "--min-keep-fraction", "1"]) == 2
    assert "--min-keep-fraction must lie in [0, 1), got 1" in capsys.readouterr().err
    assert main(["prune", str(ckpt), "--ratio", "0.99"]) == 2  # the default floor: 10%
    assert "lower min_keep_fraction" in capsys.readouterr().err
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


def test_distill_steps_flag_is_recorded_and_checked(trained, capsys):
    d, ckpt = trained
    out = d / "distilled.json"
    assert main(["prune", str(ckpt), "--ratio", "0.8", "--distill-steps", "30",
                 "--finetune-epochs", "0", "--json", str(out)]) == 0
    info = json.loads(out.read_text())["settings"]["distillation"]
    assert info["steps"] == 30 and info["batch_size"] == 256
    assert main(["prune", str(ckpt), "--distill-steps", "-1"]) == 2
    assert "--distill-steps must be >= 0, got -1" in capsys.readouterr().err
    assert main(["prune", str(ckpt), "--method", "tp-magnitude", "--distill-steps", "5",
                 "--finetune-epochs", "0"]) == 2
    assert "not to the Torch-Pruning peer" in capsys.readouterr().err


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


class _OwnNet(torch.nn.Module):
    """A model class of the user's own (the restricted loader does not build it)."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                        torch.nn.Linear(8, 4))

    def forward(self, x):
        return self.body(x)


def test_prune_any_model_file_without_data(tmp_path, capsys):
    """A torchvision state_dict with --model, a whole pickled module (own class: only with
    --trust-pickle), a plain nn.Sequential module: pruned with --input-shape and no dataset,
    parameters / FLOPs / latency reported, the output loads without running code."""
    import torchvision

    import coreprune

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=5)
    torch.save(net.state_dict(), tmp_path / "r18_state.pt")
    out = tmp_path / "small.pt"
    assert main(["prune", str(tmp_path / "r18_state.pt"), "--model", "resnet18", "--input-shape",
                 "1,3,64,64", "--ratio", "0.3", "--out", str(out), "--json",
                 str(tmp_path / "r.json")]) == 0
    text = capsys.readouterr().out
    assert "params" in text and "flops" in text and "latency_ms" in text
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["dataset"] is None and rec["params_removed"] >= 0.3
    small = coreprune.load(out)  # restricted loader: no code from the file
    assert isinstance(small, torchvision.models.ResNet)
    assert coreprune.metrics.count_params(small) == rec["after"]["params"]
    assert small(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    # a state_dict without --model, or with the wrong one: one line each
    assert main(["prune", str(tmp_path / "r18_state.pt"), "--input-shape", "1,3,64,64"]) == 2
    assert "pass --model NAME" in capsys.readouterr().err
    assert main(["prune", str(tmp_path / "r18_state.pt"), "--model", "resnet34",
                 "--input-shape", "1,3,64,64"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not fit model 'resnet34'" in err
    # a whole module of the user's own class: refused, then pruned with --trust-pickle
    torch.save(_OwnNet(), tmp_path / "own.pt")
    assert main(["prune", str(tmp_path / "own.pt"), "--input-shape", "1,3,16,16"]) == 2
    assert "--trust-pickle" in capsys.readouterr().err
    assert main(["prune", str(tmp_path / "own.pt"), "--input-shape", "1,3,16,16",
                 "--keep-ratio", "0.5", "--trust-pickle", "--json",
                 str(tmp_path / "own.json")]) == 0
    assert json.loads((tmp_path / "own.json").read_text())["after"]["params"] < \
        json.loads((tmp_path / "own.json").read_text())["before"]["params"]
    # no input shape to trace with, a bad one, an input the model cannot take
    seq = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    torch.save(seq, tmp_path / "seq.pt")
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 2))
    torch.save(conv, tmp_path / "conv.pt")
    assert main(["prune", str(tmp_path / "conv.pt")]) == 2
    assert "pass --input-shape" in capsys.readouterr().err
    assert main(["prune", str(tmp_path / "seq.pt"), "--input-shape", "1,x"]) == 2
    assert "--input-shape takes positive sizes" in capsys.readouterr().err
    assert main(["prune", str(tmp_path / "seq.pt"), "--input-shape", "1,5"]) == 2
    assert "the model fails on --input-shape inputs of shape (1, 5)" in capsys.readouterr().err
    assert main(["prune", str(tmp_path / "seq.pt"), "--input-shape", "1,6", "--finetune-epochs",
                 "2"]) == 2
    assert "--finetune-epochs needs --dataset" in capsys.readouterr().err
    assert main(["prune", str(tmp_path / "seq.pt"), "--input-shape", "4,6", "--keep-ratio",
                 "0.5"]) == 0
    # TorchScript: refused by name
    torch.jit.save(torch.jit.script(seq), tmp_path / "ts.pt")
    assert main(["prune", str(tmp_path / "ts.pt"), "--input-shape", "1,6"]) == 2
    assert "TorchScript archive" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "conv.pt", "own.json", "own.pt", "r.json", "r18_state.pt", "seq.pt", "small.pt",
        "ts.pt"]


def test_a_dataset_the_model_cannot_read_is_one_line(trained, capsys):
    d, ckpt = trained  # a 64-input LeNet on digits
    assert main(["prune", str(ckpt), "--dataset", "fashion-mnist", "--finetune-epochs", "0",
                 "--out", str(d / "never.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the model fails on --dataset fashion-mnist images" in err
    assert not (d / "never.pt").exists()


def test_prune_attention_heads_of_a_zoo_vit(tmp_path, capsys):
    """--units heads: a zoo ViT state_dict loses half its heads; the written file loads without
    running code and runs; a Torch-Pruning peer with heads is one line."""
    import coreprune
    from coreprune.models import build_model

    torch.manual_seed(0)
    torch.save(build_model("vit").state_dict(), tmp_path / "vit.pt")
    out = tmp_path / "small.pt"
    assert main(["prune", str(tmp_path / "vit.pt"), "--model", "vit", "--units", "heads",
                 "--keep-ratio", "0.5", "--out", str(out), "--json",
                 str(tmp_path / "r.json")]) == 0
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["method"] == "output-moment" and rec["settings"]["units"] == "heads"
    small = coreprune.load(out)
    assert [b.attn.heads for b in small.blocks] == [2, 2, 2, 2]
    assert small(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    coreprune.save(coreprune.io.load_model_file(tmp_path / "vit.pt", "vit")[0],
                   tmp_path / "original.pt")
    assert main(["verify", str(out), str(tmp_path / "original.pt")]) == 2
    assert "no coreset chose these heads" in capsys.readouterr().err
    assert main(["prune", str(tmp_path / "vit.pt"), "--model", "vit", "--units", "heads",
                 "--method", "tp-magnitude", "--keep-ratio", "0.5"]) == 2
    assert "prunes neurons here" in capsys.readouterr().err


def test_prune_a_hugging_face_folder_into_a_new_folder(tmp_path, capsys):
    """A save_pretrained folder is pruned without data (token ids from its config trace it) into
    a new folder that from_pretrained loads and generates from; the input is untouched; a config
    that needs the model's own code, per-layer widths a config cannot describe and an existing
    output are each one line."""
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = tf.LlamaConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32,
                            intermediate_size=64, vocab_size=100, num_key_value_heads=2,
                            bos_token_id=0, eos_token_id=0, pad_token_id=0)
    tf.LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    before = sorted(p.name for p in (tmp_path / "llama").iterdir())
    out = tmp_path / "small"
    assert main(["prune", str(tmp_path / "llama"), "--ratio", "0.1", "--out", str(out),
                 "--json", str(tmp_path / "r.json")]) == 0
    assert "from_pretrained loads it" in capsys.readouterr().out
    small = tf.LlamaForCausalLM.from_pretrained(out)
    assert small.config.intermediate_size < 64
    assert small.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=3,
                          do_sample=False).shape == (1, 6)
    rec = json.loads((out / "coreprune.json").read_text())["pruned"]
    n_small, n_full = (sum(p.numel() for p in m.parameters()) for m in (
        small, tf.LlamaForCausalLM.from_pretrained(tmp_path / "llama")))
    assert rec["params"] == [n_full, n_small] and rec["input_shape"] == [2, 16]
    # the fold's bias on down_proj: config.mlp_bias set, zero biases on gate_proj and up_proj
    # (2 x 50 per layer, counted: the 10% target is missed by them)
    assert small.config.mlp_bias and rec["params_removed"] > 0.09
    assert torch.count_nonzero(small.model.layers[0].mlp.gate_proj.bias) == 0
    assert sorted(p.name for p in (tmp_path / "llama").iterdir()) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    assert main(["prune", str(tmp_path / "llama"), "--ratio", "0.1", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    ratios = tmp_path / "ratios.yaml"
    ratios.write_text("model.layers.0.mlp.gate_proj: 0.5\nmodel.layers.1.mlp.gate_proj: 0.75\n")
    assert main(["prune", str(tmp_path / "llama"), "--layer-ratios", str(ratios), "--out",
                 str(tmp_path / "uneven")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "different widths" in err[-1] and not any("Loading" in line for line in err)
    assert not (tmp_path / "uneven").exists()
    assert main(["prune", str(tmp_path / "llama"), "--layer-ratios", str(ratios), "--out",
                 str(tmp_path / "uneven.pt")]) == 0  # a coreprune checkpoint holds any widths
    custom = json.loads((tmp_path / "llama" / "config.json").read_text())
    (tmp_path / "custom").mkdir()
    (tmp_path / "custom" / "config.json").write_text(json.dumps(
        {**custom, "auto_map": {"AutoModel": "modeling.MyModel"}}))
    assert main(["prune", str(tmp_path / "custom"), "--ratio", "0.1"]) == 2
    assert "own Python code" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["prune", str(tmp_path / "empty"), "--ratio", "0.1"]) == 2
    assert "without config.json" in capsys.readouterr().err


def test_train_gives_a_torchvision_model_the_datas_channels_and_classes(tmp_path):
    """torchvision's models default to 1000 classes and 3 channels: trained on the 8x8 digits
    (one channel, 10 classes) the checkpoint has a one-channel stem and a 10-way classifier."""
    from coreprune import io

    out = tmp_path / "mobilenet.pt"
    assert main(["train", "--model", "tv_mobilenet_v2", "--dataset", "digits", "--epochs", "1",
                 "--out", str(out)]) == 0
    model, _ = io.load_with_metadata(out)
    assert model.features[0][0].in_channels == 1 and model.classifier[-1].out_features == 10
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
