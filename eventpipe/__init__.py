"""eventpipe."""
