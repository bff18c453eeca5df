import numpy as np
import pytest
import torch
from torch import nn

from coreprune.errors import InvalidArgumentError
from coreprune.pruning import build_graph, find_unit_groups
from coreprune.pruning.propagation import (
    InputPrior,
    MixtureMoments,
    MomentPropagator,
    analytic_moments,
)
from coreprune.reconstruction import Gaussian


def _mlp(prior):
    """A BatchNorm MLP whose running statistics are those of its input under ``prior`` (as
    training on data from the prior would leave them): the BatchNorm marginals the moment model
    takes are then the true ones."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 7),
                          nn.BatchNorm1d(7), nn.GELU(), nn.Dropout(0.2), nn.Linear(7, 3)).eval()
    g = prior.gaussian((3, 4))
    z = torch.randn(400_000, g.dim, generator=torch.Generator().manual_seed(7))
    x = (torch.as_tensor(g.mean).float() + torch.as_tensor(g.std).float() * z).reshape(-1, 3, 4)
    with torch.no_grad():
        a = model[:4](x)
        model[4].running_mean.copy_(a.mean(0))
        model[4].running_var.copy_(a.var(0))
        model[4].weight.uniform_(0.5, 1.5)
        model[4].bias.normal_(0.0, 0.5)
    return model


def _propagated(model, prior, shape=(3, 4)):
    x = torch.randn(2, *shape)
    graph = build_graph(model, x)
    groups = find_unit_groups(graph)
    prop = MomentPropagator(graph, x, prior, samples=200_000, seed=0)
    return [prop.unit_moments(g, i) for i, g in enumerate(groups)]


def _sampled(model, prior, shape=(3, 4), n=400_000):
    g = prior.gaussian(shape)
    mean, std = torch.as_tensor(g.mean).float(), torch.as_tensor(g.std).float()
    z = torch.randn(n, mean.numel(), generator=torch.Generator().manual_seed(1))
    x = (mean + std * z).reshape(n, *shape)
    with torch.no_grad():
        h1 = model[:3](x).double().numpy()
        h2 = model[:6](x).double().numpy()
    return [(h.mean(0), np.cov(h.T, bias=True)) for h in (h1, h2)]


@pytest.mark.parametrize("prior", [InputPrior(), InputPrior(0.3, 0.5),
                                   InputPrior(np.linspace(-0.5, 0.5, 3), [0.5, 1.0, 2.0])])
def test_propagated_moments_match_the_network_on_samples_from_the_prior(prior):
    model = _mlp(prior)
    x = torch.randn(2, 3, 4)
    graph = build_graph(model, x)
    g1, g2 = find_unit_groups(graph)
    prop = MomentPropagator(graph, x, prior, samples=200_000, seed=0)
    (h1, why1), (h2, why2) = prop.unit_moments(g1, 0), prop.unit_moments(g2, 1)
    assert why1 == why2 == ""
    pre2 = prop._state(graph.module2node[model[4]])  # the BatchNorm's output
    gauss = prior.gaussian((3, 4))
    z = torch.randn(400_000, gauss.dim, generator=torch.Generator().manual_seed(1))
    xs = (torch.as_tensor(gauss.mean).float() + torch.as_tensor(gauss.std).float() * z)
    with torch.no_grad():
        sampled = [model[:k](xs.reshape(-1, 3, 4)).double().numpy() for k in (3, 5, 6)]
    (m1, c1), (mp, cp), (m2, c2) = ((s.mean(0), np.cov(s.T, bias=True)) for s in sampled)
    # the first layer's pre-activations are exactly Gaussian: the closed form is exact
    np.testing.assert_allclose(h1.mean, m1, atol=0.01 * np.abs(m1).max())
    np.testing.assert_allclose(h1.cov, c1, atol=0.01 * np.abs(c1).max())
    # the second layer's pre-activations are linear in the first layer's outputs, and the
    # BatchNorm's marginals are its running statistics (here the true ones): exact too
    np.testing.assert_allclose(pre2.mean, mp, atol=0.01 * np.abs(mp).max())
    np.testing.assert_allclose(pre2.cov, cp, atol=0.01 * np.abs(cp).max())
    # its GELU outputs: the pre-activations moment-matched as a Gaussian (approximate: a sum of
    # 9 ReLU outputs is skewed; for the third prior the Gaussian's exact GELU moments are 0.30
    # of the largest entry off, as are 200,000 Monte Carlo draws from it)
    np.testing.assert_allclose(h2.mean, m2, atol=0.1 * np.abs(m2).max())
    np.testing.assert_allclose(h2.cov, c2, atol=0.35 * np.abs(c2).max())


def test_prior_shapes_and_errors():
    g = InputPrior([1.0, 2.0, 3.0], 2.0).gaussian((3, 2))
    np.testing.assert_allclose(g.mean, [1, 1, 2, 2, 3, 3])
    np.testing.assert_allclose(np.diag(g.cov), 4.0)
    assert InputPrior.from_value((0.5, 0.1)) == InputPrior(0.5, 0.1)
    with pytest.raises(InvalidArgumentError, match="does not fit inputs of shape"):
        InputPrior([1.0, 2.0], 1.0).gaussian((3, 2))
    with pytest.raises(InvalidArgumentError, match="must be non-negative"):
        InputPrior(0.0, -1.0).gaussian((2,))
    with pytest.raises(InvalidArgumentError, match=r"input_prior must be \(mean, std\)"):
        InputPrior.from_value(3.0)
    for bad in (1.0, (0.5, -0.1), (), "x"):
        with pytest.raises(InvalidArgumentError, match="spatial_correlation must be a value"):
            InputPrior(0.0, 1.0, bad)


def test_a_mixture_prior_mixes_the_moments_of_its_components_layer_by_layer():
    """Each component is followed through the network on its own (the ReLU of a mixture is not
    the ReLU of its moment-matched Gaussian) and the groups' moments are mixed."""
    prior = InputPrior.from_value((0.0, 1.0, [0.0, 0.5, 0.9]))
    assert prior.spatial_correlation == (0.0, 0.5, 0.9)
    assert [c.spatial_correlation for c in prior.components()] == [0.0, 0.5, 0.9]
    assert InputPrior(0.0, 1.0, 0.5).components() == [InputPrior(0.0, 1.0, 0.5)]
    assert prior.config()["spatial_correlation"] == [0.0, 0.5, 0.9]
    # the flat prior of a mixture is its moments
    g = prior.gaussian((1, 3, 3))
    comps = [c.gaussian((1, 3, 3)) for c in prior.components()]
    np.testing.assert_allclose(g.cov, np.mean([c.cov for c in comps], 0))
    assert comps[1].cov[0, 1] == pytest.approx(0.5) and comps[1].cov[0, 4] == pytest.approx(0.25)
    with pytest.raises(InvalidArgumentError, match="one field per component"):
        prior.field((1, 3, 3))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(9, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU(),
                          nn.Linear(4, 2)).eval()
    x = torch.randn(2, 1, 3, 3)
    graph = build_graph(model, x)
    groups = find_unit_groups(graph)
    mixed = analytic_moments(graph, x, prior)
    assert isinstance(mixed, MixtureMoments) and len(mixed.propagators) == 3
    assert isinstance(analytic_moments(graph, x, InputPrior(0.0, 1.0, 0.0)), MomentPropagator)
    for gi, grp in enumerate(groups):
        h, why = mixed.unit_moments(grp, gi)
        parts = [MomentPropagator(graph, x, c).unit_moments(grp, gi)[0]
                 for c in prior.components()]
        want = Gaussian.mixture(parts)
        assert why == "" and mixed.propagators[0].read_prior
        np.testing.assert_allclose(h.mean, want.mean, atol=1e-12)
        np.testing.assert_allclose(h.cov, want.cov, atol=1e-12)
    # and against sampling the mixture through the network: the first layer is exact
    n = 300_000
    zs = []
    for k, c in enumerate(comps):
        z = np.random.default_rng(k).multivariate_normal(c.mean, c.cov, size=n)
        zs.append(z)
    xs = torch.as_tensor(np.concatenate(zs)).float().reshape(-1, 1, 3, 3)
    with torch.no_grad():
        h1 = model[:3](xs).double().numpy()
    h, _ = mixed.unit_moments(groups[0], 0)
    np.testing.assert_allclose(h.mean, h1.mean(0), atol=0.01 * np.abs(h1.mean(0)).max())
    np.testing.assert_allclose(h.cov, np.cov(h1.T, bias=True),
                               atol=0.02 * np.abs(h.cov).max())


class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 5), nn.Linear(5, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(2.0 * x - 1.0)))


def test_layers_outside_the_moment_model_say_why():
    (h, why), = _propagated(_Scaled().eval(), InputPrior(), shape=(6,))
    assert h is None and "changes its input before" in why
    from coreprune.models import build_model

    net = build_model("resnet20", in_channels=1).eval()
    x = torch.randn(2, 1, 32, 32)
    graph = build_graph(net, x)
    coupled = next(g for g in find_unit_groups(graph, prune_coupled=True) if g.coupled)
    h, why = MomentPropagator(graph, x, InputPrior()).unit_moments(coupled, 0)
    assert h is None and "coupled through a residual addition" in why


def test_a_mixture_computes_once_what_does_not_depend_on_the_prior():
    """Units behind a LayerNorm (a source of the moment model) have the same moments under every
    component: the mixture computes them once."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(9, 6), nn.ReLU(), nn.Linear(6, 6),
                          nn.LayerNorm(6), nn.Linear(6, 5), nn.GELU(), nn.Linear(5, 2)).eval()
    x = torch.randn(2, 1, 3, 3)
    graph = build_graph(model, x)
    (behind,) = find_unit_groups(graph, ignored_layers=(model[3],))
    mixed = analytic_moments(graph, x, InputPrior(0.0, 1.0, (0.0, 0.9)), samples=20_000)
    h, _ = mixed.unit_moments(behind, 1)
    assert not mixed.propagators[0].read_prior and not mixed.propagators[1]._cache
    alone, _ = MomentPropagator(graph, x, InputPrior(0.0, 1.0, 0.0),
                                samples=20_000).unit_moments(behind, 1)
    np.testing.assert_allclose(h.cov, alone.cov, atol=1e-12)
