"""The TMR-style motion-text evaluator: encoder shapes and padding, the InfoNCE loss, the VAE terms,
the embedding API, building from the configs, and a short CPU training that must retrieve motions
from their captions far above chance."""

import functools
import math
import time

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from conftest import THREADS, compose_config
from motiondiff.core.errors import UserError
from motiondiff.data.info import TextMotionData
from motiondiff.networks.text_motion_encoders import MotionTextEncoders
from motiondiff.training.build import build_module
from motiondiff.training.contrastive_module import MotionTextContrastive, info_nce
from motiondiff.training.lr_schedules import WarmupCosineLR

FEATURES, TEXT_DIM = 12, 8
DATA_INFO = TextMotionData(
    features=FEATURES,
    num_joints=2,
    dims=3,
    fps=20.0,
    joint_names=("a", "b"),
    parents=(-1, 0),
    feature_abs_max=2.0,
    source="/data/fake",
    representation="humanml3d",
    layout="humanml3d",
    max_frames=40,
    min_frames=4,
    text_dim=TEXT_DIM,
    text_encoder="fake",
    text_tokens=8,
    dataset_id="fake-123",
    num_train=8,
    num_val=4,
    length_distribution=(40,),
)


def tiny_network(vae: bool = False) -> MotionTextEncoders:
    torch.manual_seed(0)
    return MotionTextEncoders(
        FEATURES, TEXT_DIM, latent_dim=16, num_layers=2, num_heads=2, ff_size=32, vae=vae, max_frames=40
    )


def tiny_module(vae: bool = False, **options) -> MotionTextContrastive:
    optimizer = functools.partial(torch.optim.AdamW, lr=1e-3)
    scheduler = functools.partial(WarmupCosineLR, warmup_steps=10)
    return MotionTextContrastive(tiny_network(vae), optimizer, scheduler, DATA_INFO, **options)


def fake_batch(batch: int = 4, frames: int = 30, tokens: int = 7) -> dict:
    """A batch shaped like TextMotionDataModule's, with random contents and ragged lengths."""
    generator = torch.Generator().manual_seed(1)
    lengths = torch.linspace(frames, 5, batch).long()  # (B,)
    token_lengths = torch.linspace(tokens, 1, batch).long()  # (B,)
    mask = torch.arange(frames)[None] < lengths[:, None]  # (B, N)
    text_mask = torch.arange(tokens)[None] < token_lengths[:, None]  # (B, L)
    motion = torch.randn(batch, frames, FEATURES, generator=generator) * mask[:, :, None]  # (B, N, F)
    cond = {
        "text_pooled": torch.randn(batch, TEXT_DIM, generator=generator),
        "text_tokens": torch.randn(batch, tokens, TEXT_DIM, generator=generator) * text_mask[:, :, None],
        "text_mask": text_mask,
    }
    return {"motion": motion, "mask": mask, "cond": cond, "length": lengths}


# ------------------------------------------------------------ network


@pytest.mark.parametrize("vae", [False, True])
def test_shapes(vae):
    network, batch = tiny_network(vae).eval(), fake_batch()
    mu, logvar = network.encode_motion(batch["motion"], batch["mask"])
    text_mu, text_logvar = network.encode_text(batch["cond"]["text_tokens"], batch["cond"]["text_mask"])
    assert mu.shape == text_mu.shape == (4, 16)
    if vae:
        assert logvar.shape == text_logvar.shape == (4, 16)
        assert network.decode(mu, batch["mask"]).shape == (4, 30, FEATURES)
    else:
        assert logvar is None and text_logvar is None
        with pytest.raises(UserError, match="vae=true"):
            network.decode(mu, batch["mask"])


@pytest.mark.parametrize("vae", [False, True])
def test_padding_never_changes_the_latents(vae):
    network, batch = tiny_network(vae).eval(), fake_batch()
    motion, mask = batch["motion"], batch["mask"]
    tokens, text_mask = batch["cond"]["text_tokens"], batch["cond"]["text_mask"]
    mu = network.encode_motion(motion, mask)[0]
    text_mu = network.encode_text(tokens, text_mask)[0]
    nan_motion = motion.masked_fill(~mask[:, :, None], float("nan"))
    nan_tokens = tokens.masked_fill(~text_mask[:, :, None], float("nan"))
    assert torch.equal(network.encode_motion(nan_motion, mask)[0], mu)
    assert torch.equal(network.encode_text(nan_tokens, text_mask)[0], text_mu)
    # The last item alone, without the padding: the same latents up to float rounding.
    short, short_tokens = int(mask[-1].sum()), int(text_mask[-1].sum())
    alone = network.encode_motion(motion[-1:, :short], mask[-1:, :short])[0]
    alone_text = network.encode_text(tokens[-1:, :short_tokens], text_mask[-1:, :short_tokens])[0]
    torch.testing.assert_close(alone, mu[-1:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone_text, text_mu[-1:], atol=1e-5, rtol=1e-5)


def test_bad_network_settings_name_the_key():
    with pytest.raises(UserError, match="network.num_heads"):
        MotionTextEncoders(FEATURES, TEXT_DIM, latent_dim=30, num_heads=4)
    with pytest.raises(UserError, match="network.max_frames=40"):
        tiny_network().encode_motion(torch.zeros(1, 41, FEATURES), torch.ones(1, 41, dtype=torch.bool))


# ------------------------------------------------------------ losses


def test_info_nce_is_zero_for_aligned_separated_pairs_and_log_b_for_random():
    batch = 8
    aligned = torch.eye(batch, 32)  # (B, D): text i == motion i, orthogonal to the others
    assert info_nce(aligned, aligned.clone(), temperature=0.1) < 1e-3
    generator = torch.Generator().manual_seed(0)
    text, motion = torch.randn(2, batch, 4096, generator=generator)  # nearly orthogonal everywhere
    assert abs(float(info_nce(text, motion, temperature=0.1)) - math.log(batch)) < 0.1


def test_negative_filtering_drops_duplicate_captions_from_the_negatives():
    # Items 0 and 1 have the same caption: same pooled embedding and same text latent.
    motion = torch.eye(4, 16)  # (B, D)
    text = motion.clone()
    text[1] = text[0]
    pooled = torch.eye(4, 8)
    pooled[1] = pooled[0]
    unfiltered = info_nce(text, motion, 0.1, pooled, threshold=1.0)
    filtered = info_nce(text, motion, 0.1, pooled, threshold=0.8)
    print(f"duplicate captions: InfoNCE {float(unfiltered):.3f} unfiltered, {float(filtered):.3f} filtered")
    assert filtered < unfiltered - 1.0
    distinct = torch.eye(4, 8)  # no duplicates: filtering changes nothing
    assert torch.equal(info_nce(text, motion, 0.1, distinct, 0.8), info_nce(text, motion, 0.1, distinct, 1.0))


def test_vae_terms_run_and_the_decoder_ignores_padding():
    module, batch = tiny_module(vae=True).train(), fake_batch()
    losses = module.losses(batch)
    for name in ("contrastive", "recon_motion", "recon_text", "kl_motion", "kl_text", "latent"):
        assert torch.isfinite(losses[name]) and losses[name] >= 0, name
    losses["loss"].backward()
    assert module.network.decoder.output.weight.grad.abs().sum() > 0
    decoded = module.network.decode(torch.randn(4, 16), batch["mask"])  # (B, N, F)
    assert decoded[~batch["mask"]].abs().max() == 0 and decoded[batch["mask"]].abs().max() > 0
    # Reconstruction reads valid frames only: garbage in the target's padding changes nothing.
    module.eval()
    noisy = {**batch, "motion": batch["motion"] + 100.0 * (~batch["mask"][:, :, None]).float()}
    assert torch.equal(module.losses(noisy)["recon_text"], module.losses(batch)["recon_text"])


def test_contrastive_only_network_has_no_vae_terms():
    losses = tiny_module(vae=False).train().losses(fake_batch())
    assert set(losses) == {"loss", "contrastive", "text_mu", "motion_mu"}
    assert torch.equal(losses["loss"], losses["contrastive"])


@pytest.mark.parametrize(
    "option, value",
    [
        ("temperature", 0.0),
        ("negative_threshold", 0.0),
        ("negative_threshold", 1.5),
        ("kl_weight", -1.0),
        ("val_batch_size", 1),
    ],
)
def test_bad_module_options_name_the_key(option, value):
    with pytest.raises(UserError, match=f"module.{option}"):
        tiny_module(**{option: value})


# ------------------------------------------------------------ embedding API and configs


def test_embeddings_normalise_raw_features_and_return_mu():
    module, batch = tiny_module(vae=True), fake_batch()
    module.normalizer.set_statistics(torch.full((FEATURES,), 3.0), torch.full((FEATURES,), 2.0))
    raw = module.normalizer.denormalize(batch["motion"]).masked_fill(~batch["mask"][:, :, None], float("nan"))
    module.train()  # the API embeds without dropout or sampling whatever the mode
    embedded = module.embed_motion(raw, batch["mask"])
    assert module.training and module.network.training
    expected = module.network.eval().encode_motion(batch["motion"], batch["mask"])[0]
    torch.testing.assert_close(embedded, expected)
    assert not torch.allclose(embedded.norm(dim=-1), torch.ones(4))  # not unit-normalised
    text = module.embed_text(batch["cond"]["text_tokens"], batch["cond"]["text_mask"])
    torch.testing.assert_close(
        text, module.network.encode_text(batch["cond"]["text_tokens"], batch["cond"]["text_mask"])[0]
    )
    description = module.description
    assert description.dataset_id == "fake-123" and description.features == FEATURES
    assert description.text_encoder == "fake" and description.representation == "humanml3d"


def test_evaluator_module_refuses_a_diffusion_network(tmp_path):
    cfg = compose_config("train", tmp_path, ["experiment=evaluator", "network=adaln"])
    with pytest.raises(UserError, match="network=tmr"):
        build_module(cfg, DATA_INFO)


def test_experiment_config_builds_the_evaluator(tmp_path):
    cfg = compose_config("train", tmp_path, ["experiment=evaluator", "module.temperature=0.07", "network.vae=true"])
    module = build_module(cfg, DATA_INFO)
    assert isinstance(module, MotionTextContrastive) and module.temperature == 0.07
    assert module.network.vae and module.network.latent_dim == cfg.network.latent_dim
    assert module.network.motion_encoder.input_dim == FEATURES and module.network.text_encoder.input_dim == TEXT_DIM
    restored = build_module(cfg, DATA_INFO)
    restored.load_state_dict(module.state_dict())  # the normaliser travels with the weights


# ------------------------------------------------------------ learning

STEPS, BATCH = 120, 32


@pytest.fixture(scope="module")
def procedural_data(tmp_path_factory):
    from motiondiff.data.text_motion import TextMotionDataModule
    from motiondiff.text.encoders import MiniLMEncoder

    datamodule = TextMotionDataModule(
        root="procedural",
        text_encoder=MiniLMEncoder(),
        cache_dir=str(tmp_path_factory.mktemp("data")),
        procedural={"num_motions": 300, "seed": 0, "splits": [0.6, 0.2, 0.2]},
        max_frames=120,
        batch_size=BATCH,
    )
    datamodule.setup(None)
    return datamodule


def held_out_r_precision(module: MotionTextContrastive, datamodule) -> dict:
    """Text->motion R@k over the validation and test items, shuffled once, in batches of 32."""
    from motiondiff.metrics.retrieval import r_precision

    items = [datamodule.val_set[i] for i in range(len(datamodule.val_set))]
    items += [datamodule.test_set[i] for i in range(len(datamodule.test_set))]
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(0)).tolist()
    batch = datamodule.collate([items[i] for i in order])
    raw = module.normalizer.denormalize(batch["motion"])  # the API takes raw features
    motion = module.embed_motion(raw, batch["mask"])  # (N, D)
    text = module.embed_text(batch["cond"]["text_tokens"], batch["cond"]["text_mask"])  # (N, D)
    return r_precision(F.normalize(text, dim=-1), F.normalize(motion, dim=-1), batch_size=32, top_k=3)


def test_training_retrieves_motions_from_captions_far_above_chance(procedural_data):
    torch.set_num_threads(THREADS)
    L.seed_everything(0, verbose=False)
    info = procedural_data.info
    network = MotionTextEncoders(
        info.features, info.text_dim, latent_dim=64, num_layers=2, num_heads=4, ff_size=128, dropout=0.0, max_frames=120
    )
    optimizer = functools.partial(torch.optim.AdamW, lr=1e-3)
    scheduler = functools.partial(WarmupCosineLR, warmup_steps=30)
    module = MotionTextContrastive(network, optimizer, scheduler, info)
    module.normalizer.load_state_dict(procedural_data.normalizer.state_dict())
    untrained = held_out_r_precision(module, procedural_data)
    quiet = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.time()
    L.Trainer(max_steps=STEPS, limit_val_batches=0, **quiet).fit(
        module, train_dataloaders=procedural_data.train_dataloader()
    )
    seconds = time.time() - start
    trained = held_out_r_precision(module, procedural_data)
    validated = L.Trainer(**quiet).validate(module, dataloaders=procedural_data.val_dataloader(), verbose=False)[0]
    print(
        f"R@1/R@3 untrained {untrained['R@1']:.3f}/{untrained['R@3']:.3f}, after {STEPS} steps "
        f"({seconds:.0f} s) {trained['R@1']:.3f}/{trained['R@3']:.3f}; val/R@3 {validated['val/R@3']:.3f}"
    )
    chance = 3 / 32
    assert untrained["R@3"] < 2 * chance
    assert trained["R@3"] > 0.6 and trained["R@1"] > 0.3
    assert validated["val/R@3"] > 0.6 and validated["val/loss"] < math.log(BATCH) / 2
