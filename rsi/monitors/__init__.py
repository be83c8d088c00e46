"""Integrity monitors: each cycle, figures that show whether the loop is quietly going wrong.

| monitor           | recorded in stage | watches for                                            |
|-------------------|-------------------|--------------------------------------------------------|
| `decontamination` | label             | generated problems or answers overlapping held-out sets |
| `label_audit`     | label             | self-labels (vote) below a floor of true accuracy       |
| `diversity`       | label             | mode collapse of problems or answers                    |
| `reward_hacking`  | gate              | training reward parting from verified correctness       |
| `verifier`        | gate              | a verifier raising on a sample (scored 0, run goes on)  |

Each is a function from records to a `Reading` (figures, alert, one-line message), stored in the
ledger's `monitors` table in the same transaction as its stage's outputs, shown by `rsi report`
and, latest per monitor, in `rsi status --json` under `monitors`.
"""

from rsi.monitors.checks import decontamination, diversity, label_audit, verifier
from rsi.monitors.hacking import reward_hacking, sample_drift, step_stats
from rsi.monitors.overlap import REASONS, HeldoutIndex

MONITORS = ("decontamination", "label_audit", "diversity", "reward_hacking", "verifier")

__all__ = ["MONITORS", "REASONS", "HeldoutIndex", "decontamination", "diversity", "label_audit", "reward_hacking",
           "sample_drift", "step_stats", "verifier"]
