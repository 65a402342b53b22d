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


def _ragged_batch(seed=0, n=6, extra_pad=0):
    """``n`` records of different lengths (a repeated token in the first), right-padded with
    ``extra_pad`` more columns than the longest needs."""
    rng = np.random.default_rng(seed)
    lengths = rng.permutation(np.arange(3, 3 + n) * 2)[:n]
    width = int(lengths.max()) + extra_pad
    ids = torch.ones((n, width), dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.from_numpy(rng.integers(3, 50, length))
        ids[row, 0], ids[row, length - 1] = 0, 2
    ids[0, 2] = ids[0, 3] = ids[0, 4]
    return ids, (ids != 1).long(), torch.from_numpy(rng.integers(0, 2, n))


def _perturbed(model):
    """Non-trivial LayerNorms and biases (init has them at 1 and 0)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_ghost_is_the_default_and_matches_the_loop_on_a_ragged_batch():
    model = _perturbed(_tiny_model(3))
    ids, mask, y = _ragged_batch()
    loop = per_example_grad_norms(model, ids, mask, y, method="loop")
    ghost = per_example_grad_norms(model, ids, mask, y)
    assert len(set(mask.sum(1).tolist())) == 6
    np.testing.assert_allclose(ghost, loop, rtol=1e-5)


def test_ghost_padding_changes_nothing():
    model = _perturbed(_tiny_model(4))
    ids, mask, y = _ragged_batch(1)
    more = _ragged_batch(1, extra_pad=7)
    np.testing.assert_allclose(
        per_example_grad_norms(model, *more),
        per_example_grad_norms(model, ids, mask, y),
        rtol=1e-6,
    )


def test_ghost_covers_every_parameter():
    """One parameter trainable at a time: ghost's norm of its gradient is the loop's, for each of
    the model's parameters (embeddings, LayerNorms, Linear weights and biases, the head). Some
    gradients are zero but for float error (a key's bias shifts all of a query's scores alike):
    those compare absolutely, at a millionth of the whole gradient's norm."""
    model = _perturbed(_tiny_model(5))
    ids, mask, y = _ragged_batch(2, n=4)
    tiny = 1e-6 * per_example_grad_norms(model, ids, mask, y, method="loop").min()
    names = [n for n, _ in model.named_parameters()]
    assert any("position_embeddings" in n for n in names)
    assert any("token_type_embeddings" in n for n in names)
    assert any("classifier.out_proj.bias" in n for n in names)
    for name in names:
        for other, p in model.named_parameters():
            p.requires_grad_(other == name)
        loop = per_example_grad_norms(model, ids, mask, y, method="loop")
        ghost = per_example_grad_norms(model, ids, mask, y, method="ghost")
        np.testing.assert_allclose(ghost, loop, rtol=1e-4, atol=tiny, err_msg=name)


def test_ghost_refuses_a_parameter_it_does_not_cover():
    model = _tiny_model()
    model.extra = torch.nn.Parameter(torch.zeros(3))
    ids, mask, y = _batch()
    with pytest.raises(ValueError, match="extra"):
        per_example_grad_norms(model, ids, mask, y, method="ghost")


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
    assert grad_norms_of(
        tmp_path / "m", tokens, np.array([3, 1, 0]), device="cpu"
    ) == pytest.approx(got, rel=1e-5)  # the default batch (all four records in one padded batch)
