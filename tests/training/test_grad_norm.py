import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from farm.training.grad_norm import per_example_grad_norms  # noqa: E402


def _tiny_model(seed=0):
    torch.manual_seed(seed)
    config = transformers.RobertaConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        type_vocab_size=1,
        pad_token_id=1,
        num_labels=2,
    )
    return transformers.RobertaForSequenceClassification(config)


def _batch():
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 9, 2, 1, 1], [0, 11, 12, 2, 1]])
    mask = (ids != 1).long()
    return ids, mask, torch.tensor([0, 1, 1])


def test_vmap_matches_a_loop_of_backward_passes():
    model = _tiny_model()
    ids, mask, y = _batch()
    loop = per_example_grad_norms(model, ids, mask, y, method="loop")
    fast = per_example_grad_norms(model, ids, mask, y, method="vmap")
    assert loop.shape == (3,) and (loop > 0).all()
    np.testing.assert_allclose(fast, loop, rtol=1e-4)


def test_norm_is_of_one_record_alone_and_matches_autograd_by_hand():
    model = _tiny_model(1)
    ids, mask, y = _batch()
    batch = per_example_grad_norms(model, ids, mask, y, method="vmap")
    model.zero_grad()
    n = int(mask[1].sum())  # record 1 unpadded, on its own
    logits = model(input_ids=ids[1:2, :n], attention_mask=mask[1:2, :n]).logits
    torch.nn.functional.cross_entropy(logits, y[1:2]).backward()
    by_hand = float(
        torch.sqrt(sum((p.grad**2).sum() for p in model.parameters() if p.grad is not None))
    )
    assert batch[1] == pytest.approx(by_hand, rel=1e-4)


def test_unknown_method():
    ids, mask, y = _batch()
    with pytest.raises(ValueError, match="method"):
        per_example_grad_norms(_tiny_model(), ids, mask, y, method="nope")


def test_grad_norms_of_a_saved_model_on_population_indices(tmp_path):
    from farm.training.data import Tokenized
    from farm.training.grad_norm import grad_norms_of
    from farm.training.models import save_model

    model = _tiny_model(2)
    save_model(model, tmp_path / "m")
    ids = tuple(
        np.array(x, np.int32)
        for x in ([0, 5, 6, 7, 2], [0, 9, 2], [0, 11, 12, 2], [0, 3, 4, 8, 9, 2])
    )
    tokens = Tokenized(ids, np.array([x.size for x in ids]), np.array([0, 1, 1, 0]), pad_id=1)
    got = grad_norms_of(tmp_path / "m", tokens, np.array([3, 1, 0]), device="cpu", batch_size=2)
    for row, i in enumerate([3, 1, 0]):
        one = torch.from_numpy(ids[i][None].astype(np.int64))
        expected = per_example_grad_norms(
            model, one, torch.ones_like(one), torch.tensor([tokens.labels[i]]), method="loop"
        )
        assert got[row] == pytest.approx(expected[0], rel=1e-4)
