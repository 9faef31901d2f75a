"""`tunelm transfer`: verify the best configs of a proxy-model study on a larger target model.

A study on a small proxy is cheap. Its K best configs are carried over to the target and run
there as short runs (a share of the planned steps, 20% by default) in a new study; the result
names the winner on the target and how far each config's rank moved.

What carries over, and how:

- the learning rate is multiplied by the ratio of the hidden-size rule between the two models,
  formula_lr(target) / formula_lr(proxy): the rule `tunelm recommend` uses,
  5e-5 x M x (2000 / hidden)^P (M 10 for LoRA, 1 for full fine-tuning; P by family). The ratio
  is neither a copy nor a guessed halving, and it covers a change of method as well as of size;
- the LoRA rank is kept, or doubled with `double_rank`;
- warmup, dropout, weight decay and lora.alpha are kept: the rule was fitted with alpha fixed,
  and at fixed alpha the best rate does not depend on the rank.

    result = run_transfer("runs/proxy", "tiny:hidden=64,layers=2", top=3, fraction=0.2)
    print(table(result))
"""

from .ranks import RankShift, rank_shift
from .result import TransferResult, table
from .rule import LR, RANK, RULE, transfer_params
from .run import run_transfer, slug
from .target import target_config, target_space

__all__ = ["LR", "RANK", "RULE", "RankShift", "TransferResult", "rank_shift", "run_transfer",
           "slug", "table", "target_config", "target_space", "transfer_params"]
