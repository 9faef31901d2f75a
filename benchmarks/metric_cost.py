"""What scoring costs next to generating: each eval.metric on N contract-task answers (the
reference answers, with one field changed in every other one as the "predictions"), seconds per
call, the median of 5. Run: PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/metric_cost.py 60"""

from __future__ import annotations

import json
import statistics
import sys
import time

from tunelm.tasks.contracts import generate
from tunelm.tasks.metrics import score


def main(n: int) -> None:
    refs = [r["messages"][-1]["content"] for r in generate(n, seed=0)]
    preds = [r if i % 2 else r.replace('"', "'", 2) for i, r in enumerate(refs)]
    for metric in ("json", "exact", "accuracy", "rouge", "chrf"):
        score(metric, preds[:2], refs[:2])  # the library's import is not the cost of a call
        times = []
        for _ in range(5):
            t = time.perf_counter()
            out = score(metric, preds, refs)
            times.append(time.perf_counter() - t)
        main_score = {k: v for k, v in out.items() if k not in ("n", "field_accuracy")}
        print(f"{metric:<9} {statistics.median(times) * 1000:8.2f} ms  {json.dumps(main_score)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
