"""Hugging Face layers and models: Conv1D and tanh-GELU swapped for their PyTorch equals while
pruning, attention projections left whole, gated MLPs, model outputs that are not tensors, and
the config's FFN width."""

import warnings

import pytest
import torch
from torch import nn

import coreprune
from coreprune.errors import CorepruneWarning
from coreprune.metrics import count_params
from coreprune.pruning.groups import build_graph, find_unit_groups, traced_outputs
from coreprune.pruning.layers import (
    SeparateQKVAttention,
    restore_layers,
    update_hf_config,
    working_copy,
)

SMALL = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 32,
         "intermediate_size": 64, "vocab_size": 100}


def _gpt2():
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    return tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=100,
                                            bos_token_id=0, eos_token_id=0)).eval()


def _llama():
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = tf.LlamaConfig(**SMALL, num_key_value_heads=2, bos_token_id=0, eos_token_id=0,
                            pad_token_id=0)
    return tf.LlamaForCausalLM(config).eval()


def _tokens(n=2, length=12):
    return torch.randint(0, 100, (n, length), generator=torch.Generator().manual_seed(1))


def _quiet_prune(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorepruneWarning)
        return coreprune.prune(model, **kwargs)


def test_traced_outputs_collects_tensors_from_nested_outputs_and_skips_the_rest():
    a = torch.ones(2, requires_grad=True) * 2
    b = torch.ones(3, requires_grad=True) + 1
    out = {"logits": a, "cache": object(), "hidden": (b, [torch.zeros(1)]), "n": 3}
    assert [t is a or t is b for t in traced_outputs(out)] == [True, True]
    assert traced_outputs(torch.zeros(2)) == []  # no autograd history


def test_working_copy_swaps_conv1d_and_tanh_gelu_and_restores_them_exactly():
    model = _gpt2()
    x = _tokens()
    work, replaced = working_copy(model)
    kinds = {type(m).__name__ for m in replaced.values()}
    assert kinds == {"Conv1D", "NewGELUActivation"}
    assert not any(type(m).__name__ == "Conv1D" for m in work.modules())
    torch.testing.assert_close(work(x).logits, model(x).logits, rtol=1e-5, atol=1e-5)
    restore_layers(work, replaced)
    assert [type(m) for m in work.modules()] == [type(m) for m in model.modules()]
    torch.testing.assert_close(work(x).logits, model(x).logits, rtol=0, atol=0)
    assert work.state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kdim", [None, 6])
def test_multihead_attention_as_separate_projections_has_the_same_outputs(batch_first, kdim):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first, kdim=kdim, vdim=kdim).eval()
    work, replaced = working_copy(nn.Sequential(mha), split_attention=True)
    assert isinstance(work[0], SeparateQKVAttention) and list(replaced) == ["0"]
    n, length, source = 3, 5, 7
    query = torch.randn(n, length, 8)
    key = torch.randn(n, source, kdim or 8)
    if not batch_first:
        query, key = query.transpose(0, 1), key.transpose(0, 1)
    padding = torch.rand(n, source, generator=torch.Generator().manual_seed(1)) < 0.3
    padding[:, 0] = False
    causal = torch.ones(length, source, dtype=torch.bool).triu(1)
    for kwargs in ({}, {"key_padding_mask": padding}, {"attn_mask": causal},
                   {"attn_mask": torch.randn(n * 2, length, source)},
                   {"attn_mask": causal, "need_weights": False},
                   {"average_attn_weights": False}):
        want, got = mha(query, key, key, **kwargs), work[0](query, key, key, **kwargs)
        torch.testing.assert_close(got[0], want[0])
        assert (got[1] is None) == (want[1] is None)
        if want[1] is not None:
            torch.testing.assert_close(got[1], want[1])
    one_q, one_k = (query[0], key[0]) if batch_first else (query[:, 0], key[:, 0])
    torch.testing.assert_close(work[0](one_q, one_k, one_k)[0], mha(one_q, one_k, one_k)[0])
    with pytest.raises(ValueError, match="a 3-D mask needs batch x heads = 6 rows"):
        work[0](query, key, key, attn_mask=torch.zeros(4, length, source))
    restore_layers(work, replaced)  # every head kept: nn.MultiheadAttention again
    assert type(work[0]) is nn.MultiheadAttention
    torch.testing.assert_close(work[0](query, key, key)[0], mha(query, key, key)[0],
                               rtol=0, atol=0)


def test_gpt2_prunes_its_ffn_neurons_in_conv1d_and_leaves_attention_whole():
    model = _gpt2()
    x = _tokens()
    with pytest.warns(CorepruneWarning, match="an attention projection"):
        small = coreprune.prune(model, params_removed=0.15, example_inputs=x[:1])
    report = coreprune.report_of(small)
    assert [lr.name for lr in report.layers] == ["transformer.h.0.mlp.c_fc",
                                                 "transformer.h.1.mlp.c_fc"]
    assert {"transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"} <= set(
        report.unpruned)
    assert report.params_after == count_params(small) and report.params_removed >= 0.15
    assert all(lr.info["compensation"] == "reconstruct" for lr in report.layers)
    for i, lr in enumerate(report.layers):
        mlp = small.transformer.h[i].mlp
        assert type(mlp.c_fc).__name__ == "Conv1D" == type(mlp.c_proj).__name__
        assert mlp.c_fc.weight.shape == (32, lr.kept) and mlp.c_fc.nf == lr.kept
        assert mlp.c_proj.weight.shape == (lr.kept, 32) and mlp.c_proj.nx == lr.kept
    y = small(x).logits
    assert y.shape == (2, 12, 100) and torch.isfinite(y).all()
    same = _quiet_prune(model, keep_ratio=1.0, example_inputs=x[:1])
    torch.testing.assert_close(same(x).logits, model(x).logits, rtol=0, atol=0)


def test_gated_mlp_unit_is_one_index_of_gate_up_and_down_and_gqa_attention_is_left_whole():
    model = _llama()
    x = _tokens()
    graph = build_graph(working_copy(model)[0], x[:1])
    skipped: dict[str, str] = {}
    groups = find_unit_groups(graph, skipped=skipped)
    assert [(g.name, g.gates, g.consumers) for g in groups] == [
        (f"model.layers.{i}.mlp.gate_proj", [f"model.layers.{i}.mlp.up_proj"],
         [f"model.layers.{i}.mlp.down_proj"]) for i in range(2)]
    assert all("attention projection" in skipped[f"model.layers.{i}.self_attn.{p}_proj"]
               for i in range(2) for p in "qkv")
    small = _quiet_prune(model, method="l1", params_removed=0.2, example_inputs=x[:1])
    report = coreprune.report_of(small)
    assert report.params_after == count_params(small) and report.params_removed >= 0.2
    for i, lr in enumerate(report.layers):
        mlp = small.model.layers[i].mlp
        assert mlp.gate_proj.out_features == mlp.up_proj.out_features == lr.kept < 64
        assert mlp.down_proj.in_features == lr.kept
        # unit j is row j of gate and up and column j of down: dropping it is exact
        keep = torch.as_tensor(lr.indices)
        ref = model.model.layers[i].mlp
        torch.testing.assert_close(mlp.gate_proj.weight, ref.gate_proj.weight[keep])
        torch.testing.assert_close(mlp.up_proj.weight, ref.up_proj.weight[keep])
        torch.testing.assert_close(mlp.down_proj.weight, ref.down_proj.weight[:, keep])
    out = small.generate(x[:1], max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 16)
    same = _quiet_prune(model, keep_ratio=1.0, example_inputs=x[:1])
    torch.testing.assert_close(same(x).logits, model(x).logits, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["l1", "greedy"])
@pytest.mark.parametrize("build", [_gpt2, _llama])
def test_uniform_ffn_widths_update_the_config_so_from_pretrained_rebuilds_the_model(
        build, method, tmp_path):
    """With reconstruction (greedy) LLaMA's down_proj gains the fold's bias: the config gets
    mlp_bias and gate/up zero biases, so from_pretrained rebuilds the same outputs."""
    model = build()
    x = _tokens()
    small = _quiet_prune(model, method=method, params_removed=0.1, example_inputs=x[:1],
                         allocation="uniform")
    if method == "greedy" and build is _llama:
        assert small.config.mlp_bias and not model.config.mlp_bias
        assert small.model.layers[0].mlp.down_proj.bias is not None
    kept = {lr.kept for lr in coreprune.report_of(small).layers}
    assert len(kept) == 1
    field = "n_inner" if "GPT2" in type(model).__name__ else "intermediate_size"
    assert getattr(small.config, field) == kept.pop()
    assert getattr(model.config, field) in (None, 64)  # the user's config is untouched
    small.save_pretrained(tmp_path)
    again = type(model).from_pretrained(tmp_path).eval()
    torch.testing.assert_close(again(x).logits, small(x).logits, rtol=0, atol=0)


def test_a_fold_bias_a_config_cannot_describe_is_named():
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = tf.Qwen2ForCausalLM(tf.Qwen2Config(**SMALL, num_key_value_heads=2)).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CorepruneWarning)
        small = coreprune.prune(model, params_removed=0.1, example_inputs=_tokens()[:1])
    assert small.model.layers[0].mlp.down_proj.bias is not None
    assert any("Qwen2Config has no field for" in str(w.message) for w in caught)


def test_ffn_widths_that_differ_per_layer_leave_the_config_and_say_why():
    model = _llama()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CorepruneWarning)
        small = coreprune.prune(model, method="l1", example_inputs=_tokens()[:1],
                                layer_ratios={"model.layers.0.mlp.gate_proj": 0.5})
    assert any("config.intermediate_size cannot describe" in str(w.message) for w in caught)
    assert small.config.intermediate_size == 64
    assert update_hf_config(nn.Linear(2, 2), {}) is None  # not a Hugging Face model


def test_a_plain_attention_block_leaves_its_projections_whole():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.qkv = nn.Linear(8, 16), nn.Linear(16, 48)
            self.proj, self.fc1, self.fc2 = nn.Linear(16, 16), nn.Linear(16, 32), nn.Linear(32, 4)

        def forward(self, x):  # (batch, tokens, 8)
            x = self.embed(x)
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            a = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v
            return self.fc2(torch.relu(self.fc1(x + self.proj(a)))).mean(1)

    torch.manual_seed(0)
    model = Block().eval()
    skipped: dict[str, str] = {}
    groups = find_unit_groups(build_graph(model, torch.randn(1, 5, 8)), skipped=skipped)
    assert [g.name for g in groups] == ["fc1"]
    assert "attention projection" in skipped["qkv"]
