"""The ``mlops`` command (console script ``mlops = engine.cli:main``).

One module per command group, each with ``add_parser(sub, parser_class)`` and its
``cmd_*`` functions: :mod:`.chunk` (``chunk``, ``backends``), :mod:`.demo`, :mod:`.data`,
:mod:`.monitor`, :mod:`.model`, :mod:`.runs` (``runs``, ``log``). :mod:`.app` builds the
parser and turns errors into exit codes; :mod:`.args` and :mod:`.format` hold what the
groups share on the way in and out. Commands parse arguments, call the public API and
format the result, nothing else.

Examples
--------
>>> from engine.cli import main
>>> main(["--version"])  # doctest: +SKIP
mlops-engine 0.1.0
"""

from .app import main

__all__ = ["main"]
