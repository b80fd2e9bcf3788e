"""``edgeshrink monitor`` / ``python3 edgeshrink-bench.pyz monitor``: the monitor as a program.

Needs only numpy and onnxruntime. Every alert is one JSON line on stdout (and a file in
``--alert-dir``); the exit code is 0 when nothing was raised, 3 when an alert was, and 2
(one sentence on stderr) for input it cannot use.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgeshrink.errors import UserError, exit_code_of

__all__ = ["main", "build_parser", "EXIT_ALERT"]

EXIT_ALERT = 3

_EPILOG = """\
examples (on the device, beside the recommended file):
  python3 edgeshrink-bench.pyz monitor run int8.onnx --profile monitor-profile.json \\
      --state monitor.sqlite --inputs today.npz --alert-dir alerts/
  python3 edgeshrink-bench.pyz monitor run int8.onnx --profile monitor-profile.json \\
      --state monitor.sqlite --inputs incoming/ --reference reference.onnx
  python3 edgeshrink-bench.pyz monitor label --profile monitor-profile.json \\
      --state monitor.sqlite --labels labels.npz
  python3 edgeshrink-bench.pyz monitor status --profile monitor-profile.json \\
      --state monitor.sqlite
  python3 edgeshrink-bench.pyz monitor profile int8.onnx --inputs eval.npz \\
      --reference fp32.onnx --out monitor-profile.json
exit codes: 0 no alert, 3 an alert was raised, 2 unusable input.
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", required=True, help="monitor-profile.json (from the study)")
    p.add_argument("--state", required=True, help="the monitor's SQLite state file")
    p.add_argument("--alert-dir", default=None, help="also drop each alert here as a file")
    p.add_argument("--max-drop", type=float, default=0.05,
                   help="accuracy / agreement the model may lose (fraction, default 0.05)")
    p.add_argument("--max-rss-mb", type=float, default=None, help="alert above this memory")
    p.add_argument("--latency-factor", type=float, default=2.0,
                   help="alert when p50 exceeds this times the device's first windows")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeshrink monitor", epilog=_EPILOG,
        description="Watch a deployed model: drift, agreement, accuracy, latency, memory.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", metavar="{run,label,status,profile}")
    run = sub.add_parser("run", help="run the model on new inputs and check them")
    run.add_argument("model", help="the deployed .onnx file")
    run.add_argument("--inputs", required=True, help=".npz file or folder of .npz files")
    run.add_argument("--labels", default=None, help=".npz of late labels: 'ids', 'labels'")
    run.add_argument("--reference", default=None, help="uncompressed .onnx for shadow checks")
    run.add_argument("--shadow-every", type=int, default=10, help="shadow one batch in N")
    run.add_argument("--batch", type=int, default=1, help="samples per model call")
    run.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    _common(run)
    lab = sub.add_parser("label", help="labels that arrived for samples seen earlier")
    lab.add_argument("--labels", required=True, help=".npz with 'ids' and 'labels'")
    _common(lab)
    st = sub.add_parser("status", help="print the state as JSON")
    _common(st)
    prof = sub.add_parser("profile", help="build a reference profile from evaluation data")
    prof.add_argument("model", help="the deployed .onnx file")
    prof.add_argument("--inputs", required=True, help=".npz of evaluation inputs (+ labels)")
    prof.add_argument("--reference", default=None, help="uncompressed .onnx (agreement)")
    prof.add_argument("--out", required=True, help="where to write the profile JSON")
    prof.add_argument("--window", type=int, default=400, help="samples per drift check")
    prof.add_argument("--step", type=int, default=200, help="a check every N samples")
    prof.add_argument("--fa-rate", type=float, default=0.01,
                      help="false-alarm chance over --horizon clean samples")
    prof.add_argument("--horizon", type=int, default=10_000, help="see --fa-rate")
    prof.add_argument("--streams", type=int, default=400, help="bootstrap streams simulated")
    prof.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    return p


def _monitor(ns: argparse.Namespace):
    from edgeshrink.monitor.core import Monitor, MonitorOptions

    if not 0.0 <= ns.max_drop < 1.0:
        raise UserError(f"--max-drop is a fraction in [0, 1), got {ns.max_drop}.")
    opts = MonitorOptions(max_drop=ns.max_drop, max_rss_mb=ns.max_rss_mb,
                          latency_factor=ns.latency_factor)
    return Monitor(ns.profile, ns.state, opts, alert_dir=ns.alert_dir)


def _emit(alerts: list[dict]) -> None:
    for a in alerts:
        sys.stdout.write(json.dumps(a) + "\n")
    sys.stdout.flush()


def _run(ns: argparse.Namespace) -> list[dict]:
    from edgeshrink.bench.session import open_session
    from edgeshrink.monitor.sources import monitor_stream, npz_batches, read_labels

    if ns.batch < 1 or ns.shadow_every < 1:
        raise UserError("--batch and --shadow-every must be positive integers.")
    if not Path(ns.inputs).exists():
        raise UserError(f"{ns.inputs} does not exist: give an .npz file or a folder of them.")
    mon = _monitor(ns)
    sess = open_session(ns.model, threads=ns.threads)
    _check_model(ns.model, mon.profile)
    ref = open_session(ns.reference, threads=ns.threads) if ns.reference else None
    names = [i.name for i in sess.get_inputs()]
    alerts: list[dict] = []
    for name, batch in npz_batches(ns.inputs, names, after=mon.meta.get("last_file")):
        new = monitor_stream(mon, sess, [batch], reference=ref, shadow_every=ns.shadow_every,
                             batch=ns.batch)
        if Path(ns.inputs).is_dir():
            mon.meta["last_file"] = name
        _emit(new)
        alerts += new
    if ns.labels:
        new = mon.label(*read_labels(ns.labels))
        _emit(new)
        alerts += new
    mon.close()
    return alerts


def _check_model(model: str, profile) -> None:
    from edgeshrink.bench.session import sha256_file

    want = profile.meta.get("model_sha256")
    if want and sha256_file(model) != want:
        raise UserError(f"{model} is not the file the profile was made for "
                        f"({profile.meta.get('model', 'another file')}); monitor that file, or "
                        "build a profile for this one with `monitor profile`.")


def _status(ns: argparse.Namespace) -> None:
    mon = _monitor(ns)
    sys.stdout.write(json.dumps(mon.status()) + "\n")


def _profile(ns: argparse.Namespace) -> None:
    from edgeshrink.bench.session import open_session
    from edgeshrink.monitor.profile import Calibration, build_profile
    from edgeshrink.monitor.sources import read_npz

    names = [i.name for i in open_session(ns.model).get_inputs()]
    batch = read_npz(ns.inputs, names)
    cal = Calibration(window=ns.window, step=ns.step, fa_rate=ns.fa_rate, horizon=ns.horizon,
                      streams=ns.streams)
    prof = build_profile(ns.model, batch.feeds, batch.labels, reference=ns.reference,
                         calibration=cal, threads=ns.threads)
    print(prof.save(ns.out))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.cmd is None:
        parser.print_help()
        return 2
    return exit_code_of(lambda: _dispatch(ns))


def _dispatch(ns: argparse.Namespace) -> int:
    if ns.cmd == "run":
        alerts = _run(ns)
        print(f"monitor: {len(alerts)} alert(s)", file=sys.stderr)
        return EXIT_ALERT if alerts else 0
    if ns.cmd == "label":
        mon = _monitor(ns)
        from edgeshrink.monitor.sources import read_labels

        alerts = mon.label(*read_labels(ns.labels))
        mon.close()
        _emit(alerts)
        return EXIT_ALERT if alerts else 0
    if ns.cmd == "status":
        _status(ns)
    else:
        _profile(ns)
    return 0
