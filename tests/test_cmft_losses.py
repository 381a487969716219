"""CMFT losses against hand-computed batches (docs/decisions/cmft.md#losses).

Most cases put the points of an identity on a horizontal line, so every Euclidean distance is
a difference of x coordinates that can be checked by hand.
"""
from __future__ import annotations

import math

import pytest
import torch

from reprolib.config import ConfigError
from reprolib.losses import TripletLoss, WeightedRegularizedTriplet
from reprolib.models.cmft.losses import (
    CMFT_LOSSES,
    CMFTCriterion,
    CMFTLossOptions,
    CrossLoss,
    CrossModalityTripletStandIn,
    ModalityDiscriminativeLoss,
    ModalitySharedRefinementLoss,
    cmft_loss_weights,
)
from reprolib.losses.hetero_center import HeteroCenterTripletLoss


def pts(*xy: tuple[float, float]) -> torch.Tensor:
    return torch.tensor(xy, dtype=torch.float32)


LABELS = torch.tensor([0, 0, 1, 1])
# 2 identities x 2 pairs in 2-D. Identity 0 lies on y = 0, identity 1 on y = 10.
RGB = pts((0, 0), (4, 0), (0, 10), (2, 10))  # intra^R: 4, 4 | 2, 2
IR = pts((1, 0), (7, 0), (5, 10), (8, 10))  # intra^I: 6, 6 | 3, 3
FUSED = pts((0, 0), (1, 0), (0, 10), (3, 10))  # D^Cross (eq. 13): 1, 1 | 3, 3


# -- MSRL (eqs. 11-14) ----------------------------------------------------------------------


def test_msrl_literal_by_hand():
    # (intra^R - cross)^2 + (intra^I - cross)^2: anchors of id 0: (4-1)^2 + (6-1)^2 = 34,
    # id 1: (2-3)^2 + (3-3)^2 = 1; L = (34 + 34 + 1 + 1) / (2 * 4).
    loss = ModalitySharedRefinementLoss("literal", "euclidean")(RGB, IR, LABELS, FUSED)
    assert loss.item() == pytest.approx(70 / 8, rel=1e-5)


def test_msrl_pmt_by_hand_and_differs_from_literal():
    # cross^R_j = mean_k |r_j - u_k| over the IR samples of the identity:
    #   r=0: (1+7)/2=4, r=4: (3+3)/2=3, r=0: (5+8)/2=6.5, r=2: (3+6)/2=4.5 ; intra^R 4, 4, 2, 2
    # cross^I_j: u=1: (1+3)/2=2, u=7: (7+3)/2=5, u=5: (5+3)/2=4, u=8: (8+6)/2=7 ; intra^I 6, 6, 3, 3
    mean_r = (0 + 1 + 4.5 ** 2 + 2.5 ** 2) / 4  # 6.875
    mean_i = (16 + 1 + 1 + 16) / 4  # 8.5
    pmt = ModalitySharedRefinementLoss("pmt", "euclidean")(RGB, IR, LABELS)
    assert pmt.item() == pytest.approx(0.5 * (mean_r + mean_i), rel=1e-5)  # 7.6875
    literal = ModalitySharedRefinementLoss("literal", "euclidean")(RGB, IR, LABELS, FUSED)
    assert abs(pmt.item() - literal.item()) > 1.0  # the two readings of #11 differ here


def test_msrl_cosine_by_hand():
    rgb = pts((1, 0), (0, 1), (1, 1), (2, 2))  # 1 - cos: 1 | 0
    ir = pts((1, 0), (-1, 0), (0, 1), (0, 3))  # 2 | 0
    fused = pts((1, 0), (2, 0), (1, 0), (0, 1))  # 0 | 1
    loss = ModalitySharedRefinementLoss("literal", "cosine")(rgb, ir, LABELS, fused)
    assert loss.item() == pytest.approx((2 * (1 + 4) + 2 * (1 + 1)) / 8, abs=1e-5)
    euclid = ModalitySharedRefinementLoss("literal", "euclidean")(rgb, ir, LABELS, fused)
    assert abs(euclid.item() - loss.item()) > 0.1


def test_msrl_uses_other_positives_only_and_k1_is_zero():
    # K = 3: intra of anchor 0 is the mean of its two other positives, not of three
    labels = torch.tensor([0, 0, 0])
    rgb = pts((0, 0), (3, 0), (6, 0))  # intra^R: (3+6)/2, (3+3)/2, (6+3)/2 = 4.5, 3, 4.5
    ir = pts((0, 0), (1, 0), (2, 0))  # intra^I: 1.5, 1, 1.5
    fused = pts((0, 0), (0, 0.5), (0, 1))  # cross: 0.75, 0.5, 0.75
    expected = ((3.75 ** 2 + 0.75 ** 2) * 2 + 2.5 ** 2 + 0.5 ** 2) / 6
    loss = ModalitySharedRefinementLoss("literal")(rgb, ir, labels, fused)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    single = torch.tensor([0, 1])  # K = 1: no positive pair
    x = pts((0, 0), (1, 1)).requires_grad_()
    zero = ModalitySharedRefinementLoss("pmt")(x, x + 1, single)
    assert zero.item() == 0.0 and zero.requires_grad


def test_msrl_literal_needs_fused():
    with pytest.raises(ValueError, match="msrl_form='literal' needs the fused"):
        ModalitySharedRefinementLoss("literal")(RGB, IR, LABELS, None)


# -- MDL (eqs. 15-17) -----------------------------------------------------------------------

# Identity 0: r = 0, 2; u = -1, 3 -> centre 1, positive distances 1, 1, 2, 2 (mean 1.5).
# Identity 1: r = 10, 14; u = 8, 16 -> centre 12, positive distances 2, 2, 4, 4 (mean 3).
MDL_RGB = pts((0, 0), (2, 0), (10, 0), (14, 0))
MDL_IR = pts((-1, 0), (3, 0), (8, 0), (16, 0))
# Negatives of centre 1: 9, 13, 7, 15 (mean 11, dynamic {9, 7} -> 8, hardest 7).
# Negatives of centre 12: 12, 10, 13, 9 (mean 11, dynamic {10, 9} -> 9.5, hardest 9).


@pytest.mark.parametrize("mode, expected", [("dynamic", 4.5 / (8 + 9.5)), ("all", 4.5 / (11 + 11)),
                                            ("hard", 4.5 / (7 + 9))])
def test_mdl_by_hand(mode, expected):
    loss = ModalityDiscriminativeLoss(mode)(MDL_RGB, MDL_IR, LABELS)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_mdl_centre_pools_both_modalities():
    # moving only the IR samples of identity 0 moves its centre (eq. 15 averages r and u)
    shifted = MDL_IR.clone()
    shifted[:2, 1] += 4.0
    a = ModalityDiscriminativeLoss("all")(MDL_RGB, MDL_IR, LABELS)
    b = ModalityDiscriminativeLoss("all")(MDL_RGB, shifted, LABELS)
    assert a.item() != pytest.approx(b.item(), rel=1e-3)


def test_mdl_dynamic_with_equidistant_negatives_uses_all():
    # both centres at the origin; every negative of a centre is at the same distance, so none is
    # strictly nearer than the mean: all are kept (a strict "<" alone would divide by zero)
    rgb = pts((1, 0), (-1, 0), (0, 5), (0, -5))
    ir = pts((0, 1), (0, -1), (5, 0), (-5, 0))
    loss = ModalityDiscriminativeLoss("dynamic")(rgb, ir, LABELS)
    assert loss.item() == pytest.approx((1 + 5) / (5 + 1), rel=1e-5)


def test_mdl_single_identity_is_zero():
    x = pts((0, 0), (1, 0)).requires_grad_()
    loss = ModalityDiscriminativeLoss()(x, x + 1, torch.tensor([3, 3]))
    assert loss.item() == 0.0 and loss.requires_grad


# -- L_cross (eqs. 7-10) --------------------------------------------------------------------


def test_cross_mines_hardest_within_each_space():
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    # RGB on a line: 0 1 2 | 5 9 10. Only anchor 5 violates: hardest positive 10 (d 5),
    # hardest negative 2 (d 3): 5 - 3 + 0.1 = 2.1; mean over the 6 anchors = 0.35.
    rgb = pts((0, 0), (1, 0), (2, 0), (5, 0), (9, 0), (10, 0))
    ir = pts((0, 0), (1, 0), (2, 0), (20, 0), (21, 0), (22, 0))  # separated: 0
    loss = CrossLoss(margin=0.1)
    assert loss(rgb, ir, labels).item() == pytest.approx(0.35, rel=1e-5)
    assert loss(rgb, ir, labels, fused=rgb.clone()).item() == pytest.approx(0.70, rel=1e-5)  # + eq. 9
    # mining over RGB and IR together would pair RGB anchors with IR samples: a different value
    mixed = TripletLoss(margin=0.1)(torch.cat([rgb, ir]), torch.cat([labels, labels]))
    assert mixed.item() != pytest.approx(0.35, abs=1e-3)


# -- Table 4 comparison losses --------------------------------------------------------------


def test_hetero_center_by_hand_any_order():
    # centres: id0 RGB (1,0), id0 IR (1,5), id1 RGB (5,0), id1 IR (5,3)
    feats = pts((0, 0), (2, 0), (1, 4), (1, 6), (4, 0), (6, 0), (5, 2), (5, 4))
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    modality = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    # c0R: pos 5, neg min(4, 5) = 4 -> 1.1; c0I: pos 5, neg min(sqrt 41, sqrt 20) -> 5.1 - sqrt 20;
    # c1R: pos 3, neg 4 -> 0; c1I: pos 3, neg sqrt 20 -> 0
    expected = (1.1 + 5.1 - math.sqrt(20)) / 4
    loss = HeteroCenterTripletLoss(margin=0.1)
    assert loss(feats, labels, modality).item() == pytest.approx(expected, rel=1e-5)
    perm = torch.tensor([5, 2, 7, 0, 3, 6, 1, 4])
    assert loss(feats[perm], labels[perm], modality[perm]).item() == pytest.approx(expected, rel=1e-5)


def test_cmt_standin_mines_across_modalities_by_hand():
    # on a line: r = 0 1 | 10 11, u = 2 8 | 9 15
    # RGB->IR: r=10: pos max(1, 5) = 5, neg min(8, 2) = 2 -> 3.1; r=11: 4 - 3 + 0.1 = 1.1 -> 4.2 / 4
    # IR->RGB: u=8: pos max(8, 7) = 8, neg min(2, 3) = 2 -> 6.1 -> 6.1 / 4
    rgb, ir = pts((0, 0), (1, 0), (10, 0), (11, 0)), pts((2, 0), (8, 0), (9, 0), (15, 0))
    loss = CrossModalityTripletStandIn(margin=0.1)(rgb, ir, LABELS, LABELS)
    assert loss.item() == pytest.approx(4.2 / 4 + 6.1 / 4, rel=1e-5)
    assert "stand_in" in repr(CrossModalityTripletStandIn())


# -- schedule (eqs. 18-19) ------------------------------------------------------------------


def test_schedule_switches_after_the_warm_phase():
    opt = CMFTLossOptions()
    assert cmft_loss_weights(1, opt) == {"cross": 1.0, "msrl": 0.0, "mdl": 0.0}
    assert cmft_loss_weights(2, opt) == {"cross": 0.0, "msrl": 0.3, "mdl": 0.7}
    keep = CMFTLossOptions(stage2_keep_triplet=True, lambda1=0.1, lambda2=0.9)
    assert cmft_loss_weights(1, keep) == {"cross": 1.0, "msrl": 0.0, "mdl": 0.0}
    assert cmft_loss_weights(2, keep) == {"cross": 1.0, "msrl": 0.1, "mdl": 0.9}
    hct = CMFTLossOptions(comparison="hetero_center")
    assert cmft_loss_weights(1, hct) == {"hetero_center": 1.0, "msrl": 0.0, "mdl": 0.0}
    with pytest.raises(ValueError, match="stage"):
        cmft_loss_weights(0, opt)


# -- the criterion --------------------------------------------------------------------------


def _features(fused: bool = True) -> dict:
    return {"rgb": RGB, "ir": IR, "fused": FUSED if fused else None, "labels": LABELS}


def test_criterion_returns_weighted_active_terms():
    crit = CMFTCriterion(CMFTLossOptions())
    stage1 = crit(_features(), stage=1)
    assert set(stage1) == {"cross"}
    torch.testing.assert_close(stage1["cross"], CrossLoss(0.1)(RGB, IR, LABELS, FUSED))
    stage2 = crit(_features(), stage=2)
    assert set(stage2) == {"msrl", "mdl"}
    assert stage2["msrl"].item() == pytest.approx(0.3 * 70 / 8, rel=1e-5)
    mdl = ModalityDiscriminativeLoss("dynamic")(RGB, IR, LABELS)
    assert stage2["mdl"].item() == pytest.approx(0.7 * mdl.item(), rel=1e-5)
    # Table 5 single-loss rows: a zero weight removes the term
    only_mdl = CMFTCriterion(CMFTLossOptions(lambda1=0.0))(_features(fused=False), stage=2)
    assert set(only_mdl) == {"mdl"}  # and literal MSRL is not evaluated without Z^Fusion
    kept = CMFTCriterion(CMFTLossOptions(stage2_keep_triplet=True))(_features(), stage=2)
    assert set(kept) == {"cross", "msrl", "mdl"}


def test_criterion_comparison_losses_replace_cross():
    feats = _features()
    wrt = CMFTCriterion(CMFTLossOptions(comparison="wrt"))(feats, stage=1)
    ref = WeightedRegularizedTriplet(legacy_numerics=False)
    expected = ref(torch.cat([RGB, IR]), torch.cat([LABELS, LABELS])) + ref(FUSED, LABELS)
    assert set(wrt) == {"wrt"}
    torch.testing.assert_close(wrt["wrt"], expected)
    hct = CMFTCriterion(CMFTLossOptions(comparison="hetero_center"))(feats, stage=1)
    modality = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    expected = (HeteroCenterTripletLoss(0.1)(torch.cat([RGB, IR]), torch.cat([LABELS, LABELS]), modality)
                + TripletLoss(0.1)(FUSED, LABELS))
    torch.testing.assert_close(hct["hetero_center"], expected)
    cmt = CMFTCriterion(CMFTLossOptions(comparison="cmt_standin"))(_features(fused=False), stage=1)
    torch.testing.assert_close(cmt["cmt_standin"], CrossModalityTripletStandIn(0.1)(RGB, IR, LABELS, LABELS))
    stage2 = CMFTCriterion(CMFTLossOptions(comparison="wrt"))(feats, stage=2)
    assert set(stage2) == {"msrl", "mdl"}  # stage 2 unchanged by the comparison


@pytest.mark.parametrize("opts", [
    dict(), dict(msrl_form="pmt"), dict(msrl_distance="cosine"), dict(msrl_distance="cosine", msrl_form="pmt"),
    dict(msrl_distance="cosine", msrl_cosine_features="pre_bn"), dict(mdl_mode="all"), dict(mdl_mode="hard"),
    dict(comparison="wrt", wrt_legacy_numerics=True), dict(comparison="hetero_center"),
    dict(comparison="cmt_standin"), dict(stage2_keep_triplet=True),
])
def test_gradients_are_finite(opts):
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    # small features (distances below the margin 0.1: every hinge is active) and coincident
    # RGB/IR pairs (zero cross-modal distances, the clamp of euclidean_dist)
    rgb = (0.01 * torch.randn(6, 8, generator=g)).requires_grad_()
    ir = rgb.detach().clone().requires_grad_()
    fused = (0.01 * torch.randn(6, 8, generator=g)).requires_grad_()
    feats = {"rgb": rgb, "ir": ir, "fused": fused, "labels": labels,
             "rgb_bn": 2 * rgb, "ir_bn": 2 * ir, "fused_bn": 2 * fused}
    crit = CMFTCriterion(CMFTLossOptions(**opts))
    for stage in (1, 2):
        terms = crit(feats, stage)
        total = sum(terms.values())
        rgb.grad = ir.grad = fused.grad = None
        total.backward()
        for x in (rgb, ir, fused):
            assert x.grad is None or torch.isfinite(x.grad).all()
        assert torch.isfinite(total) and rgb.grad is not None and rgb.grad.abs().sum() > 0


def test_options_errors_name_the_key():
    with pytest.raises(ValueError, match=r"model\.extra\.mdl_mode"):
        CMFTLossOptions.from_dict({"mdl_mode": "dyn"})
    with pytest.raises(ConfigError, match="msrl_form"):
        CMFTLossOptions.from_dict({"msrl_from": "pmt"})
    with pytest.raises(ValueError, match="comparison"):
        CMFTCriterion(CMFTLossOptions(comparison="hct"))
    with pytest.raises(ValueError, match="batch sizes"):
        CMFTCriterion()({"rgb": RGB, "ir": IR[:3], "fused": None, "labels": LABELS}, 1)
    opt = CMFTLossOptions.from_dict({"lambda1": 0.5, "stage2_keep_triplet": True})
    assert opt.lambda1 == 0.5 and opt.lambda2 == 0.7 and opt.stage2_keep_triplet


def test_cosine_msrl_reads_bn_features():
    bn = {"rgb_bn": pts((1, 0), (0, 1), (1, 1), (2, 2)), "ir_bn": pts((1, 0), (-1, 0), (0, 1), (0, 3)),
          "fused_bn": pts((1, 0), (2, 0), (1, 0), (0, 1))}  # the cosine hand case: 1.75
    opts = CMFTLossOptions(msrl_distance="cosine", lambda2=0.0)
    out = CMFTCriterion(opts)({**_features(), **bn}, stage=2)
    assert out["msrl"].item() == pytest.approx(0.3 * 1.75, abs=1e-5)
    pre = CMFTCriterion(CMFTLossOptions(msrl_distance="cosine", msrl_cosine_features="pre_bn"))
    expected = ModalitySharedRefinementLoss("literal", "cosine")(RGB, IR, LABELS, FUSED)
    assert pre({**_features(), **bn}, stage=2)["msrl"].item() == pytest.approx(0.3 * expected.item(), rel=1e-5)
    with pytest.raises(KeyError, match="rgb_bn"):
        CMFTCriterion(opts)(_features(), stage=2)


def test_plugin_table_gives_unweighted_terms():
    feats = {**_features(), "rgb_bn": RGB, "ir_bn": IR, "fused_bn": FUSED}
    assert set(CMFT_LOSSES) == {"cross", "msrl", "mdl", "wrt", "hetero_center", "cmt_standin"}
    assert CMFT_LOSSES["msrl"](feats).item() == pytest.approx(70 / 8, rel=1e-5)
    assert CMFT_LOSSES["msrl"](feats, msrl_form="pmt").item() == pytest.approx(7.6875, rel=1e-5)
    torch.testing.assert_close(CMFT_LOSSES["cross"](feats), CrossLoss(0.1)(RGB, IR, LABELS, FUSED))
    torch.testing.assert_close(CMFT_LOSSES["mdl"](feats, mdl_mode="hard"),
                               ModalityDiscriminativeLoss("hard")(RGB, IR, LABELS))
    crit = CMFTCriterion(CMFTLossOptions(comparison="hetero_center", margin=0.2))
    torch.testing.assert_close(CMFT_LOSSES["hetero_center"](feats, margin=0.2), crit.term("hetero_center", feats))
    with pytest.raises(ValueError, match="lambda1"):
        CMFT_LOSSES["msrl"](feats, lambda1=0.3)
    with pytest.raises(ConfigError, match="loss_options.mdl"):
        CMFT_LOSSES["mdl"](feats, mode="hard")
