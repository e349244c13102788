"""The shape annotations are checked while the tests run (conftest installs typeguard's import hook with
torchtyping's patch): a tensor of the wrong shape at a public boundary is a TypeError, not a silent broadcast."""

import pytest
import torch

from conftest import TYPECHECKED
from motiondiff.diffusion.loss import masked_mse
from motiondiff.diffusion.schedule import LinearSchedule
from motiondiff.networks.punet import PUNet

pytestmark = pytest.mark.skipif(not TYPECHECKED, reason="MOTIONDIFF_TYPECHECK=0 turned the shape checks off")


def test_inconsistent_batch_sizes_are_refused():
    schedule = LinearSchedule(num_steps=10)
    x0 = torch.randn(4, 8, 3)
    schedule.q_sample(x0, torch.zeros(4, dtype=torch.long), torch.randn(4, 8, 3))  # consistent: fine
    with pytest.raises(TypeError, match="batch"):
        schedule.q_sample(x0, torch.zeros(3, dtype=torch.long), torch.randn(4, 8, 3))  # 3 steps for 4 motions


def test_a_motion_with_the_wrong_rank_is_refused():
    network = PUNet(features=6, base_channels=8, channel_mults=(1,), num_res_blocks=1, attention=False)
    with pytest.raises(TypeError):
        network(torch.randn(8, 6), torch.zeros(8, dtype=torch.long))  # (frames, feats) without the batch dimension


def test_a_mask_of_another_length_is_refused():
    output = torch.randn(2, 8, 3)
    with pytest.raises(TypeError, match="frames"):
        masked_mse(output, output, torch.ones(2, 7, dtype=torch.bool))


def test_plain_python_types_are_checked_too():
    with pytest.raises(TypeError):
        LinearSchedule(num_steps=10).q_sample("not a tensor", torch.zeros(1, dtype=torch.long), torch.randn(1, 2, 3))
