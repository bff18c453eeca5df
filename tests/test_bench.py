import json

import pytest
import torch

from coreprune import io
from coreprune.bench import load_config, read_records, run_bench
from coreprune.cli import main
from coreprune.errors import CheckpointError, DataFileError, InvalidArgumentError

CONFIG = """
name: tiny
model: lenet300
dataset: digits
checkpoint: {d}/model.pt
train: {{epochs: 1}}
methods: [coreset, l1, tp-magnitude]
params_removed: [0.5]
seeds: [0, 1]
finetune: {{epochs: 0}}
records: {d}/records.jsonl
"""


def write_config(tmp_path, **changes):
    text = CONFIG.format(d=tmp_path)
    for k, v in changes.items():
        if f"\n{k}:" not in text:
            text = text.rstrip("\n") + f"\n{k}: {v}\n"
        text = "\n".join(f"{k}: {v}" if line.startswith(f"{k}:") else line
                         for line in text.splitlines())
    p = tmp_path / "bench.yaml"
    p.write_text(text)
    return p


def test_resumes_without_redoing_records(tmp_path):
    cfg = load_config(write_config(tmp_path))
    records = run_bench(cfg, log=lambda s: None)
    assert len(records) == 6
    assert {r["method"] for r in records} == {"coreset", "l1", "tp-magnitude"}
    for r in records:
        for key in ("model", "dataset", "method", "seed", "params_removed", "flops_removed",
                    "acc_unpruned", "acc_pruned", "acc_finetuned", "prune_seconds"):
            assert key in r
    # a killed run: the last record torn half-way, another never written
    path = cfg.records
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])
    assert len(read_records(path)) == 4
    logged = []
    records = run_bench(cfg, log=logged.append)
    assert "4 records found, 2 to run" in logged[0]
    assert len(records) == 6 and len(path.read_text().splitlines()) == 6
    again = run_bench(cfg, log=logged.append)
    assert again == records  # nothing redone


def test_refuses_to_mix_records_of_another_model(tmp_path):
    cfg = load_config(write_config(tmp_path, methods="[l1]", seeds="[0, 1]"))
    run_bench(cfg, log=lambda s: None)
    model, meta = io.load_with_metadata(cfg.checkpoint)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # a different model: predicts one class for every image
    io.save(model, cfg.checkpoint, meta, overwrite=True)
    lines = cfg.records.read_text().splitlines()
    cfg.records.write_text(lines[0] + "\n")  # one run left to do
    with pytest.raises(CheckpointError, match="another model"):
        run_bench(cfg, log=lambda s: None)
    assert cfg.records.read_text() == lines[0] + "\n"  # nothing appended


def test_unpruned_models_yields_each_configs_trained_model_and_accuracy(tmp_path):
    from coreprune.bench import unpruned_models
    from coreprune.train import evaluate

    path = write_config(tmp_path, test_images=50)
    logged = []
    [(cfg, model, te, acc0)] = list(unpruned_models([path], log=logged.append))
    assert cfg.name == "tiny" and cfg.checkpoint.exists() and len(te) == 50
    assert acc0 == evaluate(model, te)
    assert f"tiny: unpruned {acc0:.2f} on 50 test images" in logged


def test_bench_cli_writes_plot_and_table(tmp_path, capsys):
    p = write_config(tmp_path, methods="[l1, random]", seeds="[0]")
    md = tmp_path / "RESULTS.md"
    assert main(["bench", str(p), "--results-md", str(md)]) == 0
    assert (tmp_path / "records.png").stat().st_size > 1000
    text = md.read_text()
    assert "| params removed | method |" in text and "coreprune bench" in text
    assert main(["bench", str(p), "--no-run", "--results-md", str(md)]) == 2  # exists
    assert "exists" in capsys.readouterr().err


def test_test_and_finetune_subsets_are_recorded_and_shared(tmp_path):
    from coreprune.bench import results_markdown

    p = write_config(tmp_path, methods="[l1, random]", seeds="[0, 1]",
                     finetune="{epochs: 1, lr: 0.01, train_images: 50}", test_images=40)
    logged = []
    records = run_bench(load_config(p), log=logged.append)
    assert any("on 40 test images; fine-tuning on 50 training images" in s for s in logged)
    assert {r["test_images"] for r in records} == {40}
    assert {r["finetune"]["train_images"] for r in records} == {50}
    # one subset for every run: the unpruned accuracy is a multiple of 1/40
    assert len({r["acc_unpruned"] for r in records}) == 1
    assert round(records[0]["acc_unpruned"] * 40 / 100, 6).is_integer()
    text = results_markdown([("tiny", records, "tiny.png")], "cmd")
    assert "on 40 test images (a seeded subset)" in text
    assert "on 50 training images (a seeded subset)" in text


@pytest.mark.parametrize("change, match", [
    ({"methods": "[coreset, nope]"}, "unknown method 'nope'"),
    ({"methods": "[coreset, nope+bn]"}, "unknown method 'nope\\+bn'"),
    ({"methods": "[tp-magnitude+bn]"}, "not to the Torch-Pruning peer 'tp-magnitude'"),
    ({"params_removed": "[0.5, 1.2]"}, "params_removed"),
    ({"model": "alexnet"}, "alexnet"),
    ({"seeds": "[a]"}, "seeds"),
    ({"finetune": "{epochs: 1, momentum: 0.5}"}, "momentum"),
    ({"finetune": "{epochs: 1, train_images: 0}"}, "finetune.train_images"),
    ({"test_images": "many"}, "test_images must be a positive integer"),
])
def test_bad_config_is_named(tmp_path, change, match):
    with pytest.raises(InvalidArgumentError, match=match):
        load_config(write_config(tmp_path, **change))


def test_missing_config_and_corrupt_records(tmp_path):
    with pytest.raises(DataFileError, match="not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(DataFileError, match="line 2"):
        read_records(bad)
    bad.write_text(json.dumps({"a": 1}) + "\n")
    assert read_records(bad) == [{"a": 1}]


def test_committed_configs_are_valid():
    from pathlib import Path

    configs = sorted((Path(__file__).parents[1] / "benchmarks").glob("*.yaml"))
    assert len(configs) >= 3
    for path in configs:
        cfg = load_config(path)
        assert cfg.methods and cfg.levels and cfg.seeds


def _record(method, pruned, finetuned, seed=0):
    return {"model": "m", "dataset": "d", "method": method, "seed": seed, "params_removed": 0.5,
            "flops_removed": 0.5, "acc_unpruned": 90.0, "acc_pruned": pruned,
            "acc_finetuned": finetuned, "target": {"params_removed": 0.5},
            "finetune": {"epochs": 1}}


def test_verdict_names_baselines_above_the_default_apart_from_our_other_settings():
    from coreprune.bench import results_markdown

    recs = [_record("greedy", 40.0, 88.0), _record("coreset+none", 45.0, 88.1),
            _record("l1", 30.0, 88.9)]
    text = results_markdown([("t", recs, "t.png")], "cmd")
    assert ("greedy ≥ every data-independent baseline (other settings of ours above it: "
            "coreset+none); after fine-tuning: 0.90 below the best (l1) — within 0.5: NO"
            in text)
    recs.append(_record("random+reconstruct", 41.0, 87.0))
    assert "greedy BELOW random+reconstruct (other settings" in results_markdown(
        [("t", recs, "t.png")], "c")


def test_method_labels_choose_compensation_and_records_keep_label_and_setting(tmp_path):
    from coreprune.bench import method_options

    assert method_options("coreset") == ("coreset", {})
    assert method_options("l1+bn") == ("l1", {"compensate": "bn-mean"})
    assert method_options("coreset-scaled+nobn") == ("coreset-scaled", {"compensate": "none"})
    assert method_options("l1+merge") == ("l1", {"compensate": "merge"})
    assert method_options("greedy+reconstruct") == ("greedy", {"compensate": "reconstruct"})
    for bad, msg in (("l1+magic", "unknown compensation 'magic'"),
                     ("tp-magnitude+merge", "not to the Torch-Pruning peer"),
                     ("nope+none", r"unknown method .nope\+none.")):
        with pytest.raises(InvalidArgumentError, match=msg):
            method_options(bad)
    p = write_config(tmp_path, model="resnet20",
                     methods="[coreset, coreset+nobn, l1, l1+bn, l1+merge]",
                     seeds="[0]", finetune="{epochs: 0}", test_images=30)
    got = {r["method"]: r["settings"]["compensate"] for r in run_bench(load_config(p))}
    assert got == {"coreset": "reconstruct", "coreset+nobn": "none", "l1": "none",
                   "l1+bn": "bn-mean", "l1+merge": "merge"}


def test_committed_results_pages_match_their_records():
    """docs/results.md and benchmarks/RESULTS.md are what the command at their top makes from
    the committed records (the text rebuilt here; the plots are not redrawn)."""
    import os
    import shlex
    from pathlib import Path

    from coreprune.bench import results_markdown

    root = Path(__file__).parents[1]
    for page in (root / "docs" / "results.md", root / "benchmarks" / "RESULTS.md"):
        text = page.read_text()
        command = text.splitlines()[4].strip()
        args = shlex.split(command)
        assert args[:2] == ["coreprune", "bench"] and "--no-run" in args
        configs = [a for a in args[2:] if a.endswith(".yaml")]
        title = args[args.index("--title") + 1] if "--title" in args else "Benchmark results"
        sections = []
        for c in configs:
            cfg = load_config(root / c)
            records = read_records(root / cfg.records)
            png = os.path.relpath(root / cfg.records.with_suffix(".png"), page.parent)
            sections.append((cfg.name, records, png if records else f"coreprune bench {c}"))
        assert results_markdown(sections, command, title) == text, page


def _coverage_module():
    """benchmarks/coverage.py as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "coverage.py"
    spec = importlib.util.spec_from_file_location("coverage_bench", path)
    coverage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(coverage)
    return coverage


def test_coverage_benchmark_records_pruned_models_and_one_line_errors(tmp_path):
    """The coverage harness (benchmarks/coverage.py) on a small subset, as CI runs it: models
    coreprune prunes (output checked, counts true, Torch-Pruning timed beside it), one of them
    one that Torch-Pruning alone fails on."""
    coverage = _coverage_module()
    out = tmp_path / "cov"
    assert coverage.main(["--models", "tv:regnet_x_400mf", "hf:gpt2", "tv:shufflenet_v2_x0_5",
                          "--threads", "1", "--timeout", "300", "--out", str(out)]) == 0
    rows = {r["model"]: r for r in json.loads(out.with_suffix(".json").read_text())["rows"]}
    ok = rows["tv:regnet_x_400mf"]["coreprune"]
    assert ok["status"] == "ok" and ok["output_ok"] and ok["params_match"]
    assert ok["params_removed"] >= 0.5 and ok["min_kept_fraction"] >= 0.1
    assert ok["tp_same_widths_seconds"] > 0
    assert rows["tv:regnet_x_400mf"]["tp_alone"]["status"] == "ok"
    gpt2 = rows["hf:gpt2"]["coreprune"]  # at --hf-target: FFN neurons only
    assert gpt2["status"] == "ok" and gpt2["output_ok"] and gpt2["params_match"]
    assert gpt2["params_removed"] >= 0.15
    shuffle = rows["tv:shufflenet_v2_x0_5"]  # Torch-Pruning alone fails on its channel shuffle
    assert shuffle["coreprune"]["status"] == "ok" and shuffle["coreprune"]["output_ok"]
    assert shuffle["tp_alone"]["status"].startswith("ZeroDivisionError")
    assert "| tv:regnet_x_400mf |" in out.with_suffix(".md").read_text()


def test_coverage_benchmark_of_attention_heads(tmp_path):
    """``coverage.py --units heads``: half of every attention layer's heads removed, output
    checked and counts true; Torch-Pruning is not run on heads and the table says so."""
    coverage = _coverage_module()
    out = tmp_path / "heads"
    assert coverage.main(["--units", "heads", "--models", "hf:vit", "--threads", "1",
                          "--timeout", "300", "--out", str(out)]) == 0
    row, = json.loads(out.with_suffix(".json").read_text())["rows"]
    ours = row["coreprune"]
    assert ours["status"] == "ok" and ours["output_ok"] and ours["params_match"]
    assert ours["min_kept_fraction"] == 0.5 and ours["pruned_groups"] == ours["groups"] == 2
    assert row["tp_alone"]["status"] == "not run (heads)"
    assert "not compared" in out.with_suffix(".md").read_text()
