"""GGHead training-speed forms and the sample-quality metric: the unfused modulated conv (training) equals the fused
one (inference, parity-tested against GGHead), and KID separates distributions."""

from __future__ import annotations

import torch

from avat3r.generate import GGHeadGenerator, preset
from avat3r.generate.quality import FeatureNet, features, kid


def test_unfused_training_modconv_equals_the_fused_form():
    torch.manual_seed(0)
    G = GGHeadGenerator(preset("tiny"))
    for name, p in G.named_parameters():
        if "noise_strength" in name:
            p.data.fill_(0.3)  # noise on (zero at init), so its add is compared too
    z = torch.randn(3, G.config.z_dim)
    c = G.canonical_label().expand(3, -1)
    with torch.no_grad():
        fused = G.eval()(z, c)["maps"]
        unfused = G.train()(z, c)["maps"]
    assert fused.abs().max() > 0.1
    assert ((fused - unfused).abs().max() / fused.abs().max()) < 1e-5


def test_kid_is_near_zero_for_one_distribution_and_large_for_two():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(600, 16, generator=g, dtype=torch.float64)
    b = torch.randn(600, 16, generator=g, dtype=torch.float64)
    shifted = b + 0.5
    same, _ = kid(a, b, subsets=20, subset_size=300)
    diff, diff_std = kid(a, shifted, subsets=20, subset_size=300)
    assert abs(same) < 0.05 * diff and diff > 10 * diff_std


def test_feature_net_shapes():
    net = FeatureNet(n_classes=5).eval()
    f = features(net, torch.rand(3, 3, 128, 128))
    assert f.shape == (3, 256) and f.dtype == torch.float64 and torch.isfinite(f).all()
