"""Notification edges and rule storage: SMTP and webhook transports, alert rules, reports, monitors.
Pure decisions live in eventpipe.pipeline (conditions, digests); tasks in eventpipe.tasks."""
