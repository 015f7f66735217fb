"""Metrics and losses against independent references: PSNR on a known MSE, SSIM vs scikit-image, LPIPS
weight loading (torchvision / official layouts, tensors-only unpickling), temporal error, AKD/CSIM on real faces."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from avat3r.errors import CheckpointError
from avat3r.eval import metrics as M
from avat3r.model.lpips import LPIPS, load_lpips, try_load_lpips
from avat3r.similarity import ssim
from avat3r.train.losses import Objective, ObjectiveConfig

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


def test_psnr_known_mse():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.2, 0.8, (2, 24, 20, 3)).astype(np.float32)
    b = a + np.float32(0.1)  # MSE = 0.01 -> 20 dB
    np.testing.assert_allclose(M.psnr(a, b), [20.0, 20.0], atol=1e-4)
    c = a.copy()
    c[0, :12] += 0.05  # half the pixels off by 0.05: MSE = 0.00125 -> 29.03 dB
    np.testing.assert_allclose(M.psnr(c[0], a[0]), [10 * np.log10(1 / 0.00125)], atol=1e-3)


@pytest.mark.parametrize("shape", [(32, 32), (41, 57)])
def test_ssim_matches_scikit_image(shape):
    skm = pytest.importorskip("skimage.metrics")
    from skimage import data

    rng = np.random.default_rng(1)
    face = data.astronaut()[80:80 + shape[0], 160:160 + shape[1]].astype(np.float32) / 255
    pairs = [
        (face, np.clip(face + 0.08 * rng.standard_normal(face.shape), 0, 1).astype(np.float32)),
        (face, np.roll(face, 2, axis=1)),
        (rng.random(face.shape, dtype=np.float32), rng.random(face.shape, dtype=np.float32)),
    ]
    for a, b in pairs:
        ref = skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=1, channel_axis=-1)
        assert abs(float(M.ssim(a, b)[0]) - ref) < 1e-5
    assert abs(float(M.ssim(face, face)[0]) - 1.0) < 1e-6


def test_ssim_is_differentiable_and_autocast_safe():
    a = torch.rand(2, 3, 20, 20, requires_grad=True)
    b = torch.rand(2, 3, 20, 20)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = ssim(a, b)
    assert s.dtype == torch.float32
    s.backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_objective_weights_and_lpips_switch():
    pred, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)

    class ConstLPIPS(torch.nn.Module):
        def forward(self, a, b):
            return torch.full((a.shape[0],), 0.5)

    obj = Objective(ObjectiveConfig(lpips_start=10), lpips=ConstLPIPS())
    base = 0.8 * (pred - gt).abs().mean() + 0.2 * (1 - ssim(pred, gt))
    loss0, t0 = obj(pred, gt, step=9)
    loss1, t1 = obj(pred, gt, step=10)
    assert torch.allclose(loss0, base) and "lpips" not in t0
    assert torch.allclose(loss1, base + 0.01 * 0.5) and float(t1["lpips"]) == 0.5
    off = Objective(ObjectiveConfig(lpips_start=0, lpips_weights="/nonexistent"))  # no weights: LPIPS off, says so
    assert not off.lpips_available
    assert torch.allclose(off(pred, gt, step=5)[0], base)


def _fake_lpips_files(folder: Path, net: str = "alex") -> LPIPS:
    """Random weights written in torchvision's and the official LPIPS layouts (.pth, as those projects ship)."""
    ref = LPIPS(net)
    torch.manual_seed(0)
    for p in ref.parameters():
        p.data.uniform_(0.0, 0.05)  # the official linear layers are non-negative
    sd = ref.state_dict()
    backbone = {k: v for k, v in sd.items() if k.startswith("features.")}
    backbone["classifier.1.weight"] = torch.zeros(4, 4)  # torchvision files carry the classifier too
    lins = {f"lin{k.split('.')[1]}.model.1.weight": v for k, v in sd.items() if k.startswith("lin.")}
    torch.save(backbone, folder / "alexnet-owt-7be5be79.pth")
    torch.save(lins, folder / "alex.pth")
    return ref


def test_lpips_loads_reference_layouts(tmp_path):
    ref = _fake_lpips_files(tmp_path)
    m = load_lpips(tmp_path, net="alex")
    for k, v in ref.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    d = m(x, y)
    assert d.shape == (2,) and (d > 0).all()
    assert torch.allclose(m(x, x), torch.zeros(2), atol=1e-6)
    # round trip through our single-file safetensors format
    m.save(tmp_path / "lpips_alex.safetensors")
    m2 = load_lpips(tmp_path / "lpips_alex.safetensors", net="alex")
    assert torch.allclose(m2(x, y), d)
    # gradients flow to the images (for the training loss) but not into the frozen weights
    xr = x.clone().requires_grad_(True)
    m(xr, y).sum().backward()
    assert xr.grad.abs().sum() > 0 and all(p.grad is None for p in m.parameters())


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_lpips_refuses_code_in_pickles(tmp_path):
    _fake_lpips_files(tmp_path)
    with open(tmp_path / "alex.pth", "wb") as f:  # a plain pickle that would call a function when loaded
        pickle.dump({"lin0.model.1.weight": _Evil()}, f)
    with pytest.raises(CheckpointError):
        load_lpips(tmp_path, net="alex")
    assert try_load_lpips("alex", tmp_path / "missing") is None


def test_temporal_error():
    rng = np.random.default_rng(2)
    gt = rng.random((6, 12, 12, 3)).astype(np.float32)
    assert M.temporal_error(gt, gt) == 0.0
    assert M.temporal_error(np.clip(gt * 0.5 + 0.2, 0, 1), gt * 0.5 + 0.2) < 1e-6
    # a constant colour shift keeps the temporal gradient: ~0 error, while PSNR drops
    assert M.temporal_error(gt * 0.5 + 0.1, gt * 0.5) < 1e-5
    flick = gt.copy()
    flick[1::2] += 0.1  # alternate frames brighter: flicker the ground truth does not have
    assert M.temporal_error(flick, gt) == pytest.approx(10.0, rel=1e-4)  # |±0.1| x 100 on every step
    assert M.flicker(gt[[0] * 6], gt) == 0.0


@pytest.fixture(scope="module")
def astronaut():
    pytest.importorskip("dlib")
    from avat3r.eval.faces import faces_available

    if not faces_available():
        pytest.skip("dlib face models not installed")
    from skimage import data

    return data.astronaut().astype(np.float32) / 255


def test_akd_and_csim_on_real_faces(astronaut):
    shift = 6
    shifted = np.zeros_like(astronaut)
    shifted[:, shift:] = astronaut[:, :-shift]
    same = M.face_pair(shifted, astronaut)
    assert same is not None and same["pred_detected"]
    assert abs(same["akd"] - shift) < 1.5  # every landmark moves by the shift
    assert same["csim"] > 0.98
    ident = M.face_pair(astronaut, astronaut)
    assert ident["akd"] < 0.5 and ident["csim"] > 0.999
    other_path = REALDATA / "cleardusk_3DDFA_V2" / "examples" / "inputs" / "JianzhuGuo.jpg"
    if not other_path.exists():
        pytest.skip(f"{other_path} absent")
    from avat3r.io.images import load_image

    other = M.face_pair(load_image(other_path), astronaut)
    assert other is not None
    assert same["csim"] > other["csim"] + 0.05


def test_accumulator_summary(astronaut):
    small = astronaut[::2, ::2]
    acc = M.MetricAccumulator(lpips=None, faces=True)
    acc.update(small[None], small[None])
    acc.update_video(np.stack([small] * 3), np.stack([small] * 3))
    s = acc.summary()
    assert s["psnr"] == 100.0 and s["ssim"] == pytest.approx(1.0) and s["akd"] < 0.5
    assert s["terr"] == 0.0 and s["counts"] == {"face_pairs": 1, "images": 1, "videos": 1}


def test_ablation_tables_layout():
    """Tables 2-3 list the runs that were evaluated; the layer-order table needs a run of its own, not only the
    full recipe standing in for its own order."""
    from avat3r.eval.tables import ablation_tables

    full = {"psnr": 27.75, "ssim": 0.824}
    runs = {"full": full, "no_prior": {"psnr": 25.46, "ssim": 0.728}, "no_pos_skip": {"psnr": 26.27, "ssim": 0.761},
            "cached": full}
    md = ablation_tables(runs)
    assert "Table 2" in md and "Table 3" in md and "Layer order" not in md
    assert "25.46" in md and "26.27" in md and md.count("27.75") == 2  # full appears once in each table
    md = ablation_tables({**runs, "interleaved": {"psnr": 27.1, "ssim": 0.8}})
    assert "Layer order" in md and "27.10" in md
