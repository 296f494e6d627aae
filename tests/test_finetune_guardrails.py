"""Fine-tuning guardrails (issue #23): what a user must hear about how a fine-tuning went."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from nlpkit.models.transformer import training_warnings  # noqa: E402


def _history(metrics, losses):
    return [{"step": i + 1, "train_loss": loss, **({} if m is None else {"valid_metric": m})}
            for i, (m, loss) in enumerate(zip(metrics, losses))]


def test_a_healthy_run_is_not_warned_about():
    assert training_warnings(_history([0.70, 0.80, 0.78], [1.2, 0.6, 0.4]), None, 0.25) == []
    # early stopping after a peak, or a peak at the last evaluation of an early stop: nothing to add
    assert training_warnings(_history([0.70, 0.80, 0.79], [1.2, 0.6, 0.4]), "early stop: no improvement in 2", 0.25) == []


def test_still_rising_at_the_end_asks_for_more_epochs_or_time():
    (msg,) = training_warnings(_history([0.70, 0.80, 0.85], [1.2, 0.6, 0.4]), None, 0.25)
    assert msg == ("every epoch ran while the valid metric was still rising (0.8000 -> 0.8500 at the last "
                   "evaluation): more --epochs may help.")
    (msg,) = training_warnings(_history([0.70, 0.85], [1.2, 0.4]), "time budget of 60 s reached", 0.25)
    assert msg.startswith("the time budget ended training while the valid metric was still rising")
    assert msg.endswith("a larger --time-budget may help.")
    # one evaluation tells no trend
    assert training_warnings(_history([0.85], [0.4]), None, 0.25) == []


def test_a_loss_that_barely_moved_is_named():
    (msg,) = training_warnings(_history([0.80, 0.81, 0.80], [0.693, 0.690, 0.680]), None, 0.25)
    assert msg.startswith("the training loss barely moved (0.6930 over the first evaluation interval, 0.6800 "
                          "over the last)")
    assert "--head-lr" in msg
    # a drop of more than 5 % is learning
    assert training_warnings(_history([0.80, 0.81, 0.80], [0.693, 0.690, 0.650]), None, 0.25) == []


def test_a_valid_metric_at_the_majority_level_is_named():
    msgs = training_warnings(_history([0.25, 0.25], [1.4, 0.9]), "early stop: no improvement in 2", 0.25)
    assert msgs == ["the valid metric never rose above the majority level (0.2500; always predicting the most "
                    "common labels scores 0.2500): training diverged or learned nothing; try a lower --lr, or "
                    "check the labels."]
    # without valid there is no metric to judge
    assert training_warnings(_history([None, None], [1.4, 0.9]), None, None) == []
