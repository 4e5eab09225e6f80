"""``python -m evaluation.eval_agent --agent NAME ...``: the old name of ``infertune eval``.

Agents are modes of the one evaluation pipeline (``evaluation.plan.MODES``), so this
is the same command under the old system's module name, kept for its users::

    python -m evaluation.eval_agent --agent majority_vote --num_runs 5 --temperature 0.7 \\
        --model Qwen/Qwen2.5-Math-1.5B --dataset gsm8k --count 100 --inference_backend vllm
"""

if __name__ == "__main__":
    import sys

    from commands.eval import main  # the command layer, loaded only when run as a program

    sys.exit(main(prog="python -m evaluation.eval_agent"))
