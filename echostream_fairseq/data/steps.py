"""Resumable preparation steps, each recorded by a stamp of its parameters.

A step ``NAME`` writes its outputs, then ``DIR/.steps/NAME.json`` (the stamp: the step's
parameters). A later run with the same parameters skips the step. While a step runs,
``DIR/.steps/NAME.started.json`` holds its parameters; a step interrupted and rerun with the same
parameters may reuse the per-item files it finished (each written atomically), anything else is
redone. Parameters include a digest of the parameters of the steps a step depends on, so a
rebuilt step invalidates what was made from it.

Outputs made with different parameters are never overwritten silently: :meth:`StepRunner.preflight`
lists every conflict before anything is written, and only ``--force`` lets a run replace them.
The same holds for a non-empty output folder that prep did not make.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from echostream_fairseq.common.files import atomic_open

__all__ = ["PrepError", "Step", "StepRunner", "digest", "STEPS_DIR"]

logger = logging.getLogger("echostream.prep")

STEPS_DIR = ".steps"
# a parameter that only says where the folder is: a change means "rebuild", not "conflict"
LOCATION_KEY = "location"


class PrepError(ValueError):
    """Preparation cannot go on (conflicting earlier output, bad option); the message says why."""


def _canonical(params: Dict[str, Any]) -> Dict[str, Any]:
    return json.loads(json.dumps(params, sort_keys=True))


def digest(value: Any) -> str:
    """Short stable hash of a JSON-serialisable value."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Step:
    """One step: a name, its parameters, what it writes (paths relative to the output folder) and
    the function that does it (called with ``resume``: True when an interrupted run of the same
    parameters left per-item files that may be reused)."""

    name: str
    params: Dict[str, Any]
    outputs: Sequence[str]
    run: Callable[[bool], None]

    def __post_init__(self) -> None:
        self.params = _canonical(self.params)


@dataclass
class StepRunner:
    """Runs steps in order in ``out_dir``, skipping finished ones (see the module docstring)."""

    out_dir: str
    force: bool = False
    timings: Dict[str, float] = field(default_factory=dict)
    skipped: List[str] = field(default_factory=list)

    @property
    def steps_dir(self) -> str:
        return os.path.join(self.out_dir, STEPS_DIR)

    def _stamp_path(self, name: str) -> str:
        return os.path.join(self.steps_dir, f"{name}.json")

    def _started_path(self, name: str) -> str:
        return os.path.join(self.steps_dir, f"{name}.started.json")

    def _read(self, path: str) -> Optional[Dict[str, Any]]:
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f).get("params")
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, AttributeError):
            return {"unreadable stamp": path}

    def finished_params(self, name: str) -> Optional[Dict[str, Any]]:
        """Parameters of the finished step ``name`` (``None``: not finished)."""
        return self._read(self._stamp_path(name))

    @staticmethod
    def _differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
        keys = sorted(set(old) | set(new))
        out = []
        for key in keys:
            if old.get(key) != new.get(key):
                a, b = json.dumps(old.get(key)), json.dumps(new.get(key))
                out.append(f"{key}: {a if len(a) < 60 else a[:57] + '...'} -> {b if len(b) < 60 else b[:57] + '...'}")
        return out

    def check_folder(self) -> None:
        """Refuse a non-empty folder that prep did not make (unless ``force``)."""
        if os.path.exists(self.out_dir) and not os.path.isdir(self.out_dir):
            raise PrepError(f"{self.out_dir}: exists and is not a folder")
        if os.path.isdir(self.out_dir) and os.listdir(self.out_dir) and not os.path.isdir(self.steps_dir):
            if not self.force:
                raise PrepError(
                    f"{self.out_dir}: folder is not empty and was not made by echostream-prep; "
                    "choose another --out or pass --force to write into it"
                )

    def preflight(self, steps: Sequence[Step]) -> None:
        """Fail before writing anything if finished outputs were made with other parameters."""
        conflicts = []
        for step in steps:
            old = self.finished_params(step.name)
            if old is None or old == step.params:
                continue
            diffs = self._differences(old, step.params)
            if all(d.startswith(LOCATION_KEY + ":") for d in diffs):
                continue  # the folder moved: rebuilt without --force
            conflicts.append(f"  {step.name}: " + "; ".join(diffs))
        if conflicts and not self.force:
            raise PrepError(
                f"{self.out_dir} holds outputs made with different parameters:\n"
                + "\n".join(conflicts)
                + "\nrerun with the same options, or pass --force to rebuild these steps (and the steps after them)"
            )

    def run(self, step: Step) -> bool:
        """Run ``step`` unless it finished with the same parameters; returns True if it ran."""
        old = self.finished_params(step.name)
        if old == step.params:
            logger.info("step %-10s up to date, skipped", step.name)
            self.skipped.append(step.name)
            return False
        if old is not None:
            diffs = self._differences(old, step.params)
            if not self.force and not all(d.startswith(LOCATION_KEY + ":") for d in diffs):
                raise PrepError(
                    f"step {step.name}: outputs made with different parameters ({'; '.join(diffs)}); pass --force"
                )
            os.remove(self._stamp_path(step.name))
            self._remove_outputs(step)
        os.makedirs(self.steps_dir, exist_ok=True)
        started = self._read(self._started_path(step.name))
        resume = started == step.params
        if started is not None and not resume:
            self._remove_outputs(step)  # an interrupted run with other parameters: start clean
        with atomic_open(self._started_path(step.name)) as f:
            json.dump({"step": step.name, "params": step.params}, f, indent=1, sort_keys=True)
        logger.info("step %-10s %s", step.name, "resuming" if resume else "running")
        t0 = time.perf_counter()
        step.run(resume)
        self.timings[step.name] = time.perf_counter() - t0
        # the stamp is written last: only now are the outputs trusted
        with atomic_open(self._stamp_path(step.name)) as f:
            json.dump(
                {
                    "step": step.name,
                    "params": step.params,
                    "seconds": round(self.timings[step.name], 3),
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                },
                f,
                indent=1,
                sort_keys=True,
            )
        os.remove(self._started_path(step.name))
        logger.info("step %-10s done in %.1f s", step.name, self.timings[step.name])
        return True

    def _remove_outputs(self, step: Step) -> None:
        for rel in step.outputs:
            path = os.path.join(self.out_dir, rel)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)
