"""eventpipe.ops."""
