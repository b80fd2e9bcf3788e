"""The one fresh-process helper: inputs travel as an .npz, the child's last stdout line is
its answer, its peak memory is its own, and a failure is the caller's exception."""

from __future__ import annotations

import numpy as np
import pytest

from edgeshrink.bench.fresh import INPUTS, fresh_peak_mb, run_fresh

_ECHO = ("import json, sys\nimport numpy as np\na = np.load(sys.argv[1])\n"
         "print(json.dumps({k: a[k].tolist() for k in a.files}))")


def test_inputs_reach_the_child_by_position_or_by_name():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert run_fresh(["-c", _ECHO, INPUTS], (x, x[:1])) == {"arr_0": x.tolist(),
                                                            "arr_1": x[:1].tolist()}
    assert run_fresh(["-c", _ECHO, INPUTS], {"input": x}) == {"input": x.tolist()}
    # a runtime's chatter before the answer: the last line is read
    assert run_fresh(["-c", "print('INFO: created delegate')\nprint('{\"a\": 1}')"]) == {"a": 1}


def test_peak_is_the_childs_own_high_water_mark():
    small = fresh_peak_mb("import sys, numpy as np\nnp.load(sys.argv[1])", [INPUTS],
                          (np.zeros((1, 4), np.float32),))
    big = fresh_peak_mb("import sys, numpy as np\nb = np.ones(200 * 2**20, np.uint8)",
                        [INPUTS], (np.zeros((1, 4), np.float32),))
    assert 5 < small < 400  # python + numpy, not the test process's torch & co.
    assert 190 < big - small < 260  # the 200 MiB the child touched


def test_a_failing_child_raises_what_the_caller_makes_of_it():
    def fail(code, last):
        return ValueError(f"{code}: {last}")

    with pytest.raises(ValueError, match=r"^3: no such model$"):
        run_fresh(["-c", "import sys\nprint('noise', file=sys.stderr)\n"
                         "print('no such model', file=sys.stderr)\nsys.exit(3)"], fail=fail)
