import subprocess
import sys

import numpy as np
import pytest

from farm.spec.queries import QueryFamily, perturb, queries_of, word_starts_from_tokens

IDS = np.array([0, 11, 12, 13, 14, 15, 16, 17, 18, 2])  # <s> 8 interior tokens </s>


def test_queries_are_deterministic_and_depend_on_record_and_seed():
    fam = QueryFamily()
    a = perturb(IDS, fam, record=7)
    assert len(a) == fam.n_queries
    assert all(np.array_equal(x, y) for x, y in zip(a, perturb(list(IDS), fam, record=7)))
    other_record = perturb(IDS, fam, record=8)
    other_seed = perturb(IDS, QueryFamily(seed=1), record=7)
    assert any(not np.array_equal(x, y) for x, y in zip(a, other_record))
    assert any(not np.array_equal(x, y) for x, y in zip(a, other_seed))


def test_same_queries_in_another_process():
    code = (
        "import numpy as np; from farm.spec.queries import QueryFamily, perturb; print([q.tolist() "
        "for q in perturb(np.arange(20), QueryFamily(), record=3)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == str([q.tolist() for q in perturb(np.arange(20), QueryFamily(), record=3)])


def test_kinds_keep_special_tokens_and_do_what_they_say():
    fam = QueryFamily(kinds=("identity", "dropout", "swap"), drop_rate=0.5, swaps=1)
    ident, drop, swap = perturb(IDS, fam, record=1)
    np.testing.assert_array_equal(ident, IDS)
    for q in (drop, swap):
        assert q[0] == 0 and q[-1] == 2 and q.dtype == np.int32
    assert 3 <= drop.size < IDS.size and set(drop) <= set(IDS)
    assert np.all(np.diff(drop[1:-1]) > 0)  # dropout keeps the order
    assert sorted(swap) == sorted(IDS) and np.sum(swap != IDS) == 2  # one adjacent pair exchanged
    i = int(np.flatnonzero(swap != IDS)[0])
    assert (swap[i], swap[i + 1]) == (IDS[i + 1], IDS[i])


def test_dropout_always_keeps_a_word_and_short_records_survive():
    fam = QueryFamily(kinds=("dropout", "swap"), drop_rate=0.99)
    for r in range(20):
        drop, _ = perturb(IDS, fam, record=r)
        assert drop.size >= 3
    for ids in ([0, 2], [0, 5, 2], [7]):
        assert all(q.size == len(ids) for q in perturb(ids, QueryFamily(kinds=("swap",)), record=0))


def test_words_move_as_units():
    tokens = ["<s>", "The", "Ġfilm", "Ġwas", "Ġun", "bear", "able", "</s>"]
    starts = word_starts_from_tokens(tokens)
    np.testing.assert_array_equal(starts, [True, True, True, True, True, False, False, False])
    ids = np.arange(len(tokens))
    for r in range(30):
        (swap,) = perturb(ids, QueryFamily(kinds=("swap",)), record=r, word_starts=starts)
        pos = {int(t): i for i, t in enumerate(swap)}
        assert pos[5] == pos[4] + 1 and pos[6] == pos[5] + 1  # "un bear able" stays one word


def test_queries_of_groups_by_query():
    ids = [IDS, IDS[:5], IDS[::-1]]
    fam = QueryFamily(kinds=("identity", "swap"))
    out = queries_of(ids, [4, 5, 6], fam)
    assert len(out) == 2 and all(len(q) == 3 for q in out)
    np.testing.assert_array_equal(out[1][2], perturb(IDS[::-1], fam, record=6)[1])


def test_bad_family():
    with pytest.raises(ValueError, match="kinds"):
        QueryFamily(kinds=("shuffle",))
    with pytest.raises(ValueError):
        QueryFamily(drop_rate=1.0)


def test_new_modules_import_light():
    """farm.spec.queries / audit / intervals are pure; farm.training.grad_norm imports torch only
    inside its functions."""
    code = (
        "import sys, farm.spec.queries, farm.attacks.audit, farm.attacks.intervals, "
        "farm.training.grad_norm, farm.attacks.registry; print('torch' in sys.modules, 'ray' in "
        "sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]
