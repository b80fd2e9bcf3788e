"""Hardware-aware automated search on Optuna: per-group widths, per-layer sparsity and
precision, calibration and fine-tuning, found for a device budget.

Embedded by default (an Optuna journal file in the run folder); on a shared PostgreSQL any
number of workers join the same search. Every trial is a recipe measured exactly as a study
candidate and lands in the same ``results.json``, report and advisor.

Example:
    >>> run = run_search(SearchSettings(task="zoo:lenet5-mnist", device="cortex-m7",
    ...                                 trials=20, out="runs/search",
    ...                                 constraints={"max_drop": 1.0}))
"""

from edgeshrink.search.engine import (
    OBJECTIVES,
    SAMPLERS,
    SearchSettings,
    create_search,
    load_search,
    render_results,
    work,
)
from edgeshrink.search.run import clean_search_dir, join_search, run_search
from edgeshrink.search.space import SearchSpace, recipe_of
from edgeshrink.search.storage import open_storage

__all__ = [
    "SearchSettings", "SearchSpace", "OBJECTIVES", "SAMPLERS", "run_search", "join_search",
    "create_search", "load_search", "work", "render_results", "recipe_of", "open_storage",
    "clean_search_dir",
]
