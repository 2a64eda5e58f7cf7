"""The irrevocable sends: ``notify.send_email`` and ``notify.send_webhook``.

Each works on one ``notification_sends`` row, recorded before the message that names it was
published: claim (``pending`` -> ``sending``, compare-and-set), talk to the remote, mark ``sent``.

* A redelivered message finds the row ``sending`` or ``sent`` and does nothing, so a send the
  remote accepted is never repeated.
* A remote that refused (connection refused, SMTP error reply, HTTP error status) puts the row
  back to ``pending`` and the task raises, so the broker retries it with backoff; after
  ``EVENTPIPE_WEBHOOK_MAX_ATTEMPTS`` attempts, or at once for a permanent refusal, the row becomes
  ``dead`` with the reason and the message is dead-lettered with the same reason.
* A crash (or a dropped connection) between the remote accepting and the ``sent`` mark leaves the
  row ``sending`` (or ``unknown``): it is never retried. That is the at-most-once step: an
  operator sees those rows in ``eventpipe rules sends --status sending``.
"""

from __future__ import annotations

import logging
import orjson
from sqlalchemy import update

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import NotificationSend
from eventpipe.notify import transport
from eventpipe.tasks.api import PermanentError, TaskContext, task

Runtime = TaskContext

log = logging.getLogger("eventpipe.notify")


class SendFailed(Exception):
    """The remote refused this attempt; the broker retries the message with backoff."""


def _claim(rt: Runtime, send_id: int) -> NotificationSend | None:
    with rt.db.session() as s:
        claimed = s.execute(
            update(NotificationSend)
            .where(NotificationSend.id == send_id, NotificationSend.status == "pending")
            .values(status="sending", claimed_at=utcnow(), attempts=NotificationSend.attempts + 1)
        ).rowcount
        return s.get(NotificationSend, send_id) if claimed == 1 else None


def _finish(rt: Runtime, send_id: int, status: str, error: str = "") -> None:
    values: dict[str, object] = {"status": status, "last_error": error[:2000]}
    if status == "sent":
        values["sent_at"] = utcnow()
    with rt.db.session() as s:
        s.execute(update(NotificationSend).where(NotificationSend.id == send_id, NotificationSend.status == "sending").values(**values))


def _refused(rt: Runtime, row: NotificationSend, exc: transport.Rejected) -> None:
    reason = str(exc)
    if exc.permanent or row.attempts >= rt.settings.webhook_max_attempts:
        _finish(rt, row.id, "dead", reason)
        raise PermanentError(f"{row.channel} send {row.key} dead after {row.attempts} attempt(s): {reason}")
    _finish(rt, row.id, "pending", reason)
    raise SendFailed(f"{row.channel} send {row.key} attempt {row.attempts} refused: {reason}")


@task("notify.send_email", queue="notify.send", max_retries=100)
def send_email(rt: Runtime, *, send_id: int) -> str:
    """Send one recorded digest email over SMTP (``EVENTPIPE_SMTP_URL``), at most once."""
    return deliver_email(rt, send_id)


def deliver_email(rt: Runtime, send_id: int) -> str:
    """Claim, send over SMTP, mark: the one email path (digests, reports)."""
    row = _claim(rt, send_id)
    if row is None:
        return "skipped"  # already sent, in flight, dead, or gone
    if not rt.settings.smtp_url:
        _finish(rt, row.id, "dead", "EVENTPIPE_SMTP_URL is not set")
        raise PermanentError("cannot send email: set EVENTPIPE_SMTP_URL=smtp://host:port (and EVENTPIPE_EMAIL_FROM)")
    p = row.payload
    msg = transport.build_email(rt.settings.email_from, row.target, p.get("subject", "eventpipe"), p.get("text", ""), key=row.key)
    try:
        transport.send_email(rt.settings.smtp_url, msg)
    except transport.Rejected as exc:
        _refused(rt, row, exc)
    except transport.Ambiguous as exc:
        _finish(rt, row.id, "unknown", str(exc))
        log.warning("email %s may or may not have been delivered; not retried (at-most-once): %s", row.key, exc)
        return "unknown"
    _finish(rt, row.id, "sent")
    return "sent"


@task("notify.send_webhook", queue="notify.send", max_retries=100)
def send_webhook(rt: Runtime, *, send_id: int) -> str:
    """POST one recorded notification as signed JSON (HMAC-SHA256 with EVENTPIPE_WEBHOOK_SECRET)."""
    row = _claim(rt, send_id)
    if row is None:
        return "skipped"
    body = orjson.dumps(row.payload, option=orjson.OPT_SORT_KEYS)
    secret = rt.settings.webhook_secret.get_secret_value().encode() if rt.settings.webhook_secret else None
    try:
        transport.post_webhook(row.target, body, secret=secret, delivery=row.key, timeout=rt.settings.webhook_timeout_seconds)
    except transport.Rejected as exc:
        _refused(rt, row, exc)
    except transport.Ambiguous as exc:
        _finish(rt, row.id, "unknown", str(exc))
        log.warning("webhook %s may or may not have been received; not retried (at-most-once): %s", row.key, exc)
        return "unknown"
    _finish(rt, row.id, "sent")
    return "sent"
