import numpy as np
import pytest
import torch

from farm.errors import ChallengeFormatError
from farm.spec.recipes import ModelSpec, TinyModel
from farm.training.models import init_model, load_model, read_weights, save_model
from tests.helpers import tiny_setup


def _tiny(tok, dropout=None):
    torch.manual_seed(0)
    return init_model(
        ModelSpec(name="tiny", tiny=TinyModel(32, 1, 2, 64), dropout=dropout), tok, max_length=67
    )


def test_tokenizer_is_a_normal_hf_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    _, tok, _ = tiny_setup()
    tok.save_pretrained(tmp_path / "t")
    again = AutoTokenizer.from_pretrained(str(tmp_path / "t"))
    assert again("a good film")["input_ids"] == tok("a good film")["input_ids"]
    assert tok("a good film")["input_ids"][0] == tok.bos_token_id and tok.pad_token_id == 1


def test_saved_model_loads_with_from_pretrained(tmp_path):
    from transformers import AutoModelForSequenceClassification

    _, tok, _ = tiny_setup()
    model = _tiny(tok).eval()
    out = save_model(model, tmp_path / "m", tokenizer=tok, metadata={"k": 1})
    assert (
        (out / "config.json").is_file()
        and (out / "model.safetensors").is_file()
        and (out / "farm.json").is_file()
    )
    again = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    ids = torch.tensor([tok("a good film")["input_ids"]])
    assert torch.allclose(model(input_ids=ids).logits, again(input_ids=ids).logits, atol=1e-6)
    assert torch.allclose(
        load_model(out)(input_ids=ids).logits, again(input_ids=ids).logits, atol=1e-6
    )


def test_pytorch_model_bin_is_loaded_weights_only(tmp_path):
    _, tok, _ = tiny_setup()
    model = _tiny(tok).eval()
    out = save_model(model, tmp_path / "m")
    state = read_weights(out)
    (out / "model.safetensors").unlink()
    torch.save(state, out / "pytorch_model.bin")
    ids = torch.tensor([tok("bad plot")["input_ids"]])
    assert torch.allclose(
        load_model(out)(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6
    )


def test_malicious_pickle_is_refused(tmp_path):
    _, tok, _ = tiny_setup()
    out = save_model(_tiny(tok), tmp_path / "m")
    (out / "model.safetensors").unlink()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, out / "pytorch_model.bin")
    with pytest.raises(ChallengeFormatError, match="pytorch_model.bin: unreadable weights"):
        load_model(out)


def test_missing_parameters_and_config(tmp_path):
    _, tok, _ = tiny_setup()
    out = save_model(_tiny(tok), tmp_path / "m")
    from safetensors.torch import save_file

    state = read_weights(out)
    state.pop(next(k for k in state if "classifier" in k))
    save_file(state, str(out / "model.safetensors"))
    with pytest.raises(ChallengeFormatError, match="weights lack 1 parameter"):
        load_model(out)
    (out / "config.json").unlink()
    with pytest.raises(ChallengeFormatError, match="config.json: missing model config"):
        load_model(out)


def test_local_pretrained_directory_like_roberta_base(tmp_path):
    """The roberta-base path: from_pretrained of a name/directory holding an encoder without a
    classifier head."""
    from transformers import RobertaConfig, RobertaModel

    _, tok, _ = tiny_setup()
    config = RobertaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=80,
        pad_token_id=1,
    )
    RobertaModel(config).save_pretrained(tmp_path / "encoder")
    model = init_model(ModelSpec(name=str(tmp_path / "encoder"), dropout=0.0), tok, max_length=67)
    assert model.config.num_labels == 2 and model.config.hidden_dropout_prob == 0.0
    logits = model(input_ids=torch.tensor([tok("fine")["input_ids"]])).logits
    assert logits.shape == (1, 2) and np.isfinite(logits.detach().numpy()).all()


def test_base_needs_a_directory():
    _, tok, _ = tiny_setup()
    with pytest.raises(ValueError, match="base"):
        init_model(ModelSpec(name="base"), tok, max_length=67)


def test_local_directories_never_reach_a_hub(tmp_path, monkeypatch):
    from farm.errors import ConfigError
    from farm.training.models import hub_options, is_local, load_tokenizer

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _, tok, _ = tiny_setup()
    tok.save_pretrained(tmp_path / "tok")
    assert is_local(tmp_path / "tok") and is_local("./not/here") and not is_local("roberta-base")
    assert hub_options(tmp_path / "tok") == {"local_files_only": True}
    assert hub_options("roberta-base") == {"local_files_only": False}
    assert (
        load_tokenizer(tmp_path / "tok")("a good film")["input_ids"]
        == tok("a good film")["input_ids"]
    )
    with pytest.raises(ConfigError, match="no such directory"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty: cannot load the model from this local directory"):
        init_model(ModelSpec(name=str(tmp_path / "empty")), tok, max_length=67)


def test_a_hub_name_offline_fails_in_one_line(monkeypatch):
    from farm.errors import ConfigError
    from farm.training.models import hub_options, load_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_options("roberta-base") == {"local_files_only": True}
    with pytest.raises(
        ConfigError, match="farm-test/not-cached: a hub name, but HF_HUB_OFFLINE is set"
    ) as info:
        load_tokenizer("farm-test/not-cached")
    assert "\n" not in str(info.value)
    with pytest.raises(
        ConfigError, match="HF_HUB_OFFLINE is set and the model is not in the local"
    ):
        init_model(ModelSpec(name="farm-test/not-cached"), None, max_length=67)


@pytest.mark.parametrize("aggregate", ["mean", "vote"])
def test_ensemble_folder_loads_as_one_classifier(tmp_path, aggregate):
    from farm.challenge.tree import write_ensemble
    from farm.defences.seam import VOTE_FLOOR
    from farm.training.infer import model_logits

    _, tok, tokens = tiny_setup()
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = init_model(
            ModelSpec(name="tiny", tiny=TinyModel(32, 1, 2, 64)), tok, max_length=67
        ).eval()
        members.append(save_model(model, tmp_path / f"m{seed}"))
    files = [{n: m / n for n in ("config.json", "model.safetensors")} for m in members]
    ensemble = load_model(write_ensemble(tmp_path / "ens", files, aggregate))
    indices = np.arange(20)
    got = model_logits(ensemble, tokens, indices)
    each = np.stack([model_logits(load_model(m), tokens, indices) for m in members])
    probs = np.exp(each - each.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    if aggregate == "mean":  # log of the mean probability vector: its softmax is that vector
        np.testing.assert_allclose(np.exp(got), probs.mean(0), rtol=1e-5, atol=1e-6)
    else:
        votes = np.eye(2)[each.argmax(-1)].mean(0)
        np.testing.assert_allclose(np.exp(got), np.maximum(votes, VOTE_FLOOR), rtol=1e-6)
