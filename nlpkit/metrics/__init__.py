"""The metrics layer: (true labels, scores) -> every metric; decision rules; bootstrap intervals and
randomisation tests over documents.

``from nlpkit.metrics import evaluate, tune_rule, bootstrap_ci, ...`` is the public surface; the
submodules are ``counts`` (tp/fp/fn arithmetic and zero-division conventions), ``ranking``
(vectorised AP / ROC-AUC / LRAP / P@k), ``rules`` (decision rules), ``evaluation`` (``evaluate``) and
``significance`` (``METRICS``, bootstrap, randomisation).
"""

from nlpkit.metrics.evaluation import evaluate, headline_metric
from nlpkit.metrics.rules import (
    Argmax,
    ChooseRule,
    DecisionRule,
    FixedThreshold,
    GlobalThreshold,
    PerLabelThreshold,
    TopK,
    decide,
    tune_rule,
)
from nlpkit.metrics.significance import (
    METRICS,
    Metric,
    approx_randomization,
    bootstrap_ci,
    choose_over_reference,
    get_metric,
    holm,
    paired_bootstrap_diff,
    seed_aware_diff,
)

__all__ = [
    "METRICS",
    "Argmax",
    "ChooseRule",
    "DecisionRule",
    "FixedThreshold",
    "GlobalThreshold",
    "Metric",
    "PerLabelThreshold",
    "TopK",
    "approx_randomization",
    "bootstrap_ci",
    "choose_over_reference",
    "seed_aware_diff",
    "decide",
    "evaluate",
    "get_metric",
    "headline_metric",
    "holm",
    "paired_bootstrap_diff",
    "tune_rule",
]
