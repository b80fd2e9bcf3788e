"""Studies: many candidate recipes on one task, each measured on its exported artifact."""

from edgeshrink.study.plan import CandidateSpec, default_plan, load_plan, named_plan, resolve_plan
from edgeshrink.study.runner import run_study

__all__ = [
    "CandidateSpec", "default_plan", "load_plan", "named_plan", "resolve_plan", "run_study",
]
