"""Search quality on the labelled set, per class of question, for the memory
service and for the executor's fallback.

The corpus and the questions are tests/integration/test_search_labelled.py's
(tests/support/search_corpus.py, search_questions.py); the measures are
defined in tests/support/search_quality.py. Printed: precision at 5, recall
in the first 100 and the questions that found nothing, per class and
overall, for each source; then each source's worst questions with what came
back. Written to results/bench_search_quality.json. The targets (mean P@5
>= 0.95 for each source, no empty answer where runs match) are asserted by
the integration test; here they are only reported.

BENCH_QUALITY_WORST sets how many worst questions are listed per source.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.bench.harness import RESULTS_DIR
from tests.support.search_corpus import labelled_stack
from tests.support.search_quality import ask_all, class_table, mean, worst
from tests.support.search_questions import CLASSES, all_questions

WORST = int(os.environ.get("BENCH_QUALITY_WORST", "15"))
TARGET_PRECISION = 0.95


async def test_search_quality_per_class(tmp_path: Path) -> None:
    started = time.perf_counter()
    async with labelled_stack(tmp_path) as labelled:
        built = time.perf_counter() - started
        questions = all_questions()
        started = time.perf_counter()
        answers = await ask_all(labelled, questions)
        asked = time.perf_counter() - started
        corpus = labelled.corpus
        print(
            f"\nsearch quality: {len(questions)} questions over {len(corpus.runs)} runs "
            f"(corpus built in {built:.1f} s, every question asked of both sources "
            f"in {asked:.1f} s)"
        )
        print(class_table(answers, CLASSES))
        results: dict[str, object] = {"questions": len(questions), "runs": len(corpus.runs)}
        for source, answered in answers.items():
            precision = mean([a.precision for a in answered])
            empty = sum(a.empty for a in answered)
            verdict = "meets" if precision >= TARGET_PRECISION and not empty else "misses"
            print(
                f"\n{source}: mean P@5 {precision:.3f}, mean recall "
                f"{mean([a.recall for a in answered]):.3f}, {empty} empty: {verdict} the target "
                f"(P@5 >= {TARGET_PRECISION}, none empty)"
            )
            lowest = worst(answered, corpus, WORST)
            if lowest:
                print(f"{source}: worst questions")
                print("\n".join(f"  {line}" for line in lowest))
            results[source] = {
                "mean_precision_at_5": precision,
                "mean_recall": mean([a.recall for a in answered]),
                "empty": empty,
                "per_class": {
                    kind: {
                        "precision_at_5": mean([a.precision for a in picked]),
                        "recall": mean([a.recall for a in picked]),
                        "empty": sum(a.empty for a in picked),
                        "questions": len(picked),
                    }
                    for kind in CLASSES
                    if (picked := [a for a in answered if a.question.kind == kind])
                },
                "worst": lowest,
            }
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / "bench_search_quality.json").write_text(json.dumps(results, indent=2) + "\n")
        assert all(len(answered) == len(questions) for answered in answers.values())
