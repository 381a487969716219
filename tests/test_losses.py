"""ID loss, batch-hard triplet and WRT against hand-computed values (docs/decisions/vld.md#v26-wrt-numerics)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reprolib.config import LossConfig
from reprolib.losses import (
    CrossEntropyLabelSmooth,
    TripletLoss,
    WeightedRegularizedTriplet,
    build_metric_loss,
    euclidean_dist,
    metric_loss_name,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# -- ID loss -------------------------------------------------------------------------------


def test_label_smoothing_value_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    labels = torch.tensor([0])
    z = math.exp(2) + 2
    log_p = [2 - math.log(z), -math.log(z), -math.log(z)]
    expected = 0.9 * (-log_p[0]) + 0.1 * (-sum(log_p) / 3)  # (1 - eps) NLL + eps * mean(-log p)
    assert CrossEntropyLabelSmooth(0.1)(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert CrossEntropyLabelSmooth(0.0)(logits, labels).item() == pytest.approx(-log_p[0], rel=1e-6)


def test_label_smoothing_equals_torch_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(8, 7, generator=g), torch.randint(0, 7, (8,), generator=g)
    for eps in (0.0, 0.1, 0.3):
        ours = CrossEntropyLabelSmooth(eps)(logits, labels)
        torch.testing.assert_close(ours, F.cross_entropy(logits, labels, label_smoothing=eps))
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLabelSmooth(1.0)


# -- distances ---------------------------------------------------------------------------


def test_euclidean_dist_and_zero_distance_clamp():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    d = euclidean_dist(x, x)
    assert d[0, 1].item() == pytest.approx(5.0)
    assert d[0, 0].item() == pytest.approx(1e-6)  # sqrt(clamp(0, 1e-12))


# -- batch-hard triplet -------------------------------------------------------------------


FEATS_1D = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
LABELS_1D = torch.tensor([0, 0, 1, 1])
# hardest positive / negative per anchor: 0: (1, 3); 1: (1, 2); 2: (4, 2); 3: (4, 6)
GAPS_1D = [1 - 3, 1 - 2, 4 - 2, 4 - 6]


def test_batch_hard_triplet_by_hand():
    loss = TripletLoss(margin=0.3)(FEATS_1D, LABELS_1D)
    assert loss.item() == pytest.approx(sum(max(0.0, g + 0.3) for g in GAPS_1D) / 4)  # = 2.3 / 4
    soft = TripletLoss(soft_margin=True)(FEATS_1D, LABELS_1D)
    assert soft.item() == pytest.approx(sum(softplus(g) for g in GAPS_1D) / 4, rel=1e-6)


def test_batch_hard_searches_across_the_whole_batch():
    # hardest positives and negatives come from anywhere in the batch (both "modalities")
    feats = torch.tensor([[0.0], [2.0], [9.0], [0.5]])
    labels = torch.tensor([0, 0, 1, 1])
    loss = TripletLoss(margin=0.0)(feats, labels)
    # anchors: 0: pos 2, neg 0.5 -> 1.5; 1: pos 2, neg 1.5 -> 0.5; 2: pos 8.5, neg 7 -> 1.5; 3: pos 8.5, neg 0.5 -> 8
    assert loss.item() == pytest.approx((1.5 + 0.5 + 1.5 + 8.0) / 4)


def test_batch_hard_single_identity_is_zero_with_gradient():
    feats = torch.randn(4, 3, requires_grad=True)
    loss = TripletLoss()(feats, torch.zeros(4, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and feats.grad is not None


# -- WRT -----------------------------------------------------------------------------------


def test_wrt_legacy_matches_hand_computation():
    feats = torch.tensor([[0.0], [1.0], [2.0]])
    labels = torch.tensor([0, 0, 1])
    eps, self_d = 1e-6, 1e-6  # VLD's epsilon; self distance sqrt(1e-12)
    e = math.exp
    # anchor 0: P = {0 (d=1e-6), 1 (d=1)}, shift = max = 1; N = {2 (d=2)}, shift 0
    dp0 = (e(self_d - 1) * self_d + e(0) * 1) / (e(self_d - 1) + e(0) + eps)
    dn0 = 2 * e(-2) / (e(-2) + eps)
    # anchor 1: P = {0 (d=1), 1 (d=1e-6)}; N = {2 (d=1)}
    dp1 = dp0
    dn1 = 1 * e(-1) / (e(-1) + eps)
    # anchor 2: P = {2 (d=1e-6)}; N = {0 (d=2), 1 (d=1)}
    dp2 = self_d / (1 + eps)
    dn2 = (2 * e(-2) + 1 * e(-1)) / (e(-2) + e(-1) + eps)
    expected = sum(softplus(p - n) for p, n in ((dp0, dn0), (dp1, dn1), (dp2, dn2))) / 3
    wrt = WeightedRegularizedTriplet(legacy_numerics=True)
    d_pos, d_neg = wrt.weighted_distances(feats, labels)
    torch.testing.assert_close(d_pos, torch.tensor([dp0, dp1, dp2]), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(d_neg, torch.tensor([dn0, dn1, dn2]), rtol=1e-5, atol=1e-7)
    assert wrt(feats, labels).item() == pytest.approx(expected, rel=1e-5)


def _batch(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    centers = F.normalize(torch.randn(4, 16, generator=g), dim=1)
    feats = centers.repeat_interleave(4, dim=0) + 0.05 * torch.randn(16, 16, generator=g)  # (16, 16)
    return scale * feats, torch.arange(4).repeat_interleave(4)


def test_wrt_legacy_and_clean_agree_at_small_distances():
    feats, labels = _batch(1.0)
    assert euclidean_dist(feats, feats).max() < 3
    legacy = WeightedRegularizedTriplet(legacy_numerics=True)(feats, labels)
    clean = WeightedRegularizedTriplet(legacy_numerics=False)(feats, labels)
    torch.testing.assert_close(legacy, clean, rtol=1e-4, atol=1e-6)


def test_wrt_legacy_negative_term_fades_beyond_distance_14():
    feats, labels = _batch(30.0)
    dist = euclidean_dist(feats, feats)
    assert dist[labels.view(-1, 1) != labels.view(1, -1)].min() > 14
    legacy = WeightedRegularizedTriplet(legacy_numerics=True)
    clean = WeightedRegularizedTriplet(legacy_numerics=False)
    _, dn_legacy = legacy.weighted_distances(feats, labels)
    dp_clean, dn_clean = clean.weighted_distances(feats, labels)
    # clean weights sum to one: D^n is at least the nearest negative distance
    assert torch.all(dn_clean > 14)
    # legacy: sum exp(-d) << 1e-6, the negative weights (and D^n) collapse towards zero
    assert torch.all(dn_legacy < 0.5 * dn_clean)
    assert legacy(feats, labels).item() > clean(feats, labels).item() + 1.0


def test_wrt_gradients_finite_with_duplicate_features():
    feats = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [3.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    for legacy in (True, False):
        feats.grad = None
        WeightedRegularizedTriplet(legacy_numerics=legacy)(feats, labels).backward()
        assert torch.isfinite(feats.grad).all()


def test_wrt_clean_single_identity_has_no_negative_term():
    feats = torch.randn(4, 8)
    _, d_neg = WeightedRegularizedTriplet(legacy_numerics=False).weighted_distances(feats, torch.zeros(4))
    assert torch.all(d_neg == 0)


# -- builders ----------------------------------------------------------------------------


def test_metric_loss_builder():
    assert isinstance(build_metric_loss(LossConfig(triplet="wrt", wrt_legacy_numerics=False)),
                      WeightedRegularizedTriplet)
    assert build_metric_loss(LossConfig(triplet="wrt")).legacy_numerics is True
    tri = build_metric_loss(LossConfig(triplet="batch_hard", triplet_margin=0.3))
    assert isinstance(tri, TripletLoss) and tri.margin == 0.3 and not tri.soft_margin
    assert build_metric_loss(LossConfig(triplet="batch_hard", triplet_margin=0.0)).soft_margin
    assert build_metric_loss(LossConfig(triplet="none")) is None
    assert metric_loss_name(LossConfig(triplet="batch_hard")) == "triplet"
    with pytest.raises(ValueError, match="loss.triplet"):
        metric_loss_name(LossConfig(triplet="hard"))
