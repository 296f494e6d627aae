"""A faster, exact forward pass for BERT sequence classifiers: the last layer computes only [CLS].

A BERT classifier reads one vector, the last layer's [CLS] output (its pooler takes ``hidden[:, 0]``),
so the last layer's queries, attention output and feed-forward for every other position are computed
and thrown away. Here the last layer still projects keys and values for every position (what [CLS]
attends to) but runs its query, attention and feed-forward on [CLS] alone — the same function, fewer
FLOPs (MosaicBERT's ``subset_mask`` for the final layer, Portes et al. 2023); the time it saves is
in docs/benchmarks.md.

Only models whose layers this module knows are switched — transformers 5's sequence classifiers of
the BERT layout (BERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA) with SDPA attention, as encoders —
and the tests prove each the same function as its own forward; anything else keeps its own forward.
"""

from __future__ import annotations

import types

CLS_ONLY = "cls-only last layer"  # what fit_info reports when the switch is on

# classifier class -> the attribute holding its encoder; each head reads position 0 only (BERT's
# pooler; the others' ClassificationHead takes features[:, 0])
ENCODERS = {"BertForSequenceClassification": "bert", "RobertaForSequenceClassification": "roberta",
            "XLMRobertaForSequenceClassification": "roberta", "CamembertForSequenceClassification": "roberta",
            "ElectraForSequenceClassification": "electra"}


def cls_only_supported(model) -> bool:
    """True when ``model`` is a classifier of a known BERT-layout family whose output depends on
    [CLS] alone, from transformers 5 (whose layers take a mask and return a tensor)."""
    import transformers

    name = type(model).__name__
    if name not in ENCODERS or type(model) is not getattr(transformers, name, None):
        return False  # a subclass may change the forward
    if int(transformers.__version__.split(".")[0]) < 5:
        return False
    cfg, encoder = model.config, getattr(model, ENCODERS[name])
    return (getattr(cfg, "_attn_implementation", None) == "sdpa" and not cfg.is_decoder
            and not getattr(cfg, "add_cross_attention", False) and len(encoder.encoder.layer) > 0
            and (name != "BertForSequenceClassification" or encoder.pooler is not None))


def use_cls_only_last_layer(model) -> bool:
    """Give ``model`` (in place) the [CLS]-only forward when it is supported; returns whether it was.

    The instance's ``forward`` is replaced, so DDP wrappers, ``model(...)`` calls and state dicts are
    unchanged; calls with arguments other than ids and mask go to the model's own forward."""
    if not cls_only_supported(model):
        return False
    model.forward = types.MethodType(_forward, model)
    return True


def _forward(self, input_ids=None, attention_mask=None, **kwargs):
    from transformers.modeling_outputs import SequenceClassifierOutput

    if input_ids is None or any(v is not None for v in kwargs.values()):
        return type(self).forward(self, input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    encoder = getattr(self, ENCODERS[type(self).__name__])
    hidden = encoder.embeddings(input_ids=input_ids)
    if hasattr(encoder, "embeddings_project"):  # ELECTRA with embeddings narrower than its layers
        hidden = encoder.embeddings_project(hidden)
    # one (batch, 1, 1, length) boolean mask broadcasts over heads and queries; None lets SDPA pick
    # its unmasked kernels when nothing is padded, as transformers' own mask builder does
    mask = None
    if attention_mask is not None and not bool(attention_mask.all()):
        mask = attention_mask[:, None, None, :].bool()
    layers = encoder.encoder.layer
    for layer in layers[:-1]:
        hidden = layer(hidden, mask)
    hidden = _cls_layer(layers[-1], hidden, mask)
    if type(self).__name__ == "BertForSequenceClassification":
        logits = self.classifier(self.dropout(encoder.pooler(hidden)))
    else:
        logits = self.classifier(hidden)
    return SequenceClassifierOutput(logits=logits)


def _cls_layer(layer, hidden, mask):
    """``layer`` (a BERT-layout layer) applied to ``hidden`` with position 0's output only: (batch, 1, width)."""
    import torch.nn.functional as F

    attn = layer.attention.self
    batch, length, _ = hidden.shape
    heads, size = attn.num_attention_heads, attn.attention_head_size
    cls = hidden[:, :1]
    query = attn.query(cls).view(batch, 1, heads, size).transpose(1, 2)
    key = attn.key(hidden).view(batch, length, heads, size).transpose(1, 2)
    value = attn.value(hidden).view(batch, length, heads, size).transpose(1, 2)
    context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=attn.scaling,
                                             dropout_p=attn.dropout.p if attn.training else 0.0)
    context = context.transpose(1, 2).reshape(batch, 1, heads * size)
    return layer.feed_forward_chunk(layer.attention.output(context, cls))
