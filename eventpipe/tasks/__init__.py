"""eventpipe.tasks."""
