"""Distillation runs (`experiment=distill teacher=<run>`): the teacher's run lends its data, network, schedule and
loss to the student's config, and its weights to the student (training.distill_module)."""

from hydra.utils import get_class
from omegaconf import DictConfig, open_dict

from motiondiff.core.errors import UserError
from motiondiff.runs.directories import check_run_dir, load_run_config, resolve_checkpoint
from motiondiff.runs.loading import load_module
from motiondiff.training.build import module_class_of
from motiondiff.training.diffusion_module import MotionDiffusion
from motiondiff.training.distill_module import ConsistencyDistillation
from motiondiff.training.network_options import reads_text

# What the student takes from the teacher's run config: the same data, network, noise schedule and parameterisation.
TEACHER_GROUPS = ("dataset", "text_encoder", "network", "schedule", "loss")
TEACHER_MODULE_OPTIONS = ("clip_x0", "guidance_weight")


def distills(cfg: DictConfig) -> bool:
    """Whether a training config trains a ConsistencyDistillation module."""
    return issubclass(module_class_of(cfg), ConsistencyDistillation)


def with_teacher(cfg: DictConfig) -> DictConfig:
    """A distillation config completed from its teacher's run (groups above, guidance embedding on for text);
    other configs unchanged. UserError when a distillation has no teacher, or a teacher is given to another module."""
    teacher = cfg.get("teacher")
    if not distills(cfg):
        if teacher:
            raise UserError(f"teacher={teacher} is for experiment=distill; drop it, or add experiment=distill.")
        return cfg
    if not teacher:
        raise UserError("experiment=distill needs the run to distil: add teacher=<run directory under outputs/>.")
    teacher_dir = check_run_dir(teacher, "teacher", cfg.paths.output_root)
    teacher_cfg = load_run_config(teacher_dir)
    teacher_module = module_class_of(teacher_cfg)
    if not issubclass(teacher_module, MotionDiffusion) or issubclass(teacher_module, ConsistencyDistillation):
        raise UserError(
            f"'{teacher_dir}' is a {teacher_module.__name__} run; the teacher must be a diffusion training run."
        )
    if teacher_cfg.network.get("context", False):
        raise UserError(
            f"teacher={teacher} was trained with network.context=true, which experiment=distill does not distil; "
            "give a run trained without it."
        )
    with open_dict(cfg):
        for group in TEACHER_GROUPS:
            cfg[group] = teacher_cfg[group]
        for option in TEACHER_MODULE_OPTIONS:
            if cfg.module.get(option) is None:  # null: the teacher's; a value given on the command line stays
                cfg.module[option] = teacher_cfg.module[option]
        if reads_text(get_class(cfg.network._target_)):
            cfg.network.guidance_embedding = True
        cfg.teacher = str(teacher_dir)
    return cfg


def attach_teacher(module, cfg: DictConfig) -> None:
    """Load the teacher run's last checkpoint and hand it to a distillation module (nothing for other modules)."""
    if not isinstance(module, ConsistencyDistillation):
        return
    teacher_dir, checkpoint = resolve_checkpoint(cfg.teacher, None, "last")
    teacher = load_module(load_run_config(teacher_dir), checkpoint)
    module.attach_teacher(teacher)
