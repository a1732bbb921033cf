"""Coverage-guided fuzzing of the on-disk parsers with atheris (libFuzzer for Python).

Usage::

    python tests/fuzz/atheris_parsers.py TARGET [libFuzzer options]
    python tests/fuzz/atheris_parsers.py manifest -runs=5000 -rss_limit_mb=4096

``TARGET`` is one of ``fuzz_corpus.Corpus.targets()`` (``pack_index``, ``manifest``,
``version_record``, ``commit``, ``registry_checkpoint``, ``state_snapshot``,
``dist_checkpoint``, ``profile``, ...). The harness builds the corpus of valid files
with the real writers (``fuzz_corpus.build``) in a temporary directory, seeds
libFuzzer with the target's valid file and a few structured mutants of it
(``mutators.STRUCTURED``), and feeds every input to the same check as the Hypothesis
tests (``Target.check``): an exception other than the reader's documented error, or
an error that does not name the file, is a crash; so is a read that allocates past
``-rss_limit_mb``. Readers are instrumented (``atheris.instrument_imports``) so that
libFuzzer is guided by coverage of ``engine``.

atheris is not a dependency: ``make soak`` installs it where its wheel installs, and
``test_fuzz_parsers.py::test_atheris_soak`` runs this harness for a bounded number of
runs per target, or skips when atheris does not import.
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

with atheris.instrument_imports(include=["engine"]):
    import fuzz_corpus  # noqa: E402 - after atheris, so that engine is instrumented
    import mutators  # noqa: E402

SEEDS = 8  # structured mutants of the valid file added to the seed corpus


def _seed(target: fuzz_corpus.Target, where: str) -> None:
    """The valid file and a few structured mutants of it, as libFuzzer's seed corpus."""
    from hypothesis import HealthCheck, given, settings

    os.makedirs(where, exist_ok=True)
    with open(os.path.join(where, "valid"), "wb") as f:
        f.write(target.valid)
    made = []

    @settings(max_examples=SEEDS, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(mutators.STRUCTURED[target.name](target.valid))
    def collect(data):
        made.append(data)

    collect()
    for i, data in enumerate(made):
        with open(os.path.join(where, f"structured-{i}"), "wb") as f:
            f.write(data)


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1].startswith("-"):
        sys.exit(f"usage: {argv[0]} TARGET [libFuzzer options]")
    name = argv[1]
    root = tempfile.mkdtemp(prefix="mlops-atheris-")
    corpus = fuzz_corpus.build(os.path.join(root, "files"))
    targets = corpus.targets()
    if name not in targets:
        sys.exit(f"unknown target {name!r}; targets: {', '.join(targets)}")
    target = targets[name]
    seeds = os.path.join(root, "seeds")
    _seed(target, seeds)

    def test_one_input(data: bytes) -> None:
        target.check(data)  # raises Finding: libFuzzer reports it as a crash

    atheris.Setup([argv[0], *argv[2:], seeds], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
