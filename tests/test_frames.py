"""Frame sampling: the computed examples of docs/decisions/data.md#chunk-sampling, verbatim."""
import numpy as np
import pytest

from reprolib.data import frames as S


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("n, seq_len, expected", [
    (24, 6, [0, 4, 8, 12, 16, 20]),
    (13, 6, [0, 3, 6, 9, 12, 12]),
    (25, 6, [0, 5, 10, 15, 20, 24]),
    (21, 10, [0, 3, 6, 9, 12, 15, 18, 20, 20, 20]),
    (12, 10, [0, 2, 4, 6, 8, 10, 11, 11, 11, 11]),
    (4, 6, [0, 1, 2, 3, 3, 3]),  # n < S: 0..n-1 then copies of n-1
])
def test_rrs_test_examples(n, seq_len, expected):
    assert S.rrs_test(n, seq_len) == expected


@pytest.mark.parametrize("n, seq_len", [(13, 6), (24, 6), (21, 10), (4, 6), (100, 6)])
def test_rrs_train_picks_one_element_per_chunk(n, seq_len):
    chunks = S.rrs_chunks(n, seq_len)
    seen = [set() for _ in chunks]
    for seed in range(200):
        picks = S.rrs_train(n, seq_len, rng(seed))
        assert len(picks) == seq_len
        for s, (chunk, pick) in enumerate(zip(chunks, picks)):
            assert pick in chunk
            seen[s].add(pick)
    # Uniform over the chunk: every element of every chunk shows up in 200 draws.
    assert seen == [set(chunk) for chunk in chunks]


def test_rrs_chunks_pad_with_last_frame():
    assert S.rrs_chunks(13, 6) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [12, 12, 12],
                                   [12, 12, 12]]


@pytest.mark.parametrize("n, seq_len, expected", [
    (26, 8, [list(range(0, 8)), list(range(8, 16)), list(range(16, 24)), [24, 25] * 4]),
    (13, 6, [list(range(0, 6)), list(range(6, 12)), [12] * 6]),
    (20, 10, [list(range(0, 10)), list(range(10, 20))]),
    (3, 8, [[0, 1, 2, 0, 1, 2, 0, 1]]),
])
def test_dense_examples(n, seq_len, expected):
    assert S.dense_clips(n, seq_len) == expected


@pytest.mark.parametrize("n, seq_len, expected", [
    (25, 10, [0, 2, 5, 7, 10, 12, 15, 17, 20, 22]),
    (4, 10, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]),
    (111, 10, [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]),
])
def test_bupt_uniform_examples(n, seq_len, expected):
    assert S.bupt_uniform(n, seq_len) == expected


def test_bupt_uniform_halves():
    assert S.bupt_uniform(20, 5, "first_half") == [0, 2, 4, 6, 8]
    assert S.bupt_uniform(20, 5, "second_half") == [10, 12, 14, 16, 18]
    with pytest.raises(ValueError, match="part"):
        S.bupt_uniform(20, 5, "middle")


def test_bupt_random_sorted_distinct_unless_short():
    for seed in range(50):
        picks = S.bupt_random(12, 10, rng(seed))
        assert picks == sorted(picks) and len(set(picks)) == 10 and max(picks) < 12
    short = [S.bupt_random(4, 10, rng(seed)) for seed in range(20)]
    assert all(len(p) == 10 and p == sorted(p) and set(p) <= {0, 1, 2, 3} for p in short)


def test_bupt_restricted_random_front_padding_when_short():
    # [0] * (S - n) followed by 0..n-1: segments [0] x 7, then [1], [2], [3].
    assert S.bupt_restricted_random(4, 10, rng()) == [0, 0, 0, 0, 0, 0, 0, 1, 2, 3]


def test_bupt_restricted_random_one_per_segment():
    n, seq_len = 25, 10
    step = n / seq_len
    for seed in range(50):
        picks = S.bupt_restricted_random(n, seq_len, rng(seed))
        for i, pick in enumerate(picks):
            assert int(i * step) <= pick < int((i + 1) * step)


def test_consecutive_cycles_short_tracklets():
    assert S.consecutive(3, 8, rng()) == [0, 1, 2, 0, 1, 2, 0, 1]
    assert S.consecutive_first(3, 8) == [0, 1, 2, 0, 1, 2, 0, 1]
    assert S.consecutive_first(20, 4) == [0, 1, 2, 3]


def test_consecutive_off_by_one_as_released():
    n, seq_len = 10, 6
    released = {S.consecutive(n, seq_len, rng(s), as_released=True)[0] for s in range(300)}
    fixed = {S.consecutive(n, seq_len, rng(s))[0] for s in range(300)}
    assert released == set(range(0, n - seq_len))  # the final window (start 4) is never drawn
    assert fixed == set(range(0, n - seq_len + 1))
    clip = S.consecutive(n, seq_len, rng(3))
    assert clip == list(range(clip[0], clip[0] + seq_len))


def test_sampling_is_deterministic_and_leaves_global_rng_alone():
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    for fn in S.TRAIN_SAMPLING.values():
        assert fn(37, 6, rng(5)) == fn(37, 6, rng(5))
    assert np.array_equal(np.random.get_state()[1], state)


def test_registries_and_unknown_names():
    assert set(S.TRAIN_SAMPLING) == {"chunk", "bupt_random", "bupt_restricted", "consecutive"}
    assert set(S.TEST_SAMPLING) == {"chunk_first", "dense", "bupt_uniform", "consecutive"}
    assert S.get_test_sampling("chunk_first")(13, 6) == [0, 3, 6, 9, 12, 12]
    with pytest.raises(ValueError, match="data.train_sampling 'rrs'"):
        S.get_train_sampling("rrs")
    with pytest.raises(ValueError, match="empty tracklet"):
        S.rrs_test(0, 6)
