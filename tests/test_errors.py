"""One error root: every error eventpipe raises on purpose is an EventpipeError, says whether an
outage may pass (``retryable``) and what the CLI exits with; retry classification reads the flag."""

from __future__ import annotations

import pytest
import sqlalchemy.exc

import eventpipe
from eventpipe.errors import EventpipeError, UnknownJob, UnknownTask
from eventpipe.middleware.retries import is_transient


def test_existing_errors_share_the_root_and_keep_their_old_bases() -> None:
    from eventpipe.config import ConfigError
    from eventpipe.ingest.submit import SubmitError
    from eventpipe.kvstore.base import KVBadKey, KVCorrupt, KVError, KVUnavailable
    from eventpipe.middleware.gate import QueueClosed
    from eventpipe.ops.nodes import OpsError
    from eventpipe.pipeline.errors import InvalidEvent
    from eventpipe.queues.federation import FederationError
    from eventpipe.queues.management import ManagementError, ManagementUnavailable, NotFound
    from eventpipe.queues.publisher import Nacked, NodeUnavailable, PublishError, Unroutable
    from eventpipe.queues.shovel import ShovelError
    from eventpipe.schedules.spec import ScheduleError
    from eventpipe.tasks.api import PermanentError
    from eventpipe.tasks.events import MissingBody

    for cls in (ConfigError, SubmitError, KVError, KVBadKey, KVCorrupt, KVUnavailable, QueueClosed, OpsError,
                InvalidEvent, FederationError, ManagementError, ManagementUnavailable, NotFound, PublishError,
                Nacked, NodeUnavailable, Unroutable, ShovelError, ScheduleError, PermanentError, MissingBody):
        assert issubclass(cls, EventpipeError), cls
    for cls, old in ((ConfigError, ValueError), (InvalidEvent, ValueError), (ScheduleError, ValueError),
                     (KVBadKey, ValueError), (PublishError, RuntimeError), (OpsError, RuntimeError)):
        assert issubclass(cls, old), cls
    assert ConfigError.exit_code == 2 and KVUnavailable.exit_code == 3 and EventpipeError.exit_code == 1


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (eventpipe.KVUnavailable("store down"), True),
        (eventpipe.PublishError("no confirm"), True),
        (ConnectionResetError(), True),
        (sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")), True),
        (eventpipe.KVError("bad url"), False),
        (UnknownTask("events.typo"), False),
        (ValueError("a bug"), False),
    ],
)
def test_is_transient_reads_the_retryable_flag(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_unknown_names_are_lookup_errors_that_say_what_to_do() -> None:
    from eventpipe.schedules.spec import load_jobs
    from eventpipe.tasks.api import registry

    with pytest.raises(UnknownTask) as task_info:
        registry.get("events.typo")
    assert isinstance(task_info.value, LookupError)
    assert str(task_info.value) == "no task named 'events.typo'; see `eventpipe tasks list`"
    with pytest.raises(UnknownJob) as job_info:
        load_jobs().get("rollups.typo")
    assert "rollups.hourly" in str(job_info.value) and "eventpipe schedules list" in str(job_info.value)


def test_the_package_exports_the_errors_users_catch() -> None:
    for name in ("EventpipeError", "ConfigError", "InvalidEvent", "KVError", "KVUnavailable", "PermanentError",
                 "PublishError", "SubmitError", "UnknownJob", "UnknownTask"):
        assert name in eventpipe.__all__
        assert issubclass(getattr(eventpipe, name), EventpipeError)
