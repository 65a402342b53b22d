import numpy as np
import torch

from farm.spec.recipes import ModelSpec, Perf, TinyModel
from farm.training.infer import logits_of
from farm.training.models import init_model, load_model, save_model
from tests.helpers import tiny_setup


def test_logits_match_a_plain_forward_pass(tmp_path):
    pop, tok, tokens = tiny_setup()
    torch.manual_seed(1)
    model = init_model(
        ModelSpec(name="tiny", tiny=TinyModel(32, 2, 2, 64)), tok, max_length=67
    ).eval()
    out = save_model(model, tmp_path / "m")
    idx = np.array([5, 300, 17, 42, 5, 399, 0])  # any order, repeats allowed
    got = logits_of(out, tokens, idx, perf=Perf(infer_batch=3))
    assert got.dtype == np.float32 and got.shape == (idx.size, 2)
    with torch.no_grad():
        for row, i in enumerate(idx):  # one unpadded record at a time, straight from the tokenizer
            ids = torch.tensor([tok(pop.sentences[i], truncation=True, max_length=67)["input_ids"]])
            np.testing.assert_allclose(got[row], model(input_ids=ids).logits[0].numpy(), atol=1e-5)


def _tiny_saved(tmp_path, seed=1):
    pop, tok, tokens = tiny_setup()
    torch.manual_seed(seed)
    model = init_model(
        ModelSpec(name="tiny", tiny=TinyModel(32, 2, 2, 64)), tok, max_length=67
    ).eval()
    return pop, tok, tokens, model, save_model(model, tmp_path / "m")


def test_query_logits_are_the_logits_of_each_perturbed_record(tmp_path):
    from farm.spec.queries import QueryFamily, perturb
    from farm.training.infer import query_logits, word_starts_of

    pop, tok, tokens, model, _ = _tiny_saved(tmp_path)
    family = QueryFamily(kinds=("identity", "dropout", "swap"), drop_rate=0.3, seed=4)
    idx = np.array([7, 3, 250, 3])
    starts = word_starts_of(tok, tokens, idx)
    got = query_logits(model, tokens, idx, family, word_starts=starts, perf=Perf(infer_batch=4))
    assert got.shape == (4, 3, 2) and got.dtype == np.float32
    np.testing.assert_allclose(
        got[:, 0], logits_of(tmp_path / "m", tokens, idx), atol=1e-5
    )  # identity = record
    np.testing.assert_array_equal(got[1], got[3])  # a query depends on the record, not on the call
    with torch.no_grad():
        for row, i in enumerate(idx):
            for q, ids in enumerate(
                perturb(tokens.ids[i], family, record=int(i), word_starts=starts[row])
            ):
                expected = (
                    model(input_ids=torch.from_numpy(ids[None].astype(np.int64))).logits[0].numpy()
                )
                np.testing.assert_allclose(got[row, q], expected, atol=1e-5)
    reused = query_logits(model, tokens, idx, family, word_starts=starts, logits=got[:, 0] + 1.0)
    np.testing.assert_array_equal(
        reused[:, 0], got[:, 0] + 1.0
    )  # identity takes the logits it is given
    np.testing.assert_allclose(reused[:, 1:], got[:, 1:], atol=1e-5)


def test_word_starts_follow_the_byte_level_space_marker():
    from farm.training.infer import word_starts_of

    _, tok, tokens = tiny_setup()
    starts = word_starts_of(tok, tokens, np.array([0]))[0]
    pieces = tok.convert_ids_to_tokens(tokens.ids[0].tolist())
    assert starts.shape == (len(pieces),) and starts[:2].all()
    assert [s for s, p in zip(starts[2:], pieces[2:])] == [
        p.startswith("\u0120") for p in pieces[2:]
    ]


def test_infer_arrays_loads_once_and_adds_what_is_asked(tmp_path, monkeypatch):
    from farm.spec.queries import QueryFamily
    from farm.training import infer
    from farm.training.grad_norm import grad_norms_of

    _, tok, tokens, _, out = _tiny_saved(tmp_path)
    idx = np.array([11, 2, 40])
    plain = infer.infer_arrays(out, tokens, idx)
    assert set(plain) == {"logits"}
    loads = []
    monkeypatch.setattr(infer, "load_model", lambda *a, **k: loads.append(a) or load_model(*a, **k))
    full = infer.infer_arrays(
        out,
        tokens,
        idx,
        queries=QueryFamily(),
        tokenizer=tok,
        grad_norm=True,
        perf=Perf(device="cpu"),
    )
    assert len(loads) == 1
    assert full["query_logits"].shape == (3, QueryFamily().n_queries, 2) and full[
        "grad_norm"
    ].shape == (3,)
    np.testing.assert_array_equal(full["query_logits"][:, 0], full["logits"])
    np.testing.assert_allclose(
        full["grad_norm"], grad_norms_of(out, tokens, idx, device="cpu"), rtol=1e-5
    )
