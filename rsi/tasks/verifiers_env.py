"""An environment from prime-intellect's `verifiers` ecosystem as a task: `verifiers:<taskset id>`.

`<taskset id>` is what `vf-eval` takes: an installed package (or `owner/name` from the hub,
installed as `name`) that exports a `verifiers.v1.Taskset` subclass through `__all__`. Its tasks
become rsi's problems and its rubric rsi's verifier:

- a task's prompt (`TaskData.prompt`, text or chat messages, read as text; after its system
  prompt when it has one) is the problem's prompt; its `answer` field, when the task data has
  one, the reference answer (rsi's label audit and seed data read it; without one, only the
  rubric judges); its `difficulty` field (an integer >= 1) the difficulty, else 1;
- a task is held out when the first byte of the sha256 of its prompt is below 256 x 0.2, as for
  `jsonl:` files (disjoint, stable when tasks are added); item i of a split at a difficulty is
  task i modulo that split's tasks there;
- the verifier scores a completion the way the environment would: a trace holding the prompt
  and the completion as one assistant reply goes through the task's own `score` (its `@vf.reward`
  functions, weights and plugged judges); the verdict's reward is the trace's total reward, and it
  counts as correct at full marks (total >= 1.0).

Single-turn environments work today. Multi-turn, tool-using and sandboxed ones (a harness, a
runtime, tool servers, rewards that need the runtime) do not: rsi samples one reply per prompt,
and a reward that needs a runtime is skipped by verifiers' own offline scoring.
"""

from __future__ import annotations

import asyncio
import hashlib
import string

from rsi.errors import ConfigError
from rsi.records import Problem, Verdict
from rsi.tasks.base import Task
from rsi.tasks.jsonl import HELDOUT_FRACTION, pick_row

ANSWER_BUDGET = 256  # tokens of a completion
MAX_TASKS = 100_000  # read at most this many tasks of an infinite taskset


class VerifiersTask(Task):
    description = "a verifiers environment's tasks, scored by its rubric"
    difficulty_meaning = "the tasks' 'difficulty' field (default 1)"
    alphabet = string.printable
    pooled = True

    def __init__(self, ref: str) -> None:
        self.ref, self.name = ref, f"verifiers:{ref}"
        taskset = _load(ref)
        if not taskset.bounded:
            taskset = taskset.take(MAX_TASKS)
        self.rows: dict[tuple[str, int], list[tuple[str, str]]] = {}
        self.tasks: dict[str, object] = {}  # prompt -> the verifiers task that scores it
        for task in _tasks(ref, taskset):
            prompt, answer, difficulty = _row(ref, task)
            if prompt in self.tasks:
                continue
            self.tasks[prompt] = task
            split = "heldout" if hashlib.sha256(prompt.encode()).digest()[0] < 256 * HELDOUT_FRACTION else "train"
            self.rows.setdefault((split, difficulty), []).append((prompt, answer))
        if not self.rows:
            raise ConfigError(f"task {self.name!r}: the taskset yielded no tasks.")
        difficulties = sorted({d for _, d in self.rows})
        self.min_difficulty, self.max_difficulty = difficulties[0], difficulties[-1]

    def generate(self, rng, difficulty):  # items come from the taskset's tasks, see `make`
        raise NotImplementedError("verifiers tasks draw rows by index; use rsi.tasks.problem()")

    def make(self, split: str, difficulty: int, seed: int) -> tuple[str, str]:
        return pick_row(self.name, self.rows, split, difficulty, seed, "prompt")

    def max_answer_chars(self, difficulty: int) -> int:
        return ANSWER_BUDGET

    def verify(self, problem: Problem, completion: str) -> Verdict:
        task = self.tasks.get(problem.prompt)
        if task is None:
            return Verdict(0.0, False, "not a prompt of this environment's tasks")
        trace = _trace(task, problem.prompt, completion)
        asyncio.run(task.score(trace))
        parts = ", ".join(f"{k} {r.score:g}" for k, r in trace.rewards.items() if r is not None)
        return Verdict(reward=trace.reward, correct=trace.reward >= 1.0, reason=f"rubric: {parts or 'no reward'}")

    def well_formed(self, problem: Problem, completion: str) -> bool:
        return bool(completion.strip())


def _load(ref: str):
    try:
        import verifiers.v1 as vf
        from verifiers.v1.utils.loaders import taskset_class
    except ImportError:
        raise ConfigError(f"task 'verifiers:{ref}' needs the verifiers package. Install the extra: "
                          "pip install 'rsi[verifiers]'") from None
    try:
        return taskset_class(ref)(vf.TasksetConfig(id=ref))
    except Exception as e:  # whatever the environment's own code raises: one paragraph, not a traceback
        raise ConfigError(f"task 'verifiers:{ref}': the environment could not be loaded ({type(e).__name__}: {e}). "
                          "Install its package (`pip install <package>`, or `prime env install owner/name`); it must "
                          "export a verifiers.v1.Taskset subclass through __all__.") from None


def _tasks(ref: str, taskset):
    """The taskset's tasks; ConfigError when its `load()` raises."""
    it = iter(taskset)
    while True:
        try:
            task = next(it)
        except StopIteration:
            return
        except Exception as e:
            raise ConfigError(f"task 'verifiers:{ref}': its taskset raised while listing its tasks "
                              f"({type(e).__name__}: {e}).") from None
        yield task


def _row(ref: str, task) -> tuple[str, str, int]:
    """(prompt, answer, difficulty) of a verifiers task; ConfigError naming the task when it has no prompt."""
    data = task.data
    where = f"task 'verifiers:{ref}', task {data.idx}" + (f" ({data.name})" if data.name else "")
    prompt = data.prompt_text if data.prompt is not None else ""
    if prompt.strip() and data.system_prompt:
        prompt = f"{data.system_prompt}\n\n{prompt}"
    if not prompt.strip():
        raise ConfigError(f"{where}: no prompt (its TaskData.prompt is empty). rsi needs a prompt in every task: "
                          "a single-turn environment whose user opens the conversation.")
    difficulty = getattr(data, "difficulty", 1)
    if isinstance(difficulty, bool) or not isinstance(difficulty, int) or difficulty < 1:
        raise ConfigError(f"{where}: field 'difficulty' must be an integer >= 1 (got {difficulty!r}).")
    answer = getattr(data, "answer", "")
    return prompt, "" if answer is None else str(answer), difficulty


def _trace(task, prompt: str, completion: str):
    """A verifiers trace of one turn: the prompt, then `completion` as the model's reply."""
    import verifiers.v1 as vf
    from verifiers.v1.graph import MessageNode
    from verifiers.v1.state import state_cls
    from verifiers.v1.trace import AgentInfo, Trace, TraceTask
    from verifiers.v1.types import AssistantMessage, UserMessage

    trace = Trace(task=TraceTask(type=type(task).__name__, data=task.data, key=task.key, hash=task.hash),
                  state=state_cls(type(task))(), agent=AgentInfo(config=vf.AgentConfig(), name="rsi", trainable=False))
    trace.nodes.append(MessageNode(message=UserMessage(content=prompt)))
    trace.nodes.append(MessageNode(parent=0, message=AssistantMessage(content=completion), sampled=True))
    return trace
