"""Run configs saved by earlier versions of motiondiff, brought up to the current layout when a run is loaded.

Classes moved between modules when the package was reorganised; a run's saved `config.yaml` still
names them where they were. Options that moved from the module to a callback are dropped when the
module is rebuilt (they only steered training).
"""

import inspect
from typing import Optional

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf, open_dict

MOVED_TARGETS = {
    "motiondiff.data.dance.DanceDataModule": "motiondiff.data.dance_windows.DanceDataModule",
    "motiondiff.training.module.MotionDiffusion": "motiondiff.training.diffusion_module.MotionDiffusion",
    "motiondiff.training.evaluator_module.MotionTextEvaluator": (
        "motiondiff.training.contrastive_module.MotionTextContrastive"
    ),
    "motiondiff.networks.evaluator.MotionTextEncoders": "motiondiff.networks.text_motion_encoders.MotionTextEncoders",
}
# Options added later (issue 19), per config group: the `_target_` prefix they belong to and the behaviour runs saved
# before them trained with (the classes' defaults, so loading such a run rebuilds it). `resume=` needs them as
# overrides, because it composes today's configs (whose values are the cheaper choices), and compares the saved
# config with them filled in.
OPTIONS_ADDED = {
    "network": (
        "motiondiff.networks.conditioning.",
        {
            "dropout_placement": "residual",
            "gelu": "tanh",
            "fused_qkv": False,
            "attention_mask": "always",
            "dropout_masks": "torch",
            "fused_adaln": False,
            "mlp_chunk_tokens": 0,
            "skip_padded": False,
            "sample_chunk_tokens": 0,
        },
    ),
    "optimizer": ("torch.optim.AdamW", {"fused": False}),  # the per-tensor loop
    # text-motion items before they followed the dataset loaders' length filter and one item per sub-clip line
    # (and the lab layout's rifke-* statistics before dataset=lab read the course's tmr-rifke pair)
    "dataset": (
        "motiondiff.data.text_motion.TextMotionDataModule",
        {"max_source_frames": None, "subclips": "per_span", "statistics_files": None},
    ),
    # distilled runs saved before the foot contact term was a distillation option trained without it, and before
    # target_dropout with dropout in the target
    "module": (
        "motiondiff.training.distill_module.ConsistencyDistillation",
        {"foot_contact_weight": 0.0, "target_dropout": True},
    ),
}
# Options whose default changed (experiment=dance3d: module.foot_contact_weight became `auto`, 0 before; dataset=lab:
# 197 and 1 frames as the course, 196 and 40 before, the transformers' max_frames following): a run saved with a
# number keeps it when resumed.
ABSENT = object()  # OmegaConf.select's default for a key a config does not have
DEFAULTS_CHANGED = ("module.foot_contact_weight", "dataset.max_frames", "dataset.min_frames", "network.max_frames")
# The same for one module's runs: module=distill's guidance weight and clip_x0 became null (the teacher's), where the
# teacher's replaced even a value given on the command line.
MODULE_DEFAULTS_CHANGED = {
    "motiondiff.training.distill_module.ConsistencyDistillation": ("module.guidance_weight", "module.clip_x0"),
}
# module options that became options of the validation-metrics callback (callbacks.generation_metrics)
MOVED_MODULE_OPTIONS = ("val_evaluator", "val_metrics_every_n_epochs", "val_metrics_items")


def upgrade_run_config(cfg: DictConfig) -> DictConfig:
    """The config with moved `_target_`s renamed and moved module options dropped (a new object)."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    upgraded = OmegaConf.create(_renamed(plain))
    module = upgraded.get("module")
    if module is not None:
        with open_dict(module):
            for key in MOVED_MODULE_OPTIONS:
                module.pop(key, None)
    return upgraded


def predated_options(saved: DictConfig) -> dict:
    """{dotted key: value} of the options added since `saved` was written (OPTIONS_ADDED), at the values its run
    trained with."""
    added = {}
    for group, (target, options) in OPTIONS_ADDED.items():
        node = saved.get(group) or {}
        if str(node.get("_target_", "")).startswith(target):
            added.update({f"{group}.{key}": value for key, value in options.items() if key not in node})
    return added


def added_option_overrides(saved: DictConfig, today: Optional[DictConfig] = None) -> list:
    """`<group>.<key>=<old value>` for each option a saved run config predates, and the saved values of options whose
    default changed since (DEFAULTS_CHANGED, MODULE_DEFAULTS_CHANGED), so `resume=` composes the run's own settings.
    With `today` (the config the resume composes), only keys it has: a distilled run's dataset and network are its
    teacher's, copied in when it is built, not the groups its command line composes."""
    module = str(OmegaConf.select(saved, "module._target_", default=""))
    keys = DEFAULTS_CHANGED + MODULE_DEFAULTS_CHANGED.get(module, ())
    values = {key: OmegaConf.select(saved, key) for key in keys}
    kept = {key: value for key, value in values.items() if _is_number(value)}
    added = {**predated_options(saved), **kept}
    if today is not None:
        added = {
            key: value for key, value in added.items() if OmegaConf.select(today, key, default=ABSENT) is not ABSENT
        }
    return [
        f"{key}={'null' if value is None else str(value).lower() if isinstance(value, bool) else value}"
        for key, value in added.items()
    ]


def is_constructor_default(cfg: DictConfig, key: str) -> bool:
    """Whether dotted `key` is an argument of its group's `_target_` (the group just above it) and holds that
    argument's default in `cfg`: a run saved before the key existed was built with that very value. Arguments that
    reach a base class through `**kwargs` are not followed (False). A default changed later would make this accept
    runs built with the old one: such a key needs an entry in OPTIONS_ADDED or DEFAULTS_CHANGED."""
    group, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, group) if group else None
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return False
    try:
        parameters = inspect.signature(get_object(node._target_)).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return False
    default = parameters[name].default if name in parameters else inspect.Parameter.empty
    value = OmegaConf.select(cfg, key)
    same_kind = isinstance(value, bool) == isinstance(default, bool)  # False == 0 and True == 1 in Python
    return default is not inspect.Parameter.empty and same_kind and default == value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _renamed(node):
    """A copy of a plain config tree with every moved `_target_` renamed."""
    if isinstance(node, dict):
        return {
            key: MOVED_TARGETS.get(value, value) if key == "_target_" else _renamed(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_renamed(value) for value in node]
    return node
