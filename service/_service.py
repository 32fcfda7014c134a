"""``Service`` and ``open_service``: what the API and the UI share (manager, hub, token)."""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service._errors import NoBestTrialError
from service._events import EventHub
from service._manager import Driver, StudyManager
from service._views import BestConfig, StudyView, best_config, study_spec, study_view
from tuner import StudyResult
from tuner.plan import PlanResult, PlanSpec, plan, unmeasurable, verification_spec
from tuner.store import StudyRecord

__all__ = ["Service", "open_service"]


@dataclass
class Service:
    """What the routes and pages share: the manager, the event hub and the settings.

    Attributes:
        manager: runs the studies.
        hub: streams their events.
        token: the bearer token every request must carry, or None for no auth.
        keepalive_s: seconds of silence after which an event stream sends a comment.
    """

    manager: StudyManager
    hub: EventHub
    token: str | None = None
    keepalive_s: float = 15.0
    # One plan at a time: a plan keeps a core busy for seconds, the studies need the rest.
    _planning: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check_token(self, given: str | None) -> bool:
        """Whether ``given`` is the token (always True without auth)."""
        if not self.token:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def session_value(self) -> str:
        """What the session cookie holds: derived from the token, so the cookie never shows
        the token itself, and void as soon as the service runs with another token."""
        assert self.token
        return hmac.new(self.token.encode(), b"autotuner-session", hashlib.sha256).hexdigest()

    def check_session(self, given: str | None) -> bool:
        """Whether ``given`` is a session cookie of this service (always True without auth)."""
        if not self.token:
            return True
        return given is not None and hmac.compare_digest(given.encode(),
                                                         self.session_value().encode())

    def view(self, record: StudyRecord) -> StudyView:
        """A study record with progress and best trial."""
        store = self.manager.store
        best = store.get_trial(record.study_id, record.best_trial_id) \
            if record.best_trial_id else None
        return study_view(record, best, active=self.manager.is_active(record.study_id),
                          starting=self.manager.is_running_here(record.study_id))

    def result(self, study_id: str) -> dict[str, Any]:
        """What a study measured, as ``autotuner show --json`` prints it (see
        :meth:`tuner.StudyResult.to_dict`).

        Raises:
            StudyNotFoundError: no such study.
        """
        return StudyResult.load(self.manager.store, study_id).to_dict()

    def plan(self, spec: PlanSpec) -> PlanResult:
        """A capacity plan (see :func:`tuner.plan.plan`), one at a time per service."""
        with self._planning:
            return plan(spec)

    def verify_plan(self, result: PlanResult, count: int) -> list[StudyRecord]:
        """Queue a verification study for each of the ``count`` best layouts of ``result``
        that its ``verify.backend`` can run (see :func:`tuner.plan.verification_spec`); their
        pages show the planned figures beside what they measure."""
        chosen = [(rank, candidate) for rank, candidate in enumerate(result.ranked, 1)
                  if unmeasurable(result.spec, candidate) is None][:count]
        return [self.manager.submit(verification_spec(result.spec, candidate, rank))
                for rank, candidate in chosen]

    def best(self, study_id: str) -> BestConfig:
        """The best configuration of a study with its launch text.

        Raises:
            StudyNotFoundError: no such study.
            NoBestTrialError: no trial met the SLO yet.
        """
        record = self.manager.store.get_study(study_id)
        trial = self.manager.store.get_trial(study_id, record.best_trial_id) \
            if record.best_trial_id else None
        if trial is None:
            raise NoBestTrialError(f"study '{study_id}' has no trial that met the SLO yet; "
                                   "wait for more trials or relax the SLO", study_id=study_id)
        text = self.manager.driver.launch_text(study_spec(record), trial.params)
        return best_config(record, trial, text)


def open_service(store_path: Path, *, gpus: int = 8, ray_dashboard: bool = False,
                 token: str | None = None, max_running: int = 2, driver: Driver | None = None,
                 resume_interrupted: bool = False) -> Service:
    """Open the store and start the study manager; the front ends serve the result.

    Studies submitted to it run in background threads of this process (``max_running`` at a
    time, the rest queued), sharing one Ray instance whose pool has ``gpus`` units. Ray starts
    with the first study, or on ``manager.warm_up()``. ``manager.shutdown()`` stops every
    running study and tears its servers down; they can be resumed later.

    Args:
        store_path: the SQLite store (created if missing).
        gpus: GPU units of the Ray pool.
        ray_dashboard: start Ray's dashboard and link to it from the UI (needs the
            ``ray[default]`` extra; without it the UI says so).
        token: bearer token every API call and UI page require; default:
            ``$AUTOTUNER_TOKEN``; empty or unset means no auth.
        max_running: studies that run at once.
        driver: the tuner functions the manager calls; tests pass a fake.
        resume_interrupted: resume the studies found interrupted (their driver gone) at
            start-up and later; by default they wait for a user's Resume.

    Raises:
        StoreError: the store cannot be opened.
    """
    if token is None:
        token = os.environ.get("AUTOTUNER_TOKEN") or None
    manager = StudyManager(Path(store_path), gpus=gpus, ray_dashboard=ray_dashboard,
                           max_running=max_running, driver=driver,
                           resume_interrupted=resume_interrupted)
    return Service(manager=manager, hub=EventHub(manager.store), token=token or None)
