"""Tests of reprolib.metrics: hand-computed golden cases, fast == reference, distances, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import reprolib.metrics.fast as fast_module
from reprolib.bench.eval import official_style_evaluate, run_benchmark
from reprolib.metrics import EvalResult, NoValidQueryError, compute_distance, evaluate

BACKENDS = ("fast", "reference")

# --------------------------------------------------------------------------------------
# Golden case, worked out by hand.
#
# Gallery (index: pid, cam):  g0: 1,1   g1: 2,2   g2: 1,2   g3: 3,1   g4: 2,1
# Queries (pid, cam, distances to g0..g4):
#   q0: 1,1  [.1 .2 .3 .4 .5]  ranking g0 g1 g2 g3 g4
#   q1: 2,2  [.5 .4 .3 .2 .1]  ranking g4 g3 g2 g1 g0
#   q2: 3,1  [.3 .1 .2 .9 .4]  ranking g1 g2 g0 g4 g3 (its only positive g3 shares cam 1)
#   q3: 9,1  [.1 .1 .1 .1 .1]  pid 9 is not in the gallery
#
# rule "vcm" (drop same pid AND same cam):
#   q0: g0 dropped -> kept g1 g2 g3 g4, hits [0 1 0 0]: AP = 1/2, INP = 1/2, first hit rank 2
#   q1: g1 dropped -> kept g4 g3 g2 g0, hits [1 0 0 0]: AP = 1,   INP = 1,   first hit rank 1
#   q2: g3 dropped -> no hit: skipped;  q3: skipped
#   => num_valid 2, CMC = [1/2, 1, 1, ...], mAP = (1/2 + 1)/2 = 3/4, mINP = 3/4
# rule "bupt" (drop nothing):
#   q0: hits [1 0 1 0 0]: AP = (1/1 + 2/3)/2 = 5/6, INP = 2/3, first hit rank 1
#   q1: hits [1 0 0 1 0]: AP = (1/1 + 2/4)/2 = 3/4, INP = 2/4, first hit rank 1
#   q2: hits [0 0 0 0 1]: AP = 1/5,                  INP = 1/5, first hit rank 5
#   q3: skipped
#   => num_valid 3, CMC = [2/3, 2/3, 2/3, 2/3, 1, ...], mAP = (5/6 + 3/4 + 1/5)/3 = 107/180,
#      mINP = (2/3 + 1/2 + 1/5)/3 = 41/90
# The gallery has 5 items < max_rank = 20: the CMC is padded with its last value (1).
# --------------------------------------------------------------------------------------
G_PIDS = np.array([1, 2, 1, 3, 2])
G_CAMS = np.array([1, 2, 2, 1, 1])
Q_PIDS = np.array([1, 2, 3, 9])
Q_CAMS = np.array([1, 2, 1, 1])
DIST = np.array(
    [
        [0.1, 0.2, 0.3, 0.4, 0.5],
        [0.5, 0.4, 0.3, 0.2, 0.1],
        [0.3, 0.1, 0.2, 0.9, 0.4],
        [0.1, 0.1, 0.1, 0.1, 0.1],
    ]
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_vcm(backend: str) -> None:
    res = evaluate(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, rule="vcm", max_rank=20, backend=backend)
    assert res.num_valid == 2
    np.testing.assert_allclose(res.cmc, [0.5] + [1.0] * 19)
    assert res.mAP == pytest.approx(0.75)
    assert res.mINP == pytest.approx(0.75)
    np.testing.assert_allclose(res.ap, [0.5, 1.0, np.nan, np.nan])
    np.testing.assert_array_equal(res.valid, [True, True, False, False])


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_bupt_keeps_same_camera_positive(backend: str) -> None:
    # q2's only positive shares its camera: skipped under "vcm", valid (AP 1/5) under "bupt".
    res = evaluate(DIST, Q_PIDS, G_PIDS, rule="bupt", max_rank=20, backend=backend)
    assert res.num_valid == 3
    np.testing.assert_allclose(res.cmc, [2 / 3] * 4 + [1.0] * 16)
    assert res.mAP == pytest.approx(107 / 180)
    assert res.mINP == pytest.approx(41 / 90)
    np.testing.assert_allclose(res.ap, [5 / 6, 3 / 4, 1 / 5, np.nan])


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_are_ordered_by_gallery_index(backend: str) -> None:
    # All three at distance 0.2: stable order g0 g1 g2, the match g1 is second -> AP 1/2.
    res = evaluate(np.full((1, 3), 0.2), [1], [2, 1, 2], [0], [9, 9, 9], max_rank=3, backend=backend)
    np.testing.assert_allclose(res.cmc, [0.0, 1.0, 1.0])
    assert res.mAP == pytest.approx(0.5)
    assert res.mINP == pytest.approx(0.5)


def test_to_dict_and_summary() -> None:
    res = evaluate(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, rule="vcm")
    assert res.to_dict() == pytest.approx({"R1": 50.0, "R5": 100.0, "R10": 100.0, "R20": 100.0, "mAP": 75.0, "mINP": 75.0})
    assert res.summary() == "R1 50.00 | R5 100.00 | R10 100.00 | R20 100.00 | mAP 75.00 | mINP 75.00 | 2/4 queries"
    short = evaluate(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, rule="vcm", max_rank=5)
    assert set(short.to_dict()) == {"R1", "R5", "mAP", "mINP"}


# --------------------------------------------------------------------------------------
# fast == reference
# --------------------------------------------------------------------------------------


def assert_same(a: EvalResult, b: EvalResult, atol: float = 1e-9) -> None:
    assert a.num_valid == b.num_valid
    np.testing.assert_allclose(a.cmc, b.cmc, rtol=0, atol=atol)
    assert abs(a.mAP - b.mAP) <= atol and abs(a.mINP - b.mINP) <= atol
    np.testing.assert_array_equal(a.valid, b.valid)
    np.testing.assert_allclose(a.ap[a.valid], b.ap[b.valid], rtol=0, atol=atol)


def random_problem(seed: int) -> tuple:
    """Small random problems, a third with integer distances (many ties), few ids and cams."""
    rng = np.random.default_rng(seed)
    num_q, num_g = int(rng.integers(1, 50)), int(rng.integers(1, 70))
    kind = seed % 3
    if kind == 0:
        dist = rng.integers(0, 4, size=(num_q, num_g))  # heavy ties
    elif kind == 1:
        dist = rng.random((num_q, num_g)).astype(np.float32)
    else:
        dist = np.round(rng.random((num_q, num_g)), 1)  # float64 with ties
    num_ids = int(rng.integers(1, 8))
    q_pids, g_pids = rng.integers(0, num_ids + 1, num_q), rng.integers(0, num_ids, num_g)
    q_cams, g_cams = rng.integers(0, 3, num_q), rng.integers(0, 3, num_g)
    return dist, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("rule", ["vcm", "bupt"])
def test_fast_matches_reference_random(rule: str) -> None:
    checked = 0
    for seed in range(120):
        args = random_problem(seed)
        max_rank = int(np.random.default_rng(seed).integers(1, 30))
        try:
            ref = evaluate(*args, rule=rule, max_rank=max_rank, backend="reference")
        except NoValidQueryError:
            with pytest.raises(NoValidQueryError):
                evaluate(*args, rule=rule, max_rank=max_rank, backend="fast")
            continue
        assert_same(evaluate(*args, rule=rule, max_rank=max_rank, backend="fast"), ref)
        checked += 1
    assert checked > 80


def test_fast_matches_reference_in_small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny chunk budget forces many query chunks and many tie chunks.
    monkeypatch.setattr(fast_module, "CHUNK_ELEMENTS", 16)
    for seed in range(0, 30, 3):  # integer distances: ties everywhere
        args = random_problem(seed)
        try:
            ref = evaluate(*args, rule="vcm", backend="reference")
        except NoValidQueryError:
            continue
        assert_same(evaluate(*args, rule="vcm", backend="fast"), ref)


def test_fast_matches_reference_adversarial() -> None:
    rng = np.random.default_rng(7)
    # Every distance equal, one identity everywhere: ranking is the gallery index order.
    q_pids, g_pids = np.zeros(6, int), np.zeros(9, int)
    q_cams, g_cams = rng.integers(0, 2, 6), rng.integers(0, 2, 9)
    for rule in ("vcm", "bupt"):
        args = (np.zeros((6, 9)), q_pids, g_pids, q_cams, g_cams)
        assert_same(evaluate(*args, rule=rule, backend="fast"), evaluate(*args, rule=rule, backend="reference"))
    # Infinite distances, negative distances, a single gallery item.
    dist = np.array([[np.inf, -1.0, np.inf, 0.0], [np.inf, np.inf, np.inf, np.inf]])
    args = (dist, [1, 2], [1, 2, 2, 1], [0, 0], [0, 1, 1, 1])
    assert_same(evaluate(*args, backend="fast"), evaluate(*args, backend="reference"))
    args = (np.array([[0.3], [0.1]]), [4, 4], [4], [0, 1], [1])
    res = evaluate(*args, backend="fast")
    assert res.num_valid == 1 and res.cmc.shape == (20,) and np.all(res.cmc == 1.0)
    assert_same(res, evaluate(*args, backend="reference"))


def test_torch_inputs_and_layouts_match_numpy() -> None:
    dist, q_pids, g_pids, q_cams, g_cams = random_problem(4)
    assert dist.dtype == np.float32
    ref = evaluate(dist, q_pids, g_pids, q_cams, g_cams, backend="reference")
    t = torch.as_tensor
    as_tensors = evaluate(t(dist), t(q_pids), t(g_pids), t(q_cams), t(g_cams))
    # A non-contiguous (column-major) matrix and list ids.
    column_major = evaluate(t(dist).T.contiguous().T, list(q_pids), g_pids, q_cams, g_cams)
    assert_same(as_tensors, ref)
    assert_same(column_major, ref)
    # Half precision (rounding creates ties): both backends see the same exact upcast.
    half = t(dist).to(torch.float16)
    from_half = evaluate(half, q_pids, g_pids, q_cams, g_cams, backend="reference")
    assert_same(evaluate(half, q_pids, g_pids, q_cams, g_cams), from_half)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fast_on_cuda_matches_reference() -> None:
    for seed in range(12):
        dist, *ids = random_problem(seed)
        try:
            ref = evaluate(dist, *ids, backend="reference")
        except NoValidQueryError:
            continue
        on_gpu = evaluate(torch.as_tensor(dist).cuda(), *[torch.as_tensor(i).cuda() for i in ids])
        assert_same(on_gpu, ref)


def test_official_style_matches_reference_without_ties() -> None:
    rng = np.random.default_rng(3)
    dist = rng.random((40, 60))  # float64, no exact ties
    q_pids, g_pids = rng.integers(0, 6, 40), rng.integers(0, 6, 60)
    q_cams, g_cams = rng.integers(0, 3, 40), rng.integers(0, 3, 60)
    cmc, mean_ap, minp = official_style_evaluate(dist, q_pids, g_pids, q_cams, g_cams, max_rank=20)
    ref = evaluate(dist, q_pids, g_pids, q_cams, g_cams, backend="reference")
    np.testing.assert_allclose(cmc, ref.cmc, atol=1e-6)
    assert mean_ap == pytest.approx(ref.mAP, abs=1e-12)
    assert minp == pytest.approx(ref.mINP, abs=1e-12)


def test_run_benchmark_small() -> None:
    out = run_benchmark(num_q=60, num_g=80, num_ids=12, seed=1, repeats=1)
    assert max(out["max_abs_diff"].values()) <= 1e-6
    assert out["num_valid"] > 0 and set(out["metrics"]) == {"R1", "R5", "R10", "R20", "mAP", "mINP"}
    assert out["speedup"] == pytest.approx(out["official_s"] / out["fast_s"])


# --------------------------------------------------------------------------------------
# Directions and distances
# --------------------------------------------------------------------------------------


def test_transposed_matrix_equals_swapped_roles() -> None:
    rng = np.random.default_rng(11)
    qf, gf = torch.as_tensor(rng.normal(size=(30, 16))), torch.as_tensor(rng.normal(size=(45, 16)))
    q_pids, g_pids = rng.integers(0, 8, 30), rng.integers(0, 8, 45)
    q_cams, g_cams = rng.integers(0, 3, 30), rng.integers(0, 3, 45)
    ir2rgb = compute_distance(qf, gf, "cosine")
    for backend in BACKENDS:
        transposed = evaluate(ir2rgb.T, g_pids, q_pids, g_cams, q_cams, backend=backend)
        rebuilt = evaluate(compute_distance(gf, qf, "cosine"), g_pids, q_pids, g_cams, q_cams, backend=backend)
        assert_same(transposed, rebuilt, atol=1e-12)
        assert transposed.num_query == 45


def test_euclidean_on_normalised_features_ranks_like_cosine() -> None:
    rng = np.random.default_rng(5)
    qf, gf = torch.as_tensor(rng.normal(size=(25, 32))), torch.as_tensor(3.0 * rng.normal(size=(40, 32)))
    cos, euc = compute_distance(qf, gf, "cosine"), compute_distance(qf, gf, "euclidean")
    torch.testing.assert_close(euc, torch.sqrt(2.0 * cos), rtol=0, atol=1e-7)  # |q-g|^2 = 2 - 2 cos
    assert torch.equal(torch.argsort(cos, dim=1), torch.argsort(euc, dim=1))
    ids = (rng.integers(0, 5, 25), rng.integers(0, 5, 40), rng.integers(0, 2, 25), rng.integers(0, 2, 40))
    assert_same(evaluate(cos, *ids), evaluate(euc, *ids), atol=1e-12)


def test_inner_and_cosine_values() -> None:
    qf = torch.tensor([[3.0, 4.0]])
    gf = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    torch.testing.assert_close(compute_distance(qf, gf, "inner"), torch.tensor([[-25.0, -8.0]]))
    torch.testing.assert_close(compute_distance(qf, gf, "cosine"), torch.tensor([[0.0, 0.2]]))
    torch.testing.assert_close(compute_distance(qf, gf, "euclidean"), torch.tensor([[1e-6, 0.4**0.5]]))
    with pytest.raises(ValueError, match="unknown metric 'l1'"):
        compute_distance(qf, gf, "l1")
    with pytest.raises(ValueError, match="feature sizes differ"):
        compute_distance(qf, torch.zeros(2, 3))


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_valid_query_raises_clear_error(backend: str) -> None:
    # The only positive of the only query shares its camera: nothing left under "vcm".
    with pytest.raises(NoValidQueryError, match=r"none of the 1 queries.*share the query's pid and camera"):
        evaluate([[0.1, 0.2]], [1], [1, 2], [3], [3, 4], rule="vcm", backend=backend)
    with pytest.raises(NoValidQueryError, match="none of the 2 queries"):
        evaluate([[0.1], [0.2]], [1, 2], [5], rule="bupt", backend=backend)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="needs q_camids and g_camids"):
        evaluate(DIST, Q_PIDS, G_PIDS, rule="vcm")
    with pytest.raises(ValueError, match=r"g_pids must have shape \(5,\)"):
        evaluate(DIST, Q_PIDS, G_PIDS[:4], rule="bupt")
    with pytest.raises(ValueError, match="unknown rule 'market'"):
        evaluate(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, rule="market")
    with pytest.raises(ValueError, match="rule 'sysu' needs q_camids"):
        evaluate(DIST, Q_PIDS, G_PIDS, rule="sysu")
    with pytest.raises(ValueError, match="unknown backend"):
        evaluate(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, backend="gpu")
    with pytest.raises(ValueError, match="contains NaN"):
        evaluate(np.where(DIST > 0.3, np.nan, DIST), Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match="integer ids"):
        evaluate(DIST, Q_PIDS.astype(float), G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match="integer ids"):
        evaluate(DIST, Q_PIDS, G_PIDS.astype(str), rule="bupt")
