"""``calibrate``: fit factors of the twin's calibrated facts to measured studies."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from tuner.calibrate._accuracy import FITTED_METRICS, relative_errors, score, summary
from tuner.calibrate._observations import load_studies, study_gpu
from tuner.calibrate._predict import Predictor
from tuner.calibrate._search import nelder_mead
from tuner.exceptions import SpecError
from tuner.store import Store

__all__ = ["Calibration", "calibrate", "write_profile"]

# A weak pull of every log-factor toward 0 (factor 1): facts the measurements cannot tell
# apart (two fixed costs per step add up the same way) then share a change in proportion
# instead of drifting along the valley, and facts they do not touch stay at 1. Small beside
# the errors a fit removes (0.01 costs 0.1 % of error at a factor of 1.37).
_RIDGE = 0.01
# First simplex: factors of e^0.3 = 1.35 around the start.
_STEP = 0.3


@dataclass(frozen=True)
class Calibration:
    """The outcome of a calibration.

    Attributes:
        profile: The fitted profile, in the file's layout (see :class:`twin.Profile`).
        levels: Measured levels the fit used.
        dropped: Measured levels the estimator cannot predict, with why.
        evaluations: Estimates of the whole set of levels the fit made (one unfitted, one
            probe per calibrated fact, then the search's).
        seconds: Wall time of the fit.
    """

    profile: dict[str, object]
    levels: int
    dropped: list[str]
    evaluations: int
    seconds: float


def calibrate(
    store: Store,
    study_ids: list[str],
    *,
    gpu: str | None = None,
    max_requests: int = 64,
    max_evals: int = 120,
    max_levels: int = 60,
) -> Calibration:
    """Fits the twin's calibrated facts to the levels measured by ``study_ids``.

    Each measured level is predicted by the estimator with the trial's flags; the factors of
    the calibrated facts (``twin.Profile``) that change any prediction are searched in log
    space by Nelder–Mead to minimise the mean of the median relative errors of mean TPOT,
    mean TTFT and output throughput; the others stay at 1. Cost: about ``max_evals`` plus
    one per calibrated fact estimates of each of at most ``max_levels`` levels.

    Args:
        store: The study store.
        study_ids: Studies measured on a real backend (twin, local or ome), on one GPU type
            and one model.
        gpu: GPU type, for backends whose spec does not name it (local, ome).
        max_requests: Requests per estimated level, at most.
        max_evals: Estimates of the whole set of levels, at most.
        max_levels: Measured levels fitted to, at most (evenly chosen when there are more).

    Raises:
        StudyNotFoundError: A study is not in the store.
        SpecError: A study cannot be calibrated from (see the message), or an option is out
            of range.
    """
    options = {
        "--max-requests": max_requests,
        "--max-evals": max_evals,
        "--max-levels": max_levels,
    }
    if bad := [name for name, value in options.items() if value < 1]:
        raise SpecError(f"{bad[0]} must be >= 1", [(name, "must be >= 1") for name in bad])
    import twin

    started = time.monotonic()
    studies = load_studies(store, study_ids, gpu)
    calibrated = twin.Profile.calibrated_facts()
    with tempfile.TemporaryDirectory(prefix="calibrate-") as workdir:
        predictor = Predictor(
            studies,
            gpu=gpu,
            max_requests=max_requests,
            max_levels=max_levels,
            workdir=Path(workdir),
        )
        measured = [obs.level for obs in predictor.observations]
        if not measured:
            reasons = "; ".join(sorted({why for _, why in predictor.dropped}))
            raise SpecError(
                f"the estimator cannot predict any measured level ({reasons})",
                [(", ".join(study_ids), "no predictable level")],
            )

        unfitted = predictor.predict({})
        low, high = twin.Profile.FACTOR_RANGE
        # A fact none of these levels depends on (a MoE layer's cost, for a dense model)
        # cannot be fitted; searching it too only spreads Nelder-Mead's budget over more
        # dimensions. Raised to the top of its range, any fact a level uses shows.
        names = [n for n in calibrated if predictor.predict({n: high}) != unfitted]
        if not names:
            raise SpecError(
                "no calibrated fact of the twin changes the predictions of these levels",
                [(", ".join(study_ids), "nothing to fit")],
            )

        def objective(x: np.ndarray) -> float:
            factors = dict(zip(names, np.exp(x), strict=True))
            errors = relative_errors(predictor.predict(factors), measured)
            return score(errors) + _RIDGE * float(np.mean(x**2))

        before = relative_errors(unfitted, measured)
        found = nelder_mead(
            objective,
            np.zeros(len(names)),
            step=_STEP,
            bounds=(float(np.log(low)), float(np.log(high))),
            max_evals=max_evals,
        )
        factors = {n: round(float(f), 4) for n, f in zip(names, np.exp(found.x), strict=True)}
        after = relative_errors(predictor.predict(factors), measured)
    first = studies[0].spec
    profile = twin.Profile(
        factors=factors,
        gpu=study_gpu(first, gpu),
        model=first.model.name,
        fitted_on={
            "studies": list(study_ids),
            "levels": len(measured),
            "predictable_levels": predictor.predictable,
            "metrics": list(FITTED_METRICS),
            "facts": names,
            "max_requests": max_requests,
        },
        error_before=summary(before),
        error_after=summary(after),
    )
    return Calibration(
        profile=profile.to_dict(),
        levels=len(measured),
        dropped=[f"{obs.trial_id}: {why}" for obs, why in predictor.dropped],
        evaluations=1 + len(calibrated) + found.evaluations,
        seconds=time.monotonic() - started,
    )


def write_profile(calibration: Calibration, path: Path) -> None:
    """Writes the fitted profile as YAML (``twin.load_profile`` reads it back).

    Raises:
        SpecError: The file cannot be written.
    """
    try:
        path.write_text(yaml.safe_dump(calibration.profile, sort_keys=False), encoding="utf-8")
    except OSError as e:
        raise SpecError(
            f"cannot write the profile to {path}: {e.strerror}; give -o a writable path",
            [("--output", str(e.strerror))],
        ) from e
