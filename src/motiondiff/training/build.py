"""Building the LightningModule a composed training config describes, for the data a DataModule describes.

The `module` group names the LightningModule class; the class names the networks it trains
(`check_network_class`) and builds itself from the other groups (`from_config`). The network's
sizes (`features`, `text_dim`) come from the data, never from the config.
"""

import lightning as L
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig

from motiondiff.core.errors import UserError
from motiondiff.data.info import MotionData
from motiondiff.training.network_options import constructor_options, reads_text, refuse_pooled_captions

DEFAULT_MODULE = "motiondiff.training.diffusion_module.MotionDiffusion"  # runs saved before the module config group


def build_module(cfg: DictConfig, data: MotionData) -> L.LightningModule:
    """The LightningModule described by a composed training config (`module` group), for `data`."""
    module_class = module_class_of(cfg)
    network_class = get_class(cfg.network._target_)
    module_class.check_network_class(network_class)
    check_network_options(cfg.network, network_class)
    network = instantiate(cfg.network, **network_sizes(network_class, data))
    return module_class.from_config(cfg, network, data, module_options(cfg))


def module_class_of(cfg: DictConfig) -> type:
    """The LightningModule class a training config's `module` group names (MotionDiffusion for runs saved before it)."""
    return get_class(cfg.get("module", {}).get("_target_", DEFAULT_MODULE))


def check_network_options(network_cfg: DictConfig, network_class: type) -> None:
    """UserError naming any network.<key> the network class does not take (a typo, or a key left by an experiment)."""
    options = constructor_options(network_class)
    unknown = [str(key) for key in network_cfg if not str(key).startswith("_") and key not in options]
    if unknown:
        valid = ", ".join(name for name in options if name not in ("features", "text_dim"))
        raise UserError(f"network.{unknown[0]} is not an option of {network_class.__name__}; its options are: {valid}.")


def module_options(cfg: DictConfig) -> dict:
    """The module group's own options (its keys without Hydra's _target_/_partial_)."""
    return {key: value for key, value in cfg.module.items() if not str(key).startswith("_")}


def network_sizes(network_class: type, data: MotionData) -> dict:
    """The sizes a network takes from the data (features; text_dim for text); UserError on a data/network mismatch."""
    takes_text, name = reads_text(network_class), network_class.__name__
    if data.conditional and not takes_text:
        raise UserError(
            f"network {name} cannot read text, but the dataset is text-conditioned; use network=incontext, adaln or "
            "cross_attention."
        )
    if takes_text and not data.conditional:
        raise UserError(
            f"network {name} needs text, but the dataset has no captions; use network=punet, or a text dataset "
            "(dataset=text_motion)."
        )
    if not data.conditional:
        return {"features": data.features}
    if data.text_tokens == 1:
        refuse_pooled_captions(name, "the text features hold one pooled vector per caption", "extract token features")
    return {"features": data.features, "text_dim": data.text_dim}
