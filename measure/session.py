"""The run's state: pools per world size, ceilings per pool, records, and the summary rows."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field

import torch.distributed as dist

from common.errors import CorrectnessError
from measure import figures
from measure.checks import assert_correct
from measure.figures import marks
from measure.matrix import Matrix, Suite
from measure.records import RunRecords
from measure.runner import ceilings_task, environment_task, run_phase1
from measure.summary import Summary


@dataclass
class BenchSession:
    matrix: Matrix
    suite: Suite
    seed: int
    device_type: str
    timing: dict
    options: dict
    records: RunRecords | None
    registry_factory: object
    summary: Summary = field(default_factory=Summary)
    _registry: object = None
    _ceilings: dict = field(default_factory=dict)
    _environments: dict = field(default_factory=dict)
    _seed_agreed: bool = False

    def __post_init__(self):
        if self.records is not None:
            self.records.update_run(
                suite=self.suite.name,
                seed=self.seed,
                device_type=self.device_type,
                timing=self.timing,
                options=self.options,
            )

    @property
    def torchrun_size(self) -> int | None:
        return int(os.environ["WORLD_SIZE"]) if self.registry.torchrun else None

    @property
    def registry(self):
        if self._registry is None:
            self._registry = self.registry_factory()
        return self._registry

    def base_seed(self) -> int:
        """The run's base seed, the same on every rank: under torchrun each rank's pytest drew
        its own, so rank 0's is broadcast once (records and cells then agree)."""
        if not self._seed_agreed:
            if self.registry.torchrun is not None:
                box = [self.seed]
                dist.broadcast_object_list(box, src=0)
                self.seed = box[0]
            self._seed_agreed = True
        return self.seed

    def cell_seed(self, cell) -> int:
        """A seed per cell, derived from the run's base seed and the cell id (recorded)."""
        return zlib.crc32(f"{self.base_seed()}:{cell.id}".encode()) & 0x7FFFFFFF

    def pool(self, world_size: int):
        pool = self.registry.get(world_size)
        key = (world_size, pool.generation)
        if key not in self._environments:
            self._environments[key] = pool.run_setup(environment_task)
            if self.records is not None:
                self.records.update_run(environment={f"ws{world_size}": self._environments[key]})
        return pool

    def environment(self, pool) -> dict:
        """Rank 0's environment (GPU, driver, versions, commit) for this pool."""
        return self._environments[(pool.world_size, pool.generation)][0]

    def ceilings(self, pool) -> dict:
        """Measured once per pool (per world size and start), shared by every cell's floor."""
        key = (pool.world_size, pool.generation)
        if key not in self._ceilings:
            per_rank = pool.run_setup(ceilings_task)
            merged = {
                k: min(r[k] for r in per_rank)
                if isinstance(per_rank[0][k], float)
                else per_rank[0][k]
                for k in per_rank[0]
            }
            self._ceilings[key] = merged
            if self.records is not None:
                self.records.update_run(
                    ceilings={
                        f"ws{pool.world_size}": {"min_over_ranks": merged, "per_rank": per_rank}
                    }
                )
        return self._ceilings[key]

    def phase1(self, cell, seed: int) -> tuple[list[dict], dict]:
        """Run a phase1 cell on its pool: the ranks' raw results and the derived figures."""
        pool = self.pool(cell.world_size)
        ceilings = self.ceilings(pool)
        results = pool.run(run_phase1, cell.as_dict(), seed, self.task_options())
        return results, figures.phase1_info(cell, results, ceilings, self.environment(pool))

    def task_options(self) -> dict:
        t = self.timing
        return {
            **self.options,
            "energy_window_s": t["energy_window_s"],
            "idle_s": t["idle_s"],
            "rule": {k: t[k] for k in ("min_samples", "min_time_s", "max_time_s", "max_noise")},
            "sampling": {k: t[k] for k in ("sample_s", "warmup_s", "max_duty")},
        }

    def finish(self, cell, results: list[dict], info: dict | None = None) -> None:
        """Record the cell (pass or fail), add it to the summary, then assert correctness.

        The record is written before the assertion so a failing cell's figures are kept.
        """
        failure = None
        for r in results:
            try:
                assert_correct(r["errors"], cell.name, r["rank"])
            except CorrectnessError as e:
                failure = failure or e
        doc = {
            "phase": cell.phase,
            "emulated": results[0]["emulated"],
            "correct": failure is None,
            "failure": None if failure is None else str(failure),
            "ranks": results,
        }
        if info is not None:
            doc["figures"] = info
            self.summary.add(
                cell,
                results[0]["timing"]["forward"]["median"],
                info["pct_of_floor"],
                info.get("j_per_token"),
                marks(info),
                info["emulated"],
            )
        if self.records is not None:
            self.records.write_cell(cell, doc)
        if failure is not None:
            raise failure

    def close(self):
        if self._registry is not None:
            self._registry.close()
