"""Impossible config combinations, refused at start with one sentence, before any data is loaded.

cli/preflight.py calls both before the command's code (and Lightning) is imported: `check_training_config`
for train, `check_sampling_config` with the saved training config of the run a command samples from;
runs/train.py and runs/loading.py call them again for configs made in Python. Each check reads only the
composed config (and the classes it names), never the data.
"""

from typing import Optional

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class
from omegaconf import DictConfig

from motiondiff.core.errors import UserError
from motiondiff.data.spans import check_window_fits
from motiondiff.training.network_options import reads_text, refuse_pooled_captions


def check_training_config(cfg: DictConfig, teacher_pending: bool = False) -> None:
    """Refuse a training config whose parts cannot work together. teacher_pending: a distillation whose teacher's
    groups (its network among them) are not copied in yet (preflight, before runs.distill.with_teacher)."""
    for key in ("sampler", "val_sampler"):
        check_sampler_steps(cfg.get(key), cfg.schedule.num_steps, key)
    conditional = is_text_network(cfg.network)
    weight = cfg.module.get("guidance_weight", 1.0)  # None: a distillation's teacher's
    if not conditional and weight not in (None, 1.0) and not teacher_pending:
        raise UserError(
            f"module.guidance_weight={weight} needs a text-conditioned model, but network={network_name(cfg.network)} "
            "is unconditional; drop the override (guidance needs captions: experiment=text2motion)."
        )
    if pooled_only(cfg.get("text_encoder")):
        refuse_pooled_captions(
            network_name(cfg.network),
            "text_encoder.tokens=false gives one pooled vector per caption",
            "token features (text_encoder.tokens=true)",
        )
    check_ddp_launch(cfg)
    if cfg.dataset.get("source") == "procedural" and "window" in cfg.dataset:
        frames = cfg.dataset.get("procedural", {}).get("num_frames", 900)
        check_window_fits(frames, cfg.dataset.window, cfg.dataset.val_fraction, "procedural")


def check_sampling_config(cfg: DictConfig, train_cfg: DictConfig) -> None:
    """Refuse generation/evaluation options the run cannot honour (sampler steps, guidance without text)."""
    check_sampler_steps(cfg.get("sampler"), train_cfg.schedule.num_steps, "sampler")
    weight = cfg.get("guidance_weight")
    if weight is not None and not is_text_network(train_cfg.network):
        raise UserError(
            f"guidance_weight={weight} needs a text-conditioned run, but this run's network "
            f"({network_name(train_cfg.network)}) is unconditional; drop guidance_weight."
        )


def check_sampler_steps(sampler_cfg: Optional[DictConfig], schedule_steps: int, key: str) -> None:
    """A sampler cannot take more steps than the schedule the model was trained on."""
    steps = (sampler_cfg or {}).get("num_steps")
    if steps is not None and steps > schedule_steps:
        raise UserError(
            f"{key}.num_steps={steps} exceeds the {schedule_steps} diffusion steps of the schedule "
            f"(schedule.num_steps); use at most {schedule_steps}."
        )


def is_text_network(network_cfg: DictConfig) -> bool:
    """Whether the configured network takes a caption."""
    return reads_text(get_class(network_cfg._target_))


def network_name(network_cfg: DictConfig) -> str:
    return network_cfg._target_.rsplit(".", 1)[-1]


def pooled_only(text_encoder_cfg: Optional[DictConfig]) -> bool:
    """A text encoder configured to give one pooled vector per caption and no token sequence."""
    return bool(text_encoder_cfg) and text_encoder_cfg.get("tokens", None) is False


def check_ddp_launch(cfg: DictConfig) -> None:
    """DDP inside a local multirun would re-run the whole sweep per rank (Lightning re-runs the command line)."""
    strategy = str(cfg.trainer.get("strategy", ""))
    if not strategy.startswith("ddp") or not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    if "submitit" not in str(HydraConfig.get().launcher.get("_target_", "")):
        raise UserError(
            "trainer=ddp in a multirun (-m) on one machine would start the whole sweep again in every process; "
            "sweep DDP runs with hydra/launcher=slurm (SLURM starts each rank), or run them one at a time."
        )
