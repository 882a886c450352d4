"""``python -m spatial.cli``: the same as the ``spatial`` command."""

from spatial.cli import main

main()
