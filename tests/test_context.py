"""Known-frame context: punet reads known frames as input, the module trains with random known prefixes/suffixes
and shows the network the frames a chained window continues."""

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY_NETWORK, compose_config, shared_path
from motiondiff.core.errors import UserError
from motiondiff.data.info import KeypointData
from motiondiff.diffusion.denoiser import Denoiser
from motiondiff.diffusion.loss import DiffusionLoss
from motiondiff.diffusion.samplers import DDIMSampler
from motiondiff.diffusion.schedule import LinearSchedule
from motiondiff.evaluation import run as evaluate
from motiondiff.networks.punet import PUNet
from motiondiff.runs import train
from motiondiff.runs.distill import with_teacher
from motiondiff.training.build import module_options
from motiondiff.training.diffusion_module import MotionDiffusion, check_context, known_context, random_known_frames

WALKER = KeypointData(
    features=40,
    dims=2,
    window=48,
    bone_lengths=[1.0] * 19,
    feature_abs_max=2.0,
    source="test",
    num_joints=20,
    joint_names=[f"j{i}" for i in range(20)],
    parents=[-1, *range(19)],
    fps=30.0,
)


def context_net(features: int = 6) -> PUNet:
    """A small context punet whose output layer is not zero, so its output depends on its inputs."""
    net = PUNet(features=features, base_channels=16, channel_mults=(1, 2), num_res_blocks=1, context=True)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in net.final[-1].parameters():
            param.copy_(0.1 * torch.randn(param.shape, generator=generator))
    return net


def test_the_context_network_reads_the_known_frames_and_nothing_else_of_known():
    net = context_net()
    x, t = torch.randn(2, 24, 6), torch.tensor([10, 500])
    frames = torch.arange(24)[None].expand(2, 24) < 8  # (B, N): the first 8 frames known
    known = torch.randn(2, 24, 6)
    out = net(x, t, cond=known_context(known, frames))
    assert out.shape == x.shape
    # Values outside the known frames are not read; values inside are.
    other = torch.where(frames[:, :, None], known, 100 * torch.randn_like(known))
    assert torch.equal(out, net(x, t, cond=known_context(other, frames)))
    assert not torch.allclose(out, net(x, t, cond=known_context(known + 1, frames)))
    # No context is the same as context with no known frame.
    nothing = torch.zeros_like(frames)
    assert torch.equal(net(x, t), net(x, t, cond=known_context(known, nothing)))
    assert net.input.in_channels == 2 * 6 + 1


def test_a_context_network_accepts_only_known_and_known_mask():
    with pytest.raises(AssertionError, match="known"):
        context_net()(torch.randn(1, 8, 6), torch.zeros(1, dtype=torch.long), cond={"text_pooled": torch.zeros(1, 4)})


def test_random_known_frames_are_a_prefix_or_suffix_of_up_to_half_the_window():
    generator = torch.Generator().manual_seed(0)
    frames = random_known_frames(torch.zeros(4000, 48, 3), 0.5, generator)  # (B, N)
    assert frames.shape == (4000, 48) and frames.dtype == torch.bool
    counts = frames.sum(dim=1)
    chosen = counts > 0
    assert 0.45 < chosen.float().mean() < 0.55
    assert counts.max() == 24 and counts[chosen].min() == 1
    prefix = frames[:, 0] & chosen
    suffix = frames[:, -1] & chosen
    assert not bool((prefix & suffix).any()) and bool((prefix | suffix)[chosen].all())
    assert 0.4 < prefix[chosen].float().mean() < 0.6
    index = torch.arange(48)
    assert torch.equal(frames[prefix], index[None] < counts[prefix, None])  # contiguous from the start
    assert torch.equal(frames[suffix], index[None] >= 48 - counts[suffix, None])  # contiguous to the end
    assert not bool(random_known_frames(torch.zeros(50, 48, 3), 0.0).any())


def test_context_prob_and_the_network_must_agree():
    plain = PUNet(features=6, base_channels=16, channel_mults=(1, 2), num_res_blocks=1)
    assert check_context(0.0, plain) == 0.0 and check_context(0.5, context_net()) == 0.5
    with pytest.raises(UserError, match="network.context=true"):
        check_context(0.5, plain)
    with pytest.raises(UserError, match="module.context_prob > 0"):
        check_context(0.0, context_net())
    with pytest.raises(UserError, match=r"\[0, 1\)"):
        check_context(1.0, context_net())


class Spy(torch.nn.Module):
    """A network that records the condition it is called with and outputs zeros."""

    context = True

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.conds = []

    def forward(self, x, t, cond=None, mask=None):
        self.conds.append(cond)
        return x * self.weight


def test_sampling_shows_the_network_the_frames_fixed_in_every_feature(dance_module_with):
    module, spy = dance_module_with(Spy())
    sampler = DDIMSampler(num_steps=2, progress=False)
    known = torch.randn(2, 48, module.data.features)
    frames = torch.arange(48)[None].expand(2, 48) < 8
    module.sample(2, sampler, known=known, known_mask=frames)
    assert len(spy.conds) == 2 and all(torch.equal(c["known_mask"], frames) for c in spy.conds)
    assert torch.equal(spy.conds[0]["known"], known)
    features = frames[:, :, None].expand(2, 48, module.data.features).clone()
    features[:, 7, 0] = False  # frame 7 is not fixed in every feature: the network is not told it is known
    module.sample(2, sampler, known=known, known_mask=features)
    assert torch.equal(spy.conds[-1]["known_mask"], frames & (torch.arange(48) < 7))
    module.sample(2, sampler)
    assert spy.conds[-1] is None
    # Patterns training never shows (both ends of a window, more than half of it) are sampled by replacement alone.
    ends = (torch.arange(48) < 8) | (torch.arange(48) >= 40)
    long = torch.arange(48) < 30
    module.sample(2, sampler, known=known, known_mask=torch.stack([ends, long]))
    assert not bool(spy.conds[-1]["known_mask"].any())
    suffix = torch.arange(48)[None].expand(2, 48) >= 40
    module.sample(2, sampler, known=known, known_mask=suffix)
    assert torch.equal(spy.conds[-1]["known_mask"], suffix)


@pytest.fixture
def dance_module_with(tmp_path):
    """A dance2d module (the committed configs, context_prob 0.5) built around a given network."""

    def build(network):
        overrides = ["experiment=dance2d", "network.context=true", "module.context_prob=0.5"]
        cfg = compose_config("train", tmp_path, overrides)
        module = MotionDiffusion.from_config(cfg, network, WALKER, module_options(cfg)).eval()
        return module, module.ema_network  # sampling calls the EMA copy

    return build


def test_a_context_dance_run_trains_generates_and_evaluates(tmp_path):
    cfg = compose_config(
        "train",
        tmp_path / "run",
        [
            "experiment=dance2d",
            f"dataset.source={shared_path('bvh', 'Walk-In-Circle.bvh')}",
            "network.context=true",
            "module.context_prob=0.5",
            "trainer.max_steps=3",
            "generate_after_training.num_samples=2",
            "generate_after_training.chain_windows=3",
            "sampler=ddim",
            "sampler.num_steps=3",
            *TINY_NETWORK,
        ],
    )
    result = train.run(cfg)
    final = result["run_dir"] / "generations" / "final"
    long = np.load(final / "long_dance.npy")
    assert long.shape[0] == 48 + 2 * 32 and np.isfinite(long).all()
    out = tmp_path / "eval"
    evaluate.run(
        compose_config(
            "evaluate",
            out,
            [f"run_dir={result['run_dir']}", "sampler=ddim", "sampler.num_steps=2", "replications=1", "clips=2"],
        )
    )
    saved = json.loads((out / "metrics.json").read_text())
    assert 0 <= saved["results"]["generated"]["coverage"]["mean"] <= 1  # the reloaded context run chains windows
    assert saved["settings"]["generated_frames"] >= saved["settings"]["training_frames"] > 48


def test_a_context_network_continues_known_frames_better_than_replacement_alone():
    """Windows of lines with a random offset and slope: given the first 8 frames, the rest is determined. The same
    context-trained network continues them more closely when shown the frames than by known-value replacement alone
    (measured: seam second difference 0.09 against 0.24, continuation error 0.14 against 0.41)."""
    torch.manual_seed(0)
    frames = 16

    def lines(batch, generator=None):
        offset = torch.rand(batch, 1, 1, generator=generator) * 2 - 1
        slope = (torch.rand(batch, 1, 1, generator=generator) * 2 - 1) * 0.1
        return offset + slope * (torch.arange(frames).view(1, frames, 1) - frames / 2)  # (B, N, 1)

    net = PUNet(features=1, base_channels=32, channel_mults=(1, 2), num_res_blocks=1, context=True)
    schedule, loss = LinearSchedule(100), DiffusionLoss("x0")
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(600):
        x0 = lines(64)
        value = loss(net, schedule, x0, cond=known_context(x0, random_known_frames(x0, 0.5)))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    net.eval()
    truth = lines(256, torch.Generator().manual_seed(1))
    fixed = torch.zeros(256, frames, dtype=torch.bool)
    fixed[:, :8] = True
    known = truth * fixed[:, :, None]
    scores = {}
    for name, cond in (("replacement", None), ("context", known_context(known, fixed))):
        noise = torch.randn(truth.shape, generator=torch.Generator().manual_seed(2))
        out = DDIMSampler(num_steps=20, progress=False).sample(
            Denoiser(net, schedule, "x0", cond=cond), schedule, noise, known=known, known_mask=fixed
        )  # (B, N, 1)
        assert torch.equal(out[:, :8], truth[:, :8])
        seam = (out[:, 8] - 2 * out[:, 7] + out[:, 6]).abs().mean()  # 0 on a line
        scores[name] = (float(seam), float((out[:, 8:] - truth[:, 8:]).abs().mean()))
    assert scores["context"][0] < 0.6 * scores["replacement"][0], scores
    assert scores["context"][1] < 0.6 * scores["replacement"][1], scores


def test_a_context_trained_teacher_is_refused_by_distillation(tmp_path):
    """The student would be shown known frames it never learned to read: refused in one sentence."""
    teacher = tmp_path / "teacher"
    (teacher / "checkpoints").mkdir(parents=True)
    (teacher / "checkpoints" / "last.ckpt").write_bytes(b"")
    overrides = ["experiment=dance2d", "network.context=true", "module.context_prob=0.5"]
    OmegaConf.save(compose_config("train", teacher, overrides), teacher / "config.yaml")
    with pytest.raises(UserError, match="network.context=true, which experiment=distill does not distil"):
        with_teacher(compose_config("train", tmp_path / "student", ["experiment=distill", f"teacher={teacher}"]))
