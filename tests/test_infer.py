import numpy as np
import torch

from farm.infer import logits_of
from farm.models import init_model, save_model
from farm.recipes import ModelSpec, Perf, TinyModel
from tests.helpers import tiny_setup


def test_logits_match_a_plain_forward_pass(tmp_path):
    pop, tok, tokens = tiny_setup()
    torch.manual_seed(1)
    model = init_model(ModelSpec(name="tiny", tiny=TinyModel(32, 2, 2, 64)), tok, max_length=67).eval()
    out = save_model(model, tmp_path / "m")
    idx = np.array([5, 300, 17, 42, 5, 399, 0])  # any order, repeats allowed
    got = logits_of(out, tokens, idx, perf=Perf(infer_batch=3))
    assert got.dtype == np.float32 and got.shape == (idx.size, 2)
    with torch.no_grad():
        for row, i in enumerate(idx):  # one unpadded record at a time, straight from the tokenizer
            ids = torch.tensor([tok(pop.sentences[i], truncation=True, max_length=67)["input_ids"]])
            np.testing.assert_allclose(got[row], model(input_ids=ids).logits[0].numpy(), atol=1e-5)
