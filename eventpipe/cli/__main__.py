"""``python -m eventpipe.cli``: the same as the ``eventpipe`` command."""

from eventpipe.cli import main

main(prog_name="eventpipe")
