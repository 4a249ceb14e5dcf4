"""A training process for the multi-process tests: `python -m tests.experiments.worker MODE ...`.

Modes:
  own REPO NAME N FLUSH_EVERY       start an experiment, log N points of "x" (step i, value i),
                                    print "FLUSHED k" after each explicit flush every FLUSH_EVERY
                                    points, end it
  hang REPO N                       start, log N points, print "LOGGED", then sleep forever
                                    (the writer thread's timer must store them)
  attach REPO METRIC N              attach to the repository's active experiment, log N points
  raise REPO                        start, log, then die of an uncaught exception
"""

from __future__ import annotations

import sys
import time

from coral.experiments import ExperimentTracker
from coral.version_control.repository import Repository


def main(argv: list[str]) -> None:
    mode, repo_path = argv[0], argv[1]
    repo = Repository(repo_path)
    if mode == "own":
        name, n, every = argv[2], int(argv[3]), int(argv[4])
        tracker = ExperimentTracker(repo, flush_every=max(every, 1), flush_interval=3600)
        exp = tracker.start(name, params={"n": n, "pid_hint": "worker"}, tags=["worker"])
        print(f"ID {exp.experiment_id}", flush=True)
        for i in range(n):
            tracker.log("x", i, step=i)
            if every and (i + 1) % every == 0:
                tracker.flush()
                print(f"FLUSHED {i + 1}", flush=True)
        tracker.end()
        print("ENDED", flush=True)
    elif mode == "hang":
        n = int(argv[2])
        tracker = ExperimentTracker(repo, flush_every=10**6, max_pending=10**6, flush_interval=0.2)
        exp = tracker.start("hang")
        print(f"ID {exp.experiment_id}", flush=True)
        for i in range(n):
            tracker.log("x", i, step=i)
        print("LOGGED", flush=True)
        time.sleep(3600)
    elif mode == "attach":
        metric, n = argv[2], int(argv[3])
        tracker = ExperimentTracker(repo, flush_every=250)
        tracker.attach()
        for i in range(n):
            tracker.log(metric, i, step=i)
        tracker.close()
        print("DONE", flush=True)
    elif mode == "raise":
        tracker = ExperimentTracker(repo)
        exp = tracker.start("doomed")
        print(f"ID {exp.experiment_id}", flush=True)
        for i in range(10):
            tracker.log("x", i)
        raise RuntimeError("exploded at step 10")
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1:])
