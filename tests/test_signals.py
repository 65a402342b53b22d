import numpy as np
import torch

from farm.models import init_model, save_model
from farm.recipes import ModelSpec, Perf, TinyModel
from farm.signals import compute_logits, log_softmax, logit_margin, true_label_logprob, true_label_prob
from tests.helpers import tiny_setup


def test_logits_match_a_plain_forward_pass(tmp_path):
    pop, tok, tokens = tiny_setup()
    torch.manual_seed(1)
    model = init_model(ModelSpec(name="tiny", tiny=TinyModel(32, 2, 2, 64)), tok, max_length=67).eval()
    out = save_model(model, tmp_path / "m")
    idx = np.array([5, 300, 17, 42, 5, 399, 0])  # any order, repeats allowed
    got = compute_logits(out, tokens, idx, perf=Perf(infer_batch=3))
    assert got.dtype == np.float32 and got.shape == (idx.size, 2)
    with torch.no_grad():
        for row, i in enumerate(idx):  # one unpadded record at a time, straight from the tokenizer
            ids = torch.tensor([tok(pop.sentences[i], truncation=True, max_length=67)["input_ids"]])
            np.testing.assert_allclose(got[row], model(input_ids=ids).logits[0].numpy(), atol=1e-5)


def test_pure_transforms():
    logits = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    labels = np.array([0, 0, 1])
    np.testing.assert_allclose(np.exp(log_softmax(logits)).sum(-1), 1.0)
    np.testing.assert_allclose(true_label_logprob(logits, labels), [-np.log1p(np.exp(-2)), -np.log1p(np.exp(3)),
                                                                    np.log(0.5)])
    np.testing.assert_allclose(true_label_prob(logits, labels)[2], 0.5)
    np.testing.assert_allclose(logit_margin(logits, labels), [2.0, -3.0, 0.0])
    stacked = np.stack([logits, logits * 2])  # [models, records, 2] broadcasts over labels [records]
    assert logit_margin(stacked, labels).shape == (2, 3)
    np.testing.assert_allclose(logit_margin(stacked, labels)[1], [4.0, -6.0, 0.0])
    assert np.isfinite(true_label_logprob(np.array([[1000.0, -1000.0]]), np.array([1]))).all()
