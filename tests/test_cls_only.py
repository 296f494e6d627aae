"""The [CLS]-only last layer (nlpkit/hf/cls_only.py) computes what the model's own forward does."""

import copy

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from nlpkit.hf.cls_only import cls_only_supported, use_cls_only_last_layer  # noqa: E402


FAMILIES = {  # classifier class -> its config class and options
    "BertForSequenceClassification": ("BertConfig", {}),
    "RobertaForSequenceClassification": ("RobertaConfig", {"pad_token_id": 1}),
    "XLMRobertaForSequenceClassification": ("XLMRobertaConfig", {"pad_token_id": 1}),
    "CamembertForSequenceClassification": ("CamembertConfig", {"pad_token_id": 1}),
    "ElectraForSequenceClassification": ("ElectraConfig", {"embedding_size": 16}),  # with its projection
}


def _bert(attn="sdpa", layers=3, seed=0, family="BertForSequenceClassification"):
    config_class, options = FAMILIES[family]
    cfg = getattr(transformers, config_class)(vocab_size=120, hidden_size=32, num_hidden_layers=layers,
                                              num_attention_heads=4, intermediate_size=64,
                                              max_position_embeddings=64, num_labels=5, **options)
    cfg._attn_implementation = attn
    torch.manual_seed(seed)
    return getattr(transformers, family)(cfg)


def _batch(padded=True, pad_id=0):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 120, (4, 17), generator=g)
    mask = torch.ones_like(ids)
    if padded:
        for i, n in enumerate((0, 3, 9, 15)):  # one full row, three padded ones
            mask[i, 17 - n:] = 0
            ids[i, 17 - n:] = pad_id
    return ids, mask


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("padded", [True, False])
def test_same_logits_and_gradients_as_the_models_own_forward(padded, family):
    own = _bert(family=family)
    fast = copy.deepcopy(own)
    assert use_cls_only_last_layer(fast)
    ids, mask = _batch(padded, pad_id=own.config.pad_token_id or 0)
    own.eval(), fast.eval()  # dropout off: the two must then be the same function
    a = own(input_ids=ids, attention_mask=mask).logits
    b = fast(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    a.pow(2).sum().backward()
    b.pow(2).sum().backward()
    for (name, p), q in zip(own.named_parameters(), fast.parameters()):
        if p.grad is None:
            assert q.grad is None or not q.grad.any(), name
        else:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("family", ["BertForSequenceClassification", "RobertaForSequenceClassification"])
def test_padding_changes_nothing_for_a_document(family):
    """A document's logits do not depend on how much padding its batch gives it."""
    model = _bert(family=family)
    use_cls_only_last_layer(model)
    model.eval()
    ids, mask = _batch(padded=True, pad_id=model.config.pad_token_id or 0)
    whole = model(input_ids=ids, attention_mask=mask).logits
    alone = model(input_ids=ids[3:, :2], attention_mask=mask[3:, :2]).logits  # row 3 has 2 real tokens
    torch.testing.assert_close(alone[0], whole[3], rtol=1e-5, atol=1e-6)


def test_under_bf16_autocast_close_to_the_models_own():
    own = _bert()
    fast = copy.deepcopy(own)
    use_cls_only_last_layer(fast)
    ids, mask = _batch()
    own.eval(), fast.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = own(input_ids=ids, attention_mask=mask).logits.float()
        b = fast(input_ids=ids, attention_mask=mask).logits.float()
    torch.testing.assert_close(b, a, rtol=0.05, atol=0.02)


def test_other_arguments_go_to_the_models_own_forward():
    own = _bert()
    fast = copy.deepcopy(own)
    use_cls_only_last_layer(fast)
    ids, mask = _batch()
    types = torch.ones_like(ids)
    own.eval(), fast.eval()
    out = fast(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    assert out.hidden_states is not None  # only the model's own forward returns these
    torch.testing.assert_close(out.logits, own(input_ids=ids, attention_mask=mask, token_type_ids=types).logits)


def test_unsupported_models_keep_their_forward():
    eager = _bert(attn="eager")
    assert not cls_only_supported(eager)
    assert not use_cls_only_last_layer(eager)
    assert "forward" not in vars(eager)
    cfg = transformers.DistilBertConfig(vocab_size=120, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                        max_position_embeddings=64, num_labels=3)
    distil = transformers.DistilBertForSequenceClassification(cfg)
    assert not use_cls_only_last_layer(distil)
    assert "forward" not in vars(distil)

    class Custom(transformers.BertForSequenceClassification):  # a subclass may change the forward
        pass

    assert not use_cls_only_last_layer(Custom(_bert().config))


def test_a_switched_model_still_saves_and_reloads(tmp_path):
    model = _bert()
    use_cls_only_last_layer(model)
    model.save_pretrained(tmp_path)
    back = transformers.BertForSequenceClassification.from_pretrained(tmp_path, attn_implementation="sdpa")
    assert set(back.state_dict()) == set(model.state_dict())
