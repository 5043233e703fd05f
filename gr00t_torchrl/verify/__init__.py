"""`gr00t-ppo verify`: the 37 PPO implementation details, and 3 of the flow head, audited on the live pipeline.

Each check measures one detail of docs/ppo_details.md on the real objects of a built pipeline
(env, transforms, actor, critic, GAE, loss, optimizer, scheduler) and on one real collected batch,
and reports a status with the evidence it measured:

- ok: the detail is on and behaves as the checklist says;
- off by config: the config switches it off or to another value (e.g. `ppo.adam_eps=1e-8`);
- not applicable: the detail does not apply to this task (e.g. Gaussian details for a discrete task);
- missing: not built yet (no detail is missing today; the status stays for checks added before their feature);
- WRONG: the detail applies and the live objects disagree with it. `verify` exits 1 then.

Layout: `registry` (statuses, `Finding`, the `@detail` registry), `audit` (the `Audit` of a built
pipeline, the table and JSON reports) and `checks/` (one module per group of details; importing this
package registers every check).
"""

from gr00t_torchrl.verify import checks  # noqa: F401  (registers every check)
from gr00t_torchrl.verify.audit import Audit, audit_for, format_table, to_json
from gr00t_torchrl.verify.registry import CHECKS, MISSING, NA, OFF, OK, WRONG, Finding, detail

__all__ = [
    "CHECKS", "MISSING", "NA", "OFF", "OK", "WRONG",
    "Audit", "Finding", "audit_for", "detail", "format_table", "to_json",
]
