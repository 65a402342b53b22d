import numpy as np
import pytest

from farm.errors import SplitError
from farm.mico.splits import mico_shuffle, mt19937_raw, split_model
from tests.oracle import MT19937, loop_shuffle, swap_shuffle

SEEDS = [
    0,
    1,
    5489,
    2**31 - 1,
    2**32 - 1,
    2**32,
    2**32 + 7,
    -1,
    -(2**63),
    2**63 - 1,
    123456789012345678,
    -987654321098765432,
]


def test_mt19937_reference_outputs():
    assert mt19937_raw(5489, 0).shape == (0,)
    raw = mt19937_raw(5489, 10_000)
    assert raw[0] == 3499211612
    assert raw[9_999] == 4123659995


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_mt19937_matches_plain_python(seed):
    gen = MT19937(seed & 0xFFFFFFFF)
    expected = [gen.next() for _ in range(1500)]  # crosses two twists
    assert mt19937_raw(seed, 1500).tolist() == expected


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 200, 1000])
def test_shuffle_matches_swap_loop(seed, n):
    assert mico_shuffle(seed, n).tolist() == swap_shuffle(seed, n)


@pytest.mark.parametrize("seed", [SEEDS[7], SEEDS[9], SEEDS[11]])
def test_shuffle_full_population_matches_swap_loop(seed):
    perm = mico_shuffle(seed, 68_221)
    assert perm.dtype == np.int64
    assert perm.tolist() == swap_shuffle(seed, 68_221)


def test_shuffle_low_32_bits_only():
    assert np.array_equal(mico_shuffle(7, 500), mico_shuffle(7 + 2**32, 500))
    assert np.array_equal(mico_shuffle(-1, 500), mico_shuffle(2**32 - 1, 500))


def test_shuffle_draws_its_numbers_in_one_vectorised_call(monkeypatch):
    """What keeps the shuffle fast, without timing it: MT19937 runs in numpy, one draw of n - 1
    raw outputs, never a per-element Python generator."""
    from farm.mico import splits

    calls = []
    real = splits._raw32

    def counting(seed: int, count: int) -> np.ndarray:
        calls.append(count)
        return real(seed, count)

    monkeypatch.setattr(splits, "_raw32", counting)
    assert mico_shuffle(42, 68_221).tolist() == swap_shuffle(42, 68_221)
    assert calls == [68_220]


def test_hand_worked_small_case():
    # MT19937(5489) starts 3499211612, 581869302, 3890346734, 3586334585, 545404204, ...
    # n=6: i=0 z=3499211612%6=2 -> [2,1,0,3,4,5]; i=1 z=581869302%5=2 -> [2,3,0,1,4,5];
    # i=2 z=3890346734%4=2 -> [2,3,4,1,0,5]; i=3 z=3586334585%3=2 -> [2,3,4,5,0,1]; i=4
    # z=545404204%2=0.
    assert mico_shuffle(5489, 6).tolist() == [2, 3, 4, 5, 0, 1]
    # N=6, m=1, n_train=3: challenge = P[:2] = [2,3], rest = [4,5,0,1].
    # Q = Shuffle(5489, 4): z=3499211612%4=0, 581869302%3=0, 3890346734%2=0 -> identity [0,1,2,3]
    #   training = rest[Q[:2]] = [4,5], evaluation = rest[Q[2:]] = [0,1].
    # R = Shuffle(5489, 2): z = 3499211612 % 2 = 0 -> [0,1]: nonmember = challenge[0] = 2, member =
    # 3.
    s = split_model(5489, 5489, 5489, n_total=6, len_training=3, len_challenge=1)
    assert s.challenge.tolist() == [2, 3]
    assert s.rest.tolist() == [4, 5, 0, 1]
    assert s.training.tolist() == [4, 5]
    assert s.evaluation.tolist() == [0, 1]
    assert s.nonmember.tolist() == [2] and s.member.tolist() == [3]
    assert s.solution.tolist() == [0, 1]
    assert s.train_set().tolist() == [3, 4, 5]


def test_split_model_mico_sizes_and_partition():
    s = split_model(11, 22, 33)
    assert s.challenge.size == 200 and s.rest.size == 68_021
    assert s.training.size == 67_249 and s.evaluation.size == 772
    assert s.member.size == s.nonmember.size == 100
    everything = np.concatenate([s.challenge, s.training, s.evaluation])
    assert np.array_equal(np.sort(everything), np.arange(68_221))
    assert set(s.challenge[s.solution == 1]) == set(s.member)
    assert s.train_set().size == 67_349


def test_split_model_missing_seeds():
    s = split_model(11)
    assert s.training is None and s.evaluation is None and s.member is None and s.solution is None
    with pytest.raises(SplitError):
        s.train_set()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_total=10, len_training=3, len_challenge=4),
        dict(n_total=10, len_training=9, len_challenge=2),
        dict(n_total=10, len_training=5, len_challenge=0),
        dict(n_total=10.0, len_training=5, len_challenge=1),
    ],
)
def test_split_model_inconsistent_sizes(kwargs):
    with pytest.raises(SplitError):
        split_model(1, 2, 3, **kwargs)


@pytest.mark.parametrize("seed", [1.5, "12", None, True])
def test_split_model_non_integer_seed(seed):
    with pytest.raises(SplitError, match="seed_challenge must be an integer"):
        split_model(seed)


def test_vectorised_shuffle_matches_the_loop_on_every_small_size():
    """Every n below 70 (no-op swaps, groups of steps aiming at one position, chains of moves) with
    20 random seeds each."""
    rng = np.random.default_rng(20)
    for n in range(70):
        for seed in rng.integers(-(2**63), 2**63 - 1, size=20, dtype=np.int64):
            assert mico_shuffle(int(seed), n).tolist() == loop_shuffle(int(seed), n).tolist(), (
                n,
                seed,
            )


def test_vectorised_shuffle_matches_the_loop_on_many_random_seeds():
    rng = np.random.default_rng(22)
    sizes = [200, 1000, 4096, 4097, 65_535, 65_536]
    for seed in rng.integers(-(2**63), 2**63 - 1, size=60, dtype=np.int64):
        n = sizes[int(seed) % len(sizes)]
        assert mico_shuffle(int(seed), n).tolist() == loop_shuffle(int(seed), n).tolist(), (n, seed)


@pytest.mark.parametrize("n", [68_221, 68_021])
def test_vectorised_shuffle_matches_the_loop_at_mico_sizes(n):
    """MICO's two big shuffles (the population, then the rest), 12 random seeds each."""
    rng = np.random.default_rng(n)
    for seed in rng.integers(-(2**63), 2**63 - 1, size=12, dtype=np.int64):
        assert mico_shuffle(int(seed), n).tolist() == loop_shuffle(int(seed), n).tolist(), seed


def test_shuffle_refuses_sizes_its_keys_cannot_hold():
    with pytest.raises(SplitError, match="below 2\\*\\*31"):
        mico_shuffle(1, 2**31)
