"""Identity batch samplers: composition, replacement, determinism, resumption, DDP sharding."""
import io
from collections import Counter

import pytest
import torch

from reprolib.data.batches import BUPTIdentitySampler, IterationSampler, VCMIdentitySampler

# 6 identities; identity i has i+1 RGB tracklets and 2 IR tracklets (identity 0: 1 RGB).
RGB_LABELS = [label for label in range(6) for _ in range(label + 1)]
IR_LABELS = [label for label in range(6) for _ in range(2)]


def vcm(**kwargs):
    args = dict(rgb_labels=RGB_LABELS, ir_labels=IR_LABELS, num_ids=2, num_pos=3, seed=7)
    args.update(kwargs)
    return VCMIdentitySampler(**args)


def test_vcm_batch_composition():
    sampler = vcm()
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        assert len(batch) == 2 * 3
        for rgb, ir in batch:
            assert RGB_LABELS[rgb] == IR_LABELS[ir]  # identity-matched pairs
        counts = Counter(RGB_LABELS[rgb] for rgb, _ in batch)
        assert len(counts) == 2 and set(counts.values()) == {3}  # P ids x K per modality
        # Items are grouped identity by identity.
        labels = [RGB_LABELS[rgb] for rgb, _ in batch]
        assert labels[:3] == [labels[0]] * 3 and labels[3:] == [labels[3]] * 3


def test_vcm_epoch_length_max_and_min():
    # 21 RGB and 12 IR tracklets, P*K = 6.
    assert len(vcm(length="max")) == 21 // 6 + 1
    assert len(vcm(length="min")) == 12 // 6
    assert len(list(vcm(length="min"))) == 2


def test_vcm_without_replacement_draws_distinct_when_possible():
    sampler = vcm(replace=False, num_pos=2)
    for batch in sampler.global_batches(0) + sampler.global_batches(1):
        for start in range(0, len(batch), 2):
            rgb = [r for r, _ in batch[start:start + 2]]
            ir = [i for _, i in batch[start:start + 2]]
            label = RGB_LABELS[rgb[0]]
            assert len(set(ir)) == 2  # every identity has 2 IR tracklets
            if label > 0:
                assert len(set(rgb)) == 2
            else:  # identity 0 has a single RGB tracklet: fall back to repeating it
                assert rgb == [0, 0]


def test_vcm_with_replacement_repeats_sometimes():
    sampler = vcm(num_pos=4)
    repeats = sum(len({i for _, i in batch[k:k + 4]}) < 4
                  for batch in sampler.global_batches(0) for k in range(0, 8, 4))
    assert repeats > 0  # only 2 IR tracklets per identity: K=4 must repeat


def test_vcm_deterministic_by_seed_and_epoch():
    a, b = vcm(), vcm()
    assert list(a) == list(b)
    a.set_epoch(1)
    b.set_epoch(1)
    first = list(a)
    assert first == list(b)
    a.set_epoch(0)
    assert list(a) != first
    assert list(vcm(seed=8)) != list(vcm(seed=7))


def test_vcm_rejects_labels_the_official_sampler_would_misindex():
    with pytest.raises(ValueError, match="not contiguous"):
        VCMIdentitySampler([0, 2], [0, 2], num_ids=1, num_pos=1)
    with pytest.raises(ValueError, match="RGB but no IR.*\\[2\\]"):
        VCMIdentitySampler([0, 1, 2], [0, 1], num_ids=1, num_pos=1)
    with pytest.raises(ValueError, match="exceeds"):
        VCMIdentitySampler([0, 1], [0, 1], num_ids=3, num_pos=1)


def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("wrap", [False, True])
def test_state_dict_resume_continues_identically(wrap):
    def make():
        sampler = vcm(length="max")
        return IterationSampler(sampler, 7) if wrap else sampler

    reference = make()
    reference.set_epoch(2)
    expected = list(reference)

    interrupted = make()
    interrupted.set_epoch(2)
    it = iter(interrupted)
    consumed = [next(it) for _ in range(2)]
    state = _roundtrip(interrupted.state_dict())
    assert state["position"] == 2 and state["epoch"] == 2

    resumed = make()
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # a trainer's usual call keeps the restored position
    assert consumed + list(resumed) == expected
    resumed.set_epoch(3)  # a new epoch starts from its beginning
    assert len(list(resumed)) == len(expected)


def test_state_dict_consumed_overrides_prefetch_position():
    sampler = IterationSampler(vcm(), 5)
    it = iter(sampler)
    for _ in range(4):  # a DataLoader prefetched 4 batches, the trainer finished 1
        next(it)
    assert sampler.state_dict(consumed=1)["position"] == 1
    with pytest.raises(ValueError, match="does not match"):
        IterationSampler(vcm(), 6).load_state_dict(sampler.state_dict())


def test_ddp_ranks_partition_each_global_batch():
    single = IterationSampler(vcm(num_ids=4, num_pos=2), 6)
    ranks = [IterationSampler(vcm(num_ids=4, num_pos=2, rank=r, world_size=2), 6) for r in range(2)]
    for full, part0, part1 in zip(single, *ranks):
        assert part0 + part1 == full
        assert not set(part0) & set(part1)
        ids0 = {RGB_LABELS[item[0]] for item in part0}
        ids1 = {RGB_LABELS[item[0]] for item in part1}
        assert len(ids0) == len(ids1) == 2 and not ids0 & ids1  # whole identities per rank
    with pytest.raises(ValueError, match="divisible"):
        vcm(num_ids=3, rank=0, world_size=2)


def test_iteration_sampler_cycles_passes_deterministically():
    base = vcm(length="min")  # 2 batches per pass
    sampler = IterationSampler(base, 5)
    batches = list(sampler)
    assert len(batches) == 5
    stripped = [[item[:2] for item in batch] for batch in batches]
    assert stripped[:2] == base.global_batches(0, 0)
    assert stripped[2:4] == base.global_batches(0, 1)
    assert stripped[4] == base.global_batches(0, 2)[0]
    seeds = [item[2] for batch in batches for item in batch]
    assert len(set(seeds)) == len(seeds)
    assert batches == list(IterationSampler(vcm(length="min"), 5))
    sampler.set_epoch(1)
    assert list(sampler) != batches


# --------------------------------------------------------------------------------------
# BUPT
# --------------------------------------------------------------------------------------

# (label, camid) of every training pair: identity 3 is seen by a single camera.
BUPT_PAIRS = ([(0, 0)] * 2 + [(0, 1)] * 2 + [(0, 2)] +
              [(1, 0)] * 3 + [(1, 3)] * 1 +
              [(2, 1)] * 2 + [(2, 4)] * 2 +
              [(3, 5)] * 6 +
              [(4, 0)] + [(4, 5)] * 2)
LABELS = [label for label, _ in BUPT_PAIRS]
CAMS = [cam for _, cam in BUPT_PAIRS]


def test_bupt_excludes_single_camera_identities_and_picks_distinct_cameras():
    sampler = BUPTIdentitySampler(LABELS, CAMS, num_ids=2, num_cams=2, num_pairs=1, seed=3)
    assert 3 not in sampler.eligible
    seen_labels = set()
    for epoch in range(20):
        batches = sampler.global_batches(epoch)
        assert batches  # varies per pass, but never empty here
        used = [i for batch in batches for i, _ in batch]
        assert len(used) == len(set(used))  # pairs are taken without replacement in a pass
        for batch in batches:
            assert len(batch) == 2 * 2 and all(a == b for a, b in batch)
            for k in range(0, 4, 2):
                group = [i for i, _ in batch[k:k + 2]]
                assert LABELS[group[0]] == LABELS[group[1]]
                assert CAMS[group[0]] != CAMS[group[1]]
                seen_labels.add(LABELS[group[0]])
            assert LABELS[batch[0][0]] != LABELS[batch[2][0]]
    assert seen_labels == {0, 1, 2, 4}


def test_bupt_resume_and_ddp():
    make = lambda **kw: BUPTIdentitySampler(LABELS, CAMS, num_ids=2, seed=1, **kw)  # noqa: E731
    full = list(IterationSampler(make(), 6))
    halves = [list(IterationSampler(make(rank=r, world_size=2), 6)) for r in range(2)]
    assert [a + b for a, b in zip(*halves)] == full
    sampler = IterationSampler(make(), 6)
    it = iter(sampler)
    head = [next(it) for _ in range(3)]
    resumed = IterationSampler(make(), 6)
    resumed.load_state_dict(_roundtrip(sampler.state_dict()))
    assert head + list(resumed) == full
