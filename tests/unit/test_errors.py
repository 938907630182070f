from generic_worker.errors import ExceptionReason, ExecutionErrors, TaskError


def test_constructors_carry_their_resolution():
    assert TaskError.failure("x").resolution == "failed/failed"
    assert TaskError.failure("x").is_failure
    cases = {
        TaskError.malformed_payload: "malformed-payload",
        TaskError.resource_unavailable: "resource-unavailable",
        TaskError.internal_error: "internal-error",
        TaskError.worker_shutdown: "worker-shutdown",
        TaskError.intermittent_task: "intermittent-task",
        TaskError.superseded: "superseded",
    }
    for make, reason in cases.items():
        error = make("msg")
        assert error.reason == ExceptionReason(reason)
        assert error.resolution == f"exception/{reason}"
        assert not error.is_failure


def test_first_error_decides():
    errors = ExecutionErrors()
    assert not errors and errors.first is None
    errors.add(None)
    assert len(errors) == 0
    errors.add(TaskError.malformed_payload("first"))
    errors.add(TaskError.failure("second"))
    assert errors.first is not None and errors.first.message == "first"
    assert [e.message for e in errors] == ["first", "second"]
