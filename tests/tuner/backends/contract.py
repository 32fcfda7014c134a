"""The contract every process or cluster backend meets, written once (Optuna's storage suite).

A test module subclasses :class:`BackendContract` and provides a ``contract`` fixture that
yields a :class:`Contract` per backend; each test below then runs against each of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tuner.backends import Backend, deployment_name
from tuner.exceptions import BackendError

START_REASONS = {"oom", "startup", "timeout"}


@dataclass
class Contract:
    """One backend under test.

    Attributes:
        backend: deploys a server that starts.
        failing: deploys a server that cannot start (e.g. its weights do not fit).
        footprint: what the backend has made so far (files, processes, API calls): equal
            before and after a call that must have no side effects.
    """

    backend: Backend
    failing: Backend
    footprint: Callable[[], object]


class BackendContract:
    """The tests; ``contract`` is the fixture of the subclassing module."""

    def test_deploy_ready_teardown_leaves_nothing(self, contract: Contract) -> None:
        backend = contract.backend
        deployment = backend.deploy(backend.spec.server_config({"tp_size": 1}), trial_id="t1")
        try:
            assert deployment.name == deployment_name(backend.study_id, "t1")
            backend.wait_ready(deployment, timeout_s=60)
            assert backend.alive(deployment) is None
            assert backend.exited(deployment) is None
        finally:
            backend.teardown(deployment.name)
        assert backend.alive(deployment) is not None  # the server is gone
        backend.teardown(deployment.name)  # idempotent
        backend.teardown(deployment_name(backend.study_id, "never-deployed"))

    def test_a_failing_start_says_why(self, contract: Contract) -> None:
        backend = contract.failing
        deployment = backend.deploy(backend.spec.server_config({"tp_size": 1}), trial_id="bad")
        try:
            with pytest.raises(BackendError) as info:
                backend.wait_ready(deployment, timeout_s=60)
        finally:
            backend.teardown(deployment.name)
        assert info.value.reason in START_REASONS
        assert str(info.value)

    def test_describe_is_text_without_side_effects(self, contract: Contract) -> None:
        backend = contract.backend
        before = contract.footprint()
        text = backend.describe(backend.spec.server_config({"tp_size": 1}))
        assert isinstance(text, str) and text.strip()
        assert contract.footprint() == before
