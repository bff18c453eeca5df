"""Attention heads as units (``units="heads"``): every recognised layout keeps its outputs at
0% removed, reports true parameter counts, cuts exactly where a head contributes nothing, and
keeps grouped-query attention valid."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import coreprune
from coreprune.errors import CorepruneWarning, InvalidArgumentError, UnsupportedModelError
from coreprune.metrics import count_params
from coreprune.models import ViT
from coreprune.pruning import Pruner
from coreprune.pruning.heads import find_attention_layers

SMALL = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 32,
         "intermediate_size": 64, "vocab_size": 100}


def _vit():
    torch.manual_seed(0)
    return ViT(dim=32, depth=2, heads=4, mlp_dim=64).eval(), torch.randn(3, 1, 28, 28)


def _hf(kind):
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    if kind == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=100,
                                                 bos_token_id=0, eos_token_id=0))
    elif kind == "llama":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(**SMALL, num_key_value_heads=2,
                                                   bos_token_id=0, eos_token_id=0,
                                                   pad_token_id=0))
    else:
        model = tf.BertModel(tf.BertConfig(**SMALL))
    x = torch.randint(0, 100, (2, 10), generator=torch.Generator().manual_seed(1))
    return model.eval(), x


def _out(model, x):
    y = model(x)
    return y if torch.is_tensor(y) else y[0]


def _prune(model, x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorepruneWarning)
        return coreprune.prune(model, example_inputs=x, units="heads", **kwargs)


@pytest.mark.parametrize("kind", ["vit", "gpt2", "llama", "bert"])
def test_every_layout_is_exact_at_zero_removed_and_counts_true_when_pruned(kind):
    model, x = _vit() if kind == "vit" else _hf(kind)
    ref = _out(model, x)
    same = _prune(model, x, keep_ratio=1.0)
    torch.testing.assert_close(_out(same, x), ref, rtol=0, atol=0)
    small = _prune(model, x, keep_ratio=0.5)
    report = coreprune.report_of(small)
    assert report.params_after == count_params(small) < count_params(model)
    assert torch.isfinite(_out(small, x)).all() and _out(small, x).shape == ref.shape
    layers = find_attention_layers(small)
    if kind == "llama":  # 4 query heads over 2 key/value heads: one group of 2 stays
        assert [(la.n_heads, la.n_kv_heads) for la in layers] == [(2, 1), (2, 1)]
        assert all(lr.info["unit"] == "key/value head with 2 query heads"
                   for lr in report.layers)
    elif kind == "gpt2":  # back in Conv1D, with the head count and split width updated
        blk = small.transformer.h[0].attn
        assert type(blk.c_attn).__name__ == "Conv1D" and blk.c_attn.weight.shape == (32, 48)
        assert blk.num_heads == 2 and blk.split_size == 16
    else:
        assert [la.n_heads for la in layers] == [2, 2]
    norm = "RMSNorm" if kind == "llama" else "LayerNorm"  # the moment model of the input
    assert all(lr.info["moment_model"].startswith(norm) for lr in report.layers)
    if kind != "gpt2":  # (GPT-2's Conv1D is not recognised outside the working copy)
        assert [la.n_kv_heads for la in layers] == [layers[0].n_kv_heads] * 2
    assert [(lr.n_units, lr.kept) for lr in report.layers] == [(report.layers[0].kept * 2,
                                                                 report.layers[0].kept)] * 2


@pytest.mark.parametrize("compensate", ["none", "mean"])
def test_a_head_that_writes_nothing_is_removed_exactly(compensate):
    """Head 2 of every block has zero output columns: the default score is 0, so it goes
    first, and the outputs do not change."""
    model, x = _vit()
    with torch.no_grad():
        for block in model.blocks:
            block.attn.proj.weight[:, 16:24] = 0.0
    small = _prune(model, x, keep_ratio=0.75, compensate=compensate)
    assert coreprune.report_of(small).layers[0].indices == [0, 1, 3]
    torch.testing.assert_close(small(x), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("compensate", ["mean", "value-bias"])
def test_compensation_is_exact_for_a_head_of_value_bias_only(compensate):
    """A head whose value rows are zero writes ``W_O,h b_V,h`` to every token, whatever its
    attention: ``"mean"`` and ``"value-bias"`` put exactly that into the output bias."""
    model, x = _vit()
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight[64 + 8:64 + 16] = 0.0  # value rows of head 1
            block.attn.qkv.bias[64 + 8:64 + 16] = 1.0
            block.attn.proj.weight[:, 8:16] *= 1e-3  # so the default score removes it
    ref = model(x)
    mean = _prune(model, x, keep_ratio=0.75, compensate=compensate)
    assert coreprune.report_of(mean).layers[0].indices == [0, 2, 3]
    torch.testing.assert_close(mean(x), ref, rtol=1e-5, atol=1e-5)
    dropped = _prune(model, x, keep_ratio=0.75, compensate="none")
    assert not torch.allclose(dropped(x), ref, rtol=1e-5, atol=1e-5)


def test_a_parameter_target_is_met_and_the_same_seed_gives_the_same_heads():
    model, x = _vit()
    a = _prune(model, x, params_removed=0.1, method="random", seed=3)
    b = _prune(model, x, params_removed=0.1, method="random", seed=3)
    ra, rb = coreprune.report_of(a), coreprune.report_of(b)
    assert ra.params_removed >= 0.1 and [lr.indices for lr in ra.layers] == \
        [lr.indices for lr in rb.layers]


def test_llama_with_fewer_heads_saves_and_loads(tmp_path):
    model, x = _hf("llama")
    small = _prune(model, x, keep_ratio=0.5)
    assert (small.config.num_attention_heads, small.config.num_key_value_heads,
            small.config.head_dim) == (2, 1, 8)
    small.save_pretrained(tmp_path)
    loaded = type(small).from_pretrained(tmp_path).eval()
    torch.testing.assert_close(loaded(x).logits, small(x).logits)
    assert small.generate(x[:1, :4], max_new_tokens=3, do_sample=False).shape == (1, 7)


def test_gpt2_warns_that_its_config_cannot_state_fewer_heads():
    model, x = _hf("gpt2")
    with pytest.warns(CorepruneWarning, match="derives the head width"):
        coreprune.prune(model, example_inputs=x, units="heads", keep_ratio=0.5)


def _torchvision_vit():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(32, 8, num_layers=2, num_heads=4,
                                                 hidden_dim=32, mlp_dim=64, num_classes=5)
    return model.eval(), torch.randn(2, 3, 32, 32)


def test_multihead_attention_heads_are_cut_as_separate_projections(tmp_path):
    model, x = _torchvision_vit()  # its attention is nn.MultiheadAttention
    ref = model(x)
    same = _prune(model, x, keep_ratio=1.0)
    assert isinstance(same.encoder.layers[0].self_attention, nn.MultiheadAttention)
    torch.testing.assert_close(same(x), ref)
    small = _prune(model, x, keep_ratio=0.5)
    report = coreprune.report_of(small)
    attn = small.encoder.layers[1].self_attention
    assert type(attn).__name__ == "SeparateQKVAttention" and attn.num_heads == 2
    assert attn.q_proj.out_features == attn.o_proj.in_features == 2 * 8
    assert report.params_after == count_params(small) == count_params(model) - 2 * 2 * (
        4 * 8 * 32 + 3 * 8)  # per layer, two heads: q, k, v rows with biases, o columns
    assert small(x).shape == ref.shape and torch.isfinite(small(x)).all()
    path, tokens = tmp_path / "attention.pt", torch.randn(2, 5, 32)
    coreprune.save(attn, path)  # the restricted loader builds it (no trusted=True)
    torch.testing.assert_close(coreprune.load(path)(tokens, tokens, tokens)[0],
                               attn(tokens, tokens, tokens)[0])


def test_multihead_attention_in_transformer_encoder_layers_keeps_its_masks():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    x = torch.randn(2, 6, 16)
    padding = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    ref = encoder(x, src_key_padding_mask=padding)
    same = _prune(encoder, x, keep_ratio=1.0)
    torch.testing.assert_close(same(x, src_key_padding_mask=padding), ref)
    small = _prune(encoder, x, keep_ratio=0.5)
    causal = nn.Transformer.generate_square_subsequent_mask(6)
    out = small(x, src_key_padding_mask=padding, mask=causal)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert small.layers[0].self_attn.num_heads == 2


def test_attention_that_cannot_be_cut_is_named_and_a_model_without_heads_fails_in_one_line():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True, add_bias_kv=True)
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(self.attn(x, x, x, need_weights=False)[0])

    x = torch.randn(2, 5, 8)
    with pytest.warns(CorepruneWarning, match="MultiheadAttention with add_bias_kv"), \
            pytest.raises(UnsupportedModelError, match="found no attention layer"):
        coreprune.prune(Block().eval(), example_inputs=x, units="heads", keep_ratio=0.5)


def _swin(version):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    name = "swin_tiny_patch4_window7_224" if version == 1 else "swinv2_tiny_window8_256"
    return timm.create_model(name, pretrained=False, img_size=32, patch_size=2, window_size=4,
                             embed_dim=16, depths=(1, 1), num_heads=(2, 4),
                             num_classes=3).eval(), torch.randn(2, 3, 32, 32)


def test_timm_swin_heads_take_their_relative_position_bias_with_them():
    model, x = _swin(1)
    ref = model(x)
    torch.testing.assert_close(_prune(model, x, keep_ratio=1.0)(x), ref, rtol=0, atol=0)
    small = _prune(model, x, keep_ratio=0.5)
    report = coreprune.report_of(small)
    assert report.params_after == count_params(small) < count_params(model)
    assert small(x).shape == ref.shape and torch.isfinite(small(x)).all()
    attn = small.layers[1].blocks[0].attn
    kept = report.layers[1].indices
    assert attn.num_heads == 2 and attn.qkv.out_features == 3 * 16
    torch.testing.assert_close(attn.relative_position_bias_table,
                               model.layers[1].blocks[0].attn.relative_position_bias_table[
                                   :, torch.as_tensor(kept)])


@pytest.mark.parametrize("version", [1, 2])
def test_torchvision_swin_heads_are_cut_with_their_relative_position_bias(version):
    from torchvision.models import swin_transformer as swin

    torch.manual_seed(0)  # 40 px: padded and shifted windows in the second stage
    v2 = {"block": swin.SwinTransformerBlockV2, "downsample_layer": swin.PatchMergingV2}
    model = swin.SwinTransformer([2, 2], 16, [1, 2], [2, 4], [4, 4], num_classes=5,
                                 **(v2 if version == 2 else {})).eval()
    with torch.no_grad():  # V2: logit scales and key biases that matter
        for m in model.modules():
            if hasattr(m, "logit_scale"):
                m.logit_scale.normal_(2.0, 0.5)
                m.qkv.bias.normal_()
    x = torch.randn(2, 3, 40, 40)
    ref = model(x)
    same = _prune(model, x, keep_ratio=1.0)
    assert type(same.features[3][1].attn) is type(model.features[3][1].attn)
    torch.testing.assert_close(same(x), ref)
    small = _prune(model, x, keep_ratio=0.5)
    report = coreprune.report_of(small)
    attn, before = small.features[3][1].attn, model.features[3][1].attn
    assert type(attn).__name__.startswith("SeparateHeadWindowAttention") and attn.num_heads == 2
    kept = torch.as_tensor(report.layers[2].indices)
    if version == 1:
        torch.testing.assert_close(attn.relative_position_bias_table,
                                   before.relative_position_bias_table[:, kept])
    else:
        torch.testing.assert_close(attn.logit_scale, before.logit_scale[kept])
        torch.testing.assert_close(attn.cpb_mlp[2].weight, before.cpb_mlp[2].weight[kept])
    assert report.params_after == count_params(small) < count_params(model)
    assert small(x).shape == ref.shape and torch.isfinite(small(x)).all()


def test_torchvision_maxvit_heads_are_cut_with_their_relative_position_bias():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.MaxVit((32, 32), 8, 2, [16, 32], [1, 1], head_dim=4,
                                      stochastic_depth_prob=0.0, num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32)
    ref = model(x)
    same = _prune(model, x, keep_ratio=1.0)
    torch.testing.assert_close(same(x), ref)
    small = _prune(model, x, keep_ratio=0.5)
    report = coreprune.report_of(small)
    assert [(r.n_units, r.kept) for r in report.layers] == [(4, 2), (4, 2), (8, 4), (8, 4)]
    name = report.layers[2].name
    attn, before = small.get_submodule(name), model.get_submodule(name)
    assert type(attn).__name__ == "SeparateHeadRelativeAttention" and attn.n_heads == 4
    kept = torch.as_tensor(report.layers[2].indices)
    torch.testing.assert_close(attn.relative_position_bias_table,
                               before.relative_position_bias_table[:, kept])
    assert report.params_after == count_params(small) < count_params(model)
    assert small(x).shape == ref.shape and torch.isfinite(small(x)).all()


def test_swin_attention_that_cannot_be_cut_is_named_not_broken():
    model, x = _swin(2)  # timm's Swin V2: query and value biases beside the projections
    with pytest.warns(CorepruneWarning, match="a parameter 'q_bias'"), \
            pytest.raises(UnsupportedModelError, match="found no attention layer"):
        coreprune.prune(model, example_inputs=x, units="heads", keep_ratio=0.5)
    from torchvision.models.swin_transformer import ShiftedWindowAttention

    skipped = {}
    block = nn.Sequential(nn.Linear(8, 8))
    block.attn = ShiftedWindowAttention(8, [2, 2], [0, 0], 2)
    assert find_attention_layers(block, skipped=skipped) == []
    assert "torchvision's Swin window attention" in skipped["attn"]


def test_bad_head_options_are_refused_in_one_line():
    with pytest.raises(InvalidArgumentError, match="units must be one of"):
        Pruner(units="channels", keep_ratio=0.5)
    with pytest.raises(InvalidArgumentError, match="unknown head method 'greedy'"):
        Pruner("greedy", units="heads", keep_ratio=0.5)
    with pytest.raises(InvalidArgumentError, match="FLOPs"):
        Pruner(units="heads", flops_removed=0.5)
    with pytest.raises(InvalidArgumentError, match="compensate"):
        Pruner(units="heads", keep_ratio=0.5, compensate="reconstruct")
    assert np.isclose(Pruner(units="heads", keep_ratio=0.5).target_value, 0.5)


def test_different_head_counts_per_layer_leave_the_config_and_say_so():
    model, x = _hf("llama")
    with pytest.warns(CorepruneWarning, match="different head counts"):
        small = coreprune.prune(model, example_inputs=x, units="heads",
                                layer_ratios={"model.layers.0.self_attn": 0.5})
    assert small.config.num_attention_heads == 4
    assert [la.n_heads for la in find_attention_layers(small)] == [2, 4]
