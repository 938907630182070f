"""The feature stack: order, stop after a failed start, isolation of failing stops, central checks."""

from collections.abc import Sequence

from generic_worker.engine.feature import FeatureBase, ScopeRequirement, TaskFeature, TaskFeatureBase
from generic_worker.engine.taskrun import TaskRun
from generic_worker.engine.worker import Worker
from generic_worker.errors import ExecutionErrors, TaskError
from generic_worker.features import build_features

from .harness import GW


class Recorder(FeatureBase):
    """A test feature that records its calls and can misbehave on demand."""

    def __init__(
        self,
        name: str,
        calls: list[str],
        *,
        start_error: BaseException | None = None,
        stop_error: BaseException | None = None,
        scopes: ScopeRequirement = (),
        reserved: Sequence[str] = (),
        enabled: bool = True,
    ) -> None:
        self.name = name  # type: ignore[misc]
        self.calls = calls
        self.start_error = start_error
        self.stop_error = stop_error
        self.scopes = scopes
        self.reserved = reserved
        self.enabled = enabled

    def is_enabled(self, task: TaskRun) -> bool:
        return self.enabled

    def new_task_feature(self, task: TaskRun) -> TaskFeature:
        return _Recording(self)


class _Recording(TaskFeatureBase):
    def __init__(self, feature: Recorder) -> None:
        self.f = feature

    def required_scopes(self) -> ScopeRequirement:
        return self.f.scopes

    def reserved_artifacts(self) -> Sequence[str]:
        return self.f.reserved

    async def start(self) -> None:
        self.f.calls.append(f"start {self.f.name}")
        if self.f.start_error:
            raise self.f.start_error

    async def stop(self, errors: ExecutionErrors) -> None:
        self.f.calls.append(f"stop {self.f.name}")
        if self.f.stop_error:
            raise self.f.stop_error


async def run_with(gw: GW, extra: list[FeatureBase], **task: object) -> tuple[str, str]:
    task_id = await gw.submit({"command": [["echo", "commands ran"]], "maxRunTime": 30}, **task)
    config = gw.config()
    standard = build_features(config)
    # the test features go right after the payload validator, before everything else
    worker = Worker(config, [*standard[:2], *extra, *standard[2:]], state_dir=gw.tmp)
    await worker.run()
    return await gw.resolution(task_id), await gw.log(task_id)


async def test_start_in_order_stop_in_reverse(gw: GW):
    calls: list[str] = []
    resolution, log = await run_with(gw, [Recorder("A", calls), Recorder("B", calls), Recorder("C", calls)])
    assert resolution == "completed/completed"
    assert calls == ["start A", "start B", "start C", "stop C", "stop B", "stop A"]
    assert "commands ran" in log


async def test_stop_runs_after_failed_start_and_later_features_never_start(gw: GW):
    calls: list[str] = []
    failing = Recorder("B", calls, start_error=TaskError.failure("B could not start"))
    resolution, log = await run_with(gw, [Recorder("A", calls), failing, Recorder("C", calls)])
    assert resolution == "failed/failed"
    assert calls == ["start A", "start B", "stop B", "stop A"]
    assert "[taskcluster:error] B could not start" in log
    assert "commands ran" not in log


async def test_a_failing_stop_does_not_skip_the_others_and_first_error_decides(gw: GW):
    calls: list[str] = []
    features: list[FeatureBase] = [
        Recorder("A", calls),
        Recorder("B", calls, stop_error=RuntimeError("stop exploded")),
        Recorder("C", calls, stop_error=TaskError.malformed_payload("C stop says malformed")),
    ]
    resolution, log = await run_with(gw, features)
    assert calls == ["start A", "start B", "start C", "stop C", "stop B", "stop A"]
    assert resolution == "exception/malformed-payload"  # C's stop error was recorded first
    assert "feature B failed to stop: RuntimeError: stop exploded" in log


async def test_a_crashing_start_is_internal_error_for_that_task_only(gw: GW):
    calls: list[str] = []
    resolution, log = await run_with(gw, [Recorder("A", calls, start_error=ValueError("bug"))])
    assert resolution == "exception/internal-error"
    assert "feature A failed to start: ValueError: bug" in log
    assert calls == ["start A", "stop A"]


async def test_missing_scopes_are_checked_centrally(gw: GW):
    calls: list[str] = []
    needy = Recorder("Needy", calls, scopes=[["needy:a", "needy:b"]])
    resolution, log = await run_with(gw, [needy])
    assert resolution == "exception/malformed-payload"
    assert 'Feature "Needy" requires scopes:' in log
    assert calls == []  # never started
    calls.clear()
    resolution, _ = await run_with(gw, [needy], scopes=["needy:*"])
    assert resolution == "completed/completed"
    assert calls == ["start Needy", "stop Needy"]


async def test_reserved_artifact_claimed_twice_is_malformed(gw: GW):
    calls: list[str] = []
    resolution, log = await run_with(
        gw, [Recorder("A", calls, reserved=["public/x"]), Recorder("B", calls, reserved=["public/x"])]
    )
    assert resolution == "exception/malformed-payload"
    assert (
        'Feature "B" wishes to publish artifact public/x but feature A has already reserved this artifact name'
        in log
    )


async def test_requested_but_disabled_feature_is_malformed(gw: GW):
    calls: list[str] = []
    resolution, log = await run_with(gw, [Recorder("Off", calls, enabled=False)])
    assert resolution == "exception/malformed-payload"
    assert 'this task is attempting to use feature "Off", but it\'s not enabled on this worker pool' in log
