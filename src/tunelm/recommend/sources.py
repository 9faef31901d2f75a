"""Published constants and where they come from: the one table every rule reads.

When a source is revised, change it here; the tests pin the figures the sources publish.
"""

from __future__ import annotations

SOURCES = {
    "tinker": "Tinker cookbook, hyperparam_utils.get_lr (Thinking Machines, 2025): "
              "LR = lr_base x M_LoRA x (2000/hidden)^P, fitted on exhaustive sweeps with alpha 32, "
              "<0.5% regret",
    "lora_without_regret": "Schulman et al., 'LoRA Without Regret', Thinking Machines (2025): "
                           "the best LoRA rate is ~10x full fine-tuning and rank-independent at "
                           "fixed alpha",
    "practitioner": "practitioner ranges: Hugging Face PEFT/TRL guides, Axolotl and Unsloth "
                    "example configs, Raschka 'Practical Tips for Finetuning LLMs Using LoRA' (2023)",
    "qlora": "Dettmers et al., 'QLoRA' (2023, arXiv:2305.14314): NF4, paged AdamW, "
             "max_grad_norm 0.3",
    "lora": "Hu et al., 'LoRA' (2021, arXiv:2106.09685)",
    "rslora": "Kalajdzievski, 'A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA' "
              "(2023, arXiv:2312.03732): scaling alpha/sqrt(r)",
    "sqrt_rule": "Malladi et al., 'On the SDEs and Scaling Rules for Adaptive Gradient "
                 "Algorithms' (2022, arXiv:2205.10287): for Adam, scale the rate with the square "
                 "root of the batch",
    "wsd": "Hägele et al., 'Scaling Laws and Compute-Optimal Training Beyond Fixed Training "
           "Durations' (2024, arXiv:2405.18392): warmup-stable-decay",
    "common": "common practice in fine-tuning recipes (TRL, Axolotl, torchtune defaults)",
    "tunelm": "tunelm's own measurements on SmolLM2-135M (docs/benchmarks.md)",
    "transformers_hp": "Transformers' Trainer.hyperparameter_search default space "
                       "(learning rate 1e-6 to 1e-4)",
}

# The hidden-size rule (Tinker cookbook).
LR_BASE = 5e-5
M_LORA = 10.0  # LoRA multiplier; 1 for full fine-tuning
HIDDEN_REF = 2000
EXPONENTS = {"llama": 0.781, "qwen": 0.0775}
ALPHA_REF = 32.0  # the rule's constants were fitted with alpha fixed at 32

# Practitioner learning-rate ranges by model size (billions of parameters): (upper bound, lo, hi).
PRACTITIONER_LORA = [
    (3.5, 2e-4, 1e-3, "small models (<3B) take rates up to ~1e-3"),
    (10.0, 1e-4, 3e-4, "LoRA on 7B: 1e-4 to 3e-4"),
    (30.0, 5e-5, 2e-4, "LoRA on 13B: 5e-5 to 2e-4"),
    (float("inf"), 1e-5, 5e-5, "LoRA on 70B: 1e-5 to 5e-5"),
]
PRACTITIONER_FULL = (1e-6, 5e-6, "full fine-tuning: 1e-6 to 5e-6")
QLORA_7B_MAX = 1e-4  # QLoRA on ~7B: stay below 1e-4

# Epochs by dataset size: (max examples, recommended, range low, range high)
EPOCHS = [(1_000, 3, 3, 5), (5_000, 2, 2, 3), (50_000, 1, 1, 2), (float("inf"), 1, 1, 1)]
MIN_STEPS = 100  # at least this many optimizer steps, ideally far more
EVALS_PER_RUN = 12
EARLY_STOPPING = {"patience": 3, "threshold": 0.001}
CLIP = {"default": 1.0, "qlora": 0.3}
DROPOUT = 0.05
WEIGHT_DECAY = {"default": 0.01, "overfit_prone": 0.1}
