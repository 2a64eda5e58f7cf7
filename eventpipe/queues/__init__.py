"""eventpipe.queues."""
