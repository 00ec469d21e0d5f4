"""Loaded by every ``python -m runtime`` child of a `make mutate` run (it is copied into
``mutants/``, which the e2e fixtures put on PYTHONPATH). During mutmut's stats pass it writes
each mutated function the child reaches to the file ``subprocess_hits.py`` named, one name
a line, as it happens: the child is usually killed, so nothing may wait for its exit."""

import os

_hits = os.environ.get("MUTMUT_SUBPROCESS_HITS")
if _hits and os.environ.get("MUTANT_UNDER_TEST") == "stats":
    import mutmut.mutation.trampoline as _trampoline

    _seen: set[str] = set()

    def _record(name: str, caller: str | None = None) -> None:
        if name not in _seen:
            _seen.add(name)
            with open(_hits, "a", encoding="utf-8") as out:
                out.write(name + "\n")

    _trampoline.record_trampoline_hit = _record  # type: ignore[assignment]
