"""The record schema: one typed, versioned description of everything the harness writes and the
reports read (record version 4), importable without torch.

measure/ builds these objects and writes them (measure/records/writer.py); reports/ reads files
back into the same objects (versions.read_*), upgrading versions 1 to 3 on the way; asv and the
end-of-run summary read the objects themselves. Modules by concern: `codec` (JSON in and out,
checked against the type hints), `timing` (a measurement's statistics), `checks` (error and
exact-probe figures), `energy`, `machine` (environment, device state, ceilings),
`phase_figures` (backward, training, drift), `rank` (a rank's result and memory), `figures`
(what a timed cell publishes: pytest-benchmark's extra_info), `record` (a cell's record), `run`
(run.json), `attempt` (who wrote a run's documents) and `versions` (what each version changed,
and reading any of them).

Why stdlib dataclasses and a small codec rather than msgspec or pydantic: the records are
written on GPU machines whose image keeps its own torch and installs this project with
`pip install --no-deps` (README), where a new dependency may not be there; the ranks pickle
these objects across the rank pool, which plain dataclasses do without help; and the checks a
reader needs (type per field, the field's path in the error, unknown and missing keys, NaN
written as null) fit in one short module that the tests cover.
"""

from common.schema.versions import READABLE_VERSIONS, RECORD_VERSION

__all__ = ["READABLE_VERSIONS", "RECORD_VERSION"]
