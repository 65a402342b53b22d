import numpy as np

from farm.attacks.signals import log_softmax, logit_margin, true_label_logprob, true_label_prob


def test_pure_transforms():
    logits = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    labels = np.array([0, 0, 1])
    np.testing.assert_allclose(np.exp(log_softmax(logits)).sum(-1), 1.0)
    np.testing.assert_allclose(
        true_label_logprob(logits, labels),
        [-np.log1p(np.exp(-2)), -np.log1p(np.exp(3)), np.log(0.5)],
    )
    np.testing.assert_allclose(true_label_prob(logits, labels)[2], 0.5)
    np.testing.assert_allclose(logit_margin(logits, labels), [2.0, -3.0, 0.0])
    stacked = np.stack(
        [logits, logits * 2]
    )  # [models, records, 2] broadcasts over labels [records]
    assert logit_margin(stacked, labels).shape == (2, 3)
    np.testing.assert_allclose(logit_margin(stacked, labels)[1], [4.0, -6.0, 0.0])
    assert np.isfinite(true_label_logprob(np.array([[1000.0, -1000.0]]), np.array([1]))).all()
