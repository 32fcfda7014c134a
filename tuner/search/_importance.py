"""Parameter importance: how much each searched flag moved the score, from a study's trials."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import optuna

from tuner import objective
from tuner.search._space import Space
from tuner.spec import StudySpec
from tuner.store import TrialRecord, TrialState

__all__ = ["param_importance"]

logger = logging.getLogger(__name__)
# Below this many trials the importances are noise: PED-ANOVA compares the top tenth of the
# trials with all of them, and with fewer than ten that top is a single trial.
_MIN_TRIALS = 10


def param_importance(spec: StudySpec, trials: Sequence[TrialRecord]) -> dict[str, float]:
    """Importance of each searched flag (summing to 1, largest first), by Optuna's default
    evaluator (PED-ANOVA) over the search trials.

    A trial that served nothing within the SLO (failed, or no level met it) counts as 0 when
    the score is a throughput, since that is what it delivers; for a latency score such trials
    are left out. Early-stopped trials count with the score they reached.

    Returns:
        ``{flag: importance}``; empty when there are too few trials or nothing varied.
    """
    direction = objective.direction(spec.objective)
    space = Space(spec, capacity=10**6)  # fit was checked when the trials ran
    distributions = space.distributions()
    study = optuna.create_study(direction="maximize" if direction == "max" else "minimize")
    for trial in trials:
        if trial.confirms is not None or not trial.state.is_finished():
            continue
        value = trial.score
        if value is None:
            stopped_unmeasured = trial.state == TrialState.STOPPED and not trial.levels
            if direction != "max" or stopped_unmeasured:
                continue
            value = 0.0
        params = {k: trial.params[k] for k in distributions if k in trial.params}
        if len(params) != len(distributions):
            continue
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=value)
        )
    if len(study.trials) < _MIN_TRIALS or len({t.value for t in study.trials}) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(study))
    except (ValueError, RuntimeError, ZeroDivisionError) as e:  # an analysis, never fatal
        logger.warning("parameter importance failed: %s", e)
        return {}
