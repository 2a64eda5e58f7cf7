"""Notification edges and storage: SMTP and webhook transports, alert rules, cron monitors.
Pure decisions live in eventpipe.pipeline (conditions, digests, monitors, reports); tasks in
eventpipe.tasks (notify, notify_send, reports, monitors); commands in eventpipe.cli (rules, monitors)."""
